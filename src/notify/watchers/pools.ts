/**
 * Listener pools, as MaaS360's listener accounts: a group's mailboxes are spread over its listeners
 * (a connection, or an account on on-prem Exchange), each with a capacity (default 1,250
 * mailboxes). More mailboxes than the pool holds is an error with its MB code, at start, not a
 * silent partial watch.
 *
 * Strategy: rendezvous hashing with bounded load. Each mailbox goes to the listener with the
 * highest hash of (listener, mailbox) that still has room, taking mailboxes in a fixed order. So the
 * same configuration always gives the same assignment, and adding a mailbox or a listener moves few
 * others — which matters because subscriptions (Graph, EWS) belong to the listener that created them.
 */
import { createHash } from 'node:crypto';
import { MbError } from '../../errors/index.ts';
import type { WatchedMailbox } from './types.ts';

export const DEFAULT_CAPACITY = 1250;

export interface PoolListener {
  /** Unique within the group, e.g. `sales/contoso` or `onprem/svc-listener1`. */
  id: string;
  capacity: number;
}

export interface Assignment<L extends PoolListener = PoolListener> {
  listener: L;
  mailboxes: WatchedMailbox[];
}

function score(listener: string, mailbox: string): bigint {
  return createHash('sha256').update(listener).update('\u0000').update(mailbox).digest().readBigUInt64BE(0);
}

/** Merges repeated addresses (folders joined) and lower-cases them. */
export function normalizeMailboxes(mailboxes: readonly WatchedMailbox[]): WatchedMailbox[] {
  const byAddress = new Map<string, WatchedMailbox>();
  for (const m of mailboxes) {
    const address = m.address.trim().toLowerCase();
    const seen = byAddress.get(address);
    if (seen) {
      for (const f of m.folders) if (!seen.folders.includes(f)) seen.folders.push(f);
    } else byAddress.set(address, { address, folders: [...m.folders] });
  }
  return [...byAddress.values()];
}

/**
 * Spreads the group's mailboxes over its listeners; throws MB_NOTIFY_POOL_FULL when they do not
 * fit. Listeners without mailboxes are left out of the result.
 */
export function assignMailboxes<L extends PoolListener>(group: string, mailboxes: readonly WatchedMailbox[], listeners: readonly L[]): Array<Assignment<L>> {
  const all = normalizeMailboxes(mailboxes);
  const capacity = listeners.reduce((n, l) => n + l.capacity, 0);
  if (all.length > capacity) {
    throw new MbError('MB_NOTIFY_POOL_FULL', { group, mailboxes: all.length, capacity, listeners: listeners.length, missing: all.length - capacity });
  }
  const out = new Map<string, Assignment<L>>(listeners.map((l) => [l.id, { listener: l, mailboxes: [] }]));
  for (const m of [...all].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0))) {
    let best: Assignment<L> | undefined;
    let bestScore = -1n;
    for (const a of out.values()) {
      if (a.mailboxes.length >= a.listener.capacity) continue;
      const s = score(a.listener.id, m.address);
      if (s > bestScore) {
        best = a;
        bestScore = s;
      }
    }
    best!.mailboxes.push(m);
  }
  return [...out.values()].filter((a) => a.mailboxes.length > 0);
}
