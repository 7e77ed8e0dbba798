/**
 * Who does which work when several nodes share one database: connectors per mailbox, watch
 * listeners per shard of mailboxes. Each piece of work (a unit) is a lease in the store
 * (src/store/cluster.ts) held by one node at a time; its epoch is the fencing token every write of
 * the holder carries (CheckpointRepository.fenced), so a node that lost a lease cannot commit.
 *
 * Strategy, one round every `roundMs` (a third of the lease time by default):
 * 1. Heartbeat: the node's row with what it holds per pool. A pool's key in that row says the node
 *    takes part in the pool (a `fetch erp` process takes connector:erp units, a `serve` does not).
 * 2. Live nodes: those whose heartbeat is younger than the lease time, by the store's clock (the
 *    heartbeat returns the time it recorded).
 * 3. Rendezvous hashing: each unit belongs to the live member of its pool with the highest
 *    hash(node id, lease name). Adding or removing a node moves only the units it wins or held
 *    (about 1/N of them), and every node computes the same answer without talking to the others.
 * 4. Held units are renewed; a unit another node now wins is handed over gradually (at most
 *    `moveBatch` per round: stopped here first, then released, so the new owner starts after this
 *    one stopped); units this node wins are acquired when free or expired. A dead node's units are
 *    taken by the survivors once its leases expire: within the lease time plus one round.
 * 5. A held lease this node could not renew in time (the database unreachable) is given up locally
 *    when it expires, without waiting for the database: its work stops before anyone else may start.
 *    Locally a lease runs for the lease time from just before the statement that took or renewed
 *    it, measured by this node's clock: it ends here no later than in the store, whatever the
 *    offset between the two clocks (only their rates must agree, which they do to parts per million).
 *
 * On SQLite there is one node: it wins every unit, and holding them changes nothing for the work.
 *
 * Cost: a round makes the same few statements whatever the number of units (heartbeat, prune,
 * nodes, then at most one release, one renewal and one acquisition for all units together), so a
 * node holding thousands of leases renews them in one round trip. The per-unit work is the
 * rendezvous hash in memory and the units' own start and stop.
 *
 * Clocks: every lease decision (free or expired, renewed, fenced write still allowed, node live
 * or dead) is made by the store's clock, on PostgreSQL the database server's, so a node whose own
 * clock is minutes off neither takes live leases nor keeps expired ones. Each node's offset from
 * the server's clock is still measured and named (MB_CLUSTER_CLOCK_SKEW): the relay's retry schedule
 * and rate limits, tokens and TLS need a correct clock.
 */
import { createHash } from 'node:crypto';
import { MbError, toMbError } from '../errors/index.ts';
import { silentLogger, type Logger } from '../log/index.ts';
import type { ClusterRepository, Fence } from '../store/cluster.ts';
import type { NodeIdentity } from './node.ts';

export const DEFAULT_LEASE_MS = 30_000;
/** A node whose heartbeat stopped this long ago is forgotten (until then `mailbridge status` shows it as stopped). */
export const FORGET_NODES_AFTER_MS = 24 * 3_600_000;

export interface UnitHandlers {
  /** This node holds the unit now: start its work, writing through `fence`. */
  gained(unit: string, fence: Fence): void | Promise<void>;
  /** This node no longer holds it (handed over, expired, or shutting down): stop its work before resolving. */
  lost(unit: string): void | Promise<void>;
}

export interface OwnershipOptions {
  cluster: ClusterRepository;
  node: NodeIdentity;
  /** This node's clock: times the local end of held leases and the rounds (tests pass a manual one). */
  now?: () => number;
  leaseMs?: number;
  roundMs?: number;
  /** Units handed to other nodes per round at most (default: a quarter of those held, at least 1). */
  moveBatch?: number;
  log?: Logger;
}

interface Held {
  pool: string;
  unit: string;
  epoch: number;
  /** When the lease ends by this node's clock (see 5. above), not the store's expiry. */
  expiresAt: number;
}

interface Pool {
  key: string;
  units: string[];
  handlers: UnitHandlers;
}

/** The rendezvous score of a node for a lease. */
function score(node: string, lease: string): bigint {
  return createHash('sha256').update(node).update('\u0000').update(lease).digest().readBigUInt64BE(0);
}

/** The node (of `candidates`) that should hold `lease`. */
export function ownerOf(lease: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1n;
  for (const n of candidates) {
    const s = score(n, lease);
    if (s > bestScore || (s === bestScore && best !== undefined && n < best)) {
      best = n;
      bestScore = s;
    }
  }
  return best;
}

