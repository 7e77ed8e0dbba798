/**
 * SQLite store (node:sqlite), the embedded default. WAL with synchronous=FULL: a write that
 * returned has been fsynced, which later features rely on before they acknowledge anything.
 * Migrations are numbered and applied in order inside one transaction each.
 */
import { mkdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { durable, relaxed, sharedFlush, transaction } from './sqlite-tools.ts';
import { MbError } from '../errors/index.ts';
import type { KeyValue, Store, StoreKeyValue } from './index.ts';
import type { Fence } from './cluster.ts';
import { createSqliteCheckpoints } from './checkpoints-sqlite.ts';
import { migrations } from './migrations.ts';
import { createSqliteQueueRepository } from './queue-sqlite.ts';
import { createSqliteNotifyRepository } from './notify-sqlite.ts';
import { createSqliteCluster, sqliteFenceCheck } from './cluster-sqlite.ts';
import { sqliteSignals } from './signals.ts';

/**
 * `clock` times leases, heartbeats, the fenced writes' checks and the relay's claims: this
 * process's clock (one machine), or a test's manual one.
 */
export function openSqliteStore(path: string, options: { clock?: () => number } = {}): Store {
  const clock = options.clock ?? Date.now;
  let db: DatabaseSync;
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    db = new DatabaseSync(path);
    // cache_size: at most 512 KB of pages instead of SQLite's 2 MB. The hot pages (the queue's
    // indexes, the rows in flight) fit; message bodies, written once and read once, filled the rest
    // and pushed them out. A page not cached is read from the operating system's page cache: in the
    // relay benchmark CPU per message and throughput stayed the same and the peak was 0.6 MB lower
    // (3 rounds beside the same code without it, within the spread from run to run).
    db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA cache_size = -512;');
    migrate(db);
  } catch (err) {
    throw new MbError('MB_STORE_OPEN_FAILED', { path, detail: err instanceof Error ? err.message : String(err) }, { cause: err });
  }

  const stmts = {
    get: db.prepare('SELECT value FROM kv WHERE namespace = ? AND key = ?'),
    set: db.prepare(
      `INSERT INTO kv (namespace, key, value, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
    ),
    del: db.prepare('DELETE FROM kv WHERE namespace = ? AND key = ?'),
    add: db.prepare('INSERT INTO kv (namespace, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (namespace, key) DO NOTHING'),
    list: db.prepare('SELECT key, value, updated_at FROM kv WHERE namespace = ? ORDER BY key'),
  };

  const wal = walSyncer(`${path}-wal`);
  const syncWal = path === ':memory:' ? undefined : wal.sync;
  const signals = sqliteSignals(db, syncWal);
  // Writes not asked to be relaxed are as durable as before, but their fsync runs in the thread pool: watchers write a
  // subscription and a cursor per mailbox at start (100,000 writes for 50,000 mailboxes), and an
  // fsync each inside SQLite's commit held the event loop for minutes — long enough for Graph's
  // 10-second validation of the notification URL to fail.
  const fenceCheck = sqliteFenceCheck(db, clock);
  /** `fence`: every write first checks, in its transaction, that the lease still holds (cluster.ts). */
  const kvOf = (fence?: Fence): KeyValue => ({
    async get(namespace, key) {
      const row = stmts.get.get(namespace, key) as { value: string } | undefined;
      return row?.value;
    },
    async set(namespace, key, value, options) {
      const write = () => {
        fenceCheck(fence);
        stmts.set.run(namespace, key, value, new Date().toISOString());
      };
      if (options?.relaxed) relaxed(db, fence ? () => transaction(db, write) : write);
      else await durable(db, syncWal, write);
    },
    async delete(namespace, key) {
      return durable(db, syncWal, () => {
        fenceCheck(fence);
        return Number(stmts.del.run(namespace, key).changes) > 0;
      });
    },
    async add(namespace, key, value) {
      await durable(db, syncWal, () => {
        fenceCheck(fence);
        stmts.add.run(namespace, key, value, new Date().toISOString());
      });
      return (stmts.get.get(namespace, key) as { value: string }).value;
    },
    async list(namespace) {
      const rows = stmts.list.all(namespace) as Array<{ key: string; value: string; updated_at: string }>;
      return rows.map((r) => ({ key: r.key, value: r.value, updatedAt: r.updated_at }));
    },
  });
  const kv: StoreKeyValue = { ...kvOf(), fenced: (fence) => kvOf(fence) };

  return {
    driver: 'sqlite',
    kv,
    checkpoints: createSqliteCheckpoints(db, fenceCheck, syncWal),
    queue: createSqliteQueueRepository(db, clock, syncWal),
    notify: createSqliteNotifyRepository(db, fenceCheck),
    cluster: createSqliteCluster(db, clock),
    signals,
    async ping() {
      db.prepare('SELECT 1').get();
    },
    async close() {
      await signals.close();
      if (db.isOpen) db.close();
      await wal.close();
    },
  };
}

/**
 * Flushes the write-ahead log from libuv's thread pool instead of inside SQLite's commit, which
 * would block the event loop for the length of an fsync. fsync flushes a file's inode through any
 * descriptor, and a commit has written all its frames to the log when it returns, so a commit made
 * with synchronous = NORMAL followed by this flush is as durable as one made with FULL. SQLite
 * creates the log on the first write, so its directory is flushed once too.
 *
 * Flushes are shared (sharedFlush): a connector's 4 deliveries in flight, or the relay's commits
 * beside the watchers' cursors, cost one fdatasync at a time instead of one each, and the thread
 * pool stays free for the spool's writes.
 */
function walSyncer(walPath: string): { sync: () => Promise<void>; close: () => Promise<void> } {
  let handle: Promise<FileHandle> | undefined;
  const flush = async () => {
    handle ??= (async () => {
      const fh = await open(walPath, 'r');
      const dir = await open(dirname(walPath), 'r');
      await dir.sync().finally(() => dir.close());
      return fh;
    })();
    // fdatasync, as SQLite's own commit on Linux: it flushes the frames and, when the log grew,
    // its size, but not the modification time, which would cost a journal commit every time.
    await (await handle).datasync();
  };
  return {
    sync: sharedFlush(flush),
    async close() {
      const h = handle;
      handle = undefined;
      if (h) await (await h).close().catch(() => undefined);
    },
  };
}

const MIGRATIONS = migrations('sqlite');

function migrate(db: DatabaseSync): void {
  db.exec('CREATE TABLE IF NOT EXISTS migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL) STRICT');
  const applied = new Set((db.prepare('SELECT id FROM migrations').all() as Array<{ id: string }>).map((r) => r.id));
  for (const m of MIGRATIONS) {
    if (applied.has(m.id)) continue;
    transaction(db, () => {
      db.exec(m.sql);
      db.prepare('INSERT INTO migrations (id, applied_at) VALUES (?, ?)').run(m.id, new Date().toISOString());
    });
  }
}
