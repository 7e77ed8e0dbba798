/**
 * Benchmark (not a test): IDLE pickup latency. A running connector waits in IMAP IDLE on a Dovecot
 * mailbox (poll interval one hour, so only IDLE can wake it); the bench delivers one message at a
 * time into that mailbox over LMTP and measures from the moment Dovecot acknowledged the arrival to
 * the moment mailbridge has the message acknowledged by its destination (Dovecot LMTP into a sink
 * mailbox) and recorded in its store. Prints p50, p90, p99 and the maximum.
 *
 * What is in the figure: Dovecot's new-mail notification (inotify, coalesced; `mailbox_idle_check_
 * interval = 1 s` as fallback), the IDLE break, UID FETCH, the LMTP delivery with Dovecot's fsync, and
 * mailbridge's two fsynced store writes.
 *
 * Run: node_modules/.bin/node bench/connector/idle-latency.ts [--samples 200]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectorSchema } from '../../src/connector/config.ts';
import { runConnector } from '../../src/connector/index.ts';
import type { ConnectorEvent } from '../../src/connector/types.ts';
import { openStore } from '../../src/store/index.ts';
import { benchMessage, percentile, startBenchRig } from './rig.ts';
import { connectorPlugins } from '../../src/app/connectors.ts';

const { values } = parseArgs({ options: { samples: { type: 'string', default: '200' } } });
const SAMPLES = Number(values.samples);

const work = mkdtempSync(join(tmpdir(), 'mb-bench-idle-'));
const rig = await startBenchRig([]);
const controller = new AbortController();
let running: Promise<unknown> | undefined;
try {
  const src = 'idle-src@bench.test';
  const store = await openStore({ driver: 'sqlite', path: join(work, 'mb.db') });
  const config = connectorSchema.parse({
    connection: 'bench',
    source: { kind: 'imap', host: '127.0.0.1', port: rig.dovecot.ports.imap, tls: 'none', idle: true },
    mailboxes: [src],
    destination: { kind: 'lmtp', host: '127.0.0.1', port: rig.dovecot.ports.lmtp, tls: 'none', recipients: { to: ['idle-sink@bench.test'] } },
    after: { action: 'delete' },
    pollSeconds: 3600,
  });
  const waiters = new Map<string, (t: number) => void>();
  let waiting = false;
  const onEvent = (e: ConnectorEvent) => {
    if (e.type === 'waiting') waiting = true;
    if (e.type === 'delivered') waiters.get(e.item)?.(performance.now());
  };
  const token = await rig.dovecot.mintToken(src);
  running = runConnector({ plugins: connectorPlugins, name: 'idle-bench', config, repo: store.checkpoints, tokens: async () => token, onEvent }, { signal: controller.signal }).finally(() => store.close());
  while (!waiting) await new Promise((r) => setTimeout(r, 20));

  const latencies: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    // UIDs are assigned in order from 1 in this fresh mailbox.
    const uid = String(i + 1);
    const delivered = new Promise<number>((resolve) => waiters.set(uid, resolve));
    await rig.dovecot.deliver({ from: 'scanner@bench.test', to: [src] }, benchMessage(i, 4096, 'idle'));
    const arrived = performance.now();
    const done = await Promise.race([delivered, new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`message ${uid} not picked up within 30 s`)), 30_000))]);
    waiters.delete(uid);
    latencies.push(done - arrived);
    // A random pause, so arrivals do not fall into step with Dovecot's notification timer.
    await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
  }
  latencies.sort((a, b) => a - b);
  const f = (ms: number) => `${ms.toFixed(0)} ms`;
  console.log(`IDLE pickup, ${SAMPLES} messages one at a time, arrival (Dovecot LMTP 250) → delivered (destination 250 + checkpoint):`);
  console.log(`p50 ${f(percentile(latencies, 50))}  p90 ${f(percentile(latencies, 90))}  p99 ${f(percentile(latencies, 99))}  max ${f(latencies.at(-1)!)}`);
  console.log(`p99 under one second: ${percentile(latencies, 99) < 1000 ? 'yes' : 'NO'}`);
} finally {
  controller.abort();
  await running?.catch(() => undefined);
  await rig.close();
  rmSync(work, { recursive: true, force: true });
}
