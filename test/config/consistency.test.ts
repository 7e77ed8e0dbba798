/**
 * `config check` fails the configurations `serve` would fail with: IDs that are not IDs, token
 * endpoints and proxies that cannot work, a login host of another cloud, a client-credentials
 * connection without credential, two listeners on one port. Each is an error with its code and a
 * fix in English and German.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { analyzeText, type ConfigProblem } from '../../src/app/config.ts';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '5d1e2a44-7c1b-4f0e-9a3d-2b8c6e4f1a07';
const SECRET = 'Q8Q~a-client-secret-long-enough-1234567';

function check(config: Record<string, unknown>): { errors: ConfigProblem[]; warnings: ConfigProblem[] } {
  const r = analyzeText(stringify(config), '/tmp/mailbridge.yaml', {});
  return { errors: r.errors, warnings: r.warnings };
}

function conn(extra: Record<string, unknown> = {}) {
  return { connections: { contoso: { tenantId: TENANT, clientId: CLIENT, clientSecret: SECRET, ...extra } } };
}

/** The one error at `path`, with its code and texts in both languages. */
function expectError(errors: ConfigProblem[], code: string, path: string): ConfigProblem {
  const e = errors.find((p) => p.code === code && p.path === path);
  assert.ok(e, `${code} at ${path} expected; got ${JSON.stringify(errors.map((p) => [p.code, p.path]))}`);
  assert.equal(e.severity, 'error');
  for (const t of [e.message.en, e.message.de, e.fix.en, e.fix.de]) assert.ok(t.length > 20 && !/\{\w+\}/.test(t), t);
  assert.notEqual(e.message.en, e.message.de);
  return e;
}

test('a valid configuration has no errors (GUIDs, a verified domain, organizations for a delegated flow)', () => {
  assert.deepEqual(check(conn()).errors, []);
  assert.deepEqual(check(conn({ tenantId: 'contoso.onmicrosoft.com' })).errors, []);
  assert.deepEqual(check({ connections: { desk: { tenantId: 'organizations', clientId: CLIENT, flow: 'device-code' } } }).errors, []);
});

test('tenantId and clientId that are not GUIDs or verified domains: the README placeholder "0b7c3f3e-…" among them', () => {
  const { errors } = check(conn({ tenantId: '0b7c3f3e-…', clientId: '5d1e2a44-…' }));
  const tenant = expectError(errors, 'MB_CONFIG_TENANT_ID_INVALID', 'connections.contoso.tenantId');
  assert.match(tenant.message.en, /"0b7c3f3e-…"/);
  assert.match(tenant.fix.en, /Tenant ID/);
  const client = expectError(errors, 'MB_CONFIG_CLIENT_ID_INVALID', 'connections.contoso.clientId');
  assert.match(client.fix.de, /Anwendungs-ID \(Client\)/);
  expectError(check(conn({ tenantId: 'contoso' })).errors, 'MB_CONFIG_TENANT_ID_INVALID', 'connections.contoso.tenantId');
  expectError(check(conn({ clientId: 'mailbridge' })).errors, 'MB_CONFIG_CLIENT_ID_INVALID', 'connections.contoso.clientId');
  // client credentials on /organizations: Entra would answer AADSTS9001023.
  expectError(check(conn({ tenantId: 'organizations' })).errors, 'MB_IDENTITY_TENANT_REQUIRED', 'connections.contoso.tenantId');
});