export const leaseName = (pool: string, unit: string) => `${pool}/${unit}`;

export class Ownership {
  readonly node: NodeIdentity;
  readonly leaseMs: number;
  readonly roundMs: number;
  private readonly cluster: ClusterRepository;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly moveBatch: number | undefined;
  private readonly pools = new Map<string, Pool>();
  private readonly held = new Map<string, Held>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private round: Promise<void> | undefined;
  private closed = false;

  constructor(o: OwnershipOptions) {
    this.cluster = o.cluster;
    this.node = o.node;
    this.now = o.now ?? Date.now;
    this.leaseMs = o.leaseMs ?? DEFAULT_LEASE_MS;
    this.roundMs = o.roundMs ?? Math.floor(this.leaseMs / 3);
    this.moveBatch = o.moveBatch;
    this.log = (o.log ?? silentLogger).child({ component: 'cluster', node: this.node.id });
  }

  /** Takes part in a pool of units (e.g. `connector:erp` with its mailboxes); work starts in the next round. */
  join(pool: string, units: readonly string[], handlers: UnitHandlers): void {
    this.pools.set(pool, { key: pool, units: [...new Set(units)], handlers });
  }

  /**
   * Stops taking part in a pool: its units' work stops here and their leases are released, so the
   * other nodes take them at once (a watch service stopped by config apply, a connector run that
   * ended). Joining again later takes them as new leases.
   */
  async leave(pool: string): Promise<void> {
    await this.round;
    await this.releaseHeld((h) => h.pool === pool);
    this.pools.delete(pool);
  }

  /** Units held now, per pool. */
  owned(pool?: string): string[] {
    return [...this.held.values()].filter((h) => pool === undefined || h.pool === pool).map((h) => h.unit);
  }

  /** Units held per pool, every joined pool present (what the heartbeat row says). */
  counts(): Record<string, number> {
    const out: Record<string, number> = Object.fromEntries([...this.pools.keys()].map((k) => [k, 0]));
    for (const h of this.held.values()) out[h.pool] = (out[h.pool] ?? 0) + 1;
    return out;
  }

  /** Runs a round now (rounds never overlap); tests drive rounds with a manual clock this way. */
  tick(): Promise<void> {
    this.round ??= this.runRound().finally(() => {
      this.round = undefined;
    });
    return this.round;
  }

  /** Rounds every roundMs until close(); the first one at once. */
  start(): void {
    const loop = () => {
      if (this.closed) return;
      void this.tick().finally(() => {
        if (this.closed) return;
        this.timer = setTimeout(loop, this.roundMs);
        this.timer.unref();
      });
    };
    loop();
  }

  /** Stops every unit's work, releases the leases (the others take over at once) and leaves. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.round;
    await this.releaseHeld(() => true);
    await this.cluster.leave(this.node.id).catch(() => undefined);
  }

  private fence(lease: string, epoch: number): Fence {
    return { lease, owner: this.node.id, epoch };
  }

  /** Stops the work of the held units `which` picks, then releases their leases in one statement (a failure leaves them to expire). */
  private async releaseHeld(which: (h: Held) => boolean): Promise<void> {
    const gone = [...this.held].filter(([, h]) => which(h));
    for (const [lease] of gone) await this.stop(lease);
    if (gone.length === 0) return;
    await this.cluster.releaseAll(this.node.id, gone.map(([lease, h]) => ({ lease, epoch: h.epoch }))).catch(() => undefined);
  }

  private async stop(lease: string): Promise<void> {
    const h = this.held.get(lease);
    if (!h) return;
    this.held.delete(lease);
    try {
      await this.pools.get(h.pool)?.handlers.lost(h.unit);
    } catch (err) {
      this.log.error({ lease, err: toMbError(err).message }, 'cluster: stopping a unit failed');
    }
  }

  /**
   * Leases run out by the database server's clock, but the relay, tokens and TLS use this node's:
   * a clock more than a quarter lease off the server's is named (once when it goes off, once when it
   * is back), not silently lived with.
   */
  private watchClock(): void {
    const offset = this.cluster.clockOffset?.();
    if (offset === undefined) return;
    const off = Math.abs(offset) > this.leaseMs / 4;
    if (off && !this.clockOff) {
      const err = new MbError('MB_CLUSTER_CLOCK_SKEW', { node: this.node.id, offset, leaseMs: this.leaseMs });
      this.log.warn({ mb: err.code, offset, leaseMs: this.leaseMs }, err.message);
    } else if (!off && this.clockOff) {
      this.log.info({ offset }, 'cluster: this node\'s clock agrees with the database server\'s again');
    }
    this.clockOff = off;
  }
  private clockOff = false;

