/**
 * The queue manager's in-memory index of messages that are due, by sending mailbox, oldest first
 * (the order the store's `ready` query gives). It spares the store a `ready` query after every
 * delivery: under a backlog whose mailboxes are all at their concurrency limit, that query walked the
 * whole backlog to find nothing startable, once per finished delivery.
 *
 * What is in it: the messages this process accepted (handed over by the queue with its 'ready'
 * event, no store read) and what the manager's last store read found. It may be stale — a message
 * held or deleted by `mailbridge queue` in another process — which the claim (a compare-and-set in
 * the store) finds out; the manager then drops the entry. When to read the store again is the
 * manager's business (see manager.ts). Bounded: past `max` entries `add` refuses, and the manager
 * reads the rest from the store when it needs them.
 */
import type { QueueRecord } from '../../store/queue.ts';

interface Lane {
  /** Oldest first. */
  list: Map<string, QueueRecord>;
  /** The newest entry, so an arrival is checked against it without walking the list. */
  tail: QueueRecord;
}

export class ReadyIndex {
  private readonly byMailbox = new Map<string, Lane>();
  private count = 0;
  private readonly max: number;

  constructor(max = 10_000) {
    this.max = max;
  }

  get size(): number {
    return this.count;
  }

  has(rec: QueueRecord): boolean {
    return this.byMailbox.get(rec.mailbox)?.list.has(rec.id) ?? false;
  }

  /** Adds a due message (or replaces its entry); false when the index is full. */
  add(rec: QueueRecord): boolean {
    const lane = this.byMailbox.get(rec.mailbox);
    if (lane?.list.has(rec.id)) {
      lane.list.set(rec.id, rec);
      if (lane.tail.id === rec.id) lane.tail = rec;
      return true;
    }
    if (this.count >= this.max) return false;
    this.count++;
    if (!lane) {
      this.byMailbox.set(rec.mailbox, { list: new Map([[rec.id, rec]]), tail: rec });
      return true;
    }
    lane.list.set(rec.id, rec);
    if (!older(rec, lane.tail)) {
      lane.tail = rec;
      return true;
    }
    // Arrivals come in order; a store read may bring older messages: keep the list oldest first.
    const sorted = [...lane.list.values()].sort((a, b) => (older(a, b) ? -1 : 1));
    lane.list = new Map(sorted.map((r) => [r.id, r]));
    lane.tail = sorted[sorted.length - 1]!;
    return true;
  }

  delete(rec: QueueRecord): void {
    const lane = this.byMailbox.get(rec.mailbox);
    if (!lane?.list.delete(rec.id)) return;
    this.count--;
    if (lane.list.size === 0) this.byMailbox.delete(rec.mailbox);
    else if (lane.tail.id === rec.id) for (const r of lane.list.values()) lane.tail = r;
  }

  /** The oldest entry of a mailbox `skip` does not exclude (the head of each mailbox's list). */
  next(skip: (mailbox: string) => boolean): QueueRecord | undefined {
    let best: QueueRecord | undefined;
    for (const [mailbox, lane] of this.byMailbox) {
      if (skip(mailbox)) continue;
      const head = lane.list.values().next().value;
      if (head && (!best || older(head, best))) best = head;
    }
    return best;
  }

  clear(): void {
    this.byMailbox.clear();
    this.count = 0;
  }
}

function older(a: QueueRecord, b: QueueRecord): boolean {
  return a.nextAttemptAt < b.nextAttemptAt || (a.nextAttemptAt === b.nextAttemptAt && a.id < b.id);
}
