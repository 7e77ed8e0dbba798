import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RawImap } from './imap-raw-client.ts';
import { startRig, processGone, type Rig } from './imap-harness.ts';
import { xoauth2 } from '../../../src/sandbox/exchange/imap-wire.ts';
import { waitFor } from '../../support/wait.ts';
import { forFile } from '../../support/rig.ts';

// Exchange Online's strings, copied from the captures in microsoft-facts.md §3.4 (not from the source under test).
const PRE_AUTH = '* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+';
const POST_AUTH =
  '* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CLIENTACCESSRULES CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE CHILDREN IDLE NAMESPACE LITERAL+';
const NOT_CONNECTED = 'BAD User is authenticated but not connected.';

let rig: Rig;

forFile(async () => (rig = await startRig()));

async function raw(port = rig.front.port): Promise<RawImap> {
  const c = await RawImap.open(port, rig.caPem);
  await c.line(); // greeting
  return c;
}

async function rawLogin(user: string, token: string, tag = 'L1'): Promise<{ c: RawImap; reply: string[] }> {
  const c = await raw();
  return { c, reply: await c.command(tag, `AUTHENTICATE XOAUTH2 ${xoauth2(user, token)}`) };
}

test('greeting, pre-auth CAPABILITY, ID, NOOP and every refusal before login use Exchange Online’s words', async () => {
  const c = await RawImap.open(rig.front.port, rig.caPem);
  try {
    const greeting = await c.line();
    const m = /^\* OK The Microsoft Exchange IMAP4 service is ready\. \[([A-Za-z0-9+/=]+)\]$/.exec(greeting);
    assert.ok(m, greeting);
    // The bracket holds the backend server's FQDN in UTF-16LE, base64-encoded.
    assert.equal(Buffer.from(m[1]!, 'base64').toString('utf16le'), rig.front.backendHost);
    assert.match(rig.front.backendHost, /^[A-Z0-9]+\.[A-Z0-9]+\.PROD\.OUTLOOK\.COM$/);

    assert.deepEqual(await c.command('a1', 'CAPABILITY'), [PRE_AUTH, 'a1 OK CAPABILITY completed.']);
    assert.deepEqual(await c.command('a2', 'ID ("name" "test")'), ['* ID ("name" "Microsoft.Exchange.Imap4.Imap4Server" "version" "15.20")', 'a2 OK ID completed.']);
    assert.deepEqual(await c.command('a3', 'NOOP'), ['a3 OK NOOP completed.']);
    // Basic authentication is off: LOGIN and PLAIN fail whatever the password.
    assert.deepEqual(await c.command('a4', 'LOGIN alice@contoso.test secret'), ['a4 NO LOGIN failed.']);
    // A synchronizing literal gets Exchange's continuation; LITERAL+ needs none.
    c.send('a5 LOGIN {18}');
    assert.equal(await c.line(), '+ Ready for additional command text.');
    c.send('alice@contoso.test {6+}');
    c.send('secret');
    assert.deepEqual(await c.until('a5'), ['a5 NO LOGIN failed.']);
    const plain = Buffer.from('\0alice@contoso.test\0secret').toString('base64');
    assert.deepEqual(await c.command('a6', `AUTHENTICATE PLAIN ${plain}`), ['a6 NO AUTHENTICATE failed.']);
    assert.deepEqual(await c.command('a7', 'AUTHENTICATE OAUTHBEARER bixhPWFsaWNlQGNvbnRvc28udGVzdCwBAQ=='), ['a7 NO AUTHENTICATE failed.']);
    assert.deepEqual(await c.command('a8', 'SELECT INBOX'), ['a8 BAD Command received in Invalid state.']);
    assert.deepEqual(await c.command('a9', 'IDLE'), ['a9 BAD Command received in Invalid state.']);
    assert.deepEqual(await c.command('a10', 'LOGOUT'), ['* BYE Microsoft Exchange Server IMAP4 server signing off.', 'a10 OK LOGOUT completed.']);
    await c.closed();
  } finally {
    c.close();
  }
});

