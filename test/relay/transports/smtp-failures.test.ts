/**
 * Every Exchange Online SMTP failure the sandbox reproduces, through the whole relay: the message
 * ends up in the right queue state with the right MB code (cause and fix naming the exact
 * PowerShell line), and goes out once the fix is applied with the sandbox's run-time ops (the
 * cmdlets) — or, for limits, once the sandbox's clock has moved on. Limits are reached cheaply with
 * the front's limit options; time moves only on the shared manual clock.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import XOAuth2 from 'nodemailer/lib/xoauth2';
import { simpleParser } from 'mailparser';
import { explain } from '../../../src/errors/index.ts';
import {
  grantFullAccess,
  grantSendAs,
  revokeFullAccess,
  revokeSendAs,
  setMailboxSmtpAuthDisabled,
  setTenantSmtpAuthDisabled,
} from '../../../src/sandbox/exchange/ops.ts';
import { message, startRelayRig, startTenant, type RelayRig, type TenantRig } from './rig.ts';

const SCANNER = 'scanner@contoso.test';
const ALICE = 'alice@contoso.test';
const MINUTE = 60_000;

function route(t: TenantRig, extra: Record<string, unknown> = {}) {
  // One message per connection: every attempt logs in anew, as after a permission change in Exchange.
  return { senders: ['@contoso.test'], connection: 'sandbox', mailbox: SCANNER, smtp: { host: '127.0.0.1', port: t.smtp.port, messagesPerConnection: 1 }, ...extra };
}

async function arrived(t: TenantRig, who: string, subject: string): Promise<number> {
  return (await t.inbox(who)).filter((m) => m.includes(`Subject: ${subject}\r\n`)).length;
}

describe('permission and setting failures (fixed with the cmdlets)', () => {
  let t: TenantRig;
  let r: RelayRig;
  before(async () => {
    t = await startTenant();
    r = await startRelayRig(t, { routes: [route(t)] });
  });
  after(async () => {
    await r?.close();
    await t?.close();
  });

  const send = (subject: string, from = SCANNER) => r.submit({ from, to: [ALICE] }, message({ from, to: ALICE, subject }));

  test('535 5.7.139 for the tenant → deferred with Set-TransportConfig / Set-CASMailbox; sent after Set-TransportConfig $false', async () => {
    setTenantSmtpAuthDisabled(t.directory, t.tenantId, true);
    const id = await send('tenant-off');
    await r.settle();
    const rec = await r.record(id);
    assert.equal(rec.state, 'deferred');
    assert.equal(rec.lastError?.code, 'MB_RELAY_SMTP_AUTH_DISABLED_TENANT');
    assert.match(rec.lastError?.reply ?? '', /^535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant/);
    assert.ok(rec.nextAttemptAt >= t.clock.now() + MINUTE, 'mailbox paused for a minute');
    const e = explain(rec.lastError!.code, rec.lastError!.params ?? {}, 'en');
    assert.match(e.fix, /Set-CASMailbox -Identity scanner@contoso\.test -SmtpClientAuthenticationDisabled \$false/);
    assert.match(e.fix, /Set-TransportConfig -SmtpClientAuthenticationDisabled \$false/);
    assert.match(explain(rec.lastError!.code, rec.lastError!.params ?? {}, 'de').fix, /Nur für dieses Postfach erlauben/);
    assert.equal(await arrived(t, ALICE, 'tenant-off'), 0);

    setTenantSmtpAuthDisabled(t.directory, t.tenantId, false);
    await r.advance(MINUTE);
    assert.equal((await r.record(id)).state, 'sent');
    assert.equal(await arrived(t, ALICE, 'tenant-off'), 1);
  });

  test('535 5.7.139 for the mailbox → deferred with Set-CASMailbox; sent after Set-CASMailbox $false', async () => {
    setMailboxSmtpAuthDisabled(t.directory, SCANNER, true);
    const id = await send('mailbox-off');
    await r.settle();
    const rec = await r.record(id);
    assert.equal(rec.state, 'deferred');
    assert.equal(rec.lastError?.code, 'MB_RELAY_SMTP_AUTH_DISABLED_MAILBOX');
    assert.match(rec.lastError?.reply ?? '', /disabled for the Mailbox/);
    assert.match(rec.lastError?.detail ?? '', /Set-CASMailbox -Identity scanner@contoso\.test -SmtpClientAuthenticationDisabled \$false/);

    setMailboxSmtpAuthDisabled(t.directory, SCANNER, false);
    await r.advance(MINUTE);
    assert.equal((await r.record(id)).state, 'sent');
    assert.equal(await arrived(t, ALICE, 'mailbox-off'), 1);
  });

  test('535 5.7.3 without FullAccess → deferred with New-ServicePrincipal and Add-MailboxPermission (the enterprise app object ID); sent after Add-MailboxPermission', async () => {
    revokeFullAccess(t.directory, SCANNER, t.app.servicePrincipalId);
    const id = await send('no-fullaccess');
    await r.settle();
    const rec = await r.record(id);
    assert.equal(rec.state, 'deferred');
    assert.equal(rec.lastError?.code, 'MB_RELAY_SMTP_AUTH_REFUSED');
    assert.match(rec.lastError?.reply ?? '', /^535 5\.7\.3 Authentication unsuccessful/);
    const e = explain(rec.lastError!.code, rec.lastError!.params ?? {}, 'en');
    assert.ok(e.fix.includes(`New-ServicePrincipal -AppId ${t.app.appId} -ObjectId ${t.app.servicePrincipalId}`), e.fix);
    assert.ok(e.fix.includes(`Add-MailboxPermission -Identity ${SCANNER} -User ${t.app.servicePrincipalId} -AccessRights FullAccess`), e.fix);
    assert.ok(e.fix.includes(`-Organization ${t.tenantId}`));
    assert.ok(!e.fix.includes(t.app.objectId), 'not the app registration object ID');

    grantFullAccess(t.directory, SCANNER, t.app.servicePrincipalId);
    await r.advance(MINUTE);
    assert.equal((await r.record(id)).state, 'sent');
    assert.equal(await arrived(t, ALICE, 'no-fullaccess'), 1);
  });

  test('535 5.7.3 without SMTP.SendAsApp → deferred; after admin consent the cached token is renewed and the message goes out', async () => {
    const app = t.directory.data.tenants[0]!.apps[0]!;
    app.appRoles.exchange = app.appRoles.exchange.filter((role) => role !== 'SMTP.SendAsApp');
    t.clock.advance(2 * 3_600_000); // the cached token (with the role) expires; the next one has no role
    const id = await send('no-role');
    await r.settle();
    const rec = await r.record(id);
    assert.equal(rec.state, 'deferred');
    assert.equal(rec.lastError?.code, 'MB_RELAY_SMTP_AUTH_REFUSED');
    assert.match(explain(rec.lastError!.code, rec.lastError!.params ?? {}, 'en').fix, /SMTP\.SendAsApp › Grant admin consent/);

    const tokens = t.entra.stats.tokenRequests.length;
    app.appRoles.exchange.push('SMTP.SendAsApp');
    await r.advance(MINUTE); // the token cached 1 minute ago still lacks the role: 5.7.3, renewed, logged in again
    assert.equal((await r.record(id)).state, 'sent');
    assert.ok(t.entra.stats.tokenRequests.length > tokens, 'a new token was fetched');
    assert.equal(await arrived(t, ALICE, 'no-role'), 1);
  });

  test('554 5.2.252 SendAsDenied → deferred with Add-RecipientPermission for the service principal; sent after it is granted', async () => {
    revokeSendAs(t.directory, 'info@contoso.test', t.app.servicePrincipalId);
    const id = await send('send-as', 'info@contoso.test');
    await r.settle();
    const rec = await r.record(id);
    assert.equal(rec.state, 'deferred');
    assert.equal(rec.lastError?.code, 'MB_RELAY_SEND_AS_DENIED');
    assert.match(rec.lastError?.reply ?? '', /^554 5\.2\.252 SendAsDenied; scanner@contoso\.test not allowed to send as info@contoso\.test/);
    const e = explain(rec.lastError!.code, rec.lastError!.params ?? {}, 'en');
    assert.ok(e.fix.includes(`Add-RecipientPermission -Identity info@contoso.test -Trustee ${t.app.servicePrincipalId} -AccessRights SendAs`), e.fix);

    grantSendAs(t.directory, 'info@contoso.test', t.app.servicePrincipalId);
    await r.advance(MINUTE);
    assert.equal((await r.record(id)).state, 'sent');
    assert.equal(await arrived(t, ALICE, 'send-as'), 1);
  });

  test('a failure that outlasts the retry schedule bounces to the sender with the MB code, cause and fix', async () => {
    setMailboxSmtpAuthDisabled(t.directory, SCANNER, true);
    const id = await send('never');
    await r.settle();
    for (const step of [MINUTE, 5 * MINUTE, 5 * MINUTE, 5 * MINUTE]) await r.advance(step);
    const rec = await r.record(id);
    assert.equal(rec.state, 'bounced');
    assert.equal(rec.lastError?.code, 'MB_RELAY_RETRIES_EXHAUSTED');
    assert.equal(rec.lastError?.params?.lastCode, 'MB_RELAY_SMTP_AUTH_DISABLED_MAILBOX');
    // The report goes out through the same mailbox once it can send again.
    setMailboxSmtpAuthDisabled(t.directory, SCANNER, null);
    await r.advance(MINUTE);
    const raw = (await t.inbox(SCANNER)).find((m) => m.includes('X-Mailbridge-Code: MB_RELAY_RETRIES_EXHAUSTED'));
    assert.ok(raw, 'bounce report delivered to the sender');
    assert.match(raw.toString(), /Status: 5\.4\.7/);
    const text = (await simpleParser(raw)).text ?? '';
    assert.match(text, /last error was MB_RELAY_SMTP_AUTH_DISABLED_MAILBOX: 535 5\.7\.139/);
    assert.match(text, /Set-CASMailbox -Identity scanner@contoso\.test -SmtpClientAuthenticationDisabled \$false/);
  });
});

describe('432 4.3.2: more connections on the mailbox than Exchange allows', () => {
  let t: TenantRig;
  let r: RelayRig;
  before(async () => {
    t = await startTenant({ smtpLimits: { concurrentConnections: 1 } });
    r = await startRelayRig(t, { routes: [route(t)] });
  });
  after(async () => {
    await r?.close();
    await t?.close();
  });

  test('deferred with MB_RELAY_SMTP_CONCURRENCY and a one-minute pause; sent once the other program lets go', async () => {
    // Another program holds the mailbox's only connection.
    const token = await r.identity.getToken('sandbox', 'exchange');
    const other = new SMTPConnection({ host: '127.0.0.1', port: t.smtp.port, requireTLS: true, tls: { ca: t.ca.certPem }, logger: false });
    other.on('error', () => undefined);
    await new Promise<void>((res, rej) => {
      other.once('error', rej);
      other.connect(() => res());
    });
    await new Promise<void>((res, rej) => other.login({ user: SCANNER, oauth2: new XOAuth2({ user: SCANNER, accessToken: token.accessToken }, false) }, (err) => (err ? rej(err) : res())));

    const id = await r.submit({ from: SCANNER, to: [ALICE] }, message({ from: SCANNER, to: ALICE, subject: 'busy' }));
    await r.settle();
    const rec = await r.record(id);
    assert.equal(rec.state, 'deferred');
    assert.equal(rec.lastError?.code, 'MB_RELAY_SMTP_CONCURRENCY');
    assert.match(rec.lastError?.reply ?? '', /^432 4\.3\.2 STOREDRV\.ClientSubmit; sender thread limit exceeded/);
    assert.equal(rec.nextAttemptAt - (rec.lastAttemptAt ?? 0), MINUTE);

    other.quit();
    await new Promise((res) => other.once('end', res));
    await r.advance(MINUTE);
    assert.equal((await r.record(id)).state, 'sent');
    assert.equal(await arrived(t, ALICE, 'busy'), 1);
  });
});

describe('30 messages per minute', () => {
  let t: TenantRig;
  let r: RelayRig;
  let paced: RelayRig;
  before(async () => {
    t = await startTenant({ smtpLimits: { messagesPerMinute: 2 } });
    r = await startRelayRig(t, { routes: [route(t)] });
    // A second relay that knows the limit (relay.queue.ratePerMinute) sends as alice.
    paced = await startRelayRig(t, {
      routes: [route(t, { mailbox: ALICE })],
      relay: { queue: { retrySchedule: '1m, 5m*3', ratePerMinute: 2 } },
    });
  });
  after(async () => {
    await paced?.close();
    await r?.close();
    await t?.close();
  });

  test('Exchange holds the reply to the 3rd message of the minute: the message stays active, then is sent when the minute has passed', async () => {
    const ids: string[] = [];
    for (let i = 1; i <= 3; i++) ids.push(await r.submit({ from: SCANNER, to: [ALICE] }, message({ from: SCANNER, to: ALICE, subject: `rate ${i}` })));
    const deadline = Date.now() + 20_000;
    while (t.smtp.heldReplies() === 0) {
      assert.ok(Date.now() < deadline, 'the front holds a reply');
      await new Promise((res) => setTimeout(res, 10));
    }
    const states = await Promise.all(ids.map(async (id) => (await r.record(id)).state));
    assert.deepEqual(states.filter((s) => s === 'active').length, 1, `one message in flight, held by Exchange: ${states}`);
    assert.equal(states.filter((s) => s === 'sent').length, 2);

    await r.advance(MINUTE);
    assert.deepEqual(await Promise.all(ids.map(async (id) => (await r.record(id)).state)), ['sent', 'sent', 'sent']);
    assert.equal(t.smtp.heldReplies(), 0);
  });

  test('with relay.queue.ratePerMinute mailbridge paces itself: the 3rd message waits in the queue, unattempted, for the next minute', async () => {
    const ids: string[] = [];
    for (let i = 1; i <= 3; i++) ids.push(await paced.submit({ from: ALICE, to: ['bob@contoso.test'] }, message({ from: ALICE, to: 'bob@contoso.test', subject: `paced ${i}` })));
    await paced.settle();
    const third = await paced.record(ids[2]!);
    assert.equal(third.state, 'incoming');
    assert.equal(third.attempts, 0);
    assert.equal(t.smtp.heldReplies(), 0, 'Exchange never had to hold a reply');
    await paced.advance(MINUTE);
    assert.equal((await paced.record(ids[2]!)).state, 'sent');
    assert.equal(await arrived(t, 'bob@contoso.test', 'paced 3'), 1);
  });
});

describe('10,000 recipients per day (front limit: 3)', () => {
  let t: TenantRig;
  let r: RelayRig;
  before(async () => {
    t = await startTenant({ smtpLimits: { recipientsPerDay: 3 } });
    r = await startRelayRig(t, { routes: [route(t)] });
  });
  after(async () => {
    await r?.close();
    await t?.close();
  });

  test('554 5.2.0 SubmissionQuotaExceeded → deferred for an hour at a time; sent when the rolling day has passed', async () => {
    const id1 = await r.submit({ from: SCANNER, to: [ALICE, 'bob@contoso.test'] }, message({ from: SCANNER, to: ALICE, subject: 'day 1' }));
    await r.settle();
    assert.equal((await r.record(id1)).state, 'sent');
    const id2 = await r.submit({ from: SCANNER, to: [ALICE, 'bob@contoso.test'] }, message({ from: SCANNER, to: ALICE, subject: 'day 2' }));
    await r.settle();
    let rec = await r.record(id2);
    assert.equal(rec.state, 'deferred');
    assert.equal(rec.lastError?.code, 'MB_RELAY_DAILY_LIMIT');
    assert.match(rec.lastError?.reply ?? '', /^554 5\.2\.0 STOREDRV\.Submission\.Exception:SubmissionQuotaExceededException/);
    assert.equal(rec.nextAttemptAt - (rec.lastAttemptAt ?? 0), 3_600_000, 'retry after an hour, not after the 1-minute schedule step');
    assert.match(explain(rec.lastError!.code, rec.lastError!.params ?? {}, 'en').cause, /rolling window/);

    await r.advance(3_600_000);
    rec = await r.record(id2);
    assert.equal(rec.state, 'deferred', 'still blocked an hour later');
    assert.equal(rec.attempts, 2);

    await r.advance(24 * 3_600_000);
    assert.equal((await r.record(id2)).state, 'sent');
    assert.equal(await arrived(t, 'bob@contoso.test', 'day 2'), 1);
  });
});
