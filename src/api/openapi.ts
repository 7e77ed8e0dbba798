/**
 * The OpenAPI 3.1 document of the admin API, generated from the route specs: their zod schemas go
 * through zod's own JSON Schema output (draft 2020-12, the dialect of OAS 3.1), path and query
 * schemas become parameters, and every operation lists the scope it needs (as the role names OAS
 * 3.1 allows in a security requirement, and as x-scope) and its error answers with the catalogue's
 * error shape. Summaries are English; x-summary-de carries the German one for the reference page.
 * The document is stable for equal routes (no dates, no host), so a golden file can hold it.
 */
import { z } from 'zod';
import type { RouteSpec } from './route.ts';

export const API_VERSION = '1.0.0';

export const errorSchema = z
  .object({
    error: z
      .object({
        code: z.string().meta({ description: 'MB code from the error catalogue, e.g. MB_API_FORBIDDEN' }),
        title: z.string(),
        cause: z.string(),
        fix: z.string().meta({ description: 'What to do: a portal path, a PowerShell line or a command' }),
      })
      .meta({ description: 'In the language of Accept-Language (de → German, else English)' }),
  })
  .strict();

const ERROR_TEXT: Record<number, string> = {
  400: 'The request does not match this description (MB_API_INVALID) or the action is not possible now (MB code says why)',
  401: 'No or an unknown API key and no console session (MB_API_UNAUTHORIZED); for the sign-in: wrong user name or password (MB_API_LOGIN_FAILED)',
  403: 'The key or the person’s role lacks the scope (MB_API_FORBIDDEN), or a change made with the session cookie lacks its x-csrf-token (MB_API_CSRF)',
  429: 'Too many failed sign-ins for this user name or address (MB_API_LOGIN_LOCKED); Retry-After says when to try again',
  404: 'Not found or not configured in this gateway (MB code says which)',
  409: 'The object is in a state that does not allow this (MB code says which)',
  500: 'Unexpected failure (MB_INTERNAL)',
  502: 'An upstream service failed (MB code says which)',
  503: 'Busy: too many at once (MB code says what)',
};

type Json = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Json {
  const out = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any', reused: 'inline' }) as Json;
  delete out.$schema;
  return out;
}

function operationId(spec: RouteSpec): string {
  const words = spec.path
    .replace(/^\/api\/v1\//, '')
    .split(/[/{}-]+/)
    .filter(Boolean);
  const base = words.map((w, i) => (i === 0 ? w : w[0]!.toUpperCase() + w.slice(1))).join('');
  return `${spec.method.toLowerCase()}${base[0]!.toUpperCase()}${base.slice(1)}`;
}

function parameters(schema: z.ZodType | undefined, where: 'path' | 'query'): Json[] {
  if (!schema) return [];
  const s = jsonSchema(schema, 'input');
  const props = (s.properties ?? {}) as Record<string, Json>;
  const required = new Set((s.required ?? []) as string[]);
  return Object.entries(props).map(([name, p]) => {
    const { description, ...rest } = p;
    return { name, in: where, required: where === 'path' || required.has(name), ...(description ? { description } : {}), schema: rest };
  });
}

export function openApiDocument(routes: readonly RouteSpec[]): Json {
  const paths: Record<string, Record<string, Json>> = {};
  const tags = new Set<string>();
  for (const spec of routes) {
    tags.add(spec.tag);
    const responses: Record<string, Json> = {};
    responses[String(spec.status)] = {
      description: spec.status === 204 ? 'Done; no content' : 'Success',
      ...(spec.response ? { content: { 'application/json': { schema: jsonSchema(spec.response, 'output') } } } : {}),
      ...(spec.produces ? { content: { [spec.produces]: { schema: { type: 'string', description: 'Server-sent events: `event: <topic>` and `data: <JSON>` per change' } } } } : {}),
    };
    const errors = new Set([400, ...(spec.public ? [] : [401, 403]), ...(spec.errors ?? [])]);
    for (const status of [...errors].sort()) {
      responses[String(status)] = { description: ERROR_TEXT[status] ?? 'Refused (MB code says why)', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    }
    const op: Json = {
      operationId: operationId(spec),
      tags: [spec.tag],
      summary: spec.summary.en,
      'x-summary-de': spec.summary.de,
      ...(spec.public ? {} : { 'x-scope': spec.scope }),
      ...(spec.audit ?? spec.method !== 'GET' ? { 'x-audited': true } : {}),
      // A person's session carries the scopes of the role (reader: read; operator: operate; admin: all).
      security: spec.public ? [] : [{ apiKey: [spec.scope] }, { session: [spec.scope] }],
    };
    const params = [...parameters(spec.params, 'path'), ...parameters(spec.query, 'query')];
    if (params.length) op.parameters = params;
    if (spec.body) op.requestBody = { required: true, content: { 'application/json': { schema: jsonSchema(spec.body, 'input') } } };
    op.responses = responses;
    (paths[spec.path] ??= {})[spec.method.toLowerCase()] = op;
  }
  const error = jsonSchema(errorSchema, 'output');
  return {
    openapi: '3.1.0',
    info: {
      title: 'mailbridge admin API',
      version: API_VERSION,
      description:
        'Everything an admin sees and does with mailbridge: connections, the relay queue with its message trace, connectors, watchers, subscriptions, events, configuration and the audit log. Every call needs `Authorization: Bearer <key>` with a key of api.keys, or the console session cookie mb_session (from POST /api/v1/session or the Entra ID sign-in at /login/entra) plus the header x-csrf-token on changes, with the scope the operation names (admin includes operate, read and subscriptions; operate includes read; roles: reader = read, operator = operate, admin = admin). Errors carry an MB code with cause and fix in the language of Accept-Language.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    tags: [...tags].map((name) => ({ name })),
    paths,
    components: {
      schemas: { Error: error },
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'A key of api.keys (set with `mailbridge secret set api.keys.<name>.key`); subscriptions routes also take notify.api.keys' },
        session: {
          type: 'apiKey',
          in: 'cookie',
          name: 'mb_session',
          description: 'A person’s console session (GET /api/v1/session names the role and the csrfToken to send as x-csrf-token with every change)',
        },
      },
    },
    security: [{ apiKey: [] }],
  };
}
