/**
 * Benchmark (not a test): relay throughput of one mailbridge node on SQLite, one node on
 * PostgreSQL and three nodes on PostgreSQL, side by side in one run, on this machine.
 *
 * Each setup gets the same mail: `--messages` messages of `--size` bytes from `--clients` SMTP
 * clients, each sending as its own mailbox (Exchange's 3 connections per mailbox hold, across all
 * nodes on PostgreSQL), spread round-robin over the setup's nodes (what a load balancer in front of
 * the SMTP listeners does). Every node relays with STARTTLS and XOAUTH2 to one upstream in this
 * process, a counting sink (smtp-server) that accepts at once: the figure is the relay's own cost
 * (accept with its durable commit, claim, deliver, record), not a mailbox server's. Throughput is
 * messages per second from the first MAIL FROM until the upstream has received the last message;
 * acceptance latency is MAIL FROM to the 250 after DATA (p50, p99). The database is a private
 * PostgreSQL from Debian's package (test/support/postgres.ts: a Unix socket, fsync off — so its
 * commits cost less than on a real server; SQLite keeps its fsyncs: read the ratio with that in
 * mind). The three nodes share the machine's cores with the database, the clients and the upstream.
 *
 * Run: node_modules/.bin/node bench/cluster/relay.ts [--messages 2000] [--size 10240] [--clients 12] [--rounds 1] [--warmup 60]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { SMTPServer } from 'smtp-server';
import { createSandboxCa } from '../../src/sandbox/ca.ts';
import { startPostgres, type PostgresServer } from '../../test/support/postgres.ts';
import { Arrivals } from '../support/arrivals.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '2000' },
    size: { type: 'string', default: '10240' },
    clients: { type: 'string', default: '12' },
    rounds: { type: 'string', default: '1' },
    warmup: { type: 'string', default: '60' },
    keep: { type: 'boolean', default: false },
  },
});
const N = Number(values.messages);
const SIZE = Number(values.size);
const CLIENTS = Number(values.clients);
const ROUNDS = Number(values.rounds);
const WARMUP = Number(values.warmup);

type Setup = '1 node, SQLite' | '1 node, PostgreSQL' | '3 nodes, PostgreSQL';
const SETUPS: Array<{ name: Setup; nodes: number; postgres: boolean }> = [
  { name: '1 node, SQLite', nodes: 1, postgres: false },
  { name: '1 node, PostgreSQL', nodes: 1, postgres: true },
  { name: '3 nodes, PostgreSQL', nodes: 3, postgres: true },
];

const work = mkdtempSync(join(tmpdir(), 'mb-cluster-bench-'));
const ca = createSandboxCa();
const caFile = join(work, 'ca.pem');
writeFileSync(caFile, ca.certPem);

const received = new Arrivals();

const tls = ca.issueServer();
const upstream = new SMTPServer({
  key: tls.keyPem,
  cert: tls.certPem,
  authOptional: true,
  authMethods: ['XOAUTH2'],
  size: 50 * 1024 * 1024,
  disableReverseLookup: true,
  logger: false,
  maxClients: 1000,
  onAuth: (auth, _session, cb) => cb(null, { user: auth.username }),
  onData(stream, _session, cb) {
    let head = '';
    stream.on('data', (c: Buffer) => {
      if (head.length < 2048) head += c.toString('latin1');
    });
    stream.on('end', () => {
      const tag = /^Subject: bench (\S+) /m.exec(head)?.[1] ?? '?';
      received.add(tag);
      cb();
    });
  },
});
upstream.on('error', () => undefined);
upstream.listen(0, '127.0.0.1');
await once(upstream.server, 'listening');
const upstreamPort = (upstream.server.address() as AddressInfo).port;

function message(i: number, from: string, tag: string): Buffer {
  const head = [`From: <${from}>`, 'To: <sink@example.com>', `Subject: bench ${tag} ${i}`, `Message-ID: <${tag}.${i}@bench.test>`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=us-ascii', '', ''].join('\r\n');
  const line = 'x'.repeat(76) + '\r\n';
  let body = '';
  while (head.length + body.length + line.length <= SIZE) body += line;
  return Buffer.from(head + body);
}

/** Each client on its own connection to one of the nodes (round-robin), sending its share back to back. */
async function submit(ports: number[], total: number, tag: string): Promise<number[]> {
  const latencies: number[] = [];
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, c) => {
      const from = `app${c}@bench.test`;
      const conn = new SMTPConnection({ host: '127.0.0.1', port: ports[c % ports.length]!, ignoreTLS: true, logger: false, socketTimeout: 120_000 });
      conn.on('error', () => undefined);
      await new Promise<void>((res, rej) => {
        conn.once('error', rej);
        conn.connect(() => res());
      });
      for (let i = c; i < total; i += CLIENTS) {
        const raw = message(i, from, tag);
        const t0 = performance.now();
        await new Promise<void>((res, rej) => conn.send({ from, to: ['sink@example.com'] }, raw, (err) => (err ? rej(err) : res())));
        latencies.push(performance.now() - t0);
      }
      conn.quit();
    }),
  );
  return latencies;
}

