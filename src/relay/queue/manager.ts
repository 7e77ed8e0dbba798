/**
 * The queue manager (Postfix's qmgr): picks ready messages and hands them to the transport, within
 * Microsoft's per-mailbox limits — at most `concurrencyPerMailbox` deliveries at once,
 * `ratePerMinute` starts and `recipientsPerDay` recipients in 24 hours per mailbox (MailboxPacer),
 * and `maxConcurrency` over all mailboxes.
 *
 * Strategy: a "pump" takes due messages of mailboxes that may start now (oldest first) from an
 * in-memory index (ready-index.ts), claims each (compare-and-set incoming/deferred → active) and
 * starts it. It runs when a message arrives, when a delivery ends, at the next due time or
 * rate-limit slot (a timer on the injected clock), and every `pollMs`. Arrivals in this process go
 * into the index directly; the store is read (due messages, and when the next one falls due) only
 * when it may hold what the index lacks: at start, on every timer (so every `pollMs` at the latest,
 * which is how changes made by `mailbridge queue` in another process are seen), after an admin
 * action or a bounce report here, when a deferral falls due, when a mailbox left out of the last
 * read (it was blocked) may start again, and while a read came back full. Reading the store after
 * every delivery cost a scan of the backlog each time its mailboxes were all at their limits. What a
 * result means for the message (deferred, bounced, sent) is decided by the queue, not here.
 * A temporary result with `retryAfter` (429, 432, a refused login) also pauses the whole mailbox
 * for that long. An admin's `queue retry` or `queue release` of one of its messages lifts that pause
 * (the admin retries because the cause is fixed; waiting out the rest of the minute would only
 * delay the message): the manager sees the request in the store — at once in this process, within
 * `pollMs` when `mailbridge queue` ran in another one.
 *
 * Several nodes (`cluster`, PostgreSQL): each claim checks and counts the mailbox's limits in the
 * store, under a per-mailbox lock, so 3 connections, 30 a minute and the daily recipients hold
 * across all nodes; a mailbox the store says is at a limit waits here until the time it names (or,
 * for the connection limit, a short while: a delivery on another node ends unseen). Every third of
 * the lease the manager renews the leases of its running deliveries — one whose claim was taken
 * over is aborted, and its result would be refused anyway — and takes over the claims of nodes
 * whose leases ran out. On one node (SQLite) the limits are kept in memory only.
 */
import { MbError } from '../../errors/index.ts';
import type { Logger } from '../../log/index.ts';
import { envelopeOf, type QueueRecord } from '../../store/queue.ts';
import type { Clock } from '../../util/clock.ts';
import type { OutboundMessage, SendResult, Transport } from '../transport.ts';
import type { AttemptFailure, ClusterOptions, Queue } from './index.ts';
import { MailboxPacer } from './pacing.ts';
import { ReadyIndex } from './ready-index.ts';
import type { StoredBody } from './spool.ts';

export interface ManagerOptions {
  queue: Queue;
  transport: Transport;
  log: Logger;
  clock: Clock;
  concurrencyPerMailbox: number;
  ratePerMinute: number;
  /** Recipients per mailbox in any 24 hours (Exchange Online: 10,000). */
  recipientsPerDay: number;
  maxConcurrency: number;
  /**
   * Deliveries at once during a burst of arrivals (RECEIVING_BURST accepted within
   * RECEIVING_QUIET_MS); maxConcurrency again once it is over. Default: maxConcurrency (no priority).
   */
  receivingConcurrency?: number;
  sendTimeoutMs: number;
  pollMs: number;
  /** Several nodes on one store: leases renewed and taken over, limits checked in the store. */
  cluster?: ClusterOptions;
}

/** How long a mailbox whose connections are all used on other nodes waits before it is tried again. */
const BUSY_ELSEWHERE_MS = 500;

const PURGE_EVERY_MS = 3_600_000;
/**
 * A burst: RECEIVING_BURST messages accepted within RECEIVING_QUIET_MS (40 a second and more).
 * Acceptance keeps its priority until fewer arrived in the last RECEIVING_QUIET_MS; an application
 * that sends now and then, or a steady trickle, never holds deliveries back. The window is longer
 * than the gap between two messages of clients sending back to back (a few milliseconds) and
 * short enough that a burst's backlog starts at full concurrency almost at once.
 */
