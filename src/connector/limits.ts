/**
 * Bounded concurrency and waiting: a counting semaphore, exponential backoff with jitter, and an
 * abortable sleep. Used for the per-connection login and work limits, the per-mailbox session limit
 * and the delivery window.
 */

export class Semaphore {
  private active = 0;
  private readonly waiters: Array<{ resolve: () => void; reject: (e: unknown) => void; signal?: AbortSignal; onAbort?: () => void }> = [];
  readonly limit: number;

  constructor(limit: number) {
    this.limit = Math.max(1, Math.floor(limit));
  }

  get inUse(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiters.length;
  }

  /** Waits for a slot; rejects with the signal's reason when aborted while waiting. */
  async acquire(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const w: (typeof this.waiters)[number] = { resolve, reject, signal };
      if (signal) {
        w.onAbort = () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.waiters.push(w);
    });
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) {
      if (next.onAbort) next.signal?.removeEventListener('abort', next.onAbort);
      // The slot passes straight to the waiter; `active` stays the same.
      next.resolve();
    } else {
      this.active = Math.max(0, this.active - 1);
    }
  }

  async with<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.acquire(signal);
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}

/** A set of semaphores created on first use, e.g. one per connection or per mailbox. */
export class KeyedLimits {
  private readonly map = new Map<string, Semaphore>();
  private readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  get(key: string): Semaphore {
    let s = this.map.get(key);
    if (!s) {
      s = new Semaphore(this.limit);
      this.map.set(key, s);
    }
    return s;
  }
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Fraction of random spread (0..1) so that hundreds of mailboxes do not retry in step. */
  jitter?: number;
  random?: () => number;
}

/** Exponential backoff: initial, 2×, 4×, … up to max, each with a little jitter. */
export class Backoff {
  private attempt = 0;
  private readonly o: Required<BackoffOptions>;

  constructor(options: BackoffOptions) {
    this.o = { jitter: 0.2, random: Math.random, ...options };
  }

  get attempts(): number {
    return this.attempt;
  }

  next(): number {
    const base = Math.min(this.o.maxMs, this.o.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    const spread = base * this.o.jitter;
    return Math.max(0, Math.round(base - spread + this.o.random() * 2 * spread));
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function isAbort(err: unknown, signal?: AbortSignal): boolean {
  return Boolean(signal?.aborted) && (err === signal?.reason || (err as Error)?.name === 'AbortError');
}