test('a valid app token with FullAccess logs in (SASL-IR and continuation); CAPABILITY after login is Exchange’s, the mailbox is Dovecot’s', async () => {
  const token = await rig.appToken();
  const { c, reply } = await rawLogin('alice@contoso.test', token, 'b1');
  try {
    // Dovecot's greeting and its "[CAPABILITY …] Logged in" never reach the client.
    assert.deepEqual(reply, ['b1 OK AUTHENTICATE completed.']);
    assert.deepEqual(await c.command('b2', 'CAPABILITY'), [POST_AUTH, 'b2 OK CAPABILITY completed.']);
    // Tagged completions use Exchange's "<COMMAND> completed." and keep Dovecot's response codes.
    assert.deepEqual(await c.command('b3', 'ID NIL'), ['* ID ("name" "Microsoft.Exchange.Imap4.Imap4Server" "version" "15.20")', 'b3 OK ID completed.']);
    const select = await c.command('b4', 'SELECT INBOX');
    assert.equal(select.at(-1), 'b4 OK [READ-WRITE] SELECT completed.');
    assert.ok(select.some((l) => /^\* OK \[UIDVALIDITY \d+\]/.test(l)), select.join('\n'));
    assert.equal((await c.command('b6', 'UID FETCH 1:* (FLAGS)')).at(-1), 'b6 OK FETCH completed.');
    assert.deepEqual(await c.command('b5', 'LOGOUT'), ['* BYE Microsoft Exchange Server IMAP4 server signing off.', 'b5 OK LOGOUT completed.']);
    await c.closed();
  } finally {
    c.close();
  }

  // The continuation form: AUTHENTICATE XOAUTH2, "+ ", then the payload on its own line.
  const c2 = await raw();
  try {
    c2.send('c1 AUTHENTICATE XOAUTH2');
    assert.equal(await c2.line(), '+ ');
    c2.send(xoauth2('alice@contoso.test', token));
    assert.deepEqual(await c2.until('c1'), ['c1 OK AUTHENTICATE completed.']);
    // Commands pipelined right behind a login reach Dovecot in order.
    c2.send('c2 NOOP\r\nc3 CAPABILITY');
    const lines = await c2.until('c3');
    assert.equal(lines[0], 'c2 OK NOOP completed.');
    assert.deepEqual(lines.slice(-2), [POST_AUTH, 'c3 OK CAPABILITY completed.']);
  } finally {
    c2.close();
  }
});

test('refused tokens answer NO AUTHENTICATE failed. and the connection stays usable; imapflow reports an authentication failure', async () => {
  const c = await raw();
  try {
    const cases: [string, string][] = [
      ['signed by a key not in the JWKS', await rig.appToken({}, { foreignKey: true })],
      ['expired', await rig.appToken({}, { expiresIn: -3600 })],
      ['audience Graph', await rig.appToken({ aud: 'https://graph.microsoft.com' })],
      ['without IMAP.AccessAsApp', await rig.appToken({ roles: ['SMTP.SendAsApp'] })],
      ['not a JWT', 'EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA'],
    ];
    let n = 0;
    for (const [why, token] of cases) {
      const tag = `n${++n}`;
      assert.deepEqual(await c.command(tag, `AUTHENTICATE XOAUTH2 ${xoauth2('alice@contoso.test', token)}`), [`${tag} NO AUTHENTICATE failed.`], why);
    }
    assert.deepEqual(await c.command('n9', 'AUTHENTICATE XOAUTH2 bm90IHhvYXV0aDI='), ['n9 NO AUTHENTICATE failed.'], 'garbage payload');
    assert.deepEqual(await c.command('n10', 'CAPABILITY'), [PRE_AUTH, 'n10 OK CAPABILITY completed.']);
  } finally {
    c.close();
  }
  const client = rig.imapflow('alice@contoso.test', await rig.appToken({}, { expiresIn: -3600 }));
  client.on('error', () => undefined);
  const err = (await client.connect().then(
    () => undefined,
    (e: unknown) => e,
  )) as { authenticationFailed?: boolean; response?: string } | undefined;
  assert.ok(err, 'connect() must fail');
  assert.equal(err.authenticationFailed, true);
  assert.match(String(err.response), /NO AUTHENTICATE failed\./);
});

