/**
 * A private PostgreSQL server for tests: Debian's binaries (scripts/postgres/install.sh), a fresh
 * cluster in a temp dir, listening only on a Unix socket in that dir (no port to collide with), run
 * as the `postgres` user when the tests run as root (initdb refuses root).
 *
 * One server per test file is enough; each test asks for its own database (`database()`), so tests
 * in a file do not see each other's rows. A watchdog shell stops the server when the test process
 * disappears without calling stop() (a killed test runner must not leave postgres running).
 *
 * fsync is off: the tests kill mailbridge, not the machine, and a killed postmaster's writes are
 * still in the page cache. `restart()` stops the server the hard way (SIGQUIT, no checkpoint) and
 * starts it again on the same socket, for tests of a database that goes away under load.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, mkdtempSync, openSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PostgresServer {
  /** Directory of the Unix socket (the `host` of a connection). */
  socketDir: string;
  /** A connection URL for a database that exists (`postgres` unless given). */
  url(database?: string): string;
  /** Creates a new, empty database and returns its URL. */
  database(prefix?: string): Promise<string>;
  /** Stops the server immediately (like a crash) and starts it again on the same socket. */
  restart(): Promise<void>;
  /** Stops the server without starting it again (until `start()`). */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

const PORT = 5432; // Only names the socket file (.s.PGSQL.5432) inside our private dir.
const USER = 'mailbridge';

function binDir(): string {
  const base = '/usr/lib/postgresql';
  let versions: string[] = [];
  try {
    versions = readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(a) - Number(b));
  } catch {
    // reported below
  }
  const v = versions.at(-1);
  if (!v) throw new Error('PostgreSQL is not installed: run scripts/postgres/install.sh');
  return join(base, v, 'bin');
}

export async function startPostgres(): Promise<PostgresServer> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'mb-pg-'));
  const asRoot = userInfo().uid === 0;
  // As root everything runs as `postgres`, which must own the dir (initdb refuses to run as root).
  const runAs = (cmd: string, args: string[]): [string, string[]] => (asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]);
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  const [initCmd, initArgs] = runAs(join(bin, 'initdb'), ['-D', data, '-U', USER, '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  execFileSync(initCmd, initArgs, { stdio: ['ignore', 'ignore', 'pipe'] });

  let child: ChildProcess | undefined;
  let watchdog: number | undefined;

  async function start(): Promise<void> {
    const log = openSync(join(dir, 'postgres.log'), 'a');
    const [cmd, args] = runAs(join(bin, 'postgres'), [
      '-D', data,
      '-k', dir,
      '-p', String(PORT),
      '-c', "listen_addresses=",
      '-c', 'fsync=off',
      '-c', 'full_page_writes=off',
      '-c', 'max_connections=200',
    ]);
    try {
      // runuser keeps the postmaster's PID as its child; the postmaster is what we signal.
      child = spawn(cmd, args, { stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    watchdog = startWatchdog(child.pid!, dir);
    await waitReady();
  }

  async function waitReady(): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const client = new pg.Client({ host: dir, port: PORT, user: USER, database: 'postgres' });
      try {
        await client.connect();
        await client.query('SELECT 1');
        await client.end();
        return;
      } catch (err) {
        await client.end().catch(() => {});
        if (child?.exitCode !== null && child?.exitCode !== undefined) throw new Error(`postgres exited with ${child.exitCode}; see ${dir}/postgres.log`, { cause: err });
        if (Date.now() > deadline) throw new Error(`postgres did not come up: ${(err as Error).message}`, { cause: err });
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  async function kill(): Promise<void> {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    // SIGQUIT: immediate shutdown, no checkpoint, clients cut off — what a crash looks like to them.
    postmasterSignal('SIGQUIT');
    await exited;
    if (watchdog) {
      try {
        process.kill(watchdog, 'SIGKILL');
      } catch {
        // already gone
      }
      watchdog = undefined;
    }
  }

  function postmasterSignal(sig: NodeJS.Signals): void {
    // The postmaster writes its PID as the first line of postmaster.pid; with runuser it is a child.
    try {
      const pid = Number(execFileSync('head', ['-n', '1', join(data, 'postmaster.pid')], { encoding: 'utf8' }).trim());
      process.kill(pid, sig);
    } catch {
      child?.kill(sig);
    }
  }

  await start();
  let dbCounter = 0;
  const url = (database = 'postgres') => `postgresql://${USER}@localhost/${database}?host=${encodeURIComponent(dir)}&port=${PORT}`;

  return {
    socketDir: dir,
    url,
    async database(prefix = 'mb') {
      const name = `${prefix}_${process.pid}_${++dbCounter}`;
      const client = new pg.Client({ host: dir, port: PORT, user: USER, database: 'postgres' });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name}"`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    async restart() {
      await kill();
      await start();
    },
    kill,
    start,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Stops the postmaster when this test process is gone (a killed test runner cleans up nothing). */
function startWatchdog(pid: number, dir: string): number | undefined {
  const script = [
    `gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^[^)]*) Z' "/proc/$1/stat" 2>/dev/null; }`,
    `while ! gone ${process.pid} && ! gone ${pid}; do sleep 1; done`,
    `gone ${pid} && exit 0`,
    `pm=$(head -n 1 "$MB_PG_DIR/data/postmaster.pid" 2>/dev/null)`,
    `[ -n "$pm" ] && kill -QUIT "$pm" 2>/dev/null`,
    `sleep 2; rm -rf -- "$MB_PG_DIR"`,
  ].join('\n');
  const child = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', MB_PG_DIR: dir } });
  child.unref();
  return child.pid;
}
