/**
 * The Graph watcher: new mail, read-state changes and deletions in Exchange Online mailboxes from
 * Microsoft Graph change notifications plus delta (microsoft-facts.md §4.1–4.6, §4.8), for one
 * listener of a `graph` watch pool.
 *
 * Strategy
 * - Subscriptions are the shared machinery's (src/m365/subscriptions: one per mailbox and folder,
 *   clientState checked on every item, renewed `renewBeforeMinutes` before expiry, reused after a
 *   restart, recovered after lifecycle events, retried with back-off); this file decides what a
 *   notification and a gap mean for events.
 * - Notifications never carry the change itself into an event: an item whose subscription and
 *   clientState check out only marks its folder for a delta round (coalesced: a burst is one
 *   round), started after the 202 went out. sync.ts turns the round into events and saves the
 *   delta link after they were published, so a notification, a lifecycle `missed`, a removed
 *   subscription and a restart all report each change exactly once (same event ids).
 * - Lifecycle: reauthorizationRequired → POST …/reauthorize (failing that, PATCH renew);
 *   subscriptionRemoved → a new subscription and a delta round; missed → a delta round.
 * - One scheduler for everything timed (renewals, retries of failed subscriptions and rounds): a
 *   single interval scans the folders, so 15,000 mailboxes cost no timers. Setup and renewals run
 *   at most `setupConcurrency` at once, delta rounds at most `syncConcurrency`, and Graph requests
 *   at most `requestsPerMailbox` per mailbox (the shared Graph client, src/m365/graph.ts, which also
 *   honours Retry-After).
 * - A failed subscription (403 permission, validation of the public URL, the 1,000 limit, …) is an
 *   MB-coded problem with its fix and is retried with exponential back-off; meanwhile every retry
 *   also runs a delta round, so mail is still found, only later.
 *
 * - Rich notifications (includeResourceData, optional): subscriptions carry the listener's
 *   certificate (crypto.ts) and `$select` the event's properties; a `created` item's decrypted
 *   resource becomes the new-message event without a delta request (sync.ts `hints`), everything
 *   else still goes through delta, and a delta round runs at least hourly so the link stays fresh.
 *   Such subscriptions live at most 1,440 minutes (expirationMinutes is capped).
 *
 * Limits: the listener id becomes part of the notification URL and must be URL-safe; the
 * validationTokens of rich notifications are not validated (crypto.ts); see sync.ts for what
 * delta can and cannot tell about read-state changes.
 */
import { MbError, toMbError } from '../../../errors/index.ts';
import type { WatchGroupConfig } from '../config.ts';
import type { MailboxStatus, TokenProvider, WatchedMailbox, Watcher, WatcherContext, WatchState } from '../types.ts';
import type { WatcherPlugin } from '../plugin.ts';
import { GraphClient } from '../../../m365/graph.ts';
import { createSubscriptionManager, type SubscriptionCodes, type Subscribed } from '../../../m365/subscriptions/index.ts';
import type { ProxySettings } from '../../../net/proxy.ts';
import { Semaphore } from '../../../util/limits.ts';
import { graphWatchSchema, MAX_EXPIRATION_MINUTES_RICH, type GraphWatchOptions } from './config.ts';
import { decryptContent, encryptionKey, type EncryptionKey } from './crypto.ts';
import { KV_NAMESPACE, syncFolder, type SyncDeps } from './sync.ts';

export { graphWatchSchema, type GraphWatchOptions } from './config.ts';

/** How the watcher reports subscription trouble (its events come late; the texts say so). */
export const WATCH_SUBSCRIPTION_CODES: SubscriptionCodes = {
  forbidden: 'MB_WATCH_GRAPH_FORBIDDEN',
  validation: 'MB_WATCH_GRAPH_VALIDATION_FAILED',
  limit: 'MB_WATCH_GRAPH_SUBSCRIPTION_LIMIT',
  failed: 'MB_WATCH_GRAPH_SUBSCRIBE_FAILED',
  clientState: 'MB_WATCH_GRAPH_CLIENTSTATE_MISMATCH',
  removed: 'MB_WATCH_GRAPH_SUBSCRIPTION_REMOVED',
  missed: 'MB_WATCH_GRAPH_MISSED',
};

