/**
 * Sandbox EWS: an HTTPS emulator of Exchange Web Services notifications for mailbridge's EWS watcher,
 * presenting itself as an on-premises Exchange Server 2016 or 2019 (default 2019) or as Exchange
 * Online (whose EWS retires: blocked from Oct 1, 2026 unless allow-listed, shut down Apr 1, 2027;
 * facts §5.1 — a watcher should warn when ServerVersionInfo says MinorVersion ≥ 20 or autodiscover
 * says MicrosoftOnline). Faithful to microsoft-facts.md §5 down to XML shapes, `http://`
 * namespaces, response codes and limits; texts without a source are marked [APPROX] where written.
 *
 * Operations: Subscribe (streaming, push, pull; one mailbox per request; EventTypes; FolderIds or
 * SubscribeToAllFolders), GetStreamingEvents, GetEvents, Unsubscribe, GetItem, GetFolder,
 * SyncFolderItems; Autodiscover SOAP GetUserSettings, POX and v2 JSON.
 *
 * Strategies (one module each): credentials and impersonation (auth.ts); backend mailbox servers,
 * routing by affinity cookie or X-AnchorMailbox (backends.ts); the mailbox event table built from
 * the sandbox MailFeed and the subscription queues (hub.ts); GetStreamingEvents connections with
 * heartbeats, ConnectionTimeout and a drop hook (streaming.ts); push delivery with StatusFrequency
 * and the retry schedule (push.ts); namespace-aware XML over fast-xml-parser (xml.ts). All timers go
 * through an injectable Scheduler (clock.ts).
 *
 * Limits (defaults, configurable): EWSMaxSubscriptions 20 per mailbox (Exchange Online's; on-premises
 * 2013+ allows 5000), HangingConnectionLimit 10 per account or impersonated mailbox (Exchange Online's;
 * on-premises web.config default is 3 per handling-notification-related-errors…), 200 subscription
 * IDs per GetStreamingEvents, 50 events per notification. Streaming subscriptions keep their events
 * for 30 minutes without a connection. Not modelled: EWSMaxConcurrency (27), the budget-based
 * ErrorServerBusy (only the `busy` hook), MovedEvent/CopiedEvent (moves show as Deleted + Created),
 * NTLM/Kerberos, EWS operations beyond the ones above.
 */
import { MbError } from '../../errors/index.ts';
import type { Logger } from '../../log/index.ts';
import { silentLogger } from '../../log/index.ts';
import type { KeyAndCert } from '../ca.ts';
import type { SandboxDirectory } from '../directory.ts';
import { WELL_KNOWN_FOLDERS } from '../graph/ids.ts';
import { MailStore, type GraphBackend } from '../graph/store.ts';
import type { MailFeed } from '../mailfeed.ts';
import { directoryMailboxes, type JwksSource, type MailboxResolver } from './auth.ts';
import { Backends, PROFILES, type EwsProfile, type EwsProfileName } from './backends.ts';
import { realScheduler, type Scheduler } from './clock.ts';
import { Hub } from './hub.ts';
import type { FolderLister, Limits } from './operations.ts';
import { PushSender } from './push.ts';
import { buildEwsServer, type EwsStats, type ServerContext } from './server.ts';
import { listenOn } from '../../errors/listen.ts';

export type { EwsMailboxInfo, JwksSource, MailboxResolver } from './auth.ts';
export type { EwsProfile, EwsProfileName } from './backends.ts';
export { ManualScheduler, realScheduler, type Scheduler } from './clock.ts';
export type { FolderLister, Limits } from './operations.ts';
export type { EwsStats } from './server.ts';
export { NS } from './xml.ts';

