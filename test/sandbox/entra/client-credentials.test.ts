import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  APP,
  assertAadError,
  ccForm,
  EXO_DEFAULT,
  GRAPH_DEFAULT,
  post,
  SECRET,
  SP,
  startFixture,
  T,
  tokenUrl,
  verifyToken,
  get,
  type Fixture,
} from './helpers.ts';

let f: Fixture;
before(async () => {
  f = await startFixture();
});
after(async () => {
  await f?.close();
});

describe('client_credentials with a client secret', () => {
  test('secret in the body: Bearer token for Exchange with the granted roles, v1 claims, headers of Entra', async () => {
    const cri = '0f3b7c9e-1a2b-4c3d-8e4f-5a6b7c8d9e0f';
    const r = await post(f, tokenUrl(f, T.contoso), ccForm(APP.cc, { client_secret: SECRET.valid }), { 'client-request-id': cri });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.token_type, 'Bearer');
    const expiresIn = Number(r.body.expires_in);
    assert.ok(expiresIn >= 3599 && expiresIn <= 5399, `expires_in ${expiresIn}`);
    assert.equal(r.body.ext_expires_in, expiresIn);
    assert.equal(r.body.refresh_token, undefined, 'client credentials never yield a refresh token');
    assert.equal(r.body.scope, undefined);
    assert.equal(r.headers.get('cache-control'), 'no-store, no-cache');
    assert.equal(r.headers.get('pragma'), 'no-cache');
    assert.equal(r.headers.get('expires'), '-1');
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.match(r.headers.get('strict-transport-security') ?? '', /max-age=/);
    assert.match(r.headers.get('x-ms-request-id') ?? '', /^[0-9a-f-]{36}$/);
    assert.ok(r.headers.get('x-ms-ests-server'));
    assert.equal(r.headers.get('client-request-id'), cri);

    const { payload, header } = await verifyToken(f, String(r.body.access_token));
    assert.equal(header.typ, 'JWT');
    assert.equal(header.alg, 'RS256');
    assert.equal(header.kid, f.sandbox.jwks().keys[0]?.kid);
    assert.equal(header.x5t, header.kid);
    assert.equal(payload.aud, 'https://outlook.office365.com');
    assert.equal(payload.iss, `https://sts.windows.net/${T.contoso}/`);
    assert.equal(payload.iss, f.sandbox.issuer(T.contoso));
    assert.equal(payload.tid, T.contoso);
    assert.equal(payload.appid, APP.cc);
    assert.equal(payload.azp, APP.cc);
    assert.equal(payload.appidacr, '1');
    assert.equal(payload.oid, SP.cc);
    assert.equal(payload.idtyp, 'app');
    assert.equal(payload.ver, '1.0');
    assert.deepEqual(payload.roles, ['IMAP.AccessAsApp', 'SMTP.SendAsApp']);
    assert.equal(payload.scp, undefined);
    const nowS = Math.floor(f.clock.now / 1000);
    assert.equal(payload.iat, nowS - 300, 'iat is backdated five minutes');
    assert.equal(payload.nbf, payload.iat);
    assert.equal(payload.exp, nowS + expiresIn);
  });

  test('secret by HTTP Basic (RFC 6749 §2.3.1, form-encoded before base64)', async () => {
    const basic = Buffer.from(`${encodeURIComponent(APP.cc)}:${encodeURIComponent(SECRET.valid)}`).toString('base64');
    const r = await post(f, tokenUrl(f, 'contoso.example'), { grant_type: 'client_credentials', scope: GRAPH_DEFAULT }, { authorization: `Basic ${basic}` });
    assert.equal(r.status, 200, r.text);
    const { payload } = await verifyToken(f, String(r.body.access_token));
    assert.equal(payload.aud, 'https://graph.microsoft.com');
    assert.deepEqual(payload.roles, ['Mail.Send']);
  });

  test('no app role granted: the token is still issued, without a roles claim', async () => {
    const r = await post(f, tokenUrl(f, T.contoso), ccForm(APP.noRoles, { client_secret: SECRET.valid }));
    assert.equal(r.status, 200, r.text);
    const { payload } = await verifyToken(f, String(r.body.access_token));
    assert.equal(payload.oid, SP.noRoles);
    assert.equal('roles' in payload, false);
  });

  test('the request log masks secrets', async () => {
    const entry = f.sandbox.stats.tokenRequests.find((e) => e.client_id === APP.noRoles);
    assert.ok(entry);
    assert.equal(entry.grant_type, 'client_credentials');
    assert.equal(entry.client_secret, 'Xy3********');
    assert.ok(!JSON.stringify(f.sandbox.stats.tokenRequests).includes(SECRET.valid));
    assert.ok((f.sandbox.stats.calls.token ?? 0) >= 3);
  });

  test('GCC High: tenant on the US login host, Exchange at outlook.office365.us', async () => {
    const r = await post(f, tokenUrl(f, T.usgov, 'gcc-high'), ccForm(APP.usgov, { client_secret: SECRET.valid, scope: 'https://outlook.office365.us/.default' }));
    assert.equal(r.status, 200, r.text);
    const { payload } = await verifyToken(f, String(r.body.access_token));
    assert.equal(payload.aud, 'https://outlook.office365.us');
    assert.equal(payload.iss, `https://sts.windows.net/${T.usgov}/`);
    // DoD shares the login host, so the tenant is found there as well.
    const dod = await post(f, tokenUrl(f, T.usgov, 'dod'), ccForm(APP.usgov, { client_secret: SECRET.valid, scope: 'https://outlook.office365.us/.default' }));
    assert.equal(dod.status, 200, dod.text);
    // …but the global Exchange resource does not exist in that cloud.
    const wrong = await post(f, tokenUrl(f, T.usgov, 'gcc-high'), ccForm(APP.usgov, { client_secret: SECRET.valid, scope: EXO_DEFAULT }));
    assertAadError(wrong, 400, 'invalid_resource', 500011, /resource principal named https:\/\/outlook\.office365\.com was not found in the tenant named US Gov/);
  });

  test('China: partner.outlook.cn and the sts.chinacloudapi.cn issuer', async () => {
    const r = await post(f, tokenUrl(f, 'china.example', 'china'), ccForm(APP.china, { client_secret: SECRET.valid, scope: 'https://partner.outlook.cn/.default' }));
    assert.equal(r.status, 200, r.text);
    const { payload } = await verifyToken(f, String(r.body.access_token));
    assert.equal(payload.aud, 'https://partner.outlook.cn');
    assert.equal(payload.iss, `https://sts.chinacloudapi.cn/${T.china}/`);
    assert.equal(f.sandbox.issuer(T.china), payload.iss);
  });
});

