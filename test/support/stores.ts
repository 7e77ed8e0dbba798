/**
 * Both store drivers for tests that must hold on each: SQLite in a temp dir and PostgreSQL on a
 * private server (test/support/postgres.ts), one server per test file, one database per store.
 *
 *   const drivers = storeDrivers();
 *   after(() => drivers.close());
 *   for (const d of drivers.list) test(`… (${d.name})`, async () => { const store = await d.open(); … });
 *
 * `clock` (open, reopen): a manual clock for leases and heartbeats (src/store/cluster.ts); without
 * it, PostgreSQL times them by the server's clock and SQLite by Date.now.
 */
import { join } from 'node:path';
import { openStore, type Store } from '../../src/store/index.ts';

export interface OpenOptions {
  clock?: () => number;
}
import { startPostgres, type PostgresServer } from './postgres.ts';
import { tempDir, type TempDir } from './temp.ts';

export interface StoreDriver {
  name: 'sqlite' | 'postgres';
  /** A new, empty store; closed by `close()` of the set if the test does not close it. */
  open(options?: OpenOptions): Promise<Store>;
  /** The same database again (as after a restart, or another node on it): the store `open()` returned last. */
  reopen(options?: OpenOptions): Promise<Store>;
}

export function storeDrivers(): { list: StoreDriver[]; server(): Promise<PostgresServer>; close(): Promise<void> } {
  const opened: Store[] = [];
  const dirs: TempDir[] = [];
  let server: Promise<PostgresServer> | undefined;
  const pgServer = () => (server ??= startPostgres());
  let lastSqlite = '';
  let lastPg = '';
  const track = (s: Store) => {
    opened.push(s);
    return s;
  };
  const list: StoreDriver[] = [
    {
      name: 'sqlite',
      async open(options) {
        const dir = tempDir('mb-store-');
        dirs.push(dir);
        lastSqlite = join(dir.path, 'mb.db');
        return track(await openStore({ driver: 'sqlite', path: lastSqlite }, options));
      },
      async reopen(options) {
        return track(await openStore({ driver: 'sqlite', path: lastSqlite }, options));
      },
    },
    {
      name: 'postgres',
      async open(options) {
        lastPg = await (await pgServer()).database();
        return track(await openStore({ driver: 'postgres', url: lastPg }, options));
      },
      async reopen(options) {
        return track(await openStore({ driver: 'postgres', url: lastPg }, options));
      },
    },
  ];
  return {
    list,
    server: pgServer,
    async close() {
      for (const s of opened) await s.close().catch(() => {});
      if (server) await (await server).stop();
      for (const d of dirs) d.remove();
    },
  };
}
