/**
 * Leases on PostgreSQL are timed by the database server's clock (src/store/cluster.ts, the store's
 * default lease clock), not by the clocks of the nodes: two nodes on one database, each with its
 * own store (pool) as in production, whose process clocks are ten minutes apart from the server's.
 * Each node's clock is the `now` of its Ownership (what the node would read from Date.now); the
 * stores are opened without a clock, as the gateway opens them.
 *
 * Without the database clock (each store timing leases by its node's clock, as before), a node ten
 * minutes ahead sees every other node as dead and every lease as expired and takes them all while
 * their holder still renews them, and a lease taken by a node ten minutes behind looks expired to
 * everyone else the moment it is taken.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { MbError } from '../../src/errors/index.ts';
import { nodeIdentity } from '../../src/cluster/node.ts';
import { Ownership, ownerOf } from '../../src/cluster/ownership.ts';
import type { Fence, Store } from '../../src/store/index.ts';
import { storeDrivers } from '../support/stores.ts';
import { waitFor } from '../support/wait.ts';

const drivers = storeDrivers();
after(() => drivers.close());
const postgres = drivers.list.find((d) => d.name === 'postgres')!;

const TEN_MINUTES = 600_000;
const POOL = 'connector:erp';
const UNITS = Array.from({ length: 30 }, (_, i) => `mb${i}@contoso.test`);
const lost = (err: unknown) => err instanceof MbError && err.code === 'MB_CLUSTER_LEASE_LOST';

function node(store: Store, name: string, offsetMs: number, leaseMs: number, units = UNITS) {
  const active = new Map<string, Fence>();
  const o = new Ownership({ cluster: store.cluster, node: nodeIdentity({ name, role: 'test' }), now: () => Date.now() + offsetMs, leaseMs });
  o.join(POOL, units, { gained: (unit, fence) => void active.set(unit, fence), lost: (unit) => void active.delete(unit) });
  return { o, active, name };
}

test('PostgreSQL: a node whose clock runs ten minutes ahead takes no lease another node renews; it gets its share only as the holder hands it over', async () => {
  const a = node(await postgres.open(), 'a', 0, 30_000);
  const b = node(await postgres.reopen(), 'b', TEN_MINUTES, 30_000);
  const store = await postgres.reopen();
  const owners = async () => new Map((await store.cluster.leases(`${POOL}/`)).map((l) => [l.name.slice(POOL.length + 1), l.owner]));
  /** No unit held by both nodes, and each node holds what the lease rows say it holds. */
  const consistent = async (when: string) => {
    const rows = await owners();
    const both = [...a.active.keys()].filter((u) => b.active.has(u));
    assert.deepEqual(both, [], `${when}: units held by both nodes`);
    for (const n of [a, b]) for (const u of n.active.keys()) assert.equal(rows.get(u), n.o.node.id, `${when}: ${u} held by ${n.name}, its lease names ${rows.get(u)}`);
  };
  try {
    await a.o.tick();
    assert.equal(a.active.size, UNITS.length, 'alone, a takes every unit');

    // b's first round: a is live (its heartbeat is recent by the server's clock) and its leases run
    // for another 30 s by that clock, however late they look to b's own clock.
    await b.o.tick();
    assert.equal(b.active.size, 0, `b took ${b.active.size} units a holds`);
    assert.equal(a.active.size, UNITS.length);
    await consistent('after b\'s first round');

    // The rounds go on: a renews what it keeps and hands b its rendezvous share, a quarter per round.
    const ids = [a.o.node.id, b.o.node.id];
    const bShare = UNITS.filter((u) => ownerOf(`${POOL}/${u}`, ids) === b.o.node.id);
    assert.ok(bShare.length > 0 && bShare.length < UNITS.length);
    for (let i = 0; i < 8; i++) {
      await a.o.tick();
      await b.o.tick();
      await consistent(`round ${i}`);
    }
    assert.deepEqual([...b.active.keys()].sort(), [...bShare].sort());
    assert.equal(a.active.size, UNITS.length - bShare.length);
    // What a kept never changed hands (epoch 1); what b holds changed hands once, by a's release.
    const leases = await store.cluster.leases(`${POOL}/`);
    assert.ok(leases.every((l) => l.epoch === (l.owner === b.o.node.id ? 2 : 1)), JSON.stringify(leases.map((l) => [l.owner, l.epoch])));
  } finally {
    await a.o.close();
    await b.o.close();
  }
});

test('PostgreSQL: a node whose clock runs ten minutes behind keeps its lease only until it expires by the server\'s clock', async () => {
  const LEASE = 3_000;
  const unit = 'anna@contoso.test';
  const lease = `${POOL}/${unit}`;
  const behind = node(await postgres.open(), 'behind', -TEN_MINUTES, LEASE, [unit]);
  const other = await postgres.reopen();
  try {
    await behind.o.tick();
    const fence = behind.active.get(unit);
    assert.ok(fence, 'the node behind took the unit');
    const [taken] = await other.cluster.leases(lease);
    assert.ok(taken);
    // The expiry is the server's time plus the lease time, not the node's time (ten minutes earlier).
    const takenAt = await other.cluster.now();
    assert.ok(taken.expiresAt > takenAt && taken.expiresAt <= takenAt + LEASE, `expires ${taken.expiresAt - takenAt} ms after the server's now`);
    // Live by the server's clock: another node cannot take it.
    assert.deepEqual(await other.cluster.acquireAll([lease], 'n-other', LEASE), []);
    const scope = { connector: 'erp', mailbox: unit, folder: 'INBOX' };
    await behind.o.tick();
    await other.checkpoints.fenced(fence).setEpoch(scope, '1', 0);

    // The node behind is paused (no more rounds). Once the server's clock passes the expiry, its
    // writes are refused although nobody took the lease yet, and so is its renewal.
    const [renewed] = await other.cluster.leases(lease);
    await waitFor(async () => (await other.cluster.now()) > renewed!.expiresAt, 30_000, 'the lease to expire by the server\'s clock', 100);
    await assert.rejects(other.checkpoints.fenced(fence).setEpoch(scope, '2', 0), lost);
    assert.equal(await other.cluster.renew(fence, LEASE), false);
    assert.equal((await other.checkpoints.get(scope))?.epoch, '1');
    // Now another node takes it, with the next epoch.
    const [next] = await other.cluster.acquireAll([lease], 'n-other', LEASE);
    assert.deepEqual(next && [next.owner, next.epoch], ['n-other', fence.epoch + 1]);
  } finally {
    await behind.o.close();
  }
});
