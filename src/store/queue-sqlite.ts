/**
 * The relay queue on SQLite. Each call is one statement or one IMMEDIATE transaction; with the
 * store's synchronous=FULL a call that returned is on disk, which the relay relies on before it
 * answers 250 to DATA. The claim and delivered updates are the exception (see `relaxed`).
 */
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { durable, inList, placeholders, relaxed as relaxedCommit, statementCache, transaction, where } from './sqlite-tools.ts';
import { QUEUE_STATES, type Bodies, type QueueListQuery, type QueueRecord, type QueueRepository, type QueueState, type QueueUpdate } from './queue.ts';
import { COLUMNS, DAY_MS, MINUTE_MS, RELAXED_STATES, limitedUntil, recordValues, toRecord, updateColumns, type Row } from './queue-rows.ts';
import { tally } from './rows.ts';

/**
 * `clock`: the store's lease clock (openSqliteStore's), which times the claims' leases.
 * `syncWal`, when given: an insert commits without SQLite's own fsync and then awaits this flush of
 * the write-ahead log (see sqlite.ts), so the event loop keeps accepting and delivering while the
 * disk works; the promise still resolves only once the rows are on disk.
 */
export function createSqliteQueueRepository(db: DatabaseSync, clock: () => number, syncWal?: () => Promise<void>): QueueRepository {
  // Statements by their text: the manager's few shapes (ready, nextDue, transition) run after every
  // delivery, and compiling them each time cost more than running them.
  const prepare = statementCache(db);
  const insertStmt = prepare(
    `INSERT INTO relay_queue (${COLUMNS}) VALUES (${placeholders(COLUMNS.split(','))})`,
  );
  const getStmt = prepare('SELECT * FROM relay_queue WHERE id = ?');

  const insertBody = prepare('INSERT INTO relay_bodies (id, body) VALUES (?, ?)');

  function insertRows(records: QueueRecord[], bodies?: Bodies): void {
    for (const r of records) insertStmt.run(...recordValues(r, (b) => (b ? 1 : 0)));
    for (const [id, body] of bodies ?? []) insertBody.run(id, body);
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

  function update(id: string | undefined, from: readonly QueueState[], u: QueueUpdate, token?: string): Row[] {
    const columns = updateColumns(u);
    const sets = columns.map(([c]) => `${c} = ?`);
    const values: SQLInputValue[] = columns.map(([, v]) => v);
    const where = [`state IN (${placeholders(from)})`];
    const whereValues: SQLInputValue[] = [...from];
    if (id !== undefined) {
      where.unshift('id = ?');
      whereValues.unshift(id);
    }
    if (token !== undefined) {
      where.push('claim_token = ?');
      whereValues.push(token);
    }
    const sql = `UPDATE relay_queue SET ${sets.join(', ')} WHERE ${where.join(' AND ')} RETURNING *`;
    return prepare(sql).all(...values, ...whereValues) as unknown as Row[];
  }

  return {
    async insert(records, bodies) {
      if (records.length === 0) return;
      await durable(db, syncWal, () => insertRows(records, bodies));
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
    async claimedPerNode() {
      const rows = prepare("SELECT claimed_by, COUNT(*) AS n FROM relay_queue WHERE state = 'active' AND claimed_by IS NOT NULL GROUP BY claimed_by").all() as Array<{ claimed_by: string; n: number }>;
      return Object.fromEntries(rows.map((r) => [r.claimed_by, Number(r.n)]));
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
    async transition(id, from, u, token) {
      const rows = RELAXED_STATES.has(u.state) ? relaxed(() => update(id, from, u, token)) : update(id, from, u, token);
      return rows[0] && toRecord(rows[0]);
    },
    async transitionAndInsert(id, from, u, records, options = {}) {
      return tx(() => {
        const rows = update(id, from, u, options.token);
        if (!rows[0]) return undefined;
        insertRows(records, options.bodies);
        return toRecord(rows[0]);
      });
    },
    async claim(id, claim) {
      // One writer per database file: node:sqlite is synchronous, so the check and the claim below
      // run without another statement in between.
      const claimRow = () =>
        relaxed(() =>
          prepare(
            `UPDATE relay_queue SET state = 'active', claimed_by = ?, claim_token = ?, lease_until = ?, updated_at = ?
             WHERE id = ? AND state IN ('incoming', 'deferred') RETURNING *`,
          ).get(claim.by, claim.token, clock() + claim.leaseMs, claim.now, id) as Row | undefined,
        );
      const { limits } = claim;
      if (!limits) {
        const row = claimRow();
        return row ? { record: toRecord(row) } : {};
      }
      const head = prepare(`SELECT mailbox, json_array_length(recipients) AS n FROM relay_queue WHERE id = ? AND state IN ('incoming', 'deferred')`).get(id) as
        | { mailbox: string; n: number }
        | undefined;
      if (!head) return {};
      const running = prepare(`SELECT COUNT(*) AS n FROM relay_queue WHERE mailbox = ? AND state = 'active' AND lease_until > ?`).get(head.mailbox, clock()) as { n: number };
      const minute = prepare('SELECT at FROM relay_starts WHERE mailbox = ? AND at > ? ORDER BY at').all(head.mailbox, claim.now - MINUTE_MS) as Array<{ at: number }>;
      const day = prepare('SELECT COALESCE(SUM(recipients), 0) AS n FROM relay_starts WHERE mailbox = ? AND at > ?').get(head.mailbox, claim.now - DAY_MS) as { n: number };
      const dayRows = prepare('SELECT at, recipients FROM relay_starts WHERE mailbox = ? AND at > ? ORDER BY at').all(head.mailbox, claim.now - DAY_MS) as Array<{ at: number; recipients: number }>;
      const limited = await limitedUntil(limits, claim.now, head.n, {
        running: running.n,
        minute: minute.map((r) => r.at),
        dayTotal: day.n,
        day: async () => dayRows.map((r) => [r.at, r.recipients] as [number, number]),
      });
      if (limited) return { limited };
      const row = claimRow();
      if (!row) return {};
      relaxed(() => prepare('INSERT INTO relay_starts (mailbox, at, recipients) VALUES (?, ?, ?)').run(head.mailbox, claim.now, head.n));
      return { record: toRecord(row) };
    },
    async renew(by, tokens, leaseMs) {
      if (tokens.length === 0) return [];
      const rows = prepare(`UPDATE relay_queue SET lease_until = ? WHERE state = 'active' AND claimed_by = ? AND claim_token IN (${placeholders(tokens)}) RETURNING claim_token`)
        .all(clock() + leaseMs, by, ...tokens) as Array<{ claim_token: string }>;
      return rows.map((r) => r.claim_token);
    },
    async takeOver() {
      // next_attempt_at stays (see queue.ts): the lease clock says which claims ran out, not when the message is due.
      const now = clock();
      const rows = prepare(
        `UPDATE relay_queue SET state = 'deferred', updated_at = ? WHERE state = 'active' AND lease_until < ? RETURNING id, claimed_by`,
      ).all(now, now) as Array<{ id: string; claimed_by: string | null }>;
      return rows.map((r) => ({ id: r.id, claimedBy: r.claimed_by ?? undefined }));
    },
    async readBody(id) {
      const row = prepare('SELECT body FROM relay_bodies WHERE id = ?').get(id) as { body: Uint8Array } | undefined;
      return row && Buffer.from(row.body.buffer, row.body.byteOffset, row.body.byteLength);
    },
    async hasBody(id) {
      return prepare('SELECT 1 FROM relay_bodies WHERE id = ?').get(id) !== undefined;
    },
    async deleteBody(id) {
      // Relaxed: a FULL commit here held the event loop in an fsync once per message sent (a fifth of
      // the relay's time under load). Lost to a power failure, the delete leaves a body whose row is
      // finished (recovery removes it at the next start) or, with the row's own relaxed move
      // to sent lost before it (the log keeps commits in order), the body of a message sent again.
      relaxed(() => prepare('DELETE FROM relay_bodies WHERE id = ?').run(id));
    },
    async dropFinishedBodies() {
      return Number(prepare(`DELETE FROM relay_bodies WHERE NOT EXISTS (
  SELECT 1 FROM relay_queue q WHERE q.id = relay_bodies.id AND q.state IN ('incoming', 'active', 'deferred', 'held'))`).run().changes);
    },
    async bodyIds() {
      return (prepare('SELECT id FROM relay_bodies').all() as Array<{ id: string }>).map((r) => r.id);
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
      // Starts leave the day window long before: `before` is at most now.
      prepare('DELETE FROM relay_starts WHERE at < ?').run(before - DAY_MS);
      return rows.map((r) => r.id);
    },
  };
}
