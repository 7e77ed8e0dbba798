/**
 * Benchmark (not a test): end-to-end relay throughput of 10 KB messages from 4 concurrent clients,
 * mailbridge against Postfix (Debian's package), in one run, to the same upstream on this machine.
 *
 * The upstream: Postfix cannot log in with XOAUTH2 to the sandbox's Exchange Online front (there is
 * no token flow in it without sasl-xoauth2), so both relay to one plain upstream instead — an SMTP
 * server in this process (smtp-server) offering STARTTLS with the sandbox CA's certificate and
 * optional AUTH, which hands every message to the sandbox's real Dovecot over LMTP (a pool of
 * LMTP connections). Both relays must use STARTTLS to it; mailbridge logs in with XOAUTH2 (its
 * transport always does; the upstream does not check the token), Postfix sends without AUTH.
 *
 *  - mailbridge: `mailbridge serve` as an admin runs it (relay listener, durable queue: fsync +
 *    SQLite commit before 250, SMTP XOAUTH2 transport with pooled connections, and everything else
 *    serve holds: the HTTP server with /health, /metrics and the admin API, MSAL with its token
 *    cache). Its connection gets real tokens from the sandbox's Entra ID (started here for that
 *    alone; the upstream does not check them). `--service-only` runs just the relay service with a
 *    stub token source instead (bench/relay/mailbridge-child.mjs), to show what serve adds. Clients come from an allowed network
 *    (no AUTH, no TLS, like Postfix's mynetworks). Each client sends as its own mailbox, and
 *    mailbridge keeps Exchange's limit of 3 connections per mailbox (4 clients → up to 12
 *    connections upstream); the 30-per-minute pacing is lifted (the upstream is not Exchange).
 *  - Postfix: a private instance (bench/relay/postfix.ts): smtpd for 127.0.0.0/8, its queue
 *    (fsync before 250), relayhost = the upstream with smtp_tls_security_level = encrypt and
 *    smtp_destination_concurrency_limit = 12 (the same number of upstream connections).
 *
 * Each client holds one SMTP connection and sends its share back to back (MAIL, RCPT, DATA);
 * acceptance latency is the time from MAIL FROM to the 250 after DATA. Throughput is messages per
 * second from the first MAIL FROM until the upstream has delivered the last message into Dovecot.
 * Memory is the peak of the summed proportional set size (PSS: resident memory, shared pages split
 * among their sharers) of the relay's processes (mailbridge: its one process; Postfix: master and
 * all its daemons), sampled every 200 ms. CPU is the user + system time the relay's processes used
 * over the same interval (Postfix: every daemon, including those its master reaped meanwhile), per
 * 1,000 messages; the upstream and Dovecot, shared by both, are not counted. A warm-up of 100 messages
 * per tool opens the connections first. Rounds alternate which tool goes first. Every message is
 * checked in its sink mailbox in Dovecot before figures are printed.
 *
 * What runs is what the packages install: src/ and its dependencies bundled (scripts/build.ts), started
 * with the V8 options and environment of `mailbridge serve` (package.json mailbridge.serveFlags and
 * serveEnv, which bin/mailbridge.mjs applies). `--from-src` runs the checkout's TypeScript instead, which also loads
 * Node's type stripper (about 12 MB more).
 *
 * `--baseline <checkout>` adds a third relay: mailbridge from another checkout of this repository
 * (its serve, or its bench/relay/mailbridge-child with --service-only), so a change can be compared with the code before it in the
 * same run, on the same machine load; its column and ratio are printed beside the others.
 *
 * Run: bash bench/relay/setup.sh; node_modules/.bin/node bench/relay/throughput.ts [--messages 2000] [--size 10240] [--clients 4] [--rounds 2] [--keep] [--tools mailbridge,postfix] [--baseline DIR] [--from-src] [--service-only]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import nodemailer from 'nodemailer';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { SMTPServer } from 'smtp-server';
import { createSandboxCa } from '../../src/sandbox/ca.ts';
import { startDovecot, type Dovecot } from '../../src/sandbox/dovecot.ts';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { parse, stringify } from 'yaml';
import { alive, cpuSeconds, pss, startPostfix, type Postfix } from './postfix.ts';
import { Arrivals } from '../support/arrivals.ts';
import { compiledSources, moduleFiles, serveSettings } from '../support/build.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '2000' },
    size: { type: 'string', default: '10240' },
    clients: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '100' },
    keep: { type: 'boolean', default: false },
    tools: { type: 'string', default: 'mailbridge,postfix' },
    baseline: { type: 'string' },
    'from-src': { type: 'boolean', default: false },
    'service-only': { type: 'boolean', default: false },
  },
});
const FROM_SRC = values['from-src'];
/** What bench/relay/mailbridge-child.mjs (--service-only) loads of mailbridge. */
const SERVICE_MODULES = ['app/schema', 'log/index', 'relay/transports/service', 'store/index', 'app/plugins', 'app/relay'];
const SERVICE_ONLY = values['service-only'];
const N = Number(values.messages);
const SIZE = Number(values.size);
const CLIENTS = Number(values.clients);
const ROUNDS = Number(values.rounds);
const WARMUP = Number(values.warmup);

