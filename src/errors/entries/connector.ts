import type { CatalogueSection } from '../types.ts';

/**
 * The mailbox connector (src/connector): fetching mail from Microsoft 365 mailboxes (IMAP or Graph)
 * and handing it to a local system (SMTP/LMTP, maildir, HTTP, command).
 *
 * `{connector}` is the connector's name in mailbridge.yaml, `{mailbox}` the source address,
 * `{folder}` the source folder, `{destination}` a short description of the destination
 * (e.g. "lmtp 127.0.0.1:24"). The Exchange permission fixes name the Enterprise application
 * (service principal) object ID, which mailbridge reads from the `oid` claim of the app-only token.
 */
export const connector = {
  MB_CONNECTOR_UNKNOWN: {
    http: 404,
    title: { en: 'Unknown connector', de: 'Unbekannter Connector' },
    cause: {
      en: 'mailbridge.yaml has no connector named "{connector}".',
      de: 'mailbridge.yaml enthält keinen Connector namens „{connector}“.',
    },
    fix: {
      en: 'Use one of the configured connectors ({known}), or add connectors.{connector} to mailbridge.yaml.',
      de: 'Verwenden Sie einen der eingerichteten Connectoren ({known}) oder ergänzen Sie connectors.{connector} in mailbridge.yaml.',
    },
  },
  MB_CONNECTOR_CONNECTION_UNKNOWN: {
    http: 500,
    title: { en: 'Connector without its connection', de: 'Connector ohne seine Verbindung' },
    cause: {
      en: 'connectors.{connector}.connection names "{connection}", but connections.{connection} does not exist.',
      de: 'connectors.{connector}.connection nennt „{connection}“, aber connections.{connection} existiert nicht.',
    },
    fix: {
      en: 'Add connections.{connection} (tenant ID, client ID, secret or certificate) or correct the name.',
      de: 'Ergänzen Sie connections.{connection} (Mandanten-ID, Client-ID, Geheimnis oder Zertifikat) oder korrigieren Sie den Namen.',
    },
  },
  MB_CONNECTOR_BUSY: {
    http: 409,
    title: { en: 'Connector already running', de: 'Connector läuft bereits' },
    cause: {
      en: 'The connector {connector} is already being run by {owner}; two copies would deliver messages twice.',
      de: 'Der Connector {connector} wird bereits von {owner} ausgeführt; zwei Instanzen würden Nachrichten doppelt zustellen.',
    },
    fix: {
      en: 'Stop the other run (or the gateway that runs this connector) first. A run that died frees the connector after {seconds} seconds at the latest.',
      de: 'Beenden Sie zuerst den anderen Lauf (oder das Gateway, das diesen Connector ausführt). Ein abgestürzter Lauf gibt den Connector spätestens nach {seconds} Sekunden frei.',
    },
  },

  // ── Source: Exchange Online IMAP ─────────────────────────────────────────────────────────────
  MB_CONNECTOR_NOT_CONNECTED: {
    http: 403,
    title: {
      en: 'Signed in, but no access to the mailbox',
      de: 'Angemeldet, aber kein Zugriff auf das Postfach',
    },
    cause: {
      en: 'Exchange Online accepted the app token for {mailbox} but answered "User is authenticated but not connected". Exchange gives this one answer for all of these reasons, so check them in this order: 1. the address {mailbox} has a typo or is no mailbox of this tenant; 2. the app (app ID {appId}) is not registered in Exchange Online as a service principal, or was registered with the wrong object ID; 3. it has no FullAccess on {mailbox}.',
      de: 'Exchange Online hat das App-Token für {mailbox} angenommen, aber mit „User is authenticated but not connected“ geantwortet. Exchange gibt diese eine Antwort für alle folgenden Gründe, prüfen Sie sie daher in dieser Reihenfolge: 1. Die Adresse {mailbox} enthält einen Tippfehler oder ist kein Postfach dieses Mandanten; 2. die App (App-ID {appId}) ist in Exchange Online nicht als Dienstprinzipal registriert oder wurde mit der falschen Objekt-ID registriert; 3. sie hat keinen Vollzugriff auf {mailbox}.',
    },
    fix: {
      en: 'First the address: Get-EXOMailbox -Identity {mailbox} (or Exchange admin center › Recipients › Mailboxes) must find it; correct it in connectors.<name>.mailboxes if not. Then in Exchange Online PowerShell (Connect-ExchangeOnline -Organization {tenantId}) run: New-ServicePrincipal -AppId {appId} -ObjectId {objectId} -DisplayName "mailbridge" and then: Add-MailboxPermission -Identity {mailbox} -User {objectId} -AccessRights FullAccess. The object ID is the one of the Enterprise application (Entra admin center › Enterprise applications › your app › Object ID), not the one of the App registration. Exchange may take up to 30 minutes to apply it; mailbridge keeps retrying.',
      de: 'Zuerst die Adresse: Get-EXOMailbox -Identity {mailbox} (oder Exchange Admin Center › Empfänger › Postfächer) muss sie finden; sonst in connectors.<Name>.mailboxes korrigieren. Dann in der Exchange Online PowerShell (Connect-ExchangeOnline -Organization {tenantId}) ausführen: New-ServicePrincipal -AppId {appId} -ObjectId {objectId} -DisplayName "mailbridge" und danach: Add-MailboxPermission -Identity {mailbox} -User {objectId} -AccessRights FullAccess. Die Objekt-ID ist die der Unternehmensanwendung (Entra Admin Center › Unternehmensanwendungen › Ihre App › Objekt-ID), nicht die der App-Registrierung. Exchange braucht bis zu 30 Minuten, bis es wirkt; mailbridge versucht es weiter.',
    },
  },
  MB_CONNECTOR_NOT_CONNECTED_DELEGATED: {
    http: 403,
    title: {
      en: 'Signed in, but no access to the mailbox',
      de: 'Angemeldet, aber kein Zugriff auf das Postfach',
    },
    cause: {
      en: 'Exchange Online accepted the token of {user} for {mailbox} but answered "User is authenticated but not connected": the address {mailbox} has a typo or is no mailbox of this tenant, or {user} has no FullAccess on {mailbox} (Exchange answers both the same way).',
      de: 'Exchange Online hat das Token von {user} für {mailbox} angenommen, aber mit „User is authenticated but not connected“ geantwortet: Die Adresse {mailbox} enthält einen Tippfehler oder ist kein Postfach dieses Mandanten, oder {user} hat keinen Vollzugriff auf {mailbox} (Exchange antwortet in beiden Fällen gleich).',
    },
    fix: {
      en: 'Check the address first (Get-EXOMailbox -Identity {mailbox}). Then in Exchange Online PowerShell run: Add-MailboxPermission -Identity {mailbox} -User {user} -AccessRights FullAccess (or Exchange admin center › Mailboxes › {mailbox} › Delegation › Read and manage). It may take up to 30 minutes to apply; mailbridge keeps retrying.',
      de: 'Prüfen Sie zuerst die Adresse (Get-EXOMailbox -Identity {mailbox}). Dann in der Exchange Online PowerShell ausführen: Add-MailboxPermission -Identity {mailbox} -User {user} -AccessRights FullAccess (oder Exchange Admin Center › Postfächer › {mailbox} › Delegierung › Lesen und verwalten). Es kann bis zu 30 Minuten dauern; mailbridge versucht es weiter.',
    },
  },
  MB_CONNECTOR_AUTH_FAILED: {
    http: 401,
    title: { en: 'Mailbox sign-in refused', de: 'Postfach-Anmeldung abgelehnt' },
    cause: {
      en: '{host} refused the token for {mailbox} ({detail}). The usual reasons: the app lacks the IMAP.AccessAsApp permission or its admin consent, the token is for another resource than Office 365 Exchange Online, or IMAP is disabled for the mailbox.',
      de: '{host} hat das Token für {mailbox} abgelehnt ({detail}). Die üblichen Gründe: Der App fehlt die Berechtigung IMAP.AccessAsApp oder deren Administratorzustimmung, das Token gilt für eine andere Ressource als Office 365 Exchange Online, oder IMAP ist für das Postfach abgeschaltet.',
    },
    fix: {
      en: 'Entra admin center › App registrations › your app › API permissions › Add a permission › APIs my organization uses › Office 365 Exchange Online › Application permissions › IMAP.AccessAsApp, then "Grant admin consent". Check IMAP for the mailbox: Set-CASMailbox -Identity {mailbox} -ImapEnabled $true. mailbridge keeps trying, each time with a new token, at growing intervals: a permission can take up to 30 minutes to reach Exchange.',
      de: 'Entra Admin Center › App-Registrierungen › Ihre App › API-Berechtigungen › Berechtigung hinzufügen › Von meiner Organisation verwendete APIs › Office 365 Exchange Online › Anwendungsberechtigungen › IMAP.AccessAsApp, dann „Administratorzustimmung erteilen“. IMAP für das Postfach prüfen: Set-CASMailbox -Identity {mailbox} -ImapEnabled $true. mailbridge versucht es in wachsenden Abständen weiter, jedes Mal mit einem neuen Token: Eine Berechtigung kann bis zu 30 Minuten brauchen, bis sie bei Exchange ankommt.',
    },
  },
  MB_CONNECTOR_THROTTLED: {
    http: 429,
    title: { en: 'Exchange Online throttles the mailbox', de: 'Exchange Online drosselt das Postfach' },
    cause: {
      en: 'Exchange Online answered "Request is throttled" for {mailbox} and suggested waiting {seconds} seconds; mailbridge waits that long before it connects again.',
      de: 'Exchange Online hat für {mailbox} mit „Request is throttled“ geantwortet und {seconds} Sekunden Wartezeit vorgeschlagen; so lange wartet mailbridge, bevor es sich erneut verbindet.',
    },
    fix: {
      en: 'Nothing is lost. If it happens often, fewer programs should open {mailbox} at the same time (Exchange allows about 20 IMAP sessions per mailbox), or lower connectors.{connector}.concurrency.',
      de: 'Es geht nichts verloren. Tritt es oft auf, sollten weniger Programme {mailbox} gleichzeitig öffnen (Exchange erlaubt etwa 20 IMAP-Sitzungen je Postfach), oder senken Sie connectors.{connector}.concurrency.',
    },
  },
  MB_CONNECTOR_SOURCE_UNREACHABLE: {
    http: 502,
    title: { en: 'Mail server not reachable', de: 'Mailserver nicht erreichbar' },
    cause: {
      en: 'mailbridge could not talk to {host}:{port} for {mailbox}: {detail}',
      de: 'mailbridge konnte für {mailbox} nicht mit {host}:{port} sprechen: {detail}',
    },
    fix: {
      en: 'Check that this server may open outbound connections to {host} port {port} (firewall, proxy) and that the name resolves. mailbridge reconnects by itself with growing pauses.',
      de: 'Prüfen Sie, ob dieser Server ausgehende Verbindungen zu {host} Port {port} öffnen darf (Firewall, Proxy) und der Name aufgelöst wird. mailbridge verbindet sich selbst mit wachsenden Pausen neu.',
    },
  },
  MB_CONNECTOR_SOURCE_TLS: {
    http: 502,
    title: { en: 'Mail server certificate not trusted', de: 'Zertifikat des Mailservers nicht vertrauenswürdig' },
    cause: {
      en: 'The TLS connection to {host}:{port} failed: {detail}',
      de: 'Die TLS-Verbindung zu {host}:{port} ist fehlgeschlagen: {detail}',
    },
    fix: {
      en: 'If a proxy or a private CA inspects TLS, put its CA certificate (PEM) into connectors.{connector}.source.caFile.',
      de: 'Wenn ein Proxy oder eine eigene CA TLS aufbricht, tragen Sie deren CA-Zertifikat (PEM) in connectors.{connector}.source.caFile ein.',
    },
  },
  MB_CONNECTOR_FOLDER_MISSING: {
    http: 404,
    title: { en: 'Folder not found', de: 'Ordner nicht gefunden' },
    cause: {
      en: 'The mailbox {mailbox} has no folder "{folder}".',
      de: 'Das Postfach {mailbox} hat keinen Ordner „{folder}“.',
    },
    fix: {
      en: 'Correct the folder in connectors.{connector}: Exchange names folders as Outlook shows them in English (INBOX, "Inbox/Scans" for a subfolder, separator "/").',
      de: 'Korrigieren Sie den Ordner in connectors.{connector}: Exchange benennt Ordner wie Outlook auf Englisch (INBOX, „Inbox/Scans“ für einen Unterordner, Trennzeichen „/“).',
    },
  },
  MB_CONNECTOR_SESSION_LOST: {
    http: 502,
    title: { en: 'Mailbox connection lost', de: 'Postfachverbindung verloren' },
    cause: {
      en: 'The connection to {mailbox} ended: {detail}',
      de: 'Die Verbindung zu {mailbox} wurde beendet: {detail}',
    },
    fix: {
      en: 'Nothing to do when it happens now and then (Exchange closes long sessions); mailbridge reconnects and continues where it stopped. If it repeats, check the network path to the mail server.',
      de: 'Nichts zu tun, wenn es gelegentlich vorkommt (Exchange beendet lange Sitzungen); mailbridge verbindet sich neu und macht dort weiter, wo es aufgehört hat. Wiederholt es sich, prüfen Sie den Netzwerkweg zum Mailserver.',
    },
  },
  MB_CONNECTOR_AFTER_ACTION_FAILED: {
    http: 502,
    title: { en: 'Delivered, but not yet marked or moved', de: 'Zugestellt, aber noch nicht markiert oder verschoben' },
    cause: {
      en: '{count} message(s) of {mailbox}/{folder} were delivered, but "{action}" failed: {detail}. They are not delivered again; mailbridge repeats the action on the next run.',
      de: '{count} Nachricht(en) aus {mailbox}/{folder} wurden zugestellt, aber „{action}“ ist fehlgeschlagen: {detail}. Sie werden nicht erneut zugestellt; mailbridge wiederholt die Aktion beim nächsten Lauf.',
    },
    fix: {
      en: 'Check that the app still has FullAccess on {mailbox} (Get-MailboxPermission -Identity {mailbox}) and, for a move, that the target folder exists or may be created.',
      de: 'Prüfen Sie, ob die App noch Vollzugriff auf {mailbox} hat (Get-MailboxPermission -Identity {mailbox}) und, bei einem Verschieben, ob der Zielordner existiert oder angelegt werden darf.',
    },
  },
  MB_CONNECTOR_UIDVALIDITY_CHANGED: {
    http: 409,
    title: { en: 'Folder was rebuilt on the server', de: 'Ordner wurde auf dem Server neu aufgebaut' },
    cause: {
      en: 'The UIDVALIDITY of {mailbox}/{folder} changed from {old} to {new}, so message numbers start over. mailbridge resynchronises by Message-ID: messages it already delivered are not delivered again.',
      de: 'Die UIDVALIDITY von {mailbox}/{folder} hat sich von {old} auf {new} geändert, die Nachrichtennummern beginnen also neu. mailbridge gleicht über die Message-ID ab: Bereits zugestellte Nachrichten werden nicht erneut zugestellt.',
    },
    fix: {
      en: 'Nothing to do. Messages without a Message-ID are compared by content.',
      de: 'Nichts zu tun. Nachrichten ohne Message-ID werden über ihren Inhalt verglichen.',
    },
  },

  // ── Messages ─────────────────────────────────────────────────────────────────────────────────
  MB_CONNECTOR_MESSAGE_TOO_LARGE: {
    http: 413,
    title: { en: 'Message too large', de: 'Nachricht zu groß' },
    cause: {
      en: 'Message {item} in {mailbox}/{folder} has {size} bytes, more than connectors.{connector}.maxMessageBytes ({limit}). It stays in the mailbox and is not delivered.',
      de: 'Nachricht {item} in {mailbox}/{folder} hat {size} Byte, mehr als connectors.{connector}.maxMessageBytes ({limit}). Sie bleibt im Postfach und wird nicht zugestellt.',
    },
    fix: {
      en: 'Raise connectors.{connector}.maxMessageBytes (Exchange Online allows up to 157286400), then run `mailbridge fetch {connector} --retry-rejected`.',
      de: 'Erhöhen Sie connectors.{connector}.maxMessageBytes (Exchange Online erlaubt bis 157286400) und führen Sie dann `mailbridge fetch {connector} --retry-rejected` aus.',
    },
  },
  MB_CONNECTOR_MIME_MALFORMED: {
    http: 422,
    title: { en: 'Message is not well-formed MIME', de: 'Nachricht ist kein wohlgeformtes MIME' },
    cause: {
      en: 'Message {item} in {mailbox}/{folder} is not well-formed MIME ({detail}). It was handed on unchanged, byte for byte.',
      de: 'Nachricht {item} in {mailbox}/{folder} ist kein wohlgeformtes MIME ({detail}). Sie wurde unverändert, Byte für Byte, weitergegeben.',
    },
    fix: {
      en: 'Nothing to do in mailbridge; if the receiving system cannot read it, ask the sender to fix the program that produced it.',
      de: 'In mailbridge nichts zu tun; kann das empfangende System sie nicht lesen, bitten Sie den Absender, das erzeugende Programm zu korrigieren.',
    },
  },
  MB_CONNECTOR_REDELIVERED: {
    http: 409,
    title: { en: 'Message delivered again after an interruption', de: 'Nachricht nach Unterbrechung erneut zugestellt' },
    cause: {
      en: 'mailbridge stopped while message {item} of {mailbox}/{folder} was being handed to {destination}, so it cannot know whether the destination got it; it delivered it again with the same delivery ID {deliveryId}, which the destination sees as {dedupeBy}.',
      de: 'mailbridge wurde beendet, während Nachricht {item} aus {mailbox}/{folder} an {destination} übergeben wurde; ob sie dort ankam, ist daher unbekannt. Sie wurde mit derselben Zustell-ID {deliveryId} erneut zugestellt, die das Ziel als {dedupeBy} sieht.',
    },
    fix: {
      en: 'Nothing to do for a maildir and for receivers that deduplicate by {dedupeBy}; others may hold this one message twice. Dovecot drops it with share/sieve/mailbridge-dedupe.sieve and deliveryIdHeader: true (docs: "The connector", /docs/en/connector).',
      de: 'Bei einem Maildir und bei Empfängern, die über {dedupeBy} deduplizieren, nichts zu tun; andere halten diese eine Nachricht eventuell doppelt. Dovecot verwirft sie mit share/sieve/mailbridge-dedupe.sieve und deliveryIdHeader: true (Dokumentation: „Der Connector“, /docs/de/connector).',
    },
  },

  // ── Destinations ─────────────────────────────────────────────────────────────────────────────
  MB_CONNECTOR_DEST_UNREACHABLE: {
    http: 502,
    title: { en: 'Destination not reachable', de: 'Ziel nicht erreichbar' },
    cause: {
      en: '{destination} could not be reached: {detail}. The message stays in the mailbox and is delivered as soon as the destination answers again.',
      de: '{destination} ist nicht erreichbar: {detail}. Die Nachricht bleibt im Postfach und wird zugestellt, sobald das Ziel wieder antwortet.',
    },
    fix: {
      en: 'Start the receiving service or correct connectors.{connector}.destination (host, port, URL). mailbridge retries with growing pauses.',
      de: 'Starten Sie den empfangenden Dienst oder korrigieren Sie connectors.{connector}.destination (Host, Port, URL). mailbridge versucht es mit wachsenden Pausen erneut.',
    },
  },
  MB_CONNECTOR_DEST_TEMPFAIL: {
    http: 503,
    title: { en: 'Destination deferred the message', de: 'Ziel hat die Nachricht zurückgestellt' },
    cause: {
      en: '{destination} answered with a temporary failure: {detail}. The message stays in the mailbox and is retried.',
      de: '{destination} hat mit einem vorübergehenden Fehler geantwortet: {detail}. Die Nachricht bleibt im Postfach und wird erneut versucht.',
    },
    fix: {
      en: 'Usually nothing to do. If it persists, check the receiving system\'s log (disk full, quota, queue limits).',
      de: 'Meist nichts zu tun. Hält es an, prüfen Sie das Protokoll des empfangenden Systems (Platte voll, Kontingent, Warteschlangen-Grenzen).',
    },
  },
  MB_CONNECTOR_DEST_REJECTED: {
    http: 422,
    title: { en: 'Destination refused the message', de: 'Ziel hat die Nachricht abgewiesen' },
    cause: {
      en: '{destination} refused message {item} of {mailbox}/{folder} for good: {detail}. It stays in the mailbox, unchanged, and is not retried by itself.',
      de: '{destination} hat Nachricht {item} aus {mailbox}/{folder} endgültig abgewiesen: {detail}. Sie bleibt unverändert im Postfach und wird nicht von selbst erneut versucht.',
    },
    fix: {
      en: 'Fix the cause on the receiving side (recipient mapping, size limit, script), then run `mailbridge fetch {connector} --retry-rejected`.',
      de: 'Beheben Sie die Ursache beim Empfänger (Empfängerzuordnung, Größengrenze, Skript) und führen Sie dann `mailbridge fetch {connector} --retry-rejected` aus.',
    },
  },
  MB_CONNECTOR_MAILDIR_FAILED: {
    http: 500,
    title: { en: 'Maildir not writable', de: 'Maildir nicht beschreibbar' },
    cause: {
      en: 'Writing into the maildir {path} failed: {detail}. The message stays in the mailbox and is retried.',
      de: 'Das Schreiben in das Maildir {path} ist fehlgeschlagen: {detail}. Die Nachricht bleibt im Postfach und wird erneut versucht.',
    },
    fix: {
      en: 'Check that {path} exists (with tmp/, new/ and cur/, or that mailbridge may create them), that the user running mailbridge may write there, and that the disk is not full.',
      de: 'Prüfen Sie, ob {path} existiert (mit tmp/, new/ und cur/, oder mailbridge sie anlegen darf), ob der Benutzer, unter dem mailbridge läuft, dort schreiben darf und ob die Platte voll ist.',
    },
  },
  MB_CONNECTOR_COMMAND_FAILED: {
    http: 422,
    title: { en: 'Delivery command failed', de: 'Zustellbefehl fehlgeschlagen' },
    cause: {
      en: 'The command {command} ended with {status} for message {item} of {mailbox}/{folder}{stderr}',
      de: 'Der Befehl {command} endete mit {status} für Nachricht {item} aus {mailbox}/{folder}{stderr}',
    },
    fix: {
      en: 'Exit code 0 acknowledges a message, 75 (EX_TEMPFAIL) asks mailbridge to retry later, any other code refuses it for good. Run the command by hand with a message on stdin to see its error.',
      de: 'Exit-Code 0 bestätigt eine Nachricht, 75 (EX_TEMPFAIL) bittet mailbridge um einen späteren Versuch, jeder andere Code weist sie endgültig ab. Führen Sie den Befehl mit einer Nachricht auf stdin von Hand aus, um seinen Fehler zu sehen.',
    },
  },

  // ── Source: Microsoft Graph ──────────────────────────────────────────────────────────────────
  MB_CONNECTOR_GRAPH_FORBIDDEN: {
    http: 403,
    title: { en: 'Graph refuses access to the mailbox', de: 'Graph verweigert den Zugriff auf das Postfach' },
    cause: {
      en: 'Microsoft Graph answered {status} {code} for {mailbox}: {detail}',
      de: 'Microsoft Graph hat für {mailbox} mit {status} {code} geantwortet: {detail}',
    },
    fix: {
      en: 'Entra admin center › App registrations › your app › API permissions › Add a permission › Microsoft Graph › Application permissions › Mail.ReadWrite (Mail.Read if the after-delivery action is "none"), then "Grant admin consent". If an Application Access Policy or RBAC for Applications restricts the app, include {mailbox} in its scope.',
      de: 'Entra Admin Center › App-Registrierungen › Ihre App › API-Berechtigungen › Berechtigung hinzufügen › Microsoft Graph › Anwendungsberechtigungen › Mail.ReadWrite (Mail.Read, wenn die Aktion nach Zustellung „none“ ist), dann „Administratorzustimmung erteilen“. Schränkt eine Application Access Policy oder RBAC für Anwendungen die App ein, nehmen Sie {mailbox} in deren Bereich auf.',
    },
  },
  MB_CONNECTOR_GRAPH_ACTION_FORBIDDEN: {
    http: 403,
    title: { en: 'Delivered, but Graph does not let mailbridge mark or move it', de: 'Zugestellt, aber Graph erlaubt kein Markieren oder Verschieben' },
    cause: {
      en: '{count} message(s) of {mailbox}/{folder} were delivered, but Microsoft Graph refused "{action}" with {status} {code}: marking as read, moving and deleting need the application permission Mail.ReadWrite, reading alone only Mail.Read. They are not delivered again; mailbridge repeats the action on the next run.',
      de: '{count} Nachricht(en) aus {mailbox}/{folder} wurden zugestellt, aber Microsoft Graph hat „{action}“ mit {status} {code} abgelehnt: Als gelesen markieren, Verschieben und Löschen brauchen die Anwendungsberechtigung Mail.ReadWrite, nur Lesen genügt Mail.Read. Sie werden nicht erneut zugestellt; mailbridge wiederholt die Aktion beim nächsten Lauf.',
    },
    fix: {
      en: 'Entra admin center › App registrations › your app › API permissions › Add a permission › Microsoft Graph › Application permissions › Mail.ReadWrite, then "Grant admin consent". Or set connectors.{connector}.after.action to none to keep Mail.Read only. If an Application Access Policy or RBAC for Applications restricts the app, include {mailbox} in its scope.',
      de: 'Entra Admin Center › App-Registrierungen › Ihre App › API-Berechtigungen › Berechtigung hinzufügen › Microsoft Graph › Anwendungsberechtigungen › Mail.ReadWrite, dann „Administratorzustimmung erteilen“. Oder setzen Sie connectors.{connector}.after.action auf none, dann genügt Mail.Read. Schränkt eine Application Access Policy oder RBAC für Anwendungen die App ein, nehmen Sie {mailbox} in deren Bereich auf.',
    },
  },
  MB_CONNECTOR_MAILBOX_NOT_FOUND: {
    http: 404,
    title: { en: 'No such mailbox', de: 'Postfach nicht gefunden' },
    cause: {
      en: 'Microsoft Graph answered {status} {code} for {mailbox}: the tenant has no user with this address (often a typo), or the user has no Exchange Online mailbox (no licence, soft-deleted, or still on-premises).',
      de: 'Microsoft Graph hat für {mailbox} mit {status} {code} geantwortet: Der Mandant hat keinen Benutzer mit dieser Adresse (oft ein Tippfehler), oder der Benutzer hat kein Exchange-Online-Postfach (keine Lizenz, vorläufig gelöscht oder noch lokal).',
    },
    fix: {
      en: 'Check the address in connectors.{connector}.mailboxes against Microsoft 365 admin center › Users › Active users (shared mailboxes: Teams & groups › Shared mailboxes), or run Get-EXOMailbox -Identity {mailbox}. mailbridge tries again every few minutes.',
      de: 'Prüfen Sie die Adresse in connectors.{connector}.mailboxes im Microsoft 365 Admin Center › Benutzer › Aktive Benutzer (freigegebene Postfächer: Teams und Gruppen › Freigegebene Postfächer) oder mit Get-EXOMailbox -Identity {mailbox}. mailbridge versucht es alle paar Minuten erneut.',
    },
  },
  MB_CONNECTOR_GRAPH_RESYNC: {
    http: 409,
    title: { en: 'Graph asked for a full resynchronisation', de: 'Graph verlangt eine vollständige Neusynchronisation' },
    cause: {
      en: 'Microsoft Graph no longer knows the delta state of {mailbox}/{folder} ({status} {code}). mailbridge starts a new delta round and skips messages it already delivered (by message ID).',
      de: 'Microsoft Graph kennt den Delta-Stand von {mailbox}/{folder} nicht mehr ({status} {code}). mailbridge beginnt eine neue Delta-Runde und überspringt bereits zugestellte Nachrichten (über die Nachrichten-ID).',
    },
    fix: { en: 'Nothing to do.', de: 'Nichts zu tun.' },
  },
  MB_CONNECTOR_GRAPH_THROTTLED: {
    http: 429,
    title: { en: 'Microsoft Graph throttles the mailbox', de: 'Microsoft Graph drosselt das Postfach' },
    cause: {
      en: 'Microsoft Graph answered {status} for {mailbox} and asked to wait {seconds} seconds (Retry-After); mailbridge waits that long.',
      de: 'Microsoft Graph hat für {mailbox} mit {status} geantwortet und um {seconds} Sekunden Wartezeit gebeten (Retry-After); so lange wartet mailbridge.',
    },
    fix: {
      en: 'Nothing is lost. Graph allows 4 concurrent requests per app and mailbox; lower connectors.{connector}.concurrency.window if it happens often.',
      de: 'Es geht nichts verloren. Graph erlaubt 4 gleichzeitige Anfragen je App und Postfach; senken Sie connectors.{connector}.concurrency.window, wenn es oft vorkommt.',
    },
  },
  MB_CONNECTOR_GRAPH_FAILED: {
    http: 502,
    title: { en: 'Microsoft Graph request failed', de: 'Anfrage an Microsoft Graph fehlgeschlagen' },
    cause: {
      en: 'Microsoft Graph answered {status} {code} for {mailbox}: {detail}',
      de: 'Microsoft Graph hat für {mailbox} mit {status} {code} geantwortet: {detail}',
    },
    fix: {
      en: 'mailbridge retries with growing pauses. If it persists, check the folder name and the Graph service health in the Microsoft 365 admin center.',
      de: 'mailbridge versucht es mit wachsenden Pausen erneut. Hält es an, prüfen Sie den Ordnernamen und den Dienststatus von Graph im Microsoft 365 Admin Center.',
    },
  },
  // Change notifications of the Graph source (connectors.<name>.source.notifications): until they
  // work again the connector finds new mail by reading the folder at each retry and at pollSeconds.
  MB_CONNECTOR_GRAPH_VALIDATION_FAILED: {
    http: 502,
    title: { en: 'Graph could not validate the connector\'s notification URL', de: 'Graph konnte die Benachrichtigungs-URL des Connectors nicht prüfen' },
    cause: {
      en: 'Subscribing to new mail in {mailbox} ({folder}) for connector {connector} failed: {detail}. Microsoft Graph posts a validation token to {notificationUrl} and needs it back within 10 seconds; it did not get it. Until it works the connector reads the folder at each retry (next in {seconds} s) and every pollSeconds, so mail arrives later, not lost.',
      de: 'Das Abonnieren neuer Mail in {mailbox} ({folder}) für Connector {connector} schlug fehl: {detail}. Microsoft Graph sendet ein Prüf-Token an {notificationUrl} und erwartet es innerhalb von 10 Sekunden zurück; das kam nicht an. Bis es klappt, liest der Connector den Ordner bei jedem neuen Versuch (nächster in {seconds} s) und alle pollSeconds; Mail kommt also später an, geht aber nicht verloren.',
    },
    fix: {
      en: 'Make {notificationUrl} reachable from the internet over HTTPS with a publicly trusted certificate, forwarded to connectors.{connector}.source.notifications.listen (DNS, firewall, reverse proxy). Test from outside: curl -i -X POST "{notificationUrl}?validationToken=test" must answer 200 with the body "test". Or remove source.notifications to poll only.',
      de: 'Machen Sie {notificationUrl} aus dem Internet per HTTPS mit einem öffentlich vertrauenswürdigen Zertifikat erreichbar, weitergeleitet an connectors.{connector}.source.notifications.listen (DNS, Firewall, Reverse Proxy). Test von außen: curl -i -X POST "{notificationUrl}?validationToken=test" muss 200 mit dem Inhalt „test“ liefern. Oder entfernen Sie source.notifications, um nur abzufragen.',
    },
  },
  MB_CONNECTOR_GRAPH_SUBSCRIPTION_LIMIT: {
    http: 502,
    title: { en: 'Too many Graph subscriptions on the mailbox', de: 'Zu viele Graph-Abonnements für das Postfach' },
    cause: {
      en: 'Microsoft Graph refused a new subscription for {mailbox} (connector {connector}): {detail}. Exchange Online allows at most 1,000 active subscriptions per mailbox across all apps. The connector keeps polling and retries in {seconds} s.',
      de: 'Microsoft Graph lehnte ein neues Abonnement für {mailbox} ab (Connector {connector}): {detail}. Exchange Online erlaubt höchstens 1.000 aktive Abonnements je Postfach über alle Apps. Der Connector fragt weiter regelmäßig ab und versucht es in {seconds} s erneut.',
    },
    fix: {
      en: 'Find the apps that subscribe to {mailbox} (each app lists its own with GET https://graph.microsoft.com/v1.0/subscriptions) and delete stale subscriptions with DELETE /v1.0/subscriptions/<id>, or remove apps that no longer need the mailbox in Entra admin center > Enterprise applications.',
      de: 'Ermitteln Sie die Apps, die {mailbox} abonnieren (jede App listet ihre eigenen mit GET https://graph.microsoft.com/v1.0/subscriptions), und löschen Sie veraltete Abonnements mit DELETE /v1.0/subscriptions/<id>, oder entfernen Sie Apps, die das Postfach nicht mehr brauchen, unter Entra Admin Center > Unternehmensanwendungen.',
    },
  },
  MB_CONNECTOR_GRAPH_SUBSCRIBE_FAILED: {
    http: 502,
    title: { en: 'Graph subscription of the connector failed', de: 'Graph-Abonnement des Connectors fehlgeschlagen' },
    cause: {
      en: 'Microsoft Graph answered {status} {code} to {operation} for {mailbox} ({folder}, connector {connector}): {detail}. The connector keeps polling and retries in {seconds} s.',
      de: 'Microsoft Graph antwortete {status} {code} auf {operation} für {mailbox} ({folder}, Connector {connector}): {detail}. Der Connector fragt weiter regelmäßig ab und versucht es in {seconds} s erneut.',
    },
    fix: {
      en: 'If it persists, check the mailbox and folder exist (Get-EXOMailbox -Identity {mailbox}) and that mailbridge reaches Graph (proxy, firewall); quote the request-id from the log to Microsoft support.',
      de: 'Hält es an, prüfen Sie, ob Postfach und Ordner existieren (Get-EXOMailbox -Identity {mailbox}) und ob mailbridge Graph erreicht (Proxy, Firewall); nennen Sie dem Microsoft-Support die request-id aus dem Protokoll.',
    },
  },
  MB_CONNECTOR_GRAPH_CLIENTSTATE_MISMATCH: {
    http: 400,
    title: { en: 'Graph notification with a wrong clientState ignored', de: 'Graph-Benachrichtigung mit falschem clientState ignoriert' },
    cause: {
      en: 'A change notification for subscription {subscriptionId} ({mailbox}, connector {connector}) carried a clientState that does not match the one mailbridge set; it may not come from Microsoft Graph and was ignored.',
      de: 'Eine Änderungsbenachrichtigung für das Abonnement {subscriptionId} ({mailbox}, Connector {connector}) trug einen clientState, der nicht zu dem von mailbridge gesetzten passt; sie stammt womöglich nicht von Microsoft Graph und wurde ignoriert.',
    },
    fix: {
      en: 'If it repeats, someone posts to the connector\'s notification URL: check the reverse proxy\'s access log for the sender, and restrict the URL to Microsoft\'s addresses (Microsoft 365 URLs and IP address ranges, "Microsoft Graph change notifications").',
      de: 'Wiederholt es sich, sendet jemand an die Benachrichtigungs-URL des Connectors: Prüfen Sie im Zugriffsprotokoll des Reverse Proxys den Absender und beschränken Sie die URL auf Microsofts Adressen (Microsoft 365-URLs und IP-Adressbereiche, „Microsoft Graph change notifications“).',
    },
  },
  MB_CONNECTOR_GRAPH_SUBSCRIPTION_REMOVED: {
    http: 502,
    title: { en: 'Graph removed the connector\'s subscription', de: 'Graph hat das Abonnement des Connectors entfernt' },
    cause: {
      en: 'Microsoft Graph removed the subscription {subscriptionId} on {mailbox} ({folder}, connector {connector}) and said so with a subscriptionRemoved lifecycle event. mailbridge creates a new one and reads the folder for mail that came meanwhile; nothing is lost.',
      de: 'Microsoft Graph hat das Abonnement {subscriptionId} für {mailbox} ({folder}, Connector {connector}) entfernt und dies mit dem Lebenszyklusereignis subscriptionRemoved gemeldet. mailbridge legt ein neues an und liest den Ordner nach Mail, die inzwischen kam; es geht nichts verloren.',
    },
    fix: {
      en: 'Nothing to do when it happens now and then. If it repeats for this mailbox, check the app\'s Mail.Read permission and any application access policy: Get-ApplicationAccessPolicy | Format-List',
      de: 'Nichts zu tun, wenn es gelegentlich vorkommt. Wiederholt es sich für dieses Postfach, prüfen Sie die Berechtigung Mail.Read der App und eine etwaige Anwendungszugriffsrichtlinie: Get-ApplicationAccessPolicy | Format-List',
    },
  },
  MB_CONNECTOR_GRAPH_MISSED: {
    http: 502,
    title: { en: 'Graph dropped notifications for the connector', de: 'Graph hat Benachrichtigungen für den Connector verworfen' },
    cause: {
      en: 'Microsoft Graph could not deliver some change notifications of {mailbox} ({folder}, subscription {subscriptionId}, connector {connector}) and sent a missed lifecycle event instead. mailbridge reads the folder now, so that mail is delivered, only later.',
      de: 'Microsoft Graph konnte einige Änderungsbenachrichtigungen von {mailbox} ({folder}, Abonnement {subscriptionId}, Connector {connector}) nicht zustellen und hat stattdessen das Lebenszyklusereignis missed gesendet. mailbridge liest den Ordner jetzt; diese Mail wird also zugestellt, nur später.',
    },
    fix: {
      en: 'Graph drops notifications to an endpoint that answers slowly or not at all: check that connectors.{connector}.source.notifications.publicUrl is reachable from the internet and answers within 3 seconds (reverse proxy, firewall, load on the mailbridge host).',
      de: 'Graph verwirft Benachrichtigungen an einen Endpunkt, der langsam oder gar nicht antwortet: Prüfen Sie, ob connectors.{connector}.source.notifications.publicUrl aus dem Internet erreichbar ist und innerhalb von 3 Sekunden antwortet (Reverse Proxy, Firewall, Last auf dem mailbridge-Host).',
    },
  },
} satisfies CatalogueSection;
