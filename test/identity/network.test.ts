import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { MbError } from '../../src/errors/index.ts';
import { UndiciNetwork } from '../../src/identity/network.ts';
import { parseRetryAfter } from '../../src/util/limits.ts';
import { createSandboxCa } from '../../src/sandbox/ca.ts';
import { connectProxy as proxy, httpsStub, json } from './helpers.ts';

const TOKEN = { token_type: 'Bearer', expires_in: 3599, access_token: 'opaque-token-value' };

function recordingSleep() {
  const waits: number[] = [];
  return { waits, sleep: async (ms: number) => void waits.push(ms) };
}

async function post(net: UndiciNetwork, url: string, correlationId = 'c1') {
  return net.sendPostRequestAsync<Record<string, unknown>>(url, { body: 'grant_type=client_credentials', headers: { 'content-type': 'application/x-www-form-urlencoded' }, correlationId });
}

test('429 with Retry-After is retried after exactly the time asked for; 5xx backs off exponentially; attempts are bounded', async () => {
  let calls = 0;
  const stub = await httpsStub((req, res) => {
    calls++;
    if (req.path === '/throttled') {
      if (calls === 1) return json(res, 429, { error: 'temporarily_unavailable' }, { 'retry-after': '7' });
      return json(res, 200, TOKEN);
    }
    if (req.path === '/flaky') return calls <= 3 ? json(res, 503, { error: 'temporarily_unavailable' }) : json(res, 200, TOKEN);
    if (req.path === '/down') {
      res.writeHead(502, { 'content-type': 'text/html' });
      return res.end('<html>Bad gateway</html>');
    }
    return json(res, 404, {});
  });
  try {
    const s1 = recordingSleep();
    const net = new UndiciNetwork({ ca: stub.caPem, sleep: s1.sleep, env: {} });
    const r = await post(net, `${stub.url}/throttled`);
    assert.equal(r.status, 200);
    assert.deepEqual(s1.waits, [7000]);
    assert.deepEqual(net.take('c1')?.waits, [7000]);
    assert.equal(calls, 2);

    calls = 0;
    const s2 = recordingSleep();
    const net2 = new UndiciNetwork({ ca: stub.caPem, sleep: s2.sleep, baseDelayMs: 500, env: {} });
    assert.equal((await post(net2, `${stub.url}/flaky`)).status, 200);
    assert.deepEqual(s2.waits, [500, 1000, 2000]);
    assert.equal(calls, 4);

    calls = 0;
    const s3 = recordingSleep();
    const net3 = new UndiciNetwork({ ca: stub.caPem, sleep: s3.sleep, maxAttempts: 3, env: {} });
    await assert.rejects(post(net3, `${stub.url}/down`), (e: unknown) => e instanceof MbError && e.code === 'MB_ENTRA_UNAVAILABLE');
    assert.equal(calls, 3, 'maxAttempts bounds the requests');
    assert.equal(s3.waits.length, 2);
    await Promise.all([net.close(), net2.close(), net3.close()]);
  } finally {
    await stub.close();
  }
});

test('a Retry-After beyond the limit is not waited out; the answer goes back at once', async () => {
  const stub = await httpsStub((_req, res) => json(res, 429, { error: 'invalid_request', error_description: 'AADSTS50196: loop detected' }, { 'retry-after': '3600' }));
  try {
    const s = recordingSleep();
    const net = new UndiciNetwork({ ca: stub.caPem, sleep: s.sleep, env: {} });
    const r = await post(net, `${stub.url}/x`);
    assert.equal(r.status, 429);
    assert.deepEqual(s.waits, []);
    const obs = net.take('c1');
    assert.equal(obs?.retryAfterMs, 3_600_000);
    assert.match(String(obs?.errorBody?.error_description), /AADSTS50196/);
    await net.close();
  } finally {
    await stub.close();
  }
});

test('answers that are not JSON become MB_IDENTITY_BAD_RESPONSE naming endpoint and status', async () => {
  const stub = await httpsStub((_req, res) => {
    res.writeHead(404, { 'content-type': 'text/html' });
    res.end('<html><body>Not Found</body></html>');
  });
  try {
    const net = new UndiciNetwork({ ca: stub.caPem, env: {} });
    await assert.rejects(post(net, `${stub.url}/wrong/oauth2/v2.0/token?x=1`), (e: unknown) => {
      assert.ok(e instanceof MbError);
      assert.equal(e.code, 'MB_IDENTITY_BAD_RESPONSE');
      assert.match(e.explain('en').cause, /\/wrong\/oauth2\/v2\.0\/token answered HTTP 404 .*text\/html: <html><body>Not Found/);
      assert.match(e.explain('de').cause, /antwortete mit HTTP 404/);
      return true;
    });
    await net.close();
  } finally {
    await stub.close();
  }
});

