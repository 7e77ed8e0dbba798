/**
 * The database restarted under load, for a Graph watch group shared by three gateway processes on
 * one PostgreSQL (issue 14: "the database restarted under load — nodes reconnect, nothing accepted
 * is lost"). The connectors' part is restart.test.ts, the relay's test/relay/crash/cluster.test.ts.
 *
 * Mail keeps arriving in every mailbox while PostgreSQL is restarted twice: once the hard way and
 * at once (SIGQUIT and start, shorter than the lease: the nodes keep their shards, and the change
 * notifications handed over through the store's signals during the restart are lost with the
 * connection), once for longer than the lease (every node gives its shards up and takes them again
 * with a new epoch). Every message gives its event at the webhook, none lost; events sent twice
 * (a delivery whose outcome could not be recorded) are counted and printed.
 *
 * On a timeout the message names each missing event (subject and mailbox), what every node
 * watches, and the warnings of every node's log since the restart.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { stringify } from 'yaml';
import type { NotifyEvent } from '../../src/notify/events.ts';
import { shardsOf } from '../../src/notify/watchers/service.ts';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { freePort } from '../support/ports.ts';
import { startPostgres, type PostgresServer } from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';
import { atRendezvousOwners, sandboxInbound, startEventReceiver, subscribeWebhook, watchGatewayConfig, type InboundListen } from '../support/cluster.ts';

const MAILBOXES = 9;
const LEASE_MS = 3000;
const NODE = join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'node');

let dir: string;
let sandbox: Sandbox;
let db: PostgresServer;
let receiver: Server;
let inbound: InboundListen;
const events: NotifyEvent[] = [];
const children = new Set<ChildProcess>();

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mb-cluster-watch-restart-'));
  chmodSync(dir, 0o711);
  sandbox = await startSandbox({ dir: join(dir, 'sandbox'), synthetic: { mailboxes: MAILBOXES } });
  db = await startPostgres();
  inbound = sandboxInbound(sandbox, dir);
  receiver = await startEventReceiver(events);
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  receiver?.closeAllConnections();
  receiver?.close();
  await db?.stop();
  await sandbox?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const exited = (c: ChildProcess) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)));

test('three gateways share a Graph watch group; PostgreSQL restarted twice while mail arrives: every event at the webhook, none lost', { timeout: 300_000 }, async () => {
  const url = await db.database('watchrestart');
  const mailboxes = Array.from({ length: MAILBOXES }, (_, i) => sandbox.synthetic!.address(i + 1));
  // Shards of one mailbox are cut by hash: some hold none (no lease), some several.
  const SHARDS = shardsOf(mailboxes.map((address) => ({ address, folders: [] })), 1).filter((s) => s.length > 0).length;
  const ports = [await freePort(), await freePort(), await freePort()];
  const nodes = ports.map((port, i) => {
    const configFile = join(dir, `node${i + 1}.yaml`);
    const logFile = join(dir, `node${i + 1}.log`);
    writeFileSync(
      configFile,
      stringify(
        watchGatewayConfig(sandbox, {
          store: { driver: 'postgres', url },
          node: `node${i + 1}`,
          retry: { maxSeconds: 2 },
          watch: {
            // Every subscription names the first node: the load balancer that always picks it.
            publicUrl: `https://127.0.0.1:${ports[0]}`,
            listen: inbound(port),
            groups: { cloud: { kind: 'graph', listeners: [{ connection: 'sandbox' }], mailboxes, graph: { baseUrl: `${sandbox.graph.url}/v1.0` } } },
          },
        }),
      ),
    );
    return { name: `node${i + 1}`, configFile, logFile, watching: 0, owns: 0, lostAll: false, stderr: '', child: undefined as ChildProcess | undefined };
  });
  await subscribeWebhook({ url, sandboxDir: sandbox.dir, id: 'sub_restart', mailboxes, hook: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, secretByte: 3 });

  for (const n of nodes) {
    // Deliveries claimed by a node whose outcome could not be recorded go out again once the claim (the lease time) ran out.
    const child = spawn(NODE, [join(import.meta.dirname, 'fixtures', 'gateway-child.ts'), JSON.stringify({ configFile: n.configFile, logFile: n.logFile, shardSize: 1, leaseMs: LEASE_MS })], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_EXTRA_CA_CERTS: sandbox.caFile },
    });
    n.child = child;
    children.add(child);
    child.stderr!.on('data', (d: Buffer) => (n.stderr = (n.stderr + d.toString()).slice(-2000)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('WATCHING ')) n.watching = Number(line.slice(9));
      else if (line.startsWith('OWNS ')) {
        n.owns = Number(line.slice(5));
        if (n.owns === 0) n.lostAll = true;
      }
    });
  }
  const total = () => nodes.reduce((k, n) => k + n.watching, 0);
  const owned = () => nodes.reduce((k, n) => k + n.owns, 0);
  const spread = () => `${nodes.map((n) => n.watching).join('/')} (shards held ${nodes.map((n) => n.owns).join('/')})`;

  // Mail to every mailbox, one subject per message; which mailbox each went to, for the report.
  let seq = 0;
  const sent = new Map<string, string>();
  const send = () => {
    for (const mb of mailboxes) {
      const subject = `restart-${++seq}`;
      sent.set(subject, mb);
      sandbox.synthetic!.deliver(mb, { from: 'bob@fabrikam.test', subject });
    }
  };
  const arrived = () => {
    const got = new Map<string, number>();
    for (const e of events) if (e.type === 'message.new' && e.subject && sent.has(e.subject)) got.set(e.subject, (got.get(e.subject) ?? 0) + 1);
    return got;
  };
  const missing = () => {
    const got = arrived();
    return [...sent.keys()].filter((s) => !got.has(s));
  };
  let logFrom = new Map(nodes.map((n) => [n.name, 0]));
  /** What a failed wait shows: the missing events, the spread, each node's exit and its log's warnings since the outage. */
  const report = (what: string) => () => {
    const lost = missing();
    const logs = nodes.map((n) => {
      const text = existsSync(n.logFile) ? readFileSync(n.logFile, 'utf8') : '';
      const lines = text.slice(logFrom.get(n.name)).split('\n').filter((l) => l.length > 0);
      // The failed hand-overs of notifications while the database was down are many and alike: counted, not shown.
      const handoffs = lines.filter((l) => l.includes('handing a notification to its node failed')).length;
      const shown = lines.filter((l) => !l.includes('handing a notification to its node failed')).map((l) => {
        const r = JSON.parse(l) as Record<string, unknown>;
        return `${new Date(Number(r.time)).toISOString().slice(11, 23)} ${String(r.msg)}${r.lease ? ` ${String(r.lease)}` : ''}${r.shard ? ` ${String(r.shard)}` : ''}${r.mailbox ? ` ${String(r.mailbox)}` : ''}${r.err ? ` (${String(r.err)})` : ''}`;
      });
      const exit = n.child!.exitCode ?? n.child!.signalCode ?? 'running';
      return `--- ${n.name} (${exit}), ${handoffs} failed hand-overs; the last 25 log lines since the outage:\n${shown.slice(-25).join('\n')}${n.stderr ? `\nstderr: ${n.stderr}` : ''}`;
    });
    return `${what}: ${lost.length} of ${sent.size} events missing: ${lost.map((s) => `${s} (${sent.get(s)})`).join(', ')}; watching ${spread()}\n${logs.join('\n')}`;
  };
  /** Where each missing event stands in the store: never published (no watcher read it) or its delivery's state. */
  const inStore = async (subjects: string[]) => {
    const c = new pg.Client({ connectionString: url });
    try {
      await c.connect();
      const lines = [];
      for (const s of subjects) {
        const { rows } = await c.query(
          `SELECT e.id, e.created_at, d.state, d.attempts, d.claimed_by, d.claimed_until, d.next_attempt_at, d.last_error FROM notify_events e
           LEFT JOIN notify_deliveries d ON d.event_id = e.id WHERE e.body LIKE $1`,
          [`%"subject":"${s}"%`],
        );
        lines.push(`${s}: ${rows.length === 0 ? 'never published' : JSON.stringify(rows)}`);
      }
      return lines.join('\n');
    } catch (err) {
      return `the store could not be read: ${(err as Error).message}`;
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  /** Waits for every event sent so far; a timeout also says where each missing one stands in the store. */
  const everyEvent = async (what: string) => {
    try {
      await waitFor(() => missing().length === 0, 60_000, report(what), 100);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- in the store:\n${await inStore(missing())}`, { cause: err });
    }
  };

  await waitFor(async () => total() === MAILBOXES && owned() === SHARDS && (await atRendezvousOwners(url, 'cloud', mailboxes, LEASE_MS)), 90_000, report('every mailbox watched, each shard at its node'), 100);
  for (const n of nodes) n.lostAll = false;
  send();
  await everyEvent('the first events');

  const markLogs = () => (logFrom = new Map(nodes.map((n) => [n.name, existsSync(n.logFile) ? readFileSync(n.logFile, 'utf8').length : 0])));
  /** Runs `fn` while a message goes into every mailbox every 300 ms; the load stops however `fn` ends. */
  const underLoad = async <T>(fn: () => Promise<T>): Promise<T> => {
    let loading = true;
    const load = (async () => {
      while (loading) {
        send();
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    try {
      return await fn();
    } finally {
      loading = false;
      await load;
    }
  };

  // 1. Restarted at once, shorter than the lease: the nodes may keep their shards, while the
  //    notifications handed over during the restart are lost with the signals' connection.
  markLogs();
  const restartMs = await underLoad(async () => {
    const t1 = Date.now();
    await db.restart();
    const ms = Date.now() - t1;
    // The load goes on for ten more messages per mailbox after the server is back.
    const sentBack = sent.size;
    await waitFor(() => sent.size >= sentBack + 10 * MAILBOXES, 30_000, 'mail sent after the restart');
    return ms;
  });
  // Whether a node's shards ran out during it (a round late under load) is only reported.
  const keptShards = nodes.filter((n) => !n.lostAll).length;
  // No more mail: every message sent so far must come by itself (no later message's delta may find it).
  await everyEvent('every event after the restart at once, with no mail after it');

  // 2. Down for longer than the lease: every node gives its shards up, then takes them again.
  markLogs();
  const { downMs, resumedMs } = await underLoad(async () => {
    const downAt = Date.now();
    await db.kill();
    await waitFor(() => owned() === 0, LEASE_MS + 15_000, report('every shard given up while the database is down'));
    await db.start();
    const upAt = Date.now();
    await waitFor(() => total() === MAILBOXES && owned() === SHARDS, 60_000, report('every mailbox watched again after the database came back'));
    return { downMs: upAt - downAt, resumedMs: Date.now() - upAt };
  });
  await everyEvent('every event after the outage, with no mail after it');

  const got = arrived();
  assert.deepEqual(missing(), [], 'no event lost');
  const twice = [...got.values()].filter((k) => k > 1).length;
  console.log(
    `# cluster watch database restart: ${MAILBOXES} mailboxes on 3 nodes (lease ${LEASE_MS} ms), ${sent.size} messages; restart at once ${restartMs} ms (${keptShards} of 3 nodes kept their shards); down ${downMs} ms, every mailbox watched again ${resumedMs} ms after; 0 lost, ${twice} delivered twice`,
  );
  for (const n of nodes) n.child!.kill('SIGTERM');
  await Promise.all(nodes.map((n) => exited(n.child!)));
});
