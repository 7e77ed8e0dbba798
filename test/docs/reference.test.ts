/**
 * The generated reference pages under docs/<lang>/ (MB codes, config keys, CLI commands, admin API)
 * are what `npm run docs` makes from the program now: a new code, key, option or route fails this
 * test until the pages are regenerated, and a page whose source is gone fails it too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DOCS, generatedOnDisk, mdText, renderDocs, untranslatedApiDescriptions, untranslatedDescriptions } from '../../scripts/docs.ts';
import { catalogue } from '../../src/errors/catalogue.ts';
import { LANGS } from '../../src/i18n/index.ts';

const pages = await renderDocs();

test('the generated pages on disk are current (run `npm run docs`)', () => {
  const stale = [...pages].filter(([path, text]) => {
    try {
      return readFileSync(join(DOCS, path), 'utf8') !== text;
    } catch {
      return true;
    }
  });
  assert.deepEqual(stale.map(([p]) => p), [], 'stale or missing: run `npm run docs`');
  assert.deepEqual(generatedOnDisk().filter((p) => !pages.has(p)), [], 'left over from a code, command or key that is gone: run `npm run docs`');
});

test('one page per MB code and language, with its title, cause and fix in that language', () => {
  const codes = new Set(Object.keys(catalogue));
  for (const [code, entry] of Object.entries(catalogue)) {
    for (const lang of LANGS) {
      const page = pages.get(`${lang}/errors/${code}.md`);
      assert.ok(page, `${lang}/errors/${code}.md`);
      assert.ok(page.includes(`# ${code}: ${mdText(entry.title[lang], codes, code)}`), `${code} ${lang} title`);
      assert.ok(page.includes(mdText(entry.cause[lang], codes, code)) && page.includes(mdText(entry.fix[lang], codes, code)), `${code} ${lang} cause and fix`);
      assert.ok(pages.get(`${lang}/errors/index.md`)!.includes(`[${code}](${code}.md)`), `${code} in the ${lang} index`);
    }
  }
});

test('where the code names an MB code literally, its page says which command raises it', () => {
  assert.match(pages.get('en/errors/MB_RELAY_AUTH_FAILED.md')!, /## Raised by\n\n- the relay \(`mailbridge serve`/);
  assert.match(pages.get('de/errors/MB_SETUP_ADMIN_DENIED.md')!, /## Ausgelöst von\n\n- `mailbridge setup`/);
});

test('the references hold every config key, every command with its options, and every API route', async () => {
  for (const lang of LANGS) {
    const config = pages.get(`${lang}/reference/config.md`)!;
    for (const key of ['connections.<name>.tenantId', 'relay.listeners[].port', 'notify.watch.groups.<name>.listeners[].connection', 'api.keys.<name>.scopes']) assert.ok(config.includes(`\`${key}\``), `${lang} ${key}`);
    const cli = pages.get(`${lang}/reference/cli.md`)!;
    for (const name of ['serve', 'setup', 'check', 'fetch', 'sandbox-admin']) assert.ok(cli.includes(`## mailbridge ${name}\n`), `${lang} ${name}`);
    assert.ok(cli.includes('--overlap-hours'), `${lang}: credential rotate's option`);
    const api = pages.get(`${lang}/reference/api.md`)!;
    const doc = JSON.parse(readFileSync(join(DOCS, 'api/openapi.json'), 'utf8')) as { paths: Record<string, Record<string, unknown>> };
    for (const [path, ops] of Object.entries(doc.paths)) for (const method of Object.keys(ops)) assert.ok(api.includes(`### ${method.toUpperCase()} ${path}\n`), `${lang} ${method} ${path}`);
  }
  assert.match(pages.get('de/reference/cli.md')!, /Sandbox-Mandanten starten/);
});

test('every description of a config key has its German text (scripts/config-descriptions-de.ts)', () => {
  assert.deepEqual(untranslatedDescriptions(), []);
  assert.match(pages.get('de/reference/config.md')!, /\| `connections\.<name>\.tenantId` \| string \| {2}\| Verzeichnis-ID \(Mandant\) als GUID oder eine verifizierte Domain \|/);
  assert.match(pages.get('de/reference/config.md')!, /geheim: setzen mit `mailbridge secret set <pfad>`/);
});

test('every parameter and field description of the admin API has its German text', () => {
  assert.deepEqual(untranslatedApiDescriptions(), []);
  assert.match(pages.get('de/reference/api.md')!, /Warteschlangen-ID, wie `queue list` sie zeigt/);
});

test('catalogue texts are Markdown-safe: placeholders stay visible, other MB codes link to their pages', () => {
  const codes = new Set(['MB_A', 'MB_B']);
  assert.equal(mdText('Add <mailbox> as {mailbox}*master; see MB_B, not MB_A or MB_C', codes, 'MB_A'), 'Add &lt;mailbox&gt; as {mailbox}\\*master; see [MB_B](MB_B.md), not MB_A or MB_C');
  assert.equal(mdText('Run `Get-X -Identity <mailbox>` (MB_B)', codes), 'Run `Get-X -Identity <mailbox>` ([MB_B](MB_B.md))');
});
