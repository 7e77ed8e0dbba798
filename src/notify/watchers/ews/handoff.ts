/**
 * EWS push on several nodes (store on PostgreSQL). Exchange POSTs SendNotification to the URL given
 * when subscribing; behind the load balancer that request reaches any node, while the subscription
 * (its watermark, its mailbox's shard) belongs to the node holding the shard's lease. This hub runs
 * on every node: it answers every push of every listener of the node's EWS push groups, and hands
 * each to the owner through the store's parcels (src/store/signals.ts).
 *
 * Callback URL: <publicUrl>/notify/ews/<listener>/<token>/<mailbox key>/<generation>.
 * - The token is the listener's, one for all nodes (kv `push-token:<listener>`, created once with
 *   kv.add, sealed when the SecretBox is available): Exchange push has no authentication of its own.
 * - The mailbox key (a hash of the address, no address in a balancer's log) says whose push it is,
 *   so the receiving node needs no table of subscription ids.
 * - The generation `<epoch>.<n>` orders the subscriptions of a mailbox: the epoch of the shard's
 *   lease (it grows with every change of hands), then a counter of the holder. The owner records
 *   the generation it subscribed with in `push:<mailbox>`, after Subscribe answered.
 *
 * Answer: a push of an older generation than the recorded one comes from a subscription left
 * behind (the shard moved, or its holder resubscribed) and is answered Unsubscribe, which ends it
 * at Exchange; so is a push for a mailbox no longer in the listener. Any other push, including one
 * of a newer generation than recorded (Exchange may call before the subscriber has recorded it),
 * is stored as one parcel (the notifications with their generation) and answered OK only once the
 * parcel is committed; a push that cannot be stored (the database is away) is answered HTTP 500,
 * and Exchange sends the same events again after 30 s, 1, 2, 4, 8, 16 minutes (facts §5.3).
 *
 * Taking parcels: the owner of a mailbox reads all of the mailbox's parcels in the order posted
 * when a signal names it, when it takes the shard over (start), and when the sweep (every
 * `sweepMs`, default 5 s) finds parcels waiting, and removes each only after its events were
 * published. So a lost signal delays a parcel and a dead owner leaves it to the next one; nothing
 * answered OK is lost. A parcel may be handled twice (an owner dying between publishing and
 * removing it, two holders for a moment during a takeover): events carry stable ids and the store
 * keeps each once. A parcel of an older generation is handled too (its events are the mailbox's),
 * but only the current generation's watermark is saved.
 *
 * Parcels nobody will take are pruned by the sweep (every 10 minutes by the hub's clock; every node
 * does it, deleting twice costs nothing): a parcel of a mailbox no listener has any more (it left
 * the configuration) once it is an hour old, which leaves a configuration change time to reach
 * every node; and any parcel nobody took for 3 days (PARCEL_MAX_AGE_MS). A parcel is normally
 * taken within seconds, and Exchange gives up on a push after 31 minutes of retries (facts §5.3):
 * one still waiting after days belongs to a mailbox no node manages to watch, and keeping it would
 * only grow the table. Its events are dropped with a warning. Ages compare the posting node's
 * clock with this node's: minutes of skew do not matter against hours and days.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { toMbError } from '../../../errors/index.ts';
import type { Logger } from '../../../log/index.ts';
import { registerSecret } from '../../../log/redact.ts';
import { parseSendNotification, sendNotificationResult, type EwsNotification } from '../../../m365/ews/soap.ts';
import type { KeyValue } from '../../../store/index.ts';
import type { Parcels, Signals } from '../../../store/signals.ts';
import { KV_NAMESPACE } from './mailbox.ts';
import { routePath } from './push.ts';

/** The signal channel and parcel channel of EWS pushes handed to the owner of their mailbox. */
export const EWS_PUSH_CHANNEL = 'mailbridge_ews_push';
const SWEEP_MS = 5_000;
/** A parcel nobody took for this long is removed, whatever its mailbox (see above). */
export const PARCEL_MAX_AGE_MS = 3 * 86_400_000;
/** A parcel of a mailbox no listener has is removed once this old (see above). */
export const ORPHAN_PARCEL_AFTER_MS = 3_600_000;
const PRUNE_EVERY_MS = 600_000;

/** What a parcel holds: one push request's notifications and the generation its URL named. */
export interface HandedPush {
  gen: string;
  notes: EwsNotification[];
}

/** A shard's push watcher on this node. */
export interface PushOwner {
  /** Whether it watches the mailbox. */
  has(address: string): boolean;
  /** Reads and handles the mailbox's parcels (in the background, one run at a time). */
  drain(address: string): void;
}

