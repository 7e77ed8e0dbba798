/**
 * The Graph source's several-node half in one process, against the sandbox Graph on a real Dovecot:
 * two sources of one connector stand for two nodes sharing the store's signals (SQLite's are in
 * memory, as PostgreSQL's NOTIFY is between processes). The public URL names node A's listener
 * only. Node B holds the mailbox: a notification reaches A, which hands it to B; B's waiting
 * session wakes with the folder marked. When B's listening connection to the database had a gap,
 * every folder B holds is marked. A node whose lease moved on writes no subscription record.
 * test/cluster/connector-notify.test.ts runs the same with `mailbridge fetch` nodes on PostgreSQL.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectorSchema, type GraphNotificationsConfig } from '../../src/connector/config.ts';
import { graphSource, SUBSCRIPTION_NAMESPACE, type GraphSourceFactory } from '../../src/connector/graph.ts';
import type { MbError } from '../../src/errors/index.ts';
import { subscriptionKey } from '../../src/m365/subscriptions/index.ts';
import type { Fence, Signals } from '../../src/store/index.ts';
import { APP, INFO, rfc822, startRig, USER, type Rig } from '../sandbox/graph/helpers.ts';
import { freePort } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';
import { tempStore } from './helpers.ts';

let rig: Rig;
let st: Awaited<ReturnType<typeof tempStore>>;
const files: Record<string, string> = {};
const readFile = (path: string) => files[path] ?? assert.fail(`unexpected file ${path}`);

before(async () => {
  rig = await startRig();
  st = await tempStore();
  const tls = rig.ca.issueServer(['127.0.0.1']);
  files['/tls/cert.pem'] = tls.certPem;
  files['/tls/key.pem'] = tls.keyPem;
});
after(async () => {
  await st?.close();
  await rig?.close();
});

/** The notifications section of a node listening on `port`, with Graph calling `publicPort`. */
function notifications(port: number, publicPort: number): GraphNotificationsConfig {
  const c = connectorSchema.parse({
    connection: 'contoso',
    source: { kind: 'graph', notifications: { publicUrl: `https://127.0.0.1:${publicPort}`, listen: { host: '127.0.0.1', port, certFile: '/tls/cert.pem', keyFile: '/tls/key.pem' } } },
    mailboxes: [INFO],
    destination: { kind: 'maildir', path: '/unused' },
  });
  return c.source.kind === 'graph' ? c.source.notifications! : assert.fail('graph source');
}

function source(connector: string, n: GraphNotificationsConfig, problems: MbError[] = []): GraphSourceFactory {
  return graphSource({
    connector,
    baseUrl: `${rig.graph.url}/v1.0`,
    tokens: () => rig.appToken(APP.relay),
    ca: rig.ca.certPem,
    notice: (_mailbox, e) => problems.push(e),
    notifications: { config: n, kv: st.store.kv, readFile, tickMs: 3_600_000 },
  });
}

/** The lease of a mailbox taken by `owner` now, as the ownership round would. */
async function lease(connector: string, mailbox: string, owner: string): Promise<Fence> {
  const name = `connector:${connector}/${mailbox}`;
  const got = await st.store.cluster.acquire(name, owner, 60_000);
  assert.ok(got.ok, `lease ${name} for ${owner}`);
  return { lease: name, owner, epoch: got.epoch };
}

