/**
 * Two gateways on one PostgreSQL database are two nodes: each lists both in GET /api/v1/nodes
 * (marking itself), /metrics names the node and counts the live nodes, and a gateway that stops
 * leaves the registry at once.
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

async function gateway(url: string, name: string): Promise<Gateway> {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, JSON.stringify({ store: { driver: 'postgres', url }, node: { name }, server: { listen: '127.0.0.1', port: 0 }, api: { keys: { viewer: { key: KEY, scopes: ['read'] } } } }));
  const { config, keyFile } = await loadConfig(file, {});
  const gw = await startGateway(config, silentLogger, { keyFile, env: {} });
  gateways.push(gw);
  return gw;
}

interface Nodes {
  store: string;
  nodes: Array<{ id: string; name: string; version: string; role: string; live: boolean; self: boolean; uptimeSeconds: number }>;
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
