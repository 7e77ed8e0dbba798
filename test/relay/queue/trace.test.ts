/**
 * The message trace the queue keeps (src/relay/queue/trace.ts): every attempt with the upstream
 * reply and the MB code, when the next one is due, the bounce with its report's queue ID, the
 * admin's actions, the delivery; and it goes with the message when the row is purged or deleted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TRACE_NAMESPACE } from '../../../src/relay/queue/trace.ts';
import { queueFixture } from '../helpers/queue.ts';

const MINUTE = 60_000;

test('each attempt with its reply, the admin actions, the bounce with its report, and the report delivered', async () => {
  const f = await queueFixture({ schedule: '1m', keepMs: 10 * MINUTE });
  const q = f.queue;
  try {
    const m = await f.enqueue({ sender: 'erp@contoso.com' });
    const t0 = f.clock.now();
    let rec = await q.claim(m.id);
    await q.failed(rec!, { kind: 'temporary', mbCode: 'MB_RELAY_UPSTREAM_TEMPORARY', code: '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded', detail: 'busy' });
    await q.hold(m.id);
    await q.release(m.id);
    f.clock.advance(MINUTE);
    rec = await q.claim(m.id);
    const reply = '554 5.2.252 SendAsDenied; erp@contoso.com not allowed to send as ceo@contoso.com';
    await q.failed(rec!, { kind: 'permanent', mbCode: 'MB_RELAY_UPSTREAM_REJECTED', params: { detail: reply }, code: reply, detail: 'SendAsDenied' });
    const [report] = await q.list({ states: ['incoming'] });
    assert.equal(report?.kind, 'dsn');

    assert.deepEqual(await q.trace!.get(m.id), [
      { at: t0, type: 'attempt', attempt: 1, outcome: 'deferred', code: 'MB_RELAY_UPSTREAM_TEMPORARY', reply: '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded', detail: 'busy', nextAttemptAt: t0 + MINUTE },
      { at: t0, type: 'admin', action: 'hold' },
      { at: t0, type: 'admin', action: 'release' },
      { at: t0 + MINUTE, type: 'attempt', attempt: 2, outcome: 'bounced', code: 'MB_RELAY_UPSTREAM_REJECTED', reply, detail: 'SendAsDenied', report: report!.id },
    ]);

    const r = await q.claim(report!.id);
    await q.delivered(r!, '250 2.0.0 OK <abc@EXO> [Hostname=AM0PR01MB1234]');
    assert.deepEqual(await q.trace!.get(report!.id), [{ at: t0 + MINUTE, type: 'attempt', attempt: 1, outcome: 'delivered', reply: '250 2.0.0 OK <abc@EXO> [Hostname=AM0PR01MB1234]' }]);

    // Purged with their rows once relay.queue.keepDays have passed.
    f.clock.advance(11 * MINUTE);
    assert.equal(await q.purge(), 2);
    assert.deepEqual(await f.store.kv.list(TRACE_NAMESPACE), []);
  } finally {
    await f.close();
  }
});

test('a deleted message takes its trace along', async () => {
  const f = await queueFixture();
  try {
    const m = await f.enqueue();
    await f.queue.hold(m.id);
    assert.equal((await f.queue.trace!.get(m.id)).length, 1);
    await f.queue.delete(m.id);
    assert.deepEqual(await f.queue.trace!.get(m.id), []);
  } finally {
    await f.close();
  }
});
