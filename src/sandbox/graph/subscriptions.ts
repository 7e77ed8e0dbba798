/**
 * Graph change notifications for messages (microsoft-facts.md §4.1–4.5): the /v1.0/subscriptions
 * endpoints, the validation handshake, delivery of changeNotificationCollection bodies to the
 * subscriber's HTTPS endpoint with retries, lifecycle notifications, and rich notifications with
 * encrypted resource data.
 *
 * Strategies
 * - Create: checks as Graph does (properties, https URLs, clientState ≤ 128, resource path, token
 *   permission Mail.ReadBasic/Mail.Read on the mailbox, 1,000 subscriptions per mailbox), bumps an
 *   expirationDateTime under 45 minutes to now + 45 min and refuses one beyond 4,230 minutes (1,440
 *   with resource data; newer Learn pages say 10,080 for messages — the sandbox follows facts §4.1),
 *   then validates: POST {url}?validationToken=… (text/plain), 200 with the URL-decoded token within
 *   10 s, for notificationUrl and then lifecycleNotificationUrl. Only then does it watch the folders
 *   (the mail feed: Dovecot IDLE/CONDSTORE, or the synthetic mailboxes) and answer 201.
 * - Delivery: each FolderChange of a watched folder whose kind the subscription asked for becomes one
 *   notification (resource `Users/{user object id}/Messages/{id}` with the same message ids the Graph
 *   routes and delta use, clientState, tenantId, subscriptionExpirationDateTime). Notifications for
 *   one URL that arise together are batched into one POST. The client gives up after 3 s; a non-2xx
 *   answer or a timeout is retried with back-off (10 s, doubling, at most 15 min between tries) for
 *   up to 4 hours after the first try, then dropped (counted in stats). Retries run on an injectable
 *   timer so tests need not wait; outbound HTTPS trusts the system roots plus the sandbox CA.
 * - Lifecycle (§4.4): reauthorizationRequired, subscriptionRemoved and missed go to
 *   lifecycleNotificationUrl when the subscription has one; test hooks trigger them
 *   (`lifecycle`, `dropNotifications` — drop n notifications then send missed — and
 *   `removeSubscription`). A subscription past its expirationDateTime is gone (no notifications;
 *   GET/PATCH/DELETE → 404).
 * - Rich notifications (§4.5): with includeResourceData, an encryptionCertificate (RSA 2048–4096)
 *   and `$select` in the resource, each created/updated item carries encryptedContent: the $select-ed
 *   message resource as JSON, AES-256-CBC (PKCS7, IV = first 16 bytes of a fresh 32-byte key), an
 *   HMAC-SHA256 over the ciphertext, and the key RSA-OAEP (SHA-1) encrypted to the certificate.
 *
 * Limits and approximations: subscriptions live in memory (a sandbox restart forgets them, as an
 * Exchange that lost them would send subscriptionRemoved — the sandbox sends nothing); only message
 * resources; no `$filter` in resources; the rich-notification `validationTokens` array is not sent (the
 * Graph sandbox has no Entra signing key); reauthorizationRequired is only sent through the test hook;
 * the slow-endpoint throttling of §4.3 (10 %/15 % slow responses) is not modelled; retry intervals are
 * the sandbox's choice (Graph documents only "for up to 4 hours"). Error texts: see errors.ts.
 */
