/**
 * The console's pages as HTML, without a browser: / leads to /console/; an unknown caller gets the
 * sign-in page (401) in their language; the language comes from Accept-Language and the mb_lang
 * cookie the switch link sets (which only leads back into the console); API data is escaped, never
 * markup; a capability this gateway does not run is said so; every page carries a strict CSP and
 * the assets are served.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import { configSchema } from '../../src/app/schema.ts';
import { registerAdminApi } from '../../src/api/index.ts';
import { registerConsole } from '../../src/console/index.ts';
import { tempStore } from '../notify/helpers.ts';

const KEY = randomBytes(24).toString('base64url');
const EVIL = 'ops<script>alert(1)</script>';

test('console pages: redirect, sign-in, language, escaping, not configured, CSP, assets', async () => {
  const t = await tempStore();
  const http = Fastify();
  try {
    await registerAdminApi(http, { config: configSchema.parse({ connections: {} }), store: t.store, keys: [{ name: EVIL, key: KEY, scopes: ['admin'] }] });
    registerConsole(http);
    const auth = { authorization: `Bearer ${KEY}` };

    const root = await http.inject({ url: '/' });
    assert.equal(root.statusCode, 302);
    assert.equal(root.headers.location, '/console/');

    const anon = await http.inject({ url: '/console/queue', headers: { 'accept-language': 'de-DE,de;q=0.9' } });
    assert.equal(anon.statusCode, 401);
    assert.match(anon.body, /<html lang="de">/);
    assert.match(anon.body, /href="\/login\?next=%2Fconsole%2Fqueue"/);
    assert.match(anon.body, /MB_API_UNAUTHORIZED/);

    const en = await http.inject({ url: '/console/', headers: auth });
    assert.equal(en.statusCode, 200, en.body);
    assert.match(en.body, /<h1>Overview<\/h1>/);
    assert.match(String(en.headers['content-security-policy']), /script-src 'self'/);
    assert.doesNotMatch(en.body, /<script>(?!<\/script>)/, 'no inline script');
    const de = await http.inject({ url: '/console/', headers: { ...auth, 'accept-language': 'de' } });
    assert.match(de.body, /<h1>Übersicht<\/h1>/);

    const sw = await http.inject({ url: '/console/lang?to=de&back=%2Fconsole%2Fqueue%3Fstate%3Dheld', headers: auth });
    assert.equal(sw.statusCode, 303);
    assert.equal(sw.headers.location, '/console/queue?state=held');
    assert.match(String(sw.headers['set-cookie']), /^mb_lang=de; Path=\/; Max-Age=31536000; SameSite=Lax/);
    const away = await http.inject({ url: '/console/lang?to=en&back=%2F%2Fevil.example%2F', headers: auth });
    assert.equal(away.headers.location, '/console/', 'the switch never leads out of the console');
    // The cookie wins over the browser's language.
    const cookieDe = await http.inject({ url: '/console/queue', headers: { ...auth, 'accept-language': 'en', cookie: 'other=1; mb_lang=de' } });
    assert.match(cookieDe.body, /<h1>Relay-Warteschlange<\/h1>/);
    assert.match(cookieDe.body, /betreibt kein Relay/);

    // A change, audited under the (hostile) key name: the audit page shows it as text.
    await http.inject({ method: 'POST', url: '/api/v1/connectors/none/retry-rejected', headers: auth });
    const audit = await http.inject({ url: '/console/audit', headers: auth });
    assert.equal(audit.statusCode, 200);
    assert.ok(audit.body.includes('ops&#60;script&#62;alert(1)&#60;/script&#62;'), 'the key name escaped');
    assert.ok(!audit.body.includes(EVIL), 'never as markup');
    assert.match(audit.body, /POST \/api\/v1\/connectors\/\{name\}\/retry-rejected/);
    assert.match(audit.body, /href="\/docs\/en\/errors\/MB_API_UNKNOWN_NAME"/);

    for (const [name, type] of [
      ['console.js', /^text\/javascript/],
      ['console.css', /^text\/css/],
    ] as const) {
      const a = await http.inject({ url: `/console/assets/${name}` });
      assert.equal(a.statusCode, 200);
      assert.match(String(a.headers['content-type']), type);
    }
    assert.equal((await http.inject({ url: '/console/assets/..%2Fhtml.ts' })).statusCode, 404);
    assert.equal(KEY.length > 0 && !audit.body.includes(KEY), true, 'the key is never in a page');
  } finally {
    await http.close();
    await t.cleanup();
  }
});
