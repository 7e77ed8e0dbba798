/**
 * What the change-notification tests share: an HTTPS receiver with a certificate from the sandbox
 * CA (as mailbridge's inbound listener has in tests) that answers Graph's validation handshake and
 * records every notification POST, and fake timers that move the rig's clock and run due timers.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { KeyAndCert } from '../../../src/sandbox/ca.ts';
import type { Timers } from '../../../src/sandbox/graph/index.ts';

export interface Received {
  path: string;
  query: URLSearchParams;
  contentType: string;
  body: string;
  json?: { value: Array<Record<string, unknown>> };
}

export type Answer = { status: number; body?: string; contentType?: string; delayMs?: number };

export interface Receiver {
  url: string;
  /** Every request, in arrival order. */
  requests: Received[];
  /** Notification POSTs (not validations) to `path`. */
  posts(path: string): Received[];
  /** Notification items delivered to `path`, flattened. */
  items(path: string): Array<Record<string, unknown>>;
  /** Overrides the answer; return undefined to answer as a correct endpoint does. */
  answer: (req: Received) => Answer | undefined;
  close(): Promise<void>;
}

export async function startReceiver(tls: KeyAndCert): Promise<Receiver> {
  const requests: Received[] = [];
  const receiver: Receiver = {
    url: '',
    requests,
    posts: (path) => requests.filter((r) => r.path === path && !r.query.has('validationToken')),
    items: (path) => receiver.posts(path).flatMap((r) => r.json?.value ?? []),
    answer: () => undefined,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  const server: Server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'https://receiver.invalid');
      const body = Buffer.concat(chunks).toString('utf8');
      const rec: Received = { path: url.pathname, query: url.searchParams, contentType: String(req.headers['content-type'] ?? ''), body };
      if (body && rec.contentType.startsWith('application/json')) rec.json = JSON.parse(body) as Received['json'];
      requests.push(rec);
      const given = receiver.answer(rec);
      const token = url.searchParams.get('validationToken');
      const a: Answer = given ?? (token !== null ? { status: 200, body: token, contentType: 'text/plain' } : { status: 202 });
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(a.status, { 'content-type': a.contentType ?? 'text/plain' });
        res.end(a.body ?? '');
      };
      if (a.delayMs) setTimeout(send, a.delayMs).unref();
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return receiver;
}

/** Timers that fire only when `advance` moves time (the rig's clock) past them. */
export class FakeTimers implements Timers {
  private clock: { offsetMs: number } = { offsetMs: 0 };
  private seq = 0;
  private readonly due = new Map<number, { at: number; fn: () => void }>();

  attach(clock: { offsetMs: number }): void {
    this.clock = clock;
  }

  private now(): number {
    return Date.now() + this.clock.offsetMs;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.due.set(id, { at: this.now() + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.due.delete(handle as number);
  }

  /** Timers waiting. */
  get pending(): number {
    return this.due.size;
  }

  /** Moves the clock forward and runs every timer that is due, earliest first. */
  advance(ms: number): void {
    this.clock.offsetMs += ms;
    const now = this.now();
    const ready = [...this.due.entries()].filter(([, t]) => t.at <= now).sort((a, b) => a[1].at - b[1].at);
    for (const [id, t] of ready) {
      this.due.delete(id);
      t.fn();
    }
  }
}
