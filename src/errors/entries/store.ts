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
  MB_STORE_MIGRATE_RUNNING: {
    http: 409,
    title: { en: 'mailbridge still runs on the SQLite store', de: 'mailbridge läuft noch auf dem SQLite-Speicher' },
    cause: {
      en: 'A running mailbridge (process {pid}) holds the relay spool {path}; moving the store while it accepts mail could lose messages.',
      de: 'Ein laufender mailbridge-Prozess ({pid}) hält den Relay-Spool {path}; den Speicher umzuziehen, während er Mail annimmt, könnte Nachrichten verlieren.',
    },
    fix: {
      en: 'Stop the gateway first (systemctl stop mailbridge), run mailbridge store migrate again, then set store.driver: postgres and start the nodes.',
      de: 'Beenden Sie zuerst das Gateway (systemctl stop mailbridge), starten Sie mailbridge store migrate erneut, stellen Sie dann store.driver: postgres ein und starten Sie die Knoten.',
    },
  },
  MB_STORE_MIGRATE_BUSY: {
    http: 409,
    title: { en: 'The SQLite store is being written', de: 'In den SQLite-Speicher wird gerade geschrieben' },
    cause: {
      en: 'Another process writes to {path}, so no consistent copy can be taken: {detail}',
      de: 'Ein anderer Prozess schreibt in {path}, daher lässt sich keine stimmige Kopie ziehen: {detail}',
    },
    fix: {
      en: 'Stop every mailbridge that uses this file (systemctl stop mailbridge; also running mailbridge fetch or watch commands), then run mailbridge store migrate again.',
      de: 'Beenden Sie jedes mailbridge, das diese Datei verwendet (systemctl stop mailbridge; auch laufende mailbridge fetch- oder watch-Befehle), und starten Sie mailbridge store migrate erneut.',
    },
  },
  MB_STORE_MIGRATE_VERIFY: {
    http: 500,
    title: { en: 'Store migration could not be verified', de: 'Speicher-Umzug ließ sich nicht bestätigen' },
    cause: {
      en: 'After copying {expected} rows of table {table}, only {found} of them were found in PostgreSQL. Nothing of this batch was committed.',
      de: 'Nach dem Kopieren von {expected} Zeilen der Tabelle {table} fanden sich nur {found} davon in PostgreSQL. Von diesem Stapel wurde nichts übernommen.',
    },
    fix: {
      en: 'Check that no other program changes the PostgreSQL database during the migration (triggers, another mailbridge), then run mailbridge store migrate again; rows already copied are kept.',
      de: 'Prüfen Sie, dass kein anderes Programm die PostgreSQL-Datenbank während des Umzugs ändert (Trigger, ein anderes mailbridge), und starten Sie mailbridge store migrate erneut; bereits kopierte Zeilen bleiben erhalten.',
    },
  },
} satisfies CatalogueSection;
