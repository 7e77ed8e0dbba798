/**
 * Time as the relay sees it. The queue manager, the retry schedule, the per-mailbox rate limit and
 * the login back-off read the time and set timers only through a Clock, so tests can drive them
 * with a manual clock instead of waiting (and never assert on elapsed time).
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds of this clock; returns a function that cancels it. */
  setTimer(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    // Timers never keep the process alive by themselves: the listeners do while the relay runs.
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return () => clearTimeout(t);
  },
};