export interface GraphWatcherDeps {
  listener: string;
  mailboxes: WatchedMailbox[];
  tokens: TokenProvider;
  options: GraphWatchOptions;
  ctx: WatcherContext;
  /** Extra CA certificates (PEM) for Graph (the contents of options.caFile). */
  ca?: string;
  /** The listener's connection's proxy settings. */
  proxy?: ProxySettings;
  /** The cloud's Graph host, when options.baseUrl is not set. */
  graphHost?: string;
  /** Scheduler period in ms (default 30 s); tests make it short or call `tick()`. */
  tickMs?: number;
}

export interface GraphWatcherStats {
  notifications: number;
  lifecycle: number;
  /** Rich items whose content was decrypted and used. */
  decrypted: number;
  /** Runs that used notification data only (no delta request). */
  hinted: number;
  /** Items for subscriptions this watcher does not (or no longer) hold. */
  unknown: number;
  /** Items whose clientState did not match. */
  rejected: number;
  rounds: number;
  published: number;
  duplicates: number;
  created: number;
  renewed: number;
}

export interface GraphWatcher extends Watcher {
  readonly kind: 'graph';
  stats: GraphWatcherStats;
  /** One scheduler pass (renewals and retries due by ctx.now()), awaiting the work it started. */
  tick(): Promise<void>;
  /** Resolves when no subscription work or delta round is running. */
  idle(): Promise<void>;
  /** Subscription id of a folder (tests and diagnostics). */
  subscriptionOf(mailbox: string, folder: string): { id: string; expires: number } | undefined;
}

interface Box {
  address: string;
  feeds: Feed[];
  state: WatchState;
  since: number;
  error?: { code: string; message: string };
}

/** One watched folder. Kept small: 15,000 mailboxes must fit in a few hundred MB. */
interface Feed {
  box: Box;
  folder: string;
  /** Its subscription (the shared machinery's state). */
  sub: Subscribed<Feed>;
  syncRun?: Promise<void>;
  again: boolean;
  /** A delta round is wanted (not only notification data). */
  needRound: boolean;
  /** Decrypted `created` resources waiting for the next run (rich notifications). */
  hints?: Array<Record<string, unknown>>;
  /** When the last delta round finished (ms). */
  lastRound: number;
  syncRetryAt: number;
  syncFailures: number;
  syncError?: MbError;
  synced: boolean;
}

/** Errors an admin must fix (the mailbox is `failed`, retried all the same). */
const ADMIN_CODES = new Set(['MB_WATCH_GRAPH_FORBIDDEN', 'MB_WATCH_GRAPH_VALIDATION_FAILED', 'MB_WATCH_GRAPH_SUBSCRIPTION_LIMIT']);

/** A graph group's watcher for one listener: Graph at the connection's cloud unless the group names a base URL. */
export const graphWatcherPlugin: WatcherPlugin<Extract<WatchGroupConfig, { kind: 'graph' }>> = (g, b) => {
  const ca = b.ca(g.graph.caFile);
  return createGraphWatcher({
    listener: b.listener,
    mailboxes: b.mailboxes,
    tokens: b.tokens('graph'),
    options: g.graph,
    ctx: b.ctx,
    proxy: b.proxy,
    ...(b.cloud ? { graphHost: b.cloud.graphHost } : {}),
    ...(ca ? { ca } : {}),
  });
};