  private async runRound(): Promise<void> {
    const t = this.now();
    // Leases that ran out without a renewal (the database was unreachable): stop before anyone may take over.
    for (const [lease, h] of [...this.held]) {
      if (h.expiresAt <= t) {
        this.log.warn({ lease, epoch: h.epoch }, 'cluster: lease expired before it could be renewed; its work stops');
        await this.stop(lease);
      }
    }
    try {
      // The store stamps the heartbeat with its clock and returns that time: liveness is judged by it,
      // as every other node judges it, not by this node's clock.
      const at = await this.cluster.heartbeat({
        id: this.node.id,
        name: this.node.name,
        version: this.node.version,
        role: this.node.role,
        startedAt: this.node.started,
        owns: this.counts(),
      });
      this.watchClock();
      // Every start is a new node id: rows of nodes long gone are removed, by whichever node comes first.
      await this.cluster.pruneNodes(FORGET_NODES_AFTER_MS);
      const live = (await this.cluster.nodes()).filter((n) => n.id === this.node.id || n.heartbeatAt > at - this.leaseMs);
      let budget = this.moveBatch ?? Math.max(1, Math.ceil(this.held.size / 4));
      // Decide for every unit first, then one statement per kind of change, however many units:
      // what is handed over, what is renewed, what is taken.
      const handOver: [string, Held][] = [];
      const keep: [string, Held][] = [];
      const take = new Map<string, { pool: Pool; unit: string }>();
      for (const pool of this.pools.values()) {
        const members = live.filter((n) => pool.key in n.owns).map((n) => n.id);
        if (!members.includes(this.node.id)) members.push(this.node.id);
        for (const unit of pool.units) {
          const lease = leaseName(pool.key, unit);
          const mine = ownerOf(lease, members) === this.node.id;
          const h = this.held.get(lease);
          if (h && !mine && budget > 0) {
            budget--;
            handOver.push([lease, h]);
          } else if (h) keep.push([lease, h]);
          else if (mine) take.set(lease, { pool, unit });
        }
      }
      if (this.closed) return;
      // Handed over: stopped here first, then released, so the new owner starts after this one stopped.
      for (const [lease] of handOver) await this.stop(lease);
      if (handOver.length > 0) {
        await this.cluster.releaseAll(this.node.id, handOver.map(([lease, h]) => ({ lease, epoch: h.epoch })));
        for (const [lease] of handOver) this.log.info({ lease }, 'cluster: handed over to another node');
      }
      if (keep.length > 0) {
        // Timed from before the statement: the store's expiry is at least as far away.
        const sent = this.now();
        const renewed = await this.cluster.renewAll(this.node.id, keep.map(([lease, h]) => ({ lease, epoch: h.epoch })), this.leaseMs);
        for (const [lease, h] of keep) {
          if (renewed.has(lease)) h.expiresAt = sent + this.leaseMs;
          else {
            this.log.warn({ lease, epoch: h.epoch }, 'cluster: lease lost to another node; its work stops');
            await this.stop(lease);
          }
        }
      }
      if (this.closed || take.size === 0) return;
      const sent = this.now();
      for (const l of await this.cluster.acquireAll([...take.keys()], this.node.id, this.leaseMs)) {
        const { pool, unit } = take.get(l.name)!;
        // l.expiresAt is the store's time; this node counts the lease time on its own clock (see 5.).
        this.held.set(l.name, { pool: pool.key, unit, epoch: l.epoch, expiresAt: sent + this.leaseMs });
        this.log.info({ lease: l.name, epoch: l.epoch }, 'cluster: took over');
      }
      // Started once every lease taken is recorded as held: a node closing meanwhile (close()
      // waits for this round) skips the starts it no longer needs and still releases all of them.
      for (const l of [...take.keys()]) {
        const h = this.held.get(l);
        if (!h || this.closed) continue;
        try {
          await take.get(l)!.pool.handlers.gained(h.unit, this.fence(l, h.epoch));
        } catch (err) {
          this.log.error({ lease: l, err: toMbError(err).message }, 'cluster: starting a unit failed');
        }
      }
    } catch (err) {
      this.log.warn({ err: toMbError(err).message }, 'cluster: round failed (database unreachable?); held work continues until its leases expire');
    }
  }
}
