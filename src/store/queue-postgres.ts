/**
 * The relay queue on PostgreSQL: the same rows and compare-and-set updates as the SQLite version
 * (src/store/queue-sqlite.ts). A CAS is one UPDATE … WHERE state IN (…) RETURNING, which
 * PostgreSQL makes atomic across nodes: two nodes that claim the same message both run it, and
 * only one gets the row back.
 */
import type pg from 'pg';
import { QUEUE_STATES, type QueueListQuery, type QueueRecord, type QueueRepository, type QueueState, type QueueUpdate } from './queue.ts';
import { COLUMNS, RELAXED_STATES, recordValues, toRecord, updateColumns, type Row } from './queue-rows.ts';
import type { Queryable, Transaction } from './postgres.ts';
import { tally } from './rows.ts';

export function createPostgresQueueRepository(pool: pg.Pool, transaction: Transaction): QueueRepository {
  async function insertRows(db: Queryable, records: QueueRecord[]): Promise<void> {
    // One multi-row INSERT: a group commit of many accepted messages is one round trip.
    const values: unknown[] = [];
    const tuples = records.map((r) => {
      const row = recordValues(r, (b) => b);
      const base = values.length;
      values.push(...row);
      return `(${row.map((_, i) => `$${base + i + 1}`).join(', ')})`;
    });
    await db.query(`INSERT INTO relay_queue (${COLUMNS}) VALUES ${tuples.join(', ')}`, values);
  }

  async function update(db: Queryable, id: string | undefined, from: readonly QueueState[], u: QueueUpdate): Promise<Row[]> {
    const columns = updateColumns(u);
    const values: unknown[] = columns.map(([, v]) => v);
    const sets = columns.map(([c], i) => `${c} = $${i + 1}`);
    values.push([...from]);
    const where = [`state = ANY($${values.length})`];
    if (id !== undefined) {
      values.push(id);
      where.unshift(`id = $${values.length}`);
    }
    const { rows } = await db.query<Row>(`UPDATE relay_queue SET ${sets.join(', ')} WHERE ${where.join(' AND ')} RETURNING *`, values);
    return rows;
  }

  return {
    async insert(records) {
      if (records.length === 0) return;
      await insertRows(pool, records);
    },
    async get(id) {
      const { rows } = await pool.query<Row>('SELECT * FROM relay_queue WHERE id = $1', [id]);
      return rows[0] && toRecord(rows[0]);
    },
    async list(query: QueueListQuery = {}) {
      const where: string[] = [];
      const values: unknown[] = [];
      if (query.states?.length) {
        values.push([...query.states]);
        where.push(`state = ANY($${values.length})`);
      }
      if (query.after) {
        values.push(query.after);
        where.push(`id > $${values.length}`);
      }
      values.push(query.limit ?? 100);
      const { rows } = await pool.query<Row>(
        `SELECT * FROM relay_queue ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id LIMIT $${values.length}`,
        values,
      );
      return rows.map(toRecord);
    },
    async counts() {
      return tally(QUEUE_STATES, (await pool.query<{ state: QueueState; n: number }>('SELECT state, COUNT(*) AS n FROM relay_queue GROUP BY state')).rows);
    },
    async ids(states) {
      if (states.length === 0) return [];
      const { rows } = await pool.query<{ id: string }>('SELECT id FROM relay_queue WHERE state = ANY($1)', [[...states]]);
      return rows.map((r) => r.id);
    },
    async ready(now, limit, exclude = []) {
      const { rows } = await pool.query<Row>(
        `SELECT * FROM relay_queue WHERE state IN ('incoming', 'deferred') AND next_attempt_at <= $1 AND NOT (mailbox = ANY($2))
         ORDER BY next_attempt_at, id LIMIT $3`,
        [now, [...exclude], limit],
      );
      return rows.map(toRecord);
    },
    async nextDue(exclude = []) {
      const { rows } = await pool.query<{ due: number | null }>(
        `SELECT MIN(next_attempt_at) AS due FROM relay_queue WHERE state IN ('incoming', 'deferred') AND NOT (mailbox = ANY($1))`,
        [[...exclude]],
      );
      return rows[0]?.due ?? undefined;
    },
    async transition(id, from, u) {
      const rows = RELAXED_STATES.has(u.state)
        ? await transaction((c) => update(c, id, from, u), { relaxed: true })
        : await update(pool, id, from, u);
      return rows[0] && toRecord(rows[0]);
    },
    async transitionAndInsert(id, from, u, records) {
      return transaction(async (c) => {
        const rows = await update(c, id, from, u);
        if (!rows[0]) return undefined;
        if (records.length) await insertRows(c, records);
        return toRecord(rows[0]);
      });
    },
    async transitionAll(from, u) {
      return (await update(pool, undefined, from, u)).length;
    },
    async delete(id, from) {
      const r = await pool.query('DELETE FROM relay_queue WHERE id = $1 AND state = ANY($2)', [id, [...from]]);
      return (r.rowCount ?? 0) > 0;
    },
    async sentSince(since) {
      const { rows } = await pool.query<{ mailbox: string; recipients: number; at: number }>(
        `SELECT mailbox, jsonb_array_length(recipients) AS recipients, updated_at AS at FROM relay_queue WHERE state = 'sent' AND updated_at >= $1`,
        [since],
      );
      return rows;
    },
    async retriedSince(since) {
      const { rows } = await pool.query<{ mailbox: string; at: number }>(
        `SELECT mailbox, MAX(retry_requested_at) AS at FROM relay_queue
         WHERE state IN ('incoming', 'deferred') AND retry_requested_at >= $1 GROUP BY mailbox`,
        [since],
      );
      return rows.map((r) => ({ mailbox: r.mailbox, at: r.at }));
    },
    async purge(states, before) {
      if (states.length === 0) return [];
      const { rows } = await pool.query<{ id: string }>('DELETE FROM relay_queue WHERE state = ANY($1) AND updated_at < $2 RETURNING id', [
        [...states],
        before,
      ]);
      return rows.map((r) => r.id);
    },
  };
}
