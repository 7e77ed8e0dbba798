/**
 * SMTP AUTH XOAUTH2 end to end: an application (nodemailer) hands mail to mailbridge's listener;
 * mailbridge logs in to the sandbox's Exchange Online SMTP front with an app-only token from the
 * sandbox Entra ID, as the route's mailbox, and the message lands in Dovecot byte for byte (plus the
 * Return-Path final delivery adds). BCC recipients (envelope only) receive it, the pool reuses
 * logged-in connections and never opens more than 3 per mailbox, and sender rewriting keeps the
 * original sender as Reply-To.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { message, startRelayRig, startTenant, stored, type RelayRig, type TenantRig } from './rig.ts';

let t: TenantRig;
let r: RelayRig;

before(async () => {
  t = await startTenant();
  r = await startRelayRig(t, {
    routes: [
      { name: 'rewrite', senders: ['@legacy.example'], connection: 'sandbox', mailbox: 'scanner@contoso.test', rewriteFrom: true, smtp: { host: '127.0.0.1', port: t.smtp.port } },
      { name: 'scanner', senders: ['@contoso.test'], connection: 'sandbox', mailbox: 'scanner@contoso.test', smtp: { host: '127.0.0.1', port: t.smtp.port } },
    ],
    // The queue would start 10 deliveries per mailbox at once: the transport itself keeps to 3.
    relay: { queue: { retrySchedule: '1m', concurrencyPerMailbox: 10 } },
  });
});

after(async () => {
  await r?.close();
  await t?.close();
});

test('a message reaches To, Cc and BCC recipients over SMTP XOAUTH2, headers and body intact', async () => {
  const raw = message(
    { from: 'Scanner <scanner@contoso.test>', to: 'Alice <alice@contoso.test>', cc: 'info@contoso.test', subject: 'Scan =?utf-8?q?Gr=C3=BC=C3=9Fe?=', id: 'scan-1' },
    'Grüße aus dem Scanner.\r\n.leading dot stays\r\n',
  );
  await r.submit({ from: 'scanner@contoso.test', to: ['alice@contoso.test', 'info@contoso.test', 'bob@contoso.test'] }, raw);
  await r.settle();
  for (const who of ['alice@contoso.test', 'info@contoso.test', 'bob@contoso.test']) {
    const box = await t.inbox(who);
    assert.equal(box.length, 1, `${who} got one copy`);
    const got = stored(box[0]!);
    assert.equal(got.returnPath, 'Return-Path: <scanner@contoso.test>\r\n');
    assert.equal(got.rest, raw, `${who}: byte for byte below the relay's Received header`);
  }
  const [rec] = await r.records();
  assert.equal(rec?.state, 'sent');
  assert.equal(rec?.mailbox, 'scanner@contoso.test');
});

test("an application's Bcc header reaches nobody: the To recipient's copy has no Bcc or Resent-Bcc, the Bcc recipient still gets the mail", async () => {
  const raw = message({ from: 'scanner@contoso.test', to: 'alice@contoso.test', subject: 'smtp bcc header', extra: ['Bcc: Bob <bob@contoso.test>,', ' info@contoso.test', 'Resent-Bcc: info@contoso.test'] });
  await r.submit({ from: 'scanner@contoso.test', to: ['alice@contoso.test', 'bob@contoso.test', 'info@contoso.test'] }, raw);
  await r.settle();
  for (const who of ['alice@contoso.test', 'bob@contoso.test', 'info@contoso.test']) {
    const got = (await t.inbox(who)).map((b) => b.toString('utf8')).filter((m) => m.includes('Subject: smtp bcc header'));
    assert.equal(got.length, 1, `${who} got the message`);
    assert.doesNotMatch(got[0]!, /^(Resent-)?Bcc:/im, `${who}: no Bcc header`);
    assert.ok(!got[0]!.includes('bob@contoso.test>,'), `${who}: the Bcc list is nowhere in the message`);
    assert.equal(stored(got[0]!).rest, raw.replace('Bcc: Bob <bob@contoso.test>,\r\n info@contoso.test\r\nResent-Bcc: info@contoso.test\r\n', ''), `${who}: everything else unchanged`);
  }
});

test('connections are logged in once and reused; never more than 3 per mailbox', async () => {
  const tokensBefore = t.entra.stats.tokenRequests.length;
  const sends = [];
  for (let i = 0; i < 12; i++) {
    sends.push(r.submit({ from: 'scanner@contoso.test', to: ['alice@contoso.test'] }, message({ from: 'scanner@contoso.test', to: 'alice@contoso.test', subject: `batch ${i}` })));
  }
  let peak = 0;
  const watch = setInterval(() => (peak = Math.max(peak, r.service.transport.transports.smtp.connections!('scanner@contoso.test'), t.smtp.connections())), 1);
  await Promise.all(sends);
  await r.settle();
  clearInterval(watch);
  const box = await t.inbox('alice@contoso.test');
  assert.equal(box.filter((m) => /Subject: batch \d+/.test(m.toString())).length, 12);
  assert.ok(peak <= 3, `at most 3 connections (saw ${peak})`);
  assert.ok(peak >= 2, `connections were used in parallel (saw ${peak})`);
  assert.ok(r.service.transport.transports.smtp.connections!('scanner@contoso.test') >= 1, 'an idle connection is kept for reuse');
  assert.equal(t.entra.stats.tokenRequests.length, tokensBefore, 'the cached token was used');
  const sent = (await r.records()).filter((x) => x.state === 'sent');
  assert.equal(sent.length, 14);
});

test('rewriteFrom: a foreign sender goes out as the mailbox, the original kept as Reply-To', async () => {
  const raw = message({ from: '"ERP System" <erp@legacy.example>', to: 'bob@contoso.test', subject: 'invoice 42', id: 'inv-42' }, 'Invoice attached.\r\n');
  await r.submit({ from: 'erp@legacy.example', to: ['bob@contoso.test'] }, raw);
  await r.settle();
  const got = (await t.inbox('bob@contoso.test')).map((b) => b.toString('utf8')).find((m) => m.includes('invoice 42'));
  assert.ok(got, 'bob got the invoice');
  assert.equal(stored(got).returnPath, 'Return-Path: <scanner@contoso.test>\r\n', 'envelope sender rewritten');
  assert.match(got, /\r\nFrom: "ERP System" <scanner@contoso\.test>\r\nReply-To: "ERP System" <erp@legacy\.example>\r\n/);
  assert.ok(got.endsWith('\r\n\r\nInvoice attached.\r\n'), 'body untouched');
  assert.ok(got.includes('Message-ID: <inv-42@legacy.example>'));
});
