/**
 * The dispatcher: takes published events out of the store's delivery queue and hands them to
 * sinks. It is the one module that decides what a sink's answer means for a delivery.
 *
 * Strategy
 * - At least once: a delivery row is written with the event (store.notify.publish) and turns
 *   `done` only after the sink said ok. A crash between the two delivers the event again after the
 *   restart; receivers deduplicate on the event id (webhook-id, apns-id, FCM data.eventId).
 * - In order per mailbox and subscription: the store hands out only the head of each
 *   (subscription, mailbox) line, and a line with a delivery in flight is skipped, so event n+1
 *   is not sent before event n is done, expired or dropped.
 * - Retries with exponential back-off (retry.initialSeconds × factor^n, capped at maxSeconds,
 *   spread by jitter; a receiver's Retry-After is honoured when longer) until giveUpAfterHours
 *   after the event was published; then the delivery expires with MB_NOTIFY_DELIVERY_EXPIRED so
 *   that the line moves on.
 * - `gone` retires the subscription and drops its pending deliveries.
 *
 * - Several nodes (PostgreSQL, `claim`): each due head is claimed for this node for the lease time
 *   (30 s), and the claims of the deliveries in flight are renewed every third of it, in one
 *   statement, for as long as the sink takes. A node that dies (kill -9, power) stops renewing, so
 *   a survivor takes its deliveries over within the lease time, in order (only a line's head is
 *   ever claimed). Renewing from the delivery loop, rather than trusting the node registry's
 *   heartbeat, ties the claim to the work itself: a node alive but stuck or cut off from the
 *   database loses its claims the same way, and a survivor never needs to judge another node dead.
 * - What can go out twice after a kill: the deliveries the dead node had in flight (at most one per
 *   line, `concurrency` in all), when its sink call reached the receiver before the node could mark
 *   it done — at-least-once, as after a restart of a single node. Two live nodes send one delivery
 *   twice only if the holder could not renew for the whole lease time (the database unreachable
 *   from it, or the process frozen) while its sink call was still running; the holder then logs
 *   that its claim was taken over.
 *
 * Limits: on SQLite one dispatcher per store (lines in flight are tracked in memory); on
 * PostgreSQL one per node, each claiming the heads it sends (`claim`). A line's head blocks only
 * that line, never other subscriptions or mailboxes.
 */
import { MbError, toMbError } from '../errors/index.ts';
import { silentLogger, type Logger } from '../log/index.ts';
import type { DeliveryClaim, DeliveryError, DeliveryKey, DueDelivery, NotifyRepository } from '../store/notify.ts';
import type { Fence } from '../store/cluster.ts';
import type { RetryConfig } from './config.ts';
import { forSubscription, parseEvent, type NotifyEvent } from './events.ts';
import type { Sink, SinkResult } from './sinks/types.ts';

export interface DispatcherOptions {
  repo: NotifyRepository;
  sinks: readonly Sink[];
  retry: RetryConfig;
  /** Epoch milliseconds; injectable for tests. */
  now?: () => number;
  /** [0, 1); injectable for tests. */
  random?: () => number;
  logger?: Logger;
  /** Deliveries in flight at once (each on its own line). Default 32. */
  concurrency?: number;
  /** Counts for /metrics (src/metrics): new events and each delivery attempt's outcome per sink. */
  observe?: DispatchObserver;
  /**
   * Several nodes on one PostgreSQL database: each due head is claimed for this node (see
   * NotifyRepository.due), so the nodes' dispatchers share the work and never send one delivery
   * twice, unless a node dies mid-delivery and another takes the head over after `forMs`. Claims
   * of deliveries in flight are renewed every `forMs / 3`.
   */
  claim?: DeliveryClaim;
}

export interface DispatchObserver {
  published(type: string): void;
  delivery(sink: string, outcome: 'delivered' | 'deferred' | 'gone' | 'expired'): void;
}

export interface RunStats {
  delivered: number;
  retried: number;
  gone: number;
  expired: number;
}

/** Wait after `failures` failed attempts (1 = after the first failure), before jitter. */
export function backoffMs(retry: RetryConfig, failures: number): number {
  const base = retry.initialSeconds * 1000 * retry.factor ** Math.max(0, failures - 1);
  return Math.min(base, retry.maxSeconds * 1000);
}