describe('client_credentials failures', () => {
  test('wrong secret: 401 invalid_client AADSTS7000215; the secret ID instead of its value too', async () => {
    const bad = await post(f, tokenUrl(f, T.contoso), ccForm(APP.cc, { client_secret: 'not-the-secret' }));
    assertAadError(bad, 401, 'invalid_client', 7000215, new RegExp(`not the client secret ID, for a secret added to app '${APP.cc}'`));
    const id = await post(f, tokenUrl(f, T.contoso), ccForm(APP.cc, { client_secret: SECRET.validKeyId }));
    assertAadError(id, 401, 'invalid_client', 7000215);
  });

  test('expired secret: 401 invalid_client AADSTS7000222', async () => {
    const r = await post(f, tokenUrl(f, T.contoso), ccForm(APP.cc, { client_secret: SECRET.expired }));
    assertAadError(r, 401, 'invalid_client', 7000222, /client secret keys for app .* are expired/);
  });

  test('no credential: 401 AADSTS7000218', async () => {
    const r = await post(f, tokenUrl(f, T.contoso), ccForm(APP.cc));
    assertAadError(r, 401, 'invalid_client', 7000218, /'client_assertion' or 'client_secret'/);
  });

  test('unknown app: 400 unauthorized_client AADSTS700016', async () => {
    const r = await post(f, tokenUrl(f, T.contoso), ccForm('99999999-9999-4999-8999-999999999999', { client_secret: SECRET.valid }));
    assertAadError(r, 400, 'unauthorized_client', 700016, /Application with identifier '99999999-9999-4999-8999-999999999999' was not found in the directory 'Contoso'/);
  });

  test('unknown tenant, and a tenant asked on another cloud: AADSTS90002', async () => {
    const unknown = await post(f, tokenUrl(f, 'nowhere.example'), ccForm(APP.cc, { client_secret: SECRET.valid }));
    assertAadError(unknown, 400, 'invalid_request', 90002, /Tenant 'nowhere\.example' not found\. .*signing into the correct cloud/);
    const crossCloud = await post(f, tokenUrl(f, T.usgov, 'global'), ccForm(APP.usgov, { client_secret: SECRET.valid }));
    assertAadError(crossCloud, 400, 'invalid_request', 90002);
    const globalOnUs = await post(f, tokenUrl(f, T.contoso, 'gcc-high'), ccForm(APP.cc, { client_secret: SECRET.valid }));
    assertAadError(globalOnUs, 400, 'invalid_request', 90002);
    // GCC signs in at the global host: a global tenant is found on the GCC listener.
    const gcc = await post(f, tokenUrl(f, T.contoso, 'gcc'), ccForm(APP.cc, { client_secret: SECRET.valid }));
    assert.equal(gcc.status, 200, gcc.text);
  });

  test('client credentials on /common and /consumers: AADSTS9001023; /organizations with a single-tenant app: AADSTS50194', async () => {
    for (const t of ['common', 'consumers']) {
      const r = await post(f, tokenUrl(f, t), ccForm(APP.cc, { client_secret: SECRET.valid }));
      assertAadError(r, 400, 'invalid_request', 9001023, /isn't supported over the \/common or \/consumers endpoints/);
    }
    const org = await post(f, tokenUrl(f, 'organizations'), ccForm(APP.cc, { client_secret: SECRET.valid }));
    assertAadError(org, 400, 'invalid_request', 50194, /not configured as a multi-tenant application/);
  });

  test('scope without /.default: invalid_scope AADSTS1002012', async () => {
    const r = await post(f, tokenUrl(f, T.contoso), ccForm(APP.cc, { client_secret: SECRET.valid, scope: 'https://outlook.office.com/IMAP.AccessAsUser.All' }));
    assertAadError(r, 400, 'invalid_scope', 1002012, /Client credential flows must have a scope value with \/.default suffixed/);
  });

  test('scopes of two resources: invalid_scope AADSTS70011', async () => {
    const r = await post(f, tokenUrl(f, T.contoso), ccForm(APP.cc, { client_secret: SECRET.valid, scope: `${EXO_DEFAULT} ${GRAPH_DEFAULT}` }));
    assertAadError(r, 400, 'invalid_scope', 70011, /are not compatible with each other/);
  });

  test('Exchange asked in a tenant without Exchange Online, or an unknown resource: invalid_resource AADSTS500011', async () => {
    const noExo = await post(f, tokenUrl(f, T.fabrikam), ccForm(APP.fabrikam, { client_secret: SECRET.valid }));
    assertAadError(noExo, 400, 'invalid_resource', 500011, /resource principal named https:\/\/outlook\.office365\.com was not found in the tenant named Fabrikam/);
    const graphOk = await post(f, tokenUrl(f, T.fabrikam), ccForm(APP.fabrikam, { client_secret: SECRET.valid, scope: GRAPH_DEFAULT }));
    assert.equal(graphOk.status, 200, graphOk.text);
    const unknown = await post(f, tokenUrl(f, T.contoso), ccForm(APP.cc, { client_secret: SECRET.valid, scope: 'api://not-here/.default' }));
    assertAadError(unknown, 400, 'invalid_resource', 500011, /api:\/\/not-here/);
  });

  test('disabled app: unauthorized_client AADSTS7000112', async () => {
    const r = await post(f, tokenUrl(f, T.contoso), ccForm(APP.disabled, { client_secret: SECRET.valid }));
    assertAadError(r, 400, 'unauthorized_client', 7000112, new RegExp(`Application '${APP.disabled}'\\(switched off\\) is disabled\\.`));
  });

  test('missing parameters and unknown grant types', async () => {
    assertAadError(await post(f, tokenUrl(f, T.contoso), { client_id: APP.cc }), 400, 'invalid_request', 900144, /'grant_type'/);
    assertAadError(await post(f, tokenUrl(f, T.contoso), { grant_type: 'client_credentials', scope: EXO_DEFAULT }), 400, 'invalid_request', 900144, /'client_id'/);
    assertAadError(await post(f, tokenUrl(f, T.contoso), ccForm(APP.cc, { client_secret: SECRET.valid, scope: '' })), 400, 'invalid_request', 900144, /'scope'/);
    assertAadError(await post(f, tokenUrl(f, T.contoso), ccForm(APP.cc, { grant_type: 'password' })), 400, 'unsupported_grant_type', 70003, /'password'/);
  });

  test('a JSON body is not read (Entra takes form bodies only)', async () => {
    const res = await (
      await import('undici')
    ).fetch(tokenUrl(f, T.contoso), {
      method: 'POST',
      dispatcher: f.http,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ccForm(APP.cc, { client_secret: SECRET.valid })),
    });
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(res.status, 400);
    assert.deepEqual(body.error_codes, [900144]);
  });

  test('GET on the token endpoint: AADSTS900561', async () => {
    const r = await get(f, tokenUrl(f, T.contoso));
    assertAadError(r, 400, 'invalid_request', 900561, /only accepts POST/);
  });

  test('correlation_id echoes client-request-id; error_uri page explains the code', async () => {
    const cri = 'aaaa0000-bb11-4222-83cc-444444dddddd';
    const r = await post(f, tokenUrl(f, T.contoso), ccForm(APP.cc, { client_secret: 'nope' }), { 'client-request-id': cri });
    const body = assertAadError(r, 401, 'invalid_client', 7000215);
    assert.equal(body.correlation_id, cri);
    const page = await get(f, String(body.error_uri));
    assert.equal(page.status, 200);
    assert.match(page.text, /AADSTS7000215: Invalid client secret provided/);
  });
});
