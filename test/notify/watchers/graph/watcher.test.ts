/**
 * The Graph watcher end to end: the sandbox Graph (subscriptions, validation handshake,
 * notifications, lifecycle events, delta) on a real Dovecot → the watcher behind a Fastify HTTPS
 * inbound listener (certificate from the sandbox CA) → the real store and dispatcher → the webhook
 * sink → a local receiver. Each scenario ends by settling every queue (sandbox notifications, the
 * watcher's rounds, the dispatcher) and counting what the receiver got: nothing lost, nothing twice.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { fetch } from 'undici';
import type { MbError } from '../../../../src/errors/index.ts';
import { createLogger } from '../../../../src/log/index.ts';
import { createDispatcher, type Dispatcher } from '../../../../src/notify/dispatcher.ts';
import type { NotifyEvent } from '../../../../src/notify/events.ts';
import { createWebhookSink } from '../../../../src/notify/sinks/webhook.ts';
import { createGraphWatcher, graphWatchSchema, type GraphWatcher } from '../../../../src/notify/watchers/graph/index.ts';
import { KV_NAMESPACE } from '../../../../src/notify/watchers/graph/sync.ts';
import { subscriptionKey } from '../../../../src/m365/subscriptions/index.ts';
import type { WatcherContext } from '../../../../src/notify/watchers/types.ts';
import { Semaphore } from '../../../../src/util/limits.ts';
import type { Timers } from '../../../../src/sandbox/graph/index.ts';
import { APP, startRig, USER, type Rig } from '../../../sandbox/graph/helpers.ts';
import { deliver, noJitter, type TempStore, tempStore } from './helpers.ts';
import { loopbackEgress } from '../../../support/egress.ts';
import { waitFor } from '../../../support/wait.ts';
import { freePort } from '../../../support/ports.ts';

/** Sandbox notification retries run only when the test says so. */
class ManualTimers implements Timers {
  private pending = new Map<number, { fn: () => void; ms: number }>();
  private n = 0;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.n;
    this.pending.set(id, { fn, ms });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  /** Runs the waiting retries (not the multi-day expiry timers). */
  fireRetries(): number {
    let fired = 0;
    for (const [id, t] of [...this.pending]) {
      if (t.ms > 3_600_000) continue;
      this.pending.delete(id);
      t.fn();
      fired++;
    }
    return fired;
  }
}

interface Received {
  id: string;
  event: NotifyEvent;
}

let rig: Rig;
let timers: ManualTimers;
let t: TempStore;
let receiver: { server: Server; url: string; got: Received[] };
let dispatcher: Dispatcher;
const problems: MbError[] = [];
/** The watchers' log lines (info and up), as JSON. */
const logLines: Array<{ level: number; msg: string; lifecycleEvent?: string }> = [];
const log = createLogger({ level: 'info', destination: { write: (line: string) => logLines.push(JSON.parse(line) as (typeof logLines)[number]) } });
const now = () => Date.now() + rig.clock.offsetMs;

before(async () => {
  timers = new ManualTimers();
  rig = await startRig({ timers });
  t = await tempStore();
  const got: Received[] = [];
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: NotifyEvent };
      got.push({ id: String(req.headers['webhook-id']), event: body.data });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  receiver = { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got };
  const sink = createWebhookSink({ config: { timeoutSeconds: 10, requireHttps: false }, egress: loopbackEgress() });
  const params = sink.parseParams({ url: receiver.url, secret: `whsec_${randomBytes(32).toString('base64')}` });
  await t.store.notify.createSubscription({
    id: 'sub_graphwatch',
    kind: 'webhook',
    mailboxes: [USER.alice.upn, USER.bob.upn, USER.dave.upn],
    events: [],
    params,
    privacy: 'full',
    state: 'active',
    createdAt: Date.now(),
    updatedAt: Date.now(),
  });
  dispatcher = createDispatcher({ repo: t.store.notify, sinks: [sink], retry: noJitter });
  dispatcher.start();
});

