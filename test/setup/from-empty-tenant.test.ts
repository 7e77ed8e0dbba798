/**
 * `mailbridge setup` against the sandbox, as an admin runs it from a tenant with no app at all
 * (issue 12 items 1–3): the CLI as a child process, the admin's device code approved in the
 * sandbox Entra, the generated Exchange script run by the sandbox's PowerShell emulation
 * (`mailbridge sandbox-admin powershell`), then `mailbridge serve`: a mail handed to the relay
 * goes out through Exchange's SMTP front, the connector fetches a mail over IMAP into its maildir,
 * and the Graph watcher turns the relayed mail into a new-mail event — with no other step.
 *
 * Also: --dry-run writes nothing to the directory or mailbridge.yaml; an admin without a directory
 * role gets 403 Authorization_RequestDenied as MB_SETUP_ADMIN_DENIED with its fix, in English and
 * German; a second setup run makes no directory write and changes no file.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { parse, stringify } from 'yaml';
import { createSandboxCa } from '../../src/sandbox/ca.ts';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { tempDir } from '../support/temp.ts';
import { freePort } from '../support/ports.ts';
import { MAIN, NODE, runCli, type CliResult } from '../admin/cli/harness.ts';

const TENANT = randomUUID();
const ADMIN = 'admin@contoso.test';
const CAROL = 'carol@contoso.test';
const RELAY = 'relay@contoso.test';
const SCANNER = 'scanner@contoso.test';
const INFO = 'info@contoso.test';

/** The tenant: Exchange Online with three mailboxes and SMTP AUTH off for the organization, no app, an admin and a user without roles. */
const tenantFile = () =>
  stringify({
    tenants: [
      {
        id: TENANT,
        name: 'Contoso (empty)',
        domains: ['contoso.test'],
        cloud: 'global',
        exchangeOnline: true,
        smtpClientAuthenticationDisabled: true,
        apps: [],
        users: [
          { objectId: randomUUID(), upn: ADMIN, displayName: 'Admin', password: 'sandbox', roles: ['Global Administrator'] },
          { objectId: randomUUID(), upn: CAROL, displayName: 'Carol', password: 'sandbox' },
        ],
        exchange: {
          servicePrincipals: [],
          mailboxes: [RELAY, SCANNER, INFO].map((address) => ({ address, type: address === SCANNER ? 'shared' : 'user' })),
        },
      },
    ],
  });

