/**
 * What `mailbridge status`, GET /api/v1/nodes and the metrics say about the nodes: each node's id,
 * name, version, role, uptime, whether it is live (heartbeat younger than the lease time, by the
 * store's clock, as the nodes judge it among themselves) and what
 * it owns per pool, read from the node registry every node writes each round; on PostgreSQL also
 * how many relay messages each holds claimed (active rows naming it), a dead node's until a
 * survivor takes them over.
 */
import type { ClusterRepository } from '../store/cluster.ts';
import type { QueueRepository } from '../store/queue.ts';
import { DEFAULT_LEASE_MS, FORGET_NODES_AFTER_MS } from './ownership.ts';

export interface NodeView {
  id: string;
  name: string;
  version: string;
  role: string;
  startedAt: string;
  heartbeatAt: string;
  uptimeSeconds: number;
  /** Heartbeat younger than the lease time: the others count it in when they share the work. */
  live: boolean;
  /** Leases held per pool (connector:<name>, watch:<group>). */
  owns: Record<string, number>;
  /** The node answering (the gateway's own process). */
  self: boolean;
  /** Relay messages this node holds claimed (being delivered); only with several nodes (PostgreSQL). */
  relayClaimed?: number;
}


/** The store's repositories nodesView reads: the node registry, and on PostgreSQL the relay queue's claims. */
export function statusSources(store: { driver: 'sqlite' | 'postgres'; cluster: ClusterRepository; queue: QueueRepository }): { cluster: ClusterRepository; queue?: Pick<QueueRepository, 'claimedPerNode'> } {
  // On SQLite one process relays and claims without naming itself: there is nothing to count per node.
  return store.driver === 'postgres' ? { cluster: store.cluster, queue: store.queue } : { cluster: store.cluster };
}

export async function nodesView(
  from: { cluster: ClusterRepository; queue?: Pick<QueueRepository, 'claimedPerNode'> | undefined },
  o: { self?: string | undefined; leaseMs?: number } = {},
): Promise<NodeView[]> {
  const leaseMs = o.leaseMs ?? DEFAULT_LEASE_MS;
  // Heartbeats are stamped by the store's clock (the database server's on PostgreSQL): compared
  // with this process's clock, a node would show as stopped whenever the two disagree.
  const now = await from.cluster.now();
  const claimed = from.queue ? await from.queue.claimedPerNode() : undefined;
  return (await from.cluster.nodes())
    // Stopped nodes are shown until the rounds forget them, so an admin sees which one died.
    .filter((n) => n.heartbeatAt > now - FORGET_NODES_AFTER_MS)
    .map((n) => ({
      id: n.id,
      name: n.name,
      version: n.version,
      role: n.role,
      startedAt: new Date(n.startedAt).toISOString(),
      heartbeatAt: new Date(n.heartbeatAt).toISOString(),
      uptimeSeconds: Math.max(0, Math.round((n.heartbeatAt - n.startedAt) / 1000)),
      live: n.heartbeatAt > now - leaseMs,
      owns: n.owns,
      self: n.id === o.self,
      ...(claimed ? { relayClaimed: claimed[n.id] ?? 0 } : {}),
    }));
}
