/**
 * Delta catch-up for one watched folder: the one place where the Graph watcher turns changes into
 * events. Change notifications only say "look now"; this module reads what changed with the
 * folder's delta link (facts §4.6) and publishes new-message, read-state and deletion events, so a
 * notification, a lifecycle `missed`, a restart and a gap all take the same path and give the same
 * event ids (derived from the message id: src/notify/events.ts).
 *
 * The cursor of a folder lives in kv (`d\t<mailbox>\t<folder>`): the delta link, the newest
 * receivedDateTime of the first round (Graph's clock, so skew between hosts does not matter) and a
 * bounded memo of the read state of recently seen messages (1,000 entries as 12-character hashes,
 * about 13 KB, read only during a round, never kept in memory). The cursor is saved only after every
 * event of the round was published: a crash in between repeats the round and the store keeps each
 * event once.
 *
 * Rules
 * - First round (no delta link): nothing is reported; the folder's current state becomes the
 *   baseline (the memo holds its newest messages).
 * - Item with `@removed` → message.deleted.
 * - Item without: a message in the memo → read-state event when isRead differs (a flag or category
 *   change alone reports nothing); unknown and received at or after the newest message of the
 *   baseline (receivedDateTime has whole seconds; the baseline's own messages are in the memo) →
 *   message.new; unknown
 *   and older (the memo forgot it, or it was moved in) → read-state event with its current state —
 *   an approximation: without per-message history this may report a change that was not a read
 *   change (harmless for badge counts, which are read from Graph).
 * - Lost delta state (410, syncStateNotFound, resyncRequired) → MB_WATCH_GRAPH_RESYNC and a full
 *   round: unknown messages received after the baseline are new, memo entries whose isRead differs
 *   are read-state events. Not reported: read changes of messages outside the memo, and deletions
 *   during the gap (the memo keeps hashes, not ids; the missing entries are only forgotten).
 * - The unread count is the inbox's unreadItemCount, read once per round after the changes.
 * - Order: events are published in arrival order (receivedDateTime, oldest first), as the EWS and
 *   IMAP watchers do. Graph lists a delta round newest first, so a burst read in one round would
 *   otherwise come out backwards; ties (whole seconds) keep the reverse of Graph's order.
 */
import { createHash } from 'node:crypto';
import { MbError } from '../../../errors/index.ts';
import type { KeyValue } from '../../../store/index.ts';
import { messageDeleted, newMessage, readStateChanged, type NotifyEvent } from '../../events.ts';
import type { Publish } from '../types.ts';
import { graphError, GraphUnreachable, type GraphClient, type GraphReply } from '../../../m365/graph.ts';

export const KV_NAMESPACE = 'watch.graph';
const MEMO_CAP = 1000;
const MEMO_KEY_LENGTH = 12;
const SELECT = 'id,isRead,changeKey,receivedDateTime,from,subject';

export type ChangeType = 'created' | 'updated' | 'deleted';

export interface SyncDeps {
  client: GraphClient;
  kv: KeyValue;
  publish: Publish;
  now: () => number;
  pageSize: number;
  changeTypes: readonly ChangeType[];
  problem: (mailbox: string, error: MbError) => void;
}

export interface SyncResult {
  baseline: boolean;
  resync: boolean;
  /** Only notification data was used (no delta request). */
  hinted: boolean;
  published: number;
  duplicates: number;
}

interface Cursor {
  link: string;
  /** Newest receivedDateTime (ms) of the baseline round; unknown messages received later are new. */
  from: number;
  /** Memo: concatenated `<12-char hash><0|1>` entries, oldest first. */
  memo: string;
}

interface Item {
  id: string;
  removed: boolean;
  isRead: boolean;
  changeKey: string;
  received: number;
  receivedAt: string;
  from?: { address: string; name?: string };
  subject?: string;
}

export function cursorKey(mailbox: string, folder: string): string {
  return `d\t${mailbox}\t${folder}`;
}

/** "INBOX" (IMAP's name) is Graph's well-known inbox. */
export function folderSegment(folder: string): string {
  return encodeURIComponent(folder.toUpperCase() === 'INBOX' ? 'inbox' : folder);
}

