/**
 * Two relay nodes on one store, with bodies in the store (StoreSpool) and claims with leases, on a
 * manual clock (the nodes' and the store's, which times the leases): a node's claim is taken over
 * once its lease has run out, the other node delivers the message from the body the first one
 * accepted, and the first node's late result is refused (fenced by the claim token). A running
 * delivery whose claim was taken over is aborted at the next lease renewal. The contract test holds
 * both drivers to the store side; the three-node kill -9 test (test/relay/crash/cluster.test.ts)
 * does the same with real processes on PostgreSQL, and clocks.test.ts with node clocks ten minutes
 * off the database server's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Queue } from '../../../src/relay/queue/index.ts';
import { QueueManager } from '../../../src/relay/queue/manager.ts';
import { parseSchedule } from '../../../src/relay/queue/schedule.ts';
import { StoreSpool } from '../../../src/relay/queue/store-spool.ts';
import type { SendResult } from '../../../src/relay/transport.ts';
import { openStore, type Store } from '../../../src/store/index.ts';
import type { Clock } from '../../../src/util/clock.ts';
import { collectingLogger, ManualClock, RecordingTransport, type LogLine } from '../helpers/index.ts';
import { enqueue } from '../helpers/queue.ts';
import { tempDir } from '../../support/temp.ts';
import { waitFor } from '../../support/wait.ts';

const LEASE_MS = 3_000;

/** The store's lease clock is the nodes' manual clock: a claim's lease runs out as the test advances it. */
const storeOn = (dir: string, clock: ManualClock) => openStore({ driver: 'sqlite', path: join(dir, 'mb.db') }, { clock: () => clock.now() });

function node(store: Store, clock: ManualClock, name: string): { queue: Queue; lines: LogLine[] } {
  const { log, lines } = collectingLogger();
  const queue = new Queue({
    repo: store.queue,
    spool: new StoreSpool(store.queue),
    log,
    clock: clock as Clock,
    retrySchedule: parseSchedule('1m'),
    hostname: 'relay.test',
    bounces: { notify: 'none' },
    cluster: { node: name, leaseMs: LEASE_MS },
  });
  return { queue, lines };
}

test('a claim whose lease ran out is taken over; the other node delivers from the stored body; the late result is refused', async () => {
  const dir = tempDir('mb-cluster-q-');
  const clock = new ManualClock();
  const store = await storeOn(dir.path, clock);
  try {
    const a = node(store, clock, 'node-a');
    const b = node(store, clock, 'node-b');
    const body = Buffer.from('Message-ID: <x@contoso.com>\r\nSubject: Grüße\r\n\r\nhello\r\n');
    const msg = await enqueue(a.queue, { body });
    assert.equal(await store.queue.hasBody(msg.id), true, 'the body is in the store, committed with its row');

    const claimedA = (await a.queue.claim(msg.id))!;
    assert.equal(claimedA.claimedBy, 'node-a');
    assert.equal(await b.queue.takeOver(), 0, 'a live lease is not taken over');
    clock.advance(LEASE_MS + 1);
    assert.equal(await b.queue.takeOver(), 1, 'node-a stopped renewing: its claim is taken over');
    const claimedB = (await b.queue.claim(msg.id))!;
    assert.equal(claimedB.claimedBy, 'node-b');
    const stored = (await b.queue.spool.openStored(msg.id))!;
    assert.deepEqual(await stored.read(), body, 'node-b reads the body node-a accepted');

    // node-a comes back and reports its attempt: refused, the row stays node-b's.
    await a.queue.delivered(claimedA);
    assert.deepEqual([(await store.queue.get(msg.id))?.state, (await store.queue.get(msg.id))?.claimedBy], ['active', 'node-b']);
    assert.ok(a.lines.some((l) => l.mb === 'MB_RELAY_CLAIM_LOST' && l.id === msg.id), 'the refusal is logged with its code');
    assert.equal(await a.queue.failed(claimedA, { kind: 'temporary', mbCode: 'MB_RELAY_TRANSPORT_FAILED', detail: 'late' }), undefined);

    await b.queue.delivered(claimedB);
    assert.equal((await store.queue.get(msg.id))?.state, 'sent');
    assert.equal(await store.queue.hasBody(msg.id), false, 'the body goes with the delivery');
  } finally {
    await store.close();
    dir.remove();
  }
});

