import type { CatalogueSection } from '../types.ts';

/** Failures of the sandbox Entra ID's run-time operations (src/sandbox/entra/ops.ts, SandboxOpError). */
export const sandboxEntraErrors = {
  MB_SANDBOX_TENANT_NOT_FOUND: {
    http: 404,
    title: { en: 'Sandbox tenant not found', de: 'Sandbox-Mandant nicht gefunden' },
    cause: { en: 'The sandbox has no tenant with ID or domain "{tenant}".', de: 'Die Sandbox hat keinen Mandanten mit der ID oder Domäne „{tenant}“.' },
    fix: { en: 'List the tenants in sandbox.yaml and use one of their IDs or domains.', de: 'Sehen Sie die Mandanten in sandbox.yaml nach und verwenden Sie eine ihrer IDs oder Domänen.' },
  },
  MB_SANDBOX_APP_NOT_FOUND: {
    http: 404,
    title: { en: 'Sandbox app registration not found', de: 'Sandbox-App-Registrierung nicht gefunden' },
    cause: { en: 'Tenant "{tenant}" has no app with application (client) ID {appId}.', de: 'Der Mandant „{tenant}“ hat keine App mit der Anwendungs-ID (Client-ID) {appId}.' },
    fix: { en: 'Use the application (client) ID of an app in that tenant, or register the app first.', de: 'Verwenden Sie die Anwendungs-ID einer App dieses Mandanten oder registrieren Sie die App zuerst.' },
  },
  MB_SANDBOX_USER_NOT_FOUND: {
    http: 404,
    title: { en: 'Sandbox user not found', de: 'Sandbox-Benutzer nicht gefunden' },
    cause: { en: 'Tenant "{tenant}" has no user {upn}.', de: 'Der Mandant „{tenant}“ hat keinen Benutzer {upn}.' },
    fix: { en: 'Add the user to the tenant first.', de: 'Fügen Sie den Benutzer zuerst dem Mandanten hinzu.' },
  },
  MB_SANDBOX_USER_EXISTS: {
    http: 409,
    title: { en: 'Sandbox user already exists', de: 'Sandbox-Benutzer existiert bereits' },
    cause: { en: 'A user {upn} already exists in a sandbox tenant.', de: 'Ein Benutzer {upn} existiert bereits in einem Sandbox-Mandanten.' },
    fix: { en: 'Choose another user principal name.', de: 'Wählen Sie einen anderen Benutzerprinzipalnamen.' },
  },
  MB_SANDBOX_USER_DOMAIN: {
    http: 400,
    title: { en: 'User domain not in tenant', de: 'Benutzerdomäne nicht im Mandanten' },
    cause: { en: 'The domain of {upn} is not a verified domain of tenant "{tenant}" ({domains}).', de: 'Die Domäne von {upn} ist keine verifizierte Domäne des Mandanten „{tenant}“ ({domains}).' },
    fix: { en: 'Use a user principal name in one of the tenant’s domains.', de: 'Verwenden Sie einen Benutzerprinzipalnamen in einer der Domänen des Mandanten.' },
  },
  MB_SANDBOX_UNKNOWN_ROLE: {
    http: 400,
    title: { en: 'Unknown application permission', de: 'Unbekannte Anwendungsberechtigung' },
    cause: { en: '{resource} has no application permission "{role}". Known: {known}.', de: '{resource} hat keine Anwendungsberechtigung „{role}“. Bekannt: {known}.' },
    fix: { en: 'Use one of the listed permission names (case as shown).', de: 'Verwenden Sie einen der aufgeführten Berechtigungsnamen (Schreibweise wie angezeigt).' },
  },
  MB_SANDBOX_UNKNOWN_SCOPE: {
    http: 400,
    title: { en: 'Unknown delegated permission', de: 'Unbekannte delegierte Berechtigung' },
    cause: { en: '"{scope}" is not a delegated permission of a resource in the {cloud} cloud.', de: '„{scope}“ ist keine delegierte Berechtigung einer Ressource in der Cloud {cloud}.' },
    fix: {
      en: 'Write it as Entra does, e.g. https://outlook.office.com/IMAP.AccessAsUser.All, Mail.Read or offline_access.',
      de: 'Schreiben Sie sie wie Entra, z. B. https://outlook.office.com/IMAP.AccessAsUser.All, Mail.Read oder offline_access.',
    },
  },
  MB_SANDBOX_SECRET_NOT_FOUND: {
    http: 404,
    title: { en: 'Client secret not found', de: 'Geheimer Clientschlüssel nicht gefunden' },
    cause: { en: 'App {appId} has no client secret with key ID {keyId}.', de: 'Die App {appId} hat keinen geheimen Clientschlüssel mit der Schlüssel-ID {keyId}.' },
    fix: { en: 'Use the secret ID (key ID) shown with the secret, not its value.', de: 'Verwenden Sie die Geheimnis-ID (Schlüssel-ID), nicht den Wert des Geheimnisses.' },
  },
  MB_SANDBOX_SECRET_LIFETIME: {
    http: 400,
    title: { en: 'Client secret lifetime too long', de: 'Laufzeit des geheimen Clientschlüssels zu lang' },
    cause: { en: 'Entra ID limits client secrets to 24 months; {endDateTime} is further away.', de: 'Entra ID begrenzt geheime Clientschlüssel auf 24 Monate; {endDateTime} liegt weiter entfernt.' },
    fix: { en: 'Choose an end date at most 24 months ahead (Microsoft recommends less than 12).', de: 'Wählen Sie ein Ablaufdatum höchstens 24 Monate im Voraus (Microsoft empfiehlt weniger als 12).' },
  },
  MB_SANDBOX_BAD_CERTIFICATE: {
    http: 400,
    title: { en: 'Certificate not usable', de: 'Zertifikat nicht verwendbar' },
    cause: { en: 'The certificate could not be read: {detail}', de: 'Das Zertifikat konnte nicht gelesen werden: {detail}' },
    fix: { en: 'Upload the public certificate as PEM (.pem, .cer or .crt), without the private key.', de: 'Laden Sie das öffentliche Zertifikat als PEM (.pem, .cer oder .crt) hoch, ohne privaten Schlüssel.' },
  },
  MB_SANDBOX_CERT_NOT_FOUND: {
    http: 404,
    title: { en: 'Certificate not found', de: 'Zertifikat nicht gefunden' },
    cause: { en: 'App {appId} has no certificate with thumbprint {thumbprint}.', de: 'Die App {appId} hat kein Zertifikat mit dem Fingerabdruck {thumbprint}.' },
    fix: { en: 'Use the SHA-1 or SHA-256 thumbprint (hex) of a registered certificate.', de: 'Verwenden Sie den SHA-1- oder SHA-256-Fingerabdruck (hex) eines registrierten Zertifikats.' },
  },
  MB_SANDBOX_DEVICE_CODE: {
    http: 400,
    title: { en: 'Device code cannot be approved', de: 'Gerätecode kann nicht bestätigt werden' },
    cause: { en: 'The user code {userCode} is {status}.', de: 'Der Benutzercode {userCode} ist {status}.' },
    fix: { en: 'Start a new device-code sign-in and use its code within 15 minutes.', de: 'Starten Sie eine neue Gerätecode-Anmeldung und verwenden Sie den Code innerhalb von 15 Minuten.' },
  },
  MB_SANDBOX_EAI_MAILBOX: {
    http: 400,
    title: { en: 'Internationalised address not supported for a mailbox', de: 'Internationalisierte Adresse für ein Postfach nicht möglich' },
    cause: {
      en: 'The local part of {address} has characters outside ASCII. Exchange Online can send to and receive from such (EAI) addresses, but cannot give one to a mailbox as its address; the sandbox refuses it as Exchange does, instead of creating a mailbox no mail reaches.',
      de: 'Der lokale Teil von {address} enthält Zeichen außerhalb von ASCII. Exchange Online kann an solche (EAI-)Adressen senden und von ihnen empfangen, sie aber keinem Postfach als Adresse geben; die Sandbox lehnt sie wie Exchange ab, statt ein Postfach anzulegen, das keine Mail erreicht.',
    },
    fix: {
      en: 'Use an ASCII address, e.g. {suggestion}: New-Mailbox -Name "{name}" -PrimarySmtpAddress {suggestion}',
      de: 'Verwenden Sie eine ASCII-Adresse, z. B. {suggestion}: New-Mailbox -Name "{name}" -PrimarySmtpAddress {suggestion}',
    },
  },
} satisfies CatalogueSection;

