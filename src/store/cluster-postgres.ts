/**
 * The node registry and leases on PostgreSQL (see cluster.ts): what several nodes share.
 */
import type pg from 'pg';
import type { Acquired, ClusterRepository, Fence } from './cluster.ts';
import { leaseLost } from './cluster.ts';
import { toLease, toNode } from './cluster-rows.ts';
import type { Queryable, Transaction } from './postgres.ts';

/**
 * Throws MB_CLUSTER_LEASE_LOST unless the fence still holds; run it first inside the write's
 * transaction. FOR SHARE keeps a takeover (an UPDATE of the lease row) waiting until this
 * transaction has committed, so a write is either before the takeover or refused.
 */
export async function postgresFenceCheck(db: Queryable, fence: Fence | undefined): Promise<void> {
  if (!fence) return;
  const r = await db.query('SELECT 1 FROM cluster_leases WHERE name = $1 AND owner = $2 AND epoch = $3 AND expires_at > $4 FOR SHARE', [
    fence.lease,
    fence.owner,
    fence.epoch,
    fence.now(),
  ]);
  if (r.rowCount === 0) throw leaseLost(fence);
}

export function createPostgresCluster(pool: pg.Pool, transaction: Transaction): ClusterRepository {
  return {
    async heartbeat(n) {
      await pool.query(
        `INSERT INTO cluster_nodes (id, name, version, role, started_at, heartbeat_at, owns) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, owns = excluded.owns`,
        [n.id, n.name, n.version, n.role, n.startedAt, n.heartbeatAt, JSON.stringify(n.owns)],
      );
    },
    async nodes() {
      return (await pool.query('SELECT * FROM cluster_nodes ORDER BY started_at, id')).rows.map(toNode);
    },
    async leave(id) {
      await pool.query('DELETE FROM cluster_nodes WHERE id = $1', [id]);
    },
    async pruneNodes(before) {
      return (await pool.query('DELETE FROM cluster_nodes WHERE heartbeat_at < $1', [before])).rowCount ?? 0;
    },
    async acquire(name, owner, ttlMs, now): Promise<Acquired> {
      return transaction(async (db): Promise<Acquired> => {
        const expiresAt = now + ttlMs;
        // A new lease: the first node to insert it holds it; the others find the row below.
        const ins = await db.query('INSERT INTO cluster_leases (name, owner, epoch, expires_at) VALUES ($1, $2, 1, $3) ON CONFLICT (name) DO NOTHING', [name, owner, expiresAt]);
        if ((ins.rowCount ?? 0) > 0) return { ok: true, epoch: 1, expiresAt };
        const cur = (await db.query('SELECT * FROM cluster_leases WHERE name = $1 FOR UPDATE', [name])).rows[0];
        const l = toLease(cur as Record<string, unknown>);
        if (l.owner === owner && l.expiresAt > now) {
          await db.query('UPDATE cluster_leases SET expires_at = $1 WHERE name = $2', [expiresAt, name]);
          return { ok: true, epoch: l.epoch, expiresAt };
        }
        if (l.expiresAt > now) return { ok: false, owner: l.owner, epoch: l.epoch, expiresAt: l.expiresAt };
        await db.query('UPDATE cluster_leases SET owner = $1, epoch = epoch + 1, expires_at = $2 WHERE name = $3', [owner, expiresAt, name]);
        return { ok: true, epoch: l.epoch + 1, expiresAt };
      });
    },
    async renew(f, ttlMs, now) {
      const r = await pool.query('UPDATE cluster_leases SET expires_at = $1 WHERE name = $2 AND owner = $3 AND epoch = $4 AND expires_at > $5', [now + ttlMs, f.lease, f.owner, f.epoch, now]);
      return (r.rowCount ?? 0) > 0;
    },
    async release(f, now) {
      const r = await pool.query('UPDATE cluster_leases SET expires_at = $1 WHERE name = $2 AND owner = $3 AND epoch = $4 AND expires_at > $5', [now, f.lease, f.owner, f.epoch, now]);
      return (r.rowCount ?? 0) > 0;
    },
    async leases(prefix) {
      const { rows } =
        prefix === undefined
          ? await pool.query('SELECT * FROM cluster_leases ORDER BY name')
          : await pool.query('SELECT * FROM cluster_leases WHERE left(name, $1) = $2 ORDER BY name', [prefix.length, prefix]);
      return rows.map((r) => toLease(r as Record<string, unknown>));
    },
  };
}
