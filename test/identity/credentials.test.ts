import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { connectionSchema } from '../../src/identity/config.ts';
import { MbError } from '../../src/errors/index.ts';
import { scrub } from '../../src/log/redact.ts';
import { assertUsable, credentialWarnings, loadCertificate, loadCredential, secretExpiry } from '../../src/identity/credentials.ts';
import { makeCert, makePfx, testBox } from './helpers.ts';
import { tempDir } from '../support/temp.ts';

const tmp = tempDir('mb-identity-');
after(() => tmp.remove());

const DAY = 86_400_000;
const ctx = { connection: 'crm', clientId: 'a1b2c3d4-0000-0000-0000-000000000001', portal: 'https://entra.microsoft.com' };
const cert = makeCert({ cn: 'mailbridge crm' });
const x509 = new X509Certificate(cert.certPem);

function isMb(code: string, re?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof MbError, String(e));
    assert.equal(e.code, code);
    // Every failure reads in both languages.
    assert.ok(e.explain('en').fix.length > 0 && e.explain('de').fix.length > 0);
    assert.notEqual(e.explain('en').cause, e.explain('de').cause);
    if (re) assert.match(e.explain('en').cause, re);
    return true;
  };
}

test('PEM with certificate and key in one file: key, thumbprints and validity come from the certificate', async () => {
  const path = tmp.file('both.pem', cert.certPem + cert.keyPem);
  const c = await loadCertificate('crm', { path, algorithm: 'PS256' }, undefined);
  assert.equal(c.format, 'pem');
  assert.equal(c.thumbprintSha1, x509.fingerprint.replace(/:/g, '').toLowerCase());
  assert.equal(c.thumbprintSha256, createHash('sha256').update(x509.raw).digest('hex'));
  assert.equal(c.notAfter.getTime(), x509.validToDate.getTime());
  assert.match(c.subject, /CN=mailbridge crm/);
  assert.match(c.privateKeyPem, /BEGIN PRIVATE KEY/);
  // The key is registered with the scrubber (and the PEM rule masks keys anyway).
  assert.ok(!scrub(`oops ${c.privateKeyPem}`).includes(c.privateKeyPem.split('\n')[1]!));
});

test('PEM certificate with the key in privateKeyPath, also encrypted (PKCS#8 and legacy OpenSSL) with a password', async () => {
  const certPath = tmp.file('only-cert.pem', cert.certPem);
  const plainKey = tmp.file('key.pem', cert.keyPem);
  const ok = await loadCertificate('crm', { path: certPath, privateKeyPath: plainKey, algorithm: 'RS256' }, undefined);
  assert.equal(ok.algorithm, 'RS256');

  const pkcs8 = tmp.file('enc8.pem', cert.key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'Pa55!word' }).toString());
  const pkcs1 = tmp.file('enc1.pem', cert.key.export({ type: 'pkcs1', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'Pa55!word' }).toString());
  for (const keyPath of [pkcs8, pkcs1]) {
    const c = await loadCertificate('crm', { path: certPath, privateKeyPath: keyPath, algorithm: 'PS256' }, 'Pa55!word');
    assert.equal(c.thumbprintSha1, ok.thumbprintSha1);
    await assert.rejects(loadCertificate('crm', { path: certPath, privateKeyPath: keyPath, algorithm: 'PS256' }, 'wrong'), isMb('MB_CERT_WRONG_PASSWORD'));
    await assert.rejects(loadCertificate('crm', { path: certPath, privateKeyPath: keyPath, algorithm: 'PS256' }, undefined), isMb('MB_CERT_PASSWORD_REQUIRED'));
  }
  await assert.rejects(loadCertificate('crm', { path: certPath, algorithm: 'PS256' }, undefined), isMb('MB_CERT_NO_KEY'));
});

test('PFX/PKCS#12 with password (AES-256 and legacy 3DES): opens with the right password only', async () => {
  for (const alg of ['aes256', '3des'] as const) {
    const path = tmp.file(`app-${alg}.pfx`, makePfx(cert, 'Geheim#1', alg));
    const c = await loadCertificate('crm', { path, algorithm: 'PS256' }, 'Geheim#1');
    assert.equal(c.format, 'pfx');
    assert.equal(c.thumbprintSha256, createHash('sha256').update(x509.raw).digest('hex'));
    await assert.rejects(loadCertificate('crm', { path, algorithm: 'PS256' }, 'falsch'), isMb('MB_CERT_WRONG_PASSWORD', /does not open/));
    await assert.rejects(loadCertificate('crm', { path, algorithm: 'PS256' }, undefined), isMb('MB_CERT_PASSWORD_REQUIRED'));
  }
});

test('unreadable, empty, mismatched and non-RSA certificate files get their own MB codes', async () => {
  await assert.rejects(loadCertificate('crm', { path: `${tmp.path}/missing.pem`, algorithm: 'PS256' }, undefined), isMb('MB_CERT_UNREADABLE', /ENOENT/));
  await assert.rejects(loadCertificate('crm', { path: tmp.file('garbage.bin', Buffer.from([1, 2, 3, 4])), algorithm: 'PS256' }, undefined), isMb('MB_CERT_UNREADABLE', /PEM or PFX/));
  await assert.rejects(loadCertificate('crm', { path: tmp.file('key-only.pem', cert.keyPem), algorithm: 'PS256' }, undefined), isMb('MB_CERT_NO_CERTIFICATE'));
  const other = makeCert();
  await assert.rejects(
    loadCertificate('crm', { path: tmp.file('mismatch.pem', cert.certPem + other.keyPem), algorithm: 'PS256' }, undefined),
    isMb('MB_CERT_KEY_MISMATCH'),
  );
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  await assert.rejects(loadCertificate('crm', { path: tmp.file('ec.pem', cert.certPem + ec), algorithm: 'PS256' }, undefined), isMb('MB_CERT_NOT_RSA', /EC/));
});

