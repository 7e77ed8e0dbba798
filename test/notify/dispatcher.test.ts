import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MbError } from '../../src/errors/index.ts';
import { backoffMs, createDispatcher } from '../../src/notify/dispatcher.ts';
import { eventId, messageDeleted, readStateChanged, type NotifyEvent } from '../../src/notify/events.ts';
import type { Sink, SinkResult, Subscription } from '../../src/notify/sinks/types.ts';
import { retrySchema } from '../../src/notify/config.ts';
import { Clock, mail, noJitter, subscription, tempStore } from './helpers.ts';

/** A sink whose answers the test scripts, and which records every attempt. */
class ScriptedSink implements Sink {
  readonly kind: string;
  attempts: Array<{ event: NotifyEvent; sub: string }> = [];
  answer: (event: NotifyEvent, sub: Subscription) => SinkResult | Promise<SinkResult> = () => ({ kind: 'ok' });
  constructor(kind = 'test') {
    this.kind = kind;
  }
  async deliver(event: NotifyEvent, sub: Subscription): Promise<SinkResult> {
    this.attempts.push({ event, sub: sub.id });
    return this.answer(event, sub);
  }
  parseParams(input: unknown): Record<string, unknown> {
    return input as Record<string, unknown>;
  }
  publicParams(params: Record<string, unknown>): Record<string, unknown> {
    return params;
  }
  delivered(): string[] {
    return this.attempts.map((a) => `${a.sub}:${a.event.mailbox}:${a.event.seq}`);
  }
}

const retryLater = (): SinkResult => ({ kind: 'retry', error: new MbError('MB_NOTIFY_UNREACHABLE', { target: 'x', detail: 'down' }) });

test('event ids are stable for the same change and differ for different changes', () => {
  assert.equal(mail('Ben@contoso.com', 'm1').id, mail('ben@contoso.com', 'm1', 'other subject').id);
  assert.notEqual(mail('ben@contoso.com', 'm1').id, mail('ben@contoso.com', 'm2').id);
  const read = (changeKey: string, read: boolean) =>
    readStateChanged({ type: 'message.read-state', mailbox: 'ben@contoso.com', messageId: 'm1', folder: 'Inbox', read, unreadCount: 3, changeKey }).id;
  assert.equal(read('ck1', true), read('ck1', true));
  assert.notEqual(read('ck1', true), read('ck2', false));
  assert.match(eventId('a', 'message.new', 'x'), /^evt_[A-Za-z0-9_-]{32}$/);
});

test('publish deduplicates by id, numbers events per mailbox, and fans out to matching subscriptions only', async () => {
  const t = await tempStore();
  try {
    const repo = t.store.notify;
    const all = subscription('test', ['ben@contoso.com', 'cara@contoso.com']);
    const onlyDeletes = subscription('test', ['ben@contoso.com'], {}, { events: ['message.deleted'] });
    const other = subscription('test', ['dora@contoso.com']);
    for (const s of [all, onlyDeletes, other]) await repo.createSubscription(s);
    const d = createDispatcher({ repo, sinks: [], retry: noJitter });

    assert.deepEqual(await d.publish(mail('ben@contoso.com', 'm1')), { seq: 1, duplicate: false, deliveries: 1 });
    assert.deepEqual(await d.publish(mail('ben@contoso.com', 'm1')), { seq: 1, duplicate: true, deliveries: 0 });
    assert.deepEqual(await d.publish(mail('cara@contoso.com', 'm1')), { seq: 1, duplicate: false, deliveries: 1 });
    const del = messageDeleted({ type: 'message.deleted', mailbox: 'ben@contoso.com', messageId: 'm1', folder: 'Inbox', unreadCount: 0 });
    assert.deepEqual(await d.publish(del), { seq: 2, duplicate: false, deliveries: 2 });
    // A mailbox nobody watches still records the id, so a replay later is recognised.
    assert.deepEqual(await d.publish(mail('erik@contoso.com', 'm9')), { seq: 1, duplicate: false, deliveries: 0 });
    assert.deepEqual(await d.publish(mail('erik@contoso.com', 'm9')), { seq: 1, duplicate: true, deliveries: 0 });

    assert.deepEqual((await repo.counts()).pending, 4);
    assert.deepEqual((await repo.listSubscriptions({ mailbox: 'CARA@contoso.com' })).map((s) => s.id), [all.id]);
  } finally {
    await t.cleanup();
  }
});

