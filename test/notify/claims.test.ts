/**
 * Notification deliveries shared by several dispatchers on one PostgreSQL database: due heads are
 * claimed with FOR UPDATE SKIP LOCKED, each delivery goes out once, each (subscription, mailbox)
 * line in order, and a head claimed by a node that died is taken over when its claim runs out. A
 * claim lasts the lease time and is renewed while its delivery is in flight, so a slow sink keeps
 * it and a dead node's claims move within the lease time. Claims are timed by the store's lease
 * clock (the database server's; the tests that step time pass a manual one to both stores), due
 * times by the dispatcher's: the last tests show two nodes whose clocks are ten minutes off.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createDispatcher } from '../../src/notify/dispatcher.ts';
import type { NotifyEvent } from '../../src/notify/events.ts';
import type { Sink, SinkResult, Subscription } from '../../src/notify/sinks/types.ts';
import { openStore } from '../../src/store/index.ts';
import { startPostgres, type PostgresServer } from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';
import { Clock, mail, noJitter, subscription } from './helpers.ts';

let server: PostgresServer | undefined;
const stores: Array<{ close(): Promise<void> }> = [];
after(async () => {
  for (const s of stores) await s.close().catch(() => undefined);
  await server?.stop();
});

/** Two nodes' stores on one database; `clock`: a manual lease clock for both (else the server's). */
async function twoNodes(clock?: () => number) {
  server ??= await startPostgres();
  const url = await server.database('claims');
  const a = await openStore({ driver: 'postgres', url }, clock ? { clock } : {});
  const b = await openStore({ driver: 'postgres', url }, clock ? { clock } : {});
  stores.push(a, b);
  return { a, b };
}

/** Records who delivered what; yields to the event loop so the two dispatchers interleave. */
class RecordingSink implements Sink {
  readonly kind = 'test';
  private readonly node: string;
  private readonly log: Array<{ node: string; line: string; seq: number }>;
  constructor(node: string, log: Array<{ node: string; line: string; seq: number }>) {
    this.node = node;
    this.log = log;
  }
  async deliver(event: NotifyEvent, sub: Subscription): Promise<SinkResult> {
    await new Promise((r) => setImmediate(r));
    this.log.push({ node: this.node, line: `${sub.id}:${event.mailbox}`, seq: event.seq! });
    return { kind: 'ok' };
  }
  parseParams(input: unknown): Record<string, unknown> {
    return input as Record<string, unknown>;
  }
  publicParams(params: Record<string, unknown>): Record<string, unknown> {
    return params;
  }
}

test('a head claimed by one node is not handed to another until its claim runs out; the other gets the next free heads', async () => {
  const t0 = 1_800_000_000_000;
  let now = t0;
  const { a, b } = await twoNodes(() => now);
  await a.notify.createSubscription(subscription('test', ['ben@contoso.com', 'cara@contoso.com']));
  await a.notify.publish(serialize(mail('ben@contoso.com', 'm1')), t0);
  await a.notify.publish(serialize(mail('ben@contoso.com', 'm2')), t0);
  await a.notify.publish(serialize(mail('cara@contoso.com', 'm1')), t0 + 5);
  const t = t0 + 10;
  now = t;
  const claimA = { by: 'node-a', forMs: 300_000 };
  const claimB = { by: 'node-b', forMs: 300_000 };

  const gotA = await a.notify.due(t, 1, undefined, claimA);
  assert.deepEqual(gotA.map((d) => [d.delivery.mailbox, d.delivery.seq]), [['ben@contoso.com', 1]]);
  // B gets only cara's head: A's claimed head blocks ben's line (ben's m2 is not a head).
  const gotB = await b.notify.due(t, 10, undefined, claimB);
  assert.deepEqual(gotB.map((d) => [d.delivery.mailbox, d.delivery.seq]), [['cara@contoso.com', 1]]);
  now = t + 1000;
  assert.deepEqual(await b.notify.due(t + 1000, 10, undefined, claimB), []);
  now = t + 2000;
  assert.equal(await b.notify.complete(gotB[0]!.delivery.subscriptionId, gotB[0]!.delivery.eventId, t + 2000), true);
  // nextDue does not report a head another node holds as due now (that would be a busy loop).
  assert.equal(await b.notify.nextDue(t + 2000), t + 300_000);

  // A dies mid-delivery: after its claim runs out, B takes A's head over, and the line stays in order.
  const later = t + 300_001;
  now = later;
  const taken = await b.notify.due(later, 10, undefined, claimB);
  assert.deepEqual(taken.map((d) => [d.delivery.mailbox, d.delivery.seq]), [['ben@contoso.com', 1]]);
  assert.equal(await b.notify.complete(taken[0]!.delivery.subscriptionId, taken[0]!.delivery.eventId, later), true);
  // The dead node's late completion of the same delivery changes nothing; the line's next event is the head now.
  assert.equal(await a.notify.complete(gotA[0]!.delivery.subscriptionId, gotA[0]!.delivery.eventId, later), false);
  assert.deepEqual((await a.notify.due(later, 10, undefined, claimA)).map((d) => [d.delivery.mailbox, d.delivery.seq]), [['ben@contoso.com', 2]]);
});

