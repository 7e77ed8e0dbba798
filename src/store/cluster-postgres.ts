/**
 * The node registry and leases on PostgreSQL (see cluster.ts): what several nodes share.
 */
import type pg from 'pg';
import type { Acquired, ClusterRepository, Fence, HeldLease, LeaseClock } from './cluster.ts';
import { leaseLost } from './cluster.ts';
import { toLease, toNode } from './cluster-rows.ts';
import type { Queryable, Transaction } from './postgres.ts';

/**
 * The lease clock in SQL, as epoch milliseconds: `COALESCE($n::bigint, …)` with the parameter
 * `clockParam(clock)` gives, NULL for the database clock (the server's clock_timestamp(), so every
 * node decides by the same clock, read when the statement runs) or a process clock's time (tests).
 * Statements that use it more than once read it once in a CTE: PostgreSQL evaluates a CTE with a
 * volatile function once, so an expiry set and the expiry compared in one statement agree.
 */
export const nowSql = (param: string) => `COALESCE(${param}::bigint, (extract(epoch from clock_timestamp()) * 1000)::bigint)`;
export const clockParam = (clock: LeaseClock): number | null => (clock === 'database' ? null : clock());

/** The lease clock's time now, epoch ms (one round trip for the database clock). */
export async function postgresNow(db: Queryable, clock: LeaseClock): Promise<number> {
  return (await db.query<{ now: number }>(`SELECT ${nowSql('$1')} AS now`, [clockParam(clock)])).rows[0]!.now;
}

/** Checks a fence inside the write's transaction (see postgresFenceCheck). */
export type PostgresFenceCheck = (db: Queryable, fence: Fence | undefined) => Promise<void>;

/**
 * Throws MB_CLUSTER_LEASE_LOST unless the fence still holds by `clock`; run it first inside the
 * write's transaction. FOR SHARE keeps a takeover (an UPDATE of the lease row) waiting until this
 * transaction has committed, so a write is either before the takeover or refused.
 */
export function postgresFenceCheck(clock: LeaseClock): PostgresFenceCheck {
  return async (db, fence) => {
    if (!fence) return;
    const r = await db.query(`SELECT 1 FROM cluster_leases WHERE name = $1 AND owner = $2 AND epoch = $3 AND expires_at > ${nowSql('$4')} FOR SHARE`, [
      fence.lease,
      fence.owner,
      fence.epoch,
      clockParam(clock),
    ]);
    if (r.rowCount === 0) throw leaseLost(fence);
  };
}

