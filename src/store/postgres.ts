/**
 * PostgreSQL store (pg), for several nodes on one database. The same repositories and the same
 * named migrations as the SQLite store (src/store/sqlite.ts), in PostgreSQL's dialect.
 *
 * Durability: a call that returned has committed; with the server's synchronous_commit (default on)
 * the commit is flushed to the WAL (and to a synchronous standby where the admin configured one)
 * before the promise resolves, which the relay relies on before it answers 250. The relay's claim
 * and delivered updates commit with synchronous_commit = off, the analogue of SQLite's NORMAL: a
 * database crash can only make such a message be sent once more, never lost.
 *
 * Several nodes migrate the same database at start: one transaction-scoped advisory lock makes
 * them take turns, and a migration applied by one node is skipped by the next.
 *
 * Limits: BIGINT columns hold epoch milliseconds and are read back as JavaScript numbers (exact up
 * to 2^53, far beyond any date); the pool holds at most `max` connections per process.
 */
import pg from 'pg';
import { MbError } from '../errors/index.ts';
import type { KeyValue, Store, StoreKeyValue } from './index.ts';
import type { Fence, LeaseClock } from './cluster.ts';
import { createPostgresCheckpoints } from './checkpoints-postgres.ts';
import { migrations } from './migrations.ts';
import { createPostgresNotifyRepository } from './notify-postgres.ts';
import { createPostgresQueueRepository } from './queue-postgres.ts';
import { createPostgresCluster, postgresFenceCheck } from './cluster-postgres.ts';
import { postgresSignals } from './signals.ts';

/** A connection or a pool: what a repository runs its statements on. */
export type Queryable = pg.Pool | pg.PoolClient;

/** Runs `fn` in one transaction on one connection; `relaxed` commits without waiting for the WAL flush. */
export type Transaction = <T>(fn: (client: pg.PoolClient) => Promise<T>, options?: { relaxed?: boolean }) => Promise<T>;

/** Any lock id shared by all mailbridge nodes; the value is arbitrary but fixed. */
const MIGRATION_LOCK = 0x6d62_0001;

const MIGRATIONS_PG = migrations('postgres');

/** pg returns int8 and numeric as strings by default; our BIGINT columns are epoch ms and counters. */
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === pg.types.builtins.INT8 || oid === pg.types.builtins.NUMERIC) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

export interface PostgresStore extends Store {
  /** Runs `fn` in one transaction on one connection (for repositories and tests). */
  transaction: Transaction;
}

/** Where a URL points, without its password: for error texts. */
function describe(url: string): string {
  try {
    const u = new URL(url);
    const host = u.searchParams.get('host') ?? u.host;
    return `${host}${u.pathname}`;
  } catch {
    return 'postgres';
  }
}

export interface PostgresStoreOptions {
  max?: number;
  /**
   * What times leases, heartbeats, the fenced writes' checks and the delivery claims (relay and
   * notifications): the database server's clock by default, so that the nodes decide by one clock;
   * tests driving leases by hand pass theirs.
   */
  clock?: LeaseClock;
}

