/**
 * The EWS operations a notification watcher needs, each turning a parsed request body element into
 * a `m:<Op>Response` element (GetStreamingEvents, which answers over time, lives in server.ts and
 * streaming.ts):
 *   Subscribe (streaming, push, pull), Unsubscribe, GetEvents (pull), GetItem, GetFolder,
 *   SyncFolderItems.
 *
 * Folders: DistinguishedFolderId names (inbox, sentitems, deleteditems, drafts, junkemail, archive,
 * outbox; optional t:Mailbox/t:EmailAddress) map onto the IMAP folders the sandbox mailboxes have
 * (the same table as the sandbox Graph), t:FolderId onto the ids of ids.ts.
 *
 * Items: t:Message with the properties a watcher fills events in with. BaseShape IdOnly gives the
 * ItemId only, Default and AllProperties the set below [APPROX: Exchange's Default has more],
 * AdditionalProperties/FieldURI adds single properties (item:Subject, message:From,
 * item:DateTimeReceived, message:IsRead, item:Size, message:InternetMessageId, item:ParentFolderId).
 * Elements are written in the schema's order.
 *
 * SyncFolderItems: the SyncState is the client's (ids.ts); each round lists the folder
 * (FolderLister), compares with the state, and returns at most MaxChangesReturned (1–512) changes:
 * Delete for UIDs gone, Create for new ones, ReadFlagChange when only \Seen changed, Update for
 * other changes (by MODSEQ). IncludesLastItemInRange is false while changes remain.
 */
import { WELL_KNOWN_FOLDERS, wellKnownByPath } from '../graph/ids.ts';
import type { MailFeed, MessageSummary } from '../mailfeed.ts';
import { mayAccess, type EwsMailboxInfo, type EwsPrincipal, type MailboxResolver } from './auth.ts';
import { EwsFault, EwsResponseError } from './errors.ts';
import { EVENT_TYPES, type EventType, type Hub, type Subscription } from './hub.ts';
import {
  decodeSyncState,
  encodeSyncState,
  folderChangeKey,
  folderId,
  itemChangeKey,
  itemId,
  parseFolderId,
  parseItemId,
  parseSubscriptionId,
  parseWatermark,
  ROOT_FOLDER,
  type SyncState,
} from './ids.ts';
import { errorMessage, notificationEl, opResponse, successMessage } from './soap.ts';
import { child, el, kids, NS, tx, type XEl, type XNode } from './xml.ts';

/** Lists a folder's UIDs (the sandbox Graph's MailStore and the synthetic mailboxes both can). */
export interface FolderLister {
  snapshot(mailbox: string, path: string): Promise<{ uidValidity: string; messages: Array<{ uid: number }> }>;
}

export interface Limits {
  /** EWSMaxSubscriptions per mailbox (Exchange Online 20; on-premises 2013+ default 5000). */
  maxSubscriptions: number;
  /** HangingConnectionLimit per account or impersonated mailbox. */
  hangingConnections: number;
  /** Subscription IDs per GetStreamingEvents. */
  maxStreamingIds: number;
}

export interface OpContext {
  hub: Hub;
  feed: MailFeed;
  lister?: FolderLister;
  mailboxes: MailboxResolver;
  limits: Limits;
  principal: EwsPrincipal;
  /** The mailbox the request acts as (impersonated, or the user's own). */
  acting?: EwsMailboxInfo;
  /** Backend the request was routed to. */
  backend: string;
  /** Identity the per-account limits count against. */
  owner: string;
  /** Creates the push sender for a new push subscription. */
  startPush(sub: Subscription): void;
}

const SCHEMA = (detail: string) => new EwsFault('ErrorSchemaValidation', { text: `The request failed schema validation: ${detail}` });

// ---- folders and mailboxes ----

interface FolderTarget {
  mailbox: EwsMailboxInfo;
  folder: string;
  /** As the client named it (distinguished name), for display. */
  distinguished?: string;
}

function resolveMailbox(ctx: OpContext, address: string | undefined): EwsMailboxInfo {
  let box: EwsMailboxInfo | undefined;
  if (address) box = ctx.mailboxes(address);
  else box = ctx.acting;
  if (!box) throw new EwsResponseError('ErrorNonExistentMailbox');
  if (!mayAccess(ctx.principal, box)) throw new EwsResponseError('ErrorAccessDenied');
  return box;
}

