/**
 * The connector's seams: where mail comes from (a mailbox source session), where it goes (a
 * destination), and what a run reports (events). Sources and destinations know nothing of each
 * other or of checkpoints; the pipeline (pipeline.ts) joins them.
 */
import { MbError, type ErrorParams, type MbCode } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import type { ProxySettings } from '../net/proxy.ts';
import type { KeyValue, Signals } from '../store/index.ts';
import type { ConnectorConfig, DestinationConfig } from './config.ts';

/**
 * An access token for the mailbox (the SASL user of XOAUTH2, or the Graph user). Called on every
 * (re)connect. `fresh`: the last attempt was refused for authorization, so a cached token (issued
 * before a permission was granted, without its role) must not be used again; ask Entra ID anew.
 */
export type TokenProvider = (mailbox: string, options?: { fresh?: boolean }) => Promise<string>;

/**
 * An MbError with what the connector needs to decide the next step: wait this long before the next
 * attempt (throttling, Retry-After), or give up on this one message for good (`permanent`).
 */
export class ConnectorError extends MbError {
  readonly retryAfterMs: number | undefined;
  readonly permanent: boolean;
  /** A delivery failed in a way that leaves open whether the destination got the message (timeout, cut connection). */
  readonly uncertain: boolean;

  constructor(
    code: MbCode,
    params: ErrorParams,
    options: { cause?: unknown; retryAfterMs?: number; permanent?: boolean; uncertain?: boolean; details?: Record<string, string> } = {},
  ) {
    super(code, params, { cause: options.cause, details: options.details });
    this.name = 'ConnectorError';
    this.retryAfterMs = options.retryAfterMs;
    this.permanent = options.permanent ?? false;
    this.uncertain = options.uncertain ?? false;
  }
}

export type AfterAction = { action: 'seen' } | { action: 'move'; folder: string } | { action: 'delete' } | { action: 'none' };

/** The action as messages name it: "seen", "move to Archive", "delete", "none". */
export function describeAction(a: AfterAction): string {
  return a.action === 'move' ? `move to ${a.folder}` : a.action;
}

export interface FolderState {
  /** IMAP UIDVALIDITY (decimal), or "graph". */
  epoch: string;
  /** IMAP UIDNEXT; 0 where numbering does not apply. */
  next: number;
}

/** A message the source has, before its content is fetched. */
export interface ListedItem {
  /** Stable within the epoch: the IMAP UID (decimal) or the Graph message id. */
  item: string;
  /** IMAP: the UID, used for the position watermark. */
  uid?: number;
  /** Size in bytes when the source tells it up front (IMAP RFC822.SIZE). */
  size?: number;
}

/** One listing step: items to handle and where the checkpoint may move once all of them are finished. */
export interface Batch {
  items: ListedItem[];
  advance: { position?: number; cursor?: string | null };
  /** Something the run should report (e.g. Graph asked for a resynchronisation). */
  warning?: MbError;
}

export interface FetchedMessage {
  item: string;
  uid?: number;
  raw: Buffer;
  internalDate?: Date;
}

/** One authenticated session on one mailbox. */
export interface SourceSession {
  readonly mailbox: string;
  /** Selects the folder and tells its epoch. */
  open(folder: string): Promise<FolderState>;
  /** New items after the checkpoint, in order, in batches. */
  list(folder: string, from: { position: number; cursor?: string }): AsyncIterable<Batch>;
  /** Contents of these items; items that no longer exist are missing from the result. */
  fetch(folder: string, items: ListedItem[]): Promise<FetchedMessage[]>;
  /** The after-delivery action for these items (all acknowledged by the destination). */
  act(folder: string, action: AfterAction, items: string[]): Promise<void>;
  /**
   * Waits until the folder may have new mail (IMAP IDLE, or simply the poll interval), the session
   * ends, or the signal aborts. Returns why.
   */
  wait(folder: string, ms: number, signal: AbortSignal): Promise<'changed' | 'timeout' | 'closed'>;
  /**
   * After `wait` said 'changed': the folders that changed (and forgets them), for a source that
   * can tell (Graph change notifications). Without it, 'changed' means the folder `wait` watched.
   */
  changedFolders?(): string[];
  /** True once the server or the network ended the session. */
  readonly closed: boolean;
  close(): Promise<void>;
}

export interface SourceFactory {
  readonly kind: 'imap' | 'graph';
  /** Describes the endpoint for messages ("imap outlook.office365.com:993"). */
  readonly description: string;
  /**
   * Called once before the first `open` of a long run (not with --once): a source that is told
   * about new mail (Graph change notifications) sets that up here. A failure (e.g. its listener's
   * port is taken) fails the run.
   */
  start?(mailboxes: Array<{ address: string; folders: string[] }>): Promise<void>;
  /**
   * Several nodes: instead of `start`, once before the first `hold`. Sets up what reaches this node
   * for every mailbox (the notification listener), but nothing per mailbox; what reaches it for a
   * mailbox another node holds goes to that node through `signals`.
   */
  startShared?(signals: Signals | undefined): Promise<void>;
  /** Several nodes: this node holds the mailbox now; what outlives the run is written through `kv` (the lease's fenced one). */
  hold?(mailbox: { address: string; folders: string[] }, kv: KeyValue): void;
  /** Several nodes: the mailbox moved on; stop looking after it, leaving what is stored for the next holder. */
  release?(mailbox: string): Promise<void>;
  /** `freshToken`: the previous attempt was refused for authorization; do not reuse a cached token. */
  open(mailbox: string, signal: AbortSignal, options?: { freshToken?: boolean }): Promise<SourceSession>;
  /** Frees what the factory holds across sessions (HTTP connection pools). */
  close?(): Promise<void>;
}

