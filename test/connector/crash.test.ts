/**
 * Crash test: a child process fetches many messages from a real Dovecot mailbox; the test kills it
 * with SIGKILL at random moments while it delivers, several times, and restarts it until a run
 * completes. Then it counts.
 *  - Maildir (idempotent by file name): every message exactly once, none lost, none twice; every
 *    message moved out of the source folder exactly once.
 *  - LMTP into a real Dovecot mailbox (not idempotent): none lost; a message may appear twice only
 *    if the kill hit the window between the destination's acknowledgement and the store's commit,
 *    and then the next run reported it as a redelivery. The count of such duplicates is printed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { append, folderContents, maildirFiles, makeMessage, messageIdOfRaw, NODE, startRig, tempDir, type Rig } from './helpers.ts';

let rig: Rig;
const children = new Set<ChildProcess>();

before(async () => {
  rig = await startRig();
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await rig?.close();
});

const CHILD = join(import.meta.dirname, 'fixtures', 'fetch-child.ts');

interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  delivered: string[];
  redelivered: string[];
  killedMidRun: boolean;
  stderr: string;
}

/** Runs the child; when `kill` is set, SIGKILLs it a random 0–`kill` ms after its first delivery. */
function runChild(input: object, kill: number | undefined): Promise<ChildRun> {
  return new Promise((resolve) => {
    const child = spawn(NODE, [CHILD, JSON.stringify(input)], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    const out: ChildRun = { code: null, signal: null, delivered: [], redelivered: [], killedMidRun: false, stderr: '' };
    let armed = false;
    let finished = false;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const [what, item] = line.split(' ');
      if (what === 'done') finished = true;
      if (what === 'delivered') out.delivered.push(item!);
      if (what === 'redelivered') out.redelivered.push(item!);
      if ((what === 'delivered' || what === 'redelivered') && kill !== undefined && !armed) {
        armed = true;
        setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null) {
            out.killedMidRun = !finished;
            child.kill('SIGKILL');
          }
        }, Math.floor(Math.random() * kill));
      }
    });
    child.stderr!.on('data', (c: Buffer) => (out.stderr += c.toString()));
    child.on('exit', (code, signal) => {
      children.delete(child);
      out.code = code;
      out.signal = signal;
      resolve(out);
    });
  });
}

/** Kill-and-restart until a run completes; returns every run. */
async function crashLoop(input: object, kills: number): Promise<ChildRun[]> {
  const runs: ChildRun[] = [];
  for (let i = 0; i < kills; i++) {
    const r = await runChild(input, 700);
    runs.push(r);
    if (r.code === 0) return runs;
    assert.equal(r.signal, 'SIGKILL', `run ${i} failed on its own: ${r.stderr}`);
  }
  for (let i = 0; i < 3; i++) {
    const r = await runChild(input, undefined);
    runs.push(r);
    if (r.code === 0) return runs;
  }
  throw new Error(`no run completed: ${runs.at(-1)?.stderr}`);
}

async function fill(mailbox: string, n: number): Promise<Map<string, string>> {
  const msgs = Array.from({ length: n }, (_, i) => makeMessage(i, { size: 3000 + (i % 7) * 1000 }));
  const uids = await append(rig, mailbox, 'INBOX', msgs);
  assert.equal(uids.length, n);
  return new Map(uids.map((uid, i) => [String(uid), messageIdOfRaw(msgs[i]!)!]));
}

