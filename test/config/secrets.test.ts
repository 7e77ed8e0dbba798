import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, statSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { ENC_PREFIX, generateKey, isEncrypted, openSecretBox } from '../../src/config/secrets.ts';
import type { SecretBox } from '../../src/config/secret-box.ts';
import { MbError } from '../../src/errors/index.ts';
import { scrub } from '../../src/log/redact.ts';
import { tempDir } from '../support/temp.ts';

const mbCode = (code: string) => (err: unknown) => {
  assert.ok(err instanceof MbError, String(err));
  assert.equal(err.code, code);
  const en = err.explain('en');
  const de = err.explain('de');
  assert.ok(en.cause && en.fix && de.cause && de.fix);
  assert.notEqual(en.fix, de.fix);
  return true;
};

test('the key file is created with mode 0600 on first use, and reused afterwards', async (t) => {
  const dir = tempDir('mb-secrets-', t).path;
  const keyFile = join(dir, 'sub', 'mailbridge.key');
  const box = await openSecretBox({ keyFile, env: {} });
  assert.equal(box.hasKey, false);
  assert.equal(existsSync(keyFile), false, 'opening alone creates nothing');
  const sealed = box.seal('first-secret-value-1');
  assert.equal(box.created, true);
  const st = statSync(keyFile);
  assert.equal(st.mode & 0o777, 0o600);
  const keyText = readFileSync(keyFile, 'utf8');
  assert.match(keyText, /^[A-Za-z0-9+/]{43}=\n$/);
  assert.deepEqual(readdirSync(join(dir, 'sub')), ['mailbridge.key'], 'no temporary file left behind');

  const again = await openSecretBox({ keyFile, env: {} });
  assert.equal(again.hasKey, true);
  assert.equal(again.reveal(sealed), 'first-secret-value-1');
  again.seal('second');
  assert.equal(again.created, false);
  assert.equal(readFileSync(keyFile, 'utf8'), keyText, 'the key is not replaced');
});

test('two boxes racing to create the key agree on one key', async (t) => {
  const dir = tempDir('mb-secrets-', t).path;
  const keyFile = join(dir, 'mailbridge.key');
  const a = await openSecretBox({ keyFile, env: {} });
  const b = await openSecretBox({ keyFile, env: {} });
  const fromA = a.seal('value-sealed-by-a');
  const fromB = b.seal('value-sealed-by-b'); // finds A's key file and uses it
  assert.equal(a.created, true);
  assert.equal(b.created, false);
  assert.equal(b.reveal(fromA), 'value-sealed-by-a');
  assert.equal(a.reveal(fromB), 'value-sealed-by-b');
});

test('round trip: enc:v1 format, fresh IV each time, unicode, plain text passes through', async (t) => {
  const dir = tempDir('mb-secrets-', t).path;
  const box: SecretBox = await openSecretBox({ keyFile: join(dir, 'k'), env: {} });
  const values = ['Zq8~kP3.x/longSecretValue+1', 'Passwört € 🔑', 'x'.repeat(5000)];
  for (const v of values) {
    const sealed = box.seal(v);
    assert.ok(sealed.startsWith(ENC_PREFIX));
    assert.match(sealed.slice(ENC_PREFIX.length), /^[A-Za-z0-9_-]+$/);
    const raw = Buffer.from(sealed.slice(ENC_PREFIX.length), 'base64url');
    assert.equal(raw.length, 12 + 16 + Buffer.byteLength(v));
    assert.ok(!sealed.includes(v));
    assert.equal(box.reveal(sealed), v);
    assert.notEqual(box.seal(v), sealed, 'a fresh IV per value');
  }
  assert.equal(box.reveal('plain-text-value-42'), 'plain-text-value-42');
  assert.ok(isEncrypted('enc:v1:abc') && !isEncrypted('plain'));
});

test('reveal registers every clear value with the scrubber', async (t) => {
  const dir = tempDir('mb-secrets-', t).path;
  const keyFile = join(dir, 'k');
  // Sealed in another process, so this one has never seen the clear value.
  const clear = `never-seen-${randomBytes(8).toString('hex')}`;
  const secretsModule = new URL('../../src/config/secrets.ts', import.meta.url).href;
  const code = `const { openSecretBox } = await import(${JSON.stringify(secretsModule)});
    const box = await openSecretBox({ keyFile: ${JSON.stringify(keyFile)}, env: {} });
    process.stdout.write(box.seal(process.env.CLEAR));`;
  const sealed = execFileSync(process.execPath, ['--input-type=module', '-e', code], { env: { ...process.env, CLEAR: clear } }).toString();
  assert.ok(sealed.startsWith(ENC_PREFIX));
  assert.equal(scrub(`value=${clear}`), `value=${clear}`, 'not registered before reveal');
  const reader = await openSecretBox({ keyFile, env: {} });
  assert.equal(reader.reveal(sealed), clear);
  assert.equal(scrub(`value=${clear}`), 'value=********');
  const plain = `plain-${randomBytes(8).toString('hex')}`;
  assert.equal(scrub(plain), plain);
  reader.reveal(plain);
  assert.ok(!scrub(plain).includes(plain));
});

