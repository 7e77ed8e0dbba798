/**
 * mailbridge's relay in its own process for the benchmark (so its memory and CPU are its own, as
 * Postfix's are): listener without TLS for clients on 127.0.0.1 (an allowed network, as Postfix's
 * mynetworks), the durable queue on disk (SQLite + spool, fsync before 250), and the SMTP XOAUTH2
 * transport to the bench upstream with STARTTLS. The token is a fixed string from a stub token
 * source: the bench upstream does not check it, and a real token would be fetched once per
 * connection anyway. Per-mailbox limits: Exchange's 3 connections per mailbox; the 30 messages per
 * minute pacing is lifted because the upstream is not Exchange.
 *
 * Plain JavaScript, and the relay's modules from `modules` (their files in the bundle the packages
 * ship, see bench/support/build.ts), so the process holds what an installed mailbridge holds: a
 * TypeScript file would load Node's type stripper (about 12 MB) that the packages never load.
 * Without `modules` it runs the checkout's TypeScript sources.
 *
 * bench/cluster/relay.ts runs it as one of several nodes: with `postgres` (a URL) the store is
 * PostgreSQL, and bodies, claims and per-mailbox limits live there, as src/app/relay.ts chooses them
 * for `serve`; `name` names the node's claims.
 *
 * argv[2]: JSON { dir, upstream: { host, port }, caFile, maxConcurrency, modules?, postgres?, name? }.
 * Prints `READY <port>`, stops on SIGTERM.
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const o = JSON.parse(process.argv[2] ?? '{}');
// o.modules: each module's file in the bundle the benchmark built (bench/support/build.ts); else the sources.
const load = (path) => import(pathToFileURL(o.modules?.[path] ?? join(import.meta.dirname, '..', '..', 'src', `${path}.ts`)).href);
const [{ configSchema }, { createLogger }, { startRelayService }, { openStore }, { transports }] = await Promise.all([
  load('app/schema'),
  load('log/index'),
  load('relay/transports/service'),
  load('store/index'),
  load('app/plugins'),
]);

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
const log = createLogger({ level: 'info', destination: logFile });
const store = await openStore(config.store);
const tokens = { getToken: async () => ({ accessToken: 'bench-token', expiresOn: new Date(Date.now() + 3_600_000), fromCache: true }) };
// Where bodies live, as serve chooses (src/app/relay.ts); older checkouts that throughput.ts compares with have no app/relay.
const storage = (await load('app/relay').catch(() => undefined))?.relayStorage(store, config.relay, { node: `${o.name}:${process.pid}` });
const service = await startRelayService({ config: { ...config, relay: config.relay }, transports, store, log, tokens, env: {}, ...(storage ? { storage } : {}) });
process.stdout.write(`READY ${service.relay.listeners[0].port}\n`);
process.on('SIGTERM', () => {
  void (async () => {
    await service.close('SIGTERM', 5000);
    await store.close();
    logFile.end();
    process.exit(0);
  })();
});
