/**
 * The database restarted under load, for the work nodes share through leases (issue 14: "the
 * database restarted under load — nodes reconnect, nothing accepted is lost"); the relay's part is
 * test/relay/crash/cluster.test.ts.
 *
 * - Three connector nodes (child processes, as in three-nodes.test.ts) fetch a real Dovecot's
 *   mailboxes into one maildir. PostgreSQL is stopped (SIGQUIT, as a crash) while mail arrives:
 *   the nodes give up their leases when these run out (the work stops before anyone else may
 *   start it), and take them again once the server is back. Every message lands exactly once.
 *
 * Figures print as `# …`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ownerOf } from '../../src/cluster/ownership.ts';
import { openStore } from '../../src/store/index.ts';
import { append, makeMessage, maildirFiles, messageIdOfRaw, NODE, startRig, type Rig } from '../connector/helpers.ts';
import { startPostgres, type PostgresServer } from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

const LEASE_MS = 3000;
const MAILBOXES = 9;

let dir: string;
let rig: Rig;
let pg: PostgresServer;
const children = new Set<ChildProcess>();

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mb-cluster-restart-'));
  chmodSync(dir, 0o711);
  rig = await startRig();
  pg = await startPostgres();
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await pg?.stop();
  await rig?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const exited = (c: ChildProcess) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)));

test('three connector nodes: the database restarted while mail arrives — leases given up and taken again, every message exactly once', { timeout: 240_000 }, async () => {
  const url = await pg.database('connrestart');
  const boxes = Array.from({ length: MAILBOXES }, (_, i) => `restart${i}-${process.pid}@contoso.test`);
  const tokens = Object.fromEntries(await Promise.all(boxes.map(async (b) => [b, await rig.dovecot.mintToken(b)] as const)));
  const sent: string[] = [];
  const fill = async (n: number, from: number) => {
    for (const b of boxes) {
      const msgs = Array.from({ length: n }, (_, i) => makeMessage(from + i, { to: b }));
      await append(rig, b, 'INBOX', msgs);
      for (const m of msgs) sent.push(messageIdOfRaw(m)!);
    }
  };
  const delivered = () => {
    const out = new Map<string, number>();
    for (const f of maildirFiles(maildir)) {
      const id = messageIdOfRaw(f.raw)!;
      out.set(id, (out.get(id) ?? 0) + 1);
    }
    return out;
  };
  const maildir = join(dir, 'md');
  const input = { url, imapPort: rig.dovecot.ports.imap, mailboxes: boxes, tokens, maildir, leaseMs: LEASE_MS };
  const nodes = ['r1', 'r2', 'r3'].map((name) => {
    const child = spawn(NODE, [join(import.meta.dirname, 'fixtures', 'node-child.ts'), JSON.stringify({ ...input, name })], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    const n = { name, child, id: undefined as string | undefined, owns: [] as string[], stderr: '' };
    child.stderr!.on('data', (d) => (n.stderr += d));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const [kind, ...rest] = line.split(' ');
      if (kind === 'node') n.id = rest[0];
      else if (kind === 'owns') n.owns = JSON.parse(rest.join(' ')) as string[];
    });
    return n;
  });
  const describe = () => nodes.map((n) => `${n.name}=${n.owns.length} (exit ${n.child.exitCode ?? n.child.signalCode ?? 'running'}) ${n.stderr.slice(-4000)}`).join('; ');
  const settled = () => {
    const ids = nodes.map((n) => n.id!);
    return nodes.every((n) => n.id) && nodes.every((n) => JSON.stringify(n.owns) === JSON.stringify(boxes.filter((b) => ownerOf(`connector:cluster/${b}`, ids) === n.id).sort()));
  };

  await fill(3, 0);
  await waitFor(settled, 60_000, () => `the spread over three nodes: ${describe()}`);
  await waitFor(() => delivered().size === sent.length, 60_000, () => `the first ${sent.length} messages (${delivered().size} so far)`);

  // Mail keeps arriving while the database goes away.
  const load = fill(3, 100);
  const downAt = Date.now();
  await pg.kill();
  await load;
  // Every node gives its work up when its leases run out unrenewed: nobody works without a lease.
  await waitFor(() => nodes.every((n) => n.owns.length === 0), LEASE_MS + 10_000, () => `the leases given up while the database is down: ${describe()}`);
  await fill(3, 200);
  await pg.start();
  const upAt = Date.now();
  await waitFor(settled, 60_000, () => `the leases taken again after the restart: ${describe()}`);
  const resumedMs = Date.now() - upAt;
  await fill(3, 300);
  await waitFor(() => delivered().size === sent.length, 90_000, () => `all ${sent.length} messages (${delivered().size} so far): ${describe()}`);

  const got = delivered();
  assert.deepEqual([...got.keys()].sort(), [...sent].sort(), 'every message delivered, none lost');
  const twice = [...got].filter(([, k]) => k > 1);
  assert.deepEqual(twice, [], 'no message twice');
  // Every node still running, and its leases are current ones in the database.
  assert.ok(nodes.every((n) => n.child.exitCode === null && n.child.signalCode === null), `every node survived the outage: ${describe()}`);
  const store = await openStore({ driver: 'postgres', url });
  try {
    const leases = await store.cluster.leases('connector:cluster/');
    for (const n of nodes) for (const b of n.owns) assert.equal(leases.find((l) => l.name === `connector:cluster/${b}`)?.owner, n.id, `${b} leased to ${n.name}`);
    assert.ok(leases.every((l) => l.epoch >= 2), 'every lease taken again after the outage carries a new epoch');
  } finally {
    await store.close();
  }
  console.log(`# connector restart: ${MAILBOXES} mailboxes on 3 nodes, ${sent.length} messages; database down ${upAt - downAt} ms; leases resumed ${resumedMs} ms after it was back; 0 lost, 0 twice`);
  for (const n of nodes) n.child.kill('SIGTERM');
  await Promise.all(nodes.map((n) => exited(n.child)));
});
