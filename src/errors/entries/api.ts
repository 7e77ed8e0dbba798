import type { CatalogueSection } from '../types.ts';

/** The admin API under /api/v1 (src/api): keys, scopes, request checks. */
export const api = {
  MB_API_UNAUTHORIZED: {
    http: 401,
    title: { en: 'Not signed in, or API key missing or wrong', de: 'Nicht angemeldet, oder API-Schlüssel fehlt oder ist falsch' },
    cause: {
      en: 'The request to {path} had no "Authorization: Bearer" header with a key of api.keys (nor, for subscriptions, of notify.api.keys), and no console session (cookie mb_session) that is still valid. Every call to /api/v1 needs one of them.',
      de: 'Die Anfrage an {path} hatte weder einen Header „Authorization: Bearer“ mit einem Schlüssel aus api.keys (bzw. für Abonnements aus notify.api.keys) noch eine noch gültige Konsolensitzung (Cookie mb_session). Jeder Aufruf von /api/v1 braucht eines davon.',
    },
    fix: {
      en: 'In the browser, sign in again at /login. Programs send the header "Authorization: Bearer <key>": create a key with `mailbridge secret set api.keys.<name>.key` (at least 16 random characters), give it scopes under api.keys.<name>.scopes (read, operate, admin, subscriptions) and restart mailbridge.',
      de: 'Im Browser melden Sie sich unter /login erneut an. Programme senden den Header „Authorization: Bearer <Schlüssel>“: Legen Sie einen Schlüssel mit `mailbridge secret set api.keys.<name>.key` an (mindestens 16 Zufallszeichen), geben Sie ihm unter api.keys.<name>.scopes Berechtigungen (read, operate, admin, subscriptions) und starten Sie mailbridge neu.',
    },
  },
  MB_API_FORBIDDEN: {
    http: 403,
    title: { en: 'API key lacks the scope', de: 'Dem API-Schlüssel fehlt die Berechtigung' },
    cause: {
      en: 'The key {key} may use {scopes}; {method} {path} needs the scope {scope}.',
      de: 'Der Schlüssel {key} darf {scopes}; {method} {path} braucht die Berechtigung {scope}.',
    },
    fix: {
      en: 'Use a key that has the scope {scope}, or add it in mailbridge.yaml: api.keys.{key}.scopes: [..., {scope}] (admin includes operate and read; operate includes read), then restart mailbridge.',
      de: 'Verwenden Sie einen Schlüssel mit der Berechtigung {scope}, oder ergänzen Sie sie in mailbridge.yaml: api.keys.{key}.scopes: [..., {scope}] (admin schließt operate und read ein, operate schließt read ein), und starten Sie mailbridge neu.',
    },
  },
  MB_API_INVALID: {
    http: 400,
    title: { en: 'Request not valid', de: 'Anfrage ungültig' },
    cause: {
      en: 'The request to {path} does not match the API description: {detail}',
      de: 'Die Anfrage an {path} passt nicht zur API-Beschreibung: {detail}',
    },
    fix: {
      en: 'Correct the request as the reference at /api/reference describes it (machine-readable: /api/openapi.json).',
      de: 'Korrigieren Sie die Anfrage so, wie die Referenz unter /api/reference sie beschreibt (maschinenlesbar: /api/openapi.json).',
    },
  },
  MB_API_NOT_FOUND: {
    http: 404,
    title: { en: 'No such API route', de: 'Diese API-Route gibt es nicht' },
    cause: {
      en: '{method} {path} is not part of the admin API.',
      de: '{method} {path} gehört nicht zur Admin-API.',
    },
    fix: {
      en: 'Look up the route in the reference at /api/reference (machine-readable: /api/openapi.json).',
      de: 'Schlagen Sie die Route in der Referenz unter /api/reference nach (maschinenlesbar: /api/openapi.json).',
    },
  },
  MB_API_NOT_CONFIGURED: {
    http: 404,
    title: { en: 'Not configured in this gateway', de: 'In diesem Gateway nicht eingerichtet' },
    cause: {
      en: '{path} answers only when mailbridge.yaml has a {section} section and `mailbridge serve` runs it; this gateway has none.',
      de: '{path} antwortet nur, wenn mailbridge.yaml einen Abschnitt {section} hat und `mailbridge serve` ihn betreibt; dieses Gateway hat keinen.',
    },
    fix: {
      en: 'Add the {section} section to mailbridge.yaml (see `mailbridge config schema`), check it with `mailbridge config check`, and restart mailbridge: systemctl restart mailbridge',
      de: 'Ergänzen Sie den Abschnitt {section} in mailbridge.yaml (siehe `mailbridge config schema`), prüfen Sie ihn mit `mailbridge config check` und starten Sie mailbridge neu: systemctl restart mailbridge',
    },
  },
  MB_API_UNKNOWN_NAME: {
    http: 404,
    title: { en: 'Not in the configuration', de: 'Nicht in der Konfiguration' },
    cause: {
      en: 'There is no {kind} named {name}; configured: {known}.',
      de: 'Es gibt kein(e) {kind} namens {name}; eingerichtet: {known}.',
    },
    fix: {
      en: 'Use one of the configured names (GET the list of the same route without the name), or add it to mailbridge.yaml and restart mailbridge.',
      de: 'Verwenden Sie einen der eingerichteten Namen (die Liste liefert dieselbe Route ohne den Namen), oder ergänzen Sie ihn in mailbridge.yaml und starten Sie mailbridge neu.',
    },
  },
  MB_API_LOGIN_FAILED: {
    http: 401,
    title: { en: 'Sign-in failed', de: 'Anmeldung fehlgeschlagen' },
    cause: {
      en: 'The user name or the password is wrong (mailbridge does not say which, so that user names cannot be guessed).',
      de: 'Der Benutzername oder das Kennwort ist falsch (mailbridge sagt nicht, was davon, damit sich Benutzernamen nicht erraten lassen).',
    },
    fix: {
      en: 'Check the user name and password. An admin on the mailbridge host sets a new password with: mailbridge api user set <name> --role <reader|operator|admin>',
      de: 'Prüfen Sie Benutzername und Kennwort. Ein Administrator setzt auf dem mailbridge-Host ein neues Kennwort mit: mailbridge api user set <name> --role <reader|operator|admin>',
    },
  },
  MB_API_LOGIN_LOCKED: {
    http: 429,
    title: { en: 'Too many failed sign-ins', de: 'Zu viele fehlgeschlagene Anmeldungen' },
    cause: {
      en: 'After {failures} failed sign-ins for this user name or from this address, sign-ins are paused for {seconds} seconds, against password guessing.',
      de: 'Nach {failures} fehlgeschlagenen Anmeldungen für diesen Benutzernamen oder von dieser Adresse sind Anmeldungen zum Schutz vor dem Erraten von Kennwörtern für {seconds} Sekunden gesperrt.',
    },
    fix: {
      en: 'Wait {seconds} seconds and sign in with the right password. If nobody of yours made these attempts, look at the audit log (GET /api/v1/audit) for the address they came from.',
      de: 'Warten Sie {seconds} Sekunden und melden Sie sich mit dem richtigen Kennwort an. Stammen die Versuche nicht von Ihnen, finden Sie die Absenderadresse im Audit-Protokoll (GET /api/v1/audit).',
    },
  },
  MB_API_CSRF: {
    http: 403,
    title: { en: 'Request not confirmed by the console (CSRF)', de: 'Anfrage nicht von der Konsole bestätigt (CSRF)' },
    cause: {
      en: 'A change to {path} came with the console session cookie but {problem}. A page of another site could otherwise make your browser change mailbridge.',
      de: 'Eine Änderung an {path} kam mit dem Sitzungs-Cookie der Konsole, aber {problem}. Sonst könnte eine Seite einer anderen Website Ihren Browser mailbridge ändern lassen.',
    },
    fix: {
      en: 'Reload the console page and try again. Scripts send the header x-csrf-token with the csrfToken of GET /api/v1/session, or use an API key (Authorization: Bearer) instead of the cookie.',
      de: 'Laden Sie die Konsolenseite neu und versuchen Sie es noch einmal. Skripte senden den Header x-csrf-token mit dem csrfToken aus GET /api/v1/session oder verwenden statt des Cookies einen API-Schlüssel (Authorization: Bearer).',
    },
  },
  MB_API_SIGNIN_NO_ROLE: {
    http: 403,
    title: { en: 'No mailbridge role assigned', de: 'Keine mailbridge-Rolle zugewiesen' },
    cause: {
      en: '{account} signed in through the connection {connection}, but the sign-in carries none of the app roles reader, operator or admin (the id token has no roles claim for this user).',
      de: '{account} hat sich über die Verbindung {connection} angemeldet, aber die Anmeldung trägt keine der App-Rollen reader, operator oder admin (das ID-Token enthält für diesen Benutzer keinen roles-Claim).',
    },
    fix: {
      en: 'Entra admin center › Enterprise applications › (the app of {connection}) › Users and groups › Add user/group: assign {account} the role reader, operator or admin, then sign in again. PowerShell: New-MgUserAppRoleAssignment -UserId <user> -PrincipalId <user> -ResourceId <service principal ID> -AppRoleId <role ID>',
      de: 'Entra Admin Center › Unternehmensanwendungen › (die App von {connection}) › Benutzer und Gruppen › Benutzer/Gruppe hinzufügen: {account} die Rolle reader, operator oder admin zuweisen und erneut anmelden. PowerShell: New-MgUserAppRoleAssignment -UserId <Benutzer> -PrincipalId <Benutzer> -ResourceId <Dienstprinzipal-ID> -AppRoleId <Rollen-ID>',
    },
  },
  MB_API_SIGNIN_NOT_CONFIGURED: {
    http: 404,
    title: { en: 'Sign-in with Entra ID is not set up', de: 'Anmeldung mit Entra ID ist nicht eingerichtet' },
    cause: {
      en: 'mailbridge.yaml has no api.signin.entra.connection, or it names no connection of the file ({connection}).',
      de: 'mailbridge.yaml hat kein api.signin.entra.connection, oder es nennt keine Verbindung der Datei ({connection}).',
    },
    fix: {
      en: 'Set api.signin.entra.connection to a connection whose app has the redirect URI <server.publicUrl>/login/entra/callback (Web platform) and the app roles reader, operator, admin (`mailbridge setup` adds them), then restart mailbridge. Local users sign in at /login meanwhile.',
      de: 'Setzen Sie api.signin.entra.connection auf eine Verbindung, deren App den Umleitungs-URI <server.publicUrl>/login/entra/callback (Plattform Web) und die App-Rollen reader, operator, admin hat (`mailbridge setup` legt sie an), und starten Sie mailbridge neu. Lokale Benutzer melden sich solange unter /login an.',
    },
  },
  MB_SERVER_TLS_REQUIRED: {
    http: 500,
    title: { en: 'Console reachable from the network without TLS', de: 'Konsole ohne TLS aus dem Netz erreichbar' },
    cause: {
      en: 'server.listen is {listen}, which other hosts reach, but server.tls is not set: passwords, session cookies and API keys would cross the network in clear text. mailbridge does not start so.',
      de: 'server.listen ist {listen} und damit von anderen Hosts erreichbar, aber server.tls ist nicht gesetzt: Kennwörter, Sitzungs-Cookies und API-Schlüssel gingen unverschlüsselt über das Netz. So startet mailbridge nicht.',
    },
    fix: {
      en: 'Set server.tls.cert and server.tls.key to PEM files (e.g. from your CA, or /etc/ssl/certs/ssl-cert-snakeoil.pem and /etc/ssl/private/ssl-cert-snakeoil.key), or server.listen: 127.0.0.1. Only if a reverse proxy in front terminates TLS, set server.insecure: true. Then: mailbridge config check',
      de: 'Setzen Sie server.tls.cert und server.tls.key auf PEM-Dateien (z. B. von Ihrer CA, oder /etc/ssl/certs/ssl-cert-snakeoil.pem und /etc/ssl/private/ssl-cert-snakeoil.key), oder server.listen: 127.0.0.1. Nur wenn ein vorgeschalteter Reverse-Proxy TLS beendet, setzen Sie server.insecure: true. Danach: mailbridge config check',
    },
  },
  MB_SERVER_TLS_UNREADABLE: {
    http: 500,
    title: { en: 'TLS certificate or key not usable', de: 'TLS-Zertifikat oder -Schlüssel nicht verwendbar' },
    cause: {
      en: 'server.tls: {file} could not be used: {detail}',
      de: 'server.tls: {file} ließ sich nicht verwenden: {detail}',
    },
    fix: {
      en: 'Point server.tls.cert to the PEM certificate (chain) and server.tls.key to its unencrypted PEM private key, readable by the mailbridge user: ls -l {file}',
      de: 'Lassen Sie server.tls.cert auf das PEM-Zertifikat (mit Kette) und server.tls.key auf dessen unverschlüsselten privaten PEM-Schlüssel zeigen, lesbar für den Benutzer mailbridge: ls -l {file}',
    },
  },
  MB_API_RUN_NOT_FOUND: {
    http: 404,
    title: { en: 'No such {kind}', de: 'Diesen {kind} gibt es nicht' },
    cause: {
      en: 'This gateway has no {kind} {id}. It keeps the last {keep} runs in memory; runs of another node or from before a restart are gone.',
      de: 'Dieses Gateway hat keinen {kind} {id}. Es behält die letzten {keep} Läufe im Speicher; Läufe eines anderen Knotens oder von vor einem Neustart gibt es nicht mehr.',
    },
    fix: {
      en: 'List the runs with GET {list}, or start a new one with POST {list}.',
      de: 'Die Läufe mit GET {list} auflisten oder mit POST {list} einen neuen starten.',
    },
  },
  MB_API_CONFIG_REFUSED: {
    http: 422,
    title: { en: 'Configuration not applied: it has errors', de: 'Konfiguration nicht übernommen: sie enthält Fehler' },
    cause: {
      en: 'The candidate mailbridge.yaml has {count} error(s): {problems}. mailbridge.yaml was left as it is.',
      de: 'Die neue mailbridge.yaml hat {count} Fehler: {problems}. mailbridge.yaml blieb unverändert.',
    },
    fix: {
      en: 'Correct each error at its line (POST /api/v1/config/validate lists them with cause and fix), then apply again.',
      de: 'Beheben Sie jeden Fehler in seiner Zeile (POST /api/v1/config/validate listet sie mit Ursache und Behebung auf) und übernehmen Sie erneut.',
    },
  },
  MB_API_CONFIG_SECRET_CLEAR: {
    http: 422,
    title: { en: 'Configuration not applied: secret in plain text', de: 'Konfiguration nicht übernommen: Geheimnis im Klartext' },
    cause: {
      en: '{fields} would be written to mailbridge.yaml in plain text: the gateway seals a secret typed in the editor (enc:v1:…) only with the installation\'s key, and it has none yet (MAILBRIDGE_KEY unset, no key file). mailbridge.yaml was left as it is.',
      de: '{fields} stünde im Klartext in mailbridge.yaml: Das Gateway versiegelt ein im Editor eingegebenes Geheimnis (enc:v1:…) nur mit dem Schlüssel der Installation, und den gibt es noch nicht (MAILBRIDGE_KEY nicht gesetzt, keine Schlüsseldatei). mailbridge.yaml blieb unverändert.',
    },
    fix: {
      en: 'Set the secret once on the gateway host, which creates the key file (back it up): `mailbridge secret set {first}`; then edit and apply again.',
      de: 'Setzen Sie das Geheimnis einmal auf dem Gateway-Rechner; dabei entsteht die Schlüsseldatei (sichern Sie sie): `mailbridge secret set {first}`. Danach erneut bearbeiten und übernehmen.',
    },
  },
  MB_API_CONFIG_MASK_NEW: {
    http: 422,
    title: { en: 'Configuration not applied: mask where the file has no value', de: 'Konfiguration nicht übernommen: Maske, wo die Datei keinen Wert hat' },
    cause: {
      en: '{field} holds the mask ********. A mask keeps the value mailbridge.yaml has at that place, but the file has none there (a new entry, or a copied section). mailbridge.yaml was left as it is.',
      de: '{field} enthält die Maske ********. Eine Maske behält den Wert, den mailbridge.yaml an dieser Stelle hat, aber dort steht in der Datei keiner (ein neuer Eintrag oder ein kopierter Abschnitt). mailbridge.yaml blieb unverändert.',
    },
    fix: {
      en: 'Type the new value in place of the mask; it will be sealed before it is written. Or set it on the gateway host: `mailbridge secret set {field}` (a password hash: mailbridge relay-user passwd or mailbridge api user set).',
      de: 'Geben Sie anstelle der Maske den neuen Wert ein; er wird vor dem Schreiben versiegelt. Oder setzen Sie ihn auf dem Gateway-Rechner: `mailbridge secret set {field}` (ein Passwort-Hash: mailbridge relay-user passwd oder mailbridge api user set).',
    },
  },
  MB_API_CONFIG_SECRET_UNREADABLE: {
    http: 422,
    title: { en: 'Configuration not applied: sealed secret this gateway cannot open', de: 'Konfiguration nicht übernommen: versiegeltes Geheimnis, das dieses Gateway nicht öffnen kann' },
    cause: {
      en: '{field} is sealed (enc:v1:…) with another key than this gateway\'s ({keySource}), or was changed. mailbridge.yaml was left as it is.',
      de: '{field} ist mit einem anderen Schlüssel als dem dieses Gateways ({keySource}) versiegelt oder wurde verändert. mailbridge.yaml blieb unverändert.',
    },
    fix: {
      en: 'Copy the sealed value from this gateway\'s mailbridge.yaml, or set it on the gateway host: `mailbridge secret set {field}`.',
      de: 'Übernehmen Sie den versiegelten Wert aus der mailbridge.yaml dieses Gateways, oder setzen Sie ihn auf dem Gateway-Rechner: `mailbridge secret set {field}`.',
    },
  },
  MB_API_STREAM_BUSY: {
    http: 503,
    title: { en: 'Too many live update streams', de: 'Zu viele Live-Aktualisierungs-Streams' },
    cause: {
      en: 'This gateway already serves {max} live update streams (/api/v1/stream: open console tabs and other clients); it refuses more so that slow clients cannot exhaust its memory.',
      de: 'Dieses Gateway bedient bereits {max} Live-Aktualisierungs-Streams (/api/v1/stream: offene Konsolen-Tabs und andere Clients); weitere lehnt es ab, damit langsame Clients seinen Speicher nicht aufbrauchen.',
    },
    fix: {
      en: 'Close console tabs you do not need (the page retries by itself), or find the client holding many streams: ss -tnp state established "( sport = :8080 )" (8080: the default of server.port).',
      de: 'Schließen Sie nicht benötigte Konsolen-Tabs (die Seite versucht es von selbst erneut), oder suchen Sie den Client, der viele Streams hält: ss -tnp state established "( sport = :8080 )" (8080: Vorgabe von server.port).',
    },
  },
} satisfies CatalogueSection;
