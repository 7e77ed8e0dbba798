/**
 * The `notify:` section of mailbridge.yaml: how long and how often to retry, and the settings of
 * each sink. A sink without its section is off; subscriptions asking for it are refused with
 * MB_NOTIFY_SINK_NOT_CONFIGURED. Keys are secrets (secretField, stored enc:v1:…), and so are
 * the bearer keys of the subscriptions API (`api.keys.<name>`).
 */
import { z } from 'zod';
import { intField, numberField } from '../config/number-field.ts';
import { secretField } from '../config/secret-field.ts';
import { isAllowEntry } from '../net/allow-entry.ts';
import { watchSchema } from './watchers/config.ts';


export const retrySchema = z
  .object({
    initialSeconds: numberField({ min: 0.1, max: 3600, default: 5 }, 'Wait before the first retry'),
    factor: numberField({ min: 1, max: 10, default: 2 }, 'Each wait is this many times the one before'),
    maxSeconds: numberField({ min: 1, max: 86400, default: 3600 }, 'Longest wait between two attempts'),
    giveUpAfterHours: numberField({ min: 0.01, max: 720, default: 24 }, 'Stop retrying an event this long after it was published'),
    jitter: numberField({ min: 0, max: 1, default: 0.2 }, 'Spread waits randomly by up to this fraction, so receivers are not hit in waves'),
  })
  .strict();

/**
 * A sink's own way out: push services are often reached by another path than Microsoft 365.
 * Default: server.proxy, else HTTPS_PROXY; NO_PROXY (or noProxy here) applies either way.
 */
const sinkProxyFields = {
  proxy: z.url({ protocol: /^https?$/ }).optional().meta({ description: "HTTP proxy for this sink's connections (default server.proxy, else HTTPS_PROXY)" }),
  noProxy: z
    .string()
    .optional()
    .meta({ description: "Hosts this sink reaches directly, as in NO_PROXY (comma-separated, .domain for subdomains, * for all); default NO_PROXY" }),
};

export const webhookSinkSchema = z
  .object({
    ...sinkProxyFields,
    timeoutSeconds: numberField({ min: 1, max: 120, default: 10 }, 'A receiver that has not answered by then is retried later'),
    requireHttps: z.boolean().default(true).meta({ description: 'Refuse http:// webhook URLs (signatures protect integrity, not confidentiality)' }),
  })
  .strict();

export const webPushSinkSchema = z
  .object({
    ...sinkProxyFields,
    vapid: z
      .object({
        subject: z.string().regex(/^(mailto:|https:)/).meta({ description: 'Contact for push services: mailto:admin@contoso.com or https://…' }),
        publicKey: z.string().min(80).meta({ description: 'VAPID public key, uncompressed P-256 point in base64url (the applicationServerKey browsers use)' }),
        privateKey: secretField('VAPID private key, 32 bytes in base64url'),
      })
      .strict(),
    ttlSeconds: intField({ min: 0, max: 2419200, default: 86400 }, 'How long a push service keeps a message for an offline browser'),
    urgency: z.enum(['very-low', 'low', 'normal', 'high']).default('normal'),
    timeoutSeconds: numberField({ min: 1, max: 120, default: 10 }),
    requireHttps: z.boolean().default(true).meta({ description: 'Refuse http:// push endpoints (every real push service is HTTPS)' }),
  })
  .strict();

export const apnsSinkSchema = z
  .object({
    ...sinkProxyFields,
    teamId: z.string().regex(/^[A-Z0-9]{10}$/).meta({ description: 'Apple Developer team ID (10 characters)' }),
    keyId: z.string().regex(/^[A-Z0-9]{10}$/).meta({ description: 'ID of the APNs authentication key (.p8)' }),
    privateKey: secretField('The .p8 key (PEM, PKCS#8, P-256; several lines: `mailbridge secret set … --file AuthKey_….p8`)'),
    topic: z.string().min(1).meta({ description: 'The app bundle ID, e.g. com.contoso.mail' }),
    environment: z.enum(['production', 'sandbox']).default('production'),
    url: z.url().optional().meta({ description: 'Override the APNs origin (tests, proxies); default from environment' }),
    timeoutSeconds: numberField({ min: 1, max: 120, default: 10 }),
  })
  .strict();

