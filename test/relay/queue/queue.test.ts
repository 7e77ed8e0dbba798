import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { simpleParser } from 'mailparser';
import { MbError } from '../../../src/errors/index.ts';
import { LineEndingCheck } from '../../../src/relay/guard.ts';
import { GroupCommitter } from '../../../src/relay/queue/commit.ts';
import { formatDelay, parseSchedule } from '../../../src/relay/queue/schedule.ts';
import { queueFixture } from '../helpers/queue.ts';

const MIN = 60_000;

test('retry schedules in Haraka notation', () => {
  assert.deepEqual(parseSchedule('1m, 5m*2, 1h*3'), [MIN, 5 * MIN, 5 * MIN, 60 * MIN, 60 * MIN, 60 * MIN]);
  assert.deepEqual(parseSchedule('30s,2d'), [30_000, 2 * 86_400_000]);
  assert.deepEqual(parseSchedule('none'), []);
  assert.deepEqual(parseSchedule(' '), []);
  for (const bad of ['1x', '5m*0', '0m', 'm', '1m,,2m', '1m*100000']) {
    assert.throws(() => parseSchedule(bad), (e: unknown) => e instanceof MbError && e.code === 'MB_RELAY_RETRY_SCHEDULE_INVALID', bad);
  }
  assert.equal(formatDelay(90_000), '1m30s');
  assert.equal(formatDelay(3 * 3_600_000), '3h');
});

test('group commit: items submitted together share one flush; items arriving during a flush go into the next; a failed flush fails its items only', async () => {
  const batches: number[][] = [];
  let release: (() => void) | undefined;
  let fail = false;
  const c = new GroupCommitter<number>(async (items) => {
    batches.push(items);
    if (items.includes(3)) await new Promise<void>((r) => (release = r));
    if (fail) throw new Error('disk full');
  });
  const first = [c.submit(1), c.submit(2), c.submit(3)];
  while (!release) await new Promise((r) => setImmediate(r));
  const second = [c.submit(4), c.submit(5)];
  release();
  await Promise.all([...first, ...second]);
  assert.deepEqual(batches, [[1, 2, 3], [4, 5]]);
  fail = true;
  await assert.rejects(c.submit(6), /disk full/);
  fail = false;
  await c.submit(7);
  assert.deepEqual(batches.slice(2), [[6], [7]]);
});

test('accept: the body is a complete spool file and the row is committed when accept resolves', async () => {
  const f = await queueFixture();
  try {
    const recs = await Promise.all(Array.from({ length: 12 }, (_, i) => f.enqueue({ recipients: [`r${i}@example.com`, 'bcc@example.org'] })));
    for (const r of recs) {
      const row = await f.store.queue.get(r.id);
      assert.equal(row?.state, 'incoming');
      assert.deepEqual(row?.recipients.slice(1), ['bcc@example.org']);
      assert.ok(existsSync(f.spool.path(r.id)));
    }
    assert.equal(new Set(recs.map((r) => r.id)).size, 12);
  } finally {
    await f.close();
  }
});

test('state moves: claim is a compare-and-set; hold, release, retry and delete follow the state table and explain refusals', async () => {
  const f = await queueFixture();
  const q = f.queue;
  try {
    const a = await f.enqueue();
    const active = await q.claim(a.id);
    assert.equal(active?.state, 'active');
    assert.equal(await q.claim(a.id), undefined, 'a message is claimed once');
    await assert.rejects(q.hold(a.id), (e: MbError) => e.code === 'MB_RELAY_QUEUE_STATE' && /active/.test(e.explain('en').cause));
    await assert.rejects(q.delete(a.id), { code: 'MB_RELAY_QUEUE_STATE' });
    await q.delivered(active!);
    assert.equal((await q.get(a.id))?.state, 'sent');
    assert.ok(!existsSync(f.spool.path(a.id)), 'the body of a sent message is removed');

    const b = await f.enqueue();
    assert.equal((await q.hold(b.id)).state, 'held');
    assert.equal(await q.claim(b.id), undefined, 'a held message is not delivered');
    assert.deepEqual(await q.ready(10), []);
    f.clock.advance(5 * MIN);
    const released = await q.release(b.id);
    assert.equal(released.state, 'deferred');
    assert.equal(released.nextAttemptAt, f.clock.now());
    assert.deepEqual((await q.ready(10)).map((r) => r.id), [b.id]);
    await assert.rejects(q.release(b.id), { code: 'MB_RELAY_QUEUE_STATE' });

    const c = await f.enqueue();
    const ca = await q.claim(c.id);
    await q.failed(ca!, { kind: 'temporary', mbCode: 'MB_RELAY_UPSTREAM_TEMPORARY', detail: '451 4.3.0 try later', code: '451 4.3.0 try later' });
    assert.equal((await q.get(c.id))?.nextAttemptAt, f.clock.now() + MIN);
    assert.equal((await q.retry(c.id)).nextAttemptAt, f.clock.now());
    assert.equal(await q.retryAll(), 2, 'b (deferred) and c (deferred)');

    const deleted = await q.delete(b.id);
    assert.equal(deleted.id, b.id);
    assert.equal(await q.get(b.id), undefined);
    assert.ok(!existsSync(f.spool.path(b.id)));
    await assert.rejects(q.delete('0000000000ZZZZZZZZ'), { code: 'MB_RELAY_QUEUE_NOT_FOUND' });
    assert.deepEqual(await q.counts(), { incoming: 0, active: 0, deferred: 1, held: 0, sent: 1, bounced: 0 });
  } finally {
    await f.close();
  }
});

