/**
 * Group commit: messages that finish DATA at about the same time share one directory fsync and one
 * database transaction, and each gets its 250 only after that shared commit. No message waits for a
 * timer: the first one starts a flush at once (next tick), and whatever arrives while that flush is
 * on disk goes into the next one. Under load the batches grow by themselves; alone, a message
 * commits as fast as it would without batching.
 */
export class GroupCommitter<T> {
  private pending: Array<{ item: T; resolve: () => void; reject: (err: unknown) => void }> = [];
  private flushing = false;
  private readonly flushBatch: (items: T[]) => Promise<void>;

  constructor(flushBatch: (items: T[]) => Promise<void>) {
    this.flushBatch = flushBatch;
  }

  /** Resolves once `item` is committed together with its batch; rejects if that batch failed. */
  submit(item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.run());
      }
    });
  }

  private async run(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        await this.flushBatch(batch.map((b) => b.item));
        for (const b of batch) b.resolve();
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
    }
    this.flushing = false;
  }
}
