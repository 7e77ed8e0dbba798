/**
 * Checkpoints of the mailbox connector: what has been delivered from which mailbox folder, so that a
 * restart (even after kill -9) delivers nothing twice that a destination acknowledged, and loses
 * nothing.
 *
 * A scope is one connector + mailbox + folder. Per scope the repository keeps
 *  - the checkpoint: the epoch (IMAP UIDVALIDITY, or "graph"), the position (every message with an
 *    IMAP UID up to it is finished), a cursor (Graph delta or next link) and, after an epoch change,
 *    the number below which messages are first compared with what was delivered before;
 *  - one row per finished message: its item (UID or Graph id), its key (Message-ID, or a hash of the
 *    content when it has none), and its state: `delivered` (destination acknowledged, the
 *    after-delivery action still to do), `done` (action done too) or `rejected` (the destination
 *    refused it for good; it stays in the mailbox);
 *  - the in-flight record: items handed to the destination but not yet acknowledged. Written before
 *    the destination sees the message, removed in the same transaction that records the outcome,
 *    so after a crash it names exactly the messages whose fate is unknown.
 * And per connector a lease, so that two processes never run the same connector at once.
 *
 * Every write is its own transaction and is durable when the promise resolves (SQLite: WAL with
 * synchronous = FULL), which the connector relies on before it marks, moves or deletes a message.
 * The in-flight note is the exception: it survives kill -9 but not necessarily a power failure
 * (see checkpoints-sqlite.ts); losing it only loses the redelivery flag, never a message.
 */
import type { Fence } from './cluster.ts';

export interface CheckpointScope {
  connector: string;
  mailbox: string;
  folder: string;
}

export interface Checkpoint {
  /** IMAP: the folder's UIDVALIDITY (decimal); Graph: "graph". A new epoch means numbering started over. */
  epoch: string;
  /** IMAP: every message with a UID up to this one is finished (delivered or refused). */
  position: number;
  /** Graph: the link (delta or next) to continue from. */
  cursor?: string;
  /** After an epoch change: items numbered below this are compared with earlier deliveries by key first. */
  dedupeBelow: number;
  updatedAt: string;
}

export type MessageState = 'delivered' | 'done' | 'rejected';

export interface MessageOutcome {
  epoch: string;
  item: string;
  key: string;
  state: MessageState;
  /** MB code of a refusal, or of a warning worth keeping (e.g. malformed MIME). */
  code?: string;
  size: number;
}

export interface MessageRecord extends MessageOutcome {
  at: string;
}

export interface InFlightEntry {
  epoch: string;
  item: string;
  key: string;
  deliveryId: string;
  startedAt: string;
}

export type LeaseResult = { ok: true } | { ok: false; owner: string; expiresAt: number };

export interface CheckpointRepository {
  get(scope: CheckpointScope): Promise<Checkpoint | undefined>;
  /** Starts an epoch: position 0, no cursor. Message rows of earlier epochs stay for deduplication. */
  setEpoch(scope: CheckpointScope, epoch: string, dedupeBelow: number): Promise<void>;
  /** Moves the position and/or cursor forward (never backward for the position). */
  advance(scope: CheckpointScope, to: { position?: number; cursor?: string | null }): Promise<void>;
  /** Notes that an item is being handed to the destination (durable before the destination sees it). */
  begin(scope: CheckpointScope, entry: Omit<InFlightEntry, 'startedAt'>): Promise<void>;
  inFlight(scope: CheckpointScope): Promise<InFlightEntry[]>;
  /** Forgets an in-flight entry without an outcome (delivery failed temporarily; it will be tried again). */
  abandon(scope: CheckpointScope, epoch: string, item: string): Promise<void>;
  /** One transaction: the outcome row, removal from in-flight, and optionally a new position/cursor. */
  record(scope: CheckpointScope, outcome: MessageOutcome, advance?: { position?: number; cursor?: string | null }): Promise<void>;
  /** Finished rows for these items of an epoch. */
  lookup(scope: CheckpointScope, epoch: string, items: string[]): Promise<Map<string, MessageRecord>>;
  /** Of these keys, the ones delivered (or done) in an epoch other than `exceptEpoch`. */
  deliveredKeys(scope: CheckpointScope, keys: string[], exceptEpoch: string): Promise<Set<string>>;
  /** Rows in a state, oldest first. */
  byState(scope: CheckpointScope, epoch: string, state: MessageState): Promise<MessageRecord[]>;
  /** After-delivery action done for these items. */
  markDone(scope: CheckpointScope, epoch: string, items: string[]): Promise<void>;
  /** Deletes rows in these states older than `before`; returns how many. */
  prune(scope: CheckpointScope, before: Date, states: MessageState[]): Promise<number>;
  /** All scopes of a connector with their checkpoints and counts. */
  list(connector: string): Promise<Array<CheckpointScope & Checkpoint & { delivered: number; rejected: number; inFlight: number }>>;
  /**
   * Takes or renews the lease `name` for `owner` until now + ttlMs. Fails while another owner holds an
   * unexpired lease, unless `steal(owner)` says that owner is gone (e.g. a dead process on this host).
   */
  claim(name: string, owner: string, ttlMs: number, steal?: (currentOwner: string) => boolean): Promise<LeaseResult>;
  release(name: string, owner: string): Promise<void>;
  /**
   * The same repository for the holder of a cluster lease (src/store/cluster.ts): every write
   * (setEpoch, advance, begin, abandon, record, markDone, prune) first checks in its transaction
   * that the lease still names this owner and epoch and has not expired, and otherwise throws
   * MB_CLUSTER_LEASE_LOST and writes nothing.
   */
  fenced(fence: Fence): CheckpointRepository;
}
