/**
 * One streaming group of the EWS watcher: up to 200 mailboxes of one EWS URL and one
 * GroupingInformation, their streaming subscriptions, and one GetStreamingEvents connection that
 * carries all of them (facts §5.2, §5.5).
 *
 * Affinity: the alphabetically-first mailbox is the anchor. Its Subscribe goes first, with
 * `X-AnchorMailbox: <anchor>` and `X-PreferServerAffinity: true`; the `X-BackEndOverrideCookie`
 * of that answer is kept and sent, with the same two headers, on every later Subscribe and
 * GetStreamingEvents of the group (Exchange sets it only once).
 *
 * Reconnects: after `ConnectionStatus Closed` (ConnectionTimeout reached) at once; after silence
 * of 2 × heartbeat (no envelope, not even `ConnectionStatus OK`), a dropped connection or an error,
 * with growing waits (1 s … 60 s) that start again from 1 s once a connection has stayed up for a
 * healthy period (10 s), so an occasional drop is not punished for the drops of last week.
 * ErrorServerBusy: exactly what BackOffMilliseconds says, counted from the busy answer (a catch-up
 * that already waited some of it shortens the rest), and it does not grow the failure count. The same
 * SubscriptionIds are used again (kept in kv as `sub:<mailbox>`, so a restart reuses them too);
 * subscriptions Exchange no longer knows (ErrorSubscriptionNotFound, ErrorInvalidSubscription) are
 * created anew. After every (re)connect each mailbox is caught up with SyncFolderItems
 * (mailbox.ts), so a change the stream missed is still reported, and one it did report is stored
 * once (stable event ids).
 *
 * Limits: a mailbox whose Subscribe fails is retried at a later reconnect (not before 5 minutes).
 * Notifications are handled per mailbox in arrival order while the stream keeps being read.
 */
import { MbError } from '../../../errors/index.ts';
import type { EwsClient, EwsTarget } from '../../../m365/ews/client.ts';
import { sleep } from '../../../util/limits.ts';
import { catchUp, explainEws, handleEvents, KV_NAMESPACE, prepare, type Core, type Member } from './mailbox.ts';
import { EwsError, getStreamingEvents, parseStreamEnvelope, parseSubscribe, subscribeStreaming, type EwsNotification } from '../../../m365/ews/soap.ts';
import { EnvelopeSplitter } from '../../../m365/ews/xml.ts';

export interface StreamTiming {
  /** Silence after which the connection counts as lost: 2 × heartbeat (EWS Managed API: 90 s). */
  readTimeoutMs: number;
  connectionTimeoutMinutes: number;
  /** First wait after a failed connect; doubles up to maxRetryMs. */
  minRetryMs: number;
  maxRetryMs: number;
  /** A failed Subscribe is not tried again before this. */
  subscribeRetryMs: number;
  /** A connection open this long was healthy: the next failure waits minRetryMs again (default 10 s). */
  healthyMs?: number;
}

/** How a connection ended: `waitMs` a fixed wait (0: at once), `busyUntil` Exchange's back-off, neither: the failure back-off. */
interface Verdict {
  ok: boolean;
  waitMs?: number;
  busyUntil?: number;
}

export interface Limiter {
  run<T>(fn: () => Promise<T>): Promise<T>;
}

export class StreamGroup {
  readonly members: Member[];
  readonly anchor: Member;
  readonly url: string;
  private cookie?: string;
  private readonly core: Core;
  private readonly timing: StreamTiming;
  private readonly limiter: Limiter;
  private readonly bySub = new Map<string, Member>();
  private conn?: AbortController;
  private loop?: Promise<void>;
  private readyResolve!: () => void;
  /** Resolves once every member was set up once (watching, or failed). */
  readonly ready: Promise<void>;
  /** Connections opened (tests and `mailbridge watch`). */
  connections = 0;
  /** The waits before the last reconnects, in ms (tests and `mailbridge watch`; the last 50). */
  readonly waits: number[] = [];
  /** When the current (or last) connection was opened (ctx clock). */
  private openedAt: number | undefined;

