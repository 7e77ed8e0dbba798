import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MbError } from '../../../src/errors/index.ts';
import { assignMailboxes, DEFAULT_CAPACITY, normalizeMailboxes } from '../../../src/notify/watchers/pools.ts';

const boxes = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ address: `user${String(i + from).padStart(5, '0')}@contoso.com`, folders: ['inbox'] }));
const listeners = (n: number, capacity = DEFAULT_CAPACITY) => Array.from({ length: n }, (_, i) => ({ id: `g/l${i + 1}`, capacity }));

test('15,000 mailboxes over 12 listeners of 1,250 (a MaaS360 Cloud Extender at its maximum): every mailbox once, none over capacity', () => {
  const out = assignMailboxes('g', boxes(15_000), listeners(12));
  assert.equal(out.length, 12);
  const seen = new Set<string>();
  for (const a of out) {
    assert.ok(a.mailboxes.length <= 1250, `${a.listener.id} holds ${a.mailboxes.length}`);
    for (const m of a.mailboxes) seen.add(m.address);
  }
  assert.equal(seen.size, 15_000);
});

test('mailboxes are spread, not packed into the first listener', () => {
  const out = assignMailboxes('g', boxes(300), listeners(3));
  assert.equal(out.length, 3);
  for (const a of out) assert.ok(a.mailboxes.length > 60, `${a.listener.id} got ${a.mailboxes.length} of 300`);
});

test('one mailbox more than the pool holds: MB_NOTIFY_POOL_FULL with the numbers, in English and German', () => {
  assert.throws(
    () => assignMailboxes('sales', boxes(2501), listeners(2)),
    (e: unknown) => {
      assert.ok(e instanceof MbError);
      assert.equal(e.code, 'MB_NOTIFY_POOL_FULL');
      assert.match(e.message, /sales has 2501 mailboxes, but its 2 listener\(s\) hold 2500 together; 1 mailbox/);
      assert.match(e.explain('de').fix, /notify\.watch\.groups\.sales\.listeners/);
      return true;
    },
  );
  assert.equal(assignMailboxes('sales', boxes(2500), listeners(2)).reduce((n, a) => n + a.mailboxes.length, 0), 2500);
});

test('stable: the same input gives the same assignment; adding mailboxes moves none of the others', () => {
  const before = assignMailboxes('g', boxes(1000), listeners(4));
  const again = assignMailboxes('g', boxes(1000), listeners(4));
  assert.deepEqual(again, before);
  const owner = new Map(before.flatMap((a) => a.mailboxes.map((m) => [m.address, a.listener.id] as const)));
  const after = assignMailboxes('g', [...boxes(1000), ...boxes(50, 1000)], listeners(4));
  let moved = 0;
  for (const a of after) for (const m of a.mailboxes) if (owner.has(m.address) && owner.get(m.address) !== a.listener.id) moved++;
  assert.equal(moved, 0);
});

test('repeated addresses are merged (case-insensitive) with their folders', () => {
  assert.deepEqual(normalizeMailboxes([{ address: 'A@Contoso.com', folders: ['inbox'] }, { address: 'a@contoso.com', folders: ['inbox', 'Archive'] }]), [
    { address: 'a@contoso.com', folders: ['inbox', 'Archive'] },
  ]);
});
