import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { registerSecret, scrub, mask, MASK } from '../../src/log/redact.ts';
import { createLogger } from '../../src/log/index.ts';
import { MbError } from '../../src/errors/index.ts';

/** A logger as the gateway builds it, whose lines (scrubbed, as written) land in `lines`. */
function collectingLogger() {
  const lines: string[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
  return { log: createLogger({ level: 'info', destination: sink }), lines };
}

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
  const { log, lines } = collectingLogger();
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

test('a short secret is not scrubbed out of ordinary text: with the password "mail" registered, "mailbridge" stays intact', () => {
  registerSecret('mail');
  const text = 'Fix: run `mailbridge secret set connections.crm.certificate.password`';
  assert.equal(scrub(text), text);
  // Where the short secret stands as a word of its own (a foreign error quoting it), it is masked.
  assert.equal(scrub('openssl: bad password "mail" for pfx; password=mail'), `openssl: bad password "${MASK}" for pfx; password=${MASK}`);
  // The price of that rule: the secret as a word of its own in ordinary text is masked too.
  assert.equal(scrub('Mailbox: mail-server mailing'), `Mailbox: ${MASK}-server mailing`);
  // Long secrets are still masked anywhere, also inside other text.
  const long = 'Pfx-Passw0rd-long-enough';
  registerSecret(long);
  assert.equal(scrub(`x${long}y`), `x${MASK}y`);
});

test('log lines mask the code, state and tokens in URLs; CLI scrubbing keeps a sign-in link usable', () => {
  const { log, lines } = collectingLogger();
  log.info({ req: { url: '/oauth/callback?code=0.AXoA-authcode-123&state=st4te-xyz&session_state=ss-999' } }, 'incoming request');
  log.info('GET https://example.test/cb?foo=1&access_token=tok-abc&client_secret=cs-def#frag');
  log.info('process exited with code=1 and state=ready');
  const all = lines.join('');
  for (const value of ['0.AXoA-authcode-123', 'st4te-xyz', 'ss-999', 'tok-abc', 'cs-def']) assert.ok(!all.includes(value), `${value} in ${all}`);
  assert.match(all, /\/oauth\/callback\?code=\*{8}&state=\*{8}&session_state=\*{8}/);
  assert.match(all, /foo=1&access_token=\*{8}/);
  assert.match(all, /code=1 and state=ready/, 'ordinary text is left alone');
  const link = 'https://login.microsoftonline.com/t/oauth2/v2.0/authorize?client_id=a&state=abc123';
  assert.equal(scrub(link), link);
});

test('log lines mask the value of a secret-named field at any depth, also one never registered', () => {
  const { log, lines } = collectingLogger();
  log.info({ token: 'top-level-tok', connection: { clientSecret: 'cs-"quoted"-1', auth: { refreshToken: 'rt-deep-2', accessToken: 'at-3' } } }, 'fields');
  log.info({ tls: { privateKey: 'pk-4', password: 'pw-5' }, claimToken: 'claim-visible', tokenCount: 3 }, 'more fields');
  const all = lines.join('');
  for (const value of ['top-level-tok', 'quoted', 'rt-deep-2', 'at-3', 'pk-4', 'pw-5']) assert.ok(!all.includes(value), `${value} in ${all}`);
  assert.match(all, /"clientSecret":"\*{8}"/);
  // Fields that only contain a secret's name in theirs are not secrets.
  assert.match(all, /"claimToken":"claim-visible"/);
  assert.match(all, /"tokenCount":3/);
  for (const line of lines) JSON.parse(line);
});
