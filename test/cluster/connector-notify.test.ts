/**
 * Two `mailbridge fetch` nodes (child processes of the real command) of one Graph connector with
 * change notifications on one PostgreSQL database, polling only once an hour: a delivery within
 * the test came from the subscription machinery, not the poll. Every subscription names node A's
 * listener (the public URL of a load balancer that always picks A), so a notification for a
 * mailbox node B holds reaches A, which hands it to B through the store's signals; B reads the
 * mailbox and delivers the message, once. Then B is killed with SIGKILL and a message arrives whose
 * notification A hands to nobody: once B's leases run out A takes the mailbox over with its stored
 * subscription (renewed, not a new one), reads it (the message of the gap, once), and a new message
 * is delivered by A after its change notification.
 *
 * What happened in which order is read from each node's JSON log (MAILBRIDGE_LOG_LEVEL=debug on
 * stderr): the hand-over lines, the notification lines, the waits and the deliveries per mailbox.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parse, stringify } from 'yaml';
import { ownerOf } from '../../src/cluster/ownership.ts';
import { SUBSCRIPTION_NAMESPACE } from '../../src/connector/graph.ts';
import { subscriptionKey } from '../../src/m365/subscriptions/index.ts';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { graphNotifyConnector, maildirFiles, NODE, ROOT } from '../connector/helpers.ts';
import { freePort } from '../support/ports.ts';
import { startPostgres, type PostgresServer } from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

const CONNECTOR = 'invoices';
// Enough that node B wins at least one of them (all on A: 1 in 65,536 starts).
const MAILBOXES = 16;
// The fetch command's lease time (src/cluster/ownership.ts) and a round, with room for a loaded machine.
const TAKEOVER_MS = 30_000 + 10_000 + 30_000;

let dir: string;
let sandbox: Sandbox;
let pg: PostgresServer;
let store: Store | undefined;
const children = new Set<ChildProcess>();

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mb-cluster-cnotify-'));
  chmodSync(dir, 0o711);
  sandbox = await startSandbox({ dir: join(dir, 'sandbox'), synthetic: { mailboxes: MAILBOXES } });
  pg = await startPostgres();
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await store?.close();
  await pg?.stop();
  await sandbox?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface LogLine {
  msg: string;
  mailbox?: string;
  subscription?: string;
}

interface FetchNode {
  name: string;
  child: ChildProcess;
  log: LogLine[];
  stdout: string[];
  stderr: string;
}

function startNode(name: string, configFile: string): FetchNode {
  const child = spawn(NODE, [join(ROOT, 'src/admin/cli/main.ts'), '--config', configFile, 'fetch', CONNECTOR], {
    cwd: dir,
    env: { PATH: process.env.PATH, MAILBRIDGE_LOG_LEVEL: 'debug' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const n: FetchNode = { name, child, log: [], stdout: [], stderr: '' };
  createInterface({ input: child.stdout! }).on('line', (line) => n.stdout.push(line));
  createInterface({ input: child.stderr! }).on('line', (line) => {
    n.stderr = `${n.stderr}${line}\n`.slice(-6000);
    if (!line.startsWith('{')) return;
    try {
      n.log.push(JSON.parse(line) as LogLine);
    } catch {
      // A line that is not the JSON log (the command's own messages).
    }
  });
  return n;
}

/** Index of the first log line from `from` on with `msg` (and `mailbox`, `subscription` when given), or -1. */
function find(n: FetchNode, msg: string, o: { mailbox?: string; subscription?: string; from?: number } = {}): number {
  for (let i = o.from ?? 0; i < n.log.length; i++) {
    const l = n.log[i]!;
    if (l.msg === msg && (o.mailbox === undefined || l.mailbox === o.mailbox) && (o.subscription === undefined || l.subscription === o.subscription)) return i;
  }
  return -1;
}

const count = (n: FetchNode, msg: string, mailbox: string, from = 0) => n.log.slice(from).filter((l) => l.msg === msg && l.mailbox === mailbox).length;
const copies = (md: string, subject: string) => maildirFiles(md).filter((f) => f.raw.includes(`Subject: ${subject}`)).length;

