/**
 * Benchmark (not a test): notify capacity on one node with SQLite, one node with PostgreSQL and
 * three nodes with PostgreSQL, side by side in one run; then the largest number of watched
 * mailboxes three nodes hold with p99 arrival → webhook under 1 s.
 *
 *   node_modules/.bin/node bench/cluster/notify.ts [--mailboxes 600] [--rate 20] [--seconds 30] [--steps 1200,2400,…] [--shard 50] [--setup-seconds 900] [--steps-only]
 *
 * Setup (the machinery of bench/notify/watch.ts): the sandbox tenant in this process with
 * synthetic Graph mailboxes, a webhook receiver here, a private PostgreSQL server
 * (test/support/postgres.ts), and each mailbridge node in its own process
 * (bench/cluster/notify-child.ts) with one Graph watch group (listeners of 1,250 mailboxes) and a
 * webhook subscription for every mailbox. With three nodes, every subscription names the first
 * node's listener (a load balancer that always picks it): the others get their notifications
 * handed over through PostgreSQL. Arrival is the sandbox storing the message; the figure ends when
 * the signed webhook reached the receiver. Mail goes to random watched mailboxes at --rate per
 * second for --seconds, once every node's share has settled (settle s: from the nodes' start until
 * every mailbox is watched and the spread has not changed for three ownership rounds).
 * Shards of 50 (the product's default is 250) so that a few hundred mailboxes spread over three
 * nodes; the lease is 6 s (default 30 s) so that the nodes settle within seconds.
 *
 * The search for the largest count goes up the steps (default 1,200 to 19,200) until p99 reaches
 * 1 s, a webhook is missing, or the nodes do not settle within --setup-seconds (the machine ran
 * out); each step's settle time is printed with it. The machine (cores, load, memory) is printed
 * first: every process (sandbox, receiver, PostgreSQL, three nodes) shares it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as netServer } from 'node:net';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import { createSandboxCa } from '../../src/sandbox/ca.ts';
import { startSandbox } from '../../src/sandbox/index.ts';
import { startPostgres } from '../../test/support/postgres.ts';

const { values } = parseArgs({
  options: {
    mailboxes: { type: 'string', default: '600' },
    rate: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '30' },
    steps: { type: 'string', default: '' },
    shard: { type: 'string', default: '50' },
    'setup-seconds': { type: 'string', default: '900' },
    /** Only the search over the steps (not the side-by-side of one and three nodes first). */
    'steps-only': { type: 'boolean', default: false },
  },
});
const N = Number(values.mailboxes);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const SHARD = Number(values.shard);
const STEPS = values.steps ? values.steps.split(',').map(Number) : [1200, 2400, 3600, 4800, 7200, 9600, 14_400, 19_200];
const MAX = Math.max(N, ...STEPS);
/** A short lease (rounds every 2 s) so the nodes settle quickly; 30 s is the product's default. */
const LEASE_MS = 6000;
const ROUND_MS = LEASE_MS / 3;
const ROOT = join(import.meta.dirname, '..', '..');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
const freePort = () =>
  new Promise<number>((resolve) => {
    const s = netServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
const body = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });

const work = mkdtempSync(join(tmpdir(), 'mb-bench-cluster-notify-'));
chmodSync(work, 0o711);
const sandbox = await startSandbox({ dir: join(work, 'sandbox'), synthetic: { mailboxes: MAX } });
const pg = await startPostgres();
const children = new Set<ChildProcess>();

// The webhook receiver: arrival → webhook per subject, duplicates by event id.
const sentAt = new Map<string, number>();
let latencies: number[] = [];
/** Arrivals whose webhook took a second or more: when they were sent (s into the run) and how long they took. */
let slow: Array<{ at: number; ms: number }> = [];
let runStart = 0;
let duplicates = 0;
const seen = new Set<string>();
const receiver = createServer(async (req, res) => {
  const text = await body(req);
  res.writeHead(204).end();
  const at = performance.now();
  const msg = JSON.parse(text) as { type: string; data: { id: string; subject?: string } };
  if (msg.type !== 'message.new') return;
  if (seen.has(msg.data.id)) duplicates++;
  seen.add(msg.data.id);
  const t0 = msg.data.subject ? sentAt.get(msg.data.subject) : undefined;
  if (t0 !== undefined) {
    latencies.push(at - t0);
    if (at - t0 >= 1000) slow.push({ at: (t0 - runStart) / 1000, ms: at - t0 });
  }
});
await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

