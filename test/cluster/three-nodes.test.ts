/**
 * Three nodes on one PostgreSQL database (child processes, as three `mailbridge fetch` on three
 * hosts): a connector's mailboxes in a real Dovecot spread over them by rendezvous hashing; one
 * node is killed with SIGKILL while mail keeps arriving. Its mailboxes move to the two survivors
 * within the lease time (plus a round), every message reaches the shared maildir exactly once
 * (none lost: counted by Message-ID), and the moved mailboxes' leases carry a new epoch (the
 * fencing token a late write of the dead node would be refused by). Figures print as `# …`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ownerOf } from '../../src/cluster/ownership.ts';
import { openStore } from '../../src/store/index.ts';
import { append, makeMessage, maildirFiles, messageIdOfRaw, NODE, startRig, type Rig } from '../connector/helpers.ts';
import { startPostgres, type PostgresServer } from '../support/postgres.ts';
import { tempDir } from '../support/temp.ts';
import { waitFor } from '../support/wait.ts';

const CHILD = join(import.meta.dirname, 'fixtures', 'node-child.ts');
const LEASE_MS = 3000;
const ROUND_MS = LEASE_MS / 3;
const MAILBOXES = 12;

let rig: Rig;
let pg: PostgresServer;
const children = new Set<ChildProcess>();

before(async () => {
  rig = await startRig();
  pg = await startPostgres();
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await pg?.stop();
  await rig?.close();
});

interface Node {
  name: string;
  child: ChildProcess;
  id: string | undefined;
  owns: string[];
  stopped: boolean;
  stderr: string;
}

function startNode(name: string, input: object): Node {
  const child = spawn(NODE, [CHILD, JSON.stringify({ ...input, name })], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const n: Node = { name, child, id: undefined, owns: [], stopped: false, stderr: '' };
  child.stderr!.on('data', (d) => (n.stderr += d));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const [kind, ...rest] = line.split(' ');
    if (kind === 'node') n.id = rest[0];
    else if (kind === 'owns') n.owns = JSON.parse(rest.join(' ')) as string[];
    else if (kind === 'stopped') n.stopped = true;
  });
  return n;
}

/** Distinct Message-IDs in the maildir, and how many files each has. */
function delivered(path: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of maildirFiles(path)) {
    const id = messageIdOfRaw(f.raw)!;
    out.set(id, (out.get(id) ?? 0) + 1);
  }
  return out;
}

test('three nodes share a connector; kill -9 of one under load: its mailboxes move within the lease time, no message lost or doubled', { timeout: 240_000 }, async () => {
  const work = tempDir('mb-three-');
  try {
    const url = await pg.database('three');
    const boxes = Array.from({ length: MAILBOXES }, (_, i) => `node${i}-${process.pid}@contoso.test`);
    const tokens = Object.fromEntries(await Promise.all(boxes.map(async (b) => [b, await rig.dovecot.mintToken(b)] as const)));
    const sent: string[] = [];
    const fill = async (n: number, from: number) => {
      for (const b of boxes) {
        const msgs = Array.from({ length: n }, (_, i) => makeMessage(from + i, { to: b }));
        await append(rig, b, 'INBOX', msgs);
        for (const m of msgs) sent.push(messageIdOfRaw(m)!);
      }
    };
    await fill(6, 0);
    const maildir = join(work.path, 'md');
    const input = { url, imapPort: rig.dovecot.ports.imap, mailboxes: boxes, tokens, maildir, leaseMs: LEASE_MS };
    const nodes = ['n1', 'n2', 'n3'].map((name) => startNode(name, input));

    // Spread: each node runs exactly the mailboxes rendezvous hashing gives it among the three.
    const expected = (alive: Node[]) => {
      const ids = alive.map((n) => n.id!);
      return new Map(alive.map((n) => [n.name, boxes.filter((b) => ownerOf(`connector:cluster/${b}`, ids) === n.id).sort()]));
    };
    const settled = (alive: Node[]) => alive.every((n) => n.id) && alive.every((n) => JSON.stringify(n.owns) === JSON.stringify(expected(alive).get(n.name)));
    await waitFor(() => settled(nodes), 60_000, () => `the spread over three nodes: ${nodes.map((n) => `${n.name}=${n.owns.length} ${n.stderr}`).join(', ')}`);
    assert.ok(nodes.filter((n) => n.owns.length > 0).length >= 2, 'the mailboxes are spread over several nodes');
    await waitFor(() => delivered(maildir).size === sent.length, 60_000, () => `the first ${sent.length} messages (${delivered(maildir).size} so far)`);

    // Under load: mail keeps arriving while the busiest node is killed.
    const victim = [...nodes].sort((a, b) => b.owns.length - a.owns.length)[0]!;
    const moved = victim.owns;
    const load = fill(4, 100);
    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    const survivors = nodes.filter((n) => n !== victim);
    await waitFor(() => moved.every((b) => survivors.some((n) => n.owns.includes(b))), LEASE_MS + 3 * ROUND_MS + 2000, 'the killed node\'s mailboxes on the survivors');
    const takeoverMs = Date.now() - killedAt;
    await load;
    await fill(4, 200);
    await waitFor(() => settled(survivors), 30_000, 'the spread over the two survivors');

    await waitFor(() => delivered(maildir).size === sent.length, 90_000, () => `all ${sent.length} messages (${delivered(maildir).size} so far)`);
    const got = delivered(maildir);
    assert.deepEqual([...got.keys()].sort(), [...sent].sort(), 'every message delivered, none lost');
    const twice = [...got].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], 'no message twice');

    // The moved mailboxes' leases changed hands: a new epoch, which fences off the dead node's writes.
    const store = await openStore({ driver: 'postgres', url });
    try {
      const leases = await store.cluster.leases('connector:cluster/');
      for (const b of moved) {
        const l = leases.find((x) => x.name === `connector:cluster/${b}`)!;
        assert.notEqual(l.owner, victim.id);
        assert.ok(l.epoch >= 2, `${b}: epoch ${l.epoch}`);
      }
    } finally {
      await store.close();
    }
    console.log(
      `# three nodes: ${MAILBOXES} mailboxes, ${sent.length} messages; killed ${victim.name} holding ${moved.length}; ` +
        `its mailboxes ran on the survivors ${takeoverMs} ms after the kill (lease ${LEASE_MS} ms); 0 lost, 0 twice`,
    );

    for (const n of survivors) n.child.kill('SIGTERM');
    await waitFor(() => survivors.every((n) => n.stopped), 30_000, 'the survivors to stop');
  } finally {
    work.remove();
  }
});
