/**
 * The store spool: message bodies in the store (relay_bodies), for several relay nodes on one
 * PostgreSQL database, where any node must be able to deliver any message.
 *
 * Durability: a body is held in memory while it arrives and goes into the database in the same
 * transaction as its queue row (Queue.accept → seal → QueueRepository.insert), so a row and its
 * body are committed together or not at all, and the 250 follows that COMMIT (with the server's
 * synchronous_commit). Nothing is on disk before the commit, so nothing is left behind by a message
 * that never got its row. There is no lock: every node uses the same bodies, and recovery only
 * takes over claims whose lease has run out (Queue.recover).
 *
 * Limits: a message is held in memory whole until it is committed (relay.maxMessageSize bounds it),
 * and each delivery reads its body in one query.
 */
import { Readable, Writable } from 'node:stream';
import type { QueueRepository } from '../../store/queue.ts';
import type { Spool, StoredBody } from './spool.ts';

export class StoreSpool implements Spool {
  readonly dir: string;
  private readonly repo: QueueRepository;
  /** Bodies received (or written) and not yet committed with their rows. */
  private readonly staged = new Map<string, Buffer>();

  /** `where`: how errors name the place (e.g. "PostgreSQL (relay_bodies)"). */
  constructor(repo: QueueRepository, where = 'the store (relay_bodies)') {
    this.repo = repo;
    this.dir = where;
  }

  async open(): Promise<void> {}

  async close(): Promise<void> {
    this.staged.clear();
  }

  path(id: string): string {
    return `${this.dir}: ${id}`;
  }

  createWriter(id: string): Writable {
    const chunks: Buffer[] = [];
    return new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        chunks.push(chunk);
        callback();
      },
      final: (callback) => {
        this.staged.set(id, Buffer.concat(chunks));
        callback();
      },
    });
  }

  async writeDurable(id: string, data: Buffer): Promise<void> {
    this.staged.set(id, data);
  }

  async seal(ids: readonly string[]): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for (const id of ids) {
      const body = this.staged.get(id);
      if (!body) throw new Error(`no body received for ${id}`);
      out.set(id, body);
      // Committed with its row, or thrown away by the caller's remove() when the commit fails.
      this.staged.delete(id);
    }
    return out;
  }

  async openStored(id: string): Promise<StoredBody | undefined> {
    const body = await this.repo.readBody(id);
    if (!body) return undefined;
    return { stream: () => Readable.from([body]), read: async () => body, close: async () => {} };
  }

  async readBody(id: string): Promise<Buffer> {
    const body = await this.repo.readBody(id);
    if (!body) throw Object.assign(new Error(`no body for ${id} in ${this.dir}`), { code: 'ENOENT' });
    return body;
  }

  async readHeaders(id: string, max = 64 * 1024): Promise<Buffer> {
    const head = (await this.readBody(id)).subarray(0, max);
    const end = head.indexOf('\r\n\r\n');
    return end >= 0 ? head.subarray(0, end + 2) : head;
  }

  exists(id: string): Promise<boolean> {
    return this.repo.hasBody(id);
  }

  async remove(id: string): Promise<void> {
    this.staged.delete(id);
    await this.repo.deleteBody(id);
  }

  async removeTemp(): Promise<void> {}

  async scan(): Promise<{ bodies: string[]; temps: string[] }> {
    return { bodies: await this.repo.bodyIds(), temps: [] };
  }
}