import { constants as cryptoConstants, createCipheriv, createHmac, publicEncrypt, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { Agent, fetch } from 'undici';
import type { Logger } from '../../log/index.ts';
import type { SandboxDirectory } from '../directory.ts';
import type { ChangeKind, FolderChange, MailFeed } from '../mailfeed.ts';
import { requirePermission, resolveMailbox, type Principal, type ResolvedMailbox } from './auth.ts';
import { graphErrors, type GraphError } from './errors.ts';
import { messageId, parseFolderId, WELL_KNOWN_FOLDERS } from './ids.ts';
import { changeKeyOf, messageResource, parseSelect, prop } from './message.ts';
import { pathSegments } from './paths.ts';
import type { GraphMailStore } from './store.ts';

const MINUTE = 60_000;
const MIN_LIFETIME_MIN = 45;
const MAX_LIFETIME_MIN = 4230;
const MAX_LIFETIME_RICH_MIN = 1440;
const MAX_PER_MAILBOX = 1000;
const MAX_CLIENT_STATE = 128;
const MAX_BATCH = 100;
const RETRY_FIRST_MS = 10_000;
const RETRY_MAX_MS = 15 * MINUTE;

export type LifecycleEvent = 'reauthorizationRequired' | 'subscriptionRemoved' | 'missed';

/** setTimeout/clearTimeout, injectable so tests can run retries and expiry without waiting. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, Math.min(Math.max(0, ms), 2 ** 31 - 1));
    // Expiry and retry timers must not keep a finished process (or test run) alive.
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

export interface NotificationStats {
  /** Validation requests sent (each URL of each create or URL change). */
  validations: number;
  /** Notification POSTs attempted (change and lifecycle), and those answered 2xx. */
  posts: number;
  postsOk: number;
  /** Change notifications delivered, dropped after 4 h of failures, and dropped by the test hook. */
  delivered: number;
  dropped: number;
  droppedByHook: number;
  /** Lifecycle notifications delivered. */
  lifecycle: number;
}

export interface SubscriptionOptions {
  directory: SandboxDirectory;
  store: GraphMailStore;
  /** The mail feed that watches a mailbox (Dovecot or synthetic). */
  feedFor: (mailbox: string) => MailFeed;
  now: () => number;
  timers?: Timers;
  /** Extra CA certificates (PEM) trusted for notification URLs, e.g. the sandbox CA. */
  trust?: string[];
  /** Validation answer deadline (Graph: 10 s). */
  validationTimeoutMs?: number;
  /** Notification POST timeout (Graph: 3 s). */
  deliveryTimeoutMs?: number;
  /** How long failed notifications are retried (Graph: 4 h). */
  retryWindowMs?: number;
  log: Logger;
}

export interface SubscriptionInfo {
  id: string;
  mailbox: string;
  folders: string[];
  changeTypes: ChangeKind[];
  notificationUrl: string;
  lifecycleNotificationUrl: string | null;
  expirationDateTime: string;
  applicationId: string;
}

interface Subscription {
  id: string;
  resource: string;
  applicationId: string;
  changeType: string;
  changeTypes: Set<ChangeKind>;
  clientState: string | null;
  notificationUrl: string;
  lifecycleNotificationUrl: string | null;
  expiration: number;
  creatorId: string;
  ownerKind: Principal['kind'];
  includeResourceData: boolean;
  latestSupportedTlsVersion: string;
  encryptionCertificate: string | null;
  encryptionCertificateId: string | null;
  encryption?: { key: X509Certificate; thumbprint: string };
  select?: string[];
  tenantId: string;
  mailbox: string;
  userId: string;
  folders: string[];
  unwatch: Array<() => void>;
  dropNext: number;
  timer?: unknown;
  /** Keeps this subscription's notifications in order while rich ones are built. */
  chain: Promise<void>;
  gone: boolean;
}

interface Batch {
  url: string;
  items: Array<{ body: Record<string, unknown>; lifecycle: boolean }>;
  first: number;
  attempt: number;
}

export interface SubscriptionRequest {
  method: string;
  /** Path segments after /v1.0/subscriptions (decoded). */
  ids: string[];
  body: Buffer | undefined;
  principal: Principal;
  origin: string;
}

export class Subscriptions {
  readonly stats: NotificationStats = { validations: 0, posts: 0, postsOk: 0, delivered: 0, dropped: 0, droppedByHook: 0, lifecycle: 0 };
  private readonly o: SubscriptionOptions;
  private readonly timers: Timers;
  private readonly agent: Agent;
  private readonly subs = new Map<string, Subscription>();
  private readonly perMailbox = new Map<string, number>();
  private readonly pending = new Map<string, Batch['items']>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly retryTimers = new Set<unknown>();
  private closed = false;

  constructor(options: SubscriptionOptions) {
    this.o = options;
    this.timers = options.timers ?? realTimers;
    this.agent = new Agent({ connect: { ca: [...rootCertificates, ...(options.trust ?? [])] } });
  }