test('certificate expiry: warning 30 days ahead, MB_CERT_EXPIRED once past, MB_CERT_NOT_YET_VALID before its start', async () => {
  const now = Date.now();
  const soon = makeCert({ notAfter: new Date(now + 10 * DAY) });
  const c = await loadCertificate('crm', { path: tmp.file('soon.pem', soon.certPem + soon.keyPem), algorithm: 'PS256' }, undefined);
  const cred = { kind: 'certificate' as const, certificate: c };
  const [w, ...rest] = credentialWarnings(cred, ctx, now);
  assert.equal(rest.length, 0);
  assert.equal(w?.code, 'MB_CERT_EXPIRING');
  assert.equal(w?.params.days, 10);
  assert.match(w!.explain('de').cause, /läuft am .* ab, in 10 Tagen/);
  assert.equal(credentialWarnings(cred, ctx, now - 30 * DAY).length, 0, 'no warning 40 days ahead');
  assert.doesNotThrow(() => assertUsable(cred, ctx, now));
  assert.throws(() => assertUsable(cred, ctx, now + 11 * DAY), isMb('MB_CERT_EXPIRED', new RegExp(c.thumbprintSha1.toUpperCase())));
  assert.throws(() => assertUsable(cred, ctx, c.notBefore.getTime() - 1000), isMb('MB_CERT_NOT_YET_VALID'));
});

test('client secret: revealed through the SecretBox, warning within 30 days, error once expired, warning when > 24 months or unknown', async () => {
  const secret = 'Xy7Q~abcdefghijklmnopqrstuvwxyz0123456789';
  const conn = connectionSchema.parse({ tenantId: 't', clientId: ctx.clientId, clientSecret: testBox.seal(secret), clientSecretExpires: '2026-03-31' });
  const cred = await loadCredential('crm', conn, testBox);
  assert.equal(cred.kind, 'secret');
  assert.equal(cred.kind === 'secret' && cred.clientSecret, secret);
  assert.ok(!scrub(`secret is ${secret}`).includes(secret), 'revealed secret is registered with the scrubber');
  assert.equal(secretExpiry(conn)?.toISOString(), '2026-03-31T23:59:59.999Z');

  const at = (iso: string) => Date.parse(iso);
  assert.deepEqual(credentialWarnings(cred, ctx, at('2026-02-01T00:00:00Z')), []);
  const [w] = credentialWarnings(cred, ctx, at('2026-03-10T12:00:00Z'));
  assert.equal(w?.code, 'MB_CLIENT_SECRET_EXPIRING');
  assert.match(w!.explain('en').fix, /Certificates & secrets › New client secret/);
  assert.match(w!.explain('de').fix, /Zertifikate & Geheimnisse › Neuer geheimer Clientschlüssel/);
  assert.doesNotThrow(() => assertUsable(cred, ctx, at('2026-03-31T20:00:00Z')), 'the last day still counts');
  assert.throws(() => assertUsable(cred, ctx, at('2026-04-01T00:00:01Z')), isMb('MB_CLIENT_SECRET_EXPIRED', /2026-03-31/));

  const far = await loadCredential('crm', { ...conn, clientSecretExpires: '2029-01-01' }, testBox);
  assert.deepEqual(credentialWarnings(far, ctx, at('2026-01-01T00:00:00Z')).map((e) => e.code), ['MB_CLIENT_SECRET_EXPIRY_TOO_FAR']);
  const none = await loadCredential('crm', { ...conn, clientSecretExpires: undefined }, testBox);
  assert.deepEqual(credentialWarnings(none, ctx, Date.now()).map((e) => e.code), ['MB_CLIENT_SECRET_EXPIRY_UNKNOWN']);
});

test('client credentials need exactly one credential; device code never sends one', async () => {
  const base = { tenantId: 't', clientId: ctx.clientId };
  await assert.rejects(loadCredential('crm', connectionSchema.parse(base), testBox), isMb('MB_IDENTITY_NO_CREDENTIAL'));
  await assert.rejects(
    loadCredential('crm', connectionSchema.parse({ ...base, clientSecret: 'abcd', certificate: { path: '/x.pem' } }), testBox),
    isMb('MB_IDENTITY_TWO_CREDENTIALS'),
  );
  assert.equal((await loadCredential('crm', connectionSchema.parse({ ...base, flow: 'device-code', clientSecret: 'abcd' }), testBox)).kind, 'none');
  assert.equal((await loadCredential('crm', connectionSchema.parse({ ...base, flow: 'auth-code' }), testBox)).kind, 'none');
  const broken = { seal: (p: string) => p, reveal: () => { throw new Error('bad key'); }, open: () => { throw new Error('bad key'); } };
  await assert.rejects(loadCredential('crm', connectionSchema.parse({ ...base, clientSecret: 'enc:v1:zzz' }), broken), isMb('MB_IDENTITY_SECRET_UNREADABLE', /bad key/));
});
