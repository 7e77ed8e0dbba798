/**
 * Two gateways on one PostgreSQL database are two nodes: each lists both in GET /api/v1/nodes
 * (marking itself), /metrics names the node and counts the live nodes, and a gateway that stops
 * leaves the registry at once. The relay's claims name the gateway's node, and the API, /metrics
 * and `mailbridge status` count per node the relay messages each holds claimed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/app/config.ts';
import { silentLogger } from '../../src/log/index.ts';
import { startGateway, type Gateway } from '../../src/server/index.ts';
import { openStore } from '../../src/store/index.ts';
import type { QueueRecord } from '../../src/store/queue.ts';
import { runCli } from '../admin/cli/harness.ts';
import { startPostgres, type PostgresServer } from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

const KEY = randomBytes(24).toString('base64url');
const dir = mkdtempSync(join(tmpdir(), 'mb-nodes-'));
let pg: PostgresServer;
const gateways: Gateway[] = [];

before(async () => {
  pg = await startPostgres();
});

after(async () => {
  for (const g of gateways) await g.close().catch(() => undefined);
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function gateway(url: string, name: string, extra: Record<string, unknown> = {}): Promise<Gateway> {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    JSON.stringify({ store: { driver: 'postgres', url }, node: { name }, server: { listen: '127.0.0.1', port: 0 }, api: { keys: { viewer: { key: KEY, scopes: ['read'] } } }, ...extra }),
  );
  const { config, keyFile } = await loadConfig(file, {});
  const gw = await startGateway(config, silentLogger, { keyFile, env: {} });
  gateways.push(gw);
  return gw;
}

interface Nodes {
  store: string;
  nodes: Array<{ id: string; name: string; version: string; role: string; live: boolean; self: boolean; uptimeSeconds: number; relayClaimed?: number }>;
}

async function nodes(gw: Gateway): Promise<Nodes> {
  const res = await fetch(`${gw.url}/api/v1/nodes`, { headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(res.status, 200);
  return (await res.json()) as Nodes;
}

test('GET /api/v1/nodes and /metrics on two gateways sharing one database', async () => {
  const url = await pg.database('nodes');
  const one = await gateway(url, 'mb1');
  const two = await gateway(url, 'mb2');
  // Each node writes its row in its first round, at start.
  const both = await waitFor(
    async () => {
      const n = await nodes(one);
      return n.nodes.length === 2 ? n : undefined;
    },
    10_000,
    'both nodes in the registry',
  );
  assert.equal(both.store, 'postgres');
  assert.deepEqual(both.nodes.map((n) => [n.name, n.role, n.live]).sort(), [['mb1', 'serve', true], ['mb2', 'serve', true]]);
  assert.deepEqual(both.nodes.filter((n) => n.self).map((n) => n.id), [one.node.id]);
  assert.deepEqual((await nodes(two)).nodes.filter((n) => n.self).map((n) => n.id), [two.node.id]);
  assert.match(one.node.id, /^mb1-[0-9a-f]{8}$/);
  assert.equal(both.nodes[0]!.version, JSON.parse((await import('node:fs')).readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);

  const metrics = await (await fetch(`${one.url}/metrics`)).text();
  assert.match(metrics, new RegExp(`^mailbridge_node_info\\{id="${one.node.id}",name="mb1",version="[^"]+",role="serve"\\} 1$`, 'm'));
  assert.match(metrics, /^mailbridge_cluster_nodes\{state="live"\} 2$/m);

  // A gateway that stops says goodbye: the other lists only itself.
  await two.close();
  gateways.splice(gateways.indexOf(two), 1);
  assert.deepEqual((await nodes(one)).nodes.map((n) => n.name), ['mb1']);
});

test('relay claims name the gateway\'s node; GET /api/v1/nodes, /metrics and mailbridge status count the relay messages each node holds claimed', async () => {
  const url = await pg.database('relayclaims');
  const one = await gateway(url, 'mb1', { relay: { dataDir: join(dir, 'relay'), hostname: 'relay.test', listeners: [{ host: '127.0.0.1', port: 0 }] } });
  await gateway(url, 'mb2');
  const store = await openStore({ driver: 'postgres', url });
  try {
    const now = Date.now();
    // Due in an hour, so the relay's manager leaves them alone; mb1's queue claims them as it does for a delivery.
    const row = (id: string): QueueRecord => ({
      id,
      state: 'incoming',
      kind: 'message',
      sender: 'scanner@contoso.test',
      recipients: ['a@example.com'],
      mailbox: 'scanner@contoso.test',
      size: 100,
      bodyType: '7bit',
      smtpUtf8: false,
      receivedAt: now,
      attempts: 0,
      nextAttemptAt: now + 3_600_000,
      updatedAt: now,
    });
    await store.queue.insert([row('m1'), row('m2'), row('m3')]);
    assert.ok(await one.relay!.relay.queue.claim('m1'));
    assert.ok(await one.relay!.relay.queue.claim('m2'));
    assert.equal((await store.queue.get('m1'))?.claimedBy, one.node.id);
    // A node that died holding a claim: listed as stopped, with its claim until a survivor takes it over.
    // Its last heartbeat a minute ago: stamped by a store whose clock runs a minute behind.
    const late = await openStore({ driver: 'postgres', url }, { clock: () => Date.now() - 60_000 });
    await late.cluster.heartbeat({ id: 'mb3-0d0e0a0d', name: 'mb3', version: '0.1.0', role: 'serve', startedAt: now - 600_000, owns: {} });
    await late.close();
    assert.ok((await store.queue.claim('m3', { by: 'mb3-0d0e0a0d', token: 't3', now, leaseMs: 3_600_000 })).record);

    const listed = await waitFor(
      async () => {
        const n = await nodes(one);
        return n.nodes.length === 3 ? n : undefined;
      },
      10_000,
      'three nodes in the registry',
    );
    assert.deepEqual(listed.nodes.map((n) => [n.name, n.live, n.relayClaimed]).sort(), [['mb1', true, 2], ['mb2', true, 0], ['mb3', false, 1]]);

    const metrics = await (await fetch(`${one.url}/metrics`)).text();
    assert.match(metrics, new RegExp(`^mailbridge_cluster_relay_claimed\\{node="${one.node.id}",name="mb1"\\} 2$`, 'm'));
    assert.match(metrics, /^mailbridge_cluster_relay_claimed\{node="mb3-0d0e0a0d",name="mb3"\} 1$/m);

    const cli = await runCli(['--config', join(dir, 'mb2.yaml'), 'status']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, new RegExp(`^mb1\\s+${one.node.id}\\s.*\\slive\\s+relay 2$`, 'm'));
    assert.match(cli.stdout, /^mb3\s+mb3-0d0e0a0d\s.*stopped \(last seen [^)]+\)\s+relay 1$/m);
  } finally {
    await store.close();
  }
});
