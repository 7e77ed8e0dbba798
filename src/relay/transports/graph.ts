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
 *  - Limits: at most 4 requests at once per app and mailbox (the shared Graph client's limit,
 *    src/m365/graph.ts, besides the queue's per-mailbox concurrency); 429 and 503 carry
 *    Retry-After, which pauses the mailbox for that long: the client does not wait here, the queue
 *    defers the message instead of holding a slot.
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
 * Base URL, proxy, CA: the shared Graph client's (route graph.url with or without /v1.0, else the
 * connection's cloud; the connection's `proxy`, else `server.proxy`, else HTTPS_PROXY, NO_PROXY
 * honoured; the connection's caFile added to Node's roots).
 */
import { GRAPH_CONCURRENCY_PER_MAILBOX, GraphClient, type GraphReply } from '../../m365/graph.ts';
import type { ProxySettings } from '../../net/proxy.ts';
import type { Logger } from '../../log/index.ts';
import { silentLogger } from '../../log/index.ts';
import type { OutboundMessage, SendResult } from '../transport.ts';
import { parseRetryAfter } from '../../util/limits.ts';
import { addressesIn, splitMessage } from './headers.ts';
import { attemptToken, GRAPH_MAX_MIME_BYTES, PLACEHOLDER, since, tokenFacts, type DeliverHooks, type DeliveryTarget, type RouteTransport, type TokenSource, type TransportContext } from './types.ts';

export { GRAPH_CONCURRENCY_PER_MAILBOX };
const DEFAULT_RETRY_AFTER = 30;

export interface GraphTransportOptions {
  tokens: TokenSource;
  /** PEM of the connection's caFile, or undefined. */
  caFor(connection: string): Promise<string | undefined>;
  /** Proxy settings for the connection (connection proxy, else server.proxy, else the environment). */
  proxyFor(connection: string): ProxySettings;
  log?: Logger;
}

interface GraphErrorBody {
  code?: string;
  message?: string;
}

/** The `graph` transport of a route: Graph sendMail with the connection's Graph token. */
export const graphTransport = (ctx: TransportContext): RouteTransport => new GraphTransport({ tokens: ctx.tokens, caFor: ctx.caFor, proxyFor: ctx.proxyFor, log: ctx.log });

export class GraphTransport {
  readonly name = 'graph';
  private readonly o: GraphTransportOptions;
  private readonly log: Logger;
  /** One client per connection (an app: Graph's limits are per app and mailbox) and base URL. */
  private readonly clients = new Map<string, Promise<GraphClient>>();

  constructor(options: GraphTransportOptions) {
    this.o = options;
    this.log = options.log ?? silentLogger;
  }

  /** The message's body is the complete MIME message to send (headers already aligned with the envelope). */
  async deliver(message: OutboundMessage, target: DeliveryTarget, hooks: DeliverHooks = {}): Promise<SendResult> {
    const raw = await message.readBody();
    if (raw.length > GRAPH_MAX_MIME_BYTES) {
      return {
        permanent: true,
        mbCode: 'MB_RELAY_GRAPH_TOO_LARGE',
        params: { size: raw.length, limit: GRAPH_MAX_MIME_BYTES },
        detail: `${raw.length} bytes > ${GRAPH_MAX_MIME_BYTES} bytes of MIME (4 MB request after base64)`,
      };
    }
    let client: GraphClient;
    try {
      client = await this.client(target);
    } catch (err) {
      // The connection's caFile could not be read: a temporary failure the admin can fix, as before.
      return this.networkFailure(err, target.graph.url ?? `https://${target.cloud.graphHost}`, target);
    }
    const url = client.url(target.mailbox, '/sendMail');
    const body = raw.toString('base64');
    let forceRefresh = false;
    for (let attempt = 0; ; attempt++) {
      const got = await attemptToken(this.o.tokens, target, 'graph', forceRefresh, hooks);
      if ('failure' in got) return got.failure;
      const { token, t0 } = got;
      hooks.onStep?.({ step: 'token', ok: true, detail: `${target.connection} (Graph)${token.fromCache ? ', cached' : ''}, valid until ${token.expiresOn.toISOString()}`, ms: since(t0) });

      const t1 = performance.now();
      hooks.onStep?.({ step: 'send', ok: true, detail: `POST ${url} (${raw.length} bytes MIME, ${message.recipients.length} recipients)` });
      let res: GraphReply;
      try {
        res = await client.call(target.mailbox, 'POST', url, {
          raw: { data: body, contentType: 'text/plain' },
          token: token.accessToken,
          signal: message.signal,
          timeoutMs: target.graph.timeoutSeconds * 1000,
        });
      } catch (err) {
        hooks.onStep?.({ step: 'accept', ok: false, detail: (err as Error).message, ms: since(t1) });
        return this.networkFailure(err, url, target);
      }
      const text = res.text;
      const ids = `request-id ${res.requestId || '?'}, client-request-id ${res.clientRequestId}`;
      if (res.status === 202) {
        hooks.onStep?.({ step: 'accept', ok: true, detail: `HTTP 202 Accepted (${ids})`, ms: since(t1) });
        return { ok: true, detail: `HTTP 202 Accepted (${ids})` };
      }
      const err = parseError(text);
      const reply = `HTTP ${res.status} ${err.code ?? ''}: ${err.message ?? text.slice(0, 200)} (${ids})`.replace(/\s+/g, ' ').trim();
      hooks.onStep?.({ step: 'accept', ok: false, detail: reply, ms: since(t1) });
      // Roles travel in the token: after a 401, or a 403 that is not about SendAs, a cached token
      // may predate the admin's consent — renew it and try once more.
      const stale = res.status === 401 || (res.status === 403 && token.fromCache && !/SendAsDenied/i.test(err.code ?? ''));
      if (stale && attempt === 0) {
        forceRefresh = true;
        continue;
      }
      const retryAfter = parseRetryAfter(res.headers['retry-after']);
      return this.classify(res.status, err, reply, retryAfter === undefined ? undefined : Math.max(1, Math.ceil(retryAfter / 1000)), target, raw, token.accessToken);
    }
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    for (const c of all) await (await c.catch(() => undefined))?.close();
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

  private client(target: DeliveryTarget): Promise<GraphClient> {
    const key = `${target.connection}\n${target.graph.url ?? ''}`;
    let c = this.clients.get(key);
    if (!c) {
      c = (async () =>
        new GraphClient({
          baseUrl: target.graph.url,
          graphHost: target.cloud.graphHost,
          tokens: async () => (await this.o.tokens.getToken(target.connection, 'graph')).accessToken,
          ca: await this.o.caFor(target.connection),
          proxy: this.o.proxyFor(target.connection),
          // A throttled answer defers the message (the queue pauses the mailbox): no waiting here.
          throttleRetries: 0,
          secretSlot: `relay-graph:${target.connection}`,
        }))();
      c.catch(() => this.clients.delete(key));
      this.clients.set(key, c);
    }
    return c;
  }
}

function parseError(text: string): GraphErrorBody {
  try {
    const j = JSON.parse(text) as { error?: GraphErrorBody };
    return { ...(typeof j.error?.code === 'string' ? { code: j.error.code } : {}), ...(typeof j.error?.message === 'string' ? { message: j.error.message } : {}) };
  } catch {
    return {};
  }
}
