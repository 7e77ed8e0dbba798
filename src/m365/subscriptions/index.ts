/**
 * Graph change-notification subscriptions, kept alive for a set of mailbox folders: the one place
 * that creates, renews and recovers them, for the Graph watcher (src/notify/watchers/graph) and the
 * connector's Graph source (src/connector/graph.ts) alike (microsoft-facts.md §4.1–4.4).
 *
 * Strategy
 * - One subscription per mailbox and folder (`users/{m}/mailFolders('{f}')/messages`), created with
 *   a random clientState (kept sealed in kv by the owner's SecretBox; only its SHA-256 is held in
 *   memory and compared with every notification item) and renewed `renewBeforeMinutes` before it
 *   expires. A restart reuses the stored subscription (renews it; 404 → a new one).
 * - The validation handshake and the notification routes are endpoint.ts on the owner's inbound
 *   listener (inbound.ts); an item whose subscription and clientState check out is handed to the
 *   owner's `onNotification` after the 202 went out.
 * - Lifecycle: reauthorizationRequired → POST …/reauthorize (failing that, PATCH renew);
 *   subscriptionRemoved → a new subscription; missed → `onGap`. Every new subscription (and every
 *   failed attempt that leaves a folder without one) also calls `onGap`: notifications may have been
 *   lost, and the owner reads the folder with delta. So a broken subscription degrades into polling
 *   at the retry back-off, never into silence.
 * - Failures (403 permission, validation of the public URL, the 1,000 limit, …) become the owner's
 *   MB codes (SubscriptionCodes) reported through `problem`, and are retried with exponential
 *   back-off by `due()`, which the owner calls from its one scheduler (no timer per folder: 15,000
 *   mailboxes cost no timers). Setup and renewals run at most `setupConcurrency` at once.
 *
 * Limits: the owner supplies the Graph client (its token, proxy, CA and per-mailbox limit), the
 * scheduler's period and what a "gap" means for it.
 */
import type { FastifyInstance } from 'fastify';
import { MbError, toMbError } from '../../errors/index.ts';
import type { Logger } from '../../log/index.ts';
import type { KeyValue } from '../../store/index.ts';
import { Semaphore } from '../../util/limits.ts';
import type { GraphClient } from '../graph.ts';
import { registerRoutes } from './endpoint.ts';
import type { RouteHub } from './hub.ts';
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
  type RecordPlace,
  type SubscriptionCodes,
} from './requests.ts';

export { createInbound, type Inbound } from './inbound.ts';
export { publicUrlField, listenSchema, DEFAULT_LISTEN, type ListenConfig } from './listen.ts';
export { createRouteHub, type RouteHub, type Handoff } from './hub.ts';
export { resourcePath, subscriptionKey, subscribeFailed, RICH_SELECT, type SubscriptionCodes, type SubscriptionRecord } from './requests.ts';

/** Counters an owner may show; the manager adds to them. */
export interface SubscriptionStats {
  /** Change notification items and lifecycle items received. */
  notifications: number;
  lifecycle: number;
  /** Items for subscriptions this owner does not (or no longer) hold. */
  unknown: number;
  /** Items whose clientState did not match. */
  rejected: number;
  created: number;
  renewed: number;
}

export function subscriptionStats(): SubscriptionStats {
  return { notifications: 0, lifecycle: 0, unknown: 0, rejected: 0, created: 0, renewed: 0 };
}

/** A subscribed folder as the owner sees it. */
export interface Subscribed<T> {
  readonly mailbox: string;
  readonly folder: string;
  /** The owner's object for this folder, handed back in every callback. */
  readonly data: T;
  /** The live subscription, if any. */
  readonly id: string | undefined;
  readonly expires: number;
  /** The last subscription failure, cleared by the next success. */
  readonly error: MbError | undefined;
}

