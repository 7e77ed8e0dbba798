/**
 * Where message bodies live. Two kinds, chosen by the store driver in the composition root
 * (src/app/relay.ts): the file spool below for SQLite installs (one node), and the store spool
 * (store-spool.ts) that keeps bodies in PostgreSQL next to their rows, so any node can deliver any
 * message.
 *
 * The file spool: one file per queued message, `<id>.eml`, holding the message exactly as received.
 * A file is written under its final name and fsynced, then the directory is fsynced (once per group
 * commit). Whether a message exists is decided by its row in the store, committed only after that
 * (see queue/index.ts for the recovery rules): a file a crash cut short has no row and is removed at
 * the next start, so no temporary name and rename is needed (one file-system operation and one
 * directory update fewer per message). `.tmp` files are what older versions left behind.
 *
 * A lock file keeps two mailbridge processes off one spool: recovery deletes files without a row,
 * which would eat the other process's messages in flight.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { MbError } from '../../errors/index.ts';
import type { Bodies } from '../../store/queue.ts';
import { processAlive } from '../../util/process.ts';

/** A stored body opened for one delivery attempt (Spool.openStored); `close` when the attempt ends. */
export interface StoredBody {
  stream(): Readable;
  read(): Promise<Buffer>;
  close(): Promise<void>;
}

/** What the queue, the listener and the manager need of a place for bodies. */
export interface Spool {
  /** Where bodies live, for errors and logs: a folder, or the database. */
  readonly dir: string;
  open(options?: { lock?: boolean }): Promise<void>;
  close(): Promise<void>;
  /** Where one body lives, for logs. */
  path(id: string): string;
  /** A stream for a new message's body; 'close' once it is written (and, for files, fsynced). */
  createWriter(id: string): Writable;
  /** A whole body written at once (bounce reports, before their row). */
  writeDurable(id: string, data: Buffer): Promise<void>;
  /**
   * Called before the rows of `ids` commit: makes the files' names durable (directory fsync) and
   * returns nothing, or hands over the bodies for the rows' transaction.
   */
  seal(ids: readonly string[]): Promise<Bodies | undefined>;
  /** A body opened for one delivery attempt; undefined when it is missing. */
  openStored(id: string): Promise<StoredBody | undefined>;
  readBody(id: string): Promise<Buffer>;
  /** The header block of a stored message (up to the first empty line), at most `max` bytes. */
  readHeaders(id: string, max?: number): Promise<Buffer>;
  exists(id: string): Promise<boolean>;
  remove(id: string): Promise<void>;
  removeTemp(id: string): Promise<void>;
  /** IDs of stored bodies and of leftover temp files (recovery). */
  scan(): Promise<{ bodies: string[]; temps: string[] }>;
}

const BODY = '.eml';
const TEMP = '.tmp';
const LOCK = '.lock';