  // --- HTTP ------------------------------------------------------------------------------------------

  async handle(r: SubscriptionRequest): Promise<{ status: number; json?: unknown }> {
    const [id, action, ...rest] = r.ids;
    if (rest.length > 0) throw graphErrors.segment(rest[0] ?? '');
    if (id === undefined) {
      if (r.method === 'POST') return this.create(r);
      if (r.method === 'GET') return this.listRequest(r);
      throw graphErrors.method();
    }
    if (action !== undefined) {
      if (action.toLowerCase().replace(/^microsoft\.graph\./, '') !== 'reauthorize') throw graphErrors.segment(action);
      if (r.method !== 'POST') throw graphErrors.method();
      return this.reauthorize(r, id);
    }
    if (r.method === 'GET') return { status: 200, json: this.resource(r.origin, this.owned(r.principal, id)) };
    if (r.method === 'PATCH') return this.renew(r, id);
    if (r.method === 'DELETE') {
      this.remove(this.owned(r.principal, id));
      return { status: 204 };
    }
    throw graphErrors.method();
  }

  private async create(r: SubscriptionRequest): Promise<{ status: number; json: unknown }> {
    const body = json(r.body);
    const str = (name: string): string | undefined => {
      const v = prop(body, name);
      if (v === undefined || v === null) return undefined;
      if (typeof v !== 'string') throw graphErrors.badJson();
      return v;
    };
    const required = (name: string): string => {
      const v = str(name);
      if (v === undefined || v === '') throw graphErrors.subscriptionInvalid(`${name} is a required property for subscription creation.`);
      return v;
    };
    const changeType = required('changeType');
    const notificationUrl = required('notificationUrl');
    const resource = required('resource');
    const expirationRaw = required('expirationDateTime');
    const clientState = str('clientState') ?? null;
    const lifecycleNotificationUrl = str('lifecycleNotificationUrl') ?? null;
    const latestSupportedTlsVersion = str('latestSupportedTlsVersion') ?? 'v1_2';
    const includeResourceData = prop(body, 'includeResourceData') === true;
    const encryptionCertificate = str('encryptionCertificate') ?? null;
    const encryptionCertificateId = str('encryptionCertificateId') ?? null;

    const changeTypes = parseChangeTypes(changeType);
    checkUrl(notificationUrl);
    if (lifecycleNotificationUrl !== null) checkUrl(lifecycleNotificationUrl);
    if (clientState !== null && clientState.length > MAX_CLIENT_STATE) {
      throw graphErrors.subscriptionInvalid(`clientState must not be longer than ${MAX_CLIENT_STATE} characters.`);
    }
    if (!['v1_0', 'v1_1', 'v1_2', 'v1_3'].includes(latestSupportedTlsVersion)) {
      throw graphErrors.subscriptionInvalid(`Invalid latestSupportedTlsVersion '${latestSupportedTlsVersion}'.`);
    }
    const parsed = parseResource(resource);
    const target = resolveMailbox(r.principal, parsed.user, this.o.directory);
    requirePermission(r.principal, target, 'readFolder');

    let encryption: Subscription['encryption'];
    if (includeResourceData) {
      if (!encryptionCertificate || !encryptionCertificateId) {
        throw graphErrors.subscriptionInvalid('encryptionCertificate and encryptionCertificateId are required when includeResourceData is true.');
      }
      if (encryptionCertificateId.length > 128) throw graphErrors.subscriptionInvalid('encryptionCertificateId must not be longer than 128 characters.');
      if (!parsed.select) throw graphErrors.subscriptionInvalid('Rich notifications for Outlook resources require $select in the resource.');
      encryption = readCertificate(encryptionCertificate);
    }
    const now = this.o.now();
    const expiration = this.lifetime(expirationRaw, now, includeResourceData);
    const mailbox = target.address.toLowerCase();
    if ((this.perMailbox.get(mailbox) ?? 0) >= MAX_PER_MAILBOX) throw graphErrors.subscriptionLimit();
    const folders = await this.folders(target, parsed.folder);

    await this.validate(notificationUrl);
    if (lifecycleNotificationUrl !== null) await this.validate(lifecycleNotificationUrl);
    // Checked again: another create may have taken the last place while this one validated.
    if ((this.perMailbox.get(mailbox) ?? 0) >= MAX_PER_MAILBOX) throw graphErrors.subscriptionLimit();

    const sub: Subscription = {
      id: randomUUID(),
      resource,
      applicationId: r.principal.appId,
      changeType: [...changeTypes].join(','),
      changeTypes,
      clientState,
      notificationUrl,
      lifecycleNotificationUrl,
      expiration,
      creatorId: r.principal.objectId,
      ownerKind: r.principal.kind,
      includeResourceData,
      latestSupportedTlsVersion,
      encryptionCertificate,
      encryptionCertificateId,
      ...(encryption ? { encryption } : {}),
      ...(parsed.select ? { select: parsed.select } : {}),
      tenantId: r.principal.tenant.id,
      mailbox,
      userId: this.o.directory.userObjectId(r.principal.tenant, mailbox),
      folders,
      unwatch: [],
      dropNext: 0,
      chain: Promise.resolve(),
      gone: false,
    };
    this.subs.set(sub.id, sub);
    this.perMailbox.set(mailbox, (this.perMailbox.get(mailbox) ?? 0) + 1);
    try {
      const feed = this.o.feedFor(mailbox);
      for (const folder of folders) sub.unwatch.push(await feed.watch(mailbox, folder, (change) => this.onChange(sub, change)));
    } catch (err) {
      this.remove(sub);
      this.o.log.error({ err, mailbox }, 'graph sandbox: watching the subscription folders failed');
      throw graphErrors.internal();
    }
    this.arm(sub);
    return { status: 201, json: this.resource(r.origin, sub) };
  }

