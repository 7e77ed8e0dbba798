/**
 * listenOn: a port that cannot be bound is a coded error naming the port and who holds it, for the
 * gateway (Fastify) and for plain net servers (relay listeners, the sandbox's SMTP/IMAP fronts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../src/app/schema.ts';
import { MbError } from '../../src/errors/index.ts';
import { listenOn, listenServer } from '../../src/errors/listen.ts';
import { silentLogger } from '../../src/log/index.ts';
import { startGateway } from '../../src/server/index.ts';
import { createSandboxCa } from '../../src/sandbox/ca.ts';
import { SandboxDirectory } from '../../src/sandbox/directory.ts';
import { startEntraSandbox } from '../../src/sandbox/entra/index.ts';

async function occupy(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

function expectBusy(port: number, what: string) {
  return (e: unknown) => {
    assert.ok(e instanceof MbError, String(e));
    assert.equal(e.code, 'MB_PORT_IN_USE', e.message);
    assert.equal(e.params.port, port);
    const en = e.explain('en');
    assert.match(en.cause, new RegExp(`${what.replace(/[.()[\]]/g, '\\$&')} cannot listen on 127\\.0\\.0\\.1:${port}`));
    // This test process holds the port; Linux shows who that is.
    if (process.platform === 'linux') assert.match(en.cause, new RegExp(`Held by: PID ${process.pid} \\(`));
    assert.match(e.explain('de').cause, /Belegt von:/);
    return true;
  };
}

test('the gateway on a busy server.port fails with MB_PORT_IN_USE naming the port and its holder, not MB_INTERNAL', async () => {
  const busy = await occupy();
  const dir = mkdtempSync(join(tmpdir(), 'mb-listen-'));
  try {
    const config = configSchema.parse({ store: { driver: 'sqlite', path: join(dir, 'mb.db') }, server: { listen: '127.0.0.1', port: busy.port } });
    await assert.rejects(startGateway(config, silentLogger), expectBusy(busy.port, 'server.port'));
  } finally {
    busy.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a plain net server (relay listener, sandbox front) on a busy port: the same coded error', async () => {
  const busy = await occupy();
  const second = createServer();
  try {
    await assert.rejects(listenOn('relay listener 127.0.0.1:x', '127.0.0.1', busy.port, () => listenServer(second, busy.port, '127.0.0.1')), expectBusy(busy.port, 'relay listener 127.0.0.1:x'));
  } finally {
    busy.server.close();
  }
});

test('an address the machine does not have: MB_ADDRESS_NOT_AVAILABLE; other failures pass through unchanged', async () => {
  const server = createServer();
  await assert.rejects(listenOn('server.port', '192.0.2.1', 0, () => listenServer(server, 0, '192.0.2.1')), (e: unknown) => {
    assert.ok(e instanceof MbError && e.code === 'MB_ADDRESS_NOT_AVAILABLE', String(e));
    return true;
  });
  const other = new Error('something else');
  await assert.rejects(listenOn('server.port', '127.0.0.1', 1, () => Promise.reject(other)), (e: unknown) => e === other);
});

test('a sandbox port pinned to a busy port: the same coded error, naming the sandbox part', async () => {
  const busy = await occupy();
  try {
    const directory = new SandboxDirectory({ tenants: [{ id: '72f988bf-86f1-41af-91ab-2d7cd011db47', domains: ['contoso.test'] }] });
    await assert.rejects(startEntraSandbox({ directory, ca: createSandboxCa(), ports: { gcc: busy.port } }), expectBusy(busy.port, 'sandbox Entra ID (gcc)'));
  } finally {
    busy.server.close();
  }
});
