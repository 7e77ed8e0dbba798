import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDecipheriv, createECDH, createHmac, randomBytes, type ECDH } from 'node:crypto';
import { decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { MbError } from '../../../src/errors/index.ts';
import { scrub } from '../../../src/log/redact.ts';
import { createDispatcher } from '../../../src/notify/dispatcher.ts';
import { webPushSinkSchema } from '../../../src/notify/config.ts';
import { readStateChanged } from '../../../src/notify/events.ts';
import { createWebPushSink, encryptPushMessage } from '../../../src/notify/sinks/webpush.ts';
import { mail, noJitter, subscription, tempStore } from '../helpers.ts';
import { loopbackEgress } from '../../support/egress.ts';

/** The receivers below listen on loopback, which the egress policy allows only when listed. */
const egress = loopbackEgress();

// RFC 8291 Appendix A, "Encryption Example" (the keys are published test data).
const RFC = {
  plaintext: 'When I grow up, I want to be a watermelon',
  asPrivate: 'yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw',
  asPublic: 'BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8',
  uaPrivate: 'q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94',
  uaPublic: 'BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4',
  salt: 'DGv6ra1nlYgDCS1FRnbzlw',
  auth: 'BTBZMqHH6r4Tts7J_aSIgg',
  body:
    'DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml' +
    'mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT' +
    'pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN',
};

/** The user agent's side, written from RFC 8291 section 3.4 and RFC 8188 section 2 with plain HMAC (not HKDF). */
function decrypt(body: Buffer, ua: ECDH, auth: Buffer): Buffer {
  const hmac = (key: Buffer, data: Buffer) => createHmac('sha256', key).update(data).digest();
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20]!;
  const asPublic = body.subarray(21, 21 + idlen);
  const record = body.subarray(21 + idlen);
  assert.ok(record.length <= rs, 'one record');
  const shared = ua.computeSecret(asPublic);
  const prkKey = hmac(auth, shared);
  const ikm = hmac(prkKey, Buffer.concat([Buffer.from('WebPush: info\0'), ua.getPublicKey(), asPublic, Buffer.from([1])]));
  const prk = hmac(salt, ikm);
  const cek = hmac(prk, Buffer.from('Content-Encoding: aes128gcm\0\x01')).subarray(0, 16);
  const nonce = hmac(prk, Buffer.from('Content-Encoding: nonce\0\x01')).subarray(0, 12);
  const d = createDecipheriv('aes-128-gcm', cek, nonce);
  d.setAuthTag(record.subarray(record.length - 16));
  const padded = Buffer.concat([d.update(record.subarray(0, record.length - 16)), d.final()]);
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  assert.equal(padded[end], 2, 'last-record delimiter');
  return padded.subarray(0, end);
}

test('encryption reproduces the RFC 8291 Appendix A test vector byte for byte', () => {
  const out = encryptPushMessage(
    Buffer.from(RFC.plaintext),
    { p256dh: RFC.uaPublic, auth: RFC.auth },
    { salt: Buffer.from(RFC.salt, 'base64url'), asPrivateKey: Buffer.from(RFC.asPrivate, 'base64url') },
  );
  assert.equal(out.toString('base64url'), RFC.body);
  // And the independent decryption above reads the RFC's body back.
  const ua = createECDH('prime256v1');
  ua.setPrivateKey(Buffer.from(RFC.uaPrivate, 'base64url'));
  assert.equal(ua.getPublicKey().toString('base64url'), RFC.uaPublic);
  assert.equal(decrypt(Buffer.from(RFC.body, 'base64url'), ua, Buffer.from(RFC.auth, 'base64url')).toString(), RFC.plaintext);
  // Random salt and key by default: two encryptions differ.
  const keys = { p256dh: RFC.uaPublic, auth: RFC.auth };
  assert.notEqual(encryptPushMessage(Buffer.from('x'), keys).toString('hex'), encryptPushMessage(Buffer.from('x'), keys).toString('hex'));
});

