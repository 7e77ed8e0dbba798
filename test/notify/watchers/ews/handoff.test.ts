/**
 * The EWS push hub of several nodes (src/notify/watchers/ews/handoff.ts) on a real store (SQLite
 * here; the three-node tests in test/cluster/ews-push.test.ts run it on PostgreSQL): what it answers
 * Exchange, that OK means the push is committed as a parcel, and that a parcel reaches its owner
 * even when the signal is lost.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { silentLogger } from '../../../../src/log/index.ts';
import {
  createEwsPushHub,
  EWS_PUSH_CHANNEL,
  mailboxKey,
  olderGeneration,
  ORPHAN_PARCEL_AFTER_MS,
  PARCEL_MAX_AGE_MS,
  type EwsPushHub,
} from '../../../../src/notify/watchers/ews/handoff.ts';
import { notificationEl, sendNotificationEnvelope } from '../../../../src/sandbox/ews/soap.ts';
import { openStore, type Store } from '../../../../src/store/index.ts';
import type { Signals } from '../../../../src/store/signals.ts';
import { tempDir } from '../../../support/temp.ts';
import { waitFor } from '../../../support/wait.ts';

const LISTENER = 'plant/svc';
const ANNA = 'anna@contoso.test';
let store: Store;
const open: Array<{ http: FastifyInstance; hub: EwsPushHub }> = [];

before(async () => {
  store = await openStore({ driver: 'sqlite', path: join(tempDir('mb-ews-handoff-').path, 'mb.db') });
});
after(async () => {
  for (const o of open) {
    o.hub.close();
    await o.http.close();
  }
  await store.close();
});

/** A hub on its own Fastify instance; `signals` may be wrapped to lose or fail things. */
async function hubWith(signals: Signals, sweepMs = 3_600_000, now: () => number = Date.now): Promise<{ http: FastifyInstance; hub: EwsPushHub }> {
  const http = Fastify({ logger: false });
  const hub = createEwsPushHub({ http, publicUrl: () => 'https://mb.contoso.test:8443/', kv: store.kv, signals, log: silentLogger, now, sweepMs });
  await hub.prepare(LISTENER, [ANNA, 'Ben@Contoso.test']);
  await hub.start();
  await http.ready();
  const o = { http, hub };
  open.push(o);
  return o;
}

function push(subscriptionId: string, watermark: string): string {
  return sendNotificationEnvelope(notificationEl(subscriptionId, [], { previousWatermark: watermark, moreEvents: false, status: watermark }));
}

async function post(http: FastifyInstance, url: string, body: string) {
  const res = await http.inject({ method: 'POST', url: new URL(url).pathname, headers: { 'content-type': 'text/xml; charset=utf-8' }, payload: body });
  const status = /<SubscriptionStatus>(\w+)<\/SubscriptionStatus>/.exec(res.body)?.[1];
  return { code: res.statusCode, status };
}

async function clear(): Promise<void> {
  for (const k of await store.signals.waiting(EWS_PUSH_CHANNEL)) {
    const rows = await store.signals.parcels(EWS_PUSH_CHANNEL, k, 1000);
    await store.signals.remove(rows.map((r) => r.id));
  }
}

test('generations compare by epoch, then by count; the URL names the mailbox by a hash, not its address', () => {
  assert.equal(olderGeneration('1.9', '2.1'), true);
  assert.equal(olderGeneration('2.1', '2.2'), true);
  assert.equal(olderGeneration('2.2', '2.2'), false);
  assert.equal(olderGeneration('3.0', '2.9'), false);
  assert.equal(mailboxKey('Anna@Contoso.test'), mailboxKey(ANNA));
  assert.doesNotMatch(mailboxKey(ANNA), /anna|contoso/);
});

test('OK only once the push is a committed parcel; a push that cannot be stored gets HTTP 500 (Exchange sends it again), and its retry is stored', async () => {
  await clear();
  let failPosts = 1;
  const signals: Signals = {
    ...store.signals,
    post: async (...a) => {
      if (failPosts-- > 0) throw new Error('the database is away');
      return store.signals.post(...a);
    },
  };
  const { http, hub } = await hubWith(signals);
  const url = hub.callbackUrl(LISTENER, ANNA, '2.1');
  assert.match(url, /^https:\/\/mb\.contoso\.test:8443\/notify\/ews\/plant\/svc\/[A-Za-z0-9_-]{32}\/[A-Za-z0-9_-]{16}\/2\.1$/);
  assert.deepEqual(await post(http, url, push('sub-a', 'wm-1')), { code: 500, status: undefined });
  assert.deepEqual(await store.signals.waiting(EWS_PUSH_CHANNEL), [], 'nothing stored for the refused push');
  assert.deepEqual(await post(http, url, push('sub-a', 'wm-1')), { code: 200, status: 'OK' });
  const [parcel] = await store.signals.parcels(EWS_PUSH_CHANNEL, `${LISTENER}\n${ANNA}`, 10);
  const stored = JSON.parse(parcel!.payload) as { gen: string; notes: Array<{ subscriptionId: string; previousWatermark?: string }> };
  assert.equal(stored.gen, '2.1');
  assert.deepEqual(stored.notes.map((n) => [n.subscriptionId, n.previousWatermark]), [['sub-a', 'wm-1']]);
  assert.deepEqual({ posted: hub.stats.posted, failed: hub.stats.failed, forwarded: hub.stats.forwarded }, { posted: 1, failed: 1, forwarded: 1 });
});

