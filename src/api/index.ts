/**
 * The admin API: everything an admin sees and does, under /api/v1, described by an OpenAPI 3.1
 * document at /api/openapi.json and a readable reference at /api/reference (both open: they hold
 * no data). Routes are data (route.ts) that register.ts serves and openapi.ts describes, so the
 * document is generated from the very zod schemas requests are checked with.
 *
 * Auth: `Authorization: Bearer <key>`, keys of api.keys with scopes (read, operate, admin,
 * subscriptions) and, for the subscriptions routes, notify.api.keys (keys.ts); or a person's console
 * session (cookie mb_session, session.ts) from a sign-in at /login (local users of api.users, or
 * Entra ID: login.ts), with the scopes of the person's role and a CSRF token for changes (csrf.ts).
 * 401 without a known key or live session, 403 without the scope, both with an MB code. Every change is written to the audit log in the
 * store (audit.ts) and listed at /api/v1/audit.
 *
 * Every route exists whatever is configured (the document stays the same for every gateway); a
 * route of a capability this gateway does not run answers 404 MB_API_NOT_CONFIGURED.
 */
import type { FastifyInstance } from 'fastify';
import { langFromHeader } from '../i18n/index.ts';
import { AuditLog } from './audit.ts';
import type { ApiContext } from './context.ts';
import { Gate } from './csrf.ts';
import { ApiKeys, type ApiKeyEntry } from './keys.ts';
import { SignIn } from './login.ts';
import { Sessions } from './session.ts';
import { systemClock, type Clock } from '../util/clock.ts';
import type { Identity } from '../identity/index.ts';
import { openApiDocument } from './openapi.ts';
import { referencePage } from './reference.ts';
import { API_PREFIX, serveRoutes } from './register.ts';
import type { RouteSpec } from './route.ts';
import { adminRoutes } from './routes/admin.ts';
import { opsRoutes } from './routes/ops.ts';
import { relayRoutes } from './routes/relay.ts';
import { statusRoutes } from './routes/status.ts';
import { nodeRoutes } from './routes/nodes.ts';
import { subscriptionRoutes } from './routes/subscriptions.ts';
import { OpenStreams, streamRoutes } from './routes/stream.ts';
import { live, publish } from './live.ts';

export type { ApiContext } from './context.ts';
export { keysFromConfig } from './keys.ts';

export interface AdminApiOptions extends ApiContext {
  keys: readonly ApiKeyEntry[];
  /** Sessions' expiry, the sign-in back-off and the audit log's times (tests use a manual clock). */
  clock?: Clock;
  /** The Identity that redeems console sign-ins with Entra ID (api.signin.entra), opened at the first. */
  signinIdentity?: () => Promise<Identity>;
}

/** Every route of the admin API, for a context (the handlers use it; the set never depends on it). */
export function apiRoutes(ctx: ApiContext, audit: AuditLog, signin: SignIn, streams = new OpenStreams()): RouteSpec[] {
  return [...signin.routes(), ...statusRoutes(ctx), ...nodeRoutes(ctx), ...relayRoutes(ctx), ...subscriptionRoutes(ctx), ...adminRoutes(ctx, audit), ...opsRoutes(ctx), ...streamRoutes(streams)];
}

/** The OpenAPI document; it does not depend on the configuration. */
export function apiDocument(): Record<string, unknown> {
  const none = {} as ApiContext;
  const audit = undefined as unknown as AuditLog;
  const signin = new SignIn({ current: () => ({ api: undefined, server: undefined }), sessions: undefined as unknown as Sessions, audit, clock: systemClock });
  return openApiDocument(apiRoutes(none, audit, signin));
}

/**
 * Registers the admin API on the gateway's Fastify instance. The routes read their context at each
 * request, so the gateway may swap a capability it restarted (`update`, config apply) and the keys
 * (`setKeys`).
 */
