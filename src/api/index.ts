/**
 * The admin API: everything an admin sees and does, under /api/v1, described by an OpenAPI 3.1
 * document at /api/openapi.json and a readable reference at /api/reference (both open: they hold
 * no data). Routes are data (route.ts) that register.ts serves and openapi.ts describes, so the
 * document is generated from the very zod schemas requests are checked with.
 *
 * Auth: `Authorization: Bearer <key>`, keys of api.keys with scopes (read, operate, admin,
 * subscriptions) and, for the subscriptions routes, notify.api.keys (keys.ts). 401 without a known
 * key, 403 without the scope, both with an MB code. Every change is written to the audit log in the
 * store (audit.ts) and listed at /api/v1/audit.
 *
 * Every route exists whatever is configured (the document stays the same for every gateway); a
 * route of a capability this gateway does not run answers 404 MB_API_NOT_CONFIGURED.
 */
import type { FastifyInstance } from 'fastify';
import { langFromHeader } from '../i18n/index.ts';
import { AuditLog } from './audit.ts';
import type { ApiContext } from './context.ts';
import { ApiKeys, type ApiKeyEntry } from './keys.ts';
import { openApiDocument } from './openapi.ts';
import { referencePage } from './reference.ts';
import { API_PREFIX, serveRoutes } from './register.ts';
import type { RouteSpec } from './route.ts';
import { adminRoutes } from './routes/admin.ts';
import { relayRoutes } from './routes/relay.ts';
import { statusRoutes } from './routes/status.ts';
import { subscriptionRoutes } from './routes/subscriptions.ts';

export type { ApiContext } from './context.ts';
export { keysFromConfig } from './keys.ts';

export interface AdminApiOptions extends ApiContext {
  keys: readonly ApiKeyEntry[];
}

/** Every route of the admin API, for a context (the handlers use it; the set never depends on it). */
export function apiRoutes(ctx: ApiContext, audit: AuditLog): RouteSpec[] {
  return [...statusRoutes(ctx), ...relayRoutes(ctx), ...subscriptionRoutes(ctx), ...adminRoutes(ctx, audit)];
}

/** The OpenAPI document; it does not depend on the configuration. */
export function apiDocument(): Record<string, unknown> {
  const none = {} as ApiContext;
  return openApiDocument(apiRoutes(none, undefined as unknown as AuditLog));
}

/** Registers the admin API on the gateway's Fastify instance. */
export async function registerAdminApi(http: FastifyInstance, o: AdminApiOptions): Promise<void> {
  const audit = new AuditLog(o.store.kv, o.now);
  await audit.prune().catch((err: unknown) => http.log.warn({ err: (err as Error).message }, 'admin API: could not prune the audit log'));
  const keys = new ApiKeys(o.keys);
  if (keys.size === 0) http.log.info({ path: 'api.keys' }, 'admin API: no API key configured; every call to /api/v1 is refused');
  const routes = apiRoutes(o, audit);
  const doc = openApiDocument(routes);
  await http.register(
    async (api) => {
      api.get('/openapi.json', async (_req, reply) => reply.header('cache-control', 'no-cache').send(doc));
      api.get('/reference', async (req, reply) => {
        const q = (req.query as { lang?: string }).lang;
        const lang = q === 'de' || q === 'en' ? q : langFromHeader(req.headers['accept-language']);
        return reply.header('content-type', 'text/html; charset=utf-8').header('content-language', lang).send(referencePage(doc, lang));
      });
      serveRoutes(api, routes, keys, audit);
    },
    { prefix: API_PREFIX },
  );
}
