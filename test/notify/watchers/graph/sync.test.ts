/**
 * Delta rounds of the Graph watcher (src/notify/watchers/graph/sync.ts) against the sandbox Graph
 * on a real Dovecot: baseline, new mail with sender/subject/unread count, read-state changes (and
 * flag changes that are not), deletions, a lost delta state, publish-before-cursor, and the client's
 * Retry-After handling and per-mailbox concurrency limit.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MbError } from '../../../../src/errors/index.ts';
import { GraphClient } from '../../../../src/m365/graph.ts';
import { cursorKey, KV_NAMESPACE, syncFolder, type SyncDeps } from '../../../../src/notify/watchers/graph/sync.ts';
import type { Publish } from '../../../../src/notify/watchers/types.ts';
import { APP, startRig, USER, type Rig } from '../../../sandbox/graph/helpers.ts';
import { deliver, recorder as storeRecorder, type TempStore, tempStore } from './helpers.ts';

let rig: Rig;
let t: TempStore;
before(async () => {
  rig = await startRig();
  t = await tempStore();
});
after(async () => {
  await t?.cleanup();
  await rig?.close();
});

function client(perMailbox = 4): GraphClient {
  return new GraphClient({
    baseUrl: `${rig.graph.url}/v1.0`,
    tokens: () => rig.appToken(APP.relay),
    ca: rig.ca.certPem,
    perMailbox,
    immutableIds: true,
  });
}

function deps(c: GraphClient, publish: Publish, problems: MbError[] = []): SyncDeps {
  return { client: c, kv: t.store.kv, publish, now: Date.now, pageSize: 2, changeTypes: ['created', 'updated', 'deleted'], problem: (_m, e) => problems.push(e) };
}


async function unread(address: string): Promise<number> {
  const res = await rig.call('GET', `/v1.0/users/${address}/mailFolders/inbox`, { token: await rig.appToken(APP.relay) });
  return res.json<{ unreadItemCount: number }>().unreadItemCount;
}

test('baseline reports nothing; new mail is one message.new with sender, subject, receivedAt and the unread count; a repeat round reports nothing', async () => {
  const mailbox = USER.alice.upn;
  await deliver(rig, mailbox, 'Before watching');
  const c = client();
  const rec = storeRecorder(t.store);
  try {
    const first = await syncFolder(deps(c, rec.publish), mailbox, 'inbox');
    assert.equal(first.baseline, true);
    assert.equal(rec.events.length, 0);

    await deliver(rig, mailbox, 'Rechnung März');
    await deliver(rig, mailbox, 'Second one');
    const second = await syncFolder(deps(c, rec.publish), mailbox, 'inbox');
    assert.equal(second.published, 2);
    const bySubject = new Map(rec.events.map((e) => [e.type === 'message.new' ? e.subject : '', e]));
    const e = bySubject.get('Rechnung März');
    assert.ok(e && e.type === 'message.new', JSON.stringify(rec.events));
    assert.deepEqual(e.sender, { address: 'anna@fabrikam.test', name: 'Anna Schmidt' });
    assert.equal(e.mailbox, mailbox);
    assert.equal(e.folder, 'inbox');
    assert.ok(!Number.isNaN(Date.parse(e.receivedAt)));
    assert.equal(e.unreadCount, await unread(mailbox));
    assert.equal(e.unreadCount, 3);

    const third = await syncFolder(deps(c, rec.publish), mailbox, 'inbox');
    assert.equal(third.published + third.duplicates, 0);
    assert.equal(rec.events.length, 2);
  } finally {
    await c.close();
  }
});

test('marking read gives one read-state event with the new count; a flag change alone gives none; a deletion gives message.deleted', async () => {
  const mailbox = USER.bob.upn;
  const c = client();
  const rec = storeRecorder(t.store);
  const token = await rig.appToken(APP.relay);
  try {
    await syncFolder(deps(c, rec.publish), mailbox, 'inbox');
    await deliver(rig, mailbox, 'Read me');
    await deliver(rig, mailbox, 'Keep me');
    await syncFolder(deps(c, rec.publish), mailbox, 'inbox');
    const created = rec.events.filter((e) => e.type === 'message.new');
    assert.equal(created.length, 2);
    const target = created.find((e) => e.type === 'message.new' && e.subject === 'Read me')!;
    const other = created.find((e) => e.type === 'message.new' && e.subject === 'Keep me')!;
    const before = await unread(mailbox);

    let res = await rig.call('PATCH', `/v1.0/users/${mailbox}/messages/${target.messageId}`, { token, json: { isRead: true } });
    assert.equal(res.status, 200, res.text);
    res = await rig.call('PATCH', `/v1.0/users/${mailbox}/messages/${other.messageId}`, { token, json: { flag: { flagStatus: 'flagged' } } });
    assert.equal(res.status, 200, res.text);
    rec.events.length = 0;
    await syncFolder(deps(c, rec.publish), mailbox, 'inbox');
    assert.equal(rec.events.length, 1, JSON.stringify(rec.events));
    const read = rec.events[0]!;
    assert.equal(read.type, 'message.read-state');
    assert.equal(read.type === 'message.read-state' && read.read, true);
    assert.equal(read.messageId, target.messageId);
    assert.equal(read.type === 'message.read-state' && read.unreadCount, before - 1);

    // Unread again: a second read-state event (a new change key), not a duplicate of the first.
    res = await rig.call('PATCH', `/v1.0/users/${mailbox}/messages/${target.messageId}`, { token, json: { isRead: false } });
    assert.equal(res.status, 200);
    res = await rig.call('DELETE', `/v1.0/users/${mailbox}/messages/${other.messageId}`, { token });
    assert.equal(res.status, 204);
    rec.events.length = 0;
    await syncFolder(deps(c, rec.publish), mailbox, 'inbox');
    const kinds = rec.events.map((e) => `${e.type}:${e.messageId === target.messageId ? 'target' : 'other'}`).sort();
    assert.deepEqual(kinds, ['message.deleted:other', 'message.read-state:target']);
    const again = rec.events.find((e) => e.type === 'message.read-state');
    assert.ok(again && again.type === 'message.read-state' && again.read === false && again.unreadCount === before - 1);
    assert.notEqual(again.id, read.id);
  } finally {
    await c.close();
  }
});

test('a lost delta state (410) resynchronises: mail that came during the gap is reported once, with MB_WATCH_GRAPH_RESYNC', async () => {
  const mailbox = USER.dave.upn;
  const c = client();
  const rec = storeRecorder(t.store);
  const problems: MbError[] = [];
  try {
    await deliver(rig, mailbox, 'Old');
    await syncFolder(deps(c, rec.publish, problems), mailbox, 'inbox');
    await deliver(rig, mailbox, 'Announced');
    await syncFolder(deps(c, rec.publish, problems), mailbox, 'inbox');
    assert.equal(rec.events.length, 1);

    await deliver(rig, mailbox, 'During the gap');
    rig.graph.expireDeltaTokens();
    const r = await syncFolder(deps(c, rec.publish, problems), mailbox, 'inbox');
    assert.equal(r.resync, true);
    assert.deepEqual(problems.map((p) => p.code), ['MB_WATCH_GRAPH_RESYNC']);
    assert.deepEqual(rec.events.map((e) => (e.type === 'message.new' ? e.subject : e.type)), ['Announced', 'During the gap']);
    // The new delta link works: nothing more.
    const next = await syncFolder(deps(c, rec.publish, problems), mailbox, 'inbox');
    assert.equal(next.resync, false);
    assert.equal(rec.events.length, 2);
  } finally {
    await c.close();
  }
});

test('the cursor moves only after the events were published: a failed publish repeats the round, and the store keeps each event once', async () => {
  const mailbox = USER.alice.upn;
  const c = client();
  const rec = storeRecorder(t.store);
  try {
    await syncFolder(deps(c, rec.publish), mailbox, 'inbox');
    const saved = await t.store.kv.get(KV_NAMESPACE, cursorKey(mailbox, 'inbox'));
    await deliver(rig, mailbox, 'Publish fails once');
    let calls = 0;
    const flaky: Publish = async (e) => {
      calls++;
      if (calls === 1) {
        // Stored, then the process "fails" before the cursor is written.
        await rec.publish(e);
        throw new Error('store went away');
      }
      return rec.publish(e);
    };
    await assert.rejects(syncFolder(deps(c, flaky), mailbox, 'inbox'), /store went away/);
    assert.equal(await t.store.kv.get(KV_NAMESPACE, cursorKey(mailbox, 'inbox')), saved);
    const r = await syncFolder(deps(c, flaky), mailbox, 'inbox');
    assert.equal(r.duplicates, 1);
    assert.equal(rec.events.filter((e) => e.type === 'message.new' && e.subject === 'Publish fails once').length, 1);
    assert.notEqual(await t.store.kv.get(KV_NAMESPACE, cursorKey(mailbox, 'inbox')), saved);
  } finally {
    await c.close();
  }
});

test('429 with Retry-After is waited out and reported; at most 4 requests per mailbox are in flight', async () => {
  const mailbox = USER.bob.upn;
  const throttled: Array<{ status: number; ms: number }> = [];
  const c = new GraphClient({
    baseUrl: `${rig.graph.url}/v1.0`,
    tokens: () => rig.appToken(APP.relay),
    ca: rig.ca.certPem,
    perMailbox: 4,
    immutableIds: false,
    onThrottle: (_m, status, ms) => throttled.push({ status, ms }),
  });
  try {
    rig.graph.throttle(mailbox, 1, 1);
    const r = await c.call(mailbox, 'GET', c.url(mailbox, '/mailFolders/inbox'));
    assert.equal(r.status, 200);
    assert.equal(throttled.length, 1);
    assert.deepEqual(throttled[0], { status: 429, ms: 1000 });

    const release = rig.graph.hold(mailbox);
    const calls = Array.from({ length: 10 }, () => c.call(mailbox, 'GET', c.url(mailbox, '/mailFolders/inbox')));
    const deadline = Date.now() + 10_000;
    while (rig.graph.inFlight(mailbox) < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(rig.graph.inFlight(mailbox), 4);
    assert.equal(c.inFlight(mailbox), 4);
    release();
    const all = await Promise.all(calls);
    assert.deepEqual([...new Set(all.map((x) => x.status))], [200]);
    // No 429 was provoked: the client never exceeded Graph's MailboxConcurrency limit.
    assert.equal(throttled.length, 1);
  } finally {
    await c.close();
  }
});

test('a burst read in one round is published in arrival order (Graph lists newest first)', async () => {
  const mailbox = USER.bob.upn;
  const c = client();
  const rec = storeRecorder(t.store);
  try {
    await syncFolder(deps(c, rec.publish), mailbox, 'inbox');
    const subjects = ['Burst 0', 'Burst 1', 'Burst 2', 'Burst 3', 'Burst 4'];
    for (const s of subjects) await deliver(rig, mailbox, s);
    const r = await syncFolder(deps(c, rec.publish), mailbox, 'inbox');
    assert.equal(r.published, 5);
    assert.deepEqual(rec.events.map((e) => (e.type === 'message.new' ? e.subject : e.type)), subjects);
  } finally {
    await c.close();
  }
});