export const fcmSinkSchema = z
  .object({
    ...sinkProxyFields,
    projectId: z.string().min(1).optional().meta({ description: 'Firebase project ID; default: project_id of the service account' }),
    serviceAccount: secretField('Service-account key JSON (client_email, private_key, token_uri; `mailbridge secret set … --file key.json`)'),
    url: z.url().default('https://fcm.googleapis.com').meta({ description: 'FCM origin (override for tests and proxies)' }),
    timeoutSeconds: numberField({ min: 1, max: 120, default: 10 }),
  })
  .strict();

export const notifyApiSchema = z
  .object({
    keys: z
      .record(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/), secretField('An API key (at least 16 random characters) that apps send as `Authorization: Bearer <key>`'))
      .default({})
      .meta({ description: 'Named API keys for /api/v1/subscriptions, e.g. keys.mdm; set each with `mailbridge secret set notify.api.keys.<name>`' }),
  })
  .strict();

export const egressSchema = z
  .object({
    allow: z
      .array(z.string().refine(isAllowEntry, { message: 'expected a CIDR such as 10.20.0.0/16 or a host name / erwartet ein CIDR wie 10.20.0.0/16 oder einen Hostnamen' }))
      .default([])
      .meta({
        description:
          "Internal receivers that webhook URLs and Web Push endpoints may reach: CIDRs (10.20.0.0/16, fd00:1::/64) or exact host names. Everything else internal is refused (loopback, private, link-local, multicast, unspecified, IPv4 inside IPv6), and so are the gateway's own listeners",
      }),
  })
  .strict();

export const notifySchema = z
  .object({
    api: notifyApiSchema.prefault({}).meta({ description: 'The subscriptions REST API: without a key every call is refused' }),
    retry: retrySchema.prefault({}).meta({ description: 'Retries of an event a sink could not deliver: the wait grows by factor from initialSeconds up to maxSeconds, until giveUpAfterHours' }),
    retentionHours: numberField({ min: 1, max: 8760, default: 168 }, 'Keep delivered events (and their ids, for deduplication) this long'),
    egress: egressSchema.prefault({}).meta({ description: 'Where subscribers may point webhooks and push endpoints: nothing internal unless listed here' }),
    webhook: webhookSinkSchema.optional().meta({ description: 'Webhook sink: signed HTTP POSTs (Standard Webhooks) to the URL a subscription names; without it, webhook subscriptions are refused' }),
    webpush: webPushSinkSchema.optional().meta({ description: 'Web Push sink: encrypted pushes (RFC 8030, VAPID) to browsers and installed web apps; without it, webpush subscriptions are refused' }),
    apns: apnsSinkSchema.optional().meta({ description: "APNs sink: pushes to iOS and macOS apps through Apple's provider API with a .p8 token key; without it, apns subscriptions are refused" }),
    fcm: fcmSinkSchema.optional().meta({ description: 'FCM sink: pushes to Android apps (and Firebase apps on iOS and the web) through the FCM HTTP v1 API with a service account; without it, fcm subscriptions are refused' }),
    watch: watchSchema.optional().meta({ description: 'Watched mailboxes: Graph change notifications, EWS streaming/push, IMAP IDLE' }),
  })
  .strict()
  .meta({ description: 'Notifications: new-mail events to the apps and devices that subscribe through /api/v1/subscriptions, by webhook, Web Push, APNs or FCM' });

export type NotifyConfig = z.infer<typeof notifySchema>;
export type RetryConfig = z.infer<typeof retrySchema>;
export type WebhookSinkConfig = z.infer<typeof webhookSinkSchema>;
export type WebPushSinkConfig = z.infer<typeof webPushSinkSchema>;
export type ApnsSinkConfig = z.infer<typeof apnsSinkSchema>;
export type FcmSinkConfig = z.infer<typeof fcmSinkSchema>;
export type NotifyApiConfig = z.infer<typeof notifyApiSchema>;
export type EgressConfig = z.infer<typeof egressSchema>;
