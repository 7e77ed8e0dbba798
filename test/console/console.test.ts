/**
 * The web console in a real browser (Debian's Chromium via playwright-core) against a gateway on
 * the sandbox tenant (issue 13 item 5):
 *  - a message the relay could not deliver is retried, held, released and deleted with the queue
 *    page's buttons; the page follows the queue live (server-sent events, no reload) and each
 *    change is in the audit log page with who, what and the message ID;
 *  - a config edit is refused with its error at the right line (the editor validates as you type);
 *  - the editor starts from the file with its secrets masked; a changed log level is applied, the
 *    page says what restarted, the audit page has the entry, and no configured secret (clear,
 *    sealed or hash) is in any page, answer or log line;
 *  - the overview, in English and German (switched with the language link), shows the connection
 *    whose secret the sandbox revoked red, with its MB code, cause, fix and documentation link;
 *  - axe-core finds no serious or critical violation on these pages, also at a phone's width; the
 *    skip link is the first stop of the keyboard and the page does not scroll sideways.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { openSecretBox } from '../../src/config/secrets.ts';
import { MASK } from '../../src/log/redact.ts';
import { removeSecret, setUserAppRoles } from '../../src/sandbox/entra/ops.ts';
import { readUntil, waitFor } from '../support/wait.ts';
import { axe, OPS, startConsoleRig, STUCK, type ConsoleRig } from './rig.ts';

let rig: ConsoleRig;

before(async () => {
  rig = await startConsoleRig('console');
});

after(async () => {
  await rig?.close();
});

type Queue = { messages: Array<{ id: string; state: string; attempts: number; sender: string }> };
type Audit = { entries: Array<{ who: string; action: string; target?: string; status: number }> };

async function noSeriousViolations(page: Page, what: string): Promise<void> {
  const v = await axe(page);
  assert.deepEqual(
    v.map((x) => `${x.id} (${x.impact}): ${x.help} at ${x.nodes.map((n) => n.target.join(' ')).join(', ')}`),
    [],
    `axe on ${what}`,
  );
}

async function textOf(page: Page, selector: string): Promise<string> {
  return ((await page.locator(selector).first().textContent()) ?? '').trim();
}

test('a deferred message is retried, held, released and deleted from the console; the page follows live; each change is in the audit log', async () => {
  await rig.send(STUCK, 'alice@contoso.test', 'console retry');
  const queued = await readUntil('the stuck message deferred', () => rig.api<Queue>('GET', '/api/v1/relay/queue'), (q) => q.messages.some((m) => m.sender === STUCK && m.state === 'deferred'));
  const id = queued.messages.find((m) => m.sender === STUCK)!.id;

  const ctx = await rig.context('en');
  try {
    const page = await ctx.newPage();
    await page.goto('/console/queue');
    const row = `tr[data-id="${id}"]`;
    assert.equal(await page.locator(row).getAttribute('data-state'), 'deferred');
    assert.equal(await textOf(page, `${row} td:nth-of-type(5)`), '1', 'one attempt so far');
    await noSeriousViolations(page, 'the queue page');

    // Retry: the attempt fails again (nothing listens there); the row shows it without a reload.
    const navigations: string[] = [];
    page.on('framenavigated', (f) => navigations.push(f.url()));
    await page.locator(`${row} button[data-action="retry"]`).click();
    await waitFor(async () => (await textOf(page, `${row} td:nth-of-type(5)`)) === '2', 30_000, 'the second attempt on the page');
    assert.deepEqual(navigations, [], 'updated in place, not reloaded');
    // The change is announced to screen readers in the polite status region.
    await waitFor(async () => /^(Updated at|Done: Retry)/.test(await textOf(page, '#status')), 5_000, 'the update announced');

    // The trace names the admin's retry between the two attempts.
    await page.locator(`${row} th a`).click();
    await page.waitForURL(`**/console/queue/${id}`);
    const trace = await page.locator('#message-trace ol.trace > li').allTextContents();
    assert.equal(trace.length, 4, trace.join('\n'));
    assert.match(trace[0]!, /Accepted from .* stuck@contoso\.test → alice@contoso\.test/);
    assert.match(trace[1]!, /Attempt 1: deferred/);
    assert.match(trace[2]!, /Admin: retry now/);
    assert.match(trace[3]!, /Attempt 2: deferred/);
    await noSeriousViolations(page, 'the message page');

    await page.locator('button[data-action="hold"]').click();
    await waitFor(async () => (await page.locator('button[data-action="release"]').count()) === 1, 15_000, 'the held message offering release');
    assert.equal((await rig.api<{ state: string }>('GET', `/api/v1/relay/queue/${id}`)).state, 'held');
    await page.locator('button[data-action="release"]').click();
    await waitFor(async () => (await page.locator('button[data-action="hold"]').count()) === 1, 15_000, 'the released message offering hold');

    await page.goto('/console/queue');
    page.once('dialog', (d) => void d.accept());
    await page.locator(`${row} button[data-action="delete"]`).click();
    await waitFor(async () => (await page.locator(row).count()) === 0, 15_000, 'the deleted message gone from the list');
    assert.equal((await rig.api<Queue>('GET', '/api/v1/relay/queue')).messages.some((m) => m.id === id), false);

    // The audit log page: each change with who, what and the message.
    await page.goto('/console/audit');
    const rows = await page.locator('#audit-table tbody tr').evaluateAll((trs) =>
      trs.map((tr) => [tr.getAttribute('data-action'), tr.getAttribute('data-target'), (tr.children[1]?.textContent ?? '').trim(), (tr.children[4]?.textContent ?? '').trim()]),
    );
    for (const action of ['POST /api/v1/relay/queue/{id}/retry', 'POST /api/v1/relay/queue/{id}/hold', 'POST /api/v1/relay/queue/{id}/release', 'DELETE /api/v1/relay/queue/{id}']) {
      assert.ok(
        rows.some((r) => r[0] === action && r[1] === id && r[2] === 'console-admin' && /^20[04]$/.test(r[3]!)),
        `${action} of ${id} in the audit page: ${JSON.stringify(rows)}`,
      );
    }
    await noSeriousViolations(page, 'the audit page');

    // The audit page follows live: a change made elsewhere appears without a reload.
    await rig.api('POST', '/api/v1/relay/queue/retry');
    await waitFor(async () => (await page.locator('#audit-table tbody tr[data-action="POST /api/v1/relay/queue/retry"]').count()) === 1, 15_000, 'the new audit entry on the open page');
  } finally {
    await ctx.close();
  }
});

test('a config edit is refused with its error at the right line', async () => {
  const ctx = await rig.context('en');
  try {
    const page = await ctx.newPage();
    await page.goto('/console/config');
    assert.equal(await page.locator('pre.config').count(), 1);
    const effective = await textOf(page, 'pre.config');
    assert.ok(!effective.includes(rig.key), 'the API key is masked');
    const editor = page.locator('#config-editor');
    await editor.fill('');
    await editor.pressSequentially('server:\n  port: 99999\n', { delay: 5 });
    const item = page.locator('#config-problems li[data-line="2"]');
    await item.waitFor({ timeout: 15_000 });
    assert.match(await item.textContent() ?? '', /Line 2 \(server\.port\): MB_CONFIG_/);
    assert.equal(await editor.getAttribute('aria-invalid'), 'true');
    assert.match(await textOf(page, '#config-gutter'), /● 2/);

    // Apply is refused while the text has errors: focus goes to the first problem, nothing is sent.
    await page.locator('#config-apply').click();
    assert.equal(await page.evaluate('document.activeElement.getAttribute("data-line")'), '2');
    // The problem's line button selects that line in the editor.
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate('document.activeElement.id'), 'config-editor');
    assert.equal(await page.evaluate('(e => e.value.slice(e.selectionStart, e.selectionEnd))(document.activeElement)'), '  port: 99999');
    await noSeriousViolations(page, 'the config page with a problem');

    // Fixed: no problem, valid again.
    await editor.fill('server:\n  port: 8081\n');
    await waitFor(async () => (await editor.getAttribute('aria-invalid')) === 'false', 15_000, 'the editor valid again');
    assert.equal(await page.locator('#config-problems li').count(), 0);
    const audit = await rig.api<Audit>('GET', '/api/v1/audit');
    assert.ok(!audit.entries.some((e) => e.action.includes('/config/apply')), 'a refused edit never reached the API');
  } finally {
    await ctx.close();
  }
});

test('the config editor of a file with secrets changes the log level and applies it; the result and the audit entry are shown; no secret reaches the page, an answer or the log', async () => {
  const before = readFileSync(rig.configFile, 'utf8');
  const sealed = [...before.matchAll(/enc:v1:[A-Za-z0-9_-]+/g)].map((m) => m[0]);
  const hashes = [...before.matchAll(/\$scrypt\$[^\s"']+/g)].map((m) => m[0]);
  assert.ok(sealed.length >= 1 && hashes.length >= 2, 'the rig’s file has a sealed client secret and two password hashes');
  const box = await openSecretBox({ keyFile: rig.keyFile, env: {} });
  const secrets = [rig.key, ...sealed, ...sealed.map((v) => box.open(v)), ...hashes];

  const ctx = await rig.context('en');
  const answers: Array<Promise<string>> = [];
  try {
    const page = await ctx.newPage();
    page.on('response', (r) => answers.push(r.text().catch(() => '')));
    await page.goto('/console/config');
    const editor = page.locator('#config-editor');
    const text = await editor.inputValue();
    assert.match(text, /^log:\n {2}level: info$/m, 'the editor holds the file as written');
    assert.ok(text.includes(`"${MASK}"`), 'secrets are masked in the editor');

    await editor.fill(text.replace(/^( {2}level:) info$/m, '$1 debug'));
    await waitFor(async () => (await editor.getAttribute('aria-invalid')) === 'false', 15_000, 'the edited file valid');
    await page.locator('#config-apply').click();
    await waitFor(async () => /^Configuration applied\. Restarted: log\.level\.$/.test(await textOf(page, '#config-summary')), 15_000, 'the result on the page');
    assert.equal(await page.locator('#action-error').count(), 0);
    // The editor shows the file as now written, secrets masked again.
    await waitFor(async () => /^ {2}level: debug$/m.test(await editor.inputValue()), 15_000, 'the editor reloaded');

    const after = readFileSync(rig.configFile, 'utf8');
    assert.match(after, /^ {2}level: debug$/m);
    assert.deepEqual([...after.matchAll(/enc:v1:[A-Za-z0-9_-]+/g)].map((m) => m[0]), sealed, 'every sealed value as it was');
    assert.deepEqual(after.replace(/^( {2}level:) debug$/m, '$1 info'), before, 'nothing else in the file changed');

    await page.goto('/console/audit');
    const row = page.locator('#audit-table tbody tr[data-action="POST /api/v1/config/apply"]');
    assert.equal(await row.count(), 1);
    assert.deepEqual([await row.getAttribute('data-target'), (await row.locator('td').nth(0).textContent())?.trim(), (await row.locator('td').nth(3).textContent())?.trim()], ['mailbridge.yaml', 'console-admin', '200']);
  } finally {
    await ctx.close();
  }
  const everything = [...(await Promise.all(answers)), ...rig.logged].join('\n');
  assert.ok(rig.logged.length > 0, 'the log was captured');
  for (const secret of secrets) assert.equal(everything.includes(secret), false, `${secret.slice(0, 10)}… on a page, in an answer or in the log`);
});

test('a local user signs in from the console, acts with the session (CSRF token), sees only what the role allows and signs out', async () => {
  await rig.send(STUCK, 'bob@contoso.test', 'console session');
  const queued = await readUntil('the second stuck message deferred', () => rig.api<Queue>('GET', '/api/v1/relay/queue'), (q) => q.messages.some((m) => m.sender === STUCK && m.state === 'deferred'));
  const id = queued.messages.find((m) => m.sender === STUCK && m.state === 'deferred')!.id;
  const ctx = await rig.context('en', undefined, 'none');
  try {
    const page = await ctx.newPage();
    const res = await page.goto('/console/queue');
    assert.equal(res?.status(), 401);
    assert.equal(await textOf(page, 'h1'), 'Sign in');
    await noSeriousViolations(page, 'the console sign-in page');
    await page.locator('main a.button').click();
    await page.waitForURL('**/login?next=%2Fconsole%2Fqueue');
    await page.locator('#user').fill(OPS.user);
    await page.locator('#password').fill(OPS.password);
    await page.locator('button[type="submit"]').click();
    // (Under the sign-in page's former Referrer-Policy no-referrer the browser posted Origin: null and was refused MB_API_CSRF.)
    await page.waitForURL('**/console/queue');
    assert.equal(await textOf(page, 'h1'), 'Relay queue');
    assert.match(await textOf(page, '.who'), /^Signed in as ops \(operator\)/);

    // A change through the session: the script sends the session's CSRF token, the API audits the person.
    await page.locator(`tr[data-id="${id}"] button[data-action="hold"]`).click();
    await readUntil('the message held', () => rig.api<{ state: string }>('GET', `/api/v1/relay/queue/${id}`), (m) => m.state === 'held');
    const audit = await rig.api<Audit>('GET', '/api/v1/audit');
    assert.ok(audit.entries.some((e) => e.who === 'user:ops' && e.action === 'POST /api/v1/relay/queue/{id}/hold' && e.target === id && e.status === 200), JSON.stringify(audit.entries.slice(0, 5)));
    // Without the token the same change is refused: the CSRF check is real.
    const bare = await page.evaluate(`fetch('/api/v1/relay/queue/${id}/release', { method: 'POST' }).then((r) => r.status)`);
    assert.equal(bare, 403);

    // An operator may not read the audit log: the page says so with the MB code.
    await page.goto('/console/audit');
    assert.equal(await textOf(page, 'main .problem code'), 'MB_API_FORBIDDEN');

    await page.locator('button[data-signout]').click();
    await page.waitForURL('**/login?lang=en');
    const after = await page.goto('/console/');
    assert.equal(after?.status(), 401, 'the session is gone');
  } finally {
    await ctx.close();
  }
});

test('an Entra ID user with the app role admin signs in through the sandbox and lands in the console in German', async () => {
  const tenant = rig.s.sandbox.directory.data.tenants[0]!;
  setUserAppRoles(rig.s.sandbox.directory, tenant.id, tenant.apps[0]!.appId, 'alice@contoso.test', ['admin']);
  const ctx = await rig.context('de', undefined, 'none');
  try {
    const page = await ctx.newPage();
    await page.goto('/login');
    await page.locator('a.entra').click();
    // The sandbox's Entra ID sign-in page, as Microsoft's would ask.
    await page.locator('input[name="login"]').waitFor();
    assert.ok(page.url().startsWith(rig.s.sandbox.entra.urls.global), page.url());
    await page.locator('input[name="login"]').fill('alice@contoso.test');
    await page.locator('input[name="passwd"]').fill('sandbox');
    await page.locator('button[value="signin"]').click();
    await page.waitForURL('**/console/');
    assert.equal(await textOf(page, 'h1'), 'Übersicht');
    assert.match(await textOf(page, '.who'), /^Angemeldet als alice@contoso\.test \(admin\)/);
    // An admin reads the audit log, where the sign-in is.
    await page.goto('/console/audit');
    assert.equal(await page.locator('#audit-table tbody tr[data-action="sign-in"]').count() >= 1, true);
  } finally {
    await ctx.close();
  }
});

test('the overview in English and German shows the connection whose secret was revoked red, with code, cause, fix and its documentation', async () => {
  const tenant = rig.s.sandbox.directory.data.tenants[0]!;
  const app = tenant.apps[0]!;
  for (const secret of [...app.secrets]) removeSecret(rig.s.sandbox.directory, tenant.id, app.appId, secret.keyId);
  // Cached tokens stay valid after a secret is removed (as at Microsoft); the next request fails.
  await assert.rejects(rig.gw.identity!.getToken('sandbox', 'exchange', { forceRefresh: true }));
  const explained = async (lang: string) => {
    const res = await fetch(`${rig.gw.url}/api/v1/connections`, { headers: { authorization: `Bearer ${rig.key}`, 'accept-language': lang } });
    const c = ((await res.json()) as { connections: Array<{ name: string; lastToken?: { error?: { code: string; cause: string; fix: string } } }> }).connections.find((x) => x.name === 'sandbox')!;
    return c.lastToken!.error!;
  };
  const en = await explained('en');
  const de = await explained('de');
  assert.match(en.code, /^MB_/);
  assert.notEqual(en.fix, de.fix);

  const ctx = await rig.context('en');
  try {
    const page = await ctx.newPage();
    await page.goto('/');
    assert.match(page.url(), /\/console\/$/);
    assert.equal(await textOf(page, 'h1'), 'Overview');
    const item = '#section-connections li[data-name="sandbox"]';
    assert.equal(await page.locator(item).getAttribute('data-state'), 'red');
    assert.equal(await textOf(page, `${item} .badge`), 'Failing');
    assert.equal(await textOf(page, `${item} .problem dd code`), en.code);
    assert.equal(await textOf(page, `${item} .problem dd:nth-of-type(2)`), en.cause);
    assert.ok((await textOf(page, `${item} .problem dd.fix`)).startsWith(en.fix), 'the fix as the catalogue writes it');
    assert.equal(await page.locator(`${item} .problem a`).getAttribute('href'), `/docs/en/errors/${en.code}`);
    // Every command of the fix has its copy button.
    const commands = [...en.fix.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    assert.deepEqual(await page.locator(`${item} button.copy`).evaluateAll((bs) => bs.map((b) => b.getAttribute('data-copy'))), commands);
    // The routes on that connection are red too.
    assert.deepEqual(await page.locator('#section-routes li.item').evaluateAll((lis) => lis.map((li) => [li.getAttribute('data-name'), li.getAttribute('data-state')])), [
      ['nowhere', 'red'],
      ['exo', 'red'],
    ]);
    // They point to the connection, where the cause and the fix stand once, instead of repeating them.
    assert.equal(await page.locator('#section-routes .problem').count(), 0);
    assert.equal(await page.locator('#section-routes li[data-name="exo"] .via a').getAttribute('href'), '#connections-sandbox');
    assert.match(await textOf(page, '#section-routes li[data-name="exo"] .via'), /connection sandbox/);
    assert.equal(await page.locator('#section-connectors li[data-name="sandbox-scans"] .via a').getAttribute('href'), '#connections-sandbox');
    await noSeriousViolations(page, 'the overview');

    // Keyboard: the skip link is the first stop and leads into the main region.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement.className'), 'skip');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate('document.activeElement.id'), 'main');

    // German, through the language link; the choice stays (cookie) for the next page.
    await page.getByRole('link', { name: 'Deutsch' }).click();
    await page.waitForURL('**/console/');
    assert.equal(await textOf(page, 'h1'), 'Übersicht');
    assert.equal(await page.evaluate('document.documentElement.lang'), 'de');
    assert.equal(await textOf(page, `${item} .badge`), 'Gestört');
    assert.equal(await textOf(page, `${item} .problem dd code`), de.code);
    assert.equal(await textOf(page, `${item} .problem dd:nth-of-type(2)`), de.cause);
    assert.ok((await textOf(page, `${item} .problem dd.fix`)).startsWith(de.fix));
    assert.equal(await page.locator(`${item} .problem a`).getAttribute('href'), `/docs/de/errors/${de.code}`);
    if (commands.length > 0) {
      await page.locator(`${item} button.copy`).first().click();
      await waitFor(async () => (await textOf(page, '#status')).startsWith('Kopiert: '), 5_000, 'the copy announced');
    }
    await noSeriousViolations(page, 'the German overview');
    await page.goto('/console/queue');
    assert.equal(await textOf(page, 'h1'), 'Relay-Warteschlange');
  } finally {
    await ctx.close();
  }

  // A phone's width: nothing scrolls sideways, and the page still passes.
  const narrow = await rig.context('de', { width: 360, height: 780 });
  try {
    const page = await narrow.newPage();
    for (const path of ['/console/', '/console/queue', '/console/connectors', '/console/watchers', '/console/subscriptions', '/console/config', '/console/audit', '/console/setup']) {
      await page.goto(path);
      assert.equal(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth'), true, `${path} scrolls sideways at 360 px`);
      await noSeriousViolations(page, `${path} at 360 px`);
    }
  } finally {
    await narrow.close();
  }
});