  constructor(core: Core, members: Member[], timing: StreamTiming, limiter: Limiter) {
    this.core = core;
    this.members = [...members].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    this.anchor = this.members[0]!;
    this.url = this.anchor.url;
    this.timing = timing;
    this.limiter = limiter;
    this.ready = new Promise((r) => (this.readyResolve = r));
  }

  private get client(): EwsClient {
    return this.core.client;
  }

  private now(): number {
    return this.core.ctx.now();
  }

  private groupTarget(mailbox: string): EwsTarget {
    const t: EwsTarget = { url: this.url, mailbox, anchor: this.anchor.address, affinity: true };
    if (this.cookie) t.cookie = this.cookie;
    return t;
  }

  start(): void {
    this.loop = this.run().catch((err: unknown) => {
      if (!this.core.signal.aborted) this.core.ctx.log.error({ err, url: this.url }, 'ews stream group stopped');
    });
  }

  /** Test hook and admin action: drop the current connection (the group reconnects and catches up). */
  reconnect(): void {
    this.conn?.abort(new EwsError('Aborted', 'reconnect requested'));
  }

  async close(): Promise<void> {
    this.conn?.abort(new EwsError('Aborted', 'watcher closing'));
    await this.loop;
    for (const m of this.members) m.set('stopped', this.now());
  }

  private async loadSubscriptions(): Promise<void> {
    for (const m of this.members) {
      const raw = await this.core.ctx.kv.get(KV_NAMESPACE, `sub:${m.address}`);
      if (!raw) continue;
      const s = JSON.parse(raw) as { id: string; url: string };
      if (s.url === this.url) {
        m.subId = s.id;
        this.bySub.set(s.id, m);
      }
    }
  }

  private async forget(m: Member): Promise<void> {
    if (m.subId) this.bySub.delete(m.subId);
    m.subId = undefined;
    await this.core.ctx.kv.delete(KV_NAMESPACE, `sub:${m.address}`);
  }

  private async subscribe(m: Member): Promise<void> {
    try {
      await prepare(this.core, m);
      const res = await this.client.call(this.groupTarget(m.address), subscribeStreaming(m.folders, this.core.impersonation ? undefined : m.address));
      // Only the first Subscribe of a group is answered with the cookie; keep it for the rest.
      if (res.affinityCookie && !this.cookie) this.cookie = res.affinityCookie;
      const { subscriptionId } = parseSubscribe(res.body);
      m.subId = subscriptionId;
      this.bySub.set(subscriptionId, m);
      await this.core.ctx.kv.set(KV_NAMESPACE, `sub:${m.address}`, JSON.stringify({ id: subscriptionId, url: this.url }));
    } catch (err) {
      if (this.core.signal.aborted) throw err;
      const e = explainEws(err, { operation: 'Subscribe', mailbox: m.address, url: this.url });
      m.retryAt = this.now() + this.timing.subscribeRetryMs;
      m.set('failed', this.now(), e);
      this.core.report(m, e);
    }
  }

  /** Subscribes members that have no subscription (the anchor first, alone, for the cookie). */
  private async subscribeMissing(): Promise<void> {
    const missing = this.members.filter((m) => !m.subId && m.retryAt <= this.now());
    if (!missing.length) return;
    const rest = missing.filter((m) => m !== this.anchor);
    if (missing.includes(this.anchor)) await this.limiter.run(() => this.subscribe(this.anchor));
    await Promise.all(rest.map((m) => this.limiter.run(() => this.subscribe(m))));
  }

