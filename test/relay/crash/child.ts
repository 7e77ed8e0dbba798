/**
 * The process the crash test kills: a relay (listener + queue + manager) on the test's store and
 * spool, with an "upstream" transport that appends `<round> <seq> <queue id> <Message-ID>` to a file and fsyncs
 * it before it reports success — once that line is on disk, the message counts as delivered.
 * Usage: node child.ts <dir> <delivered-log> <round>
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '../../../src/log/index.ts';
import { relaySchema } from '../../../src/relay/config.ts';
import { startRelay } from '../../../src/relay/index.ts';
import type { Transport } from '../../../src/relay/transport.ts';
import { openStore } from '../../../src/store/index.ts';

const [dir, deliveredLog, round] = process.argv.slice(2) as [string, string, string];
const out = openSync(deliveredLog, 'a');
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

const transport: Transport = {
  name: 'upstream-file',
  async send(m) {
    const body = (await m.readBody()).toString('latin1');
    const seq = m.isBounce ? 'dsn' : (/^X-Seq: (\d+)\r$/m.exec(body)?.[1] ?? 'unknown');
    const messageId = /^Message-ID: (\S+)\r$/im.exec(body)?.[1] ?? '-';
    await pause(Math.random() * 4); // network time before upstream accepts
    writeSync(out, `${round} ${seq} ${m.id} ${messageId}\n`);
    fsyncSync(out);
    await pause(Math.random() * 3); // upstream accepted; our bookkeeping has not happened yet
    return { ok: true };
  },
};

const store = await openStore({ driver: 'sqlite', path: join(dir, 'mb.db') });
const config = relaySchema.parse({
  dataDir: join(dir, 'relay'),
  hostname: 'crash.test',
  listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }],
  networks: { test: { cidrs: ['127.0.0.0/8'], allowedSenders: ['@crash.test'] } },
  queue: { ratePerMinute: 100_000, concurrencyPerMailbox: 3, maxConcurrency: 20, pollSeconds: 1 },
});
const relay = await startRelay({ config, store, log: createLogger({ level: 'warn' }), transport });
process.stdout.write(`READY ${relay.listeners[0]!.port} ${JSON.stringify(relay.recovery)}\n`);

process.once('SIGTERM', () => {
  void (async () => {
    await relay.close(2_000);
    await store.close();
    closeSync(out);
    process.exit(0);
  })();
});