export function createGraphWatcher(deps: GraphWatcherDeps): GraphWatcher {
  const { listener, ctx } = deps;
  const o = graphWatchSchema.parse(deps.options);
  if (!ctx.inbound) throw new MbError('MB_WATCH_GRAPH_NO_INBOUND', { listener });
  const expirationMinutes = o.includeResourceData ? Math.min(o.expirationMinutes, MAX_EXPIRATION_MINUTES_RICH) : o.expirationMinutes;
  const now = ctx.now;
  const log = ctx.log.child({ watcher: 'graph', listener });
  const routePath = `${o.path}/${listener}`;
  let warnedSeal = false;
  const seal = (v: string) => {
    if (ctx.seal) return ctx.seal(v);
    if (!warnedSeal) log.warn('graph watcher: no SecretBox given; clientStates are stored unsealed');
    warnedSeal = true;
    return v;
  };
  const reveal = (v: string) => (ctx.reveal ? ctx.reveal(v) : v);

  const stats: GraphWatcherStats = { notifications: 0, lifecycle: 0, decrypted: 0, hinted: 0, unknown: 0, rejected: 0, rounds: 0, published: 0, duplicates: 0, created: 0, renewed: 0 };
  const client = new GraphClient({
    baseUrl: o.baseUrl,
    graphHost: deps.graphHost,
    tokens: deps.tokens,
    ca: deps.ca,
    proxy: deps.proxy,
    perMailbox: o.requestsPerMailbox,
    immutableIds: o.immutableIds,
    throttleRetries: 5,
    secretSlot: `watch-graph:${listener}`,
    onThrottle: (mailbox, status, ms) => problem(mailbox, new MbError('MB_WATCH_GRAPH_THROTTLED', { status, mailbox, seconds: Math.ceil(ms / 1000) })),
  });
  const syncGate = new Semaphore(o.syncConcurrency);
  const sharedSync = ctx.gates?.sync ?? new Semaphore(Number.MAX_SAFE_INTEGER);
  const boxes: Box[] = [];
  const feeds: Feed[] = [];
  const work = new Set<Promise<unknown>>();
  let closed = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  let richKey: EncryptionKey | undefined;

  const subs = createSubscriptionManager<Feed>({
    client,
    kv: ctx.kv,
    namespace: KV_NAMESPACE,
    prefix: 's\t',
    inbound: ctx.inbound,
    ...(ctx.hub ? { hub: ctx.hub } : {}),
    path: routePath,
    changeTypes: o.changeTypes,
    expirationMinutes,
    renewBeforeMinutes: o.renewBeforeMinutes,
    lifecycleNotifications: o.lifecycleNotifications,
    retry: o.retry,
    setupConcurrency: o.setupConcurrency,
    ...(ctx.gates ? { sharedGate: ctx.gates.setup } : {}),
    codes: WATCH_SUBSCRIPTION_CODES,
    now,
    log,
    seal,
    reveal,
    rich: () => richKey && { certificate: richKey.certificate, id: richKey.id },
    stats,
    onNotification: (f, item) => {
      if (richKey && item.changeType === 'created' && item.encryptedContent !== undefined) void sync(f, rich(f, item.encryptedContent));
      else void sync(f);
    },
    onGap: (f) => void sync(f),
    onState: (f) => refresh(f.box),
    problem: (mailbox, err) => problem(mailbox, err),
  });

  for (const m of deps.mailboxes) {
    const box: Box = { address: m.address.toLowerCase(), feeds: [], state: 'starting', since: now() };
    for (const folder of m.folders.length ? m.folders : ['inbox']) {
      const f = { box, folder, again: false, needRound: true, lastRound: 0, syncRetryAt: 0, syncFailures: 0, synced: false } as Feed;
      f.sub = subs.add(box.address, folder, f);
      box.feeds.push(f);
      feeds.push(f);
    }
    boxes.push(box);
  }
  const feedOf = (mailbox: string, folder: string) => feeds.find((f) => f.box.address === mailbox.toLowerCase() && f.folder === folder);

  const syncDeps: SyncDeps = {
    client,
    kv: ctx.kv,
    publish: ctx.publish,
    now,
    pageSize: o.pageSize,
    changeTypes: o.changeTypes,
    problem: (mailbox, err) => problem(mailbox, err),
  };

  function problem(mailbox: string | undefined, err: MbError): void {
    log.warn({ code: err.code, mailbox }, err.message);
    try {
      ctx.problem?.(mailbox, err);
    } catch {
      // A reporting hook must not break the watcher.
    }
  }

  function backoffMs(failures: number): number {
    return Math.min(o.retry.initialSeconds * 1000 * 2 ** Math.max(0, failures - 1), o.retry.maxSeconds * 1000);
  }

  function track<T>(p: Promise<T>): Promise<T> {
    work.add(p);
    void p.finally(() => work.delete(p)).catch(() => undefined);
    return p;
  }

  function refresh(box: Box): void {
    if (closed) return;
    let state: WatchState = 'watching';
    let error: MbError | undefined;
    for (const f of box.feeds) {
      const admin = [f.sub.error, f.syncError].find((e) => e && ADMIN_CODES.has(e.code));
      if (admin) {
        state = 'failed';
        error = admin;
        break;
      }
      if (!f.sub.id || f.sub.error || f.syncError) {
        state = 'reconnecting';
        error ??= f.sub.error ?? f.syncError;
      } else if (!f.synced && state === 'watching') {
        state = 'catching-up';
      }
    }
    if (state === 'reconnecting' && !error && box.feeds.some((f) => !f.synced)) state = 'starting';
    if (state !== box.state) {
      box.state = state;
      box.since = now();
    }
    if (error) box.error = { code: error.code, message: error.message };
    else delete box.error;
  }

  // --- delta rounds ----------------------------------------------------------------------------------

  function sync(f: Feed, hint?: Record<string, unknown>): Promise<void> {
    if (closed) return Promise.resolve();
    if (!hint) f.needRound = true;
    else if ((f.hints ??= []).length < 100) f.hints.push(hint);
    else f.needRound = true; // a burst: one delta round is cheaper than many hints
    if (f.syncRun) {
      f.again = true;
      return f.syncRun;
    }
    const run = (async () => {
      do {
        f.again = false;
        const hints = f.hints;
        delete f.hints;
        const round = f.needRound || !hints || now() - f.lastRound > 3_600_000;
        f.needRound = false;
        await syncGate.with(() => sharedSync.with(async () => {
          if (closed) return;
          try {
            const r = await syncFolder(syncDeps, f.box.address, f.folder, round ? undefined : hints);
            if (round) f.lastRound = now();
            if (r.hinted) stats.hinted++;
            else stats.rounds++;
            stats.published += r.published;
            stats.duplicates += r.duplicates;
            f.synced = true;
            f.syncFailures = 0;
            f.syncRetryAt = 0;
            delete f.syncError;
          } catch (err) {
            if (closed) return;
            // Nothing was saved: the next run must read delta (which also covers the hints).
            f.needRound = true;
            const e = toMbError(err);
            f.syncFailures++;
            f.syncError = e;
            f.syncRetryAt = now() + backoffMs(f.syncFailures);
            problem(f.box.address, e);
          }
        }));
        refresh(f.box);
      } while (f.again && !closed);
    })().finally(() => {
      delete f.syncRun;
    });
    f.syncRun = run;
    return track(run);
  }

  // --- notifications ---------------------------------------------------------------------------------

  /** The decrypted resource of a rich item, or undefined (then a delta round) when it cannot be used. */
  function rich(f: Feed, encrypted: unknown): Record<string, unknown> | undefined {
    try {
      const resource = decryptContent(encrypted, richKey as EncryptionKey);
      stats.decrypted++;
      return resource;
    } catch (err) {
      problem(f.box.address, new MbError('MB_WATCH_GRAPH_RICH_INVALID', { mailbox: f.box.address, detail: (err as Error).message }));
      return undefined;
    }
  }

  function boxStatus(b: Box): MailboxStatus {
    const s: MailboxStatus = { mailbox: b.address, listener, state: b.state, since: new Date(b.since).toISOString() };
    if (b.error) s.error = b.error;
    return s;
  }

  // --- scheduler -------------------------------------------------------------------------------------

  function due(): Promise<unknown>[] {
    const t = now();
    const started = subs.due();
    for (const f of feeds) {
      // Without a subscription, its retries run the rounds.
      if (f.sub.id && !f.syncRun && f.syncRetryAt !== 0 && f.syncRetryAt <= t) started.push(sync(f));
    }
    return started;
  }

  return {
    kind: 'graph',
    listener,
    stats,
    async start() {
      if (closed) return;
      if (o.includeResourceData) richKey = await encryptionKey(ctx.kv, listener, seal, reveal, now());
      await Promise.all(feeds.map((f) => subs.setup(f.sub)));
      // Catch-up rounds the setups started.
      await Promise.all(feeds.map((f) => f.syncRun));
      for (const b of boxes) refresh(b);
      timer = setInterval(() => void Promise.all(due()).catch(() => undefined), deps.tickMs ?? 30_000);
      timer.unref?.();
    },
    async tick() {
      await Promise.all(due());
    },
    resync() {
      // A delta round per folder (coalesced with any running): what a lost notification told is found.
      for (const f of feeds) void sync(f);
    },
    async idle() {
      do {
        await subs.idle();
        await Promise.allSettled([...work]);
      } while (work.size > 0);
    },
    subscriptionOf(mailbox, folder) {
      const f = feedOf(mailbox, folder);
      return f?.sub.id ? { id: f.sub.id, expires: f.sub.expires } : undefined;
    },
    status(): MailboxStatus[] {
      return boxes.map(boxStatus);
    },
    summary(counts, max) {
      const out: MailboxStatus[] = [];
      for (const b of boxes) {
        counts[b.state] = (counts[b.state] ?? 0) + 1;
        if (b.state !== 'watching' && out.length < max) out.push(boxStatus(b));
      }
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      if (timer) clearInterval(timer);
      const stopping = subs.close();
      await client.close();
      await stopping;
      await Promise.allSettled([...work]);
      for (const b of boxes) {
        b.state = 'stopped';
        b.since = now();
      }
    },
  };
}
