/**
 * Both store drivers for tests that must hold on each: SQLite in a temp dir and PostgreSQL on a
 * private server (test/support/postgres.ts), one server per test file, one database per store.
 *
 *   const drivers = storeDrivers();
 *   after(() => drivers.close());
 *   for (const d of drivers.list) test(`… (${d.name})`, async () => { const store = await d.open(); … });
 */
import { join } from 'node:path';
import { openStore, type Store } from '../../src/store/index.ts';
import { startPostgres, type PostgresServer } from './postgres.ts';
import { tempDir, type TempDir } from './temp.ts';

export interface StoreDriver {
  name: 'sqlite' | 'postgres';
  /** A new, empty store; closed by `close()` of the set if the test does not close it. */
  open(): Promise<Store>;
  /** The same database again (as after a restart): the store `open()` returned last. */
  reopen(): Promise<Store>;
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
      async open() {
        const dir = tempDir('mb-store-');
        dirs.push(dir);
        lastSqlite = join(dir.path, 'mb.db');
        return track(await openStore({ driver: 'sqlite', path: lastSqlite }));
      },
      async reopen() {
        return track(await openStore({ driver: 'sqlite', path: lastSqlite }));
      },
    },
    {
      name: 'postgres',
      async open() {
        lastPg = await (await pgServer()).database();
        return track(await openStore({ driver: 'postgres', url: lastPg }));
      },
      async reopen() {
        return track(await openStore({ driver: 'postgres', url: lastPg }));
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