function folderTarget(ctx: OpContext, node: XNode): FolderTarget {
  if (node.ns === NS.t && node.name === 'DistinguishedFolderId') {
    const name = (node.attrs.Id ?? '').toLowerCase();
    const address = child(child(node, NS.t, 'Mailbox'), NS.t, 'EmailAddress')?.text;
    if (name === 'msgfolderroot' || name === 'root') return { mailbox: resolveMailbox(ctx, address), folder: ROOT_FOLDER, distinguished: name };
    const known = WELL_KNOWN_FOLDERS[name];
    if (!known) throw SCHEMA(`The 'Id' attribute is invalid - The value '${node.attrs.Id ?? ''}' is invalid according to its datatype 'http://schemas.microsoft.com/exchange/services/2006/types:DistinguishedFolderIdNameType' - The Enumeration constraint failed.`);
    return { mailbox: resolveMailbox(ctx, address), folder: known.path, distinguished: name };
  }
  if (node.ns === NS.t && node.name === 'FolderId') {
    const ref = parseFolderId(node.attrs.Id ?? '');
    if (!ref) throw new EwsResponseError('ErrorInvalidIdMalformed');
    return { mailbox: resolveMailbox(ctx, ref.mailbox), folder: ref.folder };
  }
  throw SCHEMA(`The element '${node.name}' in namespace '${node.ns}' is not expected here.`);
}

// ---- Subscribe / Unsubscribe / GetEvents ----

const POSITIVE_INT = /^\d{1,9}$/;

export async function subscribe(ctx: OpContext, op: XNode): Promise<XEl> {
  const req = op.children.find((c) => c.ns === NS.m && ['StreamingSubscriptionRequest', 'PushSubscriptionRequest', 'PullSubscriptionRequest'].includes(c.name));
  if (!req) throw SCHEMA("The element 'Subscribe' in namespace 'http://schemas.microsoft.com/exchange/services/2006/messages' has incomplete content.");
  const kind = req.name === 'StreamingSubscriptionRequest' ? 'streaming' : req.name === 'PushSubscriptionRequest' ? 'push' : 'pull';
  try {
    const all = (req.attrs.SubscribeToAllFolders ?? '').toLowerCase() === 'true';
    const folderNodes = child(req, NS.t, 'FolderIds')?.children ?? [];
    const targets = folderNodes.map((n) => folderTarget(ctx, n));
    const boxes = new Set(targets.map((t) => t.mailbox.address.toLowerCase()));
    if (boxes.size > 1) throw new EwsResponseError('ErrorInvalidSubscriptionRequest');
    if (!all && targets.length === 0) throw new EwsResponseError('ErrorInvalidSubscriptionRequest');
    const mailbox = targets[0]?.mailbox ?? resolveMailbox(ctx, undefined);
    const typeNodes = kids(child(req, NS.t, 'EventTypes'), NS.t, 'EventType');
    if (typeNodes.length === 0) throw SCHEMA("The element 'EventTypes' has incomplete content.");
    const types = typeNodes.map((n) => {
      if (!(EVENT_TYPES as readonly string[]).includes(n.text)) throw SCHEMA(`The 'EventType' element is invalid - The value '${n.text}' is invalid according to its datatype.`);
      return n.text as EventType;
    });
    let minutes: number | undefined;
    let url: string | undefined;
    if (kind === 'pull') {
      const t = child(req, NS.t, 'Timeout')?.text ?? '';
      if (!POSITIVE_INT.test(t) || Number(t) < 1 || Number(t) > 1440) throw new EwsResponseError('ErrorInvalidRequest', 'The Timeout value must be between 1 and 1440 minutes.');
      minutes = Number(t);
    }
    if (kind === 'push') {
      const f = child(req, NS.t, 'StatusFrequency')?.text;
      if (f !== undefined && (!POSITIVE_INT.test(f) || Number(f) < 1 || Number(f) > 1440)) throw new EwsResponseError('ErrorInvalidRequest', 'The StatusFrequency value must be between 1 and 1440 minutes.');
      minutes = f === undefined ? 30 : Number(f);
      url = child(req, NS.t, 'URL')?.text;
      let ok = false;
      try {
        const u = new URL(url ?? '');
        ok = u.protocol === 'http:' || u.protocol === 'https:';
      } catch {
        ok = false;
      }
      if (!ok) throw new EwsResponseError('ErrorInvalidPushSubscriptionUrl');
    }
    let fromSeq: number | undefined;
    const wm = kind !== 'streaming' ? child(req, NS.t, 'Watermark')?.text : undefined;
    if (wm) {
      fromSeq = parseWatermark(mailbox.address, wm);
      if (fromSeq === undefined) throw new EwsResponseError('ErrorInvalidWatermark');
    }
    if (ctx.hub.subscriptionsOf(mailbox.address) >= ctx.limits.maxSubscriptions) {
      throw new EwsResponseError('ErrorExceededSubscriptionCount', undefined, { PolicyLimit: String(ctx.limits.maxSubscriptions) });
    }
    const sub = await ctx.hub.subscribe({
      kind,
      mailbox: mailbox.address,
      backend: ctx.backend,
      owner: ctx.owner,
      folders: all ? null : targets.map((t) => t.folder),
      types,
      fromSeq,
      minutes,
      url,
    });
    if (kind === 'push') ctx.startPush(sub);
    // Pull subscriptions end after Timeout minutes without a GetEvents (timeout.md).
    if (kind === 'pull') ctx.hub.armExpiry(sub, minutes! * 60_000);
    return opResponse('Subscribe', [
      successMessage('Subscribe', [tx('m:SubscriptionId', sub.id), kind !== 'streaming' ? tx('m:Watermark', sub.lastWatermark) : undefined]),
    ]);
  } catch (err) {
    if (err instanceof EwsResponseError) return opResponse('Subscribe', [errorMessage('Subscribe', err)]);
    throw err;
  }
}

