import type { CatalogueSection } from '../types.ts';

/*
 * Identity: credentials → tokens. Four groups:
 *  - MB_IDENTITY_*, MB_CLIENT_SECRET_*, MB_CERT_*: found by mailbridge itself (configuration, files, network),
 *    before or without asking Entra ID;
 *  - MB_ENTRA_*: Entra ID answered with an error; one code per AADSTS number an admin of a mail
 *    gateway meets (microsoft-facts.md §1.8), MB_ENTRA_UNKNOWN for the rest;
 *  - MB_SIGNIN_*: delegated sign-in (auth code, device code);
 *  - MB_TOKEN_*: a token was issued but will not work (describe() reports these as problems).
 * Parameters most texts use: {connection}, {clientId}, {tenantId}, {portal} (the cloud's admin portal).
 */

const appPath = {
  en: 'Entra admin center ({portal}) › App registrations › {clientId}',
  de: 'Entra Admin Center ({portal}) › App-Registrierungen › {clientId}',
};

export const identity = {
  // ── configuration and local credentials ──────────────────────────────────────────────────────
  MB_IDENTITY_UNKNOWN_CONNECTION: {
    http: 404,
    title: { en: 'Unknown connection', de: 'Unbekannte Verbindung' },
    cause: {
      en: 'mailbridge.yaml has no connection named "{connection}" (configured: {known}).',
      de: 'mailbridge.yaml enthält keine Verbindung „{connection}“ (vorhanden: {known}).',
    },
    fix: {
      en: 'Use one of the configured names, or add the connection under `connections:` in mailbridge.yaml.',
      de: 'Verwenden Sie einen der vorhandenen Namen oder legen Sie die Verbindung unter `connections:` in mailbridge.yaml an.',
    },
  },
  MB_IDENTITY_NO_CREDENTIAL: {
    http: 500,
    title: { en: 'No app credential configured', de: 'Keine App-Anmeldeinformation konfiguriert' },
    cause: {
      en: 'Connection "{connection}" uses client credentials but has neither a client secret nor a certificate.',
      de: 'Verbindung „{connection}“ verwendet Client-Anmeldeinformationen, hat aber weder einen geheimen Clientschlüssel noch ein Zertifikat.',
    },
    fix: {
      en: 'Create one in Entra admin center › App registrations › <app> › Certificates & secrets, then run `mailbridge secret set connections.{connection}.clientSecret` (or set connections.{connection}.certificate.path).',
      de: 'Legen Sie eine im Entra Admin Center › App-Registrierungen › <App> › Zertifikate & Geheimnisse an und führen Sie `mailbridge secret set connections.{connection}.clientSecret` aus (oder setzen Sie connections.{connection}.certificate.path).',
    },
  },
  MB_IDENTITY_TWO_CREDENTIALS: {
    http: 500,
    title: { en: 'Two app credentials configured', de: 'Zwei App-Anmeldeinformationen konfiguriert' },
    cause: {
      en: 'Connection "{connection}" has both a client secret and a certificate; a token request can carry only one.',
      de: 'Verbindung „{connection}“ hat sowohl einen geheimen Clientschlüssel als auch ein Zertifikat; eine Tokenanfrage kann nur eines davon mitsenden.',
    },
    fix: {
      en: 'Remove connections.{connection}.clientSecret or connections.{connection}.certificate from mailbridge.yaml (Microsoft recommends the certificate).',
      de: 'Entfernen Sie connections.{connection}.clientSecret oder connections.{connection}.certificate aus mailbridge.yaml (Microsoft empfiehlt das Zertifikat).',
    },
  },
  MB_IDENTITY_TOKEN_ENDPOINT_INVALID: {
    http: 500,
    title: { en: 'Token endpoint unusable', de: 'Token-Endpunkt unbrauchbar' },
    cause: {
      en: 'connections.{connection}.tokenEndpoint "{endpoint}" cannot be used: {detail}.',
      de: 'connections.{connection}.tokenEndpoint „{endpoint}“ ist nicht verwendbar: {detail}.',
    },
    fix: {
      en: 'Use the form https://login.microsoftonline.com/#TenantID#/oauth2/v2.0/token (with your cloud\'s login host), or remove tokenEndpoint to use the cloud default.',
      de: 'Verwenden Sie die Form https://login.microsoftonline.com/#TenantID#/oauth2/v2.0/token (mit dem Anmelde-Host Ihrer Cloud) oder entfernen Sie tokenEndpoint, um den Standard der Cloud zu nutzen.',
    },
  },
  MB_IDENTITY_TENANT_REQUIRED: {
    http: 500,
    title: { en: 'Tenant ID required', de: 'Mandanten-ID erforderlich' },
    cause: {
      en: 'Connection "{connection}" names the tenant "{tenant}"; app-only tokens need the concrete tenant (Entra ID would answer AADSTS9001023).',
      de: 'Verbindung „{connection}“ nennt den Mandanten „{tenant}“; App-Token brauchen den konkreten Mandanten (Entra ID würde mit AADSTS9001023 antworten).',
    },
    fix: {
      en: 'Set connections.{connection}.tenantId to the Directory (tenant) ID from Entra admin center › Overview.',
      de: 'Setzen Sie connections.{connection}.tenantId auf die Verzeichnis-ID (Mandant) aus Entra Admin Center › Übersicht.',
    },
  },
  MB_IDENTITY_CA_UNREADABLE: {
    http: 500,
    title: { en: 'CA file unreadable', de: 'CA-Datei nicht lesbar' },
    cause: {
      en: 'connections.{connection}.caFile {path} could not be read or holds no PEM certificate: {detail}',
      de: 'connections.{connection}.caFile {path} ist nicht lesbar oder enthält kein PEM-Zertifikat: {detail}',
    },
    fix: {
      en: 'Point caFile at a readable PEM file with the CA certificate(s) to trust (for the sandbox: .sandbox/ca.pem).',
      de: 'Lassen Sie caFile auf eine lesbare PEM-Datei mit den zu vertrauenden CA-Zertifikaten zeigen (für die Sandbox: .sandbox/ca.pem).',
    },
  },
  MB_IDENTITY_SECRET_UNREADABLE: {
    http: 500,
    title: { en: 'Stored secret cannot be decrypted', de: 'Gespeichertes Geheimnis nicht entschlüsselbar' },
    cause: {
      en: '{field} of connection "{connection}" could not be decrypted: {detail}',
      de: '{field} der Verbindung „{connection}“ konnte nicht entschlüsselt werden: {detail}',
    },
    fix: {
      en: 'Check that mailbridge uses the key file it was encrypted with (secrets.keyFile or MAILBRIDGE_KEY), or set the value again with `mailbridge secret set {field}`.',
      de: 'Prüfen Sie, ob mailbridge die Schlüsseldatei verwendet, mit der verschlüsselt wurde (secrets.keyFile oder MAILBRIDGE_KEY), oder setzen Sie den Wert neu mit `mailbridge secret set {field}`.',
    },
  },
  MB_IDENTITY_WRONG_FLOW: {
    http: 400,
    title: { en: 'Not possible with this connection\'s flow', de: 'Mit dem Anmeldeverfahren dieser Verbindung nicht möglich' },
    cause: {
      en: 'Connection "{connection}" uses flow "{flow}"; this needs flow: {needed}.',
      de: 'Verbindung „{connection}“ verwendet das Anmeldeverfahren „{flow}“; dies erfordert flow: {needed}.',
    },
    fix: {
      en: 'Set connections.{connection}.flow accordingly in mailbridge.yaml, or use a connection with that flow.',
      de: 'Setzen Sie connections.{connection}.flow in mailbridge.yaml entsprechend oder verwenden Sie eine Verbindung mit diesem Anmeldeverfahren.',
    },
  },
  MB_IDENTITY_MSAL: {
    http: 500,
    title: { en: 'Token library refused the request', de: 'Token-Bibliothek hat die Anfrage abgelehnt' },
    cause: { en: 'MSAL reported {code}: {detail}', de: 'MSAL meldete {code}: {detail}' },
    fix: {
      en: 'Run `mailbridge token {connection}` to see the connection as mailbridge reads it; if the setting looks right, report this with the log lines attached.',
      de: 'Führen Sie `mailbridge token {connection}` aus, um die Verbindung so zu sehen, wie mailbridge sie liest; wirkt alles richtig, melden Sie dies mit den Protokollzeilen.',
    },
  },

  // ── client secret ────────────────────────────────────────────────────────────────────────────
  MB_CLIENT_SECRET_EXPIRED: {
    http: 401,
    title: { en: 'Client secret expired', de: 'Geheimer Clientschlüssel abgelaufen' },
    cause: {
      en: 'The client secret of connection "{connection}" expired on {expires}; mailbridge did not ask Entra ID with it.',
      de: 'Der geheime Clientschlüssel der Verbindung „{connection}“ ist am {expires} abgelaufen; mailbridge hat Entra ID damit nicht angefragt.',
    },
    fix: {
      en: `${appPath.en} › Certificates & secrets › New client secret; copy its Value (not the Secret ID), run \`mailbridge secret set connections.{connection}.clientSecret\` and set connections.{connection}.clientSecretExpires to the new expiry date.`,
      de: `${appPath.de} › Zertifikate & Geheimnisse › Neuer geheimer Clientschlüssel; kopieren Sie den Wert (nicht die Geheimnis-ID), führen Sie \`mailbridge secret set connections.{connection}.clientSecret\` aus und setzen Sie connections.{connection}.clientSecretExpires auf das neue Ablaufdatum.`,
    },
  },
  MB_CLIENT_SECRET_EXPIRING: {
    http: 400,
    title: { en: 'Client secret expires soon', de: 'Geheimer Clientschlüssel läuft bald ab' },
    cause: {
      en: 'The client secret of connection "{connection}" expires on {expires}, in {days} days; after that no token can be obtained.',
      de: 'Der geheime Clientschlüssel der Verbindung „{connection}“ läuft am {expires} ab, in {days} Tagen; danach ist kein Token mehr zu bekommen.',
    },
    fix: {
      en: `Before then: ${appPath.en} › Certificates & secrets › New client secret; run \`mailbridge secret set connections.{connection}.clientSecret\` with its Value and update connections.{connection}.clientSecretExpires.`,
      de: `Vorher: ${appPath.de} › Zertifikate & Geheimnisse › Neuer geheimer Clientschlüssel; führen Sie \`mailbridge secret set connections.{connection}.clientSecret\` mit dem Wert aus und passen Sie connections.{connection}.clientSecretExpires an.`,
    },
  },
  MB_CLIENT_SECRET_EXPIRY_TOO_FAR: {
    http: 400,
    title: { en: 'Client secret expiry implausible', de: 'Ablaufdatum des Clientschlüssels unplausibel' },
    cause: {
      en: 'connections.{connection}.clientSecretExpires is {expires}, more than 24 months ahead; Entra ID issues client secrets for at most 24 months.',
      de: 'connections.{connection}.clientSecretExpires ist {expires}, mehr als 24 Monate voraus; Entra ID stellt geheime Clientschlüssel für höchstens 24 Monate aus.',
    },
    fix: {
      en: 'Copy the "Expires" date shown in Entra admin center › App registrations › <app> › Certificates & secrets into clientSecretExpires, so mailbridge warns in time.',
      de: 'Übernehmen Sie das unter Entra Admin Center › App-Registrierungen › <App> › Zertifikate & Geheimnisse angezeigte Ablaufdatum in clientSecretExpires, damit mailbridge rechtzeitig warnt.',
    },
  },
  MB_CLIENT_SECRET_EXPIRY_UNKNOWN: {
    http: 400,
    title: { en: 'Client secret expiry not configured', de: 'Ablaufdatum des Clientschlüssels nicht konfiguriert' },
    cause: {
      en: 'Connection "{connection}" has a client secret without clientSecretExpires; mailbridge cannot warn before it expires.',
      de: 'Verbindung „{connection}“ hat einen geheimen Clientschlüssel ohne clientSecretExpires; mailbridge kann nicht vor dem Ablauf warnen.',
    },
    fix: {
      en: 'Set connections.{connection}.clientSecretExpires (YYYY-MM-DD) to the "Expires" date in Entra admin center › App registrations › <app> › Certificates & secrets.',
      de: 'Setzen Sie connections.{connection}.clientSecretExpires (JJJJ-MM-TT) auf das Ablaufdatum unter Entra Admin Center › App-Registrierungen › <App> › Zertifikate & Geheimnisse.',
    },
  },

  // ── certificate ──────────────────────────────────────────────────────────────────────────────
  MB_CERT_UNREADABLE: {
    http: 500,
    title: { en: 'Certificate file unreadable', de: 'Zertifikatsdatei nicht lesbar' },
    cause: {
      en: 'The certificate of connection "{connection}" ({path}) could not be read: {detail}',
      de: 'Das Zertifikat der Verbindung „{connection}“ ({path}) konnte nicht gelesen werden: {detail}',
    },
    fix: {
      en: 'Check the path and that the mailbridge user may read it; the file must be PEM (certificate and key) or PFX/PKCS#12 (.pfx, .p12).',
      de: 'Prüfen Sie den Pfad und ob der mailbridge-Benutzer die Datei lesen darf; sie muss PEM (Zertifikat und Schlüssel) oder PFX/PKCS#12 (.pfx, .p12) sein.',
    },
  },
  MB_CERT_NO_CERTIFICATE: {
    http: 500,
    title: { en: 'No certificate in file', de: 'Kein Zertifikat in der Datei' },
    cause: {
      en: '{path} (connection "{connection}") contains no X.509 certificate.',
      de: '{path} (Verbindung „{connection}“) enthält kein X.509-Zertifikat.',
    },
    fix: {
      en: 'Put the certificate (-----BEGIN CERTIFICATE-----) into the file, or use the PFX exported together with its private key.',
      de: 'Fügen Sie das Zertifikat (-----BEGIN CERTIFICATE-----) in die Datei ein oder verwenden Sie die zusammen mit dem privaten Schlüssel exportierte PFX-Datei.',
    },
  },
  MB_CERT_NO_KEY: {
    http: 500,
    title: { en: 'No private key for the certificate', de: 'Kein privater Schlüssel zum Zertifikat' },
    cause: {
      en: '{path} (connection "{connection}") contains the certificate but no private key, and no privateKeyPath is set.',
      de: '{path} (Verbindung „{connection}“) enthält das Zertifikat, aber keinen privaten Schlüssel, und privateKeyPath ist nicht gesetzt.',
    },
    fix: {
      en: 'Add the key to the file, set connections.{connection}.certificate.privateKeyPath, or export a PFX with the private key (certmgr › Export › "Yes, export the private key").',
      de: 'Fügen Sie den Schlüssel in die Datei ein, setzen Sie connections.{connection}.certificate.privateKeyPath oder exportieren Sie eine PFX mit privatem Schlüssel (certmgr › Exportieren › „Ja, privaten Schlüssel exportieren“).',
    },
  },
  MB_CERT_PASSWORD_REQUIRED: {
    http: 500,
    title: { en: 'Certificate password missing', de: 'Zertifikatskennwort fehlt' },
    cause: {
      en: 'The private key in {path} (connection "{connection}") is password-protected, and no password is configured.',
      de: 'Der private Schlüssel in {path} (Verbindung „{connection}“) ist kennwortgeschützt, es ist aber kein Kennwort konfiguriert.',
    },
    fix: {
      en: 'Run `mailbridge secret set connections.{connection}.certificate.password` and enter the password.',
      de: 'Führen Sie `mailbridge secret set connections.{connection}.certificate.password` aus und geben Sie das Kennwort ein.',
    },
  },
  MB_CERT_WRONG_PASSWORD: {
    http: 500,
    title: { en: 'Certificate password wrong', de: 'Zertifikatskennwort falsch' },
    cause: {
      en: 'The configured password does not open {path} (connection "{connection}").',
      de: 'Das konfigurierte Kennwort öffnet {path} (Verbindung „{connection}“) nicht.',
    },
    fix: {
      en: 'Set the password used when the file was exported: `mailbridge secret set connections.{connection}.certificate.password`.',
      de: 'Setzen Sie das beim Export der Datei vergebene Kennwort: `mailbridge secret set connections.{connection}.certificate.password`.',
    },
  },
  MB_CERT_KEY_MISMATCH: {
    http: 500,
    title: { en: 'Private key does not match the certificate', de: 'Privater Schlüssel passt nicht zum Zertifikat' },
    cause: {
      en: 'The private key ({keyPath}) belongs to another certificate than {path} (connection "{connection}"); Entra ID would reject every signature.',
      de: 'Der private Schlüssel ({keyPath}) gehört zu einem anderen Zertifikat als {path} (Verbindung „{connection}“); Entra ID würde jede Signatur ablehnen.',
    },
    fix: {
      en: 'Use the key generated together with this certificate, or export certificate and key together as one PFX.',
      de: 'Verwenden Sie den zusammen mit diesem Zertifikat erzeugten Schlüssel oder exportieren Sie Zertifikat und Schlüssel gemeinsam als eine PFX-Datei.',
    },
  },
  MB_CERT_NOT_RSA: {
    http: 500,
    title: { en: 'Certificate key is not RSA', de: 'Zertifikatsschlüssel ist kein RSA-Schlüssel' },
    cause: {
      en: 'The key in {path} (connection "{connection}") is {type}; Entra ID client assertions (PS256, RS256) need an RSA key.',
      de: 'Der Schlüssel in {path} (Verbindung „{connection}“) ist {type}; Client-Assertions für Entra ID (PS256, RS256) brauchen einen RSA-Schlüssel.',
    },
    fix: {
      en: 'Create an RSA certificate (2048 bits or more), e.g. New-SelfSignedCertificate -Subject "CN=mailbridge" -KeyAlgorithm RSA -KeyLength 2048 -CertStoreLocation Cert:\\CurrentUser\\My, and upload it to the app.',
      de: 'Erstellen Sie ein RSA-Zertifikat (2048 Bit oder mehr), z. B. New-SelfSignedCertificate -Subject "CN=mailbridge" -KeyAlgorithm RSA -KeyLength 2048 -CertStoreLocation Cert:\\CurrentUser\\My, und laden Sie es in die App hoch.',
    },
  },
  MB_CERT_EXPIRED: {
    http: 401,
    title: { en: 'Certificate expired', de: 'Zertifikat abgelaufen' },
    cause: {
      en: 'The certificate of connection "{connection}" (thumbprint {thumbprint}) expired on {notAfter}; mailbridge did not ask Entra ID with it.',
      de: 'Das Zertifikat der Verbindung „{connection}“ (Fingerabdruck {thumbprint}) ist am {notAfter} abgelaufen; mailbridge hat Entra ID damit nicht angefragt.',
    },
    fix: {
      en: `Create a new certificate, upload its public part at ${appPath.en} › Certificates & secrets › Certificates › Upload certificate, and point connections.{connection}.certificate.path at it.`,
      de: `Erstellen Sie ein neues Zertifikat, laden Sie den öffentlichen Teil unter ${appPath.de} › Zertifikate & Geheimnisse › Zertifikate › Zertifikat hochladen hoch und lassen Sie connections.{connection}.certificate.path darauf zeigen.`,
    },
  },
  MB_CERT_EXPIRING: {
    http: 400,
    title: { en: 'Certificate expires soon', de: 'Zertifikat läuft bald ab' },
    cause: {
      en: 'The certificate of connection "{connection}" (thumbprint {thumbprint}) expires on {notAfter}, in {days} days.',
      de: 'Das Zertifikat der Verbindung „{connection}“ (Fingerabdruck {thumbprint}) läuft am {notAfter} ab, in {days} Tagen.',
    },
    fix: {
      en: `Before then: upload a new certificate at ${appPath.en} › Certificates & secrets › Certificates › Upload certificate and point connections.{connection}.certificate.path at it.`,
      de: `Vorher: Laden Sie unter ${appPath.de} › Zertifikate & Geheimnisse › Zertifikate › Zertifikat hochladen ein neues Zertifikat hoch und lassen Sie connections.{connection}.certificate.path darauf zeigen.`,
    },
  },
  MB_CERT_NOT_YET_VALID: {
    http: 401,
    title: { en: 'Certificate not yet valid', de: 'Zertifikat noch nicht gültig' },
    cause: {
      en: 'The certificate of connection "{connection}" ({path}) is valid only from {notBefore}.',
      de: 'Das Zertifikat der Verbindung „{connection}“ ({path}) ist erst ab {notBefore} gültig.',
    },
    fix: {
      en: 'Check this server\'s clock (timedatectl), or wait until the certificate becomes valid.',
      de: 'Prüfen Sie die Uhr dieses Servers (timedatectl) oder warten Sie, bis das Zertifikat gültig wird.',
    },
  },

  // ── network ─────────────────────────────────────────────────────────────────────────────────
  MB_IDENTITY_NETWORK: {
    http: 502,
    title: { en: 'Entra ID unreachable', de: 'Entra ID nicht erreichbar' },
    cause: {
      en: 'mailbridge could not reach {host}: {detail}',
      de: 'mailbridge konnte {host} nicht erreichen: {detail}',
    },
    fix: {
      en: 'Check DNS and the firewall for outbound HTTPS (port 443) to {host}; behind a proxy set server.proxy or the connection\'s proxy.',
      de: 'Prüfen Sie DNS und die Firewall für ausgehendes HTTPS (Port 443) zu {host}; hinter einem Proxy setzen Sie server.proxy oder proxy der Verbindung.',
    },
  },
  MB_IDENTITY_TLS: {
    http: 502,
    title: { en: 'TLS certificate of Entra ID not trusted', de: 'TLS-Zertifikat von Entra ID nicht vertrauenswürdig' },
    cause: {
      en: 'The TLS connection to {host} failed certificate checks: {detail}',
      de: 'Die TLS-Verbindung zu {host} hat die Zertifikatsprüfung nicht bestanden: {detail}',
    },
    fix: {
      en: 'A TLS-inspecting proxy or the sandbox uses its own CA: put that CA certificate (PEM) into a file and set the connection\'s caFile to it.',
      de: 'Ein TLS-prüfender Proxy oder die Sandbox verwendet eine eigene CA: Legen Sie deren Zertifikat (PEM) in eine Datei und setzen Sie caFile der Verbindung darauf.',
    },
  },
  MB_IDENTITY_PROXY: {
    http: 502,
    title: { en: 'Proxy failure', de: 'Proxy-Fehler' },
    cause: {
      en: 'The proxy {proxy} did not connect mailbridge to {host}: {detail}',
      de: 'Der Proxy {proxy} hat mailbridge nicht mit {host} verbunden: {detail}',
    },
    fix: {
      en: 'Check the proxy address and port, allow CONNECT to {target} on the proxy, and put user and password into the proxy URL if it asks for them (http://user:password@proxy:3128).',
      de: 'Prüfen Sie Adresse und Port des Proxys, erlauben Sie dort CONNECT zu {target} und tragen Sie Benutzer und Kennwort in die Proxy-URL ein, falls er danach fragt (http://benutzer:kennwort@proxy:3128).',
    },
  },
  MB_IDENTITY_TIMEOUT: {
    http: 504,
    title: { en: 'Entra ID did not answer in time', de: 'Entra ID hat nicht rechtzeitig geantwortet' },
    cause: {
      en: '{host} did not answer within {seconds} seconds, also after retries.',
      de: '{host} hat auch nach Wiederholungen nicht innerhalb von {seconds} Sekunden geantwortet.',
    },
    fix: {
      en: 'Check the network path and proxy to {host}; see https://status.cloud.microsoft for Entra ID incidents.',
      de: 'Prüfen Sie den Netzwerkweg und Proxy zu {host}; Störungen von Entra ID zeigt https://status.cloud.microsoft.',
    },
  },
  MB_IDENTITY_BAD_RESPONSE: {
    http: 502,
    title: { en: 'Unexpected answer from the token endpoint', de: 'Unerwartete Antwort des Token-Endpunkts' },
    cause: {
      en: '{endpoint} answered HTTP {status} with something that is not Entra ID\'s JSON ({detail}).',
      de: '{endpoint} antwortete mit HTTP {status} und etwas, das nicht das JSON von Entra ID ist ({detail}).',
    },
    fix: {
      en: 'Check the connection\'s tokenEndpoint (or remove it to use the cloud default) and whether a proxy answers in Entra ID\'s place.',
      de: 'Prüfen Sie tokenEndpoint der Verbindung (oder entfernen Sie ihn für den Standard der Cloud) und ob ein Proxy anstelle von Entra ID antwortet.',
    },
  },
  MB_ENTRA_THROTTLED: {
    http: 429,
    title: { en: 'Entra ID throttles token requests', de: 'Entra ID drosselt Tokenanfragen' },
    cause: {
      en: 'Entra ID answered 429 Too Many Requests and asks to wait {seconds} seconds.',
      de: 'Entra ID antwortete mit 429 Too Many Requests und bittet, {seconds} Sekunden zu warten.',
    },
    fix: {
      en: 'mailbridge retries by itself; if this persists, check for other programs using the same app registration, and mailbridge\'s log for repeated sign-ins.',
      de: 'mailbridge wiederholt selbstständig; hält es an, prüfen Sie, ob andere Programme dieselbe App-Registrierung verwenden, und das mailbridge-Protokoll auf wiederholte Anmeldungen.',
    },
  },
  MB_ENTRA_UNAVAILABLE: {
    http: 503,
    title: { en: 'Entra ID temporarily unavailable', de: 'Entra ID vorübergehend nicht verfügbar' },
    cause: {
      en: '{endpoint} answered HTTP {status}, also after retries.',
      de: '{endpoint} antwortete auch nach Wiederholungen mit HTTP {status}.',
    },
    fix: {
      en: 'Wait and retry; see https://status.cloud.microsoft for Entra ID incidents.',
      de: 'Warten Sie und versuchen Sie es erneut; Störungen von Entra ID zeigt https://status.cloud.microsoft.',
    },
  },

  // ── Entra ID: one code per AADSTS number ─────────────────────────────────────────────────────
  MB_ENTRA_SECRET_INVALID: {
    http: 401,
    title: { en: 'Client secret rejected (AADSTS7000215)', de: 'Geheimer Clientschlüssel abgelehnt (AADSTS7000215)' },
    cause: {
      en: 'Entra ID does not know the client secret of connection "{connection}" for app {clientId}. Often the Secret ID was copied instead of its Value, or the secret belongs to another app.',
      de: 'Entra ID kennt den geheimen Clientschlüssel der Verbindung „{connection}“ für die App {clientId} nicht. Oft wurde die Geheimnis-ID statt des Werts kopiert, oder der Schlüssel gehört zu einer anderen App.',
    },
    fix: {
      en: `${appPath.en} › Certificates & secrets › New client secret; copy the Value column (shown only once) and run \`mailbridge secret set connections.{connection}.clientSecret\`.`,
      de: `${appPath.de} › Zertifikate & Geheimnisse › Neuer geheimer Clientschlüssel; kopieren Sie die Spalte Wert (wird nur einmal angezeigt) und führen Sie \`mailbridge secret set connections.{connection}.clientSecret\` aus.`,
    },
  },
  MB_ENTRA_SECRET_EXPIRED: {
    http: 401,
    title: { en: 'Client secret expired (AADSTS7000222)', de: 'Geheimer Clientschlüssel abgelaufen (AADSTS7000222)' },
    cause: {
      en: 'Entra ID says the client secret of connection "{connection}" (app {clientId}) has expired.',
      de: 'Laut Entra ID ist der geheime Clientschlüssel der Verbindung „{connection}“ (App {clientId}) abgelaufen.',
    },
    fix: {
      en: `${appPath.en} › Certificates & secrets › New client secret; run \`mailbridge secret set connections.{connection}.clientSecret\` with its Value and set connections.{connection}.clientSecretExpires to the new date.`,
      de: `${appPath.de} › Zertifikate & Geheimnisse › Neuer geheimer Clientschlüssel; führen Sie \`mailbridge secret set connections.{connection}.clientSecret\` mit dem Wert aus und setzen Sie connections.{connection}.clientSecretExpires auf das neue Datum.`,
    },
  },
  MB_ENTRA_APP_NOT_FOUND: {
    http: 400,
    title: { en: 'App not found in the tenant (AADSTS700016)', de: 'App im Mandanten nicht gefunden (AADSTS700016)' },
    cause: {
      en: 'Tenant {tenantId} has no application {clientId} (connection "{connection}"): the client ID is mistyped, the app lives in another tenant, or it was never consented there.',
      de: 'Mandant {tenantId} hat keine Anwendung {clientId} (Verbindung „{connection}“): Die Client-ID ist vertippt, die App liegt in einem anderen Mandanten oder wurde dort nie zugelassen.',
    },
    fix: {
      en: 'Copy "Application (client) ID" and "Directory (tenant) ID" from Entra admin center ({portal}) › App registrations › <app> › Overview into clientId and tenantId.',
      de: 'Übernehmen Sie „Anwendungs-ID (Client)“ und „Verzeichnis-ID (Mandant)“ aus Entra Admin Center ({portal}) › App-Registrierungen › <App> › Übersicht in clientId und tenantId.',
    },
  },
  MB_ENTRA_CONSENT_REQUIRED: {
    http: 403,
    title: { en: 'Consent missing (AADSTS65001)', de: 'Zustimmung fehlt (AADSTS65001)' },
    cause: {
      en: 'Nobody has consented to app {clientId} using {scope} in tenant {tenantId} (connection "{connection}").',
      de: 'Niemand hat der App {clientId} die Verwendung von {scope} im Mandanten {tenantId} erlaubt (Verbindung „{connection}“).',
    },
    fix: {
      en: `${appPath.en} › API permissions › Add a permission › APIs my organization uses › Office 365 Exchange Online (or Microsoft Graph) › Delegated permissions, add the permissions, then "Grant admin consent"; afterwards run \`mailbridge signin {connection}\` again.`,
      de: `${appPath.de} › API-Berechtigungen › Berechtigung hinzufügen › Von meiner Organisation verwendete APIs › Office 365 Exchange Online (oder Microsoft Graph) › Delegierte Berechtigungen, Berechtigungen hinzufügen, dann „Administratorzustimmung erteilen“; danach \`mailbridge signin {connection}\` erneut ausführen.`,
    },
  },
  MB_ENTRA_TENANT_NOT_FOUND: {
    http: 400,
    title: { en: 'Tenant not found (AADSTS90002)', de: 'Mandant nicht gefunden (AADSTS90002)' },
    cause: {
      en: 'Entra ID at {loginHost} knows no tenant "{tenantId}" (connection "{connection}"): the tenant ID is wrong, or the tenant lives in another cloud than "{cloud}".',
      de: 'Entra ID unter {loginHost} kennt keinen Mandanten „{tenantId}“ (Verbindung „{connection}“): Die Mandanten-ID ist falsch, oder der Mandant liegt in einer anderen Cloud als „{cloud}“.',
    },
    fix: {
      en: 'Copy "Directory (tenant) ID" from Entra admin center › Overview into tenantId, and set connections.{connection}.cloud to the tenant\'s cloud (global, gcc, gcc-high, dod, china).',
      de: 'Übernehmen Sie „Verzeichnis-ID (Mandant)“ aus Entra Admin Center › Übersicht in tenantId und setzen Sie connections.{connection}.cloud auf die Cloud des Mandanten (global, gcc, gcc-high, dod, china).',
    },
  },
  MB_ENTRA_SCOPE_INVALID: {
    http: 400,
    title: { en: 'Scope not valid (AADSTS70011)', de: 'Scope ungültig (AADSTS70011)' },
    cause: {
      en: 'Entra ID rejected the scope {scope} of connection "{connection}".',
      de: 'Entra ID hat den Scope {scope} der Verbindung „{connection}“ abgelehnt.',
    },
    fix: {
      en: 'Remove scopes.exchange / scopes.graph from the connection to use the cloud defaults, or use full scope URLs such as https://outlook.office.com/IMAP.AccessAsUser.All.',
      de: 'Entfernen Sie scopes.exchange / scopes.graph aus der Verbindung, um die Standards der Cloud zu nutzen, oder verwenden Sie vollständige Scope-URLs wie https://outlook.office.com/IMAP.AccessAsUser.All.',
    },
  },
  MB_ENTRA_SCOPE_NOT_DEFAULT: {
    http: 400,
    title: { en: 'App-only scope must end in /.default (AADSTS1002012)', de: 'App-Scope muss auf /.default enden (AADSTS1002012)' },
    cause: {
      en: 'Connection "{connection}" asks for {scope} with client credentials; app-only tokens take exactly one RESOURCE/.default scope.',
      de: 'Verbindung „{connection}“ fragt mit Client-Anmeldeinformationen nach {scope}; App-Token nehmen genau einen Scope RESSOURCE/.default.',
    },
    fix: {
      en: 'Set scopes.exchange to [https://outlook.office365.com/.default] (the default for the global cloud) or remove the override.',
      de: 'Setzen Sie scopes.exchange auf [https://outlook.office365.com/.default] (Standard der globalen Cloud) oder entfernen Sie die Überschreibung.',
    },
  },
  MB_ENTRA_RESOURCE_NOT_FOUND: {
    http: 400,
    title: { en: 'Resource not in the tenant (AADSTS500011)', de: 'Ressource nicht im Mandanten (AADSTS500011)' },
    cause: {
      en: 'Tenant {tenantId} has no service principal for {scope} (connection "{connection}"), typically a tenant without Exchange Online, or a scope of another cloud.',
      de: 'Mandant {tenantId} hat keinen Dienstprinzipal für {scope} (Verbindung „{connection}“), meist ein Mandant ohne Exchange Online oder ein Scope einer anderen Cloud.',
    },
    fix: {
      en: 'Check that the tenant has Exchange Online licences (Microsoft 365 admin center › Billing › Licenses) and that connections.{connection}.cloud matches the tenant.',
      de: 'Prüfen Sie, ob der Mandant Exchange-Online-Lizenzen hat (Microsoft 365 Admin Center › Abrechnung › Lizenzen) und ob connections.{connection}.cloud zum Mandanten passt.',
    },
  },
  MB_ENTRA_ASSERTION_INVALID: {
    http: 401,
    title: { en: 'Certificate not accepted (AADSTS700027)', de: 'Zertifikat nicht akzeptiert (AADSTS700027)' },
    cause: {
      en: 'Entra ID could not verify the certificate assertion of connection "{connection}": the certificate (thumbprint {thumbprint}) is not uploaded to app {clientId}, or it has expired there. Microsoft says: {description}',
      de: 'Entra ID konnte die Zertifikats-Assertion der Verbindung „{connection}“ nicht prüfen: Das Zertifikat (Fingerabdruck {thumbprint}) ist nicht in die App {clientId} hochgeladen oder dort abgelaufen. Microsoft meldet: {description}',
    },
    fix: {
      en: `${appPath.en} › Certificates & secrets › Certificates › Upload certificate (the .cer/.pem of this certificate); compare the thumbprint shown there with {thumbprint}.`,
      de: `${appPath.de} › Zertifikate & Geheimnisse › Zertifikate › Zertifikat hochladen (die .cer/.pem dieses Zertifikats); vergleichen Sie den dort angezeigten Fingerabdruck mit {thumbprint}.`,
    },
  },
  MB_ENTRA_ASSERTION_TIME: {
    http: 401,
    title: { en: 'Assertion outside its valid time (AADSTS700024)', de: 'Assertion außerhalb ihrer Gültigkeit (AADSTS700024)' },
    cause: {
      en: 'Entra ID found the client assertion of connection "{connection}" expired or not yet valid; this server\'s clock is probably wrong.',
      de: 'Entra ID hält die Client-Assertion der Verbindung „{connection}“ für abgelaufen oder noch nicht gültig; die Uhr dieses Servers geht vermutlich falsch.',
    },
    fix: {
      en: 'Synchronise the clock (timedatectl set-ntp true, or w32tm /resync on Windows hosts).',
      de: 'Synchronisieren Sie die Uhr (timedatectl set-ntp true bzw. w32tm /resync auf Windows-Hosts).',
    },
  },
  MB_ENTRA_ASSERTION_FAILED: {
    http: 401,
    title: { en: 'Assertion signature rejected (AADSTS50012)', de: 'Assertion-Signatur abgelehnt (AADSTS50012)' },
    cause: {
      en: 'Entra ID rejected the signed assertion of connection "{connection}". Microsoft says: {description}',
      de: 'Entra ID hat die signierte Assertion der Verbindung „{connection}“ abgelehnt. Microsoft meldet: {description}',
    },
    fix: {
      en: `Check that the certificate uploaded at ${appPath.en} › Certificates & secrets matches the one mailbridge uses; if an old system expects RS256, set certificate.algorithm: RS256.`,
      de: `Prüfen Sie, ob das unter ${appPath.de} › Zertifikate & Geheimnisse hochgeladene Zertifikat dem von mailbridge verwendeten entspricht; erwartet ein Altsystem RS256, setzen Sie certificate.algorithm: RS256.`,
    },
  },
  MB_ENTRA_ASSERTION_SUBJECT: {
    http: 401,
    title: { en: 'Assertion subject mismatch (AADSTS50048)', de: 'Assertion-Subjekt passt nicht (AADSTS50048)' },
    cause: {
      en: 'The client assertion of connection "{connection}" names a subject other than its issuer.',
      de: 'Die Client-Assertion der Verbindung „{connection}“ nennt ein anderes Subjekt als ihren Aussteller.',
    },
    fix: {
      en: 'Check that connections.{connection}.clientId is the Application (client) ID of the app that owns the certificate.',
      de: 'Prüfen Sie, ob connections.{connection}.clientId die Anwendungs-ID (Client) der App ist, zu der das Zertifikat gehört.',
    },
  },
  MB_ENTRA_CREDENTIAL_MISSING: {
    http: 401,
    title: { en: 'App needs a credential (AADSTS7000218)', de: 'App braucht eine Anmeldeinformation (AADSTS7000218)' },
    cause: {
      en: 'App {clientId} is a confidential client, and connection "{connection}" sent no client secret or certificate.',
      de: 'App {clientId} ist ein vertraulicher Client, und Verbindung „{connection}“ hat weder geheimen Clientschlüssel noch Zertifikat gesendet.',
    },
    fix: {
      en: `For device code sign-in: ${appPath.en} › Authentication › Advanced settings › Allow public client flows › Yes. For auth code sign-in: configure clientSecret or certificate on the connection.`,
      de: `Für die Gerätecode-Anmeldung: ${appPath.de} › Authentifizierung › Erweiterte Einstellungen › Öffentliche Clientflows zulassen › Ja. Für die Anmeldung per Autorisierungscode: clientSecret oder certificate an der Verbindung konfigurieren.`,
    },
  },
  MB_ENTRA_PUBLIC_CLIENT: {
    http: 401,
    title: { en: 'Public client must not send a credential (AADSTS700025)', de: 'Öffentlicher Client darf keine Anmeldeinformation senden (AADSTS700025)' },
    cause: {
      en: 'App {clientId} is registered as a public client, yet connection "{connection}" sent a client secret or certificate.',
      de: 'App {clientId} ist als öffentlicher Client registriert, Verbindung „{connection}“ hat aber einen geheimen Clientschlüssel oder ein Zertifikat gesendet.',
    },
    fix: {
      en: `Remove clientSecret/certificate from the connection, or register the redirect URI under the "Web" platform at ${appPath.en} › Authentication.`,
      de: `Entfernen Sie clientSecret/certificate aus der Verbindung oder registrieren Sie die Umleitungs-URI unter der Plattform „Web“ in ${appPath.de} › Authentifizierung.`,
    },
  },
  MB_ENTRA_AUTHORIZATION_PENDING: {
    http: 400,
    title: { en: 'Waiting for the sign-in (AADSTS70016)', de: 'Warte auf die Anmeldung (AADSTS70016)' },
    cause: {
      en: 'The device code for connection "{connection}" has not been entered and confirmed yet.',
      de: 'Der Gerätecode für Verbindung „{connection}“ wurde noch nicht eingegeben und bestätigt.',
    },
    fix: {
      en: 'Open the verification page shown, enter the code and sign in with the mailbox account; mailbridge keeps asking until then.',
      de: 'Öffnen Sie die angezeigte Bestätigungsseite, geben Sie den Code ein und melden Sie sich mit dem Postfachkonto an; mailbridge fragt bis dahin weiter nach.',
    },
  },
  MB_ENTRA_DEVICE_CODE_INVALID: {
    http: 400,
    title: { en: 'Device code not recognised (AADSTS70018)', de: 'Gerätecode nicht erkannt (AADSTS70018)' },
    cause: {
      en: 'Entra ID did not recognise the device code of connection "{connection}".',
      de: 'Entra ID hat den Gerätecode der Verbindung „{connection}“ nicht erkannt.',
    },
    fix: { en: 'Start again: `mailbridge signin {connection} --device-code`.', de: 'Beginnen Sie neu: `mailbridge signin {connection} --device-code`.' },
  },
  MB_ENTRA_DEVICE_CODE_EXPIRED: {
    http: 400,
    title: { en: 'Device code expired (AADSTS70019)', de: 'Gerätecode abgelaufen (AADSTS70019)' },
    cause: {
      en: 'The device code of connection "{connection}" expired before anyone signed in with it (codes live about 15 minutes).',
      de: 'Der Gerätecode der Verbindung „{connection}“ ist abgelaufen, bevor sich jemand damit angemeldet hat (Codes gelten etwa 15 Minuten).',
    },
    fix: { en: 'Start again: `mailbridge signin {connection} --device-code`, and enter the new code promptly.', de: 'Beginnen Sie neu: `mailbridge signin {connection} --device-code`, und geben Sie den neuen Code zügig ein.' },
  },
  MB_ENTRA_REFRESH_EXPIRED: {
    http: 401,
    title: { en: 'Sign-in expired after inactivity (AADSTS700082)', de: 'Anmeldung nach Inaktivität abgelaufen (AADSTS700082)' },
    cause: {
      en: 'The stored sign-in of {account} (connection "{connection}") was not used for too long (90 days) and has expired.',
      de: 'Die gespeicherte Anmeldung von {account} (Verbindung „{connection}“) wurde zu lange nicht verwendet (90 Tage) und ist abgelaufen.',
    },
    fix: { en: 'Sign in again: `mailbridge signin {connection}`.', de: 'Melden Sie sich erneut an: `mailbridge signin {connection}`.' },
  },
  MB_ENTRA_GRANT_REVOKED: {
    http: 401,
    title: { en: 'Sign-in revoked or expired (AADSTS70008)', de: 'Anmeldung widerrufen oder abgelaufen (AADSTS70008)' },
    cause: {
      en: 'The stored sign-in of {account} (connection "{connection}") has expired or was revoked (password change, admin revoked sessions).',
      de: 'Die gespeicherte Anmeldung von {account} (Verbindung „{connection}“) ist abgelaufen oder wurde widerrufen (Kennwortänderung, Sitzungen vom Admin widerrufen).',
    },
    fix: { en: 'Sign in again: `mailbridge signin {connection}`.', de: 'Melden Sie sich erneut an: `mailbridge signin {connection}`.' },
  },
  MB_ENTRA_FRESH_TOKEN_NEEDED: {
    http: 401,
    title: { en: 'Fresh sign-in needed (AADSTS50173)', de: 'Neue Anmeldung nötig (AADSTS50173)' },
    cause: {
      en: 'The sign-in of {account} (connection "{connection}") was revoked, typically after a password change.',
      de: 'Die Anmeldung von {account} (Verbindung „{connection}“) wurde widerrufen, meist nach einer Kennwortänderung.',
    },
    fix: { en: 'Sign in again: `mailbridge signin {connection}`.', de: 'Melden Sie sich erneut an: `mailbridge signin {connection}`.' },
  },
  MB_ENTRA_GRANT_INVALID: {
    http: 401,
    title: { en: 'Stored sign-in invalid (AADSTS70000)', de: 'Gespeicherte Anmeldung ungültig (AADSTS70000)' },
    cause: {
      en: 'Entra ID no longer accepts the stored sign-in of {account} (connection "{connection}"). Microsoft says: {description}',
      de: 'Entra ID akzeptiert die gespeicherte Anmeldung von {account} (Verbindung „{connection}“) nicht mehr. Microsoft meldet: {description}',
    },
    fix: { en: 'Sign in again: `mailbridge signin {connection}`.', de: 'Melden Sie sich erneut an: `mailbridge signin {connection}`.' },
  },
  MB_ENTRA_SIGNIN_FREQUENCY: {
    http: 401,
    title: { en: 'Sign-in frequency policy (AADSTS70043)', de: 'Richtlinie zur Anmeldehäufigkeit (AADSTS70043)' },
    cause: {
      en: 'A Conditional Access sign-in frequency policy ended the stored sign-in of {account} (connection "{connection}").',
      de: 'Eine Richtlinie für bedingten Zugriff (Anmeldehäufigkeit) hat die gespeicherte Anmeldung von {account} (Verbindung „{connection}“) beendet.',
    },
    fix: {
      en: 'Sign in again (`mailbridge signin {connection}`); for a lasting fix exclude this account from the policy at Entra admin center › Protection › Conditional Access.',
      de: 'Melden Sie sich erneut an (`mailbridge signin {connection}`); dauerhaft: Konto von der Richtlinie ausnehmen unter Entra Admin Center › Schutz › Bedingter Zugriff.',
    },
  },
  MB_ENTRA_SPA_REFRESH_EXPIRED: {
    http: 401,
    title: { en: 'Single-page-app sign-in expired (AADSTS700084)', de: 'Anmeldung einer Single-Page-App abgelaufen (AADSTS700084)' },
    cause: {
      en: 'The redirect URI of app {clientId} is registered as "Single-page application", whose sign-ins last only 24 hours.',
      de: 'Die Umleitungs-URI der App {clientId} ist als „Single-Page-Anwendung“ registriert, deren Anmeldungen nur 24 Stunden gelten.',
    },
    fix: {
      en: `${appPath.en} › Authentication: register the redirect URI under "Web" instead of "Single-page application", then \`mailbridge signin {connection}\`.`,
      de: `${appPath.de} › Authentifizierung: Umleitungs-URI unter „Web“ statt „Single-Page-Anwendung“ registrieren, dann \`mailbridge signin {connection}\`.`,
    },
  },
  MB_ENTRA_CODE_REDEEMED: {
    http: 400,
    title: { en: 'Sign-in link already used (AADSTS54005)', de: 'Anmeldelink bereits verwendet (AADSTS54005)' },
    cause: {
      en: 'The authorization code for connection "{connection}" was already redeemed (the redirect page was reloaded).',
      de: 'Der Autorisierungscode für Verbindung „{connection}“ wurde bereits eingelöst (die Umleitungsseite wurde neu geladen).',
    },
    fix: { en: 'Start a new sign-in: `mailbridge signin {connection}`.', de: 'Starten Sie eine neue Anmeldung: `mailbridge signin {connection}`.' },
  },
  MB_ENTRA_PKCE_MISMATCH: {
    http: 400,
    title: { en: 'PKCE check failed (AADSTS501481)', de: 'PKCE-Prüfung fehlgeschlagen (AADSTS501481)' },
    cause: {
      en: 'The code verifier did not match the sign-in link of connection "{connection}"; the link was started by another mailbridge instance.',
      de: 'Der Code-Verifier passte nicht zum Anmeldelink der Verbindung „{connection}“; der Link wurde von einer anderen mailbridge-Instanz erzeugt.',
    },
    fix: {
      en: 'Start a new sign-in with `mailbridge signin {connection}` on the machine whose gateway serves the redirect URI.',
      de: 'Starten Sie eine neue Anmeldung mit `mailbridge signin {connection}` auf dem Rechner, dessen Gateway die Umleitungs-URI bedient.',
    },
  },
  MB_ENTRA_MFA_REQUIRED: {
    http: 401,
    title: { en: 'Multi-factor authentication required (AADSTS50076)', de: 'Mehrstufige Authentifizierung erforderlich (AADSTS50076)' },
    cause: {
      en: 'A policy requires MFA for {account} (connection "{connection}"), and the stored sign-in does not satisfy it.',
      de: 'Eine Richtlinie verlangt MFA für {account} (Verbindung „{connection}“), und die gespeicherte Anmeldung erfüllt sie nicht.',
    },
    fix: { en: 'Sign in again interactively and complete MFA: `mailbridge signin {connection}`.', de: 'Melden Sie sich interaktiv erneut an und schließen Sie MFA ab: `mailbridge signin {connection}`.' },
  },
  MB_ENTRA_MFA_ENROLLMENT: {
    http: 401,
    title: { en: 'MFA enrolment required (AADSTS50079)', de: 'MFA-Registrierung erforderlich (AADSTS50079)' },
    cause: {
      en: '{account} (connection "{connection}") must register an MFA method before signing in.',
      de: '{account} (Verbindung „{connection}“) muss vor der Anmeldung eine MFA-Methode registrieren.',
    },
    fix: {
      en: 'Have the user register at https://aka.ms/mysecurityinfo, then run `mailbridge signin {connection}`.',
      de: 'Lassen Sie den Benutzer sich unter https://aka.ms/mysecurityinfo registrieren und führen Sie dann `mailbridge signin {connection}` aus.',
    },
  },
  MB_ENTRA_BLOCKED_BY_CA: {
    http: 403,
    title: { en: 'Blocked by Conditional Access (AADSTS53003)', de: 'Durch bedingten Zugriff blockiert (AADSTS53003)' },
    cause: {
      en: 'A Conditional Access policy blocks app {clientId} for {account} (connection "{connection}"), e.g. by location or device.',
      de: 'Eine Richtlinie für bedingten Zugriff blockiert die App {clientId} für {account} (Verbindung „{connection}“), z. B. nach Standort oder Gerät.',
    },
    fix: {
      en: 'Find the policy under Entra admin center › Monitoring › Sign-in logs (filter by the correlation ID) and exclude this app or the gateway\'s IP from it at Protection › Conditional Access.',
      de: 'Finden Sie die Richtlinie unter Entra Admin Center › Überwachung › Anmeldeprotokolle (nach Korrelations-ID filtern) und nehmen Sie diese App oder die IP des Gateways unter Schutz › Bedingter Zugriff davon aus.',
    },
  },
  MB_ENTRA_APP_BLOCKED_BY_CA: {
    http: 403,
    title: { en: 'App blocked by Conditional Access (AADSTS{aadsts})', de: 'App durch bedingten Zugriff blockiert (AADSTS{aadsts})' },
    cause: {
      en: 'A Conditional Access policy for workload identities blocks the app-only sign-in of app {clientId} (connection "{connection}"), e.g. by location; an app cannot satisfy MFA.',
      de: 'Eine Richtlinie für bedingten Zugriff auf Workloadidentitäten blockiert die reine App-Anmeldung der App {clientId} (Verbindung „{connection}“), z. B. nach Standort; eine App kann keine MFA erfüllen.',
    },
    fix: {
      en: 'Find the policy under Entra admin center › Monitoring › Sign-in logs › Service principal sign-ins (filter by the correlation ID) and exclude this app or the gateway\'s IP from it at Protection › Conditional Access.',
      de: 'Finden Sie die Richtlinie unter Entra Admin Center › Überwachung › Anmeldeprotokolle › Dienstprinzipalanmeldungen (nach Korrelations-ID filtern) und nehmen Sie diese App oder die IP des Gateways unter Schutz › Bedingter Zugriff davon aus.',
    },
  },
  MB_ENTRA_APP_DISABLED: {
    http: 403,
    title: { en: 'App disabled (AADSTS7000112)', de: 'App deaktiviert (AADSTS7000112)' },
    cause: {
      en: 'The enterprise application of app {clientId} is disabled in tenant {tenantId} (connection "{connection}").',
      de: 'Die Unternehmensanwendung der App {clientId} ist im Mandanten {tenantId} deaktiviert (Verbindung „{connection}“).',
    },
    fix: {
      en: 'Entra admin center ({portal}) › Enterprise applications › <app> › Properties › "Enabled for users to sign in?" › Yes; or PowerShell: Update-MgServicePrincipal -ServicePrincipalId <object ID> -AccountEnabled:$true',
      de: 'Entra Admin Center ({portal}) › Unternehmensanwendungen › <App> › Eigenschaften › „Aktiviert für Benutzer zum Anmelden?“ › Ja; oder PowerShell: Update-MgServicePrincipal -ServicePrincipalId <Objekt-ID> -AccountEnabled:$true',
    },
  },
  MB_ENTRA_APP_UNAUTHORIZED: {
    http: 403,
    title: { en: 'App not authorised (AADSTS70001)', de: 'App nicht berechtigt (AADSTS70001)' },
    cause: {
      en: 'Entra ID refuses app {clientId} in tenant {tenantId} (connection "{connection}"): it is disabled or not available there. Microsoft says: {description}',
      de: 'Entra ID weist die App {clientId} im Mandanten {tenantId} ab (Verbindung „{connection}“): Sie ist deaktiviert oder dort nicht verfügbar. Microsoft meldet: {description}',
    },
    fix: {
      en: 'Check Entra admin center ({portal}) › Enterprise applications › <app> › Properties ("Enabled for users to sign in?" › Yes) and that clientId/tenantId belong together.',
      de: 'Prüfen Sie Entra Admin Center ({portal}) › Unternehmensanwendungen › <App> › Eigenschaften („Aktiviert für Benutzer zum Anmelden?“ › Ja) und ob clientId/tenantId zusammengehören.',
    },
  },
  MB_ENTRA_REDIRECT_MISMATCH: {
    http: 400,
    title: { en: 'Redirect URI not registered (AADSTS50011)', de: 'Umleitungs-URI nicht registriert (AADSTS50011)' },
    cause: {
      en: 'App {clientId} has no redirect URI {redirectUri} (connection "{connection}"); it must match exactly, including http/https, host, port and path.',
      de: 'App {clientId} hat keine Umleitungs-URI {redirectUri} (Verbindung „{connection}“); sie muss exakt übereinstimmen, einschließlich http/https, Host, Port und Pfad.',
    },
    fix: {
      en: `${appPath.en} › Authentication › Add a platform › Web › Redirect URIs: add {redirectUri}.`,
      de: `${appPath.de} › Authentifizierung › Plattform hinzufügen › Web › Umleitungs-URIs: {redirectUri} hinzufügen.`,
    },
  },
  MB_ENTRA_GRANT_ON_COMMON: {
    http: 400,
    title: { en: 'Tenant-specific endpoint required (AADSTS9001023)', de: 'Mandantenspezifischer Endpunkt erforderlich (AADSTS9001023)' },
    cause: {
      en: 'Connection "{connection}" asked /common or /consumers for a grant that needs the tenant.',
      de: 'Verbindung „{connection}“ hat /common oder /consumers nach einer Berechtigung gefragt, die den Mandanten braucht.',
    },
    fix: {
      en: 'Set connections.{connection}.tenantId to the Directory (tenant) ID, and keep #TenantID# in tokenEndpoint.',
      de: 'Setzen Sie connections.{connection}.tenantId auf die Verzeichnis-ID (Mandant) und behalten Sie #TenantID# in tokenEndpoint bei.',
    },
  },
  MB_ENTRA_WRONG_PASSWORD: {
    http: 401,
    title: { en: 'Wrong user name or password (AADSTS50126)', de: 'Falscher Benutzername oder falsches Kennwort (AADSTS50126)' },
    cause: {
      en: 'Entra ID did not accept the user name or password of {account} for connection "{connection}" (a typo, or the password was changed or has expired).',
      de: 'Entra ID hat Benutzername oder Kennwort von {account} für Verbindung „{connection}“ nicht akzeptiert (Tippfehler, oder das Kennwort wurde geändert oder ist abgelaufen).',
    },
    fix: {
      en: 'Sign in again with the mailbox account\'s current password: `mailbridge signin {connection}`. If it is unknown, reset it at Entra admin center › Users › <user> › Reset password.',
      de: 'Melden Sie sich mit dem aktuellen Kennwort des Postfachkontos erneut an: `mailbridge signin {connection}`. Ist es unbekannt, setzen Sie es unter Entra Admin Center › Benutzer › <Benutzer> › Kennwort zurücksetzen zurück.',
    },
  },
  MB_ENTRA_USER_DISABLED: {
    http: 403,
    title: { en: 'User account disabled (AADSTS50057)', de: 'Benutzerkonto deaktiviert (AADSTS50057)' },
    cause: {
      en: 'The user account {account} of connection "{connection}" is disabled in tenant {tenantId}, so Entra ID signs it in no more and renews none of its tokens.',
      de: 'Das Benutzerkonto {account} der Verbindung „{connection}“ ist im Mandanten {tenantId} deaktiviert; Entra ID meldet es nicht mehr an und erneuert keine seiner Tokens.',
    },
    fix: {
      en: 'Entra admin center ({portal}) › Users › <user> › Edit properties › Settings › "Account enabled"; or PowerShell: Update-MgUser -UserId <UPN> -AccountEnabled:$true. Then `mailbridge signin {connection}`.',
      de: 'Entra Admin Center ({portal}) › Benutzer › <Benutzer> › Eigenschaften bearbeiten › Einstellungen › „Konto aktiviert“; oder PowerShell: Update-MgUser -UserId <UPN> -AccountEnabled:$true. Danach `mailbridge signin {connection}`.',
    },
  },
  MB_ENTRA_USER_NOT_ASSIGNED: {
    http: 403,
    title: { en: 'User not assigned to the app (AADSTS50105)', de: 'Benutzer der App nicht zugewiesen (AADSTS50105)' },
    cause: {
      en: 'The enterprise application of app {clientId} requires assignment, and {account} (connection "{connection}") is neither assigned to it directly nor through a group (nested groups do not count).',
      de: 'Die Unternehmensanwendung der App {clientId} verlangt eine Zuweisung, und {account} (Verbindung „{connection}“) ist ihr weder direkt noch über eine Gruppe zugewiesen (verschachtelte Gruppen zählen nicht).',
    },
    fix: {
      en: 'Entra admin center ({portal}) › Enterprise applications › <app> › Users and groups › Add user/group: assign the mailbox account; then `mailbridge signin {connection}`.',
      de: 'Entra Admin Center ({portal}) › Unternehmensanwendungen › <App> › Benutzer und Gruppen › Benutzer/Gruppe hinzufügen: das Postfachkonto zuweisen; danach `mailbridge signin {connection}`.',
    },
  },
  MB_ENTRA_OBO_NOT_ALLOWED: {
    http: 400,
    title: { en: 'On-behalf-of refused for an app-only token (AADSTS7000114)', de: 'On-Behalf-Of für ein reines App-Token abgelehnt (AADSTS7000114)' },
    cause: {
      en: 'Entra ID refused an on-behalf-of exchange for app {clientId} (connection "{connection}"): on-behalf-of needs a user\'s token, and the token presented was app-only (client credentials or a managed identity). mailbridge does not make on-behalf-of calls itself; the token endpoint or a broker in front of it did.',
      de: 'Entra ID hat einen On-Behalf-Of-Tausch für die App {clientId} abgelehnt (Verbindung „{connection}“): On-Behalf-Of braucht das Token eines Benutzers, vorgelegt wurde aber ein reines App-Token (Client-Anmeldeinformationen oder verwaltete Identität). mailbridge selbst macht keine On-Behalf-Of-Aufrufe; das tat der Token-Endpunkt oder ein vorgeschalteter Vermittler.',
    },
    fix: {
      en: 'For app-only access use `flow: client-credentials` with application permissions and the default token endpoint (remove connections.{connection}.tokenEndpoint); to act as a user use `flow: auth-code` or `device-code` and `mailbridge signin {connection}`.',
      de: 'Für reinen App-Zugriff `flow: client-credentials` mit Anwendungsberechtigungen und den Standard-Token-Endpunkt verwenden (connections.{connection}.tokenEndpoint entfernen); um als Benutzer zu handeln, `flow: auth-code` oder `device-code` und `mailbridge signin {connection}` verwenden.',
    },
  },
  MB_ENTRA_NO_SERVICE_PRINCIPAL: {
    http: 401,
    title: { en: 'The app has no enterprise application in this tenant (AADSTS7000229)', de: 'Die App hat in diesem Mandanten keine Unternehmensanwendung (AADSTS7000229)' },
    cause: {
      en: 'Entra ID refused client credentials for app {clientId} (connection "{connection}"): the app registration exists, but its service principal (the enterprise application) is missing in the tenant. This happens when an app was created through Graph or the manifest without its service principal, or when the enterprise application was deleted.',
      de: 'Entra ID hat die Client-Anmeldeinformationen der App {clientId} abgelehnt (Verbindung „{connection}“): Die App-Registrierung gibt es, aber ihr Dienstprinzipal (die Unternehmensanwendung) fehlt im Mandanten. Das passiert, wenn eine App über Graph oder das Manifest ohne Dienstprinzipal angelegt oder die Unternehmensanwendung gelöscht wurde.',
    },
    fix: {
      en: 'Create the service principal, then grant admin consent again: in PowerShell `New-MgServicePrincipal -AppId {clientId}` (Microsoft.Graph module), or in the Entra admin center: App registrations → the app → "Create enterprise application" link under "Managed application in local directory", then API permissions → "Grant admin consent".',
      de: 'Den Dienstprinzipal anlegen und danach die Administratorzustimmung erneut erteilen: in PowerShell `New-MgServicePrincipal -AppId {clientId}` (Modul Microsoft.Graph) oder im Entra Admin Center: App-Registrierungen → die App → Link „Unternehmensanwendung erstellen“ unter „Verwaltete Anwendung im lokalen Verzeichnis“, danach API-Berechtigungen → „Administratorzustimmung erteilen“.',
    },
  },
  MB_ENTRA_UNKNOWN: {
    http: 502,
    title: { en: 'Entra ID refused the token request', de: 'Entra ID hat die Tokenanfrage abgelehnt' },
    cause: {
      en: 'Entra ID answered {error} (AADSTS{aadsts}) for connection "{connection}": {description}',
      de: 'Entra ID antwortete {error} (AADSTS{aadsts}) für Verbindung „{connection}“: {description}',
    },
    fix: {
      en: 'Look the code up at https://login.microsoftonline.com/error?code={aadsts}; for Microsoft support quote the trace ID and correlation ID below.',
      de: 'Schlagen Sie den Code unter https://login.microsoftonline.com/error?code={aadsts} nach; für den Microsoft-Support nennen Sie die Trace-ID und Korrelations-ID unten.',
    },
  },

  // ── delegated sign-in ───────────────────────────────────────────────────────────────────────
  MB_SIGNIN_REQUIRED: {
    http: 401,
    title: { en: 'Sign-in needed', de: 'Anmeldung erforderlich' },
    cause: {
      en: 'Connection "{connection}" acts for a user, and mailbridge holds no valid sign-in for it (account: {account}).',
      de: 'Verbindung „{connection}“ handelt für einen Benutzer, und mailbridge hat dafür keine gültige Anmeldung (Konto: {account}).',
    },
    fix: {
      en: 'Run `mailbridge signin {connection}` and sign in with that account (add --device-code on a machine without a browser).',
      de: 'Führen Sie `mailbridge signin {connection}` aus und melden Sie sich mit diesem Konto an (--device-code auf einem Rechner ohne Browser).',
    },
  },
  MB_SIGNIN_ACCOUNT_AMBIGUOUS: {
    http: 400,
    title: { en: 'Several accounts signed in', de: 'Mehrere Konten angemeldet' },
    cause: {
      en: 'Connection "{connection}" holds sign-ins for {accounts} and no account was named.',
      de: 'Verbindung „{connection}“ hat Anmeldungen für {accounts}, und kein Konto wurde genannt.',
    },
    fix: {
      en: 'Set connections.{connection}.account to the UPN to use, or pass the account with the request.',
      de: 'Setzen Sie connections.{connection}.account auf den zu verwendenden UPN oder geben Sie das Konto bei der Anfrage an.',
    },
  },
  MB_SIGNIN_ACCOUNT_MISMATCH: {
    http: 400,
    title: { en: 'Signed in with another account', de: 'Mit einem anderen Konto angemeldet' },
    cause: {
      en: 'Connection "{connection}" expects {expected}, but the sign-in was made as {actual}.',
      de: 'Verbindung „{connection}“ erwartet {expected}, angemeldet wurde aber {actual}.',
    },
    fix: {
      en: 'Sign in again as {expected} (`mailbridge signin {connection}`, choose "Use another account"), or change connections.{connection}.account.',
      de: 'Melden Sie sich erneut als {expected} an (`mailbridge signin {connection}`, „Anderes Konto verwenden“ wählen) oder ändern Sie connections.{connection}.account.',
    },
  },
  MB_SIGNIN_STATE_UNKNOWN: {
    http: 400,
    title: { en: 'Sign-in link unknown or expired', de: 'Anmeldelink unbekannt oder abgelaufen' },
    cause: {
      en: 'This redirect carries no sign-in that mailbridge started, or the sign-in is older than {minutes} minutes or was completed already.',
      de: 'Diese Umleitung gehört zu keiner von mailbridge gestarteten Anmeldung, oder die Anmeldung ist älter als {minutes} Minuten oder schon abgeschlossen.',
    },
    fix: {
      en: 'Start a new sign-in with `mailbridge signin <connection>` and open the link it prints.',
      de: 'Starten Sie eine neue Anmeldung mit `mailbridge signin <verbindung>` und öffnen Sie den ausgegebenen Link.',
    },
  },
  MB_SIGNIN_DECLINED: {
    http: 403,
    title: { en: 'Sign-in declined', de: 'Anmeldung abgelehnt' },
    cause: {
      en: 'The sign-in for connection "{connection}" was declined or cancelled in the browser: {description}',
      de: 'Die Anmeldung für Verbindung „{connection}“ wurde im Browser abgelehnt oder abgebrochen: {description}',
    },
    fix: {
      en: 'Run `mailbridge signin {connection}` again and accept the requested permissions (an admin may have to grant consent first).',
      de: 'Führen Sie `mailbridge signin {connection}` erneut aus und akzeptieren Sie die angeforderten Berechtigungen (eventuell muss zuerst ein Admin zustimmen).',
    },
  },
  MB_SIGNIN_FAILED: {
    http: 400,
    title: { en: 'Sign-in failed', de: 'Anmeldung fehlgeschlagen' },
    cause: {
      en: 'Entra ID ended the sign-in for connection "{connection}" with {error}: {description}',
      de: 'Entra ID hat die Anmeldung für Verbindung „{connection}“ mit {error} beendet: {description}',
    },
    fix: {
      en: 'Check Entra admin center › Monitoring › Sign-in logs for the account, then run `mailbridge signin {connection}` again.',
      de: 'Prüfen Sie Entra Admin Center › Überwachung › Anmeldeprotokolle für das Konto und führen Sie dann `mailbridge signin {connection}` erneut aus.',
    },
  },
  MB_SIGNIN_CANCELLED: {
    http: 499,
    title: { en: 'Sign-in cancelled', de: 'Anmeldung abgebrochen' },
    cause: { en: 'Waiting for the sign-in of connection "{connection}" was cancelled.', de: 'Das Warten auf die Anmeldung der Verbindung „{connection}“ wurde abgebrochen.' },
    fix: { en: 'Run `mailbridge signin {connection}` again when ready.', de: 'Führen Sie `mailbridge signin {connection}` erneut aus, wenn Sie bereit sind.' },
  },
  MB_SIGNIN_DEVICE_CODE_TIMEOUT: {
    http: 504,
    title: { en: 'Device code not entered in time', de: 'Gerätecode nicht rechtzeitig eingegeben' },
    cause: {
      en: 'Nobody entered the code and signed in for connection "{connection}" within the waiting time ({minutes} min).',
      de: 'In der Wartezeit ({minutes} min) hat niemand den Code eingegeben und sich für Verbindung „{connection}“ angemeldet.',
    },
    fix: {
      en: 'Run `mailbridge signin {connection} --device-code` again, open the address it prints on any device and enter the code before it expires (give more time with --timeout).',
      de: 'Führen Sie `mailbridge signin {connection} --device-code` erneut aus, öffnen Sie die ausgegebene Adresse auf einem beliebigen Gerät und geben Sie den Code ein, bevor er abläuft (mehr Zeit mit --timeout).',
    },
  },
  MB_SIGNIN_TIMEOUT: {
    http: 504,
    title: { en: 'Sign-in not completed in time', de: 'Anmeldung nicht rechtzeitig abgeschlossen' },
    cause: {
      en: 'No redirect reached mailbridge for connection "{connection}" within the waiting time ({minutes} min).',
      de: 'In der Wartezeit ({minutes} min) erreichte keine Umleitung mailbridge für Verbindung „{connection}“.',
    },
    fix: {
      en: 'Check that the browser can reach {redirectUri} (the gateway must run: `mailbridge serve`), then run `mailbridge signin {connection}` again.',
      de: 'Prüfen Sie, ob der Browser {redirectUri} erreicht (das Gateway muss laufen: `mailbridge serve`), und führen Sie dann `mailbridge signin {connection}` erneut aus.',
    },
  },

  // ── issued, but will not work ────────────────────────────────────────────────────────────────
  MB_TOKEN_NO_ROLES: {
    http: 403,
    title: { en: 'Token carries no permissions', de: 'Token enthält keine Berechtigungen' },
    cause: {
      en: 'Entra ID issued an app-only {resource} token for connection "{connection}" without any roles: no application permission has admin consent, so {resource} will refuse it.',
      de: 'Entra ID hat für Verbindung „{connection}“ ein App-Token für {resource} ohne Rollen ausgestellt: Keine Anwendungsberechtigung hat Administratorzustimmung, daher wird {resource} es ablehnen.',
    },
    fix: {
      en: `${appPath.en} › API permissions › Add a permission › APIs my organization uses › {api} › Application permissions › {permissions}, then "Grant admin consent for <tenant>".`,
      de: `${appPath.de} › API-Berechtigungen › Berechtigung hinzufügen › Von meiner Organisation verwendete APIs › {api} › Anwendungsberechtigungen › {permissions}, dann „Administratorzustimmung für <Mandant> erteilen“.`,
    },
  },
  MB_TOKEN_MISSING_SCOPES: {
    http: 403,
    title: { en: 'Token lacks permissions', de: 'Token fehlen Berechtigungen' },
    cause: {
      en: 'The delegated token of connection "{connection}" lacks {missing}; those operations will be refused.',
      de: 'Dem delegierten Token der Verbindung „{connection}“ fehlt {missing}; diese Vorgänge werden abgelehnt.',
    },
    fix: {
      en: `${appPath.en} › API permissions › Add a permission › Delegated permissions: add {missing}, grant admin consent, then \`mailbridge signin {connection}\`.`,
      de: `${appPath.de} › API-Berechtigungen › Berechtigung hinzufügen › Delegierte Berechtigungen: {missing} hinzufügen, Administratorzustimmung erteilen, dann \`mailbridge signin {connection}\`.`,
    },
  },
  MB_TOKEN_WRONG_AUDIENCE: {
    http: 403,
    title: { en: 'Token for the wrong service', de: 'Token für den falschen Dienst' },
    cause: {
      en: 'The {resource} token of connection "{connection}" is addressed to {audience}, not to {expected}; {resource} will reject it.',
      de: 'Das {resource}-Token der Verbindung „{connection}“ ist an {audience} adressiert, nicht an {expected}; {resource} wird es ablehnen.',
    },
    fix: {
      en: 'Remove scopes.{resource} from the connection to use the cloud defaults (Graph-prefixed IMAP/SMTP scopes give Graph tokens that IMAP and SMTP refuse).',
      de: 'Entfernen Sie scopes.{resource} aus der Verbindung, um die Standards der Cloud zu nutzen (IMAP/SMTP-Scopes mit Graph-Präfix ergeben Graph-Token, die IMAP und SMTP ablehnen).',
    },
  },
} satisfies CatalogueSection;
