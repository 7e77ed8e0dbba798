/**
 * Time for the sandbox EWS: every timer it runs (heartbeats, ConnectionTimeout, subscription
 * expiry, push StatusFrequency and retries) goes through a Scheduler, so tests replace minutes with
 * `advance()` calls instead of sleeping. The real one wraps setTimeout (unref'd: a forgotten
 * subscription never keeps a process alive).
 */

export interface Scheduler {
  now(): number;
  /** Runs `fn` after `ms`; returns a cancel function. */
  after(ms: number, fn: () => void): () => void;
}

export const realScheduler: Scheduler = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return () => clearTimeout(t);
  },
};

/** A scheduler driven by hand: time moves only in `advance`, firing due timers in order. */
export class ManualScheduler implements Scheduler {
  #now: number;
  #seq = 0;
  #timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = Date.UTC(2026, 5, 1, 8, 0, 0)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  after(ms: number, fn: () => void): () => void {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return () => this.#timers.delete(id);
  }

  /** Moves time forward by `ms`, running every timer that falls due (also ones they set). */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) if (entry[1].at <= end && (!next || entry[1].at < next[1].at || (entry[1].at === next[1].at && entry[0] < next[0]))) next = entry;
      if (!next) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].fn();
    }
    this.#now = end;
  }

  /** Timers waiting (for tests that check nothing is left behind). */
  pending(): number {
    return this.#timers.size;
  }
}
