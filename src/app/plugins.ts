/**
 * The registries: for each kind of plug-in, the map from the kind a configuration names to the
 * factory that builds it. Capabilities export their plug-ins and take a registry; the composition
 * root fills them here, so a capability's core (the relay's router, the connector's runner, the watch
 * service, the notify service) names no plug-in of its own. A new kind is its schema option, its
 * plug-in, and one line here; the types make a kind without an entry a compile error.
 *
 * Sinks, watchers and the Graph transport are loaded when a configuration first asks for them
 * (their libraries — HTTP/2, JWT signing, SOAP, undici — stay out of processes that do not use them);
 * the connector's sources and destinations are in connectors.ts, loaded only by `fetch`, the one
 * command that runs connectors.
 */
import type { SinkRegistry } from '../notify/service.ts';
import type { WatcherRegistry } from '../notify/watchers/plugin.ts';
import type { TransportRegistry } from '../relay/transports/index.ts';
import { smtpTransport } from '../relay/transports/smtp-xoauth2.ts';
import { lazyTransport } from '../relay/transports/lazy.ts';

/** relay.routes[].transport */
export const transports: TransportRegistry = {
  smtp: smtpTransport,
  // Graph's HTTP client (undici) loads with the first message a route sends through Graph.
  graph: (ctx) => lazyTransport(async () => (await import('../relay/transports/graph.ts')).graphTransport(ctx)),
};

/** notify.watch.groups.<name>.kind */
export const watchers: WatcherRegistry = {
  graph: async (group, build) => (await import('../notify/watchers/graph/index.ts')).graphWatcherPlugin(group, build),
  ews: async (group, build) => (await import('../notify/watchers/ews/index.ts')).ewsWatcherPlugin(group, build),
  imap: async (group, build) => (await import('../notify/watchers/imap/index.ts')).imapWatcherPlugin(group, build),
};

/** notify.webhook, notify.webpush, notify.apns, notify.fcm */
export const sinks: SinkRegistry = {
  webhook: async (ctx) => (await import('../notify/sinks/webhook.ts')).webhookSink(ctx),
  webpush: async (ctx) => (await import('../notify/sinks/webpush.ts')).webPushSink(ctx),
  apns: async (ctx) => (await import('../notify/sinks/apns.ts')).apnsSink(ctx),
  fcm: async (ctx) => (await import('../notify/sinks/fcm.ts')).fcmSink(ctx),
};
