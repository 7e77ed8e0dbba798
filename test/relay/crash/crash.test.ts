/**
 * kill -9 crash test: a child process runs the listener and the queue; clients send messages while
 * the test kills the child with SIGKILL at random moments, several times, restarting it each time.
 * After the last restart and drain, every message that got a 250 must have been delivered at least
 * once. Duplicates are counted and reported; they are allowed only for messages in flight at a kill
 * (delivered upstream, not yet marked sent), so never twice within one run of the child and never
 * more per kill than deliveries can run at once. A duplicate carries the same Message-ID as its
 * first delivery (the relay adds one to messages without), which is what a receiver deduplicates on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { tempDir } from '../../support/temp.ts';
import { deliveredSeqs as delivered, prng, sendLoop, sentLog, startChild } from './harness.ts';

const KILLS = 5;
const MAX_IN_FLIGHT = 20; // the child's relay.queue.maxConcurrency
const SENDERS = 6;

test('kill -9 at random moments loses no acknowledged message; duplicates only from in-flight deliveries', { timeout: 240_000 }, async (t) => {
  const seed = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);
  const random = prng(seed);
  const dir = tempDir('mb-crash-');
  const log = join(dir.path, 'delivered.log');
  const sent = sentLog();
  const { acked, ids } = sent;
  const starts: Array<{ recovery: string; stderr: () => string }> = [];
  let child: ChildProcess | undefined;
  try {
    for (let round = 0; round <= KILLS; round++) {
      const started = await startChild(dir.path, log, round);
      starts.push(started);
      child = started.child;
      const senders = sendLoop(started.port, sent, random, { senders: SENDERS, stopOnFailure: round < KILLS });
      if (round < KILLS) {
        await new Promise((r) => setTimeout(r, 150 + random() * 600));
        started.child.kill('SIGKILL');
        await started.exited;
        await senders.stop();
        continue;
      }
      // Last run: some more mail, then let everything drain.
      await new Promise((r) => setTimeout(r, 300));
      await senders.stop();
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const seen = new Set(deliveredSeqs(log).map((d) => d.seq));
        if ([...acked].every((s) => seen.has(s)) && pendingRows(dir.path) === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      started.child.kill('SIGTERM');
      assert.equal(await started.exited, 0, 'the child stops cleanly on SIGTERM');
      child = undefined;
    }

    const delivered = deliveredSeqs(log);
    const byseq = new Map<number, number[]>();
    for (const d of delivered) byseq.set(d.seq, [...(byseq.get(d.seq) ?? []), d.round]);
    const messageIds = new Map<number, Set<string>>();
    for (const d of delivered) messageIds.set(d.seq, (messageIds.get(d.seq) ?? new Set()).add(d.messageId));
    const lost = [...acked].filter((s) => !byseq.has(s)).sort((a, b) => a - b);
    const duplicates = [...byseq].filter(([, rounds]) => rounds.length > 1);
    const unackedDelivered = [...byseq.keys()].filter((s) => !acked.has(s)).length;
    const summary =
      `seed ${seed}: ${KILLS} kills, ${acked.size} messages acknowledged (250), ${byseq.size} distinct delivered, ` +
      `${delivered.length} deliveries, ${duplicates.length} duplicates` +
      (duplicates.length ? ` [${duplicates.map(([s, r]) => `${s}@rounds ${r.join(',')}`).join('; ')}]` : '') +
      `, ${unackedDelivered} delivered without a 250 (client saw the kill), lost: ${lost.length ? lost.join(',') : 'none'}`;
    t.diagnostic(summary);

    assert.ok(acked.size >= 20, `the test sent enough mail to mean something — ${summary}`);
    assert.deepEqual(lost, [], `every acknowledged message delivered at least once — ${summary}${lost.length ? '\n' + explain(dir.path, lost, ids, starts) : ''}`);
    for (const [seq, ids] of messageIds) assert.ok(ids.size === 1 && !ids.has('-'), `message ${seq}: one Message-ID on every delivery (${[...ids].join(', ')})`);
    assert.equal(new Set([...messageIds.values()].map((ids) => [...ids][0])).size, messageIds.size, 'distinct messages have distinct Message-IDs');
    for (const [seq, rounds] of duplicates) {
      assert.equal(new Set(rounds).size, rounds.length, `message ${seq} delivered twice within one run — ${summary}`);
      assert.ok(rounds.slice(0, -1).every((r) => r < KILLS), `duplicate of ${seq} not explained by a kill — ${summary}`);
    }
    for (let r = 0; r < KILLS; r++) {
      const fromRound = duplicates.filter(([, rounds]) => rounds[0] === r).length;
      assert.ok(fromRound <= MAX_IN_FLIGHT, `kill ${r + 1}: ${fromRound} duplicates, more than can be in flight — ${summary}`);
    }
    assert.equal(pendingRows(dir.path), 0, `queue drained — ${summary}`);
    assert.deepEqual(
      (readdirSafe(join(dir.path, 'relay', 'spool')) ?? []).filter((f) => !f.startsWith('.')),
      [],
      'no spool files left after the drain',
    );
  } finally {
    child?.kill('SIGKILL');
    dir.remove();
  }
});

function deliveredSeqs(log: string): Array<{ round: number; seq: number; messageId: string }> {
  return delivered(log).map((d) => ({ round: Number(d.label), seq: d.seq, messageId: d.messageId }));
}

/**
 * Where each lost message is: its row (state, attempts, when due, last error) or no row, and whether
 * its body is in the spool; then each start's recovery report and what the children logged. A lost
 * message without a row had its 250 before its commit; one held or deferred was mishandled after.
 */
function explain(dir: string, lost: number[], ids: Map<number, string>, starts: Array<{ recovery: string; stderr: () => string }>): string {
  const db = new DatabaseSync(join(dir, 'mb.db'), { readOnly: true });
  const spool = new Set(readdirSafe(join(dir, 'relay', 'spool')) ?? []);
  const lines: string[] = [];
  try {
    const get = db.prepare('SELECT state, attempts, next_attempt_at, last_error, hold_reason FROM relay_queue WHERE id = ?');
    for (const seq of lost) {
      const id = ids.get(seq);
      const row = id ? (get.get(id) as Record<string, unknown> | undefined) : undefined;
      const where = !id
        ? 'no queue id in its 250'
        : row
          ? `${row.state}, ${row.attempts} attempt(s), due ${Math.round((Number(row.next_attempt_at) - Date.now()) / 1000)} s from now` +
            (row.hold_reason ? `, held: ${row.hold_reason}` : '') +
            (row.last_error ? `, last error ${row.last_error}` : '')
          : 'no row';
      lines.push(`  ${seq} ${id ?? '?'}: ${where}; body ${id && spool.has(`${id}.eml`) ? 'in the spool' : 'not in the spool'}`);
    }
  } finally {
    db.close();
  }
  starts.forEach((r, i) => {
    lines.push(`  start ${i}: recovery ${r.recovery}`);
    for (const l of r.stderr().split('\n').filter(Boolean).slice(0, 20)) lines.push(`    ${l}`);
  });
  return lines.join('\n');
}

function pendingRows(dir: string): number {
  const db = new DatabaseSync(join(dir, 'mb.db'), { readOnly: true });
  try {
    const row = db.prepare("SELECT COUNT(*) AS n FROM relay_queue WHERE state NOT IN ('sent', 'bounced')").get() as { n: number };
    return row.n;
  } finally {
    db.close();
  }
}

function readdirSafe(path: string): string[] | undefined {
  try {
    return readdirSync(path);
  } catch {
    return undefined;
  }
}