test('kill -9 during a fetch into a maildir, several times: every message exactly once, and moved exactly once', { timeout: 240_000 }, async () => {
  const box = 'crash-md@contoso.test';
  const N = 600;
  const ids = await fill(box, N);
  const work = tempDir('mb-crash-md-');
  try {
    const input = {
      name: 'crash-md',
      storePath: join(work.path, 'mb.db'),
      imapPort: rig.dovecot.ports.imap,
      mailbox: box,
      token: await rig.dovecot.mintToken(box, { ttlSeconds: 3600 }),
      destination: { kind: 'maildir', path: join(work.path, 'md') },
      after: { action: 'move', folder: 'Done' },
    };
    const runs = await crashLoop(input, 6);
    const kills = runs.filter((r) => r.signal === 'SIGKILL');
    assert.ok(kills.some((r) => r.killedMidRun), `at least one kill landed during a run (runs: ${runs.length})`);

    const files = maildirFiles(join(work.path, 'md'));
    const perId = new Map<string, number>();
    for (const f of files) perId.set(messageIdOfRaw(f.raw)!, (perId.get(messageIdOfRaw(f.raw)!) ?? 0) + 1);
    const lost = [...ids.values()].filter((id) => !perId.has(id));
    const twice = [...perId].filter(([, n]) => n > 1);
    const redeliveries = runs.flatMap((r) => r.redelivered).length;
    assert.deepEqual(lost, [], `lost after ${kills.length} kills`);
    assert.deepEqual(twice, [], `duplicates after ${kills.length} kills (${redeliveries} redeliveries were absorbed by the file name)`);
    assert.equal(files.length, N);

    assert.equal((await folderContents(rig, box, 'INBOX')).length, 0, 'nothing left in the source folder');
    const done = await folderContents(rig, box, 'Done');
    assert.equal(done.length, N, 'each message moved once');
    console.log(`# maildir crash test: ${N} messages, ${kills.length} kills (${kills.filter((k) => k.killedMidRun).length} mid-run), ${redeliveries} redeliveries absorbed, 0 lost, 0 twice`);
  } finally {
    work.remove();
  }
});

test('kill -9 during a fetch into Dovecot over LMTP: none lost; a duplicate only where a redelivery was reported', { timeout: 240_000 }, async () => {
  const box = 'crash-lmtp@contoso.test';
  const target = 'crash-target@contoso.test';
  const N = 600;
  const ids = await fill(box, N);
  const work = tempDir('mb-crash-lmtp-');
  try {
    const input = {
      name: 'crash-lmtp',
      storePath: join(work.path, 'mb.db'),
      imapPort: rig.dovecot.ports.imap,
      mailbox: box,
      token: await rig.dovecot.mintToken(box, { ttlSeconds: 3600 }),
      destination: { kind: 'lmtp', port: rig.dovecot.ports.lmtp, tls: 'none', recipients: { to: [target] } },
      after: { action: 'seen' },
    };
    const runs = await crashLoop(input, 6);
    const kills = runs.filter((r) => r.signal === 'SIGKILL');
    assert.ok(kills.some((r) => r.killedMidRun), 'at least one kill landed during a run');

    const got = await folderContents(rig, target, 'INBOX');
    const perId = new Map<string, number>();
    for (const m of got) perId.set(messageIdOfRaw(m.raw)!, (perId.get(messageIdOfRaw(m.raw)!) ?? 0) + 1);
    const lost = [...ids.values()].filter((id) => !perId.has(id));
    assert.deepEqual(lost, [], `lost after ${kills.length} kills`);
    const redelivered = new Set(runs.flatMap((r) => r.redelivered).map((uid) => ids.get(uid)!));
    const twice = [...perId].filter(([, n]) => n > 1);
    for (const [id, n] of twice) {
      assert.ok(
        redelivered.has(id),
        `${id} arrived ${n} times but was never reported as a redelivery: a duplicate outside the unavoidable window (acknowledged by LMTP, killed before the store's commit)`,
      );
      assert.ok(n <= 1 + kills.length);
    }
    const extra = got.length - N;
    assert.equal(extra, twice.reduce((a, [, n]) => a + n - 1, 0));
    const src = await folderContents(rig, box, 'INBOX');
    assert.ok(src.every((m) => m.flags.has('\\Seen')), 'every source message marked \\Seen in the end');
    console.log(
      `# LMTP crash test: ${N} messages, ${kills.length} kills (${kills.filter((k) => k.killedMidRun).length} mid-run): 0 lost, ${extra} duplicate(s), ` +
        `each in the window between LMTP's 250 and the store's commit and reported as a redelivery (${redelivered.size} redeliveries in all)`,
    );
  } finally {
    work.remove();
  }
});
