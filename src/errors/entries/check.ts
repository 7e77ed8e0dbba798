import type { CatalogueSection } from '../types.ts';

/**
 * `mailbridge check`: prerequisites in Entra ID and Exchange that a probe found missing, pending or
 * could not verify. Failures that have a code elsewhere (a token error, SMTP AUTH switched off,
 * an expiring secret) keep that code. Parameters: {connection}, {clientId}, {tenantId}, {portal},
 * {appId}, {objectId} (the enterprise application's object ID, from the token), {mailbox}.
 */

const appPath = {
  en: 'Entra admin center ({portal}) › App registrations › {clientId}',
  de: 'Entra Admin Center ({portal}) › App-Registrierungen › {clientId}',
};
const exo = {
  en: 'In Exchange Online PowerShell (Connect-ExchangeOnline -Organization {tenantId}):',
  de: 'In der Exchange Online PowerShell (Connect-ExchangeOnline -Organization {tenantId}):',
};

export const check = {
  MB_CHECK_UNKNOWN_TARGET: {
    http: 404,
    title: { en: 'Nothing named "{target}" to check', de: 'Nichts namens „{target}“ zu prüfen' },
    cause: {
      en: '"{target}" is neither a connection nor a relay route, connector or watch group that uses one. Connections: {connections}.',
      de: '„{target}“ ist weder eine Verbindung noch eine Relay-Route, ein Connector oder eine Überwachungsgruppe, die eine nutzt. Verbindungen: {connections}.',
    },
    fix: {
      en: 'Run `mailbridge check` without a name to check everything, or name a connection (connections.<name>), a route (relay.routes[].name), a connector (connectors.<name>) or a watch group (notify.watch.groups.<name>).',
      de: '`mailbridge check` ohne Namen ausführen, um alles zu prüfen, oder eine Verbindung (connections.<name>), eine Route (relay.routes[].name), einen Connector (connectors.<name>) oder eine Überwachungsgruppe (notify.watch.groups.<name>) angeben.',
    },
  },
  MB_CHECK_PERMISSION_MISSING: {
    http: 403,
    title: { en: 'API permission missing: {permission}', de: 'API-Berechtigung fehlt: {permission}' },
    cause: {
      en: 'The application permission {permission} of {api} is not in the token of connection "{connection}", and {usedBy} needs it. Microsoft Graph shows no admin consent for it that could still be on its way.',
      de: 'Die Anwendungsberechtigung {permission} von {api} ist nicht im Token der Verbindung „{connection}“, und {usedBy} braucht sie. Microsoft Graph zeigt keine Administratorzustimmung dafür, die noch unterwegs sein könnte.',
    },
    fix: {
      en: `${appPath.en} › API permissions › Add a permission › APIs my organization uses › {api} › Application permissions › {permission} › Add permissions › Grant admin consent for the organization (or run \`mailbridge setup\`).`,
      de: `${appPath.de} › API-Berechtigungen › Berechtigung hinzufügen › Von meiner Organisation verwendete APIs › {api} › Anwendungsberechtigungen › {permission} › Berechtigungen hinzufügen › Administratorzustimmung für die Organisation erteilen (oder \`mailbridge setup\` ausführen).`,
    },
  },
  MB_CHECK_PERMISSION_MISSING_GRANT_UNKNOWN: {
    http: 403,
    title: { en: 'API permission missing: {permission}', de: 'API-Berechtigung fehlt: {permission}' },
    cause: {
      en: 'The application permission {permission} of {api} is not in the token of connection "{connection}", and {usedBy} needs it. Whether it was granted in the last 30 minutes (Entra ID can take that long) could not be read from Microsoft Graph: {detail}',
      de: 'Die Anwendungsberechtigung {permission} von {api} ist nicht im Token der Verbindung „{connection}“, und {usedBy} braucht sie. Ob sie in den letzten 30 Minuten erteilt wurde (so lange kann Entra ID brauchen), ließ sich bei Microsoft Graph nicht lesen: {detail}',
    },
    fix: {
      en: `If you granted it just now, run \`mailbridge check\` again in 30 minutes. Otherwise: ${appPath.en} › API permissions › Add a permission › APIs my organization uses › {api} › Application permissions › {permission} › Grant admin consent for the organization (or run \`mailbridge setup\`). With Application.Read.All (Microsoft Graph) check can see when it was granted.`,
      de: `Wenn Sie sie gerade erst erteilt haben, \`mailbridge check\` in 30 Minuten erneut ausführen. Sonst: ${appPath.de} › API-Berechtigungen › Berechtigung hinzufügen › Von meiner Organisation verwendete APIs › {api} › Anwendungsberechtigungen › {permission} › Administratorzustimmung für die Organisation erteilen (oder \`mailbridge setup\` ausführen). Mit Application.Read.All (Microsoft Graph) sieht check, wann sie erteilt wurde.`,
    },
  },
  MB_CHECK_SCOPE_MISSING: {
    http: 403,
    title: { en: 'Delegated permission missing: {permission}', de: 'Delegierte Berechtigung fehlt: {permission}' },
    cause: {
      en: 'The delegated permission {permission} of {api} is not in the token of connection "{connection}", and {usedBy} needs it.',
      de: 'Die delegierte Berechtigung {permission} von {api} ist nicht im Token der Verbindung „{connection}“, und {usedBy} braucht sie.',
    },
    fix: {
      en: `${appPath.en} › API permissions › Add a permission › {api} › Delegated permissions › {permission} › Grant admin consent for the organization; then sign in again: \`mailbridge signin {connection}\`.`,
      de: `${appPath.de} › API-Berechtigungen › Berechtigung hinzufügen › {api} › Delegierte Berechtigungen › {permission} › Administratorzustimmung für die Organisation erteilen; danach neu anmelden: \`mailbridge signin {connection}\`.`,
    },
  },
  MB_CHECK_PERMISSION_PENDING: {
    http: 503,
    title: { en: 'API permission granted, not yet in effect: {permission}', de: 'API-Berechtigung erteilt, noch nicht wirksam: {permission}' },
    cause: {
      en: 'Admin consent for {permission} ({api}) was granted at {granted}, {minutes} min ago, but the token of connection "{connection}" does not carry it yet. Entra ID can take up to 30 minutes before a new permission appears in tokens.',
      de: 'Die Administratorzustimmung für {permission} ({api}) wurde um {granted} erteilt, vor {minutes} Min., aber das Token der Verbindung „{connection}“ enthält sie noch nicht. Entra ID braucht bis zu 30 Minuten, bis eine neue Berechtigung in Tokens erscheint.',
    },
    fix: {
      en: `Nothing to change: run \`mailbridge check\` again after {until}. If it still fails then, check ${appPath.en} › API permissions: the status of {permission} must read "Granted for …".`,
      de: `Nichts zu ändern: \`mailbridge check\` nach {until} erneut ausführen. Schlägt es dann noch fehl, unter ${appPath.de} › API-Berechtigungen prüfen, dass bei {permission} „Gewährt für …“ steht.`,
    },
  },
  MB_CHECK_EXO_NO_SERVICE_PRINCIPAL: {
    http: 403,
    title: { en: 'The app is not registered in Exchange Online', de: 'Die App ist in Exchange Online nicht registriert' },
    cause: {
      en: 'Get-ServicePrincipal finds no service principal for the app {appId}, so Exchange refuses its SMTP and IMAP logins (535 5.7.3 / "User is authenticated but not connected") for every mailbox.',
      de: 'Get-ServicePrincipal findet keinen Dienstprinzipal für die App {appId}, daher lehnt Exchange ihre SMTP- und IMAP-Anmeldungen für jedes Postfach ab (535 5.7.3 / „User is authenticated but not connected“).',
    },
    fix: {
      en: `${exo.en} New-ServicePrincipal -AppId {appId} -ObjectId {objectId} -DisplayName "{displayName}". {objectId} is the Object ID of the Enterprise application (Enterprise applications › {displayName} › Overview), not of the App registration.`,
      de: `${exo.de} New-ServicePrincipal -AppId {appId} -ObjectId {objectId} -DisplayName "{displayName}". {objectId} ist die Objekt-ID der Unternehmensanwendung (Unternehmensanwendungen › {displayName} › Übersicht), nicht die der App-Registrierung.`,
    },
  },
  MB_CHECK_EXO_SP_WRONG_OBJECT_ID: {
    http: 403,
    title: { en: 'New-ServicePrincipal was run with the wrong object ID', de: 'New-ServicePrincipal wurde mit der falschen Objekt-ID ausgeführt' },
    cause: {
      en: 'Exchange knows the app {appId} under the object ID {registered}, but its tokens carry {objectId}, the Object ID of the Enterprise application. {registered} is usually the App registration\'s object ID; with it every SMTP and IMAP login fails.',
      de: 'Exchange kennt die App {appId} unter der Objekt-ID {registered}, ihre Tokens tragen aber {objectId}, die Objekt-ID der Unternehmensanwendung. {registered} ist meist die Objekt-ID der App-Registrierung; damit schlägt jede SMTP- und IMAP-Anmeldung fehl.',
    },
    fix: {
      en: `${exo.en} Remove-ServicePrincipal -Identity {registered} -Confirm:$false; New-ServicePrincipal -AppId {appId} -ObjectId {objectId} -DisplayName "{displayName}"; then grant the mailbox permissions again (they belonged to the removed entry), e.g. Add-MailboxPermission -Identity <mailbox> -User {objectId} -AccessRights FullAccess.`,
      de: `${exo.de} Remove-ServicePrincipal -Identity {registered} -Confirm:$false; New-ServicePrincipal -AppId {appId} -ObjectId {objectId} -DisplayName "{displayName}"; danach die Postfachberechtigungen neu erteilen (sie gehörten zum entfernten Eintrag), z. B. Add-MailboxPermission -Identity <Postfach> -User {objectId} -AccessRights FullAccess.`,
    },
  },
  MB_CHECK_EXO_NO_FULL_ACCESS: {
    http: 403,
    title: { en: 'No FullAccess on {mailbox}', de: 'Kein Vollzugriff auf {mailbox}' },
    cause: {
      en: 'Get-MailboxPermission -Identity {mailbox} lists no FullAccess for the app\'s service principal {objectId}; {usedBy} logs in to this mailbox, and Exchange refuses it.',
      de: 'Get-MailboxPermission -Identity {mailbox} zeigt keinen Vollzugriff (FullAccess) für den Dienstprinzipal {objectId} der App; {usedBy} meldet sich an diesem Postfach an, und Exchange lehnt das ab.',
    },
    fix: {
      en: `${exo.en} Add-MailboxPermission -Identity {mailbox} -User {objectId} -AccessRights FullAccess -AutoMapping $false`,
      de: `${exo.de} Add-MailboxPermission -Identity {mailbox} -User {objectId} -AccessRights FullAccess -AutoMapping $false`,
    },
  },
  MB_CHECK_EXO_NO_SEND_AS: {
    http: 403,
    title: { en: 'No Send-As on {mailbox}', de: 'Kein „Senden als“ für {mailbox}' },
    cause: {
      en: 'Get-RecipientPermission -Identity {mailbox} lists no SendAs for the app\'s service principal {objectId}; {usedBy} sends with {mailbox} as sender, and Exchange refuses such a message after accepting its data (554 5.2.252 SendAsDenied).',
      de: 'Get-RecipientPermission -Identity {mailbox} zeigt kein SendAs für den Dienstprinzipal {objectId} der App; {usedBy} sendet mit {mailbox} als Absender, und Exchange lehnt eine solche Nachricht nach der Übertragung ab (554 5.2.252 SendAsDenied).',
    },
    fix: {
      en: `${exo.en} Add-RecipientPermission -Identity {mailbox} -Trustee {objectId} -AccessRights SendAs -Confirm:$false`,
      de: `${exo.de} Add-RecipientPermission -Identity {mailbox} -Trustee {objectId} -AccessRights SendAs -Confirm:$false`,
    },
  },
  MB_CHECK_EXO_LOGIN_REFUSED: {
    http: 502,
    title: { en: 'Exchange refused the {protocol} login to {mailbox}', de: 'Exchange hat die {protocol}-Anmeldung an {mailbox} abgelehnt' },
    cause: {
      en: 'Exchange answered "{reply}" for {mailbox}. The token carries the needed permission, so the app is not registered with New-ServicePrincipal, was registered with the wrong object ID, or has no FullAccess on the mailbox: Exchange gives the same answer for all three and does not say which. mailbridge tells them apart by reading Exchange, which needs the permission Exchange.ManageAsApp (see MB_CHECK_EXO_UNVERIFIED).',
      de: 'Exchange hat für {mailbox} „{reply}“ geantwortet. Das Token enthält die nötige Berechtigung, also ist die App nicht mit New-ServicePrincipal registriert, mit der falschen Objekt-ID registriert oder hat keinen Vollzugriff auf das Postfach: Exchange antwortet in allen drei Fällen gleich und sagt nicht, welcher vorliegt. mailbridge unterscheidet sie durch Lesen in Exchange, wofür die Berechtigung Exchange.ManageAsApp nötig ist (siehe MB_CHECK_EXO_UNVERIFIED).',
    },
    fix: {
      en: `${exo.en} Get-ServicePrincipal | Where-Object AppId -eq {appId} (ObjectId must be {objectId}; if missing: New-ServicePrincipal -AppId {appId} -ObjectId {objectId}; if another: Remove-ServicePrincipal it first); then Add-MailboxPermission -Identity {mailbox} -User {objectId} -AccessRights FullAccess.`,
      de: `${exo.de} Get-ServicePrincipal | Where-Object AppId -eq {appId} (ObjectId muss {objectId} sein; fehlt der Eintrag: New-ServicePrincipal -AppId {appId} -ObjectId {objectId}; steht dort eine andere: zuerst Remove-ServicePrincipal); dann Add-MailboxPermission -Identity {mailbox} -User {objectId} -AccessRights FullAccess.`,
    },
  },
  MB_CHECK_EXO_TOKEN_REFUSED: {
    http: 502,
    title: { en: 'Exchange refused the token for {mailbox}', de: 'Exchange hat das Token für {mailbox} abgelehnt' },
    cause: {
      en: 'Exchange answered "{reply}" to the {protocol} login with the token of connection "{connection}": it refuses the token itself (permission, audience or tenant), before looking at the mailbox.',
      de: 'Exchange hat auf die {protocol}-Anmeldung mit dem Token der Verbindung „{connection}“ „{reply}“ geantwortet: Es lehnt das Token selbst ab (Berechtigung, Zielgruppe oder Mandant), bevor es das Postfach prüft.',
    },
    fix: {
      en: 'Look at the permission checks above; `mailbridge token {connection}` shows the roles and audience of the token.',
      de: 'Die Berechtigungsprüfungen oben ansehen; `mailbridge token {connection}` zeigt Rollen und Zielgruppe des Tokens.',
    },
  },
  MB_CHECK_EXO_UNVERIFIED: {
    http: 503,
    title: { en: 'Not verified: {cmdlet}', de: 'Nicht geprüft: {cmdlet}' },
    cause: {
      en: 'mailbridge could not read this from Exchange Online ({detail}). It reads Exchange settings through the admin API, which needs the application permission Exchange.ManageAsApp and an Entra role (Global Reader) for the app; without them only what a login shows is checked.',
      de: 'mailbridge konnte das nicht aus Exchange Online lesen ({detail}). Es liest Exchange-Einstellungen über die Admin-API, die die Anwendungsberechtigung Exchange.ManageAsApp und eine Entra-Rolle (Globaler Leser) für die App braucht; ohne sie wird nur geprüft, was eine Anmeldung zeigt.',
    },
    fix: {
      en: `Check it yourself in Exchange Online PowerShell: {cmdlet}. Or let check read it: ${appPath.en} › API permissions › Office 365 Exchange Online › Application permissions › Exchange.ManageAsApp › Grant admin consent, and Entra admin center › Roles & admins › Global Reader › Add assignments › the app.`,
      de: `Selbst in der Exchange Online PowerShell prüfen: {cmdlet}. Oder check lesen lassen: ${appPath.de} › API-Berechtigungen › Office 365 Exchange Online › Anwendungsberechtigungen › Exchange.ManageAsApp › Administratorzustimmung erteilen, und Entra Admin Center › Rollen und Administratoren › Globaler Leser › Zuweisungen hinzufügen › die App.`,
    },
  },
  MB_EXO_ADMIN_REFUSED: {
    http: 502,
    title: { en: 'Exchange Online refused {cmdlet}', de: 'Exchange Online hat {cmdlet} abgelehnt' },
    cause: {
      en: "Exchange Online's admin API answered {cmdlet} with HTTP {status}: {reply}",
      de: 'Die Admin-API von Exchange Online hat {cmdlet} mit HTTP {status} beantwortet: {reply}',
    },
    fix: {
      en: 'With 401 or 403 the app may not read Exchange: Entra admin center › App registrations › the app › API permissions › Office 365 Exchange Online › Application permissions › Exchange.ManageAsApp › Grant admin consent, and Entra admin center › Roles & admins › Global Reader › Add assignments › the app. Otherwise run {cmdlet} yourself in Exchange Online PowerShell and read its error.',
      de: 'Bei 401 oder 403 darf die App Exchange nicht lesen: Entra Admin Center › App-Registrierungen › die App › API-Berechtigungen › Office 365 Exchange Online › Anwendungsberechtigungen › Exchange.ManageAsApp › Administratorzustimmung erteilen, und Entra Admin Center › Rollen und Administratoren › Globaler Leser › Zuweisungen hinzufügen › die App. Sonst {cmdlet} selbst in der Exchange Online PowerShell ausführen und seinen Fehler lesen.',
    },
  },
  MB_CHECK_HOST_UNREACHABLE: {
    http: 502,
    title: { en: '{host}:{port} not reachable', de: '{host}:{port} nicht erreichbar' },
    cause: {
      en: 'mailbridge could not open a TLS connection to {host}:{port} ({service}; proxy: {proxy}): {detail}',
      de: 'mailbridge konnte keine TLS-Verbindung zu {host}:{port} aufbauen ({service}; Proxy: {proxy}): {detail}',
    },
    fix: {
      en: 'Check DNS (nslookup {host}), the firewall (outbound TCP {port}) and the proxy (server.proxy, connections.<name>.proxy, HTTPS_PROXY, NO_PROXY); a TLS-inspecting proxy needs its CA in connections.<name>.caFile.',
      de: 'DNS (nslookup {host}), die Firewall (ausgehend TCP {port}) und den Proxy prüfen (server.proxy, connections.<name>.proxy, HTTPS_PROXY, NO_PROXY); ein TLS-aufbrechender Proxy braucht seine CA in connections.<name>.caFile.',
    },
  },
  MB_ROTATE_NOT_POSSIBLE: {
    http: 400,
    title: { en: 'Connection "{connection}" has no credential to rotate', de: 'Verbindung „{connection}“ hat keine Anmeldeinformation zum Austauschen' },
    cause: {
      en: 'Only a client secret or a certificate can be rotated; connection "{connection}" ({flow}) has neither.',
      de: 'Austauschen lässt sich nur ein geheimer Clientschlüssel oder ein Zertifikat; die Verbindung „{connection}“ ({flow}) hat keins von beiden.',
    },
    fix: {
      en: 'Name a connection with clientSecret or certificate: mailbridge credential rotate <connection>. A device-code connection signs in as a user and has no app credential.',
      de: 'Eine Verbindung mit clientSecret oder certificate angeben: mailbridge credential rotate <verbindung>. Eine Device-Code-Verbindung meldet einen Benutzer an und hat keine App-Anmeldeinformation.',
    },
  },
  MB_ROTATE_GRAPH_FAILED: {
    http: 502,
    title: { en: 'Microsoft Graph refused {step}', de: 'Microsoft Graph hat {step} abgelehnt' },
    cause: {
      en: 'Rotating the credential of connection "{connection}" failed at {step}: Graph answered {status} {code}: {detail}. mailbridge.yaml is unchanged.',
      de: 'Das Austauschen der Anmeldeinformation der Verbindung „{connection}“ ist bei {step} gescheitert: Graph antwortete {status} {code}: {detail}. mailbridge.yaml ist unverändert.',
    },
    fix: {
      en: 'The app changes its own registration with its own token: Entra admin center › App registrations › the app › API permissions › Microsoft Graph › Application permissions › Application.ReadWrite.OwnedBy › Grant admin consent, and add the app\'s service principal as owner of its registration (New-MgApplicationOwnerByRef -ApplicationId <object id> -BodyParameter @{ "@odata.id" = "https://graph.microsoft.com/v1.0/directoryObjects/<service principal object id>" }).',
      de: 'Die App ändert ihre eigene Registrierung mit ihrem eigenen Token: Entra Admin Center › App-Registrierungen › die App › API-Berechtigungen › Microsoft Graph › Anwendungsberechtigungen › Application.ReadWrite.OwnedBy › Administratorzustimmung erteilen, und den Dienstprinzipal der App als Besitzer ihrer Registrierung eintragen (New-MgApplicationOwnerByRef -ApplicationId <Objekt-ID> -BodyParameter @{ "@odata.id" = "https://graph.microsoft.com/v1.0/directoryObjects/<Objekt-ID des Dienstprinzipals>" }).',
    },
  },
  MB_ROTATE_NEW_CREDENTIAL_REFUSED: {
    http: 502,
    title: { en: 'The new credential did not get a token', de: 'Mit der neuen Anmeldeinformation kam kein Token' },
    cause: {
      en: 'The new credential of connection "{connection}" was added in Entra ID, but {tries} token requests with it failed ({detail}). mailbridge.yaml still uses the old one, which keeps working.',
      de: 'Die neue Anmeldeinformation der Verbindung „{connection}“ wurde in Entra ID angelegt, aber {tries} Token-Anfragen damit sind gescheitert ({detail}). mailbridge.yaml verwendet weiter die alte, die weiter funktioniert.',
    },
    fix: {
      en: 'Run mailbridge credential rotate {connection} again in a few minutes; remove the unused new credential at Entra admin center › App registrations › the app › Certificates & secrets.',
      de: 'mailbridge credential rotate {connection} in ein paar Minuten erneut ausführen; die ungenutzte neue Anmeldeinformation unter Entra Admin Center › App-Registrierungen › die App › Zertifikate & Geheimnisse entfernen.',
    },
  },
  MB_CHECK_OPEN_SENDER: {
    http: 503,
    title: { en: 'Senders of {pattern}: mailboxes not known', de: 'Absender aus {pattern}: Postfächer nicht bekannt' },
    cause: {
      en: '{usedBy} sends from whichever mailbox of {pattern} an application names, so check cannot list and probe them. Each such mailbox needs what a listed one needs: FullAccess for the app and SMTP AUTH.',
      de: '{usedBy} sendet von dem Postfach aus {pattern}, das eine Anwendung angibt; check kann diese Postfächer daher nicht auflisten und prüfen. Jedes braucht, was ein aufgeführtes braucht: Vollzugriff für die App und SMTP AUTH.',
    },
    fix: {
      en: 'Give the route a fixed mailbox (relay.routes[].mailbox) or list the senders (allowedSenders: name@domain) so check probes each; or grant per mailbox: Add-MailboxPermission -Identity <mailbox> -User <object ID of the enterprise application> -AccessRights FullAccess; Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false',
      de: 'Der Route ein festes Postfach geben (relay.routes[].mailbox) oder die Absender einzeln aufführen (allowedSenders: name@domain), damit check jeden prüft; oder je Postfach erteilen: Add-MailboxPermission -Identity <Postfach> -User <Objekt-ID der Unternehmensanwendung> -AccessRights FullAccess; Set-CASMailbox -Identity <Postfach> -SmtpClientAuthenticationDisabled $false',
    },
  },
  MB_CHECK_PUBLIC_URL_FAILED: {
    http: 502,
    title: { en: 'Graph could not validate {url}', de: 'Graph könnte {url} nicht bestätigen' },
    cause: {
      en: 'The validation handshake Graph makes before every subscription (POST with ?validationToken=, answer 200 text/plain with the token within 10 seconds, over TLS with a certificate from a public CA) failed for {owner}: {detail}. Graph would refuse its subscriptions, and no change notification would arrive.',
      de: 'Der Bestätigungs-Handshake, den Graph vor jedem Abonnement macht (POST mit ?validationToken=, Antwort 200 text/plain mit dem Token binnen 10 Sekunden, über TLS mit einem Zertifikat einer öffentlichen CA), ist für {owner} gescheitert: {detail}. Graph würde die Abonnements ablehnen, und keine Änderungsbenachrichtigung käme an.',
    },
    fix: {
      en: 'Make {setting}.publicUrl reach {setting}.listen ({listen}) from the internet (firewall, reverse proxy forwarding the path), and give it a certificate of a public CA for its name ({setting}.listen.certFile/keyFile, or on the reverse proxy). Test from outside: curl -X POST "{url}?validationToken=test"',
      de: 'Dafür sorgen, dass {setting}.publicUrl aus dem Internet {setting}.listen ({listen}) erreicht (Firewall, Reverse Proxy, der den Pfad weiterleitet), mit einem Zertifikat einer öffentlichen CA für den Namen ({setting}.listen.certFile/keyFile oder am Reverse Proxy). Von außen testen: curl -X POST "{url}?validationToken=test"',
    },
  },
  MB_CHECK_NOT_PROBED: {
    http: 503,
    title: { en: 'Not every mailbox of {group} was probed', de: 'Nicht jedes Postfach von {group} wurde geprüft' },
    cause: {
      en: 'check opened EWS for {probed} of the {total} mailboxes of watch group {group}; the others get the same permission (impersonation or FullAccess) but were not tried one by one.',
      de: 'check hat EWS für {probed} der {total} Postfächer der Überwachungsgruppe {group} geöffnet; die übrigen brauchen dieselbe Berechtigung (Identitätswechsel oder Vollzugriff), wurden aber nicht einzeln versucht.',
    },
    fix: {
      en: 'After mailbridge serve starts, `mailbridge watch --json` shows the state of every mailbox (failed ones with their MB code).',
      de: 'Nach dem Start von mailbridge serve zeigt `mailbridge watch --json` den Zustand jedes Postfachs (fehlgeschlagene mit ihrem MB-Code).',
    },
  },
} satisfies CatalogueSection;
