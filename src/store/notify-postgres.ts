/**
 * Notify rows on PostgreSQL: the same tables and promises as the SQLite version
 * (src/store/notify-sqlite.ts). JSON columns stay text, as there, so what a caller stores is what
 * it reads back byte for byte.
 *
 * Publishing takes a row lock on the mailbox's sequence first, so two nodes publishing for the same
 * mailbox take turns, and an event id published by both is stored once. Event cursors (for
 * `mailbridge watch`) come from a sequence: across several nodes a cursor can be handed out before
 * an earlier one commits, so `watch` may skip an event published concurrently on another node (the
 * event itself is stored and delivered; only the live view can miss it).
 */
import type pg from 'pg';
import {
  DELIVERY_STATES,
  type DeliveryState,
  type DueDelivery,
  type NotifyRepository,
} from './notify.ts';
import { HEAD, subFields, toDelivery, toEvent, toSub, type DeliveryRow, type EventRow, type SubRow } from './notify-rows.ts';
import type { Queryable, Transaction } from './postgres.ts';
import { clockParam, nowSql, type PostgresFenceCheck } from './cluster-postgres.ts';
import type { LeaseClock } from './cluster.ts';
import { tally } from './rows.ts';

/** A subscription row with its mailboxes, sorted as the SQLite version lists them. */
const SUB = `SELECT s.*, ARRAY(SELECT m.mailbox FROM notify_subscription_mailboxes m WHERE m.subscription_id = s.id ORDER BY m.mailbox) AS mailboxes
  FROM notify_subscriptions s`;

interface SubRowWithMailboxes extends SubRow {
  mailboxes: string[] | null;
}

const toSubscription = (r: SubRowWithMailboxes) => toSub(r, r.mailboxes ?? []);

/** A delivery row with its claim's expiry (lease-clock ms), which a claim's release names. */
type ClaimedRow = DeliveryRow & { claimed_until: number | null };

/**
 * `clock` times the delivery claims (claimed_until), as it times leases: the database server's
 * clock unless a test passes its own; nextAttemptAt stays on the dispatcher's clock.
 */