/** What a destination gets for one message. */
export interface Delivery {
  raw: Buffer;
  /** Stable for this message in this folder epoch: the idempotency key a destination may dedupe by. */
  deliveryId: string;
  connector: string;
  mailbox: string;
  folder: string;
  item: string;
  /** The Message-ID header, if any. */
  messageId?: string;
  internalDate?: Date;
  /** True when an earlier attempt may have reached the destination (a crash while it was in flight). */
  redelivery: boolean;
}

export interface Destination {
  /** Short text for messages, e.g. "lmtp 127.0.0.1:24" or "maildir /var/mail/scans". */
  readonly description: string;
  /** Whether a redelivery with the same deliveryId can never produce a second copy. */
  readonly idempotent: boolean;
  /** Where the receiver finds the delivery ID to deduplicate by (a header or variable name; language-neutral, it goes into both languages' texts). */
  readonly dedupeBy?: string;
  /**
   * Resolves when the destination has taken responsibility for the message. Throws a
   * ConnectorError: `permanent` when it refused this message for good, else a temporary failure.
   */
  deliver(delivery: Delivery): Promise<void>;
  close(): Promise<void>;
}

export interface ScopeRef {
  connector: string;
  mailbox: string;
  folder: string;
}

export type ConnectorEvent =
  | { type: 'connected'; connector: string; mailbox: string }
  | { type: 'delivered'; scope: ScopeRef; item: string; bytes: number; deliveryId: string; redelivery: boolean }
  | { type: 'duplicate'; scope: ScopeRef; item: string; key: string }
  | { type: 'rejected'; scope: ScopeRef; item: string; error: MbError }
  | { type: 'warning'; scope: ScopeRef; item?: string; error: MbError }
  | { type: 'retry'; scope: ScopeRef; item: string; error: MbError; delayMs: number; attempt: number }
  | { type: 'acted'; scope: ScopeRef; action: AfterAction['action']; count: number }
  | { type: 'synced'; scope: ScopeRef; delivered: number }
  | { type: 'error'; connector: string; mailbox: string; folder?: string; error: MbError; retryInMs?: number }
  | { type: 'waiting'; connector: string; mailbox: string; folder: string };

// Plug-ins: a source or destination kind is a factory from its section of the configuration. The
// connector exports them (imap.ts, graph.ts, destinations/); the composition root (src/app/plugins.ts)
// registers them by the `kind` the configuration names, and the runner takes that registry.

export type SourceConfig = ConnectorConfig['source'];

/** What a source plug-in gets besides its own section. */
export interface SourceContext {
  connector: string;
  config: ConnectorConfig;
  tokens: TokenProvider;
  /** The connection's proxy, else server.proxy, else HTTPS_PROXY. */
  proxy?: ProxySettings | undefined;
  /** Reads files the section names (caFile). */
  readFile(path: string): string;
  log: Logger;
  /** A problem worth a warning that does not stop the mailbox (e.g. Graph asked for a resynchronisation). */
  notice(mailbox: string, error: MbError): void;
  /** A long run (not --once): a source may set up to be told about new mail. */
  long: boolean;
  /** Where a source keeps what outlives a run (Graph subscriptions), and the SecretBox to seal it. */
  kv?: KeyValue | undefined;
  seal?: ((plain: string) => string) | undefined;
  open?: ((sealed: string) => string) | undefined;
}

export type SourcePlugin<S extends SourceConfig = SourceConfig> = (source: S, ctx: SourceContext) => SourceFactory;

/** What a destination plug-in gets besides its own section. */
export interface DestinationContext {
  connector: string;
  /** Window size: a pooled SMTP/LMTP transport keeps this many connections. */
  window: number;
  log?: Logger;
  /** Turns a stored secret (enc:v1:… or plain) into its clear value. */
  reveal?: (stored: string, field: string) => string;
}

export type DestinationPlugin<D extends DestinationConfig = DestinationConfig> = (destination: D, ctx: DestinationContext) => Destination;

export type SourceRegistry = { [K in SourceConfig['kind']]: SourcePlugin<Extract<SourceConfig, { kind: K }>> };
export type DestinationRegistry = { [K in DestinationConfig['kind']]: DestinationPlugin<Extract<DestinationConfig, { kind: K }>> };

/** The source and destination kinds a connector can be configured with. */
export interface ConnectorPlugins {
  sources: SourceRegistry;
  destinations: DestinationRegistry;
}
