/**
 * A sandbox restarted with the same folder is the same sandbox: every port (Entra ID, Graph, EWS,
 * Dovecot, the fronts, admin), the admin's edits to mailbridge.yaml, and a delegated sign-in (its
 * refresh token, and its access token at the IMAP front). A port pinned anew is updated in the
 * example config without losing the edits. A taken port and a folder Dovecot cannot reach are
 * coded errors before anything starts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { Agent, fetch } from 'undici';
import { parse } from 'yaml';
import { configSchema } from '../../src/app/schema.ts';
import { MbError } from '../../src/errors/index.ts';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { runCli } from '../admin/cli/harness.ts';

const IMAP_SCOPE = 'https://outlook.office.com/IMAP.AccessAsUser.All offline_access';
const REDIRECT = 'http://127.0.0.1:8080/oauth/callback';

async function tokenRequest(sandbox: Sandbox, form: Record<string, string>): Promise<Record<string, string>> {
  const tenant = sandbox.directory.data.tenants[0]!;
  const app = tenant.apps[0]!;
  const res = await fetch(`${sandbox.entra.urls.global}/${tenant.id}/oauth2/v2.0/token`, {
    method: 'POST',
    body: new URLSearchParams({ client_id: app.appId, client_secret: app.secrets[0]!.value, ...form }),
    dispatcher: new Agent({ connect: { ca: readFileSync(sandbox.caFile, 'utf8') } }),
  });
  const body = (await res.json()) as Record<string, string>;
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

/** The error startSandbox fails with; a sandbox that starts after all is closed again (and the test fails). */
async function startError(options: Parameters<typeof startSandbox>[0]): Promise<unknown> {
  let started: Sandbox;
  try {
    started = await startSandbox(options);
  } catch (err) {
    return err;
  }
  await started.close();
  assert.fail('the sandbox started');
}

async function imapLogin(sandbox: Sandbox, user: string, accessToken: string): Promise<number> {
  const client = new ImapFlow({
    host: '127.0.0.1',
    port: sandbox.imap.port,
    secure: true,
    tls: { ca: readFileSync(sandbox.caFile, 'utf8') },
    auth: { user, accessToken },
    logger: false,
  });
  await client.connect();
  try {
    const status = await client.status('INBOX', { messages: true });
    return status ? (status.messages ?? -1) : -1;
  } finally {
    await client.logout();
  }
}

