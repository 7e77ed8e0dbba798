/**
 * Waiting for a wake-up with a time limit: what a mailbox worker does between two looks at a
 * folder (IMAP IDLE's EXISTS, a Graph change notification, or the poll interval). `arm` receives
 * the function that ends the wait with a reason (it may call it at once, e.g. when a change came
 * before the wait); `disarm` runs whichever way the wait ends. A timeout or an abort ends it with
 * 'timeout'; a signal aborted before the wait began ends it at once (its abort event is gone).
 */
export function waitForWake<R extends string>(ms: number, signal: AbortSignal, arm: (wake: (reason: R) => void) => void, disarm: () => void): Promise<R | 'timeout'> {
  if (signal.aborted) return Promise.resolve('timeout');
  return new Promise((resolve) => {
    const done = (reason: R | 'timeout') => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      disarm();
      resolve(reason);
    };
    const timer = setTimeout(() => done('timeout'), ms);
    const onAbort = () => done('timeout');
    signal.addEventListener('abort', onAbort, { once: true });
    arm(done);
  });
}