/** A request that failed: MB_WATCH_GRAPH_REQUEST_FAILED, or the forbidden one. */
export function requestFailed(mailbox: string, folder: string, reply: GraphReply | GraphUnreachable, retrySeconds: number): MbError {
  if (reply instanceof GraphUnreachable) return new MbError('MB_WATCH_GRAPH_REQUEST_FAILED', { mailbox, folder, detail: reply.message, seconds: retrySeconds });
  const e = graphError(reply);
  if (reply.status === 401 || reply.status === 403) {
    return new MbError('MB_WATCH_GRAPH_FORBIDDEN', { status: reply.status, code: e.code, mailbox, operation: 'delta', detail: e.message, seconds: retrySeconds });
  }
  return new MbError(
    'MB_WATCH_GRAPH_REQUEST_FAILED',
    { mailbox, folder, detail: `${reply.status} ${e.code}: ${e.message}`, seconds: retrySeconds },
    { details: reply.requestId ? { 'request-id': reply.requestId } : {} },
  );
}

class Memo {
  private readonly map = new Map<string, boolean>();

  constructor(serialized = '') {
    const w = MEMO_KEY_LENGTH + 1;
    for (let i = 0; i + w <= serialized.length; i += w) this.map.set(serialized.slice(i, i + MEMO_KEY_LENGTH), serialized[i + MEMO_KEY_LENGTH] === '1');
  }

  static key(id: string): string {
    return createHash('sha256').update(id).digest('base64url').slice(0, MEMO_KEY_LENGTH);
  }

  get(id: string): boolean | undefined {
    return this.map.get(Memo.key(id));
  }

  set(id: string, read: boolean): void {
    const k = Memo.key(id);
    // Re-inserted at the end: the memo forgets the messages seen longest ago first.
    this.map.delete(k);
    this.map.set(k, read);
    while (this.map.size > MEMO_CAP) {
      const oldest = this.map.keys().next().value;
      if (oldest === undefined) break;
      this.map.delete(oldest);
    }
  }

  delete(id: string): void {
    this.map.delete(Memo.key(id));
  }

  keys(): string[] {
    return [...this.map.keys()];
  }

  deleteKey(k: string): void {
    this.map.delete(k);
  }

  serialize(): string {
    let out = '';
    for (const [k, v] of this.map) out += k + (v ? '1' : '0');
    return out;
  }
}

function parseItem(v: Record<string, unknown>): Item | undefined {
  if (typeof v.id !== 'string' || !v.id) return undefined;
  const removed = v['@removed'] !== undefined;
  const receivedAt = typeof v.receivedDateTime === 'string' ? v.receivedDateTime : '';
  const received = receivedAt ? Date.parse(receivedAt) : NaN;
  const etag = typeof v['@odata.etag'] === 'string' ? /^W\/"(.*)"$/.exec(v['@odata.etag'])?.[1] : undefined;
  const item: Item = {
    id: v.id,
    removed,
    isRead: v.isRead === true,
    changeKey: typeof v.changeKey === 'string' ? v.changeKey : (etag ?? ''),
    received: Number.isNaN(received) ? 0 : received,
    receivedAt,
  };
  const from = (v.from as { emailAddress?: { address?: unknown; name?: unknown } } | undefined)?.emailAddress;
  if (from && typeof from.address === 'string' && from.address) {
    item.from = typeof from.name === 'string' && from.name && from.name !== from.address ? { address: from.address, name: from.name } : { address: from.address };
  }
  if (typeof v.subject === 'string') item.subject = v.subject;
  return item;
}

function isLostState(reply: GraphReply): boolean {
  const { code } = graphError(reply);
  return reply.status === 410 || /syncStateNotFound|resyncRequired/i.test(code);
}

class LostState extends Error {
  readonly reply: GraphReply;
  constructor(reply: GraphReply) {
    super('delta state lost');
    this.reply = reply;
  }
}

