/**
 * The one IMAP session opener (imapflow), for the connector's IMAP source and the IMAP watcher:
 * SASL XOAUTH2 with the mailbox as user and a bearer token (imapflow picks OAUTHBEARER where a
 * server offers it; Exchange Online offers only XOAUTH2), or a password for on-premises servers;
 * TLS 1.2+ with any extra CA; the proxy (HTTP CONNECT, imapflow's `proxy`) as src/net/proxy.ts
 * decides it for this host, NO_PROXY included; and a login bounded as a whole.
 *
 * Exchange's replies are explained in one place (imap-replies.ts, classifyImapError); this
 * opener keeps what that needs: the throttling hint imapflow only logs, and the server's BYE.
 *
 * Limits: IDLE is the caller's (auto-IDLE and COMPRESS are off: Exchange does not offer COMPRESS,
 * and each caller decides when to IDLE).
 */
import { ImapFlow, type ImapFlowOptions, type Logger as ImapLogger } from 'imapflow';
import type { Logger } from '../log/index.ts';
import { registerSecret } from '../log/redact.ts';
import { proxyRoute, type ProxySettings } from '../net/proxy.ts';
import type { ImapTls } from './imap-fields.ts';

export interface ImapOpenOptions {
  host: string;
  port: number;
  /** implicit: TLS from the start (993); starttls: upgrade required; none: cleartext (loopback tests only). */
  tls: ImapTls;
  ca?: string | undefined;
  servername?: string | undefined;
  /** SASL user: the mailbox (or an on-premises account), and a bearer token or a password. */
  auth: { user: string; accessToken: string } | { user: string; pass: string };
  proxy?: ProxySettings | undefined;
  log: Logger;
  /** imapflow restarts IDLE this often; sockets time out a minute later. */
  idleRestartMs: number;
  connectTimeoutMs: number;
  /** Ask for QRESYNC where offered (the watcher's VANISHED). */
  qresync?: boolean;
}

/** What the session saw that imapflow does not put into its errors. */
export interface ImapSessionFacts {
  /** The backoff Exchange suggested in a throttling reply seen on this session (ms). */
  throttleHintMs?: number;
}

/** A client not yet connected: the caller attaches its listeners, then calls `connect`. */
export function imapClient(o: ImapOpenOptions, facts: ImapSessionFacts): ImapFlow {
  const secret = 'accessToken' in o.auth ? o.auth.accessToken : o.auth.pass;
  if (secret) registerSecret(secret);
  const route = o.proxy ? proxyRoute(o.proxy, { host: o.host, port: o.port }) : undefined;
  const options: ImapFlowOptions = {
    host: o.host,
    port: o.port,
    secure: o.tls === 'implicit',
    doSTARTTLS: o.tls === 'starttls' ? true : o.tls === 'none' ? false : undefined,
    servername: o.servername,
    tls: { ca: o.ca, servername: o.servername, minVersion: 'TLSv1.2' },
    auth: o.auth,
    logger: imapLogger(o.log, facts),
    clientInfo: { name: 'mailbridge', version: '0.1.0' },
    disableAutoIdle: true,
    disableCompression: true,
    ...(o.qresync ? { qresync: true } : {}),
    ...(route?.proxy ? { proxy: route.proxy.href } : {}),
    maxIdleTime: o.idleRestartMs,
    socketTimeout: o.idleRestartMs + 60_000,
    connectionTimeout: o.connectTimeoutMs,
    greetingTimeout: 16_000,
  };
  return new ImapFlow(options);
}

/**
 * Connects and logs in, bounded as a whole: neither a stop nor a server that stops answering during
 * the login may hold the caller (imapflow's own timeouts cover connect and greeting, not
 * AUTHENTICATE). On any failure the client is closed and the error goes up unchanged.
 */
export async function connectWithin(client: ImapFlow, signal: AbortSignal, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer to the login within ${ms / 1000} s`), { code: 'ETIMEDOUT' })), ms);
  });
  try {
    await Promise.race([client.connect(), stopped]);
  } catch (err) {
    client.close();
    throw err;
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

/** imapflow's log goes to ours at trace level; the throttling hint is kept for the error. */
function imapLogger(log: Logger, facts: ImapSessionFacts): ImapLogger {
  const pass = (obj: unknown) => {
    const o = obj as { msg?: string; throttleDelay?: number };
    if (o && o.msg === 'Throttling detected' && typeof o.throttleDelay === 'number') facts.throttleHintMs = o.throttleDelay;
    if (log.isLevelEnabled('trace')) log.trace({ imap: obj }, 'imapflow');
  };
  return { trace: pass, debug: pass, info: pass, warn: pass, error: pass, fatal: pass };
}