test('a head claimed but not handed out (its line still marked busy here, as right after the line\'s previous delivery completed) is released at once, not held until the claim runs out', async () => {
  const t0 = 1_800_000_000_000;
  let now = t0;
  const { a, b } = await twoNodes(() => now);
  const sub = subscription('test', ['ben@contoso.com', 'cara@contoso.com', 'dora@contoso.com']);
  await a.notify.createSubscription(sub);
  for (const m of ['ben', 'cara', 'dora']) await a.notify.publish(serialize(mail(`${m}@contoso.com`, 'm1')), t0);
  const t = t0 + 10;
  now = t;
  // A's dispatcher still counts ben's line as busy: whatever the query claims of it, A must not keep.
  const gotA = await a.notify.due(t, 3, new Set([`${sub.id}\nben@contoso.com`]), { by: 'node-a', forMs: 300_000 });
  assert.deepEqual(gotA.map((d) => d.delivery.mailbox).sort(), ['cara@contoso.com', 'dora@contoso.com']);
  now = t + 1;
  const gotB = await b.notify.due(t + 1, 10, undefined, { by: 'node-b', forMs: 300_000 });
  assert.deepEqual(gotB.map((d) => d.delivery.mailbox), ['ben@contoso.com'], 'B gets ben\'s head now, not after A\'s claim ran out');
});

test('two dispatchers on one database deliver every event once, each line in order, and share the work', async () => {
  const { a, b } = await twoNodes();
  const mailboxes = Array.from({ length: 8 }, (_, i) => `user${i}@contoso.com`);
  const subs = [subscription('test', mailboxes), subscription('test', mailboxes)];
  for (const s of subs) await a.notify.createSubscription(s);
  const log: Array<{ node: string; line: string; seq: number }> = [];
  const dispatchers = [
    createDispatcher({ repo: a.notify, sinks: [new RecordingSink('a', log)], retry: noJitter, claim: { by: 'node-a', forMs: 300_000 }, concurrency: 4 }),
    createDispatcher({ repo: b.notify, sinks: [new RecordingSink('b', log)], retry: noJitter, claim: { by: 'node-b', forMs: 300_000 }, concurrency: 4 }),
  ];
  const perMailbox = 5;
  for (let n = 1; n <= perMailbox; n++) for (const m of mailboxes) await dispatchers[n % 2]!.publish(mail(m, `m${n}`));
  await Promise.all(dispatchers.map((d) => d.runOnce()));

  const expected = subs.length * mailboxes.length * perMailbox;
  assert.equal(log.length, expected, 'every delivery sent exactly once');
  assert.equal(new Set(log.map((e) => `${e.line}:${e.seq}`)).size, expected);
  const byLine = new Map<string, number[]>();
  for (const e of log) byLine.set(e.line, [...(byLine.get(e.line) ?? []), e.seq]);
  for (const [line, seqs] of byLine) assert.deepEqual(seqs, [1, 2, 3, 4, 5], `line ${line} in order`);
  const counts = await a.notify.counts();
  assert.equal(counts.done, expected);
  assert.equal(counts.pending, 0);
  assert.ok(log.some((e) => e.node === 'a') && log.some((e) => e.node === 'b'), 'both nodes delivered');
});

