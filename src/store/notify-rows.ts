/**
 * Rows of the notify tables as both drivers read them back (SQLite and PostgreSQL store the same
 * columns; see notify-sqlite.ts and notify-postgres.ts), and their records.
 */
import type { DeliveryState, NotifyDeliveryRecord, NotifyEventRecord } from './notify.ts';

export interface DeliveryRow {
  subscription_id: string;
  event_id: string;
  mailbox: string;
  seq: number;
  state: DeliveryState;
  attempts: number;
  created_at: number;
  next_attempt_at: number;
  last_attempt_at: number | null;
  last_error: string | null;
  updated_at: number;
}

export interface EventRow {
  id: string;
  mailbox: string;
  seq: number;
  type: string;
  body: string;
  created_at: number;
}

export function toEvent(r: EventRow): NotifyEventRecord {
  return { id: r.id, mailbox: r.mailbox, seq: r.seq, type: r.type, body: r.body, createdAt: r.created_at };
}

export function toDelivery(r: DeliveryRow): NotifyDeliveryRecord {
  const out: NotifyDeliveryRecord = {
    subscriptionId: r.subscription_id,
    eventId: r.event_id,
    mailbox: r.mailbox,
    seq: r.seq,
    state: r.state,
    attempts: r.attempts,
    createdAt: r.created_at,
    nextAttemptAt: r.next_attempt_at,
    updatedAt: r.updated_at,
  };
  if (r.last_attempt_at !== null) out.lastAttemptAt = r.last_attempt_at;
  if (r.last_error !== null) out.lastError = JSON.parse(r.last_error) as NotifyDeliveryRecord['lastError'];
  return out;
}
