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
  MB_STORE_POSTGRES_FAILED: {
    http: 503,
    title: { en: 'The PostgreSQL store cannot be opened', de: 'Der PostgreSQL-Speicher lässt sich nicht öffnen' },
    cause: {
      en: 'mailbridge could not connect to or migrate its PostgreSQL database {server}: {detail}',
      de: 'mailbridge konnte seine PostgreSQL-Datenbank {server} nicht erreichen oder aktualisieren: {detail}',
    },
    fix: {
      en: 'Check that the server in store.url runs and accepts connections from this host (listen_addresses, pg_hba.conf), that the database and user exist (createdb -O mailbridge mailbridge) and that the password is right (mailbridge secret set store.url). Test with: psql "<store.url>" -c "select 1"',
      de: 'Prüfen Sie, ob der Server aus store.url läuft und Verbindungen von diesem Rechner annimmt (listen_addresses, pg_hba.conf), ob Datenbank und Benutzer existieren (createdb -O mailbridge mailbridge) und ob das Passwort stimmt (mailbridge secret set store.url). Testen mit: psql "<store.url>" -c "select 1"',
    },
  },
} satisfies CatalogueSection;
