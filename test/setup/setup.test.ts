/**
 * src/setup/index.ts in process, against the sandbox Graph's directory API (the rig of
 * test/sandbox/graph): a client secret instead of a certificate, --check on an app that lacks what
 * a new connector needs, a delegated device-code connection (public client, organization-wide
 * consent, rights for the signed-in account), and a national cloud (GCC High).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { configSchema, type Config } from '../../src/app/schema.ts';
import { adminScopes, runSetup, type DirectorySend, type PlannedWrite, type SetupOptions } from '../../src/setup/index.ts';
import { runScript } from '../../src/sandbox/exchange/powershell.ts';
import { testBox } from '../identity/helpers.ts';
import { tempDir } from '../support/temp.ts';
import { startRig, T, USER, type Rig } from '../sandbox/graph/helpers.ts';

const ADMIN_SCOPES = 'Application.ReadWrite.All AppRoleAssignment.ReadWrite.All DelegatedPermissionGrant.ReadWrite.All';

describe('setup against the sandbox Graph', () => {
  let rig: Rig;
  const dir = tempDir('mb-setup-unit-');
  const contoso = () => rig.directory.tenant(T.contoso)!;

  before(async () => {
    rig = await startRig({ propagationMs: 0 });
    contoso().users.find((u) => u.upn === USER.alice.upn)!.roles = ['Global Administrator'];
  });
  after(async () => {
    await rig.close();
    dir.remove();
  });

  /** runSetup with alice's token; settings written to mailbridge.yaml are collected instead. */
  const run = async (config: Config, connection: string, extra: Partial<SetupOptions> = {}, token?: string) => {
    const bearer = token ?? (await rig.userToken(USER.alice, ADMIN_SCOPES));
    const send: DirectorySend = async (method, path, body) => {
      const r = await rig.call(method, `/v1.0${path}`, { token: bearer, ...(body === undefined ? {} : { json: body }) });
      return { status: r.status, text: r.text, requestId: r.headers.get('request-id') ?? '', ...(r.text && r.status !== 204 ? { json: r.json() } : {}) };
    };
    const stored: Array<{ path: string[]; value: string; secret?: boolean }> = [];
    const writes: PlannedWrite[] = [];
    const result = await runSetup({
      config,
      configPath: join(dir.path, 'mailbridge.yaml'),
      connection,
      mode: 'apply',
      send,
      account: USER.alice.upn,
      secretBox: testBox,
      lang: 'en',
      storeSettings: async (entries) => {
        stored.push(...entries);
      },
      onWrite: (w) => writes.push(w),
      ...extra,
    });
    return { result, stored, writes };
  };

  it('--secret: a client secret with its expiry, stored sealed, never in a request or the result', async () => {
    const config = configSchema.parse({
      connections: { erp: { tenantId: T.contoso, clientId: 'new' } },
      relay: { routes: [{ name: 'erp', senders: ['erp@contoso.test'], connection: 'erp', transport: 'graph' }] },
    });
    const now = new Date('2026-12-07T06:00:00Z');
    const { result, stored, writes } = await run(config, 'erp', { credential: 'secret', validMonths: 6, now: () => now });
    const app = rig.directory.app(contoso(), result.app.appId)!;
    assert.equal(app.secrets.length, 1);
    const secret = app.secrets[0]!.value;
    assert.deepEqual(
      stored.map((s) => [s.path.join('.'), s.secret === true, s.path.at(-1) === 'clientSecret' ? s.value === secret : s.value]),
      [
        ['connections.erp.clientId', false, result.app.appId],
        ['connections.erp.clientSecret', true, true],
        ['connections.erp.clientSecretExpires', false, '2027-06-07'],
      ],
    );
    assert.equal(result.credential?.kind, 'secret');
    assert.ok(!JSON.stringify({ result, writes }).includes(secret), 'the secret appears only in what is sealed');
    assert.deepEqual(app.registration?.appRoleAssignments.map((a) => a.role), ['Mail.Send']);
    // Graph sendMail needs nothing in Exchange: the script says so and registers nothing.
    assert.match(result.script!, /needs nothing in Exchange/);
    assert.doesNotMatch(result.script!.replace(/<#[\s\S]*#>/, ''), /New-ServicePrincipal/);
  });

  it('--check on an existing app lists exactly what a new connector needs; apply adds it; check then finds nothing', async () => {
    const first = configSchema.parse({
      connections: { ops: { tenantId: T.contoso, clientId: 'new' } },
      relay: { routes: [{ name: 'ops', senders: ['bob@contoso.test'], connection: 'ops' }] },
    });
    const made = await run(first, 'ops');
    const grown = configSchema.parse({
      connections: { ops: { tenantId: T.contoso, clientId: made.result.app.appId, certificate: { path: made.result.credential!.certFile!, privateKeyPath: made.result.credential!.keyFile!, password: made.stored.find((s) => s.path.at(-1) === 'password')!.value } } },
      relay: { routes: [{ name: 'ops', senders: ['bob@contoso.test'], connection: 'ops' }] },
      connectors: { inbox: { connection: 'ops', mailboxes: ['bob@contoso.test'], destination: { kind: 'maildir', path: join(dir.path, 'md') } } },
    });
    const writesBefore = rig.graph.stats.directoryWrites;
    const check = await run(grown, 'ops', { mode: 'check' });
    assert.equal(rig.graph.stats.directoryWrites, writesBefore, 'check writes nothing');
    assert.deepEqual(
      check.result.missing.map((m) => m.en),
      ['on the app registration: API permissions IMAP.AccessAsApp (Office 365 Exchange Online, Application)', 'admin consent for IMAP.AccessAsApp (Office 365 Exchange Online), needed by connector inbox'],
    );
    assert.deepEqual(
      check.result.missing.map((m) => m.de),
      ['an der App-Registrierung: API-Berechtigungen IMAP.AccessAsApp (Office 365 Exchange Online, Anwendung)', 'Administratorzustimmung für IMAP.AccessAsApp (Office 365 Exchange Online), gebraucht von Konnektor inbox'],
    );
    assert.equal(check.result.script, undefined);
    const fixed = await run(grown, 'ops');
    assert.deepEqual(fixed.writes.map((w) => `${w.method} ${w.path.replace(/[0-9a-f-]{36}/g, '{id}')}`), ['PATCH /applications/{id}', 'POST /servicePrincipals/{id}/appRoleAssignments']);
    assert.deepEqual(fixed.stored, [], 'the certificate on the app is kept');
    const again = await run(grown, 'ops', { mode: 'check' });
    assert.deepEqual(again.result.missing, []);
    // The script for it runs in the sandbox's Exchange PowerShell, twice without harm.
    const first1 = runScript(rig.directory, fixed.result.script!, { tenant: T.contoso });
    assert.ok(first1.ok, JSON.stringify(first1.results.filter((r) => r.status === 'error')));
    const second = runScript(rig.directory, fixed.result.script!, { tenant: T.contoso });
    assert.ok(second.ok);
    assert.deepEqual([...new Set(second.results.map((r) => r.status))].sort(), ['exists', 'ignored', 'unchanged']);
  });

  it('a device-code connection: public client flows, consent for the organization, FullAccess for the account on a shared mailbox, no credential', async () => {
    const config = configSchema.parse({
      connections: { desk: { tenantId: T.contoso, clientId: 'new', flow: 'device-code', account: USER.dave.upn } },
      connectors: { shared: { connection: 'desk', mailboxes: ['info@contoso.test'], destination: { kind: 'maildir', path: join(dir.path, 'md2') } } },
    });
    const { result, stored } = await run(config, 'desk');
    const app = rig.directory.app(contoso(), result.app.appId)!;
    assert.equal(app.publicClient, true);
    assert.deepEqual(app.delegatedConsent.sort(), ['https://outlook.office365.com/IMAP.AccessAsUser.All', 'https://outlook.office365.com/SMTP.Send', 'offline_access', 'openid', 'profile']);
    assert.deepEqual(stored.map((s) => s.path.join('.')), ['connections.desk.clientId']);
    assert.equal(result.credential, undefined);
    assert.ok(result.script!.includes(`Add-MailboxPermission -Identity 'info@contoso.test' -User '${USER.dave.upn}' -AccessRights FullAccess`));
    assert.doesNotMatch(result.script!, /New-ServicePrincipal/);
    // A second run: the grants are in place.
    const again = await run(configSchema.parse({ ...config, connections: { desk: { ...config.connections.desk, clientId: result.app.appId } } }), 'desk');
    assert.deepEqual(again.writes, []);
  });

  it('a national cloud: the admin signs in for that cloud\'s Graph, and the app is made in the GCC High tenant', async () => {
    const config = configSchema.parse({
      connections: { gov: { tenantId: T.usgov, clientId: 'new', cloud: 'gcc-high' } },
      relay: { routes: [{ name: 'gov', senders: ['gina@usgov.test'], connection: 'gov' }] },
    });
    assert.deepEqual(adminScopes(config.connections.gov!), [
      'https://graph.microsoft.us/Application.ReadWrite.All',
      'https://graph.microsoft.us/AppRoleAssignment.ReadWrite.All',
      'https://graph.microsoft.us/DelegatedPermissionGrant.ReadWrite.All',
    ]);
    const usgov = rig.directory.tenant(T.usgov)!;
    const oid = randomUUID();
    usgov.users.push({ objectId: oid, upn: 'admin@usgov.test', displayName: 'Gov admin', password: 'x', roles: ['Global Administrator'] });
    const token = await rig.userToken({ upn: 'admin@usgov.test', oid }, ADMIN_SCOPES, { aud: 'https://graph.microsoft.us', tid: T.usgov, iss: `https://sts.windows.net/${T.usgov}/` });
    const { result } = await run(config, 'gov', {}, token);
    assert.ok(rig.directory.app(usgov, result.app.appId));
    assert.equal(rig.directory.app(contoso(), result.app.appId), undefined);
    assert.ok(result.script!.includes(`Connect-ExchangeOnline -Organization '${T.usgov}'`));
  });
  it('api.signin.entra: the app gets the app roles reader, operator, admin (for users), the console redirect URI and consent to openid and profile; an admin\'s own role stays', async () => {
    const config = configSchema.parse({
      server: { publicUrl: 'https://mb.contoso.test' },
      connections: { console: { tenantId: T.contoso, clientId: 'new' } },
      api: { signin: { entra: { connection: 'console' } } },
    });
    const { result } = await run(config, 'console', { credential: 'secret', validMonths: 6 });
    const app = rig.directory.app(contoso(), result.app.appId)!;
    const roles = () => app.registration!.appRoles.map((r) => `${r.value}:${r.allowedMemberTypes.join('+')}:${r.isEnabled}`);
    assert.deepEqual(roles(), ['reader:User:true', 'operator:User:true', 'admin:User:true']);
    assert.ok(app.registration!.webRedirectUris.includes('https://mb.contoso.test/login/entra/callback'));
    for (const s of ['openid', 'profile']) assert.ok(app.delegatedConsent.includes(s), `consent to ${s}`);

    // An app that has a role of its own and one of ours: the rest is added, both stay as they were.
    const admin = app.registration!.appRoles.find((r) => r.value === 'admin')!;
    app.registration!.appRoles = [
      { id: randomUUID(), value: 'auditor', displayName: 'Auditor', description: 'ours', allowedMemberTypes: ['User'], isEnabled: true },
      admin,
    ];
    const again = configSchema.parse({ ...config, connections: { console: { tenantId: T.contoso, clientId: result.app.appId } } });
    const second = await run(again, 'console', { credential: 'secret', validMonths: 6 });
    assert.deepEqual(roles(), ['auditor:User:true', 'admin:User:true', 'reader:User:true', 'operator:User:true']);
    assert.equal(app.registration!.appRoles.find((r) => r.value === 'admin')!.id, admin.id, 'an existing role keeps its ID');
    assert.ok(second.writes.some((w) => w.method === 'PATCH' && JSON.stringify(w.why).includes('app roles reader, operator (console sign-in)')));
    // Nothing missing any more: no PATCH of the app.
    const third = await run(again, 'console', { credential: 'secret', validMonths: 6 });
    assert.deepEqual(third.writes.filter((w) => w.method === 'PATCH' && w.path.startsWith('/applications/')), []);
  });
});
