/**
 * The machinery of the kill -9 tests (crash.test.ts: one relay on SQLite; cluster.test.ts: three
 * relay nodes on PostgreSQL): start a relay child (child.ts) and wait for its READY line, send
 * numbered messages from a pool of SMTP clients while recording which got a 250, and read back
 * what the children's upstream transport delivered.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import nodemailer from 'nodemailer';

const CHILD = new URL('./child.ts', import.meta.url).pathname;

/** Small seeded PRNG (mulberry32), so a failing run can be repeated with CRASH_SEED. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Started {
  child: ChildProcess;
  port: number;
  exited: Promise<number | null>;
  /** The child's recovery report (READY line). */
  recovery: string;
  /** What the child logged (warnings and errors), for the report of a failed run. */
  stderr: () => string;
}

/**
 * Starts a relay child: `label` names its deliveries in the log (the round, or the node);
 * `postgres`: the store URL (bodies, claims and limits in PostgreSQL), else SQLite in `dir`.
 */
export function startChild(
  dir: string,
  log: string,
  label: string | number,
  postgres?: { url: string; leaseSeconds: number; upstreamMs?: number },
): Promise<Started> {
  const args = [CHILD, dir, log, String(label), ...(postgres ? [postgres.url, String(postgres.leaseSeconds)] : [])];
  const env = postgres?.upstreamMs ? { ...process.env, MB_CRASH_UPSTREAM_MS: String(postgres.upstreamMs) } : process.env;
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /READY (\d+) (.*)\n/.exec(out);
      if (m) resolve({ child, port: Number(m[1]), exited, recovery: m[2]!, stderr: () => err });
    });
    void exited.then((code) => reject(new Error(`child exited (${code}) before it was ready: ${err}`)));
  });
}

export interface Sent {
  /** Sequence numbers that got a 250. */
  acked: Set<number>;
  /** Queue ID from each 250 ("Message queued as <id>"). */
  ids: Map<number, string>;
  /** Refusals and failures: the reply code (undefined: no reply, e.g. a timeout or a cut connection). */
  failures: Array<{ seq: number; code: number | undefined; at: number; message: string }>;
  next: () => number;
}

export function sentLog(): Sent {
  let seq = 1;
  return { acked: new Set(), ids: new Map(), failures: [], next: () => seq++ };
}

/**
 * `senders` SMTP clients sending numbered messages to `port` until `stop()` resolves them; with
 * `stopOnFailure` a client gives up at its first failure (its relay was killed).
 */
export function sendLoop(
  port: number,
  sent: Sent,
  random: () => number,
  o: { senders: number; stopOnFailure: boolean; /** Sending mailboxes (app0…): each has its own per-mailbox limits. */ mailboxes?: number },
): { stop: () => Promise<void> } {
  const mailboxes = o.mailboxes ?? 4;
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    pool: true,
    maxConnections: o.senders,
    maxMessages: Infinity,
    connectionTimeout: 3_000,
    greetingTimeout: 3_000,
    socketTimeout: 5_000,
  });
  let stopped = false;
  const send = async () => {
    while (!stopped) {
      const seq = sent.next();
      const size = 200 + Math.floor(random() * 20_000);
      try {
        const info = await transport.sendMail({
          envelope: { from: `app${seq % mailboxes}@crash.test`, to: [`rcpt${seq}@example.com`, `bcc${seq}@example.org`] },
          raw: `From: app${seq % mailboxes}@crash.test\r\nTo: rcpt${seq}@example.com\r\nSubject: crash ${seq}\r\nX-Seq: ${seq}\r\n\r\n${'z'.repeat(size)}\r\n`,
        });
        sent.acked.add(seq);
        const id = /queued as (\w+)/.exec(String(info.response))?.[1];
        if (id) sent.ids.set(seq, id);
      } catch (err) {
        // No 250: the message is the client's to resend; not counted.
        const e = err as Error & { responseCode?: number };
        sent.failures.push({ seq, code: e.responseCode, at: Date.now(), message: e.message });
        if (o.stopOnFailure) return;
      }
    }
  };
  const running = Array.from({ length: o.senders }, send);
  return {
    async stop() {
      stopped = true;
      await Promise.allSettled(running);
      transport.close();
    },
  };
}

/** `<label> <seq> <queue id> <Message-ID>` lines the children's upstream transport wrote. */
export function deliveredSeqs(log: string): Array<{ label: string; seq: number; id: string; messageId: string }> {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => /^\S+ \d+ /.test(l))
    .map((l) => {
      const [label, seq, id, messageId] = l.split(' ');
      return { label: label!, seq: Number(seq), id: id ?? '-', messageId: messageId ?? '-' };
    });
}