export interface EwsSandboxOptions {
  directory: SandboxDirectory;
  jwks: JwksSource;
  tls: KeyAndCert;
  /** The sandbox's change source (Dovecot or synthetic). */
  feed: MailFeed;
  /** Lists folders for SyncFolderItems (the Graph MailStore or the synthetic mailboxes). */
  lister?: FolderLister;
  /** The sandbox Dovecot: without `lister`, SyncFolderItems lists its folders over an own MailStore. */
  dovecot?: GraphBackend;
  /** Synthetic mailboxes: their changes, messages and folders come from here instead of `feed`/`lister`. */
  synthetic?: MailFeed & FolderLister & { has(address: string): boolean };
  /** Mailboxes served; default: the directory's. Synthetic mode passes its own. */
  mailboxes?: MailboxResolver;
  /** Which Exchange to present (default exchange2019). */
  profile?: EwsProfileName;
  /** Backend mailbox server FQDNs (default: two per profile). */
  backends?: string[];
  limits?: Partial<Limits>;
  /** ConnectionStatus OK interval on idle streams (default 40 s; the EWS Managed API gives up after 90 s). */
  heartbeatMs?: number;
  /** How long a streaming subscription keeps its events without a connection (default 30 min). */
  streamingLifetimeMs?: number;
  scheduler?: Scheduler;
  /** CA(s) to trust when pushing to https callbacks. */
  pushCa?: string | string[];
  pushTimeoutMs?: number;
  /** Exchange Online profile: the EWS allow list (Set-OrganizationConfig -EwsAllowedAppIDs); unset = all apps. */
  onlineAllowedAppIds?: string[];
  /**
   * On-premises profiles: Windows authentication as Exchange's EWS virtual directory ships it.
   * 'ntlm' requires NTLM (Basic is refused); default: Basic and NTLM are both offered.
   */
  windowsAuth?: 'ntlm' | 'offered';
  host?: string;
  port?: number;
  log?: Logger;
}

export interface SandboxEws {
  /** https://HOST:PORT/EWS/Exchange.asmx */
  url: string;
  /** https://HOST:PORT/autodiscover/autodiscover.svc (POX: …/autodiscover.xml, v2: …/autodiscover.json/v1.0/{smtp}). */
  autodiscoverUrl: string;
  /** https://HOST:PORT */
  origin: string;
  profile: EwsProfile;
  /** Backend mailbox servers, and which one hosts a mailbox. */
  backends: { servers: string[]; of(address: string): string };
  /**
   * Test hook: the next `count` EWS requests fail with ErrorServerBusy and BackOffMilliseconds
   * `backOffMs`, as an HTTP 500 SOAP fault (default) or an HTTP 200 error response message.
   */
  busy(count: number, backOffMs: number, shape?: 'fault' | 'message'): void;
  /** Test hook: cut every open GetStreamingEvents connection now, or mid-way through its next notification envelope. Returns how many. */
  dropStreams(options?: { midEnvelope?: boolean }): number;
  /** Subscriptions alive now. */
  subscriptions(): number;
  /** Test hook: require NTLM (Basic refused) from now on, or offer it beside Basic again. */
  requireNtlm(on: boolean): void;
  stats: EwsStats;
  close(): Promise<void>;
}

