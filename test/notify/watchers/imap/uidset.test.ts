/** The UID range set behind the IMAP watcher's checkpoints: ranges, round trips, edits. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UidSet } from '../../../../src/notify/watchers/imap/uidset.ts';

test('built from UIDs in any order, kept as ranges, serialised as an IMAP sequence set', () => {
  const s = UidSet.of([5, 1, 2, 3, 9, 10, 3, 7]);
  assert.equal(s.toString(), '1:3,5,7,9:10');
  assert.equal(s.size, 7);
  assert.equal(s.ranges, 4);
  assert.deepEqual([...s], [1, 2, 3, 5, 7, 9, 10]);
  assert.equal(UidSet.parse(s.toString()).toString(), s.toString());
  assert.equal(UidSet.parse('').size, 0);
  assert.throws(() => UidSet.parse('3,1'), /out of order/);
  assert.throws(() => UidSet.parse('1:x'), /not a UID set/);
  assert.throws(() => UidSet.parse('5:2'), /out of order/);
});

test('add and delete keep the ranges disjoint and merged; clone is independent', () => {
  const s = UidSet.of([1, 2, 3, 4, 5]);
  assert.ok(s.delete(3));
  assert.equal(s.toString(), '1:2,4:5');
  assert.ok(!s.delete(3));
  assert.ok(s.delete(1) && s.delete(5));
  assert.equal(s.toString(), '2,4');
  s.add(3);
  assert.equal(s.toString(), '2:4');
  s.add(5);
  s.add(7);
  s.add(1);
  assert.equal(s.toString(), '1:5,7');
  const c = s.clone();
  c.add(6);
  assert.equal(c.toString(), '1:7');
  assert.equal(s.toString(), '1:5,7');
  assert.ok(s.has(4) && !s.has(6) && !s.has(0) && !s.has(8));
});

test('a folder of 100,000 messages with 50 unread costs a handful of ranges', () => {
  const all = UidSet.of(Array.from({ length: 100_000 }, (_, i) => i + 1));
  assert.equal(all.ranges, 1);
  const unseen = UidSet.of(Array.from({ length: 50 }, (_, i) => 1000 + i * 37));
  assert.equal(unseen.ranges, 50);
  for (let u = 2; u <= 100_000; u += 1000) all.delete(u);
  assert.equal(all.size, 100_000 - 100);
  assert.ok(all.toString().length < 1200);
});
