/**
 * Waiting in tests for something observable, never for a fixed time: a condition polled until it
 * holds. It gives up after `ms` with a message naming what it waited for, so a failure on a slow
 * machine says what did not happen instead of timing out the whole file.
 */
type Maybe<T> = T | undefined | null | false;

/**
 * Resolves with the first truthy value of `check` (polled every few milliseconds); throws after
 * `ms`, naming `what` (a function: for a message that shows the state at that moment). An
 * exception from `check` ends the wait at once (a broken check is not "not yet"). A check that
 * costs a request (an API call, a CLI run) is polled less often: `every` ms.
 */
export async function waitFor<T>(check: () => Maybe<T> | Promise<Maybe<T>>, ms: number, what: string | (() => string), every = 10): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Reads `read` until `ok` holds for its value and returns that value; a timeout names the last one read. */
export async function readUntil<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  let last: T | undefined;
  const hit = await waitFor(async () => {
    last = await read();
    return ok(last) && { v: last };
  }, ms, () => `${what} (last: ${JSON.stringify(last)})`, 100);
  return hit.v;
}