export async function startEwsSandbox(options: EwsSandboxOptions): Promise<SandboxEws> {
  const profile = PROFILES[options.profile ?? 'exchange2019'];
  const scheduler = options.scheduler ?? realScheduler;
  const log = options.log ?? silentLogger;
  const backends = new Backends(options.backends ?? profile.defaultBackends);
  const ownStore = !options.lister && options.dovecot ? new MailStore(options.dovecot) : undefined;
  const { feed, lister } = route(options.feed, options.lister ?? ownStore, options.synthetic);
  const hub = new Hub({
    feed,
    scheduler,
    allFolders: Object.values(WELL_KNOWN_FOLDERS).map((f) => f.path),
    streamingLifetimeMs: options.streamingLifetimeMs,
    onError: (err, where) => log.debug({ err, where }, 'ews sandbox: feed'),
  });
  const host = options.host ?? '127.0.0.1';
  const ctx: ServerContext = {
    directory: options.directory,
    jwks: options.jwks,
    profile,
    backends,
    hub,
    feed,
    lister,
    mailboxes: options.mailboxes ?? directoryMailboxes(options.directory),
    limits: { maxSubscriptions: 20, hangingConnections: 10, maxStreamingIds: 200, ...options.limits },
    scheduler,
    heartbeatMs: options.heartbeatMs ?? 40_000,
    stats: {
      operations: {},
      responses: {},
      busy: 0,
      affinityCookies: 0,
      streams: { open: 0, opened: 0, notifications: 0, heartbeats: 0, dropped: 0 },
      push: { sent: 0, delivered: 0, failed: 0, retries: [], unsubscribed: 0, expired: 0 },
    },
    log,
    ewsUrl: '',
    pushDispatcher: PushSender.dispatcher(options.pushCa),
    pushTimeoutMs: options.pushTimeoutMs,
    onlineAllowedAppIds: options.onlineAllowedAppIds,
    busyHook: { count: 0, backOffMs: 0, shape: 'fault' },
    conns: new Set(),
    windows: { required: options.windowsAuth === 'ntlm', connections: new WeakMap(), server: { domain: 'CONTOSO', computer: 'EXCH01', dnsDomain: 'contoso.local' } },
  };
  const app = buildEwsServer(ctx, options.tls);
  try {
    await listenOn('sandbox EWS', host, options.port ?? 0, () => app.listen({ host, port: options.port ?? 0 }));
  } catch (err) {
    await ownStore?.close();
    throw new MbError('MB_SANDBOX_EWS_LISTEN', { address: `${host}:${options.port ?? 0}`, detail: (err as Error).message });
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const origin = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  ctx.ewsUrl = `${origin}/EWS/Exchange.asmx`;
  let closed = false;
  return {
    url: ctx.ewsUrl,
    autodiscoverUrl: `${origin}/autodiscover/autodiscover.svc`,
    origin,
    profile,
    backends: { servers: [...backends.servers], of: (a) => backends.of(a) },
    busy(count, backOffMs, shape = 'fault') {
      ctx.busyHook = { count, backOffMs, shape };
    },
    requireNtlm(on) {
      ctx.windows.required = on;
    },
    dropStreams(o = {}) {
      const conns = [...ctx.conns];
      for (const c of conns) c.drop(o.midEnvelope ?? false);
      return conns.length;
    },
    subscriptions: () => hub.subs.size,
    stats: ctx.stats,
    async close() {
      if (closed) return;
      closed = true;
      for (const c of [...ctx.conns]) c.destroy();
      for (const sub of hub.subs.values()) if (sub.reader instanceof PushSender) sub.reader.stop();
      hub.close();
      await app.close();
      await ctx.pushDispatcher.close();
      await ownStore?.close();
    },
  };
}

/** Sends synthetic mailboxes to the synthetic source, the rest to the Dovecot feed and lister. */
function route(
  feed: MailFeed,
  lister: FolderLister | undefined,
  synthetic: EwsSandboxOptions['synthetic'],
): { feed: MailFeed; lister: FolderLister | undefined } {
  if (!synthetic) return { feed, lister };
  const pick = (mailbox: string) => (synthetic.has(mailbox) ? synthetic : feed);
  return {
    feed: {
      watch: (mailbox, folder, fn) => pick(mailbox).watch(mailbox, folder, fn),
      message: (mailbox, folder, uid) => pick(mailbox).message(mailbox, folder, uid),
      counts: (mailbox, folder) => pick(mailbox).counts(mailbox, folder),
      // Both sources belong to the sandbox, which closes them.
      close: async () => undefined,
    },
    lister: {
      snapshot: (mailbox, path) => {
        if (synthetic.has(mailbox)) return synthetic.snapshot(mailbox, path);
        if (!lister) return Promise.reject(new Error('no folder lister for Dovecot mailboxes'));
        return lister.snapshot(mailbox, path);
      },
    },
  };
}
