import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createSandboxCa } from '../../src/sandbox/ca.ts';
import { SandboxDirectory } from '../../src/sandbox/directory.ts';
import { startDovecot, type Dovecot } from '../../src/sandbox/dovecot.ts';
import { startSandboxAdmin, type SandboxAdmin } from '../../src/sandbox/admin.ts';

const MAIN = new URL('../../src/admin/cli/main.ts', import.meta.url).pathname;
const app = { appId: randomUUID(), objectId: randomUUID(), servicePrincipalId: randomUUID() };
const tenantId = randomUUID();

let dir: string;
let dovecot: Dovecot;
let directory: SandboxDirectory;
let admin: SandboxAdmin;
let changes = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mb-admin-'));
  const ca = createSandboxCa();
  dovecot = await startDovecot({ tls: ca.issueServer() });
  directory = new SandboxDirectory({
    tenants: [
      {
        id: tenantId,
        domains: ['contoso.test'],
        apps: [{ ...app, appRoles: { exchange: ['IMAP.AccessAsApp'], graph: [] } }],
        exchange: {
          servicePrincipals: [{ appId: app.appId, objectId: app.servicePrincipalId }],
          mailboxes: [{ address: 'alice@contoso.test', fullAccess: [app.servicePrincipalId] }, { address: 'info@contoso.test', type: 'shared' }],
        },
      },
    ],
  });
  admin = await startSandboxAdmin({ directory, dovecot, urlFile: join(dir, '.sandbox', 'admin-url'), onChange: () => void changes++ });
});

