/**
 * Per-mailbox pacing for the queue manager, within Exchange Online's sending limits (facts 3.5):
 * - at most `concurrency` deliveries at once per sending mailbox (3 SMTP connections per mailbox;
 *   Graph allows 4 concurrent requests);
 * - at most `perMinute` deliveries started in any 60 seconds (30 messages per minute);
 * - at most `recipientsPerDay` recipients in deliveries started in any 24 hours (10,000 recipients
 *   per day). Exchange answers the 10,001st with 554 5.2.0 SubmissionQuotaExceeded and blocks the
 *   mailbox for up to a day; pacing locally keeps the message waiting here, deferred but safe,
 *   instead of provoking that block.
 * A mailbox can also be paused, when Microsoft answered 429 or 432 with a time to wait, or after a
 * refused login (535, 5.7.139: a minute); `resume` ends a pause early (an admin's `queue retry`).
 * `holdOff` keeps a mailbox back until a time the shared limits in the store named (several nodes:
 * its slots are used elsewhere); unlike a pause, an admin's retry does not lift it.
 *
 * Sliding windows on the injected clock: a start is allowed when fewer than `perMinute` starts
 * happened in the last 60 s and the recipients started in the last 24 h plus this message's stay
 * within the budget; the next slot opens when enough of the oldest starts leave their window.
 * Recipients are counted when a delivery starts (a failed attempt counts too: Exchange may have
 * counted it), and the day window is seeded at start from the queue's sent messages, so a restart
 * does not grant a fresh budget.
 */
const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

interface DayWindow {
  /** [start time, recipients] of starts in the last 24 h, oldest first. */
  starts: Array<[number, number]>;
  total: number;
}

export interface PacerOptions {
  concurrency: number;
  perMinute: number;
  /** Recipients per mailbox in any 24 hours; Infinity: unpaced. */
  recipientsPerDay?: number;
}

export class MailboxPacer {
  private readonly active = new Map<string, number>();
  private readonly starts = new Map<string, number[]>();
  private readonly days = new Map<string, DayWindow>();
  private readonly pausedUntil = new Map<string, number>();
  private readonly heldOff = new Map<string, number>();
  /** When each current pause began. */
  private readonly pausedFrom = new Map<string, number>();
  private readonly concurrency: number;
  private readonly perMinute: number;
  private readonly perDay: number;

  constructor(options: PacerOptions) {
    this.concurrency = options.concurrency;
    this.perMinute = options.perMinute;
    this.perDay = options.recipientsPerDay ?? Infinity;
  }

  /** Counts deliveries that started before this process did (the queue's sent messages of the last 24 h). */
  seed(entries: Iterable<{ mailbox: string; recipients: number; at: number }>): void {
    const sorted = [...entries].sort((a, b) => a.at - b.at);
    for (const e of sorted) this.countRecipients(e.mailbox, e.at, e.recipients);
  }

  running(mailbox: string): number {
    return this.active.get(mailbox) ?? 0;
  }

  /** Recipients the mailbox may still start within its 24-hour budget now. */
  remainingToday(mailbox: string, now: number): number {
    return this.perDay - this.day(mailbox, now).total;
  }

  /**
   * When the mailbox may start its next delivery (of `recipients` recipients): `now` if it may now,
   * undefined if only a finishing delivery frees it.
   */
  nextStart(mailbox: string, now: number, recipients = 1): number | undefined {
    if (this.running(mailbox) >= this.concurrency) return undefined;
    let at = now;
    const paused = this.pausedUntil.get(mailbox);
    if (paused !== undefined) {
      if (paused > now) at = paused;
      else this.resume(mailbox);
    }
    const off = this.heldOff.get(mailbox);
    if (off !== undefined) {
      if (off > now) at = Math.max(at, off);
      else this.heldOff.delete(mailbox);
    }
    const recent = this.minute(mailbox, now);
    if (recent.length >= this.perMinute) at = Math.max(at, recent[recent.length - this.perMinute]! + MINUTE_MS);
    return Math.max(at, this.dayBudgetAt(mailbox, now, recipients));
  }

  canStart(mailbox: string, now: number, recipients = 1): boolean {
    return this.nextStart(mailbox, now, recipients) === now;
  }

  start(mailbox: string, now: number, recipients = 1): void {
    this.active.set(mailbox, this.running(mailbox) + 1);
    const list = this.minute(mailbox, now);
    list.push(now);
    this.starts.set(mailbox, list);
    this.countRecipients(mailbox, now, recipients);
  }

  finish(mailbox: string): void {
    const n = this.running(mailbox) - 1;
    if (n > 0) this.active.set(mailbox, n);
    else this.active.delete(mailbox);
  }