test('a running delivery whose claim another node took over is aborted at the next lease renewal, and its result refused', async () => {
  const dir = tempDir('mb-cluster-q-');
  const clock = new ManualClock();
  const store = await storeOn(dir.path, clock);
  const a = node(store, clock, 'node-a');
  const transport = new RecordingTransport();
  let aborted = false;
  transport.behave = (m) =>
    new Promise<SendResult>((resolve) => {
      m.signal.addEventListener('abort', () => {
        aborted = true;
        resolve({ ok: true });
      });
    });
  const manager = new QueueManager({
    queue: a.queue,
    transport,
    log: collectingLogger().log,
    clock,
    concurrencyPerMailbox: 3,
    ratePerMinute: 30,
    recipientsPerDay: 10_000,
    maxConcurrency: 20,
    sendTimeoutMs: 300_000,
    pollMs: 60_000,
    cluster: { node: 'node-a', leaseMs: LEASE_MS },
  });
  manager.start();
  try {
    const msg = await enqueue(a.queue);
    await waitFor(() => transport.attempts.length === 1, 5_000, 'node-a to start the delivery');
    // Renewals keep node-a's claim alive while it delivers.
    clock.advance(LEASE_MS / 3);
    await waitFor(async () => ((await store.queue.get(msg.id))?.leaseUntil ?? 0) > clock.now() + LEASE_MS - LEASE_MS / 3 - 1, 5_000, 'the lease to be renewed');
    // node-b takes it over (as if node-a had been unreachable for longer than the lease).
    await store.queue.transition(msg.id, ['active'], { state: 'deferred', nextAttemptAt: clock.now(), updatedAt: clock.now() });
    assert.ok((await store.queue.claim(msg.id, { by: 'node-b', token: 'b-token', now: clock.now(), leaseMs: LEASE_MS })).record);
    clock.advance(LEASE_MS / 3);
    await waitFor(() => aborted, 5_000, 'node-a to abort the attempt');
    await manager.whenIdle();
    const row = await store.queue.get(msg.id);
    assert.deepEqual([row?.state, row?.claimedBy, row?.claimToken], ['active', 'node-b', 'b-token'], 'node-a recorded nothing');
  } finally {
    await manager.stop(0);
    await store.close();
    dir.remove();
  }
});

test('per-mailbox limits hold across nodes: 3 deliveries at once and the per-minute rate, whichever node starts them', async () => {
  const dir = tempDir('mb-cluster-q-');
  const clock = new ManualClock();
  const store = await storeOn(dir.path, clock);
  const held: Array<() => void> = [];
  const managers = ['node-a', 'node-b'].map((name) => {
    const n = node(store, clock, name);
    const transport = new RecordingTransport();
    transport.behave = () => new Promise<SendResult>((resolve) => held.push(() => resolve({ ok: true })));
    const manager = new QueueManager({
      queue: n.queue,
      transport,
      log: collectingLogger().log,
      clock,
      concurrencyPerMailbox: 3,
      ratePerMinute: 4,
      recipientsPerDay: 10_000,
      maxConcurrency: 20,
      sendTimeoutMs: 300_000,
      pollMs: 60_000,
      cluster: { node: name, leaseMs: LEASE_MS },
    });
    return { ...n, transport, manager };
  });
  const [a, b] = managers as [(typeof managers)[0], (typeof managers)[0]];
  const MAILBOX = 'scanner@contoso.com';
  /** The mailbox may not start on this node now: its own deliveries are at the limit, or it waits as the store said. */
  const waiting = (m: QueueManager) => m.pacing().some((p) => p.mailbox === MAILBOX && p.nextStartAt !== clock.now());
  const running = () => a.transport.attempts.length + b.transport.attempts.length - a.transport.deliveries.length - b.transport.deliveries.length;
  try {
    // Six messages of one mailbox, three accepted by each node.
    for (let i = 0; i < 3; i++) await enqueue(a.queue, { sender: 'scanner@contoso.com' });
    for (let i = 0; i < 3; i++) await enqueue(b.queue, { sender: 'scanner@contoso.com' });
    for (const m of managers) m.manager.start();
    await waitFor(() => running() === 3, 5_000, 'three deliveries of the mailbox to run');
    // Each node has tried for more and been told to wait (its own 3 running, or the store's limit).
    await waitFor(() => managers.every((m) => waiting(m.manager)), 5_000, () => `both nodes to wait: ${JSON.stringify(managers.map((m) => m.manager.pacing()))}`);
    assert.equal(running(), 3, 'no more than 3 at once over both nodes');
    assert.equal((await store.queue.counts()).active, 3);

    // One ends: a fourth may start (on either node), then the per-minute rate (4) is used up.
    held.shift()!();
    clock.advance(600); // past the wait a node keeps after the store said "at a limit"
    await waitFor(() => a.transport.attempts.length + b.transport.attempts.length === 4, 5_000, 'a fourth delivery');
    for (const release of held.splice(0)) release();
    await waitFor(() => running() === 0, 5_000, 'the deliveries to end');
    clock.advance(600);
    await waitFor(
      () => managers.every((m) => m.manager.pacing().some((p) => p.mailbox === MAILBOX && (p.nextStartAt ?? 0) > clock.now() + 50_000)),
      5_000,
      () => `both nodes to wait for the next minute: ${JSON.stringify(managers.map((m) => m.manager.pacing()))}`,
    );
    assert.equal(a.transport.attempts.length + b.transport.attempts.length, 4, 'four starts in this minute over both nodes, as configured');
    assert.equal((await store.queue.counts()).incoming, 2);

    // A minute after the first starts, the rest goes out.
    clock.advance(60_000);
    await waitFor(() => held.length === 2, 5_000, 'the last two to start in the next minute');
    for (const release of held.splice(0)) release();
    await waitFor(async () => (await store.queue.counts()).sent === 6, 5_000, 'all six sent');
  } finally {
    for (const release of held.splice(0)) release();
    for (const m of managers) await m.manager.stop(0);
    await store.close();
    dir.remove();
  }
});
