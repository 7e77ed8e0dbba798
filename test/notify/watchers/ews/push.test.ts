/**
 * The EWS watcher in push mode, end to end: the sandbox EWS emulator POSTs SendNotification to the
 * watcher's route on an inbound Fastify listener; events reach the webhook receiver once; unknown
 * subscriptions are answered Unsubscribe; silence over 2 × StatusFrequency resubscribes from the
 * last watermark; a restart resumes from it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { createEwsWatcher, ewsWatchSchema, type EwsWatcher } from '../../../../src/notify/watchers/ews/index.ts';
import { startRig, type Rig } from './rig.ts';
import { waitFor } from '../../../support/wait.ts';

let rig: Rig;
const clock = { offset: 0 };
const open: Array<{ w: EwsWatcher; http: FastifyInstance }> = [];

before(async () => {
  rig = await startRig();
});
after(async () => {
  for (const o of open) {
    await o.w.close();
    await o.http.close();
  }
  await rig?.close();
});

async function pushWatcher(mailboxes: string[]): Promise<{ w: EwsWatcher; http: FastifyInstance }> {
  const http = Fastify({ logger: false });
  // The port (and so the public URL) is known once it listens; the watcher reads it when it subscribes.
  const inbound = { http, publicUrl: '' };
  const w = createEwsWatcher({
    listener: 'ews-push',
    mailboxes: mailboxes.map((address) => ({ address, folders: ['inbox'] })),
    authorization: rig.authorization,
    options: ewsWatchSchema.parse({ url: rig.ews.url, mode: 'push', statusFrequencyMinutes: 1 }),
    ctx: { ...rig.ctx, now: () => Date.now() + clock.offset, inbound },
    ca: rig.ca.certPem,
    hooks: { timing: { watchdogMs: 3_600_000 } },
  });
  inbound.publicUrl = await http.listen({ host: '127.0.0.1', port: 0 });
  const o = { w, http };
  open.push(o);
  return o;
}

function newSubjects(mailbox: string): string[] {
  return rig.at(mailbox, 'message.new').map((e) => (e.type === 'message.new' ? e.subject ?? '' : ''));
}

test('push: a new message arrives once with its unread count, a read follows, and the watermark is kept', async () => {
  const anna = 'anna@contoso.test';
  const { w } = await pushWatcher([anna]);
  await w.start();
  // Exchange does not call right after Subscribe: until it does, nothing proves the URL works.
  assert.deepEqual(w.status().map((s) => s.state), ['subscribed']);
  assert.match(w.push!.callbackUrl(), /^http:\/\/127\.0\.0\.1:\d+\/notify\/ews\/ews-push\/[A-Za-z0-9_-]{32}$/);

  await rig.deliver(anna, 'Per Push');
  await waitFor(() => newSubjects(anna).includes('Per Push'), 10_000, 'push delivered');
  await waitFor(() => w.status()[0]?.state === 'watching', 10_000, 'watching after the first call');
  const ev = rig.at(anna, 'message.new').find((e) => e.type === 'message.new' && e.subject === 'Per Push');
  assert.equal(ev?.type === 'message.new' && ev.unreadCount, 1);
  const saved = JSON.parse((await rig.store.store.kv.get('watch-ews', `push:${anna}`))!) as { id: string; watermark: string };
  assert.ok(saved.watermark);

  const c = await rig.imap(anna);
  await c.mailboxOpen('INBOX');
  await c.messageFlagsAdd('1:*', ['\\Seen'], { uid: true });
  await waitFor(() => rig.at(anna, 'message.read-state').length >= 1, 10_000, 'read-state');
  const rs = rig.at(anna, 'message.read-state')[0];
  assert.equal(rs?.type === 'message.read-state' && rs.unreadCount, 0);
  assert.ok(w.push!.stats.notifications >= 2);
  const after = JSON.parse((await rig.store.store.kv.get('watch-ews', `push:${anna}`))!) as { watermark: string };
  assert.notEqual(after.watermark, saved.watermark, 'the watermark moves with each notification');
});

test('push: strangers get 404, unknown subscriptions Unsubscribe; silence resubscribes from the watermark and nothing doubles', async () => {
  const ben = 'ben@contoso.test';
  const { w } = await pushWatcher([ben]);
  await w.start();
  const url = w.push!.callbackUrl();
  const body = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m:SendNotification xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages><m:SendNotificationResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Notification><t:SubscriptionId>NOT-OURS</t:SubscriptionId><t:StatusEvent><t:Watermark>AAAA</t:Watermark></t:StatusEvent></m:Notification></m:SendNotificationResponseMessage></m:ResponseMessages></m:SendNotification></soap:Body></soap:Envelope>`;
  const wrong = await request(url.replace(/[^/]+$/, 'x'.repeat(32)), { method: 'POST', headers: { 'content-type': 'text/xml; charset=utf-8' }, body });
  await wrong.body.dump();
  assert.equal(wrong.statusCode, 404);
  const res = await request(url, { method: 'POST', headers: { 'content-type': 'text/xml; charset=utf-8' }, body });
  assert.equal(res.statusCode, 200);
  assert.match(await res.body.text(), /<SubscriptionStatus>Unsubscribe<\/SubscriptionStatus>/);

  // Exchange went silent for more than 2 × StatusFrequency: subscribe again from the last watermark.
  const oldId = (JSON.parse((await rig.store.store.kv.get('watch-ews', `push:${ben}`))!) as { id: string }).id;
  const subscribes = rig.ews.stats.operations.Subscribe ?? 0;
  clock.offset += 3 * 60_000;
  w.push!.checkNow();
  await waitFor(() => (rig.ews.stats.operations.Subscribe ?? 0) > subscribes && w.status()[0]?.state === 'subscribed', 10_000, 'resubscribed');
  // Not one call from Exchange for ben's subscription in all that time: reported, with the URL but not its token.
  const silent = rig.problems.find((p) => p.mailbox === ben && p.error.code === 'MB_EWS_PUSH_SILENT');
  assert.ok(silent, JSON.stringify(rig.problems.map((p) => p.error.code)));
  assert.ok(silent.error.message.includes('/notify/ews/ews-push') && !silent.error.message.includes(url.split('/').at(-1)!));
  assert.equal(w.push!.stats.resubscribed, 1);
  const newId = (JSON.parse((await rig.store.store.kv.get('watch-ews', `push:${ben}`))!) as { id: string }).id;
  assert.notEqual(newId, oldId);

  // Both the old subscription (answered Unsubscribe now) and the new one see this; it arrives once.
  const before = newSubjects(ben).length;
  await rig.deliver(ben, 'After resubscribe');
  await waitFor(() => newSubjects(ben).length > before, 10_000, 'delivered');
  await waitFor(() => rig.ews.stats.push.unsubscribed >= 1, 10_000, 'old subscription ended by Unsubscribe');
  await rig.dispatcher.runOnce();
  assert.deepEqual(newSubjects(ben).slice(before), ['After resubscribe']);
});

test('push: a restart resubscribes from the saved watermark; mail that came meanwhile arrives once', async () => {
  const cara = 'cara@contoso.test';
  const first = await pushWatcher([cara]);
  await first.w.start();
  await first.w.close();
  await first.http.close();
  await rig.deliver(cara, 'While the listener was down');
  const second = await pushWatcher([cara]);
  await second.w.start();
  await waitFor(() => newSubjects(cara).includes('While the listener was down'), 10_000, 'caught up');
  await rig.dispatcher.runOnce();
  assert.deepEqual(newSubjects(cara), ['While the listener was down']);
  const ids = rig.received.map((r) => r.id);
  assert.equal(ids.length, new Set(ids).size);
});

test('push routes: a listener id group/name is two plain segments; a name with other characters gets a hash-suffixed segment that every client sends unchanged', async () => {
  const { routePath } = await import('../../../../src/notify/watchers/ews/push.ts');
  assert.equal(routePath('ep/pushsvc'), 'ep/pushsvc');
  const odd = routePath('plant/svc-notify@plant.contoso.com');
  assert.match(odd, /^plant\/svc-notify_plant\.contoso\.com-[0-9a-f]{8}$/);
  assert.notEqual(routePath('plant/DOMAIN\\svc'), routePath('plant/DOMAIN/svc'));
  assert.equal(encodeURI(odd), odd, 'nothing a client would percent-encode');
});
