/**
 * The documentation says what receivers and admins depend on, taken from the code that sends it, in
 * both languages: every header the HTTP destination and the webhook sink set, every MAILBRIDGE_*
 * variable the command destination passes, the subscriptions API's path, the relay's defaults; and
 * the README's capability table marks nothing "planned" that ships. A new header or variable in the
 * code fails this test until docs/en and docs/de name it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { LANGS } from '../../src/i18n/index.ts';
import { renderReference } from '../../scripts/config-reference.ts';

const root = new URL('../../', import.meta.url);
const source = (path: string) => readFileSync(new URL(path, root), 'utf8');
const page = (lang: string, name: string) => source(`docs/${lang}/${name}.md`);

/** Header names set in a fetch call's headers object: quoted lower-case keys with a dash. */
function headerNames(code: string): string[] {
  return [...new Set([...code.matchAll(/'((?:x-mailbridge|idempotency|webhook)-[a-z-]+)':/g)].map((m) => m[1]!))];
}

for (const lang of LANGS) {
  test(`${lang}: HTTP destination and webhook sink headers are documented`, () => {
    const http = headerNames(source('src/connector/destinations/http.ts'));
    const webhook = headerNames(source('src/notify/sinks/webhook.ts'));
    assert.ok(http.length >= 3 && webhook.length >= 3, `${http} ${webhook}`);
    for (const h of http) assert.match(page(lang, 'connector'), new RegExp(h.replace(/-/g, '\\-'), 'i'), `${lang}/connector.md names the ${h} header`);
    for (const h of webhook) assert.match(page(lang, 'notifications'), new RegExp(h.replace(/-/g, '\\-'), 'i'), `${lang}/notifications.md names the ${h} header`);
    assert.match(page(lang, 'notifications'), /whsec_/);
    assert.match(page(lang, 'connector'), lang === 'de' ? /HMAC-SHA256 von "<t>\.<body>"/ : /HMAC-SHA256 of "<t>\.<body>"/, 'the HTTP signature format');
  });

  test(`${lang}: every MAILBRIDGE_* variable of the command destination is documented`, () => {
    const vars = [...new Set([...source('src/connector/destinations/command.ts').matchAll(/\b(MAILBRIDGE_[A-Z_]+):/g)].map((m) => m[1]!))];
    assert.ok(vars.length >= 5, vars.join(', '));
    for (const v of vars) assert.ok(page(lang, 'connector').includes(`\`${v}\``), `${lang}/connector.md documents ${v}`);
  });

  test(`${lang}: the subscriptions API, the relay listener default, bare LF, the AUTH pause and the EWS service account are documented`, () => {
    const path = /SUBSCRIPTIONS_PATH = '([^']+)'/.exec(source('src/api/routes/subscriptions.ts'))?.[1];
    assert.ok(path && page(lang, 'notifications').includes(`POST ${path}`), `${lang}/notifications.md documents POST ${path}`);
    const relay = page(lang, 'relay');
    assert.match(relay, /127\.0\.0\.1:2525/);
    assert.match(relay, /bare LF/);
    assert.match(relay, lang === 'de' ? /60\s+Sekunden/ : /60 seconds/);
    assert.match(page(lang, 'notifications'), lang === 'de' ? /`FullAccess` auf jedem\s+von ihnen/ : /FullAccess` on each of\s+them/);
  });
}

test('the README marks nothing shipped as "planned" and points into docs/', () => {
  const readme = source('README.md');
  const rows = readme.split('\n').filter((l) => /^\| Notify watchers \|/.test(l));
  assert.equal(rows.length, 1);
  if (existsSync(new URL('src/notify/watchers/service.ts', root))) assert.match(rows[0]!, /\| available \|$/);
  for (const lang of LANGS) assert.ok(readme.includes(`(docs/${lang}/index.md)`), `README links docs/${lang}`);
  // The two commands the README promises stay exactly these.
  assert.ok(readme.includes('```sh\nnpm ci && npm start\n```') && readme.includes('```sh\nnpm ci && npm test\n```'));
});

test('the reference lists the fields of lists of objects and the default relay listener', () => {
  const table = renderReference();
  for (const key of ['relay.listeners[].port', 'relay.listeners[].tls', 'relay.routes[].connection', 'relay.routes[].smtp.host', 'notify.watch.groups.<name>.listeners[].connection']) {
    assert.ok(table.includes(`\`${key}\``), key);
  }
  assert.match(table, /\| `relay\.listeners` \| list of objects \(fields below\) \| `\[\{"host":"127\.0\.0\.1","port":2525/);
});