export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  const clock = options.clock ?? 'database';
  const fenceCheck = postgresFenceCheck(clock);
  // A server that does not answer (host down, network cut) fails a connection attempt after 5 s
  // instead of never: the relay then answers 451 rather than leaving the client hanging.
  const pool = new pg.Pool({ connectionString: url, types, max: options.max ?? 10, connectionTimeoutMillis: 5_000 });
  // An idle connection the server closed (restart, failover) must not crash the process; the pool
  // drops it and the next query opens a new one.
  pool.on('error', () => {});
  try {
    await migrate(pool);
  } catch (err) {
    await pool.end().catch(() => {});
    throw new MbError('MB_STORE_POSTGRES_FAILED', { server: describe(url), detail: err instanceof Error ? err.message : String(err) }, { cause: err });
  }

  const transaction: Transaction = async (fn, opts = {}) => {
    const client = await pool.connect();
    // pg emits 'error' on a checked-out connection the server drops between two statements (a
    // restart), and the pool listens only to idle ones: unheard, it would end the process. The
    // statement in progress fails on its own; the broken connection is dropped at release.
    let broken: Error | undefined;
    const onError = (err: Error) => (broken ??= err);
    client.on('error', onError);
    try {
      // One round trip: the relaxed commits are the relay's per-message claim and delivered updates.
      await client.query(opts.relaxed ? 'BEGIN; SET LOCAL synchronous_commit = off' : 'BEGIN');
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      // A connection that cannot even roll back is broken: dropped at release, not reused.
      await client.query('ROLLBACK').catch((e: Error) => (broken ??= e));
      throw err;
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  };

  /** `fence`: every write runs in a transaction that first checks the lease still holds (cluster.ts). */
  const kvOf = (fence?: Fence): KeyValue => ({
    async get(namespace, key) {
      const { rows } = await pool.query<{ value: string }>('SELECT value FROM kv WHERE namespace = $1 AND key = $2', [namespace, key]);
      return rows[0]?.value;
    },
    async set(namespace, key, value, options) {
      const sql = `INSERT INTO kv (namespace, key, value, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`;
      const params = [namespace, key, value, new Date().toISOString()];
      if (options?.relaxed || fence) {
        await transaction(
          async (c) => {
            await fenceCheck(c, fence);
            await c.query(sql, params);
          },
          { relaxed: options?.relaxed === true },
        );
      } else await pool.query(sql, params);
    },
    async delete(namespace, key) {
      const sql = 'DELETE FROM kv WHERE namespace = $1 AND key = $2';
      const r = fence
        ? await transaction(async (c) => {
            await fenceCheck(c, fence);
            return c.query(sql, [namespace, key]);
          })
        : await pool.query(sql, [namespace, key]);
      return (r.rowCount ?? 0) > 0;
    },
    async add(namespace, key, value) {
      // The insert that lost the race sees the winner's row: ON CONFLICT waits for it to commit.
      const sql = 'INSERT INTO kv (namespace, key, value, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (namespace, key) DO NOTHING';
      const params = [namespace, key, value, new Date().toISOString()];
      if (fence) {
        await transaction(async (c) => {
          await fenceCheck(c, fence);
          await c.query(sql, params);
        });
      } else await pool.query(sql, params);
      const { rows } = await pool.query<{ value: string }>('SELECT value FROM kv WHERE namespace = $1 AND key = $2', [namespace, key]);
      return rows[0]!.value;
    },
    async list(namespace) {
      const { rows } = await pool.query<{ key: string; value: string; updated_at: string }>(
        'SELECT key, value, updated_at FROM kv WHERE namespace = $1 ORDER BY key',
        [namespace],
      );
      return rows.map((r) => ({ key: r.key, value: r.value, updatedAt: r.updated_at }));
    },
  });
  const kv: StoreKeyValue = { ...kvOf(), fenced: (fence) => kvOf(fence) };

  const signals = postgresSignals(pool, url, types);
  const store: PostgresStore = {
    driver: 'postgres',
    kv,
    queue: createPostgresQueueRepository(pool, transaction, clock),
    checkpoints: createPostgresCheckpoints(pool, transaction, clock),
    notify: createPostgresNotifyRepository(pool, transaction, fenceCheck, clock),
    cluster: createPostgresCluster(pool, transaction, clock),
    signals,
    transaction,
    async ping() {
      await pool.query('SELECT 1');
    },
    async close() {
      await signals.close();
      await pool.end();
    },
  };
  return store;
}

async function migrate(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    // Under the lock too: CREATE TABLE IF NOT EXISTS is not safe against itself, and two nodes
    // starting on a new database at once made one fail with a duplicate key in pg_type.
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await client.query('CREATE TABLE IF NOT EXISTS migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
    for (const m of MIGRATIONS_PG) {
      await client.query('BEGIN');
      try {
        // Held until COMMIT: a second node waits here and then sees the row the first one wrote.
        await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
        const done = await client.query('SELECT 1 FROM migrations WHERE id = $1', [m.id]);
        if (done.rowCount === 0) {
          await client.query(m.sql);
          await client.query('INSERT INTO migrations (id, applied_at) VALUES ($1, $2)', [m.id, new Date().toISOString()]);
        }
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    }
  } finally {
    client.release();
  }
}
