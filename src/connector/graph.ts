/**
 * Microsoft Graph source: messages delta on a folder, the raw MIME of each new message from
 * `/messages/{id}/$value`, and the after-delivery action as Graph calls (PATCH isRead, POST move,
 * POST permanentDelete). Facts 4.6 and 4.8.
 *
 * Strategies. A delta round is followed page by page (`@odata.nextLink` with $skiptoken, then
 * `@odata.deltaLink` with $deltatoken); the link to continue from is the checkpoint's cursor, saved
 * after every page, so a restart resumes mid-round. Items are Graph message ids; replays (Graph may
 * report a message again, e.g. after its isRead changed) are skipped by the checkpoint's record of
 * ids. `@removed` entries are ignored (nothing to deliver). A lost sync state (410, or
 * syncStateNotFound / resyncRequired) starts a new round without a token and reports
 * MB_CONNECTOR_GRAPH_RESYNC; nothing is delivered twice because delivered ids are known. HTTP,
 * tokens, proxy, 429/503/504 back-off and the 4-requests-per-mailbox limit are the shared Graph
 * client's (src/m365/graph.ts); this file keeps what the replies mean for a mailbox source.
 *
 * Change notifications (optional, `source.notifications`): with a public URL configured, `start`
 * opens the connector's inbound listener and subscribes every folder through the shared
 * subscription machinery (src/m365/subscriptions, the same the Graph watcher uses: renewals,
 * reauthorization, recreation after subscriptionRemoved, the validation handshake). A notification
 * only marks its folder; the waiting mailbox worker wakes and runs a delta round, so what is
 * delivered still comes from delta and its checkpoint. Polling stays: every pollSeconds, and as the
 * fallback whenever notifications may have been lost (a new subscription, `missed`, each retry of
 * a failed subscription mark the folder too). Without the URL, or with --once, nothing of this runs.
 *
 * Several nodes (`startShared`, `hold`, `release`; the runner calls them as mailbox leases move):
 * every node listens, but subscribes, renews and recovers only the folders of the mailboxes it
 * holds, one subscription manager per held mailbox writing through the lease's fenced kv. A
 * released mailbox's subscriptions stay stored (same keys); the next holder's manager takes them
 * over as it would after a restart (renews them; a new one if they are gone). The routes are the
 * shared hub's (src/m365/subscriptions/hub.ts): a notification for a mailbox held elsewhere is
 * handed over on CONNECTOR_PUSH_CHANNEL, and the holder checks its clientState as always. When
 * listening to the channel resumes after the database was away, every held mailbox is read.
 *
 * Limits. Folders are well-known names (inbox, archive, …; "INBOX" is taken as inbox) or folder
 * ids. The epoch is always "graph"; message ids change when a message moves to another folder,
 * which is why a folder's checkpoint only ever concerns messages in that folder. Subscriptions are
 * kept (and reused by the next start) when the connector stops; Graph ends them at their expiry.
 */