  /** Pauses the mailbox from `now` until `until` (a longer pause already running wins). */
  pause(mailbox: string, until: number, now: number): void {
    if (!this.pausedUntil.has(mailbox)) this.pausedFrom.set(mailbox, now);
    this.pausedUntil.set(mailbox, Math.max(until, this.pausedUntil.get(mailbox) ?? 0));
  }

  /** Keeps the mailbox from starting before `until` (its limits are used on other nodes). */
  holdOff(mailbox: string, until: number): void {
    this.heldOff.set(mailbox, Math.max(until, this.heldOff.get(mailbox) ?? 0));
  }

  resume(mailbox: string): void {
    this.pausedUntil.delete(mailbox);
    this.pausedFrom.delete(mailbox);
  }

  /** Mailboxes paused now, with the time each pause began. */
  paused(now: number): Map<string, number> {
    const out = new Map<string, number>();
    for (const [mb, until] of this.pausedUntil) if (until > now) out.set(mb, this.pausedFrom.get(mb) ?? now);
    return out;
  }

  /** Mailboxes that cannot start now, with the time they can (undefined: when a delivery finishes). */
  blocked(now: number): Map<string, number | undefined> {
    const out = new Map<string, number | undefined>();
    for (const mb of new Set([...this.active.keys(), ...this.starts.keys(), ...this.pausedUntil.keys(), ...this.heldOff.keys(), ...this.days.keys()])) {
      const at = this.nextStart(mb, now);
      if (at !== now) out.set(mb, at);
      // Forget idle mailboxes so the maps do not grow with every sender ever seen.
      if (at === now && !this.active.has(mb)) {
        if ((this.starts.get(mb)?.length ?? 0) === 0) this.starts.delete(mb);
        if (this.day(mb, now).starts.length === 0) this.days.delete(mb);
      }
    }
    return out;
  }

  /**
   * What the pacer knows about each mailbox it has seen (for the admin API): deliveries running,
   * starts in the last minute, recipients in the last 24 hours and what is left of the budget, a
   * pause and when the next delivery may start (undefined: when a running one finishes).
   */
  state(now: number): Array<{ mailbox: string; running: number; startsLastMinute: number; recipientsLastDay: number; remainingToday: number | null; pausedUntil?: number; nextStartAt?: number }> {
    const out = [];
    for (const mailbox of [...new Set([...this.active.keys(), ...this.starts.keys(), ...this.pausedUntil.keys(), ...this.heldOff.keys(), ...this.days.keys()])].sort()) {
      const paused = this.pausedUntil.get(mailbox);
      const next = this.nextStart(mailbox, now);
      const remaining = this.remainingToday(mailbox, now);
      out.push({
        mailbox,
        running: this.running(mailbox),
        startsLastMinute: this.minute(mailbox, now).length,
        recipientsLastDay: this.day(mailbox, now).total,
        // JSON has no Infinity: null means no daily budget is enforced.
        remainingToday: Number.isFinite(remaining) ? remaining : null,
        ...(paused !== undefined && paused > now ? { pausedUntil: paused } : {}),
        ...(next !== undefined ? { nextStartAt: next } : {}),
      });
    }
    return out;
  }

  /** When `recipients` more fit into the mailbox's 24-hour budget. */
  private dayBudgetAt(mailbox: string, now: number, recipients: number): number {
    const w = this.day(mailbox, now);
    let excess = w.total + recipients - this.perDay;
    if (excess <= 0) return now;
    // A message with more recipients than the whole budget goes out once the window is empty;
    // Exchange then decides (it would never fit otherwise).
    for (const [at, n] of w.starts) {
      excess -= n;
      if (excess <= 0) return at + DAY_MS;
    }
    return (w.starts[w.starts.length - 1]?.[0] ?? now - DAY_MS) + DAY_MS;
  }

  private countRecipients(mailbox: string, at: number, n: number): void {
    if (this.perDay === Infinity) return;
    const w = this.day(mailbox, at);
    w.starts.push([at, n]);
    w.total += n;
    this.days.set(mailbox, w);
  }

  private day(mailbox: string, now: number): DayWindow {
    const w = this.days.get(mailbox) ?? { starts: [], total: 0 };
    let drop = 0;
    while (drop < w.starts.length && w.starts[drop]![0] <= now - DAY_MS) w.total -= w.starts[drop++]![1];
    if (drop > 0) w.starts.splice(0, drop);
    return w;
  }

  private minute(mailbox: string, now: number): number[] {
    const list = this.starts.get(mailbox) ?? [];
    let drop = 0;
    while (drop < list.length && list[drop]! <= now - MINUTE_MS) drop++;
    if (drop > 0) list.splice(0, drop);
    return list;
  }
}
