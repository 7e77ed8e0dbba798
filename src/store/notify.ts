/**
 * Notify rows: subscriptions (who wants events of which mailboxes, through which sink), published
 * events, and one delivery row per event and subscription. This is the repository behind
 * `Store.notify`; it knows rows and atomic updates. The rules (back-off, when to give up, what a
 * sink's answer means) live in src/notify/dispatcher.ts.
 *
 * Guarantees the repository gives its caller:
 * - `publish` is idempotent on the event id: the same change reported twice is stored once and
 *   fanned out once;
 * - the per-mailbox sequence and the delivery rows are written in the same transaction as the
 *   event, so a crash never leaves an event without its deliveries;
 * - `due` returns only the head of each (subscription, mailbox) line: a later event is not handed
 *   out while an earlier one of the same line is still pending.
 */
import type { ErrorParams } from '../errors/index.ts';
import type { Fence } from './cluster.ts';

export const SUBSCRIPTION_STATES = ['active', 'gone'] as const;
export type SubscriptionState = (typeof SUBSCRIPTION_STATES)[number];

export const DELIVERY_STATES = ['pending', 'done', 'expired', 'dropped'] as const;
/** pending: to be delivered; done: the sink took it; expired: retried until the window closed; dropped: the subscription went away. */
export type DeliveryState = (typeof DELIVERY_STATES)[number];

export interface NotifySubscriptionRecord {
  /** `sub_…` */
  id: string;
  /** Sink kind: webhook, webpush, apns, fcm. */
  kind: string;
  /** Watched mailboxes (lower case). */
  mailboxes: string[];
  /** Event types wanted; empty means all. */
  events: string[];
  /** Sink parameters (URL, keys, device token); may hold a secret (the webhook signing secret). */
  params: Record<string, unknown>;
  privacy: 'full' | 'minimal';
  label?: string;
  state: SubscriptionState;
  /** Why the sink said it is gone (MB code and detail). */
  goneReason?: string;
  /** Epoch milliseconds. */
  createdAt: number;
  updatedAt: number;
}

export interface NotifyEventRecord {
  id: string;
  mailbox: string;
  seq: number;
  type: string;
  /** The event as JSON (without seq, which is the column). */
  body: string;
  createdAt: number;
}

export interface DeliveryError {
  code: string;
  params?: ErrorParams;
  detail?: string;
}

export interface NotifyDeliveryRecord {
  subscriptionId: string;
  eventId: string;
  mailbox: string;
  seq: number;
  state: DeliveryState;
  attempts: number;
  createdAt: number;
  nextAttemptAt: number;
  lastAttemptAt?: number;
  lastError?: DeliveryError;
  updatedAt: number;
}

export interface DueDelivery {
  delivery: NotifyDeliveryRecord;
  event: NotifyEventRecord;
  /**
   * Without its mailbox list: a delivery needs none of it, and one subscription may name 50,000
   * mailboxes (reading them for every due delivery made a webhook take 20 s at that size).
   */
  subscription: Omit<NotifySubscriptionRecord, 'mailboxes'>;
}

export interface DeliveryClaim {
  /** The claiming node's id. */
  by: string;
  /**
   * How long a claim holds without renewal: the cluster's lease time. The dispatcher renews the
   * claims of its deliveries in flight every third of it, so a slow sink keeps its claim, and a
   * node that died gives its claims up within this time.
   */
  forMs: number;
}

/** One delivery row: a subscription's copy of an event. */
export interface DeliveryKey {
  subscriptionId: string;
  eventId: string;
}

export interface PublishResult {
  event: NotifyEventRecord;
  /** True when an event with this id was already stored; nothing was added. */
  duplicate: boolean;
  /** Delivery rows created (one per matching active subscription). */
  deliveries: number;
}

