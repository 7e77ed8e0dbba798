/**
 * The `notify.watch` section: which mailboxes are watched, how (Graph change notifications, EWS
 * streaming/push, IMAP IDLE), by which listeners, and where Microsoft reaches mailbridge.
 *
 * ```yaml
 * notify:
 *   watch:
 *     publicUrl: https://mailbridge.contoso.com:8443   # what Graph and EWS push call back
 *     listen: { host: 0.0.0.0, port: 8443, certFile: tls/notify.pem, keyFile: tls/notify.key }
 *     groups:
 *       sales:
 *         kind: graph                                 # Exchange Online
 *         listeners: [{ connection: contoso }]          # 1,250 mailboxes each unless capacity says otherwise
 *         mailboxes: [anna@contoso.com, { address: info@contoso.com, folders: [inbox, "Inbox/Orders"] }]
 *       plant:
 *         kind: ews                                   # Exchange Server on premises
 *         listeners: [{ username: svc-notify@plant.contoso.com, password: enc:v1:… }]
 *         ews: { url: https://mail.plant.contoso.com/EWS/Exchange.asmx }
 *         mailboxes: [meister@plant.contoso.com]
 * ```
 *
 * Each kind's own options live beside its watcher (graph/config.ts, ews/config.ts, imap/config.ts).
 */
import { z } from 'zod';
import { intField } from '../../config/number-field.ts';
import { secretField } from '../../config/secret-field.ts';
import { DEFAULT_LISTEN, listenSchema, publicUrlField } from '../../m365/subscriptions/listen.ts';
import { ewsWatchSchema } from './ews/config.ts';
import { graphWatchSchema } from './graph/config.ts';
import { imapWatchSchema } from './imap/config.ts';
import { DEFAULT_CAPACITY } from './pools.ts';


const folder = z.string().min(1).meta({ description: 'Folder: a Graph/EWS well-known name (inbox) or a folder path such as "Inbox/Orders"' });

const mailboxEntry = z.union([
  z.string().min(3).meta({ description: 'Mailbox address (user or shared mailbox)' }),
  z.object({ address: z.string().min(3), folders: z.array(folder).min(1).optional() }).strict(),
]);

export const watchListenerSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.@-]{1,64}$/)
      .optional()
      .meta({ description: 'Name in status output (default: the connection or user name); subscriptions belong to it, so keep it stable' }),
    connection: z.string().optional().meta({ description: 'Entra ID connection whose tokens this listener uses (connections.<name>)' }),
    username: z.string().optional().meta({ description: 'On-premises service account (EWS Basic auth or IMAP login) instead of a connection' }),
    password: secretField('Password of that account').optional(),
    capacity: intField({ min: 1, max: 100_000, default: DEFAULT_CAPACITY }, 'Mailboxes this listener watches at most (MaaS360 listener accounts: 1,250)'),
  })
  .strict()
  .refine((l) => (l.connection !== undefined) !== (l.username !== undefined), { message: 'give either connection or username / entweder connection oder username angeben' })
  .refine((l) => l.username === undefined || l.password !== undefined, { message: 'username needs a password / username braucht password', path: ['password'] });

const groupBase = {
  listeners: z.array(watchListenerSchema).min(1).meta({ description: 'The listener pool: mailboxes are spread over these' }),
  mailboxes: z.array(mailboxEntry).min(1),
  folders: z.array(folder).min(1).default(['inbox']).meta({ description: 'Folders watched in each mailbox unless the mailbox names its own' }),
  privacy: z
    .enum(['full', 'minimal'])
    .default('full')
    .meta({ description: 'minimal: events never carry sender and subject (they are not even read)' }),
};

export const watchGroupSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('graph'), graph: graphWatchSchema.prefault({}), ...groupBase }).strict(),
  z.object({ kind: z.literal('ews'), ews: ewsWatchSchema.prefault({}), ...groupBase }).strict(),
  z.object({ kind: z.literal('imap'), imap: imapWatchSchema.prefault({}), ...groupBase }).strict(),
]);

export const watchSchema = z
  .object({
    publicUrl: publicUrlField(
      'How Graph (and EWS push) reach the listener below, e.g. through a reverse proxy; default server.publicUrl, else https://<listen.host>:<listen.port>',
    ).optional(),
    listen: listenSchema()
      .default(DEFAULT_LISTEN)
      .meta({ description: 'Inbound listener for Graph change notifications and EWS push callbacks (only opened when a group needs it)' }),
    groups: z.record(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/), watchGroupSchema).default({}),
  })
  .strict()
  .superRefine((w, ctx) => {
    const owner = new Map<string, string>();
    for (const [name, g] of Object.entries(w.groups)) {
      if (g.kind === 'graph') {
        g.listeners.forEach((l, i) => {
          if (!l.connection) ctx.addIssue({ code: 'custom', path: ['groups', name, 'listeners', i, 'connection'], message: 'Graph needs a connection (app registration), not an account / Graph braucht eine Verbindung (App-Registrierung), kein Konto' });
        });
      }
      for (const m of g.mailboxes) {
        const address = (typeof m === 'string' ? m : m.address).toLowerCase();
        const other = owner.get(address);
        if (other && other !== name) ctx.addIssue({ code: 'custom', path: ['groups', name, 'mailboxes'], message: `${address} is already watched by group ${other} / wird schon von Gruppe ${other} überwacht` });
        owner.set(address, name);
      }
    }
  });

export type WatchConfig = z.infer<typeof watchSchema>;
export type WatchGroupConfig = z.infer<typeof watchGroupSchema>;
export type WatchListenerConfig = z.infer<typeof watchListenerSchema>;
