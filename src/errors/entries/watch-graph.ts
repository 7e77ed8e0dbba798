import type { CatalogueSection } from '../types.ts';

/** Notify watchers: Graph change notifications and delta. */
export const watchGraph = {
  MB_WATCH_GRAPH_NO_INBOUND: {
    http: 500,
    title: { en: 'No inbound listener for Graph notifications', de: 'Kein eingehender Listener für Graph-Benachrichtigungen' },
    cause: {
      en: 'The Graph watcher "{listener}" needs mailbridge\'s inbound HTTPS listener (and its public URL) to receive change notifications from Microsoft Graph, and none is set up.',
      de: 'Der Graph-Watcher „{listener}“ braucht den eingehenden HTTPS-Listener von mailbridge (und dessen öffentliche URL), um Änderungsbenachrichtigungen von Microsoft Graph zu empfangen; es ist keiner eingerichtet.',
    },
    fix: {
      en: 'Set up the inbound listener of the watch service in mailbridge.yaml with a publicUrl that Microsoft Graph can reach over HTTPS (see `mailbridge config schema`), then restart mailbridge.',
      de: 'Richten Sie den eingehenden Listener des Watch-Dienstes in mailbridge.yaml mit einer publicUrl ein, die Microsoft Graph per HTTPS erreicht (siehe `mailbridge config schema`), und starten Sie mailbridge neu.',
    },
  },
  MB_WATCH_GRAPH_FORBIDDEN: {
    http: 502,
    title: { en: 'Graph refused access to the mailbox', de: 'Graph verweigert den Zugriff auf das Postfach' },
    cause: {
      en: 'Microsoft Graph answered {status} {code} for {mailbox} ({operation}): {detail}. The app lacks the Mail.Read application permission, admin consent is missing, or an application access policy excludes this mailbox. mailbridge retries in {seconds} s.',
      de: 'Microsoft Graph antwortete {status} {code} für {mailbox} ({operation}): {detail}. Der App fehlt die Anwendungsberechtigung Mail.Read, die Administratorzustimmung fehlt, oder eine Application Access Policy schließt dieses Postfach aus. mailbridge versucht es in {seconds} s erneut.',
    },
    fix: {
      en: 'Microsoft Entra admin center > Applications > App registrations > (your app) > API permissions > Add a permission > Microsoft Graph > Application permissions > Mail.Read > Add permissions, then "Grant admin consent for <tenant>". If access is scoped, check it with: Test-ApplicationAccessPolicy -Identity {mailbox} -AppId <app id>.',
      de: 'Microsoft Entra Admin Center > Anwendungen > App-Registrierungen > (Ihre App) > API-Berechtigungen > Berechtigung hinzufügen > Microsoft Graph > Anwendungsberechtigungen > Mail.Read > Berechtigungen hinzufügen, danach „Administratorzustimmung für <Mandant> erteilen“. Ist der Zugriff eingeschränkt, prüfen Sie ihn mit: Test-ApplicationAccessPolicy -Identity {mailbox} -AppId <App-ID>.',
    },
  },
  MB_WATCH_GRAPH_VALIDATION_FAILED: {
    http: 502,
    title: { en: 'Graph could not validate the notification URL', de: 'Graph konnte die Benachrichtigungs-URL nicht prüfen' },
    cause: {
      en: 'Creating the subscription for {mailbox} ({folder}) failed: {detail}. Microsoft Graph posts a validation token to {notificationUrl} and needs the token back within 10 seconds; it did not get it. mailbridge retries in {seconds} s.',
      de: 'Das Abonnement für {mailbox} ({folder}) konnte nicht angelegt werden: {detail}. Microsoft Graph sendet ein Prüf-Token an {notificationUrl} und erwartet es innerhalb von 10 Sekunden zurück; das kam nicht an. mailbridge versucht es in {seconds} s erneut.',
    },
    fix: {
      en: 'Make {notificationUrl} reachable from the internet over HTTPS with a publicly trusted certificate (DNS, firewall, reverse proxy forwarding to mailbridge\'s inbound listener). Test from outside: curl -i -X POST "{notificationUrl}?validationToken=test" must answer 200 with the body "test".',
      de: 'Machen Sie {notificationUrl} aus dem Internet per HTTPS mit einem öffentlich vertrauenswürdigen Zertifikat erreichbar (DNS, Firewall, Reverse Proxy zum eingehenden Listener von mailbridge). Test von außen: curl -i -X POST "{notificationUrl}?validationToken=test" muss 200 mit dem Inhalt „test“ liefern.',
    },
  },
  MB_WATCH_GRAPH_SUBSCRIPTION_LIMIT: {
    http: 502,
    title: { en: 'Too many Graph subscriptions on the mailbox', de: 'Zu viele Graph-Abonnements für das Postfach' },
    cause: {
      en: 'Microsoft Graph refused a new subscription for {mailbox}: {detail}. Exchange Online allows at most 1,000 active subscriptions per mailbox across all apps. mailbridge retries in {seconds} s.',
      de: 'Microsoft Graph lehnte ein neues Abonnement für {mailbox} ab: {detail}. Exchange Online erlaubt höchstens 1.000 aktive Abonnements je Postfach über alle Apps. mailbridge versucht es in {seconds} s erneut.',
    },
    fix: {
      en: 'Find the apps that subscribe to {mailbox} (each app lists its own with GET https://graph.microsoft.com/v1.0/subscriptions) and delete stale subscriptions with DELETE /v1.0/subscriptions/<id>, or remove apps that no longer need the mailbox in Entra admin center > Enterprise applications.',
      de: 'Ermitteln Sie die Apps, die {mailbox} abonnieren (jede App listet ihre eigenen mit GET https://graph.microsoft.com/v1.0/subscriptions), und löschen Sie veraltete Abonnements mit DELETE /v1.0/subscriptions/<id>, oder entfernen Sie Apps, die das Postfach nicht mehr brauchen, unter Entra Admin Center > Unternehmensanwendungen.',
    },
  },
  MB_WATCH_GRAPH_SUBSCRIBE_FAILED: {
    http: 502,
    title: { en: 'Graph subscription failed', de: 'Graph-Abonnement fehlgeschlagen' },
    cause: {
      en: 'Microsoft Graph answered {status} {code} to {operation} for {mailbox} ({folder}): {detail}. mailbridge retries in {seconds} s.',
      de: 'Microsoft Graph antwortete {status} {code} auf {operation} für {mailbox} ({folder}): {detail}. mailbridge versucht es in {seconds} s erneut.',
    },
    fix: {
      en: 'If it persists, check the mailbox and folder exist (Get-EXOMailbox -Identity {mailbox}) and that the Graph endpoint of the connection is right; quote the request-id from the log to Microsoft support.',
      de: 'Hält es an, prüfen Sie, ob Postfach und Ordner existieren (Get-EXOMailbox -Identity {mailbox}) und ob der Graph-Endpunkt der Verbindung stimmt; nennen Sie dem Microsoft-Support die request-id aus dem Protokoll.',
    },
  },
  MB_WATCH_GRAPH_REQUEST_FAILED: {
    http: 502,
    title: { en: 'Graph request failed', de: 'Graph-Anfrage fehlgeschlagen' },
    cause: {
      en: 'Reading changes of {mailbox} ({folder}) from Microsoft Graph failed: {detail}. mailbridge tries again at the next notification or in {seconds} s; nothing is lost, the delta link is kept.',
      de: 'Das Lesen der Änderungen von {mailbox} ({folder}) bei Microsoft Graph schlug fehl: {detail}. mailbridge versucht es bei der nächsten Benachrichtigung oder in {seconds} s erneut; nichts geht verloren, der Delta-Link bleibt erhalten.',
    },
    fix: {
      en: 'Check that mailbridge reaches the Graph endpoint over HTTPS (proxy, firewall, DNS) and that the mailbox and folder exist; a 5xx from Graph passes by itself.',
      de: 'Prüfen Sie, ob mailbridge den Graph-Endpunkt per HTTPS erreicht (Proxy, Firewall, DNS) und ob Postfach und Ordner existieren; ein 5xx von Graph geht von selbst vorüber.',
    },
  },
  MB_WATCH_GRAPH_THROTTLED: {
    http: 503,
    title: { en: 'Graph throttled the watcher', de: 'Graph drosselt den Watcher' },
    cause: {
      en: 'Microsoft Graph answered {status} for {mailbox} and asked to wait {seconds} s (Retry-After). mailbridge waits and goes on; events are late, not lost.',
      de: 'Microsoft Graph antwortete {status} für {mailbox} und bat, {seconds} s zu warten (Retry-After). mailbridge wartet und macht weiter; Ereignisse kommen später, gehen aber nicht verloren.',
    },
    fix: {
      en: 'Nothing to do if it is rare. If it is frequent, other apps share the 4-requests-per-mailbox limit of your app: lower watch.graph.requestsPerMailbox, or move heavy jobs on {mailbox} to another app registration.',
      de: 'Nichts zu tun, wenn es selten ist. Tritt es oft auf, teilen sich andere Programme das Limit von 4 Anfragen je Postfach Ihrer App: Senken Sie watch.graph.requestsPerMailbox oder verlegen Sie schwere Aufgaben auf {mailbox} in eine andere App-Registrierung.',
    },
  },
  MB_WATCH_GRAPH_RESYNC: {
    http: 502,
    title: { en: 'Graph delta state lost; resynchronising', de: 'Graph-Delta-Stand verloren; neu synchronisiert' },
    cause: {
      en: 'Microsoft Graph no longer knows the delta link of {mailbox} ({folder}) ({status} {code}). mailbridge reads the folder again and reports messages received since {since} as new; read-state changes during the gap are reported only for messages it knew.',
      de: 'Microsoft Graph kennt den Delta-Link von {mailbox} ({folder}) nicht mehr ({status} {code}). mailbridge liest den Ordner neu und meldet seit {since} eingegangene Nachrichten als neu; Änderungen des Gelesen-Status in der Lücke werden nur für bereits bekannte Nachrichten gemeldet.',
    },
    fix: {
      en: 'Nothing to do: Exchange forgets delta links when its cache is full or after long pauses. If it happens often, keep mailbridge running without long interruptions.',
      de: 'Nichts zu tun: Exchange vergisst Delta-Links, wenn sein Cache voll ist oder nach langen Pausen. Tritt es oft auf, lassen Sie mailbridge ohne lange Unterbrechungen laufen.',
    },
  },
  MB_WATCH_GRAPH_CLIENTSTATE_MISMATCH: {
    http: 400,
    title: { en: 'Graph notification with a wrong clientState ignored', de: 'Graph-Benachrichtigung mit falschem clientState ignoriert' },
    cause: {
      en: 'A change notification for subscription {subscriptionId} ({mailbox}) carried a clientState that does not match the one mailbridge set; it may not come from Microsoft Graph and was ignored.',
      de: 'Eine Änderungsbenachrichtigung für das Abonnement {subscriptionId} ({mailbox}) trug einen clientState, der nicht zu dem von mailbridge gesetzten passt; sie stammt womöglich nicht von Microsoft Graph und wurde ignoriert.',
    },
    fix: {
      en: 'If it repeats, someone posts to the public notification URL: check the reverse proxy\'s access log for the sender, and restrict the URL to Microsoft\'s addresses (Microsoft 365 URLs and IP address ranges, "Microsoft Graph change notifications").',
      de: 'Wiederholt es sich, sendet jemand an die öffentliche Benachrichtigungs-URL: Prüfen Sie im Zugriffsprotokoll des Reverse Proxys den Absender und beschränken Sie die URL auf Microsofts Adressen (Microsoft 365-URLs und IP-Adressbereiche, „Microsoft Graph change notifications“).',
    },
  },
  MB_WATCH_GRAPH_RICH_INVALID: {
    http: 400,
    title: { en: 'Rich Graph notification could not be read', de: 'Graph-Benachrichtigung mit Daten nicht lesbar' },
    cause: {
      en: 'The encrypted content of a notification for {mailbox} could not be used: {detail}. mailbridge reads the change with delta instead.',
      de: 'Der verschlüsselte Inhalt einer Benachrichtigung für {mailbox} war nicht verwendbar: {detail}. mailbridge liest die Änderung stattdessen per Delta.',
    },
    fix: {
      en: 'Nothing to do if it is rare: no change is lost. If every notification fails, the subscriptions were made with another key (the SecretBox key changed, or the store was restored): restart mailbridge; at start it recreates every subscription whose certificate is not its current one.',
      de: 'Nichts zu tun, wenn es selten ist: Keine Änderung geht verloren. Scheitert jede Benachrichtigung, wurden die Abonnements mit einem anderen Schlüssel angelegt (Schlüssel der SecretBox geändert oder Store zurückgespielt): Starten Sie mailbridge neu; beim Start legt es jedes Abonnement neu an, dessen Zertifikat nicht das aktuelle ist.',
    },
  },
  MB_WATCH_GRAPH_SUBSCRIPTION_REMOVED: {
    http: 502,
    title: { en: 'Graph removed a subscription', de: 'Graph hat ein Abonnement entfernt' },
    cause: {
      en: 'Microsoft Graph removed the change-notification subscription {subscriptionId} of {mailbox} ({folder}) and said so with a subscriptionRemoved lifecycle event (after a permission or password change, or on its own). mailbridge creates a new one and catches up the gap with a delta round; nothing is lost.',
      de: 'Microsoft Graph hat das Änderungsbenachrichtigungs-Abonnement {subscriptionId} von {mailbox} ({folder}) entfernt und dies mit dem Lebenszyklusereignis subscriptionRemoved gemeldet (nach einer Berechtigungs- oder Kennwortänderung oder von sich aus). mailbridge legt ein neues an und holt die Lücke mit einer Delta-Abfrage nach; es geht nichts verloren.',
    },
    fix: {
      en: 'Nothing to do when it happens now and then. If it repeats for this mailbox, check the app\'s Mail.Read permission and any application access policy: Get-ApplicationAccessPolicy | Format-List',
      de: 'Nichts zu tun, wenn es gelegentlich vorkommt. Wiederholt es sich für dieses Postfach, prüfen Sie die Berechtigung Mail.Read der App und eine etwaige Anwendungszugriffsrichtlinie: Get-ApplicationAccessPolicy | Format-List',
    },
  },
  MB_WATCH_GRAPH_MISSED: {
    http: 502,
    title: { en: 'Graph dropped notifications', de: 'Graph hat Benachrichtigungen verworfen' },
    cause: {
      en: 'Microsoft Graph could not deliver some change notifications of {mailbox} ({folder}, subscription {subscriptionId}) and sent a missed lifecycle event instead. mailbridge catches up with a delta round, so no change is lost, but events for them come late.',
      de: 'Microsoft Graph konnte einige Änderungsbenachrichtigungen von {mailbox} ({folder}, Abonnement {subscriptionId}) nicht zustellen und hat stattdessen das Lebenszyklusereignis missed gesendet. mailbridge holt mit einer Delta-Abfrage nach, es geht also keine Änderung verloren, die Ereignisse kommen aber verspätet.',
    },
    fix: {
      en: 'Graph drops notifications to an endpoint that answers slowly or not at all: check that notify.watch.publicUrl is reachable from the internet and answers within 3 seconds (reverse proxy, firewall, load on the mailbridge host).',
      de: 'Graph verwirft Benachrichtigungen an einen Endpunkt, der langsam oder gar nicht antwortet: Prüfen Sie, ob notify.watch.publicUrl aus dem Internet erreichbar ist und innerhalb von 3 Sekunden antwortet (Reverse Proxy, Firewall, Last auf dem mailbridge-Host).',
    },
  },
} as const satisfies CatalogueSection;
