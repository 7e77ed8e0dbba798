/**
 * Operating a running sandbox as an admin does, through `mailbridge sandbox-admin` found by its
 * folder (or from anywhere, by the well-known pointer): switching IMAP off for a mailbox, uploading a
 * certificate the app then signs in with, sending Graph lifecycle events, refusing an EAI mailbox.
 * And what the Exchange fronts must look like: NAMESPACE with "/" so "Inbox/Scans" can be created and
 * fetched, and a Graph sendMail to a recipient that cannot be delivered to ends in an NDR, not silence.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, randomUUID, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { importPKCS8, SignJWT } from 'jose';
import { Agent, fetch } from 'undici';
import { createSandboxCa, selfSigned } from '../../src/sandbox/ca.ts';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { GRAPH_CLI_TOOLS_APP_ID } from '../../src/sandbox/entra/first-party.ts';
import { runCli } from '../admin/cli/harness.ts';
import { startReceiver, type Receiver } from './graph/notify-helpers.ts';

let dir: string;
let stateHome: string;
let sandbox: Sandbox;
let ca: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mb-sandbox-operate-'));
  stateHome = mkdtempSync(join(tmpdir(), 'mb-sandbox-state-'));
  sandbox = await startSandbox({ dir, pointerFile: join(stateHome, 'mailbridge', 'sandbox.json') });
  ca = readFileSync(sandbox.caFile, 'utf8');
});

after(async () => {
  await sandbox?.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(stateHome, { recursive: true, force: true });
});

/** sandbox-admin run from an unrelated folder, as an admin would from their home directory. */
const admin = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(['sandbox-admin', ...args], { cwd: tmpdir(), env: { XDG_STATE_HOME: join(stateHome, 'none'), ...env } });

function imap(user: string, token: string): ImapFlow {
  return new ImapFlow({ host: '127.0.0.1', port: sandbox.imap.port, secure: true, tls: { ca }, auth: { user, accessToken: token }, logger: false });
}

test('sandbox-admin finds the sandbox by --dir, by MAILBRIDGE_SANDBOX_DIR, and from any folder by the pointer of the last one started', async () => {
  let r = await admin(['--dir', dir, 'state']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /mailbox alice@contoso\.test/);
  r = await admin(['state'], { MAILBRIDGE_SANDBOX_DIR: dir });
  assert.equal(r.code, 0, r.stderr);
  r = await admin(['state'], { XDG_STATE_HOME: stateHome });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Contoso/);
  // Nothing to find: a coded error that says where it looked and what to run.
  r = await admin(['state']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /MB_SANDBOX_ADMIN_NOT_FOUND/);
  assert.match(r.stderr, /sandbox-admin --dir/);
  r = await admin(['--dir', join(dir, 'nope'), 'state'], { XDG_STATE_HOME: stateHome });
  assert.equal(r.code, 1, 'a named folder without a sandbox is an error, not another sandbox');
  assert.match(r.stderr, /MB_SANDBOX_ADMIN_NOT_FOUND/);
});

test('NAMESPACE answers "/" as Exchange does; Inbox/Scans is created, filled and fetched', async () => {
  const token = await sandbox.appToken('https://outlook.office365.com/.default');
  const client = imap('scanner@contoso.test', token);
  await client.connect();
  try {
    // imapflow asks NAMESPACE after login and keeps the personal namespace's answer.
    assert.deepEqual(client.namespace, { prefix: '', delimiter: '/' });
    await client.mailboxCreate('Inbox/Scans');
    const raw = 'From: copier@contoso.test\r\nTo: scanner@contoso.test\r\nSubject: Scan 42\r\n\r\nscanned\r\n';
    await client.append('Inbox/Scans', raw);
    const lock = await client.getMailboxLock('Inbox/Scans');
    try {
      const msg = await client.fetchOne('*', { source: true });
      assert.ok(msg && msg.source);
      assert.equal(msg.source.toString(), raw);
    } finally {
      lock.release();
    }
    const listed = (await client.list()).map((f) => f.path);
    assert.ok(listed.some((p) => /^INBOX\/Scans$/i.test(p)), listed.join(', '));
  } finally {
    await client.logout();
  }
});

