/**
 * The relay queue on SQLite. Each call is one statement or one IMMEDIATE transaction; with the
 * store's synchronous=FULL a call that returned is on disk, which the relay relies on before it
 * answers 250 to DATA. The claim and delivered updates are the exception (see `relaxed`).
 */
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { durable, inList, placeholders, relaxed as relaxedCommit, statementCache, transaction, where } from './sqlite-tools.ts';
import { QUEUE_STATES, type QueueListQuery, type QueueRecord, type QueueRepository, type QueueState, type QueueUpdate } from './queue.ts';
import { COLUMNS, RELAXED_STATES, recordValues, toRecord, updateColumns, type Row } from './queue-rows.ts';
import { tally } from './rows.ts';

/**
 * `syncWal`, when given: an insert commits without SQLite's own fsync and then awaits this flush of
 * the write-ahead log (see sqlite.ts), so the event loop keeps accepting and delivering while the
 * disk works; the promise still resolves only once the rows are on disk.
 */
export function createSqliteQueueRepository(db: DatabaseSync, syncWal?: () => Promise<void>): QueueRepository {
  // Statements by their text: the manager's few shapes (ready, nextDue, transition) run after every
  // delivery, and compiling them each time cost more than running them.
  const prepare = statementCache(db);
  const insertStmt = prepare(
    `INSERT INTO relay_queue (${COLUMNS}) VALUES (${placeholders(COLUMNS.split(','))})`,
  );
  const getStmt = prepare('SELECT * FROM relay_queue WHERE id = ?');

  function insertRows(records: QueueRecord[]): void {
    for (const r of records) insertStmt.run(...recordValues(r, (b) => (b ? 1 : 0)));
  }

  /**
   * Claiming a message (→ active) and recording its delivery (→ sent) commit without the fsync:
   * in WAL mode a NORMAL commit survives a process crash (kill -9) and is only at risk from a power
   * or OS failure, where losing it means the message is sent once more (recovery turns `active`
   * back into `deferred`), never lost. The flush of the next accepted message fsyncs them too; that
   * insert, which backs the 250 reply, is on disk before it resolves (`durable`). These two updates
   * are the hot path of every delivery; fsyncing them halved the relay's throughput.
   */
  const relaxed = <T>(fn: () => T): T => relaxedCommit(db, fn);
  const tx = <T>(fn: () => T): T => transaction(db, fn);

  function update(id: string | undefined, from: readonly QueueState[], u: QueueUpdate): Row[] {
    const columns = updateColumns(u);
    const sets = columns.map(([c]) => `${c} = ?`);
    const values: SQLInputValue[] = columns.map(([, v]) => v);
    const where = [`state IN (${placeholders(from)})`];
    const whereValues: SQLInputValue[] = [...from];
    if (id !== undefined) {
      where.unshift('id = ?');
      whereValues.unshift(id);
    }
    const sql = `UPDATE relay_queue SET ${sets.join(', ')} WHERE ${where.join(' AND ')} RETURNING *`;
    return prepare(sql).all(...values, ...whereValues) as unknown as Row[];
  }

  return {
    async insert(records) {
      if (records.length === 0) return;
      await durable(db, syncWal, () => insertRows(records));
    },
    async get(id) {
      const row = getStmt.get(id) as Row | undefined;
      return row && toRecord(row);
    },
    async list(query: QueueListQuery = {}) {
      const w = where([inList('state', query.states), !!query.after && ['id > ?', [query.after]]]);
      const rows = prepare(`SELECT * FROM relay_queue${w.sql} ORDER BY id LIMIT ?`).all(...w.values, query.limit ?? 100) as unknown as Row[];
      return rows.map(toRecord);
    },
    async counts() {
      return tally(QUEUE_STATES, prepare('SELECT state, COUNT(*) AS n FROM relay_queue GROUP BY state').all() as Array<{ state: QueueState; n: number }>);
    },
    async ids(states) {
      if (states.length === 0) return [];
      const rows = prepare(`SELECT id FROM relay_queue WHERE state IN (${placeholders(states)})`).all(...states) as Array<{ id: string }>;
      return rows.map((r) => r.id);
    },
    async ready(now, limit, exclude = []) {
      const notIn = exclude.length ? `AND mailbox NOT IN (${placeholders(exclude)})` : '';
      const rows = prepare(
          `SELECT * FROM relay_queue INDEXED BY relay_queue_due WHERE state IN ('incoming', 'deferred') AND next_attempt_at <= ? ${notIn}
           ORDER BY next_attempt_at, id LIMIT ?`,
        )
        .all(now, ...exclude, limit) as unknown as Row[];
      return rows.map(toRecord);
    },
    async nextDue(exclude = []) {
      const notIn = exclude.length ? `AND mailbox NOT IN (${placeholders(exclude)})` : '';
      const row = prepare(`SELECT MIN(next_attempt_at) AS due FROM relay_queue INDEXED BY relay_queue_due WHERE state IN ('incoming', 'deferred') ${notIn}`)
        .get(...exclude) as { due: number | null };
      return row.due ?? undefined;
    },
    async transition(id, from, u) {
      const rows = RELAXED_STATES.has(u.state) ? relaxed(() => update(id, from, u)) : update(id, from, u);
      return rows[0] && toRecord(rows[0]);
    },
    async transitionAndInsert(id, from, u, records) {
      return tx(() => {
        const rows = update(id, from, u);
        if (!rows[0]) return undefined;
        insertRows(records);
        return toRecord(rows[0]);
      });
    },
    async transitionAll(from, u) {
      return update(undefined, from, u).length;
    },
    async delete(id, from) {
      const r = prepare(`DELETE FROM relay_queue WHERE id = ? AND state IN (${placeholders(from)})`).run(id, ...from);
      return Number(r.changes) > 0;
    },
    async sentSince(since) {
      return prepare(`SELECT mailbox, json_array_length(recipients) AS recipients, updated_at AS at FROM relay_queue WHERE state = 'sent' AND updated_at >= ?`)
        .all(since) as Array<{ mailbox: string; recipients: number; at: number }>;
    },
    async retriedSince(since) {
      const rows = prepare(
          `SELECT mailbox, MAX(retry_requested_at) AS at FROM relay_queue
           WHERE state IN ('incoming', 'deferred') AND retry_requested_at >= ? GROUP BY mailbox`,
        )
        .all(since) as Array<{ mailbox: string; at: number }>;
      return rows.map((r) => ({ mailbox: r.mailbox, at: r.at }));
    },
    async purge(states, before) {
      if (states.length === 0) return [];
      const rows = prepare(`DELETE FROM relay_queue WHERE state IN (${placeholders(states)}) AND updated_at < ? RETURNING id`)
        .all(...states, before) as Array<{ id: string }>;
      return rows.map((r) => r.id);
    },
  };
}
