/**
 * EWS push notifications (facts §5.3): each mailbox gets a PushSubscriptionRequest whose URL is a
 * route on the inbound listener; Exchange POSTs SendNotification there and the watcher answers
 * `SubscriptionStatus OK` (or `Unsubscribe` for a subscription it does not know, which ends
 * Exchange's retries for it).
 *
 * Durability: a notification's events are published before its last watermark is saved (kv
 * `push:<mailbox>`) and before the answer; if publishing fails the answer is HTTP 500, and Exchange
 * sends the notification again. Subscriptions are made with the saved watermark, so a restart
 * (or a resubscribe) replays what happened since; ErrorInvalidWatermark (too old) falls back to a
 * new subscription. Each subscribe is followed by a SyncFolderItems catch-up (mailbox.ts), as in
 * streaming mode; stable event ids keep the overlap from being delivered twice.
 *
 * Liveness: Exchange sends a StatusEvent every StatusFrequency minutes when idle and gives up after
 * its retries; a subscription silent for more than 2 × StatusFrequency is made again from the last
 * watermark.
 *
 * The callback URL carries a random token (kept in kv, sealed when the SecretBox is available):
 * Exchange push has no authentication of its own, and the token keeps strangers from injecting
 * notifications for a known subscription id.
 *
 * Route: /notify/ews/<group>/<name>/<token>, the listener id as path segments. The router matches
 * the bytes of the request path, and a percent-encoded character never matches (`ep%2Fpushsvc`
 * was never found), so a segment with characters outside RFC 3986's unreserved set (a user name
 * such as DOMAIN\svc or svc@contoso.com) is replaced by a readable, hash-suffixed form.
 *
 * Honesty: Exchange does not call right after Subscribe, so a mailbox is `subscribed` (not
 * `watching`) until the first notification of any kind arrives; silence past 2 × StatusFrequency
 * with no call at all is reported (MB_EWS_PUSH_SILENT): Exchange cannot reach the callback URL.
 *
 * Several nodes (`ctx.ewsPush`): the routes, the token and the answers are the hub's
 * (handoff.ts), on every node; the callback URL names the mailbox and the subscription's
 * generation. This watcher, on the node holding the shard, reads the parcels the hub stored for
 * its mailboxes (on a signal, at start, on the hub's sweep) and handles them in order, each mailbox
 * one piece at a time as above, removing a parcel once its events are published.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { MbError } from '../../../errors/index.ts';
import { registerSecret } from '../../../log/redact.ts';
import type { EwsClient } from '../../../m365/ews/client.ts';
import { catchUp, explainEws, handleEvents, KV_NAMESPACE, prepare, target, type Core, type Member } from './mailbox.ts';
import { EwsError, parseSendNotification, parseSubscribe, sendNotificationResult, subscribePush, type EwsNotification } from '../../../m365/ews/soap.ts';
import type { Limiter } from './streaming.ts';
import type { EwsPushHub, PushOwner } from './handoff.ts';

export interface PushTiming {
  statusFrequencyMinutes: number;
  /** How often silence is checked (default: a quarter of StatusFrequency). */
  watchdogMs: number;
  subscribeRetryMs: number;
}

export class PushWatch implements PushOwner {
  private readonly core: Core;
  private readonly members: Member[];
  private readonly timing: PushTiming;
  private readonly limiter: Limiter;
  private readonly bySub = new Map<string, Member>();
  private readonly route: string;
  private readonly inbound: { publicUrl: string };
  private token?: Buffer;
  private watchdog?: ReturnType<typeof setInterval>;
  /** Notifications answered (tests and `mailbridge watch`). */
  readonly stats = { notifications: 0, unsubscribed: 0, resubscribed: 0 };
  /** Members Exchange has called back at least once: the callback URL is known to work for them. */
  private readonly heard = new WeakSet<Member>();
  /** Several nodes: the hub that answers the pushes and keeps their parcels. */
  private readonly hub?: EwsPushHub;
  private readonly byAddress = new Map<string, Member>();
  /** Members with a parcel run queued (not yet started). */
  private readonly queued = new Set<Member>();
  /** Subscriptions made under this watcher's lease epoch (the second part of a generation). */
  private made = 0;
  private detach?: () => void;

  constructor(core: Core, members: Member[], timing: PushTiming, limiter: Limiter, inbound: { http: FastifyInstance; publicUrl: string }) {
    this.core = core;
    this.members = members;
    this.timing = timing;
    this.limiter = limiter;
    this.route = `/notify/ews/${routePath(core.listener)}`;
    // Read when subscribing, not now: the service may learn its public URL only once it listens.
    this.inbound = inbound;
    this.hub = core.ctx.ewsPush;
    if (!this.hub) this.register(inbound.http);
  }

  private get client(): EwsClient {
    return this.core.client;
  }

