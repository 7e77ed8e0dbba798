/**
 * The EWS watcher in streaming mode, end to end: real Dovecot mailboxes → sandbox EWS emulator →
 * watcher → store → dispatcher → webhook sink → a local receiver. Checks what the receiver gets:
 * each change once, with the right unread count, through drops, restarts and back-off.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ewsWatchSchema, createEwsWatcher, type EwsWatcher, type EwsWatchHooks } from '../../../../src/notify/watchers/ews/index.ts';
import type { WatchedMailbox } from '../../../../src/notify/watchers/types.ts';
import { Clock } from '../../helpers.ts';
import { startRig, type Rig } from './rig.ts';
import { waitFor } from '../../../support/wait.ts';

let rig: Rig;
const watchers: EwsWatcher[] = [];

before(async () => {
  rig = await startRig();
});
after(async () => {
  for (const w of watchers) await w.close();
  await rig?.close();
});

function watcher(mailboxes: string[], options: Record<string, unknown> = {}, hooks: EwsWatchHooks = {}): EwsWatcher {
  const w = createEwsWatcher({
    listener: 'ews-test',
    mailboxes: mailboxes.map((address): WatchedMailbox => ({ address, folders: ['inbox'] })),
    authorization: rig.authorization,
    options: ewsWatchSchema.parse({ url: rig.ews.url, ...options }),
    ctx: rig.ctx,
    ca: rig.ca.certPem,
    hooks,
  });
  watchers.push(w);
  return w;
}

/** Waits until the dispatcher has delivered everything published so far. */
async function settled(): Promise<void> {
  await waitFor(() => rig.received.length === new Set(rig.received.map((r) => r.id)).size, 5000, 'receiver ids unique');
  await rig.dispatcher.runOnce();
}

function ids(mailbox: string, type: 'message.new' | 'message.read-state' | 'message.deleted'): string[] {
  return rig.at(mailbox, type).map((e) => e.id);
}

function assertNoDuplicates(): void {
  const all = rig.received.map((r) => r.id);
  assert.equal(all.length, new Set(all).size, `duplicate deliveries: ${all.length - new Set(all).size}`);
}

test('a delivered message arrives once with sender, subject and unread count; read and delete follow; affinity cookie is kept', async () => {
  const anna = 'anna@contoso.test';
  await rig.deliver(anna, 'Already there'); // before watching: not new to anybody
  const w = watcher([anna, 'ben@contoso.test']);
  await w.start();
  assert.deepEqual(w.status().map((s) => [s.mailbox, s.state]), [[anna, 'watching'], ['ben@contoso.test', 'watching']], JSON.stringify([w.status(), rig.problems.map((p) => p.error.message)]));

  await rig.deliver(anna, 'Rechnung März');
  await waitFor(() => rig.at(anna, 'message.new').length >= 1, 10_000, 'message.new');
  const [ev] = rig.at(anna, 'message.new');
  assert.equal(ev?.type, 'message.new');
  if (ev?.type !== 'message.new') return;
  assert.equal(ev.subject, 'Rechnung März');
  assert.deepEqual(ev.sender, { address: 'anna.schmidt@fabrikam.test', name: 'Anna Schmidt' });
  assert.equal(ev.unreadCount, 2, 'both inbox messages are unread');
  assert.equal(ev.folder, 'inbox');
  assert.ok(!Number.isNaN(Date.parse(ev.receivedAt)));

  // Read over IMAP → read-state with the new count; the item's ChangeKey makes it a new change.
  const c = await rig.imap(anna);
  await c.mailboxOpen('INBOX');
  const uids = (await c.search({ all: true }, { uid: true })) as number[];
  const newest = Math.max(...uids);
  await c.messageFlagsAdd(String(newest), ['\\Seen'], { uid: true });
  await waitFor(() => rig.at(anna, 'message.read-state').length >= 1, 10_000, 'read-state');
  const [rs] = rig.at(anna, 'message.read-state');
  assert.equal(rs?.type, 'message.read-state');
  if (rs?.type !== 'message.read-state') return;
  assert.equal(rs.read, true);
  assert.equal(rs.unreadCount, 1);
  assert.equal(rs.messageId, ev.messageId);

  // Deleted: expunge it.
  await c.messageDelete(String(newest), { uid: true });
  await waitFor(() => rig.at(anna, 'message.deleted').length >= 1, 10_000, 'message.deleted');
  assert.equal(rig.at(anna, 'message.deleted')[0]?.messageId, ev.messageId);

  // A reconnect catches up with SyncFolderItems: everything it finds was reported already.
  const before = w.groups[0]!.connections;
  w.groups[0]!.reconnect();
  await waitFor(() => w.groups[0]!.connections > before && w.status().every((s) => s.state === 'watching'), 10_000, 'reconnected');
  await settled();
  assert.equal(ids(anna, 'message.new').length, 1);
  assert.equal(ids(anna, 'message.read-state').length, 1);
  assert.equal(ids(anna, 'message.deleted').length, 1);
  assertNoDuplicates();

  // Affinity: one group, one cookie issued (the first Subscribe); later requests sent it back.
  assert.equal(w.groups.length, 1);
  assert.equal(rig.ews.stats.affinityCookies, 1);
  assert.ok((rig.ews.stats.operations.Subscribe ?? 0) >= 2);
  await w.close();
});

