/**
 * Microsoft Graph sendMail with the message as MIME (microsoft-facts.md §4.7):
 * `POST {graph}/v1.0/users/{mailbox}/sendMail`, `Content-Type: text/plain`, body = base64 of the
 * message exactly as the application sent it (after the header edits routing asks for). Graph
 * answers 202 Accepted: the message is accepted for delivery.
 *
 * Facts and decisions:
 *  - Recipients: Graph reads them from the To, Cc and Bcc headers, not from an envelope, so the
 *    caller aligns the headers with the envelope first (headers.ts alignRecipients): envelope-only
 *    recipients (BCC) go into a Bcc header, which Exchange removes before delivery.
 *  - Sent Items: with MIME content Graph always saves a copy in Sent Items; `saveToSentItems` exists
 *    only for JSON messages (microsoft-graph-docs#18698, davmail#472). The route schema therefore
 *    accepts only `saveToSentItems: true`; converting to JSON would lose headers and structure.
 *  - Size: a request may carry at most 4 MB, so at most 3 MiB of MIME after base64
 *    (GRAPH_MAX_MIME_BYTES); bigger messages are refused before sending or go over SMTP (route
 *    option `graph.fallback: smtp`), decided by the caller.
 *  - Limits: at most 4 requests at once per app and mailbox (a semaphore here, besides the queue's
 *    per-mailbox concurrency); 429 and 503 carry Retry-After, which pauses the mailbox for that long.
 *
 * Replies → results: 202 ok; 429 → deferred, MB_RELAY_GRAPH_THROTTLED, retryAfter from the header;
 * 5xx → deferred, MB_RELAY_GRAPH_UNAVAILABLE; 401 → token renewed and tried once more, then
 * deferred (MB_RELAY_GRAPH_TOKEN_REJECTED); a 403 with a cached token is tried once more with a
 * renewed one (consent granted since); 403 ErrorSendAsDenied → deferred with the
 * Add-RecipientPermission line; other 403 → deferred (Mail.Send / access policy); 404 → deferred
 * (mailbox unknown); 413 → bounced (too large); other 4xx → bounced (MB_RELAY_GRAPH_REJECTED with
 * Graph's code and message). Network failures → deferred. Each failure names Graph's request-id and
 * our client-request-id, which Microsoft support asks for.
 *
 * Proxy: the connection's `proxy`, else `server.proxy`, else HTTPS_PROXY (NO_PROXY honoured); CA:
 * the connection's caFile added to Node's roots.
 */
import { randomUUID } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { EnvHttpProxyAgent, request, type Dispatcher } from 'undici';
import type { Logger } from '../../log/index.ts';
import { silentLogger } from '../../log/index.ts';
import type { OutboundMessage, SendResult } from '../transport.ts';
import { addressesIn, splitMessage } from './headers.ts';
import { PLACEHOLDER, since, tokenFacts, tokenFailure, type DeliverHooks, type DeliveryTarget, type TokenSource } from './types.ts';

/** Graph's request size limit (4 MB) and the largest MIME message that fits after base64. */
export const GRAPH_MAX_REQUEST_BYTES = 4 * 1024 * 1024;
export const GRAPH_MAX_MIME_BYTES = Math.floor(GRAPH_MAX_REQUEST_BYTES / 4) * 3;
/** Outlook's limit of concurrent requests per app and mailbox. */
export const GRAPH_CONCURRENCY_PER_MAILBOX = 4;
const DEFAULT_RETRY_AFTER = 30;

export interface GraphTransportOptions {
  tokens: TokenSource;
  /** PEM of the connection's caFile, or undefined. */
  caFor(connection: string): Promise<string | undefined>;
  /** Proxy URL for the connection (connection proxy, else server.proxy); undefined: environment. */
  proxyFor(connection: string): string | undefined;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
}

interface GraphErrorBody {
  code?: string;
  message?: string;
}

export class GraphTransport {
  readonly name = 'graph';
  private readonly o: GraphTransportOptions;
  private readonly log: Logger;
  private readonly dispatchers = new Map<string, Promise<Dispatcher>>();
  private readonly slots = new Map<string, { used: number; waiters: Array<() => void> }>();

  constructor(options: GraphTransportOptions) {
    this.o = options;
    this.log = options.log ?? silentLogger;
  }

