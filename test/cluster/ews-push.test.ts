/**
 * Three gateways on one PostgreSQL database share an EWS push group of the sandbox's Exchange:
 * its mailboxes, cut into shards, spread over the nodes; Exchange pushes SendNotification to one
 * public URL, a load balancer (here: round robin over the nodes' listeners, skipping a node that
 * refuses connections) that sends each push to any node. Bursts of 30 messages per mailbox make
 * Exchange send requests of up to 50 events (larger than a NOTIFY can carry): every new-mail event
 * reaches the webhook exactly once. Then kill -9 of a node in the middle of a burst: its shards go
 * to the survivors, what Exchange pushes meanwhile is stored for them, the subscriptions it left
 * behind are answered Unsubscribe, and every event arrives.
 */
import { after, before, test } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import { request, type Server } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { configSchema, type Config } from '../../src/app/schema.ts';
import { silentLogger } from '../../src/log/index.ts';
import type { NotifyEvent } from '../../src/notify/events.ts';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { startGateway, type Gateway } from '../../src/server/index.ts';
import { freePort } from '../support/ports.ts';
import { startPostgres, type PostgresServer } from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';
import { atRendezvousOwners, sandboxServerCert, spawnGateway, startEventReceiver, subscribeWebhook, watchGatewayConfig } from '../support/cluster.ts';

const MAILBOXES = 9;
const BURST = 30;
/** The lease time of every node here: a dead node's shards move after it. */
const LEASE_MS = 3000;
const GROUP = 'plant';
let dir: string;
let sandbox: Sandbox;
let pgServer: PostgresServer;
let receiver: Server;
let tls: { cert: string; key: string };
const events: NotifyEvent[] = [];
const gateways: Gateway[] = [];
const children = new Set<ChildProcess>();
const balancers: Balancer[] = [];

interface Balancer {
  url: string;
  /** Requests answered per backend, the largest request body, and answers that were not 200. */
  stats: { byBackend: number[]; largest: number; notOk: number };
  close(): Promise<void>;
}

/**
 * An HTTPS load balancer in front of the nodes' plain-HTTP inbound listeners: round robin per
 * request; a backend that refuses the connection is skipped (as a balancer's health check would),
 * one that fails after taking the request gives 502 (Exchange then sends it again).
 */
async function balancer(ports: number[]): Promise<Balancer> {
  const stats = { byBackend: ports.map(() => 0), largest: 0, notOk: 0 };
  let next = 0;
  const server: TlsServer = createTlsServer(tls, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      stats.largest = Math.max(stats.largest, body.length);
      const start = next++ % ports.length;
      const attempt = (k: number) => {
        if (k === ports.length) {
          stats.notOk++;
          return void res.writeHead(502).end();
        }
        const i = (start + k) % ports.length;
        const out = request({ host: '127.0.0.1', port: ports[i], method: req.method, path: req.url, headers: { ...req.headers, host: `127.0.0.1:${ports[i]}` } }, (answer) => {
          const back: Buffer[] = [];
          answer.on('data', (c: Buffer) => back.push(c));
          answer.on('end', () => {
            stats.byBackend[i]!++;
            if (answer.statusCode !== 200) stats.notOk++;
            res.writeHead(answer.statusCode ?? 502, { 'content-type': answer.headers['content-type'] ?? 'text/plain' }).end(Buffer.concat(back));
          });
          answer.on('error', () => {
            stats.notOk++;
            res.writeHead(502).end();
          });
        });
        out.on('error', (err: NodeJS.ErrnoException) => {
          if (err.code === 'ECONNREFUSED') return attempt(k + 1);
          stats.notOk++;
          if (!res.headersSent) res.writeHead(502).end();
        });
        out.end(body);
      };
      attempt(0);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const b: Balancer = {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stats,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  balancers.push(b);
  return b;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mb-cluster-ewspush-'));
  chmodSync(dir, 0o711);
  // Two sets of mailboxes: one per test, so the subscriptions of the first test do not meet the second.
  sandbox = await startSandbox({ dir: join(dir, 'sandbox'), synthetic: { mailboxes: 2 * MAILBOXES } });
  pgServer = await startPostgres();
  // The balancer's certificate, from the sandbox CA that the sandbox's Exchange trusts for push.
  const cert = sandboxServerCert(sandbox);
  tls = { cert: cert.certPem, key: cert.keyPem };
  receiver = await startEventReceiver(events);
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const g of gateways) await g.close().catch(() => undefined);
  for (const b of balancers) await b.close();
  receiver?.closeAllConnections();
  receiver?.close();
  await pgServer?.stop();
  await sandbox?.close();
  rmSync(dir, { recursive: true, force: true });
});

