/**
 * Bounded concurrency and waiting, shared by every capability: a counting semaphore, semaphores per
 * key (per connection, per mailbox), exponential backoff with jitter, Retry-After parsing and an
 * abortable sleep. The connector's login/work limits and delivery window, the IMAP watcher, and the
 * Microsoft 365 clients' per-mailbox limits (src/m365/) all use these.
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

/**
 * A set of semaphores created on first use, e.g. one per connection or per mailbox. `with` drops a
 * key's semaphore again once nothing holds or waits for it, so thousands of idle mailboxes cost
 * nothing; `get` keeps it (for limits held across calls).
 */
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

  async with<T>(key: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const s = this.get(key);
    try {
      return await s.with(fn, signal);
    } finally {
      if (s.inUse === 0 && s.queued === 0 && this.map.get(key) === s) this.map.delete(key);
    }
  }

  /** Slots in use for a key (0 when it has none). */
  inUse(key: string): number {
    return this.map.get(key)?.inUse ?? 0;
  }
}

/**
 * Retry-After in ms: delta-seconds or an HTTP date (RFC 9110 §10.2.3); undefined when absent or
 * unreadable, so the caller falls back to its own backoff.
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  const v = (value ?? '').trim();
  if (v === '') return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
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