test('restart with the same folder: same ports, edits to mailbridge.yaml kept, delegated sign-in still valid; a re-pinned port is updated in place', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-sandbox-restart-'));
  let sandbox = await startSandbox({ dir });
  try {
    const first = { ...sandbox.ports };
    const urls = { entra: sandbox.entra.urls.global, graph: sandbox.graph.url, ews: sandbox.ews.url, admin: sandbox.admin.url };

    // Alice signs in once (authorization code with offline_access), as `mailbridge signin` does.
    const tenant = sandbox.directory.data.tenants[0]!;
    const app = tenant.apps[0]!;
    const authorize = new URL(`${sandbox.entra.urls.global}/${tenant.id}/oauth2/v2.0/authorize`);
    for (const [k, v] of Object.entries({ client_id: app.appId, response_type: 'code', redirect_uri: REDIRECT, scope: IMAP_SCOPE, state: 's1' })) authorize.searchParams.set(k, v);
    const code = new URL(await sandbox.entra.signIn(authorize.toString(), 'alice@contoso.test')).searchParams.get('code');
    assert.ok(code, 'an authorization code');
    const signedIn = await tokenRequest(sandbox, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, scope: IMAP_SCOPE });
    assert.ok(signedIn.refresh_token && signedIn.access_token);
    assert.equal(await imapLogin(sandbox, 'alice@contoso.test', signedIn.access_token!), 0);

    // The admin edits the example config: a comment, a setting, a secret added with `secret set`.
    writeFileSync(sandbox.configFile, readFileSync(sandbox.configFile, 'utf8').replace('secrets:', '# our own note\nlog:\n  level: debug\nsecrets:') + 'lang: de\n');
    const set = await runCli(['--config', sandbox.configFile, 'secret', 'set', 'notify.api.keys.second'], { input: 'a-second-api-key-0123456789\n', cwd: dir });
    assert.equal(set.code, 0, set.stdout + set.stderr);
    const edited = readFileSync(sandbox.configFile, 'utf8');
    assert.match(edited, /second: enc:v1:/);
    await sandbox.close();

    sandbox = await startSandbox({ dir });
    assert.deepEqual(sandbox.ports, first, 'every port is the same after a restart');
    assert.deepEqual({ entra: sandbox.entra.urls.global, graph: sandbox.graph.url, ews: sandbox.ews.url, admin: sandbox.admin.url }, urls);
    assert.equal(readFileSync(sandbox.configFile, 'utf8'), edited, 'mailbridge.yaml is left as the admin edited it');
    // The access token issued before the restart still opens the mailbox, and the refresh token still works.
    assert.equal(await imapLogin(sandbox, 'alice@contoso.test', signedIn.access_token!), 0);
    const refreshed = await tokenRequest(sandbox, { grant_type: 'refresh_token', refresh_token: signedIn.refresh_token!, scope: IMAP_SCOPE });
    assert.equal(await imapLogin(sandbox, 'alice@contoso.test', refreshed.access_token!), 0);
    assert.ok(!readFileSync(join(dir, 'entra-grants.json'), 'utf8').includes(signedIn.refresh_token!), 'grants are kept as hashes, not tokens');
    await sandbox.close();

    // Graph pinned to another port: the example config follows, the edits stay.
    sandbox = await startSandbox({ dir, ports: { graph: 0 } });
    assert.notEqual(sandbox.ports.graph, first.graph);
    const text = readFileSync(sandbox.configFile, 'utf8');
    assert.match(text, /# our own note/);
    const doc = parse(text) as { lang: string; log: { level: string }; notify: { api: { keys: Record<string, string> }; watch: { groups: { sandbox: { graph: { baseUrl: string } } } } } };
    assert.match(doc.notify.api.keys.second!, /^enc:v1:/, 'the key added with secret set stays');
    assert.equal(doc.lang, 'de');
    assert.equal(doc.log.level, 'debug');
    assert.equal(doc.notify.watch.groups.sandbox.graph.baseUrl, `${sandbox.graph.url}/v1.0`);
    assert.ok(configSchema.safeParse(doc).success);
    assert.equal((parse(readFileSync(join(dir, 'ports.yaml'), 'utf8')) as { graph: number }).graph, sandbox.ports.graph, 'the new port is remembered');
  } finally {
    await sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a remembered port another program holds is refused by name before anything starts', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-sandbox-busy-'));
  const holder: Server = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  const port = (holder.address() as { port: number }).port;
  try {
    writeFileSync(join(dir, 'ports.yaml'), `smtp: ${port}\n`);
    const err = await startError({ dir });
    assert.ok(err instanceof MbError, String(err));
    assert.equal(err.code, 'MB_SANDBOX_PORT_BUSY');
    assert.match(err.message, new RegExp(`${port}.*"smtp"`));
    assert.match(err.message, new RegExp(`Held by: .*${process.pid}`), 'names who holds it (this test)');
    writeFileSync(join(dir, 'ports.yaml'), 'smtpp: 25\n');
    const bad = await startError({ dir });
    assert.ok(bad instanceof MbError && bad.code === 'MB_SANDBOX_PORTS_FILE', String(bad));
  } finally {
    holder.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a sandbox folder under a parent Dovecot cannot pass through is a coded error naming that folder', { skip: process.getuid?.() !== 0 && 'only as root does Dovecot switch to vmail' }, async () => {
  const base = mkdtempSync(join(tmpdir(), 'mb-sandbox-0700-'));
  const parent = join(base, 'private');
  mkdirSync(parent);
  chmodSync(parent, 0o700);
  try {
    const err = await startError({ dir: join(parent, 'sandbox') });
    assert.ok(err instanceof MbError, String(err));
    assert.equal(err.code, 'MB_SANDBOX_DIR_NOT_TRAVERSABLE');
    assert.equal(err.params.folder, parent);
    assert.match(err.explain('en').fix, new RegExp(`chmod o\\+x ${parent}`));
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