test('a token endpoint without scheme or over http', () => {
  const bare = expectError(
    check(conn({ tokenEndpoint: 'login.microsoftonline.com/#TenantID#/oauth2/v2.0/token' })).errors,
    'MB_IDENTITY_TOKEN_ENDPOINT_INVALID',
    'connections.contoso.tokenEndpoint',
  );
  assert.match(bare.message.en, /no scheme/);
  expectError(check(conn({ tokenEndpoint: 'login.microsoftonline.com:443/#TenantID#/oauth2/v2.0/token' })).errors, 'MB_IDENTITY_TOKEN_ENDPOINT_INVALID', 'connections.contoso.tokenEndpoint');
  const http = expectError(check(conn({ tokenEndpoint: 'http://127.0.0.1:8443/#TenantID#/oauth2/v2.0/token' })).errors, 'MB_IDENTITY_TOKEN_ENDPOINT_INVALID', 'connections.contoso.tokenEndpoint');
  assert.match(http.message.en, /only https:\/\//);
  assert.deepEqual(check(conn({ tokenEndpoint: 'https://127.0.0.1:8443/#TenantID#/oauth2/v2.0/token' })).errors, []);
});

test('a proxy without scheme, on the server and on a connection', () => {
  const { errors } = check({ ...conn({ proxy: 'proxy.example:3128' }), server: { proxy: 'proxy.example:3128' } });
  expectError(errors, 'MB_CONFIG_PROXY_SCHEME', 'connections.contoso.proxy');
  const server = expectError(errors, 'MB_CONFIG_PROXY_SCHEME', 'server.proxy');
  assert.match(server.fix.en, /http:\/\/proxy\.example:3128/);
  // The password of a proxy URL is never quoted back.
  const withUser = check(conn({ proxy: 'socks5://user:pw-secret@proxy:1080' })).errors;
  assert.ok(!JSON.stringify(withUser).includes('pw-secret'));
  expectError(withUser, 'MB_CONFIG_PROXY_SCHEME', 'connections.contoso.proxy');
  assert.deepEqual(check(conn({ proxy: 'http://proxy.example:3128' })).errors, []);
});

test('cloud gcc-high with the login endpoint of the global cloud (and china with gcc-high\'s)', () => {
  const e = expectError(
    check(conn({ cloud: 'gcc-high', tokenEndpoint: 'https://login.microsoftonline.com/#TenantID#/oauth2/v2.0/token' })).errors,
    'MB_CONFIG_CLOUD_MISMATCH',
    'connections.contoso.tokenEndpoint',
  );
  assert.match(e.message.en, /cloud gcc-high, but its token endpoint host login\.microsoftonline\.com belongs to global, gcc/);
  assert.match(e.fix.en, /https:\/\/login\.microsoftonline\.us\/#TenantID#/);
  expectError(check(conn({ cloud: 'china', tokenEndpoint: 'https://login.microsoftonline.us/#TenantID#/oauth2/v2.0/token' })).errors, 'MB_CONFIG_CLOUD_MISMATCH', 'connections.contoso.tokenEndpoint');
  assert.deepEqual(check(conn({ cloud: 'gcc-high', tokenEndpoint: 'https://login.microsoftonline.us/#TenantID#/oauth2/v2.0/token' })).errors, []);
  assert.deepEqual(check(conn({ cloud: 'gcc', tokenEndpoint: 'https://login.microsoftonline.com/#TenantID#/oauth2/v2.0/token' })).errors, []);
});

test('a client-credentials connection without credential is an error; a delegated one only a warning', () => {
  const { errors } = check({ connections: { contoso: { tenantId: TENANT, clientId: CLIENT } } });
  expectError(errors, 'MB_CONFIG_NO_CREDENTIAL', 'connections.contoso');
  const delegated = check({ connections: { web: { tenantId: TENANT, clientId: CLIENT, flow: 'auth-code' } } });
  assert.deepEqual(delegated.errors, []);
  assert.ok(delegated.warnings.some((w) => w.code === 'MB_CONFIG_NO_CREDENTIAL'));
});

test('two listeners on one address and port: a relay listener on server.port, a wildcard address overlapping a loopback one', () => {
  const same = check({ ...conn(), server: { port: 2525 }, relay: { listeners: [{ host: '127.0.0.1', port: 2525 }] } }).errors;
  const e = expectError(same, 'MB_CONFIG_PORT_TWICE', 'relay.listeners.0.port');
  assert.match(e.message.en, /relay\.listeners\.0\.port \(127\.0\.0\.1:2525\) and server\.port \(127\.0\.0\.1:2525\)/);
  const wildcard = check({ ...conn(), server: { listen: '0.0.0.0', port: 2587 }, relay: { listeners: [{ host: '127.0.0.1', port: 2587 }] } }).errors;
  expectError(wildcard, 'MB_CONFIG_PORT_TWICE', 'relay.listeners.0.port');
  const twoRelay = check({ ...conn(), relay: { listeners: [{ host: '0.0.0.0', port: 2525 }, { host: '127.0.0.1', port: 2525 }] } }).errors;
  expectError(twoRelay, 'MB_CONFIG_PORT_TWICE', 'relay.listeners.1.port');
  assert.deepEqual(check({ ...conn(), server: { port: 8080 }, relay: { listeners: [{ host: '127.0.0.1', port: 2525 }] } }).errors, []);
  // The notify inbound listener (0.0.0.0:8443 by default) runs for Graph groups.
  const watch = { webhook: {}, watch: { publicUrl: 'https://gw.example:8443', groups: { g: { kind: 'graph', listeners: [{ connection: 'contoso' }], mailboxes: ['a@contoso.test'] } } } };
  const notify = check({ ...conn(), server: { port: 8443 }, notify: watch }).errors;
  assert.match(expectError(notify, 'MB_CONFIG_PORT_TWICE', 'notify.watch.listen.port').message.de, /notify\.watch\.listen\.port \(0\.0\.0\.0:8443\) und server\.port/);
  assert.deepEqual(check({ ...conn(), server: { port: 8080 }, notify: watch }).errors, []);
  // Port 0 picks a free port each time: never a clash.
  assert.deepEqual(check({ ...conn(), server: { port: 0 }, relay: { listeners: [{ host: '127.0.0.1', port: 0 }] } }).errors, []);
});
