/**
 * Signals: short messages between the nodes of one database, for work that belongs to another
 * node right now (a Graph change notification that reached a node behind the load balancer other
 * than the one watching that mailbox). Not durable: a signal sent while nobody listens is gone,
 * so whatever uses them keeps the store as its fallback (e.g. the new owner of a mailbox reads
 * its changes with delta when it takes it over).
 *
 * PostgreSQL: LISTEN/NOTIFY on one connection per process, opened at the first subscription and
 * opened again (listening again) after the server closed it, when subscribers learn of the gap
 * (`onGap`). SQLite: one process, in memory, without gaps.
 * Payloads stay below PostgreSQL's 8,000-byte limit (MAX_SIGNAL_BYTES); callers shorten theirs.
 *
 * Parcels: hand-overs that must not be lost, and may be larger than a signal (an EWS push request
 * carries up to 50 events: SendNotification answered OK is gone from Exchange's queue). `post`
 * resolves once the row is committed (table signal_parcels), and only then signals the channel
 * with the parcel's key; the receiver reads every parcel of the key in the order posted and
 * removes each once it is handled. A signal is only a nudge: whoever takes parcels also looks for
 * them when it starts and every few seconds, so a signal sent while nobody listened, or lost with
 * a connection, delays a parcel but never drops it. Parcels nobody will take (their receiver is
 * gone from the configuration, or none took them for days) are removed by their user with `prune`.
 */
import { EventEmitter } from 'node:events';
import type { DatabaseSync } from 'node:sqlite';
// Loaded by the PostgreSQL side only: an SQLite install (the default) never loads the pg driver.
import type pg from 'pg';
import { durable } from './sqlite-tools.ts';

export const MAX_SIGNAL_BYTES = 7900;

export interface Parcel {
  id: number;
  key: string;
  payload: string;
  postedAt: number;
}

/** Durable hand-overs (see above); the table is the same in both dialects. */
export interface Parcels {
  /** Stores the parcel (committed when this resolves), then signals `channel` with `key`. */
  post(channel: string, key: string, payload: string, now: number): Promise<void>;
  /** The oldest `limit` parcels of a key, in the order posted. */
  parcels(channel: string, key: string, limit: number): Promise<Parcel[]>;
  /** The keys that have parcels waiting on a channel (for the sweep). */
  waiting(channel: string): Promise<string[]>;
  /** Removes handled parcels. */
  remove(ids: readonly number[]): Promise<void>;
  /**
   * Removes the parcels of `channel` posted before `before` (the posting node's clock), only those
   * of `keys` when given; returns how many.
   */
  prune(channel: string, before: number, keys?: readonly string[]): Promise<number>;
}

export interface Signals extends Parcels {
  publish(channel: string, payload: string): Promise<void>;
  /**
   * Resolves once listening; returns the function that stops it. `onGap` is called whenever
   * listening resumed on a new connection after the old one was lost (the server restarted or
   * failed over): what was published meanwhile is gone, so the subscriber reads from the store
   * what those signals would have told. It comes after the new connection listens, so nothing
   * published after the store was read is missed.
   */
  subscribe(channel: string, fn: (payload: string) => void, onGap?: () => void): Promise<() => void>;
  close(): Promise<void>;
}

interface ParcelRow {
  id: number | bigint;
  key: string;
  payload: string;
  posted_at: number | bigint;
}

const row = (r: ParcelRow): Parcel => ({ id: Number(r.id), key: r.key, payload: r.payload, postedAt: Number(r.posted_at) });

/** SQLite (one process): parcels in its database, signals in memory. */
export function sqliteSignals(db: DatabaseSync, syncWal?: () => Promise<void>): Signals {
  const signals = memoryBus();
  const stmts = {
    post: db.prepare('INSERT INTO signal_parcels (channel, key, payload, posted_at) VALUES (?, ?, ?, ?)'),
    parcels: db.prepare('SELECT id, key, payload, posted_at FROM signal_parcels WHERE channel = ? AND key = ? ORDER BY id LIMIT ?'),
    waiting: db.prepare('SELECT DISTINCT key FROM signal_parcels WHERE channel = ? ORDER BY key'),
    remove: db.prepare('DELETE FROM signal_parcels WHERE id = ?'),
    prune: db.prepare('DELETE FROM signal_parcels WHERE channel = ? AND posted_at < ?'),
    pruneKeys: db.prepare('DELETE FROM signal_parcels WHERE channel = ? AND posted_at < ? AND key IN (SELECT value FROM json_each(?))'),
  };
  return {
    ...signals,
    async post(channel, key, payload, now) {
      await durable(db, syncWal, () => stmts.post.run(channel, key, payload, now));
      await signals.publish(channel, key);
    },
    async parcels(channel, key, limit) {
      return (stmts.parcels.all(channel, key, limit) as unknown as ParcelRow[]).map(row);
    },
    async waiting(channel) {
      return (stmts.waiting.all(channel) as Array<{ key: string }>).map((r) => r.key);
    },
    async remove(ids) {
      if (ids.length) await durable(db, syncWal, () => ids.forEach((id) => stmts.remove.run(id)));
    },
    async prune(channel, before, keys) {
      if (keys?.length === 0) return 0;
      return durable(db, syncWal, () =>
        Number((keys ? stmts.pruneKeys.run(channel, before, JSON.stringify(keys)) : stmts.prune.run(channel, before)).changes),
      );
    },
  };
}

