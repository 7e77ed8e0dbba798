/**
 * The node registry and fenced leases (src/store/cluster.ts) hold the same promises on SQLite and
 * PostgreSQL. The stores are opened with a manual clock (the lease clock, src/store/cluster.ts):
 * nothing here waits. test/cluster/clocks.test.ts shows PostgreSQL's default, the server's clock.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MbError } from '../../src/errors/index.ts';
import { storeDrivers } from '../support/stores.ts';
import { waitFor } from '../support/wait.ts';

const drivers = storeDrivers();
after(() => drivers.close());

const T0 = 1_800_000_000_000;

/** A manual clock for a store: `at(t)` sets it. */
function manualClock() {
  let t = T0;
  return { clock: () => t, at: (to: number) => (t = to) };
}
const scope = { connector: 'erp', mailbox: 'anna@contoso.test', folder: 'INBOX' };

for (const d of drivers.list) {
  describe(`cluster store (${d.name})`, () => {
    test('nodes: heartbeat inserts then updates; leave and prune remove', async () => {
      const { clock, at } = manualClock();
      const s = await d.open({ clock });
      const a = { id: 'n-a', name: 'mb1', version: '0.1.0', role: 'serve', startedAt: T0, owns: {} };
      assert.equal(await s.cluster.heartbeat(a), T0, 'the heartbeat is stamped with the store\'s clock');
      at(T0 + 1);
      await s.cluster.heartbeat({ id: 'n-b', name: 'mb2', version: '0.1.0', role: 'serve', startedAt: T0 + 1, owns: {} });
      at(T0 + 5000);
      assert.equal(await s.cluster.heartbeat({ ...a, owns: { connector: 3 } }), T0 + 5000);
      assert.equal(await s.cluster.now(), T0 + 5000);
      const nodes = await s.cluster.nodes();
      assert.deepEqual(nodes.map((n) => [n.id, n.heartbeatAt, n.owns]), [['n-a', T0 + 5000, { connector: 3 }], ['n-b', T0 + 1, {}]]);
      // Older than 4 000 ms at T0 + 5 000: n-b (T0 + 1) goes, n-a stays.
      assert.equal(await s.cluster.pruneNodes(4000), 1);
      await s.cluster.leave('n-a');
      assert.deepEqual(await s.cluster.nodes(), []);
    });

    test('leases: the first takes epoch 1, others are refused until it expires, the next holder gets the next epoch', async () => {
      const { clock, at } = manualClock();
      const s = await d.open({ clock });
      assert.deepEqual(await s.cluster.acquire('connector:erp/anna', 'n-a', 30_000), { ok: true, epoch: 1, expiresAt: T0 + 30_000 });
      at(T0 + 1000);
      assert.deepEqual(await s.cluster.acquire('connector:erp/anna', 'n-b', 30_000), { ok: false, owner: 'n-a', epoch: 1, expiresAt: T0 + 30_000 });
      // The holder acquiring again renews and keeps its epoch.
      at(T0 + 2000);
      assert.deepEqual(await s.cluster.acquire('connector:erp/anna', 'n-a', 30_000), { ok: true, epoch: 1, expiresAt: T0 + 32_000 });
      at(T0 + 3000);
      assert.equal(await s.cluster.renew({ lease: 'connector:erp/anna', owner: 'n-a', epoch: 1 }, 30_000), true);
      // Expired: n-b takes it with epoch 2, and n-a can neither renew nor release it any more.
      at(T0 + 33_001);
      assert.deepEqual(await s.cluster.acquire('connector:erp/anna', 'n-b', 30_000), { ok: true, epoch: 2, expiresAt: T0 + 63_001 });
      at(T0 + 33_002);
      assert.equal(await s.cluster.renew({ lease: 'connector:erp/anna', owner: 'n-a', epoch: 1 }, 30_000), false);
      assert.equal(await s.cluster.release({ lease: 'connector:erp/anna', owner: 'n-a', epoch: 1 }), false);
      // A release lets the next node in at once, with the next epoch.
      at(T0 + 34_000);
      assert.equal(await s.cluster.release({ lease: 'connector:erp/anna', owner: 'n-b', epoch: 2 }), true);
      assert.deepEqual(await s.cluster.acquire('connector:erp/anna', 'n-c', 30_000), { ok: true, epoch: 3, expiresAt: T0 + 64_000 });
      await s.cluster.acquire('watch:sales/0', 'n-c', 30_000);
      assert.deepEqual((await s.cluster.leases('connector:')).map((l) => [l.name, l.owner, l.epoch]), [['connector:erp/anna', 'n-c', 3]]);
      assert.equal((await s.cluster.leases()).length, 2);
    });

    test('leases in batches: acquireAll, renewAll and releaseAll give the epochs acquire, renew and release give, in one call each', async () => {
      const { clock, at } = manualClock();
      const s = await d.open({ clock });
      const taken = (ls: { name: string; owner: string; epoch: number; expiresAt: number }[]) => ls.map((l) => [l.name, l.owner, l.epoch, l.expiresAt]).sort();
      assert.deepEqual(taken(await s.cluster.acquireAll(['w/a', 'w/b', 'w/c', 'w/a'], 'n-a', 30_000)), [
        ['w/a', 'n-a', 1, T0 + 30_000],
        ['w/b', 'n-a', 1, T0 + 30_000],
        ['w/c', 'n-a', 1, T0 + 30_000],
      ]);
      // Another node gets only the new name; the holder asking again keeps its epoch.
      at(T0 + 1000);
      assert.deepEqual(taken(await s.cluster.acquireAll(['w/b', 'w/c', 'w/d'], 'n-b', 30_000)), [['w/d', 'n-b', 1, T0 + 31_000]]);
      at(T0 + 2000);
      assert.deepEqual(taken(await s.cluster.acquireAll(['w/a'], 'n-a', 30_000)), [['w/a', 'n-a', 1, T0 + 32_000]]);
      // Renewed: only what n-a holds at exactly that epoch.
      at(T0 + 3000);
      const renewed = await s.cluster.renewAll('n-a', [{ lease: 'w/a', epoch: 1 }, { lease: 'w/b', epoch: 1 }, { lease: 'w/c', epoch: 2 }, { lease: 'w/d', epoch: 1 }], 30_000);
      assert.deepEqual([...renewed].sort(), ['w/a', 'w/b']);
      at(T0 + 4000);
      assert.deepEqual([...(await s.cluster.releaseAll('n-a', [{ lease: 'w/b', epoch: 1 }, { lease: 'w/d', epoch: 1 }]))], ['w/b']);
      // Released: the next holder at once, with the next epoch; w/c is still n-a's until it expires.
      assert.deepEqual(taken(await s.cluster.acquireAll(['w/b', 'w/c'], 'n-b', 30_000)), [['w/b', 'n-b', 2, T0 + 34_000]]);
      // Expired (w/c at T0 + 30 000, w/a at T0 + 33 000): taken with the next epoch, the former holder's renewal refused.
      at(T0 + 40_000);
      assert.deepEqual(taken(await s.cluster.acquireAll(['w/a', 'w/c'], 'n-b', 30_000)), [
        ['w/a', 'n-b', 2, T0 + 70_000],
        ['w/c', 'n-b', 2, T0 + 70_000],
      ]);
      at(T0 + 40_001);
      assert.deepEqual([...(await s.cluster.renewAll('n-a', [{ lease: 'w/a', epoch: 1 }], 30_000))], []);
      assert.deepEqual(await s.cluster.acquireAll([], 'n-a', 30_000), []);
      assert.deepEqual([...(await s.cluster.renewAll('n-a', [], 30_000))], []);
    });

    test('leases in batches: two nodes taking the same free leases at once get each lease once', async () => {
      const { clock, at } = manualClock();
      const a = await d.open({ clock });
      // PostgreSQL: a second pool on the same database, as another node; SQLite: the same file.
      const b = await d.reopen({ clock });
      const names = Array.from({ length: 300 }, (_, i) => `watch:g/l#${i}`);
      const mixed = [...names].reverse();
      for (let round = 0; round < 3; round++) {
        at(T0 + round * 60_000);
        const [x, y] = await Promise.all([a.cluster.acquireAll(names, 'n-a', 30_000), b.cluster.acquireAll(mixed, 'n-b', 30_000)]);
        const won = [...x, ...y].map((l) => l.name).sort();
        assert.deepEqual(won, [...names].sort(), `round ${round}: every lease taken exactly once`);
        const leases = await a.cluster.leases('watch:g/');
        // Each round starts after the last expired: every lease changes hands or is taken anew, one epoch more.
        assert.ok(leases.every((l) => l.epoch === round + 1), `round ${round}: epochs ${[...new Set(leases.map((l) => l.epoch))].join(',')}`);
        const owners = new Map([...x.map((l) => [l.name, 'n-a'] as const), ...y.map((l) => [l.name, 'n-b'] as const)]);
        assert.ok(leases.every((l) => owners.get(l.name) === l.owner));
      }
    });

    test('fencing: a stale owner cannot write a checkpoint; its successor can, and nothing the stale one tried is kept', async () => {
      let now = T0;
      const s = await d.open({ clock: () => now });
      const lease = 'connector:erp/anna@contoso.test';
      const a = await s.cluster.acquire(lease, 'n-a', 30_000);
      assert.ok(a.ok);
      const asA = s.checkpoints.fenced({ lease, owner: 'n-a', epoch: a.epoch });
      await asA.setEpoch(scope, '7', 0);
      await asA.begin(scope, { epoch: '7', item: '1', key: '<1@x>', deliveryId: 'd1' });
      await asA.record(scope, { epoch: '7', item: '1', key: '<1@x>', state: 'delivered', size: 10 }, { position: 1 });

      // n-a is paused past its lease; n-b takes the mailbox over and moves on.
      now += 31_000;
      const b = await s.cluster.acquire(lease, 'n-b', 30_000);
      assert.deepEqual(b.ok && b.epoch, a.epoch + 1);
      const asB = s.checkpoints.fenced({ lease, owner: 'n-b', epoch: a.epoch + 1 });
      await asB.record(scope, { epoch: '7', item: '2', key: '<2@x>', state: 'delivered', size: 10 }, { position: 2 });

      // n-a wakes up and tries each kind of write: all refused with MB_CLUSTER_LEASE_LOST.
      const lost = (err: unknown) => err instanceof MbError && err.code === 'MB_CLUSTER_LEASE_LOST';
      await assert.rejects(asA.record(scope, { epoch: '7', item: '3', key: '<3@x>', state: 'delivered', size: 10 }, { position: 3 }), lost);
      await assert.rejects(asA.advance(scope, { position: 9, cursor: 'stale' }), lost);
      await assert.rejects(asA.begin(scope, { epoch: '7', item: '4', key: '<4@x>', deliveryId: 'd4' }), lost);
      await assert.rejects(asA.abandon(scope, '7', '1'), lost);
      await assert.rejects(asA.setEpoch(scope, '8', 0), lost);
      await assert.rejects(asA.markDone(scope, '7', ['1', '2']), lost);
      await assert.rejects(asA.prune(scope, new Date(now + 1e9), ['delivered']), lost);

      const cp = await s.checkpoints.get(scope);
      assert.equal(cp?.epoch, '7');
      assert.equal(cp?.position, 2);
      assert.equal(cp?.cursor, undefined);
      assert.deepEqual([...(await s.checkpoints.lookup(scope, '7', ['1', '2', '3'])).keys()].sort(), ['1', '2']);
      assert.deepEqual(await s.checkpoints.inFlight(scope), []);
      assert.deepEqual((await s.checkpoints.byState(scope, '7', 'delivered')).map((r) => r.item), ['1', '2']);

      // Even with the right epoch, a lease that ran out without a successor refuses writes until renewed.
      now += 31_000;
      await assert.rejects(asB.advance(scope, { position: 5 }), lost);
    });

    test('fencing: a watcher that lost its shard\'s lease cannot publish an event as its owner', async () => {
      let now = T0;
      const s = await d.open({ clock: () => now });
      const lease = 'watch:sales/sales/contoso#0';
      const a = await s.cluster.acquire(lease, 'n-a', 30_000);
      assert.ok(a.ok);
      const event = (id: string) => ({ id, mailbox: 'anna@contoso.test', type: 'message.new', body: '{}' });
      const fenceA = { lease, owner: 'n-a', epoch: a.epoch };
      assert.equal((await s.notify.publish(event('evt_1'), now, fenceA)).event.seq, 1);
      now += 31_000;
      const b = await s.cluster.acquire(lease, 'n-b', 30_000);
      assert.ok(b.ok);
      await assert.rejects(s.notify.publish(event('evt_2'), now, fenceA), (err: unknown) => err instanceof MbError && err.code === 'MB_CLUSTER_LEASE_LOST');
      assert.deepEqual((await s.notify.listEvents({ after: 0 })).map((e) => e.id), ['evt_1']);
      assert.equal((await s.notify.publish(event('evt_2'), now, { lease, owner: 'n-b', epoch: b.epoch })).event.seq, 2);
    });

    test('parcels: prune removes those of a channel posted before a time, of the keys given or of all', async () => {
      const s = await d.open();
      await s.signals.post('ch', 'a', 'a1', T0 - 10);
      await s.signals.post('ch', 'a', 'a2', T0);
      await s.signals.post('ch', 'b', 'b1', T0 - 10);
      await s.signals.post('ch', 'c', 'c1', T0 - 10);
      await s.signals.post('other', 'a', 'o1', T0 - 10);
      assert.equal(await s.signals.prune('ch', T0, []), 0);
      assert.equal(await s.signals.prune('ch', T0, ['b', 'x']), 1);
      assert.deepEqual(await s.signals.waiting('ch'), ['a', 'c']);
      assert.equal(await s.signals.prune('ch', T0), 2);
      assert.deepEqual((await s.signals.parcels('ch', 'a', 10)).map((p) => p.payload), ['a2']);
      assert.deepEqual(await s.signals.waiting('ch'), ['a']);
      assert.deepEqual((await s.signals.parcels('other', 'a', 10)).map((p) => p.payload), ['o1'], 'another channel\'s parcel stays');
    });

    test('signals: a subscriber gets what another store of the same database publishes', async () => {
      const a = await d.open();
      // PostgreSQL: a second pool on the same database, as another node; SQLite: the same process.
      const b = d.name === 'postgres' ? await d.reopen() : a;
      const got: string[] = [];
      const stop = await a.signals.subscribe('mailbridge_test', (p) => got.push(p));
      await b.signals.publish('mailbridge_test', '{"n":1}');
      await b.signals.publish('other_channel', 'not for us');
      await waitFor(() => got.length === 1, 10_000, 'the signal');
      assert.deepEqual(got, ['{"n":1}']);
      stop();
      await b.signals.publish('mailbridge_test', '{"n":2}');
      await b.signals.publish('mailbridge_test', '{"n":3}');
      // A second subscriber still listening shows that the publications went out; the stopped one got none.
      const later: string[] = [];
      await a.signals.subscribe('mailbridge_test', (p) => later.push(p));
      await b.signals.publish('mailbridge_test', '{"n":4}');
      await waitFor(() => later.includes('{"n":4}'), 10_000, 'the later signal');
      assert.deepEqual(got, ['{"n":1}']);
    });
  });
}

test('signals on PostgreSQL listen again after the server restarted, and tell their subscribers of the gap', async () => {
  const d = drivers.list.find((x) => x.name === 'postgres')!;
  const a = await d.open();
  const b = await d.reopen();
  const got: string[] = [];
  let gaps = 0;
  // The gap is told once listening resumed: what was published while the connection was gone is lost.
  await a.signals.subscribe('mailbridge_test', (p) => got.push(p), () => gaps++);
  const other = await a.signals.subscribe('mailbridge_other', () => undefined, () => gaps++);
  other();
  assert.equal(gaps, 0);
  await (await drivers.server()).restart();
  await waitFor(() => gaps > 0, 30_000, 'the gap told to the subscriber after the restart');
  assert.equal(gaps, 1, 'told once, and not to the subscription that was stopped');
  // Publishing fails while the pools reconnect; each attempt is a new publication until one arrives.
  await waitFor(
    async () => {
      await b.signals.publish('mailbridge_test', 'after restart').catch(() => undefined);
      return got.includes('after restart');
    },
    30_000,
    'a signal after the restart',
    200,
  );
});
