/**
 * Graph sendMail (MIME) end to end against the sandbox Graph: the application's message arrives
 * byte for byte; envelope-only (BCC) recipients receive it through a Bcc header that Exchange
 * strips; a Bcc header the application wrote reaches only envelope recipients; To/Cc addresses
 * outside the envelope are removed (or the message goes over SMTP with `graph.fallback: smtp`);
 * Graph's 429 with Retry-After, SendAsDenied, a missing Mail.Send consent and an unknown mailbox
 * are deferred with their MB codes and go out once fixed; messages over Graph's 4 MB request limit
 * bounce with a clear reason or go over SMTP.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { explain } from '../../../src/errors/index.ts';
import { grantSendAs, revokeSendAs } from '../../../src/sandbox/exchange/ops.ts';
import { GRAPH_MAX_MIME_BYTES } from '../../../src/relay/transports/types.ts';
import { message, startRelayRig, startTenant, stored, type RelayRig, type TenantRig } from './rig.ts';

const SCANNER = 'scanner@contoso.test';
const ALICE = 'alice@contoso.test';
const BOB = 'bob@contoso.test';
const INFO = 'info@contoso.test';
const MINUTE = 60_000;

let t: TenantRig;
let r: RelayRig;

before(async () => {
  t = await startTenant();
  const graph = { url: t.graph.url };
  const smtp = { host: '127.0.0.1', port: t.smtp.port };
  r = await startRelayRig(t, {
    routes: [
      { name: 'fallback', senders: ['bob@contoso.test'], connection: 'sandbox', transport: 'graph', graph: { ...graph, fallback: 'smtp' }, smtp },
      // graph.url as the sandbox prints it, with /v1.0 (issue 18 item 2: it once became …/v1.0/v1.0/…).
      { name: 'versioned', senders: [INFO], connection: 'sandbox', transport: 'graph', graph: { url: `${t.graph.url}/v1.0/` } },
      { name: 'nobody', senders: ['@legacy.example'], connection: 'sandbox', mailbox: 'nobody@contoso.test', transport: 'graph', graph },
      { name: 'graph', senders: ['@contoso.test'], connection: 'sandbox', transport: 'graph', graph, smtp },
    ],
  });
});

after(async () => {
  await r?.close();
  await t?.close();
});

async function copies(who: string, subject: string): Promise<string[]> {
  return (await t.inbox(who)).map((b) => b.toString('utf8')).filter((m) => m.includes(`Subject: ${subject}\r\n`));
}

describe('delivery', () => {
  test('a route whose graph.url ends in /v1.0 sends (one notion of the Graph base URL)', async () => {
    const raw = message({ from: INFO, to: ALICE, subject: 'versioned url', id: 'g-v1' }, 'hello\r\n');
    const id = await r.submit({ from: INFO, to: [ALICE] }, raw);
    await r.settle();
    const rec = await r.record(id);
    assert.equal(rec.state, 'sent', JSON.stringify(rec));
    assert.equal((await copies(ALICE, 'versioned url')).length, 1);
  });

  test('To, Cc and envelope-only (BCC) recipients get the message byte for byte; a copy lands in Sent Items', async () => {
    const raw = message({ from: 'Scanner <scanner@contoso.test>', to: 'Alice <alice@contoso.test>', cc: INFO, subject: 'graph scan', id: 'g-1' }, 'Grüße über Graph.\r\n');
    const id = await r.submit({ from: SCANNER, to: [ALICE, INFO, BOB] }, raw);
    await r.settle();
    assert.equal((await r.record(id)).state, 'sent');
    for (const who of [ALICE, INFO, BOB]) {
      const got = await copies(who, 'graph scan');
      assert.equal(got.length, 1, `${who} got one copy`);
      const parts = stored(got[0]!);
      assert.equal(parts.returnPath, 'Return-Path: <scanner@contoso.test>\r\n');
      assert.equal(parts.rest, raw, `${who}: byte for byte below the relay's Received header, no Bcc header`);
    }
    const sent = t.graph.stats.sent.at(-1)!;
    assert.equal(sent.form, 'mime');
    assert.deepEqual(sent.bcc, [BOB], 'the envelope-only recipient travelled as Bcc');
    const saved = (await t.inbox(SCANNER, 'Sent Items')).map(String).find((m) => m.includes('Subject: graph scan'));
    assert.ok(saved, 'Graph saved a copy in Sent Items (always, for MIME)');
    assert.match(saved, /\r\nBcc: bob@contoso\.test\r\n/);
  });

  test('a Bcc header the application wrote reaches only envelope recipients, and no recipient sees a Bcc or Resent-Bcc header', async () => {
    const raw = message({ from: SCANNER, to: ALICE, subject: 'app bcc', extra: [`Bcc: ${INFO}, ${BOB}`, `Resent-Bcc: ${BOB}`] });
    await r.submit({ from: SCANNER, to: [ALICE, BOB] }, raw);
    await r.settle();
    for (const who of [ALICE, BOB]) {
      const got = await copies(who, 'app bcc');
      assert.equal(got.length, 1, `${who} got the message`);
      assert.doesNotMatch(got[0]!, /^(Resent-)?Bcc:/im, `${who}: no Bcc header`);
    }
    assert.equal((await copies(INFO, 'app bcc')).length, 0, 'info was only in the header, not in RCPT TO');
    assert.deepEqual(t.graph.stats.sent.at(-1)!.bcc, [BOB], 'Graph was told the envelope-only recipient, not the header list');
  });

  test('To/Cc addresses outside the envelope are removed (and logged), not sent to', async () => {
    const raw = message({ from: SCANNER, to: ALICE, cc: `Info <${INFO}>`, subject: 'split transaction' });
    await r.submit({ from: SCANNER, to: [ALICE] }, raw);
    await r.settle();
    const [got] = await copies(ALICE, 'split transaction');
    assert.ok(got);
    assert.ok(!got.includes('Cc:'), 'Cc naming only a non-recipient is gone');
    assert.equal((await copies(INFO, 'split transaction')).length, 0);
    assert.ok(r.lines.some((l) => l.mb === 'MB_RELAY_GRAPH_HEADER_RECIPIENTS'));
  });

  test('graph.fallback: smtp sends such a message over SMTP instead, header untouched', async () => {
    const raw = message({ from: BOB, to: ALICE, cc: INFO, subject: 'fallback header' });
    const graphSends = t.graph.stats.sent.length;
    await r.submit({ from: BOB, to: [ALICE] }, raw);
    await r.settle();
    const [got] = await copies(ALICE, 'fallback header');
    assert.equal(stored(got!).returnPath, 'Return-Path: <bob@contoso.test>\r\n');
    assert.equal(stored(got!).rest, raw);
    assert.equal((await copies(INFO, 'fallback header')).length, 0, 'SMTP delivers to the envelope only');
    assert.equal(t.graph.stats.sent.length, graphSends, 'Graph was not used');
  });
});

describe('size', () => {
  const big = (from: string, subject: string) => message({ from, to: ALICE, subject }, `${'x'.repeat(76)}\r\n`.repeat(Math.ceil((GRAPH_MAX_MIME_BYTES + 1000) / 78)));

  test('over 4 MB per request: bounced with MB_RELAY_GRAPH_TOO_LARGE, nothing sent to Graph', async () => {
    const toAlice = () => t.graph.stats.sent.filter((x) => x.to.includes(ALICE)).length;
    const before = toAlice();
    const id = await r.submit({ from: SCANNER, to: [ALICE] }, big(SCANNER, 'too big'));
    await r.settle();
    const rec = await r.record(id);
    assert.equal(rec.state, 'bounced');
    assert.equal(rec.lastError?.code, 'MB_RELAY_GRAPH_TOO_LARGE');
    assert.match(explain(rec.lastError!.code, rec.lastError!.params ?? {}, 'en').fix, /graph\.fallback: smtp/);
    assert.equal(toAlice(), before, 'nothing was sent to Graph for alice');
    assert.equal(t.graph.stats.responses[413] ?? 0, 0, 'and Graph never had to refuse it');
    assert.equal((await copies(ALICE, 'too big')).length, 0);
    const report = (await t.inbox(SCANNER)).map(String).find((m) => m.includes('X-Mailbridge-Code: MB_RELAY_GRAPH_TOO_LARGE'));
    assert.ok(report, 'the sender got a bounce report naming the reason');
    assert.match(report, /\r\nStatus: 5\.3\.4\r\n/, 'message too big for system, not 5.0.0');
    assert.match(report, /\r\nDiagnostic-Code: x-mailbridge; MB_RELAY_GRAPH_TOO_LARGE /);
  });

  test('with graph.fallback: smtp it goes over SMTP XOAUTH2', async () => {
    const id = await r.submit({ from: BOB, to: [ALICE] }, big(BOB, 'big over smtp'));
    await r.settle();
    assert.equal((await r.record(id)).state, 'sent');
    assert.equal((await copies(ALICE, 'big over smtp')).length, 1);
  });
});

describe('failures', () => {
  test('429 ApplicationThrottled with Retry-After → deferred for that long (MB_RELAY_GRAPH_THROTTLED), then sent', async () => {
    t.graph.throttle(SCANNER, 1, 120);
    const id = await r.submit({ from: SCANNER, to: [ALICE] }, message({ from: SCANNER, to: ALICE, subject: 'throttled' }));
    await r.settle();
    const rec = await r.record(id);
    assert.equal(rec.state, 'deferred');
    assert.equal(rec.lastError?.code, 'MB_RELAY_GRAPH_THROTTLED');
    assert.match(rec.lastError?.reply ?? '', /^HTTP 429 ApplicationThrottled: Application is over its MailboxConcurrency limit\. \(request-id /);
    assert.equal(rec.nextAttemptAt - (rec.lastAttemptAt ?? 0), 120_000, 'Retry-After (120 s) wins over the 1-minute schedule step');
    await r.advance(MINUTE);
    assert.equal((await r.record(id)).state, 'deferred', 'the mailbox waits the full Retry-After');
    await r.advance(MINUTE);
    assert.equal((await r.record(id)).state, 'sent');
    assert.equal((await copies(ALICE, 'throttled')).length, 1);
  });

  test('403 ErrorSendAsDenied → deferred with Add-RecipientPermission for the sending mailbox; sent after it is granted', async () => {
    revokeSendAs(t.directory, INFO, t.app.servicePrincipalId);
    const id = await r.submit({ from: SCANNER, to: [ALICE] }, message({ from: INFO, to: ALICE, subject: 'graph send as' }));
    await r.settle();
    const rec = await r.record(id);
    assert.equal(rec.state, 'deferred');
    assert.equal(rec.lastError?.code, 'MB_RELAY_SEND_AS_DENIED');
    assert.match(rec.lastError?.reply ?? '', /^HTTP 403 ErrorSendAsDenied/);
    assert.ok(explain(rec.lastError!.code, rec.lastError!.params ?? {}, 'en').fix.includes(`Add-RecipientPermission -Identity ${INFO} -Trustee ${SCANNER} -AccessRights SendAs`));
    grantSendAs(t.directory, INFO, SCANNER);
    await r.advance(MINUTE);
    assert.equal((await r.record(id)).state, 'sent');
    assert.equal((await copies(ALICE, 'graph send as')).length, 1);
  });

  test('403 ErrorAccessDenied (no Mail.Send) → deferred with the consent path; after consent the token is renewed and it is sent', async () => {
    const app = t.directory.data.tenants[0]!.apps[0]!;
    app.appRoles.graph = app.appRoles.graph.filter((role) => role !== 'Mail.Send');
    t.clock.advance(2 * 3_600_000); // the cached Graph token expires; the next one has no Mail.Send
    const id = await r.submit({ from: SCANNER, to: [ALICE] }, message({ from: SCANNER, to: ALICE, subject: 'no mail.send' }));
    await r.settle();
    const rec = await r.record(id);
    assert.equal(rec.state, 'deferred');
    assert.equal(rec.lastError?.code, 'MB_RELAY_GRAPH_ACCESS_DENIED');
    assert.match(explain(rec.lastError!.code, rec.lastError!.params ?? {}, 'en').fix, new RegExp(`Microsoft Graph › Application permissions › Mail\\.Send .*-AppId ${t.app.appId}`));
    app.appRoles.graph.push('Mail.Send');
    await r.advance(MINUTE);
    assert.equal((await r.record(id)).state, 'sent');
  });

  test('404 for a mailbox Graph does not know → deferred with MB_RELAY_GRAPH_MAILBOX_UNKNOWN', async () => {
    const id = await r.submit({ from: 'erp@legacy.example', to: [ALICE] }, message({ from: 'erp@legacy.example', to: ALICE, subject: 'nobody' }));
    await r.settle();
    const rec = await r.record(id);
    assert.equal(rec.state, 'deferred');
    assert.equal(rec.lastError?.code, 'MB_RELAY_GRAPH_MAILBOX_UNKNOWN');
    assert.match(rec.lastError?.reply ?? '', /^HTTP 404 ErrorInvalidUser/);
  });
});
