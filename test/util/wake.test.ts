/**
 * waitForWake: the wait of a mailbox worker between two looks at a folder ends with the reason its
 * wake-up gives, with 'timeout' on an abort (also one that came before the wait began, whose
 * event is gone), and always disarms.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitForWake } from '../../src/util/wake.ts';

const HOUR = 3_600_000;

test('a wake-up ends the wait with its reason, also one given while arming; disarm runs each time', async () => {
  let disarmed = 0;
  let wake: ((r: 'changed') => void) | undefined;
  const waiting = waitForWake<'changed'>(HOUR, new AbortController().signal, (w) => (wake = w), () => disarmed++);
  wake!('changed');
  assert.equal(await waiting, 'changed');
  assert.equal(disarmed, 1);
  assert.equal(await waitForWake<'closed'>(HOUR, new AbortController().signal, (w) => w('closed'), () => disarmed++), 'closed');
  assert.equal(disarmed, 2);
});

test('an abort ends the wait with timeout: during the wait, and at once when it came before', async () => {
  let disarmed = 0;
  const c = new AbortController();
  const waiting = waitForWake<'changed'>(HOUR, c.signal, () => undefined, () => disarmed++);
  c.abort();
  assert.equal(await waiting, 'timeout');
  assert.equal(disarmed, 1);
  let armed = false;
  assert.equal(await waitForWake<'changed'>(HOUR, c.signal, () => (armed = true), () => disarmed++), 'timeout');
  assert.equal(armed, false, 'nothing armed for an aborted wait');
});