test('renewClaims extends the claims a node still holds; once it stops renewing (it died), another node takes the head over', async () => {
  const t = 1_800_000_000_000;
  let now = t;
  const { a, b } = await twoNodes(() => now);
  await a.notify.createSubscription(subscription('test', ['dora@contoso.com', 'emil@contoso.com']));
  await a.notify.publish(serialize(mail('dora@contoso.com', 'm1')), t);
  await a.notify.publish(serialize(mail('emil@contoso.com', 'm1')), t);
  const claimA = { by: 'node-a', forMs: 30_000 };
  const heads = await a.notify.due(t, 10, undefined, claimA);
  assert.equal(heads.length, 2);
  const [dora] = heads.map((d) => ({ subscriptionId: d.delivery.subscriptionId, eventId: d.delivery.eventId, mailbox: d.delivery.mailbox })).sort((p, q) => p.mailbox.localeCompare(q.mailbox));

  // At t + 20 s A renews dora's claim only (emil's delivery is no longer in flight there) until
  // t + 50 s: emil's runs out at t + 30 s.
  now = t + 20_000;
  assert.deepEqual(await a.notify.renewClaims('node-a', [{ subscriptionId: dora!.subscriptionId, eventId: dora!.eventId }], 30_000), [
    { subscriptionId: dora!.subscriptionId, eventId: dora!.eventId },
  ]);
  // Another node cannot renew A's claim.
  assert.deepEqual(await b.notify.renewClaims('node-b', [{ subscriptionId: dora!.subscriptionId, eventId: dora!.eventId }], 70_000), []);
  const claimB = { by: 'node-b', forMs: 30_000 };
  now = t + 40_000;
  assert.deepEqual((await b.notify.due(t + 40_000, 10, undefined, claimB)).map((d) => d.delivery.mailbox), ['emil@contoso.com']);
  assert.equal(await b.notify.nextDue(t + 40_000), t + 50_000, 'the renewed claim is due for others when it runs out');
  // A died at t + 20 s: its last renewal runs out at t + 50 s, and B takes dora's head over.
  now = t + 50_001;
  assert.deepEqual((await b.notify.due(t + 50_001, 10, undefined, claimB)).map((d) => d.delivery.mailbox), ['dora@contoso.com']);
  // Had A only been cut off, its next renewal says the claim is gone (it logs that the event may arrive twice).
  now = t + 60_000;
  assert.deepEqual(await a.notify.renewClaims('node-a', [{ subscriptionId: dora!.subscriptionId, eventId: dora!.eventId }], 20_000), []);
});

test('a dispatcher renews the claim of a slow delivery: another node does not send it again while the sink works past the claim time', async () => {
  const clock = new Clock();
  // The dispatcher's clock is the stores' lease clock too: claims run out as the test steps it.
  const { a, b } = await twoNodes(clock.now);
  await a.notify.createSubscription(subscription('test', ['finn@contoso.com']));
  const forMs = 300;
  const renewals: number[] = [];
  // A's repository as is, noting the expiry each renewal it makes sets (on the lease clock, this test's).
  const repoA = {
    ...a.notify,
    renewClaims: async (...args: Parameters<typeof a.notify.renewClaims>) => {
      const kept = await a.notify.renewClaims(...args);
      if (kept.length > 0) renewals.push(clock.now() + args[2]);
      return kept;
    },
  };
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let started = 0;
  const slow: Sink = {
    kind: 'test',
    async deliver() {
      started++;
      await released;
      return { kind: 'ok' };
    },
    parseParams: (input) => input as Record<string, unknown>,
    publicParams: (params) => params,
  };
  const dispatcher = createDispatcher({ repo: repoA, sinks: [slow], retry: noJitter, now: clock.now, claim: { by: 'node-a', forMs } });
  await dispatcher.publish(mail('finn@contoso.com', 'slow'));
  const run = dispatcher.runOnce();
  await waitFor(() => started === 1, 10_000, 'the delivery to start');
  // Three claim times pass on A's clock while the sink works; A renews after each step.
  for (let i = 0; i < 3; i++) {
    clock.advance(forMs - 50);
    const until = clock.now() + forMs;
    await waitFor(() => renewals.includes(until), 10_000, () => `a renewal until ${until} (renewals: ${renewals.join(', ')})`);
    assert.deepEqual(await b.notify.due(clock.now(), 10, undefined, { by: 'node-b', forMs }), [], `step ${i + 1}: the head is still A's`);
  }
  release();
  assert.equal((await run).delivered, 1);
  assert.equal(started, 1);
  assert.deepEqual(await b.notify.due(clock.now() + 10 * forMs, 10, undefined, { by: 'node-b', forMs }), [], 'done: nothing left for B');
});

