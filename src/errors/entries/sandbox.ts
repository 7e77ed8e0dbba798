import type { CatalogueSection } from '../types.ts';
import { sandboxEntraErrors } from '../../sandbox/entra/op-errors.ts';

/** The sandbox tenant's own failures (run-time operations and its admin API), not Microsoft's. */
export const sandbox = {
  ...sandboxEntraErrors,
  MB_SANDBOX_ADMIN_UNREACHABLE: {
    http: 503,
    title: { en: 'Sandbox admin API unreachable', de: 'Admin-API der Sandbox nicht erreichbar' },
    cause: {
      en: 'The sandbox admin API at {url} does not answer: {detail}',
      de: 'Die Admin-API der Sandbox unter {url} antwortet nicht: {detail}',
    },
    fix: {
      en: 'Start the sandbox with `npm run sandbox` (it writes .sandbox/admin-url), or pass --url with the address it printed.',
      de: 'Starten Sie die Sandbox mit `npm run sandbox` (sie schreibt .sandbox/admin-url) oder geben Sie mit --url die ausgegebene Adresse an.',
    },
  },
  MB_SANDBOX_ADMIN_REFUSED: {
    http: 400,
    title: { en: 'The sandbox refused the change', de: 'Die Sandbox hat die Änderung abgelehnt' },
    cause: { en: '{op}: {code}: {detail}', de: '{op}: {code}: {detail}' },
    fix: {
      en: 'Check the names and IDs against `mailbridge sandbox-admin state`, then run the operation again.',
      de: 'Prüfen Sie Namen und IDs mit `mailbridge sandbox-admin state` und führen Sie den Vorgang erneut aus.',
    },
  },
  MB_SANDBOX_EWS_LISTEN: {
    http: 500,
    title: { en: 'Sandbox EWS cannot listen', de: 'Sandbox-EWS kann nicht lauschen' },
    cause: {
      en: 'The sandbox EWS (Exchange Web Services and Autodiscover) could not open {address}: {detail}',
      de: 'Die Sandbox-EWS (Exchange Web Services und Autodiscover) konnte {address} nicht öffnen: {detail}',
    },
    fix: {
      en: 'Free the port (another sandbox may still run: `npm run sandbox` prints its endpoints) or start the sandbox with another EWS port (ports.ews).',
      de: 'Geben Sie den Port frei (eventuell läuft noch eine Sandbox: `npm run sandbox` zeigt ihre Endpunkte) oder starten Sie die Sandbox mit einem anderen EWS-Port (ports.ews).',
    },
  },
} satisfies CatalogueSection;
