/**
 * The `relay:` section of mailbridge.yaml. Relay user passwords are stored as scrypt hashes (made
 * by `mailbridge relay-user add|passwd`), which are not secrets; the listener's TLS key is a path.
 */
import { z } from 'zod';
import { settingsGroup } from '../config/settings-group.ts';
import { intField } from '../config/number-field.ts';
import { passwordHashField } from '../config/hash-field.ts';
import { pemFilePair } from '../config/pem-files.ts';
import { parseCidr } from './policy.ts';
import { parseSchedule } from './queue/schedule.ts';
import { routesSchema, senderPattern } from './routing.ts';

const cidr = z
  .string()
  .refine((s) => parseCidr(s) !== undefined, { message: 'not an IP address or CIDR block / keine IP-Adresse und kein CIDR-Block (10.0.0.0/24, fd00::/64)' })
  .meta({ description: 'IPv4 or IPv6 address or CIDR block, e.g. 192.168.10.0/24 or fd00::/64' });

/** Mails to an admin when the relay starts or stops or a credential nears expiry (sent by transports/admin-mail.ts). */
export const adminMailSchema = z
  .object({
    to: z.array(z.email()).min(1).meta({ description: 'Admin addresses that get the mails' }),
    from: z.email().meta({ description: 'Sender of the mails; routed by relay.routes like any sender (it must be allowed to send)' }),
    events: z
      .array(z.enum(['start', 'stop', 'credentials']))
      .min(1)
      .default(['start', 'stop', 'credentials'])
      .meta({ description: 'When to send one: start, stop, credentials (a client secret or certificate 30, 14, 7 and 1 days before it expires, and once expired); for bounce reports to an admin use relay.bounces.notify: admin or both' }),
    stopWaitSeconds: intField({ min: 0, max: 60, default: 10 }, 'How long a stopping relay waits for the stop mail to be sent'),
  })
  .strict()
  .meta({ description: 'Mails to an admin when the relay starts and stops, and when a credential nears its expiry' });

export type AdminMailConfig = z.infer<typeof adminMailSchema>;

export const listenerSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1').meta({ description: 'Address to listen on; 0.0.0.0 or :: for all' }),
    port: z.int().min(0).max(65535).meta({ description: 'TCP port (587 submission, 465 implicit TLS, 25); 0 picks a free port' }),
    tls: z
      .enum(['starttls', 'implicit', 'none'])
      .default('starttls')
      .meta({ description: 'starttls: plain connection with STARTTLS offered; implicit: TLS from the first byte (port 465); none: no TLS at all' }),
    allowPlainAuth: z
      .boolean()
      .default(false)
      .meta({ description: 'Accept AUTH without TLS (old devices that cannot do TLS; the password crosses the network readable)' }),
  })
  .strict();

export const relayUserSchema = z
  .object({
    passwordHash: passwordHashField('mailbridge relay-user passwd <name>', 'scrypt hash of the password ($scrypt$…), printed by `mailbridge relay-user add|passwd`'),
    allowedSenders: z.array(senderPattern).min(1).meta({ description: 'Sender addresses (MAIL FROM) this user may use: name@domain or @domain' }),
    allowedIps: z.array(cidr).optional().meta({ description: 'If set, this user may log in only from these addresses' }),
    disabled: z.boolean().default(false).meta({ description: 'Refuse logins of this user without deleting it' }),
  })
  .strict();

export const relayNetworkSchema = z
  .object({
    cidrs: z.array(cidr).min(1).meta({ description: 'Client addresses that may relay without logging in' }),
    allowedSenders: z.array(senderPattern).min(1).meta({ description: 'Sender addresses (MAIL FROM) these clients may use: name@domain or @domain' }),
  })
  .strict();

const name = z.string().regex(/^[A-Za-z0-9._-]+$/);