test('a stream dropped in the middle of a notification loses nothing and delivers nothing twice', async () => {
  const ben = 'ben@contoso.test';
  const w = watcher([ben]);
  await w.start();
  const start = rig.at(ben, 'message.new').length;
  // The next notification envelope is cut half-way; the events go back to the subscription's queue.
  assert.equal(rig.ews.dropStreams({ midEnvelope: true }), 1);
  await rig.deliver(ben, 'Cut 1');
  await rig.deliver(ben, 'Cut 2');
  await waitFor(() => rig.ews.stats.streams.dropped >= 1, 10_000, 'the emulator dropped the stream');
  await rig.deliver(ben, 'After the drop');
  await waitFor(() => rig.at(ben, 'message.new').length - start >= 3, 15_000, 'three new messages');
  await waitFor(() => w.status().every((s) => s.state === 'watching'), 10_000, 'watching again');
  await settled();
  const subjects = rig.at(ben, 'message.new').slice(start).map((e) => (e.type === 'message.new' ? e.subject : ''));
  assert.deepEqual([...subjects].sort(), ['After the drop', 'Cut 1', 'Cut 2']);
  assert.ok(w.groups[0]!.connections >= 2, 'reconnected');
  assertNoDuplicates();
  await w.close();
});

test('a restart with mail arriving and being read while stopped reports each change once', async () => {
  const cara = 'cara@contoso.test';
  await rig.deliver(cara, 'Before');
  const first = watcher([cara]);
  await first.start();
  await rig.deliver(cara, 'Seen live');
  await waitFor(() => rig.at(cara, 'message.new').length === 1, 10_000, 'live message');
  await first.close();
  const subscribes = rig.ews.stats.operations.Subscribe ?? 0;

  await rig.deliver(cara, 'While stopped 1');
  await rig.deliver(cara, 'While stopped 2');
  const c = await rig.imap(cara);
  await c.mailboxOpen('INBOX');
  const uids = ((await c.search({ all: true }, { uid: true })) as number[]).sort((a, b) => a - b);
  await c.messageFlagsAdd(String(uids[0]), ['\\Seen'], { uid: true }); // 'Before' read while stopped

  const second = watcher([cara]);
  await second.start();
  await waitFor(() => rig.at(cara, 'message.new').length >= 3 && rig.at(cara, 'message.read-state').length >= 1, 15_000, 'caught up').catch((e: Error) => {
    throw new Error(`${e.message}: ${JSON.stringify([rig.at(cara), second.status(), rig.problems.map((p) => p.error.message)])}`);
  });
  await settled();
  const subjects = rig.at(cara, 'message.new').map((e) => (e.type === 'message.new' ? e.subject : ''));
  assert.deepEqual([...subjects].sort(), ['Seen live', 'While stopped 1', 'While stopped 2']);
  const rs = rig.at(cara, 'message.read-state');
  assert.equal(rs.length, 1);
  assert.equal(rs[0]?.type === 'message.read-state' && rs[0].read, true);
  assert.equal(rs[0]?.type === 'message.read-state' && rs[0].unreadCount, 3);
  // The stored subscription was still alive: reused, not made anew.
  assert.equal(rig.ews.stats.operations.Subscribe ?? 0, subscribes);
  assertNoDuplicates();
  await second.close();
});

