import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openApp } from '../../src/app/open.ts';
import { MbError } from '../../src/errors/index.ts';

function folder(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mb-app-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const CONNECTION = 'connections:\n  contoso:\n    tenantId: contoso.example\n    clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35\n    clientSecret: a-plain-client-secret\n';

test('the configuration is read at once; store, secret box and identity open on first use, once', async (t) => {
  const dir = folder(t);
  const configPath = join(dir, 'mailbridge.yaml');
  const db = join(dir, 'data', 'mb.db');
  writeFileSync(configPath, `store:\n  driver: sqlite\n  path: ${db}\n${CONNECTION}`);
  // A key file others may read: the box refuses it, so only what needs a secret may fail on it.
  writeFileSync(join(dir, 'mailbridge.key'), Buffer.alloc(32, 7), { mode: 0o644 });
  const app = await openApp({ configPath, env: {} });
  t.after(() => app.close());
  assert.deepEqual(Object.keys(app.config.connections), ['contoso']);
  assert.equal(app.keyFile, join(dir, 'mailbridge.key'));
  assert.equal(existsSync(db), false, 'reading the configuration opens no store');

  const store = await app.store();
  assert.equal(await app.store(), store);
  assert.equal(existsSync(db), true);
  await assert.rejects(app.secretBox(), (err: unknown) => err instanceof MbError && err.code === 'MB_SECRET_KEY_PERMISSIONS');
  // The identity needs the box: it fails with the box's code, and the store stays usable.
  await assert.rejects(app.identity(), (err: unknown) => err instanceof MbError && err.code === 'MB_SECRET_KEY_PERMISSIONS');
  await store.ping();
});

test('identity opens the box and the store it writes to; close closes what was opened', async (t) => {
  const dir = folder(t);
  const configPath = join(dir, 'mailbridge.yaml');
  writeFileSync(configPath, `store:\n  driver: sqlite\n  path: ${join(dir, 'mb.db')}\n${CONNECTION}`);
  const app = await openApp({ configPath, env: {} });
  const identity = await app.identity();
  assert.equal(await app.identity(), identity);
  assert.deepEqual(identity.connections(), ['contoso']);
  const store = await app.store();
  await store.ping();
  await app.close();
  await assert.rejects(store.ping());
});

test('a configuration that does not load opens nothing', async (t) => {
  const dir = folder(t);
  const configPath = join(dir, 'mailbridge.yaml');
  writeFileSync(configPath, `store:\n  driver: sqlite\n  path: ${join(dir, 'mb.db')}\nserver:\n  port: many\n`);
  await assert.rejects(openApp({ configPath, env: {}, lang: 'de' }), (err: unknown) => err instanceof MbError && err.code === 'MB_CONFIG_INVALID' && /server\.port/.test(err.message));
  assert.equal(existsSync(join(dir, 'mb.db')), false);
});
