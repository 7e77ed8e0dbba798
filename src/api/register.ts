/**
 * Serves route specs (route.ts) on Fastify under the /api prefix: the key and its scope are checked
 * first (onRequest: 401 MB_API_UNAUTHORIZED without a known key, 403 MB_API_FORBIDDEN without the
 * scope, before any body is read), then path parameters, query and body are parsed with the route's
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
import type { ApiKeys } from './keys.ts';
import { fastifyPath, type Caller, type RouteSpec } from './route.ts';

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

const callers = new WeakMap<FastifyRequest, Caller>();

/** Registers `routes` on an encapsulated Fastify context whose prefix is API_PREFIX. */
export function serveRoutes(http: FastifyInstance, routes: readonly RouteSpec[], keys: ApiKeys, audit: AuditLog): void {
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
        const caller = keys.authenticate(req.headers.authorization);
        const path = req.url.split('?')[0]!;
        if (!caller) return sendError(req, reply, new MbError('MB_API_UNAUTHORIZED', { path }));
        if (!caller.scopes.has(spec.scope)) {
          const refused = new MbError('MB_API_FORBIDDEN', { key: caller.key, scopes: [...caller.scopes].join(', '), scope: spec.scope, method: spec.method, path });
          if (audited) await audit.write({ who: caller.key, action: `${spec.method} ${spec.path}`, target: path, status: 403, code: refused.code });
          return sendError(req, reply, refused);
        }
        callers.set(req, caller);
      },
      handler: async (req, reply) => {
        const caller = callers.get(req)!;
        const path = req.url.split('?')[0]!;
        const lang = langFromHeader(req.headers['accept-language']);
        let params: unknown;
        let body: unknown;
        try {
          params = parse(spec.params, req.params, 'path', path);
          const query = parse(spec.query, req.query, 'query', path);
          body = parse(spec.body, req.body, 'body', path);
          const result = await spec.handler({ params, query, body, caller, lang, req, reply });
          if (audited) await audit.write({ who: caller.key, action: `${spec.method} ${spec.path}`, target: targetOf(spec, params, body, path), status: spec.status });
          reply.code(spec.status).header('cache-control', 'no-store');
          return spec.status === 204 ? reply.send() : reply.send(result);
        } catch (err) {
          const e = toMbError(err);
          if (audited) await audit.write({ who: caller.key, action: `${spec.method} ${spec.path}`, target: targetOf(spec, params, body, path), status: e.http, code: e.code });
          throw e;
        }
      },
    });
  }
}

function targetOf(spec: RouteSpec, params: unknown, body: unknown, path: string): string {
  if (spec.target && params !== undefined) return spec.target({ params, body });
  const values = params && typeof params === 'object' ? Object.values(params as Record<string, unknown>).map(String) : [];
  return values.length ? values.join('/') : path;
}