test('ErrorServerBusy is waited out for BackOffMilliseconds (fault and message shapes), then watching goes on', async () => {
  const dora = 'dora@contoso.test';
  const busyBefore = rig.ews.stats.busy;
  const problemsBefore = rig.problems.length;
  rig.ews.busy(2, 300, 'fault');
  const w = watcher([dora]);
  await w.start();
  assert.equal(rig.ews.stats.busy - busyBefore, 2);
  assert.deepEqual(w.status().map((s) => s.state), ['watching']);
  const busy = rig.problems.slice(problemsBefore).filter((p) => p.error.code === 'MB_EWS_SERVER_BUSY');
  assert.equal(busy.length, 2);
  assert.equal(busy[0]!.error.params.seconds, 0); // 300 ms, rounded

  // The HTTP 200 shape, on a request of the running watcher (the reconnect's GetStreamingEvents or catch-up).
  rig.ews.busy(1, 250, 'message');
  const conns = w.groups[0]!.connections;
  w.groups[0]!.reconnect();
  await waitFor(() => rig.ews.stats.busy - busyBefore === 3 && w.groups[0]!.connections > conns && w.status()[0]?.state === 'watching', 15_000, 'past the busy answer');
  await rig.deliver(dora, 'After back-off');
  await waitFor(() => rig.at(dora, 'message.new').length === 1, 10_000, 'delivered after back-off');
  await w.close();
});

test('a stream silent for twice the heartbeat is reconnected and reported; nothing is lost', async () => {
  const anna = 'anna@contoso.test';
  const problemsBefore = rig.problems.length;
  const start = rig.at(anna, 'message.new').length;
  // The emulator heartbeats every 40 s; a read timeout of 300 ms makes every pause a lost stream.
  const w = watcher([anna], {}, { timing: { readTimeoutMs: 300, minRetryMs: 50 } });
  await w.start();
  await waitFor(() => w.groups[0]!.connections >= 3, 15_000, 'reconnects after silence');
  assert.ok(rig.problems.slice(problemsBefore).some((p) => p.error.code === 'MB_EWS_STREAM_LOST'));
  await rig.deliver(anna, 'Between reconnects');
  await waitFor(() => rig.at(anna, 'message.new').length === start + 1, 15_000, 'delivered');
  await settled();
  assertNoDuplicates();
  await w.close();
});