export const RECEIVING_BURST = 10;
export const RECEIVING_QUIET_MS = 250;

export class QueueManager {
  private readonly o: ManagerOptions;
  private readonly pacer: MailboxPacer;
  private readonly inFlight = new Map<string, { rec: QueueRecord; controller: AbortController; done: Promise<void> }>();
  private running = false;
  private stopping = false;
  private pumping = false;
  private pumpAgain = false;
  private cancelWake: (() => void) | undefined;
  private idleWaiters: Array<() => void> = [];
  private lastPurge = -Infinity;
  private seeded = false;
  /** Mailboxes whose 24-hour budget is used up and that were reported as such (once per exhaustion). */
  private readonly overBudget = new Set<string>();
  private readonly index = new ReadyIndex();
  /** The store may hold due messages the index lacks. */
  private stale = true;
  /** Mailboxes left out of the last store read (blocked then): once one may start, read again. */
  private unread = new Set<string>();
  /** When the earliest message not in the index falls due (from the last read and deferrals here). */
  private storeDue: number | undefined;
  private readStore = false;
  private cancelLease: (() => void) | undefined;
  private leaseTicks = 0;
  /** When this process accepted its last RECEIVING_BURST messages (clock time), oldest first. */
  private readonly arrivals: number[] = [];
  private readonly onReady = (accepted?: QueueRecord) => {
    if (accepted) {
      this.arrivals.push(this.o.clock.now());
      if (this.arrivals.length > RECEIVING_BURST) this.arrivals.shift();
    }
    if (!accepted || !this.index.add(accepted)) this.stale = true;
    void this.pump();
  };

  constructor(options: ManagerOptions) {
    this.o = options;
    this.pacer = new MailboxPacer({ concurrency: options.concurrencyPerMailbox, perMinute: options.ratePerMinute, recipientsPerDay: options.recipientsPerDay });
  }

  /** Per-mailbox pacing now (MailboxPacer.state): for the admin API. */
  pacing(): ReturnType<MailboxPacer['state']> {
    return this.pacer.state(this.o.clock.now());
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopping = false;
    this.index.clear();
    this.stale = true;
    this.o.queue.on('ready', this.onReady);
    if (this.o.cluster) this.scheduleLease();
    void this.pump();
  }

