/**
 * The EWS operations the watcher uses, as SOAP requests and parsed answers (facts §5.2–5.5):
 * Subscribe (streaming and push), GetStreamingEvents, Unsubscribe, GetItem, GetFolder,
 * SyncFolderItems, and the push listener's SendNotification / SendNotificationResult.
 *
 * Errors: Exchange fails a request in two shapes, a SOAP fault (HTTP 500: `faultcode a:<Code>`,
 * `detail/e:ResponseCode`, `t:MessageXml`) and a per-message error (HTTP 200, `ResponseClass="Error"`,
 * `m:ResponseCode`, `m:MessageText`, `m:MessageXml`). Both become an EwsError with the code and,
 * for ErrorServerBusy, the BackOffMilliseconds Exchange asked for.
 */
import { buildXml, child, el, find, kids, NS, parseXml, path, textAt, tx, type XEl, type XNode } from './xml.ts';

export class EwsError extends Error {
  /** EWS ResponseCode (ErrorServerBusy, …), or `Http<status>` / `Network` / `Malformed`. */
  readonly code: string;
  readonly status?: number;
  readonly backOffMs?: number;
  /** Subscriptions the error names (`m:ErrorSubscriptionIds`). */
  readonly subscriptionIds: string[];
  constructor(code: string, message: string, o: { status?: number; backOffMs?: number; subscriptionIds?: string[]; cause?: unknown } = {}) {
    super(message, { cause: o.cause });
    this.name = 'EwsError';
    this.code = code;
    this.status = o.status;
    this.backOffMs = o.backOffMs;
    this.subscriptionIds = o.subscriptionIds ?? [];
  }
}

export const EVENT_TYPES = ['NewMailEvent', 'CreatedEvent', 'DeletedEvent', 'ModifiedEvent', 'MovedEvent', 'CopiedEvent', 'StatusEvent', 'FreeBusyChangedEvent'] as const;
export type EwsEventType = (typeof EVENT_TYPES)[number];

/** What the watcher subscribes to (StatusEvent is the server's own; CopiedEvent adds nothing for an inbox badge). */
export const SUBSCRIBED_EVENTS: EwsEventType[] = ['NewMailEvent', 'CreatedEvent', 'DeletedEvent', 'ModifiedEvent', 'MovedEvent'];

export interface EwsEvent {
  type: EwsEventType;
  watermark?: string;
  timeStamp?: string;
  /** Item events: the item (after a move: its new id). */
  itemId?: string;
  changeKey?: string;
  /** Folder events: the folder. */
  folderId?: string;
  parentFolderId?: string;
  oldItemId?: string;
  oldParentFolderId?: string;
  /** Folder ModifiedEvent: the folder's unread count after the change. */
  unreadCount?: number;
}

export interface EwsNotification {
  subscriptionId: string;
  previousWatermark?: string;
  moreEvents?: boolean;
  events: EwsEvent[];
}

/** Distinguished folder ids (the well-known folders); others would need a FolderId. */
export const DISTINGUISHED = new Set([
  'inbox', 'sentitems', 'drafts', 'deleteditems', 'junkemail', 'outbox', 'archiveinbox', 'msgfolderroot',
  'conversationhistory', 'notes', 'tasks', 'calendar', 'contacts', 'journal', 'root',
]);

/** Maps a configured folder name (`inbox`, `INBOX`, `Inbox`, `sentitems`) to its distinguished id, or undefined. */
export function distinguishedFolder(name: string): string | undefined {
  const n = name.toLowerCase().replace(/[\s_-]/g, '');
  const alias: Record<string, string> = { sent: 'sentitems', deleted: 'deleteditems', trash: 'deleteditems', junk: 'junkemail', spam: 'junkemail' };
  const id = alias[n] ?? n;
  return DISTINGUISHED.has(id) ? id : undefined;
}

// ---- requests ----

