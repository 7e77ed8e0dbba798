/**
 * Rows of the notify tables as both drivers read them back (SQLite and PostgreSQL store the same
 * columns; see notify-sqlite.ts and notify-postgres.ts), their records, and the SQL both speak.
 */
import type { DeliveryState, NotifyDeliveryRecord, NotifyEventRecord, NotifySubscriptionRecord, SubscriptionState } from './notify.ts';
import { withPresent } from './rows.ts';

export interface SubRow {
  id: string;
  kind: string;
  events: string;
  params: string;
  privacy: 'full' | 'minimal';
  label: string | null;
  state: SubscriptionState;
  gone_reason: string | null;
  created_at: number;
  updated_at: number;
}

/** A line head: no earlier pending delivery for the same subscription and mailbox. */
export const HEAD = `NOT EXISTS (SELECT 1 FROM notify_deliveries p
   WHERE p.subscription_id = d.subscription_id AND p.mailbox = d.mailbox AND p.state = 'pending' AND p.seq < d.seq)`;

/** A subscription with its mailboxes (sorted). */
export function toSub(r: SubRow, mailboxes: string[]): NotifySubscriptionRecord {
  return { ...subFields(r), mailboxes };
}

/** A subscription without its mailbox list (what a due delivery carries, see DueDelivery). */
export function subFields(r: SubRow): Omit<NotifySubscriptionRecord, 'mailboxes'> {
  const out: Omit<NotifySubscriptionRecord, 'mailboxes'> = {
    id: r.id,
    kind: r.kind,
    events: JSON.parse(r.events) as string[],
    params: JSON.parse(r.params) as Record<string, unknown>,
    privacy: r.privacy,
    state: r.state,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
  return withPresent(out, { label: r.label, goneReason: r.gone_reason });
}

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
  return withPresent(out, {
    lastAttemptAt: r.last_attempt_at,
    lastError: r.last_error === null ? null : (JSON.parse(r.last_error) as NotifyDeliveryRecord['lastError']),
  });
}
