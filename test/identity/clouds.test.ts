import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clouds, defaultScopes, defaultTokenEndpoint, audienceOfScopes, CLOUDS } from '../../src/identity/clouds.ts';
import { resolveEndpoints } from '../../src/identity/endpoints.ts';
import { MbError } from '../../src/errors/index.ts';

test('every national cloud has its login, Graph and Exchange hosts and its app-only and delegated scopes (facts §2)', () => {
  assert.deepEqual(Object.keys(clouds).sort(), [...CLOUDS].sort());
  const expect = {
    global: ['login.microsoftonline.com', 'graph.microsoft.com', 'outlook.office365.com', 'smtp.office365.com', 'https://outlook.office365.com/.default', 'https://outlook.office.com/IMAP.AccessAsUser.All'],
    gcc: ['login.microsoftonline.com', 'graph.microsoft.com', 'outlook.office365.com', 'smtp.office365.com', 'https://outlook.office365.com/.default', 'https://outlook.office.com/IMAP.AccessAsUser.All'],
    'gcc-high': ['login.microsoftonline.us', 'graph.microsoft.us', 'outlook.office365.us', 'smtp.office365.us', 'https://outlook.office365.us/.default', 'https://outlook.office365.us/IMAP.AccessAsUser.All'],
    dod: ['login.microsoftonline.us', 'dod-graph.microsoft.us', 'outlook-dod.office365.us', 'outlook-dod.office365.us', 'https://outlook-dod.office365.us/.default', 'https://outlook-dod.office365.us/IMAP.AccessAsUser.All'],
    china: ['login.partner.microsoftonline.cn', 'microsoftgraph.chinacloudapi.cn', 'partner.outlook.cn', 'smtp.partner.outlook.cn', 'https://partner.outlook.cn/.default', 'https://partner.outlook.cn/IMAP.AccessAsUser.All'],
  } as const;
  for (const [name, [login, graph, imap, smtp, appScope, delegatedImap]] of Object.entries(expect)) {
    const c = clouds[name as keyof typeof clouds];
    assert.equal(c.loginHost, login, name);
    assert.equal(c.graphHost, graph, name);
    assert.deepEqual(c.exchange.imap, { host: imap, port: 993 }, name);
    assert.deepEqual(c.exchange.smtp, { host: smtp, port: 587 }, name);
    assert.equal(c.exchange.ews, `https://${imap}/EWS/Exchange.asmx`);
    assert.deepEqual(c.scopes.exchangeApp, [appScope], name);
    assert.ok(c.scopes.exchangeDelegated.includes(delegatedImap), name);
    assert.ok(c.scopes.exchangeDelegated.some((s) => s.endsWith('/SMTP.Send')), name);
    assert.deepEqual(c.scopes.graphApp, [`https://${graph}/.default`]);
    assert.equal(defaultTokenEndpoint(c), `https://${login}/#TenantID#/oauth2/v2.0/token`);
  }
  assert.deepEqual(defaultScopes(clouds.global, 'graph', true), ['https://graph.microsoft.com/Mail.ReadWrite', 'https://graph.microsoft.com/Mail.Send']);
  assert.equal(audienceOfScopes(['openid', 'https://graph.microsoft.com/IMAP.AccessAsUser.All']), 'https://graph.microsoft.com');
});

test('the token endpoint template fills #TenantID# and yields authority, authorize and device code endpoints', () => {
  const tenant = 'b3b2a1f0-1111-2222-3333-444455556666';
  const e = resolveEndpoints('crm', { tenantId: tenant, flow: 'client-credentials' }, clouds['gcc-high']);
  assert.equal(e.tokenEndpoint, `https://login.microsoftonline.us/${tenant}/oauth2/v2.0/token`);
  assert.equal(e.authority, `https://login.microsoftonline.us/${tenant}/`);
  assert.equal(e.deviceCodeEndpoint, `https://login.microsoftonline.us/${tenant}/oauth2/v2.0/devicecode`);
  assert.equal(e.host, 'login.microsoftonline.us');
  assert.equal(e.overridden, false);
  const meta = JSON.parse(e.authorityMetadata) as Record<string, string>;
  assert.equal(meta.token_endpoint, e.tokenEndpoint);
  assert.equal(meta.authorization_endpoint, `https://login.microsoftonline.us/${tenant}/oauth2/v2.0/authorize`);

  // enaio's OfficeTokenEndpoint form, pointed at a sandbox with a port and a path prefix
  const s = resolveEndpoints(
    'dms',
    { tenantId: 'contoso.onmicrosoft.com', flow: 'client-credentials', tokenEndpoint: 'https://127.0.0.1:8443/global/#TenantID#/oauth2/v2.0/token' },
    clouds.global,
  );
  assert.equal(s.tokenEndpoint, 'https://127.0.0.1:8443/global/contoso.onmicrosoft.com/oauth2/v2.0/token');
  assert.equal(s.authority, 'https://127.0.0.1:8443/global/contoso.onmicrosoft.com/');
  assert.equal(s.host, '127.0.0.1:8443');
  assert.equal(s.tenant, 'contoso.onmicrosoft.com');
  assert.equal(s.overridden, true);
});

test('unusable token endpoints are refused with MB_IDENTITY_TOKEN_ENDPOINT_INVALID naming the reason', () => {
  const bad: Array<[string, RegExp]> = [
    ['http://login.microsoftonline.com/#TenantID#/oauth2/v2.0/token', /https/],
    ['https://login.microsoftonline.com/#TenantID#/oauth2/token', /v1\.0/],
    ['https://login.microsoftonline.com/#TenantID#/token', /\/oauth2\/v2\.0\/token/],
    ['not a url', /no scheme/],
    ['login.microsoftonline.com:443/#TenantID#/oauth2/v2.0/token', /no scheme/],
    ['https://login.microsoftonline.com:bad/#TenantID#/oauth2/v2.0/token', /not a URL/],
    ['https://login.microsoftonline.com/oauth2/v2.0/token', /no tenant/],
  ];
  for (const [tokenEndpoint, reason] of bad) {
    assert.throws(
      () => resolveEndpoints('c', { tenantId: 't', flow: 'client-credentials', tokenEndpoint }, clouds.global),
      (e: unknown) => e instanceof MbError && e.code === 'MB_IDENTITY_TOKEN_ENDPOINT_INVALID' && reason.test(e.explain('en').cause) && e.explain('de').cause.includes('nicht verwendbar'),
      tokenEndpoint,
    );
  }
  assert.throws(
    () => resolveEndpoints('c', { tenantId: 'common', flow: 'client-credentials' }, clouds.global),
    (e: unknown) => e instanceof MbError && e.code === 'MB_IDENTITY_TENANT_REQUIRED' && /AADSTS9001023/.test(e.explain('en').cause),
  );
  // Delegated flows may use organizations.
  assert.equal(resolveEndpoints('c', { tenantId: 'organizations', flow: 'device-code' }, clouds.global).tenant, 'organizations');
});
