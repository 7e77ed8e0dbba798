/**
 * Waiting in tests for something observable, never for a fixed time: a condition polled until it
 * holds. It gives up after `ms` with a message naming what it waited for, so a failure on a slow
 * machine says what did not happen instead of timing out the whole file.
 */
type Maybe<T> = T | undefined | null | false;

/**
 * Resolves with the first truthy value of `check` (polled every few milliseconds); throws after
 * `ms`, naming `what` (a function: for a message that shows the state at that moment). An
 * exception from `check` ends the wait at once (a broken check is not "not yet").
 */
export async function waitFor<T>(check: () => Maybe<T> | Promise<Maybe<T>>, ms: number, what: string | (() => string)): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
