/**
 * One watched mailbox of the EWS watcher, and how its changes become notify events. Shared by the
 * streaming and push modes.
 *
 * Live path (an EWS notification): NewMailEvent/CreatedEvent (and a move or copy into a watched
 * folder) → message.new with sender, subject and receivedAt from one GetItem per notification;
 * an item ModifiedEvent → message.read-state with the item's IsRead and ChangeKey; DeletedEvent (and
 * a move out) → message.deleted. The inbox unread count (the badge) comes from the inbox's folder
 * ModifiedEvent in the same notification, else from one GetFolder.
 *
 * Catch-up path: streaming subscriptions have no resumable watermark, so after every (re)connect
 * each folder is caught up with SyncFolderItems from the SyncState in kv (`sync:<mailbox>:<folder>`):
 * Create → message.new, ReadFlagChange/Update → message.read-state, Delete → message.deleted. The
 * SyncState is saved only after the events of its page were published. A folder without a SyncState
 * is baselined first (pages read, nothing published: what is already there is not new).
 *
 * Both paths build events with the stable ids of src/notify/events.ts, so a change reported by the
 * stream and again by the catch-up is stored once. Work on one mailbox runs one piece at a time
 * (a promise chain), so its events are published in the order Exchange reported them.
 *
 * Limits and approximations: Exchange's ModifiedEvent does not say what changed, so a change other
 * than the read flag (a flag, a category) also yields a read-state event repeating the current
 * state (with its new ChangeKey); the unread count is read after the change and may already include
 * later ones. Only well-known folders (inbox, sentitems, …) can be watched.
 *
 * Memory: a few short strings per mailbox (address, subscription id, folder ids) and its status.
 */
import { MbError } from '../../../errors/index.ts';
import { messageDeleted, newMessage, readStateChanged, type NotifyEvent } from '../../events.ts';
import type { MailboxStatus, WatchState, WatcherContext } from '../types.ts';
import type { EwsClient, EwsTarget } from '../../../m365/ews/client.ts';
import {
  EwsError,
  getFolder,
  getItem,
  parseGetFolder,
  parseGetItem,
  parseSync,
  syncFolderItems,
  type EwsEvent,
  type EwsItem,
  type SyncChange,
} from '../../../m365/ews/soap.ts';

export const KV_NAMESPACE = 'watch-ews';

/** What the modes share: client, context, options that matter per mailbox. */
export interface Core {
  listener: string;
  client: EwsClient;
  ctx: WatcherContext;
  impersonation: boolean;
  signal: AbortSignal;
  /** Reports and logs a problem; the member's status shows it. */
  report(member: Pick<Member, 'address'> | undefined, err: MbError): void;
}

export class Member {
  readonly address: string;
  /** Configured names (as events show them) and their distinguished ids, in the same order. */
  readonly names: string[];
  readonly folders: string[];
  url: string;
  /** Folder ids of `folders`, then the inbox's (learnt once, cached in kv). */
  folderIds?: string[];
  inboxId?: string;
  subId?: string;
  /** Several nodes: the generation of the push subscription `subId` (src/notify/watchers/ews/handoff.ts). */
  gen?: string;
  /** Do not retry a failed subscription before this (epoch ms). */
  retryAt = 0;
  state: WatchState = 'starting';
  since: number;
  error?: MbError;
  /** Push: when Exchange last called for this subscription (epoch ms). */
  lastHeard = 0;
  private tail?: Promise<void>;

  constructor(address: string, names: string[], folders: string[], url: string, now: number) {
    this.address = address;
    this.names = names;
    this.folders = folders;
    this.url = url;
    this.since = now;
  }

  set(state: WatchState, now: number, error?: MbError): void {
    if (state !== this.state) {
      this.state = state;
      this.since = now;
    }
    if (error) this.error = error;
    else if (state === 'watching' || state === 'subscribed') this.error = undefined;
  }

  status(listener: string): MailboxStatus {
    const s: MailboxStatus = { mailbox: this.address, listener, state: this.state, since: new Date(this.since).toISOString() };
    if (this.error) s.error = { code: this.error.code, message: this.error.message };
    return s;
  }

