import type { CatalogueSection } from '../types.ts';

/** Failures that belong to no single capability. */
export const core = {
  MB_INTERNAL: {
    http: 500,
    title: { en: 'Internal error', de: 'Interner Fehler' },
    cause: {
      en: 'mailbridge met a condition it does not expect: {detail}',
      de: 'mailbridge ist auf einen unerwarteten Zustand gestoßen: {detail}',
    },
    fix: {
      en: 'Check the log around this time and report the problem with the log lines attached.',
      de: 'Prüfen Sie das Protokoll zu diesem Zeitpunkt und melden Sie das Problem mit den Protokollzeilen.',
    },
  },
  MB_CLI_USAGE: {
    http: 400,
    title: { en: 'Invalid command line', de: 'Ungültiger Befehlsaufruf' },
    cause: { en: '{detail}', de: '{detail}' },
    fix: {
      en: 'Run `mailbridge {command} --help` for the accepted arguments.',
      de: 'Führen Sie `mailbridge {command} --help` aus, um die zulässigen Argumente zu sehen.',
    },
  },
  MB_CLI_UNKNOWN_COMMAND: {
    http: 400,
    title: { en: 'Unknown command', de: 'Unbekannter Befehl' },
    cause: { en: 'mailbridge has no command "{command}".', de: 'mailbridge kennt den Befehl „{command}“ nicht.' },
    fix: {
      en: 'Run `mailbridge --help` for the list of commands.',
      de: 'Führen Sie `mailbridge --help` aus, um alle Befehle zu sehen.',
    },
  },
} satisfies CatalogueSection;