  private listRequest(r: SubscriptionRequest): { status: number; json: unknown } {
    const value = [...this.subs.values()].filter((s) => this.alive(s) && this.owns(r.principal, s)).map((s) => this.resource(r.origin, s, false));
    return { status: 200, json: { '@odata.context': `${r.origin}/v1.0/$metadata#subscriptions`, value } };
  }

  private async renew(r: SubscriptionRequest, id: string): Promise<{ status: number; json: unknown }> {
    const sub = this.owned(r.principal, id);
    const body = json(r.body);
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw graphErrors.badJson();
    let expirationRaw: string | undefined;
    let notificationUrl: string | undefined;
    for (const [key, value] of Object.entries(body)) {
      if (key.startsWith('@odata.')) continue;
      const k = key.toLowerCase();
      if (k === 'expirationdatetime' && typeof value === 'string') expirationRaw = value;
      else if (k === 'notificationurl' && typeof value === 'string') notificationUrl = value;
      else if (k === 'lifecyclenotificationurl') {
        // facts §4.1: it cannot be added or changed later; the subscription must be recreated.
        throw graphErrors.subscriptionInvalid('lifecycleNotificationUrl cannot be updated; delete the subscription and create a new one.');
      } else if (value !== null && value !== undefined) {
        throw graphErrors.subscriptionInvalid(`Updating '${key}' is not supported; only expirationDateTime and notificationUrl can be changed.`);
      }
    }
    if (expirationRaw === undefined && notificationUrl === undefined) throw graphErrors.patchNothing();
    const expiration = expirationRaw !== undefined ? this.lifetime(expirationRaw, this.o.now(), sub.includeResourceData) : sub.expiration;
    if (notificationUrl !== undefined && notificationUrl !== sub.notificationUrl) {
      checkUrl(notificationUrl);
      await this.validate(notificationUrl);
    }
    if (!this.alive(sub)) throw graphErrors.subscriptionNotFound();
    if (notificationUrl !== undefined) sub.notificationUrl = notificationUrl;
    sub.expiration = expiration;
    this.arm(sub);
    return { status: 200, json: this.resource(r.origin, sub) };
  }

  private reauthorize(r: SubscriptionRequest, id: string): { status: number } {
    const sub = this.owned(r.principal, id);
    // The caller's token must still carry the permission on the mailbox.
    const target: ResolvedMailbox = resolveMailbox(r.principal, sub.mailbox, this.o.directory);
    requirePermission(r.principal, target, 'readFolder');
    return { status: 204 };
  }