export interface SubscriptionManagerOptions<T> {
  client: GraphClient;
  /** Where the records live in kv (the owner's namespace and key prefix). */
  kv: KeyValue;
  namespace: string;
  prefix: string;
  /** The inbound listener (routes are registered at once) and the path Graph calls on it. */
  inbound: { http: FastifyInstance; publicUrl: string };
  /** Several owners (nodes) share the path's routes: join the hub's instead of registering them (hub.ts). */
  hub?: RouteHub;
  path: string;
  changeTypes: readonly string[];
  expirationMinutes: number;
  renewBeforeMinutes: number;
  lifecycleNotifications: boolean;
  retry: { initialSeconds: number; maxSeconds: number };
  setupConcurrency: number;
  /** A limit shared with other owners in the process (the watch service's, see WatcherContext.gates). */
  sharedGate?: Semaphore;
  codes: SubscriptionCodes;
  /** Extra parameters for every error (e.g. the connector's name). */
  params?: Record<string, string>;
  now: () => number;
  log: Logger;
  /** Seal and reveal the clientState kept in kv (the SecretBox); without them it is kept in clear. */
  seal?: (plain: string) => string;
  reveal?: (sealed: string) => string;
  /** Rich notifications: the current encryption certificate (base64 DER) and its id. */
  rich?: () => { certificate: string; id: string } | undefined;
  stats?: SubscriptionStats;
  /** A change notification passed the checks; called after the 202 is on its way. Must not throw. */
  onNotification(data: T, item: Record<string, unknown>): void;
  /** The folder may hold changes no notification told about (new subscription, `missed`, a failed retry). */
  onGap(data: T): void;
  /** Subscription work on the folder finished (its state may have changed). */
  onState?(data: T): void;
  /** Every problem (the owner logs and shows it). */
  problem(mailbox: string, error: MbError): void;
}

export interface SubscriptionManager<T> {
  readonly notificationUrl: string;
  readonly stats: SubscriptionStats;
  /** Adds a folder (not subscribed until `setup`). */
  add(mailbox: string, folder: string, data: T): Subscribed<T>;
  /** First setup: reuse (renew) the stored subscription or create one; resolves when done (or failed). */
  setup(target: Subscribed<T>): Promise<void>;
  /** Starts the renewals and retries that are due by `now()`; returns the work started. */
  due(): Promise<unknown>[];
  /** Resolves when no subscription work is running. */
  idle(): Promise<void>;
  /** Stops: routes answer 503 (Graph retries), no new work starts. Subscriptions stay (reused at the next start). */
  close(): Promise<void>;
}

interface Target<T> {
  mailbox: string;
  folder: string;
  data: T;
  id: string | undefined;
  expires: number;
  error: MbError | undefined;
  digest?: Buffer;
  busy: boolean;
  /** Lifecycle work that arrived while busy. */
  next?: 'recreate' | 'reauthorize';
  retryAt: number;
  failures: number;
}

type Work = 'setup' | 'renew' | 'recreate' | 'reauthorize';

