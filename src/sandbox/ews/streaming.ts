/**
 * One GetStreamingEvents connection: a single chunked HTTP response that carries a whole SOAP
 * envelope per chunk, over up to ConnectionTimeout minutes (facts §5.2).
 *
 * - Events: when a subscription's queue grows, the connection writes one envelope with a
 *   `m:Notification` per subscription that has events (at most 50 events each, as Exchange pulls
 *   "the first 50 events from the queue"); the rest follow in the next envelope. Events leave the
 *   queue when their envelope has been handed to the socket; a connection that dies before gives
 *   them back, so a reconnect with the same SubscriptionId gets them again.
 * - Heartbeat: `ConnectionStatus OK` after `heartbeatMs` without any envelope (the EWS Managed API
 *   gives up after 90 s of silence), and once right at the start.
 * - Timeout: `ConnectionStatus Closed` in a Success message at ConnectionTimeout, then the end.
 * - A subscription taken over by a newer connection leaves this one; a connection left without
 *   subscriptions closes with `Closed` [APPROX].
 * - Test hook `drop(midEnvelope)`: cut the TCP connection now, or after writing half of the next
 *   notification envelope.
 */
import type { ServerResponse } from 'node:http';
import type { EwsProfile } from './backends.ts';
import type { Scheduler } from './clock.ts';
import { EWS_TEXTS } from './errors.ts';
import type { Hub, Subscription } from './hub.ts';
import { errorMessage, notificationEl, streamingEnvelope, successMessage } from './soap.ts';
import { el, tx, type XEl } from './xml.ts';

export interface StreamStats {
  /** Connections open now. */
  open: number;
  opened: number;
  notifications: number;
  heartbeats: number;
  dropped: number;
}

export class StreamConn {
  readonly subs = new Set<Subscription>();
  readonly owner: string;
  #res: ServerResponse;
  #hub: Hub;
  #profile: EwsProfile;
  #sched: Scheduler;
  #heartbeatMs: number;
  #heartbeatPending = false;
  #stats: StreamStats;
  #writing = false;
  #pendingFlush = false;
  #kicked = false;
  #closed = false;
  #finishing = false;
  #dropMid = false;
  #cancelHeartbeat?: () => void;
  #cancelTimeout?: () => void;
  #onClose: (c: StreamConn) => void;

  constructor(args: {
    res: ServerResponse;
    hub: Hub;
    profile: EwsProfile;
    scheduler: Scheduler;
    heartbeatMs: number;
    timeoutMinutes: number;
    owner: string;
    stats: StreamStats;
    onClose: (c: StreamConn) => void;
  }) {
    this.#res = args.res;
    this.#hub = args.hub;
    this.#profile = args.profile;
    this.#sched = args.scheduler;
    this.#heartbeatMs = args.heartbeatMs;
    this.#stats = args.stats;
    this.owner = args.owner;
    this.#onClose = args.onClose;
    args.stats.open++;
    args.stats.opened++;
    this.#res.on('close', () => this.#closedBySocket());
    this.#cancelTimeout = this.#sched.after(args.timeoutMinutes * 60_000, () => this.#finish());
  }

