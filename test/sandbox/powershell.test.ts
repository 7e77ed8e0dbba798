/**
 * From a tenant without the app to mail flowing, against the whole sandbox: an admin signs in
 * (device code) with a delegated Graph token, creates the app, its enterprise application, a client
 * secret and the app role assignments through the sandbox Graph; the new app's tokens carry the
 * roles only after the propagation delay (manual clock); the Exchange lines run through
 * `mailbridge sandbox-admin powershell FILE` — first with the app registration's object ID, which
 * Exchange accepts and logins then fail on, then with the enterprise application's — and then the
 * app sends over SMTP, reads over IMAP and sends and reads over Graph. Clients are nodemailer,
 * imapflow and plain HTTPS, not mailbridge code.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { decodeJwt } from 'jose';
import nodemailer from 'nodemailer';
import { Agent, fetch } from 'undici';
import { parse, stringify } from 'yaml';
import { EXCHANGE_APP_ID, GRAPH_APP_ID } from '../../src/sandbox/entra/clouds.ts';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { runCli } from '../admin/cli/harness.ts';

const TENANT = '3c000000-0000-4000-8000-000000000001';
/** Microsoft Graph Command Line Tools: a public client an admin signs in with, consented for app management. */
const ADMIN_CLIENT = '14d82eec-204b-4c2f-b7e8-296a70dab67e';
const SCANNER = 'scanner@contoso.test';

let dir: string;
let sandbox: Sandbox;
let ca: string;
let agent: Agent;
const clock = { offsetMs: 0 };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mb-setup-flow-'));
  // Dovecot's unprivileged processes pass through this folder to the sandbox's mail.
  chmodSync(dir, 0o711);
  const file = join(dir, 'tenant.yaml');
  writeFileSync(
    file,
    stringify({
      tenants: [
        {
          id: TENANT,
          name: 'Contoso',
          domains: ['contoso.test'],
          apps: [
            {
              appId: ADMIN_CLIENT,
              objectId: '3c100000-0000-4000-8000-000000000001',
              servicePrincipalId: '3c200000-0000-4000-8000-000000000001',
              displayName: 'Microsoft Graph Command Line Tools',
              publicClient: true,
              delegatedConsent: ['Application.ReadWrite.All', 'AppRoleAssignment.ReadWrite.All', 'DelegatedPermissionGrant.ReadWrite.All'],
            },
          ],
          users: [{ objectId: '3c300000-0000-4000-8000-000000000001', upn: 'admin@contoso.test', roles: ['Global Administrator'] }],
          // SMTP AUTH is off for the scanner until Set-CASMailbox turns it on.
          exchange: { mailboxes: [{ address: SCANNER, type: 'shared', smtpClientAuthenticationDisabled: true }] },
        },
      ],
    }),
  );
  sandbox = await startSandbox({ dir: join(dir, 'state'), file, propagationMs: 2000, now: () => Date.now() + clock.offsetMs });
  ca = readFileSync(sandbox.caFile, 'utf8');
  agent = new Agent({ connect: { ca } });
});

