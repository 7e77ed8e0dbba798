/**
 * The gateway serves docs/ at /docs/<lang>/…: an MB code's page at /docs/<lang>/errors/<CODE> (the
 * address the console links red items to), Markdown rendered with raw HTML shown as text, links
 * between pages without `.md`, nothing outside docs/ reachable, and a clear 404.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { configSchema } from '../../src/app/schema.ts';
import { startGateway } from '../../src/server/index.ts';
import { silentLogger } from '../../src/log/index.ts';
import { docsRoutes } from '../../src/docs/index.ts';
import { catalogue } from '../../src/errors/catalogue.ts';

test('the gateway serves each MB code page in both languages, and /docs picks the language', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-docs-'));
  const config = configSchema.parse({ store: { driver: 'sqlite', path: join(dir, 'mb.db') }, server: { port: 0 } });
  const gw = await startGateway(config, silentLogger);
  try {
    const { title } = catalogue.MB_RELAY_AUTH_FAILED;
    const de = await fetch(`${gw.url}/docs/de/errors/MB_RELAY_AUTH_FAILED`);
    assert.equal(de.status, 200);
    assert.match(de.headers.get('content-type')!, /^text\/html/);
    const html = await de.text();
    assert.ok(html.includes('<html lang="de">'));
    assert.ok(html.includes(`MB_RELAY_AUTH_FAILED: ${title.de}`), html.slice(0, 2000));
    assert.ok(html.includes('<a href="/docs/en/errors/MB_RELAY_AUTH_FAILED" hreflang="en"'), 'the other language');
    assert.ok(html.includes('<a href="./">'), 'links between pages without .md');
    // The layout a screen reader and a keyboard need: a skip link to the main landmark, a labelled
    // navigation, one h1, and the other language marked as such.
    assert.ok(html.includes('<a class="skip" href="#main">Zum Inhalt springen</a>') && html.includes('<main id="main">'));
    assert.match(html, /<nav aria-label="Dokumentation">/);
    assert.equal(html.match(/<h1[ >]/g)?.length, 1);
    assert.match(html, /hreflang="en" lang="en">English</);
    const en = await (await fetch(`${gw.url}/docs/en/errors/MB_RELAY_AUTH_FAILED`)).text();
    assert.ok(en.includes(`MB_RELAY_AUTH_FAILED: ${title.en}`));
    const index = await fetch(`${gw.url}/docs/en/errors/`);
    assert.equal(index.status, 200);
    assert.ok((await index.text()).includes('<a href="MB_RELAY_AUTH_FAILED">MB_RELAY_AUTH_FAILED</a>'));

    const pick = await fetch(`${gw.url}/docs`, { headers: { 'accept-language': 'de-DE,de;q=0.9' }, redirect: 'manual' });
    assert.equal(pick.status, 302);
    assert.equal(pick.headers.get('location'), '/docs/de/');
    const folder = await fetch(`${gw.url}/docs/en/errors`, { redirect: 'manual' });
    assert.equal(folder.headers.get('location'), '/docs/en/errors/', 'a folder without its slash: relative links would miss');
    const unknown = await fetch(`${gw.url}/docs/de/errors/MB_NO_SUCH_CODE`);
    assert.equal(unknown.status, 404);
    assert.match(await unknown.text(), /Seite nicht gefunden/);
  } finally {
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('raw HTML in a page is shown as text, script links are dropped, and nothing outside docs/ is served', async () => {
  const root = mkdtempSync(join(tmpdir(), 'mb-docs-root-'));
  mkdirSync(join(root, 'en', 'guides'), { recursive: true });
  writeFileSync(join(root, 'en', 'index.md'), '# Home\n\n<script>alert(1)</script>\n\n<b onclick="x()">bold</b>\n\n[a guide](guides/one.md#setup) · [bad](javascript:alert(1))\n');
  writeFileSync(join(root, 'en', 'guides', 'one.md'), '# One\n\n## Setup\n');
  writeFileSync(join(root, 'secret.md'), '# outside a language folder\n');
  writeFileSync(join(root, '..', 'mb-docs-outside.md'), '# outside docs\n');
  const http = Fastify();
  await http.register(docsRoutes, { root });
  try {
    const home = await http.inject('/docs/en/');
    assert.equal(home.statusCode, 200);
    assert.ok(!home.body.includes('<script>alert'), home.body);
    assert.ok(home.body.includes('&#60;script&#62;alert(1)&#60;/script&#62;'));
    assert.ok(!home.body.includes('<b onclick'));
    assert.ok(home.body.includes('<a href="guides/one#setup">a guide</a>'));
    assert.ok(!home.body.includes('javascript:'));
    assert.match(home.headers['content-security-policy'] as string, /default-src 'none'/);
    assert.ok((await http.inject('/docs/en/guides/one')).body.includes('<h2 id="setup">Setup</h2>'));
    const md = await http.inject('/docs/en/guides/one.md');
    assert.equal(md.headers.location, '/docs/en/guides/one');
    for (const path of ['/docs/secret', '/docs/en/../secret', '/docs/en/%2e%2e/secret', '/docs/en/..%2F..%2Fmb-docs-outside', '/docs/en/.hidden']) {
      assert.equal((await http.inject(path)).statusCode, 404, path);
    }
  } finally {
    await http.close();
    rmSync(root, { recursive: true, force: true });
    rmSync(join(root, '..', 'mb-docs-outside.md'), { force: true });
  }
});

test('without a docs/ folder (a package without the docs) the answer says so', async () => {
  const http = Fastify();
  await http.register(docsRoutes, { root: join(tmpdir(), 'mb-docs-not-there') });
  try {
    const res = await http.inject({ url: '/docs/de/errors/MB_RELAY_AUTH_FAILED' });
    assert.equal(res.statusCode, 404);
    assert.match(res.body, /nicht dabei/);
  } finally {
    await http.close();
  }
});