export interface EnvelopeOptions {
  /** RequestServerVersion, e.g. Exchange2013. */
  version: string;
  /** SMTP address to impersonate (ExchangeImpersonation/ConnectingSID/SmtpAddress), or none. */
  impersonate?: string;
}

export function envelope(o: EnvelopeOptions, body: XEl): string {
  return buildXml(
    el('soap:Envelope', { 'xmlns:soap': NS.soap, 'xmlns:m': NS.m, 'xmlns:t': NS.t }, [
      el('soap:Header', [
        el('t:RequestServerVersion', { Version: o.version }),
        o.impersonate ? el('t:ExchangeImpersonation', [el('t:ConnectingSID', [tx('t:SmtpAddress', o.impersonate)])]) : undefined,
      ]),
      el('soap:Body', [body]),
    ]),
  );
}

/** A distinguished folder, with the mailbox named when not impersonating (delegate access). */
function folderIds(folders: string[], mailbox?: string): XEl {
  return el(
    't:FolderIds',
    folders.map((f) => el('t:DistinguishedFolderId', { Id: f }, mailbox ? [el('t:Mailbox', [tx('t:EmailAddress', mailbox)])] : [])),
  );
}

function eventTypes(): XEl {
  return el('t:EventTypes', SUBSCRIBED_EVENTS.map((e) => tx('t:EventType', e)));
}

export function subscribeStreaming(folders: string[], mailbox?: string): XEl {
  return el('m:Subscribe', [el('m:StreamingSubscriptionRequest', [folderIds(folders, mailbox), eventTypes()])]);
}

export function subscribePush(o: { folders: string[]; mailbox?: string; url: string; statusFrequency: number; watermark?: string }): XEl {
  return el('m:Subscribe', [
    el('m:PushSubscriptionRequest', [
      folderIds(o.folders, o.mailbox),
      eventTypes(),
      o.watermark ? tx('t:Watermark', o.watermark) : undefined,
      tx('t:StatusFrequency', o.statusFrequency),
      tx('t:URL', o.url),
    ]),
  ]);
}

export function getStreamingEvents(ids: string[], connectionTimeoutMinutes: number): XEl {
  return el('m:GetStreamingEvents', [el('m:SubscriptionIds', ids.map((id) => tx('t:SubscriptionId', id))), tx('m:ConnectionTimeout', connectionTimeoutMinutes)]);
}

export function unsubscribe(id: string): XEl {
  return el('m:Unsubscribe', [tx('m:SubscriptionId', id)]);
}

const ITEM_PROPS = ['item:Subject', 'message:From', 'item:DateTimeReceived', 'message:IsRead'];

function itemShape(): XEl {
  return el('m:ItemShape', [tx('t:BaseShape', 'IdOnly'), el('t:AdditionalProperties', ITEM_PROPS.map((p) => el('t:FieldURI', { FieldURI: p })))]);
}

export function getItem(ids: string[]): XEl {
  return el('m:GetItem', [itemShape(), el('m:ItemIds', ids.map((id) => el('t:ItemId', { Id: id })))]);
}

export function getFolder(folders: string[], mailbox?: string): XEl {
  return el('m:GetFolder', [
    // Default shape = FolderId, DisplayName, TotalCount, ChildFolderCount, UnreadCount: all the watcher needs.
    el('m:FolderShape', [tx('t:BaseShape', 'Default')]),
    el('m:FolderIds', folderIds(folders, mailbox).children),
  ]);
}

/** SyncFolderItems: at most 512 changes per call (the operation's MaxChangesReturned limit). */
export function syncFolderItems(o: { folder: string; mailbox?: string; syncState?: string; max?: number }): XEl {
  return el('m:SyncFolderItems', [
    itemShape(),
    el('m:SyncFolderId', folderIds([o.folder], o.mailbox).children),
    o.syncState ? tx('m:SyncState', o.syncState) : undefined,
    tx('m:MaxChangesReturned', Math.min(512, Math.max(1, o.max ?? 512))),
    tx('m:SyncScope', 'NormalItems'),
  ]);
}

