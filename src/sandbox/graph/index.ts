/**
 * Sandbox Microsoft Graph (mail): an HTTPS emulator of the Graph v1.0 mail endpoints mailbridge
 * uses, on loopback, backed by the same real Dovecot mailboxes as the Exchange Online IMAP and SMTP
 * fronts, so mail sent through Graph is read over IMAP and the other way round. Faithful to
 * microsoft-facts.md §4.6–4.8 down to status codes, error bodies and limits; where no source shows
 * Graph's exact text, errors.ts says so.
 *
 * Endpoints (also under /me for delegated tokens; `users('x')` and `mailFolders('x')` forms too):
 *   POST   /v1.0/users/{id|upn}/sendMail                          JSON or MIME (text/plain, base64) → 202
 *   GET    /v1.0/users/{id}/mailFolders[/{id|wellKnownName}]      unreadItemCount, totalItemCount, …
 *   GET    /v1.0/users/{id}/mailFolders/{id}/messages/delta       $select, changeType, $top, $filter
 *                                                                  (receivedDateTime ge|gt), Prefer:
 *                                                                  odata.maxpagesize; $skiptoken/$deltatoken
 *   GET    /v1.0/users/{id}/messages/{id}[/$value]                resource ($select) / raw MIME
 *   PATCH  /v1.0/users/{id}/messages/{id}                         { isRead, flag } → 200
 *   DELETE /v1.0/users/{id}/messages/{id}                         → Deleted Items (204)
 *   POST   /v1.0/users/{id}/messages/{id}/move | /permanentDelete
 *   POST   /v1.0/subscriptions                                   change notifications for messages
 *   GET    /v1.0/subscriptions[/{id}]   PATCH, DELETE /v1.0/subscriptions/{id}
 *   POST   /v1.0/subscriptions/{id}/reauthorize                  (subscriptions.ts, facts §4.1–4.5)
 *   /v1.0/applications, /servicePrincipals (+ appRoleAssignedTo, appRoleAssignments),
 *   /oauth2PermissionGrants                                       app registration as setup does it
 *                                                                  (directory-api.ts, addendum)
 *   POST   /adminapi/beta/{tenant}/InvokeCommand                  Exchange Online's admin API (read
 *                                                                  cmdlets; ../exchange/adminapi.ts)
 *
 * Strategies (one module each): token and permission checks against the sandbox Entra's JWKS and
 * the SandboxDirectory (auth.ts); per app+mailbox concurrency and rate limits with test hooks
 * (throttle.ts); one IMAP connection per mailbox to Dovecot, logged in with the backend token
 * (store.ts); delta rounds computed from CONDSTORE/QRESYNC (delta.ts); message resources parsed with
 * mailparser and sendMail JSON composed with nodemailer (message.ts); routing, headers and the
 * error envelope (server.ts). sendMail delivers into sandbox mailboxes over LMTP before answering
 * 202 (so tests need not poll; Exchange delivers shortly after); a recipient the mailbox store refuses
 * gets the sender a non-delivery report in its Inbox, as Exchange reports undeliverable mail after the
 * 202; other recipients are recorded in `stats.outbound`, never sent. Change notifications come from a mail feed (src/sandbox/feed/:
 * Dovecot IDLE + CONDSTORE per watched folder) and are POSTed to the subscriber with retries
 * (subscriptions.ts). With `synthetic`, thousands of in-memory mailboxes (src/sandbox/feed/synthetic.ts)
 * are served by the same routes (RoutedStore picks the store per mailbox) and notify at once.
 *
 * Limits and approximations: one listener for all clouds (a token's audience must be Graph of its
 * own tenant's cloud, but the host is not checked); application access policies, Conditional Access
 * and the 150 MB / 5 min upload limit are not modelled; only fileAttachment; PATCH changes isRead
 * and flag only; no message listing or $search; subscriptions cover message resources only and
 * live in memory (limits in subscriptions.ts).
 */
