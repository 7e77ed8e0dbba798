/**
 * `mailbridge token` and `mailbridge signin`, run as the admin runs them (a child process with a
 * mailbridge.yaml), against the sandbox Entra ID of this test process.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { fetch } from 'undici';
import { makePfx } from './helpers.ts';
import { ALICE, APP, SECRET, startFixture, T, type Fixture } from './sandbox-fixture.ts';

const NODE = process.execPath;
const MAIN = new URL('../../src/admin/cli/main.ts', import.meta.url).pathname;
let f: Fixture;
let configPath: string;
const children = new Set<ChildProcess>();

before(async () => {
  f = await startFixture();
  const conn = { tenantId: T.contoso, tokenEndpoint: f.endpoint(), caFile: f.caFile };
  // A certificate password of four letters that ordinary text contains ("mailbridge").
  const pfx = f.files.file('short-password.pfx', makePfx(f.certs.registered, 'mail'));
  configPath = f.files.file(
    'mailbridge.yaml',
    stringify({
      store: { driver: 'sqlite', path: join(f.files.path, 'cli.db') },
      server: { listen: '127.0.0.1', port: f.gatewayPort },
      connections: {
        crm: { ...conn, clientId: APP.cc, clientSecret: SECRET.valid, clientSecretExpires: '2099-01-01' },
        fresh: { ...conn, clientId: APP.noRoles, clientSecret: SECRET.valid, clientSecretExpires: '2099-01-01' },
        mailbox: { ...conn, flow: 'auth-code', clientId: APP.cc, clientSecret: SECRET.valid, clientSecretExpires: '2099-01-01', redirectUri: f.redirectUri },
        desk: { ...conn, flow: 'device-code', clientId: APP.desk },
        pfx: { ...conn, clientId: APP.cc, certificate: { path: pfx, password: 'mail' } },
        pfxsha1: { ...conn, clientId: APP.cc, certificate: { path: pfx, password: 'mail', algorithm: 'RS256' } },
      },
    }),
  );
});
after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await f?.close();
});

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(NODE, [MAIN, '--config', configPath, ...args], {
    env: { ...process.env, LANG: 'C', MAILBRIDGE_KEY: '', HTTPS_PROXY: '', HTTP_PROXY: '', https_proxy: '', http_proxy: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = once(child, 'exit').then(([code]) => ({ code: code as number, stdout, stderr }));
  /** Resolves with the first match of `re` in stdout. */
  const waitFor = (re: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const m = re.exec(stdout);
        if (m) {
          child.stdout.off('data', check);
          resolve(m);
        }
      };
      child.stdout.on('data', check);
      child.once('exit', () => reject(new Error(`exited before printing ${re}: ${stdout}\n${stderr}`)));
      check();
    });
  return { child, done, waitFor };
}

test('token: prints cloud, tenant, app, roles, expiry and endpoint, never the token or the secret', async () => {
  const r = await run(['token', 'crm']).done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Cloud\s+global/);
  assert.match(r.stdout, new RegExp(`Tenant\\s+${T.contoso}`));
  assert.match(r.stdout, new RegExp(`App\\s+${APP.cc} \\(mailbridge\\)`));
  assert.match(r.stdout, /Roles\s+(IMAP\.AccessAsApp, SMTP\.SendAsApp|SMTP\.SendAsApp, IMAP\.AccessAsApp)/);
  assert.match(r.stdout, /Expires\s+\d{4}-\d\d-\d\dT[\d:.]+Z \(in \d+ min\)/);
  assert.match(r.stdout, new RegExp(`Endpoint\\s+${f.sandbox.urls.global.replace(/\./g, '\\.')}/${T.contoso}/oauth2/v2\\.0/token`));
  assert.ok(!/eyJ[A-Za-z0-9_-]{10,}/.test(r.stdout + r.stderr), 'no JWT printed');
  assert.ok(!(r.stdout + r.stderr).includes(SECRET.valid), 'no secret printed');

  const json = await run(['token', 'crm', '--resource', 'graph', '--json']).done;
  assert.equal(json.code, 0, json.stderr);
  const d = JSON.parse(json.stdout) as Record<string, unknown>;
  assert.equal(d.resource, 'graph');
  assert.deepEqual(d.roles, ['Mail.Send']);
  assert.equal(d.accessToken, undefined);
});

test('token: a token without roles exits 1 with MB_TOKEN_NO_ROLES, in German with --lang de', async () => {
  const r = await run(['--lang', 'de', 'token', 'fresh']).done;
  assert.equal(r.code, 1);
  assert.match(r.stdout, /Mandant\s+/);
  assert.match(r.stdout, /Rollen\s+\(keine\)/);
  // "Ablauf" means expiry in German, and "läuft ab 2099-…" reads as "from": flow and expiry are named plainly.
  assert.match(r.stdout, /Anmeldeverfahren\s+client-credentials/);
  assert.match(r.stdout, /geheimer Clientschlüssel \(gültig bis 2099-01-01\)/);
  assert.doesNotMatch(r.stdout, /\bAblauf\b|läuft ab/);
  assert.match(r.stdout, /MB_TOKEN_NO_ROLES: Token enthält keine Berechtigungen/);
  assert.match(r.stdout, /Behebung: Entra Admin Center .* › API-Berechtigungen/);
});

test('token: wrong usage exits 2, an unknown connection 1, each with its MB code', async () => {
  const usage = await run(['token']).done;
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /MB_CLI_USAGE/);
  const unknown = await run(['token', 'nope']).done;
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /MB_IDENTITY_UNKNOWN_CONNECTION: Unknown connection/);
  assert.match(unknown.stderr, /crm, fresh, mailbox, desk, pfx, pfxsha1/);
});