/** The subscription an id names, when it lives on this request's backend. */
export function findSubscription(ctx: Pick<OpContext, 'hub' | 'backend'>, id: string): Subscription | undefined {
  const parsed = parseSubscriptionId(id);
  if (!parsed || parsed.backend.toLowerCase() !== ctx.backend.toLowerCase()) return undefined;
  const sub = ctx.hub.subs.get(parsed.key);
  return sub && sub.id === id ? sub : undefined;
}

export function unsubscribe(ctx: OpContext, op: XNode): XEl {
  const id = child(op, NS.m, 'SubscriptionId')?.text;
  if (!id) throw SCHEMA("The element 'Unsubscribe' has incomplete content. List of possible elements expected: 'SubscriptionId'.");
  const sub = findSubscription(ctx, id);
  if (!sub) return opResponse('Unsubscribe', [errorMessage('Unsubscribe', new EwsResponseError('ErrorSubscriptionNotFound'))]);
  if (sub.reader && 'stop' in sub.reader && typeof sub.reader.stop === 'function') (sub.reader as { stop(): void }).stop();
  ctx.hub.remove(sub);
  return opResponse('Unsubscribe', [successMessage('Unsubscribe')]);
}

export function getEvents(ctx: OpContext, op: XNode, armPullTimeout: (sub: Subscription) => void): XEl {
  const id = child(op, NS.m, 'SubscriptionId')?.text ?? '';
  const wm = child(op, NS.m, 'Watermark')?.text ?? '';
  const sub = findSubscription(ctx, id);
  const fail = (e: EwsResponseError) => opResponse('GetEvents', [errorMessage('GetEvents', e)]);
  if (!sub) return fail(new EwsResponseError('ErrorSubscriptionNotFound'));
  if (sub.kind !== 'pull') return fail(new EwsResponseError('ErrorInvalidPullSubscriptionId'));
  const seq = parseWatermark(sub.mailbox, wm);
  const lastSeq = parseWatermark(sub.mailbox, sub.lastWatermark) ?? 0;
  const headSeq = parseWatermark(sub.mailbox, ctx.hub.watermarkOf(sub.mailbox)) ?? 0;
  if (seq === undefined || seq < lastSeq || seq > headSeq) return fail(new EwsResponseError('ErrorInvalidWatermark'));
  // The watermark acknowledges what the client has: drop it, then hand out the next events.
  while (sub.queue.length && sub.queue[0]!.seq <= seq) sub.queue.shift();
  sub.inflight = 0;
  sub.lastWatermark = wm;
  const previous = wm;
  const events = sub.queue.slice(0, 50);
  const more = sub.queue.length > events.length;
  armPullTimeout(sub);
  return opResponse('GetEvents', [successMessage('GetEvents', [notificationEl(sub.id, events, { previousWatermark: previous, moreEvents: more, status: previous })])]);
}

