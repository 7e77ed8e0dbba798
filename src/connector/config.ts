/**
 * The `connectors` section of mailbridge.yaml: per connector, where mail comes from (IMAP or Graph,
 * with the connection whose tokens it uses), which mailboxes and folders, where it goes, and what
 * happens to a message in the mailbox once the destination acknowledged it.
 *
 * ```yaml
 * connectors:
 *   scans:
 *     connection: contoso
 *     mailboxes: [scanner@contoso.com, { address: invoices@contoso.com, folders: [INBOX, Inbox/Scans] }]
 *     destination: { kind: lmtp, host: 127.0.0.1, port: 24, recipients: { domain: intern.example } }
 *     after: { action: move, folder: Archive }
 *   invoices:                                   # Graph, woken by change notifications
 *     connection: contoso
 *     source: { kind: graph, notifications: { publicUrl: https://mb.contoso.com:8444, listen: { port: 8444 } } }
 *     mailboxes: [invoices@contoso.com]
 *     destination: { kind: maildir, path: /srv/invoices }
 * ```
 */
import { z } from 'zod';
import { settingsGroup } from '../config/settings-group.ts';
import { intField, numberField } from '../config/number-field.ts';
import { secretField } from '../config/secret-field.ts';
import { graphUrlField } from '../m365/graph-url.ts';
import { DEFAULT_LISTEN, listenSchema, publicUrlField } from '../m365/subscriptions/listen.ts';
import { imapServerFields } from '../m365/imap-fields.ts';

const folderName = z.string().min(1).meta({ description: 'Folder as Exchange names it: INBOX, or "Inbox/Scans" for a subfolder' });

const mailboxEntry = z.union([
  z.string().min(3).meta({ description: 'Mailbox address (user or shared mailbox); it is the IMAP/SASL user' }),
  z
    .object({
      address: z.string().min(3).meta({ description: 'Mailbox address (user or shared mailbox)' }),
      folders: z.array(folderName).min(1).optional().meta({ description: 'Folders of this mailbox (default: the connector\'s folders)' }),
    })
    .strict(),
]);

const imapSourceSchema = z
  .object({
    kind: z.literal('imap'),
    ...imapServerFields,
    idle: z.boolean().default(true).meta({ description: 'Use IMAP IDLE to pick up new mail at once (the poll interval stays as a fallback)' }),
    idleRestartSeconds: intField({ min: 60, max: 1740, default: 600 }, 'Restart IDLE this often (Exchange ends IDLE after 29 minutes)'),
  })
  .strict();

/** Longest lifetime of a subscription on Outlook messages (facts §4.1). */
const MAX_SUBSCRIPTION_MINUTES = 4230;

/**
 * Change notifications for the Graph source: where Graph calls back (the same two settings as
 * notify.watch: publicUrl and listen). Without this section the source polls every pollSeconds.
 */
const graphNotificationsSchema = z
  .object({
    publicUrl: publicUrlField(
      'How Microsoft Graph reaches the listener below over HTTPS (e.g. through a reverse proxy); setting it turns change notifications on: new mail is fetched at once, pollSeconds stays as the safety net',
    ),
    listen: listenSchema()
      .default(DEFAULT_LISTEN)
      .meta({ description: 'Inbound listener of this connector for Graph change notifications; give each connector that runs at the same time, and notify.watch.listen, a port of its own' }),
    path: z
      .string()
      .regex(/^\/[A-Za-z0-9/_-]*[A-Za-z0-9_-]$/)
      .default('/notify/connector')
      .meta({ description: 'Path on the listener; the connector name is appended (notificationUrl = publicUrl + path + /<connector>)' }),
    expirationMinutes: intField({ min: 45, max: MAX_SUBSCRIPTION_MINUTES, default: MAX_SUBSCRIPTION_MINUTES }, 'Lifetime asked for each subscription (Graph: at most 4,230 minutes for messages)'),
    renewBeforeMinutes: intField({ min: 5, max: 1440, default: 60 }, 'Renew a subscription this long before it expires'),
  })
  .strict();

const graphSourceSchema = z
  .object({
    kind: z.literal('graph'),
    baseUrl: graphUrlField('Graph for the mailbox source.'),
    pageSize: intField({ min: 1, max: 1000, default: 50 }, 'Messages per delta page (Prefer: odata.maxpagesize)'),
    caFile: z.string().optional().meta({ description: 'Extra CA certificates (PEM) to trust' }),
    notifications: graphNotificationsSchema
      .optional()
      .meta({ description: 'Graph change notifications: new mail wakes the connector at once instead of at the next poll (needs an https URL Graph can reach)' }),
  })
  .strict();

const recipients = z
  .object({
    to: z.array(z.string().min(3)).min(1).optional().meta({ description: 'Fixed envelope recipients for every message' }),
    map: z
      .record(z.string(), z.array(z.string().min(3)).min(1))
      .optional()
      .meta({ description: 'Envelope recipients per source mailbox, e.g. { "scanner@contoso.com": ["scans@intern.example"] }' }),
    domain: z.string().min(1).optional().meta({ description: 'Deliver to <local part of the source mailbox>@<domain>' }),
  })
  .strict()
  .default({})
  .meta({ description: 'Envelope recipients: map, else to, else domain, else the source mailbox address' });

