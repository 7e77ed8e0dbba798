/**
 * The Graph watcher when subscribing fails, against the sandbox Graph: a 403 (no Mail.Read) and a
 * failed validation handshake (public URL unreachable) become MB-coded problems with their fix, the
 * mailbox shows `failed`, and the scheduler retries with back-off until it works; the error mapping
 * of Graph's 1,000-subscriptions answer; a watcher without an inbound listener is refused.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify, { type FastifyInstance } from 'fastify';
import { MbError } from '../../../../src/errors/index.ts';
import { silentLogger } from '../../../../src/log/index.ts';
import { scrub } from '../../../../src/log/redact.ts';
import { createGraphWatcher, graphWatchSchema, WATCH_SUBSCRIPTION_CODES, type GraphWatcher } from '../../../../src/notify/watchers/graph/index.ts';
import { subscribeFailed } from '../../../../src/m365/subscriptions/index.ts';
import type { TokenProvider, WatcherContext } from '../../../../src/notify/watchers/types.ts';
import { APP, rfc822, startRig, USER, type Rig } from '../../../sandbox/graph/helpers.ts';
import { type Recorder, recorder, type TempStore, tempStore } from './helpers.ts';
import { waitFor } from '../../../support/wait.ts';
import { freePort } from '../../../support/ports.ts';

let rig: Rig;
let t: TempStore;
let rec: Recorder;
const now = () => Date.now() + rig.clock.offsetMs;

before(async () => {
  rig = await startRig();
  t = await tempStore();
  rec = recorder(t.store);
});
after(async () => {
  await rig?.close();
  await t?.cleanup();
});


function build(http: FastifyInstance, publicUrl: string, mailbox: string, tokens: TokenProvider, problems: MbError[], listener: string): GraphWatcher {
  const ctx: WatcherContext = { publish: rec.publish, kv: t.store.kv, log: silentLogger, now, problem: (_m, e) => problems.push(e), inbound: { http, publicUrl } };
  return createGraphWatcher({
    listener,
    mailboxes: [{ address: mailbox, folders: ['inbox'] }],
    tokens,
    options: graphWatchSchema.parse({ baseUrl: `${rig.graph.url}/v1.0`, retry: { initialSeconds: 30, maxSeconds: 600 } }),
    ctx,
    ca: rig.ca.certPem,
    tickMs: 3_600_000,
  }) as GraphWatcher;
}

test('403 without Mail.Read: MB_WATCH_GRAPH_FORBIDDEN with the portal path, status failed, retried with back-off until consent is granted', async () => {
  const mailbox = USER.alice.upn;
  const port = await freePort();
  const tls = rig.ca.issueServer(['127.0.0.1']);
  const http = Fastify({ https: { key: tls.keyPem, cert: tls.certPem }, logger: false, forceCloseConnections: true });
  let app: (typeof APP)[keyof typeof APP] = APP.none;
  const problems: MbError[] = [];
  const w = build(http, `https://127.0.0.1:${port}`, mailbox, () => rig.appToken(app), problems, 'forbidden');
  await http.listen({ host: '127.0.0.1', port });
  try {
    await w.start();
    const [status] = w.status();
    assert.equal(status?.state, 'failed');
    assert.equal(status?.error?.code, 'MB_WATCH_GRAPH_FORBIDDEN');
    const forbidden = problems.find((p) => p.code === 'MB_WATCH_GRAPH_FORBIDDEN');
    assert.ok(forbidden);
    assert.match(forbidden.explain('en').fix, /API permissions > Add a permission > Microsoft Graph > Application permissions > Mail\.Read/);
    assert.match(forbidden.explain('de').fix, /Administratorzustimmung/);
    assert.equal(w.subscriptionOf(mailbox, 'inbox'), undefined);

    // Not yet due: nothing is retried.
    const count = problems.length;
    await w.tick();
    assert.equal(problems.length, count);
    // Due (30 s back-off), still forbidden: the next wait doubles.
    rig.clock.offsetMs += 31_000;
    await w.tick();
    assert.equal(problems.filter((p) => p.code === 'MB_WATCH_GRAPH_FORBIDDEN').length, 2);
    assert.equal(problems.at(-1)?.params.seconds, 60);

    // The admin grants the permission: the next retry subscribes and the mailbox is watched.
    app = APP.relay;
    rig.clock.offsetMs += 61_000;
    await w.tick();
    await w.idle();
    assert.ok(w.subscriptionOf(mailbox, 'inbox'));
    assert.equal(w.status()[0]?.state, 'watching');
    assert.equal(w.status()[0]?.error, undefined);
    const token = await rig.appToken(APP.relay);
    assert.doesNotMatch(JSON.stringify(problems.map((p) => scrub(p.message))), new RegExp(token.slice(-20)));
  } finally {
    await w.close();
    await http.close();
  }
});

test('validation handshake failing (public URL unreachable): MB_WATCH_GRAPH_VALIDATION_FAILED naming the URL; mail is still found by the retries, and once reachable it subscribes', async () => {
  const mailbox = USER.bob.upn;
  const port = await freePort();
  const tls = rig.ca.issueServer(['127.0.0.1']);
  const http = Fastify({ https: { key: tls.keyPem, cert: tls.certPem }, logger: false, forceCloseConnections: true });
  const problems: MbError[] = [];
  const w = build(http, `https://127.0.0.1:${port}`, mailbox, () => rig.appToken(APP.relay), problems, 'unreachable');
  // Not listening yet: Graph's validation POST is refused.
  try {
    await w.start();
    const failed = problems.find((p) => p.code === 'MB_WATCH_GRAPH_VALIDATION_FAILED');
    assert.ok(failed, problems.map((p) => p.code).join());
    assert.match(failed.explain('en').cause, new RegExp(`https://127\\.0\\.0\\.1:${port}/notify/graph/unreachable`));
    assert.match(failed.explain('en').fix, /curl -i -X POST/);
    assert.equal(w.status()[0]?.state, 'failed');

    // Mail arrives while there is no subscription: the retry's delta round reports it.
    await rig.dovecot.deliver({ from: 'anna@fabrikam.test', to: [mailbox] }, Buffer.from(rfc822({ from: 'anna@fabrikam.test', to: mailbox, subject: 'No subscription yet' })));
    await http.listen({ host: '127.0.0.1', port });
    rig.clock.offsetMs += 31_000;
    await w.tick();
    await w.idle();
    assert.ok(w.subscriptionOf(mailbox, 'inbox'));
    assert.equal(w.status()[0]?.state, 'watching');
    assert.equal(rec.events.filter((e) => e.type === 'message.new' && e.subject === 'No subscription yet').length, 1);

    // And now by notification.
    await rig.dovecot.deliver({ from: 'anna@fabrikam.test', to: [mailbox] }, Buffer.from(rfc822({ from: 'anna@fabrikam.test', to: mailbox, subject: 'Notified' })));
    await waitFor(() => rec.events.some((e) => e.type === 'message.new' && e.subject === 'Notified'), 20_000, 'notified event');
  } finally {
    await w.close();
    await http.close();
  }
});

test("Graph's answers map to the codes with the right fix: the 1,000 limit, validation, permission, anything else", () => {
  const p = { mailbox: 'a@contoso.test', folder: 'inbox', notificationUrl: 'https://mb.contoso.com/notify/graph/l1' };
  const reply = (status: number, code: string, message: string) => ({ status, headers: {}, body: Buffer.alloc(0), text: '', requestId: 'req-1', clientRequestId: 'c-1', json: { error: { code, message } } });
  assert.equal(subscribeFailed('create', p, reply(403, 'ExtensionError', 'Operation: Create; Exception: [Status Code: Forbidden; Reason: Maximum number of subscriptions has been reached]'), 30, WATCH_SUBSCRIPTION_CODES).code, 'MB_WATCH_GRAPH_SUBSCRIPTION_LIMIT');
  assert.equal(subscribeFailed('create', p, reply(400, 'InvalidRequest', 'Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.'), 30, WATCH_SUBSCRIPTION_CODES).code, 'MB_WATCH_GRAPH_VALIDATION_FAILED');
  assert.equal(subscribeFailed('create', p, reply(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.'), 30, WATCH_SUBSCRIPTION_CODES).code, 'MB_WATCH_GRAPH_FORBIDDEN');
  const other = subscribeFailed('renew', p, reply(500, 'UnknownError', ''), 30, WATCH_SUBSCRIPTION_CODES);
  assert.equal(other.code, 'MB_WATCH_GRAPH_SUBSCRIBE_FAILED');
  assert.equal(other.details['request-id'], 'req-1');
});

test('a watcher without an inbound listener is refused with MB_WATCH_GRAPH_NO_INBOUND', () => {
  assert.throws(
    () =>
      createGraphWatcher({
        listener: 'x',
        mailboxes: [],
        tokens: async () => 'unused',
        options: graphWatchSchema.parse({}),
        ctx: { publish: rec.publish, kv: t.store.kv, log: silentLogger, now },
      }),
    (e: unknown) => e instanceof MbError && e.code === 'MB_WATCH_GRAPH_NO_INBOUND',
  );
  assert.throws(() => graphWatchSchema.parse({ expirationMinutes: 4231 }));
  assert.throws(() => graphWatchSchema.parse({ unknown: 1 }));
  const d = graphWatchSchema.parse({});
  assert.equal(d.expirationMinutes, 4230);
  assert.deepEqual(d.changeTypes, ['created', 'updated', 'deleted']);
});
