/**
 * Back-off against password guessing, for every login mailbridge checks (relay SMTP AUTH, the
 * admin console's sign-in), per key (a client address, a user name) in a rolling window, as
 * Postfix's anvil or fail2ban count: each failed login delays its reply (baseDelay, doubling,
 * capped), and after `maxFailures` failures within `window` the key's logins are refused for `lock`.
 *
 * Two ways around a plain counter are closed:
 * - Parallel guesses: a login reserves a slot before its password is checked, and a key has
 *   at most `maxFailures` minus its recent failures slots. More logins at once wait for a slot
 *   (a legitimate pool of connections is only serialised for the few milliseconds of a hash) and
 *   see the lock if the earlier ones failed, so no more than `maxFailures` guesses are ever
 *   evaluated before the lock applies.
 * - Interleaved successes: a successful login does not wipe the key's failures; they leave the
 *   window only with time (or when the lock they caused starts). Otherwise one valid account would
 *   let an attacker guess the others' passwords without limit.
 *
 * The guard keeps at most MAX_TRACKED keys, forgetting the oldest idle one, so a scan from
 * many addresses cannot grow memory without bound.
 */
import type { Clock } from './clock.ts';

const MAX_TRACKED = 10_000;
/** Logins for one key waiting for a slot; more are refused at once (the relay answers 454) instead of piling up. */
const MAX_WAITING = 100;

export interface BackoffOptions {
  maxFailures: number;
  windowMs: number;
  lockMs: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

interface Entry {
  /** Times of failures in the window, oldest first. */
  failures: number[];
  lockedUntil: number;
  /** Logins holding a slot (password being checked). */
  pending: number;
  waiters: Array<() => void>;
}

/** One reserved login attempt: end it with exactly one of success, failure or abandon. */
export interface LoginTicket {
  success(): void;
  /** Records the failure; how long to delay the reply and whether the key is now locked. */
  failure(): { delayMs: number; locked: boolean; failures: number };
  /** The check itself failed (not the password): the slot is freed, nothing is counted. */
  abandon(): void;
}

export class LoginGuard {
  private readonly entries = new Map<string, Entry>();
  private readonly o: BackoffOptions;
  private readonly clock: Clock;

  constructor(options: BackoffOptions, clock: Clock) {
    this.o = options;
    this.clock = clock;
  }

  /** Milliseconds this key's logins stay refused; 0 when it may try. */
  lockedFor(key: string): number {
    const e = this.entries.get(key);
    return e ? Math.max(0, e.lockedUntil - this.clock.now()) : 0;
  }

  /** Failures from this key within the window (for logs and tests). */
  failures(key: string): number {
    const e = this.entries.get(key);
    return e ? this.recent(e).length : 0;
  }

  /**
   * Reserves a slot for one login before its password is checked: a ticket, or how long the
   * address is locked (`lockedMs` > 0), or `busy` when too many logins already wait for a slot.
   */
  async acquire(key: string): Promise<LoginTicket | { lockedMs: number; busy?: boolean }> {
    for (;;) {
      const e = this.entry(key);
      const lockedMs = e.lockedUntil - this.clock.now();
      if (lockedMs > 0) return { lockedMs };
      if (this.recent(e).length + e.pending < this.o.maxFailures) {
        e.pending++;
        return this.ticket(e);
      }
      // Every slot is held by a login being checked: wait for one of them to end. (Without a
      // pending login the failures alone reached the limit, which locks — handled above.)
      if (e.waiters.length >= MAX_WAITING) return { lockedMs: 1000, busy: true };
      await new Promise<void>((resolve) => e.waiters.push(resolve));
    }
  }

  private ticket(e: Entry): LoginTicket {
    let done = false;
    const release = () => {
      if (done) throw new Error('login ticket used twice');
      done = true;
      e.pending--;
      // Every waiter looks again: after a lock they are all refused, else one gets the free slot.
      for (const w of e.waiters.splice(0)) w();
    };
    return {
      success: release,
      abandon: release,
      failure: () => {
        const now = this.clock.now();
        const failures = this.recent(e);
        failures.push(now);
        const n = failures.length;
        const locked = n >= this.o.maxFailures;
        if (locked) {
          e.lockedUntil = now + this.o.lockMs;
          // The lock is the punishment for these failures: after it, the key starts afresh.
          e.failures = [];
        }
        release();
        return { delayMs: Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** (n - 1)), locked, failures: n };
      },
    };
  }

  private entry(key: string): Entry {
    let e = this.entries.get(key);
    if (e) {
      this.entries.delete(key); // re-insert: Map order is age order for eviction
    } else {
      e = { failures: [], lockedUntil: 0, pending: 0, waiters: [] };
    }
    this.entries.set(key, e);
    if (this.entries.size > MAX_TRACKED) {
      for (const [key, old] of this.entries) {
        if (old.pending === 0 && old.waiters.length === 0) {
          this.entries.delete(key);
          break;
        }
      }
    }
    return e;
  }

  /** The entry's failures within the window (older ones dropped). */
  private recent(e: Entry): number[] {
    const since = this.clock.now() - this.o.windowMs;
    let drop = 0;
    while (drop < e.failures.length && e.failures[drop]! <= since) drop++;
    if (drop > 0) e.failures.splice(0, drop);
    return e.failures;
  }
}
