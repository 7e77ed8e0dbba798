/**
 * The relay queue on PostgreSQL: the same rows and compare-and-set updates as the SQLite version
 * (src/store/queue-sqlite.ts). A CAS is one UPDATE … WHERE state IN (…) RETURNING, which
 * PostgreSQL makes atomic across nodes: two nodes that claim the same message both run it, and
 * only one gets the row back.
 */
import type pg from 'pg';
import { QUEUE_STATES, type QueueListQuery, type QueueRecord, type QueueRepository, type QueueState, type QueueUpdate } from './queue.ts';
import type { Queryable, Transaction } from './postgres.ts';

export const queueMigrationsPg: Array<{ id: string; sql: string }> = [
  {
    id: 'relay-1',
    // COLLATE "C": ids sort by arrival byte for byte, as in SQLite, whatever the database's locale.
    sql: `CREATE TABLE relay_queue (
       id TEXT COLLATE "C" PRIMARY KEY,
       state TEXT NOT NULL CHECK (state IN ('incoming', 'active', 'deferred', 'held', 'sent', 'bounced')),
       kind TEXT NOT NULL CHECK (kind IN ('message', 'dsn')),
       sender TEXT NOT NULL,
       recipients JSONB NOT NULL,
       mailbox TEXT NOT NULL,
       relay_user TEXT,
       client_ip TEXT,
       size BIGINT NOT NULL,
       body_type TEXT NOT NULL,
       smtputf8 BOOLEAN NOT NULL,
       received_at BIGINT NOT NULL,
       attempts INTEGER NOT NULL,
       next_attempt_at BIGINT NOT NULL,
       last_attempt_at BIGINT,
       last_error JSONB,
       hold_reason TEXT,
       origin_id TEXT,
       updated_at BIGINT NOT NULL
     );
     CREATE INDEX relay_queue_ready ON relay_queue (state, next_attempt_at);
     CREATE INDEX relay_queue_mailbox ON relay_queue (mailbox, state);`,
  },
  {
    id: 'relay-2',
    sql: `ALTER TABLE relay_queue ADD COLUMN retry_requested_at BIGINT`,
  },
  {
    // See the SQLite migration of the same name: "what is due next" without sorting the backlog.
    id: 'relay-3',
    sql: `CREATE INDEX relay_queue_due ON relay_queue (next_attempt_at, id) WHERE state IN ('incoming', 'deferred')`,
  },
];

interface Row {
  id: string;
  state: QueueState;
  kind: 'message' | 'dsn';
  sender: string;
  recipients: string[];
  mailbox: string;
  relay_user: string | null;
  client_ip: string | null;
  size: number;
  body_type: '7bit' | '8bitmime';
  smtputf8: boolean;
  received_at: number;
  attempts: number;
  next_attempt_at: number;
  last_attempt_at: number | null;
  last_error: QueueRecord['lastError'] | null;
  hold_reason: string | null;
  origin_id: string | null;
  retry_requested_at: number | null;
  updated_at: number;
}

const COLUMNS = `id, state, kind, sender, recipients, mailbox, relay_user, client_ip, size, body_type, smtputf8,
  received_at, attempts, next_attempt_at, last_attempt_at, last_error, hold_reason, origin_id, retry_requested_at, updated_at`;

/** Same reasoning as the SQLite version's `relaxed`: these two updates may be lost only to a database crash, which resends. */
const RELAXED_STATES: ReadonlySet<QueueState> = new Set<QueueState>(['active', 'sent']);

export function createPostgresQueueRepository(pool: pg.Pool, transaction: Transaction): QueueRepository {
  async function insertRows(db: Queryable, records: QueueRecord[]): Promise<void> {
    // One multi-row INSERT: a group commit of many accepted messages is one round trip.
    const values: unknown[] = [];
    const tuples = records.map((r) => {
      const row = [
        r.id,
        r.state,
        r.kind,
        r.sender,
        JSON.stringify(r.recipients),
        r.mailbox,
        r.relayUser ?? null,
        r.clientIp ?? null,
        r.size,
        r.bodyType,
        r.smtpUtf8,
        r.receivedAt,
        r.attempts,
        r.nextAttemptAt,
        r.lastAttemptAt ?? null,
        r.lastError ? JSON.stringify(r.lastError) : null,
        r.holdReason ?? null,
        r.originId ?? null,
        r.retryRequestedAt ?? null,
        r.updatedAt,
      ];
      const base = values.length;
      values.push(...row);
      return `(${row.map((_, i) => `$${base + i + 1}`).join(', ')})`;
    });
    await db.query(`INSERT INTO relay_queue (${COLUMNS}) VALUES ${tuples.join(', ')}`, values);
  }

  async function update(db: Queryable, id: string | undefined, from: readonly QueueState[], u: QueueUpdate): Promise<Row[]> {
    const values: unknown[] = [u.state, u.updatedAt];
    const sets = ['state = $1', 'updated_at = $2'];
    const set = (column: string, value: unknown) => {
      values.push(value);
      sets.push(`${column} = $${values.length}`);
    };
    if (u.attempts !== undefined) set('attempts', u.attempts);
    if (u.nextAttemptAt !== undefined) set('next_attempt_at', u.nextAttemptAt);
    if (u.lastAttemptAt !== undefined) set('last_attempt_at', u.lastAttemptAt);
    if (u.lastError !== undefined) set('last_error', u.lastError ? JSON.stringify(u.lastError) : null);
    if (u.holdReason !== undefined) set('hold_reason', u.holdReason);
    if (u.retryRequestedAt !== undefined) set('retry_requested_at', u.retryRequestedAt);
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
      const out = Object.fromEntries(QUEUE_STATES.map((s) => [s, 0])) as Record<QueueState, number>;
      const { rows } = await pool.query<{ state: QueueState; n: number }>('SELECT state, COUNT(*) AS n FROM relay_queue GROUP BY state');
      for (const r of rows) out[r.state] = r.n;
      return out;
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

function toRecord(r: Row): QueueRecord {
  const rec: QueueRecord = {
    id: r.id,
    state: r.state,
    kind: r.kind,
    sender: r.sender,
    recipients: r.recipients,
    mailbox: r.mailbox,
    size: r.size,
    bodyType: r.body_type,
    smtpUtf8: r.smtputf8,
    receivedAt: r.received_at,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    updatedAt: r.updated_at,
  };
  if (r.relay_user !== null) rec.relayUser = r.relay_user;
  if (r.client_ip !== null) rec.clientIp = r.client_ip;
  if (r.last_attempt_at !== null) rec.lastAttemptAt = r.last_attempt_at;
  if (r.last_error !== null) rec.lastError = r.last_error;
  if (r.hold_reason !== null) rec.holdReason = r.hold_reason;
  if (r.origin_id !== null) rec.originId = r.origin_id;
  if (r.retry_requested_at !== null) rec.retryRequestedAt = r.retry_requested_at;
  return rec;
}
