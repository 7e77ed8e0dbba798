/**
 * The Graph watcher: new mail, read-state changes and deletions in Exchange Online mailboxes from
 * Microsoft Graph change notifications plus delta (microsoft-facts.md §4.1–4.6, §4.8), for one
 * listener of a `graph` watch pool.
 *
 * Strategy
 * - One subscription per mailbox and folder (`users/{m}/mailFolders('{f}')/messages`), created
 *   with a random clientState (kept sealed in kv; only its SHA-256 is held in memory and compared
 *   with every notification item) and renewed `renewBeforeMinutes` before it expires. A restart
 *   reuses the stored subscription (renews it; 404 → a new one) and catches up with delta.
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
import type { ProxySettings } from '../../../net/proxy.ts';
import { Semaphore } from '../../../util/limits.ts';
import { graphWatchSchema, MAX_EXPIRATION_MINUTES_RICH, type GraphWatchOptions } from './config.ts';
import { decryptContent, encryptionKey, type EncryptionKey } from './crypto.ts';
import { registerRoutes } from './endpoint.ts';
import {
  clientStateDigest,
  clientStateMatches,
  createSubscription,
  deleteSubscription,
  dropRecord,
  loadRecord,
  reauthorizeSubscription,
  renewSubscription,
  saveRecord,
  subscribeFailed,
} from './subscriptions.ts';
import { syncFolder, type SyncDeps } from './sync.ts';

export { graphWatchSchema, type GraphWatchOptions } from './config.ts';

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
  subId?: string;
  expires: number;
  digest?: Buffer;
  subBusy: boolean;
  /** Lifecycle work that arrived while subBusy. */
  subNext?: 'recreate' | 'reauthorize';
  subRetryAt: number;
  subFailures: number;
  subError?: MbError;
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
  const notificationUrl = `${ctx.inbound.publicUrl.replace(/\/+$/, '')}${routePath}`;
  const lifecycleUrl = o.lifecycleNotifications ? `${notificationUrl}/lifecycle` : undefined;
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
  const setupGate = new Semaphore(o.setupConcurrency);
  const syncGate = new Semaphore(o.syncConcurrency);
  const boxes: Box[] = [];
  const feeds: Feed[] = [];
  const bySub = new Map<string, Feed>();
  const work = new Set<Promise<unknown>>();
  let closed = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  let lastMismatchReport = 0;
  let richKey: EncryptionKey | undefined;

  for (const m of deps.mailboxes) {
    const box: Box = { address: m.address.toLowerCase(), feeds: [], state: 'starting', since: now() };
    for (const folder of m.folders.length ? m.folders : ['inbox']) {
      const f: Feed = { box, folder, expires: 0, subBusy: false, subRetryAt: 0, subFailures: 0, again: false, needRound: true, lastRound: 0, syncRetryAt: 0, syncFailures: 0, synced: false };
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
      const admin = [f.subError, f.syncError].find((e) => e && ADMIN_CODES.has(e.code));
      if (admin) {
        state = 'failed';
        error = admin;
        break;
      }
      if (!f.subId || f.subError || f.syncError) {
        state = 'reconnecting';
        error ??= f.subError ?? f.syncError;
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

  // --- subscriptions ---------------------------------------------------------------------------------

  function adopt(f: Feed, id: string, expires: number, digest: Buffer): void {
    if (f.subId && f.subId !== id) bySub.delete(f.subId);
    f.subId = id;
    f.expires = expires;
    f.digest = digest;
    f.subFailures = 0;
    f.subRetryAt = 0;
    delete f.subError;
    bySub.set(id, f);
  }

  function forget(f: Feed): void {
    if (f.subId) bySub.delete(f.subId);
    delete f.subId;
    delete f.digest;
    f.expires = 0;
  }

  function failSub(f: Feed, err: MbError): void {
    f.subError = err;
    f.subRetryAt = now() + backoffMs(f.subFailures);
    problem(f.box.address, err);
  }

  async function create(f: Feed): Promise<boolean> {
    const mailbox = f.box.address;
    f.subFailures++;
    const seconds = Math.round(backoffMs(f.subFailures) / 1000);
    const r = await createSubscription(client, {
      mailbox,
      folder: f.folder,
      notificationUrl,
      ...(lifecycleUrl ? { lifecycleNotificationUrl: lifecycleUrl } : {}),
      changeTypes: o.changeTypes,
      expirationMinutes,
      now: now(),
      ...(richKey ? { rich: { certificate: richKey.certificate, id: richKey.id } } : {}),
    });
    if (!('clientState' in r)) {
      failSub(f, subscribeFailed('create', { mailbox, folder: f.folder, notificationUrl }, r, seconds));
      return false;
    }
    await saveRecord(ctx.kv, mailbox, f.folder, { id: r.id, expires: r.expires, clientState: seal(r.clientState), notificationUrl, ...(richKey ? { certId: richKey.id } : {}) });
    adopt(f, r.id, r.expires, clientStateDigest(r.clientState));
    stats.created++;
    // Debug, not info: a start with 15,000 mailboxes would write 15,000 lines.
    log.debug({ mailbox, folder: f.folder, subscription: r.id, expires: new Date(r.expires).toISOString() }, 'graph watcher: subscribed');
    return true;
  }

  async function renew(f: Feed): Promise<boolean> {
    const id = f.subId;
    if (!id) return create(f);
    const r = await renewSubscription(client, f.box.address, id, now(), expirationMinutes);
    if (r.kind === 'ok') {
      const rec = await loadRecord(ctx.kv, f.box.address, f.folder);
      if (rec && rec.id === id) await saveRecord(ctx.kv, f.box.address, f.folder, { ...rec, expires: r.expires });
      f.expires = r.expires;
      f.subFailures = 0;
      f.subRetryAt = 0;
      delete f.subError;
      stats.renewed++;
      return true;
    }
    if (r.kind === 'gone' || f.expires <= now()) {
      // Graph no longer has it (or it ran out while renewal failed): a new one, and a round for the gap.
      forget(f);
      await dropRecord(ctx.kv, f.box.address, f.folder);
      return create(f);
    }
    f.subFailures++;
    failSub(f, subscribeFailed('renew', { mailbox: f.box.address, folder: f.folder, notificationUrl }, r.reply, Math.round(backoffMs(f.subFailures) / 1000)));
    return false;
  }

  /** First setup of a folder: reuse (renew) the stored subscription or create one, then catch up. */
  async function setup(f: Feed): Promise<void> {
    const mailbox = f.box.address;
    const rec = await loadRecord(ctx.kv, mailbox, f.folder);
    // Reusable: same URL, not expired, and made with the current key (or none, as configured now).
    if (rec && rec.notificationUrl === notificationUrl && rec.expires > now() && rec.certId === richKey?.id) {
      let digest: Buffer | undefined;
      try {
        digest = clientStateDigest(reveal(rec.clientState));
      } catch (err) {
        log.warn({ mailbox, code: toMbError(err).code }, 'graph watcher: stored clientState unreadable; subscribing anew');
      }
      if (digest) {
        adopt(f, rec.id, rec.expires, digest);
        await renew(f);
        return;
      }
    }
    if (rec) {
      // Made for another URL (publicUrl changed), another key, or expired: replace it.
      if (rec.expires > now()) await deleteSubscription(client, mailbox, rec.id).catch(() => false);
      await dropRecord(ctx.kv, mailbox, f.folder);
    }
    await create(f);
  }

  /** Runs subscription work on a folder, one at a time per folder; a catch-up round follows when asked. */
  function subWork(f: Feed, kind: 'setup' | 'renew' | 'recreate' | 'reauthorize'): Promise<void> {
    if (f.subBusy) {
      if (kind === 'recreate' || kind === 'reauthorize') f.subNext = f.subNext === 'recreate' ? 'recreate' : kind;
      return Promise.resolve();
    }
    f.subBusy = true;
    return track(
      setupGate.with(async () => {
        let k: typeof kind | undefined = kind;
        try {
          while (k && !closed) {
            const hadSub = f.subId;
            if (k === 'setup') await setup(f);
            else if (k === 'renew') await renew(f);
            else if (k === 'recreate') {
              const old = f.subId;
              forget(f);
              await dropRecord(ctx.kv, f.box.address, f.folder);
              if (old) await deleteSubscription(client, f.box.address, old).catch(() => false);
              await create(f);
            } else {
              const id = f.subId;
              const r = id ? await reauthorizeSubscription(client, f.box.address, id) : 'gone';
              if (r === 'gone') {
                forget(f);
                await dropRecord(ctx.kv, f.box.address, f.folder);
                await create(f);
              } else if (r === 'failed') await renew(f);
            }
            // A new subscription (or none) means a gap: a delta round covers it. Without permission
            // the round would fail the same way, so it waits for the next retry.
            const gap = k === 'setup' || k === 'recreate' || f.subId !== hadSub || !f.subId;
            if (gap && f.subError?.code !== 'MB_WATCH_GRAPH_FORBIDDEN') void sync(f);
            k = f.subNext;
            delete f.subNext;
          }
        } catch (err) {
          const e = toMbError(err);
          if (!closed) {
            f.subFailures++;
            failSub(f, e);
          }
        } finally {
          f.subBusy = false;
          refresh(f.box);
        }
      }),
    );
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
        await syncGate.with(async () => {
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
        });
        refresh(f.box);
      } while (f.again && !closed);
    })().finally(() => {
      delete f.syncRun;
    });
    f.syncRun = run;
    return track(run);
  }

  // --- notifications ---------------------------------------------------------------------------------

  function accept(item: Record<string, unknown>): void {
    const id = typeof item.subscriptionId === 'string' ? item.subscriptionId : '';
    const lifecycle = typeof item.lifecycleEvent === 'string' ? item.lifecycleEvent : undefined;
    if (lifecycle) stats.lifecycle++;
    else stats.notifications++;
    const f = bySub.get(id);
    if (!f) {
      // A subscription of an earlier setup (replaced, or another listener's): Graph stops on expiry.
      stats.unknown++;
      return;
    }
    if (!clientStateMatches(item.clientState, f.digest)) {
      stats.rejected++;
      // Reported at most once a minute: a flood of forged posts must not flood the log.
      if (now() - lastMismatchReport >= 60_000) {
        lastMismatchReport = now();
        problem(f.box.address, new MbError('MB_WATCH_GRAPH_CLIENTSTATE_MISMATCH', { subscriptionId: id, mailbox: f.box.address }));
      }
      return;
    }
    // Lifecycle events are rare and each means something to an admin: a line for each. Routine
    // reauthorization is info; a removed subscription or missed notifications are problems.
    if (lifecycle === 'reauthorizationRequired') {
      log.info({ mailbox: f.box.address, folder: f.folder, subscription: id, lifecycleEvent: lifecycle }, 'graph watcher: Graph asks for reauthorization of the subscription; reauthorizing');
    } else if (lifecycle === 'subscriptionRemoved') {
      problem(f.box.address, new MbError('MB_WATCH_GRAPH_SUBSCRIPTION_REMOVED', { mailbox: f.box.address, folder: f.folder, subscriptionId: id }));
    } else if (lifecycle === 'missed') {
      problem(f.box.address, new MbError('MB_WATCH_GRAPH_MISSED', { mailbox: f.box.address, folder: f.folder, subscriptionId: id }));
    } else if (lifecycle) {
      log.info({ mailbox: f.box.address, subscription: id, lifecycleEvent: lifecycle }, 'graph watcher: lifecycle event of a kind mailbridge does not act on');
    }
    // Work starts after the 202 is on its way (setImmediate runs after the reply is written).
    setImmediate(() => {
      if (closed) return;
      if (lifecycle === 'subscriptionRemoved') void subWork(f, 'recreate');
      else if (lifecycle === 'reauthorizationRequired') void subWork(f, 'reauthorize');
      else if (richKey && item.changeType === 'created' && item.encryptedContent !== undefined) void sync(f, rich(f, item.encryptedContent));
      else void sync(f); // a change, or `missed`
    });
  }

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

  registerRoutes(ctx.inbound.http, routePath, { accept, closed: () => closed });

  // --- scheduler -------------------------------------------------------------------------------------

  function due(): Promise<unknown>[] {
    const t = now();
    const renewAt = o.renewBeforeMinutes * 60_000;
    const started: Promise<unknown>[] = [];
    for (const f of feeds) {
      if (!f.subBusy && (f.subRetryAt === 0 || f.subRetryAt <= t)) {
        if (f.subId && f.expires - renewAt <= t) started.push(subWork(f, 'renew'));
        else if (!f.subId && f.subRetryAt !== 0) started.push(subWork(f, 'setup'));
      }
      // Without a subscription, its retries run the rounds.
      if (f.subId && !f.syncRun && f.syncRetryAt !== 0 && f.syncRetryAt <= t) started.push(sync(f));
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
      await Promise.all(feeds.map((f) => subWork(f, 'setup')));
      // Catch-up rounds the setups started.
      await Promise.all(feeds.map((f) => f.syncRun));
      for (const b of boxes) refresh(b);
      timer = setInterval(() => void Promise.all(due()).catch(() => undefined), deps.tickMs ?? 30_000);
      timer.unref?.();
    },
    async tick() {
      await Promise.all(due());
    },
    async idle() {
      while (work.size > 0) await Promise.allSettled([...work]);
    },
    subscriptionOf(mailbox, folder) {
      const f = feedOf(mailbox, folder);
      return f?.subId ? { id: f.subId, expires: f.expires } : undefined;
    },
    status(): MailboxStatus[] {
      return boxes.map((b) => {
        const s: MailboxStatus = { mailbox: b.address, listener, state: b.state, since: new Date(b.since).toISOString() };
        if (b.error) s.error = b.error;
        return s;
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      if (timer) clearInterval(timer);
      await client.close();
      await Promise.allSettled([...work]);
      for (const b of boxes) {
        b.state = 'stopped';
        b.since = now();
      }
    },
  };
}
