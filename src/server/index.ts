/**
 * The long-running gateway: opens the store and serves HTTP (health now; the REST API, sign-in
 * redirects and notification endpoints of later features hang on the same Fastify instance).
 * With a `relay:` section it also runs the SMTP relay (listeners, queue, transports), sharing one
 * Identity with the sign-in routes. Operations endpoints (/metrics, /health/live, /health/ready)
 * are in operations.ts; the metrics registry (src/metrics) is created here and handed to each
 * capability as a small recorder or an event subscription.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { keyFileFor, serverTlsProblems, type Config } from '../app/config.ts';
import { MbError } from '../errors/index.ts';
import { appOf } from '../app/open.ts';
import type { Store } from '../store/index.ts';
import type { Logger } from '../log/index.ts';
import type { Identity } from '../identity/index.ts';
import type { RelayService } from '../relay/transports/service.ts';
import type { NotifyService } from '../notify/service.ts';
import type { WatchService } from '../notify/watchers/service.ts';
import { listenOn } from '../errors/listen.ts';
import { Metrics } from '../metrics/index.ts';
import { operationsRoutes } from './operations.ts';
import { sinks, transports, watchers } from '../app/plugins.ts';
import { langFromHeader } from '../i18n/index.ts';
import type { CredentialMonitor } from '../check/expiry.ts';
import type { AdminApiOptions, registerAdminApi as registerAdminApiType } from '../api/index.ts';
import { nodeIdentity, type NodeIdentity } from '../cluster/node.ts';
import { Ownership } from '../cluster/ownership.ts';
import { nodesView, statusSources } from '../cluster/status.ts';

export interface Gateway {
  http: FastifyInstance;
  store: Store;
  /** The address actually bound (port 0 in config picks a free port). */
  url: string;
  /** The SMTP relay, when mailbridge.yaml has a `relay:` section. */
  relay?: RelayService;
  /** New-mail notifications (dispatcher, sinks, subscriptions API), when mailbridge.yaml has a `notify:` section. */
  notify?: NotifyService;
  /** The watchers of notify.watch (Graph, EWS, IMAP IDLE), when groups are configured. */
  watch?: WatchService;
  /** The token source of the relay and the watchers (when either is configured). */
  identity?: Identity;
  /** What /metrics serves; a connector run in this process records with `metrics.connector(name, event)`. */
  metrics: Metrics;
  /** The credential expiry monitor (with the identity): `check()` looks again at once. */
  credentials?: CredentialMonitor;
  /**
   * Apply a new configuration while running: the log level at once, and a clean stop and start of
   * each capability whose section changed (relay, notify with its watchers, the watchers alone, the
   * API keys); what cannot change in this process is named in needsRestart (apply.ts).
   */
  apply(next: Config): Promise<{ restarted: string[]; needsRestart: string[] }>;
  /** This process among the nodes sharing the store, and the leases it holds (src/cluster/). */
  node: NodeIdentity;
  ownership: Ownership;
  /** `reason` (e.g. the signal) goes into the relay's stop mail. */
  close(reason?: string): Promise<void>;
}

export interface GatewayOptions {
  /** The secrets key file resolved against the config file's folder (LoadedConfig.keyFile). */
  keyFile?: string;
  env?: NodeJS.ProcessEnv;
  /** Default: a new registry with the process metrics. */
  metrics?: Metrics;
  /** Clock of the credential expiry monitor (tests move it); default Date.now. */
  clock?: () => number;
  /** mailbridge.yaml as `serve` read it: setup runs and config apply write it, check runs read it anew. */
  configPath?: string;
  /** Several nodes, for tests and benchmarks: a shorter lease time (for leases and delivery claims alike), smaller watch shards. */
  cluster?: { leaseMs?: number; shardSize?: number };
}