export async function registerAdminApi(
  http: FastifyInstance,
  o: AdminApiOptions,
): Promise<{ setKeys(keys: readonly ApiKeyEntry[]): void; update(ctx: Partial<ApiContext>): void }> {
  const clock = o.clock ?? systemClock;
  const now = o.now ?? (() => clock.now());
  const audit = new AuditLog(o.store.kv, now);
  await audit.prune().catch((err: unknown) => http.log.warn({ err: (err as Error).message }, 'admin API: could not prune the audit log'));
  const keys = new ApiKeys(o.keys);
  const people = Object.keys(o.config.api?.users ?? {}).length > 0 || o.config.api?.signin.entra !== undefined;
  if (keys.size === 0 && !people) http.log.info({ path: 'api.keys' }, 'admin API: no API key, local user or Entra sign-in configured; every call to /api/v1 is refused');
  const sessions = new Sessions(o.store.kv, o.config.api?.session ?? { idleMinutes: 30, maxHours: 12 }, now);
  const ctx: ApiContext = { ...o, now };
  const signin = new SignIn({
    // Users and the Entra sign-in as config apply leaves them (update() below replaces ctx.config).
    current: () => ({ api: ctx.config.api, server: ctx.config.server }),
    sessions,
    audit,
    clock,
    ...(o.signinIdentity ? { identity: o.signinIdentity } : o.identity ? { identity: async () => o.identity! } : {}),
  });
  const gate = new Gate(keys, sessions, o.config.server?.publicUrl);
  const streams = new OpenStreams();
  const routes = apiRoutes(ctx, audit, signin, streams);
  const feed = liveSources(http, ctx, streams);
  const doc = openApiDocument(routes);
  signin.pages(http);
  await http.register(
    async (api) => {
      // The sign-in form of /login posts urlencoded; the fields are read by the route's zod schema.
      api.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 8192 }, (_req, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)));
      });
      api.get('/openapi.json', async (_req, reply) => reply.header('cache-control', 'no-cache').send(doc));
      api.get('/reference', async (req, reply) => {
        const q = (req.query as { lang?: string }).lang;
        const lang = q === 'de' || q === 'en' ? q : langFromHeader(req.headers['accept-language']);
        return reply.header('content-type', 'text/html; charset=utf-8').header('content-language', lang).send(referencePage(doc, lang));
      });
      serveRoutes(api, routes, gate, audit);
    },
    { prefix: API_PREFIX },
  );
  return {
    setKeys: (next) => keys.replace(next),
    update: (changed) => {
      // A key given as undefined: that capability no longer runs.
      for (const [k, v] of Object.entries(changed)) {
        if (v === undefined) delete (ctx as unknown as Record<string, unknown>)[k];
        else (ctx as unknown as Record<string, unknown>)[k] = v;
      }
      // A restarted relay has a new queue: live updates follow it.
      if ('relay' in changed) feed.rebind();
    },
  };
}

/** How often the watchers' states and the connectors' checkpoints are compared for a live update (only while a stream is open). */
export const WATCH_LIVE_MS = 5_000;

/**
 * Feeds live.ts from what already happens: every outcome of the relay queue (accepted, delivered,
 * deferred, bounced), a change of the watchers' states per group and listener, and a moved
 * checkpoint of a connector (connectors run in `mailbridge fetch`, another process on the same
 * store, so their progress is read from the store while a stream is open). Admin actions reach
 * the stream as audit entries (audit.ts). Open streams end when the gateway closes.
 */
function liveSources(http: FastifyInstance, ctx: ApiContext, streams: OpenStreams): { rebind(): void } {
  const onOutcome = (outcome: string, rec: { id: string; state: string; mailbox: string }) => publish('queue', { id: rec.id, outcome, state: rec.state, mailbox: rec.mailbox });
  let queue = ctx.relay?.relay.queue;
  queue?.on('outcome', onOutcome);
  // The watch service keeps its states in memory and has no events; its summary is cheap (counts
  // per group). Read from ctx at each look: a config apply may start, stop or replace it.
  let last = '';
  const lastCheckpoints = new Map<string, string>();
  let reading = false;
  const timer = setInterval(() => {
    if (live.size === 0) return;
    const watch = ctx.watch;
    if (watch) {
      const groups = watch.status().groups.map((g) => ({ group: g.group, states: g.states, byListener: g.byListener }));
      const now = JSON.stringify(groups);
      if (now !== last) publish('watcher', { groups: groups.map((g) => ({ group: g.group, states: g.states })) });
      last = now;
    }
    const connectors = Object.keys(ctx.config.connectors ?? {});
    if (connectors.length === 0 || reading) return;
    reading = true;
    void (async () => {
      for (const name of connectors) {
        const rows = await ctx.store.checkpoints.list(name);
        const now = rows.map((r) => `${r.mailbox}/${r.folder}:${r.epoch}:${r.position}:${r.delivered}:${r.rejected}:${r.inFlight}`).join('|');
        const before = lastCheckpoints.get(name);
        lastCheckpoints.set(name, now);
        if (before !== undefined && before !== now) publish('connector', { connector: name, delivered: rows.reduce((n, r) => n + r.delivered, 0), rejected: rows.reduce((n, r) => n + r.rejected, 0) });
      }
    })()
      .catch((err: unknown) => http.log.debug({ err: (err as Error).message }, 'admin API: connector checkpoints not read for live updates'))
      .finally(() => (reading = false));
  }, WATCH_LIVE_MS);
  timer.unref();
  http.addHook('preClose', async () => {
    clearInterval(timer);
    queue?.off('outcome', onOutcome);
    streams.closeAll();
  });
  return {
    rebind() {
      queue?.off('outcome', onOutcome);
      queue = ctx.relay?.relay.queue;
      queue?.on('outcome', onOutcome);
    },
  };
}
