/**
 * The outbound proxy, decided once for every connection mailbridge opens to the outside: token
 * requests, Graph, EWS and autodiscover (HTTP through undici), IMAP and SMTP (a CONNECT tunnel), and
 * the notification sinks (webhook, Web Push, FCM over HTTP; APNs over HTTP/2 through a tunnel).
 *
 * Strategies:
 * - Precedence: the connection's `proxy`, else `server.proxy`, else HTTPS_PROXY / https_proxy (then
 *   HTTP_PROXY / http_proxy, as curl does for want of anything better). A notification sink has its
 *   own `proxy` and `noProxy`, because push services are often reached by another path than
 *   Microsoft 365.
 * - NO_PROXY (or a sink's `noProxy`) applies to every proxy, explicit or from the environment, with
 *   the semantics of curl and undici: entries separated by commas or blanks, `*` for everything, a
 *   host name matches itself and its subdomains (`.example.com` and `*.example.com` alike), an
 *   optional `:port` narrows an entry. The same rule decides where the connection goes and what
 *   `token` and `config check` report, so the report cannot say "proxy" for a direct connection.
 * - HTTP: one undici EnvHttpProxyAgent per setting, handed the resolved proxy and NO_PROXY list
 *   (never left to read the environment itself), with any extra CA for target and proxy alike.
 * - Raw TCP (SMTP, APNs): an HTTP CONNECT tunnel opened with undici's Client.connect, so proxy
 *   authentication (user:password in the proxy URL) and an HTTPS proxy work as for HTTP.
 *
 * Limits: HTTP(S) proxies only (CONNECT); SOCKS is not offered. No proxy auto-configuration (PAC).
 */
import type { Duplex } from 'node:stream';
import { createSecureContext, rootCertificates } from 'node:tls';
import { Client, EnvHttpProxyAgent, type Dispatcher } from './undici.ts';
import { registerSecret } from '../log/redact.ts';

export interface ProxySettings {
  /** Explicit proxy URL: the connection's, else server.proxy, or a sink's own. Undefined: the environment. */
  proxy?: string | undefined;
  /** Where `proxy` came from, for reports. */
  source?: 'connection' | 'server' | 'sink' | undefined;
  /** Explicit NO_PROXY list (a sink's `noProxy`); undefined: NO_PROXY / no_proxy. */
  noProxy?: string | undefined;
  env?: NodeJS.ProcessEnv | undefined;
}

/** Where one connection goes. */
export interface ProxyRoute {
  /** The proxy to go through; undefined: direct. */
  proxy?: URL;
  /** For reports, password masked: "http://proxy:3128/ (server)", "none (direct)", "none (NO_PROXY)". */
  description: string;
  /** Why it goes direct, if it does. */
  bypass?: 'no-proxy' | 'none-configured';
}

/** The proxy URL (explicit or from the environment) and where it came from, before NO_PROXY. */
export function configuredProxy(s: ProxySettings): { url: URL; source: string } | undefined {
  const env = s.env ?? process.env;
  const fromEnv = env.https_proxy || env.HTTPS_PROXY || env.http_proxy || env.HTTP_PROXY || '';
  const raw = s.proxy || fromEnv;
  if (!raw) return undefined;
  const url = new URL(raw);
  if (url.password) registerSecret(decodeURIComponent(url.password));
  const source = s.proxy ? (s.source ?? 'connection') : env.https_proxy || env.HTTPS_PROXY ? 'HTTPS_PROXY' : 'HTTP_PROXY';
  return { url, source };
}

/** The NO_PROXY list in force for these settings. */
export function noProxyList(s: ProxySettings): string {
  const env = s.env ?? process.env;
  return s.noProxy ?? env.no_proxy ?? env.NO_PROXY ?? '';
}

/** Whether NO_PROXY exempts host:port (undici's and curl's rule; see the file comment). */
export function bypassesProxy(noProxy: string, host: string, port: number): boolean {
  const value = noProxy.trim();
  if (value === '') return false;
  if (value === '*') return true;
  const name = host.replace(/^\[|\]$/g, '').toLowerCase();
  for (const entry of value.split(/[,\s]/)) {
    if (!entry) continue;
    const m = /^(.+):(\d+)$/.exec(entry);
    const entryHost = (m ? m[1]! : entry).replace(/^\*?\./, '').replace(/^\[|\]$/g, '').toLowerCase();
    if (m && Number(m[2]) !== port) continue;
    if (name === entryHost || name.endsWith(`.${entryHost}`)) return true;
  }
  return false;
}

