/**
 * The one EWS client (the EWS watcher's; any EWS use goes here): one undici dispatcher per
 * watcher (keep-alive sockets shared by every mailbox and group, through the proxy that
 * src/net/proxy.ts decides, NO_PROXY honoured), SOAP POSTs with the headers Exchange routes by, and
 * the hanging GetStreamingEvents response read as text chunks. Autodiscover (autodiscover.ts) uses
 * the same dispatcher. The SOAP vocabulary is in soap.ts, the XML helper in xml.ts (the sandbox's
 * emulator has its own on purpose, so that it cannot share this client's mistakes).
 *
 * Headers (facts §5.4–5.5): `Authorization` (whatever the caller's provider returns: Bearer or
 * Basic), `X-AnchorMailbox` (the mailbox, or the group's anchor), `X-PreferServerAffinity: true` and
 * `Cookie: X-BackEndOverrideCookie=…` for a subscription group, the ExchangeImpersonation SOAP header
 * for app-only access. The affinity cookie of a response is handed back to the caller, who keeps
 * it per group.
 *
 * Back-off: ErrorServerBusy (either shape) and HTTP 503 are retried after BackOffMilliseconds
 * (capped, default 30 s when Exchange names none), a few times, before the error goes up.
 */
import ntlmClient from '@ewsjs/ntlm-client';
import { request, type Dispatcher } from '../../net/undici.ts';
import { registerSecret } from '../../log/redact.ts';
import { httpDispatcher, type ProxySettings } from '../../net/proxy.ts';
import { sleep } from '../../util/limits.ts';
import { envelope, EwsError, soapBody, soapEnvelope } from './soap.ts';
import type { XEl, XNode } from './xml.ts';

export interface EwsTarget {
  url: string;
  /** The mailbox whose credentials are used (and impersonated when `impersonate`). */
  mailbox: string;
  /** X-AnchorMailbox; default: `mailbox`. */
  anchor?: string;
  /** Subscription-group requests: X-PreferServerAffinity and the group's cookie. */
  affinity?: boolean;
  cookie?: string;
}

/**
 * Windows authentication (NTLMv2) for on-premises Exchange, whose EWS virtual directory ships with
 * it: `DOMAIN\\user` or a UPN (then no domain), and the account's password.
 */
export interface NtlmCredentials {
  user: string;
  domain: string;
  password: string;
  /** Sent in the NTLM messages; default: this machine's name. */
  workstation?: string;
}

/** `CONTOSO\\svc-mail` → user and domain; `svc-mail@contoso.com` stays whole (UPN, empty domain). */
export function ntlmCredentials(username: string, password: string): NtlmCredentials {
  const i = username.indexOf('\\');
  return i > 0 ? { domain: username.slice(0, i), user: username.slice(i + 1), password } : { domain: '', user: username, password };
}

export interface ClientOptions {
  version: string;
  impersonation: boolean;
  /** The Authorization header (Bearer or Basic); not used with `ntlm`. */
  authorization: (mailbox: string) => Promise<string>;
  /** NTLM instead of `authorization`: each request negotiates on a connection of its own. */
  ntlm?: NtlmCredentials | undefined;
  ca?: string;
  proxy?: ProxySettings | undefined;
  /** Per request (not the stream): headers and body. */
  timeoutMs: number;
  /** Longest wait honoured for one back-off. */
  maxBackOffMs: number;
  busyRetries: number;
  /** Told of the server version each answer reports (to recognise Exchange Online behind any host name). */
  onServerVersion?: (target: EwsTarget, version: { major: number; minor: number }) => void;
  /** Told of every back-off before it is waited out. */
  onBusy?: (target: EwsTarget, ms: number, err: EwsError) => void;
  signal: AbortSignal;
  /** Slot name for registerSecret (one per watcher). */
  secretSlot: string;
}

export interface CallResult {
  body: XNode;
  /** `X-BackEndOverrideCookie=…` when the response set one. */
  affinityCookie?: string;
}

export class EwsClient {
  readonly agent: Dispatcher;
  private readonly o: ClientOptions;
  private lastSecret = '';

  constructor(o: ClientOptions) {
    this.o = o;
    this.agent = httpDispatcher({ ...o.proxy, ca: o.ca, keepAliveTimeout: 60_000 });
    if (o.ntlm) registerSecret(o.ntlm.password, `${o.secretSlot}:ntlm`);
  }

  private async headers(t: EwsTarget): Promise<Record<string, string>> {
    const auth = this.o.ntlm ? '' : await this.o.authorization(t.mailbox);
    // Bearer tokens are masked by the logger's patterns; a Basic value is a password in disguise.
    if (auth && !/^Bearer /i.test(auth) && auth !== this.lastSecret) {
      registerSecret(auth, this.o.secretSlot);
      registerSecret(auth.replace(/^Basic\s+/i, ''), `${this.o.secretSlot}:b64`);
      this.lastSecret = auth;
    }
    const h: Record<string, string> = {
      'content-type': 'text/xml; charset=utf-8',
      accept: 'text/xml',
      ...(auth ? { authorization: auth } : {}),
      'x-anchormailbox': t.anchor ?? t.mailbox,
    };
    if (t.affinity) h['x-preferserveraffinity'] = 'true';
    if (t.cookie) h.cookie = t.cookie;
    return h;
  }

  private body(t: EwsTarget, op: XEl): string {
    return envelope({ version: this.o.version, impersonate: this.o.impersonation ? t.mailbox : undefined }, op);
  }