  /** Runs `fn` after everything queued before it for this mailbox. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = (this.tail ?? Promise.resolve()).then(fn);
    const tail = p.then(
      () => undefined,
      () => undefined,
    );
    this.tail = tail;
    // Drop the chain when idle so an idle mailbox holds no promise.
    void tail.then(() => {
      if (this.tail === tail) this.tail = undefined;
    });
    return p;
  }

  folderName(folderId: string | undefined): string | undefined {
    if (!folderId || !this.folderIds) return undefined;
    const i = this.folderIds.indexOf(folderId);
    return i >= 0 ? this.names[i] : undefined;
  }
}

export function target(m: Member): EwsTarget {
  return { url: m.url, mailbox: m.address };
}

/** Mailbox named in folder ids when not impersonating (delegate access needs it). */
function delegate(core: Core, m: Member): string | undefined {
  return core.impersonation ? undefined : m.address;
}

/** Learns the folder ids of the watched folders and the inbox (kv-cached: they never change). */
export async function prepare(core: Core, m: Member): Promise<void> {
  if (m.folderIds && m.inboxId) return;
  const key = `fid:${m.address}`;
  const cached = await core.ctx.kv.get(KV_NAMESPACE, key);
  if (cached) {
    const c = JSON.parse(cached) as { folders: string[]; ids: string[]; inbox: string };
    if (c.folders.join(',') === m.folders.join(',')) {
      m.folderIds = c.ids;
      m.inboxId = c.inbox;
      return;
    }
  }
  const { body } = await core.client.call(target(m), getFolder([...m.folders, 'inbox'], delegate(core, m)));
  const folders = parseGetFolder(body);
  m.folderIds = folders.slice(0, m.folders.length).map((f) => f.id);
  m.inboxId = folders[folders.length - 1]!.id;
  await core.ctx.kv.set(KV_NAMESPACE, key, JSON.stringify({ folders: m.folders, ids: m.folderIds, inbox: m.inboxId }));
}

async function inboxUnread(core: Core, m: Member): Promise<number | undefined> {
  const { body } = await core.client.call(target(m), getFolder(['inbox'], delegate(core, m)));
  return parseGetFolder(body)[0]?.unreadCount;
}

async function getItems(core: Core, m: Member, ids: string[]): Promise<Map<string, EwsItem>> {
  const out = new Map<string, EwsItem>();
  if (!ids.length) return out;
  const { body } = await core.client.call(target(m), getItem(ids));
  const items = parseGetItem(body);
  ids.forEach((id, i) => {
    const it = items[i];
    if (it) out.set(id, it);
  });
  return out;
}

type Op = { kind: 'new' | 'read' | 'deleted'; id: string; folder: string; ev: EwsEvent };

/** The events of one notification (in order) → published notify events. */
export async function handleEvents(core: Core, m: Member, events: EwsEvent[]): Promise<number> {
  let count: number | undefined;
  const ops: Op[] = [];
  const isNew = new Set<string>();
  for (const ev of events) {
    // The inbox's own ModifiedEvent carries its unread count after the change.
    if (ev.folderId && !ev.itemId) {
      if (ev.folderId === m.inboxId && ev.unreadCount !== undefined) count = ev.unreadCount;
      continue;
    }
    const into = m.folderName(ev.parentFolderId);
    switch (ev.type) {
      case 'NewMailEvent':
      case 'CreatedEvent':
      case 'CopiedEvent':
        if (into && ev.itemId && !isNew.has(ev.itemId)) {
          isNew.add(ev.itemId);
          ops.push({ kind: 'new', id: ev.itemId, folder: into, ev });
        }
        break;
      case 'ModifiedEvent':
        // A modification right after the creation in the same notification is part of the arrival.
        if (into && ev.itemId && !isNew.has(ev.itemId)) {
          const prev = ops.findIndex((o) => o.kind === 'read' && o.id === ev.itemId);
          if (prev >= 0) ops.splice(prev, 1);
          ops.push({ kind: 'read', id: ev.itemId, folder: into, ev });
        }
        break;
      case 'DeletedEvent':
        if (into && ev.itemId) ops.push({ kind: 'deleted', id: ev.itemId, folder: into, ev });
        break;
      case 'MovedEvent': {
        const from = m.folderName(ev.oldParentFolderId);
        if (from && ev.oldItemId) ops.push({ kind: 'deleted', id: ev.oldItemId, folder: from, ev });
        if (into && ev.itemId && !isNew.has(ev.itemId)) {
          isNew.add(ev.itemId);
          ops.push({ kind: 'new', id: ev.itemId, folder: into, ev });
        }
        break;
      }
      default:
        break;
    }
  }
  if (!ops.length) return 0;
  const items = await getItems(core, m, [...new Set(ops.filter((o) => o.kind !== 'deleted').map((o) => o.id))]);
  count ??= await inboxUnread(core, m);
  let published = 0;
  for (const op of ops) {
    const ev = op.kind === 'new' ? newFromItem(m, op.folder, op.id, items.get(op.id), count, op.ev.timeStamp) : op.kind === 'read' ? readFromItem(m, op.folder, items.get(op.id), count) : deleted(m, op.folder, op.id, count);
    if (!ev) continue;
    await core.ctx.publish(ev);
    published++;
  }
  return published;
}

function newFromItem(m: Member, folder: string, id: string, item: EwsItem | undefined, count: number | undefined, timeStamp?: string): NotifyEvent {
  // An item gone before GetItem still arrived: report it with what the event says.
  return newMessage({
    type: 'message.new',
    mailbox: m.address,
    messageId: id,
    folder,
    sender: item?.from,
    subject: item?.subject,
    receivedAt: isoOr(item?.receivedAt ?? timeStamp),
    unreadCount: count,
  });
}

function readFromItem(m: Member, folder: string, item: EwsItem | undefined, count: number | undefined): NotifyEvent | undefined {
  // Gone before GetItem: its DeletedEvent follows; nothing to say about its read state.
  if (!item || item.isRead === undefined || count === undefined) return undefined;
  return readStateChanged({ type: 'message.read-state', mailbox: m.address, messageId: item.id, folder, read: item.isRead, unreadCount: count, changeKey: item.changeKey ?? '' });
}

function deleted(m: Member, folder: string, id: string, count: number | undefined): NotifyEvent {
  return messageDeleted({ type: 'message.deleted', mailbox: m.address, messageId: id, folder, unreadCount: count });
}

function isoOr(s: string | undefined): string {
  const t = s ? Date.parse(s) : NaN;
  return Number.isFinite(t) ? new Date(t).toISOString() : new Date().toISOString();
}

/**
 * Catches every watched folder up from its SyncState (baselining folders that have none).
 * Returns the number of events published.
 */
export async function catchUp(core: Core, m: Member): Promise<number> {
  let published = 0;
  for (const [i, folder] of m.folders.entries()) {
    const key = `sync:${m.address}:${folder}`;
    let state = await core.ctx.kv.get(KV_NAMESPACE, key);
    let baseline = !state;
    let count: number | undefined;
    for (let page = 0; page < 10_000; page++) {
      core.signal.throwIfAborted();
      let r;
      try {
        const { body } = await core.client.call(target(m), syncFolderItems({ folder, mailbox: delegate(core, m), syncState: state }));
        r = parseSync(body);
      } catch (err) {
        if (err instanceof EwsError && state && (err.code === 'ErrorInvalidSyncStateData' || err.code === 'ErrorInvalidSyncState')) {
          core.report(m, new MbError('MB_EWS_SYNC_STATE_RESET', { mailbox: m.address, folder, code: err.code }));
          await core.ctx.kv.delete(KV_NAMESPACE, key);
          state = undefined;
          baseline = true;
          continue;
        }
        throw err;
      }
      if (!baseline && r.changes.length) {
        count ??= await inboxUnread(core, m);
        for (const c of r.changes) {
          const ev = fromSync(m, m.names[i]!, c, count);
          if (!ev) continue;
          await core.ctx.publish(ev);
          published++;
        }
      }
      // Published first, then the state that covers them.
      await core.ctx.kv.set(KV_NAMESPACE, key, r.syncState);
      state = r.syncState;
      if (r.last) break;
    }
  }
  return published;
}

function fromSync(m: Member, folder: string, c: SyncChange, count: number | undefined): NotifyEvent | undefined {
  switch (c.kind) {
    case 'create':
      return newFromItem(m, folder, c.item.id, c.item, count);
    case 'update':
      return readFromItem(m, folder, c.item, count);
    case 'read':
      if (count === undefined) return undefined;
      return readStateChanged({ type: 'message.read-state', mailbox: m.address, messageId: c.id, folder, read: c.isRead, unreadCount: count, changeKey: c.changeKey ?? '' });
    case 'delete':
      return deleted(m, folder, c.id, count);
  }
}

/** An EWS failure → the MbError an admin reads. */
export function explainEws(err: unknown, o: { operation: string; mailbox: string; url: string }): MbError {
  if (err instanceof MbError) return err;
  if (!(err instanceof EwsError)) return new MbError('MB_EWS_REQUEST_FAILED', { operation: o.operation, mailbox: o.mailbox, code: 'Internal', detail: (err as Error)?.message ?? String(err) }, { cause: err });
  const host = safeHost(o.url);
  switch (err.code) {
    case 'Http401':
    case 'Http403':
      return new MbError('MB_EWS_UNAUTHORIZED', { status: err.status ?? 401, url: host, mailbox: o.mailbox }, { cause: err });
    case 'ErrorImpersonateUserDenied':
    case 'ErrorAccessDenied':
    case 'ErrorInvalidExchangeImpersonationHeader':
    case 'ErrorImpersonationDenied':
      return new MbError('MB_EWS_ACCESS_DENIED', { mailbox: o.mailbox, code: err.code, detail: err.message }, { cause: err });
    case 'ErrorNonExistentMailbox':
    case 'ErrorMailboxStoreUnavailable':
      return new MbError('MB_EWS_MAILBOX_NOT_FOUND', { mailbox: o.mailbox, code: err.code }, { cause: err });
    case 'ErrorServerBusy':
      return new MbError('MB_EWS_SERVER_BUSY', { url: host, seconds: Math.round((err.backOffMs ?? 30_000) / 1000) }, { cause: err });
    case 'ErrorExceededConnectionCount':
      return new MbError('MB_EWS_CONNECTION_LIMIT', { url: host, mailbox: o.mailbox }, { cause: err });
    case 'ErrorExceededSubscriptionCount':
      return new MbError('MB_EWS_SUBSCRIPTION_LIMIT', { mailbox: o.mailbox }, { cause: err });
    case 'Network':
    case 'Malformed':
      return new MbError('MB_EWS_UNREACHABLE', { url: host, detail: err.message }, { cause: err });
    default:
      return new MbError('MB_EWS_REQUEST_FAILED', { operation: o.operation, mailbox: o.mailbox, code: err.code, detail: err.message }, { cause: err });
  }
}

export function safeHost(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return url;
  }
}
