import { test } from 'node:test';
import assert from 'node:assert/strict';
import { unlinkSync } from 'node:fs';
import { simpleParser } from 'mailparser';
import { Queue } from '../../../src/relay/queue/index.ts';
import { QueueManager, RECEIVING_BURST, RECEIVING_QUIET_MS } from '../../../src/relay/queue/manager.ts';
import type { SendResult } from '../../../src/relay/transport.ts';
import type { QueueRepository } from '../../../src/store/queue.ts';
import { collectingLogger, RecordingTransport } from '../helpers/index.ts';
import { enqueue, queueFixture, type QueueFixture } from '../helpers/queue.ts';
import { waitFor } from '../../support/wait.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

function manager(f: QueueFixture, transport: RecordingTransport, o: Partial<{ perMailbox: number; perMinute: number; max: number; timeoutMs: number; receiving: number }> = {}) {
  const m = new QueueManager({
    queue: f.queue,
    transport,
    log: collectingLogger().log,
    clock: f.clock,
    concurrencyPerMailbox: o.perMailbox ?? 3,
    ratePerMinute: o.perMinute ?? 30,
    recipientsPerDay: 10_000,
    maxConcurrency: o.max ?? 20,
    ...(o.receiving !== undefined ? { receivingConcurrency: o.receiving } : {}),
    sendTimeoutMs: o.timeoutMs ?? 300_000,
    pollMs: 10_000,
  });
  m.start();
  return m;
}

test('temporary failure → deferred with the next attempt per schedule (manual clock), then sent', async () => {
  const f = await queueFixture({ schedule: '1m, 5m*2' });
  const t = new RecordingTransport();
  const results: SendResult[] = [
    { temporary: true, code: '451 4.7.500 Server busy', mbCode: 'MB_RELAY_UPSTREAM_TEMPORARY', params: { detail: '451 4.7.500 Server busy' }, detail: 'busy' },
    { temporary: true, code: '451 4.7.500 Server busy', mbCode: 'MB_RELAY_UPSTREAM_TEMPORARY', params: { detail: '451 4.7.500 Server busy' }, detail: 'busy' },
    { ok: true },
  ];
  t.behave = () => results.shift()!;
  const m = manager(f, t);
  try {
    const start = f.clock.now();
    const msg = await f.enqueue();
    await m.whenIdle();
    let rec = await f.queue.get(msg.id);
    assert.equal(rec?.state, 'deferred');
    assert.equal(rec?.attempts, 1);
    assert.equal(rec?.nextAttemptAt, start + MIN);
    assert.equal(rec?.lastError?.code, 'MB_RELAY_UPSTREAM_TEMPORARY');
    assert.equal(rec?.lastError?.reply, '451 4.7.500 Server busy');

    f.clock.advance(MIN - 1);
    await m.whenIdle();
    assert.equal(t.attempts.length, 1, 'not before its time');
    f.clock.advance(1);
    await m.whenIdle();
    assert.equal(t.attempts.length, 2);
    rec = await f.queue.get(msg.id);
    assert.equal(rec?.nextAttemptAt, start + MIN + 5 * MIN);

    f.clock.advance(5 * MIN);
    await m.whenIdle();
    rec = await f.queue.get(msg.id);
    assert.equal(rec?.state, 'sent');
    assert.equal(rec?.attempts, 3);
    assert.deepEqual(t.attempts.map((a) => a.attempt), [1, 2, 3]);
  } finally {
    await m.stop();
    await f.close();
  }
});

test('permanent failure → bounced, and the bounce report is delivered (null sender) to the sender with the MB code', async () => {
  const f = await queueFixture();
  const t = new RecordingTransport();
  t.behave = (msg) =>
    msg.isBounce
      ? { ok: true }
      : { permanent: true, code: '550 5.7.60 SMTP; Client does not have permissions to send as this sender', mbCode: 'MB_RELAY_UPSTREAM_REJECTED', params: { detail: '550 5.7.60 …' }, detail: 'send-as' };
  const m = manager(f, t);
  try {
    const msg = await f.enqueue({ sender: 'dms@contoso.com', recipients: ['a@example.com'] });
    await m.whenIdle();
    assert.equal((await f.queue.get(msg.id))?.state, 'bounced');
    assert.equal(t.deliveries.length, 1);
    const report = t.deliveries[0]!;
    assert.equal(report.isBounce, true);
    assert.equal(report.sender, '');
    assert.deepEqual(report.recipients, ['dms@contoso.com']);
    const parsed = await simpleParser(report.body);
    assert.match(parsed.text ?? '', /MB_RELAY_UPSTREAM_REJECTED/);
    assert.match(report.body.toString(), /Status: 5\.7\.60/);
    assert.deepEqual(await f.queue.counts(), { incoming: 0, active: 0, deferred: 0, held: 0, sent: 1, bounced: 1 });
  } finally {
    await m.stop();
    await f.close();
  }
});

