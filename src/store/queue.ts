/**
 * The relay queue's rows: one envelope per accepted message (the body is a file in the relay's
 * spool). This is the repository the relay reaches through `Store.queue`; it knows rows and atomic
 * updates, not the rules of the queue — which state may follow which is decided in
 * src/relay/queue/index.ts, the one module that moves messages.
 *
 * Every update is a compare-and-set on the current state (`from`), so two actors (the queue manager,
 * a `mailbridge queue` command in another process, another node on PostgreSQL) can never both move
 * the same message. A claim (→ active) also writes who holds it, a token and a lease: the moves out
 * of active name the token, so a node whose lease ran out and was taken over cannot record a result.
 *
 * Leases are timed by the store's lease clock (src/store/cluster.ts), like the cluster's leases: on
 * PostgreSQL the database server's, so a node whose clock runs ahead cannot take over a message
 * another node is still sending, and one behind cannot keep a claim past its end. Callers pass a
 * lease time, never an end; due times (nextAttemptAt), updatedAt and the per-mailbox rate's starts
 * stay on the callers' clocks.
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
  /** The node that claimed the message last (kept after the delivery: who sent it). */
  claimedBy?: string;
  /** The token of the current claim; moves out of active must name it (fencing). */
  claimToken?: string;
  /**
   * Epoch milliseconds of the store's lease clock (src/store/cluster.ts: on PostgreSQL the database
   * server's); an active message whose lease has passed by that clock may be taken over by another node.
   */
  leaseUntil?: number;
  updatedAt: number;
}

/** A message as it was accepted: its envelope, who sent it from where, its size and body type. */
export type QueueEnvelope = Pick<QueueRecord, 'sender' | 'recipients' | 'mailbox' | 'relayUser' | 'clientIp' | 'size' | 'bodyType' | 'smtpUtf8'>;

/** The envelope of a record, for what is built from it (the message sent upstream, the API's view). */
export function envelopeOf(r: QueueRecord): QueueEnvelope {
  return {
    sender: r.sender,
    recipients: r.recipients,
    mailbox: r.mailbox,
    ...(r.relayUser !== undefined ? { relayUser: r.relayUser } : {}),
    ...(r.clientIp !== undefined ? { clientIp: r.clientIp } : {}),
    size: r.size,
    bodyType: r.bodyType,
    smtpUtf8: r.smtpUtf8,
  };
}

/** Per-mailbox limits a claim checks in the store when several nodes share them. */
export interface SharedLimits {
  concurrency: number;
  perMinute: number;
  /** Recipients in any 24 hours; Infinity: unpaced. */
  recipientsPerDay: number;
}

export interface Claim {
  by: string;
  token: string;
  /**
   * The claimer's clock: the row's updatedAt, and with `limits` the start counted and the minute and
   * day windows it is checked against (the per-mailbox rate goes by the nodes' clocks).
   */
  now: number;
  /**
   * How long the claim holds without renewal: the lease ends this long after the store's lease
   * clock's now, whatever the claimer's clock says (a node minutes ahead or behind sets no lease
   * that the others read as already run out or as lasting minutes longer).
   */
  leaseMs: number;
  /**
   * Checked and counted in the same transaction as the claim (PostgreSQL: across nodes). The
   * running deliveries are the active rows whose lease has not run out by the store's lease clock.
   */
  limits?: SharedLimits;
}

/**
 * `record`: the claimed row. Otherwise `limited` when the mailbox is at a limit (`until`: when it
 * may start, undefined when a running delivery must end first), or neither when the message was
 * moved or is being claimed by someone else.
 */