import { toMbError, type MbError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import { silentLogger } from '../log/index.ts';
import { GraphClient, GraphUnreachable, type GraphReply } from '../m365/graph.ts';
import { createInbound, createRouteHub, createSubscriptionManager, type Handoff, type Inbound, type RouteHub, type SubscriptionCodes, type SubscriptionManager } from '../m365/subscriptions/index.ts';
import type { ProxySettings } from '../net/proxy.ts';
import type { KeyValue } from '../store/index.ts';
import { MAX_SIGNAL_BYTES } from '../store/signals.ts';
import { Semaphore, sleep } from '../util/limits.ts';
import { waitForWake } from '../util/wake.ts';
import type { GraphNotificationsConfig } from './config.ts';
import type { SourceConfig } from './types.ts';
import { ConnectorError, describeAction, type AfterAction, type Batch, type FetchedMessage, type FolderState, type ListedItem, type SourceFactory, type SourcePlugin, type SourceSession, type TokenProvider } from './types.ts';

export interface GraphSourceOptions {
  connector: string;
  /** Graph base URL as configured (with or without /v1.0); undefined: the cloud's. */
  baseUrl?: string | undefined;
  /** The connection's cloud's Graph host, for the default base URL. */
  graphHost?: string | undefined;
  proxy?: ProxySettings | undefined;
  tokens: TokenProvider;
  /** Extra CA certificates (PEM) to trust. */
  ca?: string;
  /** Messages per delta page (Prefer: odata.maxpagesize). */
  pageSize?: number;
  /** Requests per mailbox at once (Graph allows 4). */
  concurrency?: number;
  /** Throttling and resync notices, for the run's warnings. */
  notice?: (mailbox: string, error: MbError) => void;
  /** Retries of one request after 429/503 before the error goes up. */
  throttleRetries?: number;
  /** Change notifications (source.notifications); absent: the source polls. */
  notifications?: GraphNotifyOptions;
}

/** The `graph` source as configured: at most 4 requests per mailbox (Graph's limit), fewer with a smaller window. */
export const graphSourcePlugin: SourcePlugin<Extract<SourceConfig, { kind: 'graph' }>> = (s, ctx) =>
  graphSource({
    connector: ctx.connector,
    baseUrl: s.baseUrl,
    proxy: ctx.proxy,
    tokens: ctx.tokens,
    ca: s.caFile ? ctx.readFile(s.caFile) : undefined,
    pageSize: s.pageSize,
    concurrency: Math.min(4, ctx.config.concurrency.window),
    notice: ctx.notice,
    // A --once run ends before any notification could arrive: it only polls.
    ...(s.notifications && ctx.long && ctx.kv
      ? { notifications: { config: s.notifications, kv: ctx.kv, seal: ctx.seal, reveal: ctx.open, readFile: (p: string) => ctx.readFile(p), log: ctx.log } }
      : {}),
  });

export interface GraphNotifyOptions {
  config: GraphNotificationsConfig;
  /** Where the subscriptions are kept (namespace `connector.graph`, per connector). */
  kv: KeyValue;
  /** Seal and reveal the clientState in kv (the SecretBox). */
  seal?: (plain: string) => string;
  reveal?: (sealed: string) => string;
  /** Reads listen.certFile / keyFile. */
  readFile: (path: string) => string;
  log?: Logger;
  now?: () => number;
  /** How often renewals and retries are looked at (ms; default 60 s). */
  tickMs?: number;
}

/** How the connector reports subscription trouble: its texts say that polling carries on meanwhile. */
export const CONNECTOR_SUBSCRIPTION_CODES: SubscriptionCodes = {
  forbidden: 'MB_CONNECTOR_GRAPH_FORBIDDEN',
  validation: 'MB_CONNECTOR_GRAPH_VALIDATION_FAILED',
  limit: 'MB_CONNECTOR_GRAPH_SUBSCRIPTION_LIMIT',
  failed: 'MB_CONNECTOR_GRAPH_SUBSCRIBE_FAILED',
  clientState: 'MB_CONNECTOR_GRAPH_CLIENTSTATE_MISMATCH',
  removed: 'MB_CONNECTOR_GRAPH_SUBSCRIPTION_REMOVED',
  missed: 'MB_CONNECTOR_GRAPH_MISSED',
};

/** kv namespace of the connector's subscription records (key: `s\t<connector>\t<mailbox>\t<folder>`). */
export const SUBSCRIPTION_NAMESPACE = 'connector.graph';

/**
 * Several nodes: the signal channel on which a node hands a change notification to the node holding
 * its mailbox, shared by every connector (the payload names the connector's route path).
 */
export const CONNECTOR_PUSH_CHANNEL = 'mailbridge_connector_push';

/** What of a notification item is handed over: what the holder checks (subscription, clientState) and acts on. */
const HANDED_FIELDS = ['subscriptionId', 'clientState', 'changeType', 'lifecycleEvent', 'resource'] as const;

/**
 * Retries of a failed subscription, as the watcher's defaults: each retry also reads the folder, so
 * this is how often a connector without working notifications looks for mail between polls.
 */
const SUBSCRIPTION_RETRY = { initialSeconds: 30, maxSeconds: 1800 };

/** Folders marked by notifications, per mailbox, and the worker waiting for them. */
export class Wakes {
  private readonly boxes = new Map<string, { marked: Set<string>; wake?: () => void }>();

  private box(mailbox: string) {
    const key = mailbox.toLowerCase();
    let b = this.boxes.get(key);
    if (!b) this.boxes.set(key, (b = { marked: new Set() }));
    return b;
  }

  mark(mailbox: string, folder: string): void {
    const b = this.box(mailbox);
    b.marked.add(folder);
    b.wake?.();
  }

  /** The marked folders, unmarked: a mark arriving while they are read stays for the next wait. */
  take(mailbox: string): string[] {
    const b = this.box(mailbox);
    const out = [...b.marked];
    b.marked.clear();
    return out;
  }

  wait(mailbox: string, ms: number, signal: AbortSignal): Promise<'changed' | 'timeout'> {
    const b = this.box(mailbox);
    if (b.marked.size > 0) return Promise.resolve('changed');
    return waitForWake<'changed'>(
      ms,
      signal,
      (wake) => (b.wake = () => wake('changed')),
      () => delete b.wake,
    );
  }
}

/** The Graph source's factory; with notifications, `tick` and `idle` let tests drive the subscriptions. */
export interface GraphSourceFactory extends SourceFactory {
  /** Renewals and retries due now (the timer does this every tickMs). */
  tick(): Promise<void>;
  /** Resolves when no subscription work runs. */
  idle(): Promise<void>;
  /** The URL Graph calls (with notifications, after start). */
  readonly notificationUrl: string | undefined;
}

export function graphSource(o: GraphSourceOptions): GraphSourceFactory {
  let client: GraphClient | undefined;
  // Built on first use: a source that is never opened sends nothing.
  const shared = () =>
    (client ??= new GraphClient({
      baseUrl: o.baseUrl,
      graphHost: o.graphHost,
      tokens: o.tokens,
      ca: o.ca,
      proxy: o.proxy,
      perMailbox: o.concurrency,
      throttleRetries: o.throttleRetries ?? 4,
      onThrottle: (mailbox, status, ms) =>
        o.notice?.(mailbox, new ConnectorError('MB_CONNECTOR_GRAPH_THROTTLED', { status, mailbox, seconds: Math.ceil(ms / 1000), connector: o.connector }, { retryAfterMs: ms })),
    }));
  const n = o.notifications;
  let wakes: Wakes | undefined;
  let inbound: Inbound | undefined;
  let hub: RouteHub | undefined;
  let log = silentLogger;
  /** The subscription managers: one for all mailboxes on one node; one per held mailbox on several. */
  const managers = new Map<string, SubscriptionManager<{ mailbox: string; folder: string }>>();
  /** Several nodes: the mailboxes this node holds. */
  const held = new Map<string, { address: string; folders: string[] }>();
  // Subscription work at once over all managers (several nodes: one per held mailbox).
  const setupGate = new Semaphore(16);
  let timer: ReturnType<typeof setInterval> | undefined;
  let stopSignals: (() => void) | undefined;
  const routePath = n ? `${n.config.path}/${o.connector}` : '';
  const allDue = () => [...managers.values()].flatMap((m) => m.due());
  const close = async () => {
    if (timer) clearInterval(timer);
    stopSignals?.();
    const stopping = Promise.all([...managers.values()].map((m) => m.close()));
    managers.clear();
    held.clear();
    await inbound?.close();
    await client?.close();
    await stopping;
  };

  /** Opens the listener with the connector's routes (all managers join them through the hub). */
  const listen = async (forward?: (h: Handoff) => void): Promise<void> => {
    const c = n!.config;
    // The runner's log already names the connector.
    log = (n!.log ?? silentLogger).child({ source: 'graph' });
    const into = createInbound({ listen: c.listen, publicUrl: c.publicUrl, setting: `connectors.${o.connector}.source.notifications.listen`, log, readFile: n!.readFile });
    const h = createRouteHub(into.http, forward);
    h.prepare(routePath);
    try {
      // Graph validates the URL while subscribing: the listener must answer first.
      await into.listen();
    } catch (err) {
      await into.close().catch(() => undefined);
      throw err;
    }
    inbound = into;
    hub = h;
    wakes = new Wakes();
    timer = setInterval(() => void Promise.all(allDue()).catch(() => undefined), n!.tickMs ?? 60_000);
    timer.unref();
  };

  /** Subscribes these mailboxes' folders (reusing stored subscriptions) through one manager; in the background. */
  const manage = (key: string, mailboxes: Array<{ address: string; folders: string[] }>, kv: KeyValue): number => {
    const c = n!.config;
    const w = wakes!;
    const subs = createSubscriptionManager<{ mailbox: string; folder: string }>({
      client: shared(),
      kv,
      namespace: SUBSCRIPTION_NAMESPACE,
      prefix: `s\t${o.connector}\t`,
      inbound: inbound!,
      hub: hub!,
      path: routePath,
      // Only new mail matters to a connector.
      changeTypes: ['created'],
      expirationMinutes: c.expirationMinutes,
      renewBeforeMinutes: c.renewBeforeMinutes,
      lifecycleNotifications: true,
      retry: SUBSCRIPTION_RETRY,
      setupConcurrency: 16,
      sharedGate: setupGate,
      codes: CONNECTOR_SUBSCRIPTION_CODES,
      params: { connector: o.connector },
      now: n!.now ?? Date.now,
      log,
      ...(n!.seal ? { seal: n!.seal } : {}),
      ...(n!.reveal ? { reveal: n!.reveal } : {}),
      onNotification: (t) => {
        // Debug: one line per new message; says why a mailbox was read when mail comes late.
        log.debug({ mailbox: t.mailbox, folder: t.folder }, 'graph source: change notification');
        w.mark(t.mailbox, t.folder);
      },
      onGap: (t) => w.mark(t.mailbox, t.folder),
      problem: (mailbox, err) => {
        log.warn({ code: err.code, mailbox }, err.message);
        o.notice?.(mailbox, err);
      },
    });
    managers.set(key, subs);
    const targets = mailboxes.flatMap((m) => m.folders.map((folder) => subs.add(m.address, folder, { mailbox: m.address, folder })));
    // The workers fetch meanwhile, and every new (or taken over) subscription marks its folder.
    for (const t of targets) void subs.setup(t);
    return targets.length;
  };

  return {
    kind: 'graph',
    description: `graph ${shared().base}`,
    get notificationUrl() {
      return inbound ? `${inbound.publicUrl}${routePath}` : undefined;
    },
    async start(mailboxes) {
      if (!n || inbound) return;
      await listen();
      const folders = manage('', mailboxes, n.kv);
      log.info({ notificationUrl: `${inbound!.publicUrl}${routePath}`, folders }, 'graph source: subscribing to new mail');
    },
    async startShared(signals) {
      if (!n || inbound) return;
      let forward: ((h: Handoff) => void) | undefined;
      if (signals) {
        forward = (h) => {
          // Only what the holder's checks need: a connector reads the message itself with delta.
          const item = Object.fromEntries(HANDED_FIELDS.filter((k) => typeof h.item[k] === 'string').map((k) => [k, h.item[k]]));
          const text = JSON.stringify({ path: h.path, route: h.route, item } satisfies Handoff);
          // Longer only when forged (real items are short): not worth a signal.
          if (Buffer.byteLength(text) > MAX_SIGNAL_BYTES) return;
          log.debug({ subscription: item.subscriptionId }, 'graph source: a notification for a mailbox another node holds; handing it over');
          signals.publish(CONNECTOR_PUSH_CHANNEL, text).catch((err: unknown) => log.warn({ err: toMbError(err).message }, 'graph source: handing a notification to the node holding its mailbox failed; that mail waits for the holder\'s next read of the folder'));
        };
      }
      await listen(forward);
      if (!signals) return;
      const h = hub!;
      try {
        stopSignals = await signals.subscribe(
          CONNECTOR_PUSH_CHANNEL,
          (payload) => {
            let handed: Handoff;
            try {
              handed = JSON.parse(payload) as Handoff;
            } catch {
              // Not ours to read: another version's or a foreign payload on the channel.
              return;
            }
            // The channel is shared by every connector's nodes.
            if (handed?.path !== routePath || !handed.item) return;
            if (h.receive(handed)) log.debug({ subscription: handed.item.subscriptionId }, 'graph source: a notification another node received, handed over to this node');
          },
          // Listening resumed after the database was away: hand-overs sent meanwhile are gone, so
          // every mailbox held here reads its folders (a node that kept its mailboxes would
          // otherwise not see that mail before the next poll).
          () => {
            log.info({ mailboxes: held.size }, 'graph source: notifications handed over by other nodes may have been lost while the database was away; reading every folder');
            for (const m of held.values()) for (const f of m.folders) wakes?.mark(m.address, f);
          },
        );
      } catch (err) {
        await close();
        throw err;
      }
    },
    hold(mailbox, kv) {
      if (!n || !inbound) return;
      const key = mailbox.address.toLowerCase();
      if (managers.has(key)) return;
      held.set(key, mailbox);
      manage(key, [mailbox], kv);
    },
    async release(mailbox) {
      const key = mailbox.toLowerCase();
      held.delete(key);
      const subs = managers.get(key);
      managers.delete(key);
      // Leaves the routes and waits for running work; the subscriptions stay for the next holder.
      await subs?.close();
    },
    async open(mailbox, _signal, options) {
      return new GraphSession(mailbox, o, shared(), options?.freshToken, wakes);
    },
    async tick() {
      await Promise.all(allDue());
    },
    async idle() {
      await Promise.all([...managers.values()].map((m) => m.idle()));
    },
    close,
  };
}

interface GraphErrorBody {
  error?: { code?: string; message?: string };
}

/** "INBOX" (IMAP's name) is Graph's well-known inbox. */
function folderSegment(folder: string): string {
  return encodeURIComponent(folder.toUpperCase() === 'INBOX' ? 'inbox' : folder);
}

export class GraphSession implements SourceSession {
  readonly mailbox: string;
  readonly closed = false;
  private readonly o: GraphSourceOptions;
  private readonly client: GraphClient;
  private readonly received = new Map<string, Date>();
  /** The first request asks for a new token (the previous session was refused for authorization). */
  private freshToken: boolean;
  /** Change notifications, when they are on. */
  private readonly wakes: Wakes | undefined;

  constructor(mailbox: string, o: GraphSourceOptions, client: GraphClient, freshToken = false, wakes?: Wakes) {
    this.mailbox = mailbox;
    this.o = o;
    this.client = client;
    this.freshToken = freshToken;
    this.wakes = wakes;
  }

  private userUrl(path: string): string {
    return this.client.url(this.mailbox, path);
  }

  /** One request; still throttled after the client's waits: the error goes up with Graph's wait. */
  private async request(method: string, url: string, options: { body?: unknown; headers?: Record<string, string> } = {}): Promise<GraphReply> {
    // After a refusal for authorization the first request takes a new token (a permission granted
    // meanwhile is only in a new one); the client asks the provider (its cache) otherwise.
    const token = this.freshToken ? await this.o.tokens(this.mailbox, { fresh: true }) : undefined;
    this.freshToken = false;
    let r: GraphReply;
    try {
      r = await this.client.call(this.mailbox, method, url, {
        ...(options.body !== undefined ? { json: options.body } : {}),
        ...(options.headers ? { headers: options.headers } : {}),
        ...(token ? { token } : {}),
      });
    } catch (err) {
      if (!(err instanceof GraphUnreachable)) throw err;
      const u = new URL(url);
      throw new ConnectorError('MB_CONNECTOR_SOURCE_UNREACHABLE', { mailbox: this.mailbox, host: u.hostname, port: Number(u.port || 443), detail: err.message }, { cause: err });
    }
    // A permission granted meanwhile is only in a new token: the next request must not reuse this one.
    if (r.status === 401 || r.status === 403) this.freshToken = true;
    if (r.status === 429 || r.status === 503 || r.status === 504) {
      const ms = r.retryAfterMs ?? 60_000;
      throw new ConnectorError('MB_CONNECTOR_GRAPH_THROTTLED', { status: r.status, mailbox: this.mailbox, seconds: Math.ceil(ms / 1000), connector: this.o.connector }, { retryAfterMs: ms });
    }
    return r;
  }

  private fail(status: number, json: unknown, folder?: string): ConnectorError {
    const e = (json as GraphErrorBody | undefined)?.error ?? {};
    const params = { status, code: e.code ?? '', detail: e.message ?? '', mailbox: this.mailbox, connector: this.o.connector };
    if (status === 401 || status === 403) return new ConnectorError('MB_CONNECTOR_GRAPH_FORBIDDEN', params, { retryAfterMs: 60_000 });
    // No such user, or a user without an Exchange Online mailbox: usually a typo in the address.
    if (status === 404 && /^(ErrorInvalidUser|MailboxNotEnabledForRESTAPI)$/i.test(e.code ?? '')) {
      return new ConnectorError('MB_CONNECTOR_MAILBOX_NOT_FOUND', { mailbox: this.mailbox, status, code: e.code ?? '', connector: this.o.connector }, { retryAfterMs: 300_000 });
    }
    if (status === 404 && folder !== undefined && /folder|ErrorInvalidIdMalformed|ErrorItemNotFound|ResourceNotFound/i.test(`${e.code} ${e.message}`)) {
      return new ConnectorError('MB_CONNECTOR_FOLDER_MISSING', { mailbox: this.mailbox, folder, connector: this.o.connector }, { retryAfterMs: 300_000 });
    }
    return new ConnectorError('MB_CONNECTOR_GRAPH_FAILED', params);
  }

  async open(folder: string): Promise<FolderState> {
    const r = await this.request('GET', this.userUrl(`/mailFolders/${folderSegment(folder)}`));
    if (r.status !== 200) throw this.fail(r.status, r.json, folder);
    return { epoch: 'graph', next: 0 };
  }

  async *list(folder: string, from: { position: number; cursor?: string }): AsyncIterable<Batch> {
    const first = `${this.userUrl(`/mailFolders/${folderSegment(folder)}/messages/delta`)}?$select=id,internetMessageId,receivedDateTime`;
    let url = from.cursor ?? first;
    let resynced = false;
    for (;;) {
      const r = await this.request('GET', url, { headers: { prefer: `odata.maxpagesize=${this.o.pageSize ?? 50}` } });
      const code = (r.json as GraphErrorBody | undefined)?.error?.code ?? '';
      if ((r.status === 410 || /syncStateNotFound|resyncRequired/i.test(code)) && !resynced) {
        // The delta state is gone: a new round from the start; delivered ids are skipped.
        resynced = true;
        const warning = new ConnectorError('MB_CONNECTOR_GRAPH_RESYNC', { mailbox: this.mailbox, folder, status: r.status, code });
        yield { items: [], advance: { cursor: null }, warning };
        url = first;
        continue;
      }
      if (r.status !== 200) throw this.fail(r.status, r.json, folder);
      const page = r.json as { value?: Array<Record<string, unknown>>; '@odata.nextLink'?: string; '@odata.deltaLink'?: string };
      const items: ListedItem[] = [];
      for (const v of page.value ?? []) {
        if (v['@removed'] || typeof v.id !== 'string') continue;
        if (typeof v.receivedDateTime === 'string') this.received.set(v.id, new Date(v.receivedDateTime));
        items.push({ item: v.id });
      }
      const next = page['@odata.nextLink'];
      const delta = page['@odata.deltaLink'];
      yield { items, advance: { cursor: next ?? delta ?? null } };
      if (!next) return;
      url = next;
    }
  }

  async fetch(_folder: string, items: ListedItem[]): Promise<FetchedMessage[]> {
    const got = await Promise.all(
      items.map(async (it): Promise<FetchedMessage | undefined> => {
        const r = await this.request('GET', this.userUrl(`/messages/${encodeURIComponent(it.item)}/$value`), { headers: { accept: 'message/rfc822, */*' } });
        if (r.status === 404) return undefined;
        if (r.status !== 200) throw this.fail(r.status, r.json);
        return { item: it.item, raw: r.body, internalDate: this.received.get(it.item) };
      }),
    );
    return got.filter((m): m is FetchedMessage => m !== undefined);
  }

  async act(folder: string, action: AfterAction, items: string[]): Promise<void> {
    if (action.action === 'none' || items.length === 0) return;
    const failures: string[] = [];
    let forbidden: { status: number; code: string } | undefined;
    await Promise.all(
      items.map(async (id) => {
        const path = `/messages/${encodeURIComponent(id)}`;
        const r =
          action.action === 'seen'
            ? await this.request('PATCH', this.userUrl(path), { body: { isRead: true } })
            : action.action === 'move'
              ? await this.request('POST', this.userUrl(`${path}/move`), { body: { destinationId: action.folder.toUpperCase() === 'INBOX' ? 'inbox' : action.folder } })
              : await this.request('POST', this.userUrl(`${path}/permanentDelete`));
        // Already gone (moved or deleted by someone): nothing left to do for it.
        const code = (r.json as GraphErrorBody | undefined)?.error?.code ?? '';
        if (r.status === 401 || r.status === 403) forbidden ??= { status: r.status, code };
        if (r.status >= 300 && r.status !== 404) failures.push(`${r.status} ${code}`.trim());
      }),
    );
    if (forbidden) {
      // Reading needs Mail.Read; marking, moving and deleting need Mail.ReadWrite.
      throw new ConnectorError('MB_CONNECTOR_GRAPH_ACTION_FORBIDDEN', {
        mailbox: this.mailbox,
        folder,
        count: failures.length,
        action: describeAction(action),
        status: forbidden.status,
        code: forbidden.code,
        connector: this.o.connector,
      });
    }
    if (failures.length > 0) {
      throw new ConnectorError('MB_CONNECTOR_AFTER_ACTION_FAILED', {
        mailbox: this.mailbox,
        folder,
        count: failures.length,
        action: describeAction(action),
        detail: [...new Set(failures)].join(', '),
      });
    }
  }

  async wait(_folder: string, ms: number, signal: AbortSignal): Promise<'changed' | 'timeout' | 'closed'> {
    if (this.wakes) return this.wakes.wait(this.mailbox, ms, signal);
    await sleep(ms, signal).catch(() => undefined);
    return 'timeout';
  }

  changedFolders(): string[] {
    return this.wakes?.take(this.mailbox) ?? [];
  }

  async close(): Promise<void> {}
}