test('per-mailbox concurrency: never more than 3 deliveries at once per mailbox, and all are delivered', async () => {
  const f = await queueFixture();
  const t = new RecordingTransport();
  const running = new Map<string, number>();
  const peak = new Map<string, number>();
  const pending: Array<{ mailbox: string; release: () => void }> = [];
  t.behave = (msg) => {
    running.set(msg.mailbox, (running.get(msg.mailbox) ?? 0) + 1);
    peak.set(msg.mailbox, Math.max(peak.get(msg.mailbox) ?? 0, running.get(msg.mailbox)!));
    return new Promise<SendResult>((resolve) =>
      pending.push({
        mailbox: msg.mailbox,
        release: () => {
          running.set(msg.mailbox, running.get(msg.mailbox)! - 1);
          resolve({ ok: true });
        },
      }),
    );
  };
  const m = manager(f, t, { perMinute: 1000 });
  try {
    for (let i = 0; i < 8; i++) await f.enqueue({ sender: 'a@contoso.com' });
    for (let i = 0; i < 8; i++) await f.enqueue({ sender: 'b@contoso.com' });
    // Each round: wait until every slot that may be busy is busy, check, then finish one delivery.
    const left = new Map([['a@contoso.com', 8], ['b@contoso.com', 8]]);
    for (let round = 0; round < 16; round++) {
      const expected = [...left.values()].reduce((sum, n) => sum + Math.min(3, n), 0);
      for (let waited = 0; pending.length < expected; waited++) {
        if (waited > 5_000) throw new Error(`only ${pending.length} of ${expected} deliveries started`);
        await new Promise((r) => setTimeout(r, 2));
      }
      const byMailbox = m.inFlightByMailbox();
      for (const n of byMailbox.values()) assert.ok(n <= 3, `in flight per mailbox: ${[...byMailbox]}`);
      const next = pending.shift()!;
      left.set(next.mailbox, left.get(next.mailbox)! - 1);
      next.release();
    }
    await m.whenIdle();
    assert.equal(t.deliveries.length, 16);
    assert.deepEqual(Object.fromEntries(peak), { 'a@contoso.com': 3, 'b@contoso.com': 3 }, 'the limit is reached and never exceeded');
  } finally {
    await m.stop();
    await f.close();
  }
});

test('per-mailbox pacing: 30 messages per minute per mailbox; other mailboxes are not held up', async () => {
  const f = await queueFixture();
  const t = new RecordingTransport();
  const m = manager(f, t, { perMinute: 30 });
  try {
    for (let i = 0; i < 45; i++) await f.enqueue({ sender: 'erp@contoso.com' });
    await m.whenIdle();
    assert.equal(t.deliveries.length, 30, '30 in the first minute');
    for (let i = 0; i < 5; i++) await f.enqueue({ sender: 'hr@contoso.com' });
    await m.whenIdle();
    assert.equal(t.deliveries.filter((d) => d.mailbox === 'hr@contoso.com').length, 5);
    assert.equal(t.deliveries.filter((d) => d.mailbox === 'erp@contoso.com').length, 30);
    f.clock.advance(MIN - 1);
    await m.whenIdle();
    assert.equal(t.deliveries.filter((d) => d.mailbox === 'erp@contoso.com').length, 30, 'still within the same minute');
    f.clock.advance(1);
    await m.whenIdle();
    assert.equal(t.deliveries.filter((d) => d.mailbox === 'erp@contoso.com').length, 45);
    assert.equal((await f.queue.counts()).sent, 50);
  } finally {
    await m.stop();
    await f.close();
  }
});