test('imap-mailbox off refuses IMAP logins to that mailbox (NO AUTHENTICATE failed.); on lets them in again', async () => {
  const token = await sandbox.appToken('https://outlook.office365.com/.default');
  let r = await admin(['--dir', dir, 'imap-mailbox', 'info@contoso.test', 'off']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Set-CASMailbox -Identity "info@contoso.test" -ImapEnabled \$false/);
  assert.match((await admin(['--dir', dir, 'state'])).stdout, /mailbox info@contoso\.test \(shared\).* IMAP=off/);
  const off = imap('info@contoso.test', token);
  await assert.rejects(off.connect(), (err: Error & { responseText?: string }) => /AUTHENTICATE failed/.test(`${err.message} ${err.responseText ?? ''}`));
  off.close();
  // SMTP AUTH is a different switch: the mailbox still has it.
  assert.equal(sandbox.directory.mailbox('info@contoso.test')!.mailbox.smtpClientAuthenticationDisabled, null);
  r = await admin(['--dir', dir, 'imap-mailbox', 'info@contoso.test', 'on']);
  assert.equal(r.code, 0, r.stderr);
  const on = imap('info@contoso.test', token);
  await on.connect();
  await on.logout();
  assert.match(readFileSync(join(dir, 'sandbox.yaml'), 'utf8'), /imapEnabled: true/);
});

test('add-cert uploads a certificate; the app then gets a token with an assertion signed by it', async () => {
  const tenant = sandbox.directory.data.tenants[0]!;
  const app = tenant.apps[0]!;
  const tokenUrl = `${sandbox.entra.urls.global}/${tenant.id}/oauth2/v2.0/token`;
  const cert = selfSigned('mailbridge second cert', new Date(Date.now() - 60_000), new Date(Date.now() + 86_400_000));
  const assertion = async () => {
    const der = new X509Certificate(cert.certPem).raw;
    const key = await importPKCS8(createPrivateKey(cert.keyPem).export({ type: 'pkcs8', format: 'pem' }).toString(), 'PS256');
    return new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: 'PS256', typ: 'JWT', 'x5t#S256': createHash('sha256').update(der).digest('base64url') })
      .setIssuer(app.appId)
      .setSubject(app.appId)
      .setAudience(tokenUrl)
      .setIssuedAt()
      .setNotBefore(Math.floor(Date.now() / 1000))
      .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
      .sign(key);
  };
  const requestToken = async () =>
    fetch(tokenUrl, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: app.appId,
        scope: 'https://outlook.office365.com/.default',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await assertion(),
      }),
      dispatcher: new Agent({ connect: { ca } }),
    });
  const before = await requestToken();
  assert.equal(before.status, 401, 'an unknown certificate is refused');
  const pemFile = join(dir, 'second-cert.pem');
  writeFileSync(pemFile, cert.certPem);
  const r = await admin(['--dir', dir, 'add-cert', app.appId, pemFile]);
  assert.equal(r.code, 0, r.stderr);
  const sha1 = createHash('sha1').update(new X509Certificate(cert.certPem).raw).digest('hex').toUpperCase();
  assert.match(r.stdout, new RegExp(`Certificate uploaded: thumbprint ${sha1}`));
  const afterUpload = await requestToken();
  assert.equal(afterUpload.status, 200, await afterUpload.clone().text());
  assert.match(readFileSync(join(dir, 'sandbox.yaml'), 'utf8'), new RegExp(cert.certPem.split('\n')[1]!.slice(0, 40).replace(/[+/]/g, '\\$&')), 'kept in sandbox.yaml');
  // A private key is not a certificate to upload.
  writeFileSync(pemFile, cert.keyPem);
  const bad = await admin(['--dir', dir, 'add-cert', app.appId, pemFile]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /MB_SANDBOX_BAD_CERTIFICATE/);
});