export interface EwsPushHub {
  /** Registers a listener's route and loads its token; before the inbound listener listens. */
  prepare(listener: string, mailboxes: readonly string[]): Promise<void>;
  /** A shard's watcher joins; returns the function that leaves. */
  attach(listener: string, owner: PushOwner): () => void;
  callbackUrl(listener: string, address: string, gen: string): string;
  /** The callback URL without token and mailbox (for messages). */
  publicRoute(listener: string): string;
  /** The oldest parcels of a mailbox. */
  parcels(listener: string, address: string, limit: number): Promise<Array<{ id: number; push: HandedPush }>>;
  remove(ids: readonly number[]): Promise<void>;
  /** The mailboxes of a listener with parcels waiting. */
  waiting(listener: string): Promise<string[]>;
  /**
   * Removes the parcels nobody will take (see above): `orphaned` those of a mailbox no listener
   * has, `expired` those nobody took for PARCEL_MAX_AGE_MS. The sweep calls it every 10 minutes.
   */
  prune(): Promise<{ orphaned: number; expired: number }>;
  /** Listens on the channel and starts the sweep. */
  start(): Promise<void>;
  close(): void;
  /**
   * Pushes answered here: stored as parcels (`posted`), of those for a mailbox no watcher here held
   * (`forwarded`), answered Unsubscribe, refused (HTTP 500); parcels handled by owners here, and
   * pruned here (nobody would take them).
   */
  readonly stats: { posted: number; forwarded: number; unsubscribed: number; failed: number; handled: number; pruned: number };
}

export interface EwsPushHubOptions {
  http: FastifyInstance;
  publicUrl: () => string;
  kv: KeyValue;
  signals: Pick<Signals, 'subscribe'> & Parcels;
  log: Logger;
  now: () => number;
  seal?: (plain: string) => string;
  reveal?: (sealed: string) => string;
  sweepMs?: number;
}

/** A generation `<epoch>.<n>` as two numbers (unreadable: the oldest). */
function generation(gen: string | undefined): [number, number] {
  const m = /^(\d{1,15})\.(\d{1,15})$/.exec(gen ?? '');
  return m ? [Number(m[1]), Number(m[2])] : [-1, -1];
}

export function olderGeneration(a: string, b: string): boolean {
  const [x, y] = [generation(a), generation(b)];
  return x[0] < y[0] || (x[0] === y[0] && x[1] < y[1]);
}

/** The mailbox's segment of the callback URL. */
export function mailboxKey(address: string): string {
  return createHash('sha256').update(address.toLowerCase()).digest('base64url').slice(0, 16);
}

const parcelKey = (listener: string, address: string) => `${listener}\n${address}`;

