/**
 * The console's config editor end to end through the admin API of a running gateway (issue 13 item
 * 3): GET /api/v1/config/file is mailbridge.yaml as written, comments and order kept, with every
 * secret (sealed or clear), password hash and password inside a URL shown as the mask; GET
 * /api/v1/config masks the hashes too. Sent back unchanged, the file applies and every sealed value
 * stays as it was; a secret typed in clear is sealed in the file and works at once; a mask where the
 * file has no value is refused (validate names its line); without a key nothing typed is written in
 * clear. No configured secret appears in any answer or in the log.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadConfig } from '../../../src/app/config.ts';
import { openSecretBox } from '../../../src/config/secrets.ts';
import { createLogger } from '../../../src/log/index.ts';
import { MASK } from '../../../src/log/redact.ts';
import { startGateway, type Gateway } from '../../../src/server/index.ts';
import { hashPassword } from '../../../src/util/password.ts';
import { tempDir } from '../../support/temp.ts';

const ADMIN = randomBytes(24).toString('base64url');
const READER = `reader-${randomBytes(16).toString('hex')}`;
const CLIENT_SECRET = `Qx8~${randomBytes(18).toString('base64url')}`;
const METRICS_TOKEN = `metrics-${randomBytes(12).toString('hex')}`;
const PROXY_PASSWORD = `pw${randomBytes(8).toString('hex')}`;
const dir = tempDir('mb-config-file-');
const file = join(dir.path, 'mailbridge.yaml');
const keyFile = join(dir.path, 'mailbridge.key');
const logged: string[] = [];
const answers: string[] = [];
let gw: Gateway;
let relayHash: string;
let userHash: string;
let sealedSecrets: string[];

before(async () => {
  const box = await openSecretBox({ keyFile, env: {} });
  relayHash = await hashPassword('scanner password 1', 10);
  userHash = await hashPassword('console password 9', 10);
  const sealedClient = box.seal(CLIENT_SECRET);
  const sealedAdmin = box.seal(ADMIN);
  sealedSecrets = [sealedClient, sealedAdmin];
  writeFileSync(
    file,
    [
      '# mailbridge for the editor test: this comment stays',
      'log:',
      '  level: warn # quiet while testing',
      'store:',
      '  driver: sqlite',
      `  path: ${join(dir.path, 'mb.db')}`,
      'server:',
      '  port: 0',
      `  proxy: http://user:${PROXY_PASSWORD}@proxy.intern:3128`,
      '  # a clear secret the admin left in the file (a warning, kept as it is)',
      `  metricsToken: ${METRICS_TOKEN}`,
      'connections:',
      '  contoso:',
      `    tenantId: ${randomUUID()}`,
      `    clientId: ${randomUUID()}`,
      `    clientSecret: ${sealedClient}`,
      'relay:',
      `  dataDir: ${join(dir.path, 'relay')}`,
      '  listeners:',
      '    - { host: 127.0.0.1, port: 0, tls: none, allowPlainAuth: true }',
      '  users:',
      '    scanner:',
      `      passwordHash: "${relayHash}"`,
      "      allowedSenders: ['@contoso.test']",
      'api:',
      '  keys:',
      '    ops:',
      `      key: ${sealedAdmin}`,
      '      scopes: [admin]',
      '    viewer:',
      `      key: ${box.seal(READER)}`,
      '      scopes: [read]',
      '  users:',
      '    anna:',
      `      password: "${userHash}"`,
      '      role: admin',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  sealedSecrets.push(parse(readFileSync(file, 'utf8')).api.keys.viewer.key as string);
  const { config } = await loadConfig(file, {});
  gw = await startGateway(config, createLogger({ level: 'debug', destination: { write: (line: string) => logged.push(line) } }), { keyFile, env: {}, configPath: file });
});

after(async () => {
  await gw?.close('test end');
  dir.remove();
});

async function call(method: string, url: string, payload?: unknown, key = ADMIN) {
  const r = await gw.http.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${key}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
  answers.push(r.body);
  return { status: r.statusCode, raw: r.body, body: r.json() as Record<string, unknown> & { error?: { code: string; cause: string; fix: string } } };
}

const fileView = async () => {
  const r = await call('GET', '/api/v1/config/file');
  assert.equal(r.status, 200, r.raw);
  return r.body as unknown as { path: string; text: string };
};

/** Every sealed value in a text. */
const sealedIn = (text: string) => [...text.matchAll(/enc:v1:[A-Za-z0-9_-]+/g)].map((m) => m[0]).sort();