test('a line waits for its head: a later event of a mailbox is not sent before an earlier one is done; other lines go on', async () => {
  const t = await tempStore();
  try {
    const clock = new Clock();
    const repo = t.store.notify;
    const sub = subscription('test', ['ben@contoso.com', 'cara@contoso.com']);
    await repo.createSubscription(sub);
    const sink = new ScriptedSink();
    let failBen1 = true;
    sink.answer = (e) => (e.mailbox === 'ben@contoso.com' && e.seq === 1 && failBen1 ? retryLater() : { kind: 'ok' });
    const d = createDispatcher({ repo, sinks: [sink], retry: noJitter, now: clock.now });
    for (const id of ['b1', 'b2', 'b3']) await d.publish(mail('ben@contoso.com', id));
    for (const id of ['c1', 'c2']) await d.publish(mail('cara@contoso.com', id));

    const first = await d.runOnce();
    assert.deepEqual(first, { delivered: 2, retried: 1, gone: 0, expired: 0 });
    assert.deepEqual(sink.delivered().sort(), [`${sub.id}:ben@contoso.com:1`, `${sub.id}:cara@contoso.com:1`, `${sub.id}:cara@contoso.com:2`]);

    // Not yet due: nothing happens, and ben's seq 2 is still held back.
    clock.advance(4_999);
    assert.deepEqual(await d.runOnce(), { delivered: 0, retried: 0, gone: 0, expired: 0 });
    assert.equal(await repo.nextDue(clock.t), clock.t + 1);

    failBen1 = false;
    clock.advance(1);
    assert.deepEqual(await d.runOnce(), { delivered: 3, retried: 0, gone: 0, expired: 0 });
    const benOrder = sink.attempts.filter((a) => a.event.mailbox === 'ben@contoso.com').map((a) => a.event.seq);
    assert.deepEqual(benOrder, [1, 1, 2, 3]);
    assert.equal(await repo.nextDue(clock.t), undefined);
    const row = await repo.getDelivery(sub.id, sink.attempts[0]!.event.id);
    assert.equal(row?.state, 'done');
    assert.equal(row?.attempts, 2);
  } finally {
    await t.cleanup();
  }
});

test('retries back off exponentially up to the cap, honour Retry-After, and expire after the window so the line moves on', async () => {
  const retry = retrySchema.parse({ initialSeconds: 10, factor: 3, maxSeconds: 600, giveUpAfterHours: 1, jitter: 0 });
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffMs(retry, n)), [10_000, 30_000, 90_000, 270_000, 600_000]);

  const t = await tempStore();
  try {
    const clock = new Clock();
    const repo = t.store.notify;
    const sub = subscription('test', ['ben@contoso.com']);
    await repo.createSubscription(sub);
    const sink = new ScriptedSink();
    sink.answer = (e) => (e.seq === 1 ? retryLater() : { kind: 'ok' });
    const d = createDispatcher({ repo, sinks: [sink], retry, now: clock.now });
    const e1 = mail('ben@contoso.com', 'm1');
    await d.publish(e1);
    await d.publish(mail('ben@contoso.com', 'm2'));

    const waits: number[] = [];
    for (let i = 0; i < 20; i++) {
      const before = clock.t;
      const stats = await d.runOnce();
      if (stats.expired > 0) break;
      const next = await repo.nextDue(clock.t);
      assert.ok(next !== undefined);
      waits.push(next - before);
      clock.t = next;
    }
    // 10 s, 30 s, 90 s, 270 s, then 600 s (cap) until the hour is used up.
    assert.deepEqual(waits, [10_000, 30_000, 90_000, 270_000, 600_000, 600_000, 600_000, 600_000, 600_000]);
    const row = await repo.getDelivery(sub.id, e1.id);
    assert.equal(row?.state, 'expired');
    assert.equal(row?.lastError?.code, 'MB_NOTIFY_DELIVERY_EXPIRED');
    assert.match(row?.lastError?.detail ?? '', /MB_NOTIFY_UNREACHABLE/);
    // The line moved on: event 2 went out in the same run.
    assert.deepEqual(sink.attempts.map((a) => a.event.seq).slice(-1), [2]);
    assert.equal((await repo.counts()).done, 1);

    // Retry-After longer than the back-off wins.
    sink.answer = () => ({ kind: 'retry', afterMs: 120_000, error: new MbError('MB_NOTIFY_REJECTED', { kind: 'test', target: 'x', status: 429, reason: '' }) });
    await d.publish(mail('ben@contoso.com', 'm3'));
    const before = clock.t;
    await d.runOnce();
    assert.equal((await repo.nextDue(clock.t))! - before, 120_000);
  } finally {
    await t.cleanup();
  }
});

