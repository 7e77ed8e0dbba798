import type { CatalogueSection } from '../types.ts';

/** GET /health/ready: what keeps the gateway from being ready (a token failure reports its own code). */
export const health = {
  MB_HEALTH_STORE_DOWN: {
    http: 503,
    title: { en: 'The store does not answer', de: 'Der Datenspeicher antwortet nicht' },
    cause: {
      en: 'The {driver} store did not answer a test query: {detail}',
      de: 'Der Speicher ({driver}) hat eine Testabfrage nicht beantwortet: {detail}',
    },
    fix: {
      en: 'Check the database: for SQLite that store.path is on a disk with free space and writable by the mailbridge user, for PostgreSQL that the server in store.url runs (psql "<store.url>" -c "select 1"). Then look at the mailbridge log: journalctl -u mailbridge',
      de: 'Prüfen Sie die Datenbank: bei SQLite, ob store.path auf einer Platte mit freiem Platz liegt und für den mailbridge-Benutzer beschreibbar ist, bei PostgreSQL, ob der Server aus store.url läuft (psql "<store.url>" -c "select 1"). Danach das mailbridge-Protokoll ansehen: journalctl -u mailbridge',
    },
  },
  MB_HEALTH_LISTENER_DOWN: {
    http: 503,
    title: { en: 'A listener is not listening', de: 'Ein Listener nimmt keine Verbindungen an' },
    cause: {
      en: 'The listener {listener} of {setting} no longer accepts connections.',
      de: 'Der Listener {listener} aus {setting} nimmt keine Verbindungen mehr an.',
    },
    fix: {
      en: 'Restart mailbridge (systemctl restart mailbridge) and look for MB_RELAY_LISTEN_FAILED or MB_PORT_IN_USE in the log; check that no other program took the port: ss -ltnp',
      de: 'mailbridge neu starten (systemctl restart mailbridge) und im Protokoll nach MB_RELAY_LISTEN_FAILED oder MB_PORT_IN_USE suchen; prüfen, ob ein anderes Programm den Port belegt: ss -ltnp',
    },
  },
  MB_METRICS_UNAUTHORIZED: {
    http: 401,
    title: { en: '/metrics needs the metrics token', de: '/metrics verlangt das Metrik-Token' },
    cause: {
      en: 'server.metricsToken is set, and the request carried no or another bearer token.',
      de: 'server.metricsToken ist gesetzt, und die Anfrage trug kein oder ein anderes Bearer-Token.',
    },
    fix: {
      en: 'In prometheus.yml give the scrape job the token: authorization: { type: Bearer, credentials_file: /etc/prometheus/mailbridge.token } (the value set with mailbridge secret set server.metricsToken).',
      de: 'In prometheus.yml dem Scrape-Job das Token mitgeben: authorization: { type: Bearer, credentials_file: /etc/prometheus/mailbridge.token } (der mit mailbridge secret set server.metricsToken gesetzte Wert).',
    },
  },
} satisfies CatalogueSection;
