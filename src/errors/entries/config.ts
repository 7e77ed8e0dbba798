import type { CatalogueSection } from '../types.ts';

/**
 * Configuration (mailbridge.yaml, MAILBRIDGE__… variables) and secrets at rest.
 *
 * The MB_CONFIG_* codes below MB_CONFIG_INVALID are the single problems `mailbridge config check`
 * reports, one per kind of mistake, so each can say in plain words what is wrong and what to do.
 * Their parameters are language-neutral (paths, values, numbers), which is why a value's expected
 * type is part of the code (MB_CONFIG_EXPECTED_NUMBER) rather than a parameter.
 * `{field}` is always the dotted path in the file, e.g. connections.contoso.tenantId.
 */
export const config = {
  MB_CONFIG_UNREADABLE: {
    http: 500,
    title: { en: 'Configuration file unreadable', de: 'Konfigurationsdatei nicht lesbar' },
    cause: { en: 'mailbridge could not read {path}: {detail}', de: 'mailbridge konnte {path} nicht lesen: {detail}' },
    fix: {
      en: 'Check the file name and its permissions, and that it is valid YAML (run `mailbridge config check`).',
      de: 'Prüfen Sie Dateiname und Berechtigungen und ob die Datei gültiges YAML ist (`mailbridge config check`).',
    },
  },
  MB_CONFIG_INVALID: {
    http: 500,
    title: { en: 'Configuration invalid', de: 'Konfiguration ungültig' },
    cause: {
      en: '{path} has {count} error(s). The first, at {field}: {detail}',
      de: '{path} enthält {count} Fehler. Der erste, bei {field}: {detail}',
    },
    fix: {
      en: 'Correct the value at {field}; `mailbridge config check` lists every error with its fix.',
      de: 'Korrigieren Sie den Wert bei {field}; `mailbridge config check` listet alle Fehler mit Behebung.',
    },
  },
  MB_CONFIG_WRITE_FAILED: {
    http: 500,
    title: { en: 'Configuration file not written', de: 'Konfigurationsdatei nicht geschrieben' },
    cause: { en: 'mailbridge could not write {path}: {detail}', de: 'mailbridge konnte {path} nicht schreiben: {detail}' },
    fix: {
      en: 'Check that the folder exists and that the user running mailbridge may write to it and to the file; the file was left unchanged.',
      de: 'Prüfen Sie, ob der Ordner existiert und der Benutzer, unter dem mailbridge läuft, ihn und die Datei schreiben darf; die Datei blieb unverändert.',
    },
  },

  // ── Single problems found by `config check` ─────────────────────────────────────────────────
  MB_CONFIG_YAML_SYNTAX: {
    http: 500,
    title: { en: 'Not valid YAML', de: 'Kein gültiges YAML' },
    cause: {
      en: '{file} is not valid YAML at line {line}, column {column}: {detail}',
      de: '{file} ist in Zeile {line}, Spalte {column} kein gültiges YAML: {detail}',
    },
    fix: {
      en: 'Look at line {line} and the lines around it: indent with spaces, never tabs; every key needs ": " after it; close every quote and bracket; put values containing ": " or " #" in quotes.',
      de: 'Prüfen Sie Zeile {line} und die Zeilen darum herum: mit Leerzeichen einrücken, nie mit Tabulatoren; nach jedem Schlüssel steht ": "; jedes Anführungszeichen und jede Klammer schließen; Werte mit ": " oder " #" in Anführungszeichen setzen.',
    },
  },
  MB_CONFIG_REQUIRED: {
    http: 500,
    title: { en: 'Setting missing', de: 'Einstellung fehlt' },
    cause: { en: '{field} is required but missing.', de: '{field} ist erforderlich, fehlt aber.' },
    fix: { en: 'Add {field} to {file}.', de: 'Ergänzen Sie {field} in {file}.' },
  },
  MB_CONFIG_REQUIRED_CHOICE: {
    http: 500,
    title: { en: 'Setting missing', de: 'Einstellung fehlt' },
    cause: { en: '{field} is required but missing.', de: '{field} ist erforderlich, fehlt aber.' },
    fix: { en: 'Add {field} to {file} with one of: {allowed}.', de: 'Ergänzen Sie {field} in {file} mit einem dieser Werte: {allowed}.' },
  },
  MB_CONFIG_EMPTY: {
    http: 500,
    title: { en: 'Setting empty', de: 'Einstellung leer' },
    cause: { en: '{field} is empty.', de: '{field} ist leer.' },
    fix: {
      en: 'Enter a value for {field}, or delete the line if the setting is optional.',
      de: 'Tragen Sie einen Wert für {field} ein oder löschen Sie die Zeile, wenn die Einstellung optional ist.',
    },
  },
  MB_CONFIG_EXPECTED_TEXT: {
    http: 500,
    title: { en: 'Text expected', de: 'Text erwartet' },
    cause: { en: '{field} must be text; found {found}.', de: '{field} muss ein Text sein; gefunden: {found}.' },
    fix: {
      en: 'Write a single value after the key, in quotes if it looks like a number or contains special characters: key: "value".',
      de: 'Schreiben Sie einen einzelnen Wert hinter den Schlüssel, in Anführungszeichen, wenn er wie eine Zahl aussieht oder Sonderzeichen enthält: schluessel: "wert".',
    },
  },
  MB_CONFIG_EXPECTED_NUMBER: {
    http: 500,
    title: { en: 'Number expected', de: 'Zahl erwartet' },
    cause: { en: '{field} must be a number; found {found}.', de: '{field} muss eine Zahl sein; gefunden: {found}.' },
    fix: { en: 'Write the number without quotes, e.g. 30.', de: 'Schreiben Sie die Zahl ohne Anführungszeichen, z. B. 30.' },
  },
  MB_CONFIG_EXPECTED_INTEGER: {
    http: 500,
    title: { en: 'Whole number expected', de: 'Ganze Zahl erwartet' },
    cause: { en: '{field} must be a whole number; found {found}.', de: '{field} muss eine ganze Zahl sein; gefunden: {found}.' },
    fix: {
      en: 'Write a whole number without quotes or decimals, e.g. 8080.',
      de: 'Schreiben Sie eine ganze Zahl ohne Anführungszeichen und Nachkommastellen, z. B. 8080.',
    },
  },
  MB_CONFIG_EXPECTED_BOOLEAN: {
    http: 500,
    title: { en: 'Yes/no value expected', de: 'Ja/Nein-Wert erwartet' },
    cause: { en: '{field} must be true or false; found {found}.', de: '{field} muss true oder false sein; gefunden: {found}.' },
    fix: { en: 'Write true or false, without quotes.', de: 'Schreiben Sie true oder false, ohne Anführungszeichen.' },
  },
  MB_CONFIG_EXPECTED_LIST: {
    http: 500,
    title: { en: 'List expected', de: 'Liste erwartet' },
    cause: { en: '{field} must be a list; found {found}.', de: '{field} muss eine Liste sein; gefunden: {found}.' },
    fix: {
      en: 'Write one entry per line, each starting with "- " and indented under {field}, or in brackets: [a, b].',
      de: 'Schreiben Sie einen Eintrag pro Zeile, jeweils mit "- " und unter {field} eingerückt, oder in eckigen Klammern: [a, b].',
    },
  },
  MB_CONFIG_EXPECTED_SECTION: {
    http: 500,
    title: { en: 'Section expected', de: 'Abschnitt erwartet' },
    cause: {
      en: '{field} must be a section of "key: value" lines; found {found}.',
      de: '{field} muss ein Abschnitt aus Zeilen "schlüssel: wert" sein; gefunden: {found}.',
    },
    fix: {
      en: 'Put the settings of {field} on their own lines below it, indented by two spaces.',
      de: 'Schreiben Sie die Einstellungen von {field} in eigene Zeilen darunter, um zwei Leerzeichen eingerückt.',
    },
  },
  MB_CONFIG_NOT_ALLOWED: {
    http: 500,
    title: { en: 'Value not allowed', de: 'Wert nicht zulässig' },
    cause: { en: '{field} cannot be {found}.', de: '{field} darf nicht {found} sein.' },
    fix: { en: 'Use one of: {allowed}.', de: 'Verwenden Sie einen dieser Werte: {allowed}.' },
  },
  MB_CONFIG_TOO_SMALL: {
    http: 500,
    title: { en: 'Value too small', de: 'Wert zu klein' },
    cause: { en: '{field} is {found}, below the smallest allowed value {minimum}.', de: '{field} ist {found} und damit kleiner als der kleinste zulässige Wert {minimum}.' },
    fix: { en: 'Use a value of at least {minimum}.', de: 'Verwenden Sie einen Wert von mindestens {minimum}.' },
  },
  MB_CONFIG_TOO_BIG: {
    http: 500,
    title: { en: 'Value too large', de: 'Wert zu groß' },
    cause: { en: '{field} is {found}, above the largest allowed value {maximum}.', de: '{field} ist {found} und damit größer als der größte zulässige Wert {maximum}.' },
    fix: { en: 'Use a value of at most {maximum}.', de: 'Verwenden Sie einen Wert von höchstens {maximum}.' },
  },
  MB_CONFIG_TOO_SHORT: {
    http: 500,
    title: { en: 'Value too short', de: 'Wert zu kurz' },
    cause: { en: '{field} needs at least {minimum} characters or entries.', de: '{field} braucht mindestens {minimum} Zeichen bzw. Einträge.' },
    fix: { en: 'Complete the value of {field}.', de: 'Vervollständigen Sie den Wert von {field}.' },
  },
  MB_CONFIG_TOO_LONG: {
    http: 500,
    title: { en: 'Value too long', de: 'Wert zu lang' },
    cause: { en: '{field} may have at most {maximum} characters or entries.', de: '{field} darf höchstens {maximum} Zeichen bzw. Einträge haben.' },
    fix: { en: 'Shorten the value of {field}.', de: 'Kürzen Sie den Wert von {field}.' },
  },
  MB_CONFIG_BAD_URL: {
    http: 500,
    title: { en: 'Not a URL', de: 'Keine URL' },
    cause: { en: '{field} must be a full URL; found {found}.', de: '{field} muss eine vollständige URL sein; gefunden: {found}.' },
    fix: {
      en: 'Write the URL with its scheme, e.g. https://mail.example.com or http://proxy.example:3128.',
      de: 'Schreiben Sie die URL mit Schema, z. B. https://mail.example.com oder http://proxy.example:3128.',
    },
  },
  MB_CONFIG_BAD_GRAPH_URL: {
    http: 500,
    title: { en: 'Not a Graph base URL', de: 'Keine Graph-Basis-URL' },
    cause: {
      en: '{field} must be the Graph service root, with or without /v1.0; found {found} ({detail}).',
      de: '{field} muss die Stamm-URL von Graph sein, mit oder ohne /v1.0; gefunden: {found} ({detail}).',
    },
    fix: {
      en: 'Write only the service root, e.g. https://graph.microsoft.com or https://graph.microsoft.com/v1.0 (https://graph.microsoft.us, https://dod-graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn in the national clouds), or remove the setting to use the connection\'s cloud.',
      de: 'Tragen Sie nur die Stamm-URL ein, z. B. https://graph.microsoft.com oder https://graph.microsoft.com/v1.0 (in den nationalen Clouds https://graph.microsoft.us, https://dod-graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn), oder entfernen Sie die Einstellung, dann gilt die Cloud der Verbindung.',
    },
  },
  MB_CONFIG_BAD_DATE: {
    http: 500,
    title: { en: 'Not a date', de: 'Kein Datum' },
    cause: { en: '{field} must be a date in the form YYYY-MM-DD; found {found}.', de: '{field} muss ein Datum der Form JJJJ-MM-TT sein; gefunden: {found}.' },
    fix: {
      en: 'Write the date as year-month-day, e.g. 2027-06-30 (the Entra admin center shows it under Certificates & secrets › Expires).',
      de: 'Schreiben Sie das Datum als Jahr-Monat-Tag, z. B. 2027-06-30 (das Entra Admin Center zeigt es unter Zertifikate & Geheimnisse › Gültig bis).',
    },
  },
  MB_CONFIG_BAD_FORMAT: {
    http: 500,
    title: { en: 'Value in the wrong form', de: 'Wert in falscher Form' },
    cause: { en: '{field} must be in the form {format}; found {found}.', de: '{field} muss die Form {format} haben; gefunden: {found}.' },
    fix: { en: 'Correct the value of {field}.', de: 'Korrigieren Sie den Wert von {field}.' },
  },
  MB_CONFIG_BAD_NAME: {
    http: 500,
    title: { en: 'Name not allowed', de: 'Name nicht zulässig' },
    cause: {
      en: 'The name {found} at {field} contains characters other than letters, digits, "-" and "_".',
      de: 'Der Name {found} bei {field} enthält andere Zeichen als Buchstaben, Ziffern, "-" und "_".',
    },
    fix: { en: 'Rename it, e.g. contoso or contoso-de.', de: 'Benennen Sie ihn um, z. B. contoso oder contoso-de.' },
  },
  MB_CONFIG_KEY_TYPO: {
    http: 500,
    title: { en: 'Unknown setting', de: 'Unbekannte Einstellung' },
    cause: { en: '{field} is not a setting mailbridge knows.', de: '{field} ist keine Einstellung, die mailbridge kennt.' },
    fix: { en: 'Did you mean {suggestion}? Rename {key} to {suggestion}.', de: 'Meinten Sie {suggestion}? Benennen Sie {key} in {suggestion} um.' },
  },
  MB_CONFIG_UNKNOWN_KEY: {
    http: 500,
    title: { en: 'Unknown setting', de: 'Unbekannte Einstellung' },
    cause: { en: '{field} is not a setting mailbridge knows.', de: '{field} ist keine Einstellung, die mailbridge kennt.' },
    fix: {
      en: 'Remove {key}; the settings allowed here are: {allowed}.',
      de: 'Entfernen Sie {key}; zulässig sind hier: {allowed}.',
    },
  },
  MB_CONFIG_FILE_UNREADABLE: {
    http: 500,
    title: { en: 'File not readable', de: 'Datei nicht lesbar' },
    cause: {
      en: '{field} names the file {path}, which mailbridge cannot read ({detail}); whatever needs it would fail: the gateway at its start, a connection at its first token.',
      de: '{field} nennt die Datei {path}, die mailbridge nicht lesen kann ({detail}); was sie braucht, würde scheitern: das Gateway beim Start, eine Verbindung beim ersten Token.',
    },
    fix: {
      en: 'Put the file there or correct {field}, and let the user mailbridge runs as read it: `ls -l {path}`',
      de: 'Legen Sie die Datei dort ab oder korrigieren Sie {field}, und geben Sie dem Benutzer, unter dem mailbridge läuft, Leserechte: `ls -l {path}`',
    },
  },
  MB_CONFIG_VALUE_INVALID: {
    http: 500,
    title: { en: 'Value invalid', de: 'Wert ungültig' },
    cause: { en: '{field} is not valid: {detail}', de: '{field} ist ungültig: {detail}' },
    fix: {
      en: 'Correct {field}; `mailbridge config schema` shows what each setting accepts.',
      de: 'Korrigieren Sie {field}; `mailbridge config schema` zeigt, was jede Einstellung annimmt.',
    },
  },

  // ── Warnings from `config check` ───────────────────────────────────────────────────────────────
  MB_CONFIG_SECRET_PLAINTEXT: {
    http: 500,
    title: { en: 'Secret in plain text', de: 'Geheimnis im Klartext' },
    cause: {
      en: '{field} is stored in plain text in the file; anyone who can read the file or a backup of it can use it.',
      de: '{field} steht im Klartext in der Datei; wer die Datei oder eine Sicherung davon lesen kann, kann es verwenden.',
    },
    fix: {
      en: 'Store it encrypted: `mailbridge secret set {field}` (asks for the value and replaces the plain text).',
      de: 'Speichern Sie es verschlüsselt: `mailbridge secret set {field}` (fragt den Wert ab und ersetzt den Klartext).',
    },
  },
  MB_CONFIG_SECRET_EXPIRED: {
    http: 500,
    title: { en: 'Client secret expired', de: 'Geheimer Clientschlüssel abgelaufen' },
    cause: {
      en: 'The client secret of {connection} expired on {date} ({field}); Entra ID rejects it (AADSTS7000222).',
      de: 'Der geheime Clientschlüssel von {connection} ist am {date} abgelaufen ({field}); Entra ID lehnt ihn ab (AADSTS7000222).',
    },
    fix: {
      en: 'Entra admin center › App registrations › your app › Certificates & secrets › New client secret; then `mailbridge secret set {secretField}` and set {field} to the new expiry date.',
      de: 'Entra Admin Center › App-Registrierungen › Ihre App › Zertifikate & Geheimnisse › Neuer geheimer Clientschlüssel; dann `mailbridge secret set {secretField}` und {field} auf das neue Ablaufdatum setzen.',
    },
  },
  MB_CONFIG_SECRET_EXPIRING: {
    http: 500,
    title: { en: 'Client secret expires soon', de: 'Geheimer Clientschlüssel läuft bald ab' },
    cause: {
      en: 'The client secret of {connection} expires on {date}, in {days} day(s) ({field}).',
      de: 'Der geheime Clientschlüssel von {connection} läuft am {date} ab, in {days} Tag(en) ({field}).',
    },
    fix: {
      en: 'Before then: Entra admin center › App registrations › your app › Certificates & secrets › New client secret; then `mailbridge secret set {secretField}` and set {field} to the new expiry date.',
      de: 'Vorher: Entra Admin Center › App-Registrierungen › Ihre App › Zertifikate & Geheimnisse › Neuer geheimer Clientschlüssel; dann `mailbridge secret set {secretField}` und {field} auf das neue Ablaufdatum setzen.',
    },
  },
  MB_CONFIG_SECRET_EXPIRY_TOO_FAR: {
    http: 500,
    title: { en: 'Implausible expiry date', de: 'Unplausibles Ablaufdatum' },
    cause: {
      en: '{field} is {date}, more than 24 months away; Entra ID issues client secrets for at most 24 months, so mailbridge would not warn in time.',
      de: '{field} ist {date} und liegt mehr als 24 Monate in der Zukunft; Entra ID stellt geheime Clientschlüssel für höchstens 24 Monate aus, daher würde mailbridge nicht rechtzeitig warnen.',
    },
    fix: {
      en: 'Copy the date from Entra admin center › App registrations › your app › Certificates & secrets › Expires.',
      de: 'Übernehmen Sie das Datum aus Entra Admin Center › App-Registrierungen › Ihre App › Zertifikate & Geheimnisse › Gültig bis.',
    },
  },
  MB_CONFIG_CLIENT_ID_INVALID: {
    http: 500,
    title: { en: 'Client ID is not an application ID', de: 'Client-ID ist keine Anwendungs-ID' },
    cause: {
      en: '{field} is {found}; Entra ID knows an app only by its Application (client) ID, a GUID like 5d1e2a44-7c1b-4f0e-9a3d-2b8c6e4f1a07.',
      de: '{field} ist {found}; Entra ID kennt eine App nur über ihre Anwendungs-ID (Client-ID), eine GUID wie 5d1e2a44-7c1b-4f0e-9a3d-2b8c6e4f1a07.',
    },
    fix: {
      en: 'Copy it from Entra admin center › App registrations › <app> › Overview › Application (client) ID.',
      de: 'Kopieren Sie sie aus Entra Admin Center › App-Registrierungen › <App> › Übersicht › Anwendungs-ID (Client).',
    },
  },
  MB_CONFIG_TENANT_ID_INVALID: {
    http: 500,
    title: { en: 'Tenant ID is neither a GUID nor a domain', de: 'Mandanten-ID ist weder GUID noch Domäne' },
    cause: {
      en: '{field} is {found}; Entra ID needs the Directory (tenant) ID, a GUID, or a verified domain of the tenant such as contoso.onmicrosoft.com.',
      de: '{field} ist {found}; Entra ID braucht die Verzeichnis-ID (Mandanten-ID), eine GUID, oder eine verifizierte Domäne des Mandanten wie contoso.onmicrosoft.com.',
    },
    fix: {
      en: 'Copy it from Entra admin center › Overview › Tenant ID (or App registrations › <app> › Overview › Directory (tenant) ID).',
      de: 'Kopieren Sie sie aus Entra Admin Center › Übersicht › Mandanten-ID (oder App-Registrierungen › <App> › Übersicht › Verzeichnis-ID (Mandant)).',
    },
  },
  MB_CONFIG_CLOUD_MISMATCH: {
    http: 500,
    title: { en: 'Token endpoint of another cloud', de: 'Token-Endpunkt einer anderen Cloud' },
    cause: {
      en: 'Connection "{connection}" is in cloud {cloud}, but its token endpoint host {host} belongs to {hostCloud}; tokens of one cloud are not accepted by another, and the tenant is not found there (AADSTS90002).',
      de: 'Verbindung „{connection}“ liegt in der Cloud {cloud}, aber der Host ihres Token-Endpunkts {host} gehört zu {hostCloud}; Tokens einer Cloud nimmt keine andere an, und der Mandant wird dort nicht gefunden (AADSTS90002).',
    },
    fix: {
      en: 'Remove {field} to use the cloud default (https://{expected}/#TenantID#/oauth2/v2.0/token), or correct cloud if the tenant lives in {hostCloud}.',
      de: 'Entfernen Sie {field}, um den Standard der Cloud zu nutzen (https://{expected}/#TenantID#/oauth2/v2.0/token), oder korrigieren Sie cloud, falls der Mandant in {hostCloud} liegt.',
    },
  },
  MB_CONFIG_PROXY_SCHEME: {
    http: 500,
    title: { en: 'Proxy without http:// or https://', de: 'Proxy ohne http:// oder https://' },
    cause: {
      en: '{field} is {found}; a proxy is an http:// or https:// URL (host:port alone is read as a URL scheme and would fail at the first connection).',
      de: '{field} ist {found}; ein Proxy ist eine http://- oder https://-URL (host:port allein wird als URL-Schema gelesen und scheitert bei der ersten Verbindung).',
    },
    fix: {
      en: 'Write it as http://proxy.example:3128 (https:// only if the proxy itself speaks TLS).',
      de: 'Schreiben Sie ihn als http://proxy.example:3128 (https:// nur, wenn der Proxy selbst TLS spricht).',
    },
  },
  MB_CONFIG_PORT_TWICE: {
    http: 500,
    title: { en: 'Two listeners on one port', de: 'Zwei Listener auf einem Port' },
    cause: {
      en: '{field} ({host}:{port}) and {other} ({otherHost}:{port}) would listen on the same address and port; the second would fail at start.',
      de: '{field} ({host}:{port}) und {other} ({otherHost}:{port}) würden auf derselben Adresse und demselben Port lauschen; der zweite schlüge beim Start fehl.',
    },
    fix: {
      en: 'Give one of them another port in mailbridge.yaml.',
      de: 'Geben Sie einem der beiden in mailbridge.yaml einen anderen Port.',
    },
  },
  MB_CONFIG_NO_CREDENTIAL: {
    http: 500,
    title: { en: 'Connection without credential', de: 'Verbindung ohne Anmeldeinformation' },
    cause: {
      en: '{field} uses the {flow} flow, which needs a client secret or a certificate, but has neither.',
      de: '{field} verwendet das Anmeldeverfahren {flow}, das einen geheimen Clientschlüssel oder ein Zertifikat braucht, hat aber keins von beiden.',
    },
    fix: {
      en: 'Entra admin center › App registrations › your app › Certificates & secrets: create a client secret and store it with `mailbridge secret set {field}.clientSecret`, or upload a certificate and set {field}.certificate.path.',
      de: 'Entra Admin Center › App-Registrierungen › Ihre App › Zertifikate & Geheimnisse: einen geheimen Clientschlüssel anlegen und mit `mailbridge secret set {field}.clientSecret` speichern, oder ein Zertifikat hochladen und {field}.certificate.path setzen.',
    },
  },

  // ── Secrets at rest ─────────────────────────────────────────────────────────────────────────────
  MB_SECRET_KEY_INVALID: {
    http: 500,
    title: { en: 'Encryption key invalid', de: 'Schlüssel ungültig' },
    cause: {
      en: 'The key from {source} is not 32 bytes in base64, as AES-256 needs.',
      de: 'Der Schlüssel aus {source} besteht nicht aus 32 Byte in Base64, wie AES-256 sie braucht.',
    },
    fix: {
      en: 'Put back the key the secrets were encrypted with. Only for a new installation: create one with `openssl rand -base64 32`.',
      de: 'Stellen Sie den Schlüssel wieder her, mit dem die Geheimnisse verschlüsselt wurden. Nur für eine neue Installation: mit `openssl rand -base64 32` einen erzeugen.',
    },
  },
  MB_SECRET_KEY_PERMISSIONS: {
    http: 500,
    title: { en: 'Key file readable by others', de: 'Schlüsseldatei für andere lesbar' },
    cause: {
      en: 'The key file {keyFile} has mode {mode}: other users or the group can read or change it, and with it decrypt every secret. mailbridge refuses to use it.',
      de: 'Die Schlüsseldatei {keyFile} hat die Rechte {mode}: andere Benutzer oder die Gruppe können sie lesen oder ändern und damit jedes Geheimnis entschlüsseln. mailbridge verwendet sie nicht.',
    },
    fix: {
      en: 'Run `chmod 600 {keyFile}` (and `chown` it to the user running mailbridge).',
      de: 'Führen Sie `chmod 600 {keyFile}` aus (und übergeben Sie sie mit `chown` dem Benutzer, unter dem mailbridge läuft).',
    },
  },
  MB_SECRET_KEY_UNREADABLE: {
    http: 500,
    title: { en: 'Key file not accessible', de: 'Schlüsseldatei nicht zugänglich' },
    cause: { en: 'mailbridge could not read or create the key file {keyFile}: {detail}', de: 'mailbridge konnte die Schlüsseldatei {keyFile} nicht lesen oder anlegen: {detail}' },
    fix: {
      en: 'Check that the folder exists and belongs to the user running mailbridge, or set secrets.keyFile in mailbridge.yaml (or MAILBRIDGE_KEY).',
      de: 'Prüfen Sie, ob der Ordner existiert und dem Benutzer gehört, unter dem mailbridge läuft, oder setzen Sie secrets.keyFile in mailbridge.yaml (oder MAILBRIDGE_KEY).',
    },
  },
  MB_SECRET_KEY_MISSING: {
    http: 500,
    title: { en: 'Encryption key missing', de: 'Schlüssel fehlt' },
    cause: {
      en: '{field} is encrypted, but there is no key: the key file {keyFile} does not exist and MAILBRIDGE_KEY is not set.',
      de: '{field} ist verschlüsselt, aber es gibt keinen Schlüssel: die Schlüsseldatei {keyFile} existiert nicht und MAILBRIDGE_KEY ist nicht gesetzt.',
    },
    fix: {
      en: 'Restore the key file from your backup (or set MAILBRIDGE_KEY). If the key is lost, set every secret again with `mailbridge secret set <path>`.',
      de: 'Stellen Sie die Schlüsseldatei aus Ihrer Sicherung wieder her (oder setzen Sie MAILBRIDGE_KEY). Ist der Schlüssel verloren, setzen Sie jedes Geheimnis neu mit `mailbridge secret set <pfad>`.',
    },
  },
  MB_SECRET_UNDECRYPTABLE: {
    http: 500,
    title: { en: 'Secret cannot be decrypted', de: 'Geheimnis nicht entschlüsselbar' },
    cause: {
      en: '{field} cannot be decrypted with the key from {source}: either it was encrypted with another key, or the stored value was altered.',
      de: '{field} lässt sich mit dem Schlüssel aus {source} nicht entschlüsseln: entweder wurde es mit einem anderen Schlüssel verschlüsselt oder der gespeicherte Wert wurde verändert.',
    },
    fix: {
      en: 'Use the key that was in place when the secret was set (restore the key file or MAILBRIDGE_KEY), or set the secret again with `mailbridge secret set <path>`.',
      de: 'Verwenden Sie den Schlüssel, der beim Setzen des Geheimnisses galt (Schlüsseldatei oder MAILBRIDGE_KEY wiederherstellen), oder setzen Sie das Geheimnis neu mit `mailbridge secret set <pfad>`.',
    },
  },
  MB_SECRET_MALFORMED: {
    http: 500,
    title: { en: 'Encrypted value damaged', de: 'Verschlüsselter Wert beschädigt' },
    cause: {
      en: '{field} starts with "enc:" but is not a complete enc:v1 value (it may have been cut off or edited by hand).',
      de: '{field} beginnt mit "enc:", ist aber kein vollständiger enc:v1-Wert (er wurde evtl. abgeschnitten oder von Hand bearbeitet).',
    },
    fix: { en: 'Set the secret again with `mailbridge secret set <path>`.', de: 'Setzen Sie das Geheimnis neu mit `mailbridge secret set <pfad>`.' },
  },
  MB_SECRET_NOT_A_SECRET: {
    http: 400,
    title: { en: 'Not a secret setting', de: 'Keine geheime Einstellung' },
    cause: {
      en: '{field} is not a secret setting, so `mailbridge secret set` does not store it.',
      de: '{field} ist keine geheime Einstellung, daher speichert `mailbridge secret set` sie nicht.',
    },
    fix: {
      en: 'Use one of the secret settings: {valid}. Other settings you edit in mailbridge.yaml directly.',
      de: 'Verwenden Sie eine der geheimen Einstellungen: {valid}. Andere Einstellungen bearbeiten Sie direkt in mailbridge.yaml.',
    },
  },
  MB_SECRET_EMPTY: {
    http: 400,
    title: { en: 'No secret given', de: 'Kein Geheimnis angegeben' },
    cause: { en: 'The value for {field} was empty; nothing was stored.', de: 'Der Wert für {field} war leer; es wurde nichts gespeichert.' },
    fix: {
      en: 'Run the command again and type or paste the value (it is not shown), or pipe it in: `printf %s "$VALUE" | mailbridge secret set {field}`.',
      de: 'Führen Sie den Befehl erneut aus und tippen oder fügen Sie den Wert ein (er wird nicht angezeigt), oder leiten Sie ihn ein: `printf %s "$WERT" | mailbridge secret set {field}`.',
    },
  },
  MB_SECRET_FILE_UNREADABLE: {
    http: 400,
    title: { en: 'Secret file cannot be read', de: 'Datei mit dem Geheimnis nicht lesbar' },
    cause: { en: 'mailbridge could not read {file} for {field}: {detail}', de: 'mailbridge konnte {file} für {field} nicht lesen: {detail}' },
    fix: {
      en: 'Check the path and that the user running mailbridge may read it (ls -l {file}), then run `mailbridge secret set {field} --file {file}` again.',
      de: 'Prüfen Sie den Pfad und ob der Benutzer, unter dem mailbridge läuft, die Datei lesen darf (ls -l {file}), dann `mailbridge secret set {field} --file {file}` erneut ausführen.',
    },
  },
} satisfies CatalogueSection;