test('an idle dispatcher notices the claims of a node that died and delivers them within the claim time, without a publish of its own', async () => {
  const { a, b } = await twoNodes();
  await a.notify.createSubscription(subscription('test', ['gina@contoso.com']));
  const log: Array<{ node: string; line: string; seq: number }> = [];
  const forMs = 1000;
  const survivor = createDispatcher({ repo: b.notify, sinks: [new RecordingSink('b', log)], retry: noJitter, claim: { by: 'node-b', forMs } });
  survivor.start();
  try {
    // Node A publishes and claims the head, then dies: it neither delivers nor renews.
    await a.notify.publish(serialize(mail('gina@contoso.com', 'orphan')), Date.now());
    const claimedAt = Date.now();
    assert.equal((await a.notify.due(claimedAt, 10, undefined, { by: 'node-a', forMs })).length, 1);
    // The survivor looks every third of the claim time even with nothing of its own to do (before: every minute).
    await waitFor(() => log.length > 0, 10 * forMs, 'the survivor to deliver the dead node\'s head');
    assert.deepEqual(log.map((e) => [e.node, e.seq]), [['b', 1]]);
  } finally {
    await survivor.stop();
  }
});

test('claims go by the database server\'s clock: a node ten minutes ahead cannot take a head another node holds, and one ten minutes behind takes it once the claim ran out', async () => {
  const { a, b } = await twoNodes();
  const TEN_MINUTES = 600_000;
  const behind = () => Date.now() - TEN_MINUTES;
  const ahead = () => Date.now() + TEN_MINUTES;
  await a.notify.createSubscription(subscription('test', ['hugo@contoso.com']));
  // Published by the node behind: due at once on every node's clock.
  await a.notify.publish(serialize(mail('hugo@contoso.com', 'm1')), behind());
  const forMs = 8_000;
  assert.equal((await b.notify.due(Date.now(), 10, undefined, { by: 'node-b', forMs })).length, 1, 'B claims the head');
  assert.deepEqual(await a.notify.due(ahead(), 10, undefined, { by: 'node-a', forMs }), [], 'A, ten minutes ahead, does not take B\'s claim');
  // Nor does its dispatcher think the head due now: the claim's time left, counted on A's clock.
  const aheadNow = ahead();
  const next = await a.notify.nextDue(aheadNow);
  assert.ok(next !== undefined && next > aheadNow && next <= aheadNow + forMs, `next due ${next === undefined ? 'never' : next - aheadNow} ms after A's now`);
  // B dies. A, now ten minutes behind, takes the head over once the claim ran out by the server's clock.
  const taken = await waitFor(async () => (await a.notify.due(behind(), 10, undefined, { by: 'node-a', forMs })).length > 0, 30_000, 'the node behind to take the head over', 100);
  assert.ok(taken);
});

function serialize(e: NotifyEvent) {
  const { seq: _seq, ...body } = e;
  return { id: e.id, mailbox: e.mailbox, type: e.type, body: JSON.stringify(body) };
}
