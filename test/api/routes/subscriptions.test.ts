import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Fastify, { type InjectOptions } from 'fastify';
import { registerAdminApi } from '../../../src/api/index.ts';
import { configSchema } from '../../../src/app/schema.ts';
import { catalogue } from '../../../src/errors/index.ts';
import { langFromHeader } from '../../../src/i18n/index.ts';
import { apnsSinkSchema, webhookSinkSchema } from '../../../src/notify/config.ts';
import { createApnsSink } from '../../../src/notify/sinks/apns.ts';
import { createWebhookSink } from '../../../src/notify/sinks/webhook.ts';
import type { Sink } from '../../../src/notify/sinks/types.ts';
import { tempStore } from '../../notify/helpers.ts';

const KEY = randomBytes(24).toString('base64url');
const OTHER_KEY = randomBytes(24).toString('base64url');

async function api(extra: { watched?: ReadonlySet<string> } = {}) {
  const t = await tempStore();
  const apnsKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const sinks = new Map<string, Sink>([
    ['webhook', createWebhookSink({ config: webhookSinkSchema.parse({}) })],
    ['apns', createApnsSink({ config: apnsSinkSchema.parse({ teamId: 'TEAM123456', keyId: 'KEY1234567', privateKey: apnsKey, topic: 'com.contoso.mail' }) })],
  ]);
  const http = Fastify();
  await registerAdminApi(http, {
    config: configSchema.parse({}),
    store: t.store,
    subscriptions: { repo: t.store.notify, sinks, ...extra },
    keys: [
      { name: 'notify.mdm', key: KEY, scopes: ['subscriptions'] },
      { name: 'notify.erp', key: OTHER_KEY, scopes: ['subscriptions'] },
    ],
  });
  await http.ready();
  const bodies: string[] = [];
  const call = async (o: InjectOptions & { key?: string | null; lang?: string }) => {
    const { key = KEY, lang, ...rest } = o;
    const headers: Record<string, string> = { ...(rest.headers as Record<string, string> | undefined) };
    if (key !== null) headers.authorization = `Bearer ${key}`;
    if (lang) headers['accept-language'] = lang;
    const res = await http.inject({ ...rest, headers });
    bodies.push(res.body);
    return { status: res.statusCode, headers: res.headers, json: res.body ? (JSON.parse(res.body) as ApiJson) : undefined };
  };
  return {
    t,
    call,
    bodies,
    async close() {
      await http.close();
      for (const s of sinks.values()) await s.close?.();
      await t.cleanup();
    },
  };
}

/** The fields the tests read from answers (a subscription, a list, or an error). */
interface ApiJson {
  [k: string]: unknown;
  id: string;
  events: string[];
  privacy: string;
  sink: Record<string, string>;
  subscriptions: Array<{ id: string }>;
  error: { code: string; title: string; cause: string; fix: string };
}

const secret = () => `whsec_${randomBytes(32).toString('base64')}`;

test('Accept-Language picks German or English by q-value', () => {
  assert.equal(langFromHeader('de-DE,de;q=0.9,en;q=0.8'), 'de');
  assert.equal(langFromHeader('en-US,de;q=0.5'), 'en');
  assert.equal(langFromHeader('fr-FR, de;q=0.3'), 'de');
  assert.equal(langFromHeader('fr-FR'), 'en');
  assert.equal(langFromHeader(undefined), 'en');
  assert.equal(langFromHeader('de;q=0, en;q=0.1'), 'en');
});

test('every subscriptions call needs a configured API key: 401 with an MB code otherwise, in the caller\'s language', async () => {
  const a = await api();
  try {
    for (const [method, url] of [['GET', '/api/v1/subscriptions'], ['POST', '/api/v1/subscriptions'], ['GET', '/api/v1/subscriptions/sub_x'], ['DELETE', '/api/v1/subscriptions/sub_x']] as const) {
      for (const key of [null, 'wrong-key-0123456789', `${KEY}x`]) {
        const r = await a.call({ method, url, key, payload: method === 'POST' ? {} : undefined });
        assert.equal(r.status, 401, `${method} ${url} with ${key}`);
        assert.equal(r.json!.error.code, 'MB_API_UNAUTHORIZED');
        assert.equal(r.headers['www-authenticate'], 'Bearer realm="mailbridge"');
      }
    }
    const basic = await a.call({ method: 'GET', url: '/api/v1/subscriptions', key: null, headers: { authorization: `Basic ${Buffer.from(`x:${KEY}`).toString('base64')}` } });
    assert.equal(basic.status, 401);
    const de = await a.call({ method: 'GET', url: '/api/v1/subscriptions?x=1', key: null, lang: 'de-DE,de;q=0.9' });
    assert.deepEqual(de.json, {
      error: {
        code: 'MB_API_UNAUTHORIZED',
        title: catalogue.MB_API_UNAUTHORIZED.title.de,
        cause: catalogue.MB_API_UNAUTHORIZED.cause.de.replace('{path}', '/api/v1/subscriptions'),
        fix: catalogue.MB_API_UNAUTHORIZED.fix.de,
      },
    });
    assert.equal(de.headers['content-language'], 'de');
    // Both named keys work.
    assert.equal((await a.call({ method: 'GET', url: '/api/v1/subscriptions', key: OTHER_KEY })).status, 200);
    assert.equal((await a.call({ method: 'GET', url: '/api/v1/subscriptions' })).status, 200);
  } finally {
    await a.close();
  }
});