export async function startGateway(config: Config, log: Logger, options: GatewayOptions = {}): Promise<Gateway> {
  const env = options.env ?? process.env;
  const metrics = options.metrics ?? new Metrics();
  // Config → secret box → store → identity, each opened once, when something needs it (src/app/open.ts).
  const app = appOf({ config, keyFile: options.keyFile ?? keyFileFor(env.MAILBRIDGE_CONFIG ?? 'mailbridge.yaml', config.secrets.keyFile) }, {
    env,
    log,
    onTokenRequest: (c, r) => metrics.token(c, r),
    // Expiry warnings come from the monitor below, once per threshold, not daily from every token request.
    expiryLog: false,
  });
  // Refused before anything opens: a non-loopback listener in plain HTTP without the opt-out.
  if (serverTlsProblems(config, () => ({})).length > 0) throw new MbError('MB_SERVER_TLS_REQUIRED', { listen: config.server.listen });
  const https = config.server.tls ? await serverTls(config.server.tls) : undefined;
  const store = await app.store();
  // Every gateway is a node: it heartbeats (mailbridge status lists it) and, on PostgreSQL, shares
  // the watch shards and the notification deliveries with the other nodes of the same database.
  const node = nodeIdentity({ name: config.node.name, role: 'serve' });
  const ownership = new Ownership({ cluster: store.cluster, node, log, ...(options.cluster?.leaseMs ? { leaseMs: options.cluster.leaseMs } : {}) });
  metrics.sources.node = () => ({ id: node.id, name: node.name, version: node.version, role: node.role, owns: ownership.counts() });
  metrics.sources.clusterNodes = async () => {
    const nodes = await nodesView(statusSources(store), { leaseMs: ownership.leaseMs });
    return {
      live: nodes.filter((n) => n.live).length,
      dead: nodes.filter((n) => !n.live).length,
      relayClaimed: nodes.flatMap((n) => (n.relayClaimed !== undefined ? [{ id: n.id, name: n.name, claimed: n.relayClaimed }] : [])),
    };
  };
  // With TLS, Fastify runs on an https.Server; the routes and hooks are the same either way.
  const http = (https ? Fastify({ loggerInstance: log as FastifyBaseLogger, https }) : Fastify({ loggerInstance: log as FastifyBaseLogger })) as unknown as FastifyInstance;
  const started = new Date().toISOString();
  // The route template (never the URL with its ids and query) keeps the label set bounded.
  http.addHook('onResponse', async (req, reply) => {
    metrics.http(req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode);
  });

  let monitor: CredentialMonitor | undefined;
  http.get('/health', async (req, reply) => {
    try {
      await store.ping();
    } catch (err) {
      return reply.code(503).send({ status: 'failing', store: store.driver, error: (err as Error).message });
    }
    // A credential near or past its expiry does not stop the gateway yet: degraded, with the reason.
    const alerts = monitor?.alerts() ?? [];
    if (alerts.length === 0) return { status: 'ok', store: store.driver, started };
    const lang = langFromHeader(req.headers['accept-language']);
    const credentials = alerts.map((a) => ({ connection: a.connection, kind: a.kind, expires: a.expires, ...a.error.explain(lang) }));
    return { status: 'degraded', store: store.driver, started, credentials };
  });

  let identity: Identity | undefined;
  // The relay and the watchers share one identity; one started later by config apply opens it then.
  const tokenSource = async (): Promise<Identity> => (identity ??= await app.identity());
  // What the relay and the watchers ask for tokens: always the identity of now.
  const tokens: Pick<Identity, 'getToken'> = { getToken: async (...a) => (await tokenSource()).getToken(...a) };
  let relay: RelayService | undefined;
  let notify: NotifyService | undefined;
  let watch: WatchService | undefined;
  let running = config;
  let api: AdminApiOptions | undefined;
  let served: Awaited<ReturnType<typeof registerAdminApiType>> | undefined;
  const watchGroups = Object.keys(config.notify?.watch?.groups ?? {}).length > 0;
  // The connections the credential monitor looks at; config apply changes the list in place.
  const monitored = Object.keys(config.connections);
  /** The SMTP relay of `cfg.relay`, with its metrics; also what config apply starts again. */
  const startRelay = async (cfg: Config & { relay: NonNullable<Config['relay']> }): Promise<RelayService> => {
    const { startRelayService } = await import('../relay/transports/service.ts');
    const { relayStorage } = await import('../app/relay.ts');
    const r = await startRelayService({ config: { ...cfg, relay: cfg.relay }, transports, store, log, tokens, env, storage: relayStorage(store, cfg.relay, { node: node.id }) });
    const router = r.transport.router;
    r.relay.queue.on('outcome', (outcome, rec, at) => {
      const route = router.resolve({ sender: rec.sender, mailbox: rec.mailbox, ...(rec.relayUser !== undefined ? { relayUser: rec.relayUser } : {}) })?.name ?? 'none';
      metrics.relay(outcome, route, rec.mailbox, outcome === 'delivered' ? Math.max(0, at - rec.receivedAt) / 1000 : undefined);
    });
    metrics.sources.queueCounts = () => r.relay.queue.counts();
    for (const l of r.relay.listeners) {
      const name = `${l.host}:${l.port}`;
      l.server.server.on('connection', () => metrics.smtpSession(name));
    }
    metrics.sources.smtpOpen = () =>
      Promise.all(
        r.relay.listeners.map(
          (l) => new Promise<{ listener: string; open: number }>((resolve) => l.server.server.getConnections((err, n) => resolve({ listener: `${l.host}:${l.port}`, open: err ? 0 : n }))),
        ),
      );
    return r;
  };

  /** The dispatcher, sinks and subscriptions of `cfg.notify`. */
  const startNotify = async (cfg: Config & { notify: NonNullable<Config['notify']> }): Promise<NotifyService> => {
    const { startNotifyService } = await import('../notify/service.ts');
    // Subscribers' URLs must never lead back to the gateway: its API, its relay listeners and public URL.
    const ownListeners = [{ host: cfg.server.listen, port: cfg.server.port }, ...(cfg.relay?.listeners ?? []).map((l) => ({ host: l.host, port: l.port }))];
    if (cfg.server.publicUrl) {
      const u = new URL(cfg.server.publicUrl);
      ownListeners.push({ host: u.hostname, port: u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80 });
    }
    return startNotifyService({
      config: cfg.notify,
      sinks,
      store,
      log,
      secretBox: await app.secretBox(),
      ownListeners,
      network: { proxy: cfg.server.proxy, env },
      observe: { published: (type) => metrics.notifyPublished(type), delivery: (sink, outcome) => metrics.notifyDelivery(sink, outcome) },
      // Several nodes: each claims the deliveries it sends for the lease time and renews the claims
      // while the sink works (dispatcher.ts), so a dead node's deliveries move as fast as its leases.
      ...(store.driver === 'postgres' ? { claim: { by: node.id, forMs: ownership.leaseMs } } : {}),
    });
  };

  /** The watchers of `cfg.notify.watch`, publishing into `n`'s dispatcher. */
  const startWatch = async (cfg: Config, n: NotifyService): Promise<WatchService | undefined> => {
    const w = cfg.notify?.watch;
    if (!w || Object.keys(w.groups).length === 0) return undefined;
    const { startWatchService } = await import('../notify/watchers/service.ts');
    const secretBox = await app.secretBox();
    const dispatcher = n.dispatcher;
    const started = await startWatchService({
      config: w,
      watchers,
      ...(cfg.server.publicUrl ? { serverPublicUrl: cfg.server.publicUrl } : {}),
      connections: cfg.connections,
      serverProxy: cfg.server.proxy,
      env,
      kv: store.kv,
      publish: async (e, fence) => ({ duplicate: (await dispatcher.publish(e, fence)).duplicate }),
      token: async (connection, resource) => (await tokens.getToken(connection, resource)).accessToken,
      reveal: (stored) => secretBox.reveal(stored),
      seal: (plain) => secretBox.seal(plain),
      open: (sealed) => secretBox.open(sealed),
      log,
      // Several nodes: this node watches the shards whose leases it holds.
      ...(store.driver === 'postgres' ? { cluster: { ownership, signals: store.signals, ...(options.cluster?.shardSize ? { shardSize: options.cluster.shardSize } : {}) } } : {}),
    });
    metrics.sources.watchStates = () => started.status().groups;
    return started;
  };

  try {
    const metricsToken = config.server.metricsToken !== undefined ? (await app.secretBox()).reveal(config.server.metricsToken, 'server.metricsToken') : undefined;
    if (config.relay || config.notify) {
      const secretBox = await app.secretBox();
      if (config.relay || watchGroups) {
        // The identity as it is now: config apply replaces it when connections change.
        const id = await tokenSource();
        const current = (): Identity => identity ?? id;
        // Credentials at start and daily: 30/14/7/1 days ahead and once expired (src/check/expiry.ts).
        const { CredentialMonitor, expiryMail } = await import('../check/expiry.ts');
        monitor = new CredentialMonitor({
          connections: monitored,
          notices: (c, now) => current().credentialNotices(c, now),
          expiry: (c) => current().credentialExpiry(c),
          kv: store.kv,
          log,
          ...(options.clock ? { clock: options.clock } : {}),
          // Old credentials of `mailbridge credential rotate` go when their overlap is over.
          alsoDaily: async () => {
            const { retireIsDue } = await import('../check/retire.ts');
            const clock = options.clock ?? Date.now;
            // Rotation's Graph client and probes load only on a day when an old credential is due.
            if (!(await retireIsDue(store.kv, clock()))) return;
            const { retireDue } = await import('../check/rotate.ts');
            const { caFileReader } = await import('../check/index.ts');
            await retireDue({ config, box: secretBox, kv: store.kv, env, log, clock, readCa: caFileReader(config) });
          },
          announce: async (alert) => {
            const admin = running.relay?.adminMail;
            if (!relay || !admin?.events.includes('credentials')) return;
            const { queueAdminText } = await import('../relay/transports/admin-mail.ts');
            const { hostname } = await import('node:os');
            await queueAdminText(relay.relay.queue, admin, expiryMail(alert, running.relay?.hostname ?? hostname()));
          },
        });
        metrics.sources.credentials = async () => {
          const out: Array<{ connection: string; kind: string; expires: Date }> = [];
          for (const connection of Object.keys(running.connections)) {
            // An unreadable credential is the token's problem (MB code at the next request), not a scrape error.
            const c = await current().credentialExpiry(connection).catch(() => undefined);
            if (c) out.push({ connection, ...c });
          }
          return out;
        };
      }
      if (config.relay) relay = await startRelay({ ...config, relay: config.relay });
      await monitor?.start();
      if (config.notify) {
        notify = await startNotify({ ...config, notify: config.notify });
        watch = await startWatch(config, notify);
      }
    }
    operationsRoutes(http, {
      store,
      metrics,
      get connections() {
        return Object.keys(running.connections);
      },
      // Read at each probe: config apply may have started the relay or the watchers anew.
      listeners: () => [
        ...(relay?.relay.listeners ?? []).map((l) => ({ setting: 'relay.listeners', name: `${l.host}:${l.port}`, listening: l.server.server.listening })),
        ...(watch?.inboundListening ? [{ setting: 'notify.watch.listen', name: watch.inboundUrl ? new URL(watch.inboundUrl).host : '', listening: watch.inboundListening() }] : []),
      ],
      ...(metricsToken !== undefined ? { metricsToken } : {}),
    });
    // Without relay or watchers the identity opens at the first sign-in redirect.
    await http.register((await import('./signin.ts')).signinRoutes, { config, identity: tokenSource });
    // The documentation (/docs/<lang>/…, an MB code's page at /docs/<lang>/errors/<CODE>).
    await http.register((await import('../docs/index.ts')).docsRoutes);
    // The admin API (/api/v1, /api/openapi.json, /api/reference) with the subscriptions routes.
    const { registerAdminApi, keysFromConfig } = await import('../api/index.ts');
    const box = config.api || config.notify ? await app.secretBox() : undefined;
    const reveal = box ? (stored: string, field?: string) => box.reveal(stored, field) : undefined;
    const { configTools } = await import('./config-tools.ts');
    const { opsTools } = await import('./ops.ts');
    // What the routes read; config apply changes it through served.update.
    api = {
      config,
      store,
      keys: reveal ? keysFromConfig(config, reveal) : [],
      // Console sign-ins with Entra ID redeem their code through the connection of api.signin.entra.
      signinIdentity: tokenSource,
      configTools: configTools(() => running, box, { configPath: options.configPath, env }),
      ...(options.configPath !== undefined ? { configPath: options.configPath } : {}),
      metrics,
      ...(reveal ? { reveal } : {}),
      ...(relay ? { relay } : {}),
      ...(identity ? { identity } : {}),
      ...(watch ? { watch } : {}),
      ...(notify ? { subscriptions: notify.subscriptions } : {}),
      node,
    };
    api.ops = opsTools({ running: () => running, configPath: options.configPath, keyFile: app.keyFile, env, log, apply: (next) => gateway.apply(next) });
    served = await registerAdminApi(http, api);
    // The web console under /console/ (and / leading to it), reading through the API registered above.
    (await import('../console/index.ts')).registerConsole(http);
    ownership.start();
    await listenOn('server.port', config.server.listen, config.server.port, () => http.listen({ host: config.server.listen, port: config.server.port }));
  } catch (err) {
    // Whatever started is stopped again, in reverse order, so a failed start leaves nothing running.
    monitor?.stop();
    await watch?.close();
    await ownership.close();
    await notify?.close();
    await relay?.close('start failed', 0);
    await app.close();
    throw err;
  }
  const addr = http.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.server.port;
  const host = config.server.listen.includes(':') ? `[${config.server.listen}]` : config.server.listen;
  // Applies run one after another: two at once would stop and start the same capability twice.
  let applying: Promise<unknown> = Promise.resolve();
  const applyNow = async (next: Config): Promise<{ restarted: string[]; needsRestart: string[] }> => {
    const { planApply } = await import('./reload.ts');
    const plan = planApply(running, next);
    // What this process can take; the rest (server, store, secrets, lang, connectors) stays as it runs.
    const merged: Config = { ...running, log: next.log, connections: next.connections, relay: next.relay, notify: next.notify, api: next.api };
    const restarted: string[] = [];
    if (plan.logLevel) {
      log.level = next.log.level;
      restarted.push('log.level');
    }
    let retired: Identity | undefined;
    if (plan.connections.length) {
      // A new identity for the new connections; the relay and watchers ask it from now on (tokens).
      const { createIdentity } = await import('../identity/index.ts');
      retired = identity;
      identity = createIdentity({ config: merged, kv: store.kv, secretBox: await app.secretBox(), env, log, onTokenRequest: (c, r) => metrics.token(c, r), expiryLog: false });
      // Readiness judges a connection by its last token: the old identity's says nothing of the new one.
      for (const c of plan.connections) metrics.lastToken.delete(c);
      monitored.splice(0, monitored.length, ...Object.keys(merged.connections));
      restarted.push(...plan.connections.map((c) => `connections.${c}`));
    }
    const changed = new Set(plan.connections);
    const relayUses = (plan.relay || merged.relay?.routes.some((r) => changed.has(r.connection))) ?? false;
    const watchUses = Object.values(merged.notify?.watch?.groups ?? {}).some((g) => g.listeners.some((l) => l.connection !== undefined && changed.has(l.connection)));
    if (relayUses) {
      await relay?.close('configuration applied');
      relay = undefined;
      if (merged.relay) relay = await startRelay({ ...merged, relay: merged.relay });
      else {
        // A scrape must not read the queue of a relay that no longer runs.
        delete metrics.sources.queueCounts;
        delete metrics.sources.smtpOpen;
      }
      restarted.push('relay');
    }
    if (plan.notify || plan.watch || watchUses) {
      // Watchers first: nothing publishes into a stopped dispatcher.
      await watch?.close();
      watch = undefined;
      if (plan.notify) {
        await notify?.close();
        notify = undefined;
        if (merged.notify) notify = await startNotify({ ...merged, notify: merged.notify });
        restarted.push('notify');
      }
      if (notify) watch = await startWatch(merged, notify);
      if (!watch) delete metrics.sources.watchStates;
      if (plan.watch || watchUses) restarted.push('notify.watch');
    }
    await retired?.close();
    // A rotated credential ends its expiry warning (/health) now, not at the next daily look.
    if (plan.connections.length) await monitor?.check();
    if (plan.keys) {
      const b = await app.secretBox();
      const { keysFromConfig } = await import('../api/index.ts');
      served?.setKeys(keysFromConfig(merged, (stored, field) => b.reveal(stored, field)));
      restarted.push('api.keys');
    }
    running = merged;
    served?.update({ config: running, relay, watch, identity, subscriptions: notify?.subscriptions });
    log.info({ restarted, needsRestart: plan.needsRestart }, 'configuration applied');
    return { restarted, needsRestart: plan.needsRestart };
  };
  const gateway: Gateway = {
    http,
    store,
    url: `${https ? 'https' : 'http'}://${host}:${port}`,
    get relay() {
      return relay;
    },
    get notify() {
      return notify;
    },
    get watch() {
      return watch;
    },
    get identity() {
      return identity;
    },
    ...(monitor ? { credentials: monitor } : {}),
    metrics,
    apply(next: Config) {
      const done = applying.then(() => applyNow(next));
      applying = done.catch(() => undefined);
      return done;
    },
    node,
    ownership,
    async close(reason?: string) {
      monitor?.stop();
      await applying;
      await relay?.close(reason);
      await http.close();
      // Watchers first: nothing publishes into a stopped dispatcher.
      await watch?.close();
      // Leases released: the other nodes take this node's work over in their next round.
      await ownership.close();
      await notify?.close();
      await app.close();
    },
  };
  return gateway;
}

/** server.tls's PEM files, checked as a pair (a key that does not belong to the certificate fails here, not at the first client). */
async function serverTls(tls: { cert: string; key: string }): Promise<{ cert: string; key: string }> {
  const read = async (file: string) => {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new MbError('MB_SERVER_TLS_UNREADABLE', { file, detail: (err as Error).message }, { cause: err });
    }
  };
  const pair = { cert: await read(tls.cert), key: await read(tls.key) };
  try {
    createSecureContext(pair);
  } catch (err) {
    // The message names the problem (no start line, key values mismatch), never the key itself.
    throw new MbError('MB_SERVER_TLS_UNREADABLE', { file: `${tls.cert}, ${tls.key}`, detail: (err as Error).message }, { cause: err });
  }
  return pair;
}