  /** The subscription with this id if the caller's app (and, delegated, user) owns it and it is alive. */
  private owned(principal: Principal, id: string): Subscription {
    const sub = this.subs.get(id.toLowerCase()) ?? this.subs.get(id);
    if (!sub || !this.alive(sub) || !this.owns(principal, sub)) throw graphErrors.subscriptionNotFound();
    return sub;
  }

  private owns(principal: Principal, sub: Subscription): boolean {
    if (sub.tenantId !== principal.tenant.id || sub.applicationId.toLowerCase() !== principal.appId.toLowerCase()) return false;
    return sub.ownerKind === 'app' || sub.creatorId.toLowerCase() === principal.objectId.toLowerCase();
  }

  private resource(origin: string, sub: Subscription, context = true): Record<string, unknown> {
    return {
      ...(context ? { '@odata.context': `${origin}/v1.0/$metadata#subscriptions/$entity` } : {}),
      id: sub.id,
      resource: sub.resource,
      applicationId: sub.applicationId,
      changeType: sub.changeType,
      clientState: sub.clientState,
      notificationUrl: sub.notificationUrl,
      notificationQueryOptions: null,
      lifecycleNotificationUrl: sub.lifecycleNotificationUrl,
      expirationDateTime: graphDateTime(sub.expiration),
      creatorId: sub.creatorId,
      includeResourceData: sub.includeResourceData,
      latestSupportedTlsVersion: sub.latestSupportedTlsVersion,
      encryptionCertificate: sub.encryptionCertificate,
      encryptionCertificateId: sub.encryptionCertificateId,
      notificationUrlAppId: null,
      notificationContentType: null,
    };
  }

  /** expirationDateTime → ms: under 45 min bumped to +45 min, over the maximum refused. */
  private lifetime(raw: string, now: number, rich: boolean): number {
    const at = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/.test(raw) ? Date.parse(/Z|[+-]\d{2}:\d{2}$/.test(raw) ? raw : `${raw}Z`) : NaN;
    if (Number.isNaN(at)) throw graphErrors.subscriptionInvalid(`Invalid expirationDateTime '${raw}'.`);
    const max = rich ? MAX_LIFETIME_RICH_MIN : MAX_LIFETIME_MIN;
    if (at > now + max * MINUTE) throw graphErrors.expirationTooFar(max);
    return Math.max(at, now + MIN_LIFETIME_MIN * MINUTE);
  }

  /** The IMAP folders a resource covers: one folder, or every folder of the mailbox. */
  private async folders(target: ResolvedMailbox, folder: string | undefined): Promise<string[]> {
    const mailbox = target.address;
    if (folder === undefined) return (await this.o.store.listFolders(mailbox)).map((f) => f.path);
    let path: string;
    const wk = WELL_KNOWN_FOLDERS[folder.toLowerCase()];
    if (wk) {
      path = wk.path;
    } else {
      const ref = parseFolderId(folder);
      if (!ref) throw graphErrors.idMalformed();
      if (ref.mailbox !== mailbox.toLowerCase()) throw graphErrors.wrongMailbox();
      path = ref.folder;
    }
    const status = await this.o.store.status(mailbox, path);
    if (!status) throw graphErrors.itemNotFound();
    return [status.path];
  }

  /** The validation handshake (facts §4.2); throws 400 InvalidRequest when it fails. */
  private async validate(url: string): Promise<void> {
    const token = `Validation: Testing client application reachability for subscription Request-Id: ${randomUUID()}`;
    const target = new URL(url);
    // Query parameters of the URL are kept (§4.2.3); the token is added URL-encoded.
    target.searchParams.append('validationToken', token);
    this.stats.validations++;
    try {
      const res = await fetch(target, {
        method: 'POST',
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        dispatcher: this.agent,
        signal: AbortSignal.timeout(this.o.validationTimeoutMs ?? 10_000),
      });
      const text = await res.text();
      // Graph wants the decoded token back as the whole body with 200 (an encoded one fails).
      if (res.status === 200 && text === token) return;
      this.o.log.info({ status: res.status }, 'graph sandbox: subscription validation answered wrongly');
    } catch (err) {
      this.o.log.info({ err: String(err) }, 'graph sandbox: subscription validation request failed');
    }
    throw graphErrors.validationFailed();
  }