test('help texts exist in English and German', async () => {
  const en = await run(['token', '--help']).done;
  assert.match(en.stdout, /Usage: mailbridge token <connection>/);
  const de = await run(['--lang', 'de', 'signin', '--help']).done;
  assert.match(de.stdout, /Aufruf: mailbridge signin <verbindung>/);
  const overview = await run(['--help']).done;
  assert.match(overview.stdout, /token\s+Get a token/);
  assert.match(overview.stdout, /signin\s+Sign a mailbox user in/);
});

test('signin: prints the link, serves the redirect itself when no gateway runs, and the token works afterwards', async () => {
  const p = run(['signin', 'mailbox']);
  const [link] = await p.waitFor(/https:\/\/\S+\/oauth2\/v2\.0\/authorize\?\S+/);
  await p.waitFor(/Waiting for the redirect/);
  const redirect = await f.sandbox.signIn(link, ALICE.upn, ALICE.password);
  const page = await fetch(redirect);
  assert.equal(page.status, 200, await page.text());
  const r = await p.done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Signed in: alice@contoso\.example \(connection mailbox\)/);

  const t = await run(['token', 'mailbox']).done;
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /Account\s+alice@contoso\.example/);
  // A new process: the token comes from the sealed cache in the store, not from Entra ID.
  assert.match(t.stdout, /Token from\s+persistent cache \(sealed in the store\)/);
  assert.match(t.stdout, /Scopes\s+(IMAP\.AccessAsUser\.All SMTP\.Send|SMTP\.Send IMAP\.AccessAsUser\.All)/);
});

test('signin --device-code: prints the code, waits while pending, succeeds once the user signed in', async () => {
  const p = run(['signin', 'desk', '--device-code']);
  const [, code] = await p.waitFor(/enter the code (\S+) to authenticate/);
  await p.waitFor(/Waiting for the sign-in \(AADSTS70016\)/);
  f.sandbox.approveDeviceCode(code!, ALICE.upn);
  const r = await p.done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Signed in: alice@contoso\.example \(connection desk\)/);
});

test('token: the certificate is named by the thumbprint its header carries (x5t#S256: SHA-256, x5t: SHA-1)', async () => {
  const cert = new X509Certificate(f.certs.registered.certPem);
  const sha256 = cert.fingerprint256.replace(/:/g, '');
  const sha1 = cert.fingerprint.replace(/:/g, '');
  const ps = await run(['token', 'pfx']).done;
  assert.equal(ps.code, 0, ps.stderr);
  assert.match(ps.stdout, new RegExp(`Credential\\s+certificate PS256, x5t#S256 ${sha256} \\(SHA-1 ${sha1}, `));
  assert.match(ps.stdout, /Token from\s+requested from Entra ID/);
  const rs = await run(['token', 'pfxsha1']).done;
  assert.equal(rs.code, 0, rs.stderr);
  assert.match(rs.stdout, new RegExp(`Credential\\s+certificate RS256, x5t ${sha1} \\(`));
});

test('a four-letter certificate password ("mail") is never printed, and "mailbridge" is printed intact', async () => {
  const standalone = /(?<![A-Za-z0-9])mail(?![A-Za-z0-9])/;
  const token = await run(['token', 'pfx']).done;
  const check = await run(['config', 'check']).done;
  const show = await run(['config', 'show']).done;
  const json = await run(['config', 'show', '--json']).done;
  for (const r of [token, check, show, json]) {
    assert.ok(!standalone.test(r.stdout + r.stderr), r.stdout + r.stderr);
    assert.ok(!(r.stdout + r.stderr).includes('********bridge'), r.stdout + r.stderr);
  }
  assert.match(token.stdout, /\(mailbridge\)/);
  // The plain-text warning's fix names the command with the product's name whole.
  assert.match(check.stdout, /mailbridge secret set connections\.pfx\.certificate\.password/);
  assert.match(show.stdout, /password: "?\*{8}"?/);
});

test('signin --device-code: SIGTERM while polling cancels cleanly (MB_SIGNIN_CANCELLED, exit status 143)', async () => {
  const p = run(['signin', 'desk', '--device-code']);
  await p.waitFor(/Waiting for the sign-in \(AADSTS70016\)/);
  p.child.kill('SIGTERM');
  const r = await p.done;
  assert.equal(r.code, 143, r.stdout + r.stderr);
  assert.match(r.stderr, /MB_SIGNIN_CANCELLED: Sign-in cancelled/);
  assert.ok(!/AUTHORIZATION_PENDING/.test(r.stderr), r.stderr);
});

test('signin --device-code: a code nobody enters ends after --timeout with MB_SIGNIN_DEVICE_CODE_TIMEOUT, whose fix names the command, in German too', { timeout: 180_000 }, async () => {
  // --timeout takes whole minutes, so this test waits one: nothing in the sandbox is approved.
  const p = run(['--lang', 'de', 'signin', 'desk', '--device-code', '--timeout', '1']);
  await p.waitFor(/AADSTS70016/);
  const r = await p.done;
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /MB_SIGNIN_DEVICE_CODE_TIMEOUT: Gerätecode nicht rechtzeitig eingegeben/);
  assert.match(r.stderr, /In der Wartezeit \(1 min\) hat niemand den Code eingegeben/);
  assert.match(r.stderr, /mailbridge signin desk --device-code/);
  // The old text told the admin to check that the browser can reach a redirect address, given as "-".
  assert.ok(!/erreichen|reach -/.test(r.stderr), r.stderr);
});
