/**
 * The relay queue on PostgreSQL: the same rows and compare-and-set updates as the SQLite version
 * (src/store/queue-sqlite.ts). A CAS is one UPDATE … WHERE state IN (…) RETURNING, which
 * PostgreSQL makes atomic across nodes: two nodes that claim the same message both run it, and
 * only one gets the row back.
 *
 * Several nodes: a claim locks its row with FOR UPDATE SKIP LOCKED (a node never waits for a row
 * another node is claiming, it moves on) and writes holder, token and lease. Shared per-mailbox
 * limits are checked under a transaction-scoped advisory lock on the mailbox, so two nodes cannot
 * both take the last slot; the lock ends with the claim's commit. Bodies (relay_bodies, BYTEA) are
 * inserted in the transaction of their rows, so a row that exists has its body on every node.
 */
import type pg from 'pg';
import { QUEUE_STATES, type Bodies, type QueueListQuery, type QueueRecord, type QueueRepository, type QueueState, type QueueUpdate } from './queue.ts';
import { COLUMNS, DAY_MS, MINUTE_MS, RELAXED_STATES, limitedUntil, recordValues, toRecord, updateColumns, type Row } from './queue-rows.ts';
import type { Queryable, Transaction } from './postgres.ts';
import { clockParam, nowSql } from './cluster-postgres.ts';
import type { LeaseClock } from './cluster.ts';
import { tally } from './rows.ts';

/**
 * `clock` times the claims' leases (lease_until), as it times the cluster's leases: the database
 * server's clock unless a test passes its own, read in the statement that sets or compares them.
 */
