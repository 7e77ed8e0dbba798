/**
 * Pieces the several-node and watch tests share: a certificate from the sandbox's CA, a webhook
 * receiver that collects events, a webhook subscription written straight into the shared
 * PostgreSQL store (sealed with the sandbox's key, as the subscriptions API would), and a gateway
 * child process (test/cluster/fixtures/gateway-child.ts) that reports how many mailboxes it watches.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { openSecretBox } from '../../src/config/secrets.ts';
import type { NotifyEvent } from '../../src/notify/events.ts';
import { sealedNotifyRepository } from '../../src/notify/sealed.ts';
import { createSandboxCa } from '../../src/sandbox/ca.ts';
import { parse } from 'yaml';
import { loopbackEgressConfig } from './egress.ts';
import { openStore } from '../../src/store/index.ts';
import { ownerOf } from '../../src/cluster/ownership.ts';
import { shardsOf } from '../../src/notify/watchers/service.ts';
import pg from 'pg';

const NODE = join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'node');

/** A webhook subscription for `mailboxes` to `hook`, signed with a secret made from `secretByte`. */
export async function subscribeWebhook(o: { url: string; sandboxDir: string; id: string; mailboxes: string[]; hook: string; secretByte: number; events?: string[] }): Promise<void> {
  const store = await openStore({ driver: 'postgres', url: o.url });
  try {
    const box = await openSecretBox({ keyFile: join(o.sandboxDir, 'mailbridge.key'), env: {} });
    await sealedNotifyRepository(store.notify, box).createSubscription({
      id: o.id,
      kind: 'webhook',
      mailboxes: o.mailboxes,
      events: o.events ?? [],
      params: { url: o.hook, secret: `whsec_${Buffer.alloc(32, o.secretByte).toString('base64')}` },
      privacy: 'full',
      state: 'active',
      createdAt: Date.now(),
      updatedAt: Date.now(),
    });
  } finally {
    await store.close();
  }
}

/** A gateway in a child process; `onWatching` gets each count of watched mailboxes it reports. */
export function spawnGateway(o: { configFile: string; leaseMs: number; caFile: string; onWatching: (n: number) => void; children?: Set<ChildProcess> }): ChildProcess {
  const child = spawn(NODE, [join(import.meta.dirname, '..', 'cluster', 'fixtures', 'gateway-child.ts'), JSON.stringify({ configFile: o.configFile, shardSize: 1, leaseMs: o.leaseMs })], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE_EXTRA_CA_CERTS: o.caFile },
  });
  o.children?.add(child);
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('WATCHING ')) o.onWatching(Number(line.slice(9)));
  });
  return child;
}

/** A server certificate for 127.0.0.1 from the sandbox's CA, which the sandbox's Graph and Exchange trust. */
export function sandboxServerCert(sandbox: { dir: string; caFile: string }): { certPem: string; keyPem: string } {
  const ca = createSandboxCa({ keyPem: readFileSync(join(sandbox.dir, 'ca.key'), 'utf8'), certPem: readFileSync(sandbox.caFile, 'utf8') });
  return ca.issueServer(['127.0.0.1']);
}

/** The `listen` section of an inbound listener for Graph and EWS callbacks on `port`. */
export type InboundListen = (port: number) => { host: string; port: number; certFile: string; keyFile: string };

/** Writes a certificate for 127.0.0.1 from the sandbox's CA into `dir` and returns the listener sections that use it. */
export function sandboxInbound(sandbox: { dir: string; caFile: string }, dir: string): InboundListen {
  const cert = sandboxServerCert(sandbox);
  const certFile = join(dir, 'inbound.pem');
  const keyFile = join(dir, 'inbound.key');
  writeFileSync(certFile, cert.certPem);
  writeFileSync(keyFile, cert.keyPem);
  return (port) => ({ host: '127.0.0.1', port, certFile, keyFile });
}

/**
 * A gateway's config for the watch tests: the sandbox's connections and key, the HTTP server on a
 * free port, webhooks to loopback receivers with quick retries, and `watch` as the test gives it.
 * `node` names a node of a several-node store.
 */
export function watchGatewayConfig(
  sandbox: { dir: string; configFile: string },
  o: { store: Record<string, unknown>; node?: string; retry?: Record<string, number>; watch: Record<string, unknown> },
): Record<string, unknown> {
  const example = parse(readFileSync(sandbox.configFile, 'utf8')) as { connections: Record<string, unknown> };
  return {
    secrets: { keyFile: join(sandbox.dir, 'mailbridge.key') },
    store: o.store,
    ...(o.node ? { node: { name: o.node } } : {}),
    server: { port: 0 },
    connections: example.connections,
    notify: { webhook: { requireHttps: false }, egress: loopbackEgressConfig, retry: { initialSeconds: 0.2, jitter: 0, ...o.retry }, watch: o.watch },
  };
}

/** A webhook receiver on loopback that pushes each event it is sent into `events` and answers 204. */
export async function startEventReceiver(events: NotifyEvent[]): Promise<Server> {
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      events.push((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: NotifyEvent }).data);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  return receiver;
}

/**
 * Whether every shard of a watch group (listener `<group>/sandbox`, shards of one mailbox as the
 * tests cut them) is held, unexpired, by the node rendezvous hashing gives it among the live nodes
 * of the pool, as every node computes it: the spread has settled. Node ids are random per start,
 * so how many nodes get shards varies from run to run: 9 mailboxes fall into 6 shards, and about
 * one run in 250 puts all of them on one node. A test that waits for shards on two nodes then
 * waits in vain; one that waits for this does not.
 */
export async function atRendezvousOwners(url: string, group: string, mailboxes: readonly string[], leaseMs: number): Promise<boolean> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const at = Date.now();
    const nodes = (await c.query<{ id: string; heartbeat_at: string; owns: string }>('SELECT id, heartbeat_at, owns FROM cluster_nodes')).rows;
    const members = nodes.filter((n) => Number(n.heartbeat_at) > at - leaseMs && `watch:${group}` in (JSON.parse(n.owns) as Record<string, number>)).map((n) => n.id);
    const leases = (await c.query<{ name: string; owner: string; expires_at: string }>('SELECT name, owner, expires_at FROM cluster_leases')).rows;
    const held = new Map(leases.filter((l) => Number(l.expires_at) > at).map((l) => [l.name, l.owner]));
    return shardsOf(mailboxes.map((address) => ({ address: address.toLowerCase(), folders: [] })), 1).every((shard, k) => {
      const lease = `watch:${group}/${group}/sandbox#${k}`;
      return shard.length === 0 || held.get(lease) === ownerOf(lease, members);
    });
  } finally {
    await c.end();
  }
}
