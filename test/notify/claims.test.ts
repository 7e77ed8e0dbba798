/**
 * Notification deliveries shared by several dispatchers on one PostgreSQL database: due heads are
 * claimed with FOR UPDATE SKIP LOCKED, each delivery goes out once, each (subscription, mailbox)
 * line in order, and a head claimed by a node that died is taken over when its claim runs out.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createDispatcher } from '../../src/notify/dispatcher.ts';
import type { NotifyEvent } from '../../src/notify/events.ts';
import type { Sink, SinkResult, Subscription } from '../../src/notify/sinks/types.ts';
import { openStore } from '../../src/store/index.ts';
import { startPostgres, type PostgresServer } from '../support/postgres.ts';
import { mail, noJitter, subscription } from './helpers.ts';

let server: PostgresServer | undefined;
const stores: Array<{ close(): Promise<void> }> = [];
after(async () => {
  for (const s of stores) await s.close().catch(() => undefined);
  await server?.stop();
});

async function twoNodes() {
  server ??= await startPostgres();
  const url = await server.database('claims');
  const a = await openStore({ driver: 'postgres', url });
  const b = await openStore({ driver: 'postgres', url });
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
  const { a, b } = await twoNodes();
  await a.notify.createSubscription(subscription('test', ['ben@contoso.com', 'cara@contoso.com']));
  const t0 = 1_800_000_000_000;
  await a.notify.publish(serialize(mail('ben@contoso.com', 'm1')), t0);
  await a.notify.publish(serialize(mail('ben@contoso.com', 'm2')), t0);
  await a.notify.publish(serialize(mail('cara@contoso.com', 'm1')), t0 + 5);
  const t = t0 + 10;
  const claimA = { by: 'node-a', forMs: 300_000 };
  const claimB = { by: 'node-b', forMs: 300_000 };

  const gotA = await a.notify.due(t, 1, undefined, claimA);
  assert.deepEqual(gotA.map((d) => [d.delivery.mailbox, d.delivery.seq]), [['ben@contoso.com', 1]]);
  // B gets only cara's head: A's claimed head blocks ben's line (ben's m2 is not a head).
  const gotB = await b.notify.due(t, 10, undefined, claimB);
  assert.deepEqual(gotB.map((d) => [d.delivery.mailbox, d.delivery.seq]), [['cara@contoso.com', 1]]);
  assert.deepEqual(await b.notify.due(t + 1000, 10, undefined, claimB), []);
  assert.equal(await b.notify.complete(gotB[0]!.delivery.subscriptionId, gotB[0]!.delivery.eventId, t + 2000), true);
  // nextDue does not report a head another node holds as due now (that would be a busy loop).
  assert.equal(await b.notify.nextDue(), t + 300_000);

  // A dies mid-delivery: after its claim runs out, B takes A's head over, and the line stays in order.
  const later = t + 300_001;
  const taken = await b.notify.due(later, 10, undefined, claimB);
  assert.deepEqual(taken.map((d) => [d.delivery.mailbox, d.delivery.seq]), [['ben@contoso.com', 1]]);
  assert.equal(await b.notify.complete(taken[0]!.delivery.subscriptionId, taken[0]!.delivery.eventId, later), true);
  // The dead node's late completion of the same delivery changes nothing; the line's next event is the head now.
  assert.equal(await a.notify.complete(gotA[0]!.delivery.subscriptionId, gotA[0]!.delivery.eventId, later), false);
  assert.deepEqual((await a.notify.due(later, 10, undefined, claimA)).map((d) => [d.delivery.mailbox, d.delivery.seq]), [['ben@contoso.com', 2]]);
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

function serialize(e: NotifyEvent) {
  const { seq: _seq, ...body } = e;
  return { id: e.id, mailbox: e.mailbox, type: e.type, body: JSON.stringify(body) };
}