/** Signals within one process. */
function memoryBus(): Pick<Signals, 'publish' | 'subscribe' | 'close'> {
  const bus = new EventEmitter();
  bus.setMaxListeners(0);
  return {
    async publish(channel, payload) {
      // Asynchronously, as a NOTIFY arrives: the publisher's own work goes on first.
      setImmediate(() => bus.emit(channel, payload));
    },
    async subscribe(channel, fn) {
      bus.on(channel, fn);
      return () => void bus.off(channel, fn);
    },
    async close() {
      bus.removeAllListeners();
    },
  };
}

const quote = (channel: string) => `"${channel.replace(/"/g, '""')}"`;

export function postgresSignals(pool: pg.Pool, connectionString: string, types: pg.CustomTypesConfig): Signals {
  const handlers = new Map<string, Set<(payload: string) => void>>();
  const gaps = new Set<() => void>();
  let client: Promise<pg.Client> | undefined;
  let closed = false;
  let retry: ReturnType<typeof setTimeout> | undefined;
  // A listening connection was lost: the next one to listen tells the subscribers of the gap.
  let gap = false;

  const connect = (): Promise<pg.Client> =>
    (client ??= (async () => {
      const { default: driver } = await import('pg');
      const c = new driver.Client({ connectionString, types });
      c.on('notification', (n) => {
        for (const fn of handlers.get(n.channel) ?? []) fn(n.payload ?? '');
      });
      // The server went away (restart, failover): listen again on a new connection.
      const lost = () => {
        client = undefined;
        gap = true;
        if (closed || retry) return;
        retry = setTimeout(() => {
          retry = undefined;
          if (!closed && handlers.size > 0) void connect().catch(lost);
        }, 1000);
        retry.unref();
      };
      c.on('error', lost);
      c.on('end', lost);
      try {
        await c.connect();
        for (const ch of handlers.keys()) await c.query(`LISTEN ${quote(ch)}`);
      } catch (err) {
        client = undefined;
        await c.end().catch(() => undefined);
        throw err;
      }
      if (gap) {
        gap = false;
        for (const fn of gaps) {
          try {
            fn();
          } catch {
            // One subscriber's failure must not keep the others from catching up.
          }
        }
      }
      return c;
    })());

  return {
    async publish(channel, payload) {
      await pool.query('SELECT pg_notify($1, $2)', [channel, payload]);
    },
    async post(channel, key, payload, now) {
      // Its own statement, committed before the NOTIFY: a node woken by the signal finds the row.
      await pool.query('INSERT INTO signal_parcels (channel, key, payload, posted_at) VALUES ($1, $2, $3, $4)', [channel, key, payload, now]);
      await pool.query('SELECT pg_notify($1, $2)', [channel, key]);
    },
    async parcels(channel, key, limit) {
      const { rows } = await pool.query<ParcelRow>('SELECT id, key, payload, posted_at FROM signal_parcels WHERE channel = $1 AND key = $2 ORDER BY id LIMIT $3', [channel, key, limit]);
      return rows.map(row);
    },
    async waiting(channel) {
      const { rows } = await pool.query<{ key: string }>('SELECT DISTINCT key FROM signal_parcels WHERE channel = $1 ORDER BY key', [channel]);
      return rows.map((r) => r.key);
    },
    async remove(ids) {
      if (ids.length) await pool.query('DELETE FROM signal_parcels WHERE id = ANY($1::bigint[])', [ids]);
    },
    async prune(channel, before, keys) {
      if (keys?.length === 0) return 0;
      const r = keys
        ? await pool.query('DELETE FROM signal_parcels WHERE channel = $1 AND posted_at < $2 AND key = ANY($3::text[])', [channel, before, [...keys]])
        : await pool.query('DELETE FROM signal_parcels WHERE channel = $1 AND posted_at < $2', [channel, before]);
      return r.rowCount ?? 0;
    },
    async subscribe(channel, fn, onGap) {
      const first = !handlers.has(channel);
      const set = handlers.get(channel) ?? new Set();
      set.add(fn);
      handlers.set(channel, set);
      const c = await connect();
      if (first) await c.query(`LISTEN ${quote(channel)}`);
      // A copy per subscription, so that the same function subscribed twice is removed once per stop.
      const gapFn = onGap && (() => onGap());
      if (gapFn) gaps.add(gapFn);
      return () => {
        set.delete(fn);
        if (gapFn) gaps.delete(gapFn);
      };
    },
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      const c = await client?.catch(() => undefined);
      client = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}
