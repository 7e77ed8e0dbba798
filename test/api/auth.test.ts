/**
 * Keys and scopes on every route of the admin API (taken from the OpenAPI document, so a new route
 * is covered without touching this test): no key or an unknown key → 401 MB_API_UNAUTHORIZED, a key
 * without the route's scope → 403 MB_API_FORBIDDEN, a key with it gets past both. A refused change
 * is in the audit log under the key's name; keys never appear in an answer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import { apiDocument, registerAdminApi } from '../../src/api/index.ts';
import type { ApiScope } from '../../src/api/config.ts';
import { configSchema } from '../../src/app/schema.ts';
import { catalogue } from '../../src/errors/index.ts';
import { scrub } from '../../src/log/redact.ts';
import { tempStore } from '../notify/helpers.ts';

const key = () => randomBytes(24).toString('base64url');
const KEYS: Record<ApiScope, string> = { read: key(), operate: key(), admin: key(), subscriptions: key() };
/** A key that lacks each scope. */
const LACKING: Record<ApiScope, ApiScope> = { read: 'subscriptions', operate: 'read', admin: 'operate', subscriptions: 'operate' };
const SAMPLE: Record<string, string> = { id: '01JB8Q3ZK2M4N6P8RT', name: 'contoso' };

async function api() {
  const t = await tempStore();
  const http = Fastify();
  await registerAdminApi(http, {
    config: configSchema.parse({}),
    store: t.store,
    keys: (Object.keys(KEYS) as ApiScope[]).map((s) => ({ name: `k-${s}`, key: KEYS[s], scopes: [s] })),
  });
  await http.ready();
  return { t, http };
}

const operations = () => {
  const doc = apiDocument() as { paths: Record<string, Record<string, { 'x-scope'?: ApiScope; 'x-audited'?: boolean; responses: Record<string, { content?: Record<string, unknown> }> }>> };
  // The sign-in itself (POST /api/v1/session, security: []) is open; session.test.ts covers it.
  return Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).filter(([, op]) => op['x-scope'] !== undefined).map(([method, op]) => ({
      method: method.toUpperCase() as 'GET' | 'POST' | 'DELETE',
      path,
      url: path.replace(/\{(\w+)\}/g, (_, p: string) => (p === 'id' && path.includes('subscriptions') ? 'sub_x1' : SAMPLE[p]!)),
      scope: op['x-scope']!,
      audited: op['x-audited'] === true,
      // A stream never ends, so inject() would wait for ever: test/api/routes/stream.test.ts lets the scope in on a real socket.
      stream: op.responses['200']?.content?.['text/event-stream'] !== undefined,
    })),
  );
};

test('every route refuses a missing or unknown key with 401 and a key without its scope with 403, each with an MB code', async () => {
  const { t, http } = await api();
  const bodies: string[] = [];
  try {
    const ops = operations();
    assert.ok(ops.length >= 20);
    for (const op of ops) {
      const payload = op.method === 'POST' ? {} : undefined;
      for (const authorization of [undefined, `Bearer ${key()}`, `Basic ${Buffer.from(`x:${KEYS.admin}`).toString('base64')}`]) {
        const r = await http.inject({ method: op.method, url: op.url, ...(authorization ? { headers: { authorization } } : {}), ...(payload ? { payload } : {}) });
        bodies.push(r.body);
        assert.equal(r.statusCode, 401, `${op.method} ${op.url} with ${authorization}`);
        assert.equal(r.json().error.code, 'MB_API_UNAUTHORIZED');
        assert.equal(r.headers['www-authenticate'], 'Bearer realm="mailbridge"');
      }
      const lacking = LACKING[op.scope];
      const refused = await http.inject({ method: op.method, url: op.url, headers: { authorization: `Bearer ${KEYS[lacking]}`, 'accept-language': 'de' }, ...(payload ? { payload } : {}) });
      bodies.push(refused.body);
      assert.equal(refused.statusCode, 403, `${op.method} ${op.url} with a ${lacking} key`);
      const e = refused.json().error as { code: string; title: string; cause: string; fix: string };
      assert.equal(e.code, 'MB_API_FORBIDDEN');
      assert.equal(e.title, catalogue.MB_API_FORBIDDEN.title.de);
      assert.ok(e.cause.includes(`braucht die Berechtigung ${op.scope}`), e.cause);
      assert.ok(e.fix.includes(`api.keys.k-${lacking}.scopes`), e.fix);
      // The scope (and admin, which includes every scope) gets past the key check.
      for (const allowed of op.stream ? [] : ([op.scope, 'admin'] as const)) {
        const ok = await http.inject({ method: op.method, url: op.url, headers: { authorization: `Bearer ${KEYS[allowed]}` }, ...(payload ? { payload } : {}) });
        bodies.push(ok.body);
        assert.ok(ok.statusCode !== 401 && ok.statusCode !== 403, `${op.method} ${op.url} with a ${allowed} key: ${ok.statusCode} ${ok.body}`);
      }
    }
    // A refused change is audited under the key's name; a refused read is not a change.
    const audit = await http.inject({ url: '/api/v1/audit?limit=1000', headers: { authorization: `Bearer ${KEYS.admin}` } });
    const entries = audit.json().entries as Array<{ who: string; action: string; status: number; code?: string }>;
    const audited = ops.filter((o) => o.audited);
    assert.ok(audited.length >= 6);
    for (const o of audited) {
      assert.ok(
        entries.some((e) => e.who === `k-${LACKING[o.scope]}` && e.action === `${o.method} ${o.path}` && e.status === 403 && e.code === 'MB_API_FORBIDDEN'),
        `403 of ${o.method} ${o.path} audited`,
      );
    }
    assert.ok(!entries.some((e) => e.action.startsWith('GET ')), 'reads are not audited');
    for (const b of bodies) for (const k of Object.values(KEYS)) assert.equal(b.includes(k), false, 'a key in an answer');
    // The keys are registered with the log's redaction: a log line that quoted a header shows none of them.
    for (const k of Object.values(KEYS)) assert.equal(scrub(`authorization: Bearer ${k}`).includes(k), false);
  } finally {
    await http.close();
    await t.cleanup();
  }
});

test('a route of a capability this gateway does not run answers 404 MB_API_NOT_CONFIGURED; an unknown API path 404 MB_API_NOT_FOUND', async () => {
  const { t, http } = await api();
  try {
    const r = await http.inject({ url: '/api/v1/relay/queue', headers: { authorization: `Bearer ${KEYS.read}` } });
    assert.equal(r.statusCode, 404);
    assert.equal(r.json().error.code, 'MB_API_NOT_CONFIGURED');
    assert.match(r.json().error.fix, /relay/);
    const unknown = await http.inject({ url: '/api/v1/nothing-here', headers: { authorization: `Bearer ${KEYS.read}`, 'accept-language': 'de' } });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json().error.code, 'MB_API_NOT_FOUND');
    assert.match(unknown.json().error.cause, /gehört nicht zur Admin-API/);
  } finally {
    await http.close();
    await t.cleanup();
  }
});
