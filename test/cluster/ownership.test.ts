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

const drivers = storeDrivers();
after(() => drivers.close());

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

    test('leave: a pool\'s units stop here and go to the other node at once, without waiting for the lease time', async () => {
      const store = await d.open();
      let now = 1_800_000_000_000;
      const clock = () => now;
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
      const store = await d.open();
      let now = 1_800_000_000_000;
      const clock = () => now;
      // A node that stopped a day and a second ago is forgotten by the first round; one that stopped an hour ago is not.
      await store.cluster.heartbeat({ id: 'gone-long', name: 'old', version: '0.0.1', role: 'serve', startedAt: now - 90_000_000, heartbeatAt: now - 86_401_000, owns: {} });
      await store.cluster.heartbeat({ id: 'gone-recently', name: 'old', version: '0.0.1', role: 'serve', startedAt: now - 7_200_000, heartbeatAt: now - 3_600_000, owns: {} });
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
