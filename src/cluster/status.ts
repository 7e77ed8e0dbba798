/**
 * What `mailbridge status`, GET /api/v1/nodes and the metrics say about the nodes: each node's id,
 * name, version, role, uptime, whether it is live (heartbeat younger than the lease time) and what
 * it owns per pool, read from the node registry every node writes each round.
 */
import type { ClusterRepository } from '../store/cluster.ts';
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
}


export async function nodesView(cluster: ClusterRepository, o: { now: number; self?: string | undefined; leaseMs?: number }): Promise<NodeView[]> {
  const leaseMs = o.leaseMs ?? DEFAULT_LEASE_MS;
  return (await cluster.nodes())
    // Stopped nodes are shown until the rounds forget them, so an admin sees which one died.
    .filter((n) => n.heartbeatAt > o.now - FORGET_NODES_AFTER_MS)
    .map((n) => ({
      id: n.id,
      name: n.name,
      version: n.version,
      role: n.role,
      startedAt: new Date(n.startedAt).toISOString(),
      heartbeatAt: new Date(n.heartbeatAt).toISOString(),
      uptimeSeconds: Math.max(0, Math.round((n.heartbeatAt - n.startedAt) / 1000)),
      live: n.heartbeatAt > o.now - leaseMs,
      owns: n.owns,
      self: n.id === o.self,
    }));
}