describe('mailbridge setup from a tenant with no app', { timeout: 600_000 }, () => {
  const dir = tempDir('mb-setup-e2e-');
  let sandbox: Sandbox;
  let file: string;
  let relayPort: number;
  let serve: ReturnType<typeof spawn> | undefined;

  /** `mailbridge setup …` with the device code approved in the sandbox as `upn`. */
  const setup = async (args: string[], upn: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> => {
    const child = spawn(NODE, [MAIN, '--config', file, 'setup', ...args], {
      cwd: dir.path,
      env: { PATH: process.env.PATH, LANG: 'C', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const approved = new Set<string>();
    child.stdout.on('data', (d) => {
      stdout += d;
      for (const m of stdout.matchAll(/(?:enter the code|den Code) (\S+)/g)) {
        if (approved.has(m[1]!)) continue;
        approved.add(m[1]!);
        sandbox.entra.approveDeviceCode(m[1]!, upn);
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    const [code] = await once(child, 'exit');
    return { code: code as number, stdout, stderr };
  };
  const writes = () => sandbox.graph.stats.directoryWrites;

  before(async () => {
    chmodSync(dir.path, 0o755);
    const sandboxFile = join(dir.path, 'tenant.yaml');
    writeFileSync(sandboxFile, tenantFile());
    // New grants reach tokens at once here; the 30 minutes of the field are the directory API test's.
    sandbox = await startSandbox({ dir: join(dir.path, 'sandbox'), file: sandboxFile, propagationMs: 0 });
    relayPort = await freePort();
    const inboundPort = await freePort();
    // The watcher's listener certificate comes from the sandbox CA, which the sandbox's Graph trusts.
    const ca = createSandboxCa({ keyPem: readFileSync(join(sandbox.dir, 'ca.key'), 'utf8'), certPem: readFileSync(join(sandbox.dir, 'ca.pem'), 'utf8') });
    const inbound = ca.issueServer(['127.0.0.1', 'localhost']);
    writeFileSync(join(dir.path, 'inbound.key'), inbound.keyPem, { mode: 0o600 });
    writeFileSync(join(dir.path, 'inbound.pem'), inbound.certPem);
    file = join(dir.path, 'mailbridge.yaml');
    // What an admin writes before setup: which tenant, and what mailbridge should do. clientId: new
    // asks setup to create the app.
    writeFileSync(
      file,
      stringify({
        store: { driver: 'sqlite', path: join(dir.path, 'mailbridge.db') },
        connections: {
          contoso: {
            tenantId: TENANT,
            clientId: 'new',
            tokenEndpoint: `https://127.0.0.1:${sandbox.ports.entra}/#TenantID#/oauth2/v2.0/token`,
            caFile: sandbox.caFile,
          },
          notices: {
            tenantId: TENANT,
            clientId: 'new',
            tokenEndpoint: `https://127.0.0.1:${sandbox.ports.entra}/#TenantID#/oauth2/v2.0/token`,
            caFile: sandbox.caFile,
          },
        },
        relay: {
          dataDir: join(dir.path, 'relay'),
          listeners: [{ host: '127.0.0.1', port: relayPort, tls: 'none' }],
          networks: { local: { cidrs: ['127.0.0.1/32'], allowedSenders: [RELAY] } },
          routes: [
            { name: 'erp', senders: [RELAY], connection: 'contoso', smtp: { host: '127.0.0.1', port: sandbox.smtp.port } },
            { name: 'notices', senders: [INFO], connection: 'notices', transport: 'graph', graph: { url: `https://127.0.0.1:${sandbox.ports.graph}/v1.0` } },
          ],
        },
        connectors: {
          scans: {
            connection: 'contoso',
            source: { kind: 'imap', host: '127.0.0.1', port: sandbox.imap.port, caFile: sandbox.caFile, servername: 'localhost' },
            mailboxes: [SCANNER],
            destination: { kind: 'maildir', path: join(dir.path, 'maildir') },
            pollSeconds: 5,
          },
        },
        notify: {
          webhook: {},
          watch: {
            publicUrl: `https://127.0.0.1:${inboundPort}`,
            listen: { host: '127.0.0.1', port: inboundPort, certFile: join(dir.path, 'inbound.pem'), keyFile: join(dir.path, 'inbound.key') },
            groups: { info: { kind: 'graph', listeners: [{ connection: 'contoso' }], mailboxes: [INFO], graph: { baseUrl: `https://127.0.0.1:${sandbox.ports.graph}/v1.0` } } },
          },
        },
      }),
    );
  });

  after(async () => {
    if (serve && serve.exitCode === null && serve.signalCode === null) {
      const exited = once(serve, 'exit');
      serve.kill('SIGKILL');
      await exited;
    }
    await sandbox?.close();
    dir.remove();
  });

  it('--dry-run prints every request it would make and writes nothing', async () => {
    const yaml = readFileSync(file, 'utf8');
    const before = writes();
    const r = await setup(['contoso', '--dry-run'], ADMIN);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // The reads it makes, and the writes it would make.
    assert.ok(r.stdout.includes(`read: GET /servicePrincipals?$filter=appId%20eq%20'00000002-0000-0ff1-ce00-000000000000'`), r.stdout);
    assert.ok(r.stdout.includes(`read: GET /applications?$filter=displayName%20eq%20'mailbridge%20contoso'`), r.stdout);
    for (const request of [
      'POST /applications ',
      'POST /servicePrincipals ',
      'POST /servicePrincipals/<id of the new service principal>/appRoleAssignments',
      'PATCH /applications/<id of the new app>',
    ]) {
      assert.ok(r.stdout.includes(`would: ${request}`), `${request} missing in:\n${r.stdout}`);
    }
    // One consent per permission the configuration uses: SMTP (relay), IMAP (connector), Mail.Read (watcher).
    assert.equal(r.stdout.match(/would: POST \/servicePrincipals\/<id of the new service principal>\/appRoleAssignments/g)?.length, 3, r.stdout);
    for (const p of ['SMTP.SendAsApp', 'IMAP.AccessAsApp', 'Mail.Read']) assert.match(r.stdout, new RegExp(`admin consent for ${p.replace('.', '\\.')}`));
    // In German every request is explained in German, down to what uses it.
    const de = await setup(['contoso', '--dry-run'], ADMIN, { LANG: 'de_DE.UTF-8' });
    assert.equal(de.code, 0, de.stdout + de.stderr);
    assert.match(de.stdout, /Administratorzustimmung für SMTP\.SendAsApp \(Office 365 Exchange Online\) erteilen: Relay-Route erp/, de.stdout);
    assert.match(de.stdout, /Konnektor scans/);
    assert.match(de.stdout, /Überwachungsgruppe info/);
    assert.deepEqual(de.stdout.split('\n').filter((l) => /relay route|\bconnector\b|watch group|needed by|admin consent/i.test(l)), [], de.stdout);
    assert.equal(writes(), before, 'no directory write');
    assert.equal(readFileSync(file, 'utf8'), yaml, 'mailbridge.yaml unchanged');
    assert.equal(sandbox.directory.data.tenants[0]!.apps.length, 0);
    assert.ok(!existsSync(join(dir.path, 'exchange-contoso.ps1')));
    assert.ok(!existsSync(join(dir.path, 'contoso-app.key')));
    // --check before any app exists: exit status 1 and what is missing.
    const missing = await setup(['notices', '--check'], ADMIN);
    assert.equal(missing.code, 1, missing.stdout + missing.stderr);
    assert.match(missing.stdout, /Missing:\n {2}- the app registration itself/);
    assert.equal(writes(), before);
  });

  it('an admin without a directory role: 403 Authorization_RequestDenied as MB_SETUP_ADMIN_DENIED with the fix, in English and German', async () => {
    const before = writes();
    const en = await setup(['contoso'], CAROL);
    assert.equal(en.code, 1, en.stdout);
    assert.match(en.stderr, /MB_SETUP_ADMIN_DENIED/);
    assert.match(en.stderr, /403 Authorization_RequestDenied/);
    assert.match(en.stderr, /POST \/applications/);
    assert.match(en.stderr, /carol@contoso\.test holds neither Application Administrator nor Global Administrator/);
    assert.match(en.stderr, /Roles & admins › Application Administrator › Add assignments/);
    const de = await setup(['contoso'], CAROL, { LANG: 'de_DE.UTF-8' });
    assert.equal(de.code, 1);
    assert.match(de.stderr, /MB_SETUP_ADMIN_DENIED: Entra ID hat den angemeldeten Administrator abgewiesen/);
    assert.match(de.stderr, /Rollen und Administratoren › Application Administrator › Zuweisungen hinzufügen/);
    assert.equal(writes(), before);
    assert.equal(sandbox.directory.data.tenants[0]!.apps.length, 0);
  });

  it('--secret: the client secret goes sealed into mailbridge.yaml and is printed nowhere', async () => {
    const r = await setup(['notices', '--secret'], ADMIN);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const doc = parse(readFileSync(file, 'utf8')) as { connections: { notices: { clientId: string; clientSecret: string; clientSecretExpires: string } } };
    const app = sandbox.directory.data.tenants[0]!.apps.find((a) => a.appId === doc.connections.notices.clientId)!;
    const secret = app.secrets[0]!.value;
    assert.match(doc.connections.notices.clientSecret, /^enc:v1:/);
    assert.equal(doc.connections.notices.clientSecretExpires, app.secrets[0]!.endDateTime.slice(0, 10));
    assert.ok(!(r.stdout + r.stderr).includes(secret), 'the secret is not printed');
    assert.ok(!readFileSync(file, 'utf8').includes(secret));
  });

  it('setup, the Exchange script, check and serve: first relayed mail, first fetched mail, first new-mail event', async () => {
    // Every connection in use, one sign-in for the tenant; notices was set up already and stays as it is.
    const before = writes();
    const r = await setup([], ADMIN);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout.match(/Signed in:/g)?.length, 1, r.stdout);
    assert.match(r.stdout, /Connection notices:[\s\S]*everything in place, nothing changed/);
    const tenant = sandbox.directory.data.tenants[0]!;
    const app = tenant.apps.find((a) => a.displayName === 'mailbridge contoso')!;
    assert.equal(tenant.apps.length, 2);
    assert.ok(writes() > before);
    const doc = parse(readFileSync(file, 'utf8')) as { connections: { contoso: { clientId: string; certificate: { path: string; privateKeyPath: string; password: string } } } };
    assert.equal(doc.connections.contoso.clientId, app.appId);
    // The certificate: only the public part went to Entra; the key is on disk, encrypted, its password sealed.
    assert.match(doc.connections.contoso.certificate.password, /^enc:v1:/);
    assert.match(readFileSync(doc.connections.contoso.certificate.privateKeyPath, 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/);
    assert.equal(app.certificates.length, 1);
    assert.doesNotMatch(app.certificates[0]!.pem, /PRIVATE KEY/);
    assert.deepEqual(app.registration?.appRoleAssignments.map((a) => a.role).sort(), ['IMAP.AccessAsApp', 'Mail.Read', 'SMTP.SendAsApp']);
    assert.match(r.stdout, new RegExp(`enterprise application object ID ${app.servicePrincipalId}`));

    // The Exchange part: the script names the enterprise application's object ID, never the registration's.
    const scriptFile = join(dir.path, 'exchange-contoso.ps1');
    const script = readFileSync(scriptFile, 'utf8');
    assert.ok(script.includes(`New-ServicePrincipal -AppId '${app.appId}' -ObjectId '${app.servicePrincipalId}'`));
    assert.ok(!script.includes(app.objectId));
    const ps = await runCli(['sandbox-admin', 'powershell', scriptFile, '--dir', sandbox.dir], { cwd: dir.path });
    assert.equal(ps.code, 0, ps.stdout + ps.stderr);
    assert.deepEqual(tenant.exchange.servicePrincipals.map((s) => s.objectId), [app.servicePrincipalId]);

    // Before the first mail, `mailbridge check` proves each prerequisite: nothing failed, nothing pending.
    const checked = await runCli(['--config', file, 'check'], { cwd: dir.path });
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
    assert.doesNotMatch(checked.stdout, /FAILED|PENDING/, checked.stdout);
    assert.match(checked.stdout, /SMTP\.SendAsApp/, checked.stdout);

    serve = spawn(NODE, [MAIN, '--config', file, 'serve', '--port', '0'], { cwd: dir.path, env: { PATH: process.env.PATH, LANG: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    serve.stdout!.on('data', (d) => (out += d));
    serve.stderr!.on('data', (d) => (err += d));
    await new Promise<void>((resolve, reject) => {
      serve!.stdout!.on('data', () => /\/health/.test(out) && resolve());
      serve!.once('exit', () => reject(new Error(`serve exited: ${err}`)));
    });
    const until = Date.now() + 120_000;
    const waitFor = async (what: string, args: string[], pattern: RegExp): Promise<void> => {
      for (;;) {
        const w = await runCli(['--config', file, ...args], { cwd: dir.path });
        if (pattern.test(w.stdout)) return;
        if (Date.now() > until) assert.fail(`${what}: no ${pattern}; last:\n${w.stdout}${w.stderr}\nserve:\n${out}\n${err.slice(-3000)}`);
        await new Promise((res) => setTimeout(res, 500));
      }
    };
    await waitFor('watch status', ['watch', '--once'], /^info \(graph\): .*watching 1/m);

    // First relayed mail: an application hands it to the relay; Exchange's SMTP front takes it
    // (FullAccess, SMTP AUTH for the mailbox, the service principal: all from setup and the script).
    const smtp = nodemailer.createTransport({ host: '127.0.0.1', port: relayPort, secure: false, ignoreTLS: true });
    await smtp.sendMail({ from: RELAY, to: INFO, subject: 'first relayed mail', text: 'hello from the ERP' });
    smtp.close();
    await waitFor('queue', ['queue', 'list'], /sent/i);

    // First new-mail event: the relayed mail in info@ becomes an event of the Graph watcher.
    await waitFor('watch --json', ['watch', '--once', '--json'], /"subject": "first relayed mail"/);

    serve.kill('SIGTERM');
    await once(serve, 'exit');
    serve = undefined;

    // First fetched mail: the connector (run as `fetch`, as cron or its systemd unit runs it) copies
    // scanner@'s new mail into the maildir over IMAP.
    await sandbox.dovecot.deliver({ from: 'copier@contoso.test', to: [SCANNER] }, `From: copier@contoso.test\r\nTo: ${SCANNER}\r\nSubject: first scan\r\n\r\nscan\r\n`);
    const fetched = await runCli(['--config', file, 'fetch', 'scans', '--once'], { cwd: dir.path });
    assert.equal(fetched.code, 0, fetched.stdout + fetched.stderr);
    const maildir = join(dir.path, 'maildir', 'new');
    const files = readdirSync(maildir).map((f) => readFileSync(join(maildir, f), 'utf8'));
    assert.equal(files.filter((f) => f.includes('Subject: first scan')).length, 1, fetched.stdout);
  });

  it('a second run changes nothing: no directory write, the same mailbridge.yaml', async () => {
    const yaml = readFileSync(file, 'utf8');
    const before = writes();
    const r = await setup([], ADMIN);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout.match(/everything in place, nothing changed/g)?.length, 2, r.stdout);
    assert.equal(writes(), before);
    // The secret setup made for notices works: Graph sendMail's permission is in its token.
    const token = await runCli(['--config', file, 'token', 'notices', '--resource', 'graph'], { cwd: dir.path });
    assert.equal(token.code, 0, token.stdout + token.stderr);
    assert.match(token.stdout, /Mail\.Send/);
    assert.equal(readFileSync(file, 'utf8'), yaml);
    const check = await setup(['contoso', '--check'], ADMIN);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /Entra ID: nothing missing/);
  });

});
