/**
 * One admin API route as data: method, path, the scope it needs, and the zod schemas of its path
 * parameters, query, body and answers. The same object is what Fastify serves (register.ts: the
 * request is checked with these schemas before the handler sees it) and what the OpenAPI document
 * describes (openapi.ts: zod's own JSON Schema output), so the two cannot drift apart.
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

/** Keeps the parameter types of a route's schemas for its handler. */
export function route<P = undefined, Q = undefined, B = undefined>(spec: RouteSpec<P, Q, B>): RouteSpec {
  return spec as unknown as RouteSpec;
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
