/**
 * The Exchange Online SMTP front against a real Dovecot: nodemailer as the client, tokens signed
 * in the test, mail read back from Dovecot with imapflow. Every failure of facts §3.3 is reproduced
 * with its reply text and then cured by the matching run-time operation.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { createSandboxCa, type SandboxCa } from '../../../src/sandbox/ca.ts';
import type { SandboxDirectory } from '../../../src/sandbox/directory.ts';
import { isRunning, startDovecot, type Dovecot } from '../../../src/sandbox/dovecot.ts';
import {
  grantFullAccess,
  grantSendAs,
  newServicePrincipal,
  removeServicePrincipal,
  revokeFullAccess,
  setMailboxSmtpAuthDisabled,
  setTenantSmtpAuthDisabled,
} from '../../../src/sandbox/exchange/ops.ts';
import { startSmtpFront, type SmtpFront, type SmtpFrontOptions } from '../../../src/sandbox/exchange/smtp.ts';
import { APP, CAROL, FakeClock, RawSmtp, TENANT_ID, appToken, makeDirectory, makeSigner, userToken, xoauth2, type Signer } from './smtp-harness.ts';
import { waitFor } from '../../support/wait.ts';

let ca: SandboxCa;
let dovecot: Dovecot;
let signer: Signer;
let forger: Signer;

before(async () => {
  ca = createSandboxCa();
  dovecot = await startDovecot({ tls: ca.issueServer() });
  signer = await makeSigner();
  forger = await makeSigner();
});

after(async () => {
  const pid = dovecot?.pid;
  await dovecot?.stop();
  if (pid) assert.equal(isRunning(pid), false, 'Dovecot stopped');
});

const BRACKET = String.raw`\[SB1P281CA0001\.DEUP281\.PROD\.OUTLOOK\.COM \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [0-9A-F]{16}\]`;
const AUTH_UNSUCCESSFUL = new RegExp(`^535 5\\.7\\.3 Authentication unsuccessful ${BRACKET}$`);

async function front(t: TestContext, directory: SandboxDirectory, extra: Partial<SmtpFrontOptions> = {}): Promise<SmtpFront> {
  const f = await startSmtpFront({ directory, jwks: signer.jwks, tls: ca.issueServer(), dovecot, ...extra });
  t.after(() => f.close());
  return f;
}

function transport(f: SmtpFront, user: string, accessToken?: string, pool = false) {
  return nodemailer.createTransport({
    host: '127.0.0.1',
    port: f.port,
    secure: false,
    requireTLS: true,
    tls: { ca: ca.certPem },
    ...(accessToken ? { auth: { type: 'OAuth2' as const, user, accessToken } } : {}),
    ...(pool ? { pool: true, maxConnections: 1, maxMessages: Infinity } : {}),
  });
}

/** A message with the awkward bits: a leading dot, 8-bit UTF-8, trailing blanks, a folded header. */
function rawMessage(from: string, to: string, subject: string, extraHeaders = ''): Buffer {
  return Buffer.from(
    `From: Sender <${from}>\r\nTo: ${to}\r\nSubject: ${subject}\r\n\tfolded\r\nMessage-ID: <${subject.replace(/\W/g, '')}.${Date.now()}@contoso.test>\r\n` +
      `MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n${extraHeaders}\r\n` +
      `Grüße aus dem Sandbox-Tenant.\r\n.a line that starts with a dot\r\n..two dots\r\ntrailing blanks   \r\n\r\n`,
    'utf8',
  );
}

async function send(f: SmtpFront, user: string, token: string | undefined, envelope: { from: string; to: string[] }, raw: Buffer) {
  const tr = transport(f, user, token);
  try {
    return await tr.sendMail({ envelope, raw });
  } finally {
    tr.close();
  }
}

interface SmtpError {
  code?: string;
  responseCode?: number;
  response?: string;
  command?: string;
}

async function failure(p: Promise<unknown>): Promise<SmtpError> {
  try {
    await p;
  } catch (err) {
    return err as SmtpError;
  }
  assert.fail('expected the SMTP transaction to fail');
}

/** Every message (full source) in a mailbox's INBOX, read from Dovecot directly. */
async function inbox(address: string): Promise<Buffer[]> {
  const client = new ImapFlow({
    host: '127.0.0.1',
    port: dovecot.ports.imaps,
    secure: true,
    tls: { ca: ca.certPem },
    auth: { user: address, accessToken: await dovecot.mintToken(address) },
    logger: false,
  });
  await client.connect();
  try {
    const lock = await client.getMailboxLock('INBOX');
    try {
      const out: Buffer[] = [];
      if (!client.mailbox || client.mailbox.exists === 0) return out;
      for await (const m of client.fetch('1:*', { source: true })) if (m.source) out.push(m.source);
      return out;
    } finally {
      lock.release();
    }
  } finally {
    await client.logout();
  }
}

