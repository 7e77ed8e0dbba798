/**
 * `mailbridge credential rotate` against the sandbox: a certificate swapped with an overlap while a
 * "running gateway" keeps asking for tokens with the old one, then with the new one after its
 * restart, the old one removed when the overlap is over, and no token request failing anywhere;
 * a client secret rotated from the command line with no overlap, stored sealed, never printed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/app/config.ts';
import { openSecretBox } from '../../src/config/secrets.ts';
import { createIdentity } from '../../src/identity/index.ts';
import { silentLogger } from '../../src/log/index.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { retireDue, rotateCredential } from '../../src/check/rotate.ts';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import type { SandboxApp } from '../../src/sandbox/model.ts';
import { runCli } from '../admin/cli/harness.ts';

let dir: string;
let sandbox: Sandbox;
let app: SandboxApp;
let store: Store;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mb-rotate-'));
  sandbox = await startSandbox({ dir });
  app = sandbox.directory.data.tenants[0]!.apps[0]!;
  // The app may change its own registration (least privilege: OwnedBy, and it owns itself).
  app.appRoles.graph.push('Application.ReadWrite.OwnedBy');
  app.owners = [app.servicePrincipalId];
  store = await openStore({ driver: 'sqlite', path: join(dir, 'rotate.db') });
});

after(async () => {
  await store?.close();
  await sandbox?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const thumbprint = (pem: string) => new X509Certificate(pem).fingerprint.replace(/:/g, '').toLowerCase();

test('a certificate rotated with an overlap: the running gateway keeps its tokens, the restarted one uses the new certificate, the old one goes after the overlap; no token request fails', { timeout: 120_000 }, async () => {
  const env = {};
  const requests: Array<{ who: string; ok: boolean }> = [];
  const loaded = await loadConfig(sandbox.configFile, env);
  const box = await openSecretBox({ keyFile: loaded.keyFile, env });
  const oldPem = readFileSync(join(dir, 'app-cert.pem'), 'utf8');
  const running = createIdentity({ config: loaded.config, kv: store.kv, secretBox: box, log: silentLogger, env, onTokenRequest: (_c, r) => requests.push({ who: 'running', ok: r.ok }) });
  try {
    await running.getToken('sandbox-cert', 'exchange', { forceRefresh: true });
    const clock = { now: Date.now() };
    const result = await rotateCredential({
      configPath: sandbox.configFile,
      config: loaded.config,
      connection: 'sandbox-cert',
      box,
      kv: store.kv,
      ca: readFileSync(sandbox.caFile, 'utf8'),
      env,
      clock: () => clock.now,
      overlapMs: 3_600_000,
      validDays: 90,
      onTokenRequest: (_c, r) => requests.push({ who: 'rotate', ok: r.ok }),
    });
    assert.equal(result.kind, 'certificate');
    assert.equal(result.attempts, 1);
    assert.ok('removed' in result.old && !result.old.removed && result.old.removeAfter, `the old certificate stays during the overlap: ${JSON.stringify(result.old)}`);
    assert.equal(app.certificates.length, 2, 'both certificates are registered during the overlap');
    const newPem = readFileSync(result.file!, 'utf8');
    assert.match(newPem, /BEGIN PRIVATE KEY/, 'the new key stays on this machine, next to its certificate');
    assert.ok(app.certificates.every((c) => !c.pem.includes('PRIVATE KEY')), 'only the public certificate went to Entra ID');

    // The file now points at the new certificate; a restarted gateway signs with it.
    const reloaded = await loadConfig(sandbox.configFile, env);
    assert.equal(reloaded.config.connections['sandbox-cert']!.certificate!.path, result.file);
    assert.equal(reloaded.config.connections['sandbox-cert']!.certificate!.privateKeyPath, result.file);
    const restarted = createIdentity({ config: reloaded.config, kv: store.kv, secretBox: box, log: silentLogger, env, onTokenRequest: (_c, r) => requests.push({ who: 'restarted', ok: r.ok }) });
    try {
      await running.getToken('sandbox-cert', 'exchange', { forceRefresh: true });
      const before = sandbox.entra.stats.tokenRequests.length;
      await restarted.getToken('sandbox-cert', 'exchange', { forceRefresh: true });
      const assertion = sandbox.entra.stats.tokenRequests.slice(before).at(-1)!.assertion as { header: Record<string, string> };
      const x5t = assertion.header['x5t#S256'] ?? assertion.header.x5t;
      const expected = new X509Certificate(newPem);
      assert.ok([Buffer.from(expected.fingerprint256.replace(/:/g, ''), 'hex').toString('base64url'), Buffer.from(thumbprint(newPem), 'hex').toString('base64url')].includes(x5t!), 'signed with the new certificate');

      // Not yet due: nothing removed. Over: the old one goes, the new one keeps working.
      const readCa = async () => readFileSync(sandbox.caFile, 'utf8');
      assert.deepEqual(await retireDue({ config: reloaded.config, box, kv: store.kv, readCa, env, clock: () => clock.now + 60_000 }), []);
      const removed = await retireDue({ config: reloaded.config, box, kv: store.kv, readCa, env, clock: () => clock.now + 3_600_001, onTokenRequest: (_c, r) => requests.push({ who: 'retire', ok: r.ok }) });
      assert.equal(removed.length, 1);
      assert.deepEqual(app.certificates.map((c) => thumbprint(c.pem)), [thumbprint(newPem)]);
      assert.ok(!app.certificates.some((c) => thumbprint(c.pem) === thumbprint(oldPem)));
      await restarted.getToken('sandbox-cert', 'exchange', { forceRefresh: true });
    } finally {
      await restarted.close();
    }
    assert.ok(requests.length >= 5, JSON.stringify(requests));
    assert.deepEqual(requests.filter((r) => !r.ok), [], 'no token request failed');
  } finally {
    await running.close();
  }
});

test('credential rotate on the command line: a new client secret, stored sealed, the old one removed at once, the value never printed', { timeout: 120_000 }, async () => {
  const oldValue = app.secrets[0]!.value;
  const before = readFileSync(sandbox.configFile, 'utf8');
  const r = await runCli(['--config', sandbox.configFile, 'credential', 'rotate', 'sandbox', '--overlap-hours', '0', '--days', '180'], { cwd: dir });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /New client secret \(keyId [0-9a-f-]{36}, valid until \d{4}-\d\d-\d\d\)/);
  assert.match(r.stdout, /The old one \(keyId [0-9a-f-]{36}\) is removed\./);
  assert.equal(app.secrets.length, 1);
  const newValue = app.secrets[0]!.value;
  assert.notEqual(newValue, oldValue);
  for (const v of [newValue, oldValue]) assert.ok(!r.stdout.includes(v) && !r.stderr.includes(v), 'no secret value in the output');
  const after = readFileSync(sandbox.configFile, 'utf8');
  assert.notEqual(after, before);
  assert.ok(!after.includes(newValue), 'the new secret is sealed in the file');
  assert.match(after, new RegExp(`clientSecretExpires: ${app.secrets[0]!.endDateTime.slice(0, 10)}`));
  const token = await runCli(['--config', sandbox.configFile, 'token', 'sandbox'], { cwd: dir });
  assert.equal(token.code, 0, token.stdout + token.stderr);

  const de = await runCli(['--config', sandbox.configFile, '--lang', 'de', 'credential', 'rotate', 'nowhere'], { cwd: dir });
  assert.equal(de.code, 1);
  assert.match(de.stderr, /MB_IDENTITY_UNKNOWN_CONNECTION/);
});