  // --- changes → notifications ------------------------------------------------------------------------

  private onChange(sub: Subscription, change: FolderChange): void {
    if (sub.gone || !sub.changeTypes.has(change.kind) || !this.alive(sub)) return;
    if (sub.dropNext > 0) {
      sub.dropNext--;
      this.stats.droppedByHook++;
      if (sub.dropNext === 0) void this.lifecycle(sub.id, 'missed');
      return;
    }
    sub.chain = sub.chain.then(async () => {
      try {
        const item = await this.notification(sub, change);
        if (!sub.gone) this.enqueue(sub.notificationUrl, item, false);
      } catch (err) {
        this.o.log.error({ err }, 'graph sandbox: building a notification failed');
      }
    });
  }

  private async notification(sub: Subscription, change: FolderChange): Promise<Record<string, unknown>> {
    const id = messageId({ mailbox: change.mailbox, folder: change.folder, uidValidity: change.uidValidity, uid: change.uid });
    const path = `Users/${sub.userId}/Messages/${id}`;
    const item: Record<string, unknown> = {
      id: randomBytes(10).toString('base64url'),
      subscriptionId: sub.id,
      subscriptionExpirationDateTime: graphDateTime(sub.expiration),
      clientState: sub.clientState,
      changeType: change.kind,
      resource: path,
      tenantId: sub.tenantId,
      resourceData: { '@odata.type': '#Microsoft.Graph.Message', '@odata.id': path, '@odata.etag': `W/"${changeKeyOf(change.modseq)}"`, id },
    };
    if (sub.encryption && change.kind !== 'deleted') {
      const [m] = await this.o.store.fetch(change.mailbox, change.folder, change.uidValidity, [change.uid]);
      if (m) {
        const data = await messageResource(
          { id, parentFolderId: '', raw: m.source, flags: m.flags, internalDate: m.internalDate, modseq: m.modseq, lastModified: this.o.now() },
          { select: sub.select },
        );
        item.encryptedContent = encrypt(JSON.stringify({ '@odata.context': `https://graph.microsoft.com/v1.0/$metadata#Users('${sub.userId}')/Messages/$entity`, '@odata.type': '#Microsoft.Graph.Message', ...data }), sub);
      }
    }
    return item;
  }

