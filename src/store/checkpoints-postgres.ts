/**
 * The connector checkpoints on PostgreSQL (see checkpoints.ts; the SQLite version is
 * checkpoints-sqlite.ts). Each method is one transaction and has committed when it resolves.
 */
import type pg from 'pg';
import type { Checkpoint, CheckpointRepository, CheckpointScope, LeaseResult, MessageRecord } from './checkpoints.ts';
import { toInFlight, toMessageRecord, toScopeSummary, type Row } from './checkpoint-rows.ts';
import type { Transaction } from './postgres.ts';
import type { Fence, LeaseClock } from './cluster.ts';
import { postgresFenceCheck, postgresNow } from './cluster-postgres.ts';

const S = 'connector = $1 AND mailbox = $2 AND folder = $3';
const sv = (s: CheckpointScope): unknown[] => [s.connector, s.mailbox, s.folder];
const now = () => new Date().toISOString();

/** `fence`: every write runs in a transaction that first checks the lease still holds (cluster.ts). */
export function createPostgresCheckpoints(pool: pg.Pool, transaction: Transaction, clock: LeaseClock, fence?: Fence): CheckpointRepository {
  const fenceCheck = postgresFenceCheck(clock);
  const write = <T>(fn: (db: pg.PoolClient | pg.Pool) => Promise<T>): Promise<T> =>
    fence
      ? transaction(async (db) => {
          await fenceCheck(db, fence);
          return fn(db);
        })
      : fn(pool);
  const tx = <T>(fn: (db: pg.PoolClient) => Promise<T>): Promise<T> =>
    transaction(async (db) => {
      await fenceCheck(db, fence);
      return fn(db);
    });
  const advanceIn = async (db: pg.PoolClient | pg.Pool, scope: CheckpointScope, to: { position?: number; cursor?: string | null }) => {
    if (to.position !== undefined) {
      await db.query(`UPDATE connector_checkpoint SET position = GREATEST(position, $4), updated_at = $5 WHERE ${S}`, [...sv(scope), to.position, now()]);
    }
    if (to.cursor !== undefined) {
      await db.query(`UPDATE connector_checkpoint SET cursor = $4, updated_at = $5 WHERE ${S}`, [...sv(scope), to.cursor, now()]);
    }
  };

  return {
    async get(scope) {
      const { rows } = await pool.query<Row>(`SELECT epoch, position, cursor, dedupe_below, updated_at FROM connector_checkpoint WHERE ${S}`, sv(scope));
      const r = rows[0];
      if (!r) return undefined;
      const cp: Checkpoint = { epoch: String(r.epoch), position: Number(r.position), dedupeBelow: Number(r.dedupe_below), updatedAt: String(r.updated_at) };
      if (r.cursor !== null) cp.cursor = String(r.cursor);
      return cp;
    },

    async setEpoch(scope, epoch, dedupeBelow) {
      await tx(async (db) => {
        await db.query(
          `INSERT INTO connector_checkpoint (connector, mailbox, folder, epoch, position, cursor, dedupe_below, updated_at)
           VALUES ($1, $2, $3, $4, 0, NULL, $5, $6)
           ON CONFLICT (connector, mailbox, folder) DO UPDATE SET epoch = excluded.epoch, position = 0, cursor = NULL,
             dedupe_below = excluded.dedupe_below, updated_at = excluded.updated_at`,
          [...sv(scope), epoch, dedupeBelow, now()],
        );
        await db.query(`DELETE FROM connector_inflight WHERE ${S} AND epoch <> $4`, [...sv(scope), epoch]);
      });
    },

    async advance(scope, to) {
      await tx((db) => advanceIn(db, scope, to));
    },

    async begin(scope, e) {
      await write((db) => db.query(
        `INSERT INTO connector_inflight (connector, mailbox, folder, epoch, item, key, delivery_id, started_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (connector, mailbox, folder, epoch, item) DO UPDATE SET key = excluded.key, delivery_id = excluded.delivery_id`,
        [...sv(scope), e.epoch, e.item, e.key, e.deliveryId, now()],
      ));
    },

    async inFlight(scope) {
      const { rows } = await pool.query<Row>(`SELECT epoch, item, key, delivery_id, started_at FROM connector_inflight WHERE ${S} ORDER BY started_at, item`, sv(scope));
      return rows.map(toInFlight);
    },

    async abandon(scope, epoch, item) {
      await write((db) => db.query(`DELETE FROM connector_inflight WHERE ${S} AND epoch = $4 AND item = $5`, [...sv(scope), epoch, item]));
    },

    async record(scope, o, to) {
      await tx(async (db) => {
        await db.query(
          `INSERT INTO connector_message (connector, mailbox, folder, epoch, item, key, state, code, size, at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (connector, mailbox, folder, epoch, item) DO UPDATE SET key = excluded.key, state = excluded.state,
             code = excluded.code, size = excluded.size, at = excluded.at`,
          [...sv(scope), o.epoch, o.item, o.key, o.state, o.code ?? null, o.size, now()],
        );
        await db.query(`DELETE FROM connector_inflight WHERE ${S} AND epoch = $4 AND item = $5`, [...sv(scope), o.epoch, o.item]);
        if (to) await advanceIn(db, scope, to);
      });
    },

    async lookup(scope, epoch, items) {
      const out = new Map<string, MessageRecord>();
      if (items.length === 0) return out;
      const { rows } = await pool.query<Row>(
        `SELECT epoch, item, key, state, code, size, at FROM connector_message WHERE ${S} AND epoch = $4 AND item = ANY($5)`,
        [...sv(scope), epoch, items],
      );
      for (const r of rows) out.set(String(r.item), toMessageRecord(r));
      return out;
    },

    async deliveredKeys(scope, keys, exceptEpoch) {
      if (keys.length === 0) return new Set();
      const { rows } = await pool.query<Row>(
        `SELECT DISTINCT key FROM connector_message WHERE ${S} AND epoch <> $4 AND state IN ('delivered', 'done') AND key = ANY($5)`,
        [...sv(scope), exceptEpoch, [...new Set(keys)]],
      );
      return new Set(rows.map((r) => String(r.key)));
    },

    async byState(scope, epoch, state) {
      const { rows } = await pool.query<Row>(
        `SELECT epoch, item, key, state, code, size, at FROM connector_message WHERE ${S} AND epoch = $4 AND state = $5 ORDER BY at, item`,
        [...sv(scope), epoch, state],
      );
      return rows.map(toMessageRecord);
    },

    async markDone(scope, epoch, items) {
      if (items.length === 0) return;
      await write((db) =>
        db.query(`UPDATE connector_message SET state = 'done', at = $6 WHERE ${S} AND epoch = $4 AND item = ANY($5) AND state = 'delivered'`, [...sv(scope), epoch, items, now()]),
      );
    },

    async prune(scope, before, states) {
      if (states.length === 0) return 0;
      const r = await write((db) => db.query(`DELETE FROM connector_message WHERE ${S} AND at < $4 AND state = ANY($5)`, [...sv(scope), before.toISOString(), states]));
      return r.rowCount ?? 0;
    },

    async list(connector) {
      const { rows } = await pool.query<Row>(
        `SELECT c.mailbox, c.folder, c.epoch, c.position, c.cursor, c.dedupe_below, c.updated_at,
           (SELECT COUNT(*) FROM connector_message m WHERE m.connector = c.connector AND m.mailbox = c.mailbox AND m.folder = c.folder AND m.state IN ('delivered', 'done')) AS delivered,
           (SELECT COUNT(*) FROM connector_message m WHERE m.connector = c.connector AND m.mailbox = c.mailbox AND m.folder = c.folder AND m.state = 'rejected') AS rejected,
           (SELECT COUNT(*) FROM connector_inflight i WHERE i.connector = c.connector AND i.mailbox = c.mailbox AND i.folder = c.folder) AS inflight
         FROM connector_checkpoint c WHERE c.connector = $1 ORDER BY c.mailbox, c.folder`,
        [connector],
      );
      return rows.map((r) => toScopeSummary(connector, r));
    },

    async claim(name, owner, ttlMs, steal): Promise<LeaseResult> {
      return transaction(async (db): Promise<LeaseResult> => {
        // The lease clock (the database server's): a node whose own clock runs ahead cannot take a live run lease.
        const t = await postgresNow(db, clock);
        // Make sure a row exists, then lock it: two nodes claiming a new lease take turns here.
        await db.query('INSERT INTO connector_lease (name, owner, expires_at) VALUES ($1, $2, 0) ON CONFLICT (name) DO NOTHING', [name, owner]);
        const { rows } = await db.query<Row>('SELECT owner, expires_at FROM connector_lease WHERE name = $1 FOR UPDATE', [name]);
        const cur = rows[0]!;
        if (String(cur.owner) !== owner && Number(cur.expires_at) > t && !steal?.(String(cur.owner))) {
          return { ok: false, owner: String(cur.owner), expiresAt: Number(cur.expires_at) };
        }
        await db.query('UPDATE connector_lease SET owner = $2, expires_at = $3 WHERE name = $1', [name, owner, t + ttlMs]);
        return { ok: true };
      });
    },

    async release(name, owner) {
      await pool.query('DELETE FROM connector_lease WHERE name = $1 AND owner = $2', [name, owner]);
    },

    fenced(f) {
      return createPostgresCheckpoints(pool, transaction, clock, f);
    },
  };
}
