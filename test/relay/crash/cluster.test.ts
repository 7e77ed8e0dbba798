/**
 * Three relay nodes on one PostgreSQL database (child processes of the crash test's child.ts, each
 * with its own SMTP port and relay folder), under load from SMTP clients spread over the three:
 *
 * - kill -9 of one node: every message that got a 250 (from any node) is delivered; the killed
 *   node's claims are taken over by the survivors once its lease has run out; duplicates are counted
 *   and reported, and allowed only for messages the killed node had in flight (its first delivery
 *   is the killed node's, at most maxConcurrency of them);
 * - the database restarted under load: the nodes reconnect, nothing accepted is lost, and while it
 *   is down the clients get 4xx replies — no 5xx, and no session left without an answer.
 *
 * Bodies live in the database (any node delivers any message): the test checks that messages
 * accepted by one node were delivered by another, and that no body is left after the drain.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import pg from 'pg';
import { startPostgres, type PostgresServer } from '../../support/postgres.ts';
import { tempDir } from '../../support/temp.ts';
import { waitFor } from '../../support/wait.ts';
import { deliveredSeqs, prng, sendLoop, sentLog, startChild, type Sent, type Started } from './harness.ts';

const NODES = 3;
const SENDERS_PER_NODE = 3;
const LEASE_SECONDS = 2;
const MAX_IN_FLIGHT = 20; // the child's relay.queue.maxConcurrency
/** Upstream's time per message: long enough that a node always has deliveries in flight when killed. */
const UPSTREAM_MS = 60;
/** Sending mailboxes: enough that the per-mailbox limits (3 at once, across the nodes) leave each node work. */
const MAILBOXES = 24;