type Tool = 'mailbridge' | 'postfix' | 'baseline';
const BASELINE = values.baseline;
interface RunResult {
  tool: Tool;
  seconds: number;
  acceptSeconds: number;
  latencies: number[];
  peakRss: number;
  peakAnon: number;
  cpuSeconds: number;
}

execFileSync('bash', [join(ROOT, 'bench', 'relay', 'setup.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
const work = mkdtempSync(join(tmpdir(), 'mb-relay-bench-'));
const ca = createSandboxCa();
const caFile = join(work, 'ca.pem');
writeFileSync(caFile, ca.certPem);

let dovecot: Dovecot | undefined;
let sandbox: Sandbox | undefined;
let upstream: SMTPServer | undefined;
let lmtp: ReturnType<typeof nodemailer.createTransport> | undefined;
const cleanups: Array<() => Promise<void>> = [];
const delivered = new Arrivals();

async function startUpstream(d: Dovecot): Promise<number> {
  lmtp = nodemailer.createTransport({ host: '127.0.0.1', port: d.ports.lmtp, lmtp: true, ignoreTLS: true, pool: true, maxConnections: 16, maxMessages: Infinity });
  const tls = ca.issueServer();
  upstream = new SMTPServer({
    key: tls.keyPem,
    cert: tls.certPem,
    authOptional: true,
    authMethods: ['XOAUTH2'],
    size: 50 * 1024 * 1024,
    disableReverseLookup: true,
    logger: false,
    maxClients: 1000,
    onAuth: (auth, _session, cb) => cb(null, { user: auth.username }),
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const to = session.envelope.rcptTo.map((r) => r.address);
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        lmtp!.sendMail({ envelope: { from, to }, raw: Buffer.concat(chunks) }).then(
          (info) => {
            for (const r of info.accepted ?? []) delivered.add(String(r).toLowerCase());
            cb();
          },
          (err: Error) => cb(err),
        );
      });
    },
  });
  upstream.on('error', () => undefined);
  upstream.listen(0, '127.0.0.1');
  await once(upstream.server, 'listening');
  return (upstream.server.address() as AddressInfo).port;
}

function message(i: number, from: string, to: string, tag: string): Buffer {
  const head = [`From: <${from}>`, `To: <${to}>`, `Subject: bench ${tag} ${i}`, `Message-ID: <${tag}.${i}@bench.test>`, 'Date: Mon, 02 Nov 2026 10:00:00 +0000', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=us-ascii', '', ''].join('\r\n');
  const line = 'x'.repeat(76) + '\r\n';
  let body = '';
  while (head.length + body.length + line.length <= SIZE) body += line;
  return Buffer.from(head + body);
}

async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** `clients` connections, each sending its share back to back; returns the acceptance latencies (ms). */
async function submit(port: number, total: number, sink: string, tag: string): Promise<number[]> {
  const latencies: number[] = [];
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, c) => {
      const from = `app${c}@bench.test`;
      const conn = new SMTPConnection({ host: '127.0.0.1', port, ignoreTLS: true, logger: false, socketTimeout: 120_000 });
      conn.on('error', () => undefined);
      await new Promise<void>((res, rej) => {
        conn.once('error', rej);
        conn.connect(() => res());
      });
      for (let i = c; i < total; i += CLIENTS) {
        const raw = message(i, from, sink, tag);
        const t0 = performance.now();
        await new Promise<void>((res, rej) => conn.send({ from, to: [sink] }, raw, (err) => (err ? rej(err) : res())));
        latencies.push(performance.now() - t0);
      }
      conn.quit();
    }),
  );
  return latencies;
}

interface Running {
  port: number;
  pids(): number[];
  /** CPU seconds the relay's processes have used so far. */
  cpu(): number;
  stop(): Promise<void>;
}

/**
 * mailbridge.yaml for `serve`: the relay as the child below configures it, and the sandbox's
 * connection (its client secret sealed with the sandbox's key) for real tokens.
 */
