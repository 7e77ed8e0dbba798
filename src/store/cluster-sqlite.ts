/**
 * The node registry and leases on SQLite (see cluster.ts). One SQLite file serves one host, so in
 * practice one node owns everything; the rows are the same as on PostgreSQL so that `mailbridge
 * status` and the fencing work the same way. Times come from the clock the store was opened with
 * (this process's; a test's manual one), read by the repository: callers pass none.
 */
import type { DatabaseSync } from 'node:sqlite';
import type { Acquired, ClusterRepository, Fence, HeldLease } from './cluster.ts';
import { leaseLost } from './cluster.ts';
import { statementCache, transaction } from './sqlite-tools.ts';
import { toLease, toNode, type Row } from './cluster-rows.ts';

/** Checks a fence inside the write's transaction (see sqliteFenceCheck). */
export type SqliteFenceCheck = (fence: Fence | undefined) => void;

/** Throws MB_CLUSTER_LEASE_LOST unless the fence still holds by `clock`; call inside the write's transaction. */
export function sqliteFenceCheck(db: DatabaseSync, clock: () => number): SqliteFenceCheck {
  const stmt = statementCache(db);
  return (fence) => {
    if (!fence) return;
    const ok = stmt('SELECT 1 FROM cluster_leases WHERE name = ? AND owner = ? AND epoch = ? AND expires_at > ?').get(fence.lease, fence.owner, fence.epoch, clock());
    if (!ok) throw leaseLost(fence);
  };
}

export function createSqliteCluster(db: DatabaseSync, clock: () => number): ClusterRepository {
  const stmt = statementCache(db);
  /** Moves the expiry of the leases `owner` holds at exactly these epochs and that have not run out to now + ttlMs (0: a release); returns their names. */
  const setExpiry = (owner: string, held: readonly HeldLease[], ttlMs: number): Set<string> => {
    if (held.length === 0) return new Set();
    const now = clock();
    const expiresAt = now + ttlMs;
    const rows = stmt(
      `UPDATE cluster_leases SET expires_at = ?
       FROM (SELECT value ->> '$[0]' AS name, value ->> '$[1]' AS epoch FROM json_each(?)) AS h
       WHERE cluster_leases.name = h.name AND cluster_leases.epoch = h.epoch AND owner = ? AND expires_at > ?
       RETURNING cluster_leases.name AS name`,
    ).all(expiresAt, JSON.stringify(held.map((h) => [h.lease, h.epoch])), owner, now) as Row[];
    return new Set(rows.map((r) => String(r.name)));
  };
  return {
    async heartbeat(n) {
      const at = clock();
      stmt(
        `INSERT INTO cluster_nodes (id, name, version, role, started_at, heartbeat_at, owns) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, owns = excluded.owns`,
      ).run(n.id, n.name, n.version, n.role, n.startedAt, at, JSON.stringify(n.owns));
      return at;
    },
    async now() {
      return clock();
    },
    async nodes() {
      return (stmt('SELECT * FROM cluster_nodes ORDER BY started_at, id').all() as Row[]).map(toNode);
    },
    async leave(id) {
      stmt('DELETE FROM cluster_nodes WHERE id = ?').run(id);
    },
    async pruneNodes(ageMs) {
      return Number(stmt('DELETE FROM cluster_nodes WHERE heartbeat_at < ?').run(clock() - ageMs).changes);
    },
    async acquire(name, owner, ttlMs): Promise<Acquired> {
      const now = clock();
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
    async acquireAll(names, owner, ttlMs) {
      if (names.length === 0) return [];
      const now = clock();
      // One statement, acquire()'s rules as an upsert: a new name gets epoch 1; an existing lease is
      // taken only when expired (next epoch) or already ours (same epoch); RETURNING names only
      // those taken. (`WHERE true` tells SQLite's parser the ON CONFLICT belongs to the INSERT.)
      const rows = stmt(
        `INSERT INTO cluster_leases (name, owner, epoch, expires_at) SELECT DISTINCT value, ?, 1, ? FROM json_each(?) WHERE true
         ON CONFLICT (name) DO UPDATE SET
           owner = excluded.owner,
           epoch = CASE WHEN cluster_leases.owner = excluded.owner AND cluster_leases.expires_at > ? THEN cluster_leases.epoch ELSE cluster_leases.epoch + 1 END,
           expires_at = excluded.expires_at
         WHERE cluster_leases.expires_at <= ? OR cluster_leases.owner = excluded.owner
         RETURNING name, owner, epoch, expires_at`,
      ).all(owner, now + ttlMs, JSON.stringify(names), now, now) as Row[];
      return rows.map(toLease);
    },
    async renew(f, ttlMs) {
      return setExpiry(f.owner, [f], ttlMs).has(f.lease);
    },
    async renewAll(owner, held, ttlMs) {
      return setExpiry(owner, held, ttlMs);
    },
    async release(f) {
      return setExpiry(f.owner, [f], 0).has(f.lease);
    },
    async releaseAll(owner, held) {
      return setExpiry(owner, held, 0);
    },
    async leases(prefix) {
      const rows = (prefix === undefined
        ? stmt('SELECT * FROM cluster_leases ORDER BY name').all()
        : stmt('SELECT * FROM cluster_leases WHERE substr(name, 1, ?) = ? ORDER BY name').all(prefix.length, prefix)) as Row[];
      return rows.map(toLease);
    },
  };
}
