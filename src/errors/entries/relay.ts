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
  MB_RELAY_NUL_BYTE: {
    http: 400,
    title: { en: 'Message refused: NUL byte', de: 'Nachricht abgelehnt: NUL-Byte' },
    cause: {
      en: 'The message from {ip} contains a NUL byte (line {line}). Mail text must not contain NUL (RFC 5322, RFC 2045); servers further on cut such a message short or refuse it, so mailbridge refuses it before accepting it (554 5.6.0).',
      de: 'Die Nachricht von {ip} enthält ein NUL-Byte (Zeile {line}). Mail-Text darf kein NUL enthalten (RFC 5322, RFC 2045); nachfolgende Server kürzen eine solche Nachricht oder lehnen sie ab, daher lehnt mailbridge sie schon vor der Annahme ab (554 5.6.0).',
    },
    fix: {
      en: 'Make the application encode binary content (attachments) as base64 instead of sending raw bytes; check its character set setting (UTF-16 text contains NUL bytes).',
      de: 'Lassen Sie die Anwendung binäre Inhalte (Anhänge) als Base64 kodieren statt Rohbytes zu senden; prüfen Sie ihre Zeichensatz-Einstellung (UTF-16-Text enthält NUL-Bytes).',
    },
  },
  MB_RELAY_PARAMETER_UNKNOWN: {
    http: 400,
    title: { en: 'SMTP command with an unknown parameter', de: 'SMTP-Befehl mit unbekanntem Parameter' },
    cause: {
      en: 'The client {ip} sent {command} with the parameter {parameters}, which mailbridge does not offer (it offers SIZE, BODY=8BITMIME, SMTPUTF8 and AUTH); the command was refused with 555 5.5.4 instead of silently ignoring what the client asked for.',
      de: 'Der Client {ip} hat {command} mit dem Parameter {parameters} gesendet, den mailbridge nicht anbietet (angeboten werden SIZE, BODY=8BITMIME, SMTPUTF8 und AUTH); der Befehl wurde mit 555 5.5.4 abgelehnt, statt stillschweigend zu übergehen, was der Client verlangt hat.',
    },
    fix: {
      en: 'Turn the option off in the application (e.g. delivery status notifications: DSN, RET, NOTIFY; REQUIRETLS); a client should only use parameters the server lists in its EHLO reply.',
      de: 'Schalten Sie die Option in der Anwendung ab (z. B. Zustellbenachrichtigungen: DSN, RET, NOTIFY; REQUIRETLS); ein Client soll nur Parameter verwenden, die der Server in seiner EHLO-Antwort nennt.',
    },
  },
  MB_RELAY_UTF8_WITHOUT_SMTPUTF8: {
    http: 400,
    title: { en: 'Non-ASCII address without SMTPUTF8', de: 'Nicht-ASCII-Adresse ohne SMTPUTF8' },
    cause: {
      en: 'The client {ip} sent {command} with the address {address}, which contains non-ASCII characters, without announcing SMTPUTF8 on MAIL FROM (RFC 6531). Such an address is refused with 553 5.6.7: passed on, it could be garbled or reach the wrong mailbox.',
      de: 'Der Client {ip} hat {command} mit der Adresse {address} gesendet, die Nicht-ASCII-Zeichen enthält, ohne SMTPUTF8 bei MAIL FROM anzukündigen (RFC 6531). Eine solche Adresse wird mit 553 5.6.7 abgelehnt: Weitergereicht könnte sie verstümmelt werden oder das falsche Postfach erreichen.',
    },
    fix: {
      en: 'Enable SMTPUTF8 (internationalized email) in the application. Without it only ASCII addresses work: write the domain in its xn-- form (bücher.example → xn--bcher-kva.example) and use an ASCII local part (joerg instead of jörg).',
      de: 'Aktivieren Sie SMTPUTF8 (internationalisierte E-Mail) in der Anwendung. Ohne SMTPUTF8 funktionieren nur ASCII-Adressen: Schreiben Sie die Domäne in ihrer xn--Form (bücher.example → xn--bcher-kva.example) und verwenden Sie einen ASCII-Namen vor dem @ (joerg statt jörg).',
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
  MB_RELAY_CLAIM_LOST: {
    http: 409,
    title: { en: 'Delivery taken over by another node', de: 'Zustellung von einem anderen Knoten übernommen' },
    cause: {
      en: 'Node {node} could not renew or record its claim on message {id} in time (it was stopped, overloaded or could not reach the database for longer than relay.queue.leaseSeconds), so another node took the message over. The result of this node was refused; the message may go out once more (at least once, never lost).',
      de: 'Knoten {node} konnte seinen Anspruch auf Nachricht {id} nicht rechtzeitig erneuern oder eintragen (er war angehalten, überlastet oder erreichte die Datenbank länger als relay.queue.leaseSeconds nicht), daher hat ein anderer Knoten die Nachricht übernommen. Das Ergebnis dieses Knotens wurde verworfen; die Nachricht kann ein weiteres Mal zugestellt werden (mindestens einmal, nie verloren).',
    },
    fix: {
      en: 'If it happens often, check the network between the nodes and PostgreSQL (pg_stat_activity, the server log) or raise relay.queue.leaseSeconds in mailbridge.yaml.',
      de: 'Tritt es häufig auf, prüfen Sie das Netz zwischen den Knoten und PostgreSQL (pg_stat_activity, Server-Log) oder erhöhen Sie relay.queue.leaseSeconds in mailbridge.yaml.',
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
  MB_RELAY_SPOOL_UNREADABLE: {
    http: 503,
    title: { en: 'Queued message cannot be read right now', de: 'Eingereihte Nachricht gerade nicht lesbar' },
    cause: {
      en: 'The message file of {id} in {path} exists but could not be opened ({detail}); the attempt counts as a temporary failure and the message is retried on schedule.',
      de: 'Die Nachrichtendatei von {id} in {path} ist vorhanden, ließ sich aber nicht öffnen ({detail}); der Versuch zählt als vorübergehender Fehler, und die Nachricht wird planmäßig erneut versucht.',
    },
    fix: {
      en: 'Check the disk and the file system of {path} (dmesg, free space, permissions for the mailbridge user). Nothing is lost while the retry schedule lasts; `mailbridge queue retry {id}` tries again at once.',
      de: 'Prüfen Sie Datenträger und Dateisystem von {path} (dmesg, freier Platz, Rechte des mailbridge-Benutzers). Solange der Wiederholungsplan reicht, geht nichts verloren; `mailbridge queue retry {id}` versucht es sofort erneut.',
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
  // ── Transports, routing and sender rules (src/relay/transports, src/relay/routing.ts) ─────────
  // Configuration and permission failures at Microsoft (5.7.3, 5.7.139, SendAsDenied, Graph 401/403)
  // are deferred, not bounced at once: an admin fixes them with one line, Exchange may take up to an
  // hour to apply a permission, and a bounce would have to travel the same broken route (Postfix
  // defers 535 replies by default for the same reason: smtp_sasl_auth_soft_bounce).
  MB_RELAY_NO_ROUTE: {
    http: 500,
    title: { en: 'No route for the sender', de: 'Keine Route für den Absender' },
    cause: {
      en: 'No entry in relay.routes matches the sender "{sender}" (relay user: {user}), so mailbridge does not know which connection and mailbox send the message.',
      de: 'Kein Eintrag in relay.routes passt zum Absender „{sender}“ (Relay-Benutzer: {user}); mailbridge weiß daher nicht, mit welcher Verbindung und welchem Postfach die Nachricht gesendet wird.',
    },
    fix: {
      en: 'Add a route to relay.routes in mailbridge.yaml, e.g. `- { senders: ["@{domain}"], connection: <name>, mailbox: <sending mailbox> }`, and restart mailbridge; the queued messages are then sent.',
      de: 'Tragen Sie in mailbridge.yaml eine Route unter relay.routes ein, z. B. `- { senders: ["@{domain}"], connection: <name>, mailbox: <sendendes Postfach> }`, und starten Sie mailbridge neu; dann werden die wartenden Nachrichten gesendet.',
    },
  },
  MB_RELAY_ROUTE_CONNECTION_UNKNOWN: {
    http: 500,
    title: { en: 'Route names an unknown connection', de: 'Route nennt eine unbekannte Verbindung' },
    cause: {
      en: 'The route {route} in relay.routes sends with the connection "{connection}", which is not defined under connections.',
      de: 'Die Route {route} in relay.routes sendet mit der Verbindung „{connection}“, die unter connections nicht definiert ist.',
    },
    fix: {
      en: 'Correct the connection name in the route, or add connections.{connection} (tenantId, clientId and a credential) to mailbridge.yaml.',
      de: 'Korrigieren Sie den Verbindungsnamen in der Route oder ergänzen Sie connections.{connection} (tenantId, clientId und ein Anmeldeverfahren) in mailbridge.yaml.',
    },
  },
  MB_RELAY_ROUTE_SENDER_DENIED: {
    http: 403,
    title: { en: 'Sender not allowed on this route', de: 'Absender auf dieser Route nicht erlaubt' },
    cause: {
      en: 'The route {route} sends as {mailbox} and may use only these senders: {allowed}. The message names "{address}" as its sender (envelope or From), so it was not sent.',
      de: 'Die Route {route} sendet als {mailbox} und darf nur diese Absender verwenden: {allowed}. Die Nachricht nennt „{address}“ als Absender (Umschlag oder From) und wurde daher nicht gesendet.',
    },
    fix: {
      en: 'Set an allowed sender address in the application, add "{address}" to sendAs of the route (after granting it in Exchange: Add-RecipientPermission -Identity {address} -Trustee <app or mailbox> -AccessRights SendAs), or set rewriteFrom: true on the route to send such mail as {mailbox} with the original address as Reply-To.',
      de: 'Stellen Sie in der Anwendung eine erlaubte Absenderadresse ein, ergänzen Sie „{address}“ in sendAs der Route (nachdem Sie es in Exchange erlaubt haben: Add-RecipientPermission -Identity {address} -Trustee <App oder Postfach> -AccessRights SendAs) oder setzen Sie rewriteFrom: true an der Route, um solche Nachrichten als {mailbox} mit der ursprünglichen Adresse als Reply-To zu senden.',
    },
  },
  MB_RELAY_SMTP_AUTH_REFUSED: {
    http: 502,
    title: { en: 'Exchange Online refused the app login (535 5.7.3)', de: 'Exchange Online hat die App-Anmeldung abgelehnt (535 5.7.3)' },
    cause: {
      en: 'Exchange Online answered "535 5.7.3 Authentication unsuccessful" for the mailbox {mailbox} with the token of the app {appId}. Usual reasons: the app lacks the SMTP.SendAsApp permission or its admin consent, the app is not registered in Exchange with New-ServicePrincipal (or was registered with the app registration\'s object ID instead of the enterprise application\'s), or it has no FullAccess on {mailbox}.',
      de: 'Exchange Online hat für das Postfach {mailbox} mit dem Token der App {appId} „535 5.7.3 Authentication unsuccessful“ geantwortet. Übliche Gründe: Der App fehlt die Berechtigung SMTP.SendAsApp oder deren Administratorzustimmung, die App ist in Exchange nicht mit New-ServicePrincipal registriert (oder mit der Objekt-ID der App-Registrierung statt der Unternehmensanwendung), oder sie hat keinen Vollzugriff auf {mailbox}.',
    },
    fix: {
      en: 'Entra admin center › App registrations › your app › API permissions › Office 365 Exchange Online › Application permissions › SMTP.SendAsApp › Grant admin consent. Then in Exchange Online PowerShell (Connect-ExchangeOnline -Organization {tenantId}): New-ServicePrincipal -AppId {appId} -ObjectId {objectId} -DisplayName "mailbridge"; Add-MailboxPermission -Identity {mailbox} -User {objectId} -AccessRights FullAccess. {objectId} is the Object ID of the Enterprise application (Enterprise applications › your app › Overview), not of the App registration.',
      de: 'Entra Admin Center › App-Registrierungen › Ihre App › API-Berechtigungen › Office 365 Exchange Online › Anwendungsberechtigungen › SMTP.SendAsApp › Administratorzustimmung erteilen. Dann in der Exchange Online PowerShell (Connect-ExchangeOnline -Organization {tenantId}): New-ServicePrincipal -AppId {appId} -ObjectId {objectId} -DisplayName "mailbridge"; Add-MailboxPermission -Identity {mailbox} -User {objectId} -AccessRights FullAccess. {objectId} ist die Objekt-ID der Unternehmensanwendung (Unternehmensanwendungen › Ihre App › Übersicht), nicht die der App-Registrierung.',
    },
  },
  MB_RELAY_SMTP_AUTH_REFUSED_DELEGATED: {
    http: 502,
    title: { en: 'Exchange Online refused the user login (535 5.7.3)', de: 'Exchange Online hat die Benutzeranmeldung abgelehnt (535 5.7.3)' },
    cause: {
      en: 'Exchange Online answered "535 5.7.3 Authentication unsuccessful" for the mailbox {mailbox} with the token of {user}: the token lacks SMTP.Send, or {user} has no FullAccess on {mailbox}.',
      de: 'Exchange Online hat für das Postfach {mailbox} mit dem Token von {user} „535 5.7.3 Authentication unsuccessful“ geantwortet: Dem Token fehlt SMTP.Send, oder {user} hat keinen Vollzugriff auf {mailbox}.',
    },
    fix: {
      en: 'Give the app the delegated permission Office 365 Exchange Online › SMTP.Send (with consent) and sign in again (`mailbridge signin <connection>`). For a shared mailbox: Add-MailboxPermission -Identity {mailbox} -User {user} -AccessRights FullAccess.',
      de: 'Geben Sie der App die delegierte Berechtigung Office 365 Exchange Online › SMTP.Send (mit Zustimmung) und melden Sie sich erneut an (`mailbridge signin <verbindung>`). Für ein freigegebenes Postfach: Add-MailboxPermission -Identity {mailbox} -User {user} -AccessRights FullAccess.',
    },
  },
  MB_RELAY_SMTP_AUTH_DISABLED_TENANT: {
    http: 502,
    title: { en: 'SMTP AUTH is disabled for the organization (5.7.139)', de: 'SMTP AUTH ist für die Organisation abgeschaltet (5.7.139)' },
    cause: {
      en: 'Exchange Online answered "535 5.7.139 … SmtpClientAuthentication is disabled for the Tenant" for {mailbox}: SMTP AUTH is off organization-wide and the mailbox has no setting of its own.',
      de: 'Exchange Online hat für {mailbox} „535 5.7.139 … SmtpClientAuthentication is disabled for the Tenant“ geantwortet: SMTP AUTH ist organisationsweit abgeschaltet und das Postfach hat keine eigene Einstellung.',
    },
    fix: {
      en: 'Allow it for this mailbox only (recommended): Set-CASMailbox -Identity {mailbox} -SmtpClientAuthenticationDisabled $false. Or for the whole organization: Set-TransportConfig -SmtpClientAuthenticationDisabled $false. Security Defaults block SMTP AUTH regardless; or use transport: graph for this route.',
      de: 'Nur für dieses Postfach erlauben (empfohlen): Set-CASMailbox -Identity {mailbox} -SmtpClientAuthenticationDisabled $false. Oder für die ganze Organisation: Set-TransportConfig -SmtpClientAuthenticationDisabled $false. Sicherheitsstandards (Security Defaults) sperren SMTP AUTH trotzdem; alternativ transport: graph für diese Route verwenden.',
    },
  },
  MB_RELAY_SMTP_AUTH_DISABLED_MAILBOX: {
    http: 502,
    title: { en: 'SMTP AUTH is disabled for the mailbox (5.7.139)', de: 'SMTP AUTH ist für das Postfach abgeschaltet (5.7.139)' },
    cause: {
      en: 'Exchange Online answered "535 5.7.139 … SmtpClientAuthentication is disabled for the Mailbox" for {mailbox}.',
      de: 'Exchange Online hat für {mailbox} „535 5.7.139 … SmtpClientAuthentication is disabled for the Mailbox“ geantwortet.',
    },
    fix: {
      en: 'Set-CASMailbox -Identity {mailbox} -SmtpClientAuthenticationDisabled $false (Microsoft 365 admin center › Users › {mailbox} › Mail › Manage email apps › Authenticated SMTP). Changes can take up to an hour; or use transport: graph for this route.',
      de: 'Set-CASMailbox -Identity {mailbox} -SmtpClientAuthenticationDisabled $false (Microsoft 365 Admin Center › Benutzer › {mailbox} › E-Mail › E-Mail-Apps verwalten › Authentifiziertes SMTP). Änderungen können bis zu einer Stunde dauern; alternativ transport: graph für diese Route verwenden.',
    },
  },
  MB_RELAY_SMTP_AUTH_BLOCKED: {
    http: 502,
    title: { en: 'Exchange Online blocked the SMTP login (5.7.139)', de: 'Exchange Online hat die SMTP-Anmeldung gesperrt (5.7.139)' },
    cause: {
      en: 'Exchange Online refused the login for {mailbox}: {reply}. This comes from a policy (Security Defaults, Conditional Access, a disabled account), not from the token.',
      de: 'Exchange Online hat die Anmeldung für {mailbox} abgelehnt: {reply}. Das kommt von einer Richtlinie (Sicherheitsstandards, bedingter Zugriff, ein gesperrtes Konto), nicht vom Token.',
    },
    fix: {
      en: 'Entra admin center › Overview › Properties › Manage security defaults (SMTP AUTH does not work with Security Defaults), or exclude the mailbox from the Conditional Access policy that blocks it; or use transport: graph for this route.',
      de: 'Entra Admin Center › Übersicht › Eigenschaften › Sicherheitsstandards verwalten (SMTP AUTH funktioniert nicht mit Sicherheitsstandards), oder nehmen Sie das Postfach von der sperrenden Richtlinie für bedingten Zugriff aus; alternativ transport: graph für diese Route verwenden.',
    },
  },
  MB_RELAY_SMTP_NOT_AUTHENTICATED: {
    http: 502,
    title: { en: 'Server wants a login mailbridge could not do (530 5.7.57)', de: 'Server verlangt eine Anmeldung, die mailbridge nicht durchführen konnte (530 5.7.57)' },
    cause: {
      en: '{host} answered "{reply}": the message was offered without a successful login, usually because the server did not offer AUTH XOAUTH2 (no STARTTLS before it, or not an Exchange Online host).',
      de: '{host} antwortete „{reply}“: Die Nachricht wurde ohne erfolgreiche Anmeldung angeboten, meist weil der Server AUTH XOAUTH2 nicht angeboten hat (kein STARTTLS davor oder kein Exchange-Online-Server).',
    },
    fix: {
      en: 'Leave smtp.host and smtp.tls of the route at their defaults (smtp.office365.com, starttls) unless you know better; check that nothing between mailbridge and Microsoft (a TLS-inspecting firewall) strips STARTTLS.',
      de: 'Lassen Sie smtp.host und smtp.tls der Route auf den Standardwerten (smtp.office365.com, starttls), sofern nicht bekannt ist, dass es anders sein muss; prüfen Sie, ob etwas zwischen mailbridge und Microsoft (eine TLS-prüfende Firewall) STARTTLS entfernt.',
    },
  },
  MB_RELAY_SEND_AS_DENIED: {
    http: 403,
    title: { en: 'Not allowed to send as this address (SendAsDenied)', de: 'Senden als diese Adresse nicht erlaubt (SendAsDenied)' },
    cause: {
      en: 'Exchange Online refused the message: {mailbox} may not send as "{from}" (envelope sender or From), because {trustee} has no SendAs permission on it.',
      de: 'Exchange Online hat die Nachricht abgelehnt: {mailbox} darf nicht als „{from}“ senden (Umschlag-Absender oder From), weil {trustee} darauf keine SendAs-Berechtigung hat.',
    },
    fix: {
      en: 'Add-RecipientPermission -Identity {from} -Trustee {trustee} -AccessRights SendAs (Exchange admin center › Mailboxes › {from} › Delegation › Send as). It can take up to an hour to apply. Or let the application send as {mailbox}, or set rewriteFrom: true on the route.',
      de: 'Add-RecipientPermission -Identity {from} -Trustee {trustee} -AccessRights SendAs (Exchange Admin Center › Postfächer › {from} › Delegierung › Senden als). Es kann bis zu einer Stunde dauern. Oder lassen Sie die Anwendung als {mailbox} senden, oder setzen Sie rewriteFrom: true an der Route.',
    },
  },
  MB_RELAY_SMTP_CONCURRENCY: {
    http: 503,
    title: { en: 'Too many connections on the mailbox (432 4.3.2)', de: 'Zu viele Verbindungen auf dem Postfach (432 4.3.2)' },
    cause: {
      en: 'Exchange Online allows 3 SMTP connections per mailbox at once and refused another one for {mailbox}; another program probably sends with the same mailbox. mailbridge waits {seconds} s before it uses the mailbox again.',
      de: 'Exchange Online erlaubt 3 gleichzeitige SMTP-Verbindungen je Postfach und hat für {mailbox} eine weitere abgelehnt; vermutlich sendet ein anderes Programm mit demselben Postfach. mailbridge wartet {seconds} s, bevor es das Postfach wieder verwendet.',
    },
    fix: {
      en: 'Nothing is lost. If it repeats, give the other program its own mailbox, or lower smtp.maxConnections of the route and relay.queue.concurrencyPerMailbox.',
      de: 'Es geht nichts verloren. Tritt es wiederholt auf, geben Sie dem anderen Programm ein eigenes Postfach oder senken Sie smtp.maxConnections der Route und relay.queue.concurrencyPerMailbox.',
    },
  },
  MB_RELAY_DAILY_LIMIT: {
    http: 429,
    title: { en: 'Daily recipient limit of the mailbox reached', de: 'Tägliche Empfängergrenze des Postfachs erreicht' },
    cause: {
      en: 'Exchange Online refused the message with SubmissionQuotaExceeded: {mailbox} sent to 10,000 recipients within the last 24 hours, and Exchange blocks it until older sends leave that rolling window. mailbridge waits {seconds} s before it uses the mailbox again, and keeps retrying, because the window frees up piece by piece.',
      de: 'Exchange Online hat die Nachricht mit SubmissionQuotaExceeded abgelehnt: {mailbox} hat in den letzten 24 Stunden an 10.000 Empfänger gesendet, und Exchange sperrt es, bis ältere Sendungen aus diesem gleitenden Zeitfenster fallen. mailbridge wartet {seconds} s, bevor es das Postfach wieder verwendet, und versucht es weiter, weil das Fenster nach und nach frei wird.',
    },
    fix: {
      en: 'Nothing is lost while the retry schedule lasts (relay.queue.retrySchedule). For large volumes spread the mail over several mailboxes (one route each) or use a bulk mail service; Exchange Online is not meant for mass mailing.',
      de: 'Solange der Wiederholungsplan reicht (relay.queue.retrySchedule), geht nichts verloren. Verteilen Sie große Mengen auf mehrere Postfächer (je eine Route) oder nutzen Sie einen Massenversanddienst; Exchange Online ist nicht für Massenversand gedacht.',
    },
  },
  MB_RELAY_DAILY_BUDGET: {
    http: 429,
    title: { en: 'Mailbox paced: recipients per day used up', de: 'Postfach gedrosselt: Empfänger pro Tag aufgebraucht' },
    cause: {
      en: '{mailbox} started deliveries to {recipientsPerDay} recipients within the last 24 hours (relay.queue.recipientsPerDay). Its messages wait in the queue, unattempted, until {resumesAt}, when older sends leave the rolling window; Exchange Online would otherwise block the mailbox with 554 5.2.0 SubmissionQuotaExceeded.',
      de: '{mailbox} hat in den letzten 24 Stunden Zustellungen an {recipientsPerDay} Empfänger begonnen (relay.queue.recipientsPerDay). Seine Nachrichten warten unversucht in der Warteschlange bis {resumesAt}, wenn ältere Sendungen aus dem gleitenden Zeitfenster fallen; sonst würde Exchange Online das Postfach mit 554 5.2.0 SubmissionQuotaExceeded sperren.',
    },
    fix: {
      en: 'Nothing is lost and no retry is used up. For more volume spread the mail over several mailboxes (one route each); raise relay.queue.recipientsPerDay only if your tenant has a higher limit.',
      de: 'Es geht nichts verloren, und kein Wiederholungsversuch wird verbraucht. Für mehr Volumen verteilen Sie die Nachrichten auf mehrere Postfächer (je eine Route); erhöhen Sie relay.queue.recipientsPerDay nur, wenn Ihr Mandant eine höhere Grenze hat.',
    },
  },
  MB_RELAY_UPSTREAM_UNREACHABLE: {
    http: 502,
    title: { en: 'Microsoft 365 not reachable', de: 'Microsoft 365 nicht erreichbar' },
    cause: {
      en: 'mailbridge could not connect to {host}:{port}: {detail}.',
      de: 'mailbridge konnte keine Verbindung zu {host}:{port} herstellen: {detail}.',
    },
    fix: {
      en: 'Check that this server may open outbound connections to {host} port {port} (firewall; SMTP port 587 is often blocked) and that the name resolves.',
      de: 'Prüfen Sie, ob dieser Server ausgehende Verbindungen zu {host} Port {port} öffnen darf (Firewall; SMTP-Port 587 ist oft gesperrt) und der Name aufgelöst wird.',
    },
  },
  MB_RELAY_UPSTREAM_TLS: {
    http: 502,
    title: { en: 'Certificate of Microsoft 365 not trusted', de: 'Zertifikat von Microsoft 365 nicht vertrauenswürdig' },
    cause: {
      en: 'The TLS connection to {host}:{port} failed: {detail}. Usually a TLS-inspecting firewall or proxy presents its own certificate.',
      de: 'Die TLS-Verbindung zu {host}:{port} ist fehlgeschlagen: {detail}. Meist zeigt eine TLS-prüfende Firewall oder ein Proxy ein eigenes Zertifikat.',
    },
    fix: {
      en: 'Put the CA certificate of that firewall (PEM) into connections.{connection}.caFile, or exempt Microsoft 365 from TLS inspection.',
      de: 'Tragen Sie das CA-Zertifikat dieser Firewall (PEM) in connections.{connection}.caFile ein oder nehmen Sie Microsoft 365 von der TLS-Prüfung aus.',
    },
  },
  MB_RELAY_UPSTREAM_TIMEOUT: {
    http: 504,
    title: { en: 'Microsoft 365 stopped answering', de: 'Microsoft 365 antwortet nicht mehr' },
    cause: {
      en: '{host} did not answer within {seconds} s ({stage}). If this happened after the message was sent, it may arrive twice when mailbridge retries.',
      de: '{host} hat nicht innerhalb von {seconds} s geantwortet ({stage}). Geschah das nach dem Senden der Nachricht, kann sie beim erneuten Versuch doppelt ankommen.',
    },
    fix: {
      en: 'mailbridge retries on schedule. If it repeats, check the network path (proxy, firewall that drops idle connections); raise smtp.timeoutSeconds or graph.timeoutSeconds of the route for very large messages.',
      de: 'mailbridge wiederholt nach Plan. Tritt es wiederholt auf, prüfen Sie den Netzweg (Proxy, Firewall, die ruhende Verbindungen trennt); erhöhen Sie smtp.timeoutSeconds oder graph.timeoutSeconds der Route für sehr große Nachrichten.',
    },
  },
  MB_RELAY_GRAPH_THROTTLED: {
    http: 429,
    title: { en: 'Microsoft Graph throttles the mailbox (429)', de: 'Microsoft Graph drosselt das Postfach (429)' },
    cause: {
      en: 'Graph answered 429 for {mailbox} ({detail}) and asked to wait {seconds} s; mailbridge pauses the mailbox that long. Graph allows 4 requests at once and 10,000 per 10 minutes per app and mailbox.',
      de: 'Graph hat für {mailbox} mit 429 geantwortet ({detail}) und {seconds} s Wartezeit verlangt; so lange pausiert mailbridge das Postfach. Graph erlaubt 4 gleichzeitige Anfragen und 10.000 je 10 Minuten je App und Postfach.',
    },
    fix: {
      en: 'Nothing is lost. If it happens often, lower relay.queue.concurrencyPerMailbox (at most 4 for Graph) or spread the mail over several mailboxes.',
      de: 'Es geht nichts verloren. Tritt es oft auf, senken Sie relay.queue.concurrencyPerMailbox (für Graph höchstens 4) oder verteilen Sie die Nachrichten auf mehrere Postfächer.',
    },
  },
  MB_RELAY_GRAPH_UNAVAILABLE: {
    http: 503,
    title: { en: 'Microsoft Graph temporarily unavailable', de: 'Microsoft Graph vorübergehend nicht verfügbar' },
    cause: {
      en: 'Graph answered HTTP {status} ({detail}); mailbridge retries after {seconds} s.',
      de: 'Graph antwortete mit HTTP {status} ({detail}); mailbridge versucht es nach {seconds} s erneut.',
    },
    fix: {
      en: 'Nothing to do if it passes; check https://admin.microsoft.com › Health › Service health if it lasts.',
      de: 'Nichts zu tun, wenn es vorübergeht; hält es an, prüfen Sie https://admin.microsoft.com › Status › Dienststatus.',
    },
  },
  MB_RELAY_GRAPH_TOKEN_REJECTED: {
    http: 502,
    title: { en: 'Microsoft Graph refused the token (401)', de: 'Microsoft Graph hat das Token abgelehnt (401)' },
    cause: {
      en: 'Graph answered 401 for {mailbox}: {detail}. The token of connection {connection} is not one for Microsoft Graph of this tenant and cloud.',
      de: 'Graph antwortete für {mailbox} mit 401: {detail}. Das Token der Verbindung {connection} gilt nicht für Microsoft Graph dieses Mandanten und dieser Cloud.',
    },
    fix: {
      en: 'Check cloud and scopes.graph of connections.{connection} (`mailbridge token {connection} --resource graph` shows the audience) and graph.url of the route.',
      de: 'Prüfen Sie cloud und scopes.graph von connections.{connection} (`mailbridge token {connection} --resource graph` zeigt die Zielgruppe) sowie graph.url der Route.',
    },
  },
  MB_RELAY_GRAPH_ACCESS_DENIED: {
    http: 403,
    title: { en: 'Microsoft Graph denied sending (403)', de: 'Microsoft Graph hat das Senden verweigert (403)' },
    cause: {
      en: 'Graph answered 403 ErrorAccessDenied for {mailbox}: the app {appId} lacks the Mail.Send permission (or its admin consent), or an application access policy keeps it away from {mailbox}.',
      de: 'Graph antwortete für {mailbox} mit 403 ErrorAccessDenied: Der App {appId} fehlt die Berechtigung Mail.Send (oder deren Administratorzustimmung), oder eine Anwendungszugriffsrichtlinie hält sie von {mailbox} fern.',
    },
    fix: {
      en: 'Entra admin center › App registrations › your app › API permissions › Microsoft Graph › Application permissions › Mail.Send › Grant admin consent. If access is limited with an application access policy: Test-ApplicationAccessPolicy -Identity {mailbox} -AppId {appId}.',
      de: 'Entra Admin Center › App-Registrierungen › Ihre App › API-Berechtigungen › Microsoft Graph › Anwendungsberechtigungen › Mail.Send › Administratorzustimmung erteilen. Ist der Zugriff per Anwendungszugriffsrichtlinie begrenzt: Test-ApplicationAccessPolicy -Identity {mailbox} -AppId {appId}.',
    },
  },
  MB_RELAY_GRAPH_MAILBOX_UNKNOWN: {
    http: 404,
    title: { en: 'Sending mailbox not found in Graph', de: 'Sendendes Postfach in Graph nicht gefunden' },
    cause: {
      en: 'Graph does not know {mailbox} as a mailbox of this tenant ({detail}).',
      de: 'Graph kennt {mailbox} nicht als Postfach dieses Mandanten ({detail}).',
    },
    fix: {
      en: 'Check mailbox of the route (it must be an Exchange Online mailbox with a license, or a shared mailbox) and that the connection belongs to the same tenant.',
      de: 'Prüfen Sie mailbox der Route (es muss ein lizenziertes Exchange-Online-Postfach oder ein freigegebenes Postfach sein) und ob die Verbindung zum selben Mandanten gehört.',
    },
  },
  MB_RELAY_GRAPH_REJECTED: {
    http: 502,
    title: { en: 'Microsoft Graph refused the message', de: 'Microsoft Graph hat die Nachricht abgelehnt' },
    cause: {
      en: 'Graph answered HTTP {status} {code}: {detail}',
      de: 'Graph antwortete mit HTTP {status} {code}: {detail}',
    },
    fix: {
      en: 'Correct the message in the application (recipients, content) and send it again; the reply above names what Graph did not accept.',
      de: 'Korrigieren Sie die Nachricht in der Anwendung (Empfänger, Inhalt) und senden Sie sie erneut; die Antwort oben nennt, was Graph nicht angenommen hat.',
    },
  },
  MB_RELAY_GRAPH_TOO_LARGE: {
    http: 413,
    title: { en: 'Message too large for Microsoft Graph', de: 'Nachricht zu groß für Microsoft Graph' },
    cause: {
      en: 'The message has {size} bytes; Graph sendMail takes at most 4 MB per request, which leaves {limit} bytes of MIME after base64 encoding.',
      de: 'Die Nachricht hat {size} Bytes; Graph sendMail nimmt höchstens 4 MB pro Anfrage an, was nach der Base64-Kodierung {limit} Bytes MIME zulässt.',
    },
    fix: {
      en: 'Set graph.fallback: smtp on the route to send such messages over SMTP AUTH XOAUTH2 (up to 150 MB), or send smaller attachments.',
      de: 'Setzen Sie graph.fallback: smtp an der Route, um solche Nachrichten über SMTP AUTH XOAUTH2 zu senden (bis 150 MB), oder senden Sie kleinere Anhänge.',
    },
  },
  MB_RELAY_GRAPH_HEADER_RECIPIENTS: {
    http: 400,
    title: { en: 'To/Cc addresses removed for Graph', de: 'To/Cc-Adressen für Graph entfernt' },
    cause: {
      en: 'The message names {addresses} in To/Cc, but the application did not give them as recipients (RCPT TO). Graph sends to every address in To/Cc/Bcc, so mailbridge removed them from the header to keep to the envelope.',
      de: 'Die Nachricht nennt {addresses} in To/Cc, aber die Anwendung hat sie nicht als Empfänger (RCPT TO) angegeben. Graph sendet an jede Adresse in To/Cc/Bcc; mailbridge hat sie daher aus dem Kopf entfernt, um sich an den Umschlag zu halten.',
    },
    fix: {
      en: 'Nothing to do if that is right. To keep the header as written, set graph.fallback: smtp on the route: such messages then go over SMTP, which delivers to the envelope only.',
      de: 'Nichts zu tun, wenn das so richtig ist. Um den Kopf unverändert zu lassen, setzen Sie graph.fallback: smtp an der Route: Solche Nachrichten gehen dann über SMTP, das nur an den Umschlag zustellt.',
    },
  },
  MB_RELAY_RECIPIENTS_PARTLY_REFUSED: {
    http: 502,
    title: { en: 'Some recipients refused', de: 'Einige Empfänger abgelehnt' },
    cause: {
      en: 'The upstream server accepted the message for some recipients and refused {refused}: {detail}',
      de: 'Der Zielserver hat die Nachricht für einige Empfänger angenommen und {refused} abgelehnt: {detail}',
    },
    fix: {
      en: 'Send the message again to the refused recipients once the reason above is fixed.',
      de: 'Senden Sie die Nachricht an die abgelehnten Empfänger erneut, sobald der obige Grund behoben ist.',
    },
  },
  MB_RELAY_ATTACHMENT_UNREADABLE: {
    http: 400,
    title: { en: 'Attachment not readable', de: 'Anhang nicht lesbar' },
    cause: { en: 'mailbridge could not read {path}: {detail}', de: 'mailbridge konnte {path} nicht lesen: {detail}' },
    fix: {
      en: 'Give the path of a readable file to --attach.',
      de: 'Geben Sie bei --attach den Pfad einer lesbaren Datei an.',
    },
  },
} satisfies CatalogueSection;