export class FileSpool implements Spool {
  readonly dir: string;
  private locked = false;
  /** The directory, opened once for its fsyncs (one thread-pool job per group commit, not three). */
  private dirHandle: Promise<FileHandle> | undefined;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Creates the directory and takes the lock (MB_RELAY_SPOOL_LOCKED if a live process holds it). */
  async open(options: { lock?: boolean } = {}): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new MbError('MB_RELAY_SPOOL_WRITE_FAILED', { path: this.dir, detail: (err as Error).message }, { cause: err });
    }
    if (options.lock !== false) await this.lock();
  }

  async close(): Promise<void> {
    const dir = this.dirHandle;
    this.dirHandle = undefined;
    if (dir) await (await dir.catch(() => undefined))?.close().catch(() => undefined);
    if (!this.locked) return;
    this.locked = false;
    await unlink(join(this.dir, LOCK)).catch(() => undefined);
  }

  path(id: string): string {
    return join(this.dir, id + BODY);
  }

  tempPath(id: string): string {
    return join(this.dir, id + TEMP);
  }

  /**
   * A stream for a new message's file. `flush: true` makes the stream fsync the file before it
   * closes, so 'finish'/'close' mean the bytes are on disk; its name is durable after the next
   * `syncDir()`, and the message exists once its row is committed (Queue.accept).
   */
  createWriter(id: string): WriteStream {
    return createWriteStream(this.path(id), { flags: 'wx', mode: 0o600, flush: true });
  }

  async seal(): Promise<undefined> {
    await this.syncDir();
    return undefined;
  }

  async syncDir(): Promise<void> {
    const opening = (this.dirHandle ??= open(this.dir, 'r'));
    let fh: FileHandle;
    try {
      fh = await opening;
    } catch (err) {
      if (this.dirHandle === opening) this.dirHandle = undefined;
      throw err;
    }
    await fh.sync();
  }

  /** Writes a whole file durably (bounce reports, before their row): file and directory fsync. */
  async writeDurable(id: string, data: Buffer): Promise<void> {
    const fh = await open(this.path(id), 'wx', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.syncDir();
  }

  /**
   * Opens a queued message's body for one delivery attempt; undefined if the file is missing. One
   * open serves the presence check, `read` and `stream` (a check and a second open cost two more
   * thread-pool round trips per message). Only a missing file means "no body": an I/O or permission
   * error is thrown, is temporary, and must not get the message held as corrupt.
   */
  async openStored(id: string): Promise<StoredBody | undefined> {
    let fh: FileHandle;
    try {
      fh = await open(this.path(id), 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw err;
    }
    let whole: Promise<Buffer> | undefined;
    return {
      // Positional reads (start: 0) never move the handle's offset, so each stream and `read` see
      // the whole file; a stream still running after `close` fails with EBADF on the closed handle.
      stream: () => createReadStream('', { fd: fh, start: 0, autoClose: false }),
      read: () => (whole ??= readWhole(fh)),
      close: () => fh.close(),
    };
  }

  openBody(id: string): Readable {
    return createReadStream(this.path(id));
  }

  readBody(id: string): Promise<Buffer> {
    return readFile(this.path(id));
  }

  /** The header block of a stored message (up to the first empty line), at most `max` bytes. */
  async readHeaders(id: string, max = 64 * 1024): Promise<Buffer> {
    const fh = await open(this.path(id), 'r');
    try {
      const buf = Buffer.alloc(max);
      const { bytesRead } = await fh.read(buf, 0, max, 0);
      const head = buf.subarray(0, bytesRead);
      const end = head.indexOf('\r\n\r\n');
      return end >= 0 ? head.subarray(0, end + 2) : head;
    } finally {
      await fh.close();
    }
  }

  async exists(id: string): Promise<boolean> {
    try {
      const fh = await open(this.path(id), 'r');
      await fh.close();
      return true;
    } catch (err) {
      // Only a missing file means "no body"; an I/O or permission error is temporary and must not
      // get the message held as corrupt.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw err;
    }
  }

  async remove(id: string): Promise<void> {
    await unlink(this.path(id)).catch(ignoreMissing);
  }

  async removeTemp(id: string): Promise<void> {
    await unlink(this.tempPath(id)).catch(ignoreMissing);
  }

  /** IDs of complete bodies and of leftover temp files. */
  async scan(): Promise<{ bodies: string[]; temps: string[] }> {
    const bodies: string[] = [];
    const temps: string[] = [];
    for (const name of await readdir(this.dir)) {
      if (name.endsWith(BODY)) bodies.push(name.slice(0, -BODY.length));
      else if (name.endsWith(TEMP)) temps.push(name.slice(0, -TEMP.length));
    }
    return { bodies, temps };
  }

  private async lock(): Promise<void> {
    const file = join(this.dir, LOCK);
    for (let tries = 0; tries < 2; tries++) {
      try {
        await writeFile(file, String(process.pid), { flag: 'wx', mode: 0o600 });
        this.locked = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new MbError('MB_RELAY_SPOOL_WRITE_FAILED', { path: this.dir, detail: (err as Error).message }, { cause: err });
        }
      }
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (pid && pid !== process.pid && processAlive(pid)) throw new MbError('MB_RELAY_SPOOL_LOCKED', { pid, path: this.dir });
      // Left behind by a process that died (kill -9, power loss): take it over.
      await unlink(file).catch(ignoreMissing);
    }
    throw new MbError('MB_RELAY_SPOOL_LOCKED', { pid: '?', path: this.dir });
  }
}

async function readWhole(fh: FileHandle): Promise<Buffer> {
  const { size } = await fh.stat();
  const buf = Buffer.allocUnsafe(size);
  let at = 0;
  while (at < size) {
    const { bytesRead } = await fh.read(buf, at, size - at, at);
    if (bytesRead === 0) break;
    at += bytesRead;
  }
  return buf.subarray(0, at);
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}
