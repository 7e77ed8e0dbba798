/**
 * The mailbox event table and the subscriptions that read it.
 *
 * Events: every FolderChange of the MailFeed becomes the EWS events Exchange writes for it, in
 * Exchange's order (getstreamingevents-operation.md example), each with the mailbox's next
 * watermark:
 *   created → CreatedEvent (item), NewMailEvent (item; only for unread messages [APPROX]: the feed
 *             cannot tell a delivery from a copy), ModifiedEvent (folder, UnreadCount)
 *   updated → ModifiedEvent (item: read flag or other flags), plus ModifiedEvent (folder) when the
 *             unread count changed
 *   deleted → DeletedEvent (item), ModifiedEvent (folder)
 * A move shows as DeletedEvent in one folder and CreatedEvent in the other; Exchange would send a
 * MovedEvent with OldItemId [APPROX: the feed reports folders separately].
 *
 * Subscriptions: small records (ids, folder filter, event-type filter, a queue that is empty most
 * of the time), one watch per (mailbox, folder) shared by all of them. Streaming subscriptions keep
 * their queue while no connection reads them and expire after `streamingLifetimeMs` (default 30
 * minutes) without one; the client reconnects with the same SubscriptionId within that time and
 * gets what was queued. Events leave a queue only when the connection has written them
 * (`commit`); a connection that dies mid-envelope gives them back (`rollback`). A queue that
 * overflows `maxQueued` is dropped and the subscription reports ErrorMissedNotificationEvents once.
 * Each mailbox keeps its last `eventLogSize` events so push/pull subscriptions can start from a
 * watermark (older ones: ErrorInvalidWatermark; Exchange keeps 30 days).
 */
import type { FolderChange, MailFeed } from '../mailfeed.ts';
import type { Scheduler } from './clock.ts';
import { EwsResponseError } from './errors.ts';
import { folderChangeKey, folderId, itemChangeKey, itemId, newSubscriptionId, ROOT_FOLDER, watermark } from './ids.ts';

