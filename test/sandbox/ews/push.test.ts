import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify, { type FastifyInstance } from 'fastify';
import { child, firstMessage, kids, NS, parseXml, startRig, text, type Rig, type XNode } from './helpers.ts';
import { waitFor } from '../../support/wait.ts';

/** A push listener: records every SendNotification, answers what the test says. */
interface Listener {
  url: string;
  received: XNode[];
  /** 'OK' | 'Unsubscribe' | an HTTP status to fail with. */
  answer: 'OK' | 'Unsubscribe' | number;
  next(): Promise<XNode>;
  app: FastifyInstance;
}

async function listener(): Promise<Listener> {
  const app = Fastify();
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_r, body, done) => done(null, body));
  const waiters: Array<(n: XNode) => void> = [];
  const l: Listener = {
    url: '',
    received: [],
    answer: 'OK',
    app,
    next: () => new Promise((resolve) => waiters.push(resolve)),
  };
  app.post('/ews/notify', async (req, reply) => {
    const doc = parseXml(String(req.body));
    l.received.push(doc);
    waiters.shift()?.(doc);
    if (typeof l.answer === 'number') return reply.code(l.answer).send('');
    return reply
      .type('text/xml; charset=utf-8')
      .send(`<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="${NS.soap}"><s:Body><SendNotificationResult xmlns="${NS.m}"><SubscriptionStatus>${l.answer}</SubscriptionStatus></SendNotificationResult></s:Body></s:Envelope>`);
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  l.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/ews/notify`;
  return l;
}

function notification(doc: XNode): XNode {
  const send = child(child(doc, NS.soap, 'Body'), NS.m, 'SendNotification')!;
  const msg = child(child(send, NS.m, 'ResponseMessages'), NS.m, 'SendNotificationResponseMessage')!;
  assert.equal(msg.attrs.ResponseClass, 'Success');
  assert.equal(text(msg, NS.m, 'ResponseCode'), 'NoError');
  return child(msg, NS.m, 'Notification')!;
}

async function subscribePush(rig: Rig, mailbox: string, url: string, frequency?: number): Promise<{ id: string; watermark: string }> {
  const res = await rig.soap(
    `<m:Subscribe><m:PushSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="inbox"/></t:FolderIds><t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes>${frequency ? `<t:StatusFrequency>${frequency}</t:StatusFrequency>` : ''}<t:URL>${url}</t:URL></m:PushSubscriptionRequest></m:Subscribe>`,
    { impersonate: mailbox },
  );
  const msg = firstMessage(res.xml());
  assert.equal(msg.attrs.ResponseClass, 'Success', res.text);
  return { id: text(msg, NS.m, 'SubscriptionId')!, watermark: text(msg, NS.m, 'Watermark')! };
}

describe('sandbox EWS: push notifications', () => {
  let rig: Rig;
  let l: Listener;
  before(async () => {
    rig = await startRig();
    l = await listener();
  });
  after(async () => {
    await rig.close();
    await l.app.close();
  });

  test('SendNotification carries the events (facts §5.3 shape); StatusEvent after StatusFrequency; Unsubscribe ends it', async () => {
    l.answer = 'OK';
    const mailbox = rig.synthetic.address(1);
    const sub = await subscribePush(rig, mailbox, l.url, 5);
    const got = l.next();
    rig.synthetic.deliver(mailbox, { from: 'x@example.org', subject: 'pushed' });
    const delivered = rig.ews.stats.push.delivered;
    const doc = await got;
    assert.deepEqual([doc.ns, doc.name], [NS.soap, 'Envelope']);
    assert.equal(child(child(doc, NS.soap, 'Header'), NS.t, 'RequestServerVersion')?.attrs.Version, 'Exchange2010_SP2');
    const n = notification(doc);
    assert.equal(text(n, NS.t, 'SubscriptionId'), sub.id);
    assert.equal(text(n, NS.t, 'PreviousWatermark'), sub.watermark);
    assert.equal(text(n, NS.t, 'MoreEvents'), 'false');
    const ev = child(n, NS.t, 'NewMailEvent')!;
    assert.ok(text(ev, NS.t, 'Watermark') && text(ev, NS.t, 'TimeStamp'));
    assert.ok(child(ev, NS.t, 'ItemId')?.attrs.Id && child(ev, NS.t, 'ParentFolderId')?.attrs.Id);

    // The StatusFrequency clock starts when the listener's answer is in.
    await waitFor(() => rig.ews.stats.push.delivered > delivered, 2000, 'a push delivered');
    const status = l.next();
    rig.sched.advance(5 * 60_000);
    const s = notification(await status);
    const se = child(s, NS.t, 'StatusEvent')!;
    assert.equal(text(se, NS.t, 'Watermark'), text(ev, NS.t, 'Watermark'), 'StatusEvent carries the last watermark');

    await waitFor(() => rig.ews.stats.push.delivered > delivered + 1, 2000, 'a second push delivered');
    l.answer = 'Unsubscribe';
    const before = rig.ews.subscriptions();
    const last = l.next();
    rig.sched.advance(5 * 60_000);
    await last;
    await waitFor(() => rig.ews.subscriptions() < before, 2000, 'the subscription ended');
    assert.equal(rig.ews.subscriptions(), before - 1);
    assert.equal(rig.ews.stats.push.unsubscribed, 1);
  });

  test('a failing callback is retried after 30 s, 1, 2, 4, 8, 16 minutes with the same events, then the subscription is dropped', async () => {
    l.answer = 503;
    const mailbox = rig.synthetic.address(2);
    await subscribePush(rig, mailbox, l.url);
    const first = l.next();
    rig.synthetic.deliver(mailbox, { from: 'x@example.org', subject: 'retry me' });
    const item = child(child(notification(await first), NS.t, 'NewMailEvent'), NS.t, 'ItemId')!.attrs.Id;
    const retriesBefore = rig.ews.stats.push.retries.length;
    const subsBefore = rig.ews.subscriptions();
    for (const [n, minutes] of [0.5, 1, 2, 4, 8, 16].entries()) {
      // Let the failed POST's outcome reach the sender (it schedules the retry) before moving the clock.
      await waitFor(() => rig.ews.stats.push.retries.length > retriesBefore + n, 2000, 'another retry');
      const next = l.next();
      rig.sched.advance(minutes * 60_000);
      const again = notification(await next);
      assert.equal(child(child(again, NS.t, 'NewMailEvent'), NS.t, 'ItemId')!.attrs.Id, item, `retry after ${minutes} min carries the event`);
    }
    await waitFor(() => rig.ews.subscriptions() < subsBefore, 2000, 'the subscription ended');
    assert.deepEqual(rig.ews.stats.push.retries.slice(retriesBefore), [30_000, 60_000, 120_000, 240_000, 480_000, 960_000]);
    assert.equal(rig.ews.subscriptions(), subsBefore - 1, 'the 32-minute retry exceeds StatusFrequency 30: dropped');
    assert.equal(rig.ews.stats.push.expired, 1);
  });

  test('a callback that recovers gets the held events and the subscription goes on', async () => {
    l.answer = 500;
    const mailbox = rig.synthetic.address(3);
    await subscribePush(rig, mailbox, l.url);
    const first = l.next();
    const failed = rig.ews.stats.push.failed;
    rig.synthetic.deliver(mailbox, { from: 'x@example.org', subject: 'one' });
    await first;
    await waitFor(() => rig.ews.stats.push.failed > failed, 2000, 'a failed push');
    rig.synthetic.deliver(mailbox, { from: 'x@example.org', subject: 'two' });
    l.answer = 'OK';
    const retry = l.next();
    rig.sched.advance(30_000);
    const n = notification(await retry);
    assert.equal(kids(n, NS.t, 'NewMailEvent').length, 2, 'both events in the retried notification');
  });

  test('Subscribe with a bad URL → ErrorInvalidPushSubscriptionUrl', async () => {
    const res = await rig.soap(
      `<m:Subscribe><m:PushSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="inbox"/></t:FolderIds><t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes><t:URL>ftp://nowhere</t:URL></m:PushSubscriptionRequest></m:Subscribe>`,
      { impersonate: rig.synthetic.address(4) },
    );
    assert.equal(text(firstMessage(res.xml()), NS.m, 'ResponseCode'), 'ErrorInvalidPushSubscriptionUrl');
  });
});
