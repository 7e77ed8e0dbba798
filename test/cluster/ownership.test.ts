/**
 * The ownership rounds (src/cluster/ownership.ts) with three nodes on one store and a manual
 * clock: units spread over the nodes, move when a node joins or dies, never run on two nodes at
 * once, and a node that lost its lease cannot write a checkpoint. Rounds are driven by tick().
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MbError } from '../../src/errors/index.ts';
import { nodeIdentity } from '../../src/cluster/node.ts';
import { Ownership, ownerOf } from '../../src/cluster/ownership.ts';
import type { Fence, Store } from '../../src/store/index.ts';
import { storeDrivers } from '../support/stores.ts';
import { createLogger } from '../../src/log/index.ts';
import pg from 'pg';
import { DatabaseSync, StatementSync } from 'node:sqlite';

const drivers = storeDrivers();
after(() => drivers.close());

/**
 * Counts the statements sent to the database while `fn` runs: every query of a PostgreSQL client
 * (one round trip each; a pool's query goes through one) and every SQLite statement run or exec.
 */
async function statements(fn: () => Promise<void>): Promise<number> {
  let n = 0;
  const patched: [object, string, unknown][] = [];
  const count = (proto: object, method: string) => {
    const original = (proto as Record<string, (...a: unknown[]) => unknown>)[method]!;
    patched.push([proto, method, original]);
    (proto as Record<string, unknown>)[method] = function (this: unknown, ...args: unknown[]) {
      n++;
      return original.apply(this, args);
    };
  };
  count(pg.Client.prototype, 'query');
  for (const m of ['run', 'get', 'all', 'iterate']) count(StatementSync.prototype, m);
  count(DatabaseSync.prototype, 'exec');
  try {
    await fn();
  } finally {
    for (const [proto, method, original] of patched) (proto as Record<string, unknown>)[method] = original;
  }
  return n;
}

const LEASE = 30_000;
const UNITS = Array.from({ length: 30 }, (_, i) => `mb${i}@contoso.test`);

/** A node running units: which ones it works on now, and every start and stop it saw. */
function node(store: Store, name: string, clock: () => number, running: Map<string, string>) {
  const active = new Map<string, Fence>();
  const o = new Ownership({ cluster: store.cluster, node: nodeIdentity({ name, role: 'test' }), now: clock, leaseMs: LEASE });
  o.join('connector:erp', UNITS, {
    gained(unit, fence) {
      // No unit may run on two nodes at once.
      assert.equal(running.get(unit), undefined, `${unit} started on ${name} while running on ${running.get(unit)}`);
      running.set(unit, name);
      active.set(unit, fence);
    },
    lost(unit) {
      active.delete(unit);
      // A killed node's units were taken off `running` when it died (a dead process runs nothing).
      if (running.get(unit) === name) running.delete(unit);
    },
  });
  return { o, active, name };
}