const ca = createSandboxCa({ keyPem: readFileSync(join(sandbox.dir, 'ca.key'), 'utf8'), certPem: readFileSync(sandbox.caFile, 'utf8') });
const cert = ca.issueServer(['127.0.0.1', 'localhost']);
writeFileSync(join(work, 'inbound.pem'), cert.certPem);
writeFileSync(join(work, 'inbound.key'), cert.keyPem);
const example = parse(readFileSync(sandbox.configFile, 'utf8')) as Record<string, unknown>;
delete example.relay;
delete example.connectors;

interface Result {
  setup: string;
  mailboxes: number;
  setupSeconds: number;
  /** Every mailbox watched and the spread steady before --setup-seconds ran out. */
  settled: boolean;
  events: number;
  received: number;
  p50: number;
  p99: number;
  duplicates: number;
  spread: string;
}

let run = 0;
async function measure(setup: 'sqlite' | 'postgres', nodes: number, n: number): Promise<Result> {
  run++;
  latencies = [];
  duplicates = 0;
  seen.clear();
  const mailboxes = Array.from({ length: n }, (_, i) => sandbox.synthetic!.address(i + 1));
  const store = setup === 'sqlite' ? { driver: 'sqlite', path: join(work, `run${run}.db`) } : { driver: 'postgres', url: await pg.database(`bench${run}`) };
  const ports = await Promise.all(Array.from({ length: nodes }, () => freePort()));
  const group = {
    kind: 'graph',
    listeners: Array.from({ length: Math.ceil(n / 1250) }, (_, i) => ({ name: `l${i + 1}`, connection: 'sandbox' })),
    mailboxes,
    graph: { baseUrl: `${sandbox.graph.url}/v1.0` },
  };
  const files = ports.map((port, i) => {
    const file = join(sandbox.dir, `bench-run${run}-node${i + 1}.yaml`);
    const watch = { publicUrl: `https://127.0.0.1:${ports[0]}`, listen: { host: '127.0.0.1', port, certFile: join(work, 'inbound.pem'), keyFile: join(work, 'inbound.key') }, groups: { bench: group } };
    writeFileSync(file, stringify({ ...example, store, node: { name: `node${i + 1}` }, server: { port: 0 }, log: { level: 'warn' }, notify: { webhook: { requireHttps: false }, egress: { allow: ['127.0.0.1/32'] }, watch } }));
    return file;
  });
  {
    const { openStore } = await import('../../src/store/index.ts');
    const { openSecretBox } = await import('../../src/config/secrets.ts');
    const { sealedNotifyRepository } = await import('../../src/notify/sealed.ts');
    const s = await openStore(store as Parameters<typeof openStore>[0]);
    const box = await openSecretBox({ keyFile: join(sandbox.dir, 'mailbridge.key'), env: {} });
    const now = Date.now();
    await sealedNotifyRepository(s.notify, box).createSubscription({ id: 'sub_bench', kind: 'webhook', mailboxes, events: ['message.new'], params: { url: hook, secret: `whsec_${Buffer.alloc(32, 7).toString('base64')}` }, privacy: 'full', state: 'active', createdAt: now, updatedAt: now });
    await s.close();
  }
  const watching = new Array<number>(nodes).fill(0);
  const ready = new Array<boolean>(nodes).fill(false);
  const started = Date.now();
  const procs = files.map((configFile, i) => {
    const child = spawn(NODE, [join(ROOT, 'bench', 'cluster', 'notify-child.ts'), JSON.stringify({ configFile, shardSize: SHARD, leaseMs: LEASE_MS })], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, NODE_EXTRA_CA_CERTS: sandbox.caFile },
    });
    children.add(child);
    let buf = '';
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      let k;
      while ((k = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, k);
        buf = buf.slice(k + 1);
        if (line.startsWith('WATCHING ')) watching[i] = Number(line.slice(9));
        else if (line === 'READY') ready[i] = true;
      }
    });
    return child;
  });
  // Settled: every node started, every mailbox watched and the spread unchanged for three ownership
  // rounds (nodes that start one after another first take everything, then hand shards over round
  // by round; a node still starting on a loaded machine would take its share during the measurement).
  const deadline = started + Number(values['setup-seconds']) * 1000;
  let stableSince = Date.now();
  let lastSpread = '';
  let settled = false;
  while (Date.now() < deadline) {
    const now = `${watching.join('/')} ${ready.join('/')}`;
    if (now !== lastSpread) {
      lastSpread = now;
      stableSince = Date.now();
    }
    if (ready.every(Boolean) && watching.reduce((a, b) => a + b, 0) >= n && Date.now() - stableSince >= 3 * ROUND_MS) {
      settled = true;
      break;
    }
    await sleep(250);
  }
  // Until the spread last changed (the three steady rounds after it are the check, not the settling).
  const setupSeconds = ((settled ? stableSince : Date.now()) - started) / 1000;
  const spread = watching.join('/');

  const total = RATE * SECONDS;
  const t0 = performance.now();
  runStart = t0;
  slow = [];
  for (let i = 0; i < total; i++) {
    const wait = t0 + (i * 1000) / RATE - performance.now();
    if (wait > 0) await sleep(wait);
    const subject = `run${run}-${i}`;
    sentAt.set(subject, performance.now());
    sandbox.synthetic!.deliver(mailboxes[Math.floor(Math.random() * mailboxes.length)]!, { from: 'sender@fabrikam.test', subject });
  }
  const end = Date.now() + 30_000;
  while (latencies.length < total && Date.now() < end) await sleep(100);
  const got = [...latencies].sort((a, b) => a - b);
  for (const c of procs) c.kill('SIGTERM');
  await Promise.all(procs.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
  for (const c of procs) children.delete(c);
  return { setup: `${nodes} node${nodes > 1 ? 's' : ''}, ${setup}`, mailboxes: n, setupSeconds, settled, events: total, received: got.length, p50: percentile(got, 50), p99: percentile(got, 99), duplicates, spread };
}

