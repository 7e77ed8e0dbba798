/**
 * The relay queue's rows: one envelope per accepted message (the body is a file in the relay's
 * spool). This is the repository the relay reaches through `Store.queue`; it knows rows and atomic
 * updates, not the rules of the queue — which state may follow which is decided in
 * src/relay/queue/index.ts, the one module that moves messages.
 *
 * Every update is a compare-and-set on the current state (`from`), so two actors (the queue manager,
 * a `mailbridge queue` command in another process, later a second node on PostgreSQL) can never
 * both move the same message.
 */
import type { ErrorParams } from '../errors/index.ts';

/** Postfix-style queue states. A message is in exactly one of them at any time. */
export const QUEUE_STATES = ['incoming', 'active', 'deferred', 'held', 'sent', 'bounced'] as const;
export type QueueState = (typeof QUEUE_STATES)[number];

export interface QueueError {
  /** MB code from the error catalogue. */
  code: string;
  /** Parameters for the catalogue texts. */
  params?: ErrorParams;
  /** The upstream reply, e.g. `432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded`. */
  reply?: string;
  /** Free text for the log and `queue show` (already scrubbed of secrets). */
  detail?: string;
}

export interface QueueRecord {
  id: string;
  state: QueueState;
  /** `dsn`: a bounce report mailbridge wrote itself (null sender; never bounced again). */
  kind: 'message' | 'dsn';
  /** Envelope sender (MAIL FROM); '' is the null sender of bounce reports. */
  sender: string;
  /** Envelope recipients (RCPT TO), BCC recipients included. */
  recipients: string[];
  /** The mailbox that sends it upstream: the unit of Microsoft's per-mailbox limits. */
  mailbox: string;
  relayUser?: string;
  clientIp?: string;
  size: number;
  bodyType: '7bit' | '8bitmime';
  smtpUtf8: boolean;
  /** Epoch milliseconds. */
  receivedAt: number;
  /** Delivery attempts finished so far. */
  attempts: number;
  /** Epoch milliseconds; a message in incoming or deferred is ready when this has passed. */
  nextAttemptAt: number;
  lastAttemptAt?: number;
  lastError?: QueueError;
  /** Why a message is held: `admin` (queue hold) or `corrupt` (its body is missing). */
  holdReason?: string;
  /** For bounce reports: the message they report on. */
  originId?: string;
  /**
   * When an admin last asked for this message to be tried now (`queue retry`, `queue release`).
   * The queue manager, possibly in another process, lifts its mailbox's pause for such a message.
   */
  retryRequestedAt?: number;
  updatedAt: number;
}

/** Fields an update may set; `null` clears an optional field. */
export interface QueueUpdate {
  state: QueueState;
  attempts?: number;
  nextAttemptAt?: number;
  lastAttemptAt?: number;
  lastError?: QueueError | null;
  holdReason?: string | null;
  retryRequestedAt?: number | null;
  updatedAt: number;
}

export interface QueueListQuery {
  states?: readonly QueueState[];
  /** Default 100. */
  limit?: number;
  /** Only rows whose id sorts after this one (paging; ids sort by arrival). */
  after?: string;
}

export interface QueueRepository {
  /** Insert rows in one transaction: all are durable when this resolves, or none is. */
  insert(records: QueueRecord[]): Promise<void>;
  get(id: string): Promise<QueueRecord | undefined>;
  list(query?: QueueListQuery): Promise<QueueRecord[]>;
  counts(): Promise<Record<QueueState, number>>;
  /** Ids of all rows in the given states (recovery compares them with the spool). */
  ids(states: readonly QueueState[]): Promise<string[]>;
  /** Messages in incoming/deferred due at `now`, oldest first, skipping the given mailboxes. */
  ready(now: number, limit: number, excludeMailboxes?: readonly string[]): Promise<QueueRecord[]>;
  /** Earliest nextAttemptAt of incoming/deferred messages, skipping the given mailboxes. */
  nextDue(excludeMailboxes?: readonly string[]): Promise<number | undefined>;
  /** Compare-and-set: applies `update` if the message is in one of `from`; the new row, or undefined. */
  transition(id: string, from: readonly QueueState[], update: QueueUpdate): Promise<QueueRecord | undefined>;
  /** `transition` and `insert` in one transaction (a bounce and its report); nothing happens if the CAS fails. */
  transitionAndInsert(id: string, from: readonly QueueState[], update: QueueUpdate, records: QueueRecord[]): Promise<QueueRecord | undefined>;
  /** Applies `update` to every message in `from`; the number of rows changed. */
  transitionAll(from: readonly QueueState[], update: QueueUpdate): Promise<number>;
  /** Deletes the row if it is in one of `from`. */
  delete(id: string, from: readonly QueueState[]): Promise<boolean>;
  /** Sent messages whose delivery ended at or after `since`: mailbox, recipient count, when (for pacing). */
  sentSince(since: number): Promise<Array<{ mailbox: string; recipients: number; at: number }>>;
  /** Mailboxes with incoming/deferred messages an admin asked to retry at or after `since`, with the latest such time. */
  retriedSince(since: number): Promise<Array<{ mailbox: string; at: number }>>;
  /** Deletes rows in `states` last updated before `before`; returns their ids. */
  purge(states: readonly QueueState[], before: number): Promise<string[]>;
}
