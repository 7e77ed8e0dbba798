/**
 * The notify event model: what a watcher reports about a mailbox and what sinks carry to apps and
 * devices. Three kinds: a new message, a read/unread change (with the mailbox's unread count, for
 * badges), and a deletion.
 *
 * Every event has
 * - a stable `id`, derived from what happened (mailbox, kind, message, change key), never from when
 *   it was seen: a watcher that reports the same change twice (a Graph notification and the delta
 *   catch-up after it, an EWS stream replayed from a watermark) produces the same id, and the store
 *   keeps it once. Receivers deduplicate on it too (it is the webhook-id, the apns-id, …);
 * - a per-mailbox `seq`, assigned by the store when the event is published; sinks deliver events of
 *   one mailbox to one subscription in seq order.
 *
 * Sender and subject may be left out for privacy: per subscription (`privacy: 'minimal'`) through
 * `forSubscription`, or already by the watcher.
 */
import { createHash } from 'node:crypto';

export const EVENT_TYPES = ['message.new', 'message.read-state', 'message.deleted'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface EventBase {
  /** Stable id for deduplication: `evt_` + 32 base64url characters. */
  id: string;
  type: EventType;
  /** The watched mailbox (its primary SMTP address, lower case). */
  mailbox: string;
  /** Per-mailbox order, from 1; 0 until the store has published the event. */
  seq: number;
  /** When mailbridge learnt of the change (ISO 8601). */
  observedAt: string;
}

export interface Sender {
  address: string;
  name?: string;
}

export interface NewMessageEvent extends EventBase {
  type: 'message.new';
  /** The message's id at the source (Graph immutable id, EWS ItemId, IMAP UIDVALIDITY/UID). */
  messageId: string;
  folder: string;
  /** Left out for privacy. */
  sender?: Sender;
  /** Left out for privacy. */
  subject?: string;
  /** When the message arrived in the mailbox (ISO 8601). */
  receivedAt: string;
  /** Unread messages in the mailbox's inbox after the arrival (the badge count), when the watcher knows it. */
  unreadCount?: number;
}

export interface ReadStateEvent extends EventBase {
  type: 'message.read-state';
  messageId: string;
  folder: string;
  read: boolean;
  /** Unread messages in the mailbox's inbox after the change (the badge count). */
  unreadCount: number;
}

export interface DeletedEvent extends EventBase {
  type: 'message.deleted';
  messageId: string;
  folder: string;
  /** Unread count after the deletion, when the watcher knows it. */
  unreadCount?: number;
}

export type NotifyEvent = NewMessageEvent | ReadStateEvent | DeletedEvent;

/** What a watcher hands over; id, seq and observedAt are filled in here and by the store. */
export type EventInput<E extends NotifyEvent = NotifyEvent> = Omit<E, 'id' | 'seq' | 'observedAt'> & { observedAt?: string };

/**
 * The stable id of a change. `changeKey` distinguishes repeated changes of one message (read,
 * unread, read again): the source's version (Graph changeKey, EWS ChangeKey, IMAP MODSEQ).
 */
export function eventId(mailbox: string, type: EventType, messageId: string, changeKey = ''): string {
  const h = createHash('sha256').update(JSON.stringify([mailbox.toLowerCase(), type, messageId, changeKey])).digest('base64url');
  return `evt_${h.slice(0, 32)}`;
}

/** What every event of one message carries; the store assigns seq when it publishes. */
function about<T extends EventType>(type: T, input: EventInput & { messageId: string; folder: string }, now: Date, changeKey?: string) {
  return {
    id: eventId(input.mailbox, type, input.messageId, changeKey),
    type,
    mailbox: input.mailbox.toLowerCase(),
    seq: 0,
    observedAt: input.observedAt ?? now.toISOString(),
    messageId: input.messageId,
    folder: input.folder,
  };
}

export function newMessage(input: EventInput<NewMessageEvent>, now = new Date()): NewMessageEvent {
  const out: NewMessageEvent = { ...about('message.new', input, now), receivedAt: input.receivedAt };
  if (input.sender) out.sender = input.sender.name ? { address: input.sender.address, name: input.sender.name } : { address: input.sender.address };
  if (input.subject !== undefined) out.subject = input.subject;
  if (input.unreadCount !== undefined) out.unreadCount = input.unreadCount;
  return out;
}

export function readStateChanged(input: EventInput<ReadStateEvent> & { changeKey: string }, now = new Date()): ReadStateEvent {
  return { ...about('message.read-state', input, now, `${input.changeKey}:${input.read ? 1 : 0}`), read: input.read, unreadCount: input.unreadCount };
}

export function messageDeleted(input: EventInput<DeletedEvent>, now = new Date()): DeletedEvent {
  const out: DeletedEvent = about('message.deleted', input, now);
  if (input.unreadCount !== undefined) out.unreadCount = input.unreadCount;
  return out;
}

export type Privacy = 'full' | 'minimal';

/** The event as one subscription may see it: `minimal` drops sender and subject. */
export function forSubscription(event: NotifyEvent, privacy: Privacy): NotifyEvent {
  if (privacy === 'full' || event.type !== 'message.new') return event;
  const { sender: _sender, subject: _subject, ...rest } = event;
  return rest;
}

/** Parses an event read back from the store; throws on anything that is not one. */
export function parseEvent(json: string): NotifyEvent {
  const v = JSON.parse(json) as NotifyEvent;
  if (!v || typeof v.id !== 'string' || !(EVENT_TYPES as readonly string[]).includes(v.type) || typeof v.mailbox !== 'string') {
    throw new Error('not a notify event');
  }
  return v;
}
