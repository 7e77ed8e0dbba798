import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { MbError } from '../../../src/errors/index.ts';
import { scrub } from '../../../src/log/redact.ts';
import { createDispatcher } from '../../../src/notify/dispatcher.ts';
import { webhookSinkSchema } from '../../../src/notify/config.ts';
import { createWebhookSink } from '../../../src/notify/sinks/webhook.ts';
import { Clock, mail, noJitter, subscription, tempStore } from '../helpers.ts';
import { loopbackEgress } from '../../support/egress.ts';

/** The receivers below listen on loopback, which the egress policy allows only when listed. */
const egress = loopbackEgress();

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A local receiver: records every POST and answers with the next scripted status (200 when none is left). */
async function receiver(): Promise<{ url: string; got: Received[]; script: Array<number | 'hang' | [number, Record<string, string>]>; server: Server }> {
  const got: Received[] = [];
  const script: Array<number | 'hang' | [number, Record<string, string>]> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const next = script.shift() ?? 200;
      if (next === 'hang') return; // never answers
      const [status, headers] = Array.isArray(next) ? next : [next, {}];
      res.writeHead(status, headers).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks/mail`, got, script, server };
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

const secret = () => `whsec_${randomBytes(32).toString('base64')}`;
const config = webhookSinkSchema.parse({ requireHttps: false });

test('deliveries verify with the standardwebhooks reference implementation, in order, with the event id as webhook-id', async () => {
  const t = await tempStore();
  const r = await receiver();
  try {
    const sink = createWebhookSink({ config, egress });
    const s = secret();
    const sub = subscription('webhook', ['ben@contoso.com'], sink.parseParams({ url: r.url, secret: s }));
    await t.store.notify.createSubscription(sub);
    const d = createDispatcher({ repo: t.store.notify, sinks: [sink], retry: noJitter });
    const e1 = mail('ben@contoso.com', 'm1', 'Rechnung März');
    const e2 = mail('ben@contoso.com', 'm2');
    await d.publish(e1);
    await d.publish(e2);
    assert.deepEqual(await d.runOnce(), { delivered: 2, retried: 0, gone: 0, expired: 0 });

    assert.equal(r.got.length, 2);
    const wh = new Webhook(s);
    const seen = r.got.map((g) => {
      assert.equal(g.path, '/hooks/mail');
      assert.equal(g.headers['content-type'], 'application/json');
      assert.match(String(g.headers['webhook-signature']), /^v1,[A-Za-z0-9+/]+=*$/);
      const verified = wh.verify(g.body, g.headers as Record<string, string>) as { type: string; data: { id: string; seq: number; subject?: string } };
      assert.equal(g.headers['webhook-id'], verified.data.id);
      return verified;
    });
    assert.deepEqual(seen.map((v) => [v.type, v.data.id, v.data.seq]), [['message.new', e1.id, 1], ['message.new', e2.id, 2]]);
    assert.equal(seen[0]!.data.subject, 'Rechnung März');

    // The check can fail: a changed body, another secret or a replayed old timestamp is refused.
    const g = r.got[0]!;
    const headers = g.headers as Record<string, string>;
    assert.throws(() => wh.verify(g.body.replace('m1', 'm9'), headers));
    assert.throws(() => new Webhook(secret()).verify(g.body, headers));
    assert.throws(() => wh.verify(g.body, { ...headers, 'webhook-timestamp': String(Number(headers['webhook-timestamp']) - 3600) }));

    // The secret is registered: it cannot leak through logs or errors.
    assert.equal(scrub(`secret is ${s}`).includes(s), false);
  } finally {
    await close(r.server);
    await t.cleanup();
  }
});

test('5xx, 429 with Retry-After and timeouts are retried with back-off on the injected clock; a retry keeps the webhook-id', async () => {
  const t = await tempStore();
  const r = await receiver();
  try {
    const clock = new Clock(Date.now());
    const sink = createWebhookSink({ config, now: clock.now, timeoutMs: 200, egress });
    const s = secret();
    await t.store.notify.createSubscription(subscription('webhook', ['ben@contoso.com'], sink.parseParams({ url: r.url, secret: s })));
    const d = createDispatcher({ repo: t.store.notify, sinks: [sink], retry: noJitter, now: clock.now });
    const e1 = mail('ben@contoso.com', 'm1');
    await d.publish(e1);
    r.script.push(503, [429, { 'retry-after': '90' }], 'hang', 500);

    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      const before = clock.t;
      const stats = await d.runOnce();
      if (stats.delivered === 1) break;
      assert.equal(stats.retried, 1);
      const next = await t.store.notify.nextDue(clock.t);
      waits.push(next! - before);
      clock.t = next!;
    }
    // back-off 5 s, then the receiver's 90 s (longer than 10 s), then 20 s after the timeout, 40 s after the 500.
    assert.deepEqual(waits, [5_000, 90_000, 20_000, 40_000]);
    assert.equal(r.got.length, 5);
    assert.deepEqual(new Set(r.got.map((g) => g.headers['webhook-id'])), new Set([e1.id]));
    const rows = await t.store.notify.listDeliveries();
    assert.equal(rows[0]?.state, 'done');
    assert.equal(rows[0]?.attempts, 5);
    // Each attempt is signed for its own timestamp.
    assert.deepEqual(r.got.map((g) => Number(g.headers['webhook-timestamp'])), [0, 5, 95, 115, 155].map((s2) => Math.floor((clock.t - 155_000 + s2 * 1000) / 1000)));
  } finally {
    await close(r.server);
    await t.cleanup();
  }
});

test('a timeout and an unreachable receiver are reported with MB codes', async () => {
  const r = await receiver();
  try {
    const sink = createWebhookSink({ config, timeoutMs: 100, egress });
    const s = secret();
    r.script.push('hang');
    const sub = subscription('webhook', ['ben@contoso.com'], { url: r.url, secret: s });
    const timedOut = await sink.deliver(mail('ben@contoso.com', 'm1'), sub);
    assert.equal(timedOut.kind, 'retry');
    assert.ok(timedOut.kind === 'retry' && timedOut.error.code === 'MB_NOTIFY_UNREACHABLE');
    assert.match(timedOut.error.message, /no answer within 100 ms/);
  } finally {
    await close(r.server);
  }
  const sink = createWebhookSink({ config, egress });
  const res = await sink.deliver(mail('ben@contoso.com', 'm1'), subscription('webhook', ['ben@contoso.com'], { url: r.url, secret: secret() }));
  assert.ok(res.kind === 'retry' && res.error.code === 'MB_NOTIFY_UNREACHABLE');
});

test('410 Gone retires the subscription', async () => {
  const t = await tempStore();
  const r = await receiver();
  try {
    const sink = createWebhookSink({ config, egress });
    const sub = subscription('webhook', ['ben@contoso.com'], { url: r.url, secret: secret() });
    await t.store.notify.createSubscription(sub);
    const d = createDispatcher({ repo: t.store.notify, sinks: [sink], retry: noJitter });
    r.script.push(410);
    await d.publish(mail('ben@contoso.com', 'm1'));
    await d.publish(mail('ben@contoso.com', 'm2'));
    assert.deepEqual(await d.runOnce(), { delivered: 0, retried: 0, gone: 1, expired: 0 });
    assert.equal(r.got.length, 1);
    assert.equal((await t.store.notify.getSubscription(sub.id))?.state, 'gone');
  } finally {
    await close(r.server);
    await t.cleanup();
  }
});

test('subscription parameters are checked: https required by default, whsec_ secrets of 24-64 bytes, nothing else', () => {
  const strict = createWebhookSink({ config: webhookSinkSchema.parse({}) });
  const invalid = (input: unknown, field: RegExp) =>
    assert.throws(
      () => strict.parseParams(input),
      (e: unknown) => e instanceof MbError && e.code === 'MB_NOTIFY_SUBSCRIPTION_INVALID' && field.test(String(e.params.detail)),
    );
  const s = secret();
  assert.deepEqual(strict.parseParams({ url: 'https://erp.contoso.com/hook', secret: s }), { url: 'https://erp.contoso.com/hook', secret: s });
  invalid({ url: 'http://erp.contoso.com/hook', secret: s }, /^sink\.url/);
  invalid({ url: 'https://erp.contoso.com/hook', secret: 'hunter2' }, /^sink\.secret/);
  invalid({ url: 'https://erp.contoso.com/hook', secret: `whsec_${randomBytes(8).toString('base64')}` }, /^sink\.secret: .*24 to 64/);
  invalid({ url: 'https://erp.contoso.com/hook', secret: s, extra: 1 }, /^sink/);
  assert.deepEqual(strict.publicParams({ url: 'https://erp.contoso.com/hook', secret: s }), { url: 'https://erp.contoso.com/hook' });
});
