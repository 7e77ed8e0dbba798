import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { MbError } from '../../../src/errors/index.ts';
import { scrub } from '../../../src/log/redact.ts';
import { createDispatcher } from '../../../src/notify/dispatcher.ts';
import { fcmSinkSchema } from '../../../src/notify/config.ts';
import { messageDeleted, readStateChanged } from '../../../src/notify/events.ts';
import { createFcmSink, FCM_SCOPE, JWT_BEARER_GRANT } from '../../../src/notify/sinks/fcm.ts';
import { Clock, mail, noJitter, subscription, tempStore } from '../helpers.ts';

const PROJECT = 'mailbridge-test';
const EMAIL = 'fcm-sender@mailbridge-test.iam.gserviceaccount.com';
const KID = 'a1b2c3d4e5f6';

interface Sent {
  headers: IncomingHttpHeaders;
  body: { message: Record<string, unknown> & { token: string; data: Record<string, string> } };
  bearer: string;
}

type Reply = [number, unknown?, Record<string, string>?];

const fcmErr = (code: number, status: string, errorCode?: string, message = status): unknown => ({
  error: { code, message, status, ...(errorCode ? { details: [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode }] } : {}) },
});

/**
 * A stand-in for Google's token endpoint and FCM's messages:send on one node:http server. The token
 * endpoint verifies the JWT bearer assertion with the service account's public key and its claims;
 * messages:send checks the bearer token it issued and the message's JSON shape, then answers with
 * the next scripted reply (200 when none is left).
 */