interface Pushed {
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A push service stand-in (RFC 8030): checks the request and answers 201, or the scripted status. */
async function pushService(): Promise<{ origin: string; got: Pushed[]; script: number[]; problems: string[]; server: Server }> {
  const got: Pushed[] = [];
  const script: number[] = [];
  const problems: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const h = req.headers;
      if (req.method !== 'POST') problems.push(`method ${req.method}`);
      if (h['content-encoding'] !== 'aes128gcm') problems.push(`content-encoding ${h['content-encoding']}`);
      if (!/^\d+$/.test(String(h.ttl))) problems.push(`ttl ${h.ttl}`);
      if (!/^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=[\w-]+$/.test(String(h.authorization))) problems.push(`authorization ${h.authorization}`);
      got.push({ path: req.url ?? '', headers: h, body: Buffer.concat(chunks) });
      res.writeHead(script.shift() ?? 201).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, got, script, problems, server };
}

function vapidKeys() {
  const k = createECDH('prime256v1');
  k.generateKeys();
  // getPrivateKey drops leading zero bytes (1 key in 256 came out 31 bytes and failed the test);
  // VAPID keys are the full 32 bytes.
  const d = k.getPrivateKey();
  return { publicKey: k.getPublicKey().toString('base64url'), privateKey: Buffer.concat([Buffer.alloc(32 - d.length), d]).toString('base64url') };
}

function browser() {
  const ua = createECDH('prime256v1');
  ua.generateKeys();
  const auth = randomBytes(16);
  return { ua, auth, keys: { p256dh: ua.getPublicKey().toString('base64url'), auth: auth.toString('base64url') } };
}

test('delivery to a push service stand-in: headers, VAPID JWT and the decrypted event', async () => {
  const t = await tempStore();
  const ps = await pushService();
  try {
    const vapid = vapidKeys();
    const config = webPushSinkSchema.parse({ vapid: { subject: 'mailto:it@contoso.com', ...vapid }, requireHttps: false, ttlSeconds: 3600 });
    const sink = await createWebPushSink({ config, egress });
    assert.equal(scrub(`key ${vapid.privateKey}`).includes(vapid.privateKey), false);
    const b = browser();
    const sub = subscription('webpush', ['ben@contoso.com'], sink.parseParams({ endpoint: `${ps.origin}/push/abc123`, expirationTime: null, keys: b.keys }));
    await t.store.notify.createSubscription(sub);
    const d = createDispatcher({ repo: t.store.notify, sinks: [sink], retry: noJitter });
    const e1 = mail('ben@contoso.com', 'm1', 'Angebot Nr. 4711');
    const e2 = readStateChanged({ type: 'message.read-state', mailbox: 'ben@contoso.com', messageId: 'm1', folder: 'Inbox', read: true, unreadCount: 0, changeKey: 'c2' });
    await d.publish(e1);
    await d.publish(e2);
    assert.deepEqual(await d.runOnce(), { delivered: 2, retried: 0, gone: 0, expired: 0 });

    assert.deepEqual(ps.problems, []);
    assert.equal(ps.got.length, 2);
    const [first, second] = ps.got as [Pushed, Pushed];
    assert.equal(first.path, '/push/abc123');
    assert.equal(first.headers.ttl, '3600');
    assert.equal(first.headers.urgency, 'normal');
    assert.equal(first.headers.topic, undefined);
    assert.match(String(second.headers.topic), /^[A-Za-z0-9_-]{1,32}$/);

    const events = ps.got.map((g) => JSON.parse(decrypt(g.body, b.ua, b.auth).toString()) as { id: string; seq: number; subject?: string; unreadCount?: number });
    assert.deepEqual(events.map((e) => [e.id, e.seq]), [[e1.id, 1], [e2.id, 2]]);
    assert.equal(events[0]!.subject, 'Angebot Nr. 4711');
    assert.equal(events[1]!.unreadCount, 0);

    // VAPID: verifies with the key in k=, audience is the push service's origin, expiry within 24 h.
    const m = /^vapid t=([^,]+), k=(.+)$/.exec(String(first.headers.authorization))!;
    assert.equal(m[2], vapid.publicKey);
    assert.equal(decodeProtectedHeader(m[1]!).alg, 'ES256');
    const pub = Buffer.from(m[2]!, 'base64url');
    const key = await importJWK({ kty: 'EC', crv: 'P-256', x: pub.subarray(1, 33).toString('base64url'), y: pub.subarray(33).toString('base64url') }, 'ES256');
    const { payload } = await jwtVerify(m[1]!, key, { audience: ps.origin });
    assert.equal(payload.sub, 'mailto:it@contoso.com');
    assert.ok(payload.exp! - Date.now() / 1000 <= 24 * 3600 && payload.exp! > Date.now() / 1000);
    // A JWT signed with another key is refused by the same check.
    const other = vapidKeys();
    const otherPub = Buffer.from(other.publicKey, 'base64url');
    const otherKey = await importJWK({ kty: 'EC', crv: 'P-256', x: otherPub.subarray(1, 33).toString('base64url'), y: otherPub.subarray(33).toString('base64url') }, 'ES256');
    await assert.rejects(jwtVerify(m[1]!, otherKey));
  } finally {
    ps.server.closeAllConnections();
    await new Promise<void>((r) => ps.server.close(() => r()));
    await t.cleanup();
  }
});

