/**
 * Two relay nodes on one store, with bodies in the store (StoreSpool) and claims with leases, on a
 * manual clock: a node's claim is taken over once its lease has run out, the other node delivers
 * the message from the body the first one accepted, and the first node's late result is refused
 * (fenced by the claim token). A running delivery whose claim was taken over is aborted at the
 * next lease renewal. The contract test holds both drivers to the store side; the three-node kill
 * -9 test (test/relay/crash/cluster.test.ts) does the same with real processes on PostgreSQL.
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
  const store = await openStore({ driver: 'sqlite', path: join(dir.path, 'mb.db') });
  try {
    const clock = new ManualClock();
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
  const store = await openStore({ driver: 'sqlite', path: join(dir.path, 'mb.db') });
  const clock = new ManualClock();
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
    assert.ok((await store.queue.claim(msg.id, { by: 'node-b', token: 'b-token', now: clock.now(), leaseUntil: clock.now() + LEASE_MS })).record);
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
