/**
 * The relay's delivery claims on PostgreSQL are timed by the database server's clock (the store's
 * lease clock, src/store/cluster.ts), like the cluster's leases: two relay nodes on one database,
 * each with its own store (pool) opened without a clock as the gateway opens it, and a queue whose
 * clock (what the node would read from Date.now) is ten minutes off the server's.
 *
 * Without it (each node setting lease_until from its own clock and comparing with it), a node ten
 * minutes ahead takes over, at its first lease tick, every message another node is still sending
 * (the message goes out twice) and sees none of them as running for the per-mailbox limit; a node
 * ten minutes behind writes claims the others read as run out at once, and leaves the claims of a
 * node that died for ten minutes more.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Queue } from '../../../src/relay/queue/index.ts';
import { parseSchedule } from '../../../src/relay/queue/schedule.ts';
import { StoreSpool } from '../../../src/relay/queue/store-spool.ts';
import type { Store } from '../../../src/store/index.ts';
import { systemClock } from '../../../src/util/clock.ts';
import { collectingLogger } from '../helpers/index.ts';
import { enqueue } from '../helpers/queue.ts';
import { storeDrivers } from '../../support/stores.ts';
import { waitFor } from '../../support/wait.ts';

const drivers = storeDrivers();
after(() => drivers.close());
const postgres = drivers.list.find((d) => d.name === 'postgres')!;

const TEN_MINUTES = 600_000;
const MAILBOX = 'scanner@contoso.com';

function node(store: Store, name: string, offsetMs: number, leaseMs: number) {
  const { log, lines } = collectingLogger();
  const queue = new Queue({
    repo: store.queue,
    spool: new StoreSpool(store.queue),
    log,
    clock: { now: () => Date.now() + offsetMs, setTimer: systemClock.setTimer },
    retrySchedule: parseSchedule('1m'),
    hostname: 'relay.test',
    bounces: { notify: 'none' },
    cluster: { node: name, leaseMs },
  });
  return { queue, store, lines };
}

test('PostgreSQL: a relay node whose clock runs ten minutes ahead takes over no claim another node renews, and counts that delivery as running', async () => {
  const LEASE = 30_000;
  const a = node(await postgres.open(), 'node-a', 0, LEASE);
  const b = node(await postgres.reopen(), 'node-b', TEN_MINUTES, LEASE);
  const limits = { concurrency: 1, perMinute: 100, recipientsPerDay: Infinity };
  const msg = await enqueue(a.queue, { sender: MAILBOX });
  const next = await enqueue(a.queue, { sender: MAILBOX });

  const sending = (await a.queue.claimWithin(msg.id, limits)).record!;
  assert.equal(sending.claimedBy, 'node-a');
  assert.equal(await b.queue.takeOver(), 0, 'a live claim (by the server\'s clock) is not taken over');
  // node-a renews as its manager does while it sends; node-b looks again at its next tick.
  assert.deepEqual([...(await a.queue.renew([sending.claimToken!]))], [sending.claimToken]);
  assert.equal(await b.queue.takeOver(), 0, 'a renewed claim is not taken over');
  // One connection per mailbox: node-a's delivery is running for node-b too.
  assert.deepEqual(await b.queue.claimWithin(next.id, limits), { limited: { until: undefined } });

  // node-a's result is recorded: the message went out once, by node-a.
  await a.queue.delivered(sending);
  const row = await a.store.queue.get(msg.id);
  assert.deepEqual([row?.state, row?.claimedBy], ['sent', 'node-a']);
  assert.equal(a.lines.filter((l) => l.mb === 'MB_RELAY_CLAIM_LOST').length, 0);
  assert.equal((await b.queue.claimWithin(next.id, limits)).record?.claimedBy, 'node-b', 'the connection is free again');
});

test('PostgreSQL: a relay node whose clock runs ten minutes behind holds a claim only until it runs out by the server\'s clock, and takes over a dead node\'s claim once it has', async () => {
  const LEASE = 3_000;
  const behind = node(await postgres.open(), 'behind', -TEN_MINUTES, LEASE);
  const other = node(await postgres.reopen(), 'other', 0, LEASE);
  const m1 = await enqueue(behind.queue);
  const m2 = await enqueue(behind.queue);

  const before = await other.store.cluster.now();
  const held = (await behind.queue.claim(m1.id))!;
  const after = await other.store.cluster.now();
  // The lease ends the lease time after the server's now, not after the node's (ten minutes earlier).
  assert.ok(held.leaseUntil! >= before + LEASE && held.leaseUntil! <= after + LEASE, `lease ends ${held.leaseUntil! - before} ms after the server's now`);
  assert.equal(await other.queue.takeOver(), 0, 'live by the server\'s clock: the other node leaves it');

  // The other node claims m2 and dies; the node behind is paused (neither renews).
  const dead = (await other.queue.claim(m2.id))!;
  const end = Math.max(held.leaseUntil!, dead.leaseUntil!);
  await waitFor(async () => (await other.store.cluster.now()) > end, 30_000, 'both claims to run out by the server\'s clock', 100);

  // The node behind wakes up: both claims have run out by the server's clock, its own and the dead node's.
  assert.equal(await behind.queue.takeOver(), 2);
  assert.deepEqual([(await behind.store.queue.get(m2.id))?.state, (await behind.store.queue.get(m1.id))?.state], ['deferred', 'deferred']);
  assert.deepEqual([...(await behind.queue.renew([held.claimToken!]))], [], 'its claim on m1 is gone');
  // m1 is claimed again; the result of the claim that ran out is refused.
  const again = (await behind.queue.claim(m1.id))!;
  await behind.queue.delivered(held);
  const row = await behind.store.queue.get(m1.id);
  assert.deepEqual([row?.state, row?.claimToken], ['active', again.claimToken]);
  assert.ok(behind.lines.some((l) => l.mb === 'MB_RELAY_CLAIM_LOST' && l.id === m1.id));
});