for (const d of drivers.list) {
  describe(`ownership (${d.name})`, () => {
    test('rendezvous: every unit has one owner among the candidates, and removing a node moves only its units', () => {
      const three = ['a', 'b', 'c'];
      const before = new Map(UNITS.map((u) => [u, ownerOf(u, three)]));
      assert.deepEqual(new Set(before.values()), new Set(three));
      for (const u of UNITS) {
        const now = ownerOf(u, ['a', 'b']);
        if (before.get(u) !== 'c') assert.equal(now, before.get(u), `${u} moved although its owner stayed`);
      }
    });

    test('a round costs the same few statements for 3,000 units as for three: one renewal, one acquisition, one release for all', async () => {
      let now = 1_800_000_000_000;
      const clock = () => now;
      // The manual clock is the nodes' and the store's (leases and heartbeats): rounds are steps of it.
      const store = await d.open({ clock });
      const units = Array.from({ length: 3000 }, (_, i) => `shard#${i}`);
      const make = (name: string) => {
        const active = new Set<string>();
        const o = new Ownership({ cluster: store.cluster, node: nodeIdentity({ name, role: 'test' }), now: clock, leaseMs: LEASE });
        o.join('watch:big', units, { gained: (u) => void active.add(u), lost: (u) => void active.delete(u) });
        return { o, active };
      };
      // heartbeat, prune, nodes; then at most one release, one renewal and one acquisition.
      const MAX = 6;
      const round = async (...nodes: ReturnType<typeof make>[]) => {
        now += LEASE / 3;
        const counts: number[] = [];
        for (const n of nodes) counts.push(await statements(() => n.o.tick()));
        return counts;
      };
      const a = make('a');
      const [first] = await round(a);
      assert.equal(a.active.size, units.length, 'alone, a takes every unit in its first round');
      assert.ok(first! >= 3 && first! <= MAX, `taking ${units.length} units took ${first} statements`);
      const [renewing] = await round(a);
      assert.ok(renewing! <= MAX, `renewing ${units.length} units took ${renewing} statements`);
      assert.ok((await store.cluster.leases('watch:big/')).every((l) => l.expiresAt === now + LEASE && l.epoch === 1), 'every lease renewed, epoch kept');

      // b joins: a hands a quarter over per round, b takes them; every round of both stays bounded.
      const b = make('b');
      const ids = [a.o.node.id, b.o.node.id];
      const bShare = units.filter((u) => ownerOf(`watch:big/${u}`, ids) === b.o.node.id).length;
      for (let i = 0; i < 8; i++) {
        const counts = await round(a, b);
        assert.ok(counts.every((c) => c <= MAX), `round ${i} with a handing over: ${counts.join(', ')} statements`);
      }
      assert.equal(b.active.size, bShare);
      assert.equal(a.active.size, units.length - bShare);
      // Every lease b took changed hands once: epoch 2; a's kept epoch 1.
      const leases = await store.cluster.leases('watch:big/');
      assert.ok(leases.every((l) => l.epoch === (l.owner === b.o.node.id ? 2 : 1)));
      const held = a.active.size;
      const closing = await statements(() => a.o.close());
      assert.equal(a.active.size, 0);
      // One release for all, one goodbye.
      assert.ok(closing > 0 && closing <= 2, `closing with ${held} units took ${closing} statements`);
      await b.o.close();
    });

    test('leave: a pool\'s units stop here and go to the other node at once, without waiting for the lease time', async () => {
      let now = 1_800_000_000_000;
      const clock = () => now;
      // The manual clock is the nodes' and the store's (leases and heartbeats): rounds are steps of it.
      const store = await d.open({ clock });
      const running = new Map<string, string>();
      const a = node(store, 'a', clock, running);
      const b = node(store, 'b', clock, running);
      const round = async () => {
        now += a.o.roundMs;
        for (const n of [a, b]) await n.o.tick();
      };
      for (let i = 0; i < 10; i++) await round();
      assert.ok(a.active.size > 0 && b.active.size > 0);
      const leftAt = now;
      await a.o.leave('connector:erp');
      assert.equal(a.active.size, 0);
      assert.deepEqual(a.o.counts(), {});
      await round();
      assert.equal(b.active.size, UNITS.length);
      assert.ok(now - leftAt < LEASE);
      await a.o.close();
      await b.o.close();
    });

    test('three nodes share the units, a killed node\'s units move to the survivors within the lease time, its late write is refused', async () => {
      let now = 1_800_000_000_000;
      const clock = () => now;
      // The manual clock is the nodes' and the store's (leases and heartbeats): rounds are steps of it.
      const store = await d.open({ clock });
      // A node that stopped a day and a second ago is forgotten by the first round; one that stopped an hour ago is not.
      const start = now;
      now = start - 86_401_000;
      await store.cluster.heartbeat({ id: 'gone-long', name: 'old', version: '0.0.1', role: 'serve', startedAt: start - 90_000_000, owns: {} });
      now = start - 3_600_000;
      await store.cluster.heartbeat({ id: 'gone-recently', name: 'old', version: '0.0.1', role: 'serve', startedAt: start - 7_200_000, owns: {} });
      now = start;
      const running = new Map<string, string>();
      const a = node(store, 'a', clock, running);
      await a.o.tick();
      assert.deepEqual((await store.cluster.nodes()).map((n) => n.id).sort(), ['gone-recently', a.o.node.id].sort());
      // Alone, a holds everything.
      assert.equal(a.active.size, UNITS.length);

      const b = node(store, 'b', clock, running);
      const c = node(store, 'c', clock, running);
      const all = [a, b, c];
      const round = async (nodes = all) => {
        now += a.o.roundMs;
        for (const n of nodes) await n.o.tick();
      };
      // Joining: a hands units over gradually (a quarter of its units per round at most).
      await round();
      assert.ok(a.active.size >= UNITS.length - Math.ceil(UNITS.length / 4), `a moved ${UNITS.length - a.active.size} units in one round`);
      for (let i = 0; i < 12; i++) await round();
      const ids = all.map((n) => n.o.node.id);
      for (const n of all) {
        const expected = UNITS.filter((u) => ownerOf(`connector:erp/${u}`, ids) === n.o.node.id);
        assert.deepEqual([...n.active.keys()].sort(), expected.sort(), `${n.name} holds what rendezvous gives it`);
        assert.ok(n.active.size > 0);
      }
      assert.equal(running.size, UNITS.length);
      const heartbeat = await store.cluster.nodes();
      assert.equal(heartbeat.reduce((n, r) => n + (r.owns['connector:erp'] ?? 0), 0), UNITS.length);

      // c is killed (no more rounds, no release). Its units stay unowned until its leases expire.
      const cUnits = [...c.active.keys()];
      const cFence = c.active.get(cUnits[0]!)!;
      for (const u of cUnits) running.delete(u);
      const killedAt = now;
      while (cUnits.some((u) => running.get(u) === undefined)) {
        await round([a, b]);
        assert.ok(now - killedAt <= LEASE + a.o.roundMs * 2, `units still unowned ${now - killedAt} ms after the kill`);
      }
      assert.equal(running.size, UNITS.length);
      assert.deepEqual(new Set(running.values()), new Set(['a', 'b']));

      // c wakes up and tries to record with its old fence: refused.
      const scope = { connector: 'erp', mailbox: cUnits[0]!, folder: 'INBOX' };
      await assert.rejects(
        store.checkpoints.fenced(cFence).setEpoch(scope, '1', 0),
        (err: unknown) => err instanceof MbError && err.code === 'MB_CLUSTER_LEASE_LOST',
      );
      // Its next round notices and stops the work locally too.
      await c.o.tick();
      assert.equal(c.active.size, 0);
      await c.o.close();

      // A clean stop releases at once: b's units go to a in the next rounds, without waiting for the lease time.
      const closedAt = now;
      await b.o.close();
      await round([a]);
      await round([a]);
      assert.equal(a.active.size, UNITS.length);
      assert.ok(now - closedAt < LEASE);
      await a.o.close();
      // Every node that stopped cleanly left the registry; the one stopped an hour ago is still shown.
      assert.deepEqual((await store.cluster.nodes()).map((n) => n.id), ['gone-recently']);
    });
  });
}

