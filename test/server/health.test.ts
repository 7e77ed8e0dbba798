import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../src/config/schema.ts';
import { startGateway } from '../../src/server/index.ts';
import { silentLogger } from '../../src/log/index.ts';

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