test('Retry-After pauses the whole mailbox; a throwing transport and a hanging one count as temporary failures', async () => {
  const f = await queueFixture({ schedule: '1m*5' });
  const t = new RecordingTransport();
  let mode: 'throttle' | 'throw' | 'hang' | 'ok' = 'throttle';
  t.behave = () => {
    if (mode === 'throttle') {
      mode = 'ok';
      return { temporary: true, code: 'HTTP 429 ApplicationThrottled', mbCode: 'MB_RELAY_UPSTREAM_TEMPORARY', params: { detail: '429' }, detail: 'MailboxConcurrency', retryAfter: 300 };
    }
    if (mode === 'throw') throw new Error('socket hang up');
    if (mode === 'hang') return new Promise<SendResult>(() => undefined);
    return { ok: true };
  };
  const m = manager(f, t, { timeoutMs: 30_000 });
  try {
    await f.enqueue({ sender: 'erp@contoso.com' });
    await m.whenIdle();
    await f.enqueue({ sender: 'erp@contoso.com' });
    await m.whenIdle();
    assert.equal(t.attempts.length, 1, 'the mailbox is paused after 429');
    f.clock.advance(5 * MIN);
    await m.whenIdle();
    assert.equal(t.deliveries.length, 2);

    mode = 'throw';
    const thrown = await f.enqueue({ sender: 'x@contoso.com' });
    await m.whenIdle();
    const r1 = await f.queue.get(thrown.id);
    assert.equal(r1?.state, 'deferred');
    assert.equal(r1?.lastError?.code, 'MB_RELAY_TRANSPORT_FAILED');
    assert.match(r1?.lastError?.detail ?? '', /socket hang up/);

    mode = 'hang';
    const hung = await f.enqueue({ sender: 'y@contoso.com' });
    while (t.attempts.filter((a) => a.id === hung.id).length === 0) await new Promise((r) => setTimeout(r, 5));
    f.clock.advance(30_000);
    await m.whenIdle();
    const r2 = await f.queue.get(hung.id);
    assert.equal(r2?.state, 'deferred');
    assert.equal(r2?.lastError?.code, 'MB_RELAY_TRANSPORT_TIMEOUT');
  } finally {
    await m.stop(0);
    await f.close();
  }
});

test("an admin's queue retry lifts the mailbox's pause after a refused login: the message goes out now, not up to a minute later", async () => {
  const f = await queueFixture({ schedule: '1m*5' });
  const t = new RecordingTransport();
  let refuse = true;
  const refused: SendResult = {
    temporary: true,
    code: '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox.',
    mbCode: 'MB_RELAY_SMTP_AUTH_DISABLED_MAILBOX',
    params: { mailbox: 'scanner@contoso.com' },
    detail: '535 5.7.139',
    retryAfter: 60,
  };
  t.behave = () => (refuse ? refused : { ok: true });
  const m = manager(f, t);
  const cli = await f.reopen(); // `mailbridge queue` runs in another process: its retry emits nothing here
  try {
    const first = await f.enqueue({ sender: 'scanner@contoso.com' });
    await m.whenIdle();
    assert.equal((await f.queue.get(first.id))?.state, 'deferred');
    // The admin runs Set-CASMailbox … -SmtpClientAuthenticationDisabled $false, then queue retry.
    refuse = false;
    await cli.retry(first.id);
    f.clock.advance(10_000); // the manager's poll (pollMs), far less than the minute's pause
    await m.whenIdle();
    assert.equal((await f.queue.get(first.id))?.state, 'sent', 'delivered at the next poll, the pause was lifted');

    // In the same process (the retry wakes the manager at once), without any time passing.
    refuse = true;
    const second = await f.enqueue({ sender: 'scanner@contoso.com' });
    await m.whenIdle();
    assert.equal((await f.queue.get(second.id))?.state, 'deferred');
    const other = await f.enqueue({ sender: 'scanner@contoso.com' });
    await m.whenIdle();
    assert.equal((await f.queue.get(other.id))?.attempts, 0, 'without a retry the pause holds for the mailbox');
    refuse = false;
    await f.queue.retry(second.id);
    await m.whenIdle();
    assert.equal((await f.queue.get(second.id))?.state, 'sent');
    assert.equal((await f.queue.get(other.id))?.state, 'sent', 'the mailbox as a whole is no longer paused');
  } finally {
    await m.stop(0);
    await f.close();
  }
});