test('a subscription Exchange no longer knows is made anew, and SyncFolderItems catches up what it missed', async () => {
  const [ben, dora] = ['ben@contoso.test', 'dora@contoso.test'];
  const first = watcher([ben, dora]);
  await first.start();
  // dora may still hold a subscription from an earlier test on another backend: the group's
  // affinity makes Exchange refuse it, and the watcher subscribes again. Wait until that settled.
  let kept: string | undefined;
  await waitFor(() => {
    void rig.store.store.kv.get('watch-ews', `sub:${dora}`).then((v) => (kept = v));
    return kept !== undefined && first.groups[0]!.members.every((m) => m.subId && m.state === 'watching');
  }, 10_000, 'both subscribed');
  await first.close();
  await rig.deliver(dora, 'Only the catch-up sees this');
  // Exchange forgot dora's subscription (as after a server restart): its stored id no longer resolves.
  const raw = (await rig.store.store.kv.get('watch-ews', `sub:${dora}`))!;
  const stored = JSON.parse(raw) as { id: string; url: string };
  const bytes = Buffer.from(stored.id, 'base64');
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
  await rig.store.store.kv.set('watch-ews', `sub:${dora}`, JSON.stringify({ ...stored, id: bytes.toString('base64') }));
  const start = rig.at(dora, 'message.new').length;
  const subscribes = rig.ews.stats.operations.Subscribe ?? 0;

  const second = watcher([ben, dora]);
  await second.start();
  await waitFor(() => rig.at(dora, 'message.new').length > start, 15_000, 'caught up');
  await waitFor(() => second.status().every((s) => s.state === 'watching'), 10_000, 'watching');
  await settled();
  assert.deepEqual(rig.at(dora, 'message.new').slice(start).map((e) => (e.type === 'message.new' ? e.subject : '')), ['Only the catch-up sees this']);
  assert.equal((rig.ews.stats.operations.Subscribe ?? 0) - subscribes, 1, 'only the lost subscription was made again');
  assert.notEqual(JSON.parse((await rig.store.store.kv.get('watch-ews', `sub:${dora}`))!).id, bytes.toString('base64'));
  assertNoDuplicates();
  await second.close();
});

test('back-off on a manual clock: drops after a healthy period each wait the first step again; a busy answer waits BackOffMilliseconds once and does not grow the back-off', async () => {
  const eva = 'anna@contoso.test';
  const clock = new Clock();
  const w = createEwsWatcher({
    listener: 'ews-backoff',
    mailboxes: [{ address: eva, folders: ['inbox'] }],
    authorization: rig.authorization,
    options: ewsWatchSchema.parse({ url: rig.ews.url }),
    ctx: { ...rig.ctx, now: clock.now },
    ca: rig.ca.certPem,
    hooks: { timing: { minRetryMs: 40, maxRetryMs: 60_000 } },
  });
  watchers.push(w);
  await w.start();
  const g = w.groups[0]!;
  const drop = async (healthyFor: number) => {
    const before = g.connections;
    clock.advance(healthyFor);
    assert.equal(rig.ews.dropStreams(), 1);
    await waitFor(() => g.connections > before && w.status()[0]?.state === 'watching', 10_000, 'reconnected');
  };
  // Five drops, each after 20 s of healthy streaming: each waits the first step, none doubles.
  for (let i = 0; i < 5; i++) await drop(20_000);
  assert.deepEqual(g.waits.slice(-5), [40, 40, 40, 40, 40]);
  // Drops in quick succession (no healthy period between them) keep growing from there.
  await drop(0);
  await drop(0);
  assert.deepEqual(g.waits.slice(-2), [80, 160]);

  // ErrorServerBusy as a stream message: BackOffMilliseconds, once.
  rig.ews.busy(1, 300, 'message');
  const conns = g.connections;
  g.reconnect();
  await waitFor(() => g.connections > conns + 1 && w.status()[0]?.state === 'watching', 10_000, 'past the busy message');
  assert.equal(g.waits.at(-1), 300);
  await drop(20_000);
  assert.equal(g.waits.at(-1), 40, 'a healthy period after the busy answer: the first step');
  // As a fault on the reconnect after a quick drop: 80 ms for the drop, then 300 ms for the busy
  // answer, which is not a failure of its own: the next quick drop waits 160, not 320.
  rig.ews.busy(1, 300, 'fault');
  await drop(0);
  assert.deepEqual(g.waits.slice(-2), [80, 300]);
  await drop(0);
  assert.equal(g.waits.at(-1), 160);
  await w.close();
});
