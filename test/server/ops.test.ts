/**
 * Setup and check runs through the admin API of a running gateway, against the sandbox from a
 * tenant with no app (as test/setup/from-empty-tenant.test.ts runs `mailbridge setup`): the setup
 * run shows the admin's device code, which is approved in the sandbox Entra; it creates the app
 * with a client secret (sealed into mailbridge.yaml, never in an answer), returns the Exchange
 * script and runs the checks, where Exchange's part fails with its MB code and fix until the script
 * ran. After the sandbox's PowerShell ran the script, a check run started through the API has no
 * failed line left.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { commandOf } from '../../src/api/routes/ops.ts';
import { loadConfig } from '../../src/app/config.ts';
import { MbError } from '../../src/errors/index.ts';
import { createLogger } from '../../src/log/index.ts';
import type { Sandbox } from '../../src/sandbox/index.ts';
import { startGateway, type Gateway } from '../../src/server/index.ts';
import { setupWillCreate } from '../../src/setup/index.ts';
import { runCli } from '../admin/cli/harness.ts';
import { tempDir } from '../support/temp.ts';
import { EMPTY_TENANT, startEmptyTenant, writeConfigBeforeSetup } from '../support/empty-tenant.ts';
import { readUntil } from '../support/wait.ts';

const { admin: ADMIN, scanner: SCANNER } = EMPTY_TENANT;
const KEY = randomBytes(24).toString('base64url');
const READ = randomBytes(24).toString('base64url');
const dir = tempDir('mb-ops-runs-');
const file = join(dir.path, 'mailbridge.yaml');
const logged: string[] = [];
let sandbox: Sandbox;
let gw: Gateway;

interface Item {
  id: string;
  title: string;
  status: string;
  code?: string;
  cause?: string;
  fix?: string;
  command?: string;
}
interface SetupRun {
  id: string;
  state: string;
  step: string;
  deviceCode?: { userCode: string; verificationUri: string };
  appId?: string;
  script?: string;
  checks?: Item[];
  error?: { code: string; cause: string };
}
interface CheckRun {
  id: string;
  state: string;
  results: Item[];
  error?: { code: string };
}

before(async () => {
  sandbox = await startEmptyTenant(dir.path);
  // What an admin has before setup: the tenant, what mailbridge should do, and API keys.
  await writeConfigBeforeSetup(dir.path, sandbox, { wizard: { key: KEY, scopes: ['admin'] }, viewer: { key: READ, scopes: ['read'] } });
  // The app does not exist yet (clientId: new): the gateway runs for the wizard that creates it.
  const loaded = await loadConfig(file, {}, { relax: setupWillCreate });
  gw = await startGateway(loaded.config, createLogger({ level: 'warn', destination: { write: (l: string) => logged.push(l) } }), { keyFile: loaded.keyFile, env: {}, configPath: file });
});

after(async () => {
  await gw?.close('test end');
  await sandbox?.close();
  dir.remove();
});

async function call<T>(method: 'GET' | 'POST', url: string, payload?: unknown, key = KEY): Promise<{ status: number; body: T; raw: string }> {
  const r = await gw.http.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
  return { status: r.statusCode, body: r.json() as T, raw: r.body };
}

test('a setup run from an empty tenant: device code, app with a sealed secret, script, checks; after the script a check run has no failed line', { timeout: 300_000 }, async () => {
  const refused = await call<{ error: { code: string } }>('POST', '/api/v1/setup/runs', { connection: 'contoso' }, READ);
  assert.equal(refused.status, 403);
  const unknown = await call<{ error: { code: string } }>('POST', '/api/v1/setup/runs', { connection: 'fabrikam' });
  assert.equal(unknown.body.error.code, 'MB_API_UNKNOWN_NAME');

  const started = await call<{ id: string }>('POST', '/api/v1/setup/runs', { connection: 'contoso', credential: 'secret' });
  assert.equal(started.status, 202, started.raw);
  const url = `/api/v1/setup/runs/${started.body.id}`;
  const signin = await readUntil('the device code', async () => (await call<SetupRun>('GET', url)).body, (r) => r.deviceCode !== undefined || r.state !== 'running');
  assert.equal(signin.step, 'signin', JSON.stringify(signin));
  assert.match(signin.deviceCode!.verificationUri, /^https:\/\//);
  // The admin enters the code and signs in (in the sandbox's Entra ID).
  sandbox.entra.approveDeviceCode(signin.deviceCode!.userCode, ADMIN);
  const done = await readUntil('the end of the setup run', async () => (await call<SetupRun>('GET', url)).body, (r) => r.state !== 'running', 240_000);
  assert.equal(done.state, 'done', JSON.stringify(done.error));
  assert.equal(done.step, 'done');
  assert.equal(done.deviceCode, undefined);

  const tenant = sandbox.directory.data.tenants[0]!;
  assert.equal(tenant.apps.length, 1);
  const app = tenant.apps[0]!;
  assert.equal(done.appId, app.appId);
  assert.ok(done.script?.includes(`New-ServicePrincipal -AppId '${app.appId}' -ObjectId '${app.servicePrincipalId}'`), done.script);
  const doc = parse(readFileSync(file, 'utf8')) as { connections: { contoso: { clientId: string; clientSecret: string } } };
  assert.equal(doc.connections.contoso.clientId, app.appId);
  assert.match(doc.connections.contoso.clientSecret, /^enc:v1:/);
  const secret = app.secrets[0]!.value;
  // The running gateway took the new app at once.
  const connections = await call<{ connections: Array<{ name: string; clientId: string; credential: { kind: string } }> }>('GET', '/api/v1/connections', undefined, READ);
  assert.deepEqual(connections.body.connections.map((c) => [c.name, c.clientId, c.credential.kind]), [['contoso', app.appId, 'secret']]);
  const token = await call<{ clientId: string; roles?: string[] }>('GET', '/api/v1/connections/contoso/token?resource=exchange', undefined, READ);
  assert.equal(token.status, 200, token.raw);
  assert.equal(token.body.clientId, app.appId);
  assert.ok(token.body.roles?.includes('IMAP.AccessAsApp'), token.raw);
  // The checks ran with what setup wrote: the token works; Exchange does not know the app yet.
  const checks = done.checks!;
  assert.ok(checks.some((c) => c.id === 'contoso/token/exchange' && c.status === 'ok'), JSON.stringify(checks, null, 1));
  const failed = checks.filter((c) => c.status === 'fail');
  assert.ok(failed.length > 0, JSON.stringify(checks, null, 1));
  for (const f of failed) assert.ok(f.code?.startsWith('MB_') && f.cause && f.fix, JSON.stringify(f));
  for (const f of failed) if (f.command !== undefined) assert.ok(f.fix!.includes(f.command), JSON.stringify(f));

  // The secret is in no answer and no log line.
  const list = await call<{ runs: unknown[] }>('GET', '/api/v1/check/runs');
  const german = await gw.http.inject({ url, headers: { authorization: `Bearer ${KEY}`, 'accept-language': 'de' } });
  assert.match(german.body, /Token/);
  for (const text of [JSON.stringify(done), list.raw, german.body, logged.join('\n'), readFileSync(file, 'utf8')]) assert.ok(!text.includes(secret), 'the client secret leaked');

  // The Exchange part: the admin runs the script; a check run then finds nothing failed.
  const scriptFile = join(dir.path, 'exchange-contoso.ps1');
  writeFileSync(scriptFile, done.script!);
  const ps = await runCli(['sandbox-admin', 'powershell', scriptFile, '--dir', sandbox.dir], { cwd: dir.path });
  assert.equal(ps.code, 0, ps.stdout + ps.stderr);
  const check = await call<{ id: string }>('POST', '/api/v1/check/runs', { connection: 'contoso' });
  assert.equal(check.status, 202, check.raw);
  const checked = await readUntil('the end of the check run', async () => (await call<CheckRun>('GET', `/api/v1/check/runs/${check.body.id}`, undefined, READ)).body, (r) => r.state !== 'running', 120_000);
  assert.equal(checked.state, 'done', JSON.stringify(checked.error));
  assert.deepEqual(checked.results.filter((r) => r.status === 'fail' || r.status === 'pending'), []);
  assert.ok(checked.results.some((r) => r.id === `contoso/login/IMAP ${SCANNER}` && r.status === 'ok'), JSON.stringify(checked.results, null, 1));
  const recent = await call<{ runs: CheckRun[] }>('GET', '/api/v1/check/runs', undefined, READ);
  assert.equal(recent.body.runs[0]!.id, check.body.id);

  const gone = await call<{ error: { code: string } }>('GET', '/api/v1/check/runs/0123456789abcdef');
  assert.equal(gone.body.error.code, 'MB_API_RUN_NOT_FOUND');
  const audit = await call<{ entries: Array<{ who: string; action: string; target?: string; status: number }> }>('GET', '/api/v1/audit');
  assert.deepEqual(
    audit.body.entries.filter((e) => e.status === 202).map((e) => [e.who, e.action, e.target]),
    [
      ['wizard', 'POST /api/v1/check/runs', 'contoso'],
      ['wizard', 'POST /api/v1/setup/runs', 'contoso'],
    ],
  );
});

test("a result's command is the first command in backquotes of its fix, in the language asked for", () => {
  const e = new MbError('MB_CHECK_SCOPE_MISSING', { connection: 'contoso', permission: 'IMAP.AccessAsUser.All', api: 'Office 365 Exchange Online', usedBy: 'connector scans', appName: 'mailbridge', clientId: 'x', tenantId: 'y', portal: 'entra.microsoft.com' });
  assert.equal(commandOf(e.explain('de').fix), 'mailbridge signin contoso');
  assert.equal(commandOf('Entra admin center › App registrations › Certificates & secrets'), undefined);
});
