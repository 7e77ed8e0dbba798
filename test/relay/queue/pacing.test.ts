/**
 * MailboxPacer on its own: the three per-mailbox limits (concurrency, starts per minute, recipients
 * per 24 hours) on an injected clock, and the day budget seeded from earlier sends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MailboxPacer } from '../../../src/relay/queue/pacing.ts';

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 10, 23, 8, 0, 0);

function pacer(perDay: number): MailboxPacer {
  return new MailboxPacer({ concurrency: 1000, perMinute: 1000, recipientsPerDay: perDay });
}

test('recipients per day: a message that does not fit waits until the oldest sends leave the 24-hour window', () => {
  const p = pacer(100);
  p.start('erp@contoso.com', T0, 40);
  p.start('erp@contoso.com', T0 + HOUR, 40);
  assert.equal(p.remainingToday('erp@contoso.com', T0 + HOUR), 20);
  assert.equal(p.canStart('erp@contoso.com', T0 + HOUR, 20), true, 'exactly the rest fits');
  // 30 recipients need 10 more: they free up when the first start (40) leaves the window.
  assert.equal(p.nextStart('erp@contoso.com', T0 + 2 * HOUR, 30), T0 + DAY);
  assert.equal(p.canStart('erp@contoso.com', T0 + DAY - 1, 30), false);
  assert.equal(p.canStart('erp@contoso.com', T0 + DAY, 30), true);
  assert.equal(p.remainingToday('erp@contoso.com', T0 + DAY), 60);
  // Another mailbox has its own budget.
  assert.equal(p.canStart('hr@contoso.com', T0 + HOUR, 100), true);
});

test('recipients per day: a need that only the second-oldest start frees waits for that one', () => {
  const p = pacer(100);
  p.start('erp@contoso.com', T0, 10);
  p.start('erp@contoso.com', T0 + HOUR, 50);
  p.start('erp@contoso.com', T0 + 2 * HOUR, 40);
  assert.equal(p.nextStart('erp@contoso.com', T0 + 3 * HOUR, 30), T0 + HOUR + DAY);
});

test('a message with more recipients than the whole budget goes out once the window is empty (it never fits otherwise)', () => {
  const p = pacer(100);
  assert.equal(p.canStart('erp@contoso.com', T0, 150), true);
  p.start('erp@contoso.com', T0, 150);
  assert.equal(p.nextStart('erp@contoso.com', T0 + MIN, 1), T0 + DAY);
});

test('seed: sends before a restart count against the budget; older than 24 hours do not', () => {
  const p = pacer(100);
  p.seed([
    { mailbox: 'erp@contoso.com', recipients: 70, at: T0 - DAY - 1 },
    { mailbox: 'erp@contoso.com', recipients: 60, at: T0 - HOUR },
    { mailbox: 'erp@contoso.com', recipients: 30, at: T0 - 2 * HOUR },
  ]);
  assert.equal(p.remainingToday('erp@contoso.com', T0), 10);
  assert.equal(p.canStart('erp@contoso.com', T0, 11), false);
  // Seeded out of order: the older one (30 at T0-2h) leaves first.
  assert.equal(p.nextStart('erp@contoso.com', T0, 11), T0 - 2 * HOUR + DAY);
  assert.ok(p.blocked(T0).has('erp@contoso.com') === false, 'the mailbox itself is not blocked for a 1-recipient message');
});

test('blocked(): a used-up budget blocks the mailbox until it frees; the minute window and concurrency still apply', () => {
  const p = new MailboxPacer({ concurrency: 2, perMinute: 3, recipientsPerDay: 5 });
  for (let i = 0; i < 5; i++) {
    if (i === 2) p.finish('a@contoso.com');
    if (i === 3) p.finish('a@contoso.com');
    p.start('a@contoso.com', T0 + i * MIN, 1);
  }
  p.finish('a@contoso.com');
  p.finish('a@contoso.com');
  p.finish('a@contoso.com');
  assert.equal(p.blocked(T0 + 5 * MIN).get('a@contoso.com'), T0 + DAY);
  assert.equal(p.blocked(T0 + DAY).has('a@contoso.com'), false);

  const q = new MailboxPacer({ concurrency: 2, perMinute: 3, recipientsPerDay: 1000 });
  q.start('b@contoso.com', T0, 1);
  q.start('b@contoso.com', T0, 1);
  assert.equal(q.nextStart('b@contoso.com', T0, 1), undefined, 'two running: only a finish frees it');
  q.finish('b@contoso.com');
  q.start('b@contoso.com', T0, 1);
  q.finish('b@contoso.com');
  assert.equal(q.nextStart('b@contoso.com', T0, 1), T0 + MIN, 'three starts this minute');
});
