import type { CatalogueSection } from '../types.ts';

/** Notify watchers: EWS streaming and push notifications, autodiscover. */
export const watchEws = {
  MB_EWS_AUTODISCOVER_FAILED: {
    http: 502,
    title: { en: 'EWS autodiscover found no endpoint', de: 'EWS-Autodiscover hat keinen Endpunkt gefunden' },
    cause: {
      en: 'mailbridge could not find the EWS URL of {mailbox} by autodiscover for {domain}: {detail}',
      de: 'mailbridge konnte die EWS-URL von {mailbox} per Autodiscover für {domain} nicht ermitteln: {detail}',
    },
    fix: {
      en: 'Set the EWS URL in the watch listener (url: https://mail.{domain}/EWS/Exchange.asmx) or point autodiscover.url at a working endpoint. Check with `Get-ClientAccessService | fl Name,AutoDiscoverServiceInternalUri` that autodiscover.{domain} resolves from the mailbridge host and that its certificate is trusted (caFile).',
      de: 'Tragen Sie die EWS-URL im Watch-Listener ein (url: https://mail.{domain}/EWS/Exchange.asmx) oder lassen Sie autodiscover.url auf einen funktionierenden Endpunkt zeigen. Prüfen Sie mit `Get-ClientAccessService | fl Name,AutoDiscoverServiceInternalUri`, ob autodiscover.{domain} vom mailbridge-Host auflösbar ist und sein Zertifikat vertraut wird (caFile).',
    },
  },
  MB_EWS_UNAUTHORIZED: {
    http: 502,
    title: { en: 'EWS refused the credentials', de: 'EWS hat die Anmeldedaten abgelehnt' },
    cause: {
      en: 'Exchange answered HTTP {status} at {url} for {mailbox}: the token or account is not accepted for EWS.',
      de: 'Exchange antwortete an {url} für {mailbox} mit HTTP {status}: Token oder Konto werden für EWS nicht akzeptiert.',
    },
    fix: {
      en: 'On-premises: give the service account impersonation rights with `New-ManagementRoleAssignment -Name mailbridge-impersonation -Role ApplicationImpersonation -User <service account>` and check that EWS allows it (`Get-CASMailbox <mailbox> | fl EwsEnabled`). With OAuth: the app needs full_access_as_app (Office 365 Exchange Online > Application permissions) and admin consent.',
      de: 'On-Premises: Geben Sie dem Dienstkonto Identitätswechselrechte mit `New-ManagementRoleAssignment -Name mailbridge-impersonation -Role ApplicationImpersonation -User <Dienstkonto>` und prüfen Sie, ob EWS erlaubt ist (`Get-CASMailbox <Postfach> | fl EwsEnabled`). Mit OAuth: Die App braucht full_access_as_app (Office 365 Exchange Online > Anwendungsberechtigungen) und die Administratorzustimmung.',
    },
  },
  MB_EWS_ACCESS_DENIED: {
    http: 502,
    title: { en: 'EWS denied access to the mailbox', de: 'EWS verweigert den Zugriff auf das Postfach' },
    cause: {
      en: 'Exchange answered {code} for {mailbox}: {detail}',
      de: 'Exchange antwortete für {mailbox} mit {code}: {detail}',
    },
    fix: {
      en: 'Grant impersonation for the mailbox: `New-ManagementRoleAssignment -Name mailbridge-impersonation -Role ApplicationImpersonation -User <service account>` (limit it with -CustomRecipientWriteScope). Without impersonation (impersonation: false) the account needs `Add-MailboxPermission -Identity {mailbox} -User <service account> -AccessRights FullAccess`.',
      de: 'Erlauben Sie den Identitätswechsel für das Postfach: `New-ManagementRoleAssignment -Name mailbridge-impersonation -Role ApplicationImpersonation -User <Dienstkonto>` (eingrenzbar mit -CustomRecipientWriteScope). Ohne Identitätswechsel (impersonation: false) braucht das Konto `Add-MailboxPermission -Identity {mailbox} -User <Dienstkonto> -AccessRights FullAccess`.',
    },
  },
  MB_EWS_MAILBOX_NOT_FOUND: {
    http: 404,
    title: { en: 'No Exchange mailbox for this address', de: 'Kein Exchange-Postfach für diese Adresse' },
    cause: {
      en: 'Exchange has no mailbox for {mailbox} ({code}). It is not watched.',
      de: 'Exchange hat kein Postfach für {mailbox} ({code}). Es wird nicht überwacht.',
    },
    fix: {
      en: 'Check the address with `Get-Mailbox {mailbox}` and correct the watched mailboxes, or remove it from the list.',
      de: 'Prüfen Sie die Adresse mit `Get-Mailbox {mailbox}` und korrigieren Sie die überwachten Postfächer oder entfernen Sie es aus der Liste.',
    },
  },
  MB_EWS_SERVER_BUSY: {
    http: 503,
    title: { en: 'Exchange asked mailbridge to back off', de: 'Exchange hat mailbridge gebremst' },
    cause: {
      en: 'EWS at {url} answered ErrorServerBusy; mailbridge waits {seconds} s as asked and then tries again. Nothing is lost: changes in between are caught up.',
      de: 'EWS unter {url} antwortete ErrorServerBusy; mailbridge wartet wie verlangt {seconds} s und versucht es dann erneut. Nichts geht verloren: Änderungen in der Zwischenzeit werden nachgeholt.',
    },
    fix: {
      en: 'Passes by itself. If it keeps happening, give the service account its own throttling policy: `New-ThrottlingPolicy -Name mailbridge -EwsMaxConcurrency Unlimited -EwsMaxBurst Unlimited -EwsRechargeRate Unlimited -EwsCutoffBalance Unlimited` and `Set-ThrottlingPolicyAssociation <service account> -ThrottlingPolicy mailbridge`.',
      de: 'Erledigt sich von selbst. Tritt es häufig auf, geben Sie dem Dienstkonto eine eigene Drosselungsrichtlinie: `New-ThrottlingPolicy -Name mailbridge -EwsMaxConcurrency Unlimited -EwsMaxBurst Unlimited -EwsRechargeRate Unlimited -EwsCutoffBalance Unlimited` und `Set-ThrottlingPolicyAssociation <Dienstkonto> -ThrottlingPolicy mailbridge`.',
    },
  },
  MB_EWS_CONNECTION_LIMIT: {
    http: 503,
    title: { en: 'Too many EWS streaming connections', de: 'Zu viele EWS-Streaming-Verbindungen' },
    cause: {
      en: 'EWS at {url} answered ErrorExceededConnectionCount for the group anchored at {mailbox}: the account has reached its limit of open streaming connections (HangingConnectionLimit). mailbridge retries with growing waits.',
      de: 'EWS unter {url} antwortete ErrorExceededConnectionCount für die Gruppe mit Anker {mailbox}: Das Konto hat seine Grenze offener Streaming-Verbindungen (HangingConnectionLimit) erreicht. mailbridge versucht es mit wachsenden Abständen erneut.',
    },
    fix: {
      en: 'Keep impersonation on (each impersonated mailbox has its own budget) and stop other EWS clients of the account. On-premises, raise the limit in %ExchangeInstallPath%\\ClientAccess\\exchweb\\ews\\web.config: <add key="HangingConnectionLimit" value="100" />, then `Restart-WebAppPool MSExchangeServicesAppPool`.',
      de: 'Lassen Sie den Identitätswechsel an (jedes Postfach hat dann sein eigenes Budget) und beenden Sie andere EWS-Clients des Kontos. On-Premises erhöhen Sie die Grenze in %ExchangeInstallPath%\\ClientAccess\\exchweb\\ews\\web.config: <add key="HangingConnectionLimit" value="100" />, danach `Restart-WebAppPool MSExchangeServicesAppPool`.',
    },
  },
  MB_EWS_SUBSCRIPTION_LIMIT: {
    http: 503,
    title: { en: 'Too many EWS subscriptions', de: 'Zu viele EWS-Abonnements' },
    cause: {
      en: 'EWS answered ErrorExceededSubscriptionCount for {mailbox}: the account has reached EwsMaxSubscriptions. mailbridge tries again at the next reconnect.',
      de: 'EWS antwortete für {mailbox} mit ErrorExceededSubscriptionCount: Das Konto hat EwsMaxSubscriptions erreicht. mailbridge versucht es bei der nächsten Neuverbindung erneut.',
    },
    fix: {
      en: 'Give the service account a policy with more subscriptions: `New-ThrottlingPolicy -Name mailbridge -EwsMaxSubscriptions 20000` and `Set-ThrottlingPolicyAssociation <service account> -ThrottlingPolicy mailbridge`; stop other EWS clients that subscribe with the same account.',
      de: 'Geben Sie dem Dienstkonto eine Richtlinie mit mehr Abonnements: `New-ThrottlingPolicy -Name mailbridge -EwsMaxSubscriptions 20000` und `Set-ThrottlingPolicyAssociation <Dienstkonto> -ThrottlingPolicy mailbridge`; beenden Sie andere EWS-Clients, die mit demselben Konto abonnieren.',
    },
  },
  MB_EWS_REQUEST_FAILED: {
    http: 502,
    title: { en: 'EWS request failed', de: 'EWS-Anfrage fehlgeschlagen' },
    cause: {
      en: '{operation} for {mailbox} failed with {code}: {detail}. mailbridge retries at the next reconnect.',
      de: '{operation} für {mailbox} schlug mit {code} fehl: {detail}. mailbridge versucht es bei der nächsten Neuverbindung erneut.',
    },
    fix: {
      en: 'Look up the code in Microsoft\'s EWS ResponseCode list; the Exchange server\'s event log (Application, source MSExchange Web Services) names the cause. `Test-OutlookWebServices -Identity {mailbox}` checks EWS for the mailbox.',
      de: 'Schlagen Sie den Code in Microsofts EWS-ResponseCode-Liste nach; das Ereignisprotokoll des Exchange-Servers (Anwendung, Quelle MSExchange Web Services) nennt die Ursache. `Test-OutlookWebServices -Identity {mailbox}` prüft EWS für das Postfach.',
    },
  },
  MB_EWS_UNREACHABLE: {
    http: 502,
    title: { en: 'EWS unreachable', de: 'EWS nicht erreichbar' },
    cause: {
      en: 'mailbridge could not talk to {url}: {detail}. It reconnects with growing waits and catches up afterwards.',
      de: 'mailbridge konnte {url} nicht erreichen: {detail}. Es verbindet sich mit wachsenden Abständen neu und holt danach Versäumtes nach.',
    },
    fix: {
      en: 'Check that the EWS host resolves and accepts HTTPS from the mailbridge host (firewall, proxy), and that its certificate is trusted: set caFile to your internal CA\'s PEM file.',
      de: 'Prüfen Sie, ob der EWS-Host auflösbar ist und HTTPS vom mailbridge-Host annimmt (Firewall, Proxy), und ob seinem Zertifikat vertraut wird: Setzen Sie caFile auf die PEM-Datei Ihrer internen CA.',
    },
  },
  MB_EWS_STREAM_LOST: {
    http: 504,
    title: { en: 'EWS streaming connection went silent', de: 'EWS-Streaming-Verbindung verstummt' },
    cause: {
      en: 'The GetStreamingEvents connection to {url} sent nothing for {seconds} s (not even a heartbeat). mailbridge reconnects and catches up, so no change is lost.',
      de: 'Die GetStreamingEvents-Verbindung zu {url} hat {seconds} s lang nichts gesendet (nicht einmal einen Herzschlag). mailbridge verbindet sich neu und holt nach, es geht keine Änderung verloren.',
    },
    fix: {
      en: 'Usually a proxy or load balancer that cuts long-lived HTTP responses: raise its idle timeout above 120 s for /EWS/Exchange.asmx, or disable response buffering for it.',
      de: 'Meist ein Proxy oder Load-Balancer, der lang laufende HTTP-Antworten kappt: Erhöhen Sie dessen Leerlauf-Timeout für /EWS/Exchange.asmx auf über 120 s oder schalten Sie dort die Antwortpufferung ab.',
    },
  },
  MB_EWS_EXCHANGE_ONLINE_RETIRING: {
    http: 400,
    title: { en: 'EWS in Exchange Online is being retired', de: 'EWS in Exchange Online wird abgeschaltet' },
    cause: {
      en: 'The EWS watcher talks to Exchange Online ({host}). Since 1 October 2026 Exchange Online answers EWS only for apps on the tenant\'s allow list, and on 1 April 2027 it shuts EWS down for good; watching over EWS stops then at the latest.',
      de: 'Der EWS-Watcher spricht mit Exchange Online ({host}). Seit dem 1. Oktober 2026 beantwortet Exchange Online EWS nur noch für Apps auf der Zulassungsliste des Mandanten, und am 1. April 2027 schaltet es EWS endgültig ab; die Überwachung über EWS endet spätestens dann.',
    },
    fix: {
      en: 'Watch Exchange Online mailboxes over Graph instead: set notify.watch.groups.<group>.kind to graph with a connection that has the application permission Mail.Read (admin consent). Until you switch, the app must be on the allow list: Set-OrganizationConfig -EwsAllowedAppIDs @{Add="<application (client) ID>"}. Keep EWS for Exchange Server on premises.',
      de: 'Überwachen Sie Exchange-Online-Postfächer stattdessen über Graph: Setzen Sie notify.watch.groups.<Gruppe>.kind auf graph, mit einer Verbindung, die die Anwendungsberechtigung Mail.Read (mit Administratorzustimmung) hat. Bis zur Umstellung muss die App auf der Zulassungsliste stehen: Set-OrganizationConfig -EwsAllowedAppIDs @{Add="<Anwendungs-ID (Client-ID)>"}. Verwenden Sie EWS weiter für Exchange Server on-premises.',
    },
  },
  MB_EWS_FOLDER_UNSUPPORTED: {
    http: 400,
    title: { en: 'Folder cannot be watched over EWS', de: 'Ordner kann über EWS nicht überwacht werden' },
    cause: {
      en: 'The folder "{folder}" of {mailbox} is not a well-known EWS folder (inbox, sentitems, drafts, deleteditems, junkemail, …). It is skipped.',
      de: 'Der Ordner „{folder}“ von {mailbox} ist kein bekannter EWS-Ordner (inbox, sentitems, drafts, deleteditems, junkemail, …). Er wird übersprungen.',
    },
    fix: {
      en: 'Use a well-known folder name in the watched mailbox\'s folders list, for example inbox.',
      de: 'Verwenden Sie in der Ordnerliste des überwachten Postfachs einen bekannten Ordnernamen, zum Beispiel inbox.',
    },
  },
  MB_EWS_SYNC_STATE_RESET: {
    http: 500,
    title: { en: 'EWS sync state was refused and rebuilt', de: 'EWS-Synchronisationsstand abgelehnt und neu aufgebaut' },
    cause: {
      en: 'Exchange refused the stored SyncState of folder {folder} of {mailbox} ({code}). mailbridge started a new one; changes made while it was not watching may not be reported.',
      de: 'Exchange hat den gespeicherten SyncState des Ordners {folder} von {mailbox} abgelehnt ({code}). mailbridge hat einen neuen angelegt; Änderungen aus der Zeit ohne Überwachung werden eventuell nicht gemeldet.',
    },
    fix: {
      en: 'Nothing to do for the future. This happens after a mailbox move between databases or a restore; if it repeats, check the mailbox with `Get-MailboxStatistics {mailbox}`.',
      de: 'Für die Zukunft ist nichts zu tun. Das passiert nach dem Verschieben eines Postfachs zwischen Datenbanken oder einer Wiederherstellung; wiederholt es sich, prüfen Sie das Postfach mit `Get-MailboxStatistics {mailbox}`.',
    },
  },
  MB_EWS_PUSH_NO_LISTENER: {
    http: 500,
    title: { en: 'EWS push needs the inbound listener', de: 'EWS-Push braucht den eingehenden Listener' },
    cause: {
      en: 'The EWS watch listener {listener} is set to mode push, but mailbridge has no inbound HTTPS listener that Exchange could call back.',
      de: 'Der EWS-Watch-Listener {listener} steht auf mode push, aber mailbridge hat keinen eingehenden HTTPS-Listener, den Exchange zurückrufen könnte.',
    },
    fix: {
      en: 'Configure the inbound listener (watch.inbound with publicUrl reachable from the Exchange servers), or set mode: streaming for this listener.',
      de: 'Richten Sie den eingehenden Listener ein (watch.inbound mit einer publicUrl, die von den Exchange-Servern erreichbar ist), oder setzen Sie für diesen Listener mode: streaming.',
    },
  },
  MB_EWS_MAILBOX_NOT_ON_SERVERS: {
    http: 400,
    title: { en: 'Mailbox outside the servers scope', de: 'Postfach außerhalb des servers-Bereichs' },
    cause: {
      en: '{mailbox} is listed in this EWS group, but autodiscover places it on {server}, which is not in ews.servers ({servers}); listener {listener} does not watch it, and no other listener of the group will.',
      de: '{mailbox} steht in dieser EWS-Gruppe, laut Autodiscover liegt es aber auf {server}, und der steht nicht in ews.servers ({servers}); Listener {listener} überwacht es nicht, und kein anderer Listener der Gruppe wird es tun.',
    },
    fix: {
      en: 'Move the mailbox to the group that watches {server}, add {server} to ews.servers, or check where it lives: Get-Mailbox {mailbox} | Format-List ServerName,Database',
      de: 'Verschieben Sie das Postfach in die Gruppe, die {server} überwacht, nehmen Sie {server} in ews.servers auf, oder prüfen Sie, wo es liegt: Get-Mailbox {mailbox} | Format-List ServerName,Database',
    },
  },
  MB_EWS_PUSH_SILENT: {
    http: 502,
    title: { en: 'Exchange does not call the push URL', de: 'Exchange ruft die Push-URL nicht auf' },
    cause: {
      en: 'The push subscription of {mailbox} has had no call from Exchange in {minutes} minutes, not even a status notification, although Exchange sends one at least every StatusFrequency. Its calls to {url} do not arrive (wrong publicUrl, firewall, reverse proxy, or a certificate Exchange does not trust). mailbridge subscribes again; events are caught up after each subscribe, not live.',
      de: 'Das Push-Abonnement von {mailbox} hat seit {minutes} Minuten keinen Aufruf von Exchange erhalten, nicht einmal eine Statusbenachrichtigung, obwohl Exchange spätestens nach StatusFrequency eine sendet. Seine Aufrufe an {url} kommen nicht an (falsche publicUrl, Firewall, Reverse Proxy oder ein Zertifikat, dem Exchange nicht vertraut). mailbridge abonniert erneut; Ereignisse werden nach jedem Abonnieren nachgeholt, nicht sofort gemeldet.',
    },
    fix: {
      en: 'From an Exchange server, run Invoke-WebRequest -Method Post -Uri {url} (the path without the token answers 404 when it reaches mailbridge); fix notify.watch.publicUrl, the firewall or the certificate, or set ews.mode: streaming for this group.',
      de: 'Führen Sie auf einem Exchange-Server Invoke-WebRequest -Method Post -Uri {url} aus (der Pfad ohne Token antwortet mit 404, wenn er mailbridge erreicht); korrigieren Sie notify.watch.publicUrl, die Firewall oder das Zertifikat, oder setzen Sie ews.mode: streaming für diese Gruppe.',
    },
  },
} as const satisfies CatalogueSection;
