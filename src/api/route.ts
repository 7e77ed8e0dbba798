/**
 * One admin API route as data: method, path, the scope it needs, and the zod schemas of its path
 * parameters, query, body and answers. The same object is what Fastify serves (register.ts: the
 * request is checked with these schemas before the handler sees it) and what the OpenAPI document
 * describes (openapi.ts: zod's own JSON Schema output), so the two cannot drift apart. The routes
 * of one tag are declared through their group (routeGroup), which adds the tag, the usual scope
 * and the errors they share.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { Lang, Text } from '../i18n/index.ts';
import type { ApiScope } from './config.ts';
import type { Session } from './session.ts';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** Who called: the key's name or `user:<name>` for a person (what the audit log records) and what it may do. */
export interface Caller {
  key: string;
  scopes: ReadonlySet<ApiScope>;
}

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  caller: Caller;
  /** The console session the caller came with (cookie mb_session), if any. */
  session?: { id: string; data: Session };
  lang: Lang;
  req: FastifyRequest;
  reply: FastifyReply;
}

export interface RouteSpec<P = unknown, Q = unknown, B = unknown> {
  method: Method;
  /** OpenAPI form, with {name} for path parameters: /api/v1/relay/queue/{id}. */
  path: string;
  scope: ApiScope;
  /** Open to everyone (the sign-in itself): no key or session checked, `scope` not applied. */
  public?: boolean;
  /** Groups routes in the document and the reference page. */
  tag: string;
  summary: Text;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  /** The success answer: status and body schema (none for 204). */
  status: 200 | 201 | 202 | 204;
  response?: z.ZodType;
  /** A stream instead of JSON (the handler takes the reply over with reply.hijack()). */
  produces?: 'text/event-stream';
  /** MB codes the route may answer besides 400/401/403 (documented per status). */
  errors?: number[];
  /** A change (written to the audit log); default: every method but GET. */
  audit?: boolean;
  /** What the audit log names as the target (e.g. the message ID); default: the path parameters. */
  target?: (input: { params: P; body: B }) => string;
  bodyLimit?: number;
  handler(input: RouteInput<P, Q, B>): Promise<unknown>;
}

/** A route alone in its tag (GET /api/v1/nodes); keeps the parameter types of its schemas for its handler. */
export function route<P = undefined, Q = undefined, B = undefined>(spec: RouteSpec<P, Q, B>): RouteSpec {
  return spec as unknown as RouteSpec;
}

/** What the routes of one tag share: the tag, the scope most of them need, and the errors all may answer. */
export interface RouteGroup {
  tag: string;
  scope: ApiScope;
  /** E.g. 404 for every route of a capability this gateway may not have configured (MB_API_NOT_CONFIGURED). */
  errors?: number[];
}

/** A route as its group declares it: what is its own, with a scope only where it needs another than the group's. */
export type GroupedRoute<P, Q, B> = Omit<RouteSpec<P, Q, B>, 'method' | 'path' | 'tag' | 'scope'> & { scope?: ApiScope };

/** Declares one route of a group at a path; keeps the parameter types of its schemas for its handler. */
export type DeclareRoute = <P = undefined, Q = undefined, B = undefined>(path: string, spec: GroupedRoute<P, Q, B>) => RouteSpec;

/**
 * The routes of one tag (relay, subscriptions, connectors, …), declared as `group.get(path, spec)`:
 * the tag, the usual scope and the errors they all may answer are said once, where a routes file
 * declares the group, and each route says only what is its own.
 */
export function routeGroup(group: RouteGroup): Record<'get' | 'post' | 'put' | 'delete', DeclareRoute> {
  const declare =
    (method: Method): DeclareRoute =>
    <P, Q, B>(path: string, spec: GroupedRoute<P, Q, B>) => {
      const errors = [...new Set([...(group.errors ?? []), ...(spec.errors ?? [])])];
      return route<P, Q, B>({ method, path, tag: group.tag, scope: group.scope, ...spec, ...(errors.length ? { errors } : {}) });
    };
  return { get: declare('GET'), post: declare('POST'), put: declare('PUT'), delete: declare('DELETE') };
}

/** Fastify's form of an OpenAPI path: /a/{id} → /a/:id. */
export function fastifyPath(path: string): string {
  return path.replace(/\{(\w+)\}/g, ':$1');
}

/** What each scope includes: admin everything, operate also read. */
export const IMPLIED: Record<ApiScope, readonly ApiScope[]> = {
  read: ['read'],
  operate: ['operate', 'read'],
  admin: ['admin', 'operate', 'read', 'subscriptions'],
  subscriptions: ['subscriptions'],
};

export function expandScopes(scopes: readonly ApiScope[]): Set<ApiScope> {
  return new Set(scopes.flatMap((s) => IMPLIED[s]));
}
