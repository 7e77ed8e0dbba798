/**
 * `mailbridge check` against the sandbox tenant, as an admin runs it: each of the six broken
 * prerequisites (missing role, missing Exchange service principal, wrong object ID in
 * New-ServicePrincipal, missing FullAccess, missing Send-As, SMTP AUTH disabled for the mailbox) is
 * named individually with its fix, in English and German; an app role granted through Graph a
 * moment ago is pending, not failed; without Exchange.ManageAsApp a refused login is reported with
 * all three causes Exchange's answer allows, and Send-As as unverified.
 *
 * The configuration is the sandbox's example with a relay route that sends as alice@ (FullAccess,
 * SMTP AUTH) and may send as info@ (Send-As); the connector fetches scanner@ over IMAP.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch, type RequestInit } from 'undici';
import { parse, stringify } from 'yaml';
import { catalogue } from '../../src/errors/catalogue.ts';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import type { SandboxApp } from '../../src/sandbox/model.ts';
import { runCli } from '../admin/cli/harness.ts';
import { freePort } from '../support/ports.ts';

interface Row {
  connection: string;
  check: string;
  subject: string;
  status: string;
  code?: string;
  title?: string;
  cause?: string;
  fix?: string;
}

let dir: string;
let sandbox: Sandbox;
let config: string;
let app: SandboxApp;
const ALICE = 'alice@contoso.test';
const INFO = 'info@contoso.test';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mb-check-'));
  // Long enough that a grant made during the test stays "just now".
  sandbox = await startSandbox({ dir, propagationMs: 20 * 60_000, proxy: true });
  app = sandbox.directory.data.tenants[0]!.apps[0]!;
  // Admin consent given long ago: check reads Exchange (Exchange.ManageAsApp) and grant dates (Application.Read.All).
  app.appRoles.exchange.push('Exchange.ManageAsApp');
  app.appRoles.graph.push('Application.Read.All');
  const doc = parse(readFileSync(sandbox.configFile, 'utf8')) as { relay: { routes: Array<Record<string, unknown>>; networks: Record<string, { allowedSenders: string[] }> } };
  doc.relay.routes[0] = { ...doc.relay.routes[0], mailbox: ALICE, sendAs: [INFO] };
  doc.relay.networks['this-machine']!.allowedSenders = [ALICE, INFO];
  config = join(dir, 'check.yaml');
  writeFileSync(config, stringify(doc), { mode: 0o600 });
});

after(async () => {
  await sandbox?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** HTTPS to the sandbox's Graph, trusting its CA. */
function fetchSandbox(url: string, init: RequestInit) {
  return undiciFetch(url, { ...init, dispatcher: new Agent({ connect: { ca: readFileSync(sandbox.caFile, 'utf8') } }) });
}