test('create, list, show and delete subscriptions; answers never carry the webhook secret or a full device token', async () => {
  const a = await api();
  try {
    const s = secret();
    const created = await a.call({
      method: 'POST',
      url: '/api/v1/subscriptions',
      payload: { mailboxes: ['Ben@Contoso.com', 'cara@contoso.com', 'ben@contoso.com'], events: ['message.new'], privacy: 'minimal', label: 'ERP', sink: { kind: 'webhook', url: 'https://erp.contoso.com/hooks/mail', secret: s } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const sub = created.json!;
    assert.match(sub.id, /^sub_[A-Za-z0-9_-]{22}$/);
    assert.equal(created.headers.location, `/api/v1/subscriptions/${sub.id}`);
    assert.deepEqual(
      { ...sub, createdAt: undefined, updatedAt: undefined },
      {
        id: sub.id,
        mailboxes: ['ben@contoso.com', 'cara@contoso.com'],
        events: ['message.new'],
        privacy: 'minimal',
        label: 'ERP',
        sink: { kind: 'webhook', url: 'https://erp.contoso.com/hooks/mail' },
        state: 'active',
        createdAt: undefined,
        updatedAt: undefined,
      },
    );
    // The store has what the sink needs, secret included.
    const stored = await a.t.store.notify.getSubscription(sub.id);
    assert.deepEqual(stored?.params, { url: 'https://erp.contoso.com/hooks/mail', secret: s });
    assert.equal(stored?.privacy, 'minimal');

    const device = randomBytes(32).toString('hex');
    const phone = await a.call({ method: 'POST', url: '/api/v1/subscriptions', payload: { mailboxes: ['dora@contoso.com'], sink: { kind: 'apns', deviceToken: device } } });
    assert.equal(phone.status, 201);
    assert.deepEqual(phone.json!.events, []);
    assert.equal(phone.json!.privacy, 'full');

    const list = await a.call({ method: 'GET', url: '/api/v1/subscriptions' });
    assert.deepEqual(list.json!.subscriptions.map((x) => x.id), [sub.id, phone.json!.id]);
    const onlyDora = await a.call({ method: 'GET', url: '/api/v1/subscriptions?mailbox=DORA@contoso.com' });
    assert.deepEqual(onlyDora.json!.subscriptions.map((x) => x.id), [phone.json!.id]);
    const one = await a.call({ method: 'GET', url: `/api/v1/subscriptions/${phone.json!.id}` });
    assert.equal(one.status, 200);
    assert.equal(one.json!.sink.kind, 'apns');
    assert.match(String(one.json!.sink.deviceToken), /^[0-9a-f]{6}….{4}$/);

    assert.equal((await a.call({ method: 'DELETE', url: `/api/v1/subscriptions/${sub.id}` })).status, 204);
    assert.equal(await a.t.store.notify.getSubscription(sub.id), undefined);
    const missing = await a.call({ method: 'GET', url: `/api/v1/subscriptions/${sub.id}`, lang: 'de' });
    assert.equal(missing.status, 404);
    assert.equal(missing.json!.error.code, 'MB_NOTIFY_SUBSCRIPTION_NOT_FOUND');
    assert.equal(missing.json!.error.title, 'Benachrichtigungs-Abonnement nicht gefunden');
    assert.ok(missing.json!.error.cause.includes(sub.id));
    const again = await a.call({ method: 'DELETE', url: `/api/v1/subscriptions/${sub.id}` });
    assert.equal(again.status, 404);
    assert.equal(again.json!.error.title, 'Notification subscription not found');
    const bad = await a.call({ method: 'GET', url: '/api/v1/subscriptions/not-an-id' });
    assert.equal(bad.status, 400);
    assert.equal(bad.json!.error.code, 'MB_API_INVALID');
    assert.match(bad.json!.error.cause, /path\.id: expected a subscription ID/);

    // No answer of this test carried the secret or the full device token.
    for (const b of a.bodies) {
      assert.equal(b.includes(s), false);
      assert.equal(b.includes(s.slice(6)), false);
      assert.equal(b.includes(device), false);
    }
  } finally {
    await a.close();
  }
});

test('bad requests are refused with MB_API_INVALID (the request schema), MB_NOTIFY_SUBSCRIPTION_INVALID (the sink parameters) or MB_NOTIFY_SINK_NOT_CONFIGURED naming the field, and nothing is stored', async () => {
  const a = await api();
  try {
    const ok = { mailboxes: ['ben@contoso.com'], sink: { kind: 'webhook', url: 'https://erp.contoso.com/h', secret: secret() } };
    const cases: Array<[unknown, number, string, RegExp]> = [
      [{ ...ok, mailboxes: [] }, 400, 'MB_API_INVALID', /body\.mailboxes:/],
      [{ ...ok, mailboxes: ['not an address'] }, 400, 'MB_API_INVALID', /body\.mailboxes\.0:/],
      [{ ...ok, events: ['message.moved'] }, 400, 'MB_API_INVALID', /body\.events\.0:/],
      [{ ...ok, privacy: 'none' }, 400, 'MB_API_INVALID', /body\.privacy:/],
      [{ ...ok, colour: 'blue' }, 400, 'MB_API_INVALID', /colour/],
      [{ mailboxes: ok.mailboxes }, 400, 'MB_API_INVALID', /body\.sink:/],
      [{ ...ok, sink: { kind: 'fcm', registrationToken: 'x'.repeat(64) } }, 400, 'MB_NOTIFY_SINK_NOT_CONFIGURED', /"fcm"/],
      [{ ...ok, sink: { kind: 'webhook', url: 'http://erp.contoso.com/h', secret: secret() } }, 400, 'MB_NOTIFY_SUBSCRIPTION_INVALID', /sink\.url:/],
      [{ ...ok, sink: { kind: 'webhook', url: 'https://erp.contoso.com/h', secret: 'hunter2' } }, 400, 'MB_NOTIFY_SUBSCRIPTION_INVALID', /sink\.secret:/],
      [{ ...ok, sink: { kind: 'apns', deviceToken: 'zz' } }, 400, 'MB_NOTIFY_SUBSCRIPTION_INVALID', /sink\.deviceToken:/],
    ];
    for (const [payload, status, code, cause] of cases) {
      const r = await a.call({ method: 'POST', url: '/api/v1/subscriptions', payload: payload as Record<string, unknown> });
      assert.equal(r.status, status, JSON.stringify(payload));
      assert.equal(r.json!.error.code, code, JSON.stringify(r.json));
      assert.match(r.json!.error.cause, cause);
      assert.equal(r.json!.error.fix, catalogue[code as keyof typeof catalogue].fix.en.replaceAll('{kind}', 'fcm'));
      if (code === 'MB_API_INVALID') assert.match(r.json!.error.cause, /^The request to \/api\/v1\/subscriptions does not match the API description: /);
    }
    const broken = await a.call({ method: 'POST', url: '/api/v1/subscriptions', headers: { 'content-type': 'application/json' }, payload: '{"mailboxes": [', lang: 'de' });
    assert.equal(broken.status, 400);
    assert.equal(broken.json!.error.code, 'MB_API_INVALID');
    assert.match(broken.json!.error.cause, /^Die Anfrage an \/api\/v1\/subscriptions passt nicht zur API-Beschreibung: body:/);
    const text = await a.call({ method: 'POST', url: '/api/v1/subscriptions', headers: { 'content-type': 'text/plain' }, payload: 'hello' });
    assert.equal(text.status, 400);
    assert.equal(text.json!.error.code, 'MB_API_INVALID');
    assert.deepEqual(await a.t.store.notify.listSubscriptions(), []);
  } finally {
    await a.close();
  }
});

test('a subscription for mailboxes no watch group watches is created with a warning that names them, in the caller\'s language', async () => {
  const a = await api({ watched: new Set(['anna@contoso.com']) });
  try {
    const sink = { kind: 'webhook', url: 'https://erp.contoso.com/hook', secret: secret() };
    const watched = await a.call({ method: 'POST', url: '/api/v1/subscriptions', payload: { mailboxes: ['Anna@contoso.com'], sink } });
    assert.equal(watched.status, 201);
    assert.equal(watched.json!.warnings, undefined, 'a watched mailbox: no warning');
    const typo = await a.call({ method: 'POST', url: '/api/v1/subscriptions', lang: 'de', payload: { mailboxes: ['anna@contoso.com', 'ana@contoso.com'], sink } });
    assert.equal(typo.status, 201);
    const warnings = typo.json!.warnings as Array<{ code: string; cause: string; fix: string }>;
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.code, 'MB_NOTIFY_MAILBOX_NOT_WATCHED');
    assert.match(warnings[0]!.cause, /überwacht ana@contoso\.com:/);
    assert.ok(!warnings[0]!.cause.includes('anna@'), 'only the unwatched one is named');
    assert.match(warnings[0]!.fix, /notify\.watch\.groups/);
  } finally {
    await a.close();
  }
});
