import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { scrub } from '../../../src/log/redact.ts';
import {
  addApp,
  addCertificate,
  addSecret,
  addUser,
  expireSecret,
  grantAppRole,
  grantDelegatedConsent,
  removeCertificate,
  removeSecret,
  revokeAppRole,
  setAppDisabled,
  setDelegatedConsent,
} from '../../../src/sandbox/entra/ops.ts';
import { SandboxOpError, sandboxEntraErrors } from '../../../src/sandbox/entra/op-errors.ts';
import { APP, assertAadError, ccForm, EXO_DEFAULT, IMAP, JWT_BEARER, makeAssertion, post, REDIRECT, startFixture, T, tokenUrl, verifyToken, type Fixture } from './helpers.ts';

let f: Fixture;
before(async () => {
  f = await startFixture();
});
after(async () => {
  await f?.close();
});

const token = (clientId: string, secret: string, scope = EXO_DEFAULT) => post(f, tokenUrl(f, T.contoso), ccForm(clientId, { client_secret: secret, scope }));

describe('run-time changes take effect on the next request', () => {
  test('register an app, add a secret (Graph addPassword shape), grant and revoke app roles', async () => {
    const app = addApp(f.dir, 'contoso.example', { displayName: 'added at run time' });
    const secret = addSecret(f.dir, T.contoso, app.appId, { displayName: 'ci', now: f.clock.now });
    assert.match(secret.secretText, /^[\w.~-]{3}8Q~[\w.~-]{34}$/);
    assert.equal(secret.hint, secret.secretText.slice(0, 3));
    assert.match(secret.keyId, /^[0-9a-f-]{36}$/);
    const twoYears = new Date(f.clock.now);
    twoYears.setUTCMonth(twoYears.getUTCMonth() + 24);
    assert.equal(secret.endDateTime, twoYears.toISOString());
    assert.equal(scrub(`secret=${secret.secretText}`), 'secret=********', 'the new secret is registered for redaction');

    let r = await token(app.appId, secret.secretText);
    assert.equal(r.status, 200, r.text);
    assert.equal('roles' in (await verifyToken(f, String(r.body.access_token))).payload, false);

    grantAppRole(f.dir, T.contoso, app.appId, 'exchange', 'smtp.sendasapp');
    grantAppRole(f.dir, T.contoso, app.appId, 'exchange', 'IMAP.AccessAsApp');
    r = await token(app.appId, secret.secretText);
    assert.deepEqual((await verifyToken(f, String(r.body.access_token))).payload.roles, ['SMTP.SendAsApp', 'IMAP.AccessAsApp']);

    revokeAppRole(f.dir, T.contoso, app.appId, 'exchange', 'SMTP.SendAsApp');
    r = await token(app.appId, secret.secretText);
    assert.deepEqual((await verifyToken(f, String(r.body.access_token))).payload.roles, ['IMAP.AccessAsApp']);

    expireSecret(f.dir, T.contoso, app.appId, secret.keyId, f.clock.now);
    assertAadError(await token(app.appId, secret.secretText), 401, 'invalid_client', 7000222);
    removeSecret(f.dir, T.contoso, app.appId, secret.keyId);
    assertAadError(await token(app.appId, secret.secretText), 401, 'invalid_client', 7000215);

    setAppDisabled(f.dir, T.contoso, app.appId, true);
    assertAadError(await token(app.appId, secret.secretText), 400, 'unauthorized_client', 7000112);
  });

  test('certificates: add returns the portal thumbprints and assertions work; remove makes them fail (700027)', async () => {
    const app = addApp(f.dir, T.contoso, { displayName: 'cert app' });
    const cert = f.ca.issueSelfSigned('cert-app');
    const added = addCertificate(f.dir, T.contoso, app.appId, cert.certPem);
    assert.match(added.thumbprint, /^[0-9A-F]{40}$/);
    assert.match(added.thumbprintSha256, /^[0-9A-F]{64}$/);
    assert.equal(Buffer.from(added.customKeyIdentifier, 'base64').toString('hex').toUpperCase(), added.thumbprint);
    assert.equal(app.certificates.length, 1);
    addCertificate(f.dir, T.contoso, app.appId, cert.certPem);
    assert.equal(app.certificates.length, 1, 'the same certificate is not added twice');
    assert.throws(() => addCertificate(f.dir, T.contoso, app.appId, cert.certPem + cert.keyPem), /MB_SANDBOX_BAD_CERTIFICATE/);
    const withCert = async () =>
      post(f, tokenUrl(f, T.contoso), ccForm(app.appId, { client_assertion_type: JWT_BEARER, client_assertion: await makeAssertion(f, { cert, iss: app.appId }) }));
    assert.equal((await withCert()).status, 200);
    removeCertificate(f.dir, T.contoso, app.appId, added.thumbprintSha256);
    assert.equal(app.certificates.length, 0);
    assertAadError(await withCert(), 401, 'invalid_client', 700027, /The key was not found/);
    assert.throws(() => removeCertificate(f.dir, T.contoso, app.appId, added.thumbprint), /MB_SANDBOX_CERT_NOT_FOUND/);
  });

  test('delegated consent and a new user: 65001 until consented, then tokens', async () => {
    const app = addApp(f.dir, T.contoso, { displayName: 'delegated', redirectUris: [REDIRECT] });
    const secret = addSecret(f.dir, T.contoso, app.appId);
    const user = addUser(f.dir, T.contoso, { upn: 'carol@contoso.example', displayName: 'Carol', password: 'Carol-pw-1' });
    const signIn = async () => {
      const url = `${f.url}/${T.contoso}/oauth2/v2.0/authorize?client_id=${app.appId}&response_type=code&redirect_uri=${encodeURIComponent(REDIRECT)}&scope=${encodeURIComponent(`${IMAP} offline_access`)}`;
      const code = new URL(await f.sandbox.signIn(url, user.upn)).searchParams.get('code') ?? '';
      return post(f, tokenUrl(f, T.contoso), { grant_type: 'authorization_code', client_id: app.appId, code, redirect_uri: REDIRECT, client_secret: secret.secretText });
    };
    assertAadError(await signIn(), 400, 'invalid_grant', 65001);
    grantDelegatedConsent(f.dir, T.contoso, app.appId, [IMAP]);
    assertAadError(await signIn(), 400, 'invalid_grant', 65001); // offline_access still missing
    grantDelegatedConsent(f.dir, T.contoso, app.appId, ['offline_access']);
    const ok = await signIn();
    assert.equal(ok.status, 200, ok.text);
    assert.equal((await verifyToken(f, String(ok.body.access_token))).payload.upn, 'carol@contoso.example');
    setDelegatedConsent(f.dir, T.contoso, app.appId, []);
    assertAadError(await signIn(), 400, 'invalid_grant', 65001);
  });
});

