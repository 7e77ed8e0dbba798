/**
 * What the gateway watches over, read-only: connections (token state, roles, credential expiry),
 * connectors (checkpoints per mailbox and folder, last activity, quarantined messages), watchers
 * (per group, listener and mailbox, with problems) and the new-mail events. Each reads what the
 * capability already keeps (Identity, Metrics.lastToken, the checkpoint repository, the watch
 * service's status), the same sources `mailbridge token`, `fetch --status` and `watch` print.
 */
import { z } from 'zod';
import { RetryRequests } from '../../connector/retry-requests.ts';
import { MbError } from '../../errors/index.ts';
import type { Lang } from '../../i18n/index.ts';
import { STATUS_KEY, STATUS_NAMESPACE, type WatchStatus } from '../../notify/watchers/status.ts';
import { subscriptionsNotWatched } from '../../notify/check.ts';
import { parseEvent } from '../../notify/events.ts';
import { need, type ApiContext } from '../context.ts';
import { route, routeGroup, type RouteSpec } from '../route.ts';

const iso = z.iso.datetime();
const explained = z.object({ code: z.string(), title: z.string(), cause: z.string(), fix: z.string() });

function explainErr(e: MbError, lang: Lang): z.infer<typeof explained> {
  const x = e.explain(lang);
  return { code: x.code, title: x.title, cause: x.cause, fix: x.fix };
}

function known(kind: string, name: string, names: string[]): MbError {
  return new MbError('MB_API_UNKNOWN_NAME', { kind, name, known: names.join(', ') || '–' });
}