test('a changed byte anywhere (IV, tag, ciphertext) is detected, not decrypted to garbage', async (t) => {
  const dir = tempDir('mb-secrets-', t).path;
  const box = await openSecretBox({ keyFile: join(dir, 'k'), env: {} });
  const sealed = box.seal('tamper-target-secret');
  const raw = Buffer.from(sealed.slice(ENC_PREFIX.length), 'base64url');
  for (const i of [0, 11, 12, 27, 28, raw.length - 1]) {
    const bad = Buffer.from(raw);
    bad[i] = bad[i]! ^ 0x01;
    assert.throws(() => box.reveal(ENC_PREFIX + bad.toString('base64url'), 'connections.x.clientSecret'), (err: unknown) => {
      mbCode('MB_SECRET_UNDECRYPTABLE')(err);
      assert.match((err as MbError).explain('en').cause, /connections\.x\.clientSecret cannot be decrypted .* or the stored value was altered/);
      return true;
    });
  }
  // cut off, or not base64url, or an unknown version
  assert.throws(() => box.reveal(sealed.slice(0, 30)), mbCode('MB_SECRET_MALFORMED'));
  assert.throws(() => box.reveal(`${sealed}!`), mbCode('MB_SECRET_MALFORMED'));
  assert.throws(() => box.reveal(sealed.replace('enc:v1:', 'enc:v2:')), mbCode('MB_SECRET_MALFORMED'));
});

test('a wrong key fails with code, cause and fix naming where the key came from', async (t) => {
  const dir = tempDir('mb-secrets-', t).path;
  const right = await openSecretBox({ keyFile: join(dir, 'k'), env: {} });
  const sealed = right.seal('secret-under-right-key');
  const wrong = await openSecretBox({ keyFile: join(dir, 'k'), env: { MAILBRIDGE_KEY: generateKey() } });
  assert.equal(wrong.keySource, 'env');
  assert.throws(() => wrong.reveal(sealed, 'connections.c.clientSecret'), (err: unknown) => {
    mbCode('MB_SECRET_UNDECRYPTABLE')(err);
    assert.match((err as MbError).explain('en').cause, /with the key from MAILBRIDGE_KEY/);
    assert.match((err as MbError).explain('de').fix, /Schlüssel, der beim Setzen des Geheimnisses galt/);
    return true;
  });
  // and an encrypted value with no key at all
  const none = await openSecretBox({ keyFile: join(dir, 'missing.key'), env: {} });
  assert.throws(() => none.reveal(sealed, 'connections.c.clientSecret'), mbCode('MB_SECRET_KEY_MISSING'));
});

test('MAILBRIDGE_KEY: base64 or base64url of 32 bytes; anything else is refused', async (t) => {
  const dir = tempDir('mb-secrets-', t).path;
  const key = randomBytes(32);
  const a = await openSecretBox({ keyFile: join(dir, 'unused'), env: { MAILBRIDGE_KEY: key.toString('base64') } });
  const b = await openSecretBox({ keyFile: join(dir, 'unused'), env: { MAILBRIDGE_KEY: key.toString('base64url') } });
  assert.equal(b.reveal(a.seal('shared-key-secret')), 'shared-key-secret');
  assert.equal(existsSync(join(dir, 'unused')), false, 'no key file with MAILBRIDGE_KEY');
  await assert.rejects(openSecretBox({ keyFile: 'x', env: { MAILBRIDGE_KEY: randomBytes(16).toString('base64') } }), mbCode('MB_SECRET_KEY_INVALID'));
  await assert.rejects(openSecretBox({ keyFile: 'x', env: { MAILBRIDGE_KEY: 'not base64 at all!' } }), mbCode('MB_SECRET_KEY_INVALID'));
});

test('a key file the group or others can read is refused with the chmod fix; a damaged one too', async (t) => {
  const dir = tempDir('mb-secrets-', t).path;
  const keyFile = join(dir, 'mailbridge.key');
  writeFileSync(keyFile, `${generateKey()}\n`, { mode: 0o600 });
  chmodSync(keyFile, 0o644);
  await assert.rejects(openSecretBox({ keyFile, env: {} }), (err: unknown) => {
    mbCode('MB_SECRET_KEY_PERMISSIONS')(err);
    assert.match((err as MbError).explain('en').fix, new RegExp(`chmod 600 ${keyFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match((err as MbError).explain('en').cause, /mode 0644/);
    return true;
  });
  chmodSync(keyFile, 0o600);
  await openSecretBox({ keyFile, env: {} });
  writeFileSync(keyFile, 'too short\n');
  await assert.rejects(openSecretBox({ keyFile, env: {} }), mbCode('MB_SECRET_KEY_INVALID'));
});
