/**
 * Notify rows on SQLite. Each call is one statement or one IMMEDIATE transaction; with the store's
 * synchronous=FULL a publish that returned is on disk, so a watcher may advance its own checkpoint
 * (delta link, watermark) after it.
 */
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { inList, transaction, where } from './sqlite-tools.ts';
import {
  DELIVERY_STATES,
  type DeliveryState,
  type DueDelivery,
  type NotifyRepository,
} from './notify.ts';
import { HEAD, subFields, toDelivery, toEvent, toSub as toRecord, type DeliveryRow, type EventRow, type SubRow } from './notify-rows.ts';
import { tally } from './rows.ts';
import type { SqliteFenceCheck } from './cluster-sqlite.ts';

export function createSqliteNotifyRepository(db: DatabaseSync, fenceCheck: SqliteFenceCheck): NotifyRepository {
  const s = {
    insertSub: db.prepare(
      `INSERT INTO notify_subscriptions (id, kind, events, params, privacy, label, state, gone_reason, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    insertSubMailbox: db.prepare('INSERT OR IGNORE INTO notify_subscription_mailboxes (subscription_id, mailbox) VALUES (?, ?)'),
    getSub: db.prepare('SELECT * FROM notify_subscriptions WHERE id = ?'),
    subMailboxes: db.prepare('SELECT mailbox FROM notify_subscription_mailboxes WHERE subscription_id = ? ORDER BY mailbox'),
    deleteSub: db.prepare('DELETE FROM notify_subscriptions WHERE id = ?'),
    goneSub: db.prepare(`UPDATE notify_subscriptions SET state = 'gone', gone_reason = ?, updated_at = ? WHERE id = ? AND state = 'active'`),
    dropPending: db.prepare(`UPDATE notify_deliveries SET state = 'dropped', updated_at = ? WHERE subscription_id = ? AND state = 'pending'`),
    eventById: db.prepare('SELECT * FROM notify_events WHERE id = ?'),
    bumpSeq: db.prepare(
      `INSERT INTO notify_mailboxes (mailbox, last_seq) VALUES (?, 1)
       ON CONFLICT (mailbox) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq`,
    ),
    insertEvent: db.prepare('INSERT INTO notify_events (id, mailbox, seq, type, body, created_at) VALUES (?, ?, ?, ?, ?, ?)'),
    fanOut: db.prepare(
      `INSERT INTO notify_deliveries (subscription_id, event_id, mailbox, seq, state, attempts, created_at, next_attempt_at, updated_at)
       SELECT s.id, ?, ?, ?, 'pending', 0, ?, ?, ? FROM notify_subscriptions s
       JOIN notify_subscription_mailboxes m ON m.subscription_id = s.id
       WHERE m.mailbox = ? AND s.state = 'active'
         AND (s.events = '[]' OR EXISTS (SELECT 1 FROM json_each(s.events) WHERE json_each.value = ?))`,
    ),
    due: db.prepare(
      `SELECT d.* FROM notify_deliveries d
       JOIN notify_subscriptions s ON s.id = d.subscription_id AND s.state = 'active'
       WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND ${HEAD}
       ORDER BY d.next_attempt_at, d.seq LIMIT ?`,
    ),
    nextDue: db.prepare(
      `SELECT MIN(d.next_attempt_at) AS t FROM notify_deliveries d
       JOIN notify_subscriptions s ON s.id = d.subscription_id AND s.state = 'active'
       WHERE d.state = 'pending' AND ${HEAD}`,
    ),
    complete: db.prepare(
      `UPDATE notify_deliveries SET state = 'done', attempts = attempts + 1, last_attempt_at = ?, updated_at = ?
       WHERE subscription_id = ? AND event_id = ? AND state = 'pending'`,
    ),
    defer: db.prepare(
      `UPDATE notify_deliveries SET attempts = ?, next_attempt_at = ?, last_attempt_at = ?, last_error = ?, updated_at = ?
       WHERE subscription_id = ? AND event_id = ? AND state = 'pending'`,
    ),
    expire: db.prepare(
      `UPDATE notify_deliveries SET state = 'expired', attempts = ?, last_attempt_at = ?, last_error = ?, updated_at = ?
       WHERE subscription_id = ? AND event_id = ? AND state = 'pending'`,
    ),
    getDelivery: db.prepare('SELECT * FROM notify_deliveries WHERE subscription_id = ? AND event_id = ?'),
    counts: db.prepare('SELECT state, COUNT(*) AS n FROM notify_deliveries GROUP BY state'),
    purgeDeliveries: db.prepare(`DELETE FROM notify_deliveries WHERE state <> 'pending' AND updated_at < ?`),
    purgeEvents: db.prepare(
      `DELETE FROM notify_events WHERE created_at < ?
       AND NOT EXISTS (SELECT 1 FROM notify_deliveries d WHERE d.event_id = notify_events.id)`,
    ),
  };

  const tx = <T>(fn: () => T): T => transaction(db, fn);

  const toSub = (r: SubRow) => toRecord(r, (s.subMailboxes.all(r.id) as Array<{ mailbox: string }>).map((m) => m.mailbox));

  return {
    async createSubscription(r) {
      tx(() => {
        s.insertSub.run(r.id, r.kind, JSON.stringify(r.events), JSON.stringify(r.params), r.privacy, r.label ?? null, r.state, r.goneReason ?? null, r.createdAt, r.updatedAt);
        for (const m of r.mailboxes) s.insertSubMailbox.run(r.id, m.toLowerCase());
      });
    },
    async getSubscription(id) {
      const row = s.getSub.get(id) as SubRow | undefined;
      return row ? toSub(row) : undefined;
    },
    async listSubscriptions(query = {}) {
      const w = where([
        query.mailbox !== undefined && ['id IN (SELECT subscription_id FROM notify_subscription_mailboxes WHERE mailbox = ?)', [query.mailbox.toLowerCase()]],
        inList('state', query.states),
      ]);
      return (db.prepare(`SELECT * FROM notify_subscriptions${w.sql} ORDER BY created_at, id`).all(...w.values) as unknown as SubRow[]).map(toSub);
    },
    async deleteSubscription(id) {
      return tx(() => Number(s.deleteSub.run(id).changes) > 0);
    },
    async markGone(id, reason, now) {
      return tx(() => {
        const changed = Number(s.goneSub.run(reason, now, id).changes) > 0;
        if (changed) s.dropPending.run(now, id);
        return changed;
      });
    },
    async publish(event, now, fence) {
      return tx(() => {
        fenceCheck(fence);
        const existing = s.eventById.get(event.id) as EventRow | undefined;
        if (existing) return { event: toEvent(existing), duplicate: true, deliveries: 0 };
        const mailbox = event.mailbox.toLowerCase();
        const { last_seq: seq } = s.bumpSeq.get(mailbox) as { last_seq: number };
        s.insertEvent.run(event.id, mailbox, seq, event.type, event.body, now);
        const deliveries = Number(s.fanOut.run(event.id, mailbox, seq, now, now, now, mailbox, event.type).changes);
        return { event: { id: event.id, mailbox, seq, type: event.type, body: event.body, createdAt: now }, duplicate: false, deliveries };
      });
    },
    async due(now, limit, busy) {
      const extra = busy?.size ?? 0;
      const rows = s.due.all(now, limit + extra) as unknown as DeliveryRow[];
      const out: DueDelivery[] = [];
      for (const r of rows) {
        if (out.length >= limit) break;
        if (busy?.has(`${r.subscription_id}\n${r.mailbox}`)) continue;
        const ev = s.eventById.get(r.event_id) as EventRow | undefined;
        const sub = s.getSub.get(r.subscription_id) as SubRow | undefined;
        if (!ev || !sub) continue;
        out.push({ delivery: toDelivery(r), event: toEvent(ev), subscription: subFields(sub) });
      }
      return out;
    },
    async renewClaims(_by, deliveries) {
      // One node per SQLite file: nobody else could have taken a delivery over.
      return [...deliveries];
    },
    async nextDue(_now) {
      const row = s.nextDue.get() as { t: number | null } | undefined;
      return row?.t ?? undefined;
    },
    async complete(subscriptionId, eventId, now) {
      return Number(s.complete.run(now, now, subscriptionId, eventId).changes) > 0;
    },
    async defer(subscriptionId, eventId, u, now) {
      return Number(s.defer.run(u.attempts, u.nextAttemptAt, now, JSON.stringify(u.lastError), now, subscriptionId, eventId).changes) > 0;
    },
    async expire(subscriptionId, eventId, u, now) {
      return Number(s.expire.run(u.attempts, now, JSON.stringify(u.lastError), now, subscriptionId, eventId).changes) > 0;
    },
    async getDelivery(subscriptionId, eventId) {
      const row = s.getDelivery.get(subscriptionId, eventId) as DeliveryRow | undefined;
      return row ? toDelivery(row) : undefined;
    },
    async listDeliveries(query = {}) {
      const w = where([query.subscriptionId !== undefined && ['subscription_id = ?', [query.subscriptionId]], inList('state', query.states)]);
      const sql = `SELECT * FROM notify_deliveries${w.sql} ORDER BY mailbox, seq, subscription_id LIMIT ?`;
      return (db.prepare(sql).all(...w.values, query.limit ?? 1000) as unknown as DeliveryRow[]).map(toDelivery);
    },
    async listEvents(query = {}) {
      const where: string[] = ['rowid > ?'];
      const values: SQLInputValue[] = [query.after ?? 0];
      if (query.mailbox !== undefined) {
        where.push('mailbox = ?');
        values.push(query.mailbox.toLowerCase());
      }
      if (query.after === undefined && query.last !== undefined) {
        // The newest `last` events, returned oldest first (what `mailbridge watch` shows on start).
        const rows = db.prepare(`SELECT rowid AS cursor, * FROM notify_events WHERE ${where.join(' AND ')} ORDER BY rowid DESC LIMIT ?`).all(...values, query.last) as unknown as Array<EventRow & { cursor: number }>;
        return rows.reverse().map((r) => ({ ...toEvent(r), cursor: r.cursor }));
      }
      const rows = db.prepare(`SELECT rowid AS cursor, * FROM notify_events WHERE ${where.join(' AND ')} ORDER BY rowid LIMIT ?`).all(...values, query.limit ?? 1000) as unknown as Array<EventRow & { cursor: number }>;
      return rows.map((r) => ({ ...toEvent(r), cursor: r.cursor }));
    },
    async counts() {
      return tally(DELIVERY_STATES, s.counts.all() as Array<{ state: DeliveryState; n: number }>);
    },
    async purge(before) {
      return tx(() => {
        s.purgeDeliveries.run(before);
        return Number(s.purgeEvents.run(before).changes);
      });
    },
  };
}