test('a message whose body vanished is held as corrupt and never handed to the transport', async () => {
  const f = await queueFixture();
  const t = new RecordingTransport();
  try {
    const msg = await f.enqueue();
    unlinkSync(f.spool.path(msg.id));
    const m = manager(f, t);
    await m.whenIdle();
    await m.stop();
    const rec = await f.queue.get(msg.id);
    assert.equal(rec?.state, 'held');
    assert.equal(rec?.lastError?.code, 'MB_RELAY_BODY_MISSING');
    assert.equal(t.attempts.length, 0);
  } finally {
    await f.close();
  }
});

test('stop() aborts a hanging attempt after the grace time; the message goes back to deferred without counting the attempt', async () => {
  const f = await queueFixture();
  const t = new RecordingTransport();
  t.behave = (msg) => new Promise<SendResult>((_, reject) => msg.signal.addEventListener('abort', () => reject(new Error('aborted'))));
  const m = manager(f, t);
  try {
    const msg = await f.enqueue();
    while (t.attempts.length === 0) await new Promise((r) => setTimeout(r, 5));
    await m.stop(10);
    const rec = await f.queue.get(msg.id);
    assert.equal(rec?.state, 'deferred');
    assert.equal(rec?.attempts, 0);
    assert.equal(rec?.nextAttemptAt, f.clock.now());
  } finally {
    await f.close();
  }
});

test('a message that arrives while a pass of the manager is finishing starts at once, not at the next poll', async () => {
  const f = await queueFixture();
  // Hold the manager's first pass at its very end, where it works out when to wake up next.
  const reached = Promise.withResolvers<void>();
  const gate = Promise.withResolvers<void>();
  const repo: QueueRepository = {
    ...f.store.queue,
    async nextDue(exclude) {
      reached.resolve();
      await gate.promise;
      return f.store.queue.nextDue(exclude);
    },
  };
  const queue = new Queue({ repo, spool: f.spool, log: collectingLogger().log, clock: f.clock, retrySchedule: [MIN], hostname: 'relay.test', bounces: { notify: 'none' } });
  const t = new RecordingTransport();
  const m = new QueueManager({ queue, transport: t, log: collectingLogger().log, clock: f.clock, concurrencyPerMailbox: 3, ratePerMinute: 30, recipientsPerDay: 10_000, maxConcurrency: 20, sendTimeoutMs: 300_000, pollMs: 10_000 });
  m.start();
  try {
    await reached.promise;
    // Arrives (and says so with 'ready') while that pass is still running; the manual clock never
    // reaches the poll, so only the manager itself can pick it up.
    const msg = await enqueue(queue);
    gate.resolve();
    for (let turn = 0; turn < 10 && (await queue.get(msg.id))?.state === 'incoming'; turn++) await new Promise((r) => setImmediate(r));
    assert.notEqual((await queue.get(msg.id))?.state, 'incoming', 'claimed without waiting for the poll');
    await t.delivered(1);
    assert.equal(t.deliveries[0]!.id, msg.id);
  } finally {
    await m.stop(0);
    await f.close();
  }
});

test('recipients per day: messages over the 24-hour budget wait unattempted (no retry used), the admin is told once, a restart keeps the count', async () => {
  const f = await queueFixture();
  const t = new RecordingTransport();
  const logged = collectingLogger();
  const options = (log = logged.log) => ({
    queue: f.queue,
    transport: t,
    log,
    clock: f.clock,
    concurrencyPerMailbox: 3,
    ratePerMinute: 30,
    recipientsPerDay: 10,
    maxConcurrency: 20,
    sendTimeoutMs: 300_000,
    pollMs: 10_000,
  });
  let m = new QueueManager(options());
  m.start();
  const four = ['a@x.test', 'b@x.test', 'c@x.test', 'd@x.test'];
  try {
    const start = f.clock.now();
    const msgs = [];
    for (let i = 0; i < 4; i++) msgs.push(await f.enqueue({ sender: 'erp@contoso.com', recipients: four }));
    await m.whenIdle();
    assert.equal(t.deliveries.length, 2, '8 of 10 recipients used; the third message (4 more) does not fit');
    const waiting = await f.queue.get(msgs[2]!.id);
    assert.equal(waiting?.state, 'incoming');
    assert.equal(waiting?.attempts, 0, 'waiting for the budget is not an attempt');
    const warnings = logged.lines.filter((l) => l.code === 'MB_RELAY_DAILY_BUDGET');
    assert.equal(warnings.length, 1, 'told once, not once per message or pass');
    assert.match(String(warnings[0]?.msg), /erp@contoso\.com started deliveries to 10 recipients within the last 24 hours/);

    // Other mailboxes are not held up.
    await f.enqueue({ sender: 'hr@contoso.com', recipients: four });
    await m.whenIdle();
    assert.equal(t.deliveries.filter((d) => d.mailbox === 'hr@contoso.com').length, 1);

    // A restart does not grant a fresh budget: the sent rows of the last 24 h are counted.
    await m.stop();
    m = new QueueManager(options(collectingLogger().log));
    m.start();
    f.clock.advance(HOUR);
    await m.whenIdle();
    assert.equal(t.deliveries.filter((d) => d.mailbox === 'erp@contoso.com').length, 2, 'still paced after the restart');

    f.clock.advance(start + DAY - f.clock.now());
    await m.whenIdle();
    assert.equal(t.deliveries.filter((d) => d.mailbox === 'erp@contoso.com').length, 4, 'the window moved on: both go out');
    for (const msg of msgs) assert.equal((await f.queue.get(msg.id))?.state, 'sent');
  } finally {
    await m.stop();
    await f.close();
  }
});

