/**
 * Store: the one interface through which mailbridge keeps state. Callers see small, async,
 * capability-shaped repositories; which database sits behind them (SQLite embedded by default,
 * PostgreSQL for several nodes) is decided once, in `openStore`.
 *
 * Everything is async even though node:sqlite is synchronous, so that a PostgreSQL implementation
 * can follow without changing a single caller.
 */
import type { QueueRepository } from './queue.ts';
import type { CheckpointRepository } from './checkpoints.ts';
import type { NotifyRepository } from './notify.ts';
import type { ClusterRepository } from './cluster.ts';
import type { Signals } from './signals.ts';
import type { Fence } from './cluster.ts';

export type { CheckpointRepository } from './checkpoints.ts';
export type { ClusterRepository, Fence, LeaseRecord, NodeRecord } from './cluster.ts';
export type { Signals } from './signals.ts';

export interface KeyValue {
  get(namespace: string, key: string): Promise<string | undefined>;
  /**
   * `relaxed`: no wait for the disk flush (SQLite synchronous = NORMAL, PostgreSQL
   * synchronous_commit = off): survives kill -9, may be lost with a power failure. For notes whose
   * loss costs nothing but the note (the relay's message trace), so they add no fsync to a delivery.
   */
  set(namespace: string, key: string, value: string, options?: { relaxed?: boolean }): Promise<void>;
  delete(namespace: string, key: string): Promise<boolean>;
  /** Stores `value` unless the key has one already; returns the value stored (the first writer's, across nodes). */
  add(namespace: string, key: string, value: string): Promise<string>;
  list(namespace: string): Promise<Array<{ key: string; value: string; updatedAt: string }>>;
}

/** The store's own key-value table, which can also write as the holder of a lease. */
export interface StoreKeyValue extends KeyValue {
  /**
   * The same table, whose set and delete first check, in the write's transaction, that `fence`
   * still holds (src/store/cluster.ts), and otherwise throw MB_CLUSTER_LEASE_LOST writing nothing:
   * the cursors of a watch shard (delta links, EWS sync states and watermarks, IMAP positions)
   * cannot be moved back by a node that lost the shard's lease. Reads are not fenced.
   */
  fenced(fence: Fence): KeyValue;
}

export interface Store {
  readonly driver: 'sqlite' | 'postgres';
  /** Small named values: the identity token cache, sign-in state, watcher cursors. */
  readonly kv: StoreKeyValue;
  /** Mailbox connector: what was delivered from which folder (src/store/checkpoints.ts). */
  readonly checkpoints: CheckpointRepository;
  /** The relay's queue of accepted messages (envelopes; bodies live in the relay's spool). */
  readonly queue: QueueRepository;
  /** New-mail notifications: subscriptions, events and their durable delivery queue (src/store/notify.ts). */
  readonly notify: NotifyRepository;
  /** Several nodes: the node registry and leases with fencing (src/store/cluster.ts). */
  readonly cluster: ClusterRepository;
  /** Short, not durable messages between the nodes of one database (src/store/signals.ts). */
  readonly signals: Signals;
  /** Throws when the database cannot answer; used by the health endpoint and `check`. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export type StoreConfig = { driver: 'sqlite'; path: string } | { driver: 'postgres'; url: string };

/**
 * `clock`: what times leases, node heartbeats, the fenced writes' checks and the delivery claims of
 * the relay and the notifications (src/store/cluster.ts).
 * Left out, PostgreSQL uses the database server's clock (one clock for every node) and SQLite this
 * process's; tests that drive leases by hand pass a manual clock.
 */
export async function openStore(config: StoreConfig, options: { clock?: () => number } = {}): Promise<Store> {
  if (config.driver === 'sqlite') {
    const { openSqliteStore } = await import('./sqlite.ts');
    return openSqliteStore(config.path, options);
  }
  const { openPostgresStore } = await import('./postgres.ts');
  return openPostgresStore(config.url, options);
}
