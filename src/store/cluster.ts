/**
 * Several nodes on one database: the node registry and leases with fencing tokens. This is the
 * repository behind `Store.cluster`; it knows rows and atomic updates. Who should own what
 * (rendezvous hashing over the live nodes, moving work gradually) is src/cluster/ownership.ts.
 *
 * Nodes: one row per running process (id generated at its start), with a heartbeat; a node whose
 * heartbeat is older than the lease time is dead for everyone else.
 *
 * Leases: one row per unit of work (a connector's mailbox, a shard of a watch group) with its
 * owner, an expiry and an epoch. The epoch grows by one every time the lease changes hands, and is
 * the fencing token: every write a holder makes as owner carries {lease, owner, epoch} and is
 * refused (MB_CLUSTER_LEASE_LOST) unless, inside the same transaction, the lease row still names
 * that owner and epoch and has not expired. So a node that was paused past its lease (GC, a
 * frozen VM, a partition from the database) and wakes up believing it still owns a mailbox cannot
 * move a checkpoint its successor already moved. On PostgreSQL the check reads the row FOR SHARE:
 * a node taking the lease over (an UPDATE of that row) waits until the fenced write has committed,
 * and a fenced write that comes after the takeover sees the new epoch.
 *
 * Times are epoch milliseconds of the store's lease clock, chosen when the store is opened
 * (LeaseClock): on PostgreSQL the database server's clock, read inside each statement, so every
 * node decides by the same clock and a node whose own clock is minutes off can neither take a live
 * lease nor write under one that ran out; on SQLite (one machine) the process's clock. Tests that
 * drive leases with a manual clock open the store with it. Callers never pass a time: the
 * repository stamps heartbeats and expiries itself.
 */
import { MbError } from '../errors/index.ts';

export interface NodeRecord {
  /** Generated at each process start (src/cluster/node.ts). */
  id: string;
  /** node.name of mailbridge.yaml, else the host name. */
  name: string;
  version: string;
  /** What the process runs: serve, fetch <connector>, … */
  role: string;
  startedAt: number;
  heartbeatAt: number;
  /** What it holds, counted per kind of lease (connector, watch, …). */
  owns: Record<string, number>;
}

export interface LeaseRecord {
  name: string;
  owner: string;
  epoch: number;
  expiresAt: number;
}

/**
 * What times leases and heartbeats: 'database' (PostgreSQL only, its default) is the server's
 * clock_timestamp(); a function is a clock of this process (SQLite's default is Date.now; tests
 * pass a manual one).
 */
export type LeaseClock = 'database' | (() => number);

/** What every write made as an owner carries; refused when the lease moved on or ran out (by the store's clock). */
export interface Fence {
  lease: string;
  owner: string;
  epoch: number;
}

/** A lease as its holder knows it (the fence without the owner, which a batch names once). */
export interface HeldLease {
  lease: string;
  epoch: number;
}

export type Acquired = { ok: true; epoch: number; expiresAt: number } | { ok: false; owner: string; epoch: number; expiresAt: number };

export interface ClusterRepository {
  /**
   * Inserts or updates the node's row (what it owns), stamping the heartbeat with the store's
   * clock; returns that time, against which the caller tells live nodes from dead ones.
   */
  heartbeat(node: Omit<NodeRecord, 'heartbeatAt'>): Promise<number>;
  /** The store's clock now (the time leases and heartbeats are compared with). */
  now(): Promise<number>;
  /**
   * How far this process's clock was ahead of the database server's at the last heartbeat (ms;
   * negative: behind). Undefined where the store is on this machine (SQLite) or before a heartbeat.
   */
  clockOffset?(): number | undefined;
  /** Every registered node, live or not, oldest start first. */
  nodes(): Promise<NodeRecord[]>;
  /** A node that stops cleanly says goodbye, so the others rebalance at once instead of after the lease time. */
  leave(id: string): Promise<void>;
  /** Forgets nodes whose heartbeat is more than `ageMs` old; returns how many. */
  pruneNodes(ageMs: number): Promise<number>;
  /**
   * Takes the lease `name` for `owner` until now + ttlMs when it is free, expired or already this
   * owner's (then it is renewed and keeps its epoch). A new holder gets the next epoch.
   */
  acquire(name: string, owner: string, ttlMs: number): Promise<Acquired>;
  /**
   * acquire() for many leases in one statement, whatever their number (an ownership round with
   * thousands of units costs what one with ten costs): each of `names` that is free, expired or
   * already `owner`'s is taken with the same epochs acquire() gives. Returns the leases taken; the
   * others are another node's. On PostgreSQL a lease another transaction has locked (its holder's
   * fenced write or renewal in progress) is skipped, not waited for: the next round tries it again.
   */
  acquireAll(names: readonly string[], owner: string, ttlMs: number): Promise<LeaseRecord[]>;
  /** Extends a held lease to now + ttlMs; false when it expired or moved on (the holder must stop at once). */
  renew(fence: Fence, ttlMs: number): Promise<boolean>;
  /** renew() for every lease `owner` holds, in one statement; returns the names renewed (the others expired or moved on). */
  renewAll(owner: string, held: readonly HeldLease[], ttlMs: number): Promise<Set<string>>;
  /** Gives a lease up (expiring it now, keeping its epoch for the next holder to count on). */
  release(fence: Fence): Promise<boolean>;
  /** release() for many leases of `owner` in one statement; returns the names released. */
  releaseAll(owner: string, held: readonly HeldLease[]): Promise<Set<string>>;
  /** Leases whose names start with `prefix` (all when omitted). */
  leases(prefix?: string): Promise<LeaseRecord[]>;
}

/** What a refused fenced write throws. */
export function leaseLost(fence: Fence): MbError {
  return new MbError('MB_CLUSTER_LEASE_LOST', { lease: fence.lease, owner: fence.owner, epoch: fence.epoch });
}
