/**
 * Benchmark (not a test): watch N mailboxes while mail arrives at a steady rate, and measure the
 * latency from arrival to the webhook (p50, p99) and the memory per watched mailbox.
 *
 *   node_modules/.bin/node bench/notify/watch.ts --kind graph [--mailboxes 15000] [--rate 20] [--seconds 30] [--plain-node] [--from-src]
 *   node_modules/.bin/node bench/notify/watch.ts --kind ews   [--mailboxes 15000] …
 *   node_modules/.bin/node bench/notify/watch.ts --kind imap  [--mailboxes 1000]  …
 *
 * Setup: the sandbox tenant in this process (Graph and EWS over synthetic in-memory mailboxes; IMAP
 * over real Dovecot mailboxes behind the Exchange Online IMAP front, each with FullAccess for the
 * demo app), mailbridge's gateway in a child process (bench/notify/mailbridge-child.mjs) with one
 * watch group of 1,250-mailbox listeners and a webhook subscription for every mailbox, and the
 * webhook receiver in a third process (receiver.mjs), so the sandbox's pauses do not delay its clock. Arrival is the moment the sandbox stored the message (synthetic deliver,
 * or Dovecot's LMTP 250); the figure ends when the signed webhook reached the receiver, so it holds
 * Microsoft's side as the sandbox emulates it, the watcher, the store and the dispatcher.
 *
 * The child runs src/ bundled as the packages ship it (bench/support/build.ts) (--from-src: the TypeScript sources), with
 * the V8 options and environment of `mailbridge serve` (package.json mailbridge.serveFlags and
 * serveEnv; --plain-node: without them).
 *
 * Memory: the headline is the child's peak RSS as the kernel reports it (VmHWM: the whole run, the
 * setup burst included, no forced collection), over N. Beside it, per watched mailbox: the child's
 * RSS with the watch groups minus its RSS without them, over N, both after a last-resort collection (V8 otherwise keeps young-generation pages of the start-up
 * burst resident, which it gives back under memory pressure; that figure is printed beside it), and
 * the RSS at the end of the run, with mail flowing.
 *
 * Peer, side by side: the floor of the same path without mailbridge — what the sandbox itself takes
 * to tell a bare client (Graph and EWS runs: a Graph change notification POSTed to a bare HTTPS
 * receiver, the sandbox's fastest way out of the synthetic mailboxes; IMAP: an imapflow client woken
 * from IDLE, as bench/sandbox/idle-wake.ts). The ratio says what mailbridge adds on top: the fetch of
 * sender, subject and unread count, the durable store, and the signed webhook. Targets from the issue: 50,000 mailboxes on one instance (--mailboxes 50000), p99 < 1 s, peak RSS < 20 KB per mailbox (< 1 GB).
 */
import { spawn } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { IncomingMessage } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ImapFlow } from 'imapflow';
import { Agent, fetch } from 'undici';
import { parse, stringify } from 'yaml';
import { createSandboxCa } from '../../src/sandbox/ca.ts';
import { addMailbox, grantFullAccess } from '../../src/sandbox/exchange/ops.ts';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { compiledSources, moduleFiles, serveSettings } from '../support/build.ts';

const { values } = parseArgs({
  options: {
    kind: { type: 'string', default: 'graph' },
    mailboxes: { type: 'string' },
    rate: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '30' },
    'setup-seconds': { type: 'string', default: '600' },
    'plain-node': { type: 'boolean', default: false },
    'from-src': { type: 'boolean', default: false },
  },
});
const KIND = values.kind as 'graph' | 'ews' | 'imap';
if (!['graph', 'ews', 'imap'].includes(KIND)) throw new Error('--kind graph | ews | imap');
const N = Number(values.mailboxes ?? (KIND === 'imap' ? 1000 : 15000));
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
/** Synthetic mailboxes beyond the watched ones, for the floor measurement. */
const FLOOR_MAILBOXES = 200;
const ROOT = join(import.meta.dirname, '..', '..');
/** Removes the compiled sources at the end. */
const builds: Array<() => Promise<void>> = [];
const NODE = join(ROOT, 'node_modules', '.bin', 'node');

