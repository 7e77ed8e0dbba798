/**
 * The node registry and leases on SQLite (see cluster.ts). One SQLite file serves one host, so in
 * practice one node owns everything; the rows are the same as on PostgreSQL so that `mailbridge
 * status` and the fencing work the same way.
 */
import type { DatabaseSync } from 'node:sqlite';
import type { Acquired, ClusterRepository, Fence } from './cluster.ts';
import { leaseLost } from './cluster.ts';
import { statementCache, transaction } from './sqlite-tools.ts';
import { toLease, toNode, type Row } from './cluster-rows.ts';

/** Throws MB_CLUSTER_LEASE_LOST unless the fence still holds; call inside the write's transaction. */
export function sqliteFenceCheck(db: DatabaseSync): (fence: Fence | undefined) => void {
  const stmt = statementCache(db);
  return (fence) => {
    if (!fence) return;
    const ok = stmt('SELECT 1 FROM cluster_leases WHERE name = ? AND owner = ? AND epoch = ? AND expires_at > ?').get(fence.lease, fence.owner, fence.epoch, fence.now());
    if (!ok) throw leaseLost(fence);
  };
}

export function createSqliteCluster(db: DatabaseSync): ClusterRepository {
  const stmt = statementCache(db);
  return {
    async heartbeat(n) {
      stmt(
        `INSERT INTO cluster_nodes (id, name, version, role, started_at, heartbeat_at, owns) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, owns = excluded.owns`,
      ).run(n.id, n.name, n.version, n.role, n.startedAt, n.heartbeatAt, JSON.stringify(n.owns));
    },
    async nodes() {
      return (stmt('SELECT * FROM cluster_nodes ORDER BY started_at, id').all() as Row[]).map(toNode);
    },
    async leave(id) {
      stmt('DELETE FROM cluster_nodes WHERE id = ?').run(id);
    },
    async pruneNodes(before) {
      return Number(stmt('DELETE FROM cluster_nodes WHERE heartbeat_at < ?').run(before).changes);
    },
    async acquire(name, owner, ttlMs, now): Promise<Acquired> {
      return transaction(db, (): Acquired => {
        const cur = stmt('SELECT * FROM cluster_leases WHERE name = ?').get(name) as Row | undefined;
        const expiresAt = now + ttlMs;
        if (!cur) {
          stmt('INSERT INTO cluster_leases (name, owner, epoch, expires_at) VALUES (?, ?, 1, ?)').run(name, owner, expiresAt);
          return { ok: true, epoch: 1, expiresAt };
        }
        const l = toLease(cur);
        if (l.owner === owner && l.expiresAt > now) {
          stmt('UPDATE cluster_leases SET expires_at = ? WHERE name = ?').run(expiresAt, name);
          return { ok: true, epoch: l.epoch, expiresAt };
        }
        if (l.expiresAt > now) return { ok: false, owner: l.owner, epoch: l.epoch, expiresAt: l.expiresAt };
        // Expired: whoever takes it (the former holder too) starts a new epoch, which fences off
        // anything the former holder still has in flight.
        stmt('UPDATE cluster_leases SET owner = ?, epoch = epoch + 1, expires_at = ? WHERE name = ?').run(owner, expiresAt, name);
        return { ok: true, epoch: l.epoch + 1, expiresAt };
      });
    },
    async renew(f, ttlMs, now) {
      const r = stmt('UPDATE cluster_leases SET expires_at = ? WHERE name = ? AND owner = ? AND epoch = ? AND expires_at > ?').run(now + ttlMs, f.lease, f.owner, f.epoch, now);
      return Number(r.changes) > 0;
    },
    async release(f, now) {
      const r = stmt('UPDATE cluster_leases SET expires_at = ? WHERE name = ? AND owner = ? AND epoch = ? AND expires_at > ?').run(now, f.lease, f.owner, f.epoch, now);
      return Number(r.changes) > 0;
    },
    async leases(prefix) {
      const rows = (prefix === undefined
        ? stmt('SELECT * FROM cluster_leases ORDER BY name').all()
        : stmt('SELECT * FROM cluster_leases WHERE substr(name, 1, ?) = ? ORDER BY name').all(prefix.length, prefix)) as Row[];
      return rows.map(toLease);
    },
  };
}
