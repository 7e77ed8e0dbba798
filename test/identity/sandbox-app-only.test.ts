/**
 * App-only tokens (client credentials) from the sandbox Entra ID, through Identity and msal-node:
 * client secret, PEM certificate, PFX with password; the request shapes as the sandbox recorded
 * them; and each failure an admin can meet, with its MB code in both languages.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { MbError } from '../../src/errors/index.ts';
import { createIdentity, type Identity } from '../../src/identity/index.ts';
import { memoryKv, testBox } from './helpers.ts';
import { APP, PFX_PASSWORD, recorded, SECRET, startFixture, T, type Fixture } from './sandbox-fixture.ts';

let f: Fixture;
const open: Identity[] = [];
before(async () => {
  f = await startFixture();
});
after(async () => {
  await Promise.all(open.map((i) => i.close()));
  await f?.close();
});

function identity(connections: Record<string, Record<string, unknown>>): Identity {
  const id = createIdentity({ config: f.config(connections), kv: memoryKv(), secretBox: testBox, env: {}, network: { sleep: async () => {} } });
  open.push(id);
  return id;
}

/** The failure, checked for code, and for a cause and fix in English and German. */
async function failure(p: Promise<unknown>, code: string): Promise<MbError> {
  let caught: unknown;
  await p.catch((e: unknown) => (caught = e));
  assert.ok(caught instanceof MbError, `expected ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  const en = caught.explain('en');
  const de = caught.explain('de');
  for (const t of [en.title, en.cause, en.fix, de.title, de.cause, de.fix]) {
    assert.ok(t.length > 10, `${code}: short text "${t}"`);
    assert.ok(!/\{\w+\}/.test(t), `${code}: unfilled placeholder in "${t}"`);
  }
  assert.notEqual(en.cause, de.cause);
  return caught;
}

const b64url = (hex: string) => Buffer.from(hex, 'hex').toString('base64url');

describe('credential kinds', () => {
  test('client secret: token with the granted roles; client_credentials with the /.default scope and the secret in the body', async () => {
    const from = f.sandbox.stats.tokenRequests.length;
    const id = identity({ crm: { clientId: APP.cc, clientSecret: testBox.seal(SECRET.valid), clientSecretExpires: '2099-01-01' } });
    const d = await id.describe('crm');
    assert.deepEqual(d.roles?.sort(), ['IMAP.AccessAsApp', 'SMTP.SendAsApp']);
    assert.equal(d.tenantId, T.contoso);
    assert.equal(d.clientId, APP.cc);
    assert.equal(d.audience, 'https://outlook.office365.com');
    assert.equal(d.endpoint, `${f.sandbox.urls.global}/${T.contoso}/oauth2/v2.0/token`);
    assert.deepEqual(d.problems, []);
    const [req] = recorded(f, from);
    assert.equal(req?.grant_type, 'client_credentials');
    assert.equal(req?.client_id, APP.cc);
    assert.equal(req?.scope, 'https://outlook.office365.com/.default');
    assert.ok(req?.client_secret, 'secret sent');
    assert.notEqual(req?.client_secret, SECRET.valid, 'the sandbox masks what it records');
    assert.equal(req?.client_assertion, undefined);
    // Graph is its own resource and scope.
    const g = await id.describe('crm', { resource: 'graph' });
    assert.deepEqual(g.roles, ['Mail.Send']);
    assert.equal(recorded(f, from)[1]?.scope, 'https://graph.microsoft.com/.default');
  });

  test('PEM certificate (default PS256): assertion header alg PS256 + x5t#S256, claims aud/iss/sub/jti/nbf/exp', async () => {
    const from = f.sandbox.stats.tokenRequests.length;
    const id = identity({ crm: { clientId: APP.cc, certificate: { path: f.paths.pem } } });
    const t = await id.getToken('crm');
    assert.ok(t.accessToken);
    const req = recorded(f, from)[0]!;
    assert.equal(req.client_assertion_type, 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    assert.equal(req.client_secret, undefined);
    const { header, claims } = req.assertion as { header: Record<string, unknown>; claims: Record<string, unknown> };
    const x509 = new X509Certificate(f.certs.registered.certPem);
    assert.equal(header.alg, 'PS256');
    assert.equal(header['x5t#S256'], createHash('sha256').update(x509.raw).digest('base64url'));
    assert.equal(header.x5t, undefined);
    assert.equal(claims.aud, `${f.sandbox.urls.global}/${T.contoso}/oauth2/v2.0/token`);
    assert.equal(claims.iss, APP.cc);
    assert.equal(claims.sub, APP.cc);
    assert.match(String(claims.jti), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
    assert.equal(typeof claims.nbf, 'number');
    assert.equal(Number(claims.exp) - Number(claims.nbf), 600);
    assert.ok(Math.abs(Number(claims.nbf) - Date.now() / 1000) < 120);
    const d = await id.describe('crm');
    // The thumbprint shown is the one the header carries (x5t#S256, as hex), with the portal's SHA-1 beside it.
    const shown = Buffer.from(String(header['x5t#S256']), 'base64url').toString('hex').toUpperCase();
    assert.match(d.credential, new RegExp(`certificate PS256, x5t#S256 ${shown} \\(SHA-1 ${x509.fingerprint.replace(/:/g, '')}, `));
  });

  test('PFX with password, RS256 selected: assertion header alg RS256 + SHA-1 x5t', async () => {
    const from = f.sandbox.stats.tokenRequests.length;
    const id = identity({ crm: { clientId: APP.cc, certificate: { path: f.paths.pfx, password: testBox.seal(PFX_PASSWORD), algorithm: 'RS256' } } });
    const t = await id.getToken('crm');
    assert.ok(t.accessToken);
    const { header, claims } = recorded(f, from)[0]!.assertion as { header: Record<string, unknown>; claims: Record<string, unknown> };
    const x509 = new X509Certificate(f.certs.registered.certPem);
    assert.equal(header.alg, 'RS256');
    assert.equal(header.x5t, b64url(x509.fingerprint.replace(/:/g, '')));
    assert.equal(header['x5t#S256'], undefined);
    assert.equal(claims.iss, APP.cc);
  });

  test('NO_PROXY covering the token endpoint: the request goes direct and describe() says so, not the proxy', async () => {
    // A proxy that answers nobody: were it used, the token request would fail.
    const env = { HTTPS_PROXY: 'http://127.0.0.1:9', NO_PROXY: new URL(f.sandbox.urls.global).hostname };
    const id = createIdentity({ config: f.config({ crm: { clientId: APP.cc, clientSecret: SECRET.valid, clientSecretExpires: '2099-01-01' } }), kv: memoryKv(), secretBox: testBox, env, network: { sleep: async () => {} } });
    open.push(id);
    const d = await id.describe('crm');
    assert.ok(d.roles?.includes('SMTP.SendAsApp'));
    assert.equal(d.proxy, 'none (direct, NO_PROXY)');
    const proxied = createIdentity({ config: f.config({ crm: { clientId: APP.cc, clientSecret: SECRET.valid, clientSecretExpires: '2099-01-01', proxy: 'http://127.0.0.1:9' } }), kv: memoryKv(), secretBox: testBox, env: {}, network: { sleep: async () => {} } });
    open.push(proxied);
    await assert.rejects(proxied.describe('crm'), (e: unknown) => e instanceof MbError && e.code === 'MB_IDENTITY_PROXY');
  });

  test('1,000 concurrent getToken calls cause exactly one call to the token endpoint', async () => {
    const id = identity({ crm: { clientId: APP.cc, clientSecret: SECRET.valid, clientSecretExpires: '2099-01-01' } });
    const before = f.tokenCalls();
    const tokens = await Promise.all(Array.from({ length: 1000 }, () => id.getToken('crm', 'exchange')));
    assert.equal(f.tokenCalls() - before, 1);
    assert.equal(new Set(tokens.map((x) => x.accessToken)).size, 1);
  });
});

