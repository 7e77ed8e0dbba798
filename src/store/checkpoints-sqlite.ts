/**
 * SQLite implementation of the connector checkpoints (see checkpoints.ts). Each method is one
 * transaction; with the store's WAL + synchronous = FULL a resolved promise means fsynced.
 */
import type { DatabaseSync } from 'node:sqlite';
import { durable, relaxed as relaxedCommit, statementCache, transaction } from './sqlite-tools.ts';
import type {
  Checkpoint,
  CheckpointRepository,
  CheckpointScope,
  LeaseResult,
  MessageOutcome,
  MessageRecord,
} from './checkpoints.ts';
import { toInFlight, toMessageRecord, toScopeSummary, type Row } from './checkpoint-rows.ts';
import type { Fence } from './cluster.ts';
import type { SqliteFenceCheck } from './cluster-sqlite.ts';

/** SQLite limits bound parameters; query long item/key lists in slices. */
const SLICE = 500;

/**
 * `syncWal`, when given: recording an outcome commits without SQLite's own fsync and then awaits this
 * flush of the write-ahead log (sqlite.ts), as the relay's accepting insert does. The commit itself
 * already survives kill -9 when it returns, right after the destination's acknowledgement, without
 * waiting behind other messages' fsyncs on the event loop; the promise still resolves only once the
 * row is on disk, before the message is marked, moved or deleted.
 */
export function createSqliteCheckpoints(db: DatabaseSync, fenceCheck: SqliteFenceCheck, syncWal?: () => Promise<void>): CheckpointRepository {
  const stmt = statementCache(db);
  return checkpoints(db, stmt, fenceCheck, syncWal, undefined);
}

