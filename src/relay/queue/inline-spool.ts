/**
 * The single-node spool (SQLite): small bodies in the store with their rows, large ones as files.
 *
 * A body up to INLINE_MAX_BYTES (most of what scanners, ERPs and monitoring send) is held in memory
 * while it arrives and committed in its row's transaction (store-spool.ts), so accepting it costs
 * the batch's one WAL fsync instead of a file's open, write, fsync, close and a directory fsync, and
 * delivering it one query instead of open, read, close and unlink. A body that grows past the limit
 * goes on into a spool file (spool.ts: fsync before 'close', directory fsync in seal), so memory per
 * message stays bounded by the limit whatever relay.maxMessageSize allows.
 *
 * Reads try the store first: one indexed lookup, which a file-backed message pays once per read.
 * The file spool's lock file still keeps the folder, and so the queue, to one process.
 */
import { Writable } from 'node:stream';
import type { Bodies, QueueRepository } from '../../store/queue.ts';
import type { Spool, StoredBody } from './spool.ts';
import { FileSpool } from './spool.ts';
import { StoreSpool } from './store-spool.ts';

/** Bodies up to this size live in the store; larger ones in files. */
export const INLINE_MAX_BYTES = 128 * 1024;

export class InlineSpool implements Spool {
  readonly dir: string;
  private readonly store: StoreSpool;
  private readonly files: FileSpool;
  private readonly max: number;
  /**
   * Where this process put each body it has not removed yet. A body from before a restart is in
   * neither set: reads look in the store, then in the folder.
   */
  private readonly inFiles = new Set<string>();
  private readonly inline = new Set<string>();

  constructor(repo: QueueRepository, dir: string, options: { maxInlineBytes?: number } = {}) {
    this.files = new FileSpool(dir);
    this.store = new StoreSpool(repo, `the store (relay_bodies) and ${dir}`);
    this.dir = dir;
    this.max = options.maxInlineBytes ?? INLINE_MAX_BYTES;
  }

  open(options?: { lock?: boolean }): Promise<void> {
    return this.files.open(options);
  }

  async close(): Promise<void> {
    await this.store.close();
    await this.files.close();
  }

  path(id: string): string {
    return this.inFiles.has(id) ? this.files.path(id) : this.store.path(id);
  }

  /**
   * Buffers up to the limit; past it, the buffered bytes and the rest go to a spool file, and the
   * stream closes only once that file is fsynced — the contract of Spool.createWriter either way.
   */
  createWriter(id: string): Writable {
    let chunks: Buffer[] = [];
    let size = 0;
    let file: Writable | undefined;
    const toFile = (to: Writable, chunk: Buffer, callback: (err?: Error | null) => void) => {
      if (to.write(chunk)) callback();
      else to.once('drain', () => callback());
    };
    const out: Writable = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        if (file) return toFile(file, chunk, callback);
        size += chunk.length;
        chunks.push(chunk);
        if (size <= this.max) return callback();
        this.inFiles.add(id);
        file = this.files.createWriter(id);
        // A failed file write fails this stream (the listener then refuses the message with a 4xx).
        file.on('error', (err) => out.destroy(err));
        const held = Buffer.concat(chunks);
        chunks = [];
        toFile(file, held, callback);
      },
      final: (callback) => {
        if (!file) {
          // Staged for the commit of its row (seal).
          this.inline.add(id);
          void this.store.writeDurable(id, Buffer.concat(chunks)).then(() => callback(), callback);
          chunks = [];
          return;
        }
        // 'close' after the file's fsync (spool.ts, flush: true): the bytes are on disk.
        file.once('close', () => callback());
        file.end();
      },
      destroy: (err, callback) => {
        file?.destroy();
        callback(err);
      },
    });
    return out;
  }

  async writeDurable(id: string, data: Buffer): Promise<void> {
    if (data.length <= this.max) {
      this.inline.add(id);
      return this.store.writeDurable(id, data);
    }
    this.inFiles.add(id);
    return this.files.writeDurable(id, data);
  }

  async seal(ids: readonly string[]): Promise<Bodies | undefined> {
    const filed = ids.filter((id) => this.inFiles.has(id));
    if (filed.length) await this.files.seal();
    return filed.length === ids.length ? undefined : this.store.seal(ids.filter((id) => !this.inFiles.has(id)));
  }

  async openStored(id: string): Promise<StoredBody | undefined> {
    if (!this.inFiles.has(id)) {
      const inline = await this.store.openStored(id);
      if (inline) return inline;
    }
    return this.files.openStored(id);
  }

  async readBody(id: string): Promise<Buffer> {
    if (!this.inFiles.has(id)) {
      const inline = await this.store.openStored(id);
      if (inline) return inline.read();
    }
    return this.files.readBody(id);
  }

  async readHeaders(id: string, max?: number): Promise<Buffer> {
    if (!this.inFiles.has(id) && (await this.store.exists(id))) return this.store.readHeaders(id, max);
    return this.files.readHeaders(id, max);
  }

  async exists(id: string): Promise<boolean> {
    return (!this.inFiles.has(id) && (await this.store.exists(id))) || this.files.exists(id);
  }

  async remove(id: string): Promise<void> {
    const inline = this.inline.delete(id);
    const filed = this.inFiles.delete(id);
    if (!filed) await this.store.remove(id);
    if (!inline) await this.files.remove(id);
  }

  removeTemp(id: string): Promise<void> {
    return this.files.removeTemp(id);
  }

  async scan(): Promise<{ bodies: string[]; temps: string[] }> {
    const [inline, onDisk] = await Promise.all([this.store.scan(), this.files.scan()]);
    return { bodies: [...new Set([...inline.bodies, ...onDisk.bodies])], temps: onDisk.temps };
  }
}