describe('failures, each with its MB code in English and German', () => {
  test('bad secret → MB_ENTRA_SECRET_INVALID (AADSTS7000215) with trace and correlation ID', async () => {
    const id = identity({ crm: { clientId: APP.cc, clientSecret: 'not-the-secret-value-at-all-xxxxxxxxxx', clientSecretExpires: '2099-01-01' } });
    const e = await failure(id.getToken('crm'), 'MB_ENTRA_SECRET_INVALID');
    assert.equal(e.details.aadsts, 'AADSTS7000215');
    assert.match(e.details.traceId ?? '', /^[0-9a-f-]{36}$/);
    assert.match(e.details.correlationId ?? '', /^[0-9a-f-]{36}$/);
    assert.match(e.explain('en').fix, /Certificates & secrets › New client secret/);
  });

  test('expired secret: Entra says so (AADSTS7000222), or mailbridge refuses it itself when the date is configured', async () => {
    const calls = f.tokenCalls();
    const unknownDate = identity({ crm: { clientId: APP.cc, clientSecret: SECRET.expired } });
    await failure(unknownDate.getToken('crm'), 'MB_ENTRA_SECRET_EXPIRED');
    assert.equal(f.tokenCalls() - calls, 1);
    const known = identity({ crm: { clientId: APP.cc, clientSecret: SECRET.expired, clientSecretExpires: '2024-01-31' } });
    await failure(known.getToken('crm'), 'MB_CLIENT_SECRET_EXPIRED');
    assert.equal(f.tokenCalls() - calls, 1, 'no request with a secret known to be expired');
  });

  test('unknown app → MB_ENTRA_APP_NOT_FOUND (AADSTS700016)', async () => {
    const id = identity({ crm: { clientId: 'deadbeef-0000-4000-8000-00000000dead', clientSecret: SECRET.valid, clientSecretExpires: '2099-01-01' } });
    const e = await failure(id.getToken('crm'), 'MB_ENTRA_APP_NOT_FOUND');
    assert.match(e.explain('de').fix, /Anwendungs-ID \(Client\)/);
  });

  test('wrong tenant and wrong cloud → MB_ENTRA_TENANT_NOT_FOUND (AADSTS90002); the right cloud works', async () => {
    const id = identity({
      unknown: { tenantId: '00000000-0000-4000-8000-00000000beef', clientId: APP.cc, clientSecret: SECRET.valid, clientSecretExpires: '2099-01-01' },
      wrongCloud: { tenantId: T.usgov, clientId: APP.usgov, clientSecret: SECRET.valid, clientSecretExpires: '2099-01-01' },
      rightCloud: { tenantId: T.usgov, cloud: 'gcc-high', tokenEndpoint: f.endpoint('gcc-high'), clientId: APP.usgov, clientSecret: SECRET.valid, clientSecretExpires: '2099-01-01' },
    });
    await failure(id.getToken('unknown'), 'MB_ENTRA_TENANT_NOT_FOUND');
    const e = await failure(id.getToken('wrongCloud'), 'MB_ENTRA_TENANT_NOT_FOUND');
    assert.match(e.explain('en').cause, /another cloud than "global"/);
    const d = await id.describe('rightCloud');
    assert.equal(d.cloud, 'gcc-high');
    assert.equal(d.audience, 'https://outlook.office365.us');
    assert.deepEqual(d.roles, ['IMAP.AccessAsApp']);
    assert.deepEqual(d.problems, []);
  });

  test('no consent → a token without roles, reported as MB_TOKEN_NO_ROLES by describe()', async () => {
    const id = identity({ fresh: { clientId: APP.noRoles, clientSecret: SECRET.valid, clientSecretExpires: '2099-01-01' } });
    const d = await id.describe('fresh');
    assert.deepEqual(d.roles, []);
    assert.deepEqual(d.problems.map((p) => p.code), ['MB_TOKEN_NO_ROLES']);
    const p = d.problems[0]!;
    assert.match(p.explain('en').fix, /API permissions › Add a permission › APIs my organization uses › Office 365 Exchange Online › Application permissions/);
    assert.match(p.explain('de').fix, /API-Berechtigungen › Berechtigung hinzufügen/);
  });

  test('bad assertion (certificate not uploaded to the app) → MB_ENTRA_ASSERTION_INVALID (AADSTS700027) naming the thumbprint', async () => {
    const id = identity({ crm: { clientId: APP.cc, certificate: { path: f.paths.unregisteredPem } } });
    const e = await failure(id.getToken('crm'), 'MB_ENTRA_ASSERTION_INVALID');
    const thumb = new X509Certificate(f.certs.unregistered.certPem).fingerprint.replace(/:/g, '');
    assert.match(e.explain('en').cause, new RegExp(thumb));
    assert.match(e.explain('de').fix, /Zertifikat hochladen/);
  });

  test('invalid scope: an app-only scope without /.default → MB_ENTRA_SCOPE_NOT_DEFAULT (AADSTS1002012)', async () => {
    const id = identity({
      crm: { clientId: APP.cc, clientSecret: SECRET.valid, clientSecretExpires: '2099-01-01', scopes: { exchange: ['https://outlook.office365.com/IMAP.AccessAsApp'] } },
    });
    const e = await failure(id.getToken('crm'), 'MB_ENTRA_SCOPE_NOT_DEFAULT');
    assert.match(e.explain('en').cause, /IMAP\.AccessAsApp/);
  });

  test('TLS to the sandbox without its CA → MB_IDENTITY_TLS; no request reaches it', async () => {
    const calls = f.tokenCalls();
    const id = identity({ crm: { clientId: APP.cc, clientSecret: SECRET.valid, clientSecretExpires: '2099-01-01', caFile: undefined } });
    await failure(id.getToken('crm'), 'MB_IDENTITY_TLS');
    assert.equal(f.tokenCalls(), calls);
  });
});