after(async () => {
  await sandbox?.close();
  await agent?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function form(path: string, body: Record<string, string>): Promise<Record<string, string>> {
  const res = await fetch(`${sandbox.entra.urls.global}/${TENANT}/oauth2/v2.0/${path}`, { method: 'POST', body: new URLSearchParams(body), dispatcher: agent });
  const json = (await res.json()) as Record<string, string>;
  assert.equal(res.status, 200, JSON.stringify(json));
  return json;
}

async function graph(token: string, method: string, path: string, json?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${sandbox.graph.url}/v1.0${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: json === undefined ? undefined : JSON.stringify(json),
    dispatcher: agent,
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function script(lines: string[]) {
  const path = join(dir, `exchange-${Date.now()}.ps1`);
  writeFileSync(path, lines.join('\n') + '\n');
  return runCli(['sandbox-admin', '--url', sandbox.admin.url, 'powershell', path]);
}

function smtp(token: string) {
  return nodemailer.createTransport({ host: '127.0.0.1', port: sandbox.smtp.port, secure: false, requireTLS: true, tls: { ca }, auth: { type: 'OAuth2', user: SCANNER, accessToken: token } });
}

test('admin sign-in → Graph creates and consents the app → PowerShell lines → SMTP, IMAP and Graph work', async () => {
  // The admin signs in with the device code flow; the token carries the consented directory scopes.
  const code = await form('devicecode', { client_id: ADMIN_CLIENT, scope: 'https://graph.microsoft.com/Application.ReadWrite.All https://graph.microsoft.com/AppRoleAssignment.ReadWrite.All' });
  sandbox.entra.approveDeviceCode(code.user_code!, 'admin@contoso.test');
  const admin = (await form('token', { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: ADMIN_CLIENT, device_code: code.device_code! })).access_token!;
  assert.match(String(decodeJwt(admin).scp), /Application\.ReadWrite\.All/);

  // Graph: the app, its enterprise application, a secret, four application permissions with consent.
  const created = await graph(admin, 'POST', '/applications', {
    displayName: 'mailbridge',
    requiredResourceAccess: [
      { resourceAppId: EXCHANGE_APP_ID, resourceAccess: [{ id: '7146a1f0-8703-45b3-9eae-527a64c00995', type: 'Role' }, { id: '5e5addcd-3e8d-4e90-baf5-964efab2b20a', type: 'Role' }] },
    ],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const appId = String(created.body.appId);
  const registrationObjectId = String(created.body.id);
  const secret = await graph(admin, 'POST', `/applications/${registrationObjectId}/addPassword`, { passwordCredential: { displayName: 'mailbridge' } });
  assert.equal(secret.status, 200);
  const secretText = String(secret.body.secretText);
  // Without its enterprise application the app cannot sign in on its own yet.
  const early = await fetch(`${sandbox.entra.urls.global}/${TENANT}/oauth2/v2.0/token`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: appId, client_secret: secretText, scope: 'https://outlook.office365.com/.default' }),
    dispatcher: agent,
  });
  const earlyBody = (await early.json()) as { error: string; error_description: string };
  assert.equal(early.status, 401);
  assert.equal(earlyBody.error, 'invalid_client');
  assert.match(earlyBody.error_description, /^AADSTS7000229: The client application [0-9a-f-]{36} is missing service principal in the tenant/);
  const sp = await graph(admin, 'POST', '/servicePrincipals', { appId });
  assert.equal(sp.status, 201, JSON.stringify(sp.body));
  const spId = String(sp.body.id);
  for (const [resourceAppId, roles] of [
    [EXCHANGE_APP_ID, ['SMTP.SendAsApp', 'IMAP.AccessAsApp']],
    [GRAPH_APP_ID, ['Mail.Send', 'Mail.Read']],
  ] as const) {
    const resource = await graph(admin, 'GET', `/servicePrincipals(appId='${resourceAppId}')`);
    const appRoles = resource.body.appRoles as Array<{ id: string; value: string }>;
    for (const role of roles) {
      const assigned = await graph(admin, 'POST', `/servicePrincipals/${String(resource.body.id)}/appRoleAssignedTo`, {
        principalId: spId,
        resourceId: resource.body.id,
        appRoleId: appRoles.find((r) => r.value === role)!.id,
      });
      assert.equal(assigned.status, 201, JSON.stringify(assigned.body));
    }
  }

  // The new app signs in with its new secret at once; the roles come after the propagation delay.
  const appToken = async (scope: string) => (await form('token', { grant_type: 'client_credentials', client_id: appId, client_secret: secretText, scope })).access_token!;
  assert.equal(decodeJwt(await appToken('https://outlook.office365.com/.default')).roles, undefined, 'no roles while the grant propagates');
  clock.offsetMs += 2000;
  const exo = await appToken('https://outlook.office365.com/.default');
  assert.deepEqual(decodeJwt(exo).roles, ['SMTP.SendAsApp', 'IMAP.AccessAsApp']);
  assert.equal(decodeJwt(exo).oid, spId);

  // Exchange, the wrong way first: the app registration's object ID. Exchange takes it; logins fail.
  const wrong = await script([
    `Connect-ExchangeOnline -Organization ${TENANT}`,
    `New-ServicePrincipal -AppId ${appId} -ObjectId ${registrationObjectId} -DisplayName 'mailbridge'`,
    `Add-MailboxPermission -Identity ${SCANNER} -User ${registrationObjectId} -AccessRights FullAccess -InheritanceType All`,
    `Add-RecipientPermission -Identity ${SCANNER} -Trustee ${registrationObjectId} -AccessRights SendAs -Confirm:$false`,
    `Set-CASMailbox -Identity ${SCANNER} -SmtpClientAuthenticationDisabled $false`,
  ]);
  assert.equal(wrong.code, 0, wrong.stderr);
  await assert.rejects(
    smtp(exo).sendMail({ envelope: { from: SCANNER, to: [SCANNER] }, raw: `From: ${SCANNER}\r\nTo: ${SCANNER}\r\nSubject: early\r\n\r\nearly\r\n` }),
    (err: { responseCode?: number }) => err.responseCode === 535,
  );

  // The right way: the enterprise application's object ID (re-running the rest is harmless).
  const lines = [
    `Connect-ExchangeOnline -Organization ${TENANT}`,
    `New-ServicePrincipal -AppId ${appId} -ObjectId ${spId} -DisplayName 'mailbridge'`,
    `Add-MailboxPermission -Identity ${SCANNER} -User ${spId} -AccessRights FullAccess -InheritanceType All`,
    `Add-RecipientPermission -Identity ${SCANNER} -Trustee ${spId} -AccessRights SendAs -Confirm:$false`,
    `Set-CASMailbox -Identity ${SCANNER} -SmtpClientAuthenticationDisabled $false`,
  ];
  const right = await script(lines);
  assert.equal(right.code, 0, right.stderr);
  assert.match(right.stdout, /^ {3}2 {2}done {9}New-ServicePrincipal$/m);
  assert.match(right.stdout, /^ {3}5 {2}unchanged {4}Set-CASMailbox {2}The command completed successfully but no settings of 'scanner@contoso\.test' have been modified\.$/m);

  const raw = `From: ${SCANNER}\r\nTo: ${SCANNER}\r\nSubject: first relayed mail\r\nMessage-ID: <first@contoso.test>\r\n\r\nHello.\r\n`;
  const info = await smtp(exo).sendMail({ envelope: { from: SCANNER, to: [SCANNER] }, raw });
  assert.deepEqual(info.accepted, [SCANNER]);

  const imap = new ImapFlow({ host: '127.0.0.1', port: sandbox.imap.port, secure: true, tls: { ca }, auth: { user: SCANNER, accessToken: exo }, logger: false });
  await imap.connect();
  try {
    const lock = await imap.getMailboxLock('INBOX');
    try {
      const msg = await imap.fetchOne('*', { envelope: true });
      assert.equal(msg && msg.envelope?.messageId, '<first@contoso.test>');
    } finally {
      lock.release();
    }
  } finally {
    await imap.logout();
  }

  const graphToken = await appToken('https://graph.microsoft.com/.default');
  assert.deepEqual(decodeJwt(graphToken).roles, ['Mail.Send', 'Mail.Read']);
  const sent = await graph(graphToken, 'POST', `/users/${SCANNER}/sendMail`, {
    message: { subject: 'first Graph mail', body: { contentType: 'Text', content: 'Hi.' }, toRecipients: [{ emailAddress: { address: SCANNER } }] },
    saveToSentItems: false,
  });
  assert.equal(sent.status, 202, JSON.stringify(sent.body));
  const inbox = await graph(graphToken, 'GET', `/users/${SCANNER}/mailFolders/inbox`);
  assert.equal(inbox.body.totalItemCount, 2);

  // What Graph created is in sandbox.yaml, so a restarted sandbox still has it.
  const saved = parse(readFileSync(join(dir, 'state', 'sandbox.yaml'), 'utf8')) as { tenants: Array<{ apps: Array<{ appId: string; registration?: { appRoleAssignments: unknown[] } }> }> };
  assert.equal(saved.tenants[0]!.apps.find((a) => a.appId === appId)?.registration?.appRoleAssignments.length, 4);

  // Running the whole script again changes nothing and still succeeds.
  const again = await script(lines);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /exists {7}New-ServicePrincipal/);
  assert.match(again.stdout, /exists {7}Add-MailboxPermission {2}An existing permission entry was found/);
});

test('sandbox-admin powershell refuses a script outside the grammar, in the admin’s language, and changes nothing', async () => {
  const before = JSON.stringify(sandbox.directory.data);
  const path = join(dir, 'bad.ps1');
  writeFileSync(path, `Set-CASMailbox -Identity ${SCANNER} -SmtpClientAuthenticationDisabled $true\nGet-Mailbox | Set-CASMailbox -SmtpClientAuthenticationDisabled $true\n`);
  const r = await runCli(['--lang', 'de', 'sandbox-admin', '--url', sandbox.admin.url, 'powershell', path]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /PowerShellParseError/);
  assert.match(r.stderr, /Line 2: "\|": pipelines/);
  assert.equal(JSON.stringify(sandbox.directory.data), before);
  const failing = join(dir, 'failing.ps1');
  writeFileSync(failing, `Add-MailboxPermission -Identity nobody@contoso.test -User x -AccessRights FullAccess\n`);
  const f = await runCli(['--lang', 'de', 'sandbox-admin', '--url', sandbox.admin.url, 'powershell', failing]);
  assert.equal(f.code, 1, 'a failed line makes the exit status 1');
  assert.match(f.stdout, /^ {3}1 {2}FEHLER {7}Add-MailboxPermission {2}The operation couldn't be performed because object 'nobody@contoso\.test' couldn't be found\.$/m);
});
