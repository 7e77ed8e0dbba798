import type { CatalogueSection } from '../types.ts';

/** New-mail notifications: subscriptions and the sinks that carry events to apps and devices. */
export const notify = {
  MB_NOTIFY_SUBSCRIPTION_INVALID: {
    http: 400,
    title: { en: 'Invalid notification subscription', de: 'Ungültiges Benachrichtigungs-Abonnement' },
    cause: {
      en: 'The subscription request was refused: {detail}',
      de: 'Die Abonnement-Anfrage wurde abgelehnt: {detail}',
    },
    fix: {
      en: 'Correct the named field and send the request again. POST /api/v1/subscriptions takes {"mailboxes": [...], "sink": {"kind": "webhook" | "webpush" | "apns" | "fcm", ...}}.',
      de: 'Korrigieren Sie das genannte Feld und senden Sie die Anfrage erneut. POST /api/v1/subscriptions erwartet {"mailboxes": [...], "sink": {"kind": "webhook" | "webpush" | "apns" | "fcm", ...}}.',
    },
  },
  MB_NOTIFY_MAILBOX_NOT_WATCHED: {
    // A warning in a 201 answer, never an error status; 400 is what it would be if it were refused.
    http: 400,
    title: { en: 'Mailbox not watched', de: 'Postfach wird nicht überwacht' },
    cause: {
      en: 'The subscription was created, but no group under notify.watch watches {mailboxes}: until one does, no event will come for them.',
      de: 'Das Abonnement wurde angelegt, aber keine Gruppe unter notify.watch überwacht {mailboxes}: Bis eine Gruppe sie überwacht, kommen für sie keine Ereignisse.',
    },
    fix: {
      en: 'Add the mailboxes to a group in mailbridge.yaml (notify.watch.groups.<group>.mailboxes), run `mailbridge config check` and restart `mailbridge serve`; or check the address in the subscription for a typo.',
      de: 'Tragen Sie die Postfächer in eine Gruppe in mailbridge.yaml ein (notify.watch.groups.<Gruppe>.mailboxes), führen Sie `mailbridge config check` aus und starten Sie `mailbridge serve` neu; oder prüfen Sie die Adresse im Abonnement auf Tippfehler.',
    },
  },
  MB_NOTIFY_EGRESS_REFUSED: {
    http: 400,
    title: { en: 'Notification target is internal', de: 'Benachrichtigungsziel ist intern' },
    cause: {
      en: '{target} leads to {address}, which lies in {range}: a loopback, private, link-local, multicast or otherwise internal range. mailbridge does not send to internal addresses that an API caller or subscriber chose, so its signed requests cannot be turned against the network it runs in.',
      de: '{target} führt zu {address}, und das liegt in {range}: einem Loopback-, privaten, Link-Local-, Multicast- oder sonst internen Bereich. mailbridge sendet nicht an interne Adressen, die ein API-Aufrufer oder Abonnent gewählt hat, damit seine signierten Anfragen nicht gegen das eigene Netz gerichtet werden können.',
    },
    fix: {
      en: 'Use a public receiver URL. If the receiver really is on the internal network, add it to notify.egress.allow in mailbridge.yaml (its host name, or a CIDR such as {range}), run `mailbridge config check` and restart.',
      de: 'Verwenden Sie eine öffentliche Empfänger-URL. Liegt der Empfänger wirklich im internen Netz, tragen Sie ihn in notify.egress.allow in mailbridge.yaml ein (seinen Hostnamen oder ein CIDR wie {range}), führen Sie `mailbridge config check` aus und starten Sie neu.',
    },
  },
  MB_NOTIFY_EGRESS_OWN_LISTENER: {
    http: 400,
    title: { en: 'Notification target is mailbridge itself', de: 'Benachrichtigungsziel ist mailbridge selbst' },
    cause: {
      en: '{target} leads to mailbridge\'s own listener {listener}. Events are never sent to the gateway itself, even when the allow list covers its address.',
      de: '{target} führt zu mailbridges eigenem Listener {listener}. Ereignisse werden nie an das Gateway selbst gesendet, auch wenn die Freigabeliste seine Adresse abdeckt.',
    },
    fix: {
      en: 'Give the URL of the application that should receive the events, not mailbridge\'s.',
      de: 'Geben Sie die URL der Anwendung an, die die Ereignisse empfangen soll, nicht die von mailbridge.',
    },
  },
  MB_NOTIFY_EGRESS_CREDENTIALS: {
    http: 400,
    title: { en: 'Credentials in a notification URL', de: 'Zugangsdaten in einer Benachrichtigungs-URL' },
    cause: {
      en: 'The URL for {target} carries a user name or password. They would be sent with every event and shown wherever the URL is, so mailbridge refuses such URLs.',
      de: 'Die URL für {target} enthält einen Benutzernamen oder ein Kennwort. Sie würden mit jedem Ereignis gesendet und überall sichtbar, wo die URL steht; deshalb lehnt mailbridge solche URLs ab.',
    },
    fix: {
      en: 'Remove user:password@ from the URL; webhook receivers check the webhook-signature header with the subscription\'s whsec_ secret instead.',
      de: 'Entfernen Sie user:password@ aus der URL; Webhook-Empfänger prüfen stattdessen den Header webhook-signature mit dem whsec_-Geheimnis des Abonnements.',
    },
  },
  MB_NOTIFY_SUBSCRIPTION_NOT_FOUND: {
    http: 404,
    title: { en: 'Notification subscription not found', de: 'Benachrichtigungs-Abonnement nicht gefunden' },
    cause: {
      en: 'There is no subscription with the id {id}. It was deleted, or its sink reported the device or endpoint as gone.',
      de: 'Es gibt kein Abonnement mit der ID {id}. Es wurde gelöscht, oder sein Ziel hat das Gerät bzw. den Endpunkt als nicht mehr vorhanden gemeldet.',
    },
    fix: {
      en: 'List the subscriptions with GET /api/v1/subscriptions and subscribe again if needed.',
      de: 'Listen Sie die Abonnements mit GET /api/v1/subscriptions auf und abonnieren Sie bei Bedarf neu.',
    },
  },
  MB_NOTIFY_SINK_NOT_CONFIGURED: {
    http: 400,
    title: { en: 'Notification sink not configured', de: 'Benachrichtigungsziel nicht eingerichtet' },
    cause: {
      en: 'The sink "{kind}" is not set up in the notify section of mailbridge.yaml, so no subscription can use it.',
      de: 'Das Ziel „{kind}“ ist im Abschnitt notify von mailbridge.yaml nicht eingerichtet, daher kann kein Abonnement es verwenden.',
    },
    fix: {
      en: 'Add notify.{kind} to mailbridge.yaml (see `mailbridge config schema`) and restart mailbridge.',
      de: 'Ergänzen Sie notify.{kind} in mailbridge.yaml (siehe `mailbridge config schema`) und starten Sie mailbridge neu.',
    },
  },
  MB_NOTIFY_SINK_CONFIG_INVALID: {
    http: 500,
    title: { en: 'Notification sink settings are invalid', de: 'Einstellungen des Benachrichtigungsziels ungültig' },
    cause: {
      en: 'The settings of the {kind} sink cannot be used: {detail}',
      de: 'Die Einstellungen des Ziels {kind} sind nicht verwendbar: {detail}',
    },
    fix: {
      en: 'Check notify.{kind} in mailbridge.yaml: keys must be the PEM or base64url values the provider issued (APNs: the .p8 key from Apple Developer > Certificates, IDs & Profiles > Keys; FCM: the service-account JSON from Firebase console > Project settings > Service accounts; Web Push: a P-256 VAPID key pair).',
      de: 'Prüfen Sie notify.{kind} in mailbridge.yaml: Schlüssel müssen die PEM- bzw. base64url-Werte des Anbieters sein (APNs: der .p8-Schlüssel aus Apple Developer > Certificates, IDs & Profiles > Keys; FCM: die Dienstkonto-JSON aus Firebase-Konsole > Projekteinstellungen > Dienstkonten; Web Push: ein P-256-VAPID-Schlüsselpaar).',
    },
  },
  MB_NOTIFY_UNREACHABLE: {
    http: 502,
    title: { en: 'Notification target unreachable', de: 'Benachrichtigungsziel nicht erreichbar' },
    cause: {
      en: 'mailbridge could not deliver to {target}: {detail}.',
      de: 'mailbridge konnte nicht an {target} zustellen: {detail}.',
    },
    fix: {
      en: 'Check that {target} resolves and accepts connections from the mailbridge host (firewall, proxy; for an https:// address also its certificate), and that it answers within notify.webhook.timeoutSeconds.',
      de: 'Prüfen Sie, ob {target} auflösbar ist und Verbindungen vom mailbridge-Host annimmt (Firewall, Proxy; bei einer https://-Adresse auch das Zertifikat) und ob es innerhalb von notify.webhook.timeoutSeconds antwortet.',
    },
  },
  MB_NOTIFY_REJECTED: {
    http: 502,
    title: { en: 'Notification refused by the receiver', de: 'Benachrichtigung vom Empfänger abgelehnt' },
    cause: {
      en: 'The {kind} receiver {target} answered {status} {reason}.',
      de: 'Der {kind}-Empfänger {target} antwortete {status} {reason}.',
    },
    fix: {
      en: 'A 5xx or 429 is the receiver\'s own trouble and passes. A 401/403 means it refused mailbridge\'s signature or token: compare the webhook secret, the VAPID key, the APNs key id and team id, or the FCM service account with what the app was set up with.',
      de: 'Ein 5xx oder 429 ist ein Problem des Empfängers und geht vorüber. Ein 401/403 heißt, er lehnt mailbridges Signatur oder Token ab: Vergleichen Sie Webhook-Geheimnis, VAPID-Schlüssel, APNs-Schlüssel-ID und Team-ID bzw. das FCM-Dienstkonto mit der Einrichtung der App.',
    },
  },
  MB_NOTIFY_GONE: {
    http: 410,
    title: { en: 'Notification target no longer exists', de: 'Benachrichtigungsziel existiert nicht mehr' },
    cause: {
      en: 'The {kind} receiver {target} reported the subscription as gone ({status} {reason}); mailbridge stopped delivering to it.',
      de: 'Der {kind}-Empfänger {target} meldete das Abonnement als nicht mehr vorhanden ({status} {reason}); mailbridge stellt nicht mehr dorthin zu.',
    },
    fix: {
      en: 'Nothing to do when the app was uninstalled or the browser unsubscribed. Otherwise the app must subscribe again with POST /api/v1/subscriptions.',
      de: 'Nichts zu tun, wenn die App deinstalliert oder das Browser-Abonnement beendet wurde. Andernfalls muss die App sich mit POST /api/v1/subscriptions neu anmelden.',
    },
  },
  MB_NOTIFY_TOKEN_FAILED: {
    http: 502,
    title: { en: 'Push provider token could not be obtained', de: 'Token des Push-Anbieters nicht erhältlich' },
    cause: {
      en: 'The {kind} token endpoint {target} refused mailbridge\'s service-account assertion: {detail}',
      de: 'Der {kind}-Token-Endpunkt {target} lehnte die Dienstkonto-Anmeldung von mailbridge ab: {detail}',
    },
    fix: {
      en: 'Check the service account in notify.fcm: it must exist, have a current key, and hold the role "Firebase Cloud Messaging API Admin" (Google Cloud console > IAM & Admin > IAM).',
      de: 'Prüfen Sie das Dienstkonto in notify.fcm: Es muss existieren, einen gültigen Schlüssel haben und die Rolle „Firebase Cloud Messaging API Admin“ besitzen (Google Cloud Console > IAM & Verwaltung > IAM).',
    },
  },
  MB_NOTIFY_DELIVERY_EXPIRED: {
    http: 504,
    title: { en: 'Notification given up', de: 'Benachrichtigung aufgegeben' },
    cause: {
      en: 'Event {eventId} could not be delivered to subscription {subscriptionId} within {hours} hours ({attempts} attempts); last error: {last}',
      de: 'Ereignis {eventId} ließ sich innerhalb von {hours} Stunden ({attempts} Versuche) nicht an Abonnement {subscriptionId} zustellen; letzter Fehler: {last}',
    },
    fix: {
      en: 'Repair the receiver (see the last error), then let the app resynchronise. Raise notify.retry.giveUpAfterHours to keep events longer.',
      de: 'Reparieren Sie den Empfänger (siehe letzter Fehler) und lassen Sie die App neu synchronisieren. Mit notify.retry.giveUpAfterHours bleiben Ereignisse länger erhalten.',
    },
  },
  MB_NOTIFY_POOL_FULL: {
    http: 400,
    title: { en: 'Listener pool full', de: 'Listener-Pool voll' },
    cause: {
      en: 'The watch group {group} has {mailboxes} mailboxes, but its {listeners} listener(s) hold {capacity} together; {missing} mailbox(es) would not be watched, so the group was not started.',
      de: 'Die Überwachungsgruppe {group} hat {mailboxes} Postfächer, ihre {listeners} Listener fassen zusammen aber nur {capacity}; {missing} Postfach/Postfächer würden nicht überwacht, deshalb wurde die Gruppe nicht gestartet.',
    },
    fix: {
      en: 'Add a listener to notify.watch.groups.{group}.listeners (another connection or service account, capacity up to 1,250 each, as MaaS360 listener accounts), raise a listener\'s capacity, or move mailboxes to another group. Then run `mailbridge config check` and restart.',
      de: 'Fügen Sie notify.watch.groups.{group}.listeners einen Listener hinzu (eine weitere Verbindung oder ein Dienstkonto, je bis zu 1.250 Postfächer, wie MaaS360-Listener-Konten), erhöhen Sie die Kapazität eines Listeners oder verschieben Sie Postfächer in eine andere Gruppe. Danach `mailbridge config check` ausführen und neu starten.',
    },
  },
  MB_NOTIFY_WATCH_NO_CONNECTION: {
    http: 400,
    title: { en: 'Listener without a connection', de: 'Listener ohne Verbindung' },
    cause: {
      en: 'The listener {listener} of watch group {group} needs an access token (Graph, or IMAP with XOAUTH2), but it names an account instead of a connection.',
      de: 'Der Listener {listener} der Überwachungsgruppe {group} braucht ein Zugriffstoken (Graph oder IMAP mit XOAUTH2), nennt aber ein Konto statt einer Verbindung.',
    },
    fix: {
      en: 'Give the listener `connection: <name>` (a connection under connections:), or for IMAP set imap.auth to password login. Accounts with a password work for EWS on premises and IMAP only.',
      de: 'Geben Sie dem Listener `connection: <Name>` (eine Verbindung unter connections:) oder stellen Sie für IMAP imap.auth auf Passwort-Anmeldung. Konten mit Passwort gehen nur für EWS on-premises und IMAP.',
    },
  },
} satisfies CatalogueSection;
