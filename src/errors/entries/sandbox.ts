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
} satisfies CatalogueSection;