export function createEwsPushHub(o: EwsPushHubOptions): EwsPushHub {
  interface Listener {
    route: string;
    token?: Buffer;
    /** Mailbox key → address. */
    boxes: Map<string, string>;
    owners: Set<PushOwner>;
  }
  const listeners = new Map<string, Listener>();
  const stats = { posted: 0, forwarded: 0, unsubscribed: 0, failed: 0, handled: 0, pruned: 0 };
  let stop: (() => void) | undefined;
  let sweep: ReturnType<typeof setInterval> | undefined;
  let sweeping = false;
  let prunedAt: number | undefined;

  const ownerOf = (listener: string, address: string): PushOwner | undefined => {
    for (const owner of listeners.get(listener)?.owners ?? []) if (owner.has(address)) return owner;
    return undefined;
  };
  const nudge = (key: string) => {
    const at = key.indexOf('\n');
    if (at > 0) ownerOf(key.slice(0, at), key.slice(at + 1))?.drain(key.slice(at + 1));
  };
  const xml = (status: 'OK' | 'Unsubscribe') => ({ status: 200, body: sendNotificationResult(status) });

  /** Parcel keys of mailboxes no listener of this configuration has (a listener removed, or the mailbox left it). */
  const orphans = (keys: readonly string[]) => {
    const addresses = new Map<string, Set<string>>();
    return keys.filter((k) => {
      const at = k.indexOf('\n');
      const listener = k.slice(0, at);
      const entry = listeners.get(listener);
      if (!entry) return true;
      let set = addresses.get(listener);
      if (!set) addresses.set(listener, (set = new Set(entry.boxes.values())));
      return !set.has(k.slice(at + 1));
    });
  };

  async function prune(): Promise<{ orphaned: number; expired: number }> {
    const now = o.now();
    const expired = await o.signals.prune(EWS_PUSH_CHANNEL, now - PARCEL_MAX_AGE_MS);
    const orphaned = await o.signals.prune(EWS_PUSH_CHANNEL, now - ORPHAN_PARCEL_AFTER_MS, orphans(await o.signals.waiting(EWS_PUSH_CHANNEL)));
    stats.pruned += expired + orphaned;
    if (expired > 0) o.log.warn({ parcels: expired, days: PARCEL_MAX_AGE_MS / 86_400_000 }, 'ews push: removed notifications nobody took for days; their events are lost');
    if (orphaned > 0) o.log.info({ parcels: orphaned }, 'ews push: removed notifications of mailboxes no listener watches any more');
    return { orphaned, expired };
  }

  /** `to`: the mailbox and generation of the URL; none for a URL of a single node's or of a mailbox gone from the listener. */
  async function onPush(listener: string, to: { address: string; gen: string } | undefined, body: string): Promise<{ status: number; body: string }> {
    let notes: EwsNotification[];
    try {
      notes = parseSendNotification(body);
    } catch (err) {
      o.log.warn({ err: toMbError(err).message, listener }, 'ews push: unreadable SendNotification');
      return { status: 400, body: '' };
    }
    // Made by a single node (the owner has subscribed anew since), or the mailbox left the listener.
    if (!to) {
      stats.unsubscribed++;
      return xml('Unsubscribe');
    }
    const { address, gen } = to;
    try {
      const saved = await o.kv.get(KV_NAMESPACE, `push:${address}`);
      const recorded = saved ? (JSON.parse(saved) as { gen?: string }).gen : undefined;
      if (recorded && olderGeneration(gen, recorded)) {
        stats.unsubscribed++;
        return xml('Unsubscribe');
      }
      await o.signals.post(EWS_PUSH_CHANNEL, parcelKey(listener, address), JSON.stringify({ gen, notes } satisfies HandedPush), o.now());
    } catch (err) {
      // Not stored: not OK either. Exchange sends the same events again (from 30 s on).
      stats.failed++;
      o.log.warn({ err: toMbError(err).message, listener }, 'ews push: the notification could not be handed over; Exchange sends it again');
      return { status: 500, body: '' };
    }
    stats.posted++;
    if (!ownerOf(listener, address)) stats.forwarded++;
    return xml('OK');
  }

  return {
    stats,
    async prepare(listener, mailboxes) {
      if (listeners.has(listener)) return;
      const entry: Listener = { route: `/notify/ews/${routePath(listener)}`, boxes: new Map(mailboxes.map((a) => [mailboxKey(a), a.toLowerCase()])), owners: new Set() };
      listeners.set(listener, entry);
      const made = randomBytes(24).toString('base64url');
      const stored = await o.kv.add(KV_NAMESPACE, `push-token:${listener}`, o.seal ? `sealed:${o.seal(made)}` : made);
      const token = o.reveal && stored.startsWith('sealed:') ? o.reveal(stored.slice(7)) : stored;
      registerSecret(token);
      entry.token = Buffer.from(token);
      void o.http.register(async (scope) => {
        scope.addContentTypeParser(['text/xml', 'application/soap+xml'], { parseAs: 'string', bodyLimit: 4 * 1024 * 1024 }, (_req, body, done) => done(null, body));
        const handle = async (req: FastifyRequest, reply: FastifyReply) => {
          const p = req.params as { token?: string; box?: string; gen?: string };
          const given = Buffer.from(String(p.token ?? ''));
          if (!entry.token || given.length !== entry.token.length || !timingSafeEqual(given, entry.token)) return reply.code(404).send();
          const address = p.box === undefined ? undefined : entry.boxes.get(p.box);
          const { status, body } = await onPush(listener, address && p.gen ? { address, gen: p.gen } : undefined, String(req.body ?? ''));
          return reply.code(status).header('content-type', 'text/xml; charset=utf-8').send(body);
        };
        scope.post(`${entry.route}/:token`, handle);
        scope.post(`${entry.route}/:token/:box/:gen`, handle);
      });
    },
    attach(listener, owner) {
      const entry = listeners.get(listener);
      if (!entry) throw new Error(`ews push hub: ${listener} was not prepared before the listener started`);
      entry.owners.add(owner);
      return () => void entry.owners.delete(owner);
    },
    callbackUrl(listener, address, gen) {
      const entry = listeners.get(listener)!;
      return `${this.publicRoute(listener)}/${entry.token!.toString()}/${mailboxKey(address)}/${gen}`;
    },
    publicRoute(listener) {
      return `${o.publicUrl().replace(/\/+$/, '')}/notify/ews/${routePath(listener)}`;
    },
    async parcels(listener, address, limit) {
      const rows = await o.signals.parcels(EWS_PUSH_CHANNEL, parcelKey(listener, address), limit);
      return rows.map((r) => ({ id: r.id, push: JSON.parse(r.payload) as HandedPush }));
    },
    async remove(ids) {
      await o.signals.remove(ids);
      stats.handled += ids.length;
    },
    async waiting(listener) {
      const keys = await o.signals.waiting(EWS_PUSH_CHANNEL);
      return keys.filter((k) => k.startsWith(`${listener}\n`)).map((k) => k.slice(listener.length + 1));
    },
    prune,
    async start() {
      stop = await o.signals.subscribe(EWS_PUSH_CHANNEL, nudge);
      sweep = setInterval(() => {
        if (sweeping) return;
        sweeping = true;
        const now = o.now();
        const pruning = prunedAt === undefined || now - prunedAt >= PRUNE_EVERY_MS;
        if (pruning) prunedAt = now;
        (pruning ? prune() : Promise.resolve())
          .then(() => o.signals.waiting(EWS_PUSH_CHANNEL))
          .then((keys) => keys.forEach(nudge))
          .catch((err: unknown) => o.log.debug({ err: toMbError(err).message }, 'ews push: sweep failed; next round'))
          .finally(() => (sweeping = false));
      }, o.sweepMs ?? SWEEP_MS);
      sweep.unref();
    },
    close() {
      stop?.();
      if (sweep) clearInterval(sweep);
    },
  };
}