async function admin(path: string, body: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${sandbox.admin.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.ok(res.status < 300, `${path}: ${res.status} ${await res.text()}`);
}

async function check(lang: 'en' | 'de' = 'en', target?: string, file = config): Promise<{ code: number; rows: Row[] }> {
  const r = await runCli(['--config', file, '--lang', lang, 'check', '--json', ...(target ? [target] : [])], { cwd: dir });
  assert.ok(r.stdout.trim().startsWith('{'), `${r.code} ${r.stdout} ${r.stderr}`);
  const parsed = JSON.parse(r.stdout) as { ok: boolean; results: Row[] };
  assert.equal(parsed.ok, r.code === 0);
  return { code: r.code, rows: parsed.results };
}

const notOk = (rows: Row[]) => rows.filter((r) => r.status !== 'ok').map((r) => `${r.status} ${r.check} ${r.subject} ${r.code ?? ''}`.trim());

/**
 * Breaks one prerequisite and checks, in both languages, that it is named with its code and fix;
 * `others` are the other lines that must fail with it (the logins that fail because of it, and
 * what Exchange takes away with a removed service principal). Then repairs it.
 */
async function broken(o: {
  breakIt: () => Promise<void>;
  repair: () => Promise<void>;
  check: string;
  subject: string;
  code: keyof typeof catalogue;
  fix: RegExp;
  others?: string[];
}): Promise<void> {
  await o.breakIt();
  try {
    const en = await check('en');
    assert.equal(en.code, 1);
    assert.deepEqual(notOk(en.rows).sort(), [`failed ${o.check} ${o.subject} ${o.code}`, ...(o.others ?? [])].sort());
    const row = en.rows.find((r) => r.check === o.check && r.subject === o.subject)!;
    const title = (lang: 'en' | 'de') => catalogue[o.code].title[lang].replace(/\{mailbox\}|\{permission\}/g, o.subject);
    assert.equal(row.title, title('en'));
    assert.match(row.fix!, o.fix);
    const de = await check('de');
    assert.equal(de.code, 1);
    const deRow = de.rows.find((r) => r.check === o.check && r.subject === o.subject)!;
    assert.equal(deRow.code, o.code);
    assert.equal(deRow.title, title('de'));
    assert.match(deRow.fix!, o.fix, 'the German fix carries the same line');
    assert.notEqual(deRow.cause, row.cause);
  } finally {
    await o.repair();
  }
}

test('a tenant set up completely: every check passes, exit 0', { timeout: 120_000 }, async () => {
  const { code, rows } = await check();
  assert.deepEqual(notOk(rows), []);
  assert.equal(code, 0);
  const names = rows.map((r) => `${r.check} ${r.subject}`);
  for (const n of ['permission SMTP.SendAsApp', 'permission IMAP.AccessAsApp', `exchange-service-principal ${app.appId}`, `full-access ${ALICE}`, `full-access scanner@contoso.test`, `send-as ${INFO}`, `smtp-auth ${ALICE}`, `login SMTP ${ALICE}`, 'login IMAP scanner@contoso.test']) {
    assert.ok(names.includes(n), `${n} is checked: ${names.join(' | ')}`);
  }
});

test('1. a missing role (SMTP.SendAsApp) is named with the portal path', { timeout: 120_000 }, async () => {
  await broken({
    breakIt: () => admin('/entra/app-role-assignments/remove', { appId: app.appId, role: 'SMTP.SendAsApp' }),
    repair: () => admin('/entra/app-role-assignments', { appId: app.appId, role: 'SMTP.SendAsApp' }),
    check: 'permission',
    subject: 'SMTP.SendAsApp',
    code: 'MB_CHECK_PERMISSION_MISSING',
    fix: /Office 365 Exchange Online › (Application permissions|Anwendungsberechtigungen) › SMTP\.SendAsApp/,
    others: [`failed login SMTP ${ALICE} MB_CHECK_EXO_TOKEN_REFUSED`],
  });
});

test('2. a missing Exchange service principal is named with New-ServicePrincipal and the enterprise application\'s object ID', { timeout: 120_000 }, async () => {
  await broken({
    breakIt: () => admin('/exchange/Remove-ServicePrincipal', { identity: app.appId }),
    repair: async () => {
      await admin('/exchange/New-ServicePrincipal', { appId: app.appId, objectId: app.servicePrincipalId, displayName: 'mailbridge' });
      for (const m of [ALICE, INFO, 'scanner@contoso.test', 'bob@contoso.test']) await admin('/exchange/Add-MailboxPermission', { identity: m, user: app.servicePrincipalId });
      for (const m of [ALICE, INFO, 'scanner@contoso.test', 'bob@contoso.test']) await admin('/exchange/Add-RecipientPermission', { identity: m, trustee: app.servicePrincipalId });
    },
    check: 'exchange-service-principal',
    subject: app.appId,
    code: 'MB_CHECK_EXO_NO_SERVICE_PRINCIPAL',
    fix: new RegExp(`New-ServicePrincipal -AppId ${app.appId} -ObjectId ${app.servicePrincipalId}`),
    others: [`failed login SMTP ${ALICE} MB_CHECK_EXO_NO_SERVICE_PRINCIPAL`, `failed login IMAP scanner@contoso.test MB_CHECK_EXO_NO_SERVICE_PRINCIPAL`, `failed send-as ${INFO} MB_CHECK_EXO_NO_SEND_AS`],
  });
});

test('3. New-ServicePrincipal with the app registration\'s object ID is named, with the right object ID in the fix', { timeout: 120_000 }, async () => {
  await broken({
    breakIt: async () => {
      await admin('/exchange/Remove-ServicePrincipal', { identity: app.appId });
      await admin('/exchange/New-ServicePrincipal', { appId: app.appId, objectId: app.objectId, displayName: 'mailbridge' });
      for (const m of [ALICE, 'scanner@contoso.test']) await admin('/exchange/Add-MailboxPermission', { identity: m, user: app.objectId });
      await admin('/exchange/Add-RecipientPermission', { identity: INFO, trustee: app.objectId });
    },
    repair: async () => {
      await admin('/exchange/Remove-ServicePrincipal', { identity: app.objectId });
      await admin('/exchange/New-ServicePrincipal', { appId: app.appId, objectId: app.servicePrincipalId, displayName: 'mailbridge' });
      for (const m of [ALICE, INFO, 'scanner@contoso.test', 'bob@contoso.test']) await admin('/exchange/Add-MailboxPermission', { identity: m, user: app.servicePrincipalId });
      for (const m of [ALICE, INFO, 'scanner@contoso.test', 'bob@contoso.test']) await admin('/exchange/Add-RecipientPermission', { identity: m, trustee: app.servicePrincipalId });
    },
    check: 'exchange-service-principal',
    subject: app.appId,
    code: 'MB_CHECK_EXO_SP_WRONG_OBJECT_ID',
    fix: new RegExp(`Remove-ServicePrincipal -Identity ${app.objectId} -Confirm:\\$false; New-ServicePrincipal -AppId ${app.appId} -ObjectId ${app.servicePrincipalId}`),
    others: [`failed login SMTP ${ALICE} MB_CHECK_EXO_SP_WRONG_OBJECT_ID`, `failed login IMAP scanner@contoso.test MB_CHECK_EXO_SP_WRONG_OBJECT_ID`, `failed send-as ${INFO} MB_CHECK_EXO_NO_SEND_AS`],
  });
});

test('4. missing FullAccess on the sending mailbox is named with Add-MailboxPermission', { timeout: 120_000 }, async () => {
  await broken({
    breakIt: () => admin('/exchange/Remove-MailboxPermission', { identity: ALICE, user: app.servicePrincipalId }),
    repair: () => admin('/exchange/Add-MailboxPermission', { identity: ALICE, user: app.servicePrincipalId }),
    check: 'full-access',
    subject: ALICE,
    code: 'MB_CHECK_EXO_NO_FULL_ACCESS',
    fix: new RegExp(`Add-MailboxPermission -Identity ${ALICE} -User ${app.servicePrincipalId} -AccessRights FullAccess`),
    others: [`failed login SMTP ${ALICE} MB_CHECK_EXO_NO_FULL_ACCESS`],
  });
});

test('5. missing Send-As is named with Add-RecipientPermission (no login shows it)', { timeout: 120_000 }, async () => {
  await broken({
    breakIt: () => admin('/exchange/Remove-RecipientPermission', { identity: INFO, trustee: app.servicePrincipalId }),
    repair: () => admin('/exchange/Add-RecipientPermission', { identity: INFO, trustee: app.servicePrincipalId }),
    check: 'send-as',
    subject: INFO,
    code: 'MB_CHECK_EXO_NO_SEND_AS',
    fix: new RegExp(`Add-RecipientPermission -Identity ${INFO} -Trustee ${app.servicePrincipalId} -AccessRights SendAs`),
  });
});

test('6. SMTP AUTH disabled for the mailbox is named with Set-CASMailbox', { timeout: 120_000 }, async () => {
  await broken({
    breakIt: () => admin('/exchange/Set-CASMailbox', { identity: ALICE, smtpClientAuthenticationDisabled: true }),
    repair: () => admin('/exchange/Set-CASMailbox', { identity: ALICE, smtpClientAuthenticationDisabled: null }),
    check: 'smtp-auth',
    subject: ALICE,
    code: 'MB_RELAY_SMTP_AUTH_DISABLED_MAILBOX',
    fix: new RegExp(`Set-CASMailbox -Identity ${ALICE} -SmtpClientAuthenticationDisabled \\$false`),
    others: [`failed login SMTP ${ALICE} MB_RELAY_SMTP_AUTH_DISABLED_MAILBOX`],
  });
});

test('SMTP AUTH disabled for the organization (the mailbox following it) is named with Set-TransportConfig and the per-mailbox alternative', { timeout: 120_000 }, async () => {
  const tenant = sandbox.directory.data.tenants[0]!.id;
  await broken({
    breakIt: () => admin('/exchange/Set-TransportConfig', { tenant, smtpClientAuthenticationDisabled: true }),
    repair: () => admin('/exchange/Set-TransportConfig', { tenant, smtpClientAuthenticationDisabled: false }),
    check: 'smtp-auth',
    subject: ALICE,
    code: 'MB_RELAY_SMTP_AUTH_DISABLED_TENANT',
    fix: new RegExp(`Set-CASMailbox -Identity ${ALICE} -SmtpClientAuthenticationDisabled \\$false.*Set-TransportConfig -SmtpClientAuthenticationDisabled \\$false`),
    others: [`failed login SMTP ${ALICE} MB_RELAY_SMTP_AUTH_DISABLED_TENANT`],
  });
});

test('a role granted through Graph a moment ago (sandbox propagation delay) is pending, not failed', { timeout: 120_000 }, async () => {
  await admin('/entra/app-role-assignments/remove', { appId: app.appId, role: 'SMTP.SendAsApp' });
  app.appRoles.graph.push('AppRoleAssignment.ReadWrite.All');
  try {
    // Admin consent the way `mailbridge setup` gives it: an app role assignment on Exchange Online's service principal.
    const token = await sandbox.appToken('https://graph.microsoft.com/.default');
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const graph = (path: string, init: RequestInit = {}) => fetchSandbox(`${sandbox.graph.url}/v1.0${path}`, { ...init, headers });
    const exo = (await (await graph(`/servicePrincipals(appId='00000002-0000-0ff1-ce00-000000000000')`)).json()) as { id: string };
    const granted = await graph(`/servicePrincipals/${exo.id}/appRoleAssignedTo`, {
      method: 'POST',
      body: JSON.stringify({ principalId: app.servicePrincipalId, resourceId: exo.id, appRoleId: '7146a1f0-8703-45b3-9eae-527a64c00995' }),
    });
    assert.equal(granted.status, 201, await granted.text());

    for (const lang of ['en', 'de'] as const) {
      const { code, rows } = await check(lang);
      assert.equal(code, 1, 'pending is not passing');
      assert.deepEqual(notOk(rows).sort(), [`failed login SMTP ${ALICE} MB_CHECK_EXO_TOKEN_REFUSED`, 'pending permission SMTP.SendAsApp MB_CHECK_PERMISSION_PENDING'].sort());
      const row = rows.find((r) => r.check === 'permission' && r.subject === 'SMTP.SendAsApp')!;
      assert.match(row.cause!, lang === 'en' ? /granted at \d\d:\d\d UTC, 0 min ago/ : /erteilt, vor 0 Min\./);
    }
  } finally {
    app.appRoles.graph = app.appRoles.graph.filter((r) => r !== 'AppRoleAssignment.ReadWrite.All');
    await admin('/entra/app-role-assignments', { appId: app.appId, role: 'SMTP.SendAsApp' });
  }
});

test('without Exchange.ManageAsApp: a wrong object ID shows as a refused login naming all three causes Exchange does not tell apart; Send-As unverified; SMTP AUTH still named from the login', { timeout: 120_000 }, async () => {
  await admin('/entra/app-role-assignments/remove', { appId: app.appId, role: 'Exchange.ManageAsApp' });
  try {
    await admin('/exchange/Remove-ServicePrincipal', { identity: app.appId });
    await admin('/exchange/New-ServicePrincipal', { appId: app.appId, objectId: app.objectId, displayName: 'mailbridge' });
    const { code, rows } = await check('en');
    assert.equal(code, 1);
    assert.deepEqual(
      notOk(rows).sort(),
      [
        `failed login SMTP ${ALICE} MB_CHECK_EXO_LOGIN_REFUSED`,
        'failed login IMAP scanner@contoso.test MB_CHECK_EXO_LOGIN_REFUSED',
        `unverified exchange-service-principal ${app.appId} MB_CHECK_EXO_UNVERIFIED`,
        `unverified full-access ${ALICE} MB_CHECK_EXO_UNVERIFIED`,
        'unverified full-access scanner@contoso.test MB_CHECK_EXO_UNVERIFIED',
        `unverified send-as ${INFO} MB_CHECK_EXO_UNVERIFIED`,
      ].sort(),
    );
    const login = rows.find((r) => r.check === 'login' && r.subject === `SMTP ${ALICE}`)!;
    assert.match(login.cause!, /same answer for all three and does not say which/);
    assert.match(login.fix!, new RegExp(`New-ServicePrincipal -AppId ${app.appId} -ObjectId ${app.servicePrincipalId}`));

    await admin('/exchange/Remove-ServicePrincipal', { identity: app.objectId });
    await admin('/exchange/New-ServicePrincipal', { appId: app.appId, objectId: app.servicePrincipalId, displayName: 'mailbridge' });
    for (const m of [ALICE, INFO, 'scanner@contoso.test', 'bob@contoso.test']) await admin('/exchange/Add-MailboxPermission', { identity: m, user: app.servicePrincipalId });
    for (const m of [ALICE, INFO, 'scanner@contoso.test', 'bob@contoso.test']) await admin('/exchange/Add-RecipientPermission', { identity: m, trustee: app.servicePrincipalId });
    await admin('/exchange/Set-CASMailbox', { identity: ALICE, smtpClientAuthenticationDisabled: true });
    const off = await check('de');
    assert.deepEqual(
      notOk(off.rows).sort(),
      [
        `failed login SMTP ${ALICE} MB_RELAY_SMTP_AUTH_DISABLED_MAILBOX`,
        `failed smtp-auth ${ALICE} MB_RELAY_SMTP_AUTH_DISABLED_MAILBOX`,
        // Exchange refuses the login before it looks at FullAccess, so that stays open.
        `unverified full-access ${ALICE} MB_CHECK_EXO_UNVERIFIED`,
        `unverified send-as ${INFO} MB_CHECK_EXO_UNVERIFIED`,
      ].sort(),
    );
    assert.equal(off.rows.find((r) => r.check === 'smtp-auth')!.title, 'SMTP AUTH ist für das Postfach abgeschaltet (5.7.139)');
  } finally {
    await admin('/exchange/Set-CASMailbox', { identity: ALICE, smtpClientAuthenticationDisabled: null });
    await admin('/entra/app-role-assignments', { appId: app.appId, role: 'Exchange.ManageAsApp' });
  }
});

test("a cmdlet Exchange refuses leaves the line unverified with Exchange's status and words, in the admin's language", { timeout: 120_000 }, async () => {
  // A fetched mailbox the tenant does not have: Get-MailboxPermission answers 400 ManagementObjectNotFound.
  const ghost = variant('ghost', (d) => {
    (d.connectors!['sandbox-scans'] as { mailboxes: string[] }).mailboxes = ['ghost@contoso.test'];
  });
  const { rows } = await check('de', 'sandbox-scans', ghost);
  const line = rows.find((r) => r.check === 'full-access' && r.subject === 'ghost@contoso.test');
  assert.equal(`${line?.status} ${line?.code}`, 'unverified MB_CHECK_EXO_UNVERIFIED', JSON.stringify(rows));
  assert.match(line!.cause!, /Die Admin-API von Exchange Online hat Get-MailboxPermission mit HTTP 400 beantwortet: .*'ghost@contoso\.test' couldn't be found/);
});

/** Words of the English labels that requirements and check name things with; none may reach a German admin. */
const ENGLISH_LABELS = /relay route|\bconnector\b|watch group|\bmailbox\b|\bpermission\b|needed by|\bcertificate\b|\bsecret\b|public client|\blistener\b/i;

test('in German, check names routes, connectors, watch groups, mailboxes and permissions in German only', { timeout: 120_000 }, async () => {
  // Broken so that every kind of use is named: a role (relay route), FullAccess (connector), Send-As.
  await admin('/entra/app-role-assignments/remove', { appId: app.appId, role: 'SMTP.SendAsApp' });
  await admin('/exchange/Remove-MailboxPermission', { identity: 'scanner@contoso.test', user: app.servicePrincipalId });
  await admin('/exchange/Remove-RecipientPermission', { identity: INFO, trustee: app.servicePrincipalId });
  try {
    const de = await runCli(['--config', config, '--lang', 'de', 'check'], { cwd: dir });
    assert.equal(de.code, 1, de.stdout);
    assert.match(de.stdout, /Relay-Route /, de.stdout);
    assert.match(de.stdout, /Konnektor /, de.stdout);
    const english = de.stdout.split('\n').filter((l) => ENGLISH_LABELS.test(l));
    assert.deepEqual(english, [], de.stdout);
    // The same run in English still names them in English.
    const en = await runCli(['--config', config, '--lang', 'en', 'check'], { cwd: dir });
    assert.match(en.stdout, /relay route /);
    assert.match(en.stdout, /connector /);
  } finally {
    await admin('/entra/app-role-assignments', { appId: app.appId, role: 'SMTP.SendAsApp' });
    await admin('/exchange/Add-MailboxPermission', { identity: 'scanner@contoso.test', user: app.servicePrincipalId });
    await admin('/exchange/Add-RecipientPermission', { identity: INFO, trustee: app.servicePrincipalId });
  }
});

test('exit status: UNVERIFIED lines alone exit 0 (Exchange.ManageAsApp is not mailbridge\'s to need), --strict makes them exit 1, in both languages', { timeout: 120_000 }, async () => {
  await admin('/entra/app-role-assignments/remove', { appId: app.appId, role: 'Exchange.ManageAsApp' });
  try {
    const plain = await check('en');
    assert.ok(plain.rows.some((r) => r.status === 'unverified'), 'some lines cannot be verified without Exchange.ManageAsApp');
    assert.deepEqual(plain.rows.filter((r) => r.status === 'failed' || r.status === 'pending'), []);
    assert.equal(plain.code, 0);
    for (const lang of ['en', 'de'] as const) {
      const strict = await runCli(['--config', config, '--lang', lang, 'check', '--strict'], { cwd: dir });
      assert.equal(strict.code, 1, strict.stdout);
      assert.match(strict.stdout, lang === 'en' ? /--strict asks for every line to be proven/ : /--strict verlangt jede Zeile belegt/);
      const json = await runCli(['--config', config, '--lang', lang, 'check', '--json', '--strict'], { cwd: dir });
      assert.equal(json.code, 1);
      assert.equal((JSON.parse(json.stdout) as { ok: boolean }).ok, false);
    }
    const help = await runCli(['--lang', 'de', 'check', '--help'], { cwd: dir });
    assert.match(help.stdout, /Mit --strict gilt UNGEPRÜFT als nicht\s+bestanden/);
  } finally {
    await admin('/entra/app-role-assignments', { appId: app.appId, role: 'Exchange.ManageAsApp' });
  }
});

/** A copy of the test configuration with changes, in the same folder (same key file). */
function variant(name: string, change: (doc: Record<string, Record<string, unknown>>) => void): string {
  const doc = parse(readFileSync(config, 'utf8')) as Record<string, Record<string, unknown>>;
  change(doc);
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(doc), { mode: 0o600 });
  return file;
}

test('DNS and TLS reach, logins and Exchange reads go through server.proxy; a proxy that refuses is named with the host', { timeout: 120_000 }, async () => {
  const proxied = variant('proxied', (d) => {
    d.server!.proxy = sandbox.proxy!.url;
  });
  const before = { ...sandbox.proxy!.tunnels() };
  const { code, rows } = await check('en', undefined, proxied);
  assert.deepEqual(notOk(rows), []);
  assert.equal(code, 0);
  const grew = (hostPort: string) => (sandbox.proxy!.tunnels()[hostPort] ?? 0) > (before[hostPort] ?? 0);
  const hostPort = (url: string) => new URL(url).host;
  assert.ok(grew(hostPort(sandbox.entra.urls.global)), 'login host through the proxy');
  assert.ok(grew(hostPort(sandbox.graph.url)), 'Graph (and the Exchange admin API on the sandbox Graph port) through the proxy');
  assert.ok(grew(`127.0.0.1:${sandbox.smtp.port}`), 'the SMTP login through the proxy');
  assert.ok(grew(`127.0.0.1:${sandbox.imap.port}`), 'the IMAP login through the proxy');

  const refused = variant('refused', (d) => {
    d.server!.proxy = 'http://127.0.0.1:9';
  });
  const r = await check('en', 'sandbox-cert', refused);
  assert.equal(r.code, 1);
  const reach = r.rows.find((x) => x.check === 'reach')!;
  assert.equal(reach.status, 'failed');
  assert.equal(reach.code, 'MB_CHECK_HOST_UNREACHABLE');
  assert.match(reach.cause!, new RegExp(`${hostPort(sandbox.entra.urls.global).replace('.', '\\.')}.*Entra ID; proxy: http://127\\.0\\.0\\.1:9`));
});

test('the Graph validation handshake: answered on notify.watch.listen when the gateway is not running; a public URL that does not lead there fails with the fix', { timeout: 120_000 }, async () => {
  const good = await check('en', 'sandbox');
  const row = good.rows.find((r) => r.check === 'public-url')!;
  assert.equal(row.status, 'ok');
  assert.equal(row.subject, `https://127.0.0.1:${sandbox.ports.notify}/notify/graph/sandbox/sandbox`);

  const elsewhere = variant('elsewhere', (d) => {
    const notify = d.notify as { watch: { publicUrl: string } };
    notify.watch.publicUrl = 'https://127.0.0.1:9';
  });
  const bad = await check('de', 'sandbox', elsewhere);
  assert.equal(bad.code, 1);
  const failed = bad.rows.find((r) => r.check === 'public-url')!;
  assert.equal(failed.status, 'failed');
  assert.equal(failed.code, 'MB_CHECK_PUBLIC_URL_FAILED');
  assert.match(failed.fix!, /curl -X POST "https:\/\/127\.0\.0\.1:9\/notify\/graph\/sandbox\/sandbox\?validationToken=test"/);
  assert.match(failed.cause!, /Bestätigungs-Handshake/);
  assert.match(failed.cause!, /für Überwachungsgruppe sandbox gescheitert/);
  assert.match(failed.fix!, /notify\.watch\.publicUrl aus dem Internet notify\.watch\.listen/);
});

test('a Graph connector woken by change notifications: its source.notifications.publicUrl gets the same handshake, answered on its own listener; a URL that does not lead there names the connector\'s settings', { timeout: 120_000 }, async () => {
  const port = await freePort();
  const withConnector = (name: string, publicUrl: string) =>
    variant(name, (d) => {
      const watch = (d.notify as { watch: { listen: { certFile: string; keyFile: string }; groups: { sandbox: { graph: { baseUrl: string } } } } }).watch;
      (d.connectors as Record<string, unknown>).invoices = {
        connection: 'sandbox',
        mailboxes: [INFO],
        source: { kind: 'graph', baseUrl: watch.groups.sandbox.graph.baseUrl, notifications: { publicUrl, listen: { host: '127.0.0.1', port, certFile: watch.listen.certFile, keyFile: watch.listen.keyFile } } },
        destination: { kind: 'maildir', path: join(dir, 'invoices') },
      };
    });
  const good = await check('en', 'invoices', withConnector('invoices', `https://127.0.0.1:${port}/`));
  const row = good.rows.find((r) => r.check === 'public-url');
  assert.deepEqual(row && { status: row.status, subject: row.subject }, { status: 'ok', subject: `https://127.0.0.1:${port}/notify/connector/invoices` }, JSON.stringify(good.rows));

  const bad = await check('de', 'invoices', withConnector('invoices-elsewhere', 'https://127.0.0.1:9'));
  assert.equal(bad.code, 1);
  const failed = bad.rows.find((r) => r.check === 'public-url')!;
  assert.equal(failed.status, 'failed');
  assert.equal(failed.code, 'MB_CHECK_PUBLIC_URL_FAILED');
  assert.match(failed.cause!, /für Konnektor invoices gescheitert/);
  assert.match(failed.fix!, new RegExp(`connectors\\.invoices\\.source\\.notifications\\.publicUrl aus dem Internet connectors\\.invoices\\.source\\.notifications\\.listen \\(127\\.0\\.0\\.1:${port}\\)`));
  assert.match(failed.fix!, /curl -X POST "https:\/\/127\.0\.0\.1:9\/notify\/connector\/invoices\?validationToken=test"/);
});

test('check names a route, a connector or a group; anything else is MB_CHECK_UNKNOWN_TARGET', { timeout: 120_000 }, async () => {
  const scans = await check('en', 'sandbox-scans');
  assert.equal(scans.code, 0);
  assert.ok(scans.rows.some((r) => r.check === 'login' && r.subject === 'IMAP scanner@contoso.test'));
  assert.ok(!scans.rows.some((r) => r.subject.includes(ALICE)), 'the relay route is not part of the connector');
  const r = await runCli(['--config', config, 'check', 'nothing-of-that-name'], { cwd: dir });
  assert.equal(r.code, 1);
  assert.match(r.stderr + r.stdout, /MB_CHECK_UNKNOWN_TARGET/);
});

test('EWS: autodiscover and GetFolder with impersonation per mailbox of the group; without full_access_as_app both the permission and the access are named', { timeout: 120_000 }, async () => {
  const ews = variant('ews', (d) => {
    const notify = d.notify as { watch: { groups: Record<string, unknown> } };
    notify.watch.groups.onprem = { kind: 'ews', listeners: [{ connection: 'sandbox' }], mailboxes: ['bob@contoso.test'], ews: { autodiscover: { url: sandbox.ews.autodiscoverUrl } } };
  });
  const good = await check('en', 'onprem', ews);
  assert.deepEqual(notOk(good.rows), []);
  assert.equal(good.code, 0);
  assert.deepEqual(
    good.rows.filter((r) => ['autodiscover', 'ews-access', 'permission'].includes(r.check)).map((r) => `${r.check} ${r.subject} ${r.status}`),
    ['permission full_access_as_app ok', 'autodiscover bob@contoso.test ok', 'ews-access bob@contoso.test ok'],
  );

  await admin('/entra/app-role-assignments/remove', { appId: app.appId, role: 'full_access_as_app' });
  try {
    const bad = await check('de', 'onprem', ews);
    assert.equal(bad.code, 1);
    const failed = notOk(bad.rows);
    assert.ok(failed.includes('failed permission full_access_as_app MB_CHECK_PERMISSION_MISSING'), failed.join(' | '));
    assert.ok(failed.some((f) => /^failed (ews-access|autodiscover) bob@contoso\.test MB_EWS_/.test(f)), failed.join(' | '));
  } finally {
    await admin('/entra/app-role-assignments', { appId: app.appId, role: 'full_access_as_app' });
  }
});

test('the sandbox admin API answers app-only Exchange tokens with Exchange.ManageAsApp only: 401 for a Graph token, 403 without the role', { timeout: 60_000 }, async () => {
  const url = `${sandbox.graph.url}/adminapi/beta/${sandbox.directory.data.tenants[0]!.id}/InvokeCommand`;
  const call = async (token: string) => {
    const res = await fetchSandbox(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ CmdletInput: { CmdletName: 'Get-ServicePrincipal', Parameters: {} } }) });
    return { status: res.status, body: (await res.json()) as { value?: Array<{ AppId: string; ObjectId: string }> } };
  };
  const ok = await call(await sandbox.appToken('https://outlook.office365.com/.default'));
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.body.value?.map((s) => [s.AppId, s.ObjectId]), [[app.appId, app.servicePrincipalId]]);
  assert.equal((await call(await sandbox.appToken('https://graph.microsoft.com/.default'))).status, 401);
  await admin('/entra/app-role-assignments/remove', { appId: app.appId, role: 'Exchange.ManageAsApp' });
  try {
    assert.equal((await call(await sandbox.appToken('https://outlook.office365.com/.default'))).status, 403);
  } finally {
    await admin('/entra/app-role-assignments', { appId: app.appId, role: 'Exchange.ManageAsApp' });
  }
});