test('a valid app token without New-ServicePrincipal, or with the wrong object ID, is "authenticated but not connected"; New-ServicePrincipal with the right object ID plus FullAccess (admin API) cures it', async () => {
  const token = await rig.appToken();
  await rig.admin$('/exchange/Remove-ServicePrincipal', { identity: rig.app.appId });
  try {
    const { c, reply } = await rawLogin('alice@contoso.test', token, 'd1');
    try {
      assert.deepEqual(reply, ['d1 OK AUTHENTICATE completed.']);
      assert.deepEqual(await c.command('d2', 'CAPABILITY'), [POST_AUTH, 'd2 OK CAPABILITY completed.']);
      assert.deepEqual(await c.command('d3', 'SELECT INBOX'), [`d3 ${NOT_CONNECTED}`]);
      c.send('d4 NAMESPACE');
      assert.equal(await c.line(), `d4 ${NOT_CONNECTED}`);
      assert.equal(await c.line(), '* BYE Connection closed. 14');
      await c.closed();
    } finally {
      c.close();
    }
    await assertNotConnected('alice@contoso.test', token, 'no service principal');

    // The classic mistake: New-ServicePrincipal with the app registration's object ID. Even with
    // FullAccess granted to that registration, the token's oid does not match it.
    await rig.admin$('/exchange/New-ServicePrincipal', { appId: rig.app.appId, objectId: rig.app.objectId });
    await rig.admin$('/exchange/Add-MailboxPermission', { identity: 'alice@contoso.test', user: rig.app.appId, accessRights: 'FullAccess' });
    await assertNotConnected('alice@contoso.test', token, 'wrong object ID');
    // Removing a service principal takes its mailbox permissions with it, as in Exchange.
    await rig.admin$('/exchange/Remove-ServicePrincipal', { identity: rig.app.objectId });
    assert.deepEqual(rig.directory.mailbox('alice@contoso.test')!.mailbox.fullAccess, []);
  } finally {
    await rig.admin$('/exchange/New-ServicePrincipal', { appId: rig.app.appId, objectId: rig.app.servicePrincipalId });
  }
  // Registered right, but its earlier FullAccess went with the removed principal: grant it again.
  await assertNotConnected('alice@contoso.test', token, 'registered, FullAccess not yet granted again');
  await rig.admin$('/exchange/Add-MailboxPermission', { identity: 'alice@contoso.test', user: rig.app.servicePrincipalId, accessRights: 'FullAccess' });
  const client = rig.imapflow('alice@contoso.test', token);
  await client.connect();
  try {
    assert.ok(client.authenticated);
    assert.equal((await client.mailboxOpen('INBOX')).path, 'INBOX');
  } finally {
    await client.logout();
  }
});

test('no FullAccess on the mailbox: "authenticated but not connected" until Add-MailboxPermission through the admin API', async () => {
  const token = await rig.appToken();
  await assertNotConnected('bob@contoso.test', token, 'no FullAccess on bob');
  await assertNotConnected('info@contoso.test', token, 'no FullAccess on the shared mailbox');
  await rig.admin$('/exchange/Add-MailboxPermission', { identity: 'info@contoso.test', user: rig.app.servicePrincipalId, accessRights: 'FullAccess' });
  const client = rig.imapflow('info@contoso.test', token);
  await client.connect();
  try {
    const status = await client.status('INBOX', { messages: true });
    assert.equal(status && status.messages, 0);
  } finally {
    await client.logout();
  }
  // Revoked again: the next login is refused the same way (the directory is live).
  await rig.admin$('/exchange/Remove-MailboxPermission', { identity: 'info@contoso.test', user: rig.app.servicePrincipalId, accessRights: 'FullAccess' });
  await assertNotConnected('info@contoso.test', token, 'FullAccess revoked');
});