  private enqueue(url: string, body: Record<string, unknown>, lifecycle: boolean): void {
    if (this.closed) return;
    let queue = this.pending.get(url);
    if (!queue) {
      queue = [];
      this.pending.set(url, queue);
      // Everything that arises in this turn of the event loop goes out in one POST.
      setImmediate(() => {
        const items = this.pending.get(url) ?? [];
        this.pending.delete(url);
        for (let i = 0; i < items.length; i += MAX_BATCH) this.track(this.post({ url, items: items.slice(i, i + MAX_BATCH), first: this.o.now(), attempt: 1 }));
      });
    }
    queue.push({ body, lifecycle });
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private async post(batch: Batch): Promise<void> {
    if (this.closed) return;
    this.stats.posts++;
    let ok: boolean;
    try {
      const res = await fetch(batch.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify({ value: batch.items.map((i) => i.body) }),
        dispatcher: this.agent,
        signal: AbortSignal.timeout(this.o.deliveryTimeoutMs ?? 3_000),
      });
      await res.arrayBuffer().catch(() => undefined);
      ok = res.status >= 200 && res.status < 300;
    } catch {
      ok = false;
    }
    if (ok) {
      this.stats.postsOk++;
      for (const i of batch.items) {
        if (i.lifecycle) this.stats.lifecycle++;
        else this.stats.delivered++;
      }
      return;
    }
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (batch.attempt - 1));
    if (this.o.now() + delay - batch.first > (this.o.retryWindowMs ?? 4 * 60 * MINUTE)) {
      this.stats.dropped += batch.items.filter((i) => !i.lifecycle).length;
      this.o.log.info({ items: batch.items.length, attempts: batch.attempt }, 'graph sandbox: notifications dropped after retrying');
      return;
    }
    const handle = this.timers.setTimeout(() => {
      this.retryTimers.delete(handle);
      this.track(this.post({ ...batch, attempt: batch.attempt + 1 }));
    }, delay);
    this.retryTimers.add(handle);
  }

  // --- lifecycle, expiry, removal --------------------------------------------------------------------

  /** Sends a lifecycle notification; false when the subscription has no lifecycleNotificationUrl. */
  lifecycle(id: string, event: LifecycleEvent): boolean {
    const sub = this.subs.get(id);
    if (!sub) throw new Error(`no subscription ${id}`);
    if (!sub.lifecycleNotificationUrl) return false;
    this.enqueue(
      sub.lifecycleNotificationUrl,
      {
        subscriptionId: sub.id,
        subscriptionExpirationDateTime: graphDateTime(sub.expiration),
        tenantId: sub.tenantId,
        clientState: sub.clientState,
        lifecycleEvent: event,
      },
      true,
    );
    return true;
  }

  /** Drops the next `count` notifications of a subscription (or of every subscription on a mailbox), then sends `missed`. */
  dropNotifications(target: string, count: number): void {
    const subs = this.subs.has(target) ? [this.subs.get(target) as Subscription] : [...this.subs.values()].filter((s) => s.mailbox === target.toLowerCase());
    if (subs.length === 0) throw new Error(`no subscription or subscribed mailbox ${target}`);
    for (const s of subs) s.dropNext = count;
  }

  /** Exchange removed the subscription: it is deleted and subscriptionRemoved is sent. */
  removeSubscription(id: string): void {
    const sub = this.subs.get(id);
    if (!sub) throw new Error(`no subscription ${id}`);
    this.lifecycle(id, 'subscriptionRemoved');
    this.remove(sub);
  }

  list(): SubscriptionInfo[] {
    return [...this.subs.values()]
      .filter((s) => this.alive(s))
      .map((s) => ({
        id: s.id,
        mailbox: s.mailbox,
        folders: [...s.folders],
        changeTypes: [...s.changeTypes],
        notificationUrl: s.notificationUrl,
        lifecycleNotificationUrl: s.lifecycleNotificationUrl,
        expirationDateTime: graphDateTime(s.expiration),
        applicationId: s.applicationId,
      }));
  }

  /** Resolves once no notification POST is under way or about to start (retries waiting on timers excepted). */
  async settled(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setImmediate(r));
      await Promise.all([...this.subs.values()].map((s) => s.chain));
      if (this.inFlight.size === 0 && this.pending.size === 0) return;
      await Promise.allSettled([...this.inFlight]);
    }
  }

  private arm(sub: Subscription): void {
    if (sub.timer !== undefined) this.timers.clearTimeout(sub.timer);
    sub.timer = this.timers.setTimeout(() => {
      sub.timer = undefined;
      this.alive(sub);
    }, sub.expiration - this.o.now());
  }

  /** False (and the subscription removed) once it is past its expirationDateTime. */
  private alive(sub: Subscription): boolean {
    if (sub.gone) return false;
    if (this.o.now() < sub.expiration) return true;
    this.remove(sub);
    return false;
  }

  private remove(sub: Subscription): void {
    if (sub.gone) return;
    sub.gone = true;
    if (sub.timer !== undefined) this.timers.clearTimeout(sub.timer);
    this.subs.delete(sub.id);
    const n = (this.perMailbox.get(sub.mailbox) ?? 1) - 1;
    if (n > 0) this.perMailbox.set(sub.mailbox, n);
    else this.perMailbox.delete(sub.mailbox);
    for (const u of sub.unwatch) u();
    sub.unwatch = [];
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const s of [...this.subs.values()]) this.remove(s);
    for (const t of this.retryTimers) this.timers.clearTimeout(t);
    this.retryTimers.clear();
    await Promise.allSettled([...this.inFlight]);
    await this.agent.close();
  }
}

// --- helpers ---------------------------------------------------------------------------------------------