  private register(http: FastifyInstance): void {
    // Scoped plugin: the text/xml parser stays inside it, so other routes of the inbound listener are not affected.
    void http.register(async (scope) => {
      scope.addContentTypeParser(['text/xml', 'application/soap+xml'], { parseAs: 'string', bodyLimit: 4 * 1024 * 1024 }, (_req, body, done) => done(null, body));
      scope.post(`${this.route}/:token`, async (req, reply) => {
        const given = Buffer.from(String((req.params as { token?: string }).token ?? ''));
        if (!this.token || given.length !== this.token.length || !timingSafeEqual(given, this.token)) return reply.code(404).send();
        const { status, body } = await this.onNotification(String(req.body ?? ''));
        return reply.code(status).header('content-type', 'text/xml; charset=utf-8').send(body);
      });
    });
  }

  private now(): number {
    return this.core.ctx.now();
  }

  private async loadToken(): Promise<void> {
    const { kv, seal, reveal } = this.core.ctx;
    const key = `push-token:${this.core.listener}`;
    const stored = await kv.get(KV_NAMESPACE, key);
    let token = stored ? (reveal && stored.startsWith('sealed:') ? reveal(stored.slice(7)) : stored) : undefined;
    if (!token) {
      token = randomBytes(24).toString('base64url');
      await kv.set(KV_NAMESPACE, key, seal ? `sealed:${seal(token)}` : token);
    }
    registerSecret(token);
    this.token = Buffer.from(token);
  }

  /** The callback URL without its token (for messages). */
  publicRoute(): string {
    if (this.hub) return this.hub.publicRoute(this.core.listener);
    return `${this.inbound.publicUrl.replace(/\/+$/, '')}${this.route}`;
  }

  callbackUrl(): string {
    return `${this.inbound.publicUrl.replace(/\/+$/, '')}${this.route}/${this.token!.toString()}`;
  }

  async start(): Promise<void> {
    for (const m of this.members) this.byAddress.set(m.address, m);
    if (this.hub) this.detach = this.hub.attach(this.core.listener, this);
    else await this.loadToken();
    await Promise.all(this.members.map((m) => this.limiter.run(() => m.run(() => this.subscribe(m)))));
    if (this.hub) {
      // Taken over (or restarted): what was handed over for these mailboxes and not handled yet.
      const waiting = await this.hub.waiting(this.core.listener).catch((err: unknown) => {
        this.core.ctx.log.warn({ err: (err as Error).message }, 'ews push: waiting parcels not read at start; the sweep reads them');
        return [];
      });
      for (const address of waiting) this.drain(address);
    }
    this.watchdog = setInterval(() => this.checkSilence(), this.timing.watchdogMs);
    this.watchdog.unref();
  }

  async close(): Promise<void> {
    this.detach?.();
    if (this.watchdog) clearInterval(this.watchdog);
    for (const m of this.members) m.set('stopped', this.now());
  }

  has(address: string): boolean {
    return this.byAddress.has(address);
  }

  drain(address: string): void {
    const m = this.byAddress.get(address);
    if (!m || !this.hub || this.queued.has(m) || this.core.signal.aborted) return;
    this.queued.add(m);
    void m
      .run(async () => {
        // Cleared before reading: a parcel posted while this run reads queues the next run.
        this.queued.delete(m);
        await this.takeParcels(m, this.hub!);
      })
      .catch((err: unknown) => {
        if (this.core.signal.aborted) return;
        // The parcels stay; the next signal or sweep tries again.
        this.core.report(m, explainEws(err, { operation: 'SendNotification', mailbox: m.address, url: m.url }));
      });
  }

  /** Handles a mailbox's parcels in the order posted, each removed once its events are published. */
  private async takeParcels(m: Member, hub: EwsPushHub): Promise<void> {
    await prepare(this.core, m);
    for (;;) {
      if (this.core.signal.aborted) return;
      const batch = await hub.parcels(this.core.listener, m.address, 10);
      if (!batch.length) return;
      for (const { id, push } of batch) {
        for (const n of push.notes) await this.handle(m, n);
        await hub.remove([id]);
      }
    }
  }

  /** One notification of the member's: events published, then the watermark of the current subscription saved. */
  private async handle(m: Member, n: EwsNotification): Promise<void> {
    const current = m.subId === n.subscriptionId;
    if (current) {
      m.lastHeard = this.now();
      this.heard.add(m);
    }
    this.stats.notifications++;
    await handleEvents(this.core, m, n.events);
    const last = [...n.events].reverse().find((e) => e.watermark)?.watermark;
    if (last && current) {
      await this.core.ctx.kv.set(KV_NAMESPACE, `push:${m.address}`, JSON.stringify({ id: n.subscriptionId, watermark: last, ...(m.gen ? { gen: m.gen } : {}) }));
    }
    if (m.state !== 'catching-up' && this.heard.has(m)) m.set('watching', this.now());
  }

