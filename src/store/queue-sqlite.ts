/**
 * The relay queue on SQLite. Each call is one statement or one IMMEDIATE transaction; with the
 * store's synchronous=FULL a call that returned is on disk, which the relay relies on before it
 * answers 250 to DATA. The claim and delivered updates are the exception (see `relaxed`).
 */
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { durable, relaxed as relaxedCommit, statementCache, transaction } from './sqlite-tools.ts';
import { QUEUE_STATES, type QueueListQuery, type QueueRecord, type QueueRepository, type QueueState, type QueueUpdate } from './queue.ts';

export const queueMigrations: Array<{ id: string; sql: string }> = [
  {
    id: 'relay-1',
    sql: `CREATE TABLE relay_queue (
       id TEXT PRIMARY KEY,
       state TEXT NOT NULL CHECK (state IN ('incoming', 'active', 'deferred', 'held', 'sent', 'bounced')),
       kind TEXT NOT NULL CHECK (kind IN ('message', 'dsn')),
       sender TEXT NOT NULL,
       recipients TEXT NOT NULL,
       mailbox TEXT NOT NULL,
       relay_user TEXT,
       client_ip TEXT,
       size INTEGER NOT NULL,
       body_type TEXT NOT NULL,
       smtputf8 INTEGER NOT NULL,
       received_at INTEGER NOT NULL,
       attempts INTEGER NOT NULL,
       next_attempt_at INTEGER NOT NULL,
       last_attempt_at INTEGER,
       last_error TEXT,
       hold_reason TEXT,
       origin_id TEXT,
       updated_at INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX relay_queue_ready ON relay_queue (state, next_attempt_at);
     CREATE INDEX relay_queue_mailbox ON relay_queue (mailbox, state);`,
  },
  {
    id: 'relay-2',
    sql: `ALTER TABLE relay_queue ADD COLUMN retry_requested_at INTEGER`,
  },
  {
    // The manager asks "what is due next" after every delivery. Without this index each question
    // sorted every waiting message (quadratic under a backlog); with it the answer is the first
    // entries of the index. The queries name it (INDEXED BY): without statistics SQLite prefers
    // relay_queue_ready and sorts; they must spell the same WHERE to be allowed to use it.
    id: 'relay-3',
    sql: `CREATE INDEX relay_queue_due ON relay_queue (next_attempt_at, id) WHERE state IN ('incoming', 'deferred')`,
  },
];

interface Row {
  id: string;
  state: QueueState;
  kind: 'message' | 'dsn';
  sender: string;
  recipients: string;
  mailbox: string;
  relay_user: string | null;
  client_ip: string | null;
  size: number;
  body_type: '7bit' | '8bitmime';
  smtputf8: number;
  received_at: number;
  attempts: number;
  next_attempt_at: number;
  last_attempt_at: number | null;
  last_error: string | null;
  hold_reason: string | null;
  origin_id: string | null;
  retry_requested_at: number | null;
  updated_at: number;
}

const RELAXED_STATES: ReadonlySet<QueueState> = new Set<QueueState>(['active', 'sent']);

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
    `INSERT INTO relay_queue (id, state, kind, sender, recipients, mailbox, relay_user, client_ip, size, body_type, smtputf8,
       received_at, attempts, next_attempt_at, last_attempt_at, last_error, hold_reason, origin_id, retry_requested_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const getStmt = prepare('SELECT * FROM relay_queue WHERE id = ?');

  function insertRows(records: QueueRecord[]): void {
    for (const r of records) {
      insertStmt.run(
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
        r.smtpUtf8 ? 1 : 0,
        r.receivedAt,
        r.attempts,
        r.nextAttemptAt,
        r.lastAttemptAt ?? null,
        r.lastError ? JSON.stringify(r.lastError) : null,
        r.holdReason ?? null,
        r.originId ?? null,
        r.retryRequestedAt ?? null,
        r.updatedAt,
      );
    }
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
    const sets: string[] = ['state = ?', 'updated_at = ?'];
    const values: SQLInputValue[] = [u.state, u.updatedAt];
    if (u.attempts !== undefined) {
      sets.push('attempts = ?');
      values.push(u.attempts);
    }
    if (u.nextAttemptAt !== undefined) {
      sets.push('next_attempt_at = ?');
      values.push(u.nextAttemptAt);
    }
    if (u.lastAttemptAt !== undefined) {
      sets.push('last_attempt_at = ?');
      values.push(u.lastAttemptAt);
    }
    if (u.lastError !== undefined) {
      sets.push('last_error = ?');
      values.push(u.lastError ? JSON.stringify(u.lastError) : null);
    }
    if (u.holdReason !== undefined) {
      sets.push('hold_reason = ?');
      values.push(u.holdReason);
    }
    if (u.retryRequestedAt !== undefined) {
      sets.push('retry_requested_at = ?');
      values.push(u.retryRequestedAt);
    }
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
      const where: string[] = [];
      const values: SQLInputValue[] = [];
      if (query.states?.length) {
      where.push(`state IN (${placeholders(query.states)})`);
      values.push(...query.states);
    }
      if (query.after) {
      where.push('id > ?');
      values.push(query.after);
    }
      const sql = `SELECT * FROM relay_queue ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id LIMIT ?`;
      const rows = prepare(sql).all(...values, query.limit ?? 100) as unknown as Row[];
      return rows.map(toRecord);
    },
    async counts() {
      const out = Object.fromEntries(QUEUE_STATES.map((s) => [s, 0])) as Record<QueueState, number>;
      const rows = prepare('SELECT state, COUNT(*) AS n FROM relay_queue GROUP BY state').all() as Array<{ state: QueueState; n: number }>;
      for (const r of rows) out[r.state] = r.n;
      return out;
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

function placeholders(list: readonly unknown[]): string {
  return list.map(() => '?').join(', ');
}

function toRecord(r: Row): QueueRecord {
  const rec: QueueRecord = {
    id: r.id,
    state: r.state,
    kind: r.kind,
    sender: r.sender,
    recipients: JSON.parse(r.recipients) as string[],
    mailbox: r.mailbox,
    size: r.size,
    bodyType: r.body_type,
    smtpUtf8: r.smtputf8 === 1,
    receivedAt: r.received_at,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    updatedAt: r.updated_at,
  };
  if (r.relay_user !== null) rec.relayUser = r.relay_user;
  if (r.client_ip !== null) rec.clientIp = r.client_ip;
  if (r.last_attempt_at !== null) rec.lastAttemptAt = r.last_attempt_at;
  if (r.last_error !== null) rec.lastError = JSON.parse(r.last_error) as QueueRecord['lastError'];
  if (r.hold_reason !== null) rec.holdReason = r.hold_reason;
  if (r.origin_id !== null) rec.originId = r.origin_id;
  if (r.retry_requested_at !== null) rec.retryRequestedAt = r.retry_requested_at;
  return rec;
}