// ---- items ----

type Prop = 'ItemId' | 'ParentFolderId' | 'ItemClass' | 'Subject' | 'DateTimeReceived' | 'Size' | 'From' | 'InternetMessageId' | 'IsRead';
const ITEM_ORDER: Prop[] = ['ItemId', 'ParentFolderId', 'ItemClass', 'Subject', 'DateTimeReceived', 'Size', 'From', 'InternetMessageId', 'IsRead'];
const FIELD_URIS: Record<string, Prop> = {
  'item:Subject': 'Subject',
  'item:DateTimeReceived': 'DateTimeReceived',
  'item:Size': 'Size',
  'item:ParentFolderId': 'ParentFolderId',
  'item:ItemClass': 'ItemClass',
  'message:From': 'From',
  'message:IsRead': 'IsRead',
  'message:InternetMessageId': 'InternetMessageId',
};

function itemShape(shape: XNode | undefined): Set<Prop> {
  const base = child(shape, NS.t, 'BaseShape')?.text ?? '';
  if (!['IdOnly', 'Default', 'AllProperties'].includes(base)) throw SCHEMA("The element 'ItemShape' has incomplete content. List of possible elements expected: 'BaseShape'.");
  const props = new Set<Prop>(base === 'IdOnly' ? ['ItemId'] : ITEM_ORDER);
  for (const f of kids(child(shape, NS.t, 'AdditionalProperties'), NS.t, 'FieldURI')) {
    const p = FIELD_URIS[f.attrs.FieldURI ?? ''];
    if (p) props.add(p);
  }
  return props;
}

function messageEl(mailbox: string, folder: string, m: MessageSummary, props: Set<Prop>): XEl {
  const v: Record<Prop, XEl | undefined> = {
    ItemId: el('t:ItemId', { Id: itemId({ mailbox, folder, uidValidity: m.uidValidity, uid: m.uid }), ChangeKey: itemChangeKey(m.modseq) }),
    ParentFolderId: el('t:ParentFolderId', { Id: folderId(mailbox, folder), ChangeKey: folderChangeKey(1) }),
    ItemClass: tx('t:ItemClass', 'IPM.Note'),
    Subject: m.subject !== undefined ? tx('t:Subject', m.subject) : undefined,
    DateTimeReceived: tx('t:DateTimeReceived', m.receivedAt.toISOString().replace(/\.\d{3}Z$/, 'Z')),
    Size: tx('t:Size', m.size),
    From: m.from
      ? el('t:From', [el('t:Mailbox', [m.from.name ? tx('t:Name', m.from.name) : tx('t:Name', m.from.address), tx('t:EmailAddress', m.from.address), tx('t:RoutingType', 'SMTP'), tx('t:MailboxType', 'OneOff')])])
      : undefined,
    InternetMessageId: m.internetMessageId ? tx('t:InternetMessageId', m.internetMessageId) : undefined,
    IsRead: tx('t:IsRead', m.seen),
  };
  return el('t:Message', ITEM_ORDER.filter((p) => props.has(p)).map((p) => v[p]));
}

