/**
 * Time as the product sees it. What waits or schedules by the clock (the relay's queue manager,
 * retry schedule, per-mailbox rate limit and login back-off) reads the time and sets timers only
 * through a Clock, so tests drive it with a manual clock instead of waiting (and never assert on
 * elapsed time). The sandbox keeps its own (src/sandbox/ews/clock.ts): it takes nothing from util/.
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