let server: PostgresServer;
before(async () => {
  server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

async function query<T extends pg.QueryResultRow>(url: string, sql: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

interface Cluster {
  dir: ReturnType<typeof tempDir>;
  log: string;
  url: string;
  nodes: Array<Started & { label: string }>;
  /** Client load on the nodes' ports: stopped by stopAll too, if the test ended early. */
  loads: Array<{ stop: () => Promise<void> }>;
  /** What the nodes logged (warnings and errors) and how they ended, for a failure's message. */
  report(): string;
  stopAll(): Promise<void>;
}

async function startCluster(prefix: string): Promise<Cluster> {
  const dir = tempDir(`mb-${prefix}-`);
  const url = await server.database(prefix);
  const log = join(dir.path, 'delivered.log');
  const nodes: Cluster['nodes'] = [];
  const cluster: Cluster = {
    dir,
    log,
    url,
    nodes,
    loads: [],
    report: () =>
      nodes
        .map((n) => `${n.label} (exit ${n.child.exitCode ?? n.child.signalCode ?? 'running'}): ${n.stderr().split('\n').filter(Boolean).slice(-8).join('\n    ')}`)
        .join('\n  '),
    async stopAll() {
      await Promise.all(cluster.loads.map((l) => l.stop()));
      for (const n of nodes) n.child.kill('SIGKILL');
      await Promise.all(nodes.map((n) => n.exited));
      dir.remove();
    },
  };
  try {
    // One after another: the first migrates the database, the others find it done.
    for (let i = 0; i < NODES; i++) {
      const label = `n${i}`;
      nodes.push({ ...(await startChild(join(dir.path, label), log, label, { url, leaseSeconds: LEASE_SECONDS, upstreamMs: UPSTREAM_MS })), label });
    }
  } catch (err) {
    await cluster.stopAll();
    throw err;
  }
  return cluster;
}

/** Waits until every acknowledged message was delivered and no row is left to deliver. */
async function drain(c: Cluster, sent: Sent): Promise<void> {
  await waitFor(
    async () => {
      const seen = new Set(deliveredSeqs(c.log).map((d) => d.seq));
      if (![...sent.acked].every((s) => seen.has(s))) return false;
      const [row] = await query<{ n: string }>(c.url, "SELECT COUNT(*) AS n FROM relay_queue WHERE state NOT IN ('sent', 'bounced')");
      return Number(row!.n) === 0;
    },
    90_000,
    () => `the queue to drain (${sent.acked.size} acknowledged, ${new Set(deliveredSeqs(c.log).map((d) => d.seq)).size} delivered); nodes:\n  ${c.report()}`,
    200,
  );
}

function tally(c: Cluster, sent: Sent) {
  const delivered = deliveredSeqs(c.log);
  const byseq = new Map<number, string[]>();
  for (const d of delivered) byseq.set(d.seq, [...(byseq.get(d.seq) ?? []), d.label]);
  const lost = [...sent.acked].filter((s) => !byseq.has(s)).sort((a, b) => a - b);
  const duplicates = [...byseq].filter(([, labels]) => labels.length > 1);
  const byNode = Object.fromEntries(c.nodes.map((n) => [n.label, delivered.filter((d) => d.label.startsWith(n.label)).length]));
  return { delivered, byseq, lost, duplicates, byNode };
}

test('three relay nodes on PostgreSQL: kill -9 of one under load loses no acknowledged message; its claims move to the survivors', { timeout: 240_000 }, async (t) => {
  const seed = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);
  const random = prng(seed);
  const c = await startCluster('relaykill');
  const sent = sentLog();
  try {
    const load = c.nodes.map((n, i) => sendLoop(n.port, sent, random, { senders: SENDERS_PER_NODE, stopOnFailure: i === 0, mailboxes: MAILBOXES }));
    c.loads.push(...load);
    // Load on all three until the victim has delivered some and holds claims of its own. Those
    // claims are row-locked here across the kill: without that, the victim could finish them in the
    // instant between the check and the kill, and leave nothing to take over (seen in CI).
    const hold = new pg.Client({ connectionString: c.url });
    await hold.connect();
    await waitFor(async () => {
      if (sent.acked.size <= 150) return false;
      await hold.query('BEGIN');
      const { rows } = await hold.query("SELECT id FROM relay_queue WHERE state = 'active' AND claimed_by LIKE 'n0:%' FOR UPDATE SKIP LOCKED");
      if (rows.length > 0) return true;
      await hold.query('ROLLBACK');
      return false;
    }, 60_000, 'node n0 to hold claims under load', 5);
    const victim = c.nodes[0]!;
    victim.child.kill('SIGKILL');
    const killedAt = Date.now();
    await victim.exited;
    await hold.query('ROLLBACK');
    await hold.end();
    await load[0]!.stop();
    // The survivors take its claims over once the lease has run out (renewals every third of it).
    const orphaned = await query<{ id: string }>(c.url, "SELECT id FROM relay_queue WHERE state = 'active' AND claimed_by LIKE 'n0:%'");
    await waitFor(
      async () => (await query(c.url, "SELECT 1 FROM relay_queue WHERE state = 'active' AND claimed_by LIKE 'n0:%'")).length === 0,
      30_000,
      'the dead node\'s claims to be taken over',
      50,
    );
    const takenOverMs = Date.now() - killedAt;
    // More mail for the survivors, then let everything drain.
    await waitFor(() => sent.acked.size > 300, 60_000, 'more mail accepted by the survivors');
    await Promise.all(load.slice(1).map((l) => l.stop()));
    await drain(c, sent);

    const { delivered, byseq, lost, duplicates, byNode } = tally(c, sent);
    const orphanIds = new Set(orphaned.map((o) => o.id));
    const summary =
      `seed ${seed}: ${sent.acked.size} acknowledged, ${byseq.size} distinct delivered, ${delivered.length} deliveries ` +
      `(per node ${JSON.stringify(byNode)}), ${orphaned.length} claims of the killed node taken over after ${takenOverMs} ms (lease ${LEASE_SECONDS} s), ` +
      `${duplicates.length} duplicates${duplicates.length ? ` [${duplicates.map(([s, l]) => `${s}@${l.join(',')}`).join('; ')}]` : ''}, lost: ${lost.length ? lost.join(',') : 'none'}`;
    t.diagnostic(summary);

    assert.ok(orphaned.length > 0, `the kill left claims to take over — ${summary}`);
    assert.deepEqual(lost, [], `every acknowledged message delivered — ${summary}`);
    for (const n of c.nodes.slice(1)) assert.ok(byNode[n.label]! > 0, `${n.label} delivered — ${summary}`);
    // Taken over within the lease and the renewal period that notices it (plus the poll that reports it).
    assert.ok(takenOverMs < (LEASE_SECONDS * 1000 * 4) / 3 + 2_000, `claims taken over within the lease — ${summary}`);
    for (const [seq, labels] of duplicates) {
      assert.ok(labels[0]!.startsWith('n0') && labels.slice(1).every((l) => !l.startsWith('n0')), `duplicate of ${seq} not explained by the kill — ${summary}`);
      const id = deliveredSeqs(c.log).find((d) => d.seq === seq)!.id;
      assert.ok(orphanIds.has(id), `duplicate of ${seq} was not one of the killed node's claims — ${summary}`);
    }
    assert.ok(duplicates.length <= MAX_IN_FLIGHT, `no more duplicates than the killed node had in flight — ${summary}`);
    // What the killed node held went out from the survivors: its bodies are in the database.
    const survivorsSent = new Set(delivered.filter((d) => !d.label.startsWith('n0')).map((d) => d.id));
    const final = await query<{ id: string; state: string; claimed_by: string }>(c.url, 'SELECT id, state, claimed_by FROM relay_queue WHERE id = ANY($1)', [[...orphanIds]]);
    for (const r of final) {
      assert.ok(r.state === 'sent' && !r.claimed_by.startsWith('n0') && survivorsSent.has(r.id), `${r.id} (claimed by the killed node) sent by a survivor: ${JSON.stringify(r)} — ${summary}`);
    }
    const [bodies] = await query<{ n: string }>(c.url, 'SELECT COUNT(*) AS n FROM relay_bodies');
    assert.equal(Number(bodies!.n), 0, 'no body left after the drain');
  } finally {
    await c.stopAll();
  }
});

test('three relay nodes on PostgreSQL: the database restarted under load — 4xx while it is down, nothing accepted lost', { timeout: 240_000 }, async (t) => {
  const seed = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);
  const random = prng(seed);
  const c = await startCluster('relaydb');
  const sent = sentLog();
  try {
    const load = c.nodes.map((n) => sendLoop(n.port, sent, random, { senders: SENDERS_PER_NODE, stopOnFailure: false, mailboxes: MAILBOXES }));
    c.loads.push(...load);
    await waitFor(() => sent.acked.size > 60, 60_000, 'mail accepted before the restart');
    await server.kill();
    const downAt = Date.now();
    // Down until the clients have been refused a few times on every node's port.
    await waitFor(() => sent.failures.filter((f) => f.at >= downAt).length >= 9, 30_000, 'clients refused while the database is down');
    await server.start();
    const upAt = Date.now();
    const ackedBefore = sent.acked.size;
    await waitFor(() => sent.acked.size > ackedBefore + 60, 60_000, () => `mail accepted again after the restart; nodes:\n  ${c.report()}`);
    await Promise.all(load.map((l) => l.stop()));
    await drain(c, sent);

    const { delivered, byseq, lost, duplicates, byNode } = tally(c, sent);
    const codes = new Map<string, number>();
    for (const f of sent.failures) codes.set(String(f.code ?? 'none'), (codes.get(String(f.code ?? 'none')) ?? 0) + 1);
    const summary =
      `seed ${seed}: database down ${upAt - downAt} ms; ${sent.acked.size} acknowledged, ${byseq.size} distinct delivered, ${delivered.length} deliveries ` +
      `(per node ${JSON.stringify(byNode)}), refusals by reply code ${JSON.stringify(Object.fromEntries(codes))}, ` +
      `${duplicates.length} duplicates, lost: ${lost.length ? lost.join(',') : 'none'}`;
    t.diagnostic(summary);

    assert.deepEqual(lost, [], `every acknowledged message delivered — ${summary}`);
    assert.ok(sent.failures.length > 0, `the outage was seen by the clients — ${summary}`);
    for (const f of sent.failures) {
      assert.ok(f.code !== undefined && f.code >= 400 && f.code < 500, `message ${f.seq} got ${f.code ?? 'no reply'} (${f.message}), not a 4xx — ${summary}`);
    }
    // A delivery in flight when the database went away is recorded by nobody until its lease runs
    // out; it then goes out once more. Never more than all nodes had in flight.
    assert.ok(duplicates.length <= NODES * MAX_IN_FLIGHT, `duplicates bounded by what was in flight — ${summary}`);
    for (const n of c.nodes) assert.ok(byNode[n.label]! > 0, `${n.label} delivered — ${summary}`);
  } finally {
    await c.stopAll();
  }
});