  /** `raw` is the complete MIME message to send (headers already aligned with the envelope). */
  async deliver(message: OutboundMessage, target: DeliveryTarget, raw: Buffer, hooks: DeliverHooks = {}): Promise<SendResult> {
    if (raw.length > GRAPH_MAX_MIME_BYTES) {
      return {
        permanent: true,
        mbCode: 'MB_RELAY_GRAPH_TOO_LARGE',
        params: { size: raw.length, limit: GRAPH_MAX_MIME_BYTES },
        detail: `${raw.length} bytes > ${GRAPH_MAX_MIME_BYTES} bytes of MIME (4 MB request after base64)`,
      };
    }
    const base = (target.graph.url ?? `https://${target.cloud.graphHost}`).replace(/\/+$/, '');
    const url = `${base}/v1.0/users/${encodeURIComponent(target.mailbox)}/sendMail`;
    const body = raw.toString('base64');
    const release = await this.slot(target.mailbox, message.signal);
    try {
      let forceRefresh = false;
      for (let attempt = 0; ; attempt++) {
        const t0 = performance.now();
        let token: { accessToken: string; expiresOn: Date; fromCache: boolean };
        try {
          token = await this.o.tokens.getToken(target.connection, 'graph', { forceRefresh });
        } catch (err) {
          hooks.onStep?.({ step: 'token', ok: false, detail: err instanceof Error ? err.message : String(err), ms: since(t0) });
          return tokenFailure(err);
        }
        hooks.onStep?.({ step: 'token', ok: true, detail: `${target.connection} (Graph)${token.fromCache ? ', cached' : ''}, valid until ${token.expiresOn.toISOString()}`, ms: since(t0) });

        const clientRequestId = randomUUID();
        const t1 = performance.now();
        hooks.onStep?.({ step: 'send', ok: true, detail: `POST ${url} (${raw.length} bytes MIME, ${message.recipients.length} recipients)` });
        let res: Dispatcher.ResponseData;
        try {
          res = await request(url, {
            method: 'POST',
            dispatcher: await this.dispatcher(target.connection),
            headers: { authorization: `Bearer ${token.accessToken}`, 'content-type': 'text/plain', 'client-request-id': clientRequestId, 'return-client-request-id': 'true' },
            body,
            signal: message.signal,
            headersTimeout: target.graph.timeoutSeconds * 1000,
            bodyTimeout: target.graph.timeoutSeconds * 1000,
          });
        } catch (err) {
          hooks.onStep?.({ step: 'accept', ok: false, detail: (err as Error).message, ms: since(t1) });
          return this.networkFailure(err, url, target);
        }
        const text = await res.body.text().catch(() => '');
        const requestId = header(res.headers, 'request-id') ?? '?';
        const ids = `request-id ${requestId}, client-request-id ${clientRequestId}`;
        if (res.statusCode === 202) {
          hooks.onStep?.({ step: 'accept', ok: true, detail: `HTTP 202 Accepted (${ids})`, ms: since(t1) });
          return { ok: true, detail: `HTTP 202 Accepted (${ids})` };
        }
        const err = parseError(text);
        const reply = `HTTP ${res.statusCode} ${err.code ?? ''}: ${err.message ?? text.slice(0, 200)} (${ids})`.replace(/\s+/g, ' ').trim();
        hooks.onStep?.({ step: 'accept', ok: false, detail: reply, ms: since(t1) });
        // Roles travel in the token: after a 401, or a 403 that is not about SendAs, a cached token
        // may predate the admin's consent — renew it and try once more.
        const stale = res.statusCode === 401 || (res.statusCode === 403 && token.fromCache && !/SendAsDenied/i.test(err.code ?? ''));
        if (stale && attempt === 0) {
          forceRefresh = true;
          continue;
        }
        return this.classify(res.statusCode, err, reply, retryAfterOf(res.headers), target, raw, token.accessToken);
      }
    } finally {
      release();
    }
  }

  async close(): Promise<void> {
    const all = [...this.dispatchers.values()];
    this.dispatchers.clear();
    for (const d of all) await (await d.catch(() => undefined))?.close();
  }