test('temporary failures defer per schedule (retryAfter may lengthen the wait); when the schedule is used up the message bounces with a report', async () => {
  const f = await queueFixture({ schedule: '1m, 5m*2' });
  const q = f.queue;
  try {
    const m = await f.enqueue({ sender: 'app@contoso.com', recipients: ['a@example.com', 'hidden@example.org'] });
    const waits: number[] = [];
    for (let i = 1; i <= 3; i++) {
      const rec = await q.claim(m.id);
      const before = f.clock.now();
      const moved = await q.failed(rec!, {
        kind: 'temporary',
        mbCode: 'MB_RELAY_UPSTREAM_TEMPORARY',
        params: { detail: '432 4.3.2 concurrent connection limit exceeded' },
        code: '432 4.3.2 concurrent connection limit exceeded',
        detail: 'concurrent connection limit exceeded',
        ...(i === 2 ? { retryAfter: 600 } : {}),
      });
      assert.equal(moved?.state, 'deferred');
      assert.equal(moved?.attempts, i);
      assert.equal(moved?.lastError?.code, 'MB_RELAY_UPSTREAM_TEMPORARY');
      waits.push(moved!.nextAttemptAt - before);
      f.clock.advance(moved!.nextAttemptAt - before);
    }
    assert.deepEqual(waits, [MIN, 10 * MIN, 5 * MIN], 'schedule 1m, 5m, 5m; the second wait follows Retry-After 600 s');
    assert.ok(f.lines.some((l) => l.mb === 'MB_RELAY_UPSTREAM_TEMPORARY' && l.attempt === 3));

    const last = await q.claim(m.id);
    const bounced = await q.failed(last!, { kind: 'temporary', mbCode: 'MB_RELAY_UPSTREAM_TEMPORARY', code: '432 4.3.2 still busy', detail: 'still busy' });
    assert.equal(bounced?.state, 'bounced');
    assert.equal(bounced?.lastError?.code, 'MB_RELAY_RETRIES_EXHAUSTED');
    assert.equal(bounced?.lastError?.params?.lastCode, 'MB_RELAY_UPSTREAM_TEMPORARY');

    const [report] = await q.list({ states: ['incoming'] });
    assert.equal(report?.kind, 'dsn');
    assert.equal(report?.sender, '', 'reports use the null sender');
    assert.deepEqual(report?.recipients, ['app@contoso.com']);
    assert.equal(report?.originId, m.id);
    const parsed = await simpleParser(await f.spool.readBody(report!.id));
    assert.match(String(parsed.headers.get('content-type') && (parsed.headers.get('content-type') as { value: string }).value), /multipart\/report/);
    const raw = (await f.spool.readBody(report!.id)).toString();
    assert.match(raw, /Status: 5\.4\.7/);
    assert.match(raw, /Final-Recipient: rfc822; hidden@example\.org/, 'BCC recipients are reported too');
    assert.match(raw, /X-Mailbridge-Code: MB_RELAY_RETRIES_EXHAUSTED/);
  } finally {
    await f.close();
  }
});