test('lifecycle sends missed, reauthorizationRequired and subscriptionRemoved to the subscription’s lifecycleNotificationUrl', async () => {
  const sandboxCa = createSandboxCa({ keyPem: readFileSync(join(dir, 'ca.key'), 'utf8'), certPem: ca });
  const rx: Receiver = await startReceiver(sandboxCa.issueServer(['127.0.0.1']));
  try {
    const token = await sandbox.appToken('https://graph.microsoft.com/.default');
    const res = await fetch(`${sandbox.graph.url}/v1.0/subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        changeType: 'created',
        resource: "/users/bob@contoso.test/mailFolders('inbox')/messages",
        notificationUrl: `${rx.url}/n`,
        lifecycleNotificationUrl: `${rx.url}/life`,
        expirationDateTime: new Date(Date.now() + 3_600_000).toISOString(),
        clientState: 'cs-1',
      }),
      dispatcher: new Agent({ connect: { ca } }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    const id = ((await res.json()) as { id: string }).id;
    let r = await admin(['--dir', dir, 'subscriptions']);
    assert.match(r.stdout, new RegExp(`${id}  bob@contoso.test`));
    const events = async () => {
      await sandbox.graph.notificationsSettled();
      return rx.items('/life').map((i) => i.lifecycleEvent);
    };
    r = await admin(['--dir', dir, 'lifecycle', id, 'missed']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await events(), ['missed']);
    r = await admin(['--dir', dir, 'lifecycle', 'bob@contoso.test', 'reauthorizationRequired']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await events(), ['missed', 'reauthorizationRequired']);
    r = await admin(['--dir', dir, 'lifecycle', id, 'subscriptionRemoved']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await events(), ['missed', 'reauthorizationRequired', 'subscriptionRemoved']);
    assert.equal(rx.items('/life')[0]!.clientState, 'cs-1');
    assert.equal(sandbox.graph.subscriptions().length, 0, 'a removed subscription is gone');
    r = await admin(['--dir', dir, 'lifecycle', id, 'missed']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ResourceNotFound/);
  } finally {
    await rx.close();
  }
});

test('add-mailbox refuses an internationalised local part with MB_SANDBOX_EAI_MAILBOX, in both languages', async () => {
  let r = await admin(['--dir', dir, 'add-mailbox', 'jörg@contoso.test']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /MB_SANDBOX_EAI_MAILBOX/);
  assert.match(r.stderr, /joerg@contoso\.test|jorg@contoso\.test/);
  r = await admin(['--dir', dir, '--lang', 'de', 'add-mailbox', 'jörg@contoso.test']);
  assert.match(r.stderr, /ASCII-Adresse/);
  assert.equal(sandbox.directory.mailbox('jörg@contoso.test'), undefined, 'no unusable mailbox was created');
  r = await admin(['--dir', dir, 'add-mailbox', 'joerg@contoso.test']);
  assert.equal(r.code, 0, r.stderr);
});

test('Graph sendMail to a recipient Dovecot refuses: 202 as Exchange answers, and an NDR in the sender’s Inbox instead of silence', async () => {
  // A mailbox no mail can reach (an EAI address from a hand-written sandbox.yaml).
  sandbox.directory.data.tenants[0]!.exchange.mailboxes.push({
    address: 'jörg@contoso.test',
    type: 'user',
    displayName: 'Jörg',
    smtpClientAuthenticationDisabled: null,
    imapEnabled: true,
    fullAccess: [],
    sendAs: [],
  });
  const token = await sandbox.appToken('https://graph.microsoft.com/.default');
  const res = await fetch(`${sandbox.graph.url}/v1.0/users/alice@contoso.test/sendMail`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ message: { subject: 'Angebot 4711', body: { contentType: 'Text', content: 'Hallo' }, toRecipients: [{ emailAddress: { address: 'jörg@contoso.test' } }] } }),
    dispatcher: new Agent({ connect: { ca } }),
  });
  assert.equal(res.status, 202);
  const list = await fetch(`${sandbox.admin.url}/mailboxes/alice@contoso.test/messages`);
  const messages = ((await list.json()) as { messages: Array<{ uid: number; subject: string }> }).messages;
  const ndr = messages.find((m) => m.subject === 'Undeliverable: Angebot 4711');
  assert.ok(ndr, `an NDR in alice's Inbox: ${JSON.stringify(messages)}`);
  const source = await (await fetch(`${sandbox.admin.url}/mailboxes/alice@contoso.test/messages/${ndr.uid}`)).text();
  assert.match(source, /Content-Type: multipart\/report; report-type=delivery-status/);
  assert.match(source, /Final-Recipient: rfc822;jörg@contoso\.test/);
  assert.match(source, /Action: failed/);
});

test('approve-device signs in at the device-code page as the user: the one waiting sign-in, or the named one when several wait', async () => {
  const base = `${sandbox.entra.urls.global}/contoso.test/oauth2/v2.0`;
  const agent = new Agent({ connect: { ca } });
  const post = (path: string, form: Record<string, string>) => fetch(`${base}/${path}`, { method: 'POST', body: new URLSearchParams(form), dispatcher: agent });
  const start = async () => (await (await post('devicecode', { client_id: GRAPH_CLI_TOOLS_APP_ID, scope: 'openid profile offline_access' })).json()) as { device_code: string; user_code: string };
  const redeem = (deviceCode: string) => post('token', { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: GRAPH_CLI_TOOLS_APP_ID, device_code: deviceCode });

  const one = await start();
  assert.equal((await redeem(one.device_code)).status, 400, 'pending until the user signs in');
  let r = await admin(['--dir', dir, 'approve-device', 'alice@contoso.test']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`Code ${one.user_code} approved as alice@contoso\\.test`));
  assert.equal((await redeem(one.device_code)).status, 200);

  const [a, b] = [await start(), await start()];
  r = await admin(['--dir', dir, 'approve-device', 'alice@contoso.test'], { LANG: 'de_DE.UTF-8' });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /SeveralDeviceCodes/);
  assert.equal((await redeem(a.device_code)).status, 400, 'neither was approved');
  r = await admin(['--dir', dir, 'approve-device', 'alice@contoso.test', '--code', b.user_code], { LANG: 'de_DE.UTF-8' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`Code ${b.user_code} als alice@contoso\\.test bestätigt`));
  assert.equal((await redeem(b.device_code)).status, 200);
  assert.equal((await redeem(a.device_code)).status, 400);
});
