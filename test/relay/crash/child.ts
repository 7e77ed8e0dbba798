/**
 * The process the crash tests kill: a relay (listener + queue + manager) on the test's store and
 * spool, with an "upstream" transport that appends `<label> <seq> <queue id> <Message-ID>` to a file and fsyncs
 * it before it reports success — once that line is on disk, the message counts as delivered.
 * With a PostgreSQL URL the relay is one node of several: bodies, claims and limits in the
 * database, as the composition root chooses them for store.driver postgres (src/app/relay.ts).
 * Usage: node child.ts <dir> <delivered-log> <label> [<postgres-url> <lease-seconds>]
 * MB_CRASH_UPSTREAM_MS: upstream's time per message (default 0–7 ms), longer to keep deliveries in flight.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '../../../src/log/index.ts';
import { relaySchema } from '../../../src/relay/config.ts';
import { startRelay } from '../../../src/relay/index.ts';
import type { Transport } from '../../../src/relay/transport.ts';
import { openStore } from '../../../src/store/index.ts';
import { relayStorage } from '../../../src/app/relay.ts';

const [dir, deliveredLog, round, pgUrl, leaseSeconds] = process.argv.slice(2) as [string, string, string, string?, string?];
const out = openSync(deliveredLog, 'a');
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const slow = Number(process.env.MB_CRASH_UPSTREAM_MS ?? 7) / 7;

const transport: Transport = {
  name: 'upstream-file',
  async send(m) {
    const body = (await m.readBody()).toString('latin1');
    const seq = m.isBounce ? 'dsn' : (/^X-Seq: (\d+)\r$/m.exec(body)?.[1] ?? 'unknown');
    const messageId = /^Message-ID: (\S+)\r$/im.exec(body)?.[1] ?? '-';
    await pause(Math.random() * 4 * slow); // network time before upstream accepts
    writeSync(out, `${round} ${seq} ${m.id} ${messageId}\n`);
    fsyncSync(out);
    await pause(Math.random() * 3 * slow); // upstream accepted; our bookkeeping has not happened yet
    return { ok: true };
  },
};

const store = await openStore(pgUrl ? { driver: 'postgres', url: pgUrl } : { driver: 'sqlite', path: join(dir, 'mb.db') });
const config = relaySchema.parse({
  dataDir: join(dir, 'relay'),
  hostname: 'crash.test',
  listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }],
  networks: { test: { cidrs: ['127.0.0.0/8'], allowedSenders: ['@crash.test'] } },
  queue: { ratePerMinute: 100_000, concurrencyPerMailbox: 3, maxConcurrency: 20, pollSeconds: 1, ...(leaseSeconds ? { leaseSeconds: Number(leaseSeconds) } : {}) },
});
const relay = await startRelay({ config, store, log: createLogger({ level: 'warn' }), transport, ...relayStorage(store, config, { node: `${round}:${process.pid}` }) });
process.stdout.write(`READY ${relay.listeners[0]!.port} ${JSON.stringify(relay.recovery)}\n`);

process.once('SIGTERM', () => {
  void (async () => {
    await relay.close(2_000);
    await store.close();
    closeSync(out);
    process.exit(0);
  })();
});
