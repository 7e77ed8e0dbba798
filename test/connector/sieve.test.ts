/**
 * The Sieve recipe mailbridge ships for LMTP/SMTP receivers (share/sieve/mailbridge-dedupe.sieve),
 * in a real Dovecot with Pigeonhole: a second delivery with the same X-Mailbridge-Delivery-Id is
 * discarded, other IDs and messages without the header are delivered as always.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEDUPE_SIEVE, folderContents, makeMessage, startRig, type Rig } from './helpers.ts';
import { forFile } from '../support/rig.ts';

let rig: Rig;

forFile(async () => (rig = await startRig({ sieve: DEDUPE_SIEVE })));

const withId = (id: string, m: Buffer) => Buffer.concat([Buffer.from(`X-Mailbridge-Delivery-Id: ${id}\r\n`), m]);

test('the dedupe recipe keeps one copy per delivery ID and leaves messages without the header alone', async () => {
  const to = 'sieve-target@contoso.test';
  const a = withId('a'.repeat(32), makeMessage(1));
  const b = withId('b'.repeat(32), makeMessage(2));
  const plain = makeMessage(3);
  for (const m of [a, a, b, plain, plain, a]) {
    const r = await rig.dovecot.deliver({ from: 'sender@outside.example', to: [to] }, m);
    assert.deepEqual(r.accepted, [to], 'a discarded redelivery is still accepted (250), so the connector records it');
  }
  const got = (await folderContents(rig, to, 'INBOX')).map((m) => m.raw.toString('latin1'));
  const count = (m: Buffer) => got.filter((g) => g.endsWith(m.toString('latin1'))).length;
  assert.equal(count(a), 1);
  assert.equal(count(b), 1);
  assert.equal(count(plain), 2);
  assert.equal(got.length, 4);
});