export async function getItem(ctx: OpContext, op: XNode): Promise<XEl> {
  const props = itemShape(child(op, NS.m, 'ItemShape'));
  const ids = child(op, NS.m, 'ItemIds')?.children ?? [];
  if (ids.length === 0) throw SCHEMA("The element 'ItemIds' has incomplete content.");
  const messages: XEl[] = [];
  for (const node of ids) {
    try {
      const ref = node.name === 'ItemId' ? parseItemId(node.attrs.Id ?? '') : undefined;
      if (!ref) throw new EwsResponseError('ErrorInvalidIdMalformed');
      const box = resolveMailbox(ctx, ref.mailbox);
      const m = await ctx.feed.message(box.address, ref.folder, ref.uid).catch(() => undefined);
      if (!m || m.uidValidity !== ref.uidValidity) throw new EwsResponseError('ErrorItemNotFound');
      messages.push(successMessage('GetItem', [el('m:Items', [messageEl(box.address, ref.folder, m, props)])]));
    } catch (err) {
      if (!(err instanceof EwsResponseError)) throw err;
      messages.push(errorMessage('GetItem', err, [el('m:Items', [])]));
    }
  }
  return opResponse('GetItem', messages);
}

// ---- folders ----

function displayName(folder: string): string {
  if (folder === ROOT_FOLDER) return 'Top of Information Store';
  return wellKnownByPath(folder)?.displayName ?? folder;
}

export async function getFolder(ctx: OpContext, op: XNode): Promise<XEl> {
  const base = child(child(op, NS.m, 'FolderShape'), NS.t, 'BaseShape')?.text ?? '';
  if (!['IdOnly', 'Default', 'AllProperties'].includes(base)) throw SCHEMA("The element 'FolderShape' has incomplete content. List of possible elements expected: 'BaseShape'.");
  const nodes = child(op, NS.m, 'FolderIds')?.children ?? [];
  if (nodes.length === 0) throw SCHEMA("The element 'FolderIds' has incomplete content.");
  const messages: XEl[] = [];
  for (const node of nodes) {
    try {
      const t = folderTarget(ctx, node);
      const id = el('t:FolderId', { Id: folderId(t.mailbox.address, t.folder), ChangeKey: folderChangeKey(1) });
      if (t.folder === ROOT_FOLDER) {
        messages.push(successMessage('GetFolder', [el('m:Folders', [el('t:Folder', [id, base !== 'IdOnly' ? tx('t:DisplayName', displayName(t.folder)) : undefined])])]));
        continue;
      }
      const counts = await ctx.feed.counts(t.mailbox.address, t.folder).catch(() => undefined);
      if (!counts) throw new EwsResponseError('ErrorFolderNotFound');
      const folder =
        base === 'IdOnly'
          ? el('t:Folder', [el('t:FolderId', { Id: folderId(t.mailbox.address, t.folder), ChangeKey: folderChangeKey(counts.highestModseq) })])
          : el('t:Folder', [
              el('t:FolderId', { Id: folderId(t.mailbox.address, t.folder), ChangeKey: folderChangeKey(counts.highestModseq) }),
              el('t:ParentFolderId', { Id: folderId(t.mailbox.address, ROOT_FOLDER), ChangeKey: folderChangeKey(1) }),
              tx('t:FolderClass', 'IPF.Note'),
              tx('t:DisplayName', displayName(t.folder)),
              tx('t:TotalCount', counts.total),
              tx('t:ChildFolderCount', 0),
              tx('t:UnreadCount', counts.unseen),
            ]);
      messages.push(successMessage('GetFolder', [el('m:Folders', [folder])]));
    } catch (err) {
      if (!(err instanceof EwsResponseError)) throw err;
      messages.push(errorMessage('GetFolder', err));
    }
  }
  return opResponse('GetFolder', messages);
}

// ---- SyncFolderItems ----