  /** Starts the response (headers, first chunks). `errors` are envelopes to write first. */
  start(subs: Subscription[], first: XEl[]): void {
    this.#res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8', 'transfer-encoding': 'chunked', 'cache-control': 'private' });
    for (const sub of subs) this.attach(sub);
    const queue = [...first, this.#status('OK')];
    void this.#writeEnvelopes(queue).then(() => this.kick());
  }

  attach(sub: Subscription): void {
    const prev = sub.reader;
    if (prev instanceof StreamConn && prev !== this) prev.detach(sub);
    this.#hub.rollback(sub);
    this.#hub.disarmExpiry(sub);
    sub.reader = this;
    this.subs.add(sub);
  }

  /** A newer connection took the subscription. */
  detach(sub: Subscription): void {
    if (!this.subs.delete(sub)) return;
    if (this.subs.size === 0) this.#finish();
  }

  kick(): void {
    if (this.#kicked || this.#closed) return;
    this.#kicked = true;
    setImmediate(() => {
      this.#kicked = false;
      void this.#flush();
    });
  }

  /** Test hook: cut now, or in the middle of the next notification envelope. */
  drop(midEnvelope: boolean): void {
    if (this.#closed) return;
    if (midEnvelope) {
      this.#dropMid = true;
      return;
    }
    this.#stats.dropped++;
    this.#res.socket?.destroy();
  }

  #status(status: 'OK' | 'Closed'): XEl {
    return successMessage('GetStreamingEvents', [tx('m:ConnectionStatus', status)]);
  }

  async #flush(): Promise<void> {
    if (this.#closed || this.#finishing) return;
    if (this.#writing) {
      this.#pendingFlush = true;
      return;
    }
    const notifications: XEl[] = [];
    const taken: Subscription[] = [];
    const missed: Subscription[] = [];
    for (const sub of this.subs) {
      if (sub.missed) {
        sub.missed = false;
        missed.push(sub);
      }
      const events = this.#hub.take(sub, 50);
      if (events.length === 0) continue;
      taken.push(sub);
      notifications.push(notificationEl(sub.id, events, {}));
    }
    const envelopes: XEl[] = [];
    if (missed.length) {
      envelopes.push(
        errorMessage('GetStreamingEvents', { code: 'ErrorMissedNotificationEvents', message: EWS_TEXTS.ErrorMissedNotificationEvents }, [
          el('m:ErrorSubscriptionIds', missed.map((s) => tx('m:SubscriptionId', s.id))),
        ]),
      );
    }
    if (notifications.length) envelopes.push(successMessage('GetStreamingEvents', [el('m:Notifications', notifications)]));
    if (envelopes.length === 0) return;
    const ok = await this.#writeEnvelopes(envelopes, notifications.length > 0);
    for (const sub of taken) {
      if (ok && sub.reader === this) this.#hub.commit(sub);
      else this.#hub.rollback(sub);
    }
    if (ok) {
      this.#stats.notifications += notifications.length;
      if ([...this.subs].some((s) => s.queue.length > s.inflight)) this.kick();
    }
  }

  async #writeEnvelopes(messages: XEl[], mayDrop = false): Promise<boolean> {
    if (this.#closed) return false;
    this.#writing = true;
    // The idle clock restarts when an envelope is sent, not when the socket has taken it.
    this.#armHeartbeat();
    try {
      for (const m of messages) {
        const text = streamingEnvelope(this.#profile, m);
        if (mayDrop && this.#dropMid) {
          this.#dropMid = false;
          await this.#write(text.slice(0, Math.floor(text.length / 2)));
          this.#stats.dropped++;
          this.#res.socket?.destroy();
          return false;
        }
        if (!(await this.#write(text))) return false;
      }
      return true;
    } finally {
      this.#writing = false;
      if (this.#heartbeatPending && !this.#finishing && !this.#closed) {
        this.#heartbeatPending = false;
        this.#sendHeartbeat();
      } else if (this.#pendingFlush) {
        this.#pendingFlush = false;
        this.kick();
      }
    }
  }

  #write(text: string): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.#closed || this.#res.destroyed) return resolve(false);
      this.#res.write(text, (err) => resolve(!err && !this.#closed));
    });
  }

  #armHeartbeat(): void {
    this.#cancelHeartbeat?.();
    if (this.#closed) return;
    this.#cancelHeartbeat = this.#sched.after(this.#heartbeatMs, () => {
      this.#cancelHeartbeat = undefined;
      if (this.#finishing) return;
      // Due while the previous envelope is still being flushed: send it right after, rather than
      // a whole interval later (the interval counts from when an envelope was sent).
      if (this.#writing) this.#heartbeatPending = true;
      else this.#sendHeartbeat();
    });
  }

  #sendHeartbeat(): void {
    this.#stats.heartbeats++;
    // Its own write's `finally` picks up a flush that was asked for meanwhile.
    void this.#writeEnvelopes([this.#status('OK')]);
  }

  /** ConnectionTimeout reached (or no subscriptions left): Closed, then end. */
  #finish(): void {
    if (this.#closed || this.#finishing) return;
    this.#finishing = true;
    const end = () => {
      if (this.#closed) return;
      if (this.#writing) {
        setImmediate(end);
        return;
      }
      void this.#writeEnvelopes([this.#status('Closed')]).then(() => {
        this.#res.end();
        this.#teardown();
      });
    };
    end();
  }

  #closedBySocket(): void {
    this.#teardown();
  }

  #teardown(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stats.open--;
    this.#cancelHeartbeat?.();
    this.#cancelTimeout?.();
    for (const sub of this.subs) {
      if (sub.reader !== this) continue;
      sub.reader = undefined;
      this.#hub.rollback(sub);
      // Queued events wait for a reconnect until the subscription's lifetime runs out.
      if (this.#hub.subs.has(sub.key)) this.#hub.armExpiry(sub);
    }
    this.subs.clear();
    this.#onClose(this);
  }

  /** Server shutdown. */
  destroy(): void {
    this.#res.socket?.destroy();
    this.#teardown();
  }
}
