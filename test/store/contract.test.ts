/**
 * The store's repositories hold the same promises on SQLite and on PostgreSQL: each test runs on
 * both drivers (test/support/stores.ts starts a private PostgreSQL server for this file).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MbError } from '../../src/errors/index.ts';
import type { QueueRecord } from '../../src/store/queue.ts';
import { storeDrivers } from '../support/stores.ts';
import { waitFor } from '../support/wait.ts';

const drivers = storeDrivers();
after(() => drivers.close());

function rec(id: string, over: Partial<QueueRecord> = {}): QueueRecord {
  return {
    id,
    state: 'incoming',
    kind: 'message',
    sender: 'app@contoso.test',
    recipients: ['a@example.com', 'b@example.com'],
    mailbox: 'app@contoso.test',
    size: 1234,
    bodyType: '8bitmime',
    smtpUtf8: false,
    receivedAt: 1_700_000_000_000,
    attempts: 0,
    nextAttemptAt: 1_700_000_000_000,
    updatedAt: 1_700_000_000_000,
    ...over,
  };
}

for (const d of drivers.list) {
  describe(`store contract (${d.name})`, () => {
    test('kv: set, overwrite, list per namespace, delete; values survive a reopen', async () => {
      const a = await d.open();
      await a.kv.set('tokens', 'contoso', 'v1');
      await a.kv.set('tokens', 'contoso', 'v2');
      await a.kv.set('tokens', 'fabrikam', 'x');
      await a.kv.set('other', 'contoso', 'y');
      // A relaxed write (no wait for the flush) is a write like any other for every reader and a reopen.
      await a.kv.set('trace', 'm1', 'r1', { relaxed: true });
      await a.kv.set('trace', 'm1', 'r2', { relaxed: true });
      assert.equal(await a.kv.get('trace', 'm1'), 'r2');
      assert.equal(await a.kv.delete('tokens', 'fabrikam'), true);
      assert.equal(await a.kv.delete('tokens', 'fabrikam'), false);
      await a.close();
      const b = await d.reopen();
      assert.equal(await b.kv.get('tokens', 'contoso'), 'v2');
      assert.equal(await b.kv.get('tokens', 'fabrikam'), undefined);
      assert.equal(await b.kv.get('trace', 'm1'), 'r2');
      const rows = await b.kv.list('tokens');
      assert.deepEqual(rows.map((r) => [r.key, r.value]), [['contoso', 'v2']]);
      assert.match(rows[0]!.updatedAt, /^\d{4}-\d\d-\d\dT/);
      await b.ping();
      assert.equal(b.driver, d.name);
    });

    test('kv.fenced: writes as a lease holder; once the lease moved on, the former holder\'s set and delete are refused and change nothing', async () => {
      let now = 1_800_000_000_000;
      const s = await d.open({ clock: () => now });
      const lease = 'watch:sales/sales/sandbox#0';
      const a = await s.cluster.acquire(lease, 'n-a', 30_000);
      assert.ok(a.ok);
      const asA = s.kv.fenced({ lease, owner: 'n-a', epoch: a.epoch });
      await asA.set('notify.watch.graph', 'cursor:anna', 'delta-1');
      await asA.set('notify.watch.graph', 'trace:anna', 'r1', { relaxed: true });
      assert.equal(await asA.get('notify.watch.graph', 'cursor:anna'), 'delta-1');
      now += 31_000;
      const b = await s.cluster.acquire(lease, 'n-b', 30_000);
      assert.ok(b.ok);
      await s.kv.fenced({ lease, owner: 'n-b', epoch: b.epoch }).set('notify.watch.graph', 'cursor:anna', 'delta-2');
      const lost = (err: unknown) => err instanceof MbError && err.code === 'MB_CLUSTER_LEASE_LOST';
      await assert.rejects(asA.set('notify.watch.graph', 'cursor:anna', 'delta-1'), lost);
      await assert.rejects(asA.set('notify.watch.graph', 'cursor:anna', 'delta-1', { relaxed: true }), lost);
      await assert.rejects(asA.delete('notify.watch.graph', 'cursor:anna'), lost);
      assert.equal(await s.kv.get('notify.watch.graph', 'cursor:anna'), 'delta-2');
      // Expired without a successor is lost as well: the holder may not write past its lease.
      now += 31_000;
      await assert.rejects(s.kv.fenced({ lease, owner: 'n-b', epoch: b.epoch }).set('notify.watch.graph', 'cursor:anna', 'delta-3'), lost);
      assert.equal(await s.kv.get('notify.watch.graph', 'cursor:anna'), 'delta-2');
    });

    test('kv add: the first value stays, whoever adds it after (two stores at once: one value for both)', async () => {
      const a = await d.open();
      const b = await d.reopen();
      const [x, y] = await Promise.all([a.kv.add('watch-ews', 'push-token:g/l', 'from-a'), b.kv.add('watch-ews', 'push-token:g/l', 'from-b')]);
      assert.equal(x, y);
      assert.ok(['from-a', 'from-b'].includes(x));
      assert.equal(await a.kv.add('watch-ews', 'push-token:g/l', 'later'), x);
      assert.equal(await b.kv.get('watch-ews', 'push-token:g/l'), x);
      await b.close();
      await a.close();
    });

    test('parcels: posted durably, read per key in the order posted and in pages, a signal names the key, removed once handled', async () => {
      const a = await d.open();
      const heard: string[] = [];
      const stop = await a.signals.subscribe('mb_test_parcels', (k) => heard.push(k));
      const big = 'x'.repeat(20_000); // far beyond a NOTIFY's 8,000 bytes
      for (let i = 1; i <= 5; i++) await a.signals.post('mb_test_parcels', 'g/l\nanna@contoso.test', `${i}:${big}`, 1000 + i);
      await a.signals.post('mb_test_parcels', 'g/l\nben@contoso.test', 'b1', 2000);
      await a.signals.post('mb_other', 'g/l\nanna@contoso.test', 'elsewhere', 3000);
      await waitFor(() => heard.length >= 6, 10_000, () => `the six signals: ${heard.length}`);
      stop();
      assert.deepEqual(heard, [...Array(5).fill('g/l\nanna@contoso.test'), 'g/l\nben@contoso.test']);
      assert.deepEqual(await a.signals.waiting('mb_test_parcels'), ['g/l\nanna@contoso.test', 'g/l\nben@contoso.test']);
      await a.close();
      // Committed before post() resolved: a new connection (a restart, another node) reads them.
      const b = await d.reopen();
      const first = await b.signals.parcels('mb_test_parcels', 'g/l\nanna@contoso.test', 3);
      assert.deepEqual(first.map((p) => p.payload.split(':')[0]), ['1', '2', '3']);
      assert.equal(first[0]!.payload.length, 2 + big.length);
      assert.equal(first[0]!.postedAt, 1001);
      await b.signals.remove(first.map((p) => p.id));
      const rest = await b.signals.parcels('mb_test_parcels', 'g/l\nanna@contoso.test', 3);
      assert.deepEqual(rest.map((p) => p.payload.split(':')[0]), ['4', '5']);
      await b.signals.remove(rest.map((p) => p.id));
      assert.deepEqual(await b.signals.waiting('mb_test_parcels'), ['g/l\nben@contoso.test']);
      assert.deepEqual((await b.signals.parcels('mb_other', 'g/l\nanna@contoso.test', 10)).map((p) => p.payload), ['elsewhere']);
      await b.close();
    });

    test('queue: rows round-trip with every optional field; list pages by id; counts per state', async () => {
      const s = await d.open();
      const full = rec('q1', {
        relayUser: 'scanner',
        clientIp: '192.0.2.7',
        smtpUtf8: true,
        lastAttemptAt: 1_700_000_000_500,
        lastError: { code: 'MB_RELAY_X', params: { n: 1, ok: true }, reply: '451 4.7.0 try later', detail: 'd' },
        holdReason: 'admin',
        originId: 'q0',
        retryRequestedAt: 1_700_000_000_600,
        state: 'held',
      });
      await s.queue.insert([full, rec('q2'), rec('q3', { state: 'deferred' })]);
      assert.deepEqual(await s.queue.get('q1'), full);
      assert.equal(await s.queue.get('nope'), undefined);
      assert.deepEqual((await s.queue.list({ limit: 2 })).map((r) => r.id), ['q1', 'q2']);
      assert.deepEqual((await s.queue.list({ after: 'q1' })).map((r) => r.id), ['q2', 'q3']);
      assert.deepEqual((await s.queue.list({ states: ['deferred', 'held'] })).map((r) => r.id), ['q1', 'q3']);
      const counts = await s.queue.counts();
      assert.equal(counts.incoming, 1);
      assert.equal(counts.held, 1);
      assert.equal(counts.deferred, 1);
      assert.equal(counts.sent, 0);
      assert.deepEqual((await s.queue.ids(['incoming', 'deferred'])).sort(), ['q2', 'q3']);
      assert.deepEqual(await s.queue.ids([]), []);
    });

    test('queue: an insert of several rows is all or nothing', async () => {
      const s = await d.open();
      await s.queue.insert([rec('dup')]);
      await assert.rejects(s.queue.insert([rec('new1'), rec('dup')]));
      assert.equal(await s.queue.get('new1'), undefined);
    });

    test('queue: ready and nextDue honour due time, state and excluded mailboxes, oldest first', async () => {
      const s = await d.open();
      await s.queue.insert([
        rec('a', { nextAttemptAt: 30 }),
        rec('b', { nextAttemptAt: 10, mailbox: 'other@contoso.test' }),
        rec('c', { nextAttemptAt: 20, state: 'deferred' }),
        rec('d', { nextAttemptAt: 5, state: 'held' }),
        rec('e', { nextAttemptAt: 100 }),
      ]);
      assert.deepEqual((await s.queue.ready(50, 10)).map((r) => r.id), ['b', 'c', 'a']);
      assert.deepEqual((await s.queue.ready(50, 2)).map((r) => r.id), ['b', 'c']);
      assert.deepEqual((await s.queue.ready(50, 10, ['other@contoso.test'])).map((r) => r.id), ['c', 'a']);
      assert.equal(await s.queue.nextDue(), 10);
      assert.equal(await s.queue.nextDue(['other@contoso.test']), 20);
      assert.equal(await s.queue.nextDue(['other@contoso.test', 'app@contoso.test']), undefined);
    });

    test('queue: transition is a compare-and-set; of two racing claims exactly one wins', async () => {
      const s = await d.open();
      await s.queue.insert([rec('m')]);
      const claims = await Promise.all(
        Array.from({ length: 6 }, () => s.queue.transition('m', ['incoming', 'deferred'], { state: 'active', updatedAt: 2 })),
      );
      assert.equal(claims.filter(Boolean).length, 1);
      const sent = await s.queue.transition('m', ['active'], { state: 'sent', attempts: 1, lastAttemptAt: 3, lastError: null, updatedAt: 3 });
      assert.equal(sent?.state, 'sent');
      assert.equal(sent?.attempts, 1);
      assert.equal(await s.queue.transition('m', ['active'], { state: 'deferred', updatedAt: 4 }), undefined);
      const held = await s.queue.transition('m', ['sent'], { state: 'held', holdReason: 'admin', lastError: { code: 'MB_X' }, updatedAt: 5 });
      assert.deepEqual([held?.holdReason, held?.lastError], ['admin', { code: 'MB_X' }]);
      const cleared = await s.queue.transition('m', ['held'], { state: 'deferred', holdReason: null, lastError: null, updatedAt: 6 });
      assert.equal(cleared?.holdReason, undefined);
      assert.equal(cleared?.lastError, undefined);
    });

    test('queue: transitionAndInsert moves and inserts together, or does neither', async () => {
      const s = await d.open();
      await s.queue.insert([rec('orig', { state: 'active' })]);
      const bounced = await s.queue.transitionAndInsert('orig', ['active'], { state: 'bounced', updatedAt: 9 }, [
        rec('dsn1', { kind: 'dsn', sender: '', originId: 'orig' }),
      ]);
      assert.equal(bounced?.state, 'bounced');
      assert.equal((await s.queue.get('dsn1'))?.originId, 'orig');
      const again = await s.queue.transitionAndInsert('orig', ['active'], { state: 'bounced', updatedAt: 10 }, [rec('dsn2', { kind: 'dsn', sender: '' })]);
      assert.equal(again, undefined);
      assert.equal(await s.queue.get('dsn2'), undefined);
    });

    test('queue: transitionAll, delete by state, sentSince and purge', async () => {
      const s = await d.open();
      await s.queue.insert([rec('x1', { state: 'active' }), rec('x2', { state: 'active' }), rec('x3', { recipients: ['1@e.x', '2@e.x', '3@e.x'] })]);
      assert.equal(await s.queue.transitionAll(['active'], { state: 'deferred', updatedAt: 50 }), 2);
      assert.equal(await s.queue.delete('x1', ['held']), false);
      assert.equal(await s.queue.delete('x1', ['deferred']), true);
      await s.queue.transition('x3', ['incoming'], { state: 'sent', updatedAt: 200 });
      await s.queue.transition('x2', ['deferred'], { state: 'sent', updatedAt: 100 });
      assert.deepEqual(
        (await s.queue.sentSince(150)).map((r) => [r.mailbox, r.recipients, r.at]),
        [['app@contoso.test', 3, 200]],
      );
      assert.deepEqual(await s.queue.purge(['sent'], 150), ['x2']);
      assert.deepEqual(await s.queue.purge([], 150), []);
      assert.deepEqual((await s.queue.list()).map((r) => r.id), ['x3']);
    });

    test('queue: retryRequestedAt is set by an update; retriedSince names the mailboxes of retried incoming/deferred rows with the latest time', async () => {
      const s = await d.open();
      await s.queue.insert([
        rec('r1', { state: 'deferred', mailbox: 'a@contoso.test' }),
        rec('r2', { state: 'deferred', mailbox: 'a@contoso.test' }),
        rec('r3', { state: 'deferred', mailbox: 'b@contoso.test' }),
        rec('r4', { state: 'held', mailbox: 'c@contoso.test', retryRequestedAt: 900 }),
      ]);
      await s.queue.transition('r1', ['deferred'], { state: 'deferred', retryRequestedAt: 500, updatedAt: 500 });
      await s.queue.transition('r2', ['deferred'], { state: 'deferred', retryRequestedAt: 700, updatedAt: 700 });
      await s.queue.transition('r3', ['deferred'], { state: 'deferred', retryRequestedAt: 300, updatedAt: 300 });
      assert.equal((await s.queue.get('r2'))?.retryRequestedAt, 700);
      assert.deepEqual(await s.queue.retriedSince(400), [{ mailbox: 'a@contoso.test', at: 700 }], 'b too early, c held');
      await s.queue.transition('r2', ['deferred'], { state: 'deferred', retryRequestedAt: null, updatedAt: 800 });
      assert.deepEqual(await s.queue.retriedSince(400), [{ mailbox: 'a@contoso.test', at: 500 }]);
      assert.equal((await s.queue.get('r2'))?.retryRequestedAt, undefined);
    });

    test('queue: bodies commit with their rows (all or nothing), read back byte for byte, and are deleted', async () => {
      const s = await d.open();
      const body = Buffer.from([0, 1, 2, 0xff, 0x0d, 0x0a, ...Buffer.from('Grüße')]);
      await s.queue.insert([rec('b1'), rec('b2')], new Map([['b1', body], ['b2', Buffer.from('two')]]));
      assert.deepEqual(await s.queue.readBody('b1'), body);
      assert.equal(await s.queue.hasBody('b2'), true);
      assert.deepEqual((await s.queue.bodyIds()).sort(), ['b1', 'b2']);
      // A row that fails takes its body with it, and a body that fails its row.
      await assert.rejects(s.queue.insert([rec('b3'), rec('b1')], new Map([['b3', Buffer.from('three')]])));
      assert.equal(await s.queue.hasBody('b3'), false);
      await assert.rejects(s.queue.insert([rec('b4')], new Map([['b4', Buffer.from('x')], ['b2', Buffer.from('dup')]])));
      assert.equal(await s.queue.get('b4'), undefined);
      await s.queue.deleteBody('b1');
      assert.equal(await s.queue.readBody('b1'), undefined);
      assert.equal(await s.queue.hasBody('b1'), false);
      // A bounce's report and its body go in with the bounce.
      await s.queue.insert([rec('o', { state: 'active' })]);
      await s.queue.transitionAndInsert('o', ['active'], { state: 'bounced', updatedAt: 9 }, [rec('dsn', { kind: 'dsn', sender: '' })], {
        bodies: new Map([['dsn', Buffer.from('report')]]),
      });
      assert.deepEqual(await s.queue.readBody('dsn'), Buffer.from('report'));
      // Bodies of finished (or deleted) messages are dropped; those of waiting ones stay.
      await s.queue.insert([rec('f1', { state: 'sent' }), rec('f2', { state: 'held' })], new Map([['f1', Buffer.from('1')], ['f2', Buffer.from('2')]]));
      assert.equal(await s.queue.dropFinishedBodies(), 1, 'f1 is sent');
      assert.deepEqual((await s.queue.bodyIds()).sort(), ['b2', 'dsn', 'f2']);
    });

    test('queue: a claim writes holder, token and a lease on the store\'s clock; results are fenced by the token; expired leases are taken over', async () => {
      // The store's lease clock, and the claimers' clocks ten minutes ahead and behind it: leases
      // go by the store's, updatedAt by the claimer's.
      let now = 100;
      const s = await d.open({ clock: () => now });
      const [ahead, behind] = [now + 600_000, now - 600_000];
      await s.queue.insert([rec('c1'), rec('c2'), rec('c3', { state: 'held' })]);
      const a = await s.queue.claim('c1', { by: 'node-a', token: 'ta', now: ahead, leaseMs: 1_000 });
      assert.deepEqual(
        [a.record?.state, a.record?.claimedBy, a.record?.claimToken, a.record?.leaseUntil, a.record?.updatedAt],
        ['active', 'node-a', 'ta', 1_100, ahead],
      );
      assert.deepEqual(await s.queue.claim('c1', { by: 'node-b', token: 'tb', now: behind, leaseMs: 1_000 }), {}, 'claimed already');
      assert.deepEqual(await s.queue.claim('c3', { by: 'node-b', token: 'tb', now: behind, leaseMs: 1_000 }), {}, 'held');
      assert.equal((await s.queue.claim('c2', { by: 'node-b', token: 'tc', now: behind, leaseMs: 1_000 })).record?.leaseUntil, 1_100);
      // What `mailbridge status` counts per node: active rows by holder.
      assert.deepEqual(await s.queue.claimedPerNode(), { 'node-a': 1, 'node-b': 1 });
      // Renewal keeps only what the node still holds under those tokens, for the lease time from the store's now.
      now = 1_000;
      assert.deepEqual(await s.queue.takeOver(), [], 'no lease ran out');
      assert.deepEqual(await s.queue.renew('node-a', ['ta', 'tc'], 1_000), ['ta']);
      assert.equal((await s.queue.get('c1'))?.leaseUntil, 2_000);
      // node-b dies: its lease (1_100) runs out, node-a's (2_000) does not. The message keeps its due
      // time (passed for every node) and goes back to deferred.
      now = 1_500;
      assert.deepEqual(await s.queue.takeOver(), [{ id: 'c2', claimedBy: 'node-b' }]);
      const back = await s.queue.get('c2');
      assert.deepEqual([back?.state, back?.nextAttemptAt, back?.updatedAt], ['deferred', rec('c2').nextAttemptAt, 1_500]);
      const again = await s.queue.claim('c2', { by: 'node-a', token: 'td', now: 1_600, leaseMs: 1_000 });
      assert.equal(again.record?.claimToken, 'td');
      // node-b comes back and reports its old attempt: refused; node-a's result is recorded.
      assert.equal(await s.queue.transition('c2', ['active'], { state: 'sent', updatedAt: 1_700 }, 'tc'), undefined);
      assert.equal((await s.queue.transition('c2', ['active'], { state: 'sent', updatedAt: 1_700 }, 'td'))?.state, 'sent');
      assert.equal(
        await s.queue.transitionAndInsert('c1', ['active'], { state: 'bounced', updatedAt: 1_800 }, [rec('r1')], { token: 'wrong' }),
        undefined,
      );
      assert.equal(await s.queue.get('r1'), undefined);
      assert.deepEqual(await s.queue.renew('node-b', ['tc'], 1_000), []);
    });

    test('queue: claims with shared limits count connections, starts per minute and recipients per day across claimers', async () => {
      // The store's lease clock follows the claimers' here; running deliveries are the leases that
      // have not run out by it.
      let storeNow = 0;
      const s = await d.open({ clock: () => storeNow });
      const limits = { concurrency: 2, perMinute: 3, recipientsPerDay: 9 };
      const mb = { mailbox: 'shared@contoso.test' };
      await s.queue.insert(['l1', 'l2', 'l3', 'l4', 'l5'].map((id) => rec(id, mb)));
      const claim = (id: string, by: string, now: number, leaseMs = 10_000) => {
        storeNow = now;
        return s.queue.claim(id, { by, token: `${id}-${now}`, now, leaseMs, limits });
      };
      assert.ok((await claim('l1', 'a', 1_000)).record);
      assert.ok((await claim('l2', 'b', 1_000)).record);
      assert.deepEqual(await claim('l3', 'c', 1_000), { limited: { until: undefined } }, 'two connections in use on other nodes');
      assert.equal((await s.queue.get('l3'))?.state, 'incoming', 'a limited claim leaves the row alone');
      await s.queue.transition('l1', ['active'], { state: 'sent', updatedAt: 2_000 }, 'l1-1000');
      assert.ok((await claim('l3', 'c', 2_000)).record, 'a connection is free again');
      await s.queue.transition('l2', ['active'], { state: 'sent', updatedAt: 3_000 }, 'l2-1000');
      await s.queue.transition('l3', ['active'], { state: 'sent', updatedAt: 3_000 }, 'l3-2000');
      assert.deepEqual(await claim('l4', 'a', 3_000), { limited: { until: 61_000 } }, 'three starts in the last minute; the oldest leaves it at 61 s');
      // 6 recipients started (2 each); a 9-recipient budget leaves room for one more message, not for two.
      assert.ok((await claim('l4', 'a', 61_001)).record);
      await s.queue.transition('l4', ['active'], { state: 'sent', updatedAt: 61_002 }, 'l4-61001');
      const day = await claim('l5', 'b', 62_000);
      assert.deepEqual(day, { limited: { until: 1_000 + 86_400_000 } }, 'the daily budget frees up when the first start leaves the 24 hours');
      // Leases that ran out (their node died) do not hold connections.
      await s.queue.insert(['l6', 'l7'].map((id) => rec(id, { ...mb, recipients: ['x@example.com'] })));
      for (const id of ['l6', 'l7']) assert.ok((await claim(id, 'dead', 90_000_000, 1)).record);
      assert.deepEqual(await claim('l5', 'b', 90_000_000), { limited: { until: undefined } });
      assert.ok((await claim('l5', 'b', 90_000_010)).record, 'the leases of l6 and l7 ran out: their connections are not counted');
    });

    test('checkpoints: epoch, advance (never backward), cursor, in-flight, record, lookup, keys of earlier epochs', async () => {
      const s = await d.open();
      const c = s.checkpoints;
      const scope = { connector: 'scans', mailbox: 'alice@contoso.test', folder: 'INBOX' };
      assert.equal(await c.get(scope), undefined);
      await c.setEpoch(scope, '100', 0);
      await c.advance(scope, { position: 5, cursor: 'link-1' });
      await c.advance(scope, { position: 3 });
      let cp = await c.get(scope);
      assert.deepEqual([cp?.epoch, cp?.position, cp?.cursor, cp?.dedupeBelow], ['100', 5, 'link-1', 0]);
      await c.advance(scope, { cursor: null });
      assert.equal((await c.get(scope))?.cursor, undefined);

      await c.begin(scope, { epoch: '100', item: '6', key: '<m6@x>', deliveryId: 'd6' });
      await c.begin(scope, { epoch: '100', item: '7', key: '<m7@x>', deliveryId: 'd7' });
      assert.deepEqual((await c.inFlight(scope)).map((e) => [e.item, e.deliveryId]), [['6', 'd6'], ['7', 'd7']]);
      await c.record(scope, { epoch: '100', item: '6', key: '<m6@x>', state: 'delivered', size: 10 }, { position: 6 });
      await c.abandon(scope, '100', '7');
      assert.deepEqual(await c.inFlight(scope), []);
      await c.record(scope, { epoch: '100', item: '8', key: '<m8@x>', state: 'rejected', code: 'MB_X', size: 3 });
      cp = await c.get(scope);
      assert.equal(cp?.position, 6);
      const found = await c.lookup(scope, '100', ['6', '8', '9']);
      assert.deepEqual([...found.keys()].sort(), ['6', '8']);
      assert.equal(found.get('8')?.code, 'MB_X');
      assert.equal(found.get('6')?.code, undefined);
      assert.deepEqual((await c.byState(scope, '100', 'delivered')).map((m) => m.item), ['6']);
      await c.markDone(scope, '100', ['6', '8']);
      assert.equal((await c.lookup(scope, '100', ['6'])).get('6')?.state, 'done');
      assert.equal((await c.lookup(scope, '100', ['8'])).get('8')?.state, 'rejected');

      // A new epoch: position and cursor start over, in-flight of the old epoch is dropped, keys stay.
      await c.begin(scope, { epoch: '100', item: '9', key: '<m9@x>', deliveryId: 'd9' });
      await c.setEpoch(scope, '200', 10);
      cp = await c.get(scope);
      assert.deepEqual([cp?.epoch, cp?.position, cp?.cursor, cp?.dedupeBelow], ['200', 0, undefined, 10]);
      assert.deepEqual(await c.inFlight(scope), []);
      assert.deepEqual([...(await c.deliveredKeys(scope, ['<m6@x>', '<m8@x>', '<none@x>'], '200'))], ['<m6@x>']);
      assert.deepEqual([...(await c.deliveredKeys(scope, ['<m6@x>'], '100'))], []);

      const listed = await c.list('scans');
      assert.equal(listed.length, 1);
      assert.deepEqual([listed[0]!.delivered, listed[0]!.rejected, listed[0]!.inFlight], [1, 1, 0]);
      assert.equal(await c.prune(scope, new Date(Date.now() + 60_000), ['rejected']), 1);
      assert.equal(await c.prune(scope, new Date(Date.now() + 60_000), []), 0);
    });

    test('checkpoints: a lease has one owner until it expires, is renewed by its owner, and can be stolen only when allowed', async () => {
      const s = await d.open();
      const c = s.checkpoints;
      assert.deepEqual(await c.claim('connector:scans', 'node-a', 60_000), { ok: true });
      assert.deepEqual(await c.claim('connector:scans', 'node-a', 60_000), { ok: true });
      const refused = await c.claim('connector:scans', 'node-b', 60_000);
      assert.equal(refused.ok, false);
      assert.equal(refused.ok === false && refused.owner, 'node-a');
      assert.deepEqual(await c.claim('connector:scans', 'node-b', 60_000, (owner) => owner === 'node-a'), { ok: true });
      await c.release('connector:scans', 'node-a');
      assert.equal((await c.claim('connector:scans', 'node-a', 60_000)).ok, false);
      await c.release('connector:scans', 'node-b');
      assert.deepEqual(await c.claim('connector:scans', 'node-a', 1), { ok: true });
      await new Promise((r) => setTimeout(r, 5));
      // Expired: another owner may take it.
      assert.deepEqual(await c.claim('connector:scans', 'node-c', 60_000), { ok: true });
      // Concurrent first claims of a new lease: exactly one wins.
      const racers = await Promise.all(['x', 'y', 'z', 'w'].map((o) => c.claim('connector:new', o, 60_000)));
      assert.equal(racers.filter((r) => r.ok).length, 1);
    });

    test('notify: subscriptions, publish fans out once per event id, line heads in order, complete/defer/expire, gone, purge', async () => {
      const s = await d.open();
      const n = s.notify;
      const sub = (id: string, mailboxes: string[], events: string[] = []) => ({
        id,
        kind: 'webhook',
        mailboxes,
        events,
        params: { url: 'https://hooks.example/x', secret: 'sealed:abc', nested: { b: 1, a: [2] } },
        privacy: 'full' as const,
        state: 'active' as const,
        createdAt: 1,
        updatedAt: 1,
      });
      await n.createSubscription({ ...sub('sub_1', ['Alice@Contoso.test', 'bob@contoso.test']), label: 'dms' });
      await n.createSubscription(sub('sub_2', ['alice@contoso.test'], ['message.read-state']));
      const got = await n.getSubscription('sub_1');
      assert.deepEqual(got?.mailboxes, ['alice@contoso.test', 'bob@contoso.test']);
      assert.deepEqual(got?.params, { url: 'https://hooks.example/x', secret: 'sealed:abc', nested: { b: 1, a: [2] } });
      assert.equal(got?.label, 'dms');
      assert.deepEqual((await n.listSubscriptions({ mailbox: 'ALICE@contoso.test' })).map((x) => x.id), ['sub_1', 'sub_2']);
      assert.deepEqual((await n.listSubscriptions({ mailbox: 'bob@contoso.test' })).map((x) => x.id), ['sub_1']);

      const p1 = await n.publish({ id: 'ev1', mailbox: 'Alice@contoso.test', type: 'message.new', body: '{"a":1}' }, 100);
      assert.deepEqual([p1.duplicate, p1.deliveries, p1.event.seq, p1.event.mailbox], [false, 1, 1, 'alice@contoso.test']);
      const again = await n.publish({ id: 'ev1', mailbox: 'alice@contoso.test', type: 'message.new', body: '{"a":1}' }, 101);
      assert.deepEqual([again.duplicate, again.deliveries], [true, 0]);
      const p2 = await n.publish({ id: 'ev2', mailbox: 'alice@contoso.test', type: 'message.read-state', body: '{}' }, 102);
      assert.deepEqual([p2.event.seq, p2.deliveries], [2, 2]);
      // Same id published concurrently (two nodes): stored once.
      const racing = await Promise.all([1, 2, 3].map(() => n.publish({ id: 'ev3', mailbox: 'bob@contoso.test', type: 'message.new', body: '{}' }, 103)));
      assert.equal(racing.filter((r) => !r.duplicate).length, 1);

      // Line heads: sub_1/alice has ev1 then ev2; only ev1 is due until it is done.
      let due = await n.due(200, 10);
      assert.deepEqual(due.map((x) => `${x.subscription.id}:${x.event.id}`).sort(), ['sub_1:ev1', 'sub_1:ev3', 'sub_2:ev2']);
      assert.equal(due.find((x) => x.event.id === 'ev1')?.subscription.params.url, 'https://hooks.example/x');
      // A due delivery does not read the subscription's mailbox list (it may name 50,000).
      assert.ok(due.every((x) => !('mailboxes' in x.subscription)));
      due = await n.due(200, 10, new Set(['sub_1\nbob@contoso.test']));
      assert.deepEqual(due.map((x) => `${x.subscription.id}:${x.event.id}`).sort(), ['sub_1:ev1', 'sub_2:ev2']);
      assert.equal(await n.nextDue(200), 100);
      assert.equal(await n.complete('sub_1', 'ev1', 300), true);
      assert.equal(await n.complete('sub_1', 'ev1', 301), false);
      assert.equal(await n.defer('sub_1', 'ev2', { attempts: 1, nextAttemptAt: 5000, lastError: { code: 'MB_NOTIFY_X', detail: 'HTTP 500' } }, 310), true);
      assert.deepEqual((await n.getDelivery('sub_1', 'ev2'))?.lastError, { code: 'MB_NOTIFY_X', detail: 'HTTP 500' });
      assert.deepEqual((await n.due(400, 10)).map((x) => x.event.id).sort(), ['ev2', 'ev3']);
      assert.equal(await n.expire('sub_2', 'ev2', { attempts: 9, lastError: { code: 'MB_NOTIFY_Y' } }, 320), true);
      const counts = await n.counts();
      assert.deepEqual([counts.done, counts.pending, counts.expired, counts.dropped], [1, 2, 1, 0]);
      assert.deepEqual((await n.listDeliveries({ subscriptionId: 'sub_1', states: ['pending'] })).map((x) => x.eventId), ['ev2', 'ev3']);

      // Events in publication order, and the newest n oldest first.
      const all = await n.listEvents();
      assert.deepEqual(all.map((e) => e.id), ['ev1', 'ev2', 'ev3']);
      assert.deepEqual((await n.listEvents({ after: all[0]!.cursor })).map((e) => e.id), ['ev2', 'ev3']);
      assert.deepEqual((await n.listEvents({ last: 2 })).map((e) => e.id), ['ev2', 'ev3']);
      assert.deepEqual((await n.listEvents({ mailbox: 'BOB@contoso.test' })).map((e) => e.id), ['ev3']);

      assert.equal(await n.markGone('sub_1', 'MB_NOTIFY_GONE: 410', 500), true);
      assert.equal(await n.markGone('sub_1', 'again', 501), false);
      assert.equal((await n.getSubscription('sub_1'))?.goneReason, 'MB_NOTIFY_GONE: 410');
      assert.equal((await n.counts()).dropped, 2);
      assert.deepEqual(await n.due(10_000, 10), []);
      assert.equal(await n.nextDue(10_000), undefined);
      // Every delivery is finished now (done, expired, dropped): an early purge keeps them, a later one takes them and their events.
      assert.equal(await n.purge(200), 0);
      assert.equal((await n.listDeliveries()).length, 4);
      assert.equal(await n.purge(10_000), 3);
      assert.deepEqual(await n.listEvents(), []);
      assert.deepEqual(await n.listDeliveries(), []);
      assert.equal(await n.deleteSubscription('sub_1'), true);
      assert.equal(await n.deleteSubscription('sub_1'), false);
    });
  });
}