  /**
   * Stops picking messages, lets running attempts finish for up to `graceMs` (real time), then aborts
   * the rest; an aborted attempt goes back to deferred without counting.
   */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.stopping = true;
    this.o.queue.off('ready', this.onReady);
    this.cancelWake?.();
    this.cancelLease?.();
    const all = () => Promise.all([...this.inFlight.values()].map((f) => f.done));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all(), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    for (const f of this.inFlight.values()) f.controller.abort(new Error('mailbridge is stopping'));
    await all();
    this.resolveIdle();
  }

  /** Resolves when nothing is in flight and nothing more can start at the clock's current time. */
  whenIdle(): Promise<void> {
    const p = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.stale = true;
    void this.pump();
    return p;
  }

  /** Deliveries running now, per mailbox (for status output and tests). */
  inFlightByMailbox(): Map<string, number> {
    const out = new Map<string, number>();
    for (const { rec } of this.inFlight.values()) out.set(rec.mailbox, (out.get(rec.mailbox) ?? 0) + 1);
    return out;
  }

  private async pump(): Promise<void> {
    if (!this.running) return this.resolveIdle();
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      if (!this.seeded) {
        // Recipients sent in the last 24 h count against today's budget, across restarts.
        const now = this.o.clock.now();
        this.pacer.seed(await this.o.queue.sentSince(now - 86_400_000));
        this.seeded = true;
      }
      do {
        this.pumpAgain = false;
        let free = this.concurrency(this.o.clock.now()) - this.inFlight.size;
        if (free <= 0) break;
        await this.liftPausesRetried();
        const blocked = this.pacer.blocked(this.o.clock.now());
        await this.readIfStale(blocked, free);
        // Mailboxes that cannot start now (limits reached during this pass, or the budget).
        const skip = new Set(blocked.keys());
        let started = 0;
        while (free > 0 && this.running) {
          const row = this.index.next((mailbox) => skip.has(mailbox));
          if (!row) break;
          const now = this.o.clock.now();
          const at = this.pacer.nextStart(row.mailbox, now, row.recipients.length);
          if (at !== now) {
            if (at !== undefined && row.recipients.length > this.pacer.remainingToday(row.mailbox, now)) this.waitForBudget(row, at);
            skip.add(row.mailbox);
            continue;
          }
          this.overBudget.delete(row.mailbox);
          this.index.delete(row);
          const claimed = await this.o.queue.claimWithin(row.id, this.sharedLimits());
          if (claimed.limited) {
            // Another node uses the mailbox's slots: wait as the store says, then ask it again.
            this.index.add(row);
            this.pacer.holdOff(row.mailbox, claimed.limited.until ?? now + BUSY_ELSEWHERE_MS);
            skip.add(row.mailbox);
            continue;
          }
          const rec = claimed.record;
          if (!rec) continue; // moved by someone else (queue hold in another process, another node)
          this.launch(rec);
          started++;
          free--;
        }
        if (started > 0 && free > 0 && this.stale) this.pumpAgain = true;
      } while (this.pumpAgain && this.running);
      await this.maybePurge();
      await this.scheduleWake();
    } catch (err) {
      this.o.log.error({ err: (err as Error).message }, 'relay: queue manager could not read the queue; retrying at the next poll');
      this.scheduleFallbackWake();
    } finally {
      this.pumping = false;
    }
    // A message that arrived (or a delivery that ended) while the purge or the wake-up above was
    // awaited only set pumpAgain, after the loop had stopped looking at it: pump once more, or that
    // message would wait for the next poll.
    if (this.pumpAgain && this.running) return this.pump();
    if (this.inFlight.size === 0) this.resolveIdle();
  }

  /**
   * Acceptance first: during a burst of arrivals, at most `receivingConcurrency` deliveries run. Both
   * share one event loop and, on a small machine, the CPU; every delivery running slows the 250 of
   * the messages arriving (measured: 4 clients sending back to back were accepted at 290 messages
   * a second with deliveries at full concurrency, 488 with one). A burst is then taken in at full
   * speed and delivered at full concurrency right after it; never fewer than one delivery runs, so
   * a steady stream of arrivals slows the queue but does not stop it.
   */
  private concurrency(now: number): number {
    const receiving = this.o.receivingConcurrency;
    if (receiving === undefined || now >= this.burstUntil()) return this.o.maxConcurrency;
    return Math.max(1, Math.min(receiving, this.o.maxConcurrency));
  }

  /** Until when the arrivals so far count as a burst (-Infinity: they do not). */
  private burstUntil(): number {
    return this.arrivals.length < RECEIVING_BURST ? -Infinity : this.arrivals[0]! + RECEIVING_QUIET_MS;
  }

  private launch(rec: QueueRecord): void {
    const controller = new AbortController();
    this.pacer.start(rec.mailbox, this.o.clock.now(), rec.recipients.length);
    const entry = { rec, controller, done: Promise.resolve() };
    entry.done = this.deliver(rec, controller).finally(() => {
      this.inFlight.delete(rec.id);
      this.pacer.finish(rec.mailbox);
      void this.pump();
    });
    this.inFlight.set(rec.id, entry);
  }

  private async deliver(rec: QueueRecord, controller: AbortController): Promise<void> {
    const { queue, transport, clock, log } = this.o;
    let stored: StoredBody | undefined;
    try {
      try {
        stored = await queue.spool.openStored(rec.id);
      } catch (err) {
        const detail = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        const moved = await queue.failed(rec, { kind: 'temporary', mbCode: 'MB_RELAY_SPOOL_UNREADABLE', params: { id: rec.id, path: queue.spool.dir, detail }, detail });
        this.deferred(moved);
        return;
      }
      if (!stored) return await queue.markCorrupt(rec);
      const body = stored;
      let timedOut = false;
      const cancelTimeout = clock.setTimer(this.o.sendTimeoutMs, () => {
        timedOut = true;
        controller.abort(new Error('timeout'));
      });
      const message: OutboundMessage = {
        id: rec.id,
        ...envelopeOf(rec),
        receivedAt: new Date(rec.receivedAt),
        attempt: rec.attempts + 1,
        isBounce: rec.kind === 'dsn',
        body: () => body.stream(),
        readBody: () => body.read(),
        signal: controller.signal,
      };
      let result: SendResult;
      try {
        result = await Promise.race([transport.send(message), aborted(controller.signal)]);
      } catch (err) {
        const detail = err instanceof Error ? err.message : String(err);
        result = { temporary: true, mbCode: 'MB_RELAY_TRANSPORT_FAILED', params: { transport: transport.name, detail }, detail };
      } finally {
        cancelTimeout();
      }
      if (controller.signal.aborted && !timedOut) {
        await queue.interrupted(rec);
        return;
      }
      if (timedOut) {
        const seconds = Math.round(this.o.sendTimeoutMs / 1000);
        result = { temporary: true, mbCode: 'MB_RELAY_TRANSPORT_TIMEOUT', params: { transport: transport.name, seconds }, detail: `no result after ${seconds} s` };
      }
      if ('ok' in result) return await queue.delivered(rec, result.detail);
      const failure: AttemptFailure = { kind: 'temporary' in result ? 'temporary' : 'permanent', mbCode: result.mbCode, detail: result.detail };
      if (result.params) failure.params = result.params;
      if (result.code) failure.code = result.code;
      if ('temporary' in result && result.retryAfter) {
        failure.retryAfter = result.retryAfter;
        this.pacer.pause(rec.mailbox, clock.now() + result.retryAfter * 1000, clock.now());
      }
      this.deferred(await queue.failed(rec, failure));
    } catch (err) {
      // The store or spool failed while recording the result: the row stays active and goes back
      // to deferred at the next start (at-least-once), so nothing is lost. Not retried here: the
      // attempt may have been delivered, and a store that keeps failing would resend it in a loop.
      log.error({ id: rec.id, err: (err as Error).message }, 'relay: could not record a delivery result');
    } finally {
      await stored?.close().catch(() => undefined);
    }
  }

  private sharedLimits(): { concurrency: number; perMinute: number; recipientsPerDay: number } | undefined {
    if (!this.o.cluster) return undefined;
    return { concurrency: this.o.concurrencyPerMailbox, perMinute: this.o.ratePerMinute, recipientsPerDay: this.o.recipientsPerDay };
  }

  private scheduleLease(): void {
    this.cancelLease = this.o.clock.setTimer(this.o.cluster!.leaseMs / 3, () => void this.leaseTick());
  }

  /**
   * Renews the leases of this node's running deliveries (aborting those whose claim another node
   * took over) and takes over claims whose lease ran out.
   */
  private async leaseTick(): Promise<void> {
    try {
      const held = [...this.inFlight.values()].filter((f) => f.rec.claimToken !== undefined);
      if (held.length) {
        const kept = await this.o.queue.renew(held.map((f) => f.rec.claimToken!));
        for (const f of held) {
          if (kept.has(f.rec.claimToken!) || this.inFlight.get(f.rec.id) !== f) continue;
          this.o.log.warn({ mb: 'MB_RELAY_CLAIM_LOST', id: f.rec.id, node: this.o.queue.node }, 'relay: the claim of a running delivery was taken over by another node; attempt aborted');
          f.controller.abort(new Error('claim taken over'));
        }
      }
      // Bodies left by a node that died after recording a result: looked for every tenth tick.
      if ((await this.o.queue.takeOver(++this.leaseTicks % 10 === 0)) > 0) {
        this.stale = true;
        void this.pump();
      }
    } catch (err) {
      this.o.log.error({ err: (err as Error).message }, 'relay: could not renew the delivery leases; trying again');
    } finally {
      if (this.running) this.scheduleLease();
    }
  }

  /** A deferral made here: the store is read again when it falls due. */
  private deferred(rec: QueueRecord | undefined): void {
    if (rec?.state === 'deferred') this.storeDue = Math.min(this.storeDue ?? Infinity, rec.nextAttemptAt);
  }

  /** Reads due messages from the store into the index when it may hold some the index lacks. */
  private async readIfStale(blocked: Map<string, number | undefined>, free: number): Promise<void> {
    const now = this.o.clock.now();
    if (!this.stale && this.storeDue !== undefined && this.storeDue <= now) this.stale = true;
    if (!this.stale) for (const mailbox of this.unread) if (!blocked.has(mailbox)) this.stale = true;
    if (!this.stale) return;
    // Cleared before the read: whatever makes it stale while the read runs sets it again.
    this.stale = false;
    this.readStore = true;
    this.storeDue = undefined;
    this.unread = new Set(blocked.keys());
    const limit = Math.min(free * 4, 200);
    const rows = await this.o.queue.ready(limit, [...this.unread]);
    let unknown = 0;
    for (const row of rows) {
      if (this.inFlight.has(row.id)) continue;
      if (!this.index.has(row)) unknown++;
      if (!this.index.add(row)) this.stale = true;
    }
    // A full read with rows the index lacked: there may be more. One with only rows it holds
    // already (a backlog of this process's own arrivals) says nothing new: what it did not return is
    // newer than all of it and comes with the next read, at the poll at the latest. Reading again at
    // every pass then scanned the backlog once per delivery while deliveries were held back.
    if (rows.length === limit && unknown > 0) this.stale = true;
  }

  /** Ends the pause of every mailbox with a message an admin asked to retry since the pause began. */
  private async liftPausesRetried(): Promise<void> {
    const paused = this.pacer.paused(this.o.clock.now());
    if (paused.size === 0) return;
    const since = Math.min(...paused.values());
    for (const { mailbox, at } of await this.o.queue.retriedSince(since)) {
      const from = paused.get(mailbox);
      if (from === undefined || at < from) continue;
      this.pacer.resume(mailbox);
      this.o.log.info({ mailbox, retryRequestedAt: new Date(at).toISOString() }, 'relay: mailbox pause lifted by an admin retry');
    }
  }

  /**
   * The mailbox's 24-hour recipient budget has no room for this message: the mailbox waits (it is
   * paused until then, so the pump does not look at its messages again) and the admin is told once.
   */
  private waitForBudget(row: QueueRecord, at: number): void {
    this.pacer.pause(row.mailbox, at, this.o.clock.now());
    if (this.overBudget.has(row.mailbox)) return;
    this.overBudget.add(row.mailbox);
    const e = new MbError('MB_RELAY_DAILY_BUDGET', { mailbox: row.mailbox, recipientsPerDay: this.o.recipientsPerDay, resumesAt: new Date(at).toISOString() });
    this.o.log.warn({ code: e.code, mailbox: row.mailbox, id: row.id, resumesAt: new Date(at).toISOString() }, e.message);
  }

  private async scheduleWake(): Promise<void> {
    if (!this.running) return;
    const now = this.o.clock.now();
    const blocked = this.pacer.blocked(now);
    let next = now + this.o.pollMs;
    if (this.readStore) {
      // Asked only after a read of the store: between reads only deferrals here add due times.
      this.readStore = false;
      const due = await this.o.queue.nextDue([...blocked.keys()]);
      // Due already: in the index, or the index is stale (full, or the read came back full).
      if (due !== undefined && due > now) this.storeDue = Math.min(this.storeDue ?? Infinity, due);
    }
    if (this.storeDue !== undefined && this.storeDue > now) next = Math.min(next, this.storeDue);
    // A burst of arrivals held deliveries back: full concurrency once it is over.
    const quiet = this.burstUntil();
    if (quiet > now && this.concurrency(now) < this.o.maxConcurrency) next = Math.min(next, quiet);
    for (const at of blocked.values()) if (at !== undefined && at > now) next = Math.min(next, at);
    this.setWake(next - now);
  }

  private scheduleFallbackWake(): void {
    if (this.running) this.setWake(this.o.pollMs);
  }

  private setWake(ms: number): void {
    this.cancelWake?.();
    this.cancelWake = this.o.clock.setTimer(ms, () => {
      this.cancelWake = undefined;
      // A due time, a rate-limit slot or the poll: the store may have changed meanwhile.
      this.stale = true;
      void this.pump();
    });
  }

  private async maybePurge(): Promise<void> {
    const now = this.o.clock.now();
    if (now - this.lastPurge < PURGE_EVERY_MS) return;
    this.lastPurge = now;
    const n = await this.o.queue.purge();
    if (n) this.o.log.info({ removed: n }, 'relay: removed old sent and bounced entries');
  }

  private resolveIdle(): void {
    if (this.pumping || (this.inFlight.size > 0 && !this.stopping)) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}
