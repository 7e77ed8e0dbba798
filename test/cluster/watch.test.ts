/**
 * Three gateways on one PostgreSQL database watch one Graph group of the sandbox tenant: its
 * mailboxes, cut into shards, spread over the three nodes; every change notification reaches the
 * first node (the public URL all subscriptions name, as a load balancer that always picks it), which
 * hands those of the other nodes' shards over through the store's signals. One message into each
 * mailbox gives exactly one new-mail event at the webhook; after a node stops, its shards run on
 * the others and new mail into its mailboxes still gives one event each.
 */
import { after, before, test } from 'node:test';
import { type ChildProcess } from 'node:child_process';
import { stringify } from 'yaml';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pgDriver from 'pg';
import { configSchema, type Config } from '../../src/app/schema.ts';
import { silentLogger } from '../../src/log/index.ts';
import type { NotifyEvent } from '../../src/notify/events.ts';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { startGateway, type Gateway } from '../../src/server/index.ts';
import { freePort } from '../support/ports.ts';
import { startPostgres, type PostgresServer } from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';
import { atRendezvousOwners, sandboxInbound, spawnGateway, subscribeWebhook, watchGatewayConfig, type InboundListen } from '../support/cluster.ts';

const MAILBOXES = 9;
let dir: string;
let sandbox: Sandbox;
let pg: PostgresServer;
let receiver: Server;
let inbound: InboundListen;
const events: NotifyEvent[] = [];
/** Webhook calls for these subjects get their answer only when released (deliveries kept in flight). */
const holdSubjects = new Set<string>();
const held: Array<() => void> = [];
const gateways: Gateway[] = [];
const children = new Set<ChildProcess>();

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mb-cluster-watch-'));
  chmodSync(dir, 0o711);
  sandbox = await startSandbox({ dir: join(dir, 'sandbox'), synthetic: { mailboxes: MAILBOXES } });
  pg = await startPostgres();
  // The certificate of every node's inbound listener (all answer for 127.0.0.1).
  inbound = sandboxInbound(sandbox, dir);
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const event = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: NotifyEvent }).data;
      events.push(event);
      const answer = () => {
        if (!res.destroyed) res.writeHead(204).end();
      };
      if (event.type === 'message.new' && event.subject !== undefined && holdSubjects.has(event.subject)) held.push(answer);
      else answer();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const g of gateways) await g.close().catch(() => undefined);
  receiver?.closeAllConnections();
  receiver?.close();
  await pg?.stop();
  await sandbox?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('three gateways share a Graph watch group; notifications reach one node and are handed to the owners; a stopped node\'s shards move', { timeout: 180_000 }, async () => {
  const url = await pg.database('watch');
  const mailboxes = Array.from({ length: MAILBOXES }, (_, i) => sandbox.synthetic!.address(i + 1));
  const ports = [await freePort(), await freePort(), await freePort()];
  const config = (i: number): Config =>
    configSchema.parse(
      watchGatewayConfig(sandbox, {
        store: { driver: 'postgres', url },
        node: `node${i + 1}`,
        watch: {
          // Every subscription names the first node: the load balancer that always picks it.
          publicUrl: `https://127.0.0.1:${ports[0]}`,
          listen: inbound(ports[i]!),
          groups: { cloud: { kind: 'graph', listeners: [{ connection: 'sandbox' }], mailboxes, graph: { baseUrl: `${sandbox.graph.url}/v1.0` } } },
        },
      }),
    );
  await subscribeWebhook({ url, sandboxDir: sandbox.dir, id: 'sub_all', mailboxes, hook: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, secretByte: 1 });

  for (let i = 0; i < 3; i++) gateways.push(await startGateway(config(i), silentLogger, { cluster: { leaseMs: 3000, shardSize: 1 } }));
  const watching = (g: Gateway) => g.watch!.status().groups.reduce((n, x) => n + (x.states.watching ?? 0), 0);
  const describe = () => gateways.map((g) => `${g.node.name}: ${JSON.stringify(g.watch!.status().groups.map((x) => x.states))} ${JSON.stringify(g.watch!.status().handoff)}`).join('; ');
  // Settled where rendezvous hashing puts each shard, which may be one node (see atRendezvousOwners).
  await waitFor(async () => gateways.reduce((n, g) => n + watching(g), 0) === MAILBOXES && (await atRendezvousOwners(url, 'cloud', mailboxes, 3000)), 60_000, () => `all mailboxes watched, each shard at its node: ${describe()}`, 100);
  const spread = gateways.map(watching);

  const news = (mb: string, subject: string) => events.filter((e) => e.type === 'message.new' && e.mailbox === mb && e.subject === subject);
  for (const mb of mailboxes) sandbox.synthetic!.deliver(mb, { from: 'bob@fabrikam.test', subject: 'Auftrag 1' });
  await waitFor(() => mailboxes.every((mb) => news(mb, 'Auftrag 1').length > 0), 60_000, () => `an event per mailbox: ${describe()}`);
  // The first node received every notification and handed the other nodes' on.
  const first = gateways[0]!.watch!.status().handoff!;
  assert.ok(first.forwarded >= MAILBOXES - spread[0]!, `forwarded ${first.forwarded}, the others watch ${MAILBOXES - spread[0]!}`);
  // (Unless rendezvous hashing put every shard on the first node: then there is nobody to hand to.)
  if (spread[0]! < MAILBOXES) assert.ok(gateways.slice(1).some((g) => g.watch!.status().handoff!.received > 0));

  // The third node stops: its shards move to the two others; new mail into every mailbox, one event each.
  const stopped = gateways.pop()!;
  await stopped.close();
  await waitFor(() => gateways.reduce((n, g) => n + watching(g), 0) === MAILBOXES, 60_000, () => `all mailboxes on two nodes: ${describe()}`);
  for (const mb of mailboxes) sandbox.synthetic!.deliver(mb, { from: 'bob@fabrikam.test', subject: 'Auftrag 2' });
  await waitFor(() => mailboxes.every((mb) => news(mb, 'Auftrag 2').length > 0), 60_000, () => `an event per mailbox after the stop: ${describe()}`);
  // Markers: anything published twice would arrive before them.
  for (const mb of mailboxes) sandbox.synthetic!.deliver(mb, { from: 'bob@fabrikam.test', subject: 'Marker' });
  await waitFor(() => mailboxes.every((mb) => news(mb, 'Marker').length > 0), 60_000, () => `the markers: ${describe()}`);
  for (const mb of mailboxes) {
    assert.equal(news(mb, 'Auftrag 1').length, 1, `${mb}: Auftrag 1 once`);
    assert.equal(news(mb, 'Auftrag 2').length, 1, `${mb}: Auftrag 2 once`);
  }
  console.log(`# cluster watch: ${MAILBOXES} mailboxes over 3 nodes (${spread.join('/')}), ${first.forwarded} notifications handed over by node1; after node3 stopped: ${gateways.map(watching).join('/')}`);
  // This deployment stops: the next test's watches the same mailboxes.
  for (const g of gateways.splice(0)) await g.close();
});