test('a body that exists but cannot be read (I/O error) is a temporary failure, not a corrupt message; it goes out once readable', async () => {
  const f = await queueFixture({ schedule: '1m' });
  const t = new RecordingTransport();
  const m = manager(f, t);
  const spool = f.queue.spool;
  const realOpen = spool.openStored.bind(spool);
  spool.openStored = async () => {
    throw Object.assign(new Error('EIO: i/o error, open'), { code: 'EIO' });
  };
  try {
    const msg = await f.enqueue();
    await m.whenIdle();
    const rec = await f.queue.get(msg.id);
    assert.equal(rec?.state, 'deferred');
    assert.equal(rec?.lastError?.code, 'MB_RELAY_SPOOL_UNREADABLE');
    assert.equal(rec?.holdReason, undefined, 'not held as corrupt');
    assert.equal(t.attempts.length, 0, 'never handed to the transport');
    spool.openStored = realOpen;
    f.clock.advance(MIN);
    await m.whenIdle();
    assert.equal((await f.queue.get(msg.id))?.state, 'sent');
  } finally {
    await m.stop();
    await f.close();
  }
});

test('arrivals are served from memory: the store is not asked for due messages after every delivery, yet a row another process added is found at the poll', async () => {
  const f = await queueFixture();
  let reads = 0;
  const repo: QueueRepository = {
    ...f.store.queue,
    async ready(now, limit, exclude) {
      reads++;
      return f.store.queue.ready(now, limit, exclude);
    },
  };
  const queue = new Queue({ repo, spool: f.spool, log: collectingLogger().log, clock: f.clock, retrySchedule: [MIN], hostname: 'relay.test', bounces: { notify: 'none' } });
  const t = new RecordingTransport();
  // One mailbox, one delivery at a time: every delivery that ends starts the next from the backlog.
  const m = new QueueManager({ queue, transport: t, log: collectingLogger().log, clock: f.clock, concurrencyPerMailbox: 1, ratePerMinute: 10_000, recipientsPerDay: 10_000, maxConcurrency: 20, sendTimeoutMs: 300_000, pollMs: 10_000 });
  m.start();
  try {
    await m.whenIdle();
    const before = reads;
    const msgs = [];
    for (let i = 0; i < 30; i++) msgs.push(await enqueue(queue));
    await t.delivered(30);
    await m.whenIdle();
    assert.deepEqual(t.deliveries.map((d) => d.id), msgs.map((x) => x.id), 'oldest first');
    // Each whenIdle asks for one read (the first one's may come during the flow); the 30 arrivals
    // and 30 deliveries read nothing (before the index: a read per arrival and per delivery).
    assert.ok(reads - before <= 2, `${reads - before} reads of the store for 30 messages`);

    // A row written by another process (e.g. `mailbridge queue release` there) is not announced
    // here: the poll finds it.
    const other = await enqueue(f.queue);
    assert.equal((await queue.get(other.id))?.state, 'incoming');
    f.clock.advance(10_000);
    await t.delivered(31);
    assert.equal(t.deliveries[30]!.id, other.id);
  } finally {
    await m.stop(0);
    await f.close();
  }
});