async function startNode(dir: string, name: string, postgres: string | undefined): Promise<{ port: number; child: ChildProcess }> {
  mkdirSync(dir, { recursive: true });
  const child = spawn(
    join(ROOT, 'node_modules', '.bin', 'node'),
    [join(ROOT, 'bench', 'relay', 'mailbridge-child.mjs'), JSON.stringify({ dir, name, upstream: { host: '127.0.0.1', port: upstreamPort }, caFile, maxConcurrency: 20, ...(postgres ? { postgres } : {}) })],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /READY (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready`)));
  });
  return { port, child };
}

async function stopNode(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

function pct(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

interface Result {
  setup: Setup;
  round: number;
  perSecond: number;
  p50: number;
  p99: number;
}

let pgServer: PostgresServer | undefined;
const results: Result[] = [];
const children: ChildProcess[] = [];
try {
  pgServer = await startPostgres();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const setup of SETUPS) {
      const url = setup.postgres ? await pgServer.database('bench') : undefined;
      const nodes = [];
      for (let i = 0; i < setup.nodes; i++) {
        const node = await startNode(join(work, `${round}-${setup.nodes}-${setup.postgres ? 'pg' : 'sqlite'}-${i}`), `n${i}`, url);
        children.push(node.child);
        nodes.push(node);
      }
      const ports = nodes.map((n) => n.port);
      const warm = `w${round}${setup.nodes}${setup.postgres ? 'p' : 's'}`;
      await submit(ports, WARMUP, warm);
      await received.reached(warm, WARMUP);
      const tag = `r${round}${setup.nodes}${setup.postgres ? 'p' : 's'}`;
      const t0 = performance.now();
      const latencies = await submit(ports, N, tag);
      await received.reached(tag, N);
      const seconds = (performance.now() - t0) / 1000;
      results.push({ setup: setup.name, round, perSecond: N / seconds, p50: pct(latencies, 50), p99: pct(latencies, 99) });
      for (const n of nodes) await stopNode(n.child);
      process.stderr.write(`round ${round}: ${setup.name}: ${(N / seconds).toFixed(0)} msg/s\n`);
    }
  }
} finally {
  for (const c of children) await stopNode(c).catch(() => undefined);
  await pgServer?.stop();
  upstream.close();
  if (!values.keep) rmSync(work, { recursive: true, force: true });
}

const base = results.filter((r) => r.setup === '1 node, SQLite');
const baseRate = base.reduce((a, r) => a + r.perSecond, 0) / base.length;
console.log(`\nrelay throughput: ${N} messages of ${SIZE} bytes, ${CLIENTS} clients (one mailbox each), ${ROUNDS} round(s), upstream: counting sink (STARTTLS + XOAUTH2)`);
console.log('setup                  msg/s    ratio to 1 node SQLite   accept p50 ms   accept p99 ms');
for (const s of SETUPS) {
  const rs = results.filter((r) => r.setup === s.name);
  const rate = rs.reduce((a, r) => a + r.perSecond, 0) / rs.length;
  const p50 = rs.reduce((a, r) => a + r.p50, 0) / rs.length;
  const p99 = rs.reduce((a, r) => a + r.p99, 0) / rs.length;
  const spread = rs.length > 1 ? ` (${Math.min(...rs.map((r) => r.perSecond)).toFixed(0)}–${Math.max(...rs.map((r) => r.perSecond)).toFixed(0)})` : '';
  console.log(`${s.name.padEnd(22)} ${rate.toFixed(0).padStart(6)}${spread.padEnd(12)} ${(rate / baseRate).toFixed(2).padStart(8)}            ${p50.toFixed(1).padStart(8)}        ${p99.toFixed(1).padStart(8)}`);
}
