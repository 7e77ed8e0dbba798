import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Http2Server, type IncomingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { MbError } from '../../../src/errors/index.ts';
import { createDispatcher } from '../../../src/notify/dispatcher.ts';
import { apnsSinkSchema } from '../../../src/notify/config.ts';
import { messageDeleted, readStateChanged } from '../../../src/notify/events.ts';
import { apnsId, createApnsSink } from '../../../src/notify/sinks/apns.ts';
import { Clock, mail, noJitter, subscription, tempStore } from '../helpers.ts';

const TEAM = 'TEAM123456';
const KID = 'KEY1234567';
const TOPIC = 'com.contoso.mail';

interface Got {
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  jwt: string;
}

/** An APNs stand-in over h2c: checks method, path, token and apns-* headers as Apple documents them. */
async function apnsStandIn(publicKey: ReturnType<typeof generateKeyPairSync>['publicKey']) {
  const got: Got[] = [];
  const problems: string[] = [];
  const script: Array<[number, string?, Record<string, string>?]> = [];
  const server: Http2Server = createServer();
  server.on('stream', (stream, h) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', async () => {
      const answer = (status: number, reason?: string, extra: Record<string, string> = {}) => {
        stream.respond({ ':status': status, 'apns-id': String(h['apns-id'] ?? ''), ...extra });
        stream.end(reason ? JSON.stringify({ reason }) : undefined);
      };
      if (h[':method'] !== 'POST') problems.push(`method ${h[':method']}`);
      if (!/^\/3\/device\/[0-9a-f]{64}$/.test(String(h[':path']))) problems.push(`path ${h[':path']}`);
      if (h['apns-topic'] !== TOPIC) problems.push(`topic ${h['apns-topic']}`);
      if (!['alert', 'background'].includes(String(h['apns-push-type']))) problems.push(`push-type ${h['apns-push-type']}`);
      if (!['5', '10'].includes(String(h['apns-priority']))) problems.push(`priority ${h['apns-priority']}`);
      if (h['apns-push-type'] === 'background' && h['apns-priority'] !== '5') problems.push('background pushes must have priority 5');
      if (!/^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/.test(String(h['apns-id']))) problems.push(`apns-id ${h['apns-id']}`);
      const jwt = /^bearer (.+)$/.exec(String(h.authorization))?.[1] ?? '';
      try {
        const header = decodeProtectedHeader(jwt);
        if (header.alg !== 'ES256' || header.kid !== KID) throw new Error(`header ${JSON.stringify(header)}`);
        const { payload } = await jwtVerify(jwt, publicKey, { issuer: TEAM });
        if (typeof payload.iat !== 'number') throw new Error('no iat');
      } catch (err) {
        problems.push(`token: ${(err as Error).message}`);
        return answer(403, 'InvalidProviderToken');
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      got.push({ headers: h, body, jwt });
      const [status, reason, extra] = script.shift() ?? [200];
      answer(status, reason, extra);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, got, problems, script, server };
}

function keys() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey };
}

const token = () => randomBytes(32).toString('hex');

