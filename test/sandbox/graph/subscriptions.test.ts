/**
 * Graph change notifications on the real Dovecot (facts §4.1–4.5): create → validation handshake →
 * created/updated/deleted notifications for mail delivered over LMTP and changed over Graph, with
 * clientState on every item and the ids Graph's own routes use; every validation and limit failure
 * with status, code and text; expiry bump and cap; renew, delete, reauthorize, expiry; retries after
 * a 500 and the drop after 4 hours (fake timers); lifecycle events (reauthorizationRequired, missed,
 * subscriptionRemoved); rich notifications decrypted with the subscriber's key.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, createDecipheriv, createHmac, privateDecrypt } from 'node:crypto';
import { APP, graphError, INFO, rfc822, startRig, USER, T, type Response, type Rig } from './helpers.ts';
import { FakeTimers, startReceiver, type Receiver } from './notify-helpers.ts';
import { waitFor } from '../../support/wait.ts';

let rig: Rig;
let rx: Receiver;
const timers = new FakeTimers();
const MIN = 60_000;

before(async () => {
  rig = await startRig({ timers, notificationTimeouts: { validationMs: 1000, deliveryMs: 1000 } });
  timers.attach(rig.clock);
  rx = await startReceiver(rig.ca.issueServer());
});
after(async () => {
  await rx?.close();
  await rig?.close();
});

const now = () => Date.now() + rig.clock.offsetMs;
const inMinutes = (m: number) => new Date(now() + m * MIN).toISOString();

async function subscribe(fields: Record<string, unknown>, token?: string): Promise<Response> {
  return rig.call('POST', '/v1.0/subscriptions', {
    token: token ?? (await rig.appToken()),
    json: {
      changeType: 'created,updated,deleted',
      resource: `/users/${USER.alice.upn}/mailFolders('inbox')/messages`,
      expirationDateTime: inMinutes(60),
      clientState: 'secret-client-state',
      ...fields,
    },
  });
}

async function deliver(address: string, subject: string): Promise<void> {
  const r = await rig.dovecot.deliver({ from: 'sender@example.com', to: [address] }, rfc822({ from: 'sender@example.com', to: address, subject }));
  assert.deepEqual(r.accepted, [address]);
}

async function items(path: string, n: number, what: string): Promise<Array<Record<string, unknown>>> {
  await waitFor(() => rx.items(path).length >= n, 15_000, what);
  return rx.items(path);
}

function expectError(res: Response, status: number, code: string, message: string | RegExp): void {
  assert.equal(res.status, status, res.text);
  const e = graphError(res);
  assert.equal(e.code, code);
  if (typeof message === 'string') assert.equal(e.message, message);
  else assert.match(e.message, message);
  assert.ok(e.innerError['request-id']);
}

describe('create, validate, deliver', () => {
  test('a subscription on the Inbox notifies created, updated (read) and deleted, with the ids Graph serves', async () => {
    const res = await subscribe({ notificationUrl: `${rx.url}/t1?tenant=contoso`, lifecycleNotificationUrl: `${rx.url}/t1-life` });
    assert.equal(res.status, 201, res.text);
    const sub = res.json();
    assert.match(String(sub['@odata.context']), /\/v1\.0\/\$metadata#subscriptions\/\$entity$/);
    assert.match(String(sub.id), /^[0-9a-f-]{36}$/);
    assert.equal(sub.applicationId, APP.relay.appId);
    assert.equal(sub.changeType, 'created,updated,deleted');
    assert.equal(sub.clientState, 'secret-client-state');
    assert.equal(sub.creatorId, APP.relay.sp);
    assert.equal(sub.includeResourceData, false);
    assert.equal(sub.latestSupportedTlsVersion, 'v1_2');
    assert.match(String(sub.expirationDateTime), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$/);
    for (const k of ['encryptionCertificate', 'encryptionCertificateId', 'notificationUrlAppId', 'notificationQueryOptions', 'notificationContentType']) assert.ok(k in sub, k);

    // The handshake: both URLs, text/plain, token in the query, the URL's own query kept.
    const validations = rx.requests.filter((r) => r.query.has('validationToken') && r.path.startsWith('/t1'));
    assert.deepEqual(validations.map((v) => v.path), ['/t1', '/t1-life']);
    assert.match(validations[0]!.contentType, /^text\/plain/);
    assert.equal(validations[0]!.query.get('tenant'), 'contoso');
    assert.match(validations[0]!.query.get('validationToken') ?? '', /^Validation: Testing client application reachability/);

    await deliver(USER.alice.upn, 'notify me');
    const [created] = await items('/t1', 1, 'created notification');
    assert.equal(created?.changeType, 'created');
    assert.equal(created?.subscriptionId, sub.id);
    assert.equal(created?.clientState, 'secret-client-state');
    assert.equal(created?.tenantId, T.contoso);
    assert.equal(created?.subscriptionExpirationDateTime, sub.expirationDateTime);
    const data = created?.resourceData as Record<string, string>;
    assert.equal(data['@odata.type'], '#Microsoft.Graph.Message');
    assert.equal(created?.resource, `Users/${USER.alice.oid}/Messages/${data.id}`);
    assert.equal(data['@odata.id'], created?.resource);
    assert.match(data['@odata.etag'] ?? '', /^W\/".+"$/);
    assert.equal(rx.posts('/t1')[0]?.query.get('tenant'), 'contoso', "the URL's query is kept on deliveries");

    // The id is the one Graph's routes know.
    const token = await rig.appToken();
    const msg = await rig.call('GET', `/v1.0/users/${USER.alice.upn}/messages/${data.id}?$select=subject,isRead`, { token });
    assert.equal(msg.status, 200, msg.text);
    assert.equal(msg.json().subject, 'notify me');
    assert.equal(msg.json()['@odata.etag'], data['@odata.etag']);

    const patched = await rig.call('PATCH', `/v1.0/users/${USER.alice.upn}/messages/${data.id}`, { token, json: { isRead: true } });
    assert.equal(patched.status, 200, patched.text);
    const updated = (await items('/t1', 2, 'updated notification'))[1];
    assert.equal(updated?.changeType, 'updated');
    assert.equal((updated?.resourceData as Record<string, string>).id, data.id);
    assert.equal(updated?.clientState, 'secret-client-state');
    assert.notEqual((updated?.resourceData as Record<string, string>)['@odata.etag'], data['@odata.etag']);

    const del = await rig.call('DELETE', `/v1.0/users/${USER.alice.upn}/messages/${data.id}`, { token });
    assert.equal(del.status, 204);
    const deleted = (await items('/t1', 3, 'deleted notification'))[2];
    assert.equal(deleted?.changeType, 'deleted');
    assert.equal((deleted?.resourceData as Record<string, string>).id, data.id);
    assert.equal(deleted?.clientState, 'secret-client-state');

    assert.equal((await rig.call('DELETE', `/v1.0/subscriptions/${sub.id}`, { token })).status, 204);
  });

  test('changeType created only, on /users/{id}/messages (all folders), delegated /me, and batching', async () => {
    const token = await rig.appToken();
    const all = await subscribe({ notificationUrl: `${rx.url}/t2`, changeType: 'created', resource: `users/${USER.bob.oid}/messages` });
    assert.equal(all.status, 201, all.text);
    const me = await subscribe(
      { notificationUrl: `${rx.url}/t2`, changeType: 'created', resource: "me/mailFolders('Inbox')/messages", clientState: 'me-state' },
      await rig.userToken(USER.bob, 'Mail.ReadBasic'),
    );
    assert.equal(me.status, 201, me.text);
    assert.equal(me.json().creatorId, USER.bob.oid);

    await deliver(USER.bob.upn, 'to bob');
    const got = await items('/t2', 2, 'two subscriptions, one delivery');
    assert.deepEqual(got.map((i) => i.clientState).sort(), ['me-state', 'secret-client-state']);
    assert.equal(got[0]?.resource, got[1]?.resource);

    // A Sent Items append (Graph sendMail) shows up for the whole-mailbox subscription only.
    const sent = await rig.call('POST', `/v1.0/users/${USER.bob.upn}/sendMail`, {
      token,
      json: { message: { subject: 'out', body: { contentType: 'Text', content: 'x' }, toRecipients: [{ emailAddress: { address: 'someone@example.com' } }] } },
    });
    assert.equal(sent.status, 202, sent.text);
    await items('/t2', 3, 'sent items created');
    await rig.graph.notificationsSettled();
    assert.equal(rx.items('/t2').length, 3);

    // Marking read is not a change this subscription asked for.
    const c = await rig.imap(USER.bob.upn);
    await c.mailboxOpen('INBOX');
    await c.messageFlagsAdd('1:*', ['\\Seen']);
    await deliver(USER.bob.upn, 'second');
    await items('/t2', 5, 'second delivery to both');
    await rig.graph.notificationsSettled();
    assert.deepEqual(rx.items('/t2').map((i) => i.changeType), ['created', 'created', 'created', 'created', 'created']);
    // Notifications that arise together travel in one POST.
    assert.ok(rx.posts('/t2').some((p) => (p.json?.value.length ?? 0) === 2), 'batched');
    assert.equal((await rig.call('DELETE', `/v1.0/subscriptions/${all.json().id}`, { token })).status, 204);
    // A delegated subscription belongs to its user: the app alone cannot delete it.
    assert.equal((await rig.call('DELETE', `/v1.0/subscriptions/${me.json().id}`, { token })).status, 404);
    assert.equal((await rig.call('DELETE', `/v1.0/subscriptions/${me.json().id}`, { token: await rig.userToken(USER.bob, 'Mail.ReadBasic') })).status, 204);
  });
});

describe('validation and limits', () => {
  const VALIDATION = 'Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.';

  test('every way to fail the handshake is 400 InvalidRequest with Graph text', async () => {
    const cases: Array<[string, (token: string) => { status: number; body?: string; delayMs?: number }]> = [
      ['wrong', () => ({ status: 200, body: 'something else' })],
      ['error', (t) => ({ status: 500, body: t })],
      ['encoded', (t) => ({ status: 200, body: encodeURIComponent(t) })],
      ['late', (t) => ({ status: 200, body: t, delayMs: 3000 })],
    ];
    const before = rig.graph.subscriptions().length;
    for (const [name, answer] of cases) {
      rx.answer = (r) => (r.path === `/v-${name}` && r.query.has('validationToken') ? answer(r.query.get('validationToken') ?? '') : undefined);
      expectError(await subscribe({ notificationUrl: `${rx.url}/v-${name}` }), 400, 'InvalidRequest', VALIDATION);
    }
    // The lifecycle URL is validated too.
    rx.answer = (r) => (r.path === '/v-life' ? { status: 404 } : undefined);
    expectError(await subscribe({ notificationUrl: `${rx.url}/v-ok`, lifecycleNotificationUrl: `${rx.url}/v-life` }), 400, 'InvalidRequest', VALIDATION);
    // An endpoint nobody listens on.
    expectError(await subscribe({ notificationUrl: 'https://127.0.0.1:1/nothing' }), 400, 'InvalidRequest', VALIDATION);
    rx.answer = () => undefined;
    assert.equal(rig.graph.subscriptions().length, before, 'none was created');
  });

  test('URLs, clientState, properties, resource and permissions', async () => {
    const url = `${rx.url}/limits`;
    expectError(await subscribe({ notificationUrl: 'http://127.0.0.1/x' }), 400, 'InvalidRequest', "NotificationUrl scheme='http' is not supported.");
    expectError(await subscribe({ notificationUrl: 'https:////x' }), 400, 'InvalidRequest', "Invalid notification url='https:////x'.");
    expectError(await subscribe({ notificationUrl: url, lifecycleNotificationUrl: 'http://127.0.0.1/l' }), 400, 'InvalidRequest', "NotificationUrl scheme='http' is not supported.");
    expectError(await subscribe({ notificationUrl: url, clientState: 'x'.repeat(129) }), 400, 'InvalidRequest', 'clientState must not be longer than 128 characters.');
    assert.equal((await subscribe({ notificationUrl: url, clientState: 'x'.repeat(128) })).status, 201);
    expectError(await subscribe({ notificationUrl: url, changeType: 'created,moved' }), 400, 'InvalidRequest', /Invalid changeType 'moved'/);
    expectError(await subscribe({ notificationUrl: url, resource: undefined }), 400, 'InvalidRequest', 'resource is a required property for subscription creation.');
    expectError(await subscribe({ notificationUrl: url, expirationDateTime: undefined }), 400, 'InvalidRequest', 'expirationDateTime is a required property for subscription creation.');
    expectError(await subscribe({ notificationUrl: url, resource: `/users/${USER.alice.upn}/events` }), 400, 'InvalidRequest', /is not supported/);
    expectError(await subscribe({ notificationUrl: url, resource: `/users/${USER.alice.upn}/messages?$filter=isRead eq false` }), 400, 'InvalidRequest', /\$filter/);
    expectError(await subscribe({ notificationUrl: url, resource: '/users/nobody@contoso.test/messages' }), 404, 'ErrorInvalidUser', "The requested user 'nobody@contoso.test' is invalid.");
    expectError(await subscribe({ notificationUrl: url, resource: '/me/messages' }), 400, 'BadRequest', '/me request is only valid with delegated authentication flow.');
    expectError(await subscribe({ notificationUrl: url }, await rig.appToken(APP.none)), 403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
    // Mail.Read (the reader app) and delegated Mail.ReadBasic are enough.
    assert.equal((await subscribe({ notificationUrl: url }, await rig.appToken(APP.reader))).status, 201);
    expectError(
      await subscribe({ notificationUrl: url, resource: `/users/${USER.bob.upn}/messages` }, await rig.userToken(USER.alice, 'Mail.ReadBasic')),
      403,
      'ErrorAccessDenied',
      'Access is denied. Check credentials and try again.',
    );
  });

  test('expirationDateTime: under 45 minutes bumped, over 4230 (1440 with resource data) refused', async () => {
    const url = `${rx.url}/expiry`;
    const t0 = now();
    const bumped = await subscribe({ notificationUrl: url, expirationDateTime: inMinutes(5) });
    assert.equal(bumped.status, 201, bumped.text);
    const at = Date.parse(String(bumped.json().expirationDateTime));
    assert.ok(at >= t0 + 45 * MIN && at <= now() + 45 * MIN, `bumped to +45 min: ${bumped.json().expirationDateTime}`);
    const exact = inMinutes(4229);
    const max = await subscribe({ notificationUrl: url, expirationDateTime: exact });
    assert.equal(max.status, 201, max.text);
    assert.equal(Date.parse(String(max.json().expirationDateTime)), Date.parse(exact));
    expectError(await subscribe({ notificationUrl: url, expirationDateTime: inMinutes(4232) }), 400, 'ExtensionError', 'Subscription expiration can only be 4230 minutes in the future.');
    expectError(await subscribe({ notificationUrl: url, expirationDateTime: 'tomorrow' }), 400, 'InvalidRequest', "Invalid expirationDateTime 'tomorrow'.");
    const cert = Buffer.from(rig.ca.issueSelfSigned('notify').certPem.replace(/-----[^-]+-----|\s/g, ''), 'base64').toString('base64');
    expectError(
      await subscribe({
        notificationUrl: url,
        includeResourceData: true,
        encryptionCertificate: cert,
        encryptionCertificateId: 'k1',
        resource: `/users/${USER.alice.upn}/messages?$select=subject`,
        expirationDateTime: inMinutes(1500),
      }),
      400,
      'ExtensionError',
      'Subscription expiration can only be 1440 minutes in the future.',
    );
  });

  test('at most 1,000 subscriptions per mailbox, across apps', async () => {
    const token = await rig.appToken();
    const body = (i: number) => ({
      changeType: 'created',
      resource: `/users/${USER.dave.upn}/messages`,
      expirationDateTime: inMinutes(60),
      clientState: `c${i}`,
      notificationUrl: `${rx.url}/many`,
    });
    for (let i = 0; i < 1000; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, (_, j) => rig.call('POST', '/v1.0/subscriptions', { token, json: body(i + j) })));
      for (const r of batch) assert.equal(r.status, 201, r.text);
    }
    const other = await rig.call('POST', '/v1.0/subscriptions', { token: await rig.appToken(APP.reader), json: body(1000) });
    expectError(other, 403, 'ExtensionError', 'Operation: Create; Exception: [Status Code: Forbidden; Reason: Maximum number of subscriptions has been reached]');
    // Another mailbox is not affected; deleting one frees a place.
    assert.equal((await subscribe({ notificationUrl: `${rx.url}/many` })).status, 201);
    const mine = await rig.call('GET', '/v1.0/subscriptions', { token });
    const onDave = mine.json<{ value: Array<{ id: string; resource: string }> }>().value.filter((s) => s.resource.includes(USER.dave.upn));
    assert.equal(onDave.length, 1000);
    assert.equal((await rig.call('DELETE', `/v1.0/subscriptions/${onDave[0]!.id}`, { token })).status, 204);
    assert.equal((await rig.call('POST', '/v1.0/subscriptions', { token: await rig.appToken(APP.reader), json: body(1001) })).status, 201);
  });
});

describe('renew, delete, reauthorize, expiry', () => {
  test('PATCH renews, DELETE ends, reauthorize answers 204, other apps see 404', async () => {
    const token = await rig.appToken();
    const created = await subscribe({ notificationUrl: `${rx.url}/renew` });
    assert.equal(created.status, 201);
    const id = String(created.json().id);
    const got = await rig.call('GET', `/v1.0/subscriptions/${id}`, { token });
    assert.equal(got.status, 200);
    assert.equal(got.json().id, id);
    const list = await rig.call('GET', '/v1.0/subscriptions', { token });
    assert.match(String(list.json()['@odata.context']), /\$metadata#subscriptions$/);
    assert.ok(list.json<{ value: Array<{ id: string }> }>().value.some((s) => s.id === id));

    const later = inMinutes(3000);
    const renewed = await rig.call('PATCH', `/v1.0/subscriptions/${id}`, { token, json: { expirationDateTime: later } });
    assert.equal(renewed.status, 200, renewed.text);
    assert.equal(Date.parse(String(renewed.json().expirationDateTime)), Date.parse(later));
    expectError(await rig.call('PATCH', `/v1.0/subscriptions/${id}`, { token, json: { expirationDateTime: inMinutes(5000) } }), 400, 'ExtensionError', 'Subscription expiration can only be 4230 minutes in the future.');
    expectError(
      await rig.call('PATCH', `/v1.0/subscriptions/${id}`, { token, json: { clientState: 'x' } }),
      400,
      'InvalidRequest',
      /Updating 'clientState' is not supported/,
    );
    expectError(
      await rig.call('PATCH', `/v1.0/subscriptions/${id}`, { token, json: {} }),
      400,
      'InvalidRequest',
      "Subscription must contain either the 'expirationDateTime' or 'notificationUrl' property and its value.",
    );
    expectError(await rig.call('PATCH', `/v1.0/subscriptions/${id}`, { token, json: { lifecycleNotificationUrl: `${rx.url}/x` } }), 400, 'InvalidRequest', /cannot be updated/);
    // A new notificationUrl is validated first.
    rx.answer = (r) => (r.path === '/renew-bad' ? { status: 500 } : undefined);
    expectError(await rig.call('PATCH', `/v1.0/subscriptions/${id}`, { token, json: { notificationUrl: `${rx.url}/renew-bad` } }), 400, 'InvalidRequest', /validation request failed/);
    rx.answer = () => undefined;

    assert.equal((await rig.call('POST', `/v1.0/subscriptions/${id}/reauthorize`, { token })).status, 204);
    const foreign = await rig.appToken(APP.reader);
    expectError(await rig.call('GET', `/v1.0/subscriptions/${id}`, { token: foreign }), 404, 'ResourceNotFound', 'The object was not found.');
    expectError(await rig.call('DELETE', `/v1.0/subscriptions/${id}`, { token: foreign }), 404, 'ResourceNotFound', 'The object was not found.');
    expectError(await rig.call('POST', `/v1.0/subscriptions/${id}/reauthorize`, { token: await rig.appToken(APP.none) }), 404, 'ResourceNotFound', 'The object was not found.');

    assert.equal((await rig.call('DELETE', `/v1.0/subscriptions/${id}`, { token })).status, 204);
    expectError(await rig.call('GET', `/v1.0/subscriptions/${id}`, { token }), 404, 'ResourceNotFound', 'The object was not found.');
    expectError(await rig.call('PATCH', `/v1.0/subscriptions/${id}`, { token, json: { expirationDateTime: inMinutes(100) } }), 404, 'ResourceNotFound', 'The object was not found.');
  });

  test('a subscription past its expirationDateTime is gone and notifies no more', async () => {
    const created = await subscribe({ notificationUrl: `${rx.url}/expire`, resource: `/users/${INFO}/mailFolders/inbox/messages` });
    assert.equal(created.status, 201, created.text);
    const id = String(created.json().id);
    timers.advance(61 * MIN);
    const token = await rig.appToken();
    expectError(await rig.call('GET', `/v1.0/subscriptions/${id}`, { token }), 404, 'ResourceNotFound', 'The object was not found.');
    expectError(await rig.call('PATCH', `/v1.0/subscriptions/${id}`, { token, json: { expirationDateTime: inMinutes(100) } }), 404, 'ResourceNotFound', 'The object was not found.');
    assert.ok(!rig.graph.subscriptions().some((s) => s.id === id));
    await deliver(INFO, 'after expiry');
    // A live subscription on the same folder proves the delivery was seen; the expired one stays silent.
    const live = await subscribe({ notificationUrl: `${rx.url}/expire-live`, resource: `/users/${INFO}/mailFolders/inbox/messages` });
    assert.equal(live.status, 201);
    await deliver(INFO, 'seen by the live one');
    await items('/expire-live', 1, 'live subscription');
    await rig.graph.notificationsSettled();
    assert.equal(rx.items('/expire').length, 0);
  });
});

describe('delivery retries and lifecycle', () => {
  test('a 500 is retried with back-off until it succeeds; the same items arrive', async () => {
    let fail = true;
    rx.answer = (r) => (r.path === '/retry' && !r.query.has('validationToken') && fail ? { status: 500 } : undefined);
    const created = await subscribe({ notificationUrl: `${rx.url}/retry`, resource: `/users/${USER.alice.upn}/messages`, changeType: 'created', expirationDateTime: inMinutes(4000) });
    assert.equal(created.status, 201);
    await deliver(USER.alice.upn, 'retry me');
    await waitFor(() => rx.posts('/retry').length === 1, 15_000, 'first attempt');
    await rig.graph.notificationsSettled();
    timers.advance(10_000);
    await rig.graph.notificationsSettled();
    assert.equal(rx.posts('/retry').length, 2, 'second attempt after 10 s');
    fail = false;
    timers.advance(19_000);
    await rig.graph.notificationsSettled();
    assert.equal(rx.posts('/retry').length, 2, 'the back-off doubled: nothing before 20 s');
    timers.advance(1_000);
    await rig.graph.notificationsSettled();
    const posts = rx.posts('/retry');
    assert.equal(posts.length, 3);
    assert.deepEqual(posts[2]?.json, posts[0]?.json, 'the same notification, again');
    timers.advance(60 * MIN);
    await rig.graph.notificationsSettled();
    assert.equal(rx.posts('/retry').length, 3, 'accepted: no more tries');
    rx.answer = () => undefined;
    await rig.call('DELETE', `/v1.0/subscriptions/${created.json().id}`, { token: await rig.appToken() });
  });

  test('notifications that keep failing are dropped after 4 hours', async () => {
    rx.answer = (r) => (r.path === '/drop' && !r.query.has('validationToken') ? { status: 503 } : undefined);
    const created = await subscribe({ notificationUrl: `${rx.url}/drop`, resource: `/users/${USER.alice.upn}/messages`, changeType: 'created', expirationDateTime: inMinutes(4000) });
    assert.equal(created.status, 201);
    const dropped = rig.graph.notificationStats.dropped;
    const attemptsAt: number[] = [];
    await deliver(USER.alice.upn, 'never arrives');
    await waitFor(() => rx.posts('/drop').length === 1, 15_000, 'first attempt');
    await rig.graph.notificationsSettled();
    attemptsAt.push(now());
    const start = now();
    for (let i = 0; i < 40 && rig.graph.notificationStats.dropped === dropped; i++) {
      timers.advance(15 * MIN);
      await rig.graph.notificationsSettled();
      if (rx.posts('/drop').length > attemptsAt.length) attemptsAt.push(now());
    }
    assert.equal(rig.graph.notificationStats.dropped, dropped + 1);
    const elapsed = now() - start;
    assert.ok(elapsed >= 3.75 * 60 * MIN && elapsed <= 4.25 * 60 * MIN, `dropped after about 4 h (${elapsed / MIN} min)`);
    const attempts = rx.posts('/drop').length;
    assert.ok(attempts > 10, `retried many times (${attempts})`);
    timers.advance(60 * MIN);
    await rig.graph.notificationsSettled();
    assert.equal(rx.posts('/drop').length, attempts, 'no attempt after the drop');
    rx.answer = () => undefined;
    await rig.call('DELETE', `/v1.0/subscriptions/${created.json().id}`, { token: await rig.appToken() });
  });

  test('lifecycle: reauthorizationRequired, missed after dropped notifications, subscriptionRemoved', async () => {
    const created = await subscribe({
      notificationUrl: `${rx.url}/lc`,
      lifecycleNotificationUrl: `${rx.url}/lc-life`,
      resource: `/users/${USER.bob.upn}/mailFolders('inbox')/messages`,
      changeType: 'created',
      clientState: 'lc-state',
    });
    assert.equal(created.status, 201, created.text);
    const id = String(created.json().id);

    assert.equal(rig.graph.lifecycle(id, 'reauthorizationRequired'), true);
    const [reauth] = await items('/lc-life', 1, 'reauthorizationRequired');
    assert.deepEqual(Object.keys(reauth ?? {}).sort(), ['clientState', 'lifecycleEvent', 'subscriptionExpirationDateTime', 'subscriptionId', 'tenantId']);
    assert.equal(reauth?.lifecycleEvent, 'reauthorizationRequired');
    assert.equal(reauth?.subscriptionId, id);
    assert.equal(reauth?.clientState, 'lc-state');
    assert.equal(reauth?.tenantId, T.contoso);
    assert.equal((await rig.call('POST', `/v1.0/subscriptions/${id}/reauthorize`, { token: await rig.appToken() })).status, 204);

    rig.graph.dropNotifications(id, 2);
    await deliver(USER.bob.upn, 'lost 1');
    await deliver(USER.bob.upn, 'lost 2');
    const missed = (await items('/lc-life', 2, 'missed'))[1];
    assert.equal(missed?.lifecycleEvent, 'missed');
    assert.equal(rx.items('/lc').length, 0, 'the two notifications were dropped');
    await deliver(USER.bob.upn, 'kept');
    await items('/lc', 1, 'next notification arrives again');

    rig.graph.removeSubscription(id);
    const removed = (await items('/lc-life', 3, 'subscriptionRemoved'))[2];
    assert.equal(removed?.lifecycleEvent, 'subscriptionRemoved');
    expectError(await rig.call('GET', `/v1.0/subscriptions/${id}`, { token: await rig.appToken() }), 404, 'ResourceNotFound', 'The object was not found.');
    await deliver(USER.bob.upn, 'after removal');
    await rig.graph.notificationsSettled();
    assert.equal(rx.items('/lc').length, 1);
  });
});

describe('rich notifications', () => {
  test('includeResourceData: encryptedContent decrypts with the subscriber key to the $select-ed message', async () => {
    const pair = rig.ca.issueSelfSigned('mailbridge notifications');
    const cert = pair.certPem.replace(/-----[^-]+-----|\s/g, '');
    expectError(
      await subscribe({ notificationUrl: `${rx.url}/rich`, includeResourceData: true, encryptionCertificateId: 'k1' }),
      400,
      'InvalidRequest',
      'encryptionCertificate and encryptionCertificateId are required when includeResourceData is true.',
    );
    expectError(
      await subscribe({ notificationUrl: `${rx.url}/rich`, includeResourceData: true, encryptionCertificate: cert, encryptionCertificateId: 'k1' }),
      400,
      'InvalidRequest',
      'Rich notifications for Outlook resources require $select in the resource.',
    );
    const created = await subscribe({
      notificationUrl: `${rx.url}/rich`,
      includeResourceData: true,
      encryptionCertificate: cert,
      encryptionCertificateId: 'k1',
      changeType: 'created',
      resource: `/users/${USER.alice.upn}/mailFolders('inbox')/messages?$select=subject,from,isRead`,
    });
    assert.equal(created.status, 201, created.text);
    await deliver(USER.alice.upn, 'rich subject');
    const [item] = await items('/rich', 1, 'rich notification');
    const enc = item?.encryptedContent as Record<string, string>;
    assert.equal(enc.encryptionCertificateId, 'k1');
    assert.match(enc.encryptionCertificateThumbprint ?? '', /^[0-9A-F]{40}$/);
    const key = privateDecrypt({ key: pair.keyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, Buffer.from(enc.dataKey!, 'base64'));
    assert.equal(key.length, 32);
    const data = Buffer.from(enc.data!, 'base64');
    assert.equal(createHmac('sha256', key).update(data).digest('base64'), enc.dataSignature);
    const decipher = createDecipheriv('aes-256-cbc', key, key.subarray(0, 16));
    const plain = JSON.parse(Buffer.concat([decipher.update(data), decipher.final()]).toString('utf8')) as Record<string, unknown>;
    assert.equal(plain.subject, 'rich subject');
    assert.equal(plain.isRead, false);
    assert.equal((plain.from as { emailAddress: { address: string } }).emailAddress.address, 'sender@example.com');
    assert.equal(plain.id, (item?.resourceData as Record<string, string>).id);
    assert.equal(plain.body, undefined, 'only the $select-ed properties');
    await rig.call('DELETE', `/v1.0/subscriptions/${created.json().id}`, { token: await rig.appToken() });
  });
});
