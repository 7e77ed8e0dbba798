/**
 * The notify service as the gateway runs it: the configured sinks (secrets revealed through the
 * SecretBox, so they are registered with the scrubber), the dispatcher delivering in the
 * background, and the subscriptions API as a Fastify plugin to register.
 *
 * `buildSinks` is also what `mailbridge notify test` uses, so the test sends through exactly the
 * sink the gateway would use.
 */
import type { SecretBox } from '../config/secret-box.ts';
import { silentLogger, type Logger } from '../log/index.ts';
import { EgressPolicy } from '../net/egress.ts';
import type { Store } from '../store/index.ts';
import type { DeliveryClaim, NotifyRepository } from '../store/notify.ts';
import { watchedMailboxes } from './check.ts';
import type { NotifyConfig } from './config.ts';
import { createDispatcher, type DispatchObserver, type Dispatcher } from './dispatcher.ts';
import { sealedNotifyRepository } from './sealed.ts';
import type { Sink, SinkNetwork, SinkPlugin } from './sinks/types.ts';

type Reveal = (stored: string, field: string) => string;

function revealer(box: SecretBox | Reveal): Reveal {
  return typeof box === 'function' ? box : (stored, field) => (box.reveal as (s: string, f?: string) => string)(stored, field);
}

export const SINK_KINDS = ['webhook', 'webpush', 'apns', 'fcm'] as const;
export type SinkKind = (typeof SINK_KINDS)[number];

export function isSinkKind(kind: string): kind is SinkKind {
  return (SINK_KINDS as readonly string[]).includes(kind);
}

/** The sink kinds, each built from its section of `notify`; filled by the composition root (src/app/plugins.ts). */
export type SinkRegistry = Record<SinkKind, SinkPlugin>;

export type Listener = { host: string; port: number };

/**
 * The egress policy for subscribers' URLs: notify.egress.allow, and the gateway's own listeners
 * (the inbound watch listener and its public URL here; `serve` adds the API and relay listeners).
 */
export function egressPolicy(config: NotifyConfig, own: readonly Listener[] = []): EgressPolicy {
  const listen = config.watch?.listen;
  const mine = [...own];
  if (listen && listen.port > 0) mine.push({ host: listen.host, port: listen.port });
  if (config.watch?.publicUrl) {
    const u = new URL(config.watch.publicUrl);
    mine.push({ host: u.hostname, port: u.port ? Number(u.port) : 443 });
  }
  return new EgressPolicy({ allow: config.egress.allow, own: mine });
}

/**
 * The sink of one kind as configured, or undefined when its section is missing. A bad key fails
 * here with its MB code (MB_NOTIFY_SINK_CONFIG_INVALID, MB_SECRET_…).
 */
export async function buildSink(
  kind: SinkKind,
  registry: SinkRegistry,
  config: NotifyConfig,
  box: SecretBox | Reveal,
  egress: EgressPolicy = egressPolicy(config),
  network?: SinkNetwork,
): Promise<Sink | undefined> {
  return registry[kind]({ config, reveal: revealer(box), egress, network });
}

/** One sink per configured section; a section's bad key fails here, at start, with its MB code. */
export async function buildSinks(
  registry: SinkRegistry,
  config: NotifyConfig,
  box: SecretBox | Reveal,
  egress: EgressPolicy = egressPolicy(config),
  network?: SinkNetwork,
): Promise<Map<string, Sink>> {
  const sinks = new Map<string, Sink>();
  for (const kind of SINK_KINDS) {
    const sink = await buildSink(kind, registry, config, box, egress, network);
    if (sink) sinks.set(kind, sink);
  }
  return sinks;
}

export interface NotifyService {
  dispatcher: Dispatcher;
  sinks: ReadonlyMap<string, Sink>;
  /** What the admin API's subscriptions routes work with (src/api/routes/subscriptions.ts). */
  subscriptions: { repo: NotifyRepository; sinks: ReadonlyMap<string, Sink>; watched: ReadonlySet<string>; egress: EgressPolicy };
  /** Stops the dispatcher (waiting for deliveries in flight) and closes the sinks. */
  close(): Promise<void>;
}

export interface NotifyServiceOptions {
  config: NotifyConfig;
  /** The sink kinds (src/app/plugins.ts). */
  sinks: SinkRegistry;
  store: Store;
  secretBox: SecretBox | Reveal;
  log?: Logger;
  now?: () => number;
  /** The gateway's own listeners (API, relay): never a target for subscribers' URLs. */
  ownListeners?: readonly Listener[];
  /** server.proxy and the environment, the sinks' defaults. */
  network?: SinkNetwork;
  /** Counts for /metrics, passed to the dispatcher. */
  observe?: DispatchObserver;
  /** Several nodes on PostgreSQL: this node's claim on the deliveries it sends (dispatcher.ts). */
  claim?: DeliveryClaim;
}

export async function startNotifyService(options: NotifyServiceOptions): Promise<NotifyService> {
  const { config, store } = options;
  const log = options.log ?? silentLogger;
  const reveal = revealer(options.secretBox);
  const egress = egressPolicy(config, options.ownListeners);
  const sinks = await buildSinks(options.sinks, config, reveal, egress, options.network);
  // Subscribers' secrets (webhook signing secrets, push keys, device tokens) are sealed at rest.
  const repo = typeof options.secretBox === 'function' ? store.notify : sealedNotifyRepository(store.notify, options.secretBox);
  const dispatcher = createDispatcher({ repo, sinks: [...sinks.values()], retry: config.retry, logger: log, ...(options.now ? { now: options.now } : {}), ...(options.observe ? { observe: options.observe } : {}), ...(options.claim ? { claim: options.claim } : {}) });
  dispatcher.start();
  log.info({ sinks: [...sinks.keys()] }, 'notify: dispatcher started');
  // Delivered events (and with them their ids, the memory of deduplication) are kept retentionHours.
  const now = options.now ?? Date.now;
  const purge = () =>
    store.notify
      .purge(now() - config.retentionHours * 3_600_000)
      .then((n) => n > 0 && log.info({ events: n }, 'notify: purged delivered events past notify.retentionHours'))
      .catch((err: unknown) => log.warn({ err: (err as Error).message }, 'notify: purge failed; retrying in an hour'));
  void purge();
  const purgeTimer = setInterval(() => void purge(), 3_600_000);
  purgeTimer.unref();
  return {
    dispatcher,
    sinks,
    subscriptions: { repo, sinks, watched: watchedMailboxes(config.watch), egress },
    async close() {
      clearInterval(purgeTimer);
      await dispatcher.stop();
      for (const s of sinks.values()) await s.close?.();
      await egress.close();
    },
  };
}