const smtpLike = {
  host: z.string().min(1).default('127.0.0.1'),
  tls: z.enum(['auto', 'implicit', 'starttls', 'none']).default('auto').meta({ description: 'auto: STARTTLS if offered' }),
  caFile: z.string().optional(),
  auth: z.object({ user: z.string().min(1), pass: secretField('Password at the local server') }).strict().optional().meta({ description: 'Login at the local server, if it wants one' }),
  recipients,
  from: z
    .string()
    .default('return-path')
    .meta({ description: 'Envelope sender: return-path (from the message, else its From), empty (<>), or an address' }),
  name: z.string().optional().meta({ description: 'Name given in EHLO/LHLO (default: this host name)' }),
  timeoutSeconds: intField({ min: 1, max: 3600, default: 60 }),
  deliveryIdHeader: z
    .boolean()
    .default(false)
    .meta({
      description:
        'Add X-Mailbridge-Delivery-Id (stable per message) for receivers that deduplicate by it, e.g. Dovecot with share/sieve/mailbridge-dedupe.sieve; messages for the same recipients then go one at a time, and the message is no longer byte for byte',
    }),
};

const destinationSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('lmtp'), port: intField({ min: 1, max: 65535, default: 24 }), ...smtpLike }).strict(),
  z.object({ kind: z.literal('smtp'), port: intField({ min: 1, max: 65535, default: 25 }), ...smtpLike }).strict(),
  z
    .object({
      kind: z.literal('maildir'),
      path: z.string().min(1).meta({ description: 'Maildir directory (with tmp/, new/, cur/)' }),
      create: z.boolean().default(true).meta({ description: 'Create the maildir if it is missing' }),
    })
    .strict(),
  z
    .object({
      kind: z.literal('http'),
      url: z.url().meta({ description: 'Receiver of one POST per message (JSON)' }),
      secret: secretField('HMAC-SHA256 key for the X-Mailbridge-Signature header'),
      timeoutSeconds: intField({ min: 1, max: 3600, default: 30 }),
      headers: z.record(z.string(), z.string()).optional().meta({ description: 'Extra request headers' }),
      includeRaw: z.boolean().default(true).meta({ description: 'Include the raw message (base64) in the JSON' }),
    })
    .strict(),
  z
    .object({
      kind: z.literal('command'),
      command: z.array(z.string().min(1)).min(1).meta({ description: 'Program and arguments (no shell); gets the message on stdin. Exit 0 = delivered, 75 = retry later, other = refused' }),
      timeoutSeconds: intField({ min: 1, max: 3600, default: 300 }),
      env: z.record(z.string(), z.string()).optional().meta({ description: 'Extra environment variables' }),
    })
    .strict(),
]);

const afterSchema = z
  .discriminatedUnion('action', [
    z.object({ action: z.literal('seen') }).strict(),
    z.object({ action: z.literal('move'), folder: folderName }).strict(),
    z.object({ action: z.literal('delete') }).strict(),
    z.object({ action: z.literal('none') }).strict(),
  ])
  .default({ action: 'seen' })
  .meta({ description: 'After the destination acknowledged a message: seen (keep, mark read), move to a folder, delete (expunge), none' });

export const connectorSchema = z
  .object({
    connection: z.string().min(1).meta({ description: 'Name of the connection (connections.<name>) whose tokens open the mailboxes' }),
    source: z
      .discriminatedUnion('kind', [imapSourceSchema, graphSourceSchema])
      .prefault({ kind: 'imap' }),
    mailboxes: z
      .array(mailboxEntry)
      .min(1)
      .meta({ description: 'Mailboxes to fetch from (user or shared): an address, or { address, folders }' }),
    folders: z.array(folderName).min(1).default(['INBOX']).meta({ description: 'Folders of every mailbox that names none itself' }),
    destination: destinationSchema,
    after: afterSchema,
    pollSeconds: intField({ min: 5, max: 3600, default: 60 }, 'Look for new mail at least this often (also when IDLE or Graph change notifications are on)'),
    maxMessageBytes: intField({ min: 1, max: 157_286_400, default: 157_286_400 }, 'Larger messages stay in the mailbox and are reported (Exchange Online allows 150 MB)'),
    concurrency: settingsGroup({
      window: intField({ min: 1, max: 32, default: 4 }, 'Messages handed to the destination at once, per mailbox folder'),
      mailboxes: intField({ min: 1, max: 10_000, default: 32 }, 'Mailboxes fetched at once per connection (idle mailboxes do not count)'),
      logins: intField({ min: 1, max: 100, default: 4 }, 'Logins in progress at once per connection'),
      sessionsPerMailbox: intField({ min: 1, max: 20, default: 4 }, 'IMAP sessions per mailbox across all connectors of this instance (Exchange allows about 20)'),
    }),
    retry: settingsGroup({
      initialSeconds: numberField({ min: 0.01, max: 3600, default: 1 }),
      maxSeconds: numberField({ min: 0.01, max: 86_400, default: 300 }),
    })
      .meta({ description: 'Pauses between attempts when a destination or mailbox is unavailable (doubling)' }),
    keepDays: intField({ min: 1, max: 3650, default: 30 }, 'How long records of moved or deleted messages are kept'),
  })
  .strict();

export const connectorsSchema = z
  .record(z.string().regex(/^[A-Za-z0-9_-]+$/), connectorSchema)
  .meta({ description: 'Mailbox connectors: fetch mail from Microsoft 365 mailboxes into local systems (exactly once into a maildir, at least once with a delivery ID elsewhere)' });

export type ConnectorConfig = z.infer<typeof connectorSchema>;
export type ConnectorInput = z.input<typeof connectorSchema>;
export type DestinationConfig = z.infer<typeof destinationSchema>;
export type GraphNotificationsConfig = z.infer<typeof graphNotificationsSchema>;

/** Each mailbox with its folders. */
export function mailboxesOf(c: ConnectorConfig): Array<{ address: string; folders: string[] }> {
  return c.mailboxes.map((m) => (typeof m === 'string' ? { address: m, folders: c.folders } : { address: m.address, folders: m.folders ?? c.folders }));
}