export interface NotifyRepository {
  createSubscription(record: NotifySubscriptionRecord): Promise<void>;
  getSubscription(id: string): Promise<NotifySubscriptionRecord | undefined>;
  /** All subscriptions, or those watching `mailbox`; oldest first. */
  listSubscriptions(query?: { mailbox?: string; states?: readonly SubscriptionState[] }): Promise<NotifySubscriptionRecord[]>;
  /** Deletes the subscription and its delivery rows. */
  deleteSubscription(id: string): Promise<boolean>;
  /** The sink said the subscription no longer exists: mark it gone and drop its pending deliveries. */
  markGone(id: string, reason: string, now: number): Promise<boolean>;
  /**
   * Stores the event with the mailbox's next seq and fans it out, in one transaction. `body` is
   * JSON. With `fence` (a watcher publishing as the holder of its shard's lease) the transaction
   * first checks the lease still holds, and otherwise throws MB_CLUSTER_LEASE_LOST storing nothing.
   */
  publish(event: { id: string; mailbox: string; type: string; body: string }, now: number, fence?: Fence): Promise<PublishResult>;
  /**
   * Heads of (subscription, mailbox) lines that are due, earliest first; lines in `busy`
   * (`sub\nmailbox`) are skipped. With `claim` (several dispatchers on one PostgreSQL database)
   * the heads returned are claimed for `claim.by` until now + `claim.forMs` in the same statement
   * (FOR UPDATE SKIP LOCKED: two nodes asking at once get different heads, neither waits), and a
   * head claimed by another node is not due until its claim runs out (that node died mid-delivery).
   * Since only a line's head is ever handed out, a line's events go out in order whichever node
   * sends them. complete, defer and expire end the claim. SQLite (one node) ignores `claim`.
   * `now` (the caller's clock) says which deliveries are due by their nextAttemptAt; the claims
   * are timed by the store's lease clock (src/store/cluster.ts: on PostgreSQL the database
   * server's), so a node whose clock runs ahead cannot take the heads another node is sending.
   */
  due(now: number, limit: number, busy?: ReadonlySet<string>, claim?: DeliveryClaim): Promise<DueDelivery[]>;
  /**
   * Extends by `forMs` from now (the store's lease clock) the claims `by` still holds on these
   * pending deliveries (its deliveries in flight), in one statement; returns those renewed. A
   * delivery missing from the answer was finished or taken over by another node after this
   * node's claim ran out. SQLite: all of them.
   */
  renewClaims(by: string, deliveries: readonly DeliveryKey[], forMs: number): Promise<DeliveryKey[]>;
  /**
   * When the earliest line head is due, on the caller's clock (`now`): its nextAttemptAt, or for a
   * head another node holds, when that claim runs out (its time left on the store's lease clock,
   * counted from `now`); undefined when nothing is pending. SQLite has no claims.
   */
  nextDue(now: number): Promise<number | undefined>;
  /** pending → done. False if the row is no longer pending. */
  complete(subscriptionId: string, eventId: string, now: number): Promise<boolean>;
  /** Records a failed attempt; the row stays pending until `nextAttemptAt`. */
  defer(subscriptionId: string, eventId: string, update: { attempts: number; nextAttemptAt: number; lastError: DeliveryError }, now: number): Promise<boolean>;
  /** pending → expired (retried until the window closed). */
  expire(subscriptionId: string, eventId: string, update: { attempts: number; lastError: DeliveryError }, now: number): Promise<boolean>;
  getDelivery(subscriptionId: string, eventId: string): Promise<NotifyDeliveryRecord | undefined>;
  listDeliveries(query?: { subscriptionId?: string; states?: readonly DeliveryState[]; limit?: number }): Promise<NotifyDeliveryRecord[]>;
  counts(): Promise<Record<DeliveryState, number>>;
  /**
   * Published events in publication order, after a cursor (for `mailbridge watch`): `after` the
   * cursor of the last event seen, or the `last` n events when there is no cursor yet.
   */
  listEvents(query?: { after?: number; last?: number; limit?: number; mailbox?: string }): Promise<Array<NotifyEventRecord & { cursor: number }>>;
  /** Deletes finished deliveries and events older than `before` that no pending delivery needs; the number of events deleted. */
  purge(before: number): Promise<number>;
}