test('three gateway processes share a Graph watch group; kill -9 of one while mail arrives: its shards move within the lease time, no event lost', { timeout: 240_000 }, async () => {
  const LEASE_MS = 3000;
  const url = await pg.database('watchkill');
  const mailboxes = Array.from({ length: MAILBOXES }, (_, i) => sandbox.synthetic!.address(i + 1));
  const ports = [await freePort(), await freePort(), await freePort()];
  const files = ports.map((port, i) => {
    const file = join(dir, `kill-node${i + 1}.yaml`);
    writeFileSync(
      file,
      stringify({
        ...watchGatewayConfig(sandbox, {
          store: { driver: 'postgres', url },
          node: `node${i + 1}`,
          watch: {
            publicUrl: `https://127.0.0.1:${ports[0]}`,
            listen: inbound(port),
            groups: { cloud: { kind: 'graph', listeners: [{ connection: 'sandbox' }], mailboxes, graph: { baseUrl: `${sandbox.graph.url}/v1.0` } } },
          },
        }),
        log: { level: 'silent' },
      }),
    );
    return file;
  });
  await subscribeWebhook({ url, sandboxDir: sandbox.dir, id: 'sub_kill', mailboxes, hook: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, secretByte: 2 });

  // Notification deliveries are claimed for the lease time, as in production (30 s there, the test's
  // shorter lease here): no separate claim time.
  const watching = [0, 0, 0];
  const nodes = files.map((configFile, i) => spawnGateway({ configFile, leaseMs: LEASE_MS, caFile: sandbox.caFile, children, onWatching: (n) => (watching[i] = n) }));
  const total = () => watching.reduce((a, b) => a + b, 0);
  await waitFor(() => total() === MAILBOXES && (watching[1]! > 0 || watching[2]! > 0), 90_000, () => `all mailboxes watched, spread over the nodes: ${watching.join('/')}`);

  const news = (subject: string) => events.filter((e) => e.type === 'message.new' && e.subject === subject);
  let n = 0;
  const sent: string[] = [];
  const send = (hold = false) => {
    for (const mb of mailboxes) {
      const subject = `kill-${++n}`;
      sent.push(subject);
      if (hold) holdSubjects.add(subject);
      sandbox.synthetic!.deliver(mb, { from: 'bob@fabrikam.test', subject });
    }
  };
  send();
  await waitFor(() => sent.every((s) => news(s).length > 0), 60_000, () => `the first round of events (${watching.join('/')})`);

  // Kill the busier of the two nodes the notifications do not go to (the balancer keeps reaching node1).
  const victim = watching[1]! >= watching[2]! ? 1 : 2;
  const victimClaims = async () =>
    (
      await db.query<{ subscription_id: string; event_id: string }>(`SELECT subscription_id, event_id FROM notify_deliveries WHERE state = 'pending' AND claimed_by LIKE $1`, [
        `node${victim + 1}-%`,
      ])
    ).rows;
  const db = new pgDriver.Client({ connectionString: url });
  await db.connect();
  try {
    // A round whose webhook calls are answered only after the kill, so the victim holds claims on
    // deliveries in flight when it dies (it usually sends the events it publishes itself, but a
    // survivor may claim them first: then that round is let through and another one is held).
    let orphans: Array<{ subscription_id: string; event_id: string }> = [];
    for (let attempt = 1; orphans.length === 0; attempt++) {
      assert.ok(attempt <= 5, `node${victim + 1} held no delivery claim in 4 rounds`);
      const before = sent.length;
      send(true);
      orphans = await waitFor(
        async () => {
          const rows = await victimClaims();
          // Every line's head in flight at the receiver, none of them the victim's: try again.
          return rows.length > 0 || held.length === MAILBOXES ? rows : undefined;
        },
        60_000,
        () => `node${victim + 1} to hold delivery claims, or every line in flight (${held.length} held; ${watching.join('/')})`,
      );
      if (orphans.length > 0) break;
      for (const answer of held.splice(0)) answer();
      holdSubjects.clear();
      await waitFor(() => sent.slice(before).every((s) => news(s).length > 0), 60_000, 'the round let through');
    }
    const shards = watching[victim]!;
    const killedAt = Date.now();
    nodes[victim]!.kill('SIGKILL');
    await new Promise((r) => nodes[victim]!.once('exit', r));
    for (const answer of held.splice(0)) answer();
    holdSubjects.clear();
    send();
    await waitFor(() => watching[victim]! === shards && total() - shards === MAILBOXES, LEASE_MS + 3 * (LEASE_MS / 3) + 10_000, () => `the shards on the survivors: ${watching.join('/')}`);
    const takeoverMs = Date.now() - killedAt;

    // The killed node's claims run out at most one lease after the kill (it renewed them until it
    // died); a survivor looks at least every third of the lease, then sends. Allowed on top: 3 s for
    // the webhook call and the commit on a loaded machine. With the former 5-minute claim they
    // waited 5 minutes.
    const boundMs = LEASE_MS + LEASE_MS / 3 + 3000;
    const finished = async () =>
      (
        await db.query<{ event_id: string; state: string; updated_at: string }>(
          'SELECT event_id, state, updated_at FROM notify_deliveries WHERE (subscription_id, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))',
          [orphans.map((o) => o.subscription_id), orphans.map((o) => o.event_id)],
        )
      ).rows;
    const done = await waitFor(async () => {
      const rows = await finished();
      return rows.length === orphans.length && rows.every((r) => r.state === 'done') && rows;
    }, boundMs + 30_000, `the killed node's ${orphans.length} claimed deliveries done by a survivor`);
    const lateness = done.map((r) => Number(r.updated_at) - killedAt);
    assert.ok(lateness.every((ms) => ms <= boundMs), `the killed node's claimed deliveries went out ${lateness.join(', ')} ms after the kill; bound ${boundMs} ms (lease ${LEASE_MS} ms)`);

    send();
    await waitFor(() => sent.every((s) => news(s).length > 0), 90_000, () => `every event: missing ${sent.filter((s) => news(s).length === 0).join(', ')} (${watching.join('/')})`);
    assert.deepEqual(sent.filter((s) => news(s).length === 0), [], 'no event lost');
    // At least once: the deliveries the killed node had in flight went out again from a survivor.
    const twice = sent.filter((s) => news(s).length > 1);
    console.log(
      `# cluster watch kill -9: ${MAILBOXES} mailboxes, killed node${victim + 1} watching ${shards}; its shards watched by the survivors ${takeoverMs} ms after the kill (lease ${LEASE_MS} ms); its ${orphans.length} claimed deliveries sent by a survivor ${Math.max(...lateness)} ms after the kill (bound ${boundMs} ms); ${sent.length} events, 0 lost, ${twice.length} delivered twice`,
    );
  } finally {
    await db.end();
  }
  for (const [i, c] of nodes.entries()) if (i !== victim) c.kill('SIGTERM');
  await Promise.all(nodes.map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)))));
});