function nodeConfig(url: string, publicUrl: string, port: number, i: number, mailboxes: string[]) {
  return watchGatewayConfig(sandbox, {
    store: { driver: 'postgres', url },
    node: `node${i + 1}`,
    watch: {
      // Every subscription names the balancer; the nodes listen in plain HTTP behind it.
      publicUrl,
      listen: { host: '127.0.0.1', port },
      groups: { [GROUP]: { kind: 'ews', listeners: [{ connection: 'sandbox' }], mailboxes, ews: { url: sandbox.ews.url, mode: 'push' } } },
    },
  });
}

function webhook(url: string, id: string, mailboxes: string[]): Promise<void> {
  return subscribeWebhook({ url, sandboxDir: sandbox.dir, id, mailboxes, events: ['message.new'], hook: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, secretByte: id.length });
}

/** The watch leases and the nodes' heartbeats (for a failure message). */
async function leases(url: string): Promise<unknown> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const at = Date.now();
    const held = (await c.query<{ name: string; owner: string; epoch: number; expires_at: string }>('SELECT name, owner, epoch, expires_at FROM cluster_leases ORDER BY name')).rows;
    const nodes = (await c.query<{ id: string; heartbeat_at: string; owns: string }>('SELECT id, heartbeat_at, owns FROM cluster_nodes')).rows;
    return { held: held.map((l) => `${l.name} ${l.owner} #${l.epoch} ${Number(l.expires_at) - at} ms`), nodes: nodes.map((n) => `${n.id} ${at - Number(n.heartbeat_at)} ms ago ${n.owns}`) };
  } finally {
    await c.end();
  }
}

async function waitingParcels(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ n: string }>("SELECT count(*) AS n FROM signal_parcels WHERE channel = 'mailbridge_ews_push'");
    return Number(rows[0]!.n);
  } finally {
    await c.end();
  }
}

/** Delivers `count` messages into every mailbox (interleaved), subjects `<tag>-<k>`. */
function burst(mailboxes: string[], tag: string, from: number, count: number): void {
  for (let k = from; k < from + count; k++) for (const mb of mailboxes) sandbox.synthetic!.deliver(mb, { from: 'bob@fabrikam.test', subject: `${tag}-${k}` });
}

const arrived = (mb: string, subject: string) => events.filter((e) => e.type === 'message.new' && e.mailbox === mb && e.subject === subject).length;

function missing(mailboxes: string[], tag: string, from: number, to: number): string[] {
  const out: string[] = [];
  for (let k = from; k < to; k++) for (const mb of mailboxes) if (arrived(mb, `${tag}-${k}`) === 0) out.push(`${mb}:${tag}-${k}`);
  return out;
}