export function createPostgresQueueRepository(pool: pg.Pool, transaction: Transaction, clock: LeaseClock): QueueRepository {
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

  async function insertBodies(db: Queryable, bodies: Bodies | undefined): Promise<void> {
    if (!bodies?.size) return;
    const ids = [...bodies.keys()];
    // One statement for the batch: arrays of ids and bodies, unnested into rows.
    await db.query('INSERT INTO relay_bodies (id, body) SELECT * FROM unnest($1::text[], $2::bytea[])', [ids, ids.map((id) => bodies.get(id)!)]);
  }

  async function update(db: Queryable, id: string | undefined, from: readonly QueueState[], u: QueueUpdate, token?: string): Promise<Row[]> {
    const columns = updateColumns(u);
    const values: unknown[] = columns.map(([, v]) => v);
    const sets = columns.map(([c], i) => `${c} = $${i + 1}`);
    values.push([...from]);
    const where = [`state = ANY($${values.length})`];
    if (id !== undefined) {
      values.push(id);
      where.unshift(`id = $${values.length}`);
    }
    if (token !== undefined) {
      values.push(token);
      where.push(`claim_token = $${values.length}`);
    }
    const { rows } = await db.query<Row>(`UPDATE relay_queue SET ${sets.join(', ')} WHERE ${where.join(' AND ')} RETURNING *`, values);
    return rows;
  }

  return {
    async insert(records, bodies) {
      if (records.length === 0) return;
      if (!bodies?.size) return insertRows(pool, records);
      await transaction(async (c) => {
        await insertRows(c, records);
        await insertBodies(c, bodies);
      });
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
    async claimedPerNode() {
      const { rows } = await pool.query<{ claimed_by: string; n: number }>(
        "SELECT claimed_by, COUNT(*)::int AS n FROM relay_queue WHERE state = 'active' AND claimed_by IS NOT NULL GROUP BY claimed_by",
      );
      return Object.fromEntries(rows.map((r) => [r.claimed_by, Number(r.n)]));
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
    async transition(id, from, u, token) {
      const rows = RELAXED_STATES.has(u.state)
        ? await transaction((c) => update(c, id, from, u, token), { relaxed: true })
        : await update(pool, id, from, u, token);
      return rows[0] && toRecord(rows[0]);
    },
    async transitionAndInsert(id, from, u, records, options = {}) {
      return transaction(async (c) => {
        const rows = await update(c, id, from, u, options.token);
        if (!rows[0]) return undefined;
        if (records.length) await insertRows(c, records);
        await insertBodies(c, options.bodies);
        return toRecord(rows[0]);
      });
    },
    async claim(id, claim) {
      // Relaxed like SQLite's claim: a claim lost to a database crash only makes the message be sent
      // once more. Four round trips with limits (row and lock, use, claim and count, commit), as
      // this runs once per delivery.
      return transaction(
        async (c) => {
          const { limits } = claim;
          let recipients = 0;
          if (limits) {
            // The per-mailbox lock is taken in the statement that finds the row; held until COMMIT,
            // so the check and the counted start are one step for all nodes.
            const head = await c.query<{ mailbox: string; n: number }>(
              `SELECT mailbox, jsonb_array_length(recipients) AS n, pg_advisory_xact_lock(hashtextextended('mailbridge.relay:' || mailbox, 0))
               FROM relay_queue WHERE id = $1 AND state IN ('incoming', 'deferred')`,
              [id],
            );
            const row = head.rows[0];
            if (!row) return {};
            recipients = row.n;
            // Running: leases that have not run out by the lease clock; the rate's starts go by the claimers' clocks.
            const use = await c.query<{ running: number; minute: number[] | null; day: number }>(
              `SELECT (SELECT COUNT(*) FROM relay_queue WHERE mailbox = $1 AND state = 'active' AND lease_until > ${nowSql('$2')}) AS running,
                      (SELECT array_agg(at ORDER BY at) FROM relay_starts WHERE mailbox = $1 AND at > $3) AS minute,
                      (SELECT COALESCE(SUM(recipients), 0) FROM relay_starts WHERE mailbox = $1 AND at > $4) AS day`,
              [row.mailbox, clockParam(clock), claim.now - MINUTE_MS, Number.isFinite(limits.recipientsPerDay) ? claim.now - DAY_MS : claim.now],
            );
            const u = use.rows[0]!;
            const limited = await limitedUntil(limits, claim.now, recipients, {
              running: Number(u.running),
              minute: (u.minute ?? []).map(Number),
              dayTotal: Number(u.day),
              day: async () =>
                (await c.query<{ at: number; recipients: number }>('SELECT at, recipients FROM relay_starts WHERE mailbox = $1 AND at > $2 ORDER BY at', [row.mailbox, claim.now - DAY_MS])).rows.map(
                  (r) => [r.at, r.recipients] as [number, number],
                ),
            });
            if (limited) return { limited };
          }
          const claimed = `UPDATE relay_queue SET state = 'active', claimed_by = $2, claim_token = $3, lease_until = ${nowSql('$6')} + $4, updated_at = $5
             WHERE id = (SELECT id FROM relay_queue WHERE id = $1 AND state IN ('incoming', 'deferred') FOR UPDATE SKIP LOCKED)
             RETURNING *`;
          const values = [id, claim.by, claim.token, claim.leaseMs, claim.now, clockParam(clock)];
          const { rows } = limits
            ? await c.query<Row>(
                `WITH claimed AS (${claimed}), counted AS (INSERT INTO relay_starts (mailbox, at, recipients) SELECT mailbox, $5, $7 FROM claimed)
                 SELECT * FROM claimed`,
                [...values, recipients],
              )
            : await c.query<Row>(claimed, values);
          return rows[0] ? { record: toRecord(rows[0]) } : {};
        },
        { relaxed: true },
      );
    },
    async renew(by, tokens, leaseMs) {
      if (tokens.length === 0) return [];
      const { rows } = await pool.query<{ claim_token: string }>(
        `WITH t AS (SELECT ${nowSql('$4')} AS now)
         UPDATE relay_queue SET lease_until = t.now + $1 FROM t WHERE state = 'active' AND claimed_by = $2 AND claim_token = ANY($3) RETURNING claim_token`,
        [leaseMs, by, [...tokens], clockParam(clock)],
      );
      return rows.map((r) => r.claim_token);
    },
    async takeOver() {
      // next_attempt_at stays (see queue.ts): the lease clock says which claims ran out, not when the message is due.
      const { rows } = await pool.query<{ id: string; claimed_by: string | null }>(
        `WITH t AS (SELECT ${nowSql('$1')} AS now)
         UPDATE relay_queue SET state = 'deferred', updated_at = t.now FROM t
         WHERE id IN (SELECT id FROM relay_queue, t WHERE state = 'active' AND lease_until < t.now FOR UPDATE OF relay_queue SKIP LOCKED)
         RETURNING id, claimed_by`,
        [clockParam(clock)],
      );
      return rows.map((r) => ({ id: r.id, claimedBy: r.claimed_by ?? undefined }));
    },
    async readBody(id) {
      const { rows } = await pool.query<{ body: Buffer }>('SELECT body FROM relay_bodies WHERE id = $1', [id]);
      return rows[0]?.body;
    },
    async hasBody(id) {
      return ((await pool.query('SELECT 1 FROM relay_bodies WHERE id = $1', [id])).rowCount ?? 0) > 0;
    },
    async deleteBody(id) {
      await pool.query('DELETE FROM relay_bodies WHERE id = $1', [id]);
    },
    async dropFinishedBodies() {
      // A body is inserted in its row's transaction, so one without a live row is never a message in flight.
      return (await pool.query(`DELETE FROM relay_bodies WHERE NOT EXISTS (
  SELECT 1 FROM relay_queue q WHERE q.id = relay_bodies.id AND q.state IN ('incoming', 'active', 'deferred', 'held'))`)).rowCount ?? 0;
    },
    async bodyIds() {
      return (await pool.query<{ id: string }>('SELECT id FROM relay_bodies')).rows.map((r) => r.id);
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
      // Starts leave the day window long before: `before` is at most now.
      await pool.query('DELETE FROM relay_starts WHERE at < $1', [before - DAY_MS]);
      return rows.map((r) => r.id);
    },
  };
}
