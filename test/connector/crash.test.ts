/**
 * Crash tests: a child process fetches many messages from a real Dovecot mailbox; the test kills it
 * with SIGKILL at random moments while it delivers, several times, and restarts it until a run
 * completes. Then it counts, per destination, what docs/en/connector.md promises:
 *  - maildir: exactly once (the file name carries the delivery ID); moved exactly once.
 *  - LMTP into Dovecot with the shipped Sieve recipe and deliveryIdHeader: exactly once in the
 *    mailbox. Without the recipe a kill may leave a message twice; the recipe discarded those
 *    (counted from Dovecot's log), and each was a reported redelivery.
 *  - SMTP: at least once; every extra copy is a reported redelivery with the same
 *    X-Mailbridge-Delivery-Id, so a receiver that deduplicates by it holds each message once.
 *  - HTTP: at least once; every extra request is marked X-Mailbridge-Redelivery: 1 and carries the
 *    Idempotency-Key of the first.
 *  - command: at least once with MAILBRIDGE_DELIVERY_ID; never a truncated message, also from a
 *    program that outlives the killed mailbridge (stdin is a complete file).
 * The figures are printed as `# …` lines.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { append, DEDUPE_SIEVE, folderContents, maildirFiles, makeMessage, messageIdOfRaw, NODE, startCapture, startRig, type Rig } from './helpers.ts';
import { waitFor } from '../support/wait.ts';
import { tempDir } from '../support/temp.ts';

let rig: Rig;
const children = new Set<ChildProcess>();

before(async () => {
  // LMTP deliveries into this Dovecot run the dedupe recipe; the source mailboxes are filled by APPEND.
  rig = await startRig({ sieve: DEDUPE_SIEVE });
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

/**
 * Runs the child; when `kill` is set, SIGKILLs it after a random 1–`kill` deliveries of this run and a
 * random 0–20 ms more (so the kill falls anywhere in the pipeline). Counting deliveries rather than
 * time keeps the kill inside the run however fast the machine fetches (a 0–700 ms timer once let a
 * whole run of 300 finish first).
 */
