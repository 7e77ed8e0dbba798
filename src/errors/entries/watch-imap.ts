import type { CatalogueSection } from '../types.ts';

/**
 * Notify watchers: IMAP IDLE (src/notify/watchers/imap). Sign-in failures that are the same as the
 * connector's (a refused token, "authenticated but not connected", an unreachable server, a lost
 * session) reuse the MB_CONNECTOR_* codes, whose fixes are the PowerShell lines; the codes here are
 * the ones whose fix points at the watcher's own settings or behaviour. `{listener}` is the watch
 * listener (pool member) that runs the watcher.
 */
export const watchImap = {
  MB_WATCH_IMAP_UIDVALIDITY_CHANGED: {
    http: 409,
    title: { en: 'Watched folder was rebuilt on the server', de: 'Überwachter Ordner wurde auf dem Server neu aufgebaut' },
    cause: {
      en: 'The UIDVALIDITY of {mailbox}/{folder} changed from {old} to {new}, so the server numbers its messages anew. The IMAP watcher cannot tell which messages are new, read or deleted since it last looked; it takes a new baseline and reports only changes from now on.',
      de: 'Die UIDVALIDITY von {mailbox}/{folder} hat sich von {old} auf {new} geändert, der Server nummeriert die Nachrichten also neu. Der IMAP-Watcher kann nicht erkennen, welche Nachrichten seit seinem letzten Blick neu, gelesen oder gelöscht sind; er legt einen neuen Ausgangsstand an und meldet nur Änderungen ab jetzt.',
    },
    fix: {
      en: 'Nothing to do. Changes made while the folder was rebuilt were not reported; apps that need an exact state should read the folder once.',
      de: 'Nichts zu tun. Änderungen während des Neuaufbaus wurden nicht gemeldet; Apps, die einen genauen Stand brauchen, sollten den Ordner einmal neu lesen.',
    },
  },
  MB_WATCH_IMAP_FOLDER_MISSING: {
    http: 404,
    title: { en: 'Watched folder not found', de: 'Überwachter Ordner nicht gefunden' },
    cause: {
      en: 'The mailbox {mailbox} has no folder "{folder}", so the IMAP watcher of listener {listener} cannot watch it. It looks again every few minutes.',
      de: 'Das Postfach {mailbox} hat keinen Ordner „{folder}“, daher kann der IMAP-Watcher von Listener {listener} ihn nicht überwachen. Er sieht alle paar Minuten erneut nach.',
    },
    fix: {
      en: 'Correct the folder in the watch settings of {mailbox}: Exchange names folders as Outlook shows them in English (INBOX, "Inbox/Scans" for a subfolder, separator "/").',
      de: 'Korrigieren Sie den Ordner in den Überwachungseinstellungen von {mailbox}: Exchange benennt Ordner wie Outlook auf Englisch (INBOX, „Inbox/Scans“ für einen Unterordner, Trennzeichen „/“).',
    },
  },
  MB_WATCH_IMAP_THROTTLED: {
    http: 429,
    title: { en: 'The mail server throttles the watcher', de: 'Der Mailserver drosselt den Watcher' },
    cause: {
      en: 'The server answered "Request is throttled" for {mailbox} and suggested waiting {seconds} seconds; the IMAP watcher waits that long before it connects again. Changes made meanwhile are reported after the reconnect.',
      de: 'Der Server hat für {mailbox} mit „Request is throttled“ geantwortet und {seconds} Sekunden Wartezeit vorgeschlagen; so lange wartet der IMAP-Watcher, bevor er sich erneut verbindet. Änderungen in der Zwischenzeit werden nach dem Wiederverbinden gemeldet.',
    },
    fix: {
      en: 'The watcher opens one IMAP session per watched folder; Exchange allows about 20 per mailbox, shared with Outlook, phones and connectors. Watch fewer folders of {mailbox}, or lower concurrentLogins in the IMAP settings of listener {listener} if it happens at start-up.',
      de: 'Der Watcher öffnet je überwachtem Ordner eine IMAP-Sitzung; Exchange erlaubt etwa 20 je Postfach, gemeinsam mit Outlook, Telefonen und Connectoren. Überwachen Sie weniger Ordner von {mailbox}, oder senken Sie concurrentLogins in den IMAP-Einstellungen von Listener {listener}, wenn es beim Start auftritt.',
    },
  },
  MB_WATCH_IMAP_TLS: {
    http: 502,
    title: { en: 'Mail server certificate not trusted', de: 'Zertifikat des Mailservers nicht vertrauenswürdig' },
    cause: {
      en: 'The IMAP watcher of listener {listener} could not open TLS to {host}:{port}: {detail}',
      de: 'Der IMAP-Watcher von Listener {listener} konnte keine TLS-Verbindung zu {host}:{port} aufbauen: {detail}',
    },
    fix: {
      en: 'If a proxy or a private CA (an on-premises Exchange or Dovecot) signs the certificate, put its CA certificate (PEM) into caFile of the IMAP settings of listener {listener}; if host is an IP address, set servername to the name in the certificate.',
      de: 'Wenn ein Proxy oder eine eigene CA (ein lokales Exchange oder Dovecot) das Zertifikat ausstellt, tragen Sie deren CA-Zertifikat (PEM) als caFile in den IMAP-Einstellungen von Listener {listener} ein; ist host eine IP-Adresse, setzen Sie servername auf den Namen im Zertifikat.',
    },
  },
  MB_WATCH_IMAP_LOGIN_FAILED: {
    http: 401,
    title: { en: 'Mailbox login refused', de: 'Postfach-Anmeldung abgelehnt' },
    cause: {
      en: '{host} refused the password login of {user} for {mailbox} ({detail}).',
      de: '{host} hat die Passwort-Anmeldung von {user} für {mailbox} abgelehnt ({detail}).',
    },
    fix: {
      en: 'Check user and password in the IMAP settings of listener {listener} (set the password with `mailbridge secret set`). On Exchange Server, check that IMAP is enabled for the mailbox: Set-CASMailbox -Identity {mailbox} -ImapEnabled $true; for a service account reading other mailboxes: Add-MailboxPermission -Identity {mailbox} -User {user} -AccessRights FullAccess.',
      de: 'Prüfen Sie Benutzer und Passwort in den IMAP-Einstellungen von Listener {listener} (Passwort mit `mailbridge secret set` setzen). Bei Exchange Server prüfen, ob IMAP für das Postfach eingeschaltet ist: Set-CASMailbox -Identity {mailbox} -ImapEnabled $true; für ein Dienstkonto, das andere Postfächer liest: Add-MailboxPermission -Identity {mailbox} -User {user} -AccessRights FullAccess.',
    },
  },
  MB_WATCH_IMAP_NO_IDLE: {
    http: 502,
    title: { en: 'The mail server does not offer IDLE', de: 'Der Mailserver bietet kein IDLE an' },
    cause: {
      en: '{host} does not announce IMAP IDLE for {mailbox}, so new mail, read and deleted messages are found only when the IMAP watcher looks, every {seconds} seconds.',
      de: '{host} bietet für {mailbox} kein IMAP IDLE an, daher werden neue, gelesene und gelöschte Nachrichten nur gefunden, wenn der IMAP-Watcher nachsieht, alle {seconds} Sekunden.',
    },
    fix: {
      en: 'Enable IDLE on the server (Dovecot: imap_capability; Exchange Server: Set-ImapSettings), or lower resyncSeconds in the IMAP settings of listener {listener} for faster notifications.',
      de: 'Schalten Sie IDLE auf dem Server ein (Dovecot: imap_capability; Exchange Server: Set-ImapSettings) oder senken Sie resyncSeconds in den IMAP-Einstellungen von Listener {listener} für schnellere Benachrichtigungen.',
    },
  },
} as const satisfies CatalogueSection;
