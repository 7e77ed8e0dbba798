import type { CatalogueSection } from '../types.ts';

/**
 * The SMTP relay: refusals at the listener (what the application was told and why), queue and spool
 * failures, and delivery outcomes that end up in a bounce. Codes a transport reports for Microsoft's
 * own answers (5.7.139, SendAsDenied, …) join this section with the transports.
 */
export const relay = {
  MB_RELAY_AUTH_REQUIRED: {
    http: 401,
    title: { en: 'Relay refused: client not authorized', de: 'Weiterleitung abgelehnt: Client nicht berechtigt' },
    cause: {
      en: 'The client {ip} tried to send without logging in (SMTP AUTH), and its address is in no allowed network of the relay.',
      de: 'Der Client {ip} wollte ohne Anmeldung (SMTP AUTH) senden, und seine Adresse liegt in keinem erlaubten Netz des Relays.',
    },
    fix: {
      en: 'Configure the application to log in with a relay user (`mailbridge relay-user add <name>`), or add its address to relay.networks.<name>.cidrs in mailbridge.yaml.',
      de: 'Richten Sie in der Anwendung die Anmeldung mit einem Relay-Benutzer ein (`mailbridge relay-user add <name>`) oder tragen Sie ihre Adresse in relay.networks.<name>.cidrs in mailbridge.yaml ein.',
    },
  },
  MB_RELAY_AUTH_FAILED: {
    http: 401,
    title: { en: 'Relay login failed', de: 'Anmeldung am Relay fehlgeschlagen' },
    cause: {
      en: 'The client {ip} could not log in as "{user}": the user is unknown or disabled, the password is wrong, or the user may not log in from this address.',
      de: 'Der Client {ip} konnte sich nicht als „{user}“ anmelden: Der Benutzer ist unbekannt oder gesperrt, das Kennwort falsch, oder der Benutzer darf sich von dieser Adresse nicht anmelden.',
    },
    fix: {
      en: 'Check the user name and password set in the application; set a new password with `mailbridge relay-user passwd {user}` and put the printed hash into relay.users.{user}.passwordHash.',
      de: 'Prüfen Sie Benutzername und Kennwort in der Anwendung; ein neues Kennwort setzen Sie mit `mailbridge relay-user passwd {user}`, den ausgegebenen Hash tragen Sie in relay.users.{user}.passwordHash ein.',
    },
  },
  MB_RELAY_AUTH_LOCKED: {
    http: 429,
    title: { en: 'Relay logins paused for a client', de: 'Anmeldungen eines Clients am Relay pausiert' },
    cause: {
      en: 'The client {ip} failed to log in {failures} times; mailbridge refuses its logins for {seconds} s to stop password guessing.',
      de: 'Der Client {ip} hat sich {failures}-mal falsch angemeldet; mailbridge lehnt seine Anmeldungen {seconds} s lang ab, um das Erraten von Kennwörtern zu verhindern.',
    },
    fix: {
      en: 'Correct the password in the application at {ip}; the pause ends by itself (relay.authBackoff.lockSeconds), or at once when mailbridge restarts.',
      de: 'Korrigieren Sie das Kennwort in der Anwendung auf {ip}; die Pause endet von selbst (relay.authBackoff.lockSeconds) oder sofort mit einem Neustart von mailbridge.',
    },
  },
  MB_RELAY_TLS_REQUIRED: {
    http: 403,
    title: { en: 'Login without encryption refused', de: 'Anmeldung ohne Verschlüsselung abgelehnt' },
    cause: {
      en: 'The client {ip} tried to log in before switching to TLS; its password would have crossed the network readable.',
      de: 'Der Client {ip} wollte sich anmelden, bevor er auf TLS umgeschaltet hat; sein Kennwort wäre lesbar über das Netz gegangen.',
    },
    fix: {
      en: 'Turn on STARTTLS (often "TLS" or "SSL/TLS: STARTTLS") in the application, or use the implicit-TLS port. Only for devices that cannot do TLS: set allowPlainAuth: true on that listener in relay.listeners.',
      de: 'Schalten Sie in der Anwendung STARTTLS ein (oft „TLS“ oder „SSL/TLS: STARTTLS“) oder verwenden Sie den Port mit implizitem TLS. Nur für Geräte ohne TLS: allowPlainAuth: true für diesen Listener in relay.listeners setzen.',
    },
  },
  MB_RELAY_TOO_MANY_RECIPIENTS: {
    http: 400,
    title: { en: 'Too many recipients', de: 'Zu viele Empfänger' },
    cause: {
      en: 'The client {ip} gave more recipients than relay.maxRecipients allows; the extra ones were refused with 452 (the client may send them in another message).',
      de: 'Der Client {ip} hat mehr Empfänger angegeben, als relay.maxRecipients erlaubt; die übrigen wurden mit 452 abgelehnt (der Client kann sie in einer weiteren Nachricht senden).',
    },
    fix: {
      en: 'Split large mailings in the application; Exchange Online accepts at most 500 recipients per message.',
      de: 'Teilen Sie große Aussendungen in der Anwendung auf; Exchange Online nimmt höchstens 500 Empfänger pro Nachricht an.',
    },
  },
  MB_RELAY_PROTOCOL_ABUSE: {
    http: 400,
    title: { en: 'Client disconnected for misbehaving', de: 'Client wegen Fehlverhaltens getrennt' },
    cause: {
      en: 'The client {ip} was disconnected: {reply}',
      de: 'Der Client {ip} wurde getrennt: {reply}',
    },
    fix: {
      en: 'If the client is yours, check that it speaks SMTP to this port (not HTTP, not TLS to a STARTTLS port) and waits for the greeting. Otherwise consider blocking it in the firewall.',
      de: 'Gehört der Client zu Ihnen, prüfen Sie, ob er auf diesem Port SMTP spricht (kein HTTP, kein TLS auf einem STARTTLS-Port) und auf die Begrüßung wartet. Andernfalls sperren Sie ihn ggf. in der Firewall.',
    },
  },
  MB_RELAY_SENDER_DENIED: {
    http: 403,
    title: { en: 'Sender address not allowed', de: 'Absenderadresse nicht erlaubt' },
    cause: {
      en: 'The client {ip} ({principal}) may not send as "{sender}"; allowed: {allowed}.',
      de: 'Der Client {ip} ({principal}) darf nicht als „{sender}“ senden; erlaubt: {allowed}.',
    },
    fix: {
      en: 'Set the sender address in the application to an allowed one, or add it (or @its-domain) to allowedSenders of that relay user or network in mailbridge.yaml.',
      de: 'Stellen Sie in der Anwendung eine erlaubte Absenderadresse ein oder tragen Sie die Adresse (oder @ihre-domain) in allowedSenders dieses Relay-Benutzers bzw. Netzes in mailbridge.yaml ein.',
    },
  },
  MB_RELAY_RECIPIENT_INVALID: {
    http: 400,
    title: { en: 'Recipient address refused', de: 'Empfängeradresse abgelehnt' },
    cause: {
      en: 'The recipient "{recipient}" has no domain, so it cannot be delivered through Microsoft 365.',
      de: 'Der Empfänger „{recipient}“ hat keine Domain und kann daher nicht über Microsoft 365 zugestellt werden.',
    },
    fix: {
      en: 'Use full addresses (name@domain) as recipients in the application.',
      de: 'Verwenden Sie in der Anwendung vollständige Adressen (name@domain) als Empfänger.',
    },
  },
  MB_RELAY_MESSAGE_TOO_LARGE: {
    http: 413,
    title: { en: 'Message too large', de: 'Nachricht zu groß' },
    cause: {
      en: 'A message of {size} bytes from {ip} exceeds the relay limit of {limit} bytes; it was refused and not queued.',
      de: 'Eine Nachricht von {ip} mit {size} Bytes überschreitet die Grenze des Relays von {limit} Bytes; sie wurde abgelehnt und nicht eingereiht.',
    },
    fix: {
      en: 'Send smaller attachments, or raise relay.maxMessageSize (Exchange Online accepts at most 150 MB over SMTP, the mailbox MaxSendSize is often 35 MB: Set-Mailbox <mailbox> -MaxSendSize 150MB).',
      de: 'Senden Sie kleinere Anhänge oder erhöhen Sie relay.maxMessageSize (Exchange Online nimmt über SMTP höchstens 150 MB an, MaxSendSize des Postfachs ist oft 35 MB: Set-Mailbox <postfach> -MaxSendSize 150MB).',
    },
  },
  MB_RELAY_SMUGGLING: {
    http: 400,
    title: { en: 'Message refused: ambiguous line endings', de: 'Nachricht abgelehnt: mehrdeutige Zeilenenden' },
    cause: {
      en: 'The message from {ip} contains a line ending other than CR LF ({what} in line {line}). Such line endings are used to smuggle a second message past the end-of-data mark (SMTP smuggling), so mailbridge refuses the whole message.',
      de: 'Die Nachricht von {ip} enthält ein anderes Zeilenende als CR LF ({what} in Zeile {line}). Solche Zeilenenden dienen dazu, eine zweite Nachricht am Datenende vorbeizuschmuggeln (SMTP-Smuggling); mailbridge lehnt daher die ganze Nachricht ab.',
    },
    fix: {
      en: 'Make the application end every line with CR LF, as RFC 5321 requires. If the client is not yours, block it: this is what an attack looks like.',
      de: 'Lassen Sie die Anwendung jede Zeile mit CR LF beenden, wie RFC 5321 es verlangt. Gehört der Client nicht zu Ihnen, sperren Sie ihn: So sieht ein Angriff aus.',
    },
  },
  MB_RELAY_SPOOL_WRITE_FAILED: {
    http: 503,
    title: { en: 'Message could not be stored', de: 'Nachricht konnte nicht gespeichert werden' },
    cause: {
      en: 'mailbridge could not store a message durably in {path}: {detail}. The client was told to try again later (451), nothing was accepted.',
      de: 'mailbridge konnte eine Nachricht nicht dauerhaft in {path} speichern: {detail}. Der Client soll es später erneut versuchen (451); angenommen wurde nichts.',
    },
    fix: {
      en: 'Check free disk space and that the mailbridge user may write to {path} (relay.dataDir) and to the database (store.path).',
      de: 'Prüfen Sie den freien Plattenplatz und ob der mailbridge-Benutzer in {path} (relay.dataDir) und in die Datenbank (store.path) schreiben darf.',
    },
  },
  MB_RELAY_SPOOL_LOCKED: {
    http: 500,
    title: { en: 'Relay spool in use', de: 'Relay-Spool belegt' },
    cause: {
      en: 'Another running mailbridge (process {pid}) uses the spool directory {path}.',
      de: 'Ein anderer laufender mailbridge-Prozess ({pid}) verwendet das Spool-Verzeichnis {path}.',
    },
    fix: {
      en: 'Stop the other instance, or give this one its own relay.dataDir. Two relays on one spool would delete each other\'s messages in recovery.',
      de: 'Beenden Sie die andere Instanz oder geben Sie dieser ein eigenes relay.dataDir. Zwei Relays auf einem Spool würden beim Wiederanlauf gegenseitig Nachrichten löschen.',
    },
  },
  MB_RELAY_SPOOL_ORPHAN: {
    http: 500,
    title: { en: 'Unacknowledged spool file removed', de: 'Nicht bestätigte Spool-Datei entfernt' },
    cause: {
      en: 'The spool file {file} has no queue entry: mailbridge stopped after writing it but before it confirmed the message to the client (no 250 was sent).',
      de: 'Zur Spool-Datei {file} gibt es keinen Warteschlangeneintrag: mailbridge wurde nach dem Schreiben, aber vor der Bestätigung an den Client beendet (es wurde kein 250 gesendet).',
    },
    fix: {
      en: 'Nothing to do: the client never got a confirmation and sends the message again.',
      de: 'Nichts zu tun: Der Client hat keine Bestätigung erhalten und sendet die Nachricht erneut.',
    },
  },
  MB_RELAY_BODY_MISSING: {
    http: 500,
    title: { en: 'Queued message without content', de: 'Eingereihte Nachricht ohne Inhalt' },
    cause: {
      en: 'The queue entry {id} has no message file in {path}; the message is held (corrupt) and will not be sent.',
      de: 'Zum Warteschlangeneintrag {id} fehlt die Nachrichtendatei in {path}; die Nachricht wird zurückgehalten (beschädigt) und nicht gesendet.',
    },
    fix: {
      en: 'Restore the file from a backup and run `mailbridge queue release {id}`, or remove the entry with `mailbridge queue delete {id}`. Check that nothing else cleans {path}.',
      de: 'Stellen Sie die Datei aus einer Sicherung wieder her und führen Sie `mailbridge queue release {id}` aus, oder entfernen Sie den Eintrag mit `mailbridge queue delete {id}`. Prüfen Sie, dass nichts anderes {path} aufräumt.',
    },
  },
  MB_RELAY_TLS_UNREADABLE: {
    http: 500,
    title: { en: 'Relay TLS certificate unreadable', de: 'TLS-Zertifikat des Relays nicht lesbar' },
    cause: { en: 'mailbridge could not read {path}: {detail}', de: 'mailbridge konnte {path} nicht lesen: {detail}' },
    fix: {
      en: 'Point relay.tls.certPath and relay.tls.keyPath at readable PEM files, or remove relay.tls to use a certificate that mailbridge generates and keeps in relay.dataDir.',
      de: 'Lassen Sie relay.tls.certPath und relay.tls.keyPath auf lesbare PEM-Dateien zeigen oder entfernen Sie relay.tls, damit mailbridge ein Zertifikat erzeugt und in relay.dataDir aufbewahrt.',
    },
  },
  MB_RELAY_LISTEN_FAILED: {
    http: 500,
    title: { en: 'Relay cannot listen', de: 'Relay kann nicht lauschen' },
    cause: { en: 'mailbridge could not listen on {host}:{port}: {detail}', de: 'mailbridge konnte nicht auf {host}:{port} lauschen: {detail}' },
    fix: {
      en: 'Choose a free port in relay.listeners; ports below 1024 need `setcap cap_net_bind_service=+ep` on the node binary or a port redirect.',
      de: 'Wählen Sie in relay.listeners einen freien Port; Ports unter 1024 brauchen `setcap cap_net_bind_service=+ep` auf dem node-Programm oder eine Portweiterleitung.',
    },
  },
  MB_RELAY_PASSWORD_HASH_INVALID: {
    http: 500,
    title: { en: 'Relay user password hash invalid', de: 'Kennwort-Hash eines Relay-Benutzers ungültig' },
    cause: {
      en: 'relay.users.{user}.passwordHash is not a mailbridge scrypt hash ($scrypt$ln=…,r=…,p=…$salt$hash).',
      de: 'relay.users.{user}.passwordHash ist kein scrypt-Hash von mailbridge ($scrypt$ln=…,r=…,p=…$salz$hash).',
    },
    fix: {
      en: 'Create the hash with `mailbridge relay-user passwd {user}` and paste the printed value.',
      de: 'Erzeugen Sie den Hash mit `mailbridge relay-user passwd {user}` und fügen Sie den ausgegebenen Wert ein.',
    },
  },
  MB_RELAY_RETRY_SCHEDULE_INVALID: {
    http: 500,
    title: { en: 'Retry schedule invalid', de: 'Wiederholungsplan ungültig' },
    cause: {
      en: '"{schedule}" is not a retry schedule: {detail}.',
      de: '„{schedule}“ ist kein Wiederholungsplan: {detail}.',
    },
    fix: {
      en: 'Write relay.queue.retrySchedule as delays separated by commas, each a number with s, m, h or d and an optional *count, e.g. "1m, 5m*2, 1h*3"; "none" bounces at the first failure.',
      de: 'Schreiben Sie relay.queue.retrySchedule als durch Kommas getrennte Wartezeiten, jede eine Zahl mit s, m, h oder d und optional *Anzahl, z. B. "1m, 5m*2, 1h*3"; "none" erzeugt beim ersten Fehler einen Unzustellbarkeitsbericht.',
    },
  },
  MB_RELAY_UPSTREAM_TEMPORARY: {
    http: 503,
    title: { en: 'Microsoft 365 did not accept the message yet', de: 'Microsoft 365 hat die Nachricht noch nicht angenommen' },
    cause: {
      en: 'The upstream server answered with a temporary error: {detail}',
      de: 'Der Zielserver antwortete mit einem vorübergehenden Fehler: {detail}',
    },
    fix: {
      en: 'Nothing to do if it passes: mailbridge retries on the schedule in relay.queue.retrySchedule. `mailbridge queue show <id>` shows the next attempt.',
      de: 'Nichts zu tun, wenn es vorübergeht: mailbridge wiederholt nach dem Plan in relay.queue.retrySchedule. `mailbridge queue show <id>` zeigt den nächsten Versuch.',
    },
  },
  MB_RELAY_UPSTREAM_REJECTED: {
    http: 502,
    title: { en: 'Microsoft 365 refused the message', de: 'Microsoft 365 hat die Nachricht abgelehnt' },
    cause: {
      en: 'The upstream server refused the message permanently: {detail}',
      de: 'Der Zielserver hat die Nachricht dauerhaft abgelehnt: {detail}',
    },
    fix: {
      en: 'Read the server reply above; correct the sender, recipients or content in the application and send again.',
      de: 'Lesen Sie die Serverantwort oben; korrigieren Sie Absender, Empfänger oder Inhalt in der Anwendung und senden Sie erneut.',
    },
  },
  MB_RELAY_TRANSPORT_FAILED: {
    http: 502,
    title: { en: 'Delivery attempt failed', de: 'Zustellversuch fehlgeschlagen' },
    cause: {
      en: 'The transport "{transport}" failed unexpectedly: {detail}',
      de: 'Der Transport „{transport}“ ist unerwartet fehlgeschlagen: {detail}',
    },
    fix: {
      en: 'mailbridge retries on schedule. If it repeats, check the log around this time and report it with the log lines attached.',
      de: 'mailbridge wiederholt nach Plan. Tritt es wiederholt auf, prüfen Sie das Protokoll zu diesem Zeitpunkt und melden Sie es mit den Protokollzeilen.',
    },
  },
  MB_RELAY_TRANSPORT_TIMEOUT: {
    http: 504,
    title: { en: 'Delivery attempt timed out', de: 'Zustellversuch abgelaufen' },
    cause: {
      en: 'The transport "{transport}" did not finish within {seconds} s.',
      de: 'Der Transport „{transport}“ wurde nicht innerhalb von {seconds} s fertig.',
    },
    fix: {
      en: 'mailbridge retries on schedule. Check the network path to Microsoft 365 (proxy, firewall); raise relay.queue.sendTimeoutSeconds for very large messages.',
      de: 'mailbridge wiederholt nach Plan. Prüfen Sie den Netzweg zu Microsoft 365 (Proxy, Firewall); erhöhen Sie relay.queue.sendTimeoutSeconds für sehr große Nachrichten.',
    },
  },
  MB_RELAY_RETRIES_EXHAUSTED: {
    http: 504,
    title: { en: 'Message given up after retries', de: 'Nachricht nach Wiederholungen aufgegeben' },
    cause: {
      en: 'The message could not be delivered in {attempts} attempts; the last error was {lastCode}: {detail}',
      de: 'Die Nachricht konnte in {attempts} Versuchen nicht zugestellt werden; der letzte Fehler war {lastCode}: {detail}',
    },
    fix: {
      en: 'Fix the cause of {lastCode} (explained in the bounce report and by `mailbridge queue show <id>`) and let the application send the message again; lengthen relay.queue.retrySchedule if outages last longer.',
      de: 'Beheben Sie die Ursache von {lastCode} (erklärt im Unzustellbarkeitsbericht und von `mailbridge queue show <id>`) und lassen Sie die Anwendung die Nachricht erneut senden; verlängern Sie relay.queue.retrySchedule, wenn Störungen länger dauern.',
    },
  },
  MB_RELAY_DSN_UNDELIVERABLE: {
    http: 502,
    title: { en: 'Bounce report not delivered', de: 'Unzustellbarkeitsbericht nicht zugestellt' },
    cause: {
      en: 'The bounce report {id} could not be delivered either ({code}); mailbridge never bounces a bounce, so it is dropped here and only logged.',
      de: 'Auch der Unzustellbarkeitsbericht {id} ließ sich nicht zustellen ({code}); mailbridge erzeugt nie einen Bericht über einen Bericht, daher wird er hier nur protokolliert.',
    },
    fix: {
      en: 'Check relay.bounces.adminAddress and that the bounce mailbox may send (relay.bounces.from).',
      de: 'Prüfen Sie relay.bounces.adminAddress und ob das Postfach für Berichte senden darf (relay.bounces.from).',
    },
  },
  MB_RELAY_QUEUE_NOT_FOUND: {
    http: 404,
    title: { en: 'No such queued message', de: 'Keine solche Nachricht in der Warteschlange' },
    cause: { en: 'The queue has no message with the ID {id}.', de: 'Die Warteschlange enthält keine Nachricht mit der ID {id}.' },
    fix: {
      en: 'List the queue with `mailbridge queue list` and copy the ID from there.',
      de: 'Zeigen Sie die Warteschlange mit `mailbridge queue list` an und übernehmen Sie die ID von dort.',
    },
  },
  MB_RELAY_QUEUE_STATE: {
    http: 409,
    title: { en: 'Not possible in this queue state', de: 'In diesem Warteschlangenzustand nicht möglich' },
    cause: {
      en: 'The message {id} is {state}; "{action}" applies only to messages that are {allowed}.',
      de: 'Die Nachricht {id} ist im Zustand {state}; „{action}“ gilt nur für Nachrichten im Zustand {allowed}.',
    },
    fix: {
      en: 'Check the state with `mailbridge queue show {id}`; a message being delivered (active) can be changed once the attempt is over.',
      de: 'Prüfen Sie den Zustand mit `mailbridge queue show {id}`; eine Nachricht in Zustellung (active) lässt sich nach dem Versuch ändern.',
    },
  },
} satisfies CatalogueSection;
