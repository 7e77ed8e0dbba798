import type { CatalogueSection } from '../types.ts';

export const store = {
  MB_STORE_OPEN_FAILED: {
    http: 500,
    title: { en: 'The store cannot be opened', de: 'Der Datenspeicher lässt sich nicht öffnen' },
    cause: {
      en: 'mailbridge could not open or migrate its database at {path}: {detail}',
      de: 'mailbridge konnte seine Datenbank unter {path} nicht öffnen oder aktualisieren: {detail}',
    },
    fix: {
      en: 'Check that the directory exists and is writable by the mailbridge user, that the disk is not full, and that no other program holds the file. Set store.path in mailbridge.yaml to move it.',
      de: 'Prüfen Sie, ob das Verzeichnis existiert und für den mailbridge-Benutzer beschreibbar ist, ob die Platte voll ist und ob ein anderes Programm die Datei sperrt. Mit store.path in mailbridge.yaml verlegen Sie die Datei.',
    },
  },
  MB_STORE_DRIVER_UNAVAILABLE: {
    http: 500,
    title: { en: 'Store driver not available', de: 'Speichertreiber nicht verfügbar' },
    cause: {
      en: 'The store driver "{driver}" is not available in this version of mailbridge.',
      de: 'Der Speichertreiber „{driver}“ ist in dieser Version von mailbridge nicht verfügbar.',
    },
    fix: {
      en: 'Use the embedded default: set store.driver to sqlite in mailbridge.yaml.',
      de: 'Verwenden Sie den eingebauten Standard: Setzen Sie store.driver in mailbridge.yaml auf sqlite.',
    },
  },
} satisfies CatalogueSection;