test('a message delivered over LMTP is fetched through the front byte for byte; APPEND literals pass untouched', async () => {
  // Lines in the body look like the very responses the front rewrites; one line is longer than the splitter's window.
  const big = 'x'.repeat(200_000);
  const raw =
    'From: Scanner <scanner@contoso.test>\r\nTo: alice@contoso.test\r\nSubject: Scan 0815\r\nMessage-ID: <scan-0815@contoso.test>\r\n' +
    'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n' +
    '+ idling\r\n* CAPABILITY IMAP4rev1 X\r\n* ID ("name" "Dovecot")\r\nA1 OK Idle completed.\r\n{5}\r\nGrüße\r\n' +
    big +
    '\r\n';
  await rig.admin$('/mailboxes/alice@contoso.test/messages', { raw, from: 'scanner@contoso.test' });
  const client = rig.imapflow('alice@contoso.test', await rig.appToken());
  await client.connect();
  try {
    await client.mailboxOpen('INBOX');
    const msg = await client.fetchOne('*', { source: true, envelope: true });
    assert.ok(msg && msg.source);
    assert.equal(msg.envelope?.subject, 'Scan 0815');
    // LMTP puts Return-Path in front; the rest is what was delivered, byte for byte.
    assert.equal(msg.source.toString('utf8'), `Return-Path: <scanner@contoso.test>\r\n${raw}`);

    const appended = 'Subject: appended\r\n\r\n+ idling\r\nZ9 OK Idle completed.\r\n* 9 EXISTS\r\n';
    const res = await client.append('INBOX', appended);
    assert.ok(res && res.uid);
    const back = await fetch(`${rig.admin.url}/mailboxes/alice@contoso.test/messages/${res.uid}`);
    assert.equal(await back.text(), appended);
  } finally {
    await client.logout();
  }
});

test('IDLE on the front uses Exchange’s texts and wakes with EXISTS when a message arrives', async () => {
  const { c, reply } = await rawLogin('alice@contoso.test', await rig.appToken(), 'e1');
  try {
    assert.deepEqual(reply, ['e1 OK AUTHENTICATE completed.']);
    const select = await c.command('e2', 'SELECT INBOX');
    const exists = Number(/^\* (\d+) EXISTS$/.exec(select.find((l) => / EXISTS$/.test(l))!)![1]);
    c.send('e3 IDLE');
    assert.equal(await c.line(), '+ IDLE accepted, awaiting DONE command.');
    const start = Date.now();
    await rig.admin$('/mailboxes/alice@contoso.test/messages', { raw: 'Subject: wake up\r\n\r\nnew mail\r\n' });
    // Bounded wait: fail after 5 s; the delay is reported, the "< 1 s" figure belongs to a benchmark.
    let line = '';
    while (!/ EXISTS$/.test(line)) line = await c.line(5000 - (Date.now() - start));
    const delay = Date.now() - start;
    assert.equal(line, `* ${exists + 1} EXISTS`, `EXISTS after ${delay} ms`);
    c.send('DONE');
    const rest = await c.until('e3');
    assert.equal(rest.at(-1), 'e3 OK IDLE completed.', `EXISTS arrived after ${delay} ms`);

    // A synchronizing literal Dovecot refuses (no such mailbox) must not confuse the IDLE detection.
    c.send('e4 APPEND Nowhere {5}');
    assert.match(await c.line(), /^e4 NO \[TRYCREATE\]/);
    c.send('e5 IDLE');
    assert.equal(await c.line(), '+ IDLE accepted, awaiting DONE command.');
    c.send('DONE');
    assert.deepEqual(await c.until('e5'), ['e5 OK IDLE completed.']);
  } finally {
    c.close();
  }

  // The same through imapflow: its IDLE gets the exists event.
  const client = rig.imapflow('alice@contoso.test', await rig.appToken());
  await client.connect();
  try {
    const box = await client.mailboxOpen('INBOX');
    const before = box.exists;
    let seen = 0;
    client.on('exists', (ev: { count: number }) => (seen = ev.count));
    const idling = client.idle();
    await new Promise((r) => setTimeout(r, 100));
    const start = Date.now();
    await rig.admin$('/mailboxes/alice@contoso.test/messages', { raw: 'Subject: wake up imapflow\r\n\r\nnew mail\r\n' });
    await waitFor(() => seen === before + 1, 5000, 'imapflow exists event');
    assert.equal(seen, before + 1, `exists ${Date.now() - start} ms after the delivery started`);
    await client.noop(); // breaks IDLE (DONE) and must complete normally
    await idling;
  } finally {
    await client.logout();
  }
});