/** Every page of a round, from `url` to its deltaLink. */
async function readRound(d: SyncDeps, mailbox: string, folder: string, url: string): Promise<{ items: Item[]; deltaLink: string }> {
  const items: Item[] = [];
  let next = url;
  for (let pages = 0; ; pages++) {
    let reply: GraphReply;
    try {
      reply = await d.client.call(mailbox, 'GET', next, { prefer: [`odata.maxpagesize=${d.pageSize}`] });
    } catch (err) {
      if (err instanceof GraphUnreachable) throw requestFailed(mailbox, folder, err, 60);
      throw err;
    }
    if (reply.status !== 200) {
      if (isLostState(reply)) throw new LostState(reply);
      throw requestFailed(mailbox, folder, reply, 60);
    }
    const value = Array.isArray(reply.json?.value) ? (reply.json.value as Array<Record<string, unknown>>) : [];
    for (const v of value) {
      const item = parseItem(v);
      if (item) items.push(item);
    }
    const nextLink = reply.json?.['@odata.nextLink'];
    const deltaLink = reply.json?.['@odata.deltaLink'];
    if (typeof deltaLink === 'string') return { items, deltaLink };
    if (typeof nextLink !== 'string') throw requestFailed(mailbox, folder, { ...reply, status: 502, text: 'a delta page without nextLink or deltaLink' }, 60);
    next = nextLink;
  }
}

/** The inbox's unread count (the badge), once per round. */
export async function inboxUnread(d: SyncDeps, mailbox: string, folder: string): Promise<number> {
  let reply: GraphReply;
  try {
    reply = await d.client.call(mailbox, 'GET', `${d.client.url(mailbox, '/mailFolders/inbox')}?$select=unreadItemCount`);
  } catch (err) {
    if (err instanceof GraphUnreachable) throw requestFailed(mailbox, folder, err, 60);
    throw err;
  }
  const n = reply.json?.unreadItemCount;
  if (reply.status !== 200 || typeof n !== 'number') throw requestFailed(mailbox, folder, reply, 60);
  return n;
}

/** Latest state per message id in a round (Graph may report one message several times), oldest first. */
function latest(items: Item[]): Item[] {
  const byId = new Map<string, Item>();
  for (const it of items) {
    byId.delete(it.id);
    byId.set(it.id, it);
  }
  // Graph's order is newest first: reversed, then a stable sort by arrival (removed items carry no
  // receivedDateTime and come first; their order among themselves does not matter).
  return [...byId.values()].reverse().sort((a, b) => a.received - b.received);
}

async function loadCursor(kv: KeyValue, mailbox: string, folder: string): Promise<Cursor | undefined> {
  const raw = await kv.get(KV_NAMESPACE, cursorKey(mailbox, folder));
  if (!raw) return undefined;
  try {
    const c = JSON.parse(raw) as Partial<Cursor>;
    if (typeof c.link !== 'string' || typeof c.from !== 'number') return undefined;
    return { link: c.link, from: c.from, memo: typeof c.memo === 'string' ? c.memo : '' };
  } catch {
    return undefined;
  }
}

export async function hasCursor(kv: KeyValue, mailbox: string, folder: string): Promise<boolean> {
  return (await loadCursor(kv, mailbox, folder)) !== undefined;
}

/**
 * One round for a folder: baseline, incremental or (after a lost state) full resync. Throws an
 * MbError when Graph cannot be read or an event cannot be published; the cursor is then unchanged.
 *
 * `hints`: message resources from rich `created` notifications (decrypted). When given and the
 * folder has a cursor, they replace the delta request: unknown messages received after the
 * baseline are new (and enter the memo with their read state, so a later round reports their
 * read change), known ones report nothing; the delta link stays where it was (the next round
 * replays these messages, which the memo then knows). Read changes and deletions always come from
 * delta rounds, because notifications can arrive out of order.
 */
