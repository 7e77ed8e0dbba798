/**
 * The one Microsoft Graph HTTP client: the relay's sendMail, the connector's Graph source and the
 * Graph watcher all send through it, and keep only what is theirs (what a reply means for them).
 *
 * Strategies:
 * - Base URL: one notion (graph-url.ts): the service root with /v1.0, from the setting or the
 *   connection's cloud; `url()` appends `/users/{mailbox}` and the path, absolute links Graph hands
 *   out (nextLink, deltaLink) are used as they are.
 * - Token per request: the provider is asked before every request (its cache makes that cheap), so
 *   a renewed token is used at once; each token is registered with the scrubber under one slot per
 *   client, because app-only tokens rotate and only the current one needs masking.
 * - Concurrency: at most `perMailbox` (default and most 4, Outlook's MailboxConcurrency limit per app
 *   and mailbox, facts §4.8) requests in flight per mailbox; the per-mailbox gates exist only while
 *   a mailbox has requests in flight or waiting, so 15,000 idle mailboxes cost nothing here.
 * - Back-off: 429, 503 and 504 are waited out (Retry-After as seconds or a date, else 1, 2, 4 … s,
 *   capped) up to `throttleRetries` times, holding the mailbox's slot (Graph asked this app to slow
 *   down on this mailbox), then the reply goes to the caller with `retryAfterMs`. With 0 retries
 *   the caller decides (the relay defers the message instead of holding a queue slot).
 * - Network: proxy and extra CA through src/net/proxy.ts (connection proxy, else server.proxy,
 *   else HTTPS_PROXY; NO_PROXY honoured). A request with no HTTP answer throws GraphUnreachable.
 *
 * Limits: bodies are read whole (Graph's MIME downloads are at most the 150 MB message limit).
 */
import { randomUUID } from 'node:crypto';
import { request, type Dispatcher } from '../net/undici.ts';
import { registerSecret } from '../log/redact.ts';
import { httpDispatcher, type ProxySettings } from '../net/proxy.ts';
import { KeyedLimits, parseRetryAfter, sleep } from '../util/limits.ts';
import { graphBaseUrl } from './graph-url.ts';

/** Outlook's limit of concurrent requests per app and mailbox. */
export const GRAPH_CONCURRENCY_PER_MAILBOX = 4;
const THROTTLE_STATUS = new Set([429, 503, 504]);
const MAX_RETRY_AFTER_MS = 600_000;

export interface GraphReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  text: string;
  /** The body as JSON, when Graph said it is JSON and it parses to an object. */
  json?: Record<string, unknown>;
  /** Graph's request-id header, for the admin to quote to Microsoft support. */
  requestId: string;
  /** Our client-request-id, sent with every request. */
  clientRequestId: string;
  /** The wait Graph asked for (Retry-After) on a throttled answer, in ms. */
  retryAfterMs?: number;
}

export interface GraphClientOptions {
  /** Configured Graph base URL (with or without /v1.0); undefined: the cloud's. */
  baseUrl?: string | undefined;
  /** The cloud's Graph host, for the default base URL. */
  graphHost?: string | undefined;
  /** A bearer token for requests on this mailbox. */
  tokens: (mailbox: string) => Promise<string>;
  proxy?: ProxySettings | undefined;
  /** Extra trusted CA certificates (PEM), added to Node's roots. */
  ca?: string | undefined;
  /** Requests per mailbox at once (at most 4). */
  perMailbox?: number | undefined;
  /** Ask for immutable ids (Prefer: IdType="ImmutableId"). */
  immutableIds?: boolean | undefined;
  /** Waits after 429/503/504 before the answer goes to the caller (default 4). */
  throttleRetries?: number | undefined;
  /** Told of every throttled answer before it is waited out. */
  onThrottle?: ((mailbox: string, status: number, waitMs: number) => void) | undefined;
  /** Per-request time limit (headers and body), default 30 s. */
  timeoutMs?: number | undefined;
  /** registerSecret slot for this client's tokens. */
  secretSlot?: string | undefined;
  /** Sockets per origin (default 64). */
  connections?: number | undefined;
}

export interface GraphCallOptions {
  /** A JSON body. */
  json?: unknown;
  /** A body as is, with its content type (e.g. base64 MIME as text/plain for sendMail). */
  raw?: { data: string | Buffer; contentType: string };
  headers?: Record<string, string>;
  prefer?: string[];
  /** Use this token instead of asking the provider (the caller reports its own token step). */
  token?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** A request that got no HTTP answer (DNS, TLS, refused, timed out, proxy refused). */
export class GraphUnreachable extends Error {
  readonly code: string;
  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GraphUnreachable';
    this.code = code;
  }
}

export class GraphClient {
  /** The normalised base URL, e.g. https://graph.microsoft.com/v1.0. */
  readonly base: string;
  private readonly o: GraphClientOptions;
  private readonly dispatcher: Dispatcher;
  private readonly gates: KeyedLimits;
  private readonly abort = new AbortController();
  private lastToken = '';
  private readonly slot: string;