after(async () => {
  await admin?.close();
  await dovecot?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function call(path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(admin.url + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const errorCode = (r: { body: Record<string, unknown> }) => (r.body.error as { code: string }).code;
const mailbox = (address: string) => directory.mailbox(address)!.mailbox;

function cli(args: string[], options: { cwd?: string; lang?: string; env?: NodeJS.ProcessEnv } = {}) {
  const env: NodeJS.ProcessEnv = { ...process.env, LANG: options.lang ?? 'C', ...options.env };
  for (const k of ['LC_ALL', 'LC_MESSAGES', 'MAILBRIDGE_LANG', 'MAILBRIDGE_SANDBOX_DIR']) delete env[k];
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd: options.cwd ?? dir,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return { child, done: once(child, 'exit').then(([code]) => ({ code: code as number, stdout, stderr })) };
}

test('the API listens on loopback and writes its URL for the CLI', () => {
  assert.match(admin.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(readFileSync(join(dir, '.sandbox', 'admin-url'), 'utf8').trim(), admin.url);
});

test('GET /state shows tenants, apps, service principals and mailboxes', async () => {
  const r = await call('/state');
  assert.equal(r.status, 200);
  const [t] = r.body.tenants as { id: string; apps: { appId: string }[]; servicePrincipals: { objectId: string }[]; mailboxes: { address: string }[] }[];
  assert.equal(t!.id, tenantId);
  assert.equal(t!.apps[0]!.appId, app.appId);
  assert.equal(t!.servicePrincipals[0]!.objectId, app.servicePrincipalId);
  assert.deepEqual(
    t!.mailboxes.map((m) => m.address),
    ['alice@contoso.test', 'info@contoso.test'],
  );
});

test('FullAccess and SendAs are granted and revoked in the live directory, with PowerShell-like errors', async () => {
  const before = changes;
  // The trustee may be named by app ID; it is stored as the service principal's object ID.
  let r = await call('/exchange/Add-MailboxPermission', { identity: 'INFO@contoso.test', user: app.appId, accessRights: 'FullAccess' });
  assert.equal(r.status, 200);
  assert.deepEqual(mailbox('info@contoso.test').fullAccess, [app.servicePrincipalId]);
  r = await call('/exchange/Add-MailboxPermission', { identity: 'info@contoso.test', user: app.servicePrincipalId });
  assert.equal(r.status, 200);
  assert.deepEqual(mailbox('info@contoso.test').fullAccess, [app.servicePrincipalId], 'granting twice keeps one entry');
  r = await call('/exchange/Remove-MailboxPermission', { identity: 'info@contoso.test', user: app.servicePrincipalId.toUpperCase() });
  assert.equal(r.status, 200);
  assert.deepEqual(mailbox('info@contoso.test').fullAccess, []);
  r = await call('/exchange/Remove-MailboxPermission', { identity: 'info@contoso.test', user: app.appId });
  assert.equal(r.status, 200, 'removing an absent permission is no error');
  r = await call('/exchange/Add-MailboxPermission', { identity: 'info@contoso.test', user: 'ghost@contoso.test' });
  assert.equal(r.status, 404);
  assert.match((r.body.error as { message: string }).message, /The user 'ghost@contoso\.test' wasn't found/);
  r = await call('/exchange/Add-MailboxPermission', { identity: 'nobody@contoso.test', user: app.servicePrincipalId });
  assert.equal(r.status, 404);
  assert.equal(errorCode(r), 'ManagementObjectNotFound');
  assert.match((r.body.error as { message: string }).message, /object 'nobody@contoso\.test' couldn't be found/);
  r = await call('/exchange/Add-MailboxPermission', { identity: 'info@contoso.test', user: app.servicePrincipalId, accessRights: 'ReadPermission' });
  assert.equal(r.status, 400);
  assert.equal(errorCode(r), 'InvalidArgument');

  r = await call('/exchange/Add-RecipientPermission', { identity: 'info@contoso.test', trustee: app.servicePrincipalId, accessRights: 'SendAs' });
  assert.equal(r.status, 200);
  assert.deepEqual(mailbox('info@contoso.test').sendAs, [app.servicePrincipalId]);
  r = await call('/exchange/Remove-RecipientPermission', { identity: 'info@contoso.test', trustee: app.servicePrincipalId });
  assert.equal(r.status, 200);
  assert.deepEqual(mailbox('info@contoso.test').sendAs, []);
  assert.equal(changes - before, 6, 'onChange ran after each of the 6 successful calls and after none of the refused ones');
});

test('New-ServicePrincipal registers, refuses duplicates and bad GUIDs; Remove-ServicePrincipal takes app or object ID', async () => {
  const other = { appId: randomUUID(), objectId: randomUUID() };
  let r = await call('/exchange/New-ServicePrincipal', { ...other, displayName: 'scanner' });
  assert.equal(r.status, 200);
  assert.ok(directory.data.tenants[0]!.exchange.servicePrincipals.some((sp) => sp.appId === other.appId && sp.objectId === other.objectId));
  r = await call('/exchange/New-ServicePrincipal', other);
  assert.equal(r.status, 409);
  assert.equal(errorCode(r), 'ManagementObjectAlreadyExists');
  r = await call('/exchange/New-ServicePrincipal', { appId: 'not-a-guid', objectId: other.objectId });
  assert.equal(r.status, 400);
  assert.match((r.body.error as { message: string }).message, /appId: a GUID/);
  r = await call('/exchange/Remove-ServicePrincipal', { identity: other.objectId });
  assert.equal(r.status, 200);
  assert.ok(!directory.data.tenants[0]!.exchange.servicePrincipals.some((sp) => sp.appId === other.appId));
  r = await call('/exchange/Remove-ServicePrincipal', { identity: other.appId });
  assert.equal(r.status, 404);
});

test('SMTP AUTH is switched for the tenant and per mailbox; mailboxes are added; app roles granted and revoked', async () => {
  let r = await call('/exchange/Set-TransportConfig', { tenant: 'contoso.test', smtpClientAuthenticationDisabled: true });
  assert.equal(r.status, 200);
  assert.equal(directory.data.tenants[0]!.smtpClientAuthenticationDisabled, true);
  await call('/exchange/Set-TransportConfig', { tenant: tenantId, smtpClientAuthenticationDisabled: false });
  assert.equal(directory.data.tenants[0]!.smtpClientAuthenticationDisabled, false);
  r = await call('/exchange/Set-CASMailbox', { identity: 'alice@contoso.test', smtpClientAuthenticationDisabled: true });
  assert.equal(r.status, 200);
  assert.equal(mailbox('alice@contoso.test').smtpClientAuthenticationDisabled, true);
  r = await call('/exchange/Set-CASMailbox', { identity: 'alice@contoso.test', smtpClientAuthenticationDisabled: null });
  assert.equal(r.status, 200);
  assert.equal(mailbox('alice@contoso.test').smtpClientAuthenticationDisabled, null);

  r = await call('/exchange/New-Mailbox', { address: 'scanner@contoso.test', shared: true, displayName: 'Scanner' });
  assert.equal(r.status, 201);
  assert.equal(mailbox('scanner@contoso.test').type, 'shared');
  r = await call('/exchange/New-Mailbox', { address: 'Scanner@contoso.test' });
  assert.equal(r.status, 409);
  r = await call('/exchange/New-Mailbox', { address: 'x@elsewhere.test' });
  assert.equal(r.status, 404);
  assert.match((r.body.error as { message: string }).message, /No tenant in the sandbox has the domain/);

  r = await call('/entra/app-role-assignments', { appId: app.appId, role: 'SMTP.SendAsApp' });
  assert.equal(r.status, 200);
  assert.deepEqual(directory.data.tenants[0]!.apps[0]!.appRoles.exchange, ['IMAP.AccessAsApp', 'SMTP.SendAsApp']);
  r = await call('/entra/app-role-assignments/remove', { appId: app.appId, role: 'IMAP.AccessAsApp' });
  assert.equal(r.status, 200);
  assert.deepEqual(directory.data.tenants[0]!.apps[0]!.appRoles.exchange, ['SMTP.SendAsApp']);
  r = await call('/entra/app-role-assignments', { appId: app.appId, role: 'Mail.Fly' });
  assert.equal(r.status, 400);
  assert.equal(errorCode(r), 'MB_SANDBOX_UNKNOWN_ROLE');
  const explain = (r.body.error as { explain: { en: { cause: string }; de: { cause: string } } }).explain;
  assert.ok(explain.en.cause && explain.de.cause && explain.en.cause !== explain.de.cause, 'cause in English and German');
  r = await call('/entra/app-role-assignments', { appId: app.appId, role: 'Mail.Read', resource: 'graph' });
  assert.equal(r.status, 200);
  assert.deepEqual(directory.data.tenants[0]!.apps[0]!.appRoles.graph, ['Mail.Read']);
  await call('/entra/app-role-assignments', { appId: app.appId, role: 'IMAP.AccessAsApp' });
});

test('a delivered message lands in the real Dovecot mailbox, is listed, and reads back byte for byte', async () => {
  const raw = 'From: Bob <bob@contoso.test>\r\nTo: alice@contoso.test\r\nSubject: Rechnung März\r\nMessage-ID: <admin-1@contoso.test>\r\n\r\nLine one\r\n.leading dot\r\n\r\n';
  let r = await call('/mailboxes/alice@contoso.test/messages', { raw, from: 'bob@contoso.test' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  r = await call('/mailboxes/alice@contoso.test/messages');
  assert.equal(r.status, 200);
  const messages = r.body.messages as { uid: number; flags: string[]; subject: string }[];
  assert.equal(messages.length, 1);
  assert.equal(messages[0]!.subject, 'Rechnung März');
  assert.deepEqual(messages[0]!.flags, []);
  const res = await fetch(`${admin.url}/mailboxes/alice@contoso.test/messages/${messages[0]!.uid}`);
  assert.equal(res.headers.get('content-type'), 'message/rfc822');
  const source = Buffer.from(await res.arrayBuffer()).toString('utf8');
  // LMTP always puts Return-Path first; everything after it is the message as delivered.
  assert.equal(source, `Return-Path: <bob@contoso.test>\r\n${raw}`);
  r = await call('/mailboxes/info@contoso.test/messages');
  assert.deepEqual(r.body.messages, []);
  r = await call('/mailboxes/nobody@contoso.test/messages', { raw });
  assert.equal(r.status, 404);
  const missing = await fetch(`${admin.url}/mailboxes/alice@contoso.test/messages/999`);
  assert.equal(missing.status, 404);
});

test('mailbridge sandbox-admin drives the API (URL from .sandbox/admin-url), prints the PowerShell line, and reports refusals', async () => {
  let r = await cli(['sandbox-admin', 'grant-send-as', 'info@contoso.test', app.servicePrincipalId]).done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), `Done: Add-RecipientPermission -Identity "info@contoso.test" -Trustee ${app.servicePrincipalId} -AccessRights SendAs`);
  assert.deepEqual(mailbox('info@contoso.test').sendAs, [app.servicePrincipalId]);

  r = await cli(['sandbox-admin', '--url', admin.url, 'state']).done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /mailbox info@contoso\.test \(shared\)/);

  r = await cli(['--lang', 'de', 'sandbox-admin', 'grant-full-access', 'nobody@contoso.test', app.servicePrincipalId]).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^MB_SANDBOX_ADMIN_REFUSED: Die Sandbox hat die Änderung abgelehnt/);
  assert.match(r.stderr, /Ursache: grant-full-access: ManagementObjectNotFound/);
  assert.match(r.stderr, /Behebung: /);

  r = await cli(['--lang', 'de', 'sandbox-admin', 'grant-role', app.appId, 'Mail.Fly']).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Ursache: grant-role: MB_SANDBOX_UNKNOWN_ROLE: .*hat keine Anwendungsberechtigung „Mail\.Fly“/);

  const msg = join(dir, 'msg.eml');
  writeFileSync(msg, 'Subject: via CLI\r\n\r\nhello\r\n');
  r = await cli(['sandbox-admin', 'deliver', 'info@contoso.test', msg]).done;
  assert.equal(r.code, 0, r.stderr);
  const stdin = cli(['sandbox-admin', 'deliver', 'info@contoso.test', '-']);
  stdin.child.stdin.end('Subject: via stdin\r\n\r\nhello\r\n');
  assert.equal((await stdin.done).code, 0);
  r = await cli(['sandbox-admin', 'list', 'info@contoso.test']).done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\s+1\s+-\s+via CLI$/m);
  assert.match(r.stdout, /^\s+2\s+-\s+via stdin$/m);
  r = await cli(['sandbox-admin', 'show-message', 'info@contoso.test', '1']).done;
  assert.match(r.stdout, /Subject: via CLI/);

  r = await cli(['sandbox-admin', 'smtp-auth-mailbox', 'alice@contoso.test', 'maybe']).done;
  assert.equal(r.code, 2);
  assert.match(r.stderr, /MB_CLI_USAGE/);
});

test('without --url, --dir, .sandbox/admin-url or a running sandbox the CLI says where it looked and how to start one; an unreachable URL is reported', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'mb-admin-cwd-'));
  try {
    let r = await cli(['sandbox-admin', 'state'], { cwd: empty, env: { XDG_STATE_HOME: join(empty, 'state') } }).done;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^MB_SANDBOX_ADMIN_NOT_FOUND: .*\n {2}Cause: .*\.sandbox\/admin-url/);
    assert.match(r.stderr, /mailbridge sandbox --dir/);
    assert.ok(!existsSync(join(empty, '.sandbox')));
    r = await cli(['sandbox-admin', '--url', 'http://127.0.0.1:9', 'state'], { cwd: empty }).done;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^MB_SANDBOX_ADMIN_UNREACHABLE: .*\n {2}Cause: The sandbox admin API at http:\/\/127.0.0.1:9 does not answer/);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('sandbox-admin help exists in English and German', async () => {
  const en = await cli(['sandbox-admin', '--help']).done;
  assert.match(en.stdout, /Usage: mailbridge sandbox-admin <operation>/);
  assert.match(en.stdout, /New-ServicePrincipal/);
  const de = await cli(['sandbox-admin', '--help'], { lang: 'de_DE.UTF-8' }).done;
  assert.match(de.stdout, /Aufruf: mailbridge sandbox-admin <vorgang>/);
  const overview = await cli(['--help']).done;
  assert.match(overview.stdout, /sandbox-admin/);
});
