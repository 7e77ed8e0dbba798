/**
 * End to end with real tokens: the sandbox Entra ID issues a client-credentials token for
 * https://outlook.office365.com/.default, the Exchange Online SMTP front verifies it against
 * Entra's JWKS, and nodemailer's message lands in the real Dovecot, read back with imapflow.
 * The demo tenant's setup mistakes are made and undone at run time: the app registration object ID
 * given to New-ServicePrincipal, and a missing SMTP.SendAsApp consent.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { Agent, fetch } from 'undici';
import { createSandboxCa, type SandboxCa } from '../../src/sandbox/ca.ts';
import { demoTenant } from '../../src/sandbox/demo.ts';
import { SandboxDirectory } from '../../src/sandbox/directory.ts';
import { isRunning, startDovecot, type Dovecot } from '../../src/sandbox/dovecot.ts';
import { startEntraSandbox, type EntraSandbox } from '../../src/sandbox/entra/index.ts';
import { grantFullAccess, newServicePrincipal, removeServicePrincipal } from '../../src/sandbox/exchange/ops.ts';
import { startSmtpFront, type SmtpFront } from '../../src/sandbox/exchange/smtp.ts';
import type { SandboxApp, SandboxTenant } from '../../src/sandbox/model.ts';

let ca: SandboxCa;
let directory: SandboxDirectory;
let tenant: SandboxTenant;
let app: SandboxApp;
let entra: EntraSandbox;
let dovecot: Dovecot;
let front: SmtpFront;
let http: Agent;

before(async () => {
  ca = createSandboxCa();
  directory = new SandboxDirectory(demoTenant(ca.issueSelfSigned('mailbridge app').certPem));
  tenant = directory.tenant('contoso.test')!;
  app = tenant.apps[0]!;
  entra = await startEntraSandbox({ directory, ca });
  dovecot = await startDovecot({ tls: ca.issueServer() });
  front = await startSmtpFront({ directory, jwks: entra.jwks, tls: ca.issueServer(), dovecot });
  http = new Agent({ connect: { ca: ca.certPem } });
});

after(async () => {
  await front?.close();
  await entra?.close();
  await http?.close();
  const pid = dovecot?.pid;
  await dovecot?.stop();
  if (pid) assert.equal(isRunning(pid), false);
});

/** Client credentials with the app's secret, as MSAL would send them. */
async function exchangeToken(): Promise<string> {
  const res = await fetch(`${entra.urls.global}/${tenant.id}/oauth2/v2.0/token`, {
    dispatcher: http,
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: app.appId,
      client_secret: app.secrets[0]!.value,
      scope: 'https://outlook.office365.com/.default',
    }).toString(),
  });
  const body = (await res.json()) as { access_token?: string; error?: string };
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.access_token!;
}

async function submit(user: string, accessToken: string, raw: Buffer, to: string[]) {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: front.port,
    secure: false,
    requireTLS: true,
    tls: { ca: ca.certPem },
    auth: { type: 'OAuth2', user, accessToken },
  });
  try {
    return await transport.sendMail({ envelope: { from: user, to }, raw });
  } finally {
    transport.close();
  }
}

async function lastMessage(address: string): Promise<Buffer | undefined> {
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
    const box = await client.mailboxOpen('INBOX');
    if (box.exists === 0) return undefined;
    const m = await client.fetchOne(String(box.exists), { source: true });
    return m ? m.source : undefined;
  } finally {
    await client.logout();
  }
}

function message(subject: string): Buffer {
  return Buffer.from(
    `From: Scanner <scanner@contoso.test>\r\nTo: Bob <bob@contoso.test>\r\nSubject: ${subject}\r\nMessage-ID: <${Date.now()}.${subject.length}@contoso.test>\r\n` +
      'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nScan fertig. Größe: 1 Seite.\r\n.\r\n',
  );
}

test('an Entra client-credentials token sends through the Exchange front into Dovecot, byte for byte', async () => {
  const token = await exchangeToken();
  const raw = message('scan 1');
  const info = await submit('scanner@contoso.test', token, raw, ['bob@contoso.test']);
  assert.match(info.response, /^250 2\.0\.0 OK <[^>]+> \[Hostname=[A-Z0-9]+\.DEUP281\.PROD\.OUTLOOK\.COM\]$/);
  const stored = await lastMessage('bob@contoso.test');
  assert.ok(stored?.equals(Buffer.concat([Buffer.from('Return-Path: <scanner@contoso.test>\r\n'), raw])), stored?.toString());
});

test('New-ServicePrincipal with the app registration object ID: Entra token valid, Exchange says 535 5.7.3 until fixed', async () => {
  removeServicePrincipal(directory, tenant.id, app.servicePrincipalId);
  newServicePrincipal(directory, tenant.id, { appId: app.appId, objectId: app.objectId, displayName: 'mailbridge' });
  grantFullAccess(directory, 'scanner@contoso.test', app.objectId);
  const token = await exchangeToken();
  await assert.rejects(submit('scanner@contoso.test', token, message('scan 2'), ['bob@contoso.test']), (err: { response?: string }) => {
    assert.match(err.response ?? '', /^535 5\.7\.3 Authentication unsuccessful \[/);
    return true;
  });
  removeServicePrincipal(directory, tenant.id, app.objectId);
  newServicePrincipal(directory, tenant.id, { appId: app.appId, objectId: app.servicePrincipalId, displayName: 'mailbridge' });
  grantFullAccess(directory, 'scanner@contoso.test', app.servicePrincipalId);
  const info = await submit('scanner@contoso.test', token, message('scan 3'), ['bob@contoso.test']);
  assert.match(info.response, /^250 2\.0\.0 OK /);
});

test('without admin consent for SMTP.SendAsApp the token has no role and Exchange refuses it; consent cures it', async () => {
  const granted = [...app.appRoles.exchange];
  app.appRoles.exchange = granted.filter((r) => r !== 'SMTP.SendAsApp');
  try {
    const token = await exchangeToken();
    await assert.rejects(submit('scanner@contoso.test', token, message('scan 4'), ['bob@contoso.test']), (err: { response?: string }) => {
      assert.match(err.response ?? '', /^535 5\.7\.3 Authentication unsuccessful \[/);
      return true;
    });
  } finally {
    app.appRoles.exchange = granted;
  }
  assert.match((await submit('scanner@contoso.test', await exchangeToken(), message('scan 5'), ['bob@contoso.test'])).response, /^250 /);
});
