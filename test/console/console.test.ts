/**
 * The web console in a real browser (Debian's Chromium via playwright-core) against a gateway on
 * the sandbox tenant (issue 13 item 5):
 *  - a message the relay could not deliver is retried, held, released and deleted with the queue
 *    page's buttons; the page follows the queue live (server-sent events, no reload) and each
 *    change is in the audit log page with who, what and the message ID;
 *  - a config edit is refused with its error at the right line (the editor validates as you type);
 *  - the overview, in English and German (switched with the language link), shows the connection
 *    whose secret the sandbox revoked red, with its MB code, cause, fix and documentation link;
 *  - axe-core finds no serious or critical violation on these pages, also at a phone's width; the
 *    skip link is the first stop of the keyboard and the page does not scroll sideways.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { removeSecret } from '../../src/sandbox/entra/ops.ts';
import { readUntil, waitFor } from '../support/wait.ts';
import { axe, startConsoleRig, STUCK, type ConsoleRig } from './rig.ts';

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
