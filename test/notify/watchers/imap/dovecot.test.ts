/**
 * The IMAP watcher against a real Dovecot (CONDSTORE and QRESYNC announced, XOAUTH2 with tokens
 * Dovecot checks), end to end through the real store, the dispatcher and the webhook sink to a local
 * receiver: new mail, read and deleted messages each arrive once with the right unread count; a
 * connection Dovecot kicks reconnects and reports what arrived meanwhile once; a restart catches up
 * from the checkpoint; a crash between publishing and saving the checkpoint repeats the same ids
 * (the store keeps them once); two folders use two connections; a rebuilt folder takes a baseline.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import type { NotifyEvent, ReadStateEvent } from '../../../../src/notify/events.ts';
import { IMAP_KV_NAMESPACE, imapCheckpointKey, type StoredCheckpoint } from '../../../../src/notify/watchers/imap/index.ts';
import type { KeyValue } from '../../../../src/store/index.ts';
import { append, makeMessage, startRig, type Rig } from '../../../connector/helpers.ts';
import { gatedTokens, startPipeline, watcherFor, type Pipeline } from './helpers.ts';
import { waitFor } from '../../../support/wait.ts';

let rig: Rig;
const open: Array<{ close(): Promise<void> }> = [];

before(async () => {
  rig = await startRig();
});

after(async () => {
  for (const o of open.reverse()) await o.close().catch(() => undefined);
  await rig?.close();
});

async function pipeline(mailboxes: string[]): Promise<Pipeline> {
  const p = await startPipeline(mailboxes);
  open.push(p);
  return p;
}

const server = () => ({ port: rig.dovecot.ports.imap });

async function withImap<T>(mailbox: string, fn: (c: ImapFlow) => Promise<T>): Promise<T> {
  const c = await rig.imap(mailbox);
  try {
    return await fn(c);
  } finally {
    await c.logout().catch(() => undefined);
  }
}

async function setSeen(mailbox: string, folder: string, uid: number, seen: boolean): Promise<void> {
  await withImap(mailbox, async (c) => {
    await c.mailboxOpen(folder);
    if (seen) await c.messageFlagsAdd(String(uid), ['\\Seen'], { uid: true });
    else await c.messageFlagsRemove(String(uid), ['\\Seen'], { uid: true });
  });
}

async function remove(mailbox: string, folder: string, uid: number): Promise<void> {
  await withImap(mailbox, async (c) => {
    await c.mailboxOpen(folder);
    await c.messageDelete(String(uid), { uid: true });
  });
}

async function deliver(mailbox: string, n: number, subject: string): Promise<void> {
  const r = await rig.dovecot.deliver({ from: 'anna@fabrikam.test', to: [mailbox] }, makeMessage(n, { subject, from: 'anna@fabrikam.test', to: mailbox }));
  assert.deepEqual(r.accepted, [mailbox]);
}

const ids = (events: NotifyEvent[]) => events.map((e) => e.id);
const uniq = <T>(l: T[]) => new Set(l).size === l.length;
const uidOf = (e: NotifyEvent) => Number(('messageId' in e ? e.messageId : '').split('/').pop());

test('new mail, read and deleted reach the webhook receiver once each, with the inbox unread count', async () => {
  const box = 'ida@contoso.test';
  const [old1, old2] = await append(rig, box, 'INBOX', [makeMessage(1), makeMessage(2)]);
  const p = await pipeline([box]);
  const w = watcherFor(p, server(), [{ address: box, folders: ['INBOX'] }], rig.tokens);
  open.push(w);
  await w.start();
  assert.deepEqual(w.status().map((s) => [s.mailbox, s.state]), [[box, 'watching']]);
  // The two messages that were there at the start are the baseline: no events for them.
  assert.equal(p.published.length, 0);

  await deliver(box, 3, 'Quarterly report');
  const [created] = await waitFor(() => p.receiver.of(box, 'message.new').length === 1 && p.receiver.of(box, 'message.new'), 20_000, 'message.new');
  assert.ok(created && created.type === 'message.new');
  assert.equal(created.subject, 'Quarterly report');
  assert.deepEqual(created.sender, { address: 'anna@fabrikam.test', name: 'Sender 3' });
  assert.equal(created.folder, 'INBOX');
  assert.equal(created.unreadCount, 3, 'two old unread messages and the new one');
  assert.match(created.receivedAt, /^\d{4}-\d\d-\d\dT/);
  const newUid = uidOf(created);
  assert.ok(newUid > old2!);

  await setSeen(box, 'INBOX', newUid, true);
  const [read] = await waitFor(() => p.receiver.of(box, 'message.read-state').length === 1 && p.receiver.of(box, 'message.read-state'), 20_000, 'read-state');
  assert.ok(read && read.type === 'message.read-state');
  assert.equal(read.read, true);
  assert.equal(read.unreadCount, 2);
  assert.equal(read.messageId, created.messageId);

  // Unread again, then read again: three distinct changes (MODSEQ keys), each reported once.
  await setSeen(box, 'INBOX', old1!, true);
  await waitFor(() => p.receiver.of(box, 'message.read-state').length === 2, 20_000, 'second read-state');
  await setSeen(box, 'INBOX', old1!, false);
  await waitFor(() => p.receiver.of(box, 'message.read-state').length === 3, 20_000, 'unread again');
  const states = p.receiver.of(box, 'message.read-state') as ReadStateEvent[];
  assert.deepEqual(states.map((s) => [uidOf(s), s.read, s.unreadCount]), [[newUid, true, 2], [old1, true, 1], [old1, false, 2]]);

  await remove(box, 'INBOX', newUid);
  const [gone] = await waitFor(() => p.receiver.of(box, 'message.deleted').length === 1 && p.receiver.of(box, 'message.deleted'), 20_000, 'message.deleted');
  assert.ok(gone && gone.type === 'message.deleted');
  assert.equal(gone.messageId, created.messageId);
  assert.equal(gone.unreadCount, 2, 'the deleted message was read: still two unread');
  // A deleted unread message lowers the count.
  await remove(box, 'INBOX', old2!);
  await waitFor(() => p.receiver.of(box, 'message.deleted').length === 2, 20_000, 'second deletion');
  assert.equal((p.receiver.of(box, 'message.deleted')[1] as { unreadCount?: number }).unreadCount, 1);

  const all = p.receiver.of(box);
  assert.deepEqual(all.map((e) => e.type), ['message.new', 'message.read-state', 'message.read-state', 'message.read-state', 'message.deleted', 'message.deleted']);
  assert.ok(uniq(ids(all)), 'no event twice at the receiver');
  assert.deepEqual(all.map((e) => e.seq), [1, 2, 3, 4, 5, 6]);
  assert.equal(w.folders[0]!.connects, 1, 'one connection throughout');
  assert.equal(w.folders[0]!.mode, 'qresync', 'Dovecot: MODSEQ keys and VANISHED');

  // The checkpoint says where the folder is, with CONDSTORE's HIGHESTMODSEQ.
  const cp = JSON.parse((await p.store.store.kv.get(IMAP_KV_NAMESPACE, imapCheckpointKey(box, 'INBOX')))!) as StoredCheckpoint;
  assert.equal(cp.lastUid, newUid);
  assert.equal(cp.uids, String(old1));
  assert.equal(cp.unseen, String(old1));
  assert.match(cp.modseq ?? '', /^\d+$/);
  await w.close();
  assert.deepEqual(w.status().map((s) => s.state), ['stopped']);
});

function doveadm(...args: string[]): string {
  return execFileSync('doveadm', ['-c', join(rig.dovecot.dir, 'dovecot.conf'), ...args], { encoding: 'utf8' });
}

test('a connection Dovecot kicks reconnects and reports the mail that arrived meanwhile exactly once', async () => {
  const box = 'kim@contoso.test';
  await append(rig, box, 'INBOX', [makeMessage(1)]);
  const p = await pipeline([box]);
  const gate = gatedTokens(rig.tokens);
  const w = watcherFor(p, server(), [{ address: box, folders: ['INBOX'] }], gate.tokens);
  open.push(w);
  await w.start();
  await deliver(box, 2, 'before the kick');
  await waitFor(() => p.receiver.of(box, 'message.new').length === 1, 20_000, 'first message');

  // The reconnect waits for its token until mail has arrived, so the catch-up (not IDLE) must find it.
  gate.hold();
  doveadm('kick', box);
  await waitFor(() => gate.calls() === 2, 20_000, 'reconnect attempt');
  assert.equal(w.status()[0]!.state, 'reconnecting');
  assert.equal(w.status()[0]!.error?.code, 'MB_CONNECTOR_SESSION_LOST');
  await deliver(box, 3, 'while disconnected 1');
  await deliver(box, 4, 'while disconnected 2');
  gate.release();
  await waitFor(() => p.receiver.of(box, 'message.new').length === 3, 20_000, 'catch-up after the reconnect');
  await waitFor(() => w.status()[0]!.state === 'watching', 20_000, 'watching again');
  assert.equal(w.status()[0]!.error, undefined, 'the error is cleared once watching');

  // IDLE works on the new connection, and nothing earlier comes again.
  await deliver(box, 5, 'after the reconnect');
  await waitFor(() => p.receiver.of(box, 'message.new').length === 4, 20_000, 'IDLE after the reconnect');
  const subjects = p.receiver.of(box, 'message.new').map((e) => (e.type === 'message.new' ? e.subject : ''));
  assert.deepEqual(subjects, ['before the kick', 'while disconnected 1', 'while disconnected 2', 'after the reconnect']);
  assert.ok(uniq(ids(p.receiver.of(box))));
  assert.equal(p.published.filter((x) => x.duplicate).length, 0, 'nothing was even published twice');
  assert.equal(w.folders[0]!.connects, 2);
  assert.ok(p.problems.some((x) => x.mailbox === box && x.error.code === 'MB_CONNECTOR_SESSION_LOST'));

  // A socket that dies without a BYE (network failure) is the same story.
  assert.ok(w.folders[0]!.dropConnection());
  await waitFor(() => w.folders[0]!.connects === 3 && w.status()[0]!.state === 'watching', 20_000, 'reconnect after a dropped socket');
  await deliver(box, 6, 'after the drop');
  await waitFor(() => p.receiver.of(box, 'message.new').length === 5, 20_000, 'after the drop');
  await w.close();
});

test('restart: changes made while the watcher was stopped are reported once each; a second restart reports nothing', async () => {
  const box = 'rita@contoso.test';
  const [u1, u2, u3] = await append(rig, box, 'INBOX', [makeMessage(1), makeMessage(2), makeMessage(3)]);
  const p = await pipeline([box]);
  const mk = () => watcherFor(p, server(), [{ address: box, folders: ['INBOX'] }], rig.tokens);
  const w1 = mk();
  await w1.start();
  await w1.close();
  assert.equal(p.published.length, 0, 'baseline only');

  // While stopped: two arrive, one old is read, one old is deleted.
  await deliver(box, 4, 'offline 1');
  await deliver(box, 5, 'offline 2');
  await setSeen(box, 'INBOX', u1!, true);
  await remove(box, 'INBOX', u2!);

  const w2 = mk();
  open.push(w2);
  await w2.start();
  await waitFor(() => p.receiver.of(box).length === 4, 20_000, 'catch-up events');
  const got = p.receiver.of(box);
  assert.deepEqual(got.map((e) => [e.type, uidOf(e)]).slice(0, 2), [['message.deleted', u2], ['message.read-state', u1]]);
  assert.deepEqual(got.slice(2).map((e) => e.type === 'message.new' && e.subject), ['offline 1', 'offline 2']);
  // Unread: u3 and the two new ones.
  assert.deepEqual(got.map((e) => ('unreadCount' in e ? e.unreadCount : -1)), [2, 1, 2, 3]);
  await w2.close();

  const before = p.published.length;
  const w3 = mk();
  open.push(w3);
  await w3.start();
  await deliver(box, 6, 'after the second restart');
  await waitFor(() => p.receiver.of(box).length === 5, 20_000, 'only the new message');
  assert.equal(p.published.length, before + 1, 'nothing published again');
  assert.ok(uniq(ids(p.receiver.of(box))));
  assert.ok(u3! > 0);
  await w3.close();
});

test('crash between publishing and saving the checkpoint: the same event ids again, the receiver gets each once', async () => {
  const box = 'carl@contoso.test';
  await append(rig, box, 'INBOX', [makeMessage(1)]);
  const p = await pipeline([box]);
  const real = p.store.store.kv;
  let failNext = false;
  const kv: KeyValue = {
    get: (n, k) => real.get(n, k),
    list: (n) => real.list(n),
    delete: (n, k) => real.delete(n, k),
    add: (n, k, v) => real.add(n, k, v),
    async set(n, k, v) {
      if (failNext) {
        failNext = false;
        throw new Error('simulated crash before the checkpoint was written');
      }
      return real.set(n, k, v);
    },
  };
  const w = watcherFor(p, server(), [{ address: box, folders: ['INBOX'] }], rig.tokens, { kv });
  open.push(w);
  await w.start();
  failNext = true;
  await deliver(box, 2, 'crash window');
  // Published, the checkpoint write fails, the folder reconnects and catches up from the old checkpoint.
  await waitFor(() => p.published.length === 2, 20_000, 'published twice');
  assert.deepEqual(p.published.map((x) => x.duplicate), [false, true]);
  assert.equal(p.published[0]!.event.id, p.published[1]!.event.id);
  await waitFor(() => p.receiver.of(box).length === 1, 20_000, 'delivered');
  await deliver(box, 3, 'after the crash');
  await waitFor(() => p.receiver.of(box).length === 2, 20_000, 'next message');
  assert.ok(uniq(ids(p.receiver.of(box))));
  await w.close();
});

test('two folders: two connections; mail in a subfolder carries the inbox unread count', async () => {
  const box = 'toni@contoso.test';
  await append(rig, box, 'INBOX', [makeMessage(1), makeMessage(2)]);
  await append(rig, box, 'Scans', [makeMessage(3)]);
  const p = await pipeline([box]);
  const w = watcherFor(p, server(), [{ address: box, folders: ['INBOX', 'Scans'] }], rig.tokens);
  open.push(w);
  await w.start();
  assert.deepEqual(w.folders.map((f) => [f.folder, f.connects, f.state]), [['INBOX', 1, 'watching'], ['Scans', 1, 'watching']]);
  const sessions = doveadm('who', box).split('\n').filter((l) => l.includes(box));
  assert.equal(sessions.length, 1, 'doveadm who: one line per user');
  assert.match(sessions[0]!, /\b2\b/, `two IMAP sessions for ${box}: ${sessions[0]}`);

  await append(rig, box, 'Scans', [makeMessage(4, { subject: 'scan 4' })]);
  await waitFor(() => p.receiver.of(box).length === 1, 20_000, 'subfolder message');
  const e = p.receiver.of(box)[0]!;
  assert.ok(e.type === 'message.new');
  assert.equal(e.folder, 'Scans');
  assert.equal(e.subject, 'scan 4');
  assert.equal(e.unreadCount, 2, 'the inbox has two unread; the scans folder does not count');
  await deliver(box, 5, 'inbox mail');
  await waitFor(() => p.receiver.of(box).length === 2, 20_000, 'inbox message');
  assert.equal(p.receiver.of(box)[1]!.type === 'message.new' && p.receiver.of(box)[1]!.folder, 'INBOX');
  await w.close();
});

test('a rebuilt folder (new UIDVALIDITY) takes a new baseline with MB_WATCH_IMAP_UIDVALIDITY_CHANGED and reports no old mail', async () => {
  const box = 'uwe@contoso.test';
  await append(rig, box, 'Scans', [makeMessage(1)]);
  const p = await pipeline([box]);
  const mk = () => watcherFor(p, server(), [{ address: box, folders: ['Scans'] }], rig.tokens);
  const w1 = mk();
  await w1.start();
  await w1.close();
  await withImap(box, (c) => c.mailboxDelete('Scans'));
  await new Promise((r) => setTimeout(r, 1100)); // Dovecot derives UIDVALIDITY from the clock
  await append(rig, box, 'Scans', [makeMessage(1), makeMessage(2)]);
  const w2 = mk();
  open.push(w2);
  await w2.start();
  const warn = p.problems.find((x) => x.error.code === 'MB_WATCH_IMAP_UIDVALIDITY_CHANGED');
  assert.ok(warn, 'warned');
  assert.match(warn.error.explain('en').cause, /Scans changed from \d+ to \d+/);
  assert.match(warn.error.explain('de').fix, /Nichts zu tun/);
  await append(rig, box, 'Scans', [makeMessage(3, { subject: 'after the rebuild' })]);
  await waitFor(() => p.receiver.of(box).length === 1, 20_000, 'new mail after the rebuild');
  const first = p.receiver.of(box)[0]!;
  assert.equal(first.type === 'message.new' && first.subject, 'after the rebuild');
  await w2.close();
});
