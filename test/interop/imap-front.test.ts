/**
 * Interop, end to end and with nothing of mailbridge's client code: a client-credentials token from
 * the sandbox Entra ID (HTTP over TLS, like login.microsoftonline.com), imapflow logging in with it
 * to the Exchange Online IMAP front, the front checking it against Entra's JWKS and handing the
 * session to the real Dovecot. Admin changes (app role, FullAccess) go through the admin API.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import { ImapFlow } from 'imapflow';
import { createSandboxCa } from '../../src/sandbox/ca.ts';
import { SandboxDirectory } from '../../src/sandbox/directory.ts';
import { startDovecot, type Dovecot } from '../../src/sandbox/dovecot.ts';
import { startEntraSandbox, type EntraSandbox } from '../../src/sandbox/entra/index.ts';
import { startImapFront, type ImapFront } from '../../src/sandbox/exchange/imap.ts';
import { startSandboxAdmin, type SandboxAdmin } from '../../src/sandbox/admin.ts';

const tenantId = randomUUID();
const app = { appId: randomUUID(), objectId: randomUUID(), servicePrincipalId: randomUUID() };
const secret = 'sandbox~secret~' + randomUUID();

let caPem: string;
let dovecot: Dovecot;
let entra: EntraSandbox;
let front: ImapFront;
let admin: SandboxAdmin;
let https: Agent;

before(async () => {
  const ca = createSandboxCa();
  caPem = ca.certPem;
  https = new Agent({ connect: { ca: caPem } });
  const directory = new SandboxDirectory({
    tenants: [
      {
        id: tenantId,
        domains: ['fabrikam.test'],
        apps: [
          {
            ...app,
            secrets: [{ keyId: randomUUID(), value: secret, endDateTime: new Date(Date.now() + 86_400_000).toISOString() }],
            appRoles: { exchange: ['IMAP.AccessAsApp'], graph: [] },
          },
        ],
        exchange: {
          servicePrincipals: [{ appId: app.appId, objectId: app.servicePrincipalId }],
          mailboxes: [{ address: 'scans@fabrikam.test', type: 'shared', fullAccess: [app.servicePrincipalId] }],
        },
      },
    ],
  });
  const tls = ca.issueServer(['localhost', '127.0.0.1', 'outlook.office365.com']);
  entra = await startEntraSandbox({ directory, ca });
  dovecot = await startDovecot({ tls });
  front = await startImapFront({ directory, jwks: () => entra.jwks(), tls, dovecot });
  admin = await startSandboxAdmin({ directory, dovecot });
});

after(async () => {
  await front?.close();
  await admin?.close();
  await dovecot?.stop();
  await entra?.close();
  await https?.close();
});

async function clientCredentialsToken(): Promise<string> {
  const res = await request(`${entra.urls.global}/${tenantId}/oauth2/v2.0/token`, {
    method: 'POST',
    dispatcher: https,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: app.appId,
      client_secret: secret,
      scope: 'https://outlook.office365.com/.default',
    }).toString(),
  });
  const body = (await res.body.json()) as { access_token?: string; error_description?: string };
  assert.equal(res.statusCode, 200, body.error_description);
  return body.access_token!;
}

function imapflow(accessToken: string): ImapFlow {
  const c = new ImapFlow({
    host: '127.0.0.1',
    port: front.port,
    secure: true,
    tls: { ca: [caPem], servername: 'outlook.office365.com' },
    auth: { user: 'scans@fabrikam.test', accessToken },
    logger: false,
  });
  c.on('error', () => undefined);
  return c;
}

async function adminPost(path: string, body: unknown): Promise<void> {
  const res = await fetch(admin.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.ok(res.ok, `${path}: ${res.status} ${await res.text()}`);
}

test('an Entra client-credentials token opens the shared mailbox through the front; mail delivered over LMTP reads back unchanged', async () => {
  const raw = 'From: scanner@fabrikam.test\r\nTo: scans@fabrikam.test\r\nSubject: Scan 4711\r\n\r\n%PDF-1.4 pretend\r\n';
  await adminPost('/mailboxes/scans@fabrikam.test/messages', { raw, from: 'scanner@fabrikam.test' });
  const client = imapflow(await clientCredentialsToken());
  await client.connect();
  try {
    // XOAUTH2, because the front (like Exchange Online) does not advertise OAUTHBEARER.
    assert.equal(client.capabilities.has('AUTH=OAUTHBEARER'), false);
    assert.equal(client.capabilities.has('MOVE'), true, 'post-login capability list is the authenticated one');
    const lock = await client.getMailboxLock('INBOX');
    try {
      const msg = await client.fetchOne('*', { source: true, envelope: true });
      assert.ok(msg && msg.source);
      assert.equal(msg.envelope?.subject, 'Scan 4711');
      assert.equal(msg.source.toString('utf8'), `Return-Path: <scanner@fabrikam.test>\r\n${raw}`);
    } finally {
      lock.release();
    }
  } finally {
    await client.logout();
  }
});

test('revoking IMAP.AccessAsApp makes the next token fail with NO AUTHENTICATE failed.; removing FullAccess gives "not connected"; restoring both works', async () => {
  await adminPost('/entra/app-role-assignments/remove', { appId: app.appId, role: 'IMAP.AccessAsApp' });
  let client = imapflow(await clientCredentialsToken());
  let err = (await client.connect().then(
    () => undefined,
    (e: unknown) => e,
  )) as { response?: string } | undefined;
  assert.match(String(err?.response), /NO AUTHENTICATE failed\./);
  await adminPost('/entra/app-role-assignments', { appId: app.appId, role: 'IMAP.AccessAsApp' });

  await adminPost('/exchange/Remove-MailboxPermission', { identity: 'scans@fabrikam.test', user: app.servicePrincipalId, accessRights: 'FullAccess' });
  const token = await clientCredentialsToken();
  client = imapflow(token);
  err = (await client.connect().then(
    () => undefined,
    (e: unknown) => e,
  )) as { response?: string } | undefined;
  assert.match(String(err?.response), /User is authenticated but not connected/);
  client.close();

  await adminPost('/exchange/Add-MailboxPermission', { identity: 'scans@fabrikam.test', user: app.appId, accessRights: 'FullAccess' });
  client = imapflow(token);
  await client.connect();
  await client.logout();
});

test('IDLE through the front: imapflow is told about a new message (bounded wait, delay reported)', async () => {
  const client = imapflow(await clientCredentialsToken());
  await client.connect();
  try {
    const box = await client.mailboxOpen('INBOX');
    const before = box.exists;
    let count = before;
    client.on('exists', (ev: { count: number }) => (count = ev.count));
    const idling = client.idle();
    await new Promise((r) => setTimeout(r, 100));
    const start = Date.now();
    await adminPost('/mailboxes/scans@fabrikam.test/messages', { raw: 'Subject: next scan\r\n\r\n.\r\n' });
    while (count === before && Date.now() - start < 5000) await new Promise((r) => setTimeout(r, 10));
    const waited = Date.now() - start;
    assert.equal(count, before + 1, `EXISTS ${count === before ? 'missing' : 'seen'} after ${waited} ms (limit 5000 ms)`);
    await client.noop();
    await idling;
  } finally {
    await client.logout();
  }
});