export async function syncFolder(d: SyncDeps, mailbox: string, folder: string, hints?: ReadonlyArray<Record<string, unknown>>): Promise<SyncResult> {
  const cursor = await loadCursor(d.kv, mailbox, folder);
  const initial = `${d.client.url(mailbox, `/mailFolders/${folderSegment(folder)}/messages/delta`)}?$select=${SELECT}`;
  const want = new Set(d.changeTypes);
  const events: Array<(unread: number) => NotifyEvent> = [];
  const observedAt = new Date(d.now()).toISOString();
  const base = { mailbox, folder, observedAt };
  const result: SyncResult = { baseline: false, resync: false, hinted: false, published: 0, duplicates: 0 };

  const memo = new Memo(cursor?.memo);
  const announceNew = (it: Item) => {
    if (!want.has('created')) return;
    events.push((unreadCount) =>
      newMessage({ ...base, type: 'message.new', messageId: it.id, receivedAt: it.receivedAt || observedAt, unreadCount, ...(it.from ? { sender: it.from } : {}), ...(it.subject !== undefined ? { subject: it.subject } : {}) }),
    );
  };
  const announceRead = (it: Item) => {
    if (!want.has('updated')) return;
    events.push((unreadCount) => readStateChanged({ ...base, type: 'message.read-state', messageId: it.id, read: it.isRead, changeKey: it.changeKey, unreadCount }));
  };
  const announceDeleted = (messageId: string) => {
    if (!want.has('deleted')) return;
    events.push((unreadCount) => messageDeleted({ ...base, type: 'message.deleted', messageId, unreadCount }));
  };

  let from = cursor?.from ?? 0;
  let deltaLink: string;
  if (cursor && hints && hints.length > 0) {
    deltaLink = cursor.link;
    result.hinted = true;
    // Notifications arrive in any order: arrival order is the messages' own.
    const items = hints.map(parseItem).filter((it): it is Item => it !== undefined).sort((a, b) => a.received - b.received);
    for (const it of items) {
      if (it.removed || memo.get(it.id) !== undefined || it.received < from) continue;
      memo.set(it.id, it.isRead);
      announceNew(it);
    }
  } else if (!cursor) {
    // Baseline: the folder as it is now; nothing to report.
    const round = await readRound(d, mailbox, folder, initial);
    deltaLink = round.deltaLink;
    const present = latest(round.items).filter((it) => !it.removed);
    from = present.reduce((max, it) => Math.max(max, it.received), 0);
    for (const it of present.sort((a, b) => a.received - b.received).slice(-MEMO_CAP)) memo.set(it.id, it.isRead);
    result.baseline = true;
  } else {
    let round: { items: Item[]; deltaLink: string } | undefined;
    try {
      round = await readRound(d, mailbox, folder, cursor.link);
    } catch (err) {
      if (!(err instanceof LostState)) throw err;
      const { code } = graphError(err.reply);
      d.problem(mailbox, new MbError('MB_WATCH_GRAPH_RESYNC', { mailbox, folder, status: err.reply.status, code, since: from ? new Date(from).toISOString() : 'the start' }));
      result.resync = true;
    }
    if (round) {
      deltaLink = round.deltaLink;
      for (const it of latest(round.items)) {
        if (it.removed) {
          memo.delete(it.id);
          announceDeleted(it.id);
          continue;
        }
        const known = memo.get(it.id);
        memo.set(it.id, it.isRead);
        if (known === undefined) {
          if (it.received >= from) announceNew(it);
          else announceRead(it);
        } else if (known !== it.isRead) {
          announceRead(it);
        }
      }
    } else {
      const full = await readRound(d, mailbox, folder, initial);
      deltaLink = full.deltaLink;
      const present = latest(full.items).filter((it) => !it.removed);
      const seen = new Set<string>();
      for (const it of present) {
        seen.add(Memo.key(it.id));
        const known = memo.get(it.id);
        if (known === undefined) {
          if (it.received >= from) {
            announceNew(it);
            memo.set(it.id, it.isRead);
          }
        } else if (known !== it.isRead) {
          memo.set(it.id, it.isRead);
          announceRead(it);
        }
      }
      // Known messages no longer in the folder were deleted (or moved out) during the gap. Their
      // Graph ids are not kept (only hashes), so deletions found this way cannot be reported.
      for (const k of memo.keys()) if (!seen.has(k)) memo.deleteKey(k);
    }
  }

  if (events.length > 0) {
    const unread = await inboxUnread(d, mailbox, folder);
    for (const make of events) {
      const r = await d.publish(make(unread));
      if (r.duplicate) result.duplicates++;
      else result.published++;
    }
  }
  const next: Cursor = { link: deltaLink!, from, memo: memo.serialize() };
  await d.kv.set(KV_NAMESPACE, cursorKey(mailbox, folder), JSON.stringify(next));
  return result;
}