export function createPostgresCluster(pool: pg.Pool, transaction: Transaction, clock: LeaseClock): ClusterRepository {
  /**
   * Moves the expiry of the leases `owner` holds at exactly these epochs and that have not run out
   * to now + ttlMs (0: a release); returns their names.
   */
  const setExpiry = async (owner: string, held: readonly HeldLease[], ttlMs: number): Promise<Set<string>> => {
    if (held.length === 0) return new Set();
    const { rows } = await pool.query<{ name: string }>(
      `WITH t AS (SELECT ${nowSql('$5')} AS now)
       UPDATE cluster_leases l SET expires_at = t.now + $1 FROM t, unnest($2::text[], $3::bigint[]) AS h(name, epoch)
       WHERE l.name = h.name AND l.epoch = h.epoch AND l.owner = $4 AND l.expires_at > t.now RETURNING l.name`,
      [ttlMs, held.map((h) => h.lease), held.map((h) => h.epoch), owner, clockParam(clock)],
    );
    return new Set(rows.map((r) => r.name));
  };
  let offset: number | undefined;
  return {
    async heartbeat(n) {
      // The server's clock comes back with the heartbeat: leases and claims no longer depend on
      // this process's clock, but the relay's retry schedule and rate limits, tokens and TLS do, so
      // each node measures its own against the server's (the real clock, not a test's) and says
      // when it is off.
      const sent = Date.now();
      const { rows } = await pool.query<{ heartbeat_at: number; db_now: number }>(
        `INSERT INTO cluster_nodes (id, name, version, role, started_at, heartbeat_at, owns) VALUES ($1, $2, $3, $4, $5, ${nowSql('$6')}, $7)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, owns = excluded.owns
         RETURNING heartbeat_at, (extract(epoch from clock_timestamp()) * 1000)::float8 AS db_now`,
        [n.id, n.name, n.version, n.role, n.startedAt, clockParam(clock), JSON.stringify(n.owns)],
      );
      const row = rows[0]!;
      offset = Math.round((sent + Date.now()) / 2 - row.db_now);
      return row.heartbeat_at;
    },
    clockOffset: () => offset,
    now: () => postgresNow(pool, clock),
    async nodes() {
      return (await pool.query('SELECT * FROM cluster_nodes ORDER BY started_at, id')).rows.map(toNode);
    },
    async leave(id) {
      await pool.query('DELETE FROM cluster_nodes WHERE id = $1', [id]);
    },
    async pruneNodes(ageMs) {
      return (await pool.query(`DELETE FROM cluster_nodes WHERE heartbeat_at < ${nowSql('$2')} - $1`, [ageMs, clockParam(clock)])).rowCount ?? 0;
    },
    async acquire(name, owner, ttlMs): Promise<Acquired> {
      return transaction(async (db): Promise<Acquired> => {
        // One time for the whole transaction: the statements below decide on the same instant.
        const now = await postgresNow(db, clock);
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
    async acquireAll(names, owner, ttlMs) {
      if (names.length === 0) return [];
      // One statement: existing leases that are free, expired or already ours are locked in name
      // order and taken (a new holder gets the next epoch, ours keeps its epoch, as acquire()); the
      // names without a row are inserted with epoch 1. SKIP LOCKED: a row another transaction holds
      // (its owner renewing, or writing under its fence FOR SHARE) is not ours to take now, and
      // waiting for it could deadlock with that owner's renewal of several rows in another order.
      // Only names without a row are inserted (an insert over an existing row would wait for its
      // renewal); one inserted concurrently by another node waits for that node's commit and is
      // then left to it (ON CONFLICT DO NOTHING); sorted names keep two such inserts from deadlocking.
      const { rows } = await pool.query(
        `WITH t AS (SELECT ${nowSql('$3')} AS now),
         wanted AS (SELECT DISTINCT unnest($1::text[]) AS name),
         free AS (
           SELECT l.name FROM cluster_leases l JOIN wanted w ON w.name = l.name, t
           WHERE l.expires_at <= t.now OR l.owner = $2 ORDER BY l.name FOR UPDATE OF l SKIP LOCKED
         ),
         taken AS (
           UPDATE cluster_leases l SET owner = $2, epoch = CASE WHEN l.owner = $2 AND l.expires_at > t.now THEN l.epoch ELSE l.epoch + 1 END, expires_at = t.now + $4
           FROM free, t WHERE l.name = free.name
           RETURNING l.name, l.owner, l.epoch, l.expires_at
         ),
         fresh AS (
           INSERT INTO cluster_leases (name, owner, epoch, expires_at)
           SELECT w.name, $2, 1, t.now + $4 FROM wanted w, t WHERE NOT EXISTS (SELECT 1 FROM cluster_leases l WHERE l.name = w.name) ORDER BY w.name
           ON CONFLICT (name) DO NOTHING
           RETURNING name, owner, epoch, expires_at
         )
         SELECT * FROM taken UNION ALL SELECT * FROM fresh`,
        [[...names], owner, clockParam(clock), ttlMs],
      );
      return rows.map((r) => toLease(r as Record<string, unknown>));
    },
    async renew(f, ttlMs) {
      return (await setExpiry(f.owner, [f], ttlMs)).has(f.lease);
    },
    async renewAll(owner, held, ttlMs) {
      return setExpiry(owner, held, ttlMs);
    },
    async release(f) {
      return (await setExpiry(f.owner, [f], 0)).has(f.lease);
    },
    async releaseAll(owner, held) {
      return setExpiry(owner, held, 0);
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
