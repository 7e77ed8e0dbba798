/**
 * The admin API's OpenAPI document: valid OpenAPI 3.1 (checked against the official OAS 3.1 JSON
 * Schema by @seriousme/openapi-schema-validator), equal to the golden file docs/api/openapi.json
 * (regenerate with `npm run openapi`), and describing exactly the routes Fastify serves: every
 * served /api/v1 route is in the document and every operation of the document is served.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import { Validator } from '@seriousme/openapi-schema-validator';
import { apiDocument, registerAdminApi } from '../../src/api/index.ts';
import { configSchema } from '../../src/app/schema.ts';
import { tempStore } from '../notify/helpers.ts';

type Doc = { openapi: string; paths: Record<string, Record<string, { security: Array<Record<string, string[]>>; 'x-scope': string }>> };

test('the document is valid OpenAPI 3.1', async () => {
  const doc = apiDocument();
  const validator = new Validator({ strict: false });
  const r = await validator.validate(doc);
  assert.equal(validator.version, '3.1');
  assert.equal(r.valid, true, JSON.stringify(r.errors, null, 2));
  // The checker does catch a broken document (so the check above can fail).
  const broken = structuredClone(doc) as Doc;
  (broken.paths['/api/v1/relay/queue']!.get as unknown as Record<string, unknown>).responses = 'none';
  assert.equal((await new Validator({ strict: false }).validate(broken)).valid, false);
});

test('the document equals the golden file docs/api/openapi.json (npm run openapi regenerates it)', () => {
  const golden = JSON.parse(readFileSync(new URL('../../docs/api/openapi.json', import.meta.url), 'utf8')) as unknown;
  assert.deepEqual(apiDocument(), golden, 'the API changed: run `npm run openapi` and commit docs/api/openapi.json');
});

test('the served routes and the document name the same paths and methods, both ways', async () => {
  const t = await tempStore();
  const http = Fastify();
  const served = new Set<string>();
  http.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (r.url.startsWith('/api/v1/') && m !== 'HEAD') served.add(`${m} ${r.url}`);
  });
  try {
    await registerAdminApi(http, { config: configSchema.parse({}), store: t.store, keys: [] });
    await http.ready();
    const doc = apiDocument() as unknown as Doc;
    const documented = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths)) for (const m of Object.keys(ops)) documented.add(`${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`);
    assert.deepEqual([...served].filter((r) => !documented.has(r)), [], 'served but not documented');
    assert.deepEqual([...documented].filter((r) => !served.has(r)), [], 'documented but not served');
    assert.ok(served.size >= 20, `${served.size} routes`);
    // Every operation names the scope it needs, by key or by a person's session; only the sign-in is open.
    const open: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [m, op] of Object.entries(ops)) {
        if (op.security.length === 0) open.push(`${m.toUpperCase()} ${path}`);
        else assert.deepEqual(op.security, [{ apiKey: [op['x-scope']] }, { session: [op['x-scope']] }]);
      }
    }
    assert.deepEqual(open, ['POST /api/v1/session']);
  } finally {
    await http.close();
    await t.cleanup();
  }
});

test('the reference page is plain HTML rendered from the document, in English and German', async () => {
  const t = await tempStore();
  const http = Fastify();
  try {
    await registerAdminApi(http, { config: configSchema.parse({}), store: t.store, keys: [] });
    const en = await http.inject({ url: '/api/reference' });
    assert.equal(en.statusCode, 200);
    assert.match(String(en.headers['content-type']), /^text\/html/);
    assert.doesNotMatch(en.body, /<script|https?:\/\/(?!json-schema)/, 'nothing loaded from elsewhere');
    assert.match(en.body, /<html lang="en">/);
    assert.match(en.body, /POST<\/span> <code>\/api\/v1\/relay\/queue\/\{id\}\/retry<\/code>/);
    assert.match(en.body, /Message trace: accepted, each attempt/);
    const de = await http.inject({ url: '/api/reference', headers: { 'accept-language': 'de-DE' } });
    assert.match(de.body, /<html lang="de">/);
    assert.match(de.body, /Nachrichtenverlauf: angenommen/);
    assert.match(de.body, /Berechtigung: <code>operate<\/code>/);
    assert.match(de.body, /<strong>403<\/strong> Dem Schlüssel fehlt die Berechtigung/);
    const json = await http.inject({ url: '/api/openapi.json' });
    assert.deepEqual(json.json(), apiDocument());
  } finally {
    await http.close();
    await t.cleanup();
  }
});