function serveConfig(dir: string, relayPort: number, upstreamPort: number): string {
  const example = parse(readFileSync(sandbox!.configFile, 'utf8')) as { connections: Record<string, Record<string, unknown>> };
  const file = join(dir, 'mailbridge.yaml');
  const config = {
    secrets: { keyFile: join(sandbox!.dir, 'mailbridge.key') },
    store: { driver: 'sqlite', path: join(dir, 'mb.db') },
    server: { listen: '127.0.0.1', port: 0 },
    connections: { bench: { ...example.connections.sandbox, caFile } },
    relay: {
      hostname: 'mailbridge.bench.test',
      dataDir: join(dir, 'relay'),
      listeners: [{ host: '127.0.0.1', port: relayPort, tls: 'none' }],
      networks: { local: { cidrs: ['127.0.0.1/32'], allowedSenders: ['@bench.test'] } },
      queue: { ratePerMinute: 100_000, concurrencyPerMailbox: 3, maxConcurrency: 20 },
      routes: [{ senders: ['@bench.test'], connection: 'bench', smtp: { host: '127.0.0.1', port: upstreamPort } }],
    },
  };
  writeFileSync(file, stringify(config));
  return file;
}

async function startMailbridge(dir: string, upstreamPort: number, checkout = ROOT): Promise<Running> {
  mkdirSync(dir, { recursive: true });
  const code = FROM_SRC ? undefined : compiledSources(checkout, cleanups, SERVICE_ONLY ? SERVICE_MODULES : []);
  const serve = serveSettings(checkout);
  if (!SERVICE_ONLY) {
    const relayPort = await freePort();
    const main = code ? code.main : join(checkout, 'src', 'admin', 'cli', 'main.ts');
    const child: ChildProcess = spawn(
      join(ROOT, 'node_modules', '.bin', 'node'),
      [...serve.flags, ...(process.env.MB_BENCH_NODE_FLAGS ? process.env.MB_BENCH_NODE_FLAGS.split(' ') : []), main, '--config', serveConfig(dir, relayPort, upstreamPort), 'serve'],
      { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir, env: { PATH: process.env.PATH, LANG: 'C', ...serve.env } },
    );
    const log = createWriteStream(join(dir, 'mailbridge.log'));
    child.stderr!.pipe(log, { end: false });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        log.write(d);
        if (out.length < 100_000) out += d.toString();
        if (/mailbridge is running/.test(out)) resolve();
      });
      child.once('exit', (c) => reject(new Error(`mailbridge serve exited with ${c}: see ${join(dir, 'mailbridge.log')}`)));
    });
    return running(child, relayPort);
  }
  const childFile = [join(checkout, 'bench', 'relay', 'mailbridge-child.mjs'), join(checkout, 'bench', 'relay', 'mailbridge-child.ts')].find((f) => existsSync(f))!;
  const child: ChildProcess = spawn(
    join(ROOT, 'node_modules', '.bin', 'node'),
    [
      ...serve.flags,
      ...(process.env.MB_BENCH_NODE_FLAGS ? process.env.MB_BENCH_NODE_FLAGS.split(' ') : []),
      ...(process.env.MB_BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.MB_BENCH_CPU_PROF] : []),
      childFile,
      JSON.stringify({ dir, upstream: { host: '127.0.0.1', port: upstreamPort }, caFile, maxConcurrency: 20, ...(code ? { modules: moduleFiles(code, SERVICE_MODULES), code: code.dir /* a --baseline's older child */ } : {}) }),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...serve.env } },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /READY (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`mailbridge exited with ${code}`)));
  });
  return running(child, port);
}

