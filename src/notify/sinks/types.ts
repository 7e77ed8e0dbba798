/**
 * The one small interface every sink implements: deliver one event to one subscription and say
 * what happened. The dispatcher (../dispatcher.ts) owns everything around it — order, retries,
 * back-off, giving up, durability — so a sink is only the protocol of its receiver.
 *
 * - `ok`: the receiver took the event (webhook 2xx, push service 201, APNs 200, FCM 200).
 * - `retry`: try again later; `afterMs` is the receiver's own wish (Retry-After), if it had one.
 * - `gone`: the receiver says this subscription no longer exists (webhook 410, push 404/410,
 *   APNs 410 Unregistered, FCM UNREGISTERED); the subscription is retired and its queue dropped.
 *
 * A sink never throws for a delivery failure; a throw is treated as `retry` all the same.
 */
import type { z } from 'zod';
import type { Dispatcher as UndiciDispatcher } from 'undici';
import { MbError } from '../../errors/index.ts';
import { EgressPolicy } from '../../net/egress.ts';
import { httpDispatcher, proxyRoute, type ProxySettings } from '../../net/proxy.ts';
import type { NotifySubscriptionRecord } from '../../store/notify.ts';
import type { NotifyConfig } from '../config.ts';
import type { NotifyEvent } from '../events.ts';

export type SinkResult = { kind: 'ok' } | { kind: 'retry'; afterMs?: number; error: MbError } | { kind: 'gone'; error: MbError };

/** What a sink gets of a subscription: everything but its mailbox list (see DueDelivery). */
export type Subscription = Omit<NotifySubscriptionRecord, 'mailboxes'>;

export interface Sink {
  readonly kind: string;
  deliver(event: NotifyEvent, subscription: Subscription): Promise<SinkResult>;
  /** Checks a subscriber's sink parameters; returns them normalised, or throws MB_NOTIFY_SUBSCRIPTION_INVALID. */
  parseParams(input: unknown): Record<string, unknown>;
  /** The parameters as an API response may show them: no secrets, long tokens shortened. */
  publicParams(params: Record<string, unknown>): Record<string, unknown>;
  /** URLs among the parameters that the subscriber chose (webhook URL, push endpoint): the egress policy judges them. */
  destinations?(params: Record<string, unknown>): string[];
  /** Obtains what delivery needs before the first event (FCM: an access token), so `notify test` can report it as a step of its own. */
  prepare?(): Promise<void>;
  /** Closes pooled connections (APNs HTTP/2 sessions). */
  close?(): Promise<void>;
}

/** Runs a zod schema over sink parameters; a failure becomes MB_NOTIFY_SUBSCRIPTION_INVALID naming the field. */
export function parseWith<T>(schema: z.ZodType<T>, input: unknown): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const path = ['sink', ...(issue?.path ?? []).map(String)].join('.');
  throw new MbError('MB_NOTIFY_SUBSCRIPTION_INVALID', { detail: `${path}: ${issue?.message ?? 'invalid'}` });
}

/** First and last characters of a device token or key, for listings. */
export function shorten(value: unknown): string {
  const s = String(value ?? '');
  return s.length <= 12 ? '…' : `${s.slice(0, 6)}…${s.slice(-4)}`;
}

/** Parses a Retry-After header (seconds or HTTP date) into milliseconds from `now` (the one parser, src/util/limits.ts). */
export { parseRetryAfter as retryAfterMs } from '../../util/limits.ts';

/** Host (and path start) of a URL for messages: enough to recognise the receiver, no query secrets. */
export function describeTarget(url: string): string {
  try {
    const u = new URL(url);
    const path = u.pathname.length > 24 ? `${u.pathname.slice(0, 24)}…` : u.pathname;
    return `${u.protocol}//${u.host}${path}`;
  } catch {
    return '(invalid URL)';
  }
}

/** What a sink's network defaults to: server.proxy and the environment (HTTPS_PROXY, NO_PROXY). */
export interface SinkNetwork {
  proxy?: string | undefined;
  env?: NodeJS.ProcessEnv | undefined;
}

/** What every sink's factory takes besides its own options. */
export interface SinkOptions<C> {
  /** server.proxy and the environment, under the sink's own proxy/noProxy. */
  network?: SinkNetwork | undefined;
  config: C;
  /** Epoch milliseconds (tokens, signatures, Retry-After dates). */
  now?: () => number;
}

