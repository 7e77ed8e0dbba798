/**
 * The README documents what receivers and admins depend on, taken from the code that sends it: every
 * header the HTTP destination and the webhook sink set, every MAILBRIDGE_* variable the command
 * destination passes, the subscriptions API's path; and the capability table marks nothing "planned"
 * that ships. A new header or variable in the code fails this test until the README names it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { renderReference } from '../../scripts/config-reference.ts';

const root = new URL('../../', import.meta.url);
const readme = readFileSync(new URL('README.md', root), 'utf8');
const source = (path: string) => readFileSync(new URL(path, root), 'utf8');

/** Header names set in a fetch call's headers object: quoted lower-case keys with a dash. */
function headerNames(code: string): string[] {
  return [...new Set([...code.matchAll(/'((?:x-mailbridge|idempotency|webhook)-[a-z-]+)':/g)].map((m) => m[1]!))];
}

test('HTTP destination and webhook sink headers are documented', () => {
  const http = headerNames(source('src/connector/destinations/http.ts'));
  const webhook = headerNames(source('src/notify/sinks/webhook.ts'));
  assert.ok(http.length >= 3 && webhook.length >= 3, `${http} ${webhook}`);
  for (const h of [...http, ...webhook]) assert.match(readme, new RegExp(h.replace(/-/g, '\\-'), 'i'), `README names the ${h} header`);
  assert.match(readme, /whsec_/);
  assert.match(readme, /HMAC-SHA256 of "<t>\.<body>"/, 'the HTTP signature format');
});

test('every MAILBRIDGE_* variable of the command destination is documented', () => {
  const vars = [...new Set([...source('src/connector/destinations/command.ts').matchAll(/\b(MAILBRIDGE_[A-Z_]+):/g)].map((m) => m[1]!))];
  assert.ok(vars.length >= 5, vars.join(', '));
  for (const v of vars) assert.ok(readme.includes(`\`${v}\``), `README documents ${v}`);
});

test('the subscriptions API, the relay listener default, bare LF and the AUTH pause are documented; nothing shipped is "planned"', () => {
  const path = /SUBSCRIPTIONS_PATH = '([^']+)'/.exec(source('src/api/routes/subscriptions.ts'))?.[1];
  assert.ok(path && readme.includes(`POST ${path}`), `README documents POST ${path}`);
  assert.match(readme, /127\.0\.0\.1:2525/);
  assert.match(readme, /bare LF/);
  assert.match(readme, /60 seconds/);
  assert.match(readme, /FullAccess` on every mailbox it watches|FullAccess` on each of\s+them/);
  const rows = readme.split('\n').filter((l) => /^\| Notify watchers \|/.test(l));
  assert.equal(rows.length, 1);
  if (existsSync(new URL('src/notify/watchers/service.ts', root))) assert.match(rows[0]!, /\| available \|$/);
});

test('the reference lists the fields of lists of objects and the default relay listener', () => {
  const table = renderReference();
  for (const key of ['relay.listeners[].port', 'relay.listeners[].tls', 'relay.routes[].connection', 'relay.routes[].smtp.host', 'notify.watch.groups.<name>.listeners[].connection']) {
    assert.ok(table.includes(`\`${key}\``), key);
  }
  assert.match(table, /\| `relay\.listeners` \| list of objects \(fields below\) \| `\[\{"host":"127\.0\.0\.1","port":2525/);
});
