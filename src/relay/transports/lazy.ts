/**
 * A transport whose module is loaded with the first message it sends: a route kind that no route
 * uses (most installs send over SMTP only) keeps its libraries out of the process.
 */
import type { RouteTransport } from './types.ts';

export function lazyTransport(load: () => Promise<RouteTransport>): RouteTransport {
  let loaded: Promise<RouteTransport> | undefined;
  let ready: RouteTransport | undefined;
  const get = () =>
    (loaded ??= load().then((t) => (ready = t)));
  return {
    deliver: async (message, target, hooks) => (await get()).deliver(message, target, hooks),
    connections: (mailbox) => ready?.connections?.(mailbox) ?? 0,
    close: async () => {
      if (loaded) await (await loaded).close();
    },
  };
}