test('push service answers: 410 and 404 retire the subscription, 429 and 5xx are retried', async () => {
  const ps = await pushService();
  try {
    const config = webPushSinkSchema.parse({ vapid: { subject: 'https://contoso.com', ...vapidKeys() }, requireHttps: false });
    const sink = await createWebPushSink({ config, egress });
    const sub = subscription('webpush', ['ben@contoso.com'], { endpoint: `${ps.origin}/p/1`, keys: browser().keys });
    const answers: string[] = [];
    ps.script.push(410, 404, 429, 503, 413);
    for (let i = 0; i < 5; i++) {
      const r = await sink.deliver(mail('ben@contoso.com', `m${i}`), sub);
      answers.push(`${r.kind}${r.kind === 'ok' ? '' : `:${r.error.code}`}`);
    }
    assert.deepEqual(answers, ['gone:MB_NOTIFY_GONE', 'gone:MB_NOTIFY_GONE', 'retry:MB_NOTIFY_REJECTED', 'retry:MB_NOTIFY_REJECTED', 'retry:MB_NOTIFY_REJECTED']);
  } finally {
    ps.server.closeAllConnections();
    await new Promise<void>((r) => ps.server.close(() => r()));
  }
});

test('bad VAPID keys and bad subscription keys are refused with MB codes', async () => {
  const a = vapidKeys();
  const b = vapidKeys();
  await assert.rejects(
    createWebPushSink({ config: webPushSinkSchema.parse({ vapid: { subject: 'mailto:x@contoso.com', publicKey: a.publicKey, privateKey: b.privateKey } }) }),
    (e: unknown) => e instanceof MbError && e.code === 'MB_NOTIFY_SINK_CONFIG_INVALID',
  );
  const sink = await createWebPushSink({ config: webPushSinkSchema.parse({ vapid: { subject: 'mailto:x@contoso.com', ...a } }) });
  const keys = browser().keys;
  const bad = (input: unknown, field: RegExp) =>
    assert.throws(() => sink.parseParams(input), (e: unknown) => e instanceof MbError && e.code === 'MB_NOTIFY_SUBSCRIPTION_INVALID' && field.test(String(e.params.detail)));
  bad({ endpoint: 'http://push.example.net/x', keys }, /^sink\.endpoint/);
  bad({ endpoint: 'https://push.example.net/x', keys: { ...keys, auth: 'AAAA' } }, /^sink\.keys\.auth: .*16 bytes/);
  bad({ endpoint: 'https://push.example.net/x', keys: { p256dh: keys.auth, auth: keys.auth } }, /^sink\.keys\.p256dh/);
  const ok = sink.parseParams({ endpoint: 'https://push.example.net/x', keys });
  assert.deepEqual(Object.keys(sink.publicParams(ok)), ['endpoint', 'keys']);
  assert.equal(JSON.stringify(sink.publicParams(ok)).includes(keys.auth), false);
});