test('a node whose clock is more than a quarter lease off the database server\'s says so once (MB_CLUSTER_CLOCK_SKEW), and once when it agrees again', async () => {
  const store = await drivers.list.find((d) => d.name === 'sqlite')!.open();
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) } });
  let offset: number | undefined = 90_000;
  // The measurement itself is PostgreSQL's (test below); here the store reports what it measured.
  const cluster = { ...store.cluster, clockOffset: () => offset };
  const o = new Ownership({ cluster, node: nodeIdentity({ name: 'skewed', role: 'test' }), now: () => 1_800_000_000_000, leaseMs: LEASE, log });
  for (let i = 0; i < 3; i++) await o.tick();
  const skew = lines.filter((l) => l.mb === 'MB_CLUSTER_CLOCK_SKEW');
  assert.equal(skew.length, 1, 'said once, not every round');
  assert.equal(skew[0]!.offset, 90_000);
  offset = 2_000;
  await o.tick();
  offset = undefined;
  await o.tick();
  assert.equal(lines.filter((l) => /agrees with the database server/.test(String(l.msg))).length, 1);
  await o.close();
});

test('PostgreSQL: the heartbeat measures this process\'s clock against the server\'s', async () => {
  const store = await drivers.list.find((d) => d.name === 'postgres')!.open();
  assert.equal(store.cluster.clockOffset?.(), undefined, 'nothing measured before a heartbeat');
  await store.cluster.heartbeat({ id: 'n1', name: 'n1', version: '0', role: 'test', startedAt: Date.now(), owns: {} });
  const offset = store.cluster.clockOffset?.();
  assert.ok(offset !== undefined && Math.abs(offset) < 1_000, `the server runs on this machine: offset ${offset} ms`);
});
