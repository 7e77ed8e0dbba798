/**
 * German texts of the configuration schema's descriptions, for docs/de/reference/config.md (the schema
 * itself describes its keys in English, for `mailbridge config schema` and editors). Keyed by the
 * English text: a changed or new description has no German text until one is added here, and
 * test/docs/reference.test.ts names it. The secret note secretField appends is translated once, in
 * scripts/docs.ts.
 */
export const CONFIG_DESCRIPTIONS_DE: Record<string, string> = {
  "Language of messages (default: from LANG)":
    "Sprache der Meldungen (Standard: aus LANG)",
  "AES-256 key file, created with mode 0600 on first use; MAILBRIDGE_KEY overrides it":
    "AES-256-Schlüsseldatei, bei der ersten Verwendung mit Modus 0600 angelegt; MAILBRIDGE_KEY hat Vorrang",
  "PostgreSQL connection URL, e.g. postgres://user:password@host/db":
    "PostgreSQL-Verbindungs-URL, z. B. postgres://benutzer:kennwort@host/db",
  "This node among several on one PostgreSQL store (its name); the only setting that may differ between nodes":
    "Dieser Knoten unter mehreren an einem PostgreSQL-Speicher (sein Name); die einzige Einstellung, die sich zwischen Knoten unterscheiden darf",
  "Name of this node in mailbridge status, the API and the metrics (default: the host name); the only node-specific setting":
    "Name dieses Knotens in mailbridge status, der API und den Metriken (Standard: der Rechnername); die einzige knotenspezifische Einstellung",
  "URL under which admins and Microsoft reach this server (sign-in redirects, notifications)":
    "URL, unter der Administratoren und Microsoft diesen Server erreichen (Umleitungen nach der Anmeldung, Benachrichtigungen)",
  "Default outbound HTTP proxy":
    "Standard-Proxy (HTTP) für ausgehende Verbindungen",
  "Bearer token GET /metrics requires (set it when server.listen is reachable from other hosts); without it /metrics is open to whoever reaches server.listen":
    "Bearer-Token, das GET /metrics verlangt (setzen, wenn server.listen von anderen Rechnern erreichbar ist); ohne es ist /metrics für jeden offen, der server.listen erreicht",
  "Address the HTTP server (console, API, /health, /metrics) listens on: an IP address or host name, without the port (server.port)":
    "Adresse, auf der der HTTP-Server (Konsole, API, /health, /metrics) lauscht: eine IP-Adresse oder ein Hostname, ohne den Port (server.port)",
  "Serve HTTPS instead of HTTP. Needed when server.listen is reachable from other hosts (not loopback), unless server.insecure is set":
    "HTTPS statt HTTP ausliefern. Nötig, wenn server.listen von anderen Rechnern erreichbar ist (nicht Loopback), außer server.insecure ist gesetzt",
  "Path of the PEM certificate file (with its chain) the gateway serves HTTPS with":
    "Pfad der PEM-Zertifikatsdatei (mit Kette), mit der das Gateway HTTPS ausliefert",
  "Path of the PEM private key file of the certificate (unencrypted, readable by the mailbridge user)":
    "Pfad der PEM-Datei mit dem privaten Schlüssel des Zertifikats (unverschlüsselt, lesbar für den Benutzer mailbridge)",
  "Serve plain HTTP on a non-loopback server.listen anyway: only when a reverse proxy in front terminates TLS (passwords, session cookies and API keys cross the network in clear otherwise)":
    "Auf einem server.listen außerhalb von Loopback trotzdem unverschlüsseltes HTTP ausliefern: nur, wenn ein vorgeschalteter Reverse-Proxy TLS beendet (sonst gehen Kennwörter, Sitzungs-Cookies und API-Schlüssel unverschlüsselt über das Netz)",
  "Directory (tenant) ID GUID, or a verified domain":
    "Verzeichnis-ID (Mandant) als GUID oder eine verifizierte Domain",
  "Application (client) ID of the app registration":
    "Anwendungs-ID (Client) der App-Registrierung",
  "client-credentials: app-only; auth-code / device-code: delegated sign-in of a user":
    "client-credentials: nur die App; auth-code / device-code: delegierte Anmeldung eines Benutzers",
  "Client secret of the app registration":
    "Geheimer Clientschlüssel der App-Registrierung",
  "Expiry date of the client secret (YYYY-MM-DD), as the Entra portal shows it":
    "Ablaufdatum des Clientschlüssels (JJJJ-MM-TT), wie das Entra-Portal es zeigt",
  "PEM (certificate + private key) or PFX/PKCS#12 file":
    "PEM-Datei (Zertifikat + privater Schlüssel) oder PFX/PKCS#12-Datei",
  "Password of the PFX file or of an encrypted PEM key":
    "Kennwort der PFX-Datei oder eines verschlüsselten PEM-Schlüssels",
  "Private key in its own PEM file, if not in `path`":
    "Privater Schlüssel in einer eigenen PEM-Datei, falls nicht in `path`",
  "PS256 with x5t#S256 (current Entra ID docs) or RS256 with the SHA-1 x5t (older clients)":
    "PS256 mit x5t#S256 (aktuelle Entra-ID-Dokumentation) oder RS256 mit dem SHA-1-x5t (ältere Clients)",
  "auth-code: the redirect URI registered on the app; mailbridge serves it":
    "auth-code: die an der App registrierte Umleitungs-URI; mailbridge bedient sie",
  "Delegated flows: the signed-in account (UPN) whose tokens to use":
    "Delegierte Abläufe: das angemeldete Konto (UPN), dessen Tokens verwendet werden",
  "Token endpoint template with #TenantID#, e.g. https://login.microsoftonline.com/#TenantID#/oauth2/v2.0/token":
    "Vorlage des Token-Endpunkts mit #TenantID#, z. B. https://login.microsoftonline.com/#TenantID#/oauth2/v2.0/token",
  "Override the scopes per resource (defaults follow the cloud)":
    "Berechtigungen (Scopes) je Ressource überschreiben (Standard: nach der Cloud)",
  "Renew a token this many seconds before it expires":
    "Ein Token so viele Sekunden vor seinem Ablauf erneuern",
  "Outbound HTTP proxy for this connection (else server.proxy, else HTTPS_PROXY)":
    "Proxy (HTTP) für diese Verbindung (sonst server.proxy, sonst HTTPS_PROXY)",
  "Extra CA certificates (PEM) to trust, e.g. the sandbox CA":
    "Zusätzliche CA-Zertifikate (PEM), denen vertraut wird, z. B. die CA der Sandbox",
  "Exchange Online admin API that `mailbridge check` reads Exchange permissions through (default: the cloud's, https://outlook.office365.com/adminapi/beta); used only when the app has Exchange.ManageAsApp":
    "Admin-API von Exchange Online, über die `mailbridge check` Exchange-Berechtigungen liest (Standard: die der Cloud, https://outlook.office365.com/adminapi/beta); nur genutzt, wenn die App Exchange.ManageAsApp hat",
  "SMTP relay: applications send over plain SMTP, mailbridge delivers to Microsoft 365":
    "SMTP-Relay: Anwendungen senden einfaches SMTP, mailbridge stellt an Microsoft 365 zu",
  "Name in the SMTP greeting and in bounce reports (default: the machine name)":
    "Name im SMTP-Gruß und in Unzustellbarkeitsberichten (Standard: der Rechnername)",
  "Folder for the spool (message files) and the generated TLS certificate":
    "Ordner für den Spool (Nachrichtendateien) und das erzeugte TLS-Zertifikat",
  "SMTP ports the applications connect to":
    "SMTP-Ports, mit denen sich die Anwendungen verbinden",
  "Address to listen on; 0.0.0.0 or :: for all":
    "Adresse, auf der gelauscht wird; 0.0.0.0 oder :: für alle",
  "TCP port (587 submission, 465 implicit TLS, 25); 0 picks a free port":
    "TCP-Port (587 Submission, 465 implizites TLS, 25); 0 wählt einen freien Port",
  "starttls: plain connection with STARTTLS offered; implicit: TLS from the first byte (port 465); none: no TLS at all":
    "starttls: einfache Verbindung, STARTTLS angeboten; implicit: TLS ab dem ersten Byte (Port 465); none: gar kein TLS",
  "Accept AUTH without TLS (old devices that cannot do TLS; the password crosses the network readable)":
    "AUTH ohne TLS annehmen (alte Geräte ohne TLS; das Kennwort geht lesbar durchs Netz)",
  "Listener certificate; without it mailbridge generates a self-signed one at first start and keeps it in dataDir/tls":
    "Zertifikat der Listener; ohne Angabe erzeugt mailbridge beim ersten Start ein selbst signiertes und legt es in dataDir/tls ab",
  "PEM certificate (chain) for the listeners":
    "PEM-Zertifikat (Kette) für die Listener",
  "PEM private key of that certificate (a path; the key never goes into this file)":
    "Privater PEM-Schlüssel dieses Zertifikats (ein Pfad; der Schlüssel selbst kommt nie in diese Datei)",
  "Largest message accepted, in bytes (advertised as SIZE; default 35 MiB, Exchange Online allows at most 150 MB)":
    "Größte angenommene Nachricht in Byte (als SIZE angekündigt; Standard 35 MiB, Exchange Online erlaubt höchstens 150 MB)",
  "Recipients per message (Exchange Online: 500)":
    "Empfänger je Nachricht (Exchange Online: 500)",
  "Concurrent client connections per listener":
    "Gleichzeitige Client-Verbindungen je Listener",
  "Relay users applications log in as (SMTP AUTH PLAIN/LOGIN)":
    "Relay-Benutzer, als die sich Anwendungen anmelden (SMTP AUTH PLAIN/LOGIN)",
  "scrypt hash of the password ($scrypt$…), printed by `mailbridge relay-user add|passwd`":
    "scrypt-Hash des Kennworts ($scrypt$…), ausgegeben von `mailbridge relay-user add|passwd`",
  "Sender addresses (MAIL FROM) this user may use: name@domain or @domain":
    "Absenderadressen (MAIL FROM), die dieser Benutzer verwenden darf: name@domain oder @domain",
  "If set, this user may log in only from these addresses":
    "Wenn gesetzt, darf sich dieser Benutzer nur von diesen Adressen anmelden",
  "Refuse logins of this user without deleting it":
    "Anmeldungen dieses Benutzers ablehnen, ohne ihn zu löschen",
  "Networks whose clients may relay without logging in":
    "Netze, deren Clients ohne Anmeldung weiterleiten dürfen",
  "Client addresses that may relay without logging in":
    "Client-Adressen, die ohne Anmeldung weiterleiten dürfen",
  "Sender addresses (MAIL FROM) these clients may use: name@domain or @domain":
    "Absenderadressen (MAIL FROM), die diese Clients verwenden dürfen: name@domain oder @domain",
  "Where messages go: the first route whose senders and users match sends the message":
    "Wohin Nachrichten gehen: Die erste Route, deren Absender und Benutzer passen, sendet die Nachricht",
  "Name for logs and `mailbridge send` output":
    "Name für Protokolle und die Ausgabe von `mailbridge send`",
  "Match: envelope senders (name@domain or @domain); omitted: any":
    "Bedingung: Umschlag-Absender (name@domain oder @domain); weggelassen: jeder",
  "Match: relay users (relay.users) that handed the message over; omitted: any client":
    "Bedingung: Relay-Benutzer (relay.users), die die Nachricht übergeben haben; weggelassen: jeder Client",
  "Connection (connections.<name>) whose token sends the message":
    "Verbindung (connections.<name>), deren Token die Nachricht sendet",
  "Sending mailbox (SMTP login / Graph user); default: the envelope sender, or the account of a delegated connection":
    "Sendendes Postfach (SMTP-Anmeldung / Graph-Benutzer); Standard: der Umschlag-Absender oder das Konto einer delegierten Verbindung",
  "smtp: SMTP AUTH XOAUTH2; graph: Microsoft Graph sendMail":
    "smtp: SMTP AUTH XOAUTH2; graph: Microsoft Graph sendMail",
  "Addresses the mailbox may send as (besides itself); checked on the envelope sender and From. Omitted: Exchange decides":
    "Adressen, als die das Postfach senden darf (neben sich selbst); geprüft an Umschlag-Absender und From. Weggelassen: Exchange entscheidet",
  "Senders not allowed by sendAs are rewritten to the mailbox (true) or to this address, with the original kept as Reply-To":
    "Absender, die sendAs nicht erlaubt, werden auf das Postfach (true) oder diese Adresse umgeschrieben; das Original bleibt als Reply-To",
  "SMTP host; default: the connection's cloud (smtp.office365.com for global)":
    "SMTP-Host; Standard: nach der Cloud der Verbindung (smtp.office365.com für global)",
  "SMTP port (Exchange Online: 587 with STARTTLS)":
    "SMTP-Port (Exchange Online: 587 mit STARTTLS)",
  "starttls: plain connection upgraded with STARTTLS (required); implicit: TLS from the first byte":
    "starttls: einfache Verbindung, mit STARTTLS verschlüsselt (Pflicht); implicit: TLS ab dem ersten Byte",
  "Connections at once per sending mailbox (Exchange Online allows 3; a 4th gets 432 4.3.2)":
    "Gleichzeitige Verbindungen je sendendem Postfach (Exchange Online erlaubt 3; eine 4. bekommt 432 4.3.2)",
  "Messages sent over one connection before it is replaced":
    "Nachrichten über eine Verbindung, bevor sie ersetzt wird",
  "An unused connection is closed after this long":
    "Eine unbenutzte Verbindung wird nach dieser Zeit geschlossen",
  "Silence from the server that ends an attempt (Exchange holds the reply up to a minute when the 30 per minute limit is reached)":
    "Schweigen des Servers, das einen Versuch beendet (Exchange hält die Antwort bis zu einer Minute zurück, wenn die Grenze von 30 je Minute erreicht ist)",
  "Graph for sendMail. Graph's service root, with or without /v1.0 (e.g. https://graph.microsoft.com); default: the connection's cloud":
    "Graph für sendMail. Der Dienststamm von Graph, mit oder ohne /v1.0 (z. B. https://graph.microsoft.com); Standard: nach der Cloud der Verbindung",
  "Graph keeps a copy of every MIME message in Sent Items; sendMail with MIME content cannot turn that off (Graph takes saveToSentItems only with a JSON message), so only true is accepted":
    "Graph legt von jeder MIME-Nachricht eine Kopie in „Gesendete Elemente“ ab; sendMail mit MIME-Inhalt kann das nicht abschalten (Graph nimmt saveToSentItems nur bei einer JSON-Nachricht), daher ist nur true erlaubt",
  "smtp: messages Graph cannot carry as they are (over the 4 MB request limit, or with To/Cc recipients that are not envelope recipients) go over SMTP AUTH XOAUTH2 with the same connection and mailbox; none: oversized messages bounce, such To/Cc addresses are removed":
    "smtp: Nachrichten, die Graph nicht unverändert befördern kann (über der Anfragegrenze von 4 MB oder mit To/Cc-Empfängern, die keine Umschlag-Empfänger sind), gehen per SMTP AUTH XOAUTH2 mit derselben Verbindung und demselben Postfach; none: übergroße Nachrichten werden unzustellbar, solche To/Cc-Adressen entfernt",
  "How long one sendMail request may take":
    "Wie lange eine sendMail-Anfrage dauern darf",
  "Mails to an admin when the relay starts and stops, and when a credential nears its expiry":
    "Mails an einen Administrator, wenn das Relay startet und stoppt und wenn Anmeldedaten bald ablaufen",
  "Admin addresses that get the mails":
    "Adressen der Administratoren, die die Mails bekommen",
  "Sender of the mails; routed by relay.routes like any sender (it must be allowed to send)":
    "Absender der Mails; wird wie jeder Absender über relay.routes geleitet (er muss senden dürfen)",
  "When to send one: start, stop, credentials (a client secret or certificate 30, 14, 7 and 1 days before it expires, and once expired); for bounce reports to an admin use relay.bounces.notify: admin or both":
    "Wann eine Mail geht: start, stop, credentials (ein Clientschlüssel oder Zertifikat 30, 14, 7 und 1 Tag vor dem Ablauf und nach dem Ablauf); für Unzustellbarkeitsberichte an einen Administrator relay.bounces.notify: admin oder both",
  "How long a stopping relay waits for the stop mail to be sent":
    "Wie lange ein stoppendes Relay darauf wartet, dass die Stopp-Mail gesendet ist",
  "Slowing down password guessing, per client address":
    "Kennwortraten bremsen, je Client-Adresse",
  "Failed logins from one address before its logins are refused":
    "Fehlgeschlagene Anmeldungen einer Adresse, bevor ihre Anmeldungen abgelehnt werden",
  "Failures older than this are forgotten":
    "Ältere Fehlversuche werden vergessen",
  "How long logins from that address are refused (454 4.7.0)":
    "Wie lange Anmeldungen von dieser Adresse abgelehnt werden (454 4.7.0)",
  "Delay of the reply to a failed login; doubles with each failure":
    "Verzögerung der Antwort auf eine fehlgeschlagene Anmeldung; verdoppelt sich mit jedem Fehlversuch",
  "Longest such delay":
    "Längste solche Verzögerung",
  "Delivery: retries and Microsoft 365 per-mailbox limits":
    "Zustellung: Wiederholungen und die Grenzen von Microsoft 365 je Postfach",
  "Waits between attempts after temporary failures (Haraka notation); when used up, the message bounces":
    "Wartezeiten zwischen Versuchen nach vorübergehenden Fehlern (Haraka-Schreibweise); sind sie aufgebraucht, wird die Nachricht unzustellbar",
  "Deliveries at once per sending mailbox (Exchange Online allows 3 SMTP connections per mailbox)":
    "Gleichzeitige Zustellungen je sendendem Postfach (Exchange Online erlaubt 3 SMTP-Verbindungen je Postfach)",
  "Deliveries started per minute per sending mailbox (Exchange Online: 30 messages per minute)":
    "Begonnene Zustellungen je Minute und sendendem Postfach (Exchange Online: 30 Nachrichten je Minute)",
  "Recipients per sending mailbox in any 24 hours (Exchange Online: 10,000); more wait in the queue instead of getting the mailbox blocked":
    "Empfänger je sendendem Postfach in 24 Stunden (Exchange Online: 10.000); weitere warten in der Warteschlange, statt das Postfach sperren zu lassen",
  "Deliveries at once over all mailboxes":
    "Gleichzeitige Zustellungen über alle Postfächer",
  "Deliveries at once while applications send a burst (10 messages or more within a quarter of a second: taking mail in goes first); maxConcurrency again once fewer arrive":
    "Gleichzeitige Zustellungen, während Anwendungen einen Schwall senden (10 Nachrichten oder mehr in einer Viertelsekunde: die Annahme geht vor); wieder maxConcurrency, sobald weniger eingehen",
  "A delivery attempt that takes longer counts as a temporary failure":
    "Ein Zustellversuch, der länger dauert, gilt als vorübergehender Fehler",
  "How often the queue looks for changes made by `mailbridge queue` in another process":
    "Wie oft die Warteschlange nach Änderungen sieht, die `mailbridge queue` in einem anderen Prozess gemacht hat",
  "Days that sent and bounced entries stay listed":
    "Tage, die gesendete und unzustellbare Einträge gelistet bleiben",
  "Several nodes (store.driver: postgres): how long a delivery claim holds without renewal; a node that dies leaves its deliveries to the others after this":
    "Mehrere Knoten (store.driver: postgres): wie lange der Anspruch auf eine Zustellung ohne Erneuerung gilt; die Zustellungen eines ausgefallenen Knotens übernehmen die anderen nach dieser Zeit",
  "Bounce reports for messages that cannot be delivered":
    "Unzustellbarkeitsberichte für Nachrichten, die nicht zugestellt werden können",
  "Who gets the bounce report (RFC 3464) of a message that cannot be delivered":
    "Wer den Unzustellbarkeitsbericht (RFC 3464) einer nicht zustellbaren Nachricht bekommt",
  "Admin address for bounce reports (notify: admin or both)":
    "Adresse des Administrators für Unzustellbarkeitsberichte (notify: admin oder both)",
  "Mailbox that sends bounce reports (From, and the sending mailbox); default: the mailbox of the failed message":
    "Postfach, das Unzustellbarkeitsberichte sendet (From und sendendes Postfach); Standard: das Postfach der fehlgeschlagenen Nachricht",
  "Mailbox connectors: fetch mail from Microsoft 365 mailboxes into local systems (exactly once into a maildir, at least once with a delivery ID elsewhere)":
    "Postfach-Connectoren: Mails aus Microsoft-365-Postfächern in lokale Systeme holen (genau einmal in ein Maildir, sonst mindestens einmal mit Zustell-ID)",
  "Name of the connection (connections.<name>) whose tokens open the mailboxes":
    "Name der Verbindung (connections.<name>), deren Tokens die Postfächer öffnen",
  "IMAP server (default: the connection's cloud, e.g. outlook.office365.com; outlook.office365.us for GCC High)":
    "IMAP-Server (Standard: nach der Cloud der Verbindung, z. B. outlook.office365.com; outlook.office365.us für GCC High)",
  "implicit: TLS from the start (993); starttls: upgrade on 143; none: cleartext, only for a server on this machine":
    "implicit: TLS von Anfang an (993); starttls: Umstieg auf 143; none: unverschlüsselt, nur für einen Server auf diesem Rechner",
  "Extra CA certificates (PEM) to trust, e.g. of an on-premises server, a TLS-inspecting proxy or the sandbox":
    "Zusätzliche CA-Zertifikate (PEM), denen vertraut wird, z. B. eines lokalen Servers, eines TLS prüfenden Proxys oder der Sandbox",
  "TLS server name, when host is an IP address":
    "TLS-Servername, wenn host eine IP-Adresse ist",
  "Use IMAP IDLE to pick up new mail at once (the poll interval stays as a fallback)":
    "IMAP IDLE verwenden, um neue Mails sofort abzuholen (die Abfrage in Abständen bleibt als Rückfallebene)",
  "Restart IDLE this often (Exchange ends IDLE after 29 minutes)":
    "IDLE so oft neu starten (Exchange beendet IDLE nach 29 Minuten)",
  "Graph for the mailbox source. Graph's service root, with or without /v1.0 (e.g. https://graph.microsoft.com); default: the connection's cloud":
    "Graph für die Postfachquelle. Der Dienststamm von Graph, mit oder ohne /v1.0 (z. B. https://graph.microsoft.com); Standard: nach der Cloud der Verbindung",
  "Messages per delta page (Prefer: odata.maxpagesize)":
    "Nachrichten je Delta-Seite (Prefer: odata.maxpagesize)",
  "Extra CA certificates (PEM) to trust":
    "Zusätzliche CA-Zertifikate (PEM), denen vertraut wird",
  "Graph change notifications: new mail wakes the connector at once instead of at the next poll (needs an https URL Graph can reach)":
    "Graph-Änderungsbenachrichtigungen: Neue Mail weckt den Connector sofort statt erst bei der nächsten Abfrage (braucht eine https-URL, die Graph erreicht)",
  "How Microsoft Graph reaches the listener below over HTTPS (e.g. through a reverse proxy); setting it turns change notifications on: new mail is fetched at once, pollSeconds stays as the safety net":
    "Wie Microsoft Graph den Listener unten per HTTPS erreicht (z. B. über einen Reverse-Proxy); mit diesem Wert sind Änderungsbenachrichtigungen an: Neue Mail wird sofort abgeholt, pollSeconds bleibt als Sicherheitsnetz",
  "Inbound listener of this connector for Graph change notifications; give each connector that runs at the same time, and notify.watch.listen, a port of its own":
    "Eingehender Listener dieses Connectors für Graph-Änderungsbenachrichtigungen; jeder gleichzeitig laufende Connector und notify.watch.listen brauchen einen eigenen Port",
  "TLS certificate chain (PEM) of the public name; without it the listener speaks plain HTTP for a TLS-terminating proxy":
    "TLS-Zertifikatskette (PEM) des öffentlichen Namens; ohne sie spricht der Listener einfaches HTTP für einen Proxy, der TLS beendet",
  "Its private key (PEM)":
    "Sein privater Schlüssel (PEM)",
  "Path on the listener; the connector name is appended (notificationUrl = publicUrl + path + /<connector>)":
    "Pfad am Listener; der Name des Connectors wird angehängt (notificationUrl = publicUrl + Pfad + /<connector>)",
  "Lifetime asked for each subscription (Graph: at most 4,230 minutes for messages)":
    "Angeforderte Laufzeit je Abonnement (Graph: höchstens 4.230 Minuten für Nachrichten)",
  "Renew a subscription this long before it expires":
    "Ein Abonnement so lange vor seinem Ablauf erneuern",
  "Mailboxes to fetch from (user or shared): an address, or { address, folders }":
    "Postfächer, aus denen abgeholt wird (Benutzer- oder freigegebene Postfächer): eine Adresse oder { address, folders }",
  "Mailbox address (user or shared mailbox)":
    "Adresse des Postfachs (Benutzer- oder freigegebenes Postfach)",
  "Folders of this mailbox (default: the connector's folders)":
    "Ordner dieses Postfachs (Standard: die Ordner des Connectors)",
  "Folders of every mailbox that names none itself":
    "Ordner jedes Postfachs, das keine eigenen nennt",
  "auto: STARTTLS if offered":
    "auto: STARTTLS, wenn angeboten",
  "Login at the local server, if it wants one":
    "Anmeldung am lokalen Server, falls er eine verlangt",
  "Password at the local server":
    "Kennwort am lokalen Server",
  "Envelope recipients: map, else to, else domain, else the source mailbox address":
    "Umschlag-Empfänger: map, sonst to, sonst domain, sonst die Adresse des Quellpostfachs",
  "Fixed envelope recipients for every message":
    "Feste Umschlag-Empfänger für jede Nachricht",
  "Envelope recipients per source mailbox, e.g. { \"scanner@contoso.com\": [\"scans@intern.example\"] }":
    "Umschlag-Empfänger je Quellpostfach, z. B. { \"scanner@contoso.com\": [\"scans@intern.example\"] }",
  "Deliver to <local part of the source mailbox>@<domain>":
    "Zustellen an <lokaler Teil des Quellpostfachs>@<domain>",
  "Envelope sender: return-path (from the message, else its From), empty (<>), or an address":
    "Umschlag-Absender: return-path (aus der Nachricht, sonst ihr From), empty (<>) oder eine Adresse",
  "Name given in EHLO/LHLO (default: this host name)":
    "Name in EHLO/LHLO (Standard: der Rechnername)",
  "Add X-Mailbridge-Delivery-Id (stable per message) for receivers that deduplicate by it, e.g. Dovecot with share/sieve/mailbridge-dedupe.sieve; messages for the same recipients then go one at a time, and the message is no longer byte for byte":
    "X-Mailbridge-Delivery-Id hinzufügen (je Nachricht gleich) für Empfänger, die darüber deduplizieren, z. B. Dovecot mit share/sieve/mailbridge-dedupe.sieve; Nachrichten für dieselben Empfänger gehen dann einzeln, und die Nachricht ist nicht mehr Byte für Byte gleich",
  "Maildir directory (with tmp/, new/, cur/)":
    "Maildir-Verzeichnis (mit tmp/, new/, cur/)",
  "Create the maildir if it is missing":
    "Das Maildir anlegen, wenn es fehlt",
  "Receiver of one POST per message (JSON)":
    "Empfänger eines POST je Nachricht (JSON)",
  "HMAC-SHA256 key for the X-Mailbridge-Signature header":
    "HMAC-SHA256-Schlüssel für die Kopfzeile X-Mailbridge-Signature",
  "Extra request headers":
    "Zusätzliche Kopfzeilen der Anfrage",
  "Include the raw message (base64) in the JSON":
    "Die Rohnachricht (base64) ins JSON aufnehmen",
  "Program and arguments (no shell); gets the message on stdin. Exit 0 = delivered, 75 = retry later, other = refused":
    "Programm und Argumente (ohne Shell); bekommt die Nachricht auf stdin. Exit 0 = zugestellt, 75 = später erneut, sonst = abgelehnt",
  "Extra environment variables":
    "Zusätzliche Umgebungsvariablen",
  "After the destination acknowledged a message: seen (keep, mark read), move to a folder, delete (expunge), none":
    "Nachdem das Ziel eine Nachricht bestätigt hat: seen (behalten, als gelesen markieren), move in einen Ordner, delete (löschen), none",
  "Folder as Exchange names it: INBOX, or \"Inbox/Scans\" for a subfolder":
    "Ordner, wie Exchange ihn nennt: INBOX oder \"Inbox/Scans\" für einen Unterordner",
  "Look for new mail at least this often (also when IDLE or Graph change notifications are on)":
    "Mindestens so oft nach neuer Mail sehen (auch mit IDLE oder Graph-Änderungsbenachrichtigungen)",
  "Larger messages stay in the mailbox and are reported (Exchange Online allows 150 MB)":
    "Größere Nachrichten bleiben im Postfach und werden gemeldet (Exchange Online erlaubt 150 MB)",
  "Messages handed to the destination at once, per mailbox folder":
    "Nachrichten, die gleichzeitig an das Ziel gehen, je Postfachordner",
  "Mailboxes fetched at once per connection (idle mailboxes do not count)":
    "Postfächer, die je Verbindung gleichzeitig abgeholt werden (ruhende zählen nicht)",
  "Logins in progress at once per connection":
    "Gleichzeitig laufende Anmeldungen je Verbindung",
  "IMAP sessions per mailbox across all connectors of this instance (Exchange allows about 20)":
    "IMAP-Sitzungen je Postfach über alle Connectoren dieser Instanz (Exchange erlaubt etwa 20)",
  "Pauses between attempts when a destination or mailbox is unavailable (doubling)":
    "Pausen zwischen Versuchen, wenn ein Ziel oder Postfach nicht verfügbar ist (verdoppelnd)",
  "How long records of moved or deleted messages are kept":
    "Wie lange Einträge zu verschobenen oder gelöschten Nachrichten aufbewahrt werden",
  "Notifications: new-mail events to the apps and devices that subscribe through /api/v1/subscriptions, by webhook, Web Push, APNs or FCM":
    "Benachrichtigungen: Neue-Mail-Ereignisse an die Apps und Geräte, die sie über /api/v1/subscriptions abonnieren, per Webhook, Web Push, APNs oder FCM",
  "Retries of an event a sink could not deliver: the wait grows by factor from initialSeconds up to maxSeconds, until giveUpAfterHours":
    "Wiederholungen eines Ereignisses, das ein Ziel nicht zustellen konnte: die Wartezeit wächst um factor von initialSeconds bis maxSeconds, bis giveUpAfterHours",
  "Webhook sink: signed HTTP POSTs (Standard Webhooks) to the URL a subscription names; without it, webhook subscriptions are refused":
    "Webhook-Ziel: signierte HTTP-POSTs (Standard Webhooks) an die URL, die ein Abonnement nennt; ohne diesen Abschnitt werden Webhook-Abonnements abgelehnt",
  "Web Push sink: encrypted pushes (RFC 8030, VAPID) to browsers and installed web apps; without it, webpush subscriptions are refused":
    "Web-Push-Ziel: verschlüsselte Push-Nachrichten (RFC 8030, VAPID) an Browser und installierte Web-Apps; ohne diesen Abschnitt werden Web-Push-Abonnements abgelehnt",
  "APNs sink: pushes to iOS and macOS apps through Apple's provider API with a .p8 token key; without it, apns subscriptions are refused":
    "APNs-Ziel: Push-Nachrichten an iOS- und macOS-Apps über die Provider-API von Apple mit einem .p8-Tokenschlüssel; ohne diesen Abschnitt werden APNs-Abonnements abgelehnt",
  "FCM sink: pushes to Android apps (and Firebase apps on iOS and the web) through the FCM HTTP v1 API with a service account; without it, fcm subscriptions are refused":
    "FCM-Ziel: Push-Nachrichten an Android-Apps (und Firebase-Apps unter iOS und im Web) über die FCM-HTTP-v1-API mit einem Dienstkonto; ohne diesen Abschnitt werden FCM-Abonnements abgelehnt",
  "The subscriptions REST API: without a key every call is refused":
    "Die REST-API für Abonnements: ohne Schlüssel wird jeder Aufruf abgelehnt",
  "Named API keys for /api/v1/subscriptions, e.g. keys.mdm; set each with `mailbridge secret set notify.api.keys.<name>`":
    "Benannte API-Schlüssel für /api/v1/subscriptions, z. B. keys.mdm; jeden setzen mit `mailbridge secret set notify.api.keys.<name>`",
  "Wait before the first retry":
    "Wartezeit vor dem ersten erneuten Versuch",
  "Each wait is this many times the one before":
    "Jede Wartezeit ist so viel mal länger als die vorige",
  "Longest wait between two attempts":
    "Längste Wartezeit zwischen zwei Versuchen",
  "Stop retrying an event this long after it was published":
    "Ein Ereignis so lange nach seiner Veröffentlichung nicht mehr erneut versuchen",
  "Spread waits randomly by up to this fraction, so receivers are not hit in waves":
    "Wartezeiten zufällig um bis zu diesen Anteil streuen, damit Empfänger nicht in Wellen getroffen werden",
  "Keep delivered events (and their ids, for deduplication) this long":
    "Zugestellte Ereignisse (und ihre IDs, zur Deduplizierung) so lange aufbewahren",
  "Where subscribers may point webhooks and push endpoints: nothing internal unless listed here":
    "Wohin Abonnenten Webhooks und Push-Endpunkte zeigen lassen dürfen: nichts Internes, außer es steht hier",
  "Internal receivers that webhook URLs and Web Push endpoints may reach: CIDRs (10.20.0.0/16, fd00:1::/64) or exact host names. Everything else internal is refused (loopback, private, link-local, multicast, unspecified, IPv4 inside IPv6), and so are the gateway's own listeners":
    "Interne Empfänger, die Webhook-URLs und Web-Push-Endpunkte erreichen dürfen: CIDRs (10.20.0.0/16, fd00:1::/64) oder genaue Hostnamen. Alles andere Interne wird abgelehnt (Loopback, privat, link-local, Multicast, unspezifiziert, IPv4 in IPv6), ebenso die eigenen Listener des Gateways",
  "HTTP proxy for this sink's connections (default server.proxy, else HTTPS_PROXY)":
    "Proxy (HTTP) für die Verbindungen dieses Ziels (Standard server.proxy, sonst HTTPS_PROXY)",
  "Hosts this sink reaches directly, as in NO_PROXY (comma-separated, .domain for subdomains, * for all); default NO_PROXY":
    "Hosts, die dieses Ziel direkt erreicht, wie in NO_PROXY (durch Kommas getrennt, .domain für Subdomains, * für alle); Standard NO_PROXY",
  "A receiver that has not answered by then is retried later":
    "Ein Empfänger, der bis dahin nicht geantwortet hat, wird später erneut versucht",
  "Refuse http:// webhook URLs (signatures protect integrity, not confidentiality)":
    "http://-Webhook-URLs ablehnen (Signaturen schützen die Unversehrtheit, nicht die Vertraulichkeit)",
  "Contact for push services: mailto:admin@contoso.com or https://…":
    "Kontakt für Pushdienste: mailto:admin@contoso.com oder https://…",
  "VAPID public key, uncompressed P-256 point in base64url (the applicationServerKey browsers use)":
    "Öffentlicher VAPID-Schlüssel, unkomprimierter P-256-Punkt in base64url (der applicationServerKey der Browser)",
  "VAPID private key, 32 bytes in base64url":
    "Privater VAPID-Schlüssel, 32 Byte in base64url",
  "How long a push service keeps a message for an offline browser":
    "Wie lange ein Pushdienst eine Nachricht für einen Browser vorhält, der offline ist",
  "Refuse http:// push endpoints (every real push service is HTTPS)":
    "http://-Push-Endpunkte ablehnen (jeder echte Pushdienst spricht HTTPS)",
  "Apple Developer team ID (10 characters)":
    "Team-ID des Apple-Entwicklerkontos (10 Zeichen)",
  "ID of the APNs authentication key (.p8)":
    "ID des APNs-Authentifizierungsschlüssels (.p8)",
  "The .p8 key (PEM, PKCS#8, P-256; several lines: `mailbridge secret set … --file AuthKey_….p8`)":
    "Der .p8-Schlüssel (PEM, PKCS#8, P-256; mehrere Zeilen: `mailbridge secret set … --file AuthKey_….p8`)",
  "The app bundle ID, e.g. com.contoso.mail":
    "Die Bundle-ID der App, z. B. com.contoso.mail",
  "Override the APNs origin (tests, proxies); default from environment":
    "Den APNs-Ursprung überschreiben (Tests, Proxys); Standard nach environment",
  "Firebase project ID; default: project_id of the service account":
    "Firebase-Projekt-ID; Standard: project_id des Dienstkontos",
  "Service-account key JSON (client_email, private_key, token_uri; `mailbridge secret set … --file key.json`)":
    "JSON-Schlüssel des Dienstkontos (client_email, private_key, token_uri; `mailbridge secret set … --file key.json`)",
  "FCM origin (override for tests and proxies)":
    "FCM-Ursprung (überschreibbar für Tests und Proxys)",
  "Watched mailboxes: Graph change notifications, EWS streaming/push, IMAP IDLE":
    "Überwachte Postfächer: Graph-Änderungsbenachrichtigungen, EWS-Streaming/Push, IMAP IDLE",
  "How Graph (and EWS push) reach the listener below, e.g. through a reverse proxy; default server.publicUrl, else https://<listen.host>:<listen.port>":
    "Wie Graph (und EWS-Push) den Listener unten erreichen, z. B. über einen Reverse-Proxy; Standard server.publicUrl, sonst https://<listen.host>:<listen.port>",
  "Inbound listener for Graph change notifications and EWS push callbacks (only opened when a group needs it)":
    "Eingehender Listener für Graph-Änderungsbenachrichtigungen und EWS-Push-Rückrufe (nur geöffnet, wenn eine Gruppe ihn braucht)",
  "Graph for the watcher. Graph's service root, with or without /v1.0 (e.g. https://graph.microsoft.com); default: the connection's cloud":
    "Graph für den Watcher. Der Dienststamm von Graph, mit oder ohne /v1.0 (z. B. https://graph.microsoft.com); Standard: nach der Cloud der Verbindung",
  "Extra CA certificate (PEM file) to trust for Graph, e.g. the sandbox CA":
    "Zusätzliches CA-Zertifikat (PEM-Datei), dem für Graph vertraut wird, z. B. die CA der Sandbox",
  "Changes to subscribe to: created (new mail), updated (read state), deleted":
    "Änderungen, die abonniert werden: created (neue Mail), updated (Gelesen-Status), deleted",
  "Lifetime asked for each subscription (Graph: at most 4,230 minutes for messages; with includeResourceData at most 1,440 are asked for)":
    "Angeforderte Laufzeit je Abonnement (Graph: höchstens 4.230 Minuten für Nachrichten; mit includeResourceData werden höchstens 1.440 angefordert)",
  "Ask Graph for immutable message ids (Prefer: IdType=\"ImmutableId\"), so a moved message keeps its id":
    "Unveränderliche Nachrichten-IDs von Graph anfordern (Prefer: IdType=\"ImmutableId\"), damit eine verschobene Nachricht ihre ID behält",
  "Ask for lifecycle notifications (reauthorizationRequired, subscriptionRemoved, missed)":
    "Lebenszyklusbenachrichtigungen anfordern (reauthorizationRequired, subscriptionRemoved, missed)",
  "Rich notifications: Graph sends the message's sender, subject and date encrypted in the notification (subscriptions then live at most 1 day)":
    "Umfangreiche Benachrichtigungen: Graph schickt Absender, Betreff und Datum der Nachricht verschlüsselt in der Benachrichtigung (Abonnements leben dann höchstens 1 Tag)",
  "Graph requests at once per mailbox (Outlook allows 4 per app and mailbox)":
    "Gleichzeitige Graph-Anfragen je Postfach (Outlook erlaubt 4 je App und Postfach)",
  "Mailboxes set up (subscription created or renewed, catch-up run) at once, at start and on renewal":
    "Postfächer, die gleichzeitig eingerichtet werden (Abonnement angelegt oder erneuert, Nachholen gelaufen), beim Start und bei der Erneuerung",
  "Delta rounds running at once across all mailboxes of this listener":
    "Gleichzeitig laufende Delta-Runden über alle Postfächer dieses Listeners",
  "Wait before the first retry of a failed subscription":
    "Wartezeit vor dem ersten erneuten Versuch eines fehlgeschlagenen Abonnements",
  "Path on the inbound HTTPS listener; the listener id is appended (notificationUrl = publicUrl + path + /<listener>)":
    "Pfad am eingehenden HTTPS-Listener; die ID des Listeners wird angehängt (notificationUrl = publicUrl + Pfad + /<listener>)",
  "The listener pool: mailboxes are spread over these":
    "Der Listener-Pool: Die Postfächer werden auf diese verteilt",
  "Name in status output (default: the connection or user name); subscriptions belong to it, so keep it stable":
    "Name in Statusausgaben (Standard: der Verbindungs- oder Benutzername); Abonnements gehören zu ihm, er sollte also gleich bleiben",
  "Entra ID connection whose tokens this listener uses (connections.<name>)":
    "Entra-ID-Verbindung, deren Tokens dieser Listener verwendet (connections.<name>)",
  "On-premises service account (EWS Basic auth or IMAP login) instead of a connection":
    "Lokales Dienstkonto (EWS-Basic-Anmeldung oder IMAP-Anmeldung) statt einer Verbindung",
  "Password of that account":
    "Kennwort dieses Kontos",
  "Mailboxes this listener watches at most (MaaS360 listener accounts: 1,250)":
    "Höchstens so viele Postfächer überwacht dieser Listener (Listenerkonten bei MaaS360: 1.250)",
  "Folders watched in each mailbox unless the mailbox names its own":
    "Ordner, die in jedem Postfach überwacht werden, sofern das Postfach keine eigenen nennt",
  "minimal: events never carry sender and subject (they are not even read)":
    "minimal: Ereignisse tragen nie Absender und Betreff (sie werden nicht einmal gelesen)",
  "EWS URL, e.g. https://mail.contoso.com/EWS/Exchange.asmx; without it, autodiscover finds it per mailbox":
    "EWS-URL, z. B. https://mail.contoso.com/EWS/Exchange.asmx; ohne sie findet Autodiscover sie je Postfach",
  "A fixed autodiscover endpoint (…/autodiscover.svc, …/autodiscover.xml or …/autodiscover.json/v1.0) instead of the usual candidates":
    "Ein fester Autodiscover-Endpunkt (…/autodiscover.svc, …/autodiscover.xml oder …/autodiscover.json/v1.0) statt der üblichen Kandidaten",
  "Which EWS URL to use when autodiscover names both":
    "Welche EWS-URL verwendet wird, wenn Autodiscover beide nennt",
  "How long autodiscover answers are kept":
    "Wie lange Antworten von Autodiscover aufbewahrt werden",
  "Watch only mailboxes on these mailbox servers (autodiscover InternalMailboxServer; short or full names)":
    "Nur Postfächer auf diesen Postfachservern überwachen (Autodiscover InternalMailboxServer; kurze oder volle Namen)",
  "streaming: mailbridge holds the connection; push: Exchange calls the inbound listener":
    "streaming: mailbridge hält die Verbindung; push: Exchange ruft den eingehenden Listener auf",
  "GetStreamingEvents ConnectionTimeout (1–30 minutes)":
    "ConnectionTimeout von GetStreamingEvents (1–30 Minuten)",
  "Expected heartbeat; a stream silent for twice this long is reconnected":
    "Erwarteter Heartbeat; ein Stream, der doppelt so lange schweigt, wird neu verbunden",
  "Push: StatusFrequency; silence over twice this resubscribes":
    "Push: StatusFrequency; Schweigen über das Doppelte abonniert neu",
  "How a listener's username/password signs in on premises: ntlm (Windows authentication, what Exchange's EWS virtual directory ships with; username DOMAIN\\user or a UPN) or basic (where Basic is enabled on /EWS)":
    "Wie sich username/password eines Listeners lokal anmelden: ntlm (Windows-Authentifizierung, mit der das EWS-Verzeichnis von Exchange ausgeliefert wird; Benutzer DOMÄNE\\benutzer oder UPN) oder basic (wo Basic an /EWS aktiviert ist)",
  "Send ExchangeImpersonation (needed for app-only tokens and service accounts with ApplicationImpersonation)":
    "ExchangeImpersonation senden (nötig für reine App-Tokens und Dienstkonten mit ApplicationImpersonation)",
  "RequestServerVersion":
    "RequestServerVersion",
  "PEM file of the CA that issued the Exchange server certificate":
    "PEM-Datei der CA, die das Zertifikat des Exchange-Servers ausgestellt hat",
  "Subscribe and catch-up requests in flight at once":
    "Gleichzeitig laufende Abonnement- und Nachhol-Anfragen",
  "Longest ErrorServerBusy back-off honoured in one wait":
    "Längste Wartezeit nach ErrorServerBusy, die in einem Stück eingehalten wird",
  "xoauth2: the connection's token, user = the mailbox (Exchange Online, IMAP.AccessAsApp); or { user, password } for on-premises servers":
    "xoauth2: das Token der Verbindung, Benutzer = das Postfach (Exchange Online, IMAP.AccessAsApp); oder { user, password } für lokale Server",
  "Login name; {mailbox} stands for the watched address (e.g. \"{mailbox}*master\" for a Dovecot master user)":
    "Anmeldename; {mailbox} steht für die überwachte Adresse (z. B. \"{mailbox}*master\" für einen Dovecot-Master-Benutzer)",
  "Password of that login":
    "Kennwort dieser Anmeldung",
  "Restart IDLE this often (Exchange ends IDLE after 29 minutes; 10 minutes is known to work well)":
    "IDLE so oft neu starten (Exchange beendet IDLE nach 29 Minuten; 10 Minuten haben sich bewährt)",
  "Look at each folder this often even without a word from the server (a safety net for servers that drop IDLE notifications; the only mechanism without IDLE)":
    "Jeden Ordner so oft ansehen, auch ohne ein Wort vom Server (ein Sicherheitsnetz für Server, die IDLE-Meldungen verlieren; ohne IDLE der einzige Weg)",
  "Back-off between reconnect attempts of one folder: initial, doubled per failure, capped at max (with 20 % jitter)":
    "Wartezeit zwischen Wiederverbindungsversuchen eines Ordners: Anfangswert, je Fehlschlag verdoppelt, begrenzt auf max (mit 20 % Streuung)",
  "Logins (and first catch-ups) in progress at once per listener, so that many mailboxes do not storm the server at start or after an outage":
    "Gleichzeitig laufende Anmeldungen (und erstes Nachholen) je Listener, damit viele Postfächer den Server beim Start oder nach einem Ausfall nicht überrennen",
  "The admin API under /api/v1 (reference at /api/reference): its keys and their scopes":
    "Die Admin-API unter /api/v1 (Referenz unter /api/reference): ihre Schlüssel und deren Berechtigungen",
  "Named keys of the admin API /api/v1, e.g. keys.monitoring; set each with `mailbridge secret set api.keys.<name>.key`. The name is who the audit log names":
    "Benannte Schlüssel der Admin-API /api/v1, z. B. keys.monitoring; jeden setzen mit `mailbridge secret set api.keys.<name>.key`. Der Name ist der, den das Audit-Protokoll nennt",
  "The API key (at least 16 random characters) callers send as `Authorization: Bearer <key>`":
    "Der API-Schlüssel (mindestens 16 zufällige Zeichen), den Aufrufer als `Authorization: Bearer <key>` senden",
  "What the key may do: read, operate (queue actions, retries; includes read), admin (includes operate, read and subscriptions), subscriptions":
    "Was der Schlüssel darf: read, operate (Aktionen in der Warteschlange, Wiederholungen; schließt read ein), admin (schließt operate, read und subscriptions ein), subscriptions",
  "Local admin users of the console (for installs without Entra ID); the audit log names them user:<name>":
    "Lokale Administratoren der Konsole (für Installationen ohne Entra ID); das Audit-Protokoll nennt sie user:<name>",
  "scrypt hash of the password ($scrypt$ln=15,r=8,p=1$…), written by `mailbridge api user set <name>`; not a secret, the clear password is never stored":
    "scrypt-Hash des Kennworts ($scrypt$ln=15,r=8,p=1$…), geschrieben von `mailbridge api user set <name>`; kein Geheimnis, das Kennwort selbst wird nie gespeichert",
  "reader (read), operator (read and queue/connector actions), admin (everything)":
    "reader (lesen), operator (lesen sowie Aktionen an Warteschlange und Connectoren), admin (alles)",
  "How admins sign in to the console besides local users: Entra ID (OpenID Connect, auth code + PKCE)":
    "Wie sich Administratoren außer als lokale Benutzer an der Konsole anmelden: Entra ID (OpenID Connect, Autorisierungscode + PKCE)",
  "The connection (tenant, app, credential) admins sign in through; its app defines the app roles reader, operator, admin":
    "Die Verbindung (Mandant, App, Anmeldedaten), über die sich Administratoren anmelden; ihre App legt die App-Rollen reader, operator und admin fest",
  "Redirect URI registered on the app (Web platform); default: <server.publicUrl>/login/entra/callback":
    "An der App registrierte Umleitungs-URI (Plattform Web); Standard: <server.publicUrl>/login/entra/callback",
  "A console session ends after this many minutes without a request":
    "Eine Konsolensitzung endet nach so vielen Minuten ohne Anfrage",
  "A console session ends this many hours after sign-in, however active":
    "Eine Konsolensitzung endet so viele Stunden nach der Anmeldung, wie aktiv sie auch ist",
};