test('Unsubscribe for an older generation than the recorded one, for a mailbox gone from the listener and for a single node\'s URL; a newer one is taken; a wrong token gets 404', async () => {
  await clear();
  const { http, hub } = await hubWith(store.signals);
  await store.kv.set('watch-ews', `push:${ANNA}`, JSON.stringify({ id: 'sub-c', watermark: 'wm-5', gen: '3.2' }));
  assert.equal((await post(http, hub.callbackUrl(LISTENER, ANNA, '3.1'), push('sub-b', 'wm-4'))).status, 'Unsubscribe', 'older than recorded');
  assert.equal((await post(http, hub.callbackUrl(LISTENER, ANNA, '2.9'), push('sub-a', 'wm-3'))).status, 'Unsubscribe', 'an earlier holder\'s');
  assert.equal((await post(http, hub.callbackUrl(LISTENER, ANNA, '3.2'), push('sub-c', 'wm-6'))).status, 'OK', 'the recorded one');
  // Exchange may call before the subscriber has recorded its new subscription.
  assert.equal((await post(http, hub.callbackUrl(LISTENER, ANNA, '4.1'), push('sub-d', 'wm-6'))).status, 'OK', 'newer than recorded');
  const url = new URL(hub.callbackUrl(LISTENER, ANNA, '3.2'));
  const gone = url.href.replace(mailboxKey(ANNA), mailboxKey('carl@contoso.test'));
  assert.equal((await post(http, gone, push('sub-x', 'wm-1'))).status, 'Unsubscribe', 'a mailbox no longer in the listener');
  const single = url.href.split('/').slice(0, -2).join('/');
  assert.equal((await post(http, single, push('sub-y', 'wm-1'))).status, 'Unsubscribe', 'a URL made by a single node');
  assert.equal((await post(http, url.href.replace(/\/([A-Za-z0-9_-]{32})\//, `/${'x'.repeat(32)}/`), push('sub-c', 'wm-7'))).code, 404);
  const parcels = await store.signals.parcels(EWS_PUSH_CHANNEL, `${LISTENER}\n${ANNA}`, 10);
  assert.deepEqual(parcels.map((p) => (JSON.parse(p.payload) as { gen: string }).gen), ['3.2', '4.1']);
  assert.equal(hub.stats.unsubscribed, 4);
});

test('a parcel whose signal is lost reaches its owner through the sweep, and so does one posted while no owner was there', async () => {
  await clear();
  // Signals that never arrive: only the sweep can find the parcels.
  const deaf: Signals = { ...store.signals, subscribe: async () => () => undefined };
  const { http, hub } = await hubWith(deaf, 50);
  assert.equal((await post(http, hub.callbackUrl(LISTENER, ANNA, '5.1'), push('sub-e', 'wm-1'))).status, 'OK');
  const drained: string[] = [];
  hub.attach(LISTENER, { has: (a) => a === ANNA, drain: (a) => drained.push(a) });
  await waitFor(() => drained.includes(ANNA), 10_000, 'the sweep finds the parcel for its owner');
  assert.deepEqual((await hub.parcels(LISTENER, ANNA, 10)).map((p) => p.push.notes[0]!.subscriptionId), ['sub-e']);
  assert.deepEqual(await hub.waiting(LISTENER), [ANNA]);
});

test('parcels nobody will take are pruned: a mailbox no listener has after an hour, any parcel after 3 days; the sweep prunes as the clock moves', async () => {
  await clear();
  const T = 1_800_000_000_000;
  let now = T;
  const key = (listener: string, address: string) => `${listener}\n${address}`;
  const parcel = JSON.stringify({ gen: '1.1', notes: [] });
  const at = async (listener: string, address: string, postedAt: number) => store.signals.post(EWS_PUSH_CHANNEL, key(listener, address), parcel, postedAt);
  // Parcels waiting for a mailbox of the listener: a recent one, and one nobody took for longer than the age limit.
  await at(LISTENER, ANNA, T - 60_000);
  await at(LISTENER, 'ben@contoso.test', T - PARCEL_MAX_AGE_MS - 1);
  // A mailbox that left the listener, and a listener that left the configuration: kept for the
  // first hour (a configuration change reaching the nodes), removed after it.
  await at(LISTENER, 'gone@contoso.test', T - ORPHAN_PARCEL_AFTER_MS + 60_000);
  await at(LISTENER, 'left@contoso.test', T - ORPHAN_PARCEL_AFTER_MS - 1);
  await at('old/svc', ANNA, T - ORPHAN_PARCEL_AFTER_MS - 1);
  const { hub } = await hubWith(store.signals, 3_600_000, () => now);

  assert.deepEqual(await hub.prune(), { orphaned: 2, expired: 1 });
  assert.deepEqual(await store.signals.waiting(EWS_PUSH_CHANNEL), [key(LISTENER, ANNA), key(LISTENER, 'gone@contoso.test')]);
  assert.equal(hub.stats.pruned, 3);

  // The sweep prunes by the hub's clock: once it has moved past the first hour and the age limit, neither is left.
  const swept = await hubWith(store.signals, 20, () => now);
  now = T + PARCEL_MAX_AGE_MS;
  await waitFor(() => swept.hub.stats.pruned === 2, 10_000, () => `the sweep to prune the remaining parcels (pruned ${swept.hub.stats.pruned})`);
  assert.deepEqual(await store.signals.waiting(EWS_PUSH_CHANNEL), []);
});
