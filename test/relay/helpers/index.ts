/**
 * Shared pieces of the relay tests: a manual clock, a recording transport, a relay on a temporary
 * store and spool, a raw SMTP client over node:net, and a log collector.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createLogger, type Logger } from '../../../src/log/index.ts';
import type { Clock } from '../../../src/util/clock.ts';
import { relaySchema, type RelayConfig } from '../../../src/relay/config.ts';
import { startRelay, type Relay } from '../../../src/relay/index.ts';
import { hashPassword } from '../../../src/util/password.ts';
import type { OutboundMessage, SendResult, Transport } from '../../../src/relay/transport.ts';
import { openStore, type Store } from '../../../src/store/index.ts';
import { tempDir } from '../../support/temp.ts';

/** Time moves only when the test says so; due timers fire in order. */
export class ManualClock implements Clock {
  private t: number;
  private timers: Array<{ at: number; fn: () => void; seq: number }> = [];
  private seq = 0;

  constructor(start = Date.UTC(2026, 10, 2, 9, 0, 0)) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): () => void {
    const timer = { at: this.t + Math.max(0, ms), fn, seq: this.seq++ };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((x) => x !== timer);
    };
  }

  /** Timers set and not yet fired or cancelled (a test waits for one before it advances). */
  get pending(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ms`, firing every timer due on the way (and those they set). */
  advance(ms: number): void {
    const target = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = Math.max(this.t, due.at);
      due.fn();
    }
    this.t = target;
  }
}

export interface Delivery {
  id: string;
  sender: string;
  recipients: string[];
  mailbox: string;
  body: Buffer;
  attempt: number;
  isBounce: boolean;
}

/**
 * A transport that records what it is given. `behave` decides each result (default: accept);
 * it may return a promise the test resolves later, to hold deliveries in flight.
 */
export class RecordingTransport implements Transport {
  readonly name = 'test';
  readonly deliveries: Delivery[] = [];
  readonly attempts: Delivery[] = [];
  behave: (m: OutboundMessage, d: Delivery) => SendResult | Promise<SendResult> = () => ({ ok: true });
  private waiters: Array<{ n: number; resolve: () => void }> = [];

  async send(m: OutboundMessage): Promise<SendResult> {
    const d: Delivery = {
      id: m.id,
      sender: m.sender,
      recipients: [...m.recipients],
      mailbox: m.mailbox,
      body: await m.readBody(),
      attempt: m.attempt,
      isBounce: m.isBounce,
    };
    this.attempts.push(d);
    const result = await this.behave(m, d);
    if ('ok' in result) this.deliveries.push(d);
    for (const w of this.waiters.filter((x) => this.deliveries.length >= x.n)) w.resolve();
    this.waiters = this.waiters.filter((x) => this.deliveries.length < x.n);
    return result;
  }

  /** Resolves when at least `n` messages were delivered. */
  delivered(n: number): Promise<void> {
    if (this.deliveries.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }
}

export interface LogLine {
  level: number;
  msg: string;
  mb?: string;
  [k: string]: unknown;
}

export function collectingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (l: string) => lines.push(JSON.parse(l) as LogLine) } });
  return { log, lines };
}

/** Fast hashes for tests (the cost is in the hash string, so verification follows it). */
export const PASSWORD = 'correct horse battery staple';
export async function testUser(senders: string[], extra: Record<string, unknown> = {}) {
  return { passwordHash: await hashPassword(PASSWORD, 10), allowedSenders: senders, ...extra };
}

export function relayConfig(dataDir: string, overrides: Record<string, unknown> = {}): RelayConfig {
  return relaySchema.parse({ dataDir, hostname: 'relay.test', listeners: [{ host: '127.0.0.1', port: 0 }], ...overrides });
}

export interface TestRelay {
  relay: Relay;
  store: Store;
  transport: RecordingTransport;
  lines: LogLine[];
  port: number;
  dir: string;
  close(): Promise<void>;
}

export async function startTestRelay(
  options: { config?: Record<string, unknown>; clock?: Clock; transport?: RecordingTransport; dir?: string } = {},
): Promise<TestRelay> {
  const owned = options.dir ? undefined : tempDir('mb-relay-');
  const dir = options.dir ?? owned!.path;
  const store = await openStore({ driver: 'sqlite', path: join(dir, 'mb.db') });
  const transport = options.transport ?? new RecordingTransport();
  const { log, lines } = collectingLogger();
  const config = relayConfig(join(dir, 'relay'), options.config);
  const relay = await startRelay({ config, store, log, transport, ...(options.clock ? { clock: options.clock } : {}) });
  return {
    relay,
    store,
    transport,
    lines,
    port: relay.listeners[0]!.port,
    dir,
    async close() {
      await relay.close(1000);
      await store.close();
      owned?.remove();
    },
  };
}

/**
 * Splits off the Received header the relay puts on top of every accepted message (src/relay/
 * cleanup.ts): the test can then compare the rest with what the application sent, byte for byte.
 */
export function withoutReceived(body: Buffer | string): { received: string; rest: Buffer } {
  const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const m = /^Received: from [^\r\n]*\r\n(?:\t[^\r\n]*\r\n)+/.exec(buf.toString('latin1'));
  assert.ok(m, `the message starts with the relay's Received header: ${JSON.stringify(buf.subarray(0, 200).toString('latin1'))}`);
  assert.match(m[0], /\tby relay\.test \(mailbridge\) with /);
  return { received: buf.subarray(0, m[0].length).toString('utf8'), rest: buf.subarray(m[0].length) };
}

export function spoolFiles(t: TestRelay): string[] {
  return readdirSync(join(t.dir, 'relay', 'spool')).filter((f) => !f.startsWith('.'));
}

/**
 * A raw SMTP client: writes exactly the bytes given and reads replies (multi-line replies joined),
 * so tests can send what no well-behaved client would.
 */
export class RawSmtp {
  readonly socket: Socket;
  private buffer = '';
  private replies: string[] = [];
  private waiting: Array<() => void> = [];
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.buffer += d.toString('latin1');
      let m: RegExpExecArray | null;
      // A reply ends with a line "ddd <text>" (space, not hyphen, after the code).
      while ((m = /^((?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n)/.exec(this.buffer))) {
        this.replies.push(m[1]!.trimEnd());
        this.buffer = this.buffer.slice(m[1]!.length);
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static async open(port: number, host = '127.0.0.1', options: { waitGreeting?: boolean } = {}): Promise<RawSmtp> {
    const socket = connect(port, host);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const c = new RawSmtp(socket);
    if (options.waitGreeting !== false) await c.reply();
    return c;
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  }

  /** The next reply; undefined if the server closed the connection first. */
  async reply(timeoutMs = 10_000): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0 && !this.closed) {
      if (Date.now() > deadline) throw new Error(`no reply within ${timeoutMs} ms; buffer: ${JSON.stringify(this.buffer)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiting.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.replies.shift();
  }

  /** Sends a command line and returns its reply. */
  async cmd(line: string): Promise<string | undefined> {
    this.write(line + '\r\n');
    return this.reply();
  }

  /** Everything received and not yet read with reply(): complete replies, then any partial line. */
  peek(): string[] {
    return [...this.replies, ...(this.buffer ? [this.buffer] : [])];
  }

  async nextReplies(n: number): Promise<Array<string | undefined>> {
    const out: Array<string | undefined> = [];
    for (let i = 0; i < n; i++) out.push(await this.reply());
    return out;
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const f of w) f();
  }
}