  private classify(status: number, err: GraphErrorBody, reply: string, retryAfter: number | undefined, target: DeliveryTarget, raw: Buffer, token: string): SendResult {
    const mailbox = target.mailbox;
    const detail = err.message ?? reply;
    if (status === 429) {
      const seconds = retryAfter ?? DEFAULT_RETRY_AFTER;
      return { temporary: true, mbCode: 'MB_RELAY_GRAPH_THROTTLED', params: { mailbox, seconds, detail: `${err.code ?? ''} ${detail}`.trim() }, code: reply, detail: reply, retryAfter: seconds };
    }
    if (status >= 500) {
      const seconds = retryAfter ?? DEFAULT_RETRY_AFTER;
      return { temporary: true, mbCode: 'MB_RELAY_GRAPH_UNAVAILABLE', params: { status, seconds, detail: `${err.code ?? ''} ${detail}`.trim() }, code: reply, detail: reply, retryAfter: seconds };
    }
    if (status === 401) {
      return { temporary: true, mbCode: 'MB_RELAY_GRAPH_TOKEN_REJECTED', params: { mailbox, detail, connection: target.connection }, code: reply, detail: reply };
    }
    if (status === 403 && /SendAsDenied/i.test(err.code ?? '')) {
      const from = addressesIn(splitMessage(raw), 'from')[0] ?? mailbox;
      // Graph checks SendAs for the mailbox in the path: granting it to that mailbox is enough.
      return {
        temporary: true,
        mbCode: 'MB_RELAY_SEND_AS_DENIED',
        params: { mailbox, from, trustee: mailbox },
        code: reply,
        detail: `${reply} — Add-RecipientPermission -Identity ${from} -Trustee ${mailbox} -AccessRights SendAs`,
      };
    }
    if (status === 403) {
      const appId = tokenFacts(token)?.appId ?? target.conn.clientId ?? PLACEHOLDER.appId;
      return { temporary: true, mbCode: 'MB_RELAY_GRAPH_ACCESS_DENIED', params: { mailbox, appId }, code: reply, detail: reply };
    }
    if (status === 404) {
      return { temporary: true, mbCode: 'MB_RELAY_GRAPH_MAILBOX_UNKNOWN', params: { mailbox, detail }, code: reply, detail: reply };
    }
    if (status === 413) {
      return { permanent: true, mbCode: 'MB_RELAY_GRAPH_TOO_LARGE', params: { size: raw.length, limit: GRAPH_MAX_MIME_BYTES }, code: reply, detail: reply };
    }
    return { permanent: true, mbCode: 'MB_RELAY_GRAPH_REJECTED', params: { status, code: err.code ?? '', detail }, code: reply, detail: reply };
  }

  private networkFailure(err: unknown, url: string, target: DeliveryTarget): SendResult {
    const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
    const code = e.cause?.code ?? e.code ?? '';
    const detail = [e.message, e.cause?.message].filter(Boolean).join(': ') || String(err);
    const u = new URL(url);
    const port = Number(u.port || 443);
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL/.test(`${code} ${detail}`)) {
      return { temporary: true, mbCode: 'MB_RELAY_UPSTREAM_TLS', params: { host: u.hostname, port, detail, connection: target.connection }, detail };
    }
    if (/TIMEOUT/i.test(code)) {
      return { temporary: true, mbCode: 'MB_RELAY_UPSTREAM_TIMEOUT', params: { host: u.hostname, seconds: target.graph.timeoutSeconds, stage: 'sendMail' }, detail };
    }
    return { temporary: true, mbCode: 'MB_RELAY_UPSTREAM_UNREACHABLE', params: { host: u.hostname, port, detail }, detail };
  }

  private dispatcher(connection: string): Promise<Dispatcher> {
    let d = this.dispatchers.get(connection);
    if (!d) {
      d = (async () => {
        const ca = await this.o.caFor(connection);
        const env = this.o.env ?? process.env;
        const proxy = this.o.proxyFor(connection);
        const tls = ca ? { ca: [...rootCertificates, ca] } : {};
        return new EnvHttpProxyAgent({
          httpProxy: proxy ?? env.http_proxy ?? env.HTTP_PROXY ?? '',
          httpsProxy: proxy ?? env.https_proxy ?? env.HTTPS_PROXY ?? env.http_proxy ?? env.HTTP_PROXY ?? '',
          noProxy: env.no_proxy ?? env.NO_PROXY ?? '',
          connect: tls,
          requestTls: tls,
          proxyTls: tls,
        });
      })();
      this.dispatchers.set(connection, d);
    }
    return d;
  }

  /** One of the mailbox's 4 request slots; resolves to its release function. */
  private async slot(mailbox: string, signal: AbortSignal): Promise<() => void> {
    const key = mailbox.toLowerCase();
    let s = this.slots.get(key);
    if (!s) {
      s = { used: 0, waiters: [] };
      this.slots.set(key, s);
    }
    const state = s;
    while (state.used >= GRAPH_CONCURRENCY_PER_MAILBOX) {
      if (signal.aborted) throw signal.reason;
      await new Promise<void>((resolve) => state.waiters.push(resolve));
    }
    state.used++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      state.used--;
      state.waiters.shift()?.();
      if (state.used === 0 && state.waiters.length === 0) this.slots.delete(key);
    };
  }
}

function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Retry-After in seconds (delta-seconds or an HTTP date), at least 1. */
function retryAfterOf(headers: Dispatcher.ResponseData['headers']): number | undefined {
  const v = header(headers, 'retry-after');
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Math.max(1, Number(v.trim()));
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(1, Math.ceil((at - Date.now()) / 1000));
}

function parseError(text: string): GraphErrorBody {
  try {
    const j = JSON.parse(text) as { error?: GraphErrorBody };
    return { ...(typeof j.error?.code === 'string' ? { code: j.error.code } : {}), ...(typeof j.error?.message === 'string' ? { message: j.error.message } : {}) };
  } catch {
    return {};
  }
}