describe('operation errors', () => {
  test('unknown tenant, app, role, scope, duplicate user, foreign domain, too long a secret', () => {
    assert.throws(() => addApp(f.dir, 'nowhere.example'), (e: SandboxOpError) => e.code === 'MB_SANDBOX_TENANT_NOT_FOUND' && e.http === 404);
    assert.throws(() => grantAppRole(f.dir, T.contoso, '99999999-9999-4999-8999-999999999999', 'exchange', 'IMAP.AccessAsApp'), /MB_SANDBOX_APP_NOT_FOUND/);
    assert.throws(() => grantAppRole(f.dir, T.contoso, APP.cc, 'exchange', 'IMAP.AccessAsUser.All'), /MB_SANDBOX_UNKNOWN_ROLE: Office 365 Exchange Online has no application permission/);
    assert.throws(() => grantDelegatedConsent(f.dir, T.contoso, APP.cc, ['https://outlook.office.com/Bogus']), /MB_SANDBOX_UNKNOWN_SCOPE/);
    assert.throws(() => grantDelegatedConsent(f.dir, T.contoso, APP.cc, ['https://outlook.office.com/.default']), /MB_SANDBOX_UNKNOWN_SCOPE/);
    assert.throws(() => addUser(f.dir, T.contoso, { upn: 'alice@contoso.example' }), /MB_SANDBOX_USER_EXISTS/);
    assert.throws(() => addUser(f.dir, T.contoso, { upn: 'eve@fabrikam.example' }), /MB_SANDBOX_USER_DOMAIN/);
    const far = new Date(Date.now() + 3 * 365 * 86_400_000).toISOString();
    assert.throws(() => addSecret(f.dir, T.contoso, APP.cc, { endDateTime: far }), /MB_SANDBOX_SECRET_LIFETIME/);
    assert.throws(() => removeSecret(f.dir, T.contoso, APP.cc, '00000000-0000-4000-8000-000000000000'), /MB_SANDBOX_SECRET_NOT_FOUND/);
  });

  test('every operation error has English and German title, cause and fix', () => {
    for (const [code, entry] of Object.entries(sandboxEntraErrors)) {
      for (const part of [entry.title, entry.cause, entry.fix]) {
        assert.ok(part.en.length > 0 && part.de.length > 0, code);
        assert.notEqual(part.en, part.de, `${code} is not translated`);
      }
    }
    const err = new SandboxOpError('MB_SANDBOX_USER_NOT_FOUND', { tenant: 'contoso.example', upn: 'x@contoso.example' });
    assert.deepEqual(err.explain('de'), {
      code: 'MB_SANDBOX_USER_NOT_FOUND',
      title: 'Sandbox-Benutzer nicht gefunden',
      cause: 'Der Mandant „contoso.example“ hat keinen Benutzer x@contoso.example.',
      fix: 'Fügen Sie den Benutzer zuerst dem Mandanten hinzu.',
    });
  });
});