test('throttling: past the per-mailbox session limit, Exchange’s BAD with a backoff, then BYE and disconnect', async () => {
  const front = await rig.startFront({ maxConnectionsPerMailbox: 2, backoffMs: 299961 });
  const token = await rig.appToken();
  const open = [rig.imapflow('alice@contoso.test', token, { port: front.port }), rig.imapflow('alice@contoso.test', token, { port: front.port })];
  for (const c of open) await c.connect();
  try {
    const c = await RawImap.open(front.port, rig.caPem);
    await c.line();
    c.send(`t1 AUTHENTICATE XOAUTH2 ${xoauth2('alice@contoso.test', token)}`);
    assert.equal(await c.line(), 't1 BAD Request is throttled. Suggested Backoff Time: 299961 milliseconds');
    assert.equal(await c.line(), '* BYE Connection closed. 14');
    await c.closed();
    c.close();
    // Another mailbox has its own budget.
    await rig.admin$('/exchange/Add-MailboxPermission', { identity: 'bob@contoso.test', user: rig.app.servicePrincipalId });
    const bob = rig.imapflow('bob@contoso.test', token, { port: front.port });
    await bob.connect();
    await bob.logout();
    // A session that ends frees its slot.
    await open.pop()!.logout();
    await waitFor(() => front.connections() <= 1, 5000, 'session slot released');
    const again = rig.imapflow('alice@contoso.test', token, { port: front.port });
    await again.connect();
    open.push(again);
  } finally {
    for (const c of open) await c.logout().catch(() => c.close());
    await rig.admin$('/exchange/Remove-MailboxPermission', { identity: 'bob@contoso.test', user: rig.app.servicePrincipalId }).catch(() => undefined);
  }

  const windowed = await rig.startFront({ logins: { max: 2, windowMs: 60_000 } });
  for (let i = 0; i < 2; i++) {
    const ok = rig.imapflow('alice@contoso.test', token, { port: windowed.port });
    await ok.connect();
    await ok.logout();
  }
  const c = await RawImap.open(windowed.port, rig.caPem);
  await c.line();
  c.send(`w1 AUTHENTICATE XOAUTH2 ${xoauth2('alice@contoso.test', token)}`);
  const m = /^w1 BAD Request is throttled\. Suggested Backoff Time: (\d+) milliseconds$/.exec(await c.line());
  assert.ok(m, 'the third login within the window must be throttled');
  assert.ok(Number(m[1]) > 0 && Number(m[1]) <= 60_000, `backoff ${m[1]} ms lies within the window`);
  assert.equal(await c.line(), '* BYE Connection closed. 14');
  await c.closed();
  c.close();
  // imapflow sees the BAD and the BYE, then the close, and fails the connect (as against Exchange Online).
  const refused = rig.imapflow('alice@contoso.test', token, { port: windowed.port });
  refused.on('error', () => undefined);
  await assert.rejects(refused.connect());
});

test('closing the rig leaves no Dovecot process and no open connection behind', async () => {
  const pid = rig.dovecot.pid;
  const client = rig.imapflow('alice@contoso.test', await rig.appToken());
  client.on('error', () => undefined);
  await client.connect();
  await rig.close();
  assert.equal(rig.front.connections(), 0);
  await waitFor(() => processGone(pid), 5000, `Dovecot master ${pid} still running`);
  await waitFor(() => !client.usable, 5000, 'imapflow did not notice the closed front');
});

/** Logs in with imapflow and expects Exchange's "authenticated but not connected" refusal. */
async function assertNotConnected(user: string, token: string, why: string): Promise<void> {
  const client = rig.imapflow(user, token);
  client.on('error', () => undefined);
  const err = (await client.connect().then(
    () => undefined,
    (e: unknown) => e,
  )) as { authenticationFailed?: boolean; response?: string } | undefined;
  assert.ok(err, `${why}: connect() must fail`);
  // imapflow knows this Exchange answer and reports it as an authentication failure.
  assert.match(String(err.response), /User is authenticated but not connected/, why);
  client.close();
}