/** `fence`: every write first checks, in its transaction, that the lease still holds (cluster.ts). */
function checkpoints(
  db: DatabaseSync,
  stmt: ReturnType<typeof statementCache>,
  fenceCheck: SqliteFenceCheck,
  syncWal: (() => Promise<void>) | undefined,
  fence: Fence | undefined,
): CheckpointRepository {
  const guard = () => fenceCheck(fence);
  const now = () => new Date().toISOString();
  const S = 'connector = ? AND mailbox = ? AND folder = ?';
  const sv = (s: CheckpointScope) => [s.connector, s.mailbox, s.folder] as const;

  const tx = <T>(fn: () => T): T => transaction(db, () => {
    guard();
    return fn();
  });

  /**
   * The in-flight note (begin, abandon) commits without the fsync: in WAL mode a NORMAL commit
   * survives kill -9 and is at risk only from a power or OS failure, where losing it means the
   * message goes out again without the redelivery flag but with the same delivery ID, which is what
   * receivers deduplicate by. The next recording commit (FULL) syncs it too. One fsync less per
   * message keeps the event loop free, so an acknowledgement is recorded sooner after it arrives.
   */
  const relaxed = <T>(fn: () => T): T => relaxedCommit(db, fence ? () => tx(fn) : fn);

  const advanceIn = (scope: CheckpointScope, to: { position?: number; cursor?: string | null }) => {
    if (to.position !== undefined) {
      stmt(`UPDATE connector_checkpoint SET position = MAX(position, ?), updated_at = ? WHERE ${S}`).run(to.position, now(), ...sv(scope));
    }
    if (to.cursor !== undefined) {
      stmt(`UPDATE connector_checkpoint SET cursor = ?, updated_at = ? WHERE ${S}`).run(to.cursor, now(), ...sv(scope));
    }
  };

  const slices = <T>(list: T[]): T[][] => {
    const out: T[][] = [];
    for (let i = 0; i < list.length; i += SLICE) out.push(list.slice(i, i + SLICE));
    return out;
  };

  return {
    async get(scope) {
      const r = stmt(`SELECT epoch, position, cursor, dedupe_below, updated_at FROM connector_checkpoint WHERE ${S}`).get(...sv(scope)) as Row | undefined;
      if (!r) return undefined;
      const cp: Checkpoint = {
        epoch: String(r.epoch),
        position: Number(r.position),
        dedupeBelow: Number(r.dedupe_below),
        updatedAt: String(r.updated_at),
      };
      if (r.cursor !== null) cp.cursor = String(r.cursor);
      return cp;
    },

    async setEpoch(scope, epoch, dedupeBelow) {
      tx(() => {
        stmt(
          `INSERT INTO connector_checkpoint (connector, mailbox, folder, epoch, position, cursor, dedupe_below, updated_at)
           VALUES (?, ?, ?, ?, 0, NULL, ?, ?)
           ON CONFLICT (connector, mailbox, folder) DO UPDATE SET epoch = excluded.epoch, position = 0, cursor = NULL,
             dedupe_below = excluded.dedupe_below, updated_at = excluded.updated_at`,
        ).run(...sv(scope), epoch, dedupeBelow, now());
        // In-flight entries of an older epoch name items that no longer exist under that number.
        stmt(`DELETE FROM connector_inflight WHERE ${S} AND epoch <> ?`).run(...sv(scope), epoch);
      });
    },

    async advance(scope, to) {
      tx(() => advanceIn(scope, to));
    },

    async begin(scope, e) {
      relaxed(() =>
        stmt(
          `INSERT INTO connector_inflight (connector, mailbox, folder, epoch, item, key, delivery_id, started_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (connector, mailbox, folder, epoch, item) DO UPDATE SET key = excluded.key, delivery_id = excluded.delivery_id`,
        ).run(...sv(scope), e.epoch, e.item, e.key, e.deliveryId, now()),
      );
    },

    async inFlight(scope) {
      const rows = stmt(`SELECT epoch, item, key, delivery_id, started_at FROM connector_inflight WHERE ${S} ORDER BY started_at, item`).all(
        ...sv(scope),
      ) as Row[];
      return rows.map(toInFlight);
    },

    async abandon(scope, epoch, item) {
      relaxed(() => stmt(`DELETE FROM connector_inflight WHERE ${S} AND epoch = ? AND item = ?`).run(...sv(scope), epoch, item));
    },

    async record(scope, o: MessageOutcome, to) {
      await durable(db, syncWal, () => {
          guard();
          stmt(
            `INSERT INTO connector_message (connector, mailbox, folder, epoch, item, key, state, code, size, at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (connector, mailbox, folder, epoch, item) DO UPDATE SET key = excluded.key, state = excluded.state,
               code = excluded.code, size = excluded.size, at = excluded.at`,
          ).run(...sv(scope), o.epoch, o.item, o.key, o.state, o.code ?? null, o.size, now());
          stmt(`DELETE FROM connector_inflight WHERE ${S} AND epoch = ? AND item = ?`).run(...sv(scope), o.epoch, o.item);
          if (to) advanceIn(scope, to);
      });
    },

    async lookup(scope, epoch, items) {
      const out = new Map<string, MessageRecord>();
      for (const part of slices(items)) {
        const rows = stmt(
          `SELECT epoch, item, key, state, code, size, at FROM connector_message WHERE ${S} AND epoch = ? AND item IN (${part.map(() => '?').join(',')})`,
        ).all(...sv(scope), epoch, ...part) as Row[];
        for (const r of rows) out.set(String(r.item), toMessageRecord(r));
      }
      return out;
    },

    async deliveredKeys(scope, keys, exceptEpoch) {
      const out = new Set<string>();
      for (const part of slices([...new Set(keys)])) {
        const rows = stmt(
          `SELECT DISTINCT key FROM connector_message WHERE ${S} AND epoch <> ? AND state IN ('delivered', 'done') AND key IN (${part.map(() => '?').join(',')})`,
        ).all(...sv(scope), exceptEpoch, ...part) as Row[];
        for (const r of rows) out.add(String(r.key));
      }
      return out;
    },

    async byState(scope, epoch, state) {
      const rows = stmt(`SELECT epoch, item, key, state, code, size, at FROM connector_message WHERE ${S} AND epoch = ? AND state = ? ORDER BY at, item`).all(
        ...sv(scope),
        epoch,
        state,
      ) as Row[];
      return rows.map(toMessageRecord);
    },

    async markDone(scope, epoch, items) {
      tx(() => {
        const s = stmt(`UPDATE connector_message SET state = 'done', at = ? WHERE ${S} AND epoch = ? AND item = ? AND state = 'delivered'`);
        const t = now();
        for (const item of items) s.run(t, ...sv(scope), epoch, item);
      });
    },

    async prune(scope, before, states) {
      if (states.length === 0) return 0;
      guard();
      const r = stmt(`DELETE FROM connector_message WHERE ${S} AND at < ? AND state IN (${states.map(() => '?').join(',')})`).run(
        ...sv(scope),
        before.toISOString(),
        ...states,
      );
      return Number(r.changes);
    },

    async list(connector) {
      const rows = stmt(
        `SELECT c.mailbox, c.folder, c.epoch, c.position, c.cursor, c.dedupe_below, c.updated_at,
           (SELECT COUNT(*) FROM connector_message m WHERE m.connector = c.connector AND m.mailbox = c.mailbox AND m.folder = c.folder AND m.state IN ('delivered', 'done')) AS delivered,
           (SELECT COUNT(*) FROM connector_message m WHERE m.connector = c.connector AND m.mailbox = c.mailbox AND m.folder = c.folder AND m.state = 'rejected') AS rejected,
           (SELECT COUNT(*) FROM connector_inflight i WHERE i.connector = c.connector AND i.mailbox = c.mailbox AND i.folder = c.folder) AS inflight
         FROM connector_checkpoint c WHERE c.connector = ? ORDER BY c.mailbox, c.folder`,
      ).all(connector) as Row[];
      return rows.map((r) => toScopeSummary(connector, r));
    },

    async claim(name, owner, ttlMs, steal): Promise<LeaseResult> {
      return tx((): LeaseResult => {
        const t = Date.now();
        const cur = stmt('SELECT owner, expires_at FROM connector_lease WHERE name = ?').get(name) as Row | undefined;
        if (cur && String(cur.owner) !== owner && Number(cur.expires_at) > t && !steal?.(String(cur.owner))) {
          return { ok: false, owner: String(cur.owner), expiresAt: Number(cur.expires_at) };
        }
        stmt(
          `INSERT INTO connector_lease (name, owner, expires_at) VALUES (?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at`,
        ).run(name, owner, t + ttlMs);
        return { ok: true };
      });
    },

    async release(name, owner) {
      stmt('DELETE FROM connector_lease WHERE name = ? AND owner = ?').run(name, owner);
    },

    fenced(f) {
      return checkpoints(db, stmt, fenceCheck, syncWal, f);
    },
  };
}
