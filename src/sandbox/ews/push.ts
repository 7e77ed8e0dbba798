/**
 * Push notifications: Exchange POSTs `SendNotification` to the subscription's URL (facts §5.3).
 *
 * - Events are sent as soon as they are queued, at most 50 per request (MoreEvents=true when more
 *   wait; the next request follows at once).
 * - Without events for StatusFrequency minutes, a `StatusEvent` with the last watermark.
 * - The listener answers `SendNotificationResult/SubscriptionStatus` `OK` (go on) or `Unsubscribe`
 *   (the subscription ends). Anything else (no connection, HTTP error, no parsable reply) is a
 *   failure: the same notification is retried after 30 s, then 1, 2, 4, 8, 16 minutes, doubling
 *   while the delay stays within StatusFrequency (statusfrequency.md: with the default 30 the
 *   32-minute retry is not sent); after that the subscription is removed.
 * All waiting goes through the Scheduler; the HTTP request itself has a real timeout
 * (`requestTimeoutMs`, default 30 s [APPROX]).
 */
import { Agent, fetch, type Dispatcher } from 'undici';
import type { Scheduler } from './clock.ts';
import type { Hub, Subscription } from './hub.ts';
import { notificationEl, sendNotificationEnvelope } from './soap.ts';
import { child, NS, parseXml, path } from './xml.ts';

export interface PushStats {
  /** POSTs made (events and status). */
  sent: number;
  /** POSTs the listener answered OK or Unsubscribe. */
  delivered: number;
  failed: number;
  /** Retry delays scheduled, in ms (in order), for tests. */
  retries: number[];
  unsubscribed: number;
  expired: number;
}

export interface PushOptions {
  hub: Hub;
  scheduler: Scheduler;
  stats: PushStats;
  /** PEM CA(s) to trust for https callbacks (the sandbox CA); default: the system's. */
  ca?: string | string[];
  requestTimeoutMs?: number;
  onError?: (err: unknown, where: string) => void;
}

const FIRST_RETRY_MS = 30_000;

export class PushSender {
  readonly sub: Subscription;
  #o: PushOptions;
  #dispatcher: Dispatcher;
  #busy = false;
  #kicked = false;
  #stopped = false;
  #retryMs = 0;
  #cancelStatus?: () => void;
  #cancelRetry?: () => void;

  constructor(sub: Subscription, options: PushOptions, dispatcher: Dispatcher) {
    this.sub = sub;
    this.#o = options;
    this.#dispatcher = dispatcher;
    sub.reader = this;
    this.#armStatus();
  }

  static dispatcher(ca?: string | string[]): Dispatcher {
    return new Agent({ connect: ca ? { ca } : {} });
  }

  kick(): void {
    if (this.#kicked || this.#busy || this.#stopped || this.#cancelRetry) return;
    this.#kicked = true;
    setImmediate(() => {
      this.#kicked = false;
      void this.#send(false);
    });
  }

  stop(): void {
    this.#stopped = true;
    this.#cancelStatus?.();
    this.#cancelRetry?.();
  }

  get #frequencyMs(): number {
    return (this.sub.minutes ?? 30) * 60_000;
  }

  #armStatus(): void {
    this.#cancelStatus?.();
    this.#cancelStatus = this.#o.scheduler.after(this.#frequencyMs, () => {
      this.#cancelStatus = undefined;
      if (!this.#busy && !this.#cancelRetry) void this.#send(true);
    });
  }

  async #send(status: boolean): Promise<void> {
    if (this.#busy || this.#stopped) return;
    const { hub } = this.#o;
    const events = hub.take(this.sub, 50);
    if (events.length === 0 && !status) return;
    this.#busy = true;
    const previous = this.sub.lastWatermark;
    const more = this.sub.queue.length > this.sub.inflight;
    const body = sendNotificationEnvelope(notificationEl(this.sub.id, events, { previousWatermark: previous, moreEvents: more, status: previous }));
    let result: 'OK' | 'Unsubscribe' | 'failed' = 'failed';
    try {
      this.#o.stats.sent++;
      const res = await fetch(this.sub.url!, {
        method: 'POST',
        headers: { 'content-type': 'text/xml; charset=utf-8', 'user-agent': 'ExchangeServicesClient/15.01.2507.006' },
        body,
        dispatcher: this.#dispatcher,
        signal: AbortSignal.timeout(this.#o.requestTimeoutMs ?? 30_000),
      });
      const text = await res.text();
      if (res.status === 200) result = replyStatus(text) ?? 'failed';
    } catch (err) {
      this.#o.onError?.(err, `push ${this.sub.url}`);
    }
    this.#busy = false;
    if (this.#stopped) return;
    if (result === 'failed') {
      this.#o.stats.failed++;
      hub.rollback(this.sub);
      this.#retry();
      return;
    }
    this.#o.stats.delivered++;
    hub.commit(this.sub);
    this.#retryMs = 0;
    if (result === 'Unsubscribe') {
      this.#o.stats.unsubscribed++;
      this.stop();
      hub.remove(this.sub);
      return;
    }
    this.#armStatus();
    if (this.sub.queue.length > 0) this.kick();
  }

  #retry(): void {
    this.#retryMs = this.#retryMs === 0 ? FIRST_RETRY_MS : this.#retryMs * 2;
    if (this.#retryMs > this.#frequencyMs) {
      // Out of retries: Exchange drops the subscription; the client must create a new one.
      this.#o.stats.expired++;
      this.stop();
      this.#o.hub.remove(this.sub);
      return;
    }
    this.#o.stats.retries.push(this.#retryMs);
    this.#cancelStatus?.();
    this.#cancelRetry = this.#o.scheduler.after(this.#retryMs, () => {
      this.#cancelRetry = undefined;
      // The retry carries the same events, or a StatusEvent when the failed one was a status.
      void this.#send(true);
    });
  }
}

/** `OK` / `Unsubscribe` from a SendNotificationResult, or undefined. */
export function replyStatus(text: string): 'OK' | 'Unsubscribe' | undefined {
  try {
    const root = parseXml(text);
    const result = path(root, [NS.soap, 'Body'], [NS.m, 'SendNotificationResult']);
    const v = child(result, NS.m, 'SubscriptionStatus')?.text;
    return v === 'OK' || v === 'Unsubscribe' ? v : undefined;
  } catch {
    return undefined;
  }
}
