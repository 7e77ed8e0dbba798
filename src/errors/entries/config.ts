import type { CatalogueSection } from '../types.ts';

export const config = {
  MB_CONFIG_UNREADABLE: {
    http: 500,
    title: { en: 'Configuration file unreadable', de: 'Konfigurationsdatei nicht lesbar' },
    cause: { en: 'mailbridge could not read {path}: {detail}', de: 'mailbridge konnte {path} nicht lesen: {detail}' },
    fix: {
      en: 'Check the file name and its permissions, and that it is valid YAML (run `mailbridge config check`).',
      de: 'Prüfen Sie Dateiname und Berechtigungen und ob die Datei gültiges YAML ist (`mailbridge config check`).',
    },
  },
  MB_CONFIG_INVALID: {
    http: 500,
    title: { en: 'Configuration invalid', de: 'Konfiguration ungültig' },
    cause: { en: '{path}: at {field}: {detail}', de: '{path}: bei {field}: {detail}' },
    fix: {
      en: 'Correct the value at {field}; `mailbridge config check` lists every error with its fix.',
      de: 'Korrigieren Sie den Wert bei {field}; `mailbridge config check` listet alle Fehler mit Behebung.',
    },
  },
} satisfies CatalogueSection;
