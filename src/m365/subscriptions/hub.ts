/**
 * One set of notification routes shared by the subscription managers of several owners, and by
 * the nodes of a cluster. With several nodes behind a load balancer, Graph posts a change
 * notification to whichever node the balancer picks, while only one node (the one holding the
 * mailbox's shard) knows the subscription and its clientState. The hub answers Graph at once
 * (202, as endpoint.ts does) and hands each item to the local owner of its subscription, or, when
 * there is none here, to `forward` (the store's signals: the owner node receives it through
 * `receive`). The owner checks the clientState as always; a forged item is refused there.
 *
 * Nothing is lost when no node holds the subscription at that moment (its shard is between two
 * leases): the next owner reads the folder with delta when it takes the shard over, which covers
 * every change a dropped notification told about.
 *
 * Routes must exist before the inbound listener listens: `prepare(path)` registers them; owners
 * attach and leave while it runs, as leases move.
 */
import type { FastifyInstance } from 'fastify';
import { registerRoutes } from './endpoint.ts';

export interface HubMember {
  knows(subscriptionId: string): boolean;
  accept(item: Record<string, unknown>, route: 'notification' | 'lifecycle'): void;
}

export interface Handoff {
  path: string;
  route: 'notification' | 'lifecycle';
  item: Record<string, unknown>;
}

export interface RouteHub {
  /** Registers the routes of `path` on the listener (once; before it listens). */
  prepare(path: string): void;
  /** A subscription manager joins the routes of its path; returns the function that leaves them. */
  attach(path: string, member: HubMember): () => void;
  /** An item another node received; true when an owner here took it. */
  receive(h: Handoff): boolean;
  /** Items handed to other nodes, and received items no owner here knew. */
  readonly stats: { forwarded: number; received: number; unclaimed: number };
}

export function createRouteHub(http: FastifyInstance, forward?: (h: Handoff) => void): RouteHub {
  const members = new Map<string, Set<HubMember>>();
  const stats = { forwarded: 0, received: 0, unclaimed: 0 };
  const local = (h: Handoff): boolean => {
    const id = typeof h.item.subscriptionId === 'string' ? h.item.subscriptionId : '';
    for (const m of members.get(h.path) ?? []) {
      if (m.knows(id)) {
        m.accept(h.item, h.route);
        return true;
      }
    }
    return false;
  };
  return {
    stats,
    prepare(path) {
      if (members.has(path)) return;
      members.set(path, new Set());
      registerRoutes(http, path, {
        accept(item, route) {
          if (local({ path, route, item })) return;
          if (forward) {
            stats.forwarded++;
            forward({ path, route, item });
          } else stats.unclaimed++;
        },
        // The hub always answers: an item for no owner here goes to the owner node (or is covered by its catch-up).
        closed: () => false,
      });
    },
    attach(path, member) {
      const set = members.get(path);
      if (!set) throw new Error(`route hub: ${path} was not prepared before the listener started`);
      set.add(member);
      return () => void set.delete(member);
    },
    receive(h) {
      stats.received++;
      const taken = local(h);
      if (!taken) stats.unclaimed++;
      return taken;
    },
  };
}
