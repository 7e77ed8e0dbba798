import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { registerSecret, scrub, mask, MASK } from '../../src/log/redact.ts';
import { createLogger } from '../../src/log/index.ts';
import { MbError } from '../../src/errors/index.ts';

test('registered secrets are masked in any text, also URL-encoded', () => {
  const secret = 'Zq8~kP3.x/longSecretValue+1';
  registerSecret(secret);
  const out = scrub(`client_id=a&client_secret=${encodeURIComponent(secret)} and raw ${secret}`);
  assert.ok(!out.includes(secret));
  assert.ok(!out.includes(encodeURIComponent(secret)));
  assert.ok(out.includes(MASK));
});

test('unregistered bearer tokens, JWTs and private keys are masked by pattern', () => {
  const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhYmMxMjM0NTYifQ.c2lnbmF0dXJlMTIz';
  const text = `Authorization: Bearer abcdefghijklmnop token ${jwt}\n-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----`;
  const out = scrub(text);
  assert.ok(!out.includes('abcdefghijklmnop'));
  assert.ok(!out.includes(jwt));
  assert.ok(!out.includes('MIIEv'));
});

test('mask keeps the three-character hint of long secrets only', () => {
  assert.equal(mask('abcdefghijklmnopqrstuvwxyz'), `abc${MASK}`);
  assert.equal(mask('short'), MASK);
  assert.equal(mask(undefined), '');
});

test('log lines and MbError texts never carry a registered secret', () => {
  const secret = 'another-Secret-Value-4711-xyz';
  registerSecret(secret);
  const lines: string[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
  const log = createLogger({ level: 'info', destination: sink });
  log.info({ connection: { clientSecret: secret } }, `message with ${secret}`);
  log.info({ nested: { something: secret } }, 'object value');
  const err = new MbError('MB_INTERNAL', { detail: `failed with ${secret}` });
  log.error({ err }, 'error');
  const all = lines.join('');
  assert.equal(lines.length, 3);
  assert.ok(!all.includes(secret), all);
  assert.ok(!err.message.includes(secret));
  assert.ok(!JSON.stringify(err.explain('de')).includes(secret));
});

test('a slot keeps only its newest value: rotated tokens do not pile up, the current one is masked', () => {
  const first = 'refresh-token-generation-one-abc';
  const second = 'refresh-token-generation-two-xyz';
  registerSecret(first, 'conn:RefreshToken:a');
  assert.ok(!scrub(first).includes(first));
  registerSecret(second, 'conn:RefreshToken:a');
  assert.ok(!scrub(second).includes(second));
  assert.equal(scrub(first), first, 'the replaced value is no longer tracked');
});
