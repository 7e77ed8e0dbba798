/**
 * Per-mailbox pacing for the queue manager: at most `concurrency` deliveries at once per sending
 * mailbox (Exchange Online allows 3 SMTP connections per mailbox; Graph 4 concurrent requests) and
 * at most `perMinute` deliveries started in any 60 seconds (Exchange Online: 30 messages per minute).
 * A mailbox can also be paused, when Microsoft answered 429 or 432 with a time to wait.
 *
 * Sliding window: a start is allowed when fewer than `perMinute` starts happened in the last 60 s
 * of the injected clock; the next slot opens 60 s after the oldest of them.
 */
const WINDOW_MS = 60_000;

export class MailboxPacer {
  private readonly active = new Map<string, number>();
  private readonly starts = new Map<string, number[]>();
  private readonly pausedUntil = new Map<string, number>();
  private readonly concurrency: number;
  private readonly perMinute: number;

  constructor(options: { concurrency: number; perMinute: number }) {
    this.concurrency = options.concurrency;
    this.perMinute = options.perMinute;
  }

  running(mailbox: string): number {
    return this.active.get(mailbox) ?? 0;
  }

  /** When the mailbox may start its next delivery: `now` if it may now, undefined if only a finishing delivery frees it. */
  nextStart(mailbox: string, now: number): number | undefined {
    if (this.running(mailbox) >= this.concurrency) return undefined;
    let at = now;
    const paused = this.pausedUntil.get(mailbox);
    if (paused !== undefined) {
      if (paused > now) at = paused;
      else this.pausedUntil.delete(mailbox);
    }
    const recent = this.window(mailbox, now);
    if (recent.length >= this.perMinute) at = Math.max(at, recent[recent.length - this.perMinute]! + WINDOW_MS);
    return at;
  }

  canStart(mailbox: string, now: number): boolean {
    return this.nextStart(mailbox, now) === now;
  }

  start(mailbox: string, now: number): void {
    this.active.set(mailbox, this.running(mailbox) + 1);
    const list = this.window(mailbox, now);
    list.push(now);
    this.starts.set(mailbox, list);
  }

  finish(mailbox: string): void {
    const n = this.running(mailbox) - 1;
    if (n > 0) this.active.set(mailbox, n);
    else this.active.delete(mailbox);
  }

  pause(mailbox: string, until: number): void {
    this.pausedUntil.set(mailbox, Math.max(until, this.pausedUntil.get(mailbox) ?? 0));
  }

  /** Mailboxes that cannot start now, with the time they can (undefined: when a delivery finishes). */
  blocked(now: number): Map<string, number | undefined> {
    const out = new Map<string, number | undefined>();
    for (const mb of new Set([...this.active.keys(), ...this.starts.keys(), ...this.pausedUntil.keys()])) {
      const at = this.nextStart(mb, now);
      if (at !== now) out.set(mb, at);
      // Forget idle mailboxes so the maps do not grow with every sender ever seen.
      if (at === now && !this.active.has(mb) && (this.starts.get(mb)?.length ?? 0) === 0) this.starts.delete(mb);
    }
    return out;
  }

  private window(mailbox: string, now: number): number[] {
    const list = this.starts.get(mailbox) ?? [];
    let drop = 0;
    while (drop < list.length && list[drop]! <= now - WINDOW_MS) drop++;
    if (drop > 0) list.splice(0, drop);
    return list;
  }
}