export interface Dispatcher {
  /** Stores the event (deduplicated by id), fans it out, and wakes the loop; `fence`: see NotifyRepository.publish. */
  publish(event: NotifyEvent, fence?: Fence): Promise<{ seq: number; duplicate: boolean; deliveries: number }>;
  /** Delivers everything due now, line by line, until nothing is due; for tests and `notify test`. */
  runOnce(): Promise<RunStats>;
  /** Runs in the background: delivers what is due and sleeps until the next due time or a publish. */
  start(): void;
  /** Stops the loop and waits for deliveries in flight. */
  stop(): Promise<void>;
}

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const { repo, retry } = options;
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const log = options.logger ?? silentLogger;
  const concurrency = options.concurrency ?? 32;
  const sinks = new Map(options.sinks.map((s) => [s.kind, s]));
  const busy = new Set<string>();
  // Re-check at least every minute: a clock jump or another writer must not stall the queue. With
  // claims, every third of the claim time: a node that died holding claims is noticed within the
  // claim time even by a node with nothing else to do (it did not publish what it holds).
  const recheckMs = options.claim ? Math.max(1, Math.min(60_000, Math.floor(options.claim.forMs / 3))) : 60_000;
  // The deliveries in flight by line, whose claims the renewal below keeps.
  const holding = new Map<string, DeliveryKey>();
  let renewer: ReturnType<typeof setInterval> | undefined;
  let renewing = false;

  /** Extends the claims of the deliveries in flight; one whose claim another node took is only logged (its sink call is already out). */
  async function renewClaims(claim: DeliveryClaim): Promise<void> {
    if (renewing || holding.size === 0) return;
    renewing = true;
    const mine = [...holding.values()];
    try {
      const kept = new Set((await repo.renewClaims(claim.by, mine, claim.forMs)).map((k) => `${k.subscriptionId}\n${k.eventId}`));
      for (const k of mine) {
        // Finished meanwhile (the row is no longer pending) is not a loss.
        if (kept.has(`${k.subscriptionId}\n${k.eventId}`) || ![...holding.values()].includes(k)) continue;
        log.warn({ subscription: k.subscriptionId, event: k.eventId, node: claim.by }, 'notify: the claim of a delivery in flight was taken over by another node; the event may arrive twice');
      }
    } catch (err) {
      log.warn({ err: toMbError(err).message }, 'notify: could not renew the claims of the deliveries in flight; trying again');
    } finally {
      renewing = false;
    }
  }

  function hold(key: string, delivery: DeliveryKey): void {
    holding.set(key, delivery);
    const claim = options.claim;
    if (!claim || renewer) return;
    renewer = setInterval(() => void renewClaims(claim), Math.max(1, Math.floor(claim.forMs / 3)));
    renewer.unref?.();
  }

  function release(key: string): void {
    holding.delete(key);
    if (holding.size > 0 || !renewer) return;
    clearInterval(renewer);
    renewer = undefined;
  }

  let running = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let loop: Promise<void> | undefined;
  let again = false;

  async function deliverOne(item: DueDelivery, stats: RunStats): Promise<void> {
    const { delivery, subscription } = item;
    let result: SinkResult;
    let event: NotifyEvent | undefined;
    try {
      event = { ...parseEvent(item.event.body), seq: item.event.seq };
    } catch (err) {
      // A row that cannot be read back will never deliver; let the line move on.
      await repo.expire(subscription.id, delivery.eventId, { attempts: delivery.attempts, lastError: errorRecord(toMbError(err)) }, now());
      stats.expired++;
      return;
    }
    const sink = sinks.get(subscription.kind);
    if (!sink) {
      result = { kind: 'retry', error: new MbError('MB_NOTIFY_SINK_NOT_CONFIGURED', { kind: subscription.kind }) };
    } else {
      try {
        result = await sink.deliver(forSubscription(event, subscription.privacy), subscription);
      } catch (err) {
        result = { kind: 'retry', error: toMbError(err) };
      }
    }
    const t = now();
    const attempts = delivery.attempts + 1;
    const ctx = { subscription: subscription.id, kind: subscription.kind, event: event.id, mailbox: event.mailbox, seq: event.seq, attempts };
    if (result.kind === 'ok') {
      await repo.complete(subscription.id, delivery.eventId, t);
      stats.delivered++;
      options.observe?.delivery(subscription.kind, 'delivered');
      log.debug(ctx, 'notify: delivered');
      return;
    }
    if (result.kind === 'gone') {
      await repo.markGone(subscription.id, `${result.error.code}: ${result.error.message}`, t);
      stats.gone++;
      options.observe?.delivery(subscription.kind, 'gone');
      log.warn({ ...ctx, code: result.error.code }, 'notify: subscription gone');
      return;
    }
    const spread = 1 + retry.jitter * (2 * random() - 1);
    const wait = Math.max(Math.round(backoffMs(retry, attempts) * spread), result.afterMs ?? 0);
    const deadline = delivery.createdAt + retry.giveUpAfterHours * 3_600_000;
    if (t + wait > deadline) {
      const expired = new MbError('MB_NOTIFY_DELIVERY_EXPIRED', {
        eventId: event.id,
        subscriptionId: subscription.id,
        hours: retry.giveUpAfterHours,
        attempts,
        last: `${result.error.code}: ${result.error.message}`,
      });
      await repo.expire(subscription.id, delivery.eventId, { attempts, lastError: errorRecord(expired) }, t);
      stats.expired++;
      options.observe?.delivery(subscription.kind, 'expired');
      log.error({ ...ctx, code: expired.code, last: result.error.code }, expired.message);
      return;
    }
    await repo.defer(subscription.id, delivery.eventId, { attempts, nextAttemptAt: t + wait, lastError: errorRecord(result.error) }, t);
    stats.retried++;
    options.observe?.delivery(subscription.kind, 'deferred');
    log.info({ ...ctx, code: result.error.code, retryInMs: wait }, 'notify: delivery deferred');
  }

  async function runOnce(): Promise<RunStats> {
    const stats: RunStats = { delivered: 0, retried: 0, gone: 0, expired: 0 };
    const inFlight = new Set<Promise<void>>();
    for (;;) {
      const free = concurrency - inFlight.size;
      const batch = free > 0 ? await repo.due(now(), free, busy, options.claim) : [];
      if (batch.length === 0 && inFlight.size === 0) return stats;
      for (const item of batch) {
        const key = `${item.subscription.id}\n${item.delivery.mailbox}`;
        busy.add(key);
        hold(key, { subscriptionId: item.subscription.id, eventId: item.delivery.eventId });
        const p: Promise<void> = deliverOne(item, stats)
          .catch((err: unknown) => log.error({ err: toMbError(err).message }, 'notify: delivery bookkeeping failed'))
          .finally(() => {
            busy.delete(key);
            release(key);
            inFlight.delete(p);
          });
        inFlight.add(p);
      }
      // Wait for one delivery to finish: it may unblock its line's next event.
      if (inFlight.size > 0) await Promise.race(inFlight);
    }
  }

  function schedule(ms: number): void {
    if (!running) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(kick, Math.max(0, Math.min(ms, recheckMs)));
    timer.unref?.();
  }

  function kick(): void {
    if (!running) return;
    if (loop) {
      again = true;
      return;
    }
    loop = (async () => {
      do {
        again = false;
        try {
          await runOnce();
        } catch (err) {
          log.error({ err: toMbError(err).message }, 'notify: dispatcher run failed');
        }
      } while (again && running);
      const next = await repo.nextDue(now()).catch(() => undefined);
      schedule(next === undefined ? 60_000 : next - now());
    })().finally(() => {
      loop = undefined;
    });
  }

  return {
    async publish(event, fence) {
      const { id, mailbox, type } = event;
      const { seq: _seq, ...body } = event;
      const r = await repo.publish({ id, mailbox, type, body: JSON.stringify(body) }, now(), fence);
      if (!r.duplicate) options.observe?.published(type);
      if (!r.duplicate && r.deliveries > 0) kick();
      return { seq: r.event.seq, duplicate: r.duplicate, deliveries: r.deliveries };
    },
    runOnce,
    start() {
      if (running) return;
      running = true;
      kick();
    },
    async stop() {
      running = false;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await loop;
    },
  };
}

function errorRecord(e: MbError): DeliveryError {
  return { code: e.code, params: e.params, detail: e.message };
}
