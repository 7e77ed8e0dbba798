/**
 * One mailbridge relay node for bench/cluster/relay.ts, in its own process: the relay service as
 * `serve` runs it (listener without TLS for 127.0.0.1, the durable queue, the SMTP XOAUTH2 transport
 * with STARTTLS to the bench upstream), on SQLite (spool folder) or on PostgreSQL (bodies, claims
 * and per-mailbox limits in the database, as src/app/relay.ts chooses them). Exchange's 3
 * connections per mailbox hold (across all nodes on PostgreSQL); the 30-per-minute pacing is lifted
 * because the upstream is not Exchange. The token is a fixed string (the upstream does not check it).
 *
 * argv[2]: JSON { dir, name, upstream: { host, port }, caFile, maxConcurrency, postgres? }.
 * Prints `READY <port>`, stops on SIGTERM.
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { configSchema } from '../../src/app/schema.ts';
import { transports } from '../../src/app/plugins.ts';
import { relayStorage } from '../../src/app/relay.ts';
import { createLogger } from '../../src/log/index.ts';
import { startRelayService } from '../../src/relay/transports/service.ts';
import { openStore } from '../../src/store/index.ts';

const o = JSON.parse(process.argv[2] ?? '{}') as {
  dir: string;
  name: string;
  upstream: { host: string; port: number };
  caFile: string;
  maxConcurrency: number;
  postgres?: string;
};
const config = configSchema.parse({
  store: o.postgres ? { driver: 'postgres', url: o.postgres } : { driver: 'sqlite', path: join(o.dir, 'mb.db') },
  connections: { bench: { tenantId: 'bench.test', clientId: '00000000-0000-4000-8000-00000000be0c', clientSecret: 'unused', caFile: o.caFile } },
  relay: {
    hostname: 'mailbridge.bench.test',
    dataDir: join(o.dir, 'relay'),
    listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }],
    networks: { local: { cidrs: ['127.0.0.1/32'], allowedSenders: ['@bench.test'] } },
    queue: { ratePerMinute: 100_000, concurrencyPerMailbox: 3, maxConcurrency: o.maxConcurrency },
    routes: [{ senders: ['@bench.test'], connection: 'bench', smtp: { host: o.upstream.host, port: o.upstream.port } }],
  },
});
const logFile = createWriteStream(join(o.dir, 'mailbridge.log'));
const log = createLogger({ level: 'warn', destination: logFile });
const store = await openStore(config.store);
const tokens = { getToken: async () => ({ accessToken: 'bench-token', expiresOn: new Date(Date.now() + 3_600_000), fromCache: true }) };
const service = await startRelayService({
  config: { ...config, relay: config.relay! },
  transports,
  store,
  log,
  tokens,
  env: {},
  storage: relayStorage(store, config.relay!, { node: `${o.name}:${process.pid}` }),
});
process.stdout.write(`READY ${service.relay.listeners[0]!.port}\n`);
process.on('SIGTERM', () => {
  void (async () => {
    await service.close('SIGTERM', 5000);
    await store.close();
    logFile.end();
    process.exit(0);
  })();
});