const nameParams = z.object({ name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected a name of letters, digits, . _ -') });

const connectionSchema = z.object({
  name: z.string(),
  flow: z.enum(['client-credentials', 'auth-code', 'device-code']),
  cloud: z.string(),
  tenantId: z.string(),
  clientId: z.string(),
  credential: z.object({ kind: z.enum(['secret', 'certificate', 'none']), expires: iso.optional() }),
  lastToken: z
    .object({ ok: z.boolean(), at: iso, error: explained.optional() })
    .optional()
    .meta({ description: 'The last token request of this gateway (absent: none yet)' }),
  notices: z.array(explained.extend({ severity: z.enum(['warning', 'error']) })).meta({ description: 'Expiring or expired credentials, unreadable keys' }),
});

const tokenSchema = z.object({
  connection: z.string(),
  resource: z.enum(['exchange', 'graph']),
  flow: z.string(),
  tenantId: z.string(),
  clientId: z.string(),
  appName: z.string().optional(),
  account: z.string().optional(),
  audience: z.string().optional(),
  roles: z.array(z.string()).optional().meta({ description: 'App-only: the application permissions granted' }),
  scopes: z.array(z.string()).optional().meta({ description: 'Delegated: the permissions granted' }),
  expiresOn: iso,
  fromCache: z.boolean(),
  warnings: z.array(explained),
  problems: z.array(explained).meta({ description: 'What makes the token useless already: no roles, wrong audience, missing scopes' }),
});

const folderSchema = z.object({
  mailbox: z.string(),
  folder: z.string(),
  epoch: z.string().meta({ description: 'IMAP UIDVALIDITY, or graph' }),
  position: z.int(),
  delivered: z.int(),
  rejected: z.int().meta({ description: 'Quarantined: refused for good by the destination, still in the mailbox' }),
  inFlight: z.int(),
  updatedAt: iso,
});

const connectorSchema = z.object({
  name: z.string(),
  connection: z.string(),
  source: z.enum(['imap', 'graph']),
  destination: z.string(),
  mailboxes: z.int(),
  lastActivity: iso.optional().meta({ description: 'When a checkpoint of this connector last moved' }),
  folders: z.array(folderSchema),
});

const quarantinedSchema = z.object({
  mailbox: z.string(),
  folder: z.string(),
  item: z.string().meta({ description: 'IMAP UID or Graph message id' }),
  key: z.string().meta({ description: 'Message-ID, or a hash of the content' }),
  size: z.int(),
  at: iso,
  error: explained.optional(),
});

const mailboxStatusSchema = z.object({
  group: z.string(),
  mailbox: z.string(),
  listener: z.string(),
  state: z.string(),
  since: iso,
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});

const watchersSchema = z.object({
  running: z.boolean().meta({ description: 'false: no watcher status from a running gateway' }),
  updatedAt: iso.optional(),
  publicUrl: z.string().optional(),
  groups: z.array(
    z.object({
      group: z.string(),
      kind: z.string(),
      listeners: z.array(z.object({ name: z.string(), capacity: z.int().meta({ description: 'Mailboxes this listener may hold' }), mailboxes: z.int(), states: z.record(z.string(), z.int()) })),
      mailboxes: z.int(),
      states: z.record(z.string(), z.int()),
    }),
  ),
  attention: z.array(mailboxStatusSchema).meta({ description: 'Mailboxes not watching (at most 200)' }),
  problems: z.array(z.object({ at: iso, group: z.string(), listener: z.string(), mailbox: z.string().optional(), code: z.string(), message: z.string() })),
  unwatchedSubscriptions: z
    .array(z.object({ id: z.string(), mailboxes: z.array(z.string()), error: explained }))
    .meta({ description: 'Active subscriptions with mailboxes no watch group watches: they never get an event (MB_NOTIFY_MAILBOX_NOT_WATCHED)' }),
});

const eventSchema = z.object({
  cursor: z.int().meta({ description: 'Publication order; pass it as after= to read on' }),
  id: z.string(),
  seq: z.int(),
  type: z.string(),
  mailbox: z.string(),
  observedAt: z.string(),
  event: z.record(z.string(), z.unknown()).meta({ description: 'The event as sinks receive it' }),
});

// What the gateway watches over is open to every key that may read.
const connectionsRoute = routeGroup({ tag: 'connections', scope: 'read' });
const connectorsRoute = routeGroup({ tag: 'connectors', scope: 'read' });
const watchersRoute = routeGroup({ tag: 'watchers', scope: 'read' });

export function statusRoutes(ctx: ApiContext): RouteSpec[] {
  const connectionNames = () => Object.keys(ctx.config.connections);
  const connector = (name: string) => {
    const c = ctx.config.connectors?.[name];
    if (!c) throw known('connector', name, Object.keys(ctx.config.connectors ?? {}));
    return c;
  };
  return [
    connectionsRoute.get('/api/v1/connections', {
      summary: { en: 'Connections: token state, credential expiry and notices', de: 'Verbindungen: Token-Zustand, Ablauf der Anmeldedaten und Hinweise' },
      status: 200,
      response: z.object({ connections: z.array(connectionSchema) }),
      async handler({ lang }) {
        const out: Array<z.infer<typeof connectionSchema>> = [];
        const notices = ctx.identity ? await ctx.identity.warnings().catch(() => []) : [];
        for (const name of connectionNames()) {
          const c = ctx.config.connections[name]!;
          const expiry = ctx.identity ? await ctx.identity.credentialExpiry(name).catch(() => undefined) : undefined;
          const last = ctx.metrics?.lastToken.get(name);
          out.push({
            name,
            flow: c.flow,
            cloud: c.cloud,
            tenantId: c.tenantId,
            clientId: c.clientId,
            credential: {
              kind: c.certificate ? 'certificate' : c.clientSecret ? 'secret' : 'none',
              ...(expiry ? { expires: expiry.expires.toISOString() } : c.clientSecretExpires ? { expires: new Date(c.clientSecretExpires).toISOString() } : {}),
            },
            ...(last ? { lastToken: { ok: last.ok, at: new Date(last.at).toISOString(), ...(last.error ? { error: explainErr(last.error, lang) } : {}) } } : {}),
            notices: notices.filter((n) => n.connection === name).map((n) => ({ ...explainErr(n.error, lang), severity: n.severity })),
          });
        }
        return { connections: out };
      },
    }),
    connectionsRoute.get('/api/v1/connections/{name}/token', {
      summary: {
        en: 'Check a connection: get its token (from the cache when valid) and show roles or scopes, expiry and problems',
        de: 'Eine Verbindung prüfen: ihr Token holen (aus dem Cache, solange gültig) und Rollen oder Berechtigungen, Ablauf und Probleme zeigen',
      },
      params: nameParams,
      query: z.object({ resource: z.enum(['exchange', 'graph']).default('exchange').meta({ description: 'Exchange Online (SMTP, IMAP, EWS) or Microsoft Graph' }) }),
      status: 200,
      response: tokenSchema,
      errors: [404, 502],
      async handler({ params, query, lang, req }) {
        if (!ctx.config.connections[params.name]) throw known('connection', params.name, connectionNames());
        const identity = need(ctx.identity, 'relay or notify.watch', req.url);
        const d = await identity.describe(params.name, { resource: query.resource, lang });
        return {
          connection: d.connection,
          resource: query.resource,
          flow: d.flow,
          tenantId: d.tenantId,
          clientId: d.clientId,
          ...(d.appName ? { appName: d.appName } : {}),
          ...(d.account ? { account: d.account } : {}),
          ...(d.audience ? { audience: d.audience } : {}),
          ...(d.roles ? { roles: d.roles } : {}),
          ...(d.scopes ? { scopes: d.scopes } : {}),
          expiresOn: d.expiresOn,
          fromCache: d.fromCache,
          warnings: d.warnings.map((w) => explainErr(w, lang)),
          problems: d.problems.map((p) => explainErr(p, lang)),
        };
      },
    }),
    connectorsRoute.get('/api/v1/connectors', {
      summary: { en: 'Connectors: checkpoints per mailbox and folder, counts, last activity', de: 'Connectoren: Prüfpunkte je Postfach und Ordner, Zähler, letzte Aktivität' },
      status: 200,
      response: z.object({ connectors: z.array(connectorSchema) }),
      async handler() {
        const out: Array<z.infer<typeof connectorSchema>> = [];
        for (const [name, c] of Object.entries(ctx.config.connectors ?? {})) {
          const rows = await ctx.store.checkpoints.list(name);
          const folders = rows.map((r) => ({
            mailbox: r.mailbox,
            folder: r.folder,
            epoch: r.epoch,
            position: r.position,
            delivered: r.delivered,
            rejected: r.rejected,
            inFlight: r.inFlight,
            updatedAt: new Date(r.updatedAt).toISOString(),
          }));
          const last = folders.map((f) => f.updatedAt).sort().at(-1);
          out.push({
            name,
            connection: c.connection,
            source: c.source.kind,
            destination: c.destination.kind,
            mailboxes: c.mailboxes.length,
            ...(last ? { lastActivity: last } : {}),
            folders,
          });
        }
        return { connectors: out };
      },
    }),
    connectorsRoute.get('/api/v1/connectors/{name}/quarantine', {
      summary: {
        en: 'Messages the destination refused for good (they stay in the mailbox until retried)',
        de: 'Vom Ziel endgültig abgewiesene Nachrichten (sie bleiben bis zum erneuten Versuch im Postfach)',
      },
      params: nameParams,
      status: 200,
      response: z.object({ messages: z.array(quarantinedSchema) }),
      errors: [404],
      async handler({ params, lang }) {
        connector(params.name);
        const out: Array<z.infer<typeof quarantinedSchema>> = [];
        for (const s of await ctx.store.checkpoints.list(params.name)) {
          if (s.rejected === 0) continue;
          const scope = { connector: params.name, mailbox: s.mailbox, folder: s.folder };
          for (const r of await ctx.store.checkpoints.byState(scope, s.epoch, 'rejected')) {
            out.push({
              mailbox: s.mailbox,
              folder: s.folder,
              item: r.item,
              key: r.key,
              size: r.size,
              at: new Date(r.at).toISOString(),
              ...(r.code ? { error: explainErr(new MbError(r.code as 'MB_INTERNAL', {}), lang) } : {}),
            });
          }
        }
        return { messages: out };
      },
    }),
    connectorsRoute.post('/api/v1/connectors/{name}/retry-rejected', {
      scope: 'operate',
      summary: {
        en: 'Deliver the quarantined messages again: every folder of the connector retries them at its next pass (mailbridge fetch, running or next started)',
        de: 'Die zurückgehaltenen Nachrichten erneut zustellen: jeder Ordner des Connectors versucht sie bei seinem nächsten Durchlauf (mailbridge fetch, laufend oder beim nächsten Start)',
      },
      params: nameParams,
      status: 202,
      response: z.object({ connector: z.string(), requestedAt: iso, quarantined: z.int().meta({ description: 'Messages refused for good now, which the request covers' }) }),
      errors: [404],
      target: ({ params }) => params.name,
      async handler({ params }) {
        connector(params.name);
        const requestedAt = await new RetryRequests(ctx.store.kv).request(params.name, new Date((ctx.now ?? Date.now)()));
        const quarantined = (await ctx.store.checkpoints.list(params.name)).reduce((n, r) => n + r.rejected, 0);
        return { connector: params.name, requestedAt, quarantined };
      },
    }),
    watchersRoute.get('/api/v1/watchers', {
      summary: { en: 'Watchers per group and listener, mailboxes not watching, recent problems', de: 'Watcher je Gruppe und Listener, nicht überwachte Postfächer, letzte Probleme' },
      status: 200,
      response: watchersSchema,
      async handler({ lang }) {
        // Subscriptions that can never get an event, as `mailbridge watch` lists them.
        const unwatchedSubscriptions = (await subscriptionsNotWatched(ctx.store.notify, ctx.config.notify?.watch)).map((x) => ({
          ...x,
          error: explainErr(new MbError('MB_NOTIFY_MAILBOX_NOT_WATCHED', { mailboxes: x.mailboxes.slice(0, 10).join(', '), count: x.mailboxes.length }), lang),
        }));
        // The running service when this gateway watches; else what a gateway wrote to the store.
        let status: WatchStatus | undefined = ctx.watch?.status();
        if (!status) {
          const raw = await ctx.store.kv.get(STATUS_NAMESPACE, STATUS_KEY);
          status = raw ? (JSON.parse(raw) as WatchStatus) : undefined;
        }
        if (!status || status.stopped) return { running: false, groups: [], attention: [], problems: [], unwatchedSubscriptions };
        return {
          running: true,
          updatedAt: status.updatedAt,
          ...(status.publicUrl ? { publicUrl: status.publicUrl } : {}),
          groups: status.groups.map((g) => ({
            group: g.group,
            kind: g.kind,
            listeners: Object.entries(g.byListener ?? {}).map(([name, l]) => ({ name, capacity: l.capacity, mailboxes: Object.values(l.states).reduce((a, b) => a + b, 0), states: l.states })),
            mailboxes: g.mailboxes,
            states: g.states,
          })),
          attention: status.attention,
          problems: status.problems,
          unwatchedSubscriptions,
        };
      },
    }),
    watchersRoute.get('/api/v1/watchers/{name}/mailboxes', {
      summary: { en: 'Every mailbox of a watch group: listener, state since when, last problem', de: 'Jedes Postfach einer Überwachungsgruppe: Listener, Zustand seit wann, letztes Problem' },
      params: nameParams,
      status: 200,
      response: z.object({ mailboxes: z.array(mailboxStatusSchema) }),
      errors: [404],
      async handler({ params, req }) {
        const groups = Object.keys(ctx.config.notify?.watch?.groups ?? {});
        if (!groups.includes(params.name)) throw known('watch group', params.name, groups);
        return { mailboxes: need(ctx.watch, 'notify.watch', req.url).mailboxes(params.name) };
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/events',
      scope: 'read',
      tag: 'events',
      summary: { en: 'New-mail events in publication order', de: 'Neue-Mail-Ereignisse in der Reihenfolge ihrer Veröffentlichung' },
      query: z.object({
        mailbox: z.email().optional().meta({ description: 'Only events of this mailbox' }),
        after: z.coerce.number().int().min(0).optional().meta({ description: 'Only events after this cursor (read on from the last answer)' }),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
      }),
      status: 200,
      response: z.object({ events: z.array(eventSchema) }),
      async handler({ query }) {
        const mailbox = query.mailbox !== undefined ? { mailbox: query.mailbox.toLowerCase() } : {};
        const rows =
          query.after !== undefined
            ? await ctx.store.notify.listEvents({ after: query.after, limit: query.limit, ...mailbox })
            : await ctx.store.notify.listEvents({ last: query.limit, ...mailbox });
        return {
          events: rows.map((r) => {
            const e = { ...parseEvent(r.body), seq: r.seq };
            return { cursor: r.cursor, id: e.id, seq: r.seq, type: e.type, mailbox: e.mailbox, observedAt: e.observedAt, event: e as unknown as Record<string, unknown> };
          }),
        };
      },
    }),
  ];
}