function stored(from: string, raw: Buffer): Buffer {
  // Dovecot LMTP always prepends Return-Path; nothing else is added or changed.
  return Buffer.concat([Buffer.from(`Return-Path: <${from}>\r\n`), raw]);
}

test('the wire looks like smtp.office365.com: greeting, EHLO before and after STARTTLS, AUTH gated by TLS, reply texts', async (t) => {
  const f = await front(t, makeDirectory());
  const c = await RawSmtp.connect(f.port);
  t.after(() => c.close());
  const [greeting] = await c.reply();
  assert.match(
    greeting!,
    /^220 SB1P281CA0001\.outlook\.office365\.com Microsoft ESMTP MAIL Service ready at (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000 \[[0-9A-F]{16}\]$/,
  );
  assert.deepEqual(await c.command('EHLO client.example'), [
    '250-SB1P281CA0001.outlook.office365.com Hello [127.0.0.1]',
    '250-SIZE 157286400',
    '250-PIPELINING',
    '250-DSN',
    '250-ENHANCEDSTATUSCODES',
    '250-STARTTLS',
    '250-8BITMIME',
    '250 SMTPUTF8',
  ]);
  assert.deepEqual(await c.command(`AUTH XOAUTH2 ${xoauth2('alice@contoso.test', await appToken(signer))}`), ['504 5.7.4 Unrecognized authentication type']);
  assert.deepEqual(await c.command('MAIL FROM:<alice@contoso.test>'), ['530 5.7.57 Client not authenticated to send mail.']);
  assert.deepEqual(await c.startTls(ca.certPem), ['220 2.0.0 SMTP server ready']);
  const ehlo = await c.command('EHLO client.example');
  assert.deepEqual(ehlo, [
    '250-SB1P281CA0001.outlook.office365.com Hello [127.0.0.1]',
    '250-SIZE 157286400',
    '250-PIPELINING',
    '250-DSN',
    '250-ENHANCEDSTATUSCODES',
    '250-AUTH LOGIN XOAUTH2',
    '250-8BITMIME',
    '250 SMTPUTF8',
  ]);
  assert.deepEqual(await c.command('MAIL FROM:<alice@contoso.test>'), ['530 5.7.57 Client not authenticated to send mail.']);
  // Basic auth is off in Exchange Online.
  assert.deepEqual(await c.command('AUTH LOGIN'), ['334 VXNlcm5hbWU6']);
  assert.deepEqual(await c.command(Buffer.from('alice@contoso.test').toString('base64')), ['334 UGFzc3dvcmQ6']);
  const [basic] = await c.command(Buffer.from('password').toString('base64'));
  assert.match(basic!, new RegExp(`^535 5\\.7\\.139 Authentication unsuccessful, basic authentication is disabled\\. ${BRACKET}$`));
  assert.deepEqual(await c.command(`AUTH XOAUTH2 ${xoauth2('alice@contoso.test', await appToken(signer))}`), ['235 2.7.0 Authentication successful']);
  assert.deepEqual(await c.command('MAIL FROM:<alice@contoso.test>'), ['250 2.1.0 Sender OK']);
  assert.deepEqual(await c.command('RCPT TO:<bob@contoso.test>'), ['250 2.1.5 Recipient OK']);
  assert.deepEqual(await c.command('DATA'), ['354 Start mail input; end with <CRLF>.<CRLF>']);
  assert.deepEqual(await c.command('From: alice@contoso.test\r\nTo: bob@contoso.test\r\nMessage-ID: <wire-1@contoso.test>\r\nSubject: wire\r\n\r\nhi\r\n.'), [
    '250 2.0.0 OK <wire-1@contoso.test> [Hostname=SB1P281CA0001.DEUP281.PROD.OUTLOOK.COM]',
  ]);
  assert.deepEqual(await c.command('RSET'), ['250 2.0.0 Resetting']);
  assert.deepEqual(await c.command('QUIT'), ['221 2.0.0 Service closing transmission channel']);
});

test('a message submitted with an app token arrives in the recipients\' Dovecot mailboxes byte for byte', async (t) => {
  const f = await front(t, makeDirectory());
  const raw = rawMessage('alice@contoso.test', 'bob@contoso.test, info@contoso.test', 'byte for byte');
  const before = (await inbox('bob@contoso.test')).length;
  const info = await send(
    f,
    'alice@contoso.test',
    await appToken(signer),
    { from: 'alice@contoso.test', to: ['bob@contoso.test', 'info@contoso.test', 'someone@example.org'] },
    raw,
  );
  assert.match(info.response, /^250 2\.0\.0 OK <bytefor(byte)?\.\d+@contoso\.test> \[Hostname=SB1P281CA0001\.DEUP281\.PROD\.OUTLOOK\.COM\]$/);
  assert.deepEqual(info.accepted, ['bob@contoso.test', 'info@contoso.test', 'someone@example.org']);
  const bob = await inbox('bob@contoso.test');
  assert.equal(bob.length, before + 1);
  assert.ok(bob.at(-1)!.equals(stored('alice@contoso.test', raw)), `stored:\n${bob.at(-1)!.toString()}`);
  const shared = await inbox('info@contoso.test');
  assert.ok(shared.at(-1)!.equals(stored('alice@contoso.test', raw)));
  // Outside the sandbox: recorded, not sent.
  assert.equal(f.outbound.length, 1);
  assert.deepEqual(f.outbound[0]!.to, ['someone@example.org']);
  assert.ok(f.outbound[0]!.raw.equals(raw));
});

test('a Bcc header in the submitted MIME is delivered as submitted, to every envelope recipient (as Exchange Online does: docs/microsoft-facts-addendum.md)', async (t) => {
  const f = await front(t, makeDirectory());
  const raw = rawMessage('alice@contoso.test', 'bob@contoso.test', 'bcc kept', 'Bcc: info@contoso.test\r\n');
  await send(f, 'alice@contoso.test', await appToken(signer), { from: 'alice@contoso.test', to: ['bob@contoso.test', 'info@contoso.test'] }, raw);
  // The envelope decides who gets it; the header block is not edited, so the To recipient sees the Bcc line too.
  assert.ok((await inbox('bob@contoso.test')).at(-1)!.equals(stored('alice@contoso.test', raw)));
  assert.ok((await inbox('info@contoso.test')).at(-1)!.equals(stored('alice@contoso.test', raw)));
});

test('bad tokens get 535 5.7.3 and nothing is delivered', async (t) => {
  const f = await front(t, makeDirectory());
  const before = dovecot.inboxFiles('bob@contoso.test').length;
  const tokens = {
    forged: await appToken(forger),
    expired: await appToken(signer, { now: Date.now() - 3 * 3600_000 }),
    graph: await appToken(signer, { aud: 'https://graph.microsoft.com' }),
    otherTenantIssuer: await appToken(signer, { iss: 'https://sts.windows.net/00000000-0000-0000-0000-000000000000/' }),
    notJwt: 'EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA',
  };
  for (const [name, token] of Object.entries(tokens)) {
    const err = await failure(send(f, 'alice@contoso.test', token, { from: 'alice@contoso.test', to: ['bob@contoso.test'] }, rawMessage('alice@contoso.test', 'bob@contoso.test', name)));
    assert.equal(err.code, 'EAUTH', name);
    assert.match(err.response ?? '', AUTH_UNSUCCESSFUL, name);
  }
  assert.equal(dovecot.inboxFiles('bob@contoso.test').length, before);
});

test('no SMTP.SendAsApp role: 535 5.7.3; a token with the role (after admin consent) works', async (t) => {
  const f = await front(t, makeDirectory());
  const raw = rawMessage('alice@contoso.test', 'bob@contoso.test', 'role');
  const err = await failure(send(f, 'alice@contoso.test', await appToken(signer, { roles: ['IMAP.AccessAsApp'] }), { from: 'alice@contoso.test', to: ['bob@contoso.test'] }, raw));
  assert.match(err.response ?? '', AUTH_UNSUCCESSFUL);
  const ok = await send(f, 'alice@contoso.test', await appToken(signer, { roles: ['SMTP.SendAsApp'] }), { from: 'alice@contoso.test', to: ['bob@contoso.test'] }, raw);
  assert.match(ok.response, /^250 2\.0\.0 OK /);
});

test('New-ServicePrincipal: missing or made with the app registration object ID → 535 5.7.3; with the enterprise app object ID → sent', async (t) => {
  const dir = makeDirectory();
  const f = await front(t, dir);
  const token = await appToken(signer);
  const attempt = () => send(f, 'alice@contoso.test', token, { from: 'alice@contoso.test', to: ['bob@contoso.test'] }, rawMessage('alice@contoso.test', 'bob@contoso.test', 'sp'));
  removeServicePrincipal(dir, TENANT_ID, APP.servicePrincipalId);
  assert.match((await failure(attempt())).response ?? '', AUTH_UNSUCCESSFUL);
  newServicePrincipal(dir, TENANT_ID, { appId: APP.appId, objectId: APP.objectId });
  grantFullAccess(dir, 'alice@contoso.test', APP.objectId);
  assert.match((await failure(attempt())).response ?? '', AUTH_UNSUCCESSFUL, 'wrong object ID');
  removeServicePrincipal(dir, TENANT_ID, APP.objectId);
  newServicePrincipal(dir, TENANT_ID, { appId: APP.appId, objectId: APP.servicePrincipalId });
  grantFullAccess(dir, 'alice@contoso.test', APP.servicePrincipalId);
  assert.match((await attempt()).response, /^250 2\.0\.0 OK /);
});

test('no FullAccess on the SASL user mailbox → 535 5.7.3; Add-MailboxPermission cures it', async (t) => {
  const dir = makeDirectory();
  const f = await front(t, dir);
  revokeFullAccess(dir, 'bob@contoso.test', APP.servicePrincipalId);
  const attempt = async () => send(f, 'bob@contoso.test', await appToken(signer), { from: 'bob@contoso.test', to: ['alice@contoso.test'] }, rawMessage('bob@contoso.test', 'alice@contoso.test', 'fullaccess'));
  assert.match((await failure(attempt())).response ?? '', AUTH_UNSUCCESSFUL);
  grantFullAccess(dir, 'bob@contoso.test', APP.servicePrincipalId);
  assert.match((await attempt()).response, /^250 2\.0\.0 OK /);
});

test('SMTP AUTH disabled for the tenant or the mailbox → the two 535 5.7.139 texts; enabling cures them', async (t) => {
  const dir = makeDirectory();
  const f = await front(t, dir);
  const attempt = async () => send(f, 'alice@contoso.test', await appToken(signer), { from: 'alice@contoso.test', to: ['bob@contoso.test'] }, rawMessage('alice@contoso.test', 'bob@contoso.test', 'switch'));
  setTenantSmtpAuthDisabled(dir, TENANT_ID, true);
  assert.match(
    (await failure(attempt())).response ?? '',
    new RegExp(`^535 5\\.7\\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant\\. Visit https://aka\\.ms/smtp_auth_disabled for more information\\. ${BRACKET}$`),
  );
  // Set-CASMailbox -SmtpClientAuthenticationDisabled $false overrides the tenant.
  setMailboxSmtpAuthDisabled(dir, 'alice@contoso.test', false);
  assert.match((await attempt()).response, /^250 2\.0\.0 OK /);
  setTenantSmtpAuthDisabled(dir, TENANT_ID, false);
  setMailboxSmtpAuthDisabled(dir, 'alice@contoso.test', true);
  assert.match(
    (await failure(attempt())).response ?? '',
    new RegExp(`^535 5\\.7\\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox\\. Visit https://aka\\.ms/smtp_auth_disabled for more information\\. ${BRACKET}$`),
  );
  setMailboxSmtpAuthDisabled(dir, 'alice@contoso.test', null);
  assert.match((await attempt()).response, /^250 2\.0\.0 OK /);
});

test('MAIL FROM without AUTH → 530 5.7.57; with AUTH it is accepted', async (t) => {
  const f = await front(t, makeDirectory());
  const raw = rawMessage('alice@contoso.test', 'bob@contoso.test', 'anonymous');
  const err = await failure(send(f, 'alice@contoso.test', undefined, { from: 'alice@contoso.test', to: ['bob@contoso.test'] }, raw));
  assert.equal(err.responseCode, 530);
  assert.equal(err.response, '530 5.7.57 Client not authenticated to send mail.');
  assert.match((await send(f, 'alice@contoso.test', await appToken(signer), { from: 'alice@contoso.test', to: ['bob@contoso.test'] }, raw)).response, /^250 /);
});

test('sending as another mailbox → 554 5.2.252 SendAsDenied after DATA; Add-RecipientPermission SendAs cures it', async (t) => {
  const dir = makeDirectory();
  const f = await front(t, dir);
  const token = await appToken(signer);
  const before = dovecot.inboxFiles('carol@contoso.test').length;
  const sendAsDenied =
    /^554 5\.2\.252 SendAsDenied; alice@contoso\.test not allowed to send as bob@contoso\.test; STOREDRV\.Submission\.Exception:SendAsDeniedException\.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message \[BeginDiagnosticData\]Cannot submit message\./;
  // From header says bob (envelope says alice).
  const fromBob = rawMessage('bob@contoso.test', 'carol@contoso.test', 'from header');
  const e1 = await failure(send(f, 'alice@contoso.test', token, { from: 'alice@contoso.test', to: ['carol@contoso.test'] }, fromBob));
  assert.match(e1.response ?? '', sendAsDenied);
  assert.equal(e1.responseCode, 554);
  assert.equal(e1.command, 'DATA', 'refused after DATA, MAIL FROM and RCPT TO were accepted');
  // Envelope sender bob, From header alice.
  const e2 = await failure(send(f, 'alice@contoso.test', token, { from: 'bob@contoso.test', to: ['carol@contoso.test'] }, rawMessage('alice@contoso.test', 'carol@contoso.test', 'envelope')));
  assert.match(e2.response ?? '', sendAsDenied);
  assert.equal(dovecot.inboxFiles('carol@contoso.test').length, before, 'nothing delivered');

  grantSendAs(dir, 'bob@contoso.test', APP.servicePrincipalId);
  const ok = await send(f, 'alice@contoso.test', token, { from: 'bob@contoso.test', to: ['carol@contoso.test'] }, fromBob);
  assert.match(ok.response, /^250 2\.0\.0 OK /);
  const carol = await inbox('carol@contoso.test');
  assert.ok(carol.at(-1)!.equals(stored('bob@contoso.test', fromBob)));
});

test('a 4th concurrent authenticated connection on a mailbox → 432 4.3.2; closing one cures it', async (t) => {
  const f = await front(t, makeDirectory());
  const token = await appToken(signer);
  const envelope = { from: 'alice@contoso.test', to: ['someone@example.org'] };
  const pools = [0, 1, 2, 3].map(() => transport(f, 'alice@contoso.test', token, true));
  t.after(() => pools.forEach((p) => p.close()));
  // Three pooled connections stay logged in after their first message.
  for (const p of pools.slice(0, 3)) assert.match((await p.sendMail({ envelope, raw: rawMessage('alice@contoso.test', 'x', 'conn') })).response, /^250 /);
  assert.equal(f.connections(), 3);
  const err = await failure(pools[3]!.sendMail({ envelope, raw: rawMessage('alice@contoso.test', 'x', 'fourth') }));
  assert.equal(err.response, '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded');
  assert.equal(err.responseCode, 432);
  // Another mailbox is not affected.
  assert.match((await send(f, 'bob@contoso.test', token, { from: 'bob@contoso.test', to: ['someone@example.org'] }, rawMessage('bob@contoso.test', 'x', 'bob'))).response, /^250 /);
  pools[0]!.close();
  await waitFor(() => f.connections() === 3, 10_000, 'the first connection to close');
  assert.match((await pools[3]!.sendMail({ envelope, raw: rawMessage('alice@contoso.test', 'x', 'fourth again') })).response, /^250 2\.0\.0 OK /);
});

test('30 messages per minute per mailbox: the 31st reply is held, not failed, until the minute has passed', async (t) => {
  const clock = new FakeClock();
  // Every look at the clock is counted: the front re-checks a held reply against it, so a new read
  // after an advance means the held reply was judged at the new time.
  let reads = 0;
  const f = await front(t, makeDirectory(), {
    now: () => {
      reads++;
      return clock.now();
    },
  });
  const pool = transport(f, 'alice@contoso.test', await appToken(signer, { now: clock.t }), true);
  t.after(() => pool.close());
  const envelope = { from: 'alice@contoso.test', to: ['someone@example.org'] };
  for (let i = 1; i <= 30; i++) assert.match((await pool.sendMail({ envelope, raw: rawMessage('alice@contoso.test', 'x', `rate ${i}`) })).response, /^250 /);
  let settled = false;
  const last = pool.sendMail({ envelope, raw: rawMessage('alice@contoso.test', 'x', 'rate 31') }).finally(() => (settled = true));
  await waitFor(() => f.heldReplies() === 1, 10_000, 'the 31st reply to be held');
  assert.equal(settled, false, 'no reply yet, and no error');
  assert.equal(f.outbound.length, 30);
  clock.advance(30_000);
  const seen = reads;
  await waitFor(() => reads > seen, 10_000, 'the front to look at the clock again');
  assert.equal(f.heldReplies(), 1, 'still held inside the minute');
  assert.equal(settled, false, 'still inside the minute');
  clock.advance(30_001);
  assert.match((await last).response, /^250 2\.0\.0 OK /);
  assert.equal(f.outbound.length, 31);
  assert.equal(f.heldReplies(), 0);
});

test('10,000 recipients per rolling day: the next message gets 554 5.2.0 SubmissionQuotaExceededException until the day has passed', async (t) => {
  const clock = new FakeClock();
  const f = await front(t, makeDirectory(), { now: clock.now });
  const pool = transport(f, 'alice@contoso.test', await appToken(signer, { now: clock.t }), true);
  t.after(() => pool.close());
  const recipients = (n: number, offset: number) => Array.from({ length: n }, (_, i) => `r${offset + i}@example.org`);
  for (let m = 0; m < 20; m++) {
    const info = await pool.sendMail({ envelope: { from: 'alice@contoso.test', to: recipients(500, m * 500) }, raw: rawMessage('alice@contoso.test', 'x', `bulk ${m}`) });
    assert.equal(info.accepted.length, 500);
  }
  const err = await failure(pool.sendMail({ envelope: { from: 'alice@contoso.test', to: ['one.more@example.org'] }, raw: rawMessage('alice@contoso.test', 'x', 'over') }));
  assert.equal(err.responseCode, 554);
  assert.match(err.response ?? '', /^554 5\.2\.0 STOREDRV\.Submission\.Exception:SubmissionQuotaExceededException; /);
  assert.equal(f.outbound.length, 20);
  clock.advance(24 * 3600_000 + 1000);
  // Tokens live an hour: a client gets a new one for the new day.
  pool.close();
  const next = transport(f, 'alice@contoso.test', await appToken(signer, { now: clock.t }));
  t.after(() => next.close());
  assert.match((await next.sendMail({ envelope: { from: 'alice@contoso.test', to: ['one.more@example.org'] }, raw: rawMessage('alice@contoso.test', 'x', 'next day') })).response, /^250 /);
});

test('a lower daily recipient limit can be configured for cheap tests', async (t) => {
  const clock = new FakeClock();
  const f = await front(t, makeDirectory(), { now: clock.now, limits: { recipientsPerDay: 3 } });
  const token = await appToken(signer, { now: clock.t, expiresIn: 3 * 86_400 });
  const go = (to: string[]) => send(f, 'alice@contoso.test', token, { from: 'alice@contoso.test', to }, rawMessage('alice@contoso.test', 'x', 'small'));
  assert.match((await go(['a@example.org', 'b@example.org'])).response, /^250 /);
  assert.match((await failure(go(['c@example.org', 'd@example.org']))).response ?? '', /^554 5\.2\.0 STOREDRV\.Submission\.Exception:SubmissionQuotaExceededException/);
  assert.match((await go(['c@example.org'])).response, /^250 /, 'exactly at the limit is fine');
  clock.advance(12 * 3600_000);
  assert.match((await failure(go(['e@example.org']))).response ?? '', /^554 5\.2\.0 /, 'rolling window, not a calendar day');
  clock.advance(12 * 3600_000 + 1);
  assert.match((await go(['e@example.org'])).response, /^250 /);
});

test('delegated: a user token with SMTP.Send sends from a shared mailbox the user has FullAccess on', async (t) => {
  const f = await front(t, makeDirectory());
  const token = await userToken(signer, CAROL, 'SMTP.Send');
  const raw = rawMessage('info@contoso.test', 'alice@contoso.test', 'shared');
  const info = await send(f, 'info@contoso.test', token, { from: 'info@contoso.test', to: ['alice@contoso.test'] }, raw);
  assert.match(info.response, /^250 2\.0\.0 OK /);
  assert.ok((await inbox('alice@contoso.test')).at(-1)!.equals(stored('info@contoso.test', raw)));
  const err = await failure(send(f, 'bob@contoso.test', token, { from: 'bob@contoso.test', to: ['alice@contoso.test'] }, raw));
  assert.match(err.response ?? '', AUTH_UNSUCCESSFUL);
  const noScope = await failure(send(f, 'carol@contoso.test', await userToken(signer, CAROL, 'IMAP.AccessAsUser.All'), { from: 'carol@contoso.test', to: ['alice@contoso.test'] }, raw));
  assert.match(noScope.response ?? '', AUTH_UNSUCCESSFUL);
});