interface Mem {
  /** RSS after ordinary GCs, before a last-resort collection. */
  retainedRss: number;
  rss: number;
  rssAnon: number;
  rssFile: number;
  heap: number;
  heapTotal: number;
  external: number;
  fds: number;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
/** What bench/notify/mailbridge-child.mjs loads of mailbridge. */
const CHILD_MODULES = ['app/config', 'log/index', 'server/index'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
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

const work = mkdtempSync(join(tmpdir(), `mb-bench-notify-${KIND}-`));
chmodSync(work, 0o711); // Dovecot's unprivileged processes must traverse it
const sandbox: Sandbox = await startSandbox({ dir: join(work, 'sandbox'), ...(KIND === 'imap' ? {} : { synthetic: { mailboxes: N + FLOOR_MAILBOXES } }) });
let child: ReturnType<typeof spawn> | undefined;
let receiver: ReturnType<typeof spawn> | undefined;
try {
  // ── the mailboxes ───────────────────────────────────────────────────────────────────────────────
  let mailboxes: string[];
  const tenant = sandbox.directory.data.tenants[0]!;
  const app = tenant.apps[0]!;
  if (KIND === 'imap') {
    const sp = tenant.exchange.servicePrincipals.find((s) => s.appId === app.appId)!;
    mailboxes = Array.from({ length: N }, (_, i) => `watch${String(i).padStart(5, '0')}@${tenant.domains[0]}`);
    for (const address of mailboxes) {
      addMailbox(sandbox.directory, { address });
      grantFullAccess(sandbox.directory, address, sp.objectId);
    }
  } else {
    mailboxes = Array.from({ length: N }, (_, i) => sandbox.synthetic!.address(i + 1));
  }

  // ── the webhook receiver (its own process, receiver.mjs): arrival times by subject ─────────────
  const sentAt = new Map<string, bigint>();
  const receivedAt = new Map<string, bigint>();
  let duplicates = 0;
  const seenIds = new Set<string>();
  receiver = spawn(NODE, [join(ROOT, 'bench', 'notify', 'receiver.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const hook = await new Promise<string>((resolve, reject) => {
    let buf = '';
    receiver!.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('LISTEN ')) resolve(`http://127.0.0.1:${line.slice(7)}/hook`);
        else if (line.startsWith('E ')) {
          const at = BigInt(line.slice(2, line.indexOf(' ', 2)));
          const event = JSON.parse(line.slice(line.indexOf(' ', 2) + 1)) as { id: string; subject?: string };
          if (seenIds.has(event.id)) duplicates++;
          seenIds.add(event.id);
          if (event.subject && !receivedAt.has(event.subject)) receivedAt.set(event.subject, at);
        }
      }
    });
    receiver!.once('exit', (code) => reject(new Error(`the webhook receiver exited with ${code}`)));
  });
  const latencyCount = () => [...sentAt.keys()].filter((s) => receivedAt.has(s)).length;

  // ── mailbridge's configuration: the sandbox's example connection plus notify.watch ─────────────
  const ca = createSandboxCa({ keyPem: readFileSync(join(sandbox.dir, 'ca.key'), 'utf8'), certPem: readFileSync(sandbox.caFile, 'utf8') });
  const inbound = ca.issueServer(['127.0.0.1', 'localhost']);
  writeFileSync(join(work, 'inbound.pem'), inbound.certPem);
  writeFileSync(join(work, 'inbound.key'), inbound.keyPem);
  const port = await freePort();
  const example = parse(readFileSync(sandbox.configFile, 'utf8')) as Record<string, unknown>;
  // Only the watchers are measured: the example's relay and connector stay out of the child.
  delete example.relay;
  delete example.connectors;
  const base = { ...example, store: { driver: 'sqlite', path: join(work, 'mb.db') }, server: { port: 0 }, log: { level: 'warn' } };
  const group: Record<string, unknown> = {
    kind: KIND,
    listeners: Array.from({ length: Math.ceil(N / 1250) }, (_, i) => ({ name: `l${i + 1}`, connection: 'sandbox' })),
    mailboxes,
  };
  if (KIND === 'graph') group.graph = { baseUrl: `${sandbox.graph.url}/v1.0` };
  if (KIND === 'ews') group.ews = { url: `${(sandbox as unknown as { ews: { url: string } }).ews.url}` };
  if (KIND === 'imap') group.imap = { host: '127.0.0.1', port: sandbox.imap.port, tls: 'implicit', servername: 'outlook.office365.com' };
  // The receiver is on loopback, which the egress policy refuses unless listed.
  const notify = { webhook: { requireHttps: false }, api: { keys: {} }, egress: { allow: ['127.0.0.1/32'] } };
  const watch = { publicUrl: `https://127.0.0.1:${port}`, listen: { host: '127.0.0.1', port, certFile: join(work, 'inbound.pem'), keyFile: join(work, 'inbound.key') }, groups: { bench: group } };
  const configFile = join(sandbox.dir, 'bench-watch.yaml');
  const withoutWatchFile = join(sandbox.dir, 'bench-nowatch.yaml');
  writeFileSync(configFile, stringify({ ...base, notify: { ...notify, watch } }));
  writeFileSync(withoutWatchFile, stringify({ ...base, notify }));

  // One webhook subscription for all mailboxes, stored (sealed) before the gateway starts.
  {
    const { openStore } = await import('../../src/store/index.ts');
    const { openSecretBox } = await import('../../src/config/secrets.ts');
    const { sealedNotifyRepository } = await import('../../src/notify/sealed.ts');
    const store = await openStore({ driver: 'sqlite', path: join(work, 'mb.db') });
    const box = await openSecretBox({ keyFile: join(sandbox.dir, 'mailbridge.key'), env: {} });
    const now = Date.now();
    await sealedNotifyRepository(store.notify, box).createSubscription({
      id: 'sub_bench',
      kind: 'webhook',
      mailboxes,
      events: ['message.new'],
      params: { url: hook, secret: `whsec_${Buffer.alloc(32, 7).toString('base64')}` },
      privacy: 'full',
      state: 'active',
      createdAt: now,
      updatedAt: now,
    });
    await store.close();
  }

  // ── start mailbridge and wait until every mailbox is watched ────────────────────────────────────
  const setupStarted = Date.now();
  // With the V8 options and environment `mailbridge serve` starts with (bin/mailbridge.mjs).
  // --plain-node: without them, to see what they change.
  const serve = values['plain-node'] ? { flags: [], env: {} } : serveSettings();
  // As the packages run it (bundled); --from-src: the checkout's TypeScript, with Node's type stripper.
  const build = values['from-src'] ? undefined : compiledSources(ROOT, builds, CHILD_MODULES);
  const code = build ? { modules: moduleFiles(build, CHILD_MODULES) } : {};
  child = spawn(NODE, ['--expose-gc', ...serve.flags, join(ROOT, 'bench', 'notify', 'mailbridge-child.mjs'), JSON.stringify({ configFile, withoutWatchFile, mailboxes: N, deadlineSeconds: Number(values['setup-seconds']), ...code })], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...serve.env, NODE_EXTRA_CA_CERTS: sandbox.caFile },
  });
  let peakRss = 0;
  let lastRss = 0;
  let childDelay = { p99: NaN, max: NaN };
  const ready = await new Promise<{ watching: number; setupSeconds: number; before: Mem; after: Mem; problems: unknown[] }>((resolve, reject) => {
    let buf = '';
    child!.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('READY ')) resolve(JSON.parse(line.slice(6)));
        else if (line.startsWith('FAILED ')) reject(new Error(`not every mailbox is watched: ${line.slice(7)}`));
        else if (line.startsWith('MEM ')) {
          const m = JSON.parse(line.slice(4)) as { rss: number; delay?: { p99: number; max: number } };
          lastRss = m.rss;
          peakRss = Math.max(peakRss, lastRss);
          if (m.delay) childDelay = m.delay;
        }
      }
    });
    child!.once('exit', (code) => reject(new Error(`mailbridge exited with ${code}`)));
  });
  console.log(`${KIND}: ${ready.watching} mailboxes watched after ${ready.setupSeconds.toFixed(1)} s (${((Date.now() - setupStarted) / 1000).toFixed(1)} s with start-up)`);

  // ── mail at a steady rate into random mailboxes ─────────────────────────────────────────────────
  const deliver = async (mailbox: string, subject: string) => {
    if (KIND === 'imap') {
      const raw = Buffer.from(`From: sender@fabrikam.test\r\nTo: ${mailbox}\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@bench>\r\n\r\nbench\r\n`);
      await sandbox.dovecot.deliver({ from: 'sender@fabrikam.test', to: [mailbox] }, raw);
    } else {
      sandbox.synthetic!.deliver(mailbox, { from: 'sender@fabrikam.test', subject });
    }
  };
  const total = RATE * SECONDS;
  // Both processes' event-loop delay over the measured window: a late timestamp in this process (the
  // sandbox, the feed and the receiver share it) would show here, a slow watcher in the child's.
  const rigDelay = monitorEventLoopDelay({ resolution: 10 });
  rigDelay.enable();
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const subject = `bench-${i}`;
    const mailbox = mailboxes[Math.floor(Math.random() * mailboxes.length)]!;
    if (KIND === 'imap') {
      // Dovecot's LMTP 250 is the arrival.
      void deliver(mailbox, subject).then(() => sentAt.set(subject, process.hrtime.bigint()));
    } else {
      sentAt.set(subject, process.hrtime.bigint());
      await deliver(mailbox, subject);
    }
  }
  const end = Date.now() + 30_000;
  while (latencyCount() < total && Date.now() < end) await sleep(100);
  rigDelay.disable();
  // Both on CLOCK_MONOTONIC; an IMAP webhook may beat Dovecot's 250 reaching this process (0 then).
  const got = [...sentAt].flatMap(([subject, t]) => {
    const at = receivedAt.get(subject);
    return at === undefined ? [] : [Math.max(0, Number(at - t) / 1e6)];
  }).sort((a, b) => a - b);

  // ── the floor: the same arrival seen by a bare client ───────────────────────────────────────────
  const floor: number[] = [];
  const FLOOR_SAMPLES = Math.min(FLOOR_MAILBOXES, total);
  if (KIND === 'graph' || KIND === 'ews') {
    // Graph change notifications straight to a bare HTTPS receiver, for mailboxes mailbridge does not use.
    const extra = Array.from({ length: FLOOR_SAMPLES }, (_, i) => sandbox.synthetic!.address(N + 1 + i));
    const waiting = new Map<string, number>();
    const bare = createHttpsServer({ key: inbound.keyPem, cert: inbound.certPem }, async (req, res) => {
      const url = new URL(req.url ?? '/', 'https://x');
      const token = url.searchParams.get('validationToken');
      const text = await body(req);
      if (token !== null) return void res.writeHead(200, { 'content-type': 'text/plain' }).end(token);
      res.writeHead(202).end();
      const at = performance.now();
      for (const item of (JSON.parse(text) as { value: Array<{ resource: string }> }).value) {
        for (const [mb, t] of waiting) if (item.resource.toLowerCase().includes(sandbox.synthetic!.userId(mb)!.toLowerCase())) {
          floor.push(at - t);
          waiting.delete(mb);
        }
      }
    });
    await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
    const bareUrl = `https://127.0.0.1:${(bare.address() as AddressInfo).port}/bare`;
    const token = await sandbox.appToken('https://graph.microsoft.com/.default');
    const dispatcher = new Agent({ connect: { ca: readFileSync(sandbox.caFile, 'utf8') } });
    for (const mb of extra) {
      const r = await fetch(`${sandbox.graph.url}/v1.0/subscriptions`, {
        method: 'POST',
        dispatcher,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ changeType: 'created', notificationUrl: bareUrl, resource: `/users/${mb}/mailFolders('inbox')/messages`, expirationDateTime: new Date(Date.now() + 3_600_000).toISOString(), clientState: 'bench' }),
      });
      if (r.status !== 201) throw new Error(`floor subscription: ${r.status} ${await r.text()}`);
    }
    for (let i = 0; i < FLOOR_SAMPLES; i++) {
      const mb = extra[i]!;
      waiting.set(mb, performance.now());
      sandbox.synthetic!.deliver(mb, { from: 'sender@fabrikam.test', subject: `floor-${i}` });
      await sleep(1000 / RATE);
    }
    const fend = Date.now() + 15_000;
    while (waiting.size > 0 && Date.now() < fend) await sleep(50);
    bare.close();
    await dispatcher.close();
  } else {
    // An imapflow client in IDLE on one of the watched Dovecot mailboxes, woken by each delivery.
    const mb = mailboxes[0]!;
    const client = new ImapFlow({ host: '127.0.0.1', port: sandbox.dovecot.ports.imap, secure: false, doSTARTTLS: false, auth: { user: mb, accessToken: await sandbox.dovecot.mintToken(mb) }, logger: false });
    await client.connect();
    await client.mailboxOpen('INBOX');
    let wake: ((t: number) => void) | undefined;
    client.on('exists', () => wake?.(performance.now()));
    void client.idle();
    for (let i = 0; i < FLOOR_SAMPLES; i++) {
      const woken = new Promise<number>((r) => (wake = r));
      await deliver(mb, `floor-${i}`);
      // From Dovecot's LMTP 250, as for mailbridge above.
      const t = performance.now();
      const at = await Promise.race([woken, sleep(5000).then(() => NaN)]);
      if (!Number.isNaN(at)) floor.push(Math.max(0, at - t));
      await sleep(20 + Math.random() * 50);
    }
    await client.logout();
  }
  floor.sort((a, b) => a - b);

  // ── report ───────────────────────────────────────────────────────────────────────────────────────
  const ms = (v: number) => `${v.toFixed(0)} ms`;
  const kb = (b: number) => `${(b / 1024).toFixed(1)} KB`;
  const perMailbox = (ready.after.rss - ready.before.rss) / N;
  const heapPerMailbox = (ready.after.heap - ready.before.heap) / N;
  const externalPerMailbox = (ready.after.external - ready.before.external) / N;
  const lost = total - got.length;
  console.log('');
  console.log(`${N} mailboxes over ${KIND}, ${RATE} messages/s for ${SECONDS} s (${total} messages)`);
  const floorName = KIND === 'imap' ? 'floor (IDLE client)' : 'floor (Graph client)';
  console.log(`                         mailbridge → webhook     ${floorName.padEnd(23)}ratio`);
  console.log(`latency p50              ${ms(percentile(got, 50)).padEnd(25)}${ms(percentile(floor, 50)).padEnd(23)}${(percentile(got, 50) / percentile(floor, 50)).toFixed(2)}`);
  console.log(`latency p99              ${ms(percentile(got, 99)).padEnd(25)}${ms(percentile(floor, 99)).padEnd(23)}${(percentile(got, 99) / percentile(floor, 99)).toFixed(2)}`);
  console.log(`events                   ${got.length}/${total} (lost ${lost}, duplicates ${duplicates})`);
  console.log(`event-loop delay p99    bench process (sandbox, feed) ${ms(rigDelay.percentile(99) / 1e6)}, max ${ms(rigDelay.max / 1e6)}; mailbridge ${ms(childDelay.p99)}, max ${ms(childDelay.max)}`);
  console.log(`memory per mailbox       RSS ${kb(perMailbox)} (as left by ordinary GCs: ${kb((ready.after.retainedRss - ready.before.retainedRss) / N)}), JS heap ${kb(heapPerMailbox)}, buffers ${kb(externalPerMailbox)} (RSS ${(ready.before.rss / 2 ** 20).toFixed(0)} → ${(ready.after.rss / 2 ** 20).toFixed(0)} MB: anonymous ${(ready.before.rssAnon / 2 ** 20).toFixed(0)} → ${(ready.after.rssAnon / 2 ** 20).toFixed(0)} MB, file/shared ${(ready.before.rssFile / 2 ** 20).toFixed(0)} → ${(ready.after.rssFile / 2 ** 20).toFixed(0)} MB, V8 heap committed ${(ready.before.heapTotal / 2 ** 20).toFixed(0)} → ${(ready.after.heapTotal / 2 ** 20).toFixed(0)} MB, open files ${ready.before.fds} → ${ready.after.fds}; peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MB, at the end of the run ${(lastRss / 2 ** 20).toFixed(0)} MB = ${kb((lastRss - ready.before.rss) / N)} per mailbox)`);
  // The headline: the child's peak resident set as the kernel counted it (VmHWM, over its whole
  // life, setup burst included, no collection forced by anyone), over the watched mailboxes.
  const hwm = Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
  console.log(`peak RSS                 ${(hwm / 2 ** 20).toFixed(0)} MB for ${N} mailboxes = ${kb(hwm / N)} per mailbox (VmHWM of the mailbridge process, whole run); all subscribed after ${ready.setupSeconds.toFixed(1)} s`);
  console.log(`targets                  p99 < 1 s: ${percentile(got, 99) < 1000 ? 'yes' : 'NO'}; peak RSS < 20 KB per mailbox: ${hwm / N < 20 * 1024 ? 'yes' : 'NO'}; every event once: ${lost === 0 && duplicates === 0 ? 'yes' : 'NO'}`);
} finally {
  if (receiver && receiver.exitCode === null) {
    receiver.kill('SIGTERM');
    await new Promise((r) => receiver!.once('exit', r));
  }
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => child!.once('exit', r));
  }
  await sandbox.close();
  for (const remove of builds) await remove();
  rmSync(work, { recursive: true, force: true });
}
