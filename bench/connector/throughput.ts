/**
 * Benchmark (not a test): fetch and deliver N messages of 20 KB from Dovecot into an LMTP
 * destination, mailbridge against fetchmail and against the floor, in one run, from the same Dovecot
 * to the same destination (that Dovecot's LMTP, into separate sink mailboxes so each result can be
 * counted).
 *
 *  - mailbridge: the connector library in this process, IMAP with a JWT (OAUTHBEARER, as imapflow
 *    picks it when Dovecot offers it; Exchange Online gets XOAUTH2), after-action delete, default
 *    settings (4 messages in flight per folder), checkpoints in a SQLite store on disk (fsync per
 *    message: the exactly-once bookkeeping is part of what is measured).
 *  - fetchmail: Debian's package (6.4, no OAuth2), password login via the bench's second passdb,
 *    `fetchall nokeep` (deletes after delivery) with `expunge 0` (one EXPUNGE per session, its
 *    fastest setting: the default expunges after every message and measured about 30 % slower
 *    here), LMTP to the same port, `invisible` so it adds no Received header.
 *  - floor: the same messages with no bookkeeping at all (bench/connector/floor.ts): one pipelined
 *    FETCH, LMTP deliveries as wide as mailbridge's window, one delete at the end.
 * Each round fills three fresh source mailboxes with identical messages; rounds rotate which tool
 * goes first. Both results are checked (every message in its sink, the source empty) before the
 * figures are printed.
 *
 * --dedupe: mailbridge adds X-Mailbridge-Delivery-Id (deliveryIdHeader, which hands messages for
 * one recipient over one at a time) and Dovecot runs share/sieve/mailbridge-dedupe.sieve before
 * every LMTP delivery (for both tools): what exactly-once into a mailbox costs.
 *
 * Run: node_modules/.bin/node bench/connector/throughput.ts [--messages 1000] [--size 20480] [--rounds 2] [--window 4] [--dedupe]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectorSchema } from '../../src/connector/config.ts';
import { runConnector } from '../../src/connector/index.ts';
import { openStore } from '../../src/store/index.ts';
import { floorFetch } from './floor.ts';
import { benchMessage, fill, startBenchRig, type BenchRig } from './rig.ts';
import { connectorPlugins } from '../../src/app/connectors.ts';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '1000' },
    size: { type: 'string', default: '20480' },
    rounds: { type: 'string', default: '2' },
    window: { type: 'string' },
    dedupe: { type: 'boolean', default: false },
  },
});
const N = Number(values.messages);
const SIZE = Number(values.size);
const ROUNDS = Number(values.rounds);

const work = mkdtempSync(join(tmpdir(), 'mb-bench-'));
const rounds = Array.from({ length: ROUNDS }, (_, r) => r);
const fmUsers = rounds.map((r) => `src-fm-${r}@bench.test`);
let rig: BenchRig | undefined;

function connectorConfig(src: string, sink: string) {
  return connectorSchema.parse({
    connection: 'bench',
    source: { kind: 'imap', host: '127.0.0.1', port: rig!.dovecot.ports.imap, tls: 'none', idle: false },
    mailboxes: [src],
    destination: { kind: 'lmtp', host: '127.0.0.1', port: rig!.dovecot.ports.lmtp, tls: 'none', recipients: { to: [sink] }, deliveryIdHeader: values.dedupe },
    after: { action: 'delete' },
    ...(values.window ? { concurrency: { window: Number(values.window) } } : {}),
  });
}

async function mailbridge(r: number): Promise<number> {
  const src = `src-mb-${r}@bench.test`;
  const sink = `sink-mb-${r}@bench.test`;
  const store = await openStore({ driver: 'sqlite', path: join(work, `mb-${r}.db`) });
  const config = connectorConfig(src, sink);
  const token = await rig!.dovecot.mintToken(src);
  const t0 = performance.now();
  const summary = await runConnector({ plugins: connectorPlugins, name: `bench-${r}`, config, repo: store.checkpoints, tokens: async () => token }, { once: true });
  const seconds = (performance.now() - t0) / 1000;
  await store.close();
  if (summary.errors.length > 0) throw new Error(`mailbridge: ${summary.errors.map((e) => e.error.message).join('; ')}`);
  check('mailbridge', src, sink);
  return seconds;
}

async function fetchmail(r: number): Promise<number> {
  const src = fmUsers[r]!;
  const sink = `sink-fm-${r}@bench.test`;
  const home = join(work, `fetchmail-${r}`);
  const rc = join(work, `fetchmailrc-${r}`);
  writeFileSync(
    rc,
    [
      'set no bouncemail',
      'set no spambounce',
      'set invisible',
      `poll 127.0.0.1 service ${rig!.dovecot.ports.imap} proto IMAP auth password timeout 120`,
      `  user "${src}" password "${rig!.passwords.get(src)!}"`,
      "  sslproto ''",
      `  smtphost "127.0.0.1/${rig!.dovecot.ports.lmtp}" lmtp`,
      `  smtpname "${sink}"`,
      '  fetchall nokeep no rewrite no mimedecode expunge 0',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  (await import('node:fs')).mkdirSync(home, { recursive: true });
  const t0 = performance.now();
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn('fetchmail', ['-f', rc, '--nosyslog', '--silent', '--idfile', join(home, 'ids')], {
      env: { PATH: process.env.PATH, FETCHMAILHOME: home, HOME: home },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('exit', (c) => {
      if (c !== 0) process.stderr.write(err.split('\n').filter((l) => !/Running as root/.test(l)).join('\n'));
      resolve(c);
    });
  });
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`fetchmail exited with ${code}`);
  check('fetchmail', src, sink);
  return seconds;
}

async function floor(r: number): Promise<number> {
  const src = `src-fl-${r}@bench.test`;
  const sink = `sink-fl-${r}@bench.test`;
  // As wide as mailbridge's window, so both keep the same number of LMTP deliveries in flight.
  const seconds = await floorFetch(rig!, src, sink, connectorConfig(src, sink).concurrency.window);
  check('floor', src, sink);
  return seconds;
}

function check(tool: string, src: string, sink: string): void {
  const got = rig!.dovecot.inboxFiles(sink).length;
  const left = rig!.dovecot.inboxFiles(src).length;
  if (got !== N || left !== 0) throw new Error(`${tool}: ${got} of ${N} messages in the sink, ${left} left in the source`);
}

try {
  rig = await startBenchRig(fmUsers, values.dedupe ? { sieve: join(import.meta.dirname, '..', '..', 'share', 'sieve', 'mailbridge-dedupe.sieve') } : {});
  const tools = ['mailbridge', 'fetchmail', 'floor'] as const;
  const run = { mailbridge, fetchmail, floor };
  const results: Record<(typeof tools)[number], number[]> = { mailbridge: [], fetchmail: [], floor: [] };
  for (const r of rounds) {
    const msgs = Array.from({ length: N }, (_, i) => benchMessage(i, SIZE, `r${r}`));
    await fill(rig.dovecot, `src-mb-${r}@bench.test`, msgs);
    await fill(rig.dovecot, fmUsers[r]!, msgs);
    await fill(rig.dovecot, `src-fl-${r}@bench.test`, msgs);
    const order = tools.map((_, i) => tools[(i + r) % tools.length]!);
    for (const tool of order) {
      const s = await run[tool](r);
      results[tool].push(s);
      console.log(`round ${r + 1} ${tool.padEnd(10)} ${N} messages in ${s.toFixed(2)} s = ${(N / s).toFixed(1)} messages/s`);
    }
  }
  const best = (l: number[]) => Math.min(...l);
  const mb = N / best(results.mailbridge);
  const fm = N / best(results.fetchmail);
  const fl = N / best(results.floor);
  console.log('');
  console.log(`messages: ${N} × ${(SIZE / 1024).toFixed(0)} KB, Dovecot IMAP → Dovecot LMTP on loopback, best of ${ROUNDS} round(s)${values.dedupe ? ', with the dedupe recipe and deliveryIdHeader' : ''}`);
  console.log(`mailbridge ${mb.toFixed(1)} messages/s`);
  console.log(`fetchmail  ${fm.toFixed(1)} messages/s`);
  console.log(`floor      ${fl.toFixed(1)} messages/s (no bookkeeping)`);
  console.log(`mailbridge / fetchmail ${(mb / fm).toFixed(2)}× (target ≥ 5×)`);
  console.log(`mailbridge / floor     ${(mb / fl).toFixed(2)}× (target ≥ 0.8×)`);
} finally {
  await rig?.close();
  rmSync(work, { recursive: true, force: true });
}