import type { Logger } from '../../log/index.ts';
import { silentLogger } from '../../log/index.ts';
import type { KeyAndCert } from '../ca.ts';
import type { SandboxDirectory } from '../directory.ts';
import type { JwksSource } from './auth.ts';
import { TokenCache } from './delta.ts';
import { DovecotFeed } from '../feed/dovecot.ts';
import type { SyntheticMailboxes } from '../feed/synthetic.ts';
import type { MailFeed } from '../mailfeed.ts';
import { buildGraphServer, type GraphContext, type GraphStats } from './server.ts';
import { MailStore, RoutedStore, type GraphBackend, type GraphMailStore } from './store.ts';
import { Subscriptions, type LifecycleEvent, type NotificationStats, type SubscriptionInfo, type Timers } from './subscriptions.ts';
import { Throttle, type GraphLimits } from './throttle.ts';
import { listenOn } from '../../errors/listen.ts';

export type { JwksLike, JwksSource } from './auth.ts';
export { GraphError, graphErrors } from './errors.ts';
export type { GraphStats, OutboundMessage, SentRecord } from './server.ts';
export { MAX_REQUEST_BYTES } from './server.ts';
export type { GraphBackend } from './store.ts';
export type { GraphLimits } from './throttle.ts';
export type { LifecycleEvent, NotificationStats, SubscriptionInfo, Timers } from './subscriptions.ts';
export { graphDateTime } from './subscriptions.ts';

export interface GraphSandboxOptions {
  directory: SandboxDirectory;
  /** Key set access tokens are verified against: the sandbox Entra's JWKS (object or function). */
  jwks: JwksSource;
  /** Server certificate and key from the sandbox CA. */
  tls: KeyAndCert;
  /** The sandbox Dovecot (src/sandbox/dovecot.ts satisfies it). */
  dovecot: GraphBackend;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** Listen port (default 0: any free port). */
  port?: number;
  /** Clock (ms since the epoch) for token expiry, throttling windows and dates. */
  now?: () => number;
  limits?: GraphLimits;
  /** Delta tokens kept (Exchange: "dependent on the size of the internal delta token cache"); default 1000. */
  deltaTokenCacheSize?: number;
  /** The Dovecot mail feed for change notifications (default: one of its own, closed with the sandbox). */
  feed?: MailFeed;
  /** Synthetic mailboxes served next to the Dovecot ones (their tenant registered in the directory by the caller). */
  synthetic?: SyntheticMailboxes;
  /** CA certificates (PEM) trusted for notification URLs besides the system roots, e.g. the sandbox CA. */
  trust?: string[];
  /** Timers for notification retries and subscription expiry (tests inject fake ones). */
  timers?: Timers;
  /** Deadlines (ms): validation answer (Graph 10 s), notification POST (Graph 3 s). */
  notificationTimeouts?: { validationMs?: number; deliveryMs?: number };
  /** Delay before an app role assignment made through Graph reaches tokens (default 2 s; the field's is up to 30 minutes). */
  propagationMs?: number;
  /** Called after a Graph request changed the directory (apps, service principals, grants): persist it. */
  onDirectoryChange?: () => void | Promise<void>;
  log?: Logger;
}

export interface GraphSandbox {
  /** https://127.0.0.1:PORT — what mailbridge uses in place of https://graph.microsoft.com. */
  url: string;
  /** Test hook: the next `count` requests on `mailbox` (any app) fail with 429 ApplicationThrottled and this Retry-After. */
  throttle(mailbox: string, count: number, retryAfterSeconds: number): void;
  /** Test hook: hold admitted requests on `mailbox` inside their concurrency slots until the returned function is called. */
  hold(mailbox: string): () => void;
  /** Requests in flight on `mailbox` (all apps). */
  inFlight(mailbox: string): number;
  /** Test hook: forget every delta and skip token; their next use gets 410 SyncStateNotFound. */
  expireDeltaTokens(): void;
  /** Live change-notification subscriptions (tests, admin). */
  subscriptions(): SubscriptionInfo[];
  /** Test hook: sends a lifecycle notification for a subscription (false: it has no lifecycleNotificationUrl). */
  lifecycle(subscriptionId: string, event: LifecycleEvent): boolean;
  /** Test hook: drops the next `count` notifications of a subscription (or of every subscription on a mailbox), then sends `missed`. */
  dropNotifications(subscriptionIdOrMailbox: string, count: number): void;
  /** Test hook: Exchange removes a subscription: it is deleted and `subscriptionRemoved` is sent. */
  removeSubscription(subscriptionId: string): void;
  /** Resolves once no notification is being built or POSTed (retries waiting on timers excepted). */
  notificationsSettled(): Promise<void>;
  notificationStats: NotificationStats;
  stats: GraphStats;
  close(): Promise<void>;
}

