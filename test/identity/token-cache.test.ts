/**
 * Identity over a small HTTPS token endpoint stub: what only a stub can show exactly (every
 * request counted and answered as the test wants: 429 with Retry-After, slow answers).
 * The same behaviours against the sandbox Entra ID are in sandbox.test.ts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { configSchema } from '../../src/app/schema.ts';
import { MbError } from '../../src/errors/index.ts';
import { createLogger } from '../../src/log/index.ts';
import { createIdentity } from '../../src/identity/index.ts';
import { connectProxy, fakeJwt, httpsStub, json, memoryKv, testBox } from './helpers.ts';
import { tempDir } from '../support/temp.ts';

const TENANT = '6e1f0c2a-6b1d-4c1e-9d55-0a1b2c3d4e5f';
const APP_ID = '0c1d2e3f-aaaa-4bbb-8ccc-0123456789ab';
const SECRET = 'Vq38Q~stub-secret-value-0123456789abcdefgh';
const tmp = tempDir('mb-identity-');
let mode: 'ok' | 'throttle-once' | 'throttle-long' | 'no-roles' = 'ok';
let issued = 0;
let stub: Awaited<ReturnType<typeof httpsStub>>;
let caFile: string;

before(async () => {
  stub = await httpsStub((req, res) => {
    if (req.path !== `/${TENANT}/oauth2/v2.0/token`) return json(res, 404, { error: 'not_found' });
    if (mode === 'throttle-once' && stub.requests.length === 1) {
      return json(res, 429, { error: 'temporarily_unavailable', error_description: 'AADSTS90055: Too many requests.' }, { 'retry-after': '2' });
    }
    if (mode === 'throttle-long') {
      return json(res, 429, { error: 'temporarily_unavailable', error_description: 'AADSTS90055: Too many requests.' }, { 'retry-after': '600' });
    }
    issued++;
    const claims: Record<string, unknown> = { aud: 'https://outlook.office365.com', tid: TENANT, appid: APP_ID, app_displayname: 'mailbridge', n: issued };
    if (mode !== 'no-roles') claims.roles = ['SMTP.SendAsApp', 'IMAP.AccessAsApp'];
    // Answer a little later, so concurrent callers really overlap.
    setTimeout(() => json(res, 200, { token_type: 'Bearer', expires_in: 3600, ext_expires_in: 3600, access_token: fakeJwt(claims) }), 20);
  });
  caFile = tmp.file('ca.pem', stub.caPem);
});
after(async () => {
  await stub.close();
  tmp.remove();
});

function identity(
  options: { graceSeconds?: number; clock?: () => number; sleep?: (ms: number) => Promise<void>; clientSecretExpires?: string; log?: Writable; serverProxy?: string } = {},
) {
  const config = configSchema.parse({
    server: options.serverProxy ? { proxy: options.serverProxy } : undefined,
    connections: {
      crm: {
        tenantId: TENANT,
        clientId: APP_ID,
        clientSecret: testBox.seal(SECRET),
        clientSecretExpires: options.clientSecretExpires ?? new Date(Date.now() + 200 * 86_400_000).toISOString().slice(0, 10),
        tokenEndpoint: `${stub.url}/#TenantID#/oauth2/v2.0/token`,
        caFile,
        graceSeconds: options.graceSeconds ?? 30,
      },
    },
  });
  const log = options.log ? createLogger({ level: 'debug', destination: options.log }) : undefined;
  return createIdentity({ config, kv: memoryKv(), secretBox: testBox, clock: options.clock, log, network: { sleep: options.sleep }, env: {} });
}

function reset(m: typeof mode = 'ok') {
  mode = m;
  stub.requests.length = 0;
}

test('1,000 concurrent getToken calls for one connection make exactly one token request', async () => {
  reset();
  const id = identity();
  try {
    const tokens = await Promise.all(Array.from({ length: 1000 }, () => id.getToken('crm', 'exchange')));
    assert.equal(stub.requests.length, 1);
    assert.equal(new Set(tokens.map((t) => t.accessToken)).size, 1);
    assert.equal(stub.requests[0]!.form.grant_type, 'client_credentials');
    assert.equal(stub.requests[0]!.form.scope, 'https://outlook.office365.com/.default');
    assert.equal(stub.requests[0]!.form.client_id, APP_ID);
    // and the next call is served from the cache
    assert.equal((await id.getToken('crm')).fromCache, true);
    assert.equal(stub.requests.length, 1);
    // Graph is another resource: its own (single) request.
    await Promise.all([id.getToken('crm', 'graph'), id.getToken('crm', 'graph')]);
    assert.equal(stub.requests.length, 2);
    assert.equal(stub.requests[1]!.form.scope, 'https://graph.microsoft.com/.default');
  } finally {
    await id.close();
  }
});

test('a token is renewed exactly at expiry minus graceSeconds (injected clock, no waiting)', async () => {
  reset();
  let now = Date.now();
  const id = identity({ graceSeconds: 120, clock: () => now });
  try {
    const first = await id.getToken('crm');
    assert.equal(first.fromCache, false);
    const renewAt = first.expiresOn.getTime() - 120_000;
    now = renewAt - 1;
    const still = await id.getToken('crm');
    assert.equal(still.fromCache, true);
    assert.equal(still.accessToken, first.accessToken);
    assert.equal(stub.requests.length, 1);
    now = renewAt;
    const renewed = await id.getToken('crm');
    assert.equal(renewed.fromCache, false);
    assert.notEqual(renewed.accessToken, first.accessToken);
    assert.equal(stub.requests.length, 2);
  } finally {
    await id.close();
  }
});

test('429 with Retry-After is honoured through MSAL: one wait of the asked length, then the token', async () => {
  reset('throttle-once');
  const waits: number[] = [];
  const id = identity({ sleep: async (ms) => void waits.push(ms) });
  try {
    const t = await id.getToken('crm');
    assert.ok(t.accessToken);
    assert.deepEqual(waits, [2000]);
    assert.equal(stub.requests.length, 2);
  } finally {
    await id.close();
  }
});

test('an expired client secret is refused before any request, in English and German', async () => {
  reset();
  const id = identity({ clientSecretExpires: '2020-01-31' });
  try {
    await assert.rejects(id.getToken('crm'), (e: unknown) => {
      assert.ok(e instanceof MbError);
      assert.equal(e.code, 'MB_CLIENT_SECRET_EXPIRED');
      assert.match(e.explain('en').cause, /expired on 2020-01-31; mailbridge did not ask Entra ID/);
      assert.match(e.explain('de').cause, /ist am 2020-01-31 abgelaufen/);
      assert.match(e.explain('en').fix, /New client secret/);
      return true;
    });
    assert.equal(stub.requests.length, 0);
    const notices = await id.warnings('crm');
    assert.deepEqual(notices.map((n) => [n.severity, n.error.code]), [['error', 'MB_CLIENT_SECRET_EXPIRED']]);
  } finally {
    await id.close();
  }
});

test('describe(): cloud, tenant, app, roles, expiry and endpoint — never the token; a token without roles is a problem', async () => {
  reset();
  const lines: string[] = [];
  const sink = new Writable({ write: (c, _e, cb) => void (lines.push(String(c)), cb()) });
  const id = identity({ log: sink });
  try {
    const d = await id.describe('crm');
    assert.equal(d.cloud, 'global');
    assert.equal(d.tenantId, TENANT);
    assert.equal(d.clientId, APP_ID);
    assert.equal(d.appName, 'mailbridge');
    assert.deepEqual(d.roles, ['SMTP.SendAsApp', 'IMAP.AccessAsApp']);
    assert.equal(d.endpoint, `${stub.url}/${TENANT}/oauth2/v2.0/token`);
    assert.match(d.credential, /^client secret \(expires \d{4}-\d\d-\d\d\)$/);
    assert.deepEqual(d.problems, []);
    const token = (await id.getToken('crm')).accessToken;
    assert.ok(!JSON.stringify(d).includes(token), 'describe() never contains the token');
    assert.ok(lines.some((l) => l.includes('access token acquired')), 'the log was written');
    assert.ok(!lines.join('').includes(token) && !lines.join('').includes(SECRET), 'the log never contains token or secret');

    reset('no-roles');
    id.clearTokens();
    const bare = await id.describe('crm');
    assert.deepEqual(bare.roles, []);
    assert.deepEqual(bare.problems.map((p) => p.code), ['MB_TOKEN_NO_ROLES']);
    assert.match(bare.problems[0]!.explain('en').fix, /Office 365 Exchange Online › Application permissions › SMTP\.SendAsApp, IMAP\.AccessAsApp/);
    assert.match(bare.problems[0]!.explain('de').fix, /Anwendungsberechtigungen/);
  } finally {
    await id.close();
  }
});

test('an unknown connection is MB_IDENTITY_UNKNOWN_CONNECTION naming the configured ones', async () => {
  const id = identity();
  await assert.rejects(id.getToken('nope'), (e: unknown) => e instanceof MbError && e.code === 'MB_IDENTITY_UNKNOWN_CONNECTION' && /crm/.test(e.explain('en').cause));
  await id.close();
});

test('server.proxy carries the token requests when the connection names none; describe() says which proxy', async () => {
  reset();
  const proxy = await connectProxy();
  const id = identity({ serverProxy: proxy.url });
  try {
    const d = await id.describe('crm');
    assert.equal(proxy.connects.length, 1);
    assert.equal(proxy.connects[0], new URL(stub.url).host);
    assert.equal(d.proxy, `${proxy.url}/ (server)`);
  } finally {
    await id.close();
    await proxy.close();
  }
});

test('an expiring secret is logged as a warning (once a day, not per request) and listed by warnings()', async () => {
  reset();
  let now = Date.now();
  const lines: string[] = [];
  const sink = new Writable({ write: (c, _e, cb) => void (lines.push(String(c)), cb()) });
  const expires = new Date(now + 12 * 86_400_000).toISOString().slice(0, 10);
  const id = identity({ clientSecretExpires: expires, clock: () => now, log: sink });
  try {
    await id.getToken('crm');
    id.clearTokens();
    await id.getToken('crm');
    const warned = () => lines.map((l) => JSON.parse(l) as { level: number; code?: string; msg: string }).filter((l) => l.code === 'MB_CLIENT_SECRET_EXPIRING');
    assert.equal(warned().length, 1);
    assert.equal(warned()[0]!.level, 40, 'pino warn');
    assert.match(warned()[0]!.msg, new RegExp(`expires on ${expires}`));
    const notices = await id.warnings();
    assert.deepEqual(notices.map((n) => [n.connection, n.severity, n.error.code]), [['crm', 'warning', 'MB_CLIENT_SECRET_EXPIRING']]);
    assert.match(notices[0]!.error.explain('de').cause, /läuft am .* ab/);
    now += 86_400_000 + 1;
    id.clearTokens();
    await id.getToken('crm');
    assert.equal(warned().length, 2, 'logged again the next day');
  } finally {
    await id.close();
  }
});

test('a Retry-After beyond the limit is reported as MB_ENTRA_THROTTLED at once, and repeated calls do not hammer Entra ID', async () => {
  reset('throttle-long');
  const waits: number[] = [];
  const id = identity({ sleep: async (ms) => void waits.push(ms) });
  try {
    await assert.rejects(id.getToken('crm'), (e: unknown) => {
      assert.ok(e instanceof MbError);
      assert.equal(e.code, 'MB_ENTRA_THROTTLED');
      assert.match(e.explain('en').cause, /wait 600 seconds/);
      assert.match(e.explain('de').cause, /600 Sekunden zu warten/);
      return true;
    });
    assert.deepEqual(waits, []);
    assert.equal(stub.requests.length, 1);
    // MSAL remembers the throttle: the next call is refused without a request.
    await assert.rejects(id.getToken('crm'), (e: unknown) => e instanceof MbError && e.code === 'MB_ENTRA_THROTTLED');
    assert.equal(stub.requests.length, 1);
  } finally {
    await id.close();
  }
});