after(async () => {
  await dispatcher?.stop();
  receiver?.server.closeAllConnections();
  await new Promise((r) => receiver?.server.close(r));
  await rig?.close();
  await t?.cleanup();
});


interface Running {
  watcher: GraphWatcher;
  http: FastifyInstance;
  port: number;
  publicUrl: string;
  stop(): Promise<void>;
}

/** A watcher behind its own inbound HTTPS listener (routes must exist before it listens). */
async function startWatcher(
  mailboxes: string[],
  options: { port?: number; listener?: string; renewBeforeMinutes?: number; gates?: WatcherContext['gates']; start?: boolean; unreachable?: { now: boolean } } = {},
): Promise<Running> {
  const port = options.port ?? (await freePort());
  const tls = rig.ca.issueServer(['127.0.0.1']);
  const http = Fastify({ https: { key: tls.keyPem, cert: tls.certPem }, logger: false, forceCloseConnections: true });
  // While `unreachable.now`, Graph's posts fail (as a notification lost on its way to the owner).
  const unreachable = options.unreachable;
  if (unreachable) http.addHook('onRequest', async (_req, reply) => (unreachable.now ? reply.code(503).send() : undefined));
  const publicUrl = `https://127.0.0.1:${port}`;
  const ctx: WatcherContext = {
    publish: (e) => dispatcher.publish(e),
    kv: t.store.kv,
    log,
    now,
    problem: (_m, e) => problems.push(e),
    inbound: { http, publicUrl },
    // Reversible stand-in for the SecretBox: the test checks the clear value is not what is stored.
    seal: (v) => `sealed:${Buffer.from(v).toString('base64')}`,
    reveal: (v) => Buffer.from(v.replace(/^sealed:/, ''), 'base64').toString('utf8'),
    ...(options.gates ? { gates: options.gates } : {}),
  };
  const watcher = createGraphWatcher({
    listener: options.listener ?? 'l1',
    mailboxes: mailboxes.map((address) => ({ address, folders: ['inbox'] })),
    tokens: () => rig.appToken(APP.relay),
    options: graphWatchSchema.parse({ baseUrl: `${rig.graph.url}/v1.0`, ...(options.renewBeforeMinutes ? { renewBeforeMinutes: options.renewBeforeMinutes } : {}) }),
    ctx,
    ca: rig.ca.certPem,
    tickMs: 3_600_000,
  }) as GraphWatcher;
  await http.listen({ host: '127.0.0.1', port });
  if (options.start !== false) await watcher.start();
  return {
    watcher,
    http,
    port,
    publicUrl,
    async stop() {
      await watcher.close();
      await http.close();
    },
  };
}


async function graphUnread(address: string): Promise<number> {
  const res = await rig.call('GET', `/v1.0/users/${address}/mailFolders/inbox`, { token: await rig.appToken(APP.relay) });
  return res.json<{ unreadItemCount: number }>().unreadItemCount;
}

/** Everything in flight has landed: sandbox notifications, watcher rounds, dispatcher deliveries. */
async function settle(w: GraphWatcher): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await rig.graph.notificationsSettled();
    await w.idle();
    await dispatcher.runOnce();
    // The background loop may still hold a delivery: wait until the queue is empty.
    await waitFor(async () => (await t.store.notify.counts()).pending === 0, 20_000, 'dispatcher queue drained');
  }
}

function eventsFor(mailbox: string): Received[] {
  return receiver.got.filter((r) => r.event.mailbox === mailbox);
}

function newMail(mailbox: string, subject: string): Received[] {
  return eventsFor(mailbox).filter((r) => r.event.type === 'message.new' && r.event.subject === subject);
}

function assertNoDuplicateIds(): void {
  const ids = receiver.got.map((r) => r.id);
  assert.equal(new Set(ids).size, ids.length, `duplicate webhook ids: ${ids.join(' ')}`);
}