export const relaySchema = z
  .object({
    hostname: z.string().min(1).optional().meta({ description: 'Name in the SMTP greeting and in bounce reports (default: the machine name)' }),
    dataDir: z
      .string()
      .min(1)
      .default('data/relay')
      .meta({ description: 'Folder for the spool (message files) and the generated TLS certificate' }),
    listeners: z
      .array(listenerSchema)
      .min(1)
      .default([{ host: '127.0.0.1', port: 2525, tls: 'starttls', allowPlainAuth: false }])
      .meta({ description: 'SMTP ports the applications connect to' }),
    tls: pemFilePair(
      { cert: 'certPath', key: 'keyPath' },
      { cert: 'PEM certificate (chain) for the listeners', key: 'PEM private key of that certificate (a path; the key never goes into this file)' },
    )
      .optional()
      .meta({ description: 'Listener certificate; without it mailbridge generates a self-signed one at first start and keeps it in dataDir/tls' }),
    maxMessageSize: intField({ min: 1024, max: 157_286_400, default: 36_700_160 }, 'Largest message accepted, in bytes (advertised as SIZE; default 35 MiB, Exchange Online allows at most 150 MB)'),
    maxRecipients: intField({ min: 1, max: 1000, default: 500 }, 'Recipients per message (Exchange Online: 500)'),
    maxClients: intField({ min: 1, max: 10_000, default: 200 }, 'Concurrent client connections per listener'),
    users: z.record(name, relayUserSchema).default({}).meta({ description: 'Relay users applications log in as (SMTP AUTH PLAIN/LOGIN)' }),
    networks: z.record(name, relayNetworkSchema).default({}).meta({ description: 'Networks whose clients may relay without logging in' }),
    routes: routesSchema,
    adminMail: adminMailSchema.optional(),
    authBackoff: settingsGroup({
      maxFailures: intField({ min: 1, max: 1000, default: 5 }, 'Failed logins from one address before its logins are refused'),
      windowSeconds: z.int().min(1).default(900).meta({ description: 'Failures older than this are forgotten' }),
      lockSeconds: z.int().min(1).default(900).meta({ description: 'How long logins from that address are refused (454 4.7.0)' }),
      baseDelayMs: intField({ min: 0, max: 60_000, default: 500 }, 'Delay of the reply to a failed login; doubles with each failure'),
      maxDelayMs: intField({ min: 0, max: 120_000, default: 8_000 }, 'Longest such delay'),
    })
      .meta({ description: 'Slowing down password guessing, per client address' }),
    queue: settingsGroup({
      retrySchedule: z
        .string()
        .refine(validSchedule, { message: 'not a retry schedule / kein Wiederholungsplan ("1m, 5m*2, 1h*3")' })
        .default('1m, 5m*2, 15m*2, 1h*6, 4h*4')
        .meta({ description: 'Waits between attempts after temporary failures (Haraka notation); when used up, the message bounces' }),
      concurrencyPerMailbox: intField({ min: 1, max: 16, default: 3 }, 'Deliveries at once per sending mailbox (Exchange Online allows 3 SMTP connections per mailbox)'),
      ratePerMinute: intField({ min: 1, max: 100_000, default: 30 }, 'Deliveries started per minute per sending mailbox (Exchange Online: 30 messages per minute)'),
      recipientsPerDay: intField({ min: 1, max: 1_000_000, default: 10_000 }, 'Recipients per sending mailbox in any 24 hours (Exchange Online: 10,000); more wait in the queue instead of getting the mailbox blocked'),
      maxConcurrency: intField({ min: 1, max: 1000, default: 20 }, 'Deliveries at once over all mailboxes'),
      concurrencyWhileReceiving: intField({ min: 1, max: 1000, default: 1 }, 'Deliveries at once while applications send a burst (10 messages or more within a quarter of a second: taking mail in goes first); maxConcurrency again once fewer arrive'),
      sendTimeoutSeconds: intField({ min: 1, max: 3600, default: 300 }, 'A delivery attempt that takes longer counts as a temporary failure'),
      pollSeconds: intField({ min: 1, max: 3600, default: 10 }, 'How often the queue looks for changes made by `mailbridge queue` in another process'),
      keepDays: intField({ min: 0, max: 3650, default: 7 }, 'Days that sent and bounced entries stay listed'),
      leaseSeconds: intField({ min: 2, max: 3600, default: 30 }, 'Several nodes (store.driver: postgres): how long a delivery claim holds without renewal; a node that dies leaves its deliveries to the others after this'),
    })
      .meta({ description: 'Delivery: retries and Microsoft 365 per-mailbox limits' }),
    bounces: settingsGroup({
      notify: z
        .enum(['sender', 'admin', 'both', 'none'])
        .default('sender')
        .meta({ description: 'Who gets the bounce report (RFC 3464) of a message that cannot be delivered' }),
      adminAddress: z.email().optional().meta({ description: 'Admin address for bounce reports (notify: admin or both)' }),
      from: z
        .email()
        .optional()
        .meta({ description: 'Mailbox that sends bounce reports (From, and the sending mailbox); default: the mailbox of the failed message' }),
    })
      .meta({ description: 'Bounce reports for messages that cannot be delivered' }),
  })
  .strict()
  .superRefine((relay, ctx) => {
    if ((relay.bounces.notify === 'admin' || relay.bounces.notify === 'both') && !relay.bounces.adminAddress) {
      ctx.addIssue({ code: 'custom', path: ['bounces', 'adminAddress'], message: `bounces.notify: ${relay.bounces.notify} → adminAddress needed / adminAddress erforderlich` });
    }
    const seen = new Set<string>();
    relay.listeners.forEach((l, i) => {
      const key = `${l.host}:${l.port}`;
      if (l.port !== 0 && seen.has(key)) ctx.addIssue({ code: 'custom', path: ['listeners', i, 'port'], message: `${key} is listed twice / ist doppelt eingetragen` });
      seen.add(key);
    });
  })
  .meta({ description: 'SMTP relay: applications send over plain SMTP, mailbridge delivers to Microsoft 365' });

export type RelayConfig = z.infer<typeof relaySchema>;
export type ListenerConfig = z.infer<typeof listenerSchema>;
export type RelayUserConfig = z.infer<typeof relayUserSchema>;
export type RelayNetworkConfig = z.infer<typeof relayNetworkSchema>;

function validSchedule(text: string): boolean {
  try {
    parseSchedule(text);
    return true;
  } catch {
    return false;
  }
}