function runChild(input: object, kill: number | undefined): Promise<ChildRun> {
  return new Promise((resolve) => {
    const child = spawn(NODE, [CHILD, JSON.stringify(input)], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    const out: ChildRun = { code: null, signal: null, delivered: [], redelivered: [], killedMidRun: false, stderr: '' };
    let armed = false;
    let finished = false;
    const killAfter = kill === undefined ? undefined : 1 + Math.floor(Math.random() * kill);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const [what, item] = line.split(' ');
      if (what === 'done') finished = true;
      if (what === 'delivered') out.delivered.push(item!);
      if (what === 'redelivered') out.redelivered.push(item!);
      if ((what === 'delivered' || what === 'redelivered') && killAfter !== undefined && !armed && out.delivered.length + out.redelivered.length >= killAfter) {
        armed = true;
        setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null) {
            out.killedMidRun = !finished;
            child.kill('SIGKILL');
          }
        }, Math.floor(Math.random() * 20));
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
    const r = await runChild(input, 40);
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

async function fill(mailbox: string, n: number): Promise<{ ids: Map<string, string>; raw: Map<string, Buffer> }> {
  const msgs = Array.from({ length: n }, (_, i) => makeMessage(i, { size: 3000 + (i % 7) * 1000 }));
  const uids = await append(rig, mailbox, 'INBOX', msgs);
  assert.equal(uids.length, n);
  return { ids: new Map(uids.map((uid, i) => [String(uid), messageIdOfRaw(msgs[i]!)!])), raw: new Map(msgs.map((m) => [messageIdOfRaw(m)!, m])) };
}

function input(name: string, work: string, box: string, token: string, destination: object, after: object = { action: 'seen' }) {
  return { name, storePath: join(work, 'mb.db'), imapPort: rig.dovecot.ports.imap, mailbox: box, token, destination, after };
}

function summary(runs: ChildRun[]) {
  const kills = runs.filter((r) => r.signal === 'SIGKILL');
  assert.ok(kills.some((r) => r.killedMidRun), `at least one kill landed during a run (runs: ${runs.length})`);
  return { kills: kills.length, mid: kills.filter((k) => k.killedMidRun).length, redelivered: runs.flatMap((r) => r.redelivered) };
}

function counts<K>(keys: K[]): Map<K, number> {
  const m = new Map<K, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
  return m;
}

test('kill -9 during a fetch into a maildir, several times: every message exactly once, and moved exactly once', { timeout: 240_000 }, async () => {
  const box = 'crash-md@contoso.test';
  const N = 600;
  const { ids } = await fill(box, N);
  const work = tempDir('mb-crash-md-');
  try {
    const runs = await crashLoop(
      input('crash-md', work.path, box, await rig.dovecot.mintToken(box), { kind: 'maildir', path: join(work.path, 'md') }, { action: 'move', folder: 'Done' }),
      6,
    );
    const s = summary(runs);
    const files = maildirFiles(join(work.path, 'md'));
    const perId = counts(files.map((f) => messageIdOfRaw(f.raw)!));
    const lost = [...ids.values()].filter((id) => !perId.has(id));
    const twice = [...perId].filter(([, n]) => n > 1);
    assert.deepEqual(lost, [], `lost after ${s.kills} kills`);
    assert.deepEqual(twice, [], `duplicates after ${s.kills} kills (${s.redelivered.length} redeliveries were absorbed by the file name)`);
    assert.equal(files.length, N);
    assert.equal((await folderContents(rig, box, 'INBOX')).length, 0, 'nothing left in the source folder');
    assert.equal((await folderContents(rig, box, 'Done')).length, N, 'each message moved once');
    console.log(`# maildir crash test: ${N} messages, ${s.kills} kills (${s.mid} mid-run), ${s.redelivered.length} redeliveries absorbed by the file name, 0 lost, 0 twice`);
  } finally {
    work.remove();
  }
});

test('kill -9 during a fetch into Dovecot over LMTP with the Sieve recipe: every message exactly once in the mailbox', { timeout: 240_000 }, async () => {
  const box = 'crash-lmtp@contoso.test';
  const target = 'crash-target@contoso.test';
  const N = 600;
  const { ids } = await fill(box, N);
  const work = tempDir('mb-crash-lmtp-');
  try {
    const destination = { kind: 'lmtp', port: rig.dovecot.ports.lmtp, tls: 'none', recipients: { to: [target] }, deliveryIdHeader: true };
    const runs = await crashLoop(input('crash-lmtp', work.path, box, await rig.dovecot.mintToken(box), destination), 6);
    const s = summary(runs);
    const got = await folderContents(rig, target, 'INBOX');
    const perId = counts(got.map((m) => messageIdOfRaw(m.raw)!));
    const lost = [...ids.values()].filter((id) => !perId.has(id));
    assert.deepEqual(lost, [], `lost after ${s.kills} kills`);
    assert.deepEqual([...perId].filter(([, n]) => n > 1), [], 'no message twice in the mailbox');
    assert.equal(got.length, N);
    // What the recipe discarded: deliveries the server had stored when mailbridge was killed.
    const discarded = ((await rig.dovecot.log()).match(/crash-target@contoso\.test.*discard/gi) ?? []).length;
    assert.ok(discarded <= s.redelivered.length, 'only redeliveries were discarded');
    const src = await folderContents(rig, box, 'INBOX');
    assert.ok(src.every((m) => m.flags.has('\\Seen')), 'every source message marked \\Seen in the end');
    console.log(
      `# LMTP crash test (Sieve recipe): ${N} messages, ${s.kills} kills (${s.mid} mid-run), ${s.redelivered.length} redeliveries, ` +
        `${discarded} of them already stored and discarded by the recipe (without it: ${discarded} duplicate(s)); 0 lost, 0 twice`,
    );
  } finally {
    work.remove();
  }
});

test('kill -9 during a fetch over SMTP: none lost; every extra copy is a reported redelivery with the same X-Mailbridge-Delivery-Id', { timeout: 240_000 }, async () => {
  const box = 'crash-smtp@contoso.test';
  const N = 300;
  const { ids } = await fill(box, N);
  const work = tempDir('mb-crash-smtp-');
  const cap = await startCapture({ lmtp: false });
  try {
    const destination = { kind: 'smtp', port: cap.port, tls: 'none', recipients: { to: ['archive@intern.example'] }, deliveryIdHeader: true };
    const runs = await crashLoop(input('crash-smtp', work.path, box, await rig.dovecot.mintToken(box), destination), 6);
    const s = summary(runs);
    const idOf = (raw: Buffer) => /^X-Mailbridge-Delivery-Id: (\S+)/m.exec(raw.toString('latin1'))?.[1];
    const perMessage = counts(cap.got.map((g) => messageIdOfRaw(g.raw)!));
    assert.deepEqual([...ids.values()].filter((id) => !perMessage.has(id)), [], 'none lost');
    // One delivery ID per message, the same on every copy.
    const idsPerMessage = new Map<string, Set<string>>();
    for (const g of cap.got) idsPerMessage.set(messageIdOfRaw(g.raw)!, (idsPerMessage.get(messageIdOfRaw(g.raw)!) ?? new Set()).add(idOf(g.raw)!));
    assert.ok([...idsPerMessage.values()].every((set) => set.size === 1), 'every copy of a message carries the same delivery ID');
    assert.equal(new Set(cap.got.map((g) => idOf(g.raw))).size, N, 'deduplicated by delivery ID: each message once');
    const redelivered = new Set(s.redelivered.map((uid) => ids.get(uid)!));
    const twice = [...perMessage].filter(([, n]) => n > 1);
    for (const [id] of twice) assert.ok(redelivered.has(id), `${id} twice without a reported redelivery`);
    console.log(
      `# SMTP crash test: ${N} messages, ${s.kills} kills (${s.mid} mid-run): 0 lost, ${cap.got.length - N} extra copies, ` +
        `all reported redeliveries with the first copy's X-Mailbridge-Delivery-Id (0 left after deduplicating by it)`,
    );
  } finally {
    await cap.close();
    work.remove();
  }
});

test('kill -9 during a fetch over HTTP: none lost; every extra request carries the first one\'s Idempotency-Key and X-Mailbridge-Redelivery: 1', { timeout: 240_000 }, async () => {
  const box = 'crash-http@contoso.test';
  const N = 300;
  const { ids } = await fill(box, N);
  const work = tempDir('mb-crash-http-');
  const got: Array<{ key: string; redelivery: boolean; messageId: string }> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { messageId: string };
      got.push({ key: String(req.headers['idempotency-key']), redelivery: req.headers['x-mailbridge-redelivery'] === '1', messageId: body.messageId });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
    const runs = await crashLoop(input('crash-http', work.path, box, await rig.dovecot.mintToken(box), { kind: 'http', url, secret: 'crash-test-secret', includeRaw: false }), 6);
    const s = summary(runs);
    const perMessage = counts(got.map((g) => g.messageId));
    assert.deepEqual([...ids.values()].filter((id) => !perMessage.has(id)), [], 'none lost');
    const firstKey = new Map<string, string>();
    let extra = 0;
    for (const g of got) {
      const first = firstKey.get(g.messageId);
      if (first === undefined) firstKey.set(g.messageId, g.key);
      else {
        extra++;
        assert.equal(g.key, first, 'the same Idempotency-Key on the repeated request');
        assert.ok(g.redelivery, 'a repeated request is marked X-Mailbridge-Redelivery: 1');
      }
    }
    assert.equal(new Set(got.map((g) => g.key)).size, N, 'deduplicated by Idempotency-Key: each message once');
    console.log(`# HTTP crash test: ${N} messages, ${s.kills} kills (${s.mid} mid-run): 0 lost, ${extra} repeated request(s), each with the first one's Idempotency-Key and X-Mailbridge-Redelivery: 1`);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
    work.remove();
  }
});

/**
 * A delivery program as docs/en/connector.md suggests: keeps every copy it was given (to count), checks the
 * size against MAILBRIDGE_SIZE, and stores each delivery ID once.
 */
const DEDUPING_COMMAND = [
  'sh',
  '-c',
  [
    'set -e',
    't="$OUT/tmp/$MAILBRIDGE_DELIVERY_ID.$$"',
    'cat > "$t"',
    'cp "$t" "$OUT/all/$MAILBRIDGE_DELIVERY_ID.$$"',
    '[ "$(wc -c < "$t")" -eq "$MAILBRIDGE_SIZE" ] || { rm -f "$t"; exit 75; }',
    'if [ -e "$OUT/box/$MAILBRIDGE_DELIVERY_ID" ]; then rm -f "$t"; else mv "$t" "$OUT/box/$MAILBRIDGE_DELIVERY_ID"; fi',
  ].join('\n'),
];

test('kill -9 during a fetch into a command: never a truncated copy; deduplicated by MAILBRIDGE_DELIVERY_ID each message once', { timeout: 240_000 }, async () => {
  const box = 'crash-cmd@contoso.test';
  const N = 300;
  const { ids, raw } = await fill(box, N);
  const work = tempDir('mb-crash-cmd-');
  const out = join(work.path, 'out');
  for (const d of ['tmp', 'all', 'box']) mkdirSync(join(out, d), { recursive: true });
  try {
    const runs = await crashLoop(input('crash-cmd', work.path, box, await rig.dovecot.mintToken(box), { kind: 'command', command: DEDUPING_COMMAND, env: { OUT: out } }), 6);
    const s = summary(runs);
    // Programs that outlived a killed run finish on their own.
    await waitFor(() => readdirSync(join(out, 'tmp')).length === 0, 30_000, 'orphaned delivery programs finished');
    const all = readdirSync(join(out, 'all')).map((f) => readFileSync(join(out, 'all', f)));
    const whole = new Set([...raw.values()].map((m) => m.toString('latin1')));
    const truncated = all.filter((m) => !whole.has(m.toString('latin1')));
    assert.equal(truncated.length, 0, `${truncated.length} truncated or empty copies`);
    const stored = readdirSync(join(out, 'box')).map((f) => messageIdOfRaw(readFileSync(join(out, 'box', f)))!);
    assert.deepEqual([...ids.values()].filter((id) => !stored.includes(id)), [], 'none lost');
    assert.equal(stored.length, N, 'each message once after deduplicating by MAILBRIDGE_DELIVERY_ID');
    console.log(`# command crash test: ${N} messages, ${s.kills} kills (${s.mid} mid-run): 0 lost, 0 truncated or empty, ${all.length - N} extra whole copies, 0 after deduplicating by MAILBRIDGE_DELIVERY_ID`);
  } finally {
    work.remove();
  }
});

test('kill -9 while a command is reading its message: the program still gets the whole message, and the redelivery is identical', { timeout: 120_000 }, async () => {
  const box = 'crash-midwrite@contoso.test';
  // Far larger than a pipe's buffer (64 KB): a pipe would be cut off mid-message by the kill.
  const msg = makeMessage(1, { size: 2 * 1024 * 1024 });
  await append(rig, box, 'INBOX', [msg]);
  const work = tempDir('mb-crash-midwrite-');
  try {
    const out = work.path;
    // Starts, waits until the test has killed mailbridge, then reads stdin and reports what it got.
    const script = [
      'touch "$OUT/started.$MAILBRIDGE_REDELIVERY"',
      'while [ ! -e "$OUT/go" ]; do sleep 0.02; done',
      'cat > "$OUT/copy.$MAILBRIDGE_REDELIVERY"',
      'echo "$MAILBRIDGE_DELIVERY_ID $MAILBRIDGE_SIZE" > "$OUT/env.$MAILBRIDGE_REDELIVERY"',
      'touch "$OUT/done.$MAILBRIDGE_REDELIVERY"',
    ].join('\n');
    const inp = input('crash-midwrite', work.path, box, await rig.dovecot.mintToken(box), { kind: 'command', command: ['sh', '-c', script], env: { OUT: out } });
    const first = runChild(inp, undefined);
    await waitFor(() => existsSync(join(out, 'started.0')), 60_000, 'the delivery program started');
    const child = [...children][0]!;
    child.kill('SIGKILL');
    const killed = await first;
    assert.equal(killed.signal, 'SIGKILL');
    writeFileSync(join(out, 'go'), '');
    await waitFor(() => existsSync(join(out, 'done.0')), 30_000, 'the orphaned program finished');
    assert.equal(statSync(join(out, 'copy.0')).size, msg.length, 'the program that outlived mailbridge read the whole message');
    assert.ok(readFileSync(join(out, 'copy.0')).equals(msg));

    const again = await runChild(inp, undefined);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(again.redelivered, ['1'], 'delivered again, flagged as a redelivery');
    assert.ok(readFileSync(join(out, 'copy.1')).equals(msg));
    const [id0, size0] = readFileSync(join(out, 'env.0'), 'utf8').trim().split(' ');
    const [id1, size1] = readFileSync(join(out, 'env.1'), 'utf8').trim().split(' ');
    assert.equal(id1, id0, 'the same MAILBRIDGE_DELIVERY_ID');
    assert.equal(Number(size0), msg.length);
    assert.equal(Number(size1), msg.length);
  } finally {
    work.remove();
  }
});
