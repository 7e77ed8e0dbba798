/**
 * What every watcher (Graph change notifications + delta, EWS streaming/push, IMAP IDLE) shares:
 * how it is given its mailboxes, where it hands events, where it keeps its cursors, and how it
 * reports its state. The watch service (src/notify/watchers/service.ts) builds the pools, the
 * inbound HTTPS listener and one watcher per listener; each watcher only knows its protocol.
 *
 * Rules every watcher keeps
 * - Publish before advancing a cursor: an event is handed to `publish` (durable in the store once it
 *   resolves) before the delta link, watermark or MODSEQ that covers it is saved. A crash between
 *   the two reports the change again after the restart, with the same event id, and the store keeps
 *   it once (no duplicate is delivered).
 * - Event ids come from src/notify/events.ts (newMessage, readStateChanged, messageDeleted), built
 *   from what happened (mailbox, message id, change key), never from when it was seen.
 * - Errors are MbErrors with catalogue codes (src/errors/entries/notify.ts), reported through
 *   `problem` and the watcher's status; a watcher never throws out of its background loops.
 */
import type { FastifyInstance } from 'fastify';
import type { MbError } from '../../errors/index.ts';
import type { Logger } from '../../log/index.ts';
import type { KeyValue } from '../../store/index.ts';
import type { Semaphore } from '../../util/limits.ts';
import type { RouteHub } from '../../m365/subscriptions/hub.ts';
import type { EwsPushHub } from './ews/handoff.ts';
import type { NotifyEvent } from '../events.ts';

export const WATCHER_KINDS = ['graph', 'ews', 'imap'] as const;
export type WatcherKind = (typeof WATCHER_KINDS)[number];

/** A watched mailbox and its folders (Graph well-known names such as `inbox`, or IMAP paths). */
export interface WatchedMailbox {
  /** Lower-case primary SMTP address. */
  address: string;
  folders: string[];
}

/** Bearer token for a mailbox (app-only tokens ignore the mailbox; delegated ones check it). */
export type TokenProvider = (mailbox: string) => Promise<string>;

/** Hands an event to the dispatcher; resolves once it is stored (duplicate: already stored before). */
export type Publish = (event: NotifyEvent) => Promise<{ duplicate: boolean }>;

/**
 * `subscribed`: EWS push only — subscribed and caught up, but Exchange has not called back yet
 * (it does not call right after Subscribe), so nothing proves the callback URL works.
 */
export type WatchState = 'starting' | 'subscribed' | 'watching' | 'catching-up' | 'reconnecting' | 'failed' | 'stopped';

export interface MailboxStatus {
  mailbox: string;
  /** The listener (pool member) watching it. */
  listener: string;
  state: WatchState;
  /** ISO 8601: when the state last changed. */
  since: string;
  /** The last problem, rendered for admins; cleared when watching again. */
  error?: { code: string; message: string };
}

export interface WatcherContext {
  publish: Publish;
  /** Cursors (delta links, watermarks, subscription ids, MODSEQs); namespace per watcher kind. */
  kv: KeyValue;
  log: Logger;
  /** Epoch milliseconds; injectable for tests. */
  now: () => number;
  /** Called for every problem (also logged); the service shows them in `mailbridge watch` and the API. */
  problem?: (mailbox: string | undefined, error: MbError) => void;
  /**
   * The inbound HTTPS listener for Graph notifications and EWS push callbacks: register routes on
   * it while the watcher is built (before it listens); `publicUrl` is how Microsoft reaches it.
   */
  inbound?: { http: FastifyInstance; publicUrl: string };
  /**
   * Several nodes: the inbound routes are shared (src/m365/subscriptions/hub.ts), prepared before
   * the listener listens; a watcher built later (its shard's lease moved here) joins them.
   */
  hub?: RouteHub;
  /**
   * Several nodes: EWS push callbacks are answered by every node and handed to the owner of their
   * mailbox as parcels (src/notify/watchers/ews/handoff.ts); routes prepared before listening.
   */
  ewsPush?: EwsPushHub;
  /** Several nodes: the epoch of the lease this watcher's shard runs under (grows with every change of hands). */
  epoch?: number;
  /** Seal and reveal small secrets kept in `kv` (clientState, push keys) with the SecretBox. */
  seal?: (plain: string) => string;
  reveal?: (sealed: string) => string;
  /**
   * Limits shared by every watcher of the process, on top of each listener's own: `setup`
   * (subscribing, renewing, catching up at start) and `sync` (Graph delta rounds). A listener's
   * limits suit one account; 40 listeners starting at once (50,000 mailboxes) would otherwise have
   * 640 subscriptions and 5,120 delta rounds in flight, more than the process (and Microsoft's
   * validation of the notification URL, answered within 10 s) can take.
   */
  gates?: { setup: Semaphore; sync: Semaphore };
}

export interface Watcher {
  readonly kind: WatcherKind;
  /** Listener id (pool member) this watcher serves. */
  readonly listener: string;
  /** Starts watching in the background; resolves once every mailbox was set up once (or has a failed status). */
  start(): Promise<void>;
  status(): MailboxStatus[];
  /**
   * Counts mailboxes per state into `counts` and returns the first `max` that are not watching:
   * what the service's status needs, without an object per mailbox (status() every few seconds
   * for 50,000 mailboxes made 50,000 objects each time). Optional: status() serves otherwise.
   */
  summary?(counts: Record<string, number>, max: number): MailboxStatus[];
  /**
   * Reads every folder now, as after a gap: notifications handed over from another node may have
   * been lost (the store's signals were cut off). Optional: watchers without hand-overs need none.
   */
  resync?(): void;
  /** Stops every connection and timer; events already published stay published. */
  close(): Promise<void>;
}
