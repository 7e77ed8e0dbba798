/**
 * Signals: short messages between the nodes of one database, for work that belongs to another
 * node right now (a Graph change notification that reached a node behind the load balancer other
 * than the one watching that mailbox). Not durable: a signal sent while nobody listens is gone,
 * so whatever uses them keeps the store as its fallback (e.g. the new owner of a mailbox reads
 * its changes with delta when it takes it over).
 *
 * PostgreSQL: LISTEN/NOTIFY on one connection per process, opened at the first subscription and
 * opened again (listening again) after the server closed it. SQLite: one process, in memory.
 * Payloads stay below PostgreSQL's 8,000-byte limit (MAX_SIGNAL_BYTES); callers shorten theirs.
 */
import { EventEmitter } from 'node:events';
// Loaded by the PostgreSQL side only: an SQLite install (the default) never loads the pg driver.
import type pg from 'pg';

export const MAX_SIGNAL_BYTES = 7900;

export interface Signals {
  publish(channel: string, payload: string): Promise<void>;
  /** Resolves once listening; returns the function that stops it. */
  subscribe(channel: string, fn: (payload: string) => void): Promise<() => void>;
  close(): Promise<void>;
}

export function memorySignals(): Signals {
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
  let client: Promise<pg.Client> | undefined;
  let closed = false;
  let retry: ReturnType<typeof setTimeout> | undefined;

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
      return c;
    })());

  return {
    async publish(channel, payload) {
      await pool.query('SELECT pg_notify($1, $2)', [channel, payload]);
    },
    async subscribe(channel, fn) {
      const first = !handlers.has(channel);
      const set = handlers.get(channel) ?? new Set();
      set.add(fn);
      handlers.set(channel, set);
      const c = await connect();
      if (first) await c.query(`LISTEN ${quote(channel)}`);
      return () => void set.delete(fn);
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