/** The sandbox tenant's own failures (run-time operations and its admin API), not Microsoft's. */
export const sandbox = {
  ...sandboxEntraErrors,
  MB_SANDBOX_ADMIN_UNREACHABLE: {
    http: 503,
    title: { en: 'Sandbox admin API unreachable', de: 'Admin-API der Sandbox nicht erreichbar' },
    cause: {
      en: 'The sandbox admin API at {url} does not answer: {detail}',
      de: 'Die Admin-API der Sandbox unter {url} antwortet nicht: {detail}',
    },
    fix: {
      en: 'Start the sandbox with `npm run sandbox` (it writes .sandbox/admin-url), or pass --url with the address it printed.',
      de: 'Starten Sie die Sandbox mit `npm run sandbox` (sie schreibt .sandbox/admin-url) oder geben Sie mit --url die ausgegebene Adresse an.',
    },
  },
  MB_SANDBOX_ADMIN_REFUSED: {
    http: 400,
    title: { en: 'The sandbox refused the change', de: 'Die Sandbox hat die Änderung abgelehnt' },
    cause: { en: '{op}: {code}: {detail}', de: '{op}: {code}: {detail}' },
    fix: {
      en: 'Check the names and IDs against `mailbridge sandbox-admin state`, then run the operation again.',
      de: 'Prüfen Sie Namen und IDs mit `mailbridge sandbox-admin state` und führen Sie den Vorgang erneut aus.',
    },
  },
  MB_SANDBOX_EWS_LISTEN: {
    http: 500,
    title: { en: 'Sandbox EWS cannot listen', de: 'Sandbox-EWS kann nicht lauschen' },
    cause: {
      en: 'The sandbox EWS (Exchange Web Services and Autodiscover) could not open {address}: {detail}',
      de: 'Die Sandbox-EWS (Exchange Web Services und Autodiscover) konnte {address} nicht öffnen: {detail}',
    },
    fix: {
      en: 'Free the port (another sandbox may still run: `npm run sandbox` prints its endpoints) or start the sandbox with another EWS port (`mailbridge sandbox --port ews=0`).',
      de: 'Geben Sie den Port frei (eventuell läuft noch eine Sandbox: `npm run sandbox` zeigt ihre Endpunkte) oder starten Sie die Sandbox mit einem anderen EWS-Port (`mailbridge sandbox --port ews=0`).',
    },
  },
  MB_SANDBOX_ADMIN_NOT_FOUND: {
    http: 400,
    title: { en: 'No running sandbox found', de: 'Keine laufende Sandbox gefunden' },
    cause: {
      en: 'sandbox-admin looked for the admin API address in {looked} and found none.',
      de: 'sandbox-admin hat die Adresse der Admin-API in {looked} gesucht und keine gefunden.',
    },
    fix: {
      en: 'Start the sandbox (`mailbridge sandbox --dir FOLDER`), then name its folder: `mailbridge sandbox-admin --dir FOLDER state` (or --url with the address it printed).',
      de: 'Starten Sie die Sandbox (`mailbridge sandbox --dir ORDNER`) und nennen Sie dann ihren Ordner: `mailbridge sandbox-admin --dir ORDNER state` (oder --url mit der ausgegebenen Adresse).',
    },
  },
  MB_SANDBOX_PORT_BUSY: {
    http: 409,
    title: { en: 'Sandbox port already in use', de: 'Sandbox-Port bereits belegt' },
    cause: {
      en: 'The sandbox wants port {port} on {host} for "{name}" (pinned, or remembered in {file}), but another program holds it. Held by: {holder}.',
      de: 'Die Sandbox möchte Port {port} auf {host} für „{name}“ (festgelegt oder in {file} gemerkt), aber ein anderes Programm belegt ihn. Belegt von: {holder}.',
    },
    fix: {
      en: 'Stop the program on port {port} (`ss -ltnp "sport = :{port}"` names it; often a sandbox still running on the same folder), or start with `mailbridge sandbox --port {name}=0` for another free port.',
      de: 'Beenden Sie das Programm auf Port {port} (`ss -ltnp "sport = :{port}"` nennt es; oft läuft noch eine Sandbox mit demselben Ordner) oder starten Sie mit `mailbridge sandbox --port {name}=0` für einen anderen freien Port.',
    },
  },
  MB_SANDBOX_PORTS_FILE: {
    http: 400,
    title: { en: 'Sandbox ports file unreadable', de: 'Portdatei der Sandbox nicht lesbar' },
    cause: { en: '{file} is not a valid list of ports: {detail}', de: '{file} ist keine gültige Portliste: {detail}' },
    fix: {
      en: 'Correct the line (name: port, one per line), or delete {file}: the sandbox then picks free ports and writes it again.',
      de: 'Korrigieren Sie die Zeile (Name: Port, eine pro Zeile) oder löschen Sie {file}: Die Sandbox wählt dann freie Ports und schreibt die Datei neu.',
    },
  },
  MB_SANDBOX_DIR_NOT_TRAVERSABLE: {
    http: 400,
    title: { en: 'Sandbox folder not reachable for Dovecot', de: 'Sandbox-Ordner für Dovecot nicht erreichbar' },
    cause: {
      en: 'The sandbox folder {dir} lies under {folder} (mode {mode}), which Dovecot\'s mail user (vmail) and auth user (dovecot) may not pass through, so no mail could be stored.',
      de: 'Der Sandbox-Ordner {dir} liegt unter {folder} (Modus {mode}), den Dovecots Mail-Benutzer (vmail) und Auth-Benutzer (dovecot) nicht durchqueren dürfen; es könnten keine Mails gespeichert werden.',
    },
    fix: {
      en: 'Let others pass through (not list) the folder: `chmod o+x {folder}`, or start the sandbox in another folder: `mailbridge sandbox --dir /var/tmp/mailbridge-sandbox`.',
      de: 'Erlauben Sie anderen das Durchqueren (nicht das Auflisten) des Ordners: `chmod o+x {folder}`, oder starten Sie die Sandbox in einem anderen Ordner: `mailbridge sandbox --dir /var/tmp/mailbridge-sandbox`.',
    },
  },
} satisfies CatalogueSection;