export async function syncFolderItems(ctx: OpContext, op: XNode): Promise<XEl> {
  const props = itemShape(child(op, NS.m, 'ItemShape'));
  const folderNode = child(op, NS.m, 'SyncFolderId')?.children[0];
  const maxText = child(op, NS.m, 'MaxChangesReturned')?.text;
  if (!folderNode) throw SCHEMA("The element 'SyncFolderItems' has incomplete content. List of possible elements expected: 'SyncFolderId'.");
  if (maxText === undefined) throw SCHEMA("The element 'SyncFolderItems' has incomplete content. List of possible elements expected: 'MaxChangesReturned'.");
  if (!/^\d{1,4}$/.test(maxText) || Number(maxText) < 1 || Number(maxText) > 512) {
    throw SCHEMA(`The 'MaxChangesReturned' element is invalid - The value '${maxText}' is invalid according to its datatype 'http://schemas.microsoft.com/exchange/services/2006/types:MaxSyncChangesReturnedType' - The MaxInclusive constraint failed.`);
  }
  const max = Number(maxText);
  const ignore = new Set(kids(child(op, NS.m, 'Ignore'), NS.t, 'ItemId').map((n) => n.attrs.Id ?? ''));
  const stateText = child(op, NS.m, 'SyncState')?.text ?? '';
  const fail = (err: EwsResponseError) =>
    opResponse('SyncFolderItems', [errorMessage('SyncFolderItems', err, [el('m:SyncState', []), tx('m:IncludesLastItemInRange', true)])]);
  try {
    const t = folderTarget(ctx, folderNode);
    let state: SyncState | undefined;
    if (stateText) {
      state = decodeSyncState(stateText);
      if (!state || state.folder !== t.folder) return fail(new EwsResponseError('ErrorInvalidSyncStateData'));
    }
    if (!ctx.lister) throw new EwsResponseError('ErrorInternalServerError', 'SyncFolderItems is not available: the sandbox was started without a folder lister.');
    const snap = await ctx.lister.snapshot(t.mailbox.address, t.folder).catch(() => undefined);
    if (!snap) throw new EwsResponseError('ErrorFolderNotFound');
    const known = new Map<number, [string, 0 | 1]>();
    if (state && state.uidValidity === snap.uidValidity) for (const [uid, modseq, seen] of state.items) known.set(uid, [modseq, seen]);
    const oldUids = state && state.uidValidity !== snap.uidValidity ? state.items.map((i) => i[0]) : [];
    const current = new Map<number, MessageSummary>();
    for (const { uid } of snap.messages) {
      const m = await ctx.feed.message(t.mailbox.address, t.folder, uid).catch(() => undefined);
      if (m && m.uidValidity === snap.uidValidity) current.set(uid, m);
    }
    const mailbox = t.mailbox.address;
    const changes: Array<{ el: XEl; apply: () => void }> = [];
    const oldRef = (uid: number) => itemId({ mailbox, folder: t.folder, uidValidity: state!.uidValidity, uid });
    // A changed UIDVALIDITY: every item the client knew is gone.
    for (const uid of oldUids) changes.push({ el: el('t:Delete', [el('t:ItemId', { Id: oldRef(uid) })]), apply: () => undefined });
    for (const uid of [...known.keys()].sort((a, b) => a - b)) {
      if (current.has(uid)) continue;
      changes.push({ el: el('t:Delete', [el('t:ItemId', { Id: oldRef(uid) })]), apply: () => known.delete(uid) });
    }
    for (const [uid, m] of [...current].sort((a, b) => a[0] - b[0])) {
      const id = itemId({ mailbox, folder: t.folder, uidValidity: snap.uidValidity, uid });
      if (ignore.has(id)) continue;
      const before = known.get(uid);
      const after: [string, 0 | 1] = [m.modseq, m.seen ? 1 : 0];
      if (!before) changes.push({ el: el('t:Create', [messageEl(mailbox, t.folder, m, props)]), apply: () => known.set(uid, after) });
      else if (before[0] !== m.modseq) {
        const readOnly = before[1] !== after[1];
        changes.push({
          el: readOnly
            ? el('t:ReadFlagChange', [el('t:ItemId', { Id: id, ChangeKey: itemChangeKey(m.modseq) }), tx('t:IsRead', m.seen)])
            : el('t:Update', [messageEl(mailbox, t.folder, m, props)]),
          apply: () => known.set(uid, after),
        });
      }
    }
    const round = changes.slice(0, max);
    for (const c of round) c.apply();
    const next: SyncState = { folder: t.folder, uidValidity: snap.uidValidity, items: [...known].map(([uid, [modseq, seen]]) => [uid, modseq, seen]) };
    return opResponse('SyncFolderItems', [
      successMessage('SyncFolderItems', [
        tx('m:SyncState', encodeSyncState(next)),
        tx('m:IncludesLastItemInRange', round.length === changes.length),
        el('m:Changes', round.map((c) => c.el)),
      ]),
    ]);
  } catch (err) {
    if (err instanceof EwsResponseError) return fail(err);
    throw err;
  }
}