/** The push listener's answer (facts §5.3): OK keeps the subscription, Unsubscribe ends it. */
export function sendNotificationResult(status: 'OK' | 'Unsubscribe'): string {
  return buildXml(
    el('s:Envelope', { 'xmlns:s': NS.soap }, [
      el('s:Body', [el('SendNotificationResult', { xmlns: NS.m }, [tx('SubscriptionStatus', status)])]),
    ]),
  );
}

// ---- responses ----

function int(s: string | undefined): number | undefined {
  if (s === undefined || s === '') return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

function backOff(node: XNode | undefined): number | undefined {
  const v = kids(node, 'Value').find((x) => x.attrs.Name === 'BackOffMilliseconds');
  return int(v?.text);
}

/** The SOAP body of a response; throws EwsError for a SOAP fault. */
export function soapBody(xml: string, status = 200): XNode {
  return soapEnvelope(xml, status).body;
}

/**
 * The Body and the server's version from the header (s:Header/h:ServerVersionInfo MajorVersion,
 * MinorVersion): Exchange Online answers with 15.20 builds, Exchange Server 2013–2019 with 15.0–15.2.
 */
export function soapEnvelope(xml: string, status = 200): { body: XNode; version?: { major: number; minor: number } } {
  let root: XNode;
  try {
    root = parseXml(xml);
  } catch (err) {
    throw new EwsError(status === 200 ? 'Malformed' : `Http${status}`, `not an EWS response (HTTP ${status}): ${(err as Error).message}`, { status, cause: err });
  }
  const body = child(root, 'Body');
  if (!body) throw new EwsError('Malformed', `not a SOAP envelope (HTTP ${status})`, { status });
  const fault = child(body, 'Fault');
  if (fault) {
    const detail = child(fault, 'detail');
    const code = textAt(detail, 'ResponseCode') ?? (textAt(fault, 'faultcode') ?? 'Fault').replace(/^.*:/, '');
    const message = textAt(detail, 'Message') ?? textAt(fault, 'faultstring') ?? code;
    throw new EwsError(code, message, { status, backOffMs: backOff(child(detail, 'MessageXml')) });
  }
  const info = child(child(root, 'Header'), 'ServerVersionInfo');
  const major = Number(info?.attrs.MajorVersion);
  const minor = Number(info?.attrs.MinorVersion);
  return Number.isInteger(major) && Number.isInteger(minor) ? { body, version: { major, minor } } : { body };
}

/** Exchange Online's builds are 15.20 and later; on premises Exchange Server 2019 is 15.2. */
export function isExchangeOnlineVersion(v: { major: number; minor: number }): boolean {
  return v.major > 15 || (v.major === 15 && v.minor >= 20);
}

export interface ResponseMessage {
  node: XNode;
  ok: boolean;
  /** Warning counts as ok (the data is there). */
  responseClass: string;
  code: string;
  text: string;
}

/** The `*ResponseMessage` elements of an operation's answer, in order. */
export function responseMessages(body: XNode): ResponseMessage[] {
  const op = body.children[0];
  const msgs = kids(child(op, 'ResponseMessages'));
  return msgs.map((node) => {
    const responseClass = node.attrs.ResponseClass ?? 'Success';
    return { node, responseClass, ok: responseClass !== 'Error', code: textAt(node, 'ResponseCode') ?? 'NoError', text: textAt(node, 'MessageText') ?? '' };
  });
}

export function toError(m: ResponseMessage): EwsError {
  return new EwsError(m.code, m.text || m.code, {
    backOffMs: backOff(child(m.node, 'MessageXml')),
    subscriptionIds: kids(child(m.node, 'ErrorSubscriptionIds'), 'SubscriptionId').map((s) => s.text),
  });
}

/** The single response message of a one-item request; throws its error. */
export function single(body: XNode): ResponseMessage {
  const [m] = responseMessages(body);
  if (!m) throw new EwsError('Malformed', 'EWS answered without a response message');
  if (!m.ok) throw toError(m);
  return m;
}

export function parseEvent(node: XNode): EwsEvent | undefined {
  if (!(EVENT_TYPES as readonly string[]).includes(node.name)) return undefined;
  const ev: EwsEvent = { type: node.name as EwsEventType };
  const wm = textAt(node, 'Watermark');
  if (wm) ev.watermark = wm;
  const ts = textAt(node, 'TimeStamp');
  if (ts) ev.timeStamp = ts;
  const item = child(node, 'ItemId');
  if (item) {
    ev.itemId = item.attrs.Id;
    if (item.attrs.ChangeKey) ev.changeKey = item.attrs.ChangeKey;
  }
  const folder = child(node, 'FolderId');
  if (folder) ev.folderId = folder.attrs.Id;
  const parent = child(node, 'ParentFolderId');
  if (parent) ev.parentFolderId = parent.attrs.Id;
  const oldItem = child(node, 'OldItemId');
  if (oldItem) ev.oldItemId = oldItem.attrs.Id;
  const oldParent = child(node, 'OldParentFolderId');
  if (oldParent) ev.oldParentFolderId = oldParent.attrs.Id;
  const unread = int(textAt(node, 'UnreadCount'));
  if (unread !== undefined) ev.unreadCount = unread;
  return ev;
}

export function parseNotification(node: XNode): EwsNotification {
  const n: EwsNotification = { subscriptionId: textAt(node, 'SubscriptionId') ?? '', events: [] };
  const prev = textAt(node, 'PreviousWatermark');
  if (prev) n.previousWatermark = prev;
  const more = textAt(node, 'MoreEvents');
  if (more !== undefined) n.moreEvents = more === 'true';
  for (const c of node.children) {
    const ev = parseEvent(c);
    if (ev) n.events.push(ev);
  }
  return n;
}

export type StreamMessage =
  | { kind: 'notifications'; notifications: EwsNotification[] }
  | { kind: 'status'; status: 'OK' | 'Closed' | string }
  | { kind: 'error'; error: EwsError; closed: boolean };

/** One envelope of the GetStreamingEvents stream → what it says (several messages per envelope possible). */
export function parseStreamEnvelope(xml: string): StreamMessage[] {
  const out: StreamMessage[] = [];
  for (const m of responseMessages(soapBody(xml))) {
    const status = textAt(m.node, 'ConnectionStatus');
    if (!m.ok) {
      out.push({ kind: 'error', error: toError(m), closed: status === 'Closed' || status === undefined });
      continue;
    }
    const notes = kids(child(m.node, 'Notifications'), 'Notification').map(parseNotification);
    if (notes.length) out.push({ kind: 'notifications', notifications: notes });
    if (status) out.push({ kind: 'status', status });
  }
  return out;
}

export interface EwsItem {
  id: string;
  changeKey?: string;
  subject?: string;
  from?: { address: string; name?: string };
  receivedAt?: string;
  isRead?: boolean;
}

/** An item element (Message, MeetingRequest, Item, …) with the properties of itemShape(). */
export function parseItem(node: XNode): EwsItem | undefined {
  const idn = child(node, 'ItemId');
  if (!idn?.attrs.Id) return undefined;
  const item: EwsItem = { id: idn.attrs.Id };
  if (idn.attrs.ChangeKey) item.changeKey = idn.attrs.ChangeKey;
  const subject = textAt(node, 'Subject');
  if (subject !== undefined) item.subject = subject;
  const mbx = path(node, 'From', 'Mailbox');
  const address = textAt(mbx, 'EmailAddress');
  if (address) item.from = textAt(mbx, 'Name') ? { address, name: textAt(mbx, 'Name')! } : { address };
  const received = textAt(node, 'DateTimeReceived');
  if (received) item.receivedAt = received;
  const read = textAt(node, 'IsRead');
  if (read !== undefined) item.isRead = read === 'true';
  return item;
}

/** GetItem: one entry per requested id, in order; undefined where Exchange answered ErrorItemNotFound. */
export function parseGetItem(body: XNode): Array<EwsItem | undefined> {
  return responseMessages(body).map((m) => {
    if (!m.ok) {
      if (m.code === 'ErrorItemNotFound' || m.code === 'ErrorInvalidIdMalformed') return undefined;
      throw toError(m);
    }
    const first = child(m.node, 'Items')?.children[0];
    return first ? parseItem(first) : undefined;
  });
}

export interface EwsFolder {
  id: string;
  unreadCount?: number;
  totalCount?: number;
}

/** GetFolder: one entry per requested folder, in order; errors thrown. */
export function parseGetFolder(body: XNode): EwsFolder[] {
  return responseMessages(body).map((m) => {
    if (!m.ok) throw toError(m);
    const f = child(m.node, 'Folders')?.children[0];
    const id = child(f, 'FolderId')?.attrs.Id;
    if (!f || !id) throw new EwsError('Malformed', 'GetFolder answered without a folder id');
    const out: EwsFolder = { id };
    const u = int(textAt(f, 'UnreadCount'));
    if (u !== undefined) out.unreadCount = u;
    const t = int(textAt(f, 'TotalCount'));
    if (t !== undefined) out.totalCount = t;
    return out;
  });
}

export type SyncChange =
  | { kind: 'create'; item: EwsItem }
  | { kind: 'update'; item: EwsItem }
  | { kind: 'delete'; id: string }
  | { kind: 'read'; id: string; changeKey?: string; isRead: boolean };

export interface SyncResult {
  syncState: string;
  last: boolean;
  changes: SyncChange[];
}

export function parseSync(body: XNode): SyncResult {
  const m = single(body);
  const changes: SyncChange[] = [];
  for (const c of kids(child(m.node, 'Changes'))) {
    if (c.name === 'Create' || c.name === 'Update') {
      const item = c.children[0] ? parseItem(c.children[0]) : undefined;
      if (item) changes.push({ kind: c.name === 'Create' ? 'create' : 'update', item });
    } else if (c.name === 'Delete') {
      const id = child(c, 'ItemId')?.attrs.Id;
      if (id) changes.push({ kind: 'delete', id });
    } else if (c.name === 'ReadFlagChange') {
      const idn = child(c, 'ItemId');
      if (idn?.attrs.Id) changes.push({ kind: 'read', id: idn.attrs.Id, changeKey: idn.attrs.ChangeKey, isRead: textAt(c, 'IsRead') === 'true' });
    }
  }
  return { syncState: textAt(m.node, 'SyncState') ?? '', last: textAt(m.node, 'IncludesLastItemInRange') !== 'false', changes };
}

export function parseSubscribe(body: XNode): { subscriptionId: string; watermark?: string } {
  const m = single(body);
  const id = textAt(m.node, 'SubscriptionId');
  if (!id) throw new EwsError('Malformed', 'Subscribe answered without a SubscriptionId');
  const wm = textAt(m.node, 'Watermark');
  return wm ? { subscriptionId: id, watermark: wm } : { subscriptionId: id };
}

/** A push SendNotification request body → its notifications. */
export function parseSendNotification(xml: string): EwsNotification[] {
  const body = soapBody(xml);
  const op = find(body, 'SendNotification');
  if (!op) throw new EwsError('Malformed', 'not a SendNotification request');
  return kids(child(op, 'ResponseMessages'))
    .map((m) => child(m, 'Notification'))
    .filter((n): n is XNode => n !== undefined)
    .map(parseNotification);
}
