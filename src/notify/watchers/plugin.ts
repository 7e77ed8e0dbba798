/**
 * The contract between the watch service and the watcher kinds (graph/, ews/, imap/): what a kind
 * gets to build the watcher of one listener of a group. Each kind exports its plug-in; the
 * composition root registers them by the `kind` a group names (src/app/plugins.ts).
 */
import type { Cloud } from '../../identity/clouds.ts';
import type { ProxySettings } from '../../net/proxy.ts';
import type { WatchGroupConfig, WatchListenerConfig } from './config.ts';
import type { WatchedMailbox, Watcher, WatcherContext } from './types.ts';
export type Resource = 'graph' | 'exchange';

/** What a watcher plug-in gets for one listener of a group, besides the group's section. */
export interface WatcherBuild {
  /** The group's name (notify.watch.groups.<name>). */
  group: string;
  /** The listener's id within the pools (group/listener). */
  listener: string;
  config: WatchListenerConfig;
  mailboxes: WatchedMailbox[];
  ctx: WatcherContext;
  /** Access tokens of the listener's connection for a resource. */
  tokens(resource: Resource): () => Promise<string>;
  /** The connection's proxy, else server.proxy, else HTTPS_PROXY. */
  proxy: ProxySettings;
  /** The listener's password in clear (registered with the scrubber), when it has one. */
  password?: string | undefined;
  /** PEM of `file`, else of the listener's connection's caFile; undefined when neither is set. */
  ca(file: string | undefined): string | undefined;
  /** The cloud of the listener's connection (its hosts are the group's defaults). */
  cloud?: Cloud | undefined;
  /** Clear value of a stored secret of the group's section. */
  reveal(stored: string, field: string): string;
}

/** A watcher kind: one watcher for one listener of a group of that kind. */
export type WatcherPlugin<G extends WatchGroupConfig = WatchGroupConfig> = (group: G, build: WatcherBuild) => Watcher;

/** The watcher kinds by the `kind` a group names; filled by the composition root (src/app/plugins.ts). */
export type WatcherRegistry = { [K in WatchGroupConfig['kind']]: (group: Extract<WatchGroupConfig, { kind: K }>, build: WatcherBuild) => Promise<Watcher> };
