import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../src/config/schema.ts';
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