  /** Subscribes (from the saved watermark when there is one), then catches up. */
  private async subscribe(m: Member): Promise<void> {
    if (this.core.signal.aborted) return;
    const key = `push:${m.address}`;
    try {
      await prepare(this.core, m);
      const saved = await this.core.ctx.kv.get(KV_NAMESPACE, key);
      let watermark = saved ? (JSON.parse(saved) as { watermark?: string }).watermark : undefined;
      // Several nodes: a generation above every earlier subscription's of this mailbox (handoff.ts).
      const gen = this.hub ? `${this.core.ctx.epoch ?? 0}.${++this.made}` : undefined;
      const url = this.hub && gen ? this.hub.callbackUrl(this.core.listener, m.address, gen) : this.callbackUrl();
      let res;
      for (;;) {
        try {
          res = await this.client.call(
            target(m),
            subscribePush({ folders: m.folders, mailbox: this.core.impersonation ? undefined : m.address, url, statusFrequency: this.timing.statusFrequencyMinutes, watermark }),
          );
          break;
        } catch (err) {
          if (watermark && err instanceof EwsError && (err.code === 'ErrorInvalidWatermark' || err.code === 'ErrorExpiredWatermark')) {
            watermark = undefined; // too old: a new subscription, and the catch-up covers the gap
            continue;
          }
          throw err;
        }
      }
      const sub = parseSubscribe(res.body);
      if (m.subId) this.bySub.delete(m.subId);
      m.subId = sub.subscriptionId;
      m.gen = gen;
      m.lastHeard = this.now();
      this.bySub.set(sub.subscriptionId, m);
      // With a generation: from now on every node answers the older subscriptions Unsubscribe.
      await this.core.ctx.kv.set(KV_NAMESPACE, key, JSON.stringify({ id: sub.subscriptionId, watermark: sub.watermark ?? watermark, ...(gen ? { gen } : {}) }));
      m.set('catching-up', this.now());
      await catchUp(this.core, m);
      m.set(this.heard.has(m) ? 'watching' : 'subscribed', this.now());
    } catch (err) {
      if (this.core.signal.aborted) return;
      const e = explainEws(err, { operation: 'Subscribe', mailbox: m.address, url: m.url });
      m.retryAt = this.now() + this.timing.subscribeRetryMs;
      m.set('failed', this.now(), e);
      this.core.report(m, e);
    }
  }

  private checkSilence(): void {
    const limit = 2 * this.timing.statusFrequencyMinutes * 60_000;
    for (const m of this.members) {
      const silent = m.subId ? this.now() - m.lastHeard > limit : m.retryAt <= this.now();
      if (!silent || m.state === 'catching-up') continue;
      if (m.subId && !this.heard.has(m)) {
        // Not one call since Subscribe, not even a StatusEvent: the callback URL does not work.
        const e = new MbError('MB_EWS_PUSH_SILENT', { mailbox: m.address, url: this.publicRoute(), minutes: Math.round(limit / 60_000) });
        this.core.report(m, e);
        m.set('reconnecting', this.now(), e);
      }
      m.lastHeard = this.now(); // one resubscribe per silence period
      m.set('reconnecting', this.now());
      this.stats.resubscribed++;
      void this.limiter.run(() => m.run(() => this.subscribe(m)));
    }
  }

  /** Test hook: run the silence check now. */
  checkNow(): void {
    this.checkSilence();
  }

  async onNotification(xml: string): Promise<{ status: number; body: string }> {
    let notes;
    try {
      notes = parseSendNotification(xml);
    } catch (err) {
      this.core.ctx.log.warn({ err }, 'ews push: unreadable SendNotification');
      return { status: 400, body: '' };
    }
    let unknown = false;
    for (const n of notes) {
      const m = this.bySub.get(n.subscriptionId);
      if (!m) {
        unknown = true;
        continue;
      }
      try {
        await m.run(() => this.handle(m, n));
      } catch (err) {
        // Not answered OK: Exchange sends the notification again (its retry schedule, facts §5.3).
        this.core.report(m, explainEws(err, { operation: 'SendNotification', mailbox: m.address, url: m.url }));
        return { status: 500, body: '' };
      }
    }
    if (unknown) this.stats.unsubscribed++;
    return { status: 200, body: sendNotificationResult(unknown && notes.every((n) => !this.bySub.has(n.subscriptionId)) ? 'Unsubscribe' : 'OK') };
  }
}

const UNRESERVED = /^[A-Za-z0-9._~-]+$/;

/** The listener id (group/name) as route segments that every client sends byte for byte. */
export function routePath(listener: string): string {
  return listener
    .split('/')
    .map((seg) => (UNRESERVED.test(seg) && seg !== '.' && seg !== '..' ? seg : `${seg.replace(/[^A-Za-z0-9._~-]/g, '_')}-${createHash('sha256').update(seg).digest('hex').slice(0, 8)}`))
    .join('/');
}
