import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { APP, assertAadError, get, startFixture, T, type Fixture } from './helpers.ts';

let f: Fixture;
before(async () => {
  f = await startFixture();
});
after(async () => {
  await f?.close();
});

describe('discovery documents and keys', () => {
  test('each cloud listens on its own port', () => {
    const origins = Object.values(f.sandbox.urls);
    assert.equal(origins.length, 5);
    assert.equal(new Set(origins).size, 5);
    for (const u of origins) assert.match(u, /^https:\/\/127\.0\.0\.1:\d+$/);
  });

  test('instance discovery: MSAL’s shape, one metadata entry per sandbox cloud', async () => {
    const authorize = `${f.url}/${T.contoso}/oauth2/v2.0/authorize`;
    const r = await get(f, `${f.url}/common/discovery/instance?api-version=1.1&authorization_endpoint=${encodeURIComponent(authorize)}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.tenant_discovery_endpoint, `${f.url}/${T.contoso}/v2.0/.well-known/openid-configuration`);
    assert.equal(r.body['api-version'], '1.1');
    const metadata = r.body.metadata as Array<{ preferred_network: string; preferred_cache: string; aliases: string[] }>;
    const host = new URL(f.url).host;
    assert.deepEqual(
      metadata.find((m) => m.aliases.includes(host)),
      { preferred_network: host, preferred_cache: host, aliases: [host] },
    );
    assert.equal(metadata.length, 5);
    const foreign = await get(f, `${f.url}/common/discovery/instance?api-version=1.1&authorization_endpoint=${encodeURIComponent('https://login.example.net/x/oauth2/v2.0/authorize')}`);
    assertAadError(foreign, 400, 'invalid_instance', 50049, /Unknown or invalid instance/);
    assert.ok((f.sandbox.stats.calls.discovery ?? 0) >= 2);
  });

  test('OpenID configuration: endpoints with the tenant GUID (also when asked by domain), issuer of the sandbox origin', async () => {
    for (const t of [T.contoso, 'contoso.example']) {
      const r = await get(f, `${f.url}/${t}/v2.0/.well-known/openid-configuration`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.issuer, `${f.url}/${T.contoso}/v2.0`);
      assert.equal(r.body.token_endpoint, `${f.url}/${T.contoso}/oauth2/v2.0/token`);
      assert.equal(r.body.authorization_endpoint, `${f.url}/${T.contoso}/oauth2/v2.0/authorize`);
      assert.equal(r.body.device_authorization_endpoint, `${f.url}/${T.contoso}/oauth2/v2.0/devicecode`);
      assert.equal(r.body.jwks_uri, `${f.url}/${T.contoso}/discovery/v2.0/keys`);
      assert.equal(r.body.cloud_instance_name, 'microsoftonline.com');
      assert.equal(r.body.msgraph_host, 'graph.microsoft.com');
      assert.deepEqual(r.body.id_token_signing_alg_values_supported, ['RS256']);
    }
    const common = await get(f, `${f.url}/common/v2.0/.well-known/openid-configuration`);
    assert.equal(common.body.issuer, `${f.url}/{tenantid}/v2.0`);
    assert.equal(common.body.token_endpoint, `${f.url}/common/oauth2/v2.0/token`);
    const us = await get(f, `${f.sandbox.urls['gcc-high']}/${T.usgov}/v2.0/.well-known/openid-configuration`);
    assert.equal(us.body.cloud_instance_name, 'microsoftonline.us');
    assert.equal(us.body.msgraph_host, 'graph.microsoft.us');
  });

  test('unknown tenant or the wrong cloud: invalid_tenant AADSTS90002', async () => {
    assertAadError(await get(f, `${f.url}/nowhere.example/v2.0/.well-known/openid-configuration`), 400, 'invalid_tenant', 90002);
    assertAadError(await get(f, `${f.url}/${T.usgov}/v2.0/.well-known/openid-configuration`), 400, 'invalid_tenant', 90002);
    assertAadError(await get(f, `${f.sandbox.urls.china}/${T.contoso}/discovery/v2.0/keys`), 400, 'invalid_tenant', 90002);
  });

  test('JWKS at /{tenant}, /common and the v1 path equals jwks(); kid = x5t = SHA-1 of the x5c certificate', async () => {
    const expected = f.sandbox.jwks();
    for (const path of [`/${T.contoso}/discovery/v2.0/keys`, '/common/discovery/v2.0/keys', '/common/discovery/keys']) {
      const r = await get(f, `${f.url}${path}`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, expected);
    }
    const [key] = expected.keys as Array<Record<string, unknown>>;
    assert.ok(key);
    assert.equal(key.kty, 'RSA');
    assert.equal(key.use, 'sig');
    assert.equal(key.d, undefined, 'no private part');
    const der = Buffer.from((key.x5c as string[])[0] ?? '', 'base64');
    assert.equal(key.x5t, createHash('sha1').update(der).digest('base64url'));
    assert.equal(key.kid, key.x5t);
    assert.match(new X509Certificate(der).subject, /accounts\.accesscontrol\.windows\.net/);
  });

  test('the sign-in page is English or German by Accept-Language / ui_locales', async () => {
    const q = `client_id=${APP.cc}&response_type=code&redirect_uri=${encodeURIComponent('https://app.example/callback')}&scope=openid`;
    const en = await get(f, `${f.url}/${T.contoso}/oauth2/v2.0/authorize?${q}`);
    assert.match(en.text, /Sign in/);
    const de = await get(f, `${f.url}/${T.contoso}/oauth2/v2.0/authorize?${q}&ui_locales=de-DE`);
    assert.match(de.text, /Anmelden/);
    assert.match(de.text, /emulierter Microsoft Entra ID-Mandant/);
  });
});