test('two fetch nodes of a Graph connector with notifications: a notification reaching the other node is handed to the holder, which delivers once; after kill -9 of the holder the survivor takes the mailbox and its subscription over and delivers after the next notification', { timeout: 300_000 }, async () => {
  const url = await pg.database('cnotify');
  store = await openStore({ driver: 'postgres', url });
  const mailboxes = Array.from({ length: MAILBOXES }, (_, i) => sandbox.synthetic!.address(i + 1));
  const example = parse(readFileSync(sandbox.configFile, 'utf8')) as { connections: Record<string, unknown> };
  const md = join(dir, 'maildir');
  const ports = [await freePort(), await freePort()];
  const publicUrl = `https://127.0.0.1:${ports[0]}`;
  const files = ports.map((port, i) => {
    const file = join(dir, `node-${i}.yaml`);
    writeFileSync(
      file,
      stringify({
        secrets: { keyFile: join(sandbox.dir, 'mailbridge.key') },
        store: { driver: 'postgres', url },
        node: { name: i === 0 ? 'nodeA' : 'nodeB' },
        connections: example.connections,
        connectors: {
          // Every node's subscriptions name node A (the balancer that always picks it); each node listens on its own port.
          [CONNECTOR]: { ...graphNotifyConnector(sandbox, { port, publicUrl, mailboxes, maildir: md }), retry: { initialSeconds: 0.1, maxSeconds: 1 } },
        },
      }),
    );
    return file;
  });
  const a = startNode('A', files[0]!);
  const b = startNode('B', files[1]!);
  const describe = () => [a, b].map((n) => `node ${n.name}: ${n.stdout.slice(-5).join(' | ')}\n${n.stderr.slice(-3000)}`).join('\n');

  const leaseHolders = async () => new Map((await store!.cluster.leases(`connector:${CONNECTOR}/`)).filter((l) => l.expiresAt > Date.now()).map((l) => [l.name.slice(`connector:${CONNECTOR}/`.length), l.owner]));
  const onNode = (owner: string | undefined, name: string) => owner?.startsWith(`node${name}-`) === true;
  const subscriptionsOf = (mb: string) => sandbox.graph.subscriptions().filter((s) => s.mailbox.toLowerCase() === mb.toLowerCase());

  // A mailbox M that B holds and keeps (B wins it among both nodes: it does not move to A meanwhile),
  // subscribed, and B waiting on it twice: after its first round and after the round its
  // subscription's setup asked for.
  let m = '';
  await waitFor(
    async () => {
      const nodes = await store!.cluster.nodes();
      const ids = ['A', 'B'].map((name) => nodes.find((x) => x.name === `node${name}`)?.id);
      if (ids.some((id) => id === undefined)) return false;
      const holders = await leaseHolders();
      const keeps = (mb: string) => ownerOf(`connector:${CONNECTOR}/${mb.toLowerCase()}`, ids as string[]) === ids[1];
      m = mailboxes.find((mb) => keeps(mb) && onNode(holders.get(mb.toLowerCase()), 'B') && subscriptionsOf(mb).length === 1 && count(b, 'connector: waiting for new mail', mb) >= 2) ?? '';
      return m !== '';
    },
    120_000,
    () => `a mailbox held by node B, subscribed and waiting:\n${describe()}`,
    200,
  );
  const sub = subscriptionsOf(m)[0]!;
  assert.equal(sub.notificationUrl, `${publicUrl}/notify/connector/${CONNECTOR}`);

  // 1. New mail into M: Graph calls A, A hands the notification to B, B delivers it.
  const fromB = b.log.length;
  sandbox.synthetic!.deliver(m, { from: 'bob@fabrikam.test', subject: 'Rechnung 1' });
  await waitFor(() => copies(md, 'Rechnung 1') > 0, 60_000, () => `Rechnung 1 delivered:\n${describe()}`);
  assert.ok(find(a, 'graph source: a notification for a mailbox another node holds; handing it over', { subscription: sub.id }) >= 0, 'node A handed the notification over');
  const handed = find(b, 'graph source: a notification another node received, handed over to this node', { subscription: sub.id, from: fromB });
  assert.ok(handed >= 0, 'node B received the hand-over');
  // The log line follows the maildir's file (the checkpoint is written in between).
  const deliveredByB = await waitFor(() => find(b, 'delivered', { mailbox: m, from: fromB }) + 1, 30_000, () => `node B's delivery line:\n${describe()}`) - 1;
  assert.ok(deliveredByB > handed, `node B delivered it after the hand-over (hand-over at ${handed}, delivery at ${deliveredByB})`);
  await waitFor(() => b.stdout.some((l) => l.startsWith(`${m} INBOX: 1 delivered`)), 30_000, () => `node B's line for the delivery:\n${describe()}`);
  assert.equal(find(a, 'delivered', { mailbox: m }), -1, 'node A delivered nothing of M');
  // A marker after it: a second copy would have arrived before the marker.
  sandbox.synthetic!.deliver(m, { from: 'bob@fabrikam.test', subject: 'Marker 1' });
  await waitFor(() => copies(md, 'Marker 1') > 0, 60_000, () => `Marker 1 delivered:\n${describe()}`);
  assert.equal(copies(md, 'Rechnung 1'), 1, 'Rechnung 1 delivered exactly once');
  // Each node subscribed only what it holds: one subscription per mailbox, not one per node (once
  // every mailbox's first holder has subscribed it; the spread may still be settling).
  await waitFor(() => mailboxes.every((mb) => subscriptionsOf(mb).length > 0), 60_000, () => `every mailbox subscribed:\n${describe()}`);
  for (const mb of mailboxes) assert.equal(subscriptionsOf(mb).length, 1, `${mb}: one subscription`);

  // 2. kill -9 of B: A takes M over once B's leases ran out, with M's stored subscription. Mail
  // that comes meanwhile is handed to nobody (no node holds M) and is read when A takes M over.
  const fromA = a.log.length;
  const onB = [...(await leaseHolders()).values()].filter((o) => onNode(o, 'B')).length;
  const killedAt = Date.now();
  b.child.kill('SIGKILL');
  sandbox.synthetic!.deliver(m, { from: 'bob@fabrikam.test', subject: 'Zwischendurch' });
  await waitFor(() => find(a, 'graph source: a notification for a mailbox another node holds; handing it over', { subscription: sub.id, from: fromA }) >= 0, 30_000, () => `node A handing the notification to nobody:\n${describe()}`);
  await waitFor(async () => onNode((await leaseHolders()).get(m.toLowerCase()), 'A'), TAKEOVER_MS, () => `M on node A:\n${describe()}`, 200);
  const takeoverMs = Date.now() - killedAt;
  await waitFor(() => find(a, 'delivered', { mailbox: m, from: fromA }) >= 0, 60_000, () => `node A delivering the mail of the gap:\n${describe()}`);
  // The subscription was taken over: the same one, renewed by A (a later expiry), still the stored one.
  await waitFor(() => subscriptionsOf(m).length === 1 && subscriptionsOf(m)[0]!.expirationDateTime > sub.expirationDateTime, 60_000, () => `M's subscription renewed by A:\n${describe()}`);
  assert.equal(subscriptionsOf(m)[0]!.id, sub.id, 'the same subscription, not a new one');
  const rec = JSON.parse((await store.kv.get(SUBSCRIPTION_NAMESPACE, subscriptionKey(m, 'INBOX', `s\t${CONNECTOR}\t`))) ?? '{}') as { id?: string; clientState?: string };
  assert.equal(rec.id, sub.id);
  assert.match(rec.clientState ?? '', /^enc:v1:/);
  // A's rounds for the takeover are over: its first, and the one the subscription's setup asked for.
  await waitFor(() => count(a, 'connector: waiting for new mail', m, fromA) >= 2, 60_000, () => `node A waiting on M:\n${describe()}`);

  const beforeSend = a.log.length;
  sandbox.synthetic!.deliver(m, { from: 'bob@fabrikam.test', subject: 'Rechnung 2' });
  await waitFor(() => copies(md, 'Rechnung 2') > 0, 60_000, () => `Rechnung 2 delivered:\n${describe()}`);
  const notified = find(a, 'graph source: change notification', { mailbox: m, from: beforeSend });
  const deliveredByA = await waitFor(() => find(a, 'delivered', { mailbox: m, from: beforeSend }) + 1, 30_000, () => `node A's delivery line:\n${describe()}`) - 1;
  assert.ok(notified >= 0, 'node A got the change notification');
  assert.ok(deliveredByA > notified, `node A delivered after the notification (notification at ${notified}, delivery at ${deliveredByA})`);
  sandbox.synthetic!.deliver(m, { from: 'bob@fabrikam.test', subject: 'Marker 2' });
  await waitFor(() => copies(md, 'Marker 2') > 0, 60_000, () => `Marker 2 delivered:\n${describe()}`);
  assert.equal(copies(md, 'Rechnung 2'), 1, 'Rechnung 2 delivered exactly once');
  assert.equal(copies(md, 'Zwischendurch'), 1, 'the mail of the gap delivered exactly once');

  console.log(`# connector notifications on two nodes: ${MAILBOXES} mailboxes, ${onB} on node B; after kill -9 of B node A held its mailbox ${takeoverMs} ms later (lease 30 s), with its subscription renewed, not recreated`);
  a.child.kill('SIGTERM');
  const [code] = await new Promise<[number | null]>((resolve) => (a.child.exitCode !== null ? resolve([a.child.exitCode]) : a.child.once('exit', (c) => resolve([c]))));
  assert.equal(code, 0, describe());
});
