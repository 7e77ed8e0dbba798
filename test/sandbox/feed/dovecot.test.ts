/**
 * The Dovecot mail feed on a real private Dovecot: LMTP deliveries, \Seen changes and expunges made
 * by another IMAP client come out as ordered FolderChange records with the folder's counts; watchers
 * of one folder share one connection and the last one closes it; a dropped connection catches up
 * from its MODSEQ (nothing lost, nothing twice); message and counts answer from Dovecot.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { ImapFlow } from 'imapflow';
import { createSandboxCa } from '../../../src/sandbox/ca.ts';
import { startDovecot, type Dovecot } from '../../../src/sandbox/dovecot.ts';
import { DovecotFeed } from '../../../src/sandbox/feed/dovecot.ts';
import type { FolderChange } from '../../../src/sandbox/mailfeed.ts';
import { dovecotImap } from '../../support/imap.ts';

let dovecot: Dovecot;
let feed: DovecotFeed;
const clients: ImapFlow[] = [];

before(async () => {
  dovecot = await startDovecot({ tls: createSandboxCa().issueServer() });
  feed = new DovecotFeed(dovecot, { reconnectDelays: [50] });
});
after(async () => {
  for (const c of clients) await c.logout().catch(() => c.close());
  await feed?.close();
  await dovecot?.stop();
});

async function deliver(to: string, subject: string): Promise<void> {
  const raw = `From: Sender <sender@example.com>\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${randomUUID()}@example.com>\r\n\r\nHello.\r\n`;
  const r = await dovecot.deliver({ from: 'sender@example.com', to: [to] }, raw);
  assert.deepEqual(r.accepted, [to]);
}

async function imap(address: string): Promise<ImapFlow> {
  const c = await dovecotImap(dovecot, address);
  clients.push(c);
  return c;
}

/** Collects changes; `next(n)` waits (bounded) until n more arrived. */
function collector() {
  const seen: FolderChange[] = [];
  let read = 0;
  return {
    fn: (c: FolderChange) => {
      seen.push(c);
    },
    all: seen,
    async next(n: number, what: string): Promise<FolderChange[]> {
      const deadline = Date.now() + 15_000;
      while (seen.length < read + n) {
        if (Date.now() > deadline) throw new Error(`${what}: ${seen.length - read} of ${n} changes after 15 s: ${JSON.stringify(seen.slice(read))}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const out = seen.slice(read, read + n);
      read += n;
      return out;
    },
    get pending(): number {
      return seen.length - read;
    },
  };
}

test('a delivery, a \\Seen change and an expunge come out as created, updated, deleted with counts', async () => {
  const box = 'feed1@sandbox.test';
  await deliver(box, 'before the watch');
  const c = collector();
  const stop = await feed.watch(box, 'INBOX', c.fn);
  try {
    await deliver(box, 'first');
    const [created] = await c.next(1, 'created');
    assert.equal(created?.kind, 'created');
    assert.equal(created?.mailbox, box);
    assert.equal(created?.folder, 'INBOX');
    assert.equal(created?.seen, false);
    assert.equal(created?.total, 2);
    assert.equal(created?.unseen, 2);
    assert.match(created?.uidValidity ?? '', /^\d+$/);

    const summary = await feed.message(box, 'INBOX', created!.uid);
    assert.equal(summary?.subject, 'first');
    assert.equal(summary?.from?.address, 'sender@example.com');
    assert.equal(summary?.seen, false);
    assert.equal(summary?.uidValidity, created?.uidValidity);

    const other = await imap(box);
    await other.mailboxOpen('INBOX');
    await other.messageFlagsAdd(String(created!.uid), ['\\Seen'], { uid: true });
    const [updated] = await c.next(1, 'updated');
    assert.equal(updated?.kind, 'updated');
    assert.equal(updated?.uid, created?.uid);
    assert.equal(updated?.seen, true);
    assert.equal(updated?.unseen, 1);
    assert.equal(updated?.total, 2);
    assert.ok(BigInt(updated!.modseq) > BigInt(created!.modseq), 'MODSEQ grows');

    await other.messageDelete(String(created!.uid), { uid: true });
    const [deleted] = await c.next(1, 'deleted');
    assert.equal(deleted?.kind, 'deleted');
    assert.equal(deleted?.uid, created?.uid);
    assert.equal(deleted?.total, 1);
    assert.equal(deleted?.unseen, 1);
    assert.equal(await feed.message(box, 'INBOX', created!.uid), undefined);

    const counts = await feed.counts(box, 'INBOX');
    assert.equal(counts.total, 1);
    assert.equal(counts.unseen, 1);
    assert.equal(counts.uidValidity, created?.uidValidity);
    assert.ok(BigInt(counts.highestModseq) >= BigInt(deleted!.modseq));
  } finally {
    stop();
  }
});

test('several deliveries in a burst are each reported once, in order', async () => {
  const box = 'feed2@sandbox.test';
  await deliver(box, 'warm-up');
  const c = collector();
  const stop = await feed.watch(box, 'INBOX', c.fn);
  try {
    for (let i = 0; i < 5; i++) await deliver(box, `burst ${i}`);
    const changes = await c.next(5, 'burst');
    assert.deepEqual(changes.map((x) => x.kind), ['created', 'created', 'created', 'created', 'created']);
    const uids = changes.map((x) => x.uid);
    assert.deepEqual([...uids].sort((a, b) => a - b), uids, 'in UID (arrival) order');
    assert.equal(new Set(uids).size, 5);
    assert.deepEqual(changes.map((x) => x.total), [2, 3, 4, 5, 6]);
  } finally {
    stop();
  }
});

test('watchers of one folder share one connection; the last unsubscribe closes it', async () => {
  const box = 'feed3@sandbox.test';
  await deliver(box, 'warm-up');
  const before = feed.watching;
  const a = collector();
  const b = collector();
  const stopA = await feed.watch(box, 'INBOX', a.fn);
  const stopB = await feed.watch(box, 'INBOX', b.fn);
  assert.equal(feed.watching, before + 1);
  await deliver(box, 'to both');
  const [fromA] = await a.next(1, 'watcher a');
  const [fromB] = await b.next(1, 'watcher b');
  assert.deepEqual(fromA, fromB);
  stopA();
  assert.equal(feed.watching, before + 1, 'still watched by b');
  await deliver(box, 'to b only');
  await b.next(1, 'watcher b again');
  assert.equal(a.pending, 0);
  stopB();
  assert.equal(feed.watching, before);
});

test('a dropped connection catches up from its MODSEQ: nothing lost, nothing twice', async () => {
  const box = 'feed4@sandbox.test';
  await deliver(box, 'kept');
  await deliver(box, 'to be read');
  await deliver(box, 'to be deleted');
  const c = collector();
  const stop = await feed.watch(box, 'INBOX', c.fn);
  try {
    const other = await imap(box);
    await other.mailboxOpen('INBOX');
    const uids = (await other.fetchAll('1:*', { uid: true }, { uid: true })).map((m) => m.uid).sort((x, y) => x - y);
    const resume = feed.disconnect(box, 'INBOX');
    // While the watch is away: one new message, one marked read, one expunged.
    await deliver(box, 'while away');
    await other.messageFlagsAdd(String(uids[1]), ['\\Seen'], { uid: true });
    await other.messageDelete(String(uids[2]), { uid: true });
    assert.equal(c.pending, 0, 'nothing is reported while disconnected');
    resume();
    const changes = await c.next(3, 'catch-up');
    const byKind = Object.fromEntries(changes.map((x) => [x.kind, x]));
    assert.equal(byKind.updated?.uid, uids[1]);
    assert.equal(byKind.updated?.seen, true);
    assert.equal(byKind.deleted?.uid, uids[2]);
    assert.ok(byKind.created && !uids.includes(byKind.created.uid));
    const last = changes[changes.length - 1]!;
    assert.equal(last.total, 3);
    assert.equal(last.unseen, 2);
    // And the watch is live again.
    await deliver(box, 'after');
    const [after] = await c.next(1, 'after reconnect');
    assert.equal(after?.kind, 'created');
    assert.equal(after?.total, 4);
    assert.equal(c.pending, 0, 'no duplicates');
  } finally {
    stop();
  }
});

test('watching a folder that does not exist fails', async () => {
  const box = 'feed5@sandbox.test';
  await deliver(box, 'warm-up');
  const before = feed.watching;
  await assert.rejects(feed.watch(box, 'No Such Folder', () => undefined));
  assert.equal(feed.watching, before);
});