const fmt = (r: Result) =>
  `${r.setup.padEnd(20)} ${String(r.mailboxes).padStart(8)} ${`${r.setupSeconds.toFixed(1)}${r.settled ? '' : '!'}`.padStart(9)} ${`${r.received}/${r.events}`.padStart(10)} ${r.p50.toFixed(0).padStart(7)} ${r.p99.toFixed(0).padStart(7)} ${String(r.duplicates).padStart(5)}  ${r.spread}`;
const head = `${'setup'.padEnd(20)} ${'mailboxes'.padStart(8)} ${'settle s'.padStart(9)} ${'webhooks'.padStart(10)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'dups'.padStart(5)}  watching per node`;
try {
  console.log(`# machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB memory; every process of the run shares it`);
  console.log(`# notify capacity, Graph, ${RATE} messages/s for ${SECONDS} s, shards of ${SHARD}; settle s ends with "!" when the nodes had not settled within ${values['setup-seconds']} s`);
  console.log(head);
  if (!values['steps-only']) for (const [setup, nodes] of [['sqlite', 1], ['postgres', 1], ['postgres', 3]] as const) console.log(fmt(await measure(setup, nodes, N)));
  console.log(`\n# three nodes on PostgreSQL: the largest mailbox count with p99 arrival → webhook under 1 s (steps ${STEPS.join(', ')})`);
  console.log(head);
  let best = 0;
  let stop = 'every step met it';
  for (const n of STEPS) {
    const r = await measure('postgres', 3, n);
    console.log(`${fmt(r)}   (load average ${loadavg()[0]!.toFixed(1)})`);
    // Whether the slow ones come together (a pause somewhere) or spread over the run.
    if (slow.length > 0) console.log(`  ${slow.length} of ${r.received} took 1 s or more: ${slow.map((x) => `${x.at.toFixed(1)} s → ${x.ms.toFixed(0)} ms`).join(', ')}`);
    if (r.settled && r.received === r.events && r.p99 < 1000) best = Math.max(best, n);
    else {
      stop = !r.settled ? `${n} did not settle within ${values['setup-seconds']} s` : r.received < r.events ? `${n}: ${r.events - r.received} webhooks missing` : `${n}: p99 ${r.p99.toFixed(0)} ms`;
      break;
    }
  }
  console.log(best > 0 ? `largest with p99 < 1 s: ${best} mailboxes (of the steps tried; stopped: ${stop})` : `no step met p99 < 1 s (${stop})`);
} finally {
  for (const c of children) c.kill('SIGKILL');
  receiver.close();
  await pg.stop();
  await sandbox.close();
  rmSync(work, { recursive: true, force: true });
}