/** The options of a sink that posts to URLs its subscribers chose (webhook, Web Push). */
export interface SubscriberSinkOptions<C> extends SinkOptions<C> {
  /** Where subscribers' URLs may lead (src/net/egress.ts); default: nothing internal. */
  egress?: EgressPolicy;
}

/**
 * The way out for a sink that posts to subscribers' URLs: the egress policy that judges each
 * target, the proxy where it applies (sinkProxyVia), and closing what the sink opened itself.
 */
export function subscriberNetwork(options: SubscriberSinkOptions<{ proxy?: string | undefined; noProxy?: string | undefined }>): {
  egress: EgressPolicy;
  via: ReturnType<typeof sinkProxyVia>;
  close(): Promise<void>;
} {
  const egress = options.egress ?? new EgressPolicy();
  const via = sinkProxyVia(options.config, options.network);
  return {
    egress,
    via,
    async close() {
      if (!options.egress) await egress.close();
      await via.close();
    },
  };
}

/** A sink's proxy settings: its own `proxy`/`noProxy`, else server.proxy, else the environment. */
export function sinkProxy(config: { proxy?: string | undefined; noProxy?: string | undefined }, network: SinkNetwork = {}): ProxySettings {
  return { proxy: config.proxy ?? network.proxy, source: config.proxy ? 'sink' : 'server', noProxy: config.noProxy, env: network.env };
}

/**
 * For URLs a subscriber chose (webhook, Web Push): the proxy's dispatcher where the proxy applies to
 * that URL, else undefined, so the egress policy's own dispatcher connects and judges the resolved
 * address (behind a proxy the proxy resolves the name; the URL checks still apply).
 */
export function sinkProxyVia(config: { proxy?: string | undefined; noProxy?: string | undefined }, network?: SinkNetwork): ((url: string) => UndiciDispatcher | undefined) & { close(): Promise<void> } {
  const settings = sinkProxy(config, network);
  let dispatcher: UndiciDispatcher | undefined;
  const via = (url: string) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return undefined;
    }
    if (!proxyRoute(settings, target).proxy) return undefined;
    return (dispatcher ??= httpDispatcher(settings));
  };
  return Object.assign(via, { close: async () => void (await dispatcher?.close().catch(() => undefined)) });
}

/** The dispatcher a sink's HTTP requests go through (src/net/proxy.ts). */
export function sinkDispatcher(config: { proxy?: string | undefined; noProxy?: string | undefined }, network?: SinkNetwork): UndiciDispatcher {
  return httpDispatcher(sinkProxy(config, network));
}

/** What a sink plug-in gets: the notify section, secrets in clear, the egress policy and the network defaults. */
export interface SinkContext {
  config: NotifyConfig;
  /** Clear value of a stored secret (registered with the scrubber). */
  reveal(stored: string, field: string): string;
  /** Where subscribers' URLs may lead (webhook, Web Push). */
  egress: EgressPolicy;
  network?: SinkNetwork | undefined;
}

/**
 * A sink kind: builds the sink from its section of `notify`, or gives undefined when the section is
 * missing. Each sink file exports one; the composition root registers them by kind (src/app/plugins.ts).
 */
export type SinkPlugin = (ctx: SinkContext) => Promise<Sink | undefined>;

type SectionOf<N extends 'apns' | 'fcm'> = NonNullable<NotifyConfig[N]>;

/**
 * The plug-in of a sink whose section holds one secret (APNs' .p8 key, FCM's service account): the
 * sink gets its section with that secret in clear, revealed under its config path.
 */
export function sinkWithSecret<N extends 'apns' | 'fcm', K extends keyof SectionOf<N> & string>(
  section: N,
  secret: K,
  create: (options: SinkOptions<SectionOf<N>>) => Sink,
): SinkPlugin {
  return async ({ config, reveal, network }) => {
    // TypeScript does not narrow NotifyConfig[N] per N, nor see that the secret fields are strings.
    const c = config[section] as (SectionOf<N> & Record<K, string>) | undefined;
    if (!c) return undefined;
    return create({ config: { ...c, [secret]: reveal(c[secret], `notify.${section}.${secret}`) }, network });
  };
}