  private async run(): Promise<void> {
    await this.loadSubscriptions();
    let failures = 0;
    let first = true;
    while (!this.core.signal.aborted) {
      let waitMs: number;
      this.openedAt = undefined;
      try {
        await this.subscribeMissing();
        const live = this.members.filter((m) => m.subId);
        if (!live.length) {
          if (first) this.readyResolve();
          first = false;
          waitMs = this.timing.subscribeRetryMs;
        } else {
          const outcome = await this.connect(live, first);
          first = false;
          if (this.wasHealthy()) failures = 0;
          if (outcome.ok) failures = 0;
          else if (outcome.busyUntil === undefined && outcome.waitMs === undefined) failures++;
          waitMs = outcome.busyUntil !== undefined ? Math.max(0, outcome.busyUntil - this.now()) : (outcome.waitMs ?? this.retryMs(failures));
        }
      } catch (err) {
        if (this.core.signal.aborted) break;
        if (this.wasHealthy()) failures = 0;
        const e = explainEws(err, { operation: 'GetStreamingEvents', mailbox: this.anchor.address, url: this.url });
        this.core.report(undefined, e);
        for (const m of this.members) if (m.subId) m.set('reconnecting', this.now(), e);
        if (err instanceof EwsError && err.code === 'ErrorServerBusy') waitMs = this.client.backOffMs(err);
        else waitMs = this.retryMs(++failures);
        if (first) {
          first = false;
          this.readyResolve();
        }
      }
      this.waits.push(waitMs);
      if (this.waits.length > 50) this.waits.shift();
      if (waitMs > 0) await sleep(waitMs, this.core.signal).catch(() => undefined);
    }
  }

  /** The last connection stayed open for a healthy period (its failure starts the back-off afresh). */
  private wasHealthy(): boolean {
    return this.openedAt !== undefined && this.now() - this.openedAt >= (this.timing.healthyMs ?? 10_000);
  }

  private retryMs(failures: number): number {
    return Math.min(this.timing.maxRetryMs, this.timing.minRetryMs * 2 ** Math.max(0, failures - 1));
  }

  /**
   * One GetStreamingEvents connection, from open to end. Resolves with the wait before the next
   * one (0: reconnect at once); throws when it could not be opened.
   */
  private async connect(live: Member[], first: boolean): Promise<Verdict> {
    const conn = new AbortController();
    this.conn = conn;
    const onAbort = () => conn.abort(this.core.signal.reason);
    this.core.signal.addEventListener('abort', onAbort, { once: true });
    const splitter = new EnvelopeSplitter();
    let verdict: Verdict | undefined;
    let lost = false;
    const timer = setTimeout(() => {
      lost = true;
      conn.abort(new EwsError('Timeout', 'no data'));
    }, this.timing.readTimeoutMs);
    const end = (v: Verdict) => {
      verdict ??= v;
      conn.abort(new EwsError('Aborted', 'connection ended'));
    };
    try {
      for (const m of live) if (m.state !== 'failed') m.set(first ? 'starting' : 'reconnecting', this.now());
      const ids = live.map((m) => m.subId!);
      const { affinityCookie, done } = await this.client.stream(
        this.groupTarget(this.anchor.address),
        getStreamingEvents(ids, this.timing.connectionTimeoutMinutes),
        conn.signal,
        (text) => {
          timer.refresh();
          let docs: string[];
          try {
            docs = splitter.push(text);
          } catch (err) {
            end({ ok: false, waitMs: 1000 });
            this.core.ctx.log.warn({ err, url: this.url }, 'ews stream: unreadable data');
            return;
          }
          for (const doc of docs) this.onEnvelope(doc, end);
        },
      );
      this.connections++;
      this.openedAt = this.now();
      if (affinityCookie && !this.cookie) this.cookie = affinityCookie;
      // Caught up once the stream is open: whatever happens from now on, the stream reports.
      const catching = this.catchUpAll(live);
      await done.catch((err: unknown) => {
        if (!conn.signal.aborted) throw err;
      });
      await catching;
      if (this.core.signal.aborted) return { ok: true };
      if (lost) {
        const e = new MbError('MB_EWS_STREAM_LOST', { url: this.url, seconds: Math.round(this.timing.readTimeoutMs / 1000) });
        this.core.report(undefined, e);
        for (const m of live) if (m.subId) m.set('reconnecting', this.now(), e);
        return { ok: false, waitMs: 0 };
      }
      // A clean end without `Closed` (a proxy, a server restart): reconnect at once as well.
      return verdict ?? { ok: true, waitMs: 0 };
    } finally {
      clearTimeout(timer);
      this.core.signal.removeEventListener('abort', onAbort);
      if (this.conn === conn) this.conn = undefined;
    }
  }