test('three gateways share an EWS push group behind a balancer: bursts of 30 messages per mailbox, pushed to any node, every event once', { timeout: 240_000 }, async () => {
  const url = await pgServer.database('ewspush');
  const mailboxes = Array.from({ length: MAILBOXES }, (_, i) => sandbox.synthetic!.address(i + 1));
  const ports = [await freePort(), await freePort(), await freePort()];
  const lb = await balancer(ports);
  await webhook(url, 'sub_burst', mailboxes);
  for (let i = 0; i < 3; i++) {
    const config: Config = configSchema.parse(nodeConfig(url, lb.url, ports[i]!, i, mailboxes));
    gateways.push(await startGateway(config, silentLogger, { cluster: { leaseMs: LEASE_MS, shardSize: 1 } }));
  }
  const held = (g: Gateway) => g.watch!.status().groups.reduce((n, x) => n + (x.states.watching ?? 0) + (x.states.subscribed ?? 0), 0);
  const describe = () => gateways.map((g) => `${g.node.name}: ${JSON.stringify(g.watch!.status().groups.map((x) => x.states))} ${JSON.stringify(g.watch!.status().ewsPush)} ${JSON.stringify(g.watch!.status().problems.slice(-3))}`).join('; ') + ` exchange ${JSON.stringify(sandbox.ews.stats.push)} lb ${JSON.stringify(lb.stats)} subs ${sandbox.ews.subscriptions()}`;
  // Settled where rendezvous hashing puts each shard, which may be one node (see atRendezvousOwners):
  // the pushes reach every node through the balancer and are handed over either way (asserted below).
  await waitFor(async () => gateways.reduce((n, g) => n + held(g), 0) === MAILBOXES && (await atRendezvousOwners(url, GROUP, mailboxes, LEASE_MS)), 90_000, () => `every mailbox subscribed, each shard at its node: ${describe()}`, 100).catch(
    async (err: Error) => {
      throw new Error(`${err.message}; leases ${JSON.stringify(await leases(url))}`);
    },
  );
  const spread = gateways.map(held);

  const pushed = sandbox.ews.stats.push.sent;
  burst(mailboxes, 'b1', 0, BURST);
  await waitFor(() => missing(mailboxes, 'b1', 0, BURST).length === 0, 120_000, () => `every event of the first burst; missing ${missing(mailboxes, 'b1', 0, BURST).length}: ${describe()}`);
  burst(mailboxes, 'b2', 0, BURST);
  await waitFor(() => missing(mailboxes, 'b2', 0, BURST).length === 0, 120_000, () => `every event of the second burst; missing ${missing(mailboxes, 'b2', 0, BURST).length}: ${describe()}`);
  // Markers last: an event delivered twice would have come before its mailbox's marker.
  burst(mailboxes, 'marker', 0, 1);
  await waitFor(() => missing(mailboxes, 'marker', 0, 1).length === 0, 60_000, () => `the markers: ${describe()}`);

  const twice: string[] = [];
  for (const tag of ['b1', 'b2']) for (let k = 0; k < BURST; k++) for (const mb of mailboxes) if (arrived(mb, `${tag}-${k}`) > 1) twice.push(`${mb}:${tag}-${k}`);
  assert.deepEqual(twice, [], 'no event twice');
  const stats = gateways.map((g) => g.watch!.status().ewsPush!);
  // Pushes reached nodes that did not hold the mailbox, and were handed over.
  assert.ok(stats.reduce((n, s) => n + s.forwarded, 0) > 0, `forwarded: ${JSON.stringify(stats)}`);
  assert.ok(lb.stats.byBackend.every((n) => n > 0), `every node answered pushes: ${lb.stats.byBackend.join('/')}`);
  // Exchange put 50 events into a request: more than a NOTIFY carries (8,000 bytes).
  assert.ok(lb.stats.largest > 8000, `largest push ${lb.stats.largest} bytes`);
  assert.equal(lb.stats.notOk, 0, 'every push answered 200');
  assert.equal(sandbox.ews.stats.push.failed, 0, 'Exchange saw no failed push');
  await waitFor(async () => (await waitingParcels(url)) === 0, 30_000, 'no parcel left');
  console.log(
    `# ews push on 3 nodes: ${MAILBOXES} mailboxes (${spread.join('/')}), 2 × ${BURST} messages each: ${2 * BURST * MAILBOXES} events once; ${sandbox.ews.stats.push.sent - pushed} pushes (per node ${lb.stats.byBackend.join('/')}, largest ${lb.stats.largest} bytes), handed over ${stats.map((s) => s.forwarded).join('/')}`,
  );
  for (const g of gateways.splice(0)) await g.close();
  await lb.close();
});