async function googleStandIn(publicKey: KeyObject, now: () => number) {
  const issued = new Set<string>();
  const sent: Sent[] = [];
  const assertions: Array<Record<string, unknown>> = [];
  const problems: string[] = [];
  const tokenScript: Reply[] = [];
  const sendScript: Reply[] = [];
  let n = 0;
  let tokenUri = '';
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const answer = (status: number, body: unknown, headers: Record<string, string> = {}) =>
          res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers }).end(JSON.stringify(body));
        if (req.method === 'POST' && req.url === '/token') {
          if (!String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')) problems.push(`token content-type ${req.headers['content-type']}`);
          const form = new URLSearchParams(text);
          if (form.get('grant_type') !== JWT_BEARER_GRANT) {
            problems.push(`grant_type ${form.get('grant_type')}`);
            return answer(400, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type' });
          }
          const scripted = tokenScript.shift();
          if (scripted) return answer(scripted[0], scripted[1], scripted[2]);
          try {
            const jwt = form.get('assertion') ?? '';
            const header = decodeProtectedHeader(jwt);
            if (header.alg !== 'RS256' || header.typ !== 'JWT' || header.kid !== KID) throw new Error(`header ${JSON.stringify(header)}`);
            const { payload } = await jwtVerify(jwt, publicKey, { algorithms: ['RS256'], issuer: EMAIL, audience: tokenUri, currentDate: new Date(now()) });
            if (payload.scope !== FCM_SCOPE) throw new Error(`scope ${String(payload.scope)}`);
            if (typeof payload.iat !== 'number' || typeof payload.exp !== 'number') throw new Error('iat and exp required');
            if (payload.exp - payload.iat > 3600) throw new Error('exp more than an hour after iat');
            if (Math.abs(payload.iat - now() / 1000) > 300) throw new Error('iat not now');
            assertions.push(payload);
          } catch (err) {
            return answer(400, { error: 'invalid_grant', error_description: `Invalid JWT: ${(err as Error).message}` });
          }
          const token = `ya29.standin-${++n}-${randomBytes(24).toString('base64url')}`;
          issued.add(token);
          return answer(200, { access_token: token, expires_in: 3599, token_type: 'Bearer' });
        }
        if (req.method === 'POST' && req.url === `/v1/projects/${PROJECT}/messages:send`) {
          const bearer = /^Bearer (.+)$/.exec(String(req.headers.authorization))?.[1] ?? '';
          if (!issued.has(bearer)) return answer(401, fcmErr(401, 'UNAUTHENTICATED', undefined, 'Request had invalid authentication credentials.'), { 'www-authenticate': 'Bearer realm="https://accounts.google.com/"' });
          if (!String(req.headers['content-type']).startsWith('application/json')) problems.push(`send content-type ${req.headers['content-type']}`);
          const body = JSON.parse(text) as Sent['body'];
          const bad = shapeProblems(body);
          if (bad.length > 0) {
            problems.push(...bad);
            return answer(400, fcmErr(400, 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', bad.join('; ')));
          }
          sent.push({ headers: req.headers, body, bearer });
          const [status, reply, headers] = sendScript.shift() ?? [200, { name: `projects/${PROJECT}/messages/${sent.length}` }];
          return answer(status, reply, headers);
        }
        problems.push(`unexpected ${req.method} ${req.url}`);
        answer(404, fcmErr(404, 'NOT_FOUND'));
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  tokenUri = `${url}/token`;
  return { url, tokenUri, sent, assertions, problems, tokenScript, sendScript, issued, server };
}

/** What FCM's v1 API accepts for the fields mailbridge uses (https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages). */
function shapeProblems(body: Sent['body']): string[] {
  const out: string[] = [];
  const isStrMap = (v: unknown) => !!v && typeof v === 'object' && Object.values(v).every((x) => typeof x === 'string');
  if (Object.keys(body).join() !== 'message') out.push(`top-level keys ${Object.keys(body).join()}`);
  const m = body.message ?? {};
  for (const k of Object.keys(m)) if (!['token', 'data', 'notification', 'android', 'apns'].includes(k)) out.push(`message.${k}`);
  if (typeof m.token !== 'string' || m.token.length < 32) out.push('message.token');
  if (!isStrMap(m.data)) out.push('message.data must map strings to strings');
  if (m.notification !== undefined) {
    const n = m.notification as Record<string, unknown>;
    if (!isStrMap(n) || Object.keys(n).some((k) => !['title', 'body', 'image'].includes(k))) out.push('message.notification');
  }
  const android = m.android as Record<string, unknown> | undefined;
  if (android) {
    if (android.priority !== undefined && !['NORMAL', 'HIGH'].includes(String(android.priority))) out.push(`android.priority ${String(android.priority)}`);
    if (android.collapse_key !== undefined && typeof android.collapse_key !== 'string') out.push('android.collapse_key');
  }
  const apns = m.apns as { headers?: unknown; payload?: { aps?: unknown } } | undefined;
  if (apns) {
    if (!isStrMap(apns.headers)) out.push('apns.headers must map strings to strings');
    if (!apns.payload?.aps) out.push('apns.payload.aps');
  }
  return out;
}

function serviceAccount(tokenUri: string) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const json = JSON.stringify({
    type: 'service_account',
    project_id: PROJECT,
    private_key_id: KID,
    private_key: pem,
    client_email: EMAIL,
    client_id: '109876543210987654321',
    token_uri: tokenUri,
  });
  return { json, pem, publicKey };
}

const regToken = () => `${randomBytes(8).toString('base64url')}:APA91b${randomBytes(100).toString('base64url')}`;

async function rig(now: () => number) {
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const google = await googleStandIn(keys.publicKey, now);
  const pem = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const json = JSON.stringify({ type: 'service_account', project_id: PROJECT, private_key_id: KID, private_key: pem, client_email: EMAIL, token_uri: google.tokenUri });
  const sink = createFcmSink({ config: fcmSinkSchema.parse({ serviceAccount: json, url: google.url }), now });
  return { google, sink, pem, json, close: () => new Promise<void>((r) => google.server.close(() => r())) };
}

test('FCM: one access token from a verified service-account JWT, then v1 messages for new mail, badge counts and deletions', async () => {
  const t = await tempStore();
  const r = await rig(Date.now);
  try {
    const device = regToken();
    const sub = subscription('fcm', ['ben@contoso.com'], r.sink.parseParams({ registrationToken: device }));
    const quiet = subscription('fcm', ['ben@contoso.com'], r.sink.parseParams({ registrationToken: regToken() }), { privacy: 'minimal', events: ['message.new'] });
    await t.store.notify.createSubscription(sub);
    await t.store.notify.createSubscription(quiet);
    const d = createDispatcher({ repo: t.store.notify, sinks: [r.sink], retry: noJitter });
    const e1 = mail('ben@contoso.com', 'm1', 'Lieferschein 42');
    await d.publish(e1);
    await d.publish(readStateChanged({ type: 'message.read-state', mailbox: 'ben@contoso.com', messageId: 'm1', folder: 'Inbox', read: true, unreadCount: 4, changeKey: 'c1' }));
    await d.publish(messageDeleted({ type: 'message.deleted', mailbox: 'ben@contoso.com', messageId: 'm1', folder: 'Inbox', unreadCount: 3 }));
    assert.deepEqual(await d.runOnce(), { delivered: 4, retried: 0, gone: 0, expired: 0 });
    assert.deepEqual(r.google.problems, []);
    assert.equal(r.google.assertions.length, 1, 'one token exchange for all four messages');
    assert.equal(new Set(r.google.sent.map((s) => s.bearer)).size, 1);

    const mine = r.google.sent.filter((s) => s.body.message.token === device).map((s) => s.body.message);
    assert.equal(mine.length, 3);
    const [alert, badge, deleted] = mine as [Sent['body']['message'], Sent['body']['message'], Sent['body']['message']];
    assert.deepEqual(alert.notification, { title: 'Anna Schmidt', body: 'Lieferschein 42' });
    assert.deepEqual(alert.data, {
      eventId: e1.id,
      type: 'message.new',
      mailbox: 'ben@contoso.com',
      seq: '1',
      messageId: 'm1',
      folder: 'Inbox',
      observedAt: e1.observedAt,
      receivedAt: e1.receivedAt,
      senderAddress: 'anna@fabrikam.com',
      senderName: 'Anna Schmidt',
      subject: 'Lieferschein 42',
    });
    assert.deepEqual(alert.android, { priority: 'HIGH' });
    assert.equal(badge.notification, undefined);
    assert.equal(badge.data.unreadCount, '4');
    assert.equal(badge.data.read, 'true');
    assert.equal((badge.android as { priority: string }).priority, 'NORMAL');
    assert.equal((badge.android as { collapse_key: string }).collapse_key, (badge.apns as { headers: Record<string, string> }).headers['apns-collapse-id']);
    assert.deepEqual((badge.apns as { payload: unknown }).payload, { aps: { badge: 4 } });
    assert.equal(deleted.data.type, 'message.deleted');
    assert.equal(deleted.data.unreadCount, '3');
    assert.deepEqual((deleted.apns as { headers: unknown }).headers, { 'apns-priority': '5', 'apns-push-type': 'background' });

    // privacy minimal: neither sender nor subject travels, not even in data.
    const minimal = r.google.sent.find((s) => s.body.message.token !== device)!.body.message;
    assert.deepEqual(minimal.notification, { title: 'ben@contoso.com' });
    assert.equal(JSON.stringify(minimal).includes('Lieferschein'), false);
    assert.equal(JSON.stringify(minimal).includes('anna@fabrikam.com'), false);
  } finally {
    await r.close();
    await t.cleanup();
  }
});

test('FCM answers: UNREGISTERED → gone; INVALID_ARGUMENT, 429 and 503 → retry with Retry-After; 401 → a new token and one retry', async () => {
  const clock = new Clock(Date.now());
  const r = await rig(clock.now);
  try {
    const sub = subscription('fcm', ['ben@contoso.com'], { registrationToken: regToken() });
    r.google.sendScript.push(
      [404, fcmErr(404, 'NOT_FOUND', 'UNREGISTERED', 'Requested entity was not found.')],
      [400, fcmErr(400, 'INVALID_ARGUMENT', 'UNREGISTERED')],
      [400, fcmErr(400, 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'The registration token is not a valid FCM registration token')],
      [429, fcmErr(429, 'RESOURCE_EXHAUSTED', 'QUOTA_EXCEEDED'), { 'retry-after': '60' }],
      [503, fcmErr(503, 'UNAVAILABLE', 'UNAVAILABLE'), { 'retry-after': '7' }],
    );
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await r.sink.deliver(mail('ben@contoso.com', `m${i}`), sub));
    assert.deepEqual(results.map((x) => (x.kind === 'ok' ? 'ok' : `${x.kind}:${x.error.code}:${x.error.params.status}:${x.error.params.reason}`)), [
      'gone:MB_NOTIFY_GONE:404:UNREGISTERED NOT_FOUND',
      'gone:MB_NOTIFY_GONE:400:UNREGISTERED INVALID_ARGUMENT',
      'retry:MB_NOTIFY_REJECTED:400:INVALID_ARGUMENT INVALID_ARGUMENT',
      'retry:MB_NOTIFY_REJECTED:429:QUOTA_EXCEEDED RESOURCE_EXHAUSTED',
      'retry:MB_NOTIFY_REJECTED:503:UNAVAILABLE UNAVAILABLE',
    ]);
    assert.equal(results[3]!.kind === 'retry' && results[3]!.afterMs, 60_000);
    assert.equal(results[4]!.kind === 'retry' && results[4]!.afterMs, 7_000);
    assert.equal(r.google.assertions.length, 1);

    // Google revokes the access token: the 401 leads to a new exchange and the same message again.
    const first = [...r.google.issued][0]!;
    r.google.issued.delete(first);
    const before = r.google.sent.length;
    assert.deepEqual(await r.sink.deliver(mail('ben@contoso.com', 'm9'), sub), { kind: 'ok' });
    assert.equal(r.google.assertions.length, 2);
    assert.equal(r.google.sent.length, before + 1);
    assert.notEqual(r.google.sent.at(-1)!.bearer, first);

    // The token is reused until five minutes before its hour is up, then renewed unasked.
    clock.advance(54 * 60_000);
    await r.sink.deliver(mail('ben@contoso.com', 'm10'), sub);
    assert.equal(r.google.assertions.length, 2);
    clock.advance(2 * 60_000);
    await r.sink.deliver(mail('ben@contoso.com', 'm11'), sub);
    assert.equal(r.google.assertions.length, 3);
    assert.deepEqual(r.google.problems, []);
  } finally {
    await r.close();
  }
});

test('FCM token endpoint failures are MB_NOTIFY_TOKEN_FAILED and retried; a wrong key is refused by the verifying stand-in', async () => {
  const r = await rig(Date.now);
  try {
    const sub = subscription('fcm', ['ben@contoso.com'], { registrationToken: regToken() });
    r.google.tokenScript.push([400, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' }], [503, 'backend error']);
    const a = await r.sink.deliver(mail('ben@contoso.com', 'm1'), sub);
    assert.ok(a.kind === 'retry' && a.error.code === 'MB_NOTIFY_TOKEN_FAILED', JSON.stringify(a));
    assert.match(a.error.message, /400 invalid_grant: Invalid JWT Signature\./);
    const b = await r.sink.deliver(mail('ben@contoso.com', 'm1'), sub);
    assert.ok(b.kind === 'retry' && b.error.code === 'MB_NOTIFY_TOKEN_FAILED' && /503/.test(b.error.message));
    assert.equal(r.google.sent.length, 0);
    // The endpoint answers again: delivery resumes.
    assert.deepEqual(await r.sink.deliver(mail('ben@contoso.com', 'm1'), sub), { kind: 'ok' });

    // A service account whose key Google does not know: the stand-in's signature check refuses it.
    const other = serviceAccount(r.google.tokenUri);
    const wrong = createFcmSink({ config: fcmSinkSchema.parse({ serviceAccount: other.json, url: r.google.url }) });
    const c = await wrong.deliver(mail('ben@contoso.com', 'm2'), sub);
    assert.ok(c.kind === 'retry' && c.error.code === 'MB_NOTIFY_TOKEN_FAILED' && /invalid_grant: Invalid JWT: signature verification failed/.test(c.error.message), JSON.stringify(c));
    // An unreachable token endpoint.
    const gone = createFcmSink({ config: fcmSinkSchema.parse({ serviceAccount: serviceAccount('http://127.0.0.1:1/token').json, url: r.google.url }) });
    const d = await gone.deliver(mail('ben@contoso.com', 'm3'), sub);
    assert.ok(d.kind === 'retry' && d.error.code === 'MB_NOTIFY_TOKEN_FAILED');
    assert.equal(r.google.sent.length, 1);
    // prepare() fetches a token on its own (notify test reports it as a step).
    await r.sink.prepare!();
    await assert.rejects(wrong.prepare!(), (e: unknown) => e instanceof MbError && e.code === 'MB_NOTIFY_TOKEN_FAILED');
  } finally {
    await r.close();
  }
});

test('FCM settings and registration tokens are checked; the key and access tokens never leak', async () => {
  const r = await rig(Date.now);
  try {
    // Key, key file and access token are registered with the scrubber.
    const keyBody = r.pem.split('\n')[1]!;
    assert.equal(scrub(`key ${r.json}`).includes(keyBody), false);
    assert.equal(scrub(`key ${r.pem}`).includes(keyBody), false);
    await r.sink.prepare!();
    const access = [...r.google.issued][0]!;
    assert.equal(scrub(`token ${access}`).includes(access), false);

    const invalid = (serviceAccountJson: string, detail: RegExp, extra: Record<string, unknown> = {}) =>
      assert.throws(
        () => createFcmSink({ config: fcmSinkSchema.parse({ serviceAccount: serviceAccountJson, ...extra }) }),
        (e: unknown) => e instanceof MbError && e.code === 'MB_NOTIFY_SINK_CONFIG_INVALID' && detail.test(String(e.params.detail)),
      );
    invalid('{not json', /not JSON/);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    invalid(JSON.stringify({ type: 'service_account', project_id: PROJECT, private_key: ec, client_email: EMAIL }), /not an RSA key/);
    invalid(JSON.stringify({ type: 'service_account', project_id: PROJECT, private_key: 'garbage', client_email: EMAIL }), /cannot be read/);
    invalid(JSON.stringify({ type: 'service_account', project_id: PROJECT, private_key: r.pem }), /client_email/);
    invalid(JSON.stringify({ type: 'authorized_user', client_email: EMAIL, private_key: r.pem }), /service_account/);
    invalid(JSON.stringify({ type: 'service_account', private_key: r.pem, client_email: EMAIL }), /projectId/);
    // projectId in the config wins over the key file's.
    const own = createFcmSink({ config: fcmSinkSchema.parse({ serviceAccount: r.json, url: r.google.url, projectId: 'other-project' }) });
    const res = await own.deliver(mail('ben@contoso.com', 'm1'), subscription('fcm', ['ben@contoso.com'], { registrationToken: regToken() }));
    assert.ok(res.kind === 'retry' && res.error.params.status === 404);
    r.google.problems.length = 0;

    assert.throws(() => r.sink.parseParams({ registrationToken: 'short' }), (e: unknown) => e instanceof MbError && e.code === 'MB_NOTIFY_SUBSCRIPTION_INVALID' && /^sink\.registrationToken/.test(String(e.params.detail)));
    assert.throws(() => r.sink.parseParams({ registrationToken: regToken(), extra: 1 }), (e: unknown) => e instanceof MbError && e.code === 'MB_NOTIFY_SUBSCRIPTION_INVALID');
    const device = regToken();
    assert.deepEqual(r.sink.parseParams({ registrationToken: device }), { registrationToken: device });
    assert.equal(JSON.stringify(r.sink.publicParams({ registrationToken: device })).includes(device), false);
  } finally {
    await r.close();
  }
});