export async function startGraphSandbox(options: GraphSandboxOptions): Promise<GraphSandbox> {
  const now = options.now ?? Date.now;
  const host = options.host ?? '127.0.0.1';
  const log = options.log ?? silentLogger;
  const synthetic = options.synthetic;
  const dovecotStore = new MailStore(options.dovecot);
  const store: GraphMailStore = synthetic ? new RoutedStore(dovecotStore, synthetic) : dovecotStore;
  const ownFeed = options.feed ? undefined : new DovecotFeed(options.dovecot, { now, log });
  const feed = options.feed ?? (ownFeed as DovecotFeed);
  const throttle = new Throttle(options.limits, now);
  const subscriptions = new Subscriptions({
    directory: options.directory,
    store,
    feedFor: (mailbox) => (synthetic?.has(mailbox) ? synthetic : feed),
    now,
    timers: options.timers,
    trust: options.trust,
    validationTimeoutMs: options.notificationTimeouts?.validationMs,
    deliveryTimeoutMs: options.notificationTimeouts?.deliveryMs,
    log,
  });
  const backend: Pick<GraphBackend, 'deliver'> = synthetic
    ? {
        // sendMail to synthetic recipients lands in their in-memory Inbox; the rest goes over LMTP.
        async deliver(envelope, raw) {
          const mine = envelope.to.filter((a) => synthetic.has(a));
          const rest = envelope.to.filter((a) => !synthetic.has(a));
          const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(typeof raw === 'string' ? raw : '');
          for (const a of mine) synthetic.deliverRaw(a, buf);
          const r = rest.length ? await options.dovecot.deliver({ from: envelope.from, to: rest }, buf) : { accepted: [], rejected: [] };
          return { accepted: [...mine, ...r.accepted], rejected: r.rejected };
        },
      }
    : options.dovecot;
  const ctx: GraphContext = {
    directory: options.directory,
    jwks: options.jwks,
    backend,
    store,
    subscriptions,
    throttle,
    tokens: new TokenCache(options.deltaTokenCacheSize),
    now,
    stats: { responses: {}, throttled: 0, directoryWrites: 0, sent: [], outbound: [] },
    log,
    modified: new Map(),
    ...(options.propagationMs !== undefined ? { propagationMs: options.propagationMs } : {}),
    ...(options.onDirectoryChange ? { onDirectoryChange: options.onDirectoryChange } : {}),
  };
  const app = buildGraphServer(ctx, options.tls);
  try {
    await listenOn('sandbox Graph', host, options.port ?? 0, () => app.listen({ host, port: options.port ?? 0 }));
  } catch (err) {
    await subscriptions.close();
    await ownFeed?.close();
    await store.close();
    throw err;
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  let closed = false;
  return {
    url: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    throttle: (mailbox, count, retryAfterSeconds) => throttle.force(mailbox, count, retryAfterSeconds),
    hold: (mailbox) => throttle.hold(mailbox),
    inFlight: (mailbox) => throttle.inFlight(mailbox),
    expireDeltaTokens: () => ctx.tokens.expire(),
    subscriptions: () => subscriptions.list(),
    lifecycle: (id, event) => subscriptions.lifecycle(id, event),
    dropNotifications: (target, count) => subscriptions.dropNotifications(target, count),
    removeSubscription: (id) => subscriptions.removeSubscription(id),
    notificationsSettled: () => subscriptions.settled(),
    notificationStats: subscriptions.stats,
    stats: ctx.stats,
    async close() {
      if (closed) return;
      closed = true;
      throttle.releaseAll();
      await app.close();
      await subscriptions.close();
      await ownFeed?.close();
      await store.close();
    },
  };
}
