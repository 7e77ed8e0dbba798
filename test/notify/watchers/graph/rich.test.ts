/**
 * Rich notifications (includeResourceData) against the sandbox Graph, which encrypts each
 * created/updated item's resource to the subscription's certificate (facts §4.5): new mail is
 * reported from the decrypted content without a delta request, read changes still come from delta,
 * a tampered item falls back to delta with MB_WATCH_GRAPH_RICH_INVALID, the key stays sealed in kv,
 * and a restart reuses the subscription made with it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify, { type FastifyInstance } from 'fastify';
import { fetch } from 'undici';
import type { MbError } from '../../../../src/errors/index.ts';
import { silentLogger } from '../../../../src/log/index.ts';
import { keyRecordKey } from '../../../../src/notify/watchers/graph/crypto.ts';
import { createGraphWatcher, graphWatchSchema, type GraphWatcher } from '../../../../src/notify/watchers/graph/index.ts';
import { KV_NAMESPACE } from '../../../../src/notify/watchers/graph/sync.ts';
import type { WatcherContext } from '../../../../src/notify/watchers/types.ts';
import { APP, startRig, USER, type Rig } from '../../../sandbox/graph/helpers.ts';
import { deliver, type Recorder, recorder, type TempStore, tempStore } from './helpers.ts';
import { waitFor } from '../../../support/wait.ts';
import { freePort } from '../../../support/ports.ts';

let rig: Rig;
let t: TempStore;
let rec: Recorder;
const problems: MbError[] = [];
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


/** A rich watcher behind its own HTTPS listener; `tamper` rewrites notification bodies before the watcher sees them. */
async function startWatcher(mailbox: string, port: number, tamper?: (body: { value: Array<Record<string, unknown>> }) => void): Promise<{ w: GraphWatcher; http: FastifyInstance; stop(): Promise<void> }> {
  const tls = rig.ca.issueServer(['127.0.0.1']);
  const http = Fastify({ https: { key: tls.keyPem, cert: tls.certPem }, logger: false, forceCloseConnections: true });
  if (tamper) {
    http.addHook('preHandler', async (req) => {
      if (req.body && typeof req.body === 'object') tamper(req.body as { value: Array<Record<string, unknown>> });
    });
  }
  const ctx: WatcherContext = {
    publish: rec.publish,
    kv: t.store.kv,
    log: silentLogger,
    now,
    problem: (_m, e) => problems.push(e),
    inbound: { http, publicUrl: `https://127.0.0.1:${port}` },
    seal: (v) => `sealed:${Buffer.from(v).toString('base64')}`,
    reveal: (v) => Buffer.from(v.replace(/^sealed:/, ''), 'base64').toString('utf8'),
  };
  const w = createGraphWatcher({
    listener: 'rich',
    mailboxes: [{ address: mailbox, folders: ['inbox'] }],
    tokens: () => rig.appToken(APP.relay),
    options: graphWatchSchema.parse({ baseUrl: `${rig.graph.url}/v1.0`, includeResourceData: true }),
    ctx,
    ca: rig.ca.certPem,
    tickMs: 3_600_000,
  }) as GraphWatcher;
  await http.listen({ host: '127.0.0.1', port });
  await w.start();
  return {
    w,
    http,
    async stop() {
      await w.close();
      await http.close();
    },
  };
}


async function settle(w: GraphWatcher): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await rig.graph.notificationsSettled();
    await w.idle();
  }
}

const news = (subject: string) => rec.events.filter((e) => e.type === 'message.new' && e.subject === subject);

