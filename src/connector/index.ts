/**
 * The mailbox connector: delivers mail from Microsoft 365 mailboxes into local systems, exactly once
 * into a maildir and at least once, with a delivery ID to deduplicate by, everywhere else.
 *
 * What it does. For each configured connector, a worker per mailbox (user or shared) opens the
 * chosen folders with OAuth2 (IMAP XOAUTH2 with app-only IMAP.AccessAsApp or delegated tokens),
 * hands every new message unchanged to a destination (SMTP/LMTP to a local mail server, a maildir,
 * an HTTP POST signed with HMAC, or a command on stdin), and once the destination acknowledged it
 * marks it \Seen, moves it to a folder or deletes it.
 *
 * Strategies.
 *  - Exactly once (pipeline.ts): a checkpoint per mailbox folder in the store (UIDVALIDITY + the
 *    highest UID up to which everything is finished, a row per message, and an in-flight record).
 *    Order: in-flight noted → destination acknowledges → outcome recorded (fsynced) → after-action.
 *    After kill -9 nothing acknowledged and recorded is delivered again; the one unavoidable window
 *    (stored by the destination, not yet recorded) is bounded by the in-flight record and closed
 *    where the destination allows: deterministic maildir file names, a stable Idempotency-Key for
 *    HTTP, MAILBRIDGE_DELIVERY_ID for commands (which read a complete file, never a cut pipe),
 *    X-Mailbridge-Delivery-Id for SMTP/LMTP (share/sieve/mailbridge-dedupe.sieve for Dovecot).
 *    What each destination guarantees is what test/connector/crash.test.ts shows (docs/en/connector.md).
 *  - A UIDVALIDITY change resynchronises by Message-ID (or content hash) without duplicates.
 *  - A destination that is down keeps the message in the mailbox and is retried with backoff; a
 *    permanent refusal is recorded and leaves the message untouched (`--retry-rejected` tries again).
 *  - New mail is picked up at once with IDLE; polling remains as the fallback. Exchange's
 *    "authenticated but not connected" and throttling replies become MB codes with the exact
 *    New-ServicePrincipal / Add-MailboxPermission lines (m365/imap-replies.ts), and the suggested backoff is
 *    honoured.
 *  - Bounded concurrency per connection and per mailbox (runner.ts) for hundreds of mailboxes.
 *
 *  - Graph (graph.ts): messages delta per folder with $skiptoken/$deltatoken paging saved as the
 *    cursor, the raw MIME from /$value, a new round on 410/syncStateNotFound, Retry-After honoured;
 *    with source.notifications, Graph change notifications (src/m365/subscriptions, shared with
 *    the Graph watcher) wake the mailbox, and polling stays as the fallback.
 *
 * Limits. The token comes from a TokenProvider (wired to identity by the caller, e.g. the `fetch`
 * command); the connector knows nothing of Entra ID. IDLE watches a mailbox's first folder; its
 * other folders are looked at every poll interval. The Graph source takes folders as well-known
 * names or ids; without source.notifications (and always with --once) it only polls.
 */
export { runConnector, createSharedLimits, type ConnectorDeps, type RunOptions, type RunSummary, type SharedLimits } from './runner.ts';
export { syncFolder, type PipelineOptions, type SyncResult } from './pipeline.ts';
export { imapSource, imapSourcePlugin, openImapSession, type ImapSourceOptions } from './imap.ts';
export { graphSource, graphSourcePlugin, type GraphSourceFactory, type GraphSourceOptions } from './graph.ts';
export {
  createDestination,
  commandDestinationPlugin,
  httpDestinationPlugin,
  maildirDestinationPlugin,
  smtpDestinationPlugin,
  type DestinationContext,
} from './destinations/index.ts';
export { connectorSchema, connectorsSchema, mailboxesOf, type ConnectorConfig, type ConnectorInput, type DestinationConfig } from './config.ts';
export { deliveryIdOf, messageKey, messageIdOf, mimeProblem } from './message.ts';
export {
  ConnectorError,
  type AfterAction,
  type ConnectorEvent,
  type Delivery,
  type ConnectorPlugins,
  type Destination,
  type DestinationPlugin,
  type DestinationRegistry,
  type SourceFactory,
  type SourcePlugin,
  type SourceRegistry,
  type SourceSession,
  type TokenProvider,
} from './types.ts';
