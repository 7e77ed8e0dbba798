import type { CatalogueSection } from '../types.ts';

/** `mailbridge setup`: creating and checking the app registration through Graph (src/setup/). */
export const setup = {
  MB_SETUP_ADMIN_DENIED: {
    http: 403,
    title: {
      en: 'Entra ID refused the signed-in admin: 403 Authorization_RequestDenied',
      de: 'Entra ID hat den angemeldeten Administrator abgewiesen: 403 Authorization_RequestDenied',
    },
    cause: {
      en: 'Microsoft Graph answered {request} with 403 Authorization_RequestDenied ("{message}"): the account {account} holds neither {role} nor Global Administrator, the roles that may do this, or the sign-in did not get the permission for it.',
      de: 'Microsoft Graph hat {request} mit 403 Authorization_RequestDenied beantwortet („{message}“): Das Konto {account} hat weder die Rolle {role} noch Globaler Administrator, die das dürfen, oder die Anmeldung hat die Berechtigung dafür nicht erhalten.',
    },
    fix: {
      en: 'Run mailbridge setup {connection} again and sign in as a Global Administrator, or first give {account} the role {role}: Entra admin center › Identity › Roles & admins › Roles & admins › {role} › Add assignments. A role assigned just now can take a few minutes to apply.',
      de: 'mailbridge setup {connection} erneut ausführen und sich als Globaler Administrator anmelden, oder {account} zuerst die Rolle {role} geben: Entra Admin Center › Identität › Rollen und Administratoren › Rollen und Administratoren › {role} › Zuweisungen hinzufügen. Eine eben zugewiesene Rolle kann einige Minuten brauchen, bis sie wirkt.',
    },
  },
  MB_SETUP_GRAPH_FAILED: {
    http: 502,
    title: { en: 'Microsoft Graph refused a setup request', de: 'Microsoft Graph hat eine Einrichtungsanfrage abgelehnt' },
    cause: {
      en: 'Microsoft Graph answered {request} with {status} {code}: {message} (request-id {requestId}).',
      de: 'Microsoft Graph hat {request} mit {status} {code} beantwortet: {message} (request-id {requestId}).',
    },
    fix: {
      en: 'Nothing after this request was changed; run mailbridge setup {connection} again (it continues where it stopped). If the answer repeats, compare the app in Entra admin center › Identity › Applications › App registrations › {app} with the request, or quote the request-id to Microsoft support.',
      de: 'Nach dieser Anfrage wurde nichts geändert; mailbridge setup {connection} erneut ausführen (es setzt dort fort, wo es stehen blieb). Wiederholt sich die Antwort, die App unter Entra Admin Center › Identität › Anwendungen › App-Registrierungen › {app} mit der Anfrage vergleichen oder die request-id dem Microsoft-Support nennen.',
    },
  },
  MB_SETUP_GRAPH_UNREACHABLE: {
    http: 502,
    title: { en: 'Microsoft Graph cannot be reached', de: 'Microsoft Graph ist nicht erreichbar' },
    cause: {
      en: '{request} got no answer from {url}: {detail}',
      de: '{request} hat von {url} keine Antwort bekommen: {detail}',
    },
    fix: {
      en: 'Check that this machine reaches {url} (proxy: connections.{connection}.proxy, server.proxy or HTTPS_PROXY; firewall), or give the Graph URL with --graph-url.',
      de: 'Prüfen, ob dieser Rechner {url} erreicht (Proxy: connections.{connection}.proxy, server.proxy oder HTTPS_PROXY; Firewall), oder die Graph-URL mit --graph-url angeben.',
    },
  },
  MB_SETUP_APP_NOT_FOUND: {
    http: 404,
    title: { en: 'The app registration named in the configuration does not exist', de: 'Die in der Konfiguration genannte App-Registrierung gibt es nicht' },
    cause: {
      en: 'connections.{connection}.clientId is {clientId}, and tenant {tenant} has no app registration with that application (client) ID.',
      de: 'connections.{connection}.clientId ist {clientId}, und der Mandant {tenant} hat keine App-Registrierung mit dieser Anwendungs-ID (Client-ID).',
    },
    fix: {
      en: 'Copy the Application (client) ID from Entra admin center › Identity › Applications › App registrations › All applications › <app> › Overview into connections.{connection}.clientId, or write clientId: new and run mailbridge setup {connection} to have the app created.',
      de: 'Die Anwendungs-ID (Client-ID) aus Entra Admin Center › Identität › Anwendungen › App-Registrierungen › Alle Anwendungen › <App> › Übersicht in connections.{connection}.clientId übernehmen, oder clientId: new eintragen und mailbridge setup {connection} ausführen, damit die App angelegt wird.',
    },
  },
  MB_SETUP_APP_AMBIGUOUS: {
    http: 409,
    title: { en: 'Several app registrations have the name setup would use', de: 'Mehrere App-Registrierungen tragen den Namen, den die Einrichtung verwenden würde' },
    cause: {
      en: 'Tenant {tenant} has {count} app registrations named "{name}" ({appIds}); setup does not guess which one belongs to connection {connection}.',
      de: 'Der Mandant {tenant} hat {count} App-Registrierungen mit dem Namen „{name}“ ({appIds}); die Einrichtung rät nicht, welche zur Verbindung {connection} gehört.',
    },
    fix: {
      en: 'Put the Application (client) ID of the right one into connections.{connection}.clientId (Entra admin center › Identity › Applications › App registrations), or give another name with --name.',
      de: 'Die Anwendungs-ID (Client-ID) der richtigen in connections.{connection}.clientId eintragen (Entra Admin Center › Identität › Anwendungen › App-Registrierungen) oder mit --name einen anderen Namen angeben.',
    },
  },
  MB_SETUP_NO_RESOURCE: {
    http: 409,
    title: { en: 'The tenant lacks a Microsoft service the configuration uses', de: 'Dem Mandanten fehlt ein Microsoft-Dienst, den die Konfiguration nutzt' },
    cause: {
      en: 'Tenant {tenant} has no service principal for {resource} (appId {resourceAppId}), so its permissions cannot be granted. A tenant without an Exchange Online licence has none for Office 365 Exchange Online.',
      de: 'Der Mandant {tenant} hat keinen Dienstprinzipal für {resource} (appId {resourceAppId}), daher lassen sich dessen Berechtigungen nicht erteilen. Ein Mandant ohne Exchange-Online-Lizenz hat keinen für Office 365 Exchange Online.',
    },
    fix: {
      en: 'Check that the tenant has Exchange Online (Microsoft 365 admin center › Billing › Your products) and that connections.{connection}.tenantId and cloud name the right tenant.',
      de: 'Prüfen, ob der Mandant Exchange Online hat (Microsoft 365 Admin Center › Abrechnung › Ihre Produkte) und ob connections.{connection}.tenantId und cloud den richtigen Mandanten nennen.',
    },
  },
} satisfies CatalogueSection;
