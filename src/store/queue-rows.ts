/**
 * Rows of the relay queue as both drivers write and read them (queue-sqlite.ts, queue-postgres.ts):
 * the column list, a record's values in that order, the columns an update sets, and the record of a
 * row read back. SQLite returns the JSON columns as text and the flag as 0/1; PostgreSQL returns
 * JSONB parsed and BOOLEAN as true/false; `toRecord` takes either.
 */
import type { QueueRecord, QueueState, QueueUpdate, SharedLimits } from './queue.ts';
import { withPresent } from './rows.ts';

export interface Row {
  id: string;
  state: QueueState;
  kind: 'message' | 'dsn';
  sender: string;
  recipients: string | string[];
  mailbox: string;
  relay_user: string | null;
  client_ip: string | null;
  size: number;
  body_type: '7bit' | '8bitmime';
  smtputf8: boolean | number;
  received_at: number;
  attempts: number;
  next_attempt_at: number;
  last_attempt_at: number | null;
  last_error: string | QueueRecord['lastError'] | null;
  hold_reason: string | null;
  origin_id: string | null;
  retry_requested_at: number | null;
  claimed_by?: string | null;
  claim_token?: string | null;
  lease_until?: number | null;
  updated_at: number;
}

export const COLUMNS = `id, state, kind, sender, recipients, mailbox, relay_user, client_ip, size, body_type, smtputf8,
  received_at, attempts, next_attempt_at, last_attempt_at, last_error, hold_reason, origin_id, retry_requested_at, updated_at`;

/**
 * Claiming a message (→ active) and recording its delivery (→ sent) may be lost only to a crash of
 * the machine or the database, which resends; both drivers commit them without waiting for the flush.
 */
export const RELAXED_STATES: ReadonlySet<QueueState> = new Set<QueueState>(['active', 'sent']);

/** A record's values in COLUMNS order; `flag` is how the dialect stores a boolean. */
export function recordValues<F>(r: QueueRecord, flag: (b: boolean) => F): Array<string | number | F | null> {
  return [
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
    flag(r.smtpUtf8),
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
}

/** The columns an update sets and their values: state and updated_at always, the rest when given. */
export function updateColumns(u: QueueUpdate): Array<[column: string, value: string | number | null]> {
  const out: Array<[string, string | number | null]> = [
    ['state', u.state],
    ['updated_at', u.updatedAt],
  ];
  if (u.attempts !== undefined) out.push(['attempts', u.attempts]);
  if (u.nextAttemptAt !== undefined) out.push(['next_attempt_at', u.nextAttemptAt]);
  if (u.lastAttemptAt !== undefined) out.push(['last_attempt_at', u.lastAttemptAt]);
  if (u.lastError !== undefined) out.push(['last_error', u.lastError ? JSON.stringify(u.lastError) : null]);
  if (u.holdReason !== undefined) out.push(['hold_reason', u.holdReason]);
  if (u.retryRequestedAt !== undefined) out.push(['retry_requested_at', u.retryRequestedAt]);
  return out;
}

const json = <T>(v: string | T): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);

export function toRecord(r: Row): QueueRecord {
  const rec: QueueRecord = {
    id: r.id,
    state: r.state,
    kind: r.kind,
    sender: r.sender,
    recipients: json<string[]>(r.recipients),
    mailbox: r.mailbox,
    size: r.size,
    bodyType: r.body_type,
    smtpUtf8: r.smtputf8 === true || r.smtputf8 === 1,
    receivedAt: r.received_at,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    updatedAt: r.updated_at,
  };
  return withPresent(rec, {
    relayUser: r.relay_user,
    clientIp: r.client_ip,
    lastAttemptAt: r.last_attempt_at,
    lastError: r.last_error === null ? null : json<QueueRecord['lastError']>(r.last_error),
    holdReason: r.hold_reason,
    originId: r.origin_id,
    retryRequestedAt: r.retry_requested_at,
    claimedBy: r.claimed_by ?? null,
    claimToken: r.claim_token ?? null,
    leaseUntil: r.lease_until ?? null,
  });
}

export const MINUTE_MS = 60_000;
export const DAY_MS = 86_400_000;

/** What a claim with shared limits finds in the store for its mailbox (both drivers ask the same). */
export interface MailboxUse {
  /** Active deliveries whose lease has not run out. */
  running: number;
  /** Start times in the last minute, oldest first. */
  minute: number[];
  /** Recipients started in the last 24 hours. */
  dayTotal: number;
  /** [start time, recipients] in the last 24 hours, oldest first; read only when the budget is short. */
  day: () => Promise<Array<[number, number]>>;
}

/**
 * undefined when a delivery of `recipients` recipients may start at `now`; otherwise when it may
 * (`until` undefined: when a running delivery ends). The same rules as the in-memory MailboxPacer
 * (src/relay/queue/pacing.ts), computed from the rows all nodes write.
 */
export async function limitedUntil(limits: SharedLimits, now: number, recipients: number, use: MailboxUse): Promise<{ until: number | undefined } | undefined> {
  if (use.running >= limits.concurrency) return { until: undefined };
  let at = now;
  if (use.minute.length >= limits.perMinute) at = use.minute[use.minute.length - limits.perMinute]! + MINUTE_MS;
  if (Number.isFinite(limits.recipientsPerDay) && use.dayTotal + recipients > limits.recipientsPerDay) {
    let excess = use.dayTotal + recipients - limits.recipientsPerDay;
    const day = await use.day();
    let budgetAt = (day[day.length - 1]?.[0] ?? now - DAY_MS) + DAY_MS;
    for (const [start, n] of day) {
      excess -= n;
      if (excess <= 0) {
        budgetAt = start + DAY_MS;
        break;
      }
    }
    at = Math.max(at, budgetAt);
  }
  return at > now ? { until: at } : undefined;
}
