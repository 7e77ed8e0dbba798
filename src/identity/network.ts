/**
 * The one HTTP client identity uses: MSAL's `system.networkClient` (INetworkModule), on undici.
 * Proxy, extra CA, timeouts and retries live here, so every request to Entra ID (token, device
 * code) gets the same treatment whichever flow MSAL runs.
 *
 * Strategies:
 * - Proxy: the connection's `proxy`, else `server.proxy`, else HTTPS_PROXY/HTTP_PROXY from the
 *   environment; NO_PROXY is honoured in every case, so a sandbox on localhost stays reachable
 *   behind a corporate proxy. The rule lives in src/net/proxy.ts, shared with every other client.
 * - CA: `caFile` is added to Node's bundled roots (not instead of them), for the target and for an
 *   HTTPS proxy alike.
 * - Retries: 429 and 5xx are retried with exponential backoff (1 s, 2 s, 4 s … capped), or after
 *   exactly the Retry-After the service asked for; at most `maxAttempts` requests per call.
 *   A Retry-After longer than `maxRetryAfterMs` is not waited out: the caller gets the answer at
 *   once (MSAL then remembers the throttle, and mailbridge reports MB_ENTRA_THROTTLED). Transient
 *   socket failures (reset, timeout) are retried the same way; refused connections, unknown hosts
 *   and TLS failures are not, because waiting does not fix configuration.
 * - Observations: MSAL turns Entra's error JSON into terse errors (the device code flow keeps only
 *   the `error` word). The full error body, the URL and any transport failure are kept per
 *   correlation ID so identity can explain the failure with the AADSTS code, trace and correlation ID.
 *
 * Limits: request bodies are small form posts and answers small JSON documents; no streaming.
 */
import { request, type Dispatcher } from '../net/undici.ts';
import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from '@azure/msal-node';
import { MbError } from '../errors/index.ts';
import { configuredProxy, httpDispatcher, proxyRoute, showProxy, type ProxyRoute, type ProxySettings } from '../net/proxy.ts';
import { parseRetryAfter } from '../util/limits.ts';

export interface EntraErrorBody {
  error?: string;
  error_description?: string;
  error_codes?: number[];
  suberror?: string;
  trace_id?: string;
  correlation_id?: string;
  timestamp?: string;
  error_uri?: string;
}

/** What the network saw for one MSAL call (one correlation ID): the last answer and any failure. */
export interface Observation {
  url: string;
  status?: number;
  /** Entra's error JSON, when the last answer was one. */
  errorBody?: EntraErrorBody;
  /** A transport failure or an unusable answer, already explained. */
  failure?: MbError;
  /** Retry-After of the last answer, in ms. */
  retryAfterMs?: number;
  /** Requests sent for this correlation ID (retries included). */
  requests: number;
  /** The waits before each retry, in ms (what Retry-After or the backoff asked for). */
  waits: number[];
}

export interface NetworkOptions {
  /** Explicit proxy URL (connection `proxy`, else `server.proxy`); undefined: HTTPS_PROXY from env. */
  proxy?: string;
  /** Where the proxy setting came from, for describe(). */
  proxySource?: 'connection' | 'server';
  env?: NodeJS.ProcessEnv;
  /** Extra trusted CA certificates (PEM), added to Node's roots. */
  ca?: string;
  /** Requests per call including the first (default 4). */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A Retry-After longer than this is not waited out (default 60 s). */
  maxRetryAfterMs?: number;
  /** Headers and body timeout per request (default 30 s). */
  timeoutMs?: number;
  /** Injectable for tests: how to wait between attempts. */
  sleep?: (ms: number) => Promise<void>;
  /** Called with every Entra error answer (device code polling reports `authorization_pending` through it). */
  onErrorBody?: (correlationId: string, body: EntraErrorBody) => void;
}