test('the validation handshake is answered with the decoded token; a forged clientState is ignored and reported', async () => {
  const w = await startWatcher([USER.dave.upn], { listener: 'hs' });
  try {
    const sub = w.watcher.subscriptionOf(USER.dave.upn, 'inbox');
    assert.ok(sub);
    const listed = rig.graph.subscriptions().find((s) => s.id === sub.id);
    assert.equal(listed?.notificationUrl, `${w.publicUrl}/notify/graph/hs`);
    assert.equal(listed?.lifecycleNotificationUrl, `${w.publicUrl}/notify/graph/hs/lifecycle`);
    // The clientState is stored sealed, never in clear.
    const rec = JSON.parse((await t.store.kv.get(KV_NAMESPACE, subscriptionKey(USER.dave.upn, 'inbox'))) ?? '{}') as { clientState: string };
    assert.match(rec.clientState, /^sealed:/);

    const res = await fetch(`${w.publicUrl}/notify/graph/hs?validationToken=${encodeURIComponent('Validation: a+b c&d')}`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      dispatcher: rig.agent,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    assert.equal(await res.text(), 'Validation: a+b c&d');

    const rounds = w.watcher.stats.rounds;
    const before = problems.length;
    const forged = await fetch(`${w.publicUrl}/notify/graph/hs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: [{ subscriptionId: sub.id, clientState: 'guessed', changeType: 'created', resource: 'Users/x/Messages/y' }] }),
      dispatcher: rig.agent,
    });
    assert.equal(forged.status, 202);
    await settle(w.watcher);
    assert.equal(w.watcher.stats.rejected, 1);
    assert.equal(w.watcher.stats.rounds, rounds, 'a forged notification must not start a round');
    assert.deepEqual(problems.slice(before).map((p) => p.code), ['MB_WATCH_GRAPH_CLIENTSTATE_MISMATCH']);
    assert.doesNotMatch(JSON.stringify(problems.map((p) => p.message)), /guessed/);
  } finally {
    await w.stop();
  }
});

test('new mail → exactly one message.new with the unread count; marking it read → one read-state event with the new count', async () => {
  const mailbox = USER.alice.upn;
  const w = await startWatcher([mailbox]);
  try {
    assert.deepEqual(w.watcher.status().map((s) => [s.mailbox, s.state]), [[mailbox, 'watching']]);
    await deliver(rig, mailbox, 'Rechnung 4711');
    await waitFor(() => newMail(mailbox, 'Rechnung 4711').length > 0, 20_000, 'message.new at the receiver');
    await settle(w.watcher);
    const [created] = newMail(mailbox, 'Rechnung 4711');
    assert.equal(newMail(mailbox, 'Rechnung 4711').length, 1);
    assert.ok(created && created.event.type === 'message.new');
    assert.deepEqual(created.event.sender, { address: 'anna@fabrikam.test', name: 'Anna Schmidt' });
    const count = await graphUnread(mailbox);
    assert.equal(created.event.unreadCount, count);
    assert.ok(w.watcher.stats.notifications >= 1, 'the change came by notification');

    const res = await rig.call('PATCH', `/v1.0/users/${mailbox}/messages/${created.event.messageId}`, { token: await rig.appToken(APP.relay), json: { isRead: true } });
    assert.equal(res.status, 200);
    const isRead = () => eventsFor(mailbox).filter((r) => r.event.type === 'message.read-state' && r.event.messageId === created.event.messageId);
    await waitFor(() => isRead().length > 0, 20_000, 'read-state at the receiver');
    await settle(w.watcher);
    assert.equal(isRead().length, 1);
    const read = isRead()[0]!.event;
    assert.ok(read.type === 'message.read-state' && read.read === true && read.unreadCount === count - 1);
    assertNoDuplicateIds();
  } finally {
    await w.stop();
  }
});

test('a `missed` lifecycle event (dropped notifications) ends with each change reported once', async () => {
  const mailbox = USER.bob.upn;
  const w = await startWatcher([mailbox]);
  try {
    const rounds = w.watcher.stats.rounds;
    rig.graph.dropNotifications(mailbox, 2);
    await deliver(rig, mailbox, 'Dropped 1');
    await deliver(rig, mailbox, 'Dropped 2');
    await waitFor(() => newMail(mailbox, 'Dropped 2').length > 0 && newMail(mailbox, 'Dropped 1').length > 0, 20_000, 'events after missed');
    await settle(w.watcher);
    assert.equal(rig.graph.notificationStats.droppedByHook, 2);
    assert.ok(w.watcher.stats.lifecycle >= 1, 'the missed event arrived');
    assert.ok(problems.some((p) => p.code === 'MB_WATCH_GRAPH_MISSED' && p.params.mailbox === mailbox), 'the missed event is a problem with its code');
    assert.ok(logLines.some((l) => l.level === 40 && /sent a missed lifecycle event/.test(l.msg)), 'and a warning in the log');
    assert.ok(w.watcher.stats.rounds > rounds);
    assert.equal(newMail(mailbox, 'Dropped 1').length, 1);
    assert.equal(newMail(mailbox, 'Dropped 2').length, 1);
    assertNoDuplicateIds();
  } finally {
    await w.stop();
  }
});

test('resync reads every folder: mail whose notification never reached the watcher is reported once', async () => {
  const mailbox = USER.dave.upn;
  const unreachable = { now: false };
  const w = await startWatcher([mailbox], { listener: 'rs', unreachable });
  try {
    await settle(w.watcher);
    unreachable.now = true;
    const stats = rig.graph.notificationStats;
    const posts = stats.posts;
    await deliver(rig, mailbox, 'Unterwegs verloren');
    // Graph's post failed; its retry waits on the manual timers, which this test never fires.
    await waitFor(() => stats.posts > posts, 20_000, 'the notification posted (and refused)');
    await rig.graph.notificationsSettled();
    await w.watcher.idle();
    assert.ok(stats.postsOk < stats.posts, 'the post was refused');
    assert.equal(newMail(mailbox, 'Unterwegs verloren').length, 0, 'no event without the notification');
    unreachable.now = false;
    w.watcher.resync!();
    await waitFor(() => newMail(mailbox, 'Unterwegs verloren').length > 0, 20_000, 'the event after resync');
    await settle(w.watcher);
    assert.equal(newMail(mailbox, 'Unterwegs verloren').length, 1);
    assertNoDuplicateIds();
  } finally {
    await w.stop();
  }
});

test('a removed subscription is recreated and the gap is caught up: nothing lost, nothing twice', async () => {
  const mailbox = USER.bob.upn;
  const w = await startWatcher([mailbox], { listener: 'rm' });
  try {
    const old = w.watcher.subscriptionOf(mailbox, 'inbox');
    assert.ok(old);
    rig.graph.removeSubscription(old.id);
    // Mail while Graph has no subscription: no notification can report it.
    await deliver(rig, mailbox, 'While removed');
    await waitFor(() => {
      const s = w.watcher.subscriptionOf(mailbox, 'inbox');
      return !!s && s.id !== old.id;
    }, 20_000, 'a new subscription');
    await waitFor(() => newMail(mailbox, 'While removed').length > 0, 20_000, 'the gap caught up');
    assert.ok(problems.some((p) => p.code === 'MB_WATCH_GRAPH_SUBSCRIPTION_REMOVED' && p.params.subscriptionId === old.id), 'the removal is reported with its code');
    await deliver(rig, mailbox, 'After recreate');
    await waitFor(() => newMail(mailbox, 'After recreate').length > 0, 20_000, 'notification on the new subscription');
    await settle(w.watcher);
    assert.ok(rig.graph.subscriptions().some((s) => s.id === w.watcher.subscriptionOf(mailbox, 'inbox')?.id));
    assert.ok(!rig.graph.subscriptions().some((s) => s.id === old.id));
    assert.equal(newMail(mailbox, 'While removed').length, 1);
    assert.equal(newMail(mailbox, 'After recreate').length, 1);
    assertNoDuplicateIds();
  } finally {
    await w.stop();
  }
});

test('a restart with events in flight reuses the subscription and reports every change exactly once', async () => {
  const mailbox = USER.dave.upn;
  let w = await startWatcher([mailbox], { listener: 'rs' });
  const port = w.port;
  const sub = w.watcher.subscriptionOf(mailbox, 'inbox');
  assert.ok(sub);
  await deliver(rig, mailbox, 'Before stop');
  await waitFor(() => newMail(mailbox, 'Before stop').length > 0, 20_000, 'first event');
  await settle(w.watcher);
  const before = newMail(mailbox, 'Before stop')[0]!.event;
  await w.stop();

  // While stopped: two messages arrive and the first is read; the sandbox's notifications fail.
  const failedPosts = () => rig.graph.notificationStats.posts - rig.graph.notificationStats.postsOk;
  const failedBefore = failedPosts();
  await deliver(rig, mailbox, 'While down 1');
  await deliver(rig, mailbox, 'While down 2');
  const res = await rig.call('PATCH', `/v1.0/users/${mailbox}/messages/${before.messageId}`, { token: await rig.appToken(APP.relay), json: { isRead: true } });
  assert.equal(res.status, 200);
  await waitFor(() => failedPosts() > failedBefore, 20_000, 'a notification that could not be delivered');
  await rig.graph.notificationsSettled();

  w = await startWatcher([mailbox], { listener: 'rs', port });
  try {
    assert.equal(w.watcher.subscriptionOf(mailbox, 'inbox')?.id, sub.id, 'the stored subscription is reused');
    assert.equal(w.watcher.stats.created, 0);
    assert.equal(w.watcher.stats.renewed, 1);
    const check = async () => {
      assert.equal(newMail(mailbox, 'While down 1').length, 1);
      assert.equal(newMail(mailbox, 'While down 2').length, 1);
      assert.equal(newMail(mailbox, 'Before stop').length, 1);
      const reads = eventsFor(mailbox).filter((r) => r.event.type === 'message.read-state' && r.event.messageId === before.messageId);
      assert.equal(reads.length, 1);
      assert.equal(reads[0]!.event.type === 'message.read-state' && reads[0]!.event.unreadCount, await graphUnread(mailbox));
      assertNoDuplicateIds();
    };
    // The catch-up at start found everything, before any notification was retried.
    await settle(w.watcher);
    await check();
    // Now Graph's retries of the failed notifications arrive: they change nothing.
    const notified = w.watcher.stats.notifications;
    assert.ok(timers.fireRetries() > 0, 'the sandbox had notifications to retry');
    await settle(w.watcher);
    assert.ok(w.watcher.stats.notifications > notified, 'the retried notifications reached the restarted watcher');
    await check();
  } finally {
    await w.stop();
  }
});

test('reauthorizationRequired is answered with POST …/reauthorize; the subscription stays and keeps notifying', async () => {
  const mailbox = USER.bob.upn;
  const w = await startWatcher([mailbox], { listener: 'reauth' });
  try {
    const sub = w.watcher.subscriptionOf(mailbox, 'inbox');
    assert.ok(sub);
    const lifecycle = w.watcher.stats.lifecycle;
    const answered204 = rig.graph.stats.responses[204] ?? 0;
    assert.equal(rig.graph.lifecycle(sub.id, 'reauthorizationRequired'), true);
    await waitFor(() => w.watcher.stats.lifecycle > lifecycle, 20_000, 'lifecycle notification');
    await settle(w.watcher);
    assert.ok((rig.graph.stats.responses[204] ?? 0) > answered204, 'reauthorize was called (204)');
    assert.ok(logLines.some((l) => l.level === 30 && l.lifecycleEvent === 'reauthorizationRequired'), 'the lifecycle event is logged');
    assert.equal(w.watcher.subscriptionOf(mailbox, 'inbox')?.id, sub.id);
    assert.equal(w.watcher.stats.created, 1);
    await deliver(rig, mailbox, 'After reauthorize');
    await waitFor(() => newMail(mailbox, 'After reauthorize').length > 0, 20_000, 'event after reauthorize');
    await settle(w.watcher);
    assert.equal(newMail(mailbox, 'After reauthorize').length, 1);
  } finally {
    await w.stop();
  }
});

test('subscriptions are renewed before they expire (injectable clock) and keep notifying past the first expiry', async () => {
  const mailbox = USER.alice.upn;
  const w = await startWatcher([mailbox], { listener: 'renew', renewBeforeMinutes: 60 });
  try {
    const first = w.watcher.subscriptionOf(mailbox, 'inbox');
    assert.ok(first);
    const renewed = w.watcher.stats.renewed;
    await w.watcher.tick();
    assert.equal(w.watcher.stats.renewed, renewed, 'not due yet');

    // 30 minutes before expiry: inside renewBeforeMinutes.
    rig.clock.offsetMs += first.expires - now() - 30 * 60_000;
    await w.watcher.tick();
    assert.equal(w.watcher.stats.renewed, renewed + 1);
    const after = w.watcher.subscriptionOf(mailbox, 'inbox');
    assert.equal(after?.id, first.id);
    assert.ok(after && after.expires > first.expires + 60 * 60_000, 'expiry moved forward');
    const listed = rig.graph.subscriptions().find((s) => s.id === first.id);
    assert.equal(Date.parse(listed?.expirationDateTime ?? ''), after.expires);
    const rec = JSON.parse((await t.store.kv.get(KV_NAMESPACE, subscriptionKey(mailbox, 'inbox'))) ?? '{}') as { expires: number };
    assert.equal(rec.expires, after.expires);

    // Past the original expiry, the subscription still delivers.
    rig.clock.offsetMs += 60 * 60_000;
    await deliver(rig, mailbox, 'After first expiry');
    await waitFor(() => newMail(mailbox, 'After first expiry').length > 0, 20_000, 'event after renewal');
    await settle(w.watcher);
    assert.equal(newMail(mailbox, 'After first expiry').length, 1);
    assertNoDuplicateIds();
  } finally {
    await w.stop();
  }
});

/** A semaphore that counts what ran through it and the most at once. */
class CountingGate extends Semaphore {
  runs = 0;
  most = 0;
  override async with<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return super.with(async () => {
      this.runs++;
      this.most = Math.max(this.most, this.inUse);
      return fn();
    }, signal);
  }
}

test('the process-wide gates bound subscription setups and delta rounds over all listeners together', async () => {
  const gates = { setup: new CountingGate(1), sync: new CountingGate(1) };
  // Two listeners, each allowed 16 setups and 128 rounds of its own, started at the same time.
  const a = await startWatcher([USER.alice.upn, USER.bob.upn], { listener: 'gate-a', gates, start: false });
  const b = await startWatcher([USER.dave.upn], { listener: 'gate-b', gates, start: false });
  try {
    await Promise.all([a.watcher.start(), b.watcher.start()]);
    await Promise.all([a.watcher.idle(), b.watcher.idle()]);
    for (const [w, m] of [[a, USER.alice.upn], [a, USER.bob.upn], [b, USER.dave.upn]] as const) assert.ok(w.watcher.subscriptionOf(m, 'inbox'), `${m} subscribed`);
    assert.equal(gates.setup.runs, 3, 'every setup went through the shared gate');
    assert.ok(gates.sync.runs >= 3, 'every catch-up round went through the shared gate');
    assert.equal(gates.setup.most, 1);
    assert.equal(gates.sync.most, 1);
  } finally {
    await a.stop();
    await b.stop();
  }
});