  /** One SOAP request; ErrorServerBusy is waited out and retried. Throws EwsError. */
  async call(t: EwsTarget, op: XEl): Promise<CallResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(t, op);
      } catch (err) {
        if (!(err instanceof EwsError) || !isBusy(err) || attempt >= this.o.busyRetries) throw err;
        const ms = this.backOffMs(err);
        this.o.onBusy?.(t, ms, err);
        await sleep(ms, this.o.signal);
      }
    }
  }

  backOffMs(err: EwsError): number {
    return Math.min(this.o.maxBackOffMs, Math.max(0, err.backOffMs ?? 30_000));
  }

  private async once(t: EwsTarget, op: XEl): Promise<CallResult> {
    const res = await this.send(t, op, this.o.timeoutMs, this.o.signal);
    const text = await res.body.text();
    const { body, version } = soapEnvelope(text, res.statusCode);
    if (res.statusCode !== 200) throw new EwsError(`Http${res.statusCode}`, `EWS answered HTTP ${res.statusCode}`, { status: res.statusCode });
    if (version) this.o.onServerVersion?.(t, version);
    const cookie = affinityCookie(res.headers);
    return cookie ? { body, affinityCookie: cookie } : { body };
  }

  /**
   * Opens GetStreamingEvents. Resolves once the response headers are in (200), with the affinity
   * cookie if set; `onText` then gets every chunk until the server ends the response, the signal
   * aborts, or an error, which `done` reports (resolves on a clean end).
   */
  async stream(t: EwsTarget, op: XEl, signal: AbortSignal, onText: (text: string) => void): Promise<{ affinityCookie?: string; done: Promise<void> }> {
    const res = await this.send(t, op, 0, signal);
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      soapBody(text, res.statusCode); // throws the fault when there is one
      throw new EwsError(`Http${res.statusCode}`, `EWS answered HTTP ${res.statusCode}`, { status: res.statusCode });
    }
    res.body.setEncoding('utf8');
    const done = (async () => {
      try {
        for await (const chunk of res.body) onText(chunk as string);
      } catch (err) {
        throw err instanceof EwsError ? err : new EwsError('Network', `streaming connection lost: ${(err as Error).message}`, { cause: err });
      }
    })();
    const cookie = affinityCookie(res.headers);
    return cookie ? { affinityCookie: cookie, done } : { done };
  }

  private async send(t: EwsTarget, op: XEl, timeoutMs: number, signal: AbortSignal): Promise<Dispatcher.ResponseData> {
    const headers = await this.headers(t);
    const body = this.body(t, op);
    const ntlm = this.o.ntlm;
    // NTLM authenticates a connection, not a request: negotiate and answer on a socket of its own
    // (through the proxy's tunnel where one applies), closed once the answer is read.
    const dispatcher = ntlm ? httpDispatcher({ ...this.o.proxy, ca: this.o.ca, connections: 1 }) : this.agent;
    const post = (authorization?: string) =>
      request(t.url, {
        method: 'POST',
        headers: authorization ? { ...headers, authorization } : headers,
        body,
        dispatcher,
        signal,
        headersTimeout: timeoutMs || this.o.timeoutMs,
        bodyTimeout: timeoutMs,
      });
    try {
      let res: Dispatcher.ResponseData;
      if (ntlm) {
        const first = await post(ntlmClient.createType1Message(ntlm.workstation, ntlm.domain));
        await first.body.dump();
        const challenge = wwwAuthenticate(first.headers)
          .map((v) => /^NTLM\s+(\S+)/i.exec(v)?.[1])
          .find((v) => v !== undefined);
        if (first.statusCode !== 401 || !challenge) {
          throw new EwsError(`Http${first.statusCode}`, `EWS did not answer the NTLM negotiation with a challenge (HTTP ${first.statusCode}; offered: ${wwwAuthenticate(first.headers).join(', ') || 'nothing'})`, { status: first.statusCode === 200 ? 401 : first.statusCode });
        }
        const type2 = ntlmClient.decodeType2Message(`NTLM ${challenge}`);
        res = await post(ntlmClient.createType3Message(type2, ntlm.user, ntlm.password, ntlm.workstation, ntlm.domain || type2.targetName));
        // Closes once the answer (for a stream: the whole stream) has been read.
        void dispatcher.close().catch(() => undefined);
      } else {
        res = await post();
      }
      if (res.statusCode === 401 || res.statusCode === 403) {
        await res.body.dump();
        throw new EwsError(`Http${res.statusCode}`, `EWS refused the credentials (HTTP ${res.statusCode})`, { status: res.statusCode });
      }
      if (res.statusCode === 503) {
        await res.body.dump();
        // Facts §5.5: 503 = requests queued in IIS; treated like ErrorServerBusy without a hint.
        throw new EwsError('ErrorServerBusy', 'EWS answered HTTP 503 (server busy)', { status: 503 });
      }
      return res;
    } catch (err) {
      if (ntlm) void dispatcher.destroy().catch(() => undefined);
      if (err instanceof EwsError) throw err;
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new EwsError('Aborted', 'aborted');
      throw new EwsError('Network', `${t.url}: ${(err as Error).message}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    await this.agent.close().catch(() => undefined);
  }
}

export function isBusy(err: unknown): err is EwsError {
  return err instanceof EwsError && err.code === 'ErrorServerBusy';
}

function wwwAuthenticate(headers: Record<string, string | string[] | undefined>): string[] {
  const raw = headers['www-authenticate'];
  return (Array.isArray(raw) ? raw : raw ? [raw] : []).flatMap((v) => v.split(/,\s*(?=[A-Za-z][\w-]*(?:\s|,|$))/));
}

function affinityCookie(headers: Record<string, string | string[] | undefined>): string | undefined {
  const raw = headers['set-cookie'];
  for (const c of Array.isArray(raw) ? raw : raw ? [raw] : []) {
    const m = /^\s*(X-BackEndOverrideCookie=[^;]*)/i.exec(c);
    if (m) return m[1];
  }
  return undefined;
}