export function createPostgresNotifyRepository(pool: pg.Pool, transaction: Transaction, fenceCheck: PostgresFenceCheck, clock: LeaseClock): NotifyRepository {
  const getSub = async (db: Queryable, id: string) => (await db.query<SubRowWithMailboxes>(`${SUB} WHERE s.id = $1`, [id])).rows[0];

  return {
    async createSubscription(r) {
      await transaction(async (db) => {
        await db.query(
          `INSERT INTO notify_subscriptions (id, kind, events, params, privacy, label, state, gone_reason, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
          [r.id, r.kind, JSON.stringify(r.events), JSON.stringify(r.params), r.privacy, r.label ?? null, r.state, r.goneReason ?? null, r.createdAt, r.updatedAt],
        );
        await db.query(
          `INSERT INTO notify_subscription_mailboxes (subscription_id, mailbox)
           SELECT $1, m FROM unnest($2::text[]) AS m ON CONFLICT DO NOTHING`,
          [r.id, r.mailboxes.map((m) => m.toLowerCase())],
        );
      });
    },
    async getSubscription(id) {
      const row = await getSub(pool, id);
      return row ? toSubscription(row) : undefined;
    },
    async listSubscriptions(query = {}) {
      const where: string[] = [];
      const values: unknown[] = [];
      if (query.mailbox !== undefined) {
        values.push(query.mailbox.toLowerCase());
        where.push(`s.id IN (SELECT subscription_id FROM notify_subscription_mailboxes WHERE mailbox = $${values.length})`);
      }
      if (query.states && query.states.length > 0) {
        values.push([...query.states]);
        where.push(`s.state = ANY($${values.length})`);
      }
      const { rows } = await pool.query<SubRowWithMailboxes>(`${SUB}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY s.created_at, s.id`, values);
      return rows.map(toSubscription);
    },
    async deleteSubscription(id) {
      const r = await pool.query('DELETE FROM notify_subscriptions WHERE id = $1', [id]);
      return (r.rowCount ?? 0) > 0;
    },
    async markGone(id, reason, now) {
      return transaction(async (db) => {
        const r = await db.query(`UPDATE notify_subscriptions SET state = 'gone', gone_reason = $1, updated_at = $2 WHERE id = $3 AND state = 'active'`, [
          reason,
          now,
          id,
        ]);
        const changed = (r.rowCount ?? 0) > 0;
        if (changed) await db.query(`UPDATE notify_deliveries SET state = 'dropped', updated_at = $1 WHERE subscription_id = $2 AND state = 'pending'`, [now, id]);
        return changed;
      });
    },
    async publish(event, now, fence) {
      const mailbox = event.mailbox.toLowerCase();
      return transaction(async (db) => {
        await fenceCheck(db, fence);
        // Lock the mailbox's sequence row first: publishers of one mailbox take turns, so the
        // duplicate check below sees an event another node committed a moment ago.
        await db.query('INSERT INTO notify_mailboxes (mailbox, last_seq) VALUES ($1, 0) ON CONFLICT (mailbox) DO NOTHING', [mailbox]);
        await db.query('SELECT last_seq FROM notify_mailboxes WHERE mailbox = $1 FOR UPDATE', [mailbox]);
        const existing = (await db.query<EventRow>('SELECT id, mailbox, seq, type, body, created_at FROM notify_events WHERE id = $1', [event.id])).rows[0];
        if (existing) return { event: toEvent(existing), duplicate: true, deliveries: 0 };
        const { rows } = await db.query<{ last_seq: number }>('UPDATE notify_mailboxes SET last_seq = last_seq + 1 WHERE mailbox = $1 RETURNING last_seq', [mailbox]);
        const seq = rows[0]!.last_seq;
        await db.query('INSERT INTO notify_events (id, mailbox, seq, type, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)', [
          event.id,
          mailbox,
          seq,
          event.type,
          event.body,
          now,
        ]);
        const fan = await db.query(
          `INSERT INTO notify_deliveries (subscription_id, event_id, mailbox, seq, state, attempts, created_at, next_attempt_at, updated_at)
           SELECT s.id, $1, $2, $3, 'pending', 0, $4, $4, $4 FROM notify_subscriptions s
           JOIN notify_subscription_mailboxes m ON m.subscription_id = s.id
           WHERE m.mailbox = $2 AND s.state = 'active' AND (s.events = '[]' OR s.events::jsonb ? $5)`,
          [event.id, mailbox, seq, now, event.type],
        );
        return { event: { id: event.id, mailbox, seq, type: event.type, body: event.body, createdAt: now }, duplicate: false, deliveries: fan.rowCount ?? 0 };
      });
    },
    async due(now, limit, busy, claim) {
      // Claimed rows must all be handed out (a claimed row left behind would wait for its claim to
      // run out), and this node's busy lines are claimed already, so a claim asks for `limit` only.
      const extra = claim ? 0 : (busy?.size ?? 0);
      const { rows } = claim
        ? // One statement: the heads are locked (skipping rows another node is claiming right now), then
          // marked as claimed; claims are judged and set by the lease clock (t), due times by `now`.
          await pool.query<ClaimedRow>(
            `WITH t AS (SELECT ${nowSql('$5')} AS now),
             heads AS (
               SELECT d.subscription_id, d.event_id FROM notify_deliveries d
               JOIN notify_subscriptions s ON s.id = d.subscription_id AND s.state = 'active'
               CROSS JOIN t
               WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND (d.claimed_until IS NULL OR d.claimed_until <= t.now) AND ${HEAD}
               ORDER BY d.next_attempt_at, d.seq LIMIT $2
               FOR UPDATE OF d SKIP LOCKED)
             UPDATE notify_deliveries x SET claimed_by = $3, claimed_until = t.now + $4
             FROM heads, t WHERE x.subscription_id = heads.subscription_id AND x.event_id = heads.event_id
             RETURNING x.*`,
            [now, limit + extra, claim.by, claim.forMs, clockParam(clock)],
          )
        : await pool.query<ClaimedRow>(
            `SELECT d.* FROM notify_deliveries d
             JOIN notify_subscriptions s ON s.id = d.subscription_id AND s.state = 'active'
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND ${HEAD}
             ORDER BY d.next_attempt_at, d.seq LIMIT $2`,
            [now, limit + extra],
          );
      // RETURNING gives no order: earliest first, as without a claim.
      if (claim) rows.sort((p, q) => p.next_attempt_at - q.next_attempt_at || p.seq - q.seq);
      const out: DueDelivery[] = [];
      const skipped: ClaimedRow[] = [];
      for (const r of rows) {
        if (out.length >= limit || busy?.has(`${r.subscription_id}\n${r.mailbox}`)) {
          skipped.push(r);
          continue;
        }
        const ev = (await pool.query<EventRow>('SELECT id, mailbox, seq, type, body, created_at FROM notify_events WHERE id = $1', [r.event_id])).rows[0];
        const sub = (await pool.query<SubRow>('SELECT * FROM notify_subscriptions WHERE id = $1', [r.subscription_id])).rows[0];
        if (!ev || !sub) {
          skipped.push(r);
          continue;
        }
        out.push({ delivery: toDelivery(r), event: toEvent(ev), subscription: subFields(sub) });
      }
      // Claimed above but not handed out (the line is busy here, the batch is full, its event is
      // gone): released at once, or the line would wait for the claim to run out.
      if (claim && skipped.length) {
        await pool.query(
          `UPDATE notify_deliveries d SET claimed_by = NULL, claimed_until = NULL
           FROM unnest($2::text[], $3::text[], $4::bigint[]) AS k(subscription_id, event_id, claimed_until)
           WHERE d.subscription_id = k.subscription_id AND d.event_id = k.event_id AND d.claimed_by = $1 AND d.claimed_until = k.claimed_until`,
          [claim.by, skipped.map((r) => r.subscription_id), skipped.map((r) => r.event_id), skipped.map((r) => r.claimed_until)],
        );
      }
      return out;
    },
    async renewClaims(by, deliveries, forMs) {
      if (deliveries.length === 0) return [];
      const { rows } = await pool.query<{ subscription_id: string; event_id: string }>(
        `WITH t AS (SELECT ${nowSql('$5')} AS now)
         UPDATE notify_deliveries d SET claimed_until = t.now + $2
         FROM t, unnest($3::text[], $4::text[]) AS k(subscription_id, event_id)
         WHERE d.subscription_id = k.subscription_id AND d.event_id = k.event_id AND d.state = 'pending' AND d.claimed_by = $1
         RETURNING d.subscription_id, d.event_id`,
        [by, forMs, deliveries.map((k) => k.subscriptionId), deliveries.map((k) => k.eventId), clockParam(clock)],
      );
      return rows.map((r) => ({ subscriptionId: r.subscription_id, eventId: r.event_id }));
    },
    async nextDue(now) {
      const { rows } = await pool.query<{ t: number | null }>(
        // A head another node has claimed is due (for this node) only when that claim runs out: its
        // time left on the lease clock, counted on the caller's (the two may be minutes apart).
        `WITH t AS (SELECT ${nowSql('$2')} AS now)
         SELECT MIN(GREATEST(d.next_attempt_at, COALESCE($1 + (d.claimed_until - t.now), 0))) AS t FROM notify_deliveries d
         JOIN notify_subscriptions s ON s.id = d.subscription_id AND s.state = 'active'
         CROSS JOIN t
         WHERE d.state = 'pending' AND ${HEAD}`,
        [now, clockParam(clock)],
      );
      return rows[0]?.t ?? undefined;
    },
    async complete(subscriptionId, eventId, now) {
      const r = await pool.query(
        `UPDATE notify_deliveries SET state = 'done', attempts = attempts + 1, last_attempt_at = $1, updated_at = $1, claimed_by = NULL, claimed_until = NULL
         WHERE subscription_id = $2 AND event_id = $3 AND state = 'pending'`,
        [now, subscriptionId, eventId],
      );
      return (r.rowCount ?? 0) > 0;
    },
    async defer(subscriptionId, eventId, u, now) {
      const r = await pool.query(
        `UPDATE notify_deliveries SET attempts = $1, next_attempt_at = $2, last_attempt_at = $3, last_error = $4, updated_at = $3, claimed_by = NULL, claimed_until = NULL
         WHERE subscription_id = $5 AND event_id = $6 AND state = 'pending'`,
        [u.attempts, u.nextAttemptAt, now, JSON.stringify(u.lastError), subscriptionId, eventId],
      );
      return (r.rowCount ?? 0) > 0;
    },
    async expire(subscriptionId, eventId, u, now) {
      const r = await pool.query(
        `UPDATE notify_deliveries SET state = 'expired', attempts = $1, last_attempt_at = $2, last_error = $3, updated_at = $2, claimed_by = NULL, claimed_until = NULL
         WHERE subscription_id = $4 AND event_id = $5 AND state = 'pending'`,
        [u.attempts, now, JSON.stringify(u.lastError), subscriptionId, eventId],
      );
      return (r.rowCount ?? 0) > 0;
    },
    async getDelivery(subscriptionId, eventId) {
      const { rows } = await pool.query<DeliveryRow>('SELECT * FROM notify_deliveries WHERE subscription_id = $1 AND event_id = $2', [subscriptionId, eventId]);
      return rows[0] ? toDelivery(rows[0]) : undefined;
    },
    async listDeliveries(query = {}) {
      const where: string[] = [];
      const values: unknown[] = [];
      if (query.subscriptionId !== undefined) {
        values.push(query.subscriptionId);
        where.push(`subscription_id = $${values.length}`);
      }
      if (query.states && query.states.length > 0) {
        values.push([...query.states]);
        where.push(`state = ANY($${values.length})`);
      }
      values.push(query.limit ?? 1000);
      const { rows } = await pool.query<DeliveryRow>(
        `SELECT * FROM notify_deliveries${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY mailbox, seq, subscription_id LIMIT $${values.length}`,
        values,
      );
      return rows.map(toDelivery);
    },
    async listEvents(query = {}) {
      const values: unknown[] = [query.after ?? 0];
      const where = ['cursor > $1'];
      if (query.mailbox !== undefined) {
        values.push(query.mailbox.toLowerCase());
        where.push(`mailbox = $${values.length}`);
      }
      const newestFirst = query.after === undefined && query.last !== undefined;
      values.push(newestFirst ? query.last : (query.limit ?? 1000));
      const { rows } = await pool.query<EventRow & { cursor: number }>(
        `SELECT cursor, id, mailbox, seq, type, body, created_at FROM notify_events WHERE ${where.join(' AND ')}
         ORDER BY cursor ${newestFirst ? 'DESC' : ''} LIMIT $${values.length}`,
        values,
      );
      // The newest `last` events are returned oldest first (what `mailbridge watch` shows on start).
      if (newestFirst) rows.reverse();
      return rows.map((r) => ({ ...toEvent(r), cursor: r.cursor }));
    },
    async counts() {
      return tally(DELIVERY_STATES, (await pool.query<{ state: DeliveryState; n: number }>('SELECT state, COUNT(*) AS n FROM notify_deliveries GROUP BY state')).rows);
    },
    async purge(before) {
      return transaction(async (db) => {
        await db.query(`DELETE FROM notify_deliveries WHERE state <> 'pending' AND updated_at < $1`, [before]);
        const r = await db.query(
          `DELETE FROM notify_events WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM notify_deliveries d WHERE d.event_id = notify_events.id)`,
          [before],
        );
        return r.rowCount ?? 0;
      });
    },
  };
}