test('TLS to a server of an unknown CA fails with MB_IDENTITY_TLS; caFile makes it trusted', async () => {
  const stub = await httpsStub((_req, res) => json(res, 200, TOKEN), createSandboxCa());
  try {
    const plain = new UndiciNetwork({ env: {} });
    await assert.rejects(post(plain, `${stub.url}/t`), (e: unknown) => {
      assert.ok(e instanceof MbError);
      assert.equal(e.code, 'MB_IDENTITY_TLS');
      assert.match(e.explain('en').fix, /caFile/);
      return true;
    });
    const trusting = new UndiciNetwork({ ca: stub.caPem, env: {} });
    assert.equal((await post(trusting, `${stub.url}/t`)).status, 200);
    await Promise.all([plain.close(), trusting.close()]);
  } finally {
    await stub.close();
  }
});

test('a refused connection is MB_IDENTITY_NETWORK at once (no retries for configuration faults)', async () => {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  server.close();
  await once(server, 'close');
  const s = recordingSleep();
  const net = new UndiciNetwork({ sleep: s.sleep, env: {} });
  await assert.rejects(post(net, `https://127.0.0.1:${port}/t`), (e: unknown) => e instanceof MbError && e.code === 'MB_IDENTITY_NETWORK' && /127\.0\.0\.1/.test(e.explain('en').cause));
  assert.deepEqual(s.waits, []);
  await net.close();
});

test('proxy: explicit proxy and HTTPS_PROXY tunnel the request; NO_PROXY bypasses; a refusing proxy is MB_IDENTITY_PROXY', async () => {
  const stub = await httpsStub((_req, res) => json(res, 200, TOKEN));
  const good = await proxy();
  const refusing = await proxy(407);
  try {
    const explicit = new UndiciNetwork({ ca: stub.caPem, proxy: good.url, proxySource: 'server', env: {} });
    assert.equal((await post(explicit, `${stub.url}/t`)).status, 200);
    assert.equal(good.connects.length, 1);
    assert.match(good.connects[0]!, /^127\.0\.0\.1:\d+$/);
    assert.equal(explicit.proxyDescription, `${good.url}/ (server)`);

    const fromEnv = new UndiciNetwork({ ca: stub.caPem, env: { HTTPS_PROXY: good.url } });
    assert.equal((await post(fromEnv, `${stub.url}/t`)).status, 200);
    assert.equal(good.connects.length, 2);
    assert.match(fromEnv.proxyDescription ?? '', /HTTPS_PROXY/);

    const bypass = new UndiciNetwork({ ca: stub.caPem, env: { HTTPS_PROXY: good.url, NO_PROXY: '127.0.0.1' } });
    assert.equal((await post(bypass, `${stub.url}/t`)).status, 200);
    assert.equal(good.connects.length, 2, 'NO_PROXY host went direct');
    // What `token` reports follows the same rule as the connection itself.
    assert.equal(bypass.routeFor(`${stub.url}/t`).proxy, undefined);
    assert.equal(bypass.routeFor(`${stub.url}/t`).bypass, 'no-proxy');
    assert.equal(fromEnv.routeFor(`${stub.url}/t`).proxy?.href, `${good.url}/`);

    const withAuth = new URL(refusing.url);
    withAuth.username = 'svc-mail';
    withAuth.password = 'Pr0xyPassw0rd';
    const refused = new UndiciNetwork({ ca: stub.caPem, proxy: withAuth.href, env: {} });
    await assert.rejects(post(refused, `${stub.url}/t`), (e: unknown) => {
      assert.ok(e instanceof MbError);
      assert.equal(e.code, 'MB_IDENTITY_PROXY');
      const en = e.explain('en');
      assert.match(en.cause, /407 Proxy Authentication Required/);
      assert.ok(!en.cause.includes('Pr0xyPassw0rd'), 'proxy password never shown');
      assert.match(e.explain('de').fix, /CONNECT/);
      // The stub listens on a port of its own: CONNECT goes to host:port, not host:port:443.
      const port = new URL(stub.url).port;
      assert.match(en.fix, new RegExp(`allow CONNECT to 127\\.0\\.0\\.1:${port} on the proxy`));
      assert.doesNotMatch(en.fix + e.explain('de').fix, /:\d+:443/);
      return true;
    });
    await Promise.all([explicit.close(), fromEnv.close(), bypass.close(), refused.close()]);
  } finally {
    await Promise.all([stub.close(), good.close(), refusing.close()]);
  }
});

test('Retry-After is read as seconds or as an HTTP date', () => {
  assert.equal(parseRetryAfter('120'), 120_000);
  assert.equal(parseRetryAfter('Wed, 21 Oct 2026 07:28:30 GMT', Date.parse('Wed, 21 Oct 2026 07:28:00 GMT')), 30_000);
  assert.equal(parseRetryAfter(undefined), undefined);
  assert.equal(parseRetryAfter('soon'), undefined);
});