test('kill -9 of a node in the middle of a burst: its shards move, what Exchange pushes meanwhile is delivered, its subscriptions are answered Unsubscribe', { timeout: 300_000 }, async () => {
  const url = await pgServer.database('ewspushkill');
  const mailboxes = Array.from({ length: MAILBOXES }, (_, i) => sandbox.synthetic!.address(MAILBOXES + i + 1));
  const ports = [await freePort(), await freePort(), await freePort()];
  const lb = await balancer(ports);
  await webhook(url, 'sub_kill', mailboxes);
  const held = [0, 0, 0];
  const nodes = ports.map((port, i) => {
    const configFile = join(dir, `kill-node${i + 1}.yaml`);
    writeFileSync(configFile, stringify({ ...nodeConfig(url, lb.url, port, i, mailboxes), log: { level: 'silent' } }));
    // The lease time is also the claim time of notification deliveries: the killed node's go out from a survivor after it.
    return spawnGateway({ configFile, leaseMs: LEASE_MS, caFile: sandbox.caFile, children, onWatching: (n) => (held[i] = n) });
  });
  const total = () => held.reduce((a, b) => a + b, 0);
  await waitFor(async () => total() === MAILBOXES && (await atRendezvousOwners(url, GROUP, mailboxes, LEASE_MS)), 90_000, () => `every mailbox subscribed, each shard at its node: ${held.join('/')}`, 100);

  burst(mailboxes, 'k1', 0, BURST);
  await waitFor(() => missing(mailboxes, 'k1', 0, BURST).length === 0, 120_000, () => `the first burst: missing ${missing(mailboxes, 'k1', 0, BURST).length} (${held.join('/')})`);

  const victim = held.indexOf(Math.max(...held));
  const had = held[victim]!;
  const unsubscribedBefore = sandbox.ews.stats.push.unsubscribed;
  const failedBefore = sandbox.ews.stats.push.failed;
  // Half the burst, the kill while Exchange is pushing it, the other half while the node is dead.
  burst(mailboxes, 'k2', 0, BURST / 2);
  nodes[victim]!.kill('SIGKILL');
  const killedAt = Date.now();
  burst(mailboxes, 'k2', BURST / 2, BURST / 2);
  // Pushes for the dead node's mailboxes are stored by the survivors while no node holds them.
  let mostWaiting = 0;
  await waitFor(
    async () => {
      mostWaiting = Math.max(mostWaiting, await waitingParcels(url));
      return held[victim] === had && total() - had === MAILBOXES;
    },
    60_000,
    () => `the shards on the survivors: ${held.join('/')}`,
  );
  const takeoverMs = Date.now() - killedAt;
  // Before any new mail: the new holders take what was stored for them while nobody held the shards.
  await waitFor(async () => (await waitingParcels(url)) === 0, 30_000, 'the parcels stored during the takeover handled by the new holders');
  await waitFor(() => missing(mailboxes, 'k2', 0, BURST).length === 0, 120_000, () => `the burst of the kill: missing ${missing(mailboxes, 'k2', 0, BURST).slice(0, 20).join(', ')} (${held.join('/')})`);
  burst(mailboxes, 'k3', 0, BURST);
  await waitFor(
    () => missing(mailboxes, 'k2', 0, BURST).length + missing(mailboxes, 'k3', 0, BURST).length === 0,
    180_000,
    () => `every event after the kill: missing ${[...missing(mailboxes, 'k2', 0, BURST), ...missing(mailboxes, 'k3', 0, BURST)].slice(0, 20).join(', ')} (${held.join('/')})`,
  );
  // The subscriptions the killed node made are answered Unsubscribe once the survivors have their own.
  await waitFor(() => sandbox.ews.stats.push.unsubscribed > unsubscribedBefore, 120_000, () => `an Unsubscribe for the dead node's subscriptions (${held.join('/')})`);
  await waitFor(async () => (await waitingParcels(url)) === 0, 60_000, 'no parcel left');
  let twice = 0;
  for (const tag of ['k2', 'k3']) for (let k = 0; k < BURST; k++) for (const mb of mailboxes) if (arrived(mb, `${tag}-${k}`) > 1) twice++;
  console.log(
    `# ews push kill -9: node${victim + 1} held ${had} of ${MAILBOXES} mailboxes; shards on the survivors ${takeoverMs} ms after the kill (lease ${LEASE_MS} ms); ${2 * BURST * MAILBOXES} events after the kill, 0 lost, ${twice} delivered twice; at most ${mostWaiting} parcels waiting until the takeover, none left after; pushes not answered 200 ${sandbox.ews.stats.push.failed - failedBefore}; Unsubscribe ${sandbox.ews.stats.push.unsubscribed - unsubscribedBefore}`,
  );
  for (const [i, c] of nodes.entries()) if (i !== victim) c.kill('SIGTERM');
  await Promise.all(nodes.map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)))));
  await lb.close();
});