test('two nodes: a notification reaching the node that does not hold the mailbox wakes the holder; a gap in listening marks every held folder', { timeout: 60_000 }, async () => {
  const mailbox = USER.alice.upn;
  const [portA, portB] = [await freePort(), await freePort()];
  // Node B's signals, with the gap handler the store would call after listening resumed.
  const gaps: Array<() => void> = [];
  const signalsB: Signals = { ...st.store.signals, subscribe: (channel, fn, onGap) => (onGap && gaps.push(onGap), st.store.signals.subscribe(channel, fn, onGap)) };
  const a = source('shared', notifications(portA, portA));
  const b = source('shared', notifications(portB, portA));
  const controller = new AbortController();
  try {
    await a.startShared!(st.store.signals);
    await b.startShared!(signalsB);
    b.hold!({ address: mailbox, folders: ['INBOX'] }, st.store.kv.fenced(await lease('shared', mailbox, 'nodeB')));
    await b.idle();
    const sub = rig.graph.subscriptions().filter((s) => s.mailbox === mailbox);
    assert.equal(sub.length, 1, 'node B subscribed the mailbox it holds');
    assert.equal(sub[0]!.notificationUrl, `https://127.0.0.1:${portA}/notify/connector/shared`);
    const session = await b.open(mailbox, controller.signal);
    // The new subscription marked the folder (notifications before it are unknown): read, as a worker would.
    assert.equal(await session.wait('INBOX', 0, controller.signal), 'changed');
    assert.deepEqual(session.changedFolders!(), ['INBOX']);

    const waiting = session.wait('INBOX', 30_000, controller.signal);
    await rig.dovecot.deliver({ from: 'anna@fabrikam.test', to: [mailbox] }, Buffer.from(rfc822({ from: 'anna@fabrikam.test', to: mailbox, subject: 'Zu Knoten B' })));
    assert.equal(await waiting, 'changed', 'node B woken by the notification node A received');
    assert.deepEqual(session.changedFolders!(), ['INBOX']);
    // Node A holds nothing: its session for the mailbox was never marked.
    assert.deepEqual((await a.open(mailbox, controller.signal)).changedFolders!(), []);

    // Listening resumed after the database was away: the folder is read though no notification came.
    assert.equal(gaps.length, 1);
    const afterGap = session.wait('INBOX', 30_000, controller.signal);
    gaps[0]!();
    assert.equal(await afterGap, 'changed');
    assert.deepEqual(session.changedFolders!(), ['INBOX']);

    // Released: B no longer looks after the subscription, which stays stored for the next holder.
    await b.release!(mailbox);
    assert.equal(rig.graph.subscriptions().filter((s) => s.mailbox === mailbox).length, 1);
    const rec = JSON.parse((await st.store.kv.get(SUBSCRIPTION_NAMESPACE, subscriptionKey(mailbox, 'INBOX', 's\tshared\t'))) ?? '{}') as { id?: string };
    assert.equal(rec.id, sub[0]!.id);
  } finally {
    controller.abort();
    await a.close!();
    await b.close!();
  }
});

test('a node whose lease of the mailbox moved on writes no subscription record; the holder\'s stands', { timeout: 60_000 }, async () => {
  const mailbox = INFO;
  const port = await freePort();
  const stale = await lease('fenced', mailbox, 'old');
  // The old node gives the lease up and another takes it: a new epoch.
  await st.store.cluster.release(stale);
  const current = await lease('fenced', mailbox, 'new');
  assert.ok(current.epoch > stale.epoch);
  const problems: MbError[] = [];
  const old = source('fenced', notifications(port, port), problems);
  try {
    await old.startShared!(undefined);
    old.hold!({ address: mailbox, folders: ['INBOX'] }, st.store.kv.fenced(stale));
    await old.idle();
    await waitFor(() => problems.some((p) => p.code === 'MB_CLUSTER_LEASE_LOST'), 10_000, 'the refused write reported');
    assert.equal(await st.store.kv.get(SUBSCRIPTION_NAMESPACE, subscriptionKey(mailbox, 'INBOX', 's\tfenced\t')), undefined, 'nothing written by the node that lost the mailbox');
    await old.release!(mailbox);
  } finally {
    await old.close!();
  }
  const holder = source('fenced', notifications(port, port));
  try {
    await holder.startShared!(undefined);
    holder.hold!({ address: mailbox, folders: ['INBOX'] }, st.store.kv.fenced(current));
    await holder.idle();
    const rec = JSON.parse((await st.store.kv.get(SUBSCRIPTION_NAMESPACE, subscriptionKey(mailbox, 'INBOX', 's\tfenced\t'))) ?? '{}') as { id?: string };
    assert.ok(rec.id && rig.graph.subscriptions().some((s) => s.id === rec.id), 'the holder\'s subscription is stored');
  } finally {
    await holder.close!();
  }
});