test('APNs: token-auth requests in Apple\'s format for alerts, badge updates and background pushes', async () => {
  const t = await tempStore();
  const k = keys();
  const apns = await apnsStandIn(k.publicKey);
  const sink = createApnsSink({ config: apnsSinkSchema.parse({ teamId: TEAM, keyId: KID, privateKey: k.pem, topic: TOPIC, url: apns.url }) });
  try {
    const device = token();
    const sub = subscription('apns', ['ben@contoso.com'], sink.parseParams({ deviceToken: device.toUpperCase() }));
    await t.store.notify.createSubscription(sub);
    const d = createDispatcher({ repo: t.store.notify, sinks: [sink], retry: noJitter });
    const e1 = mail('ben@contoso.com', 'm1', 'Lieferschein 42');
    await d.publish(e1);
    await d.publish(readStateChanged({ type: 'message.read-state', mailbox: 'ben@contoso.com', messageId: 'm1', folder: 'Inbox', read: true, unreadCount: 4, changeKey: 'c1' }));
    await d.publish(messageDeleted({ type: 'message.deleted', mailbox: 'ben@contoso.com', messageId: 'm1', folder: 'Inbox' }));
    assert.deepEqual(await d.runOnce(), { delivered: 3, retried: 0, gone: 0, expired: 0 });
    assert.deepEqual(apns.problems, []);
    const [alert, badge, background] = apns.got as [Got, Got, Got];
    assert.equal(alert.headers[':path'], `/3/device/${device}`);
    assert.equal(alert.headers['apns-push-type'], 'alert');
    assert.equal(alert.headers['apns-priority'], '10');
    assert.equal(alert.headers['apns-id'], apnsId(e1.id));
    assert.deepEqual((alert.body.aps as { alert: unknown }).alert, { title: 'Anna Schmidt', body: 'Lieferschein 42' });
    assert.deepEqual(alert.body.mb, { id: e1.id, type: 'message.new', mailbox: 'ben@contoso.com', seq: 1, messageId: 'm1', folder: 'Inbox' });
    assert.deepEqual(badge.body.aps, { badge: 4 });
    assert.equal(badge.headers['apns-priority'], '5');
    assert.ok(badge.headers['apns-collapse-id']);
    assert.equal(background.headers['apns-push-type'], 'background');
    assert.deepEqual(background.body.aps, { 'content-available': 1 });
    // One provider token, one HTTP/2 session for all three.
    assert.equal(new Set(apns.got.map((g) => g.jwt)).size, 1);
  } finally {
    await sink.close?.();
    await new Promise<void>((r) => apns.server.close(() => r()));
    await t.cleanup();
  }
});

test('APNs answers: 410 Unregistered → gone; 429 and 503 → retry; an expired provider token is renewed', async () => {
  const k = keys();
  const apns = await apnsStandIn(k.publicKey);
  const clock = new Clock(Date.now());
  const sink = createApnsSink({ config: apnsSinkSchema.parse({ teamId: TEAM, keyId: KID, privateKey: k.pem, topic: TOPIC, url: apns.url }), now: clock.now });
  try {
    const sub = subscription('apns', ['ben@contoso.com'], { deviceToken: token() });
    apns.script.push([410, 'Unregistered'], [429, 'TooManyRequests'], [503, 'ServiceUnavailable', { 'retry-after': '30' }], [403, 'ExpiredProviderToken'], [200]);
    const results = [];
    for (let i = 0; i < 5; i++) {
      results.push(await sink.deliver(mail('ben@contoso.com', `m${i}`), sub));
      clock.advance(1000);
    }
    assert.deepEqual(results.map((r) => (r.kind === 'ok' ? 'ok' : `${r.kind}:${r.error.code}:${r.error.params.reason}`)), [
      'gone:MB_NOTIFY_GONE:Unregistered',
      'retry:MB_NOTIFY_REJECTED:TooManyRequests',
      'retry:MB_NOTIFY_REJECTED:ServiceUnavailable',
      'retry:MB_NOTIFY_REJECTED:ExpiredProviderToken',
      'ok',
    ]);
    assert.equal(results[2]!.kind === 'retry' && results[2]!.afterMs, 30_000);
    const jwts = apns.got.map((g) => g.jwt);
    assert.equal(jwts[3], jwts[0]);
    assert.notEqual(jwts[4], jwts[3], 'a new token after ExpiredProviderToken');
    // After 50 minutes the token is renewed without being asked.
    clock.advance(50 * 60_000);
    await sink.deliver(mail('ben@contoso.com', 'm9'), sub);
    assert.notEqual(apns.got.at(-1)!.jwt, jwts[4]);
    assert.deepEqual(apns.problems, []);
  } finally {
    await sink.close?.();
    await new Promise<void>((r) => apns.server.close(() => r()));
  }
});

test('APNs settings and device tokens are checked', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  assert.throws(
    () => createApnsSink({ config: apnsSinkSchema.parse({ teamId: TEAM, keyId: KID, privateKey: rsa, topic: TOPIC }) }),
    (e: unknown) => e instanceof MbError && e.code === 'MB_NOTIFY_SINK_CONFIG_INVALID',
  );
  const sink = createApnsSink({ config: apnsSinkSchema.parse({ teamId: TEAM, keyId: KID, privateKey: keys().pem, topic: TOPIC }) });
  assert.throws(() => sink.parseParams({ deviceToken: 'not-hex' }), (e: unknown) => e instanceof MbError && e.code === 'MB_NOTIFY_SUBSCRIPTION_INVALID');
  const device = token();
  assert.equal(JSON.stringify(sink.publicParams({ deviceToken: device })).includes(device), false);
});