test('acceptance first: during a burst of arrivals only concurrencyWhileReceiving deliveries run, never none; once it is over the rest start at once (manual clock)', async () => {
  const f = await queueFixture();
  const t = new RecordingTransport();
  const started: number[] = [];
  const pending: Array<() => void> = [];
  t.behave = () => {
    started.push(f.clock.now());
    return new Promise<SendResult>((resolve) => pending.push(() => resolve({ ok: true })));
  };
  const m = manager(f, t, { receiving: 1 });
  try {
    const t0 = f.clock.now();
    // One mailbox each, so that only the burst limit (not the per-mailbox one) holds them back.
    // Until the RECEIVING_BURST-th arrival it is no burst: those before it start at once.
    const n = RECEIVING_BURST + 3;
    for (let i = 0; i < n; i++) await f.enqueue({ sender: `app${i}@contoso.com` });
    await waitFor(() => pending.length === RECEIVING_BURST - 1, 5_000, () => `${RECEIVING_BURST - 1} deliveries before the burst (${pending.length})`);
    f.clock.advance(RECEIVING_QUIET_MS - 1);
    // Still within the burst: with every delivery done, exactly one more starts.
    for (const release of pending.splice(0)) release();
    await waitFor(() => pending.length === 1, 5_000, 'one delivery during the burst');
    f.clock.advance(1);
    await waitFor(() => pending.length === 4, 5_000, () => `the last three deliveries once the burst is over (started at ${started.map((x) => x - t0)})`);
    const burst = Array.from({ length: RECEIVING_BURST - 1 }, () => 0);
    assert.deepEqual(started.map((x) => x - t0), [...burst, RECEIVING_QUIET_MS - 1, RECEIVING_QUIET_MS, RECEIVING_QUIET_MS, RECEIVING_QUIET_MS]);
    for (const release of pending.splice(0)) release();
    await m.whenIdle();
    assert.equal((await f.queue.counts()).sent, n);
  } finally {
    await m.stop();
    await f.close();
  }
});

test('no burst, no holding back: messages that arrive a quarter of a second or more apart start at full concurrency (manual clock)', async () => {
  const f = await queueFixture();
  const t = new RecordingTransport();
  const pending: Array<() => void> = [];
  t.behave = () => new Promise<SendResult>((resolve) => pending.push(() => resolve({ ok: true })));
  const m = manager(f, t, { receiving: 1 });
  try {
    for (let i = 0; i < RECEIVING_BURST + 5; i++) {
      await f.enqueue({ sender: `app${i}@contoso.com` });
      await waitFor(() => pending.length === i + 1, 5_000, () => `delivery ${i + 1} while ${pending.length} run`);
      f.clock.advance(Math.ceil(RECEIVING_QUIET_MS / (RECEIVING_BURST - 1)));
    }
    for (const release of pending.splice(0)) release();
    await m.whenIdle();
  } finally {
    await m.stop();
    await f.close();
  }
});

test('a read of the store that finds only messages the index holds already is not repeated at every pass, though it came back full', async () => {
  const f = await queueFixture();
  let reads = 0;
  const repo: QueueRepository = {
    ...f.store.queue,
    async ready(now, limit, exclude) {
      reads++;
      return f.store.queue.ready(now, limit, exclude);
    },
  };
  const queue = new Queue({ repo, spool: f.spool, log: collectingLogger().log, clock: f.clock, retrySchedule: [MIN], hostname: 'relay.test', bounces: { notify: 'none' } });
  const t = new RecordingTransport();
  const first = Promise.withResolvers<SendResult>();
  t.behave = () => (t.attempts.length === 1 ? first.promise : { ok: true });
  // One delivery at a time: a read asks for 4 rows, and the backlog of 30 fills every read.
  const m = new QueueManager({ queue, transport: t, log: collectingLogger().log, clock: f.clock, concurrencyPerMailbox: 3, ratePerMinute: 10_000, recipientsPerDay: 10_000, maxConcurrency: 1, sendTimeoutMs: 300_000, pollMs: 10_000 });
  m.start();
  try {
    await m.whenIdle();
    for (let i = 0; i < 30; i++) await enqueue(queue, { sender: `app${i % 3}@contoso.com` });
    await waitFor(() => t.attempts.length === 1, 5_000, 'the first delivery');
    const before = reads;
    // Asks for a read of the store (as a timer or an admin action does) while the backlog waits.
    const idle = m.whenIdle();
    first.resolve({ ok: true });
    await idle;
    await t.delivered(30);
    assert.ok(reads - before <= 3, `${reads - before} reads of the store for 29 deliveries`);
  } finally {
    await m.stop(0);
    await f.close();
  }
});