  constructor(o: GraphClientOptions) {
    this.o = o;
    this.base = graphBaseUrl(o.baseUrl, o.graphHost);
    this.gates = new KeyedLimits(Math.max(1, Math.min(GRAPH_CONCURRENCY_PER_MAILBOX, o.perMailbox ?? GRAPH_CONCURRENCY_PER_MAILBOX)));
    this.dispatcher = httpDispatcher({ ...o.proxy, ca: o.ca, keepAliveTimeout: 30_000, connections: o.connections ?? 64 });
    this.slot = o.secretSlot ?? `graph:${randomUUID()}`;
  }

  /** `{base}/users/{mailbox}{path}`. */
  url(mailbox: string, path: string): string {
    return `${this.base}/users/${encodeURIComponent(mailbox)}${path}`;
  }

  /** One request on a mailbox's behalf: `url` is absolute, or a path below the base URL. */
  async call(mailbox: string, method: string, url: string, options: GraphCallOptions = {}): Promise<GraphReply> {
    const target = /^https?:\/\//i.test(url) ? url : `${this.base}${url.startsWith('/') ? '' : '/'}${url}`;
    const retries = this.o.throttleRetries ?? 4;
    const signal = options.signal ? AbortSignal.any([options.signal, this.abort.signal]) : this.abort.signal;
    return this.gates.with(
      mailbox.toLowerCase(),
      async () => {
        for (let attempt = 0; ; attempt++) {
          signal.throwIfAborted();
          const reply = await this.once(mailbox, method, target, options, signal);
          if (!THROTTLE_STATUS.has(reply.status)) return reply;
          const asked = parseRetryAfter(reply.headers['retry-after']);
          const wait = Math.min(MAX_RETRY_AFTER_MS, asked ?? Math.min(2 ** attempt, 60) * 1000);
          reply.retryAfterMs = wait;
          if (attempt >= retries) return reply;
          this.o.onThrottle?.(mailbox, reply.status, wait);
          await sleep(wait, signal);
        }
      },
      signal,
    );
  }

  private async once(mailbox: string, method: string, url: string, options: GraphCallOptions, signal: AbortSignal): Promise<GraphReply> {
    const token = options.token ?? (await this.o.tokens(mailbox));
    if (token !== this.lastToken) {
      registerSecret(token, this.slot);
      this.lastToken = token;
    }
    const prefer = [...(options.prefer ?? []), ...(this.o.immutableIds ? ['IdType="ImmutableId"'] : [])];
    const clientRequestId = randomUUID();
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      accept: 'application/json',
      'client-request-id': clientRequestId,
      'return-client-request-id': 'true',
      ...(prefer.length ? { prefer: prefer.join(', ') } : {}),
      ...(options.json !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(options.raw ? { 'content-type': options.raw.contentType } : {}),
      ...options.headers,
    };
    const timeoutMs = options.timeoutMs ?? this.o.timeoutMs ?? 30_000;
    let status: number;
    let resHeaders: Record<string, string>;
    let body: Buffer;
    try {
      const res = await request(url, {
        method: method as Dispatcher.HttpMethod,
        dispatcher: this.dispatcher,
        headers,
        body: options.json !== undefined ? JSON.stringify(options.json) : options.raw?.data,
        signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      status = res.statusCode;
      resHeaders = flatten(res.headers);
      body = Buffer.from(await res.body.arrayBuffer());
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
      const code = e.cause?.code ?? e.code ?? e.name;
      throw new GraphUnreachable(`${code}: ${e.cause?.message ?? e.message}`, code, { cause: err });
    }
    const text = body.toString('utf8');
    const reply: GraphReply = { status, headers: resHeaders, body, text, requestId: resHeaders['request-id'] ?? '', clientRequestId };
    if (/json/i.test(resHeaders['content-type'] ?? '') && text) {
      try {
        const parsed = JSON.parse(text) as unknown;
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) reply.json = parsed as Record<string, unknown>;
      } catch {
        // Left out: callers treat a reply without JSON by its status.
      }
    }
    return reply;
  }

  /** Requests in flight for a mailbox (tests). */
  inFlight(mailbox: string): number {
    return this.gates.inUse(mailbox.toLowerCase());
  }

  async close(): Promise<void> {
    this.abort.abort(new Error('Graph client closed'));
    await this.dispatcher.close().catch(() => undefined);
  }
}

/** Graph's error code and message from its envelope. */
export function graphError(reply: Pick<GraphReply, 'json' | 'text'>): { code: string; message: string } {
  const e = reply.json?.error as { code?: unknown; message?: unknown } | undefined;
  return { code: typeof e?.code === 'string' ? e.code : '', message: typeof e?.message === 'string' ? e.message : reply.text.slice(0, 200) };
}

function flatten(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}