function running(child: ChildProcess, port: number): Running {
  const pid = child.pid!;
  return {
    port,
    pids: () => [pid],
    cpu: () => cpuSeconds(pid).self,
    async stop() {
      if (!alive(pid)) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function startPeer(dir: string, upstreamPort: number): Promise<Running> {
  const pf: Postfix = await startPostfix({ dir, port: await freePort(), relay: { host: '127.0.0.1', port: upstreamPort }, caFile, concurrency: 3 * CLIENTS });
  return {
    port: pf.port,
    pids: pf.pids,
    // Live daemons' own time plus what the master reaped: a daemon that exits in between moves
    // from the first to the second, so the difference over an interval counts it once.
    cpu: () => pf.pids().reduce((sum, p) => sum + cpuSeconds(p).self, 0) + cpuSeconds(pf.masterPid).children,
    stop: pf.stop,
  };
}

async function runOne(tool: Tool, round: number, upstreamPort: number): Promise<RunResult> {
  const dir = join(work, `${tool}-${round}`);
  const relay = tool === 'postfix' ? await startPeer(dir, upstreamPort) : await startMailbridge(dir, upstreamPort, tool === 'baseline' ? BASELINE : ROOT);
  cleanups.push(relay.stop);
  try {
    const warm = `warm-${tool}-${round}@bench.test`;
    if (WARMUP > 0) {
      await submit(relay.port, WARMUP, warm, `warm-${tool}-${round}`);
      await delivered.reached(warm, WARMUP);
    }
    let peak = 0;
    let peakAnon = 0;
    // Sampling reads /proc (smaps_rollup walks page tables): every 200 ms, process list every second,
    // so the bench process (which also runs the upstream) does not steal much CPU from the relays.
    let pids = relay.pids();
    let listedAt = performance.now();
    const sample = () => {
      if (performance.now() - listedAt > 1000) {
        pids = relay.pids();
        listedAt = performance.now();
      }
      const now = pids.map(pss);
      peak = Math.max(peak, now.reduce((sum, p) => sum + p.total, 0));
      peakAnon = Math.max(peakAnon, now.reduce((sum, p) => sum + p.anon, 0));
    };
    const sampler = setInterval(sample, 200);
    sample();
    const sink = `sink-${tool}-${round}@bench.test`;
    const cpu0 = relay.cpu();
    const t0 = performance.now();
    const latencies = await submit(relay.port, N, sink, `${tool}-${round}`);
    const tAccepted = performance.now();
    await delivered.reached(sink, N);
    const t1 = performance.now();
    const cpu = relay.cpu() - cpu0;
    clearInterval(sampler);
    sample();
    return { tool, seconds: (t1 - t0) / 1000, acceptSeconds: (tAccepted - t0) / 1000, latencies, peakRss: peak, peakAnon, cpuSeconds: cpu };
  } finally {
    await relay.stop();
    cleanups.splice(cleanups.indexOf(relay.stop), 1);
  }
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

try {
  dovecot = await startDovecot({ tls: ca.issueServer() });
  // The sandbox's Entra ID gives serve its tokens; its CA is the bench's, so one caFile serves both.
  if (!SERVICE_ONLY && values.tools.includes('mailbridge')) {
    const sandboxDir = join(work, 'sandbox');
    mkdirSync(sandboxDir);
    // Its Dovecot's users pass through the work folder (mkdtemp makes it 0700).
    chmodSync(work, 0o711);
    writeFileSync(join(sandboxDir, 'ca.key'), ca.keyPem, { mode: 0o600 });
    writeFileSync(join(sandboxDir, 'ca.pem'), ca.certPem);
    sandbox = await startSandbox({ dir: sandboxDir });
  }
  const upstreamPort = await startUpstream(dovecot);
  const results: RunResult[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const tools = [...values.tools.split(',').filter((t): t is Tool => t === 'mailbridge' || t === 'postfix'), ...(BASELINE ? (['baseline'] as const) : [])];
    const order: Tool[] = r % 2 === 0 ? tools : [...tools].reverse();
    for (const tool of order) {
      const res = await runOne(tool, r, upstreamPort);
      results.push(res);
      console.error(`round ${r + 1} ${tool}: ${(N / res.seconds).toFixed(0)} msg/s end to end, ${(N / res.acceptSeconds).toFixed(0)} accepted, ${((1000 * res.cpuSeconds) / N).toFixed(2)} CPU s per 1,000`);
    }
  }
  // Every message is in its sink mailbox, once.
  for (const res of results) {
    const round = results.filter((x) => x.tool === res.tool).indexOf(res);
    const files = dovecot.inboxFiles(`sink-${res.tool}-${round}@bench.test`);
    if (files.length !== N) throw new Error(`${res.tool} round ${round}: ${files.length} of ${N} messages in the sink mailbox`);
  }
  const summary = (tool: Tool) => {
    const rs = results.filter((x) => x.tool === tool);
    const lat = rs.flatMap((x) => x.latencies).sort((a, b) => a - b);
    const spread = (f: (x: RunResult) => number) => {
      const v = rs.map(f);
      return { mean: v.reduce((a, b) => a + b, 0) / v.length, min: Math.min(...v), max: Math.max(...v) };
    };
    return {
      rate: spread((x) => N / x.seconds),
      acceptRate: spread((x) => N / x.acceptSeconds),
      cpu: spread((x) => (1000 * x.cpuSeconds) / N),
      p50: pct(lat, 50),
      p99: pct(lat, 99),
      peak: Math.max(...rs.map((x) => x.peakRss)),
      peakAnon: Math.max(...rs.map((x) => x.peakAnon)),
    };
  };
  const present = (['mailbridge', 'postfix', 'baseline'] as const).filter((t) => results.some((x) => x.tool === t));
  const s = Object.fromEntries(present.map((t) => [t, summary(t)])) as Record<Tool, ReturnType<typeof summary>>;
  const names: Record<Tool, string> = { mailbridge: 'mailbridge', postfix: 'postfix', baseline: 'baseline' };
  const ratios: Array<[Tool, Tool]> = [
    ...(s.mailbridge && s.postfix ? [['mailbridge', 'postfix'] as [Tool, Tool]] : []),
    ...(s.mailbridge && s.baseline ? [['mailbridge', 'baseline'] as [Tool, Tool]] : []),
  ];
  const row = (label: string, cells: string[]) => console.log(`${label.padEnd(38)}${cells.map((c) => c.padStart(20)).join('')}`);
  const range = (v: { mean: number; min: number; max: number }, digits = 0) =>
    ROUNDS === 1 ? v.mean.toFixed(digits) : `${v.mean.toFixed(digits)} (${v.min.toFixed(digits)}–${v.max.toFixed(digits)})`;
  const figures: Array<[string, (x: ReturnType<typeof summary>) => number, (x: ReturnType<typeof summary>) => string]> = [
    ['messages/s end to end', (x) => x.rate.mean, (x) => range(x.rate)],
    ['messages/s accepted', (x) => x.acceptRate.mean, (x) => range(x.acceptRate)],
    ['acceptance latency p50 (ms)', (x) => x.p50, (x) => x.p50.toFixed(1)],
    ['acceptance latency p99 (ms)', (x) => x.p99, (x) => x.p99.toFixed(1)],
    ['peak memory (MB PSS, all processes)', (x) => x.peak, (x) => (x.peak / 1048576).toFixed(1)],
    ['  of it anonymous (MB, the processes\' own)', (x) => x.peakAnon, (x) => (x.peakAnon / 1048576).toFixed(1)],
    ['CPU s per 1,000 messages', (x) => x.cpu.mean, (x) => range(x.cpu, 2)],
  ];
  console.log(`\nRelay throughput: ${N} messages × ${(SIZE / 1024).toFixed(0)} KB, ${CLIENTS} concurrent clients, ${ROUNDS} round(s) (mean, min–max over rounds), warm-up ${WARMUP}`);
  console.log(`Upstream for all: STARTTLS SMTP (bench process) → sandbox Dovecot over LMTP; fsync before 250 in every relay${BASELINE ? `; baseline: mailbridge from ${BASELINE}` : ''}`);
  console.log(`mailbridge runs as ${SERVICE_ONLY ? 'the relay service alone (stub tokens, no HTTP server)' : '`mailbridge serve` (relay, HTTP server, admin API, MSAL tokens from the sandbox)'}, ${FROM_SRC ? 'from the TypeScript sources' : 'bundled as the packages ship it'}\n`);
  row('', [...present.map((t) => names[t]), ...ratios.map(([, b]) => `ratio to ${b}`)]);
  for (const [label, value, text] of figures) {
    row(label, [...present.map((t) => text(s[t])), ...ratios.map(([a, b]) => `${(value(s[a]) / value(s[b])).toFixed(2)}×`)]);
  }
  if (s.mailbridge && s.postfix) {
    const mb = s.mailbridge;
    const pf = s.postfix;
    console.log(
      `\ntargets: accepted ≥ 1.0× Postfix: ${mb.acceptRate.mean >= pf.acceptRate.mean ? 'yes' : 'NO'}; end to end ≥ 1.1×: ${mb.rate.mean >= 1.1 * pf.rate.mean ? 'yes' : 'NO'}; ` +
        `p99 ≤ Postfix: ${mb.p99 <= pf.p99 ? 'yes' : 'NO'}; peak memory ≤ Postfix: ${mb.peak <= pf.peak ? 'yes' : 'NO'} (≤ 1.5×: ${mb.peak <= 1.5 * pf.peak ? 'yes' : 'NO'})`,
    );
  }
} finally {
  for (const stop of cleanups.reverse()) await stop().catch(() => undefined);
  if (upstream) await new Promise<void>((r) => upstream!.close(() => r()));
  lmtp?.close();
  await dovecot?.stop();
  await sandbox?.close();
  if (values.keep) console.error(`kept ${work} (logs: */postfix.log, */mailbridge.log)`);
  else rmSync(work, { recursive: true, force: true });
}