test('new mail is reported from the decrypted notification without a delta request; a read change comes by delta; a restart reuses the rich subscription', async () => {
  const mailbox = USER.alice.upn;
  const port = await freePort();
  let run = await startWatcher(mailbox, port);
  try {
    const sub = run.w.subscriptionOf(mailbox, 'inbox');
    assert.ok(sub);
    assert.ok(sub.expires <= now() + 1440 * 60_000 + 60_000, 'rich subscriptions live at most a day');
    const stored = JSON.parse((await t.store.kv.get(KV_NAMESPACE, keyRecordKey('rich'))) ?? '{}') as { key: string; certPem: string };
    assert.match(stored.key, /^sealed:/);
    assert.doesNotMatch(stored.key, /PRIVATE KEY/);

    const rounds = run.w.stats.rounds;
    await deliver(rig, mailbox, 'Rich one');
    await waitFor(() => news('Rich one').length > 0, 20_000, 'rich message.new');
    await settle(run.w);
    assert.equal(news('Rich one').length, 1);
    const e = news('Rich one')[0]!;
    assert.ok(e.type === 'message.new');
    assert.deepEqual(e.sender, { address: 'anna@fabrikam.test', name: 'Anna Schmidt' });
    const unread = (await rig.call('GET', `/v1.0/users/${mailbox}/mailFolders/inbox`, { token: await rig.appToken(APP.relay) })).json<{ unreadItemCount: number }>().unreadItemCount;
    assert.equal(e.unreadCount, unread);
    assert.ok(run.w.stats.decrypted >= 1);
    assert.ok(run.w.stats.hinted >= 1);
    assert.equal(run.w.stats.rounds, rounds, 'no delta round was needed for new mail');

    const res = await rig.call('PATCH', `/v1.0/users/${mailbox}/messages/${e.messageId}`, { token: await rig.appToken(APP.relay), json: { isRead: true } });
    assert.equal(res.status, 200);
    const reads = () => rec.events.filter((x) => x.type === 'message.read-state' && x.messageId === e.messageId);
    await waitFor(() => reads().length > 0, 20_000, 'read-state');
    await settle(run.w);
    assert.equal(reads().length, 1);
    assert.ok(run.w.stats.rounds > rounds);
    assert.equal(news('Rich one').length, 1, 'the delta round replaying the message adds nothing');

    await run.stop();
    await deliver(rig, mailbox, 'While down');
    run = await startWatcher(mailbox, port);
    assert.equal(run.w.subscriptionOf(mailbox, 'inbox')?.id, sub.id, 'the rich subscription is reused');
    assert.equal(run.w.stats.created, 0);
    await settle(run.w);
    assert.equal(news('While down').length, 1);
  } finally {
    await run.stop();
  }
});

test('a tampered encrypted item is refused with MB_WATCH_GRAPH_RICH_INVALID and the change is read by delta instead', async () => {
  const mailbox = USER.bob.upn;
  const port = await freePort();
  const run = await startWatcher(mailbox, port, (body) => {
    for (const item of body.value) {
      const enc = item.encryptedContent as { data: string } | undefined;
      if (enc) enc.data = Buffer.from(Buffer.from(enc.data, 'base64').map((b, i) => (i === 0 ? b ^ 1 : b))).toString('base64');
    }
  });
  try {
    const before = problems.length;
    await deliver(rig, mailbox, 'Tampered');
    await waitFor(() => news('Tampered').length > 0, 20_000, 'event by delta');
    await settle(run.w);
    assert.equal(news('Tampered').length, 1);
    const codes = problems.slice(before).map((p) => p.code);
    assert.ok(codes.includes('MB_WATCH_GRAPH_RICH_INVALID'), codes.join());
    assert.match(problems.slice(before).find((p) => p.code === 'MB_WATCH_GRAPH_RICH_INVALID')!.message, /signature does not match/);
    assert.equal(run.w.stats.decrypted, 0);

    // A forged rich item with the right subscription but a wrong clientState is ignored before decryption.
    const sub = run.w.subscriptionOf(mailbox, 'inbox')!;
    const res = await fetch(`https://127.0.0.1:${port}/notify/graph/rich`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: [{ subscriptionId: sub.id, clientState: 'nope', changeType: 'created', encryptedContent: { data: 'AA==', dataKey: 'AA==', dataSignature: 'AA==' } }] }),
      dispatcher: rig.agent,
    });
    assert.equal(res.status, 202);
    await settle(run.w);
    assert.equal(run.w.stats.rejected, 1);
  } finally {
    await run.stop();
  }
});