  private onEnvelope(doc: string, end: (v: Verdict) => void): void {
    let messages;
    try {
      messages = parseStreamEnvelope(doc);
    } catch (err) {
      // A fault inside the stream: treat like any error message.
      messages = [{ kind: 'error' as const, error: err instanceof EwsError ? err : new EwsError('Malformed', String(err)), closed: true }];
    }
    for (const msg of messages) {
      if (msg.kind === 'notifications') {
        for (const n of msg.notifications) this.dispatch(n);
      } else if (msg.kind === 'status') {
        if (msg.status === 'Closed') end({ ok: true, waitMs: 0 });
      } else {
        void this.onStreamError(msg.error, end);
      }
    }
  }

  private dispatch(n: EwsNotification): void {
    const m = this.bySub.get(n.subscriptionId);
    if (!m || !n.events.some((e) => e.type !== 'StatusEvent')) return;
    m.run(async () => {
      try {
        await handleEvents(this.core, m, n.events);
      } catch (err) {
        // The catch-up after the next reconnect reports what this missed.
        if (this.core.signal.aborted) return;
        this.core.report(m, explainEws(err, { operation: 'GetItem', mailbox: m.address, url: this.url }));
        this.reconnect();
      }
    }).catch(() => undefined);
  }

  private async onStreamError(err: EwsError, end: (v: Verdict) => void): Promise<void> {
    switch (err.code) {
      case 'ErrorSubscriptionNotFound':
      case 'ErrorInvalidSubscription':
      case 'ErrorInvalidPullSubscriptionId': {
        // Exchange names the ones it lost; without names, all of the group's are suspect.
        const named = err.subscriptionIds.map((id) => this.bySub.get(id)).filter((m): m is Member => m !== undefined);
        const gone = named.length ? named : this.members.filter((m) => m.subId);
        for (const m of gone) await this.forget(m);
        this.core.ctx.log.info({ url: this.url, count: gone.length, code: err.code }, 'ews subscriptions gone; subscribing again');
        end({ ok: true, waitMs: 0 });
        return;
      }
      case 'ErrorMissedNotificationEvents':
        // The subscriptions stay; the catch-up after the reconnect reports what was missed.
        end({ ok: true, waitMs: 0 });
        return;
      case 'ErrorServerBusy': {
        // Counted from now: whatever the catch-up in flight waits for its own busy answers is part of it.
        const ms = this.client.backOffMs(err);
        this.core.report(undefined, explainEws(err, { operation: 'GetStreamingEvents', mailbox: this.anchor.address, url: this.url }));
        end({ ok: false, busyUntil: this.now() + ms });
        return;
      }
      default: {
        const e = explainEws(err, { operation: 'GetStreamingEvents', mailbox: this.anchor.address, url: this.url });
        this.core.report(undefined, e);
        for (const m of this.members) if (m.subId) m.set('reconnecting', this.now(), e);
        // The failure count decides the wait (growing, reset after a healthy period).
        end({ ok: false });
      }
    }
  }

  private async catchUpAll(live: Member[]): Promise<void> {
    await Promise.all(
      live.map((m) =>
        this.limiter.run(() =>
          m.run(async () => {
            if (this.core.signal.aborted || !m.subId) return;
            m.set('catching-up', this.now());
            try {
              await catchUp(this.core, m);
              m.set('watching', this.now());
            } catch (err) {
              if (this.core.signal.aborted) return;
              const e = explainEws(err, { operation: 'SyncFolderItems', mailbox: m.address, url: this.url });
              m.set('reconnecting', this.now(), e);
              this.core.report(m, e);
            }
          }),
        ),
      ),
    );
    this.readyResolve();
  }
}
