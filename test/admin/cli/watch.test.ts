/**
 * `mailbridge watch` as a child process: the watchers' state written by a gateway, the last events,
 * and new events followed live from the store (published here the way the dispatcher does).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newMessage, readStateChanged } from '../../../src/notify/events.ts';
import { STATUS_KEY, STATUS_NAMESPACE, type WatchStatus } from '../../../src/notify/watchers/status.ts';
import { openStore, type Store } from '../../../src/store/index.ts';
import { MAIN, NODE, runCli } from './harness.ts';
import { waitFor } from '../../support/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'mb-watch-cli-'));
const cfg = join(dir, 'mailbridge.yaml');
let store: Store;

async function publish(e: ReturnType<typeof newMessage> | ReturnType<typeof readStateChanged>): Promise<void> {
  const { seq: _seq, ...body } = e;
  await store.notify.publish({ id: e.id, mailbox: e.mailbox, type: e.type, body: JSON.stringify(body) }, Date.now());
}

before(async () => {
  writeFileSync(cfg, JSON.stringify({ store: { driver: 'sqlite', path: join(dir, 'mb.db') } }));
  store = await openStore({ driver: 'sqlite', path: join(dir, 'mb.db') });
});

after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('without a running gateway: says so and how to start one (English and German)', async () => {
  const en = await runCli(['--config', cfg, 'watch', '--once']);
  assert.equal(en.code, 0, en.stderr);
  assert.match(en.stdout, /No watcher is running\. Start `mailbridge serve` with groups under notify\.watch/);
  const de = await runCli(['--config', cfg, '--lang', 'de', 'watch', '--once']);
  assert.match(de.stdout, /Kein Watcher läuft\./);
});

test('--once: the state per group, mailboxes needing attention with their MB code, and the last events', async () => {
  const status: WatchStatus = {
    updatedAt: new Date().toISOString(),
    publicUrl: 'https://mb.contoso.com:8443',
    groups: [{ group: 'sales', kind: 'graph', listeners: 2, mailboxes: 3, states: { watching: 2, failed: 1 } }],
    attention: [{ mailbox: 'cara@contoso.com', group: 'sales', listener: 'sales/contoso', state: 'failed', since: new Date().toISOString(), error: { code: 'MB_TEST', message: 'subscription refused' } }],
    problems: [],
  };
  await store.kv.set(STATUS_NAMESPACE, STATUS_KEY, JSON.stringify(status));
  await publish(newMessage({ type: 'message.new', mailbox: 'anna@contoso.com', messageId: 'm-1', folder: 'inbox', subject: 'Angebot 4711', sender: { address: 'bob@fabrikam.com' }, receivedAt: new Date().toISOString(), unreadCount: 3 }));
  await publish(readStateChanged({ type: 'message.read-state', mailbox: 'anna@contoso.com', messageId: 'm-1', folder: 'inbox', read: true, unreadCount: 2, changeKey: 'ck2' }));
  const r = await runCli(['--config', cfg, 'watch', '--once']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Notification URL for Microsoft: https:\/\/mb\.contoso\.com:8443/);
  assert.match(r.stdout, /sales \(graph\): 3 mailboxes, 2 listeners — watching 2, failed 1/);
  assert.match(r.stdout, /cara@contoso\.com \[sales\] failed: MB_TEST subscription refused/);
  assert.match(r.stdout, /anna@contoso\.com {2}#1 {2}new\s+"Angebot 4711" from bob@fabrikam\.com \[inbox\] \(unread: 3\)/);
  assert.match(r.stdout, /anna@contoso\.com {2}#2 {2}read\s+m-1…\s*\(unread: 2\)/);
  const de = await runCli(['--config', cfg, '--lang', 'de', 'watch', '--once']);
  assert.match(de.stdout, /sales \(graph\): 3 Postfächer, 2 Listener — überwacht 2, fehlgeschlagen 1/);
  await store.kv.set(STATUS_NAMESPACE, STATUS_KEY, JSON.stringify({ ...status, groups: [{ ...status.groups[0]!, listeners: 1 }] }));
  assert.match((await runCli(['--config', cfg, 'watch', '--once'])).stdout, /3 mailboxes, 1 listener — /);
  // --json prints what sinks receive: the webhook envelope around the event.
  const json = await runCli(['--config', cfg, 'watch', '--once', '--json', '--last', '1']);
  const printed = JSON.parse(json.stdout) as { type: string; timestamp: string; data: { mailbox: string; messageId: string; seq: number } };
  assert.equal(printed.type, 'message.read-state');
  assert.match(printed.timestamp, /^\d{4}-\d\d-\d\dT/);
  assert.equal(printed.data.mailbox, 'anna@contoso.com');
  assert.equal(printed.data.messageId, 'm-1');
});

test('follows new events live, in publication order, filtered by --mailbox', async () => {
  const child = spawn(NODE, [MAIN, '--config', cfg, 'watch', '--last', '0', '--mailbox', 'ben@contoso.com', '--poll-ms', '100'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const live = () => [...out.matchAll(/ben@contoso\.com {2}#(\d+) {2}new\s+"(live \d+)"/g)].map((m) => [m[2], Number(m[1])]);
  try {
    // It has taken its cursor once it says it waits; events from then on are shown.
    await waitFor(() => out.includes('waiting for new events'), 15_000, 'watch to say it waits for new events');
    for (const [mb, n] of [['ben@contoso.com', 1], ['anna@contoso.com', 9], ['ben@contoso.com', 2]] as const) {
      await publish(newMessage({ type: 'message.new', mailbox: mb, messageId: `live-${mb}-${n}`, folder: 'inbox', subject: `live ${n}`, receivedAt: new Date().toISOString() }));
    }
    await waitFor(() => live().length >= 2, 15_000, 'two live events');
    assert.deepEqual(live(), [['live 1', 1], ['live 2', 2]]);
    assert.doesNotMatch(out, /live 9/);
  } finally {
    child.kill('SIGINT');
    await new Promise((r) => child.once('exit', r));
  }
});

test('--once names subscriptions whose mailboxes no watch group watches', async () => {
  const other = join(dir, 'watched.yaml');
  writeFileSync(
    other,
    JSON.stringify({
      store: { driver: 'sqlite', path: join(dir, 'mb.db') },
      connections: { c: { tenantId: '0b7c3f3e-0000-4000-8000-000000000001', clientId: '0b7c3f3e-0000-4000-8000-000000000002', clientSecret: 'x' } },
      notify: { watch: { groups: { sales: { kind: 'imap', listeners: [{ connection: 'c' }], mailboxes: ['anna@contoso.com'] } } } },
    }),
  );
  const base = { kind: 'webhook', events: [], params: {}, privacy: 'full' as const, state: 'active' as const, createdAt: 1, updatedAt: 1 };
  await store.notify.createSubscription({ ...base, id: 'sub_watched', mailboxes: ['anna@contoso.com'] });
  await store.notify.createSubscription({ ...base, id: 'sub_typo', mailboxes: ['anna@contoso.com', 'ana@contoso.com'] });
  const r = await runCli(['--config', other, 'watch', '--once']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /! subscription sub_typo: no group watches ana@contoso\.com \(MB_NOTIFY_MAILBOX_NOT_WATCHED\)/);
  assert.ok(!r.stdout.includes('sub_watched'), r.stdout);
  const de = await runCli(['--config', other, '--lang', 'de', 'watch', '--once']);
  assert.match(de.stdout, /! Abonnement sub_typo: keine Gruppe überwacht ana@contoso\.com/);
});