test('permanent failure: bounced at once, a report with the MB code, cause and fix in English and German goes to the sender (and the admin)', async () => {
  const f = await queueFixture({ bounces: { notify: 'both', adminAddress: 'it@contoso.com' } });
  const q = f.queue;
  try {
    const m = await f.enqueue({ sender: 'erp@contoso.com', recipients: ['kunde@example.com'] });
    const originalId = /Message-ID: (<[^>]+>)/.exec((await f.spool.readHeaders(m.id)).toString())![1];
    const rec = await q.claim(m.id);
    const reply = '554 5.2.252 SendAsDenied; erp@contoso.com not allowed to send as ceo@contoso.com';
    const out = await q.failed(rec!, { kind: 'permanent', mbCode: 'MB_RELAY_UPSTREAM_REJECTED', params: { detail: reply }, code: reply, detail: 'SendAsDenied' });
    assert.equal(out?.state, 'bounced');
    assert.ok(!existsSync(f.spool.path(m.id)));
    const [report] = await q.list({ states: ['incoming'] });
    assert.deepEqual(report?.recipients, ['erp@contoso.com', 'it@contoso.com']);

    const body = await f.spool.readBody(report!.id);
    const lines = new LineEndingCheck();
    lines.feed(body);
    lines.end();
    assert.equal(lines.violation, undefined, 'the report itself ends every line with CR LF');
    const parsed = await simpleParser(body);
    assert.equal(parsed.subject, 'Undelivered Mail Returned to Sender / Unzustellbare Nachricht');
    assert.equal(parsed.headers.get('auto-submitted'), 'auto-replied');
    assert.equal(parsed.inReplyTo, originalId, 'the report refers to the original Message-ID');
    const text = parsed.text ?? '';
    assert.match(text, /MB_RELAY_UPSTREAM_REJECTED: Microsoft 365 refused the message/);
    assert.match(text, /Cause: The upstream server refused the message permanently: 554 5\.2\.252 SendAsDenied/);
    assert.match(text, /Fix: /);
    assert.match(text, /MB_RELAY_UPSTREAM_REJECTED: Microsoft 365 hat die Nachricht abgelehnt/);
    assert.match(text, /Ursache: Der Zielserver hat die Nachricht dauerhaft abgelehnt/);
    assert.match(text, /Behebung: /);
    const raw = body.toString();
    assert.match(raw, /Content-Type: message\/delivery-status/);
    assert.match(raw, /Reporting-MTA: dns; relay\.test/);
    assert.match(raw, /Status: 5\.2\.252/);
    assert.match(raw, /Diagnostic-Code: smtp; 554 5\.2\.252 SendAsDenied/);
    assert.match(raw, /Content-Type: text\/rfc822-headers/);
    assert.match(raw, /Subject: test \d+/, 'the original header block is attached');
    assert.ok(f.lines.some((l) => l.mb === 'MB_RELAY_UPSTREAM_REJECTED' && l.report === report!.id));

    // A report that cannot be delivered is never bounced again.
    const r = await q.claim(report!.id);
    const dead = await q.failed(r!, { kind: 'permanent', mbCode: 'MB_RELAY_UPSTREAM_REJECTED', detail: 'no' });
    assert.equal(dead?.state, 'bounced');
    assert.deepEqual(await q.list({ states: ['incoming', 'deferred'] }), []);
    assert.ok(f.lines.some((l) => l.mb === 'MB_RELAY_DSN_UNDELIVERABLE'));
  } finally {
    await f.close();
  }
});

