import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { APP, assertAadError, ccForm, JWT_BEARER, makeAssertion, post, startFixture, T, tokenUrl, verifyToken, type AssertionOptions, type Fixture } from './helpers.ts';

let f: Fixture;
before(async () => {
  f = await startFixture();
});
after(async () => {
  await f?.close();
});

const assertion = (o: AssertionOptions = {}) => makeAssertion(f, o);

function form(jwt: string, extra: Record<string, string> = {}): Record<string, string> {
  return ccForm(APP.cc, { client_assertion_type: JWT_BEARER, client_assertion: jwt, ...extra });
}

describe('client_credentials with a certificate (client assertion)', () => {
  test('PS256 with x5t#S256 (current docs): token with appidacr 2', async () => {
    const r = await post(f, tokenUrl(f, T.contoso), form(await assertion({ alg: 'PS256' })));
    assert.equal(r.status, 200, r.text);
    const { payload } = await verifyToken(f, String(r.body.access_token));
    assert.equal(payload.appidacr, '2');
    assert.equal(payload.appid, APP.cc);
    assert.deepEqual(payload.roles, ['IMAP.AccessAsApp', 'SMTP.SendAsApp']);
  });

  test('RS256 with the SHA-1 x5t (older clients)', async () => {
    const r = await post(f, tokenUrl(f, T.contoso), form(await assertion({ alg: 'RS256' })));
    assert.equal(r.status, 200, r.text);
  });

  test('aud may name the tenant by domain when the request does', async () => {
    const r = await post(f, tokenUrl(f, 'contoso.example'), form(await assertion({ aud: tokenUrl(f, 'contoso.example') })));
    assert.equal(r.status, 200, r.text);
  });

  test('the request log keeps the decoded header and claims, not the JWT', async () => {
    const jwt = await assertion({ alg: 'PS256' });
    await post(f, tokenUrl(f, T.contoso), form(jwt));
    const entry = f.sandbox.stats.tokenRequests.at(-1) as Record<string, unknown>;
    const decoded = entry.assertion as { header: Record<string, unknown>; claims: Record<string, unknown> };
    assert.equal(decoded.header.alg, 'PS256');
    assert.ok(decoded.header['x5t#S256']);
    assert.equal(decoded.claims.iss, APP.cc);
    assert.equal(decoded.claims.aud, tokenUrl(f, T.contoso));
    assert.ok(!JSON.stringify(f.sandbox.stats.tokenRequests).includes(jwt));
  });
});

describe('client assertion failures (401 invalid_client unless noted)', () => {
  test('certificate not registered: AADSTS700027 key not found, with the thumbprint used', async () => {
    const r = await post(f, tokenUrl(f, T.contoso), form(await assertion({ cert: f.certs.unregistered })));
    const sha256 = createHash('sha256').update(new X509Certificate(f.certs.unregistered.certPem).raw).digest('hex').toUpperCase();
    assertAadError(r, 401, 'invalid_client', 700027, new RegExp(`Reason - The key was not found\\., Thumbprint of key used by client: '${sha256}'`));
  });

  test('registered certificate expired: AADSTS700027 key expired, with its dates', async () => {
    const r = await post(f, tokenUrl(f, T.contoso), form(await assertion({ cert: f.certs.expired, alg: 'RS256' })));
    assertAadError(r, 401, 'invalid_client', 700027, /Reason - The key used is expired\..*Found key 'Start=\d{4}-.*, End=\d{4}-/);
  });

  test('signature by another key under a registered thumbprint: AADSTS700027', async () => {
    const r = await post(f, tokenUrl(f, T.contoso), form(await assertion({ signWith: f.certs.unregistered })));
    assertAadError(r, 401, 'invalid_client', 700027, /did not match the expected signature value/);
  });

  test('no thumbprint header: AADSTS700027 (no key found)', async () => {
    const r = await post(f, tokenUrl(f, T.contoso), form(await assertion({ thumbprintHeader: 'none' })));
    assertAadError(r, 401, 'invalid_client', 700027, /The key was not found/);
  });

  test('sub differs from iss: AADSTS50048', async () => {
    const r = await post(f, tokenUrl(f, T.contoso), form(await assertion({ sub: APP.noRoles })));
    assertAadError(r, 401, 'invalid_client', 50048, /Subject mismatches Issuer/);
  });

  test('iss is another app than client_id: AADSTS700021', async () => {
    const r = await post(f, tokenUrl(f, T.contoso), form(await assertion({ iss: APP.noRoles })));
    assertAadError(r, 401, 'invalid_client', 700021, /doesn't match 'client_id'/);
  });

  test('expired assertion and one not yet valid: AADSTS700024 with the times', async () => {
    const nowS = Math.floor(f.clock.now / 1000);
    const old = await post(f, tokenUrl(f, T.contoso), form(await assertion({ nbf: nowS - 7200, exp: nowS - 3600 })));
    assertAadError(old, 401, 'invalid_client', 700024, /not within its valid time range\. Current time: \d{4}-\d\d-\d\dT[\d:.]+Z, assertion valid from .*, expiry time of assertion \d{4}-/);
    const future = await post(f, tokenUrl(f, T.contoso), form(await assertion({ nbf: nowS + 3600, exp: nowS + 4200 })));
    assertAadError(future, 401, 'invalid_client', 700024);
    // Entra tolerates a few minutes of skew.
    const skewed = await post(f, tokenUrl(f, T.contoso), form(await assertion({ nbf: nowS + 120, exp: nowS + 600 })));
    assert.equal(skewed.status, 200, skewed.text);
  });

  test('aud of another tenant, another cloud, or a list: AADSTS50027', async () => {
    for (const aud of [tokenUrl(f, T.fabrikam), tokenUrl(f, T.contoso, 'gcc-high'), [tokenUrl(f, T.contoso), `${f.url}/${T.contoso}/v2.0`]]) {
      const r = await post(f, tokenUrl(f, T.contoso), form(await assertion({ aud })));
      assertAadError(r, 401, 'invalid_client', 50027, /JWT token is invalid or malformed/);
    }
  });

  test('malformed JWT: AADSTS50027; wrong client_assertion_type: 400 invalid_request AADSTS90011', async () => {
    assertAadError(await post(f, tokenUrl(f, T.contoso), form('not.a.jwt')), 401, 'invalid_client', 50027);
    const jwt = await assertion();
    const wrongType = await post(f, tokenUrl(f, T.contoso), form(jwt, { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer' }));
    assertAadError(wrongType, 400, 'invalid_request', 90011, /Unexpected client assertion type/);
  });
});
