/**
 * Three gateways on one PostgreSQL database watch one Graph group of the sandbox tenant: its
 * mailboxes, cut into shards, spread over the three nodes; every change notification reaches the
 * first node (the public URL all subscriptions name, as a load balancer that always picks it), which
 * hands those of the other nodes' shards over through the store's signals. One message into each
 * mailbox gives exactly one new-mail event at the webhook; after a node stops, its shards run on
 * the others and new mail into its mailboxes still gives one event each.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { configSchema, type Config } from '../../src/app/schema.ts';
import { openSecretBox } from '../../src/config/secrets.ts';
import { silentLogger } from '../../src/log/index.ts';
import type { NotifyEvent } from '../../src/notify/events.ts';
import { sealedNotifyRepository } from '../../src/notify/sealed.ts';
import { createSandboxCa } from '../../src/sandbox/ca.ts';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { startGateway, type Gateway } from '../../src/server/index.ts';
import { openStore } from '../../src/store/index.ts';
import { loopbackEgressConfig } from '../support/egress.ts';
import { freePort } from '../support/ports.ts';
import { startPostgres, type PostgresServer } from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

const MAILBOXES = 9;
let dir: string;
let sandbox: Sandbox;
let pg: PostgresServer;
let receiver: Server;
const events: NotifyEvent[] = [];
const gateways: Gateway[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mb-cluster-watch-'));
  chmodSync(dir, 0o711);
  sandbox = await startSandbox({ dir: join(dir, 'sandbox'), synthetic: { mailboxes: MAILBOXES } });
  pg = await startPostgres();
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      events.push((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: NotifyEvent }).data);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
});

after(async () => {
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
  const ca = createSandboxCa({ keyPem: readFileSync(join(sandbox.dir, 'ca.key'), 'utf8'), certPem: readFileSync(sandbox.caFile, 'utf8') });
  const cert = ca.issueServer(['127.0.0.1']);
  writeFileSync(join(dir, 'inbound.pem'), cert.certPem);
  writeFileSync(join(dir, 'inbound.key'), cert.keyPem);
  const example = parse(readFileSync(sandbox.configFile, 'utf8')) as { connections: Record<string, unknown> };
  const ports = [await freePort(), await freePort(), await freePort()];
  const config = (i: number): Config =>
    configSchema.parse({
      secrets: { keyFile: join(sandbox.dir, 'mailbridge.key') },
      store: { driver: 'postgres', url },
      node: { name: `node${i + 1}` },
      server: { port: 0 },
      connections: example.connections,
      notify: {
        webhook: { requireHttps: false },
        egress: loopbackEgressConfig,
        retry: { initialSeconds: 0.2, jitter: 0 },
        watch: {
          // Every subscription names the first node: the load balancer that always picks it.
          publicUrl: `https://127.0.0.1:${ports[0]}`,
          listen: { host: '127.0.0.1', port: ports[i], certFile: join(dir, 'inbound.pem'), keyFile: join(dir, 'inbound.key') },
          groups: { cloud: { kind: 'graph', listeners: [{ connection: 'sandbox' }], mailboxes, graph: { baseUrl: `${sandbox.graph.url}/v1.0` } } },
        },
      },
    });
  const store = await openStore({ driver: 'postgres', url });
  const box = await openSecretBox({ keyFile: join(sandbox.dir, 'mailbridge.key'), env: {} });
  await sealedNotifyRepository(store.notify, box).createSubscription({
    id: 'sub_all',
    kind: 'webhook',
    mailboxes,
    events: [],
    params: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, secret: `whsec_${Buffer.alloc(32, 1).toString('base64')}` },
    privacy: 'full',
    state: 'active',
    createdAt: Date.now(),
    updatedAt: Date.now(),
  });
  await store.close();

  for (let i = 0; i < 3; i++) gateways.push(await startGateway(config(i), silentLogger, { cluster: { leaseMs: 3000, shardSize: 1 } }));
  const watching = (g: Gateway) => g.watch!.status().groups.reduce((n, x) => n + (x.states.watching ?? 0), 0);
  const describe = () => gateways.map((g) => `${g.node.name}: ${JSON.stringify(g.watch!.status().groups.map((x) => x.states))} ${JSON.stringify(g.watch!.status().handoff)}`).join('; ');
  await waitFor(() => gateways.reduce((n, g) => n + watching(g), 0) === MAILBOXES && gateways.filter((g) => watching(g) > 0).length >= 2, 60_000, () => `all mailboxes watched, spread: ${describe()}`);
  const spread = gateways.map(watching);

  const news = (mb: string, subject: string) => events.filter((e) => e.type === 'message.new' && e.mailbox === mb && e.subject === subject);
  for (const mb of mailboxes) sandbox.synthetic!.deliver(mb, { from: 'bob@fabrikam.test', subject: 'Auftrag 1' });
  await waitFor(() => mailboxes.every((mb) => news(mb, 'Auftrag 1').length > 0), 60_000, () => `an event per mailbox: ${describe()}`);
  // The first node received every notification and handed the other nodes' on.
  const first = gateways[0]!.watch!.status().handoff!;
  assert.ok(first.forwarded >= MAILBOXES - spread[0]!, `forwarded ${first.forwarded}, the others watch ${MAILBOXES - spread[0]!}`);
  assert.ok(gateways.slice(1).some((g) => g.watch!.status().handoff!.received > 0));

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
});