export const EVENT_TYPES = ['CopiedEvent', 'CreatedEvent', 'DeletedEvent', 'ModifiedEvent', 'MovedEvent', 'NewMailEvent', 'FreeBusyChangedEvent'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface EwsEvent {
  type: EventType;
  seq: number;
  watermark: string;
  at: number;
  /** IMAP path the event belongs to (the item's folder, or the folder itself). */
  folder: string;
  item?: { id: string; changeKey: string };
  /** Folder events: the folder's own id. */
  folderRef?: { id: string; changeKey: string };
  parent: { id: string; changeKey: string };
  unreadCount?: number;
}

export type SubscriptionKind = 'streaming' | 'push' | 'pull';

/** What reads a subscription's queue: a streaming connection or a push sender. */
export interface Reader {
  kick(): void;
}

export interface Subscription {
  id: string;
  key: string;
  kind: SubscriptionKind;
  mailbox: string;
  backend: string;
  /** Who created it (caller identity), for the per-account limits. */
  owner: string;
  folders: Set<string> | null;
  types: Set<EventType>;
  queue: EwsEvent[];
  /** Events at the head of `queue` written to a reader but not yet committed. */
  inflight: number;
  missed: boolean;
  /** Watermark of the last event handed out (or the start watermark). */
  lastWatermark: string;
  reader?: Reader;
  /** Cancels the expiry timer. */
  expiry?: () => void;
  /** Pull: idle timeout in minutes. Push: StatusFrequency in minutes. */
  minutes?: number;
  url?: string;
  /** Folders actually watched for it (SubscribeToAllFolders skips missing ones). */
  watched: string[];
}

interface FolderWatch {
  refs: number;
  unseen: number | undefined;
  stop?: () => void;
  pending?: Promise<void>;
}

interface MailboxEvents {
  address: string;
  seq: number;
  log: EwsEvent[];
  subs: Set<Subscription>;
  watches: Map<string, FolderWatch>;
}

export interface HubOptions {
  feed: MailFeed;
  scheduler: Scheduler;
  /** Folders SubscribeToAllFolders watches (IMAP paths). */
  allFolders: string[];
  maxQueued?: number;
  eventLogSize?: number;
  streamingLifetimeMs?: number;
  onError?: (err: unknown, where: string) => void;
}

export class Hub {
  readonly subs = new Map<string, Subscription>();
  readonly #mailboxes = new Map<string, MailboxEvents>();
  readonly #o: Required<Omit<HubOptions, 'onError'>> & Pick<HubOptions, 'onError'>;

  constructor(options: HubOptions) {
    this.#o = {
      ...options,
      maxQueued: options.maxQueued ?? 10_000,
      eventLogSize: options.eventLogSize ?? 256,
      streamingLifetimeMs: options.streamingLifetimeMs ?? 30 * 60_000,
    };
  }

  #box(address: string): MailboxEvents {
    const key = address.toLowerCase();
    let box = this.#mailboxes.get(key);
    if (!box) {
      box = { address: key, seq: 0, log: [], subs: new Set(), watches: new Map() };
      this.#mailboxes.set(key, box);
    }
    return box;
  }

  /** Current watermark of a mailbox. */
  watermarkOf(address: string): string {
    const box = this.#box(address);
    return watermark(box.address, box.seq);
  }

  subscriptionsOf(address: string): number {
    return this.#mailboxes.get(address.toLowerCase())?.subs.size ?? 0;
  }

  /**
   * Creates a subscription and starts watching its folders (resolves once the watches are set
   * up, so a change after the Subscribe response is never missed). `fromSeq`: replay the
   * mailbox's logged events after this sequence number (push/pull with a Watermark).
   */
  async subscribe(spec: {
    kind: SubscriptionKind;
    mailbox: string;
    backend: string;
    owner: string;
    folders: string[] | null;
    types: EventType[];
    fromSeq?: number;
    minutes?: number;
    url?: string;
  }): Promise<Subscription> {
    const box = this.#box(spec.mailbox);
    if (spec.fromSeq !== undefined) {
      const oldest = box.log[0]?.seq ?? box.seq + 1;
      if (spec.fromSeq > box.seq || (spec.fromSeq < oldest - 1 && spec.fromSeq !== box.seq)) throw new EwsResponseError('ErrorInvalidWatermark');
    }
    const { id, key } = newSubscriptionId(spec.backend);
    const sub: Subscription = {
      id,
      key,
      kind: spec.kind,
      mailbox: box.address,
      backend: spec.backend,
      owner: spec.owner,
      folders: spec.folders ? new Set(spec.folders) : null,
      types: new Set(spec.types),
      queue: [],
      inflight: 0,
      missed: false,
      lastWatermark: watermark(box.address, spec.fromSeq ?? box.seq),
      minutes: spec.minutes,
      url: spec.url,
      watched: [],
    };
    const folders = spec.folders ?? this.#o.allFolders;
    try {
      for (const f of folders) if (await this.#watch(box, f, spec.folders !== null)) sub.watched.push(f);
    } catch (err) {
      for (const f of sub.watched) this.#unwatch(box, f);
      throw err;
    }
    if (spec.fromSeq !== undefined) for (const e of box.log) if (e.seq > spec.fromSeq && this.#matches(sub, e)) sub.queue.push(e);
    box.subs.add(sub);
    this.subs.set(key, sub);
    if (sub.kind === 'streaming') this.armExpiry(sub);
    return sub;
  }

  /** Watches a folder (shared); false when an optional folder does not exist. */
  async #watch(box: MailboxEvents, folder: string, required: boolean): Promise<boolean> {
    let w = box.watches.get(folder);
    if (w) {
      w.refs++;
      await w.pending;
      if (box.watches.get(folder) === w) return true;
      // The shared watch failed meanwhile: try on our own.
      return this.#watch(box, folder, required);
    }
    w = { refs: 1, unseen: undefined };
    box.watches.set(folder, w);
    const watch = w;
    watch.pending = (async () => {
      try {
        const counts = await this.#o.feed.counts(box.address, folder);
        watch.unseen = counts.unseen;
        const stop = await this.#o.feed.watch(box.address, folder, (c) => this.#onChange(box, c));
        if (watch.refs <= 0) stop();
        else watch.stop = stop;
      } catch (err) {
        box.watches.delete(folder);
        this.#o.onError?.(err, `watch ${box.address} ${folder}`);
      }
    })();
    await watch.pending;
    if (box.watches.get(folder) === watch) return true;
    // SubscribeToAllFolders over a mailbox that lacks one of the well-known folders: skip it.
    if (required) throw new EwsResponseError('ErrorFolderNotFound');
    return false;
  }

  #unwatch(box: MailboxEvents, folder: string): void {
    const w = box.watches.get(folder);
    if (!w) return;
    if (--w.refs <= 0) {
      box.watches.delete(folder);
      w.stop?.();
    }
  }

  #matches(sub: Subscription, e: EwsEvent): boolean {
    return sub.types.has(e.type) && (sub.folders === null || sub.folders.has(e.folder));
  }

  #onChange(box: MailboxEvents, c: FolderChange): void {
    const w = box.watches.get(c.folder);
    const folderRef = { id: folderId(box.address, c.folder), changeKey: folderChangeKey(c.modseq) };
    const root = { id: folderId(box.address, ROOT_FOLDER), changeKey: folderChangeKey(1) };
    const item = { id: itemId({ mailbox: box.address, folder: c.folder, uidValidity: c.uidValidity, uid: c.uid }), changeKey: itemChangeKey(c.modseq) };
    const out: Array<Omit<EwsEvent, 'seq' | 'watermark' | 'at' | 'folder'>> = [];
    const folderModified = () => out.push({ type: 'ModifiedEvent', folderRef, parent: root, unreadCount: c.unseen });
    if (c.kind === 'created') {
      out.push({ type: 'CreatedEvent', item, parent: folderRef });
      if (!c.seen) out.push({ type: 'NewMailEvent', item, parent: folderRef });
      folderModified();
    } else if (c.kind === 'updated') {
      out.push({ type: 'ModifiedEvent', item, parent: folderRef });
      if (w?.unseen !== c.unseen) folderModified();
    } else {
      out.push({ type: 'DeletedEvent', item, parent: folderRef });
      folderModified();
    }
    if (w) w.unseen = c.unseen;
    for (const partial of out) {
      box.seq++;
      const e: EwsEvent = { ...partial, seq: box.seq, watermark: watermark(box.address, box.seq), at: c.at, folder: c.folder };
      box.log.push(e);
      if (box.log.length > this.#o.eventLogSize) box.log.shift();
      for (const sub of box.subs) {
        if (!this.#matches(sub, e)) continue;
        if (sub.queue.length >= this.#o.maxQueued) {
          // Keep the events a reader is writing right now; the rest is lost and reported.
          sub.queue.length = sub.inflight;
          sub.missed = true;
        }
        sub.queue.push(e);
      }
    }
    for (const sub of box.subs) if (sub.queue.length > sub.inflight || sub.missed) sub.reader?.kick();
  }

  /** Takes up to `max` events for delivery (they stay queued until commit). */
  take(sub: Subscription, max = 50): EwsEvent[] {
    const batch = sub.queue.slice(sub.inflight, sub.inflight + max);
    sub.inflight += batch.length;
    return batch;
  }

  /** The reader delivered the events it took: drop them. */
  commit(sub: Subscription): void {
    if (sub.inflight === 0) return;
    const last = sub.queue[sub.inflight - 1]!;
    sub.queue.splice(0, sub.inflight);
    sub.inflight = 0;
    sub.lastWatermark = last.watermark;
  }

  /** The reader failed: everything taken goes back. */
  rollback(sub: Subscription): void {
    sub.inflight = 0;
  }

  /** Streaming subscriptions without a connection expire after the lifetime. */
  armExpiry(sub: Subscription, ms = this.#o.streamingLifetimeMs): void {
    sub.expiry?.();
    sub.expiry = this.#o.scheduler.after(ms, () => this.remove(sub));
  }

  disarmExpiry(sub: Subscription): void {
    sub.expiry?.();
    sub.expiry = undefined;
  }

  remove(sub: Subscription): void {
    if (!this.subs.delete(sub.key)) return;
    sub.expiry?.();
    const box = this.#mailboxes.get(sub.mailbox);
    if (!box) return;
    box.subs.delete(sub);
    for (const f of sub.watched) this.#unwatch(box, f);
    // The mailbox record stays (its sequence number keeps watermarks unique); it is a few fields.
  }

  close(): void {
    for (const sub of [...this.subs.values()]) this.remove(sub);
  }
}