test('the file view keeps the comments and shows no secret, sealed value, hash or URL password; GET /api/v1/config masks the hashes', async () => {
  const view = await fileView();
  assert.equal(view.path, file);
  assert.match(view.text, /^# mailbridge for the editor test: this comment stays\n/);
  assert.match(view.text, /level: warn # quiet while testing/);
  assert.match(view.text, /# a clear secret the admin left in the file/);
  for (const hidden of [CLIENT_SECRET, ADMIN, READER, METRICS_TOKEN, PROXY_PASSWORD, relayHash, userHash, 'enc:v1:', '$scrypt$']) {
    assert.equal(view.text.includes(hidden), false, `${hidden.slice(0, 8)}… in the file view`);
  }
  const shown = parse(view.text) as { server: { proxy: string; metricsToken: string }; connections: { contoso: { clientSecret: string } }; relay: { users: { scanner: { passwordHash: string } } }; api: { keys: { ops: { key: string } }; users: { anna: { password: string } } } };
  assert.deepEqual(
    [shown.connections.contoso.clientSecret, shown.server.metricsToken, shown.relay.users.scanner.passwordHash, shown.api.keys.ops.key, shown.api.users.anna.password],
    [MASK, MASK, MASK, MASK, MASK],
  );
  assert.equal(shown.server.proxy, `http://user:${MASK}@proxy.intern:3128`);
  // Nothing but the masked values changed: the same keys in the same order, no default added.
  assert.deepEqual(view.text.split('\n').map((l) => l.replace(/:.*$/, '')), readFileSync(file, 'utf8').split('\n').map((l) => l.replace(/:.*$/, '')));

  assert.equal((await call('GET', '/api/v1/config/file', undefined, READER)).status, 403, 'the file is the admin’s');
  const effective = await call('GET', '/api/v1/config', undefined, READER);
  assert.equal(effective.status, 200);
  assert.ok(!effective.raw.includes('$scrypt$'), 'no password hash in the effective configuration');
  const config = effective.body.config as { relay: { users: { scanner: { passwordHash: string } } }; api: { users: { anna: { password: string } } } };
  assert.deepEqual([config.relay.users.scanner.passwordHash, config.api.users.anna.password], [MASK, MASK]);
});

test('the file view sent back unchanged applies and leaves every sealed value as it was; a changed log level restarts only that', async () => {
  const before = readFileSync(file, 'utf8');
  const view = await fileView();
  const same = await call('POST', '/api/v1/config/apply', { text: view.text });
  assert.equal(same.status, 200, same.raw);
  assert.deepEqual(same.body, { applied: true, restarted: [], needsRestart: [] });
  const after = readFileSync(file, 'utf8');
  assert.equal(after, before, 'byte for byte the file it was: each kept value as the file wrote it');
  assert.deepEqual(sealedIn(after), [...sealedSecrets].sort(), 'every sealed value as it was');
  assert.match(after, /# a clear secret the admin left in the file/);

  const edited = await call('POST', '/api/v1/config/apply', { text: (await fileView()).text.replace('level: warn', 'level: info') });
  assert.equal(edited.status, 200, edited.raw);
  assert.deepEqual(edited.body, { applied: true, restarted: ['log.level'], needsRestart: [] });
  const now = readFileSync(file, 'utf8');
  assert.match(now, /^ {2}level: info # quiet while testing$/m);
  assert.deepEqual(sealedIn(now), [...sealedSecrets].sort());
  assert.equal((parse(now) as { server: { metricsToken: string } }).server.metricsToken, METRICS_TOKEN, 'the clear secret the file had is kept');
});

test('a secret typed in clear is sealed in the file and works at once; a mask where the file has none is refused at its line', async () => {
  const typed = `typed-${randomBytes(16).toString('hex')}`;
  const view = await fileView();
  const withKey = view.text.replace('  users:\n    anna:', `    typed:\n      key: ${typed}\n      scopes: [read]\n  users:\n    anna:`);
  assert.notEqual(withKey, view.text);

  // As you type: valid, and no plain-text warning for a secret apply will seal.
  const checked = await call('POST', '/api/v1/config/validate', { yaml: withKey });
  const report = checked.body as { valid: boolean; errors: Array<{ code: string }>; warnings: Array<{ code: string; path: string }> };
  assert.equal(report.valid, true, checked.raw);
  assert.ok(!report.warnings.some((w) => w.path === 'api.keys.typed.key'), checked.raw);

  const applied = await call('POST', '/api/v1/config/apply', { text: withKey });
  assert.equal(applied.status, 200, applied.raw);
  assert.deepEqual(applied.body.restarted, ['api.keys']);
  const written = readFileSync(file, 'utf8');
  assert.ok(!written.includes(typed), 'the typed secret is not in the file in clear');
  const stored = (parse(written) as { api: { keys: { typed: { key: string } } } }).api.keys.typed.key;
  assert.match(stored, /^enc:v1:/);
  assert.equal((await openSecretBox({ keyFile, env: {} })).reveal(stored), typed);
  assert.equal((await call('GET', '/api/v1/config', undefined, typed)).status, 200, 'the new key works at once');
  assert.ok(!(await fileView()).text.includes(typed));

  // A mask for a connection the file does not have: nothing to keep.
  const copied = (await fileView()).text.replace('connections:\n', `connections:\n  fabrikam:\n    tenantId: ${randomUUID()}\n    clientId: ${randomUUID()}\n    clientSecret: "${MASK}"\n`);
  const line = copied.split('\n').findIndex((l) => l.includes('clientSecret') && l.includes(MASK) && copied.indexOf('fabrikam') < copied.indexOf(l)) + 1;
  const valid = await call('POST', '/api/v1/config/validate', { yaml: copied });
  const errors = (valid.body as { errors: Array<{ code: string; path: string; line?: number }> }).errors;
  assert.deepEqual(errors.map((e) => [e.code, e.path, e.line]), [['MB_API_CONFIG_MASK_NEW', 'connections.fabrikam.clientSecret', line]]);
  const before = readFileSync(file, 'utf8');
  const refused = await call('POST', '/api/v1/config/apply', { text: copied });
  assert.equal(refused.status, 422, refused.raw);
  assert.equal(refused.body.error?.code, 'MB_API_CONFIG_MASK_NEW');
  assert.match(refused.body.error!.fix, /mailbridge secret set connections\.fabrikam\.clientSecret/);
  assert.equal(readFileSync(file, 'utf8'), before, 'mailbridge.yaml left as it was');
});

test('without a key a secret typed in clear is refused, not written in clear', async () => {
  const typed = `nokey-${randomBytes(16).toString('hex')}`;
  const text = (await fileView()).text.replace(/metricsToken: .*/, `metricsToken: ${typed}`);
  const before = readFileSync(file, 'utf8');
  // The key file gone (the running gateway keeps its key in memory): nothing to seal a new value with.
  renameSync(keyFile, `${keyFile}.away`);
  try {
    const checked = await call('POST', '/api/v1/config/validate', { yaml: text });
    assert.deepEqual((checked.body as { errors: Array<{ code: string; path: string }> }).errors.map((e) => [e.code, e.path]), [['MB_API_CONFIG_SECRET_CLEAR', 'server.metricsToken']]);
    const refused = await call('POST', '/api/v1/config/apply', { text });
    assert.equal(refused.status, 422, refused.raw);
    assert.equal(refused.body.error?.code, 'MB_API_CONFIG_SECRET_CLEAR');
    assert.match(refused.body.error!.fix, /mailbridge secret set server\.metricsToken/);
    assert.equal(readFileSync(file, 'utf8'), before);
  } finally {
    renameSync(`${keyFile}.away`, keyFile);
  }
  // Nothing typed or configured ever came back in an answer or reached the log.
  const everything = [...answers, ...logged].join('\n');
  for (const secret of [CLIENT_SECRET, ADMIN, READER, METRICS_TOKEN, PROXY_PASSWORD, relayHash, userHash, typed, ...sealedSecrets]) {
    assert.equal(everything.includes(secret), false, `${secret.slice(0, 10)}… in an answer or the log`);
  }
  assert.ok(logged.length > 0, 'the log was captured');
});
