/**
 * Outlook's Graph limits per app and mailbox (microsoft-facts.md §4.8; throttling-limits.md):
 * at most 4 requests at once (the 5th gets 429 ApplicationThrottled "…MailboxConcurrency limit."),
 * at most 10,000 requests in a sliding 10 minutes. Plus test hooks: force the next N requests of a
 * mailbox to 429 with a chosen Retry-After, and hold a mailbox's admitted requests inside their
 * concurrency slots until released (so a test can have exactly 4 in flight, with no timing).
 *
 * Only admitted requests count toward the 10-minute window: a 429 costs the caller nothing, so its
 * Retry-After (the time until the oldest admitted request leaves the window) is exact.
 */
import { graphErrors, type GraphError } from './errors.ts';

export interface GraphLimits {
  /** Concurrent requests per app per mailbox (Outlook: 4). */
  concurrency?: number;
  /** Requests per app per mailbox in `windowMs` (Outlook: 10,000). */
  requestsPerWindow?: number;
  /** Length of the sliding window (Outlook: 10 minutes). */
  windowMs?: number;
  /** Retry-After (seconds) sent with a concurrency 429 (values as low as 1 are observed). */
  concurrencyRetryAfterSeconds?: number;
}

export class Throttle {
  private readonly concurrency: number;
  private readonly perWindow: number;
  private readonly windowMs: number;
  private readonly concurrencyRetryAfter: number;
  private readonly inFlightByKey = new Map<string, number>();
  private readonly admitted = new Map<string, number[]>();
  private readonly forced = new Map<string, { count: number; retryAfterSeconds: number }>();
  private readonly holds = new Map<string, { promise: Promise<void>; release: () => void }>();
  private readonly now: () => number;
  throttled = 0;

  constructor(limits: GraphLimits = {}, now: () => number = Date.now) {
    this.now = now;
    this.concurrency = limits.concurrency ?? 4;
    this.perWindow = limits.requestsPerWindow ?? 10_000;
    this.windowMs = limits.windowMs ?? 600_000;
    this.concurrencyRetryAfter = limits.concurrencyRetryAfterSeconds ?? 1;
  }

  /** Admits a request of `appId` on `mailbox`, or returns the 429 to send. Call `release` when done. */
  acquire(appId: string, mailbox: string): { release: () => void } | GraphError {
    const box = mailbox.toLowerCase();
    const forced = this.forced.get(box);
    if (forced && forced.count > 0) {
      forced.count--;
      if (forced.count === 0) this.forced.delete(box);
      this.throttled++;
      return graphErrors.concurrency(forced.retryAfterSeconds);
    }
    const key = `${appId.toLowerCase()}|${box}`;
    const inFlight = this.inFlightByKey.get(key) ?? 0;
    if (inFlight >= this.concurrency) {
      this.throttled++;
      return graphErrors.concurrency(this.concurrencyRetryAfter);
    }
    const t = this.now();
    const times = (this.admitted.get(key) ?? []).filter((x) => x > t - this.windowMs);
    if (times.length >= this.perWindow) {
      this.admitted.set(key, times);
      this.throttled++;
      const oldest = times[0] ?? t;
      return graphErrors.requestRate(Math.max(1, Math.ceil((oldest + this.windowMs - t) / 1000)));
    }
    times.push(t);
    this.admitted.set(key, times);
    this.inFlightByKey.set(key, inFlight + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        const n = (this.inFlightByKey.get(key) ?? 1) - 1;
        if (n > 0) this.inFlightByKey.set(key, n);
        else this.inFlightByKey.delete(key);
      },
    };
  }

  /** Test hook: the next `count` requests on this mailbox (any app) get 429 with this Retry-After. */
  force(mailbox: string, count: number, retryAfterSeconds: number): void {
    if (count <= 0) this.forced.delete(mailbox.toLowerCase());
    else this.forced.set(mailbox.toLowerCase(), { count, retryAfterSeconds });
  }

  /** Requests of any app in flight on this mailbox. */
  inFlight(mailbox: string): number {
    const suffix = `|${mailbox.toLowerCase()}`;
    let n = 0;
    for (const [key, count] of this.inFlightByKey) if (key.endsWith(suffix)) n += count;
    return n;
  }

  /** Test hook: admitted requests on this mailbox wait (in their slot) until the returned function is called. */
  hold(mailbox: string): () => void {
    const box = mailbox.toLowerCase();
    this.holds.get(box)?.release();
    let release!: () => void;
    const promise = new Promise<void>((resolve) => (release = resolve));
    const entry = { promise, release: () => {
      release();
      if (this.holds.get(box) === entry) this.holds.delete(box);
    } };
    this.holds.set(box, entry);
    return entry.release;
  }

  /** Resolves at once unless the mailbox is held. */
  async waitIfHeld(mailbox: string): Promise<void> {
    await this.holds.get(mailbox.toLowerCase())?.promise;
  }

  releaseAll(): void {
    for (const h of [...this.holds.values()]) h.release();
  }
}
