import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedFlush } from '../../src/store/sqlite-tools.ts';

/** A flush the test ends by hand, counting how many began. */
function manualFlush() {
  const pending: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  const flush = () => new Promise<void>((resolve, reject) => void pending.push({ resolve, reject }));
  return { flush, pending };
}

const settled = async (p: Promise<void>) => {
  let state = 'pending';
  p.then(
    () => (state = 'done'),
    () => (state = 'failed'),
  );
  // Two turns of the microtask queue: enough for a settled promise's handlers to run.
  await Promise.resolve();
  await Promise.resolve();
  return state;
};

test('shared flush: callers during a running flush wait for the next one, which starts when it ends and serves them all', async () => {
  const m = manualFlush();
  const sync = sharedFlush(m.flush);
  const first = sync();
  assert.equal(m.pending.length, 1);
  // Their commits came after the first flush began: it cannot count for them.
  const later = [sync(), sync(), sync()];
  assert.equal(m.pending.length, 1, 'no second flush while one runs');
  m.pending[0]!.resolve();
  await first;
  assert.equal(await settled(later[0]!), 'pending', 'the first flush does not answer for later commits');
  assert.equal(m.pending.length, 2, 'one next flush for the three callers');
  m.pending[1]!.resolve();
  await Promise.all(later);
  // Idle again: the next caller starts a flush at once.
  const again = sync();
  assert.equal(m.pending.length, 3);
  m.pending[2]!.resolve();
  await again;
});

test('shared flush: a failed flush fails its own callers only; the callers waiting for the next one get theirs', async () => {
  const m = manualFlush();
  const sync = sharedFlush(m.flush);
  const first = sync();
  const second = sync();
  m.pending[0]!.reject(new Error('EIO'));
  await assert.rejects(first, /EIO/);
  await Promise.resolve();
  assert.equal(m.pending.length, 2, 'the waiting caller gets a flush of its own');
  m.pending[1]!.resolve();
  await second;
});