const RETRY_STATUS = (s: number) => s === 429 || (s >= 500 && s <= 599);
const TRANSIENT = new Set(['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
const TLS = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS|ERR_SSL/;
const MAX_OBSERVATIONS = 1000;

export class UndiciNetwork implements INetworkModule {
  readonly dispatcher: Dispatcher;
  /** Human-readable proxy in use (credentials masked), or undefined for a direct connection. */
  readonly proxyDescription: string | undefined;
  private readonly proxyUrl: URL | undefined;
  private readonly proxySettings: ProxySettings;
  private readonly opts: Required<Pick<NetworkOptions, 'maxAttempts' | 'baseDelayMs' | 'maxDelayMs' | 'maxRetryAfterMs' | 'timeoutMs'>> & NetworkOptions;
  private readonly observations = new Map<string, Observation>();

  constructor(options: NetworkOptions = {}) {
    this.opts = { maxAttempts: 4, baseDelayMs: 1000, maxDelayMs: 30_000, maxRetryAfterMs: 60_000, timeoutMs: 30_000, ...options };
    this.proxySettings = { proxy: options.proxy, source: options.proxySource ?? 'connection', env: options.env };
    const configured = configuredProxy(this.proxySettings);
    if (configured) {
      this.proxyUrl = configured.url;
      this.proxyDescription = `${showProxy(configured.url)} (${configured.source})`;
    }
    this.dispatcher = httpDispatcher({ ...this.proxySettings, ca: options.ca });
  }

  /** Where a request to `url` goes: through the proxy, or direct (none configured, or NO_PROXY). */
  routeFor(url: string): ProxyRoute {
    return proxyRoute(this.proxySettings, new URL(url));
  }

  async sendGetRequestAsync<T>(url: string, options?: NetworkRequestOptions, timeout?: number): Promise<NetworkResponse<T>> {
    return this.send<T>('GET', url, options, timeout);
  }

  async sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    return this.send<T>('POST', url, options);
  }

  /** What the network saw for a correlation ID so far. */
  peek(correlationId: string): Observation | undefined {
    return this.observations.get(correlationId);
  }

  /** What the network saw for a correlation ID; forgets it. */
  take(correlationId: string): Observation | undefined {
    const o = this.observations.get(correlationId);
    this.observations.delete(correlationId);
    return o;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  private observe(correlationId: string, url: string): Observation {
    let o = this.observations.get(correlationId);
    if (!o) {
      if (this.observations.size >= MAX_OBSERVATIONS) this.observations.delete(this.observations.keys().next().value!);
      o = { url, requests: 0, waits: [] };
      this.observations.set(correlationId, o);
    }
    o.url = url;
    return o;
  }

  private async send<T>(method: 'GET' | 'POST', url: string, options?: NetworkRequestOptions, timeout?: number): Promise<NetworkResponse<T>> {
    const correlationId = options?.correlationId ?? '';
    const obs = this.observe(correlationId, stripQuery(url));
    const target = new URL(url);
    const timeoutMs = timeout ?? this.opts.timeoutMs;
    for (let attempt = 1; ; attempt++) {
      obs.requests++;
      let status: number;
      let headers: Record<string, string>;
      let text: string;
      try {
        const res = await request(url, {
          dispatcher: this.dispatcher,
          method,
          headers: options?.headers,
          body: method === 'POST' ? (options?.body ?? '') : undefined,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        });
        status = res.statusCode;
        headers = flattenHeaders(res.headers);
        text = await res.body.text();
      } catch (err) {
        const code = errorCode(err);
        if (code && TRANSIENT.has(code) && attempt < this.opts.maxAttempts) {
          const wait = this.backoff(attempt);
          obs.waits.push(wait);
          await this.sleep(wait);
          continue;
        }
        obs.failure = this.transportError(err, target);
        throw obs.failure;
      }
      obs.status = status;
      obs.retryAfterMs = parseRetryAfter(headers['retry-after']);
      let body: unknown;
      try {
        body = text === '' ? {} : JSON.parse(text);
      } catch {
        body = undefined;
      }
      if (RETRY_STATUS(status) && attempt < this.opts.maxAttempts) {
        const retryAfter = parseRetryAfter(headers['retry-after']);
        if (retryAfter === undefined || retryAfter <= this.opts.maxRetryAfterMs) {
          const wait = retryAfter ?? this.backoff(attempt);
          obs.waits.push(wait);
          await this.sleep(wait);
          continue;
        }
      }
      if (body === undefined || typeof body !== 'object' || body === null) {
        // Not JSON: a proxy's or web server's page, or a wrong tokenEndpoint.
        obs.failure = unusableAnswer(status, headers, obs.url, text);
        throw obs.failure;
      }
      if (status >= 400 || 'error' in body) {
        obs.errorBody = body as EntraErrorBody;
        this.opts.onErrorBody?.(correlationId, obs.errorBody);
      }
      if (RETRY_STATUS(status) && !(body as EntraErrorBody).error) {
        obs.failure = unusableAnswer(status, headers, obs.url, text);
        throw obs.failure;
      }
      return { status, headers, body: body as T };
    }
  }

  private backoff(attempt: number): number {
    return Math.min(this.opts.baseDelayMs * 2 ** (attempt - 1), this.opts.maxDelayMs);
  }

  private sleep(ms: number): Promise<void> {
    if (this.opts.sleep) return this.opts.sleep(ms);
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  private transportError(err: unknown, target: URL): MbError {
    const code = errorCode(err) ?? '';
    const detail = describeError(err);
    const proxyAnswer = /Proxy response \((\d+)\)/.exec(detail);
    if (this.proxyDescription && this.routeFor(target.href).proxy && (proxyAnswer || isAbout(err, this.proxyUrl!))) {
      return new MbError(
        'MB_IDENTITY_PROXY',
        // target: host and port the tunnel goes to (host alone has a port only when it is not 443).
        { proxy: this.proxyDescription, host: target.host, target: target.port ? target.host : `${target.hostname}:443`, detail: proxyAnswer ? proxyStatusText(Number(proxyAnswer[1])) : detail },
        { cause: err },
      );
    }
    if (TLS.test(code) || TLS.test(detail)) {
      return new MbError('MB_IDENTITY_TLS', { host: target.host, detail }, { cause: err });
    }
    if (/TIMEOUT/.test(code)) {
      return new MbError('MB_IDENTITY_TIMEOUT', { host: target.host, seconds: Math.round(this.opts.timeoutMs / 1000) }, { cause: err });
    }
    return new MbError('MB_IDENTITY_NETWORK', { host: target.host, detail }, { cause: err });
  }
}

function unusableAnswer(status: number, headers: Record<string, string>, url: string, text: string): MbError {
  if (status === 429) {
    const ra = parseRetryAfter(headers['retry-after']);
    return new MbError('MB_ENTRA_THROTTLED', { seconds: ra === undefined ? '?' : Math.ceil(ra / 1000) });
  }
  if (status >= 500) return new MbError('MB_ENTRA_UNAVAILABLE', { status, endpoint: url });
  const snippet = text.replace(/\s+/g, ' ').trim().slice(0, 120);
  return new MbError('MB_IDENTITY_BAD_RESPONSE', {
    endpoint: url,
    status,
    detail: `${headers['content-type'] ?? 'no content type'}: ${snippet || '(empty)'}`,
  });
}

function flattenHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

function stripQuery(url: string): string {
  const i = url.indexOf('?');
  return i < 0 ? url : url.slice(0, i);
}

function chain(err: unknown): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  let e = err;
  for (let i = 0; i < 5 && e && typeof e === 'object'; i++) {
    out.push(e as Record<string, unknown>);
    e = (e as { cause?: unknown }).cause;
  }
  return out;
}

function errorCode(err: unknown): string | undefined {
  for (const e of chain(err)) if (typeof e.code === 'string') return e.code;
  return undefined;
}

function describeError(err: unknown): string {
  const parts: string[] = [];
  for (const e of chain(err)) {
    const m = typeof e.message === 'string' ? e.message : '';
    if (m && !parts.includes(m)) parts.push(m);
  }
  return parts.join(': ') || String(err);
}

/** Whether a connect failure names the proxy's address (refused, unknown host) rather than the target's. */
function isAbout(err: unknown, proxy: URL): boolean {
  const host = proxy.hostname.replace(/^\[|\]$/g, '');
  const port = Number(proxy.port || (proxy.protocol === 'https:' ? 443 : 80));
  return chain(err).some(
    (e) => (e.hostname === host || e.address === host || e.host === host) && (e.port === undefined || Number(e.port) === port),
  );
}

function proxyStatusText(status: number): string {
  if (status === 407) return 'the proxy answered 407 Proxy Authentication Required';
  if (status === 403) return 'the proxy answered 403 Forbidden (the host is not allowed through it)';
  return `the proxy answered ${status} to CONNECT`;
}