function json(body: Buffer | undefined): unknown {
  const text = body?.toString('utf8') ?? '';
  if (!text.trim()) throw graphErrors.emptyPayload();
  try {
    return JSON.parse(text);
  } catch {
    throw graphErrors.badJson();
  }
}

function parseChangeTypes(raw: string): Set<ChangeKind> {
  const out = new Set<ChangeKind>();
  for (const part of raw.split(',').map((s) => s.trim())) {
    const c = part.toLowerCase();
    if (c !== 'created' && c !== 'updated' && c !== 'deleted') throw graphErrors.subscriptionInvalid(`Invalid changeType '${part}'. Supported values: created, updated, deleted.`);
    out.add(c);
  }
  return out;
}

function checkUrl(raw: string): void {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw graphErrors.urlInvalid(raw);
  }
  if (url.protocol !== 'https:') {
    if (url.protocol === 'http:') throw graphErrors.urlScheme('http');
    throw graphErrors.urlInvalid(raw);
  }
  if (!url.hostname || /^\/|\/\/\//.test(raw.slice('https://'.length))) throw graphErrors.urlInvalid(raw);
}

/** A message resource path: which user, which folder (none: the whole mailbox), which $select. */
function parseResource(resource: string): { user: string; folder?: string; select?: string[] } {
  const [path = '', query] = resource.split('?', 2);
  let select: string[] | undefined;
  if (query !== undefined) {
    for (const [k, v] of new URLSearchParams(query)) {
      if (k.toLowerCase() === '$select') select = parseSelect(v);
      else throw graphErrors.subscriptionInvalid(`Query option '${k}' is not supported in the resource of an Outlook message subscription.`);
    }
  }
  const segs = pathSegments(path, () => badResource(resource));
  const lower = segs.map((s) => s.toLowerCase());
  let user: string;
  let rest: string[];
  if (lower[0] === 'me') {
    user = 'me';
    rest = segs.slice(1);
  } else if (lower[0] === 'users' && segs[1]) {
    user = segs[1];
    rest = segs.slice(2);
  } else {
    throw badResource(resource);
  }
  const r = rest.map((s) => s.toLowerCase());
  if (r.length === 1 && r[0] === 'messages') return { user, ...(select ? { select } : {}) };
  if (r.length === 3 && r[0] === 'mailfolders' && r[2] === 'messages') return { user, folder: rest[1] as string, ...(select ? { select } : {}) };
  throw badResource(resource);
}

function badResource(resource: string): GraphError {
  return graphErrors.subscriptionInvalid(
    `Resource '${resource}' is not supported; use /users/{id}/messages, /users/{id}/mailFolders/{id}/messages or the same under /me.`,
  );
}

function readCertificate(b64: string): { key: X509Certificate; thumbprint: string } {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(b64, 'base64'));
  } catch {
    throw graphErrors.subscriptionInvalid('encryptionCertificate is not a base64-encoded X.509 certificate.');
  }
  const key = cert.publicKey;
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (key.asymmetricKeyType !== 'rsa' || bits < 2048 || bits > 4096) {
    throw graphErrors.subscriptionInvalid('encryptionCertificate must hold an RSA public key of 2048 to 4096 bits.');
  }
  return { key: cert, thumbprint: cert.fingerprint.replace(/:/g, '') };
}

/** encryptedContent of a rich notification (facts §4.5). */
function encrypt(plain: string, sub: Subscription): Record<string, string> {
  const enc = sub.encryption as NonNullable<Subscription['encryption']>;
  const key = randomBytes(32);
  const cipher = createCipheriv('aes-256-cbc', key, key.subarray(0, 16));
  const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return {
    data: data.toString('base64'),
    dataSignature: createHmac('sha256', key).update(data).digest('base64'),
    dataKey: publicEncrypt({ key: enc.key.publicKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, key).toString('base64'),
    encryptionCertificateId: sub.encryptionCertificateId ?? '',
    encryptionCertificateThumbprint: enc.thumbprint,
  };
}

/** Graph's subscription date-times: UTC with seven fractional digits ("2016-03-20T11:00:00.0000000Z"). */
export function graphDateTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, (_m, frac: string) => `.${frac}0000Z`);
}