/** Masked proxy URL for output. */
export function showProxy(url: URL): string {
  const shown = new URL(url.href);
  if (shown.password) shown.password = '********';
  return shown.href;
}

/** Where a connection to `target` (a URL, or host and port) goes under these settings. */
export function proxyRoute(s: ProxySettings, target: URL | { host: string; port: number }): ProxyRoute {
  const configured = configuredProxy(s);
  if (!configured) return { description: 'none (direct)', bypass: 'none-configured' };
  const { host, port } = target instanceof URL ? { host: target.hostname, port: Number(target.port || (target.protocol === 'http:' ? 80 : 443)) } : target;
  if (bypassesProxy(noProxyList(s), host, port)) return { description: `none (NO_PROXY: ${host})`, bypass: 'no-proxy' };
  return { proxy: configured.url, description: `${showProxy(configured.url)} (${configured.source})` };
}

export interface HttpDispatcherOptions extends ProxySettings {
  /** Extra trusted CA certificates (PEM), added to Node's roots, for target and proxy. */
  ca?: string | undefined;
  keepAliveTimeout?: number;
  connections?: number;
}

/** An undici dispatcher that goes through the proxy these settings name, except where NO_PROXY says not to. */
export function httpDispatcher(o: HttpDispatcherOptions): Dispatcher {
  const configured = configuredProxy(o);
  // One TLS context for every connection of this dispatcher: with a `ca` list each new connection
  // parsed Node's ~150 root certificates again, into native memory freed only when the garbage
  // collector reached the context (the largest part of the watchers' memory at 50,000 mailboxes).
  const tls = o.ca ? { secureContext: createSecureContext({ ca: [...rootCertificates, o.ca] }) } : {};
  const proxy = configured?.url.href ?? '';
  return new EnvHttpProxyAgent({
    // Both set explicitly, so undici never reads the environment on its own.
    httpProxy: proxy,
    httpsProxy: proxy,
    noProxy: noProxyList(o),
    connect: tls,
    requestTls: tls,
    proxyTls: tls,
    ...(o.keepAliveTimeout !== undefined ? { keepAliveTimeout: o.keepAliveTimeout } : {}),
    ...(o.connections !== undefined ? { connections: o.connections } : {}),
  });
}

/**
 * A TCP stream to host:port through the proxy (HTTP CONNECT). The caller speaks TLS over it itself
 * where the protocol needs (SMTP on 465, APNs). Rejects with undici's error when the proxy refuses
 * (e.g. "Proxy response (407)") or cannot be reached.
 */
export async function openTunnel(proxy: URL, host: string, port: number, o: { ca?: string | undefined; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Duplex> {
  const headers: Record<string, string> = { host: `${host}:${port}` };
  if (proxy.username || proxy.password) {
    headers['proxy-authorization'] = `Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')}`;
  }
  const client = new Client(proxy.origin, {
    connect: o.ca ? { ca: [...rootCertificates, o.ca] } : {},
    ...(o.timeoutMs ? { headersTimeout: o.timeoutMs } : {}),
  });
  const hostPart = host.includes(':') ? `[${host}]` : host;
  try {
    const { socket, statusCode } = await client.connect({
      path: `${hostPart}:${port}`,
      headers,
      ...(o.signal ? { signal: o.signal } : {}),
    } as Dispatcher.ConnectOptions);
    if (statusCode !== 200) {
      socket.destroy();
      throw Object.assign(new Error(`Proxy response (${statusCode}) !== 200 when HTTP Tunneling`), { code: 'EPROXY' });
    }
    // The tunnel's socket outlives the request; the Client has nothing else to do.
    socket.once('close', () => void client.close().catch(() => undefined));
    return socket;
  } catch (err) {
    await client.destroy().catch(() => undefined);
    const e = err as Error & { statusCode?: number; code?: string };
    if (!e.code) e.code = 'EPROXY';
    throw e;
  }
}