export interface ClaimResult {
  record?: QueueRecord;
  limited?: { until: number | undefined };
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

/** Bodies by message id, committed in the same transaction as their rows. */
export type Bodies = ReadonlyMap<string, Buffer>;

export interface QueueRepository {
  /** Insert rows (and their bodies, when given) in one transaction: all are durable when this resolves, or none is. */
  insert(records: QueueRecord[], bodies?: Bodies): Promise<void>;
  get(id: string): Promise<QueueRecord | undefined>;
  list(query?: QueueListQuery): Promise<QueueRecord[]>;
  counts(): Promise<Record<QueueState, number>>;
  /**
   * Active messages per node that claimed them (several nodes: `mailbridge status`). A dead node's
   * claims count until they are taken over. Rows claimed without a holder (one node on SQLite,
   * which claims with a plain compare-and-set) are not counted.
   */
  claimedPerNode(): Promise<Record<string, number>>;
  /** Ids of all rows in the given states (recovery compares them with the spool). */
  ids(states: readonly QueueState[]): Promise<string[]>;
  /** Messages in incoming/deferred due at `now`, oldest first, skipping the given mailboxes. */
  ready(now: number, limit: number, excludeMailboxes?: readonly string[]): Promise<QueueRecord[]>;
  /** Earliest nextAttemptAt of incoming/deferred messages, skipping the given mailboxes. */
  nextDue(excludeMailboxes?: readonly string[]): Promise<number | undefined>;
  /**
   * Compare-and-set: applies `update` if the message is in one of `from` (and, with `token`, still
   * holds that claim); the new row, or undefined.
   */
  transition(id: string, from: readonly QueueState[], update: QueueUpdate, token?: string): Promise<QueueRecord | undefined>;
  /** `transition` and `insert` in one transaction (a bounce and its report); nothing happens if the CAS fails. */
  transitionAndInsert(
    id: string,
    from: readonly QueueState[],
    update: QueueUpdate,
    records: QueueRecord[],
    options?: { bodies?: Bodies; token?: string },
  ): Promise<QueueRecord | undefined>;
  /**
   * incoming/deferred → active with the claim's holder, token and lease, skipping a row another
   * node is claiming at this moment (FOR UPDATE SKIP LOCKED). With `limits`, the mailbox's running
   * deliveries, starts in the last minute and recipients in the last 24 hours are checked and the
   * start counted in the same transaction, under a per-mailbox lock.
   */
  claim(id: string, claim: Claim): Promise<ClaimResult>;
  /**
   * Extends the claims `by` still holds to `leaseMs` after the store's lease clock's now; returns
   * their tokens (the others were taken over).
   */
  renew(by: string, tokens: readonly string[], leaseMs: number): Promise<string[]>;
  /**
   * Active messages whose lease ran out by the store's lease clock → deferred; their ids and former
   * holders. Each keeps the nextAttemptAt it was claimed at, which had passed on its claimer's
   * clock: due at once for every node, in its place in the queue (a due time from a node whose
   * clock runs ahead would hold it back on the others). updatedAt is the store's now.
   */
  takeOver(): Promise<Array<{ id: string; claimedBy: string | undefined }>>;
  readBody(id: string): Promise<Buffer | undefined>;
  hasBody(id: string): Promise<boolean>;
  deleteBody(id: string): Promise<void>;
  /** Ids of all stored bodies (recovery). */
  bodyIds(): Promise<string[]>;
  /**
   * Deletes the bodies of messages that are sent, bounced or gone (a node died between recording
   * the result and deleting the body); how many.
   */
  dropFinishedBodies(): Promise<number>;
  /** Applies `update` to every message in `from`; the number of rows changed. */
  transitionAll(from: readonly QueueState[], update: QueueUpdate): Promise<number>;
  /** Deletes the row if it is in one of `from`. */
  delete(id: string, from: readonly QueueState[]): Promise<boolean>;
  /** Sent messages whose delivery ended at or after `since`: mailbox, recipient count, when (for pacing). */
  sentSince(since: number): Promise<Array<{ mailbox: string; recipients: number; at: number }>>;
  /** Mailboxes with incoming/deferred messages an admin asked to retry at or after `since`, with the latest such time. */
  retriedSince(since: number): Promise<Array<{ mailbox: string; at: number }>>;
  /** Deletes rows in `states` last updated before `before` (and delivery starts a day older); returns their ids. */
  purge(states: readonly QueueState[], before: number): Promise<string[]>;
}