test('gone retires the subscription and drops its queue; other subscriptions keep theirs', async () => {
  const t = await tempStore();
  try {
    const repo = t.store.notify;
    const a = subscription('test', ['ben@contoso.com']);
    const b = subscription('test', ['ben@contoso.com']);
    await repo.createSubscription(a);
    await repo.createSubscription(b);
    const sink = new ScriptedSink();
    sink.answer = (_e, s) =>
      s.id === a.id ? { kind: 'gone', error: new MbError('MB_NOTIFY_GONE', { kind: 'test', target: 'x', status: 410, reason: 'Gone' }) } : { kind: 'ok' };
    const d = createDispatcher({ repo, sinks: [sink], retry: noJitter });
    await d.publish(mail('ben@contoso.com', 'm1'));
    await d.publish(mail('ben@contoso.com', 'm2'));
    assert.deepEqual(await d.runOnce(), { delivered: 2, retried: 0, gone: 1, expired: 0 });
    const gone = await repo.getSubscription(a.id);
    assert.equal(gone?.state, 'gone');
    assert.match(gone?.goneReason ?? '', /^MB_NOTIFY_GONE/);
    assert.deepEqual((await repo.listDeliveries({ subscriptionId: a.id })).map((r) => r.state), ['dropped', 'dropped']);
    assert.equal((await d.publish(mail('ben@contoso.com', 'm3'))).deliveries, 1);
    assert.equal(sink.attempts.filter((x) => x.sub === a.id).length, 1);
  } finally {
    await t.cleanup();
  }
});

test('events in flight at a crash are delivered after the restart, with the same id; nothing delivered twice once done', async () => {
  const t = await tempStore();
  try {
    const sub = subscription('test', ['ben@contoso.com']);
    await t.store.notify.createSubscription(sub);
    const first = new ScriptedSink();
    const d1 = createDispatcher({ repo: t.store.notify, sinks: [first], retry: noJitter });
    await d1.publish(mail('ben@contoso.com', 'm1'));
    await d1.runOnce();
    await d1.publish(mail('ben@contoso.com', 'm2'));
    await d1.publish(mail('ben@contoso.com', 'm3'));
    // m2 reaches the receiver, then the process dies before the row is marked done.
    first.answer = () => new Promise<SinkResult>(() => {});
    void d1.runOnce();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(first.attempts.map((a) => a.event.seq), [1, 2]);

    const store = await t.reopen();
    const second = new ScriptedSink();
    const d2 = createDispatcher({ repo: store.notify, sinks: [second], retry: noJitter });
    assert.deepEqual(await d2.runOnce(), { delivered: 2, retried: 0, gone: 0, expired: 0 });
    assert.deepEqual(second.attempts.map((a) => a.event.seq), [2, 3]);
    assert.equal(second.attempts[0]!.event.id, first.attempts[1]!.event.id);
    // The seq counter survived too.
    assert.equal((await d2.publish(mail('ben@contoso.com', 'm4'))).seq, 4);
  } finally {
    await t.cleanup();
  }
});

test('privacy minimal drops sender and subject; a missing sink keeps the event queued', async () => {
  const t = await tempStore();
  try {
    const repo = t.store.notify;
    const full = subscription('test', ['ben@contoso.com']);
    const minimal = subscription('test', ['ben@contoso.com'], {}, { privacy: 'minimal' });
    const orphan = subscription('apns', ['ben@contoso.com']);
    for (const s of [full, minimal, orphan]) await repo.createSubscription(s);
    const sink = new ScriptedSink();
    const d = createDispatcher({ repo, sinks: [sink], retry: noJitter });
    await d.publish(mail('ben@contoso.com', 'm1', 'Quarterly numbers'));
    assert.deepEqual(await d.runOnce(), { delivered: 2, retried: 1, gone: 0, expired: 0 });
    const bySub = new Map(sink.attempts.map((a) => [a.sub, a.event]));
    const f = bySub.get(full.id);
    const m = bySub.get(minimal.id);
    assert.ok(f?.type === 'message.new' && m?.type === 'message.new');
    assert.equal(f.subject, 'Quarterly numbers');
    assert.equal(f.sender?.address, 'anna@fabrikam.com');
    assert.equal(m.subject, undefined);
    assert.equal(m.sender, undefined);
    assert.equal(m.messageId, 'm1');
    const [row] = await repo.listDeliveries({ subscriptionId: orphan.id });
    assert.equal(row?.state, 'pending');
    assert.equal(row?.lastError?.code, 'MB_NOTIFY_SINK_NOT_CONFIGURED');
  } finally {
    await t.cleanup();
  }
});

test('the background loop delivers a published event without being asked, and stops cleanly', async () => {
  const t = await tempStore();
  try {
    await t.store.notify.createSubscription(subscription('test', ['ben@contoso.com']));
    const sink = new ScriptedSink();
    let arrived!: () => void;
    const got = new Promise<void>((r) => (arrived = r));
    sink.answer = () => {
      arrived();
      return { kind: 'ok' };
    };
    const d = createDispatcher({ repo: t.store.notify, sinks: [sink], retry: noJitter });
    d.start();
    await d.publish(mail('ben@contoso.com', 'm1'));
    await got;
    await d.stop();
    assert.equal(sink.attempts.length, 1);
    assert.equal((await t.store.notify.counts()).done, 1);
  } finally {
    await t.cleanup();
  }
});
