/**
 * The Graph watcher's HTTP side: one undici pool for the listener, a bearer token per request, at
 * most `perMailbox` requests in flight per mailbox (Outlook's MailboxConcurrency limit is 4 per app
 * and mailbox, facts §4.8), and 429/503 answered by waiting the Retry-After (a few times, then the
 * answer goes to the caller). The per-mailbox gates exist only while a mailbox has requests in
 * flight or waiting, so 15,000 idle mailboxes cost nothing here.
 */
import { Agent, fetch } from 'undici';
import { MbError } from '../../../errors/index.ts';
import { registerSecret } from '../../../log/redact.ts';
import type { TokenProvider } from '../types.ts';

export interface GraphReply {
  status: number;
  json?: Record<string, unknown>;
  text: string;
  /** Graph's request-id header, for the admin to quote to Microsoft support. */
  requestId: string;
}

export interface GraphClientOptions {
  listener: string;
  /** e.g. https://graph.microsoft.com/v1.0 */
  baseUrl: string;
  tokens: TokenProvider;
  ca?: string;
  perMailbox: number;
  /** Ask for immutable ids (Prefer: IdType="ImmutableId"). */
  immutableIds: boolean;
  /** Called for every 429/503 (reported as MB_WATCH_GRAPH_THROTTLED). */
  onThrottle?: (mailbox: string, error: MbError) => void;
  /** Retries of one request after 429/503 before the answer goes to the caller. */
  throttleRetries?: number;
  /** Per-request time limit. */
  timeoutMs?: number;
}

/** A request that got no HTTP answer (DNS, TLS, refused, timed out). */
export class GraphUnreachable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GraphUnreachable';
  }
}

interface Gate {
  active: number;
  waiters: Array<() => void>;
}

export class GraphClient {
  readonly base: string;
  private readonly o: GraphClientOptions;
  private readonly agent: Agent;
  private readonly gates = new Map<string, Gate>();
  private readonly abort = new AbortController();
  private lastToken = '';

  constructor(o: GraphClientOptions) {
    this.o = o;
    this.base = o.baseUrl.replace(/\/+$/, '');
    this.agent = new Agent({ connect: o.ca ? { ca: o.ca } : {}, keepAliveTimeout: 30_000, connections: 256 });
  }

  /** `/users/{mailbox}` + path, or an absolute link Graph handed out (nextLink, deltaLink). */
  url(mailbox: string, path: string): string {
    return `${this.base}/users/${encodeURIComponent(mailbox)}${path}`;
  }

  async call(mailbox: string, method: string, url: string, options: { body?: unknown; prefer?: string[] } = {}): Promise<GraphReply> {
    const retries = this.o.throttleRetries ?? 5;
    const prefer = [...(options.prefer ?? []), ...(this.o.immutableIds ? ['IdType="ImmutableId"'] : [])];
    await this.enter(mailbox);
    try {
      for (let attempt = 0; ; attempt++) {
        this.abort.signal.throwIfAborted();
        const token = await this.o.tokens(mailbox);
        if (token !== this.lastToken) {
          // One slot per listener: app-only tokens rotate, and the scrubber keeps only the current one.
          registerSecret(token, `watch-graph:${this.o.listener}`);
          this.lastToken = token;
        }
        let status: number;
        let text: string;
        let requestId: string;
        let retryAfter: string | null;
        let contentType: string;
        try {
          const res = await fetch(url, {
            method,
            dispatcher: this.agent,
            headers: {
              authorization: `Bearer ${token}`,
              accept: 'application/json',
              ...(prefer.length ? { prefer: prefer.join(', ') } : {}),
              ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
            },
            body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
            signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.o.timeoutMs ?? 30_000)]),
          });
          text = await res.text();
          status = res.status;
          requestId = res.headers.get('request-id') ?? '';
          retryAfter = res.headers.get('retry-after');
          contentType = res.headers.get('content-type') ?? '';
        } catch (err) {
          if (this.abort.signal.aborted) throw err;
          const e = err as Error & { cause?: { code?: string; message?: string } };
          throw new GraphUnreachable(`${e.cause?.code ?? e.name}: ${e.cause?.message ?? e.message}`, { cause: err });
        }
        if ((status === 429 || status === 503) && attempt < retries) {
          const seconds = retryAfterSeconds(retryAfter, attempt);
          this.o.onThrottle?.(mailbox, new MbError('MB_WATCH_GRAPH_THROTTLED', { status, mailbox, seconds }));
          // The gate slot is kept while waiting: Graph asked this app to slow down on this mailbox.
          await sleep(seconds * 1000, this.abort.signal);
          continue;
        }
        const reply: GraphReply = { status, text, requestId };
        if (/json/i.test(contentType) && text) {
          try {
            const parsed = JSON.parse(text) as unknown;
            if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) reply.json = parsed as Record<string, unknown>;
          } catch {
            // Left out: callers treat a reply without JSON by its status.
          }
        }
        return reply;
      }
    } finally {
      this.leave(mailbox);
    }
  }

  private async enter(mailbox: string): Promise<void> {
    let g = this.gates.get(mailbox);
    if (!g) {
      g = { active: 0, waiters: [] };
      this.gates.set(mailbox, g);
    }
    if (g.active < this.o.perMailbox) {
      g.active++;
      return;
    }
    await new Promise<void>((resolve) => g.waiters.push(resolve));
  }

  private leave(mailbox: string): void {
    const g = this.gates.get(mailbox);
    if (!g) return;
    const next = g.waiters.shift();
    // The slot passes straight to the next waiter.
    if (next) return next();
    g.active--;
    if (g.active <= 0) this.gates.delete(mailbox);
  }

  /** Requests in flight for a mailbox (tests). */
  inFlight(mailbox: string): number {
    return this.gates.get(mailbox)?.active ?? 0;
  }

  async close(): Promise<void> {
    this.abort.abort(new Error('graph watcher closed'));
    for (const g of this.gates.values()) for (const w of g.waiters.splice(0)) w();
    await this.agent.close().catch(() => undefined);
  }
}

/** Graph's error code and message from its envelope. */
export function graphError(reply: GraphReply): { code: string; message: string } {
  const e = reply.json?.error as { code?: unknown; message?: unknown } | undefined;
  return { code: typeof e?.code === 'string' ? e.code : '', message: typeof e?.message === 'string' ? e.message : reply.text.slice(0, 200) };
}

function retryAfterSeconds(value: string | null, attempt: number): number {
  const v = (value ?? '').trim();
  if (/^\d+$/.test(v)) return Math.min(Number(v), 600);
  const t = Date.parse(v);
  if (!Number.isNaN(t)) return Math.min(600, Math.max(0, Math.ceil((t - Date.now()) / 1000)));
  return Math.min(2 ** attempt, 60);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