test('a bounce mailbridge decided itself (too large for Graph, sender refused by the route) has its own status and a Diagnostic-Code naming the MB code', async () => {
  const f = await queueFixture();
  try {
    const report = async (failure: Parameters<typeof f.queue.failed>[1]) => {
      const m = await f.enqueue({ sender: 'erp@contoso.com', recipients: ['kunde@example.com'] });
      await f.queue.failed((await f.queue.claim(m.id))!, failure);
      const r = (await f.queue.list({ states: ['incoming'] })).find((x) => x.originId === m.id)!;
      return (await f.spool.readBody(r.id)).toString();
    };
    const big = await report({ kind: 'permanent', mbCode: 'MB_RELAY_GRAPH_TOO_LARGE', params: { size: 5_000_000, limit: 3_145_728 }, detail: '5000000 bytes > 3145728' });
    assert.match(big, /\r\nStatus: 5\.3\.4\r\n/, 'message too big for system');
    assert.match(big, /\r\nDiagnostic-Code: x-mailbridge; MB_RELAY_GRAPH_TOO_LARGE \(Message too large for Microsoft Graph\)\r\n/);
    const graph413 = await report({ kind: 'permanent', mbCode: 'MB_RELAY_GRAPH_TOO_LARGE', params: { size: 1, limit: 1 }, code: 'HTTP 413 ErrorMessageSizeExceeded: too big (request-id x)', detail: '413' });
    assert.match(graph413, /\r\nStatus: 5\.3\.4\r\n/);
    assert.match(graph413, /\r\nDiagnostic-Code: x-mailbridge; MB_RELAY_GRAPH_TOO_LARGE \(Message too large for Microsoft Graph\): HTTP 413 ErrorMessageSizeExceeded/);
    const denied = await report({ kind: 'permanent', mbCode: 'MB_RELAY_ROUTE_SENDER_DENIED', params: { route: 'r', mailbox: 'm@contoso.com', allowed: '@contoso.com', address: 'x@other.example' }, detail: 'no' });
    assert.match(denied, /\r\nStatus: 5\.7\.1\r\n/);
    assert.match(denied, /\r\nDiagnostic-Code: x-mailbridge; MB_RELAY_ROUTE_SENDER_DENIED /);
  } finally {
    await f.close();
  }
});

test('bounces.notify none: bounced without a report', async () => {
  const f = await queueFixture({ bounces: { notify: 'none' } });
  try {
    const m = await f.enqueue();
    await f.queue.failed((await f.queue.claim(m.id))!, { kind: 'permanent', mbCode: 'MB_RELAY_UPSTREAM_REJECTED', detail: 'x' });
    assert.deepEqual(await f.queue.counts(), { incoming: 0, active: 0, deferred: 0, held: 0, sent: 0, bounced: 1 });
  } finally {
    await f.close();
  }
});

test('recovery after a crash: active back to deferred, temp and orphan files removed, a row without body held as corrupt (never dropped)', async () => {
  const f = await queueFixture();
  try {
    const inFlight = await f.enqueue();
    await f.queue.claim(inFlight.id);
    const lost = await f.enqueue();
    const sent = await f.enqueue();
    await f.queue.delivered((await f.queue.claim(sent.id))!);
    // What a crash leaves: a body whose row never committed, a half-written temp file,
    // the body of a sent message (crash before the unlink), and a row whose body vanished.
    writeFileSync(f.spool.path('01ORPHAN0000000000'), 'Subject: never acknowledged\r\n\r\n');
    writeFileSync(f.spool.tempPath('01PARTIAL000000000'), 'Subject: half');
    writeFileSync(f.spool.path(sent.id), 'left over');
    const { unlinkSync } = await import('node:fs');
    unlinkSync(f.spool.path(lost.id));

    f.clock.advance(MIN);
    const q2 = await f.reopen();
    const report = await q2.recover();
    assert.deepEqual(report, { requeued: 1, tempsRemoved: 1, orphansRemoved: 1, finishedBodiesRemoved: 1, corrupt: [lost.id] });

    const r1 = await q2.get(inFlight.id);
    assert.equal(r1?.state, 'deferred');
    assert.equal(r1?.nextAttemptAt, f.clock.now(), 'due at once');
    assert.ok(!existsSync(f.spool.path('01ORPHAN0000000000')));
    assert.ok(!existsSync(f.spool.tempPath('01PARTIAL000000000')));
    assert.ok(!existsSync(f.spool.path(sent.id)));

    const r2 = await q2.get(lost.id);
    assert.equal(r2?.state, 'held');
    assert.equal(r2?.holdReason, 'corrupt');
    assert.equal(r2?.lastError?.code, 'MB_RELAY_BODY_MISSING');
    assert.ok(f.lines.some((l) => l.mb === 'MB_RELAY_BODY_MISSING' && l.id === lost.id));
    assert.ok(f.lines.some((l) => l.mb === 'MB_RELAY_SPOOL_ORPHAN'));
    await assert.rejects(q2.release(lost.id), { code: 'MB_RELAY_BODY_MISSING' });
    writeFileSync(f.spool.path(lost.id), 'Subject: restored from backup\r\n\r\n');
    assert.equal((await q2.release(lost.id)).state, 'deferred');

    const again = await (await f.reopen()).recover();
    assert.deepEqual(again, { requeued: 0, tempsRemoved: 0, orphansRemoved: 0, finishedBodiesRemoved: 0, corrupt: [] }, 'recovery is idempotent');
  } finally {
    await f.close();
  }
});
