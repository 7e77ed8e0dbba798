import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../src/app/schema.ts';
import { startGateway } from '../../src/server/index.ts';
import { createLogger, silentLogger } from '../../src/log/index.ts';

test('the gateway serves /health from the embedded SQLite store and reports a failing store', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-gw-'));
  const config = configSchema.parse({ store: { driver: 'sqlite', path: join(dir, 'mb.db') }, server: { port: 0 } });
  const gw = await startGateway(config, silentLogger);
  try {
    const ok = await fetch(`${gw.url}/health`);
    assert.equal(ok.status, 200);
    const body = (await ok.json()) as { status: string; store: string };
    assert.equal(body.status, 'ok');
    assert.equal(body.store, 'sqlite');

    await gw.store.close(); // the store goes away under a running server
    const bad = await fetch(`${gw.url}/health`);
    assert.equal(bad.status, 503);
    assert.equal(((await bad.json()) as { status: string }).status, 'failing');
  } finally {
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the request log never carries the authorization code or state of /oauth/callback', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-gw-'));
  const config = configSchema.parse({ store: { driver: 'sqlite', path: join(dir, 'mb.db') }, server: { port: 0 } });
  const lines: string[] = [];
  const gw = await startGateway(config, createLogger({ level: 'info', destination: { write: (l: string) => lines.push(l) } }));
  try {
    const res = await fetch(`${gw.url}/oauth/callback?code=0.AXoAcode-4711-secret&state=state-0815-secret&session_state=sess-42`);
    await res.text();
  } finally {
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const all = lines.join('');
  assert.match(all, /"url":"\/oauth\/callback\?code=\*{8}&state=\*{8}&session_state=\*{8}"/, all);
  for (const v of ['0.AXoAcode-4711-secret', 'state-0815-secret', 'sess-42']) assert.ok(!all.includes(v), `${v} logged`);
});

test('/health/ready names a failing store with its MB code in the requested language; /health/live stays up; /health is unchanged', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-gw-'));
  const config = configSchema.parse({ store: { driver: 'sqlite', path: join(dir, 'mb.db') }, server: { port: 0 } });
  const gw = await startGateway(config, silentLogger);
  try {
    const ready = await fetch(`${gw.url}/health/ready`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready' });
    await gw.store.close();
    const en = await fetch(`${gw.url}/health/ready`);
    assert.equal(en.status, 503);
    const body = (await en.json()) as { status: string; problems: Array<{ part: string; code: string; title: string }> };
    assert.equal(body.status, 'not-ready');
    assert.deepEqual(body.problems.map((p) => [p.part, p.code]), [['store', 'MB_HEALTH_STORE_DOWN']]);
    const de = (await (await fetch(`${gw.url}/health/ready`, { headers: { 'accept-language': 'de' } })).json()) as typeof body;
    assert.equal(de.problems[0]!.title, 'Der Datenspeicher antwortet nicht');
    assert.equal((await fetch(`${gw.url}/health/live`)).status, 200);
    assert.equal((await fetch(`${gw.url}/health`)).status, 503);
  } finally {
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('/metrics with server.metricsToken: 401 with MB_METRICS_UNAUTHORIZED without or with a wrong bearer token, the exposition with it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-gw-'));
  const token = 'metrics-token-4711-secret';
  const config = configSchema.parse({ store: { driver: 'sqlite', path: join(dir, 'mb.db') }, server: { port: 0, metricsToken: token } });
  const gw = await startGateway(config, silentLogger, { keyFile: join(dir, 'mailbridge.key'), env: {} });
  try {
    for (const authorization of [undefined, 'Bearer wrong', `Bearer ${token}x`]) {
      const res = await fetch(`${gw.url}/metrics`, authorization ? { headers: { authorization } } : {});
      assert.equal(res.status, 401);
      const text = await res.text();
      assert.equal((JSON.parse(text) as { error: { code: string } }).error.code, 'MB_METRICS_UNAUTHORIZED');
      assert.ok(!text.includes(token));
    }
    const ok = await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    const text = await ok.text();
    assert.match(text, /^# HELP mailbridge_http_requests_total /m);
    assert.match(text, /^mailbridge_http_requests_total\{method="GET",route="\/metrics",status="401"\} 3$/m);
  } finally {
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('/health/ready names a relay listener that stopped listening', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-gw-'));
  const config = configSchema.parse({
    store: { driver: 'sqlite', path: join(dir, 'mb.db') },
    server: { port: 0 },
    relay: { dataDir: join(dir, 'relay'), hostname: 'relay.test', listeners: [{ host: '127.0.0.1', port: 0 }] },
  });
  const gw = await startGateway(config, silentLogger, { keyFile: join(dir, 'mailbridge.key'), env: {} });
  try {
    assert.equal((await fetch(`${gw.url}/health/ready`)).status, 200);
    const l = gw.relay!.relay.listeners[0]!;
    // The socket goes away under the running relay (as after an unexpected server error).
    await new Promise<void>((resolve) => l.server.server.close(() => resolve()));
    const res = await fetch(`${gw.url}/health/ready`);
    assert.equal(res.status, 503);
    const body = (await res.json()) as { problems: Array<{ part: string; code: string; cause: string }> };
    assert.deepEqual(body.problems.map((p) => [p.part, p.code]), [[`relay.listeners.127.0.0.1:${l.port}`, 'MB_HEALTH_LISTENER_DOWN']]);
    assert.match(body.problems[0]!.cause, /relay\.listeners/);
  } finally {
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
