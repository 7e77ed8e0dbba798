/**
 * Serves route specs (route.ts) on Fastify under the /api prefix: the caller (API key or console
 * session, csrf.ts) and its scope are checked first (onRequest: 401 MB_API_UNAUTHORIZED without a
 * known key or live session, 403 MB_API_CSRF for a cookie-authenticated change without its CSRF
 * token, 403 MB_API_FORBIDDEN without the scope, before any body is read), then path parameters, query and body are parsed with the route's
 * zod schemas (400 MB_API_INVALID naming the first problem), then the handler runs. Every change
 * (audit: true, default for all but GET) is written to the audit log with the key's name and the
 * outcome, refused and failed changes too. Errors are `{error: {code, title, cause, fix}}` from the
 * catalogue in the language of Accept-Language, with the catalogue's HTTP status.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { MbError, toMbError } from '../errors/index.ts';
import { langFromHeader } from '../i18n/index.ts';
import type { AuditLog } from './audit.ts';
import type { Authenticated, Gate } from './csrf.ts';
import { fastifyPath, type RouteSpec } from './route.ts';

export const API_PREFIX = '/api';

export function sendError(req: FastifyRequest, reply: FastifyReply, e: MbError): FastifyReply {
  const lang = langFromHeader(req.headers['accept-language']);
  const { code, title, cause, fix } = e.explain(lang);
  if (e.http >= 500) req.log.error({ code, err: e.message }, 'admin API request failed');
  if (e.http === 401) reply.header('www-authenticate', 'Bearer realm="mailbridge"');
  return reply.code(e.http).header('content-language', lang).header('cache-control', 'no-store').send({ error: { code, title, cause, fix } });
}

function parse<T>(schema: z.ZodType<T> | undefined, value: unknown, where: string, path: string): T {
  if (!schema) return undefined as T;
  const r = schema.safeParse(value ?? (where === 'body' ? undefined : {}));
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const at = [where, ...(issue?.path ?? []).map(String)].join('.');
  throw new MbError('MB_API_INVALID', { path, detail: `${at}: ${issue?.message ?? 'invalid'}` });
}

const callers = new WeakMap<FastifyRequest, Authenticated>();
/** Who calls a public route (the sign-in): nobody yet. */
const ANONYMOUS: Authenticated = { caller: { key: 'anonymous', scopes: new Set() } };

/** Registers `routes` on an encapsulated Fastify context whose prefix is API_PREFIX. */
export function serveRoutes(http: FastifyInstance, routes: readonly RouteSpec[], gate: Gate, audit: AuditLog): void {
  http.setErrorHandler((err, req, reply) => {
    if (err instanceof MbError) return sendError(req, reply, err);
    const status = (err as { statusCode?: number }).statusCode;
    // Fastify's own refusals (malformed JSON, wrong content type, body too large) are the caller's mistake.
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return sendError(req, reply, new MbError('MB_API_INVALID', { path: req.url.split('?')[0], detail: `body: ${(err as Error).message}` }));
    }
    return sendError(req, reply, toMbError(err));
  });
  http.setNotFoundHandler((req, reply) => sendError(req, reply, new MbError('MB_API_NOT_FOUND', { method: req.method, path: req.url.split('?')[0] })));

  for (const spec of routes) {
    if (!spec.path.startsWith(`${API_PREFIX}/`)) throw new Error(`route ${spec.path} is outside ${API_PREFIX}`);
    const audited = spec.audit ?? spec.method !== 'GET';
    http.route({
      method: spec.method,
      url: fastifyPath(spec.path.slice(API_PREFIX.length)),
      ...(spec.bodyLimit ? { bodyLimit: spec.bodyLimit } : {}),
      onRequest: async (req, reply) => {
        if (spec.public) {
          callers.set(req, ANONYMOUS);
          return;
        }
        const path = req.url.split('?')[0]!;
        const who = await gate.authenticate(req);
        if (!who) return sendError(req, reply, new MbError('MB_API_UNAUTHORIZED', { path }));
        const caller = who.caller;
        if (who.refused) {
          // A change the session's person did not confirm (CSRF): recorded as refused under their name.
          if (audited) await audit.write({ who: caller.key, action: `${spec.method} ${spec.path}`, target: path, status: who.refused.http, code: who.refused.code });
          return sendError(req, reply, who.refused);
        }
        if (!caller.scopes.has(spec.scope)) {
          const refused = new MbError('MB_API_FORBIDDEN', { key: caller.key, scopes: [...caller.scopes].join(', '), scope: spec.scope, method: spec.method, path });
          if (audited) await audit.write({ who: caller.key, action: `${spec.method} ${spec.path}`, target: path, status: 403, code: refused.code });
          return sendError(req, reply, refused);
        }
        callers.set(req, who);
      },
      handler: async (req, reply) => {
        const who = callers.get(req)!;
        const caller = who.caller;
        const path = req.url.split('?')[0]!;
        const lang = langFromHeader(req.headers['accept-language']);
        let params: unknown;
        let body: unknown;
        // A route's own target reads its parsed parameters and body; before they parse, the path names it.
        let parsed = false;
        try {
          params = parse(spec.params, req.params, 'path', path);
          const query = parse(spec.query, req.query, 'query', path);
          body = parse(spec.body, req.body, 'body', path);
          parsed = true;
          const result = await spec.handler({ params, query, body, caller, ...(who.session ? { session: who.session } : {}), lang, req, reply });
          if (audited) await audit.write({ who: caller.key, action: `${spec.method} ${spec.path}`, target: targetOf(spec, parsed, params, body, path), status: spec.status });
          // A handler that answered itself (the sign-in form's redirect, a stream) is done.
          if (reply.sent) return reply;
          reply.code(spec.status).header('cache-control', 'no-store');
          return spec.status === 204 ? reply.send() : reply.send(result);
        } catch (err) {
          const e = toMbError(err);
          if (audited) await audit.write({ who: caller.key, action: `${spec.method} ${spec.path}`, target: targetOf(spec, parsed, params, body, path), status: e.http, code: e.code });
          throw e;
        }
      },
    });
  }
}

function targetOf(spec: RouteSpec, parsed: boolean, params: unknown, body: unknown, path: string): string {
  if (spec.target && parsed) return spec.target({ params, body });
  const values = params && typeof params === 'object' ? Object.values(params as Record<string, unknown>).map(String) : [];
  return values.length ? values.join('/') : path;
}