export function createSubscriptionManager<T>(o: SubscriptionManagerOptions<T>): SubscriptionManager<T> {
  const { client, now, codes } = o;
  const params = o.params ?? {};
  const place: RecordPlace = { kv: o.kv, namespace: o.namespace, prefix: o.prefix };
  const notificationUrl = `${o.inbound.publicUrl.replace(/\/+$/, '')}${o.path}`;
  const lifecycleUrl = o.lifecycleNotifications ? `${notificationUrl}/lifecycle` : undefined;
  const stats = o.stats ?? subscriptionStats();
  const gate = new Semaphore(o.setupConcurrency);
  const shared = o.sharedGate ?? new Semaphore(Number.MAX_SAFE_INTEGER);
  const targets: Target<T>[] = [];
  const bySub = new Map<string, Target<T>>();
  const work = new Set<Promise<unknown>>();
  let closed = false;
  let lastMismatchReport = 0;
  let warnedSeal = false;

  const seal = (v: string) => {
    if (o.seal) return o.seal(v);
    if (!warnedSeal) o.log.warn('graph subscriptions: no SecretBox given; clientStates are stored unsealed');
    warnedSeal = true;
    return v;
  };
  const reveal = (v: string) => (o.reveal ? o.reveal(v) : v);
  const backoffMs = (failures: number) => Math.min(o.retry.initialSeconds * 1000 * 2 ** Math.max(0, failures - 1), o.retry.maxSeconds * 1000);
  const where = (t: Target<T>) => ({ mailbox: t.mailbox, folder: t.folder, notificationUrl });

  function problem(mailbox: string, err: MbError): void {
    try {
      o.problem(mailbox, err);
    } catch {
      // A reporting hook must not break the subscriptions.
    }
  }

  function track<R>(p: Promise<R>): Promise<R> {
    work.add(p);
    void p.finally(() => work.delete(p)).catch(() => undefined);
    return p;
  }

  function adopt(t: Target<T>, id: string, expires: number, digest: Buffer): void {
    if (t.id && t.id !== id) bySub.delete(t.id);
    t.id = id;
    t.expires = expires;
    t.digest = digest;
    t.failures = 0;
    t.retryAt = 0;
    t.error = undefined;
    bySub.set(id, t);
  }

  async function forget(t: Target<T>): Promise<void> {
    if (t.id) bySub.delete(t.id);
    t.id = undefined;
    delete t.digest;
    t.expires = 0;
    await dropRecord(place, t.mailbox, t.folder);
  }

  function fail(t: Target<T>, err: MbError): void {
    t.error = err;
    t.retryAt = now() + backoffMs(t.failures);
    problem(t.mailbox, err);
  }

  async function create(t: Target<T>): Promise<boolean> {
    t.failures++;
    const seconds = Math.round(backoffMs(t.failures) / 1000);
    const rich = o.rich?.();
    const r = await createSubscription(client, {
      mailbox: t.mailbox,
      folder: t.folder,
      notificationUrl,
      ...(lifecycleUrl ? { lifecycleNotificationUrl: lifecycleUrl } : {}),
      changeTypes: o.changeTypes,
      expirationMinutes: o.expirationMinutes,
      now: now(),
      ...(rich ? { rich } : {}),
    });
    if (!('clientState' in r)) {
      fail(t, subscribeFailed('create', where(t), r, seconds, codes, params));
      return false;
    }
    await saveRecord(place, t.mailbox, t.folder, { id: r.id, expires: r.expires, clientState: seal(r.clientState), notificationUrl, ...(rich ? { certId: rich.id } : {}) });
    adopt(t, r.id, r.expires, clientStateDigest(r.clientState));
    stats.created++;
    // Debug, not info: a start with 15,000 mailboxes would write 15,000 lines.
    o.log.debug({ mailbox: t.mailbox, folder: t.folder, subscription: r.id, expires: new Date(r.expires).toISOString() }, 'graph subscriptions: subscribed');
    return true;
  }

  async function renew(t: Target<T>): Promise<boolean> {
    const id = t.id;
    if (!id) return create(t);
    const r = await renewSubscription(client, t.mailbox, id, now(), o.expirationMinutes);
    if (r.kind === 'ok') {
      const rec = await loadRecord(place, t.mailbox, t.folder);
      if (rec && rec.id === id) await saveRecord(place, t.mailbox, t.folder, { ...rec, expires: r.expires });
      t.expires = r.expires;
      t.failures = 0;
      t.retryAt = 0;
      t.error = undefined;
      stats.renewed++;
      return true;
    }
    if (r.kind === 'gone' || t.expires <= now()) {
      // Graph no longer has it (or it ran out while renewal failed): a new one, and a round for the gap.
      await forget(t);
      return create(t);
    }
    t.failures++;
    fail(t, subscribeFailed('renew', where(t), r.reply, Math.round(backoffMs(t.failures) / 1000), codes, params));
    return false;
  }

  async function setup(t: Target<T>): Promise<void> {
    const rec = await loadRecord(place, t.mailbox, t.folder);
    const rich = o.rich?.();
    // Reusable: same URL, not expired, and made with the current key (or none, as configured now).
    if (rec && rec.notificationUrl === notificationUrl && rec.expires > now() && rec.certId === rich?.id) {
      let digest: Buffer | undefined;
      try {
        digest = clientStateDigest(reveal(rec.clientState));
      } catch (err) {
        o.log.warn({ mailbox: t.mailbox, code: toMbError(err).code }, 'graph subscriptions: stored clientState unreadable; subscribing anew');
      }
      if (digest) {
        adopt(t, rec.id, rec.expires, digest);
        await renew(t);
        return;
      }
    }
    if (rec) {
      // Made for another URL (publicUrl changed), another key, or expired: replace it.
      if (rec.expires > now()) await deleteSubscription(client, t.mailbox, rec.id).catch(() => false);
      await dropRecord(place, t.mailbox, t.folder);
    }
    await create(t);
  }

  /** Runs subscription work on a folder, one at a time per folder; lifecycle work arriving meanwhile follows. */
  function run(t: Target<T>, kind: Work): Promise<void> {
    if (t.busy) {
      if (kind === 'recreate' || kind === 'reauthorize') t.next = t.next === 'recreate' ? 'recreate' : kind;
      return Promise.resolve();
    }
    t.busy = true;
    return track(
      gate.with(() => shared.with(async () => {
        let k: Work | undefined = kind;
        try {
          while (k && !closed) {
            const had = t.id;
            if (k === 'setup') await setup(t);
            else if (k === 'renew') await renew(t);
            else if (k === 'recreate') {
              const old = t.id;
              await forget(t);
              if (old) await deleteSubscription(client, t.mailbox, old).catch(() => false);
              await create(t);
            } else {
              const r = t.id ? await reauthorizeSubscription(client, t.mailbox, t.id) : 'gone';
              if (r === 'gone') {
                await forget(t);
                await create(t);
              } else if (r === 'failed') await renew(t);
            }
            // A new subscription (or none) means a gap the owner covers by reading the folder.
            // Without permission that read would fail the same way, so it waits for the next retry.
            const gap = k === 'setup' || k === 'recreate' || t.id !== had || !t.id;
            if (gap && t.error?.code !== codes.forbidden && !closed) o.onGap(t.data);
            k = t.next;
            delete t.next;
          }
        } catch (err) {
          if (!closed) {
            t.failures++;
            fail(t, toMbError(err));
          }
        } finally {
          t.busy = false;
          if (!closed) o.onState?.(t.data);
        }
      })),
    );
  }

  function accept(item: Record<string, unknown>): void {
    const id = typeof item.subscriptionId === 'string' ? item.subscriptionId : '';
    const lifecycle = typeof item.lifecycleEvent === 'string' ? item.lifecycleEvent : undefined;
    if (lifecycle) stats.lifecycle++;
    else stats.notifications++;
    const t = bySub.get(id);
    if (!t) {
      // A subscription of an earlier setup (replaced, or another owner's): Graph stops on expiry.
      stats.unknown++;
      return;
    }
    if (!clientStateMatches(item.clientState, t.digest)) {
      stats.rejected++;
      // Reported at most once a minute: a flood of forged posts must not flood the log.
      if (now() - lastMismatchReport >= 60_000) {
        lastMismatchReport = now();
        problem(t.mailbox, new MbError(codes.clientState, { ...params, subscriptionId: id, mailbox: t.mailbox }));
      }
      return;
    }
    // Lifecycle events are rare and each means something to an admin: a line for each. Routine
    // reauthorization is info; a removed subscription or missed notifications are problems.
    const at = { mailbox: t.mailbox, folder: t.folder, subscription: id, lifecycleEvent: lifecycle };
    if (lifecycle === 'reauthorizationRequired') o.log.info(at, 'graph subscriptions: Graph asks for reauthorization of the subscription; reauthorizing');
    else if (lifecycle === 'subscriptionRemoved') problem(t.mailbox, new MbError(codes.removed, { ...params, mailbox: t.mailbox, folder: t.folder, subscriptionId: id }));
    else if (lifecycle === 'missed') problem(t.mailbox, new MbError(codes.missed, { ...params, mailbox: t.mailbox, folder: t.folder, subscriptionId: id }));
    else if (lifecycle) o.log.info(at, 'graph subscriptions: lifecycle event of a kind mailbridge does not act on; reading the folder');
    // Work starts after the 202 is on its way (setImmediate runs after the reply is written).
    setImmediate(() => {
      if (closed) return;
      if (lifecycle === 'subscriptionRemoved') void run(t, 'recreate');
      else if (lifecycle === 'reauthorizationRequired') void run(t, 'reauthorize');
      else if (lifecycle) o.onGap(t.data);
      else o.onNotification(t.data, item);
    });
  }

  const leave = o.hub ? o.hub.attach(o.path, { knows: (id) => !closed && bySub.has(id), accept }) : (registerRoutes(o.inbound.http, o.path, { accept, closed: () => closed }), () => {});

  return {
    notificationUrl,
    stats,
    add(mailbox, folder, data) {
      const t: Target<T> = { mailbox, folder, data, id: undefined, expires: 0, error: undefined, busy: false, retryAt: 0, failures: 0 };
      targets.push(t);
      return t;
    },
    setup: (target) => run(target as Target<T>, 'setup'),
    due() {
      const t0 = now();
      const renewAt = o.renewBeforeMinutes * 60_000;
      const started: Promise<unknown>[] = [];
      if (closed) return started;
      for (const t of targets) {
        if (t.busy || (t.retryAt !== 0 && t.retryAt > t0)) continue;
        if (t.id && t.expires - renewAt <= t0) started.push(run(t, 'renew'));
        else if (!t.id && t.retryAt !== 0) started.push(run(t, 'setup'));
      }
      return started;
    },
    async idle() {
      while (work.size > 0) await Promise.allSettled([...work]);
    },
    async close() {
      closed = true;
      leave();
      await Promise.allSettled([...work]);
    },
  };
}
