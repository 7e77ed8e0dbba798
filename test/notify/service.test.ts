/** The notify service's housekeeping: delivered events are purged after notify.retentionHours. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { notifySchema } from '../../src/notify/config.ts';
import { startNotifyService } from '../../src/notify/service.ts';
import { mail, subscription, tempStore } from './helpers.ts';
import { sinks } from '../../src/app/plugins.ts';

const HOUR = 3_600_000;

test('retentionHours: a delivered event older than the window is purged at start; a newer one and a pending one stay', async () => {
  const t = await tempStore();
  try {
    const config = notifySchema.parse({ retentionHours: 24 });
    const t0 = Date.UTC(2026, 10, 20, 8);
    // No sink is configured for the subscription's kind, so its delivery stays pending (never purged).
    await t.store.notify.createSubscription(subscription('webhook', ['anna@contoso.com']));
    const publish = async (id: string, at: number) => {
      const e = mail('anna@contoso.com', id);
      await t.store.notify.publish({ id: e.id, mailbox: e.mailbox, type: e.type, body: JSON.stringify(e) }, at);
      return e.id;
    };
    const old = await publish('old', t0);
    const pending = await publish('pending', t0 + HOUR);
    const recent = await publish('recent', t0 + 30 * HOUR);
    const sub = (await t.store.notify.listSubscriptions())[0]!;
    await t.store.notify.complete(sub.id, old, t0 + 1000);
    await t.store.notify.complete(sub.id, recent, t0 + 30 * HOUR + 1000);

    const svc = await startNotifyService({ config, sinks, store: t.store, secretBox: (s) => s, now: () => t0 + 40 * HOUR });
    await svc.close();
    const left = (await t.store.notify.listEvents({ limit: 10 })).map((e) => e.id);
    assert.deepEqual(left, [pending, recent]);
  } finally {
    await t.cleanup();
  }
});
