/**
 * The one SMTP submission opener (nodemailer's SMTPConnection) for Exchange Online's client
 * submission: TLS 1.2+ (implicit or STARTTLS) with any extra CA, SASL XOAUTH2 with the sending
 * mailbox as user and a token that nodemailer renews through the caller when Exchange refuses it,
 * and the proxy as src/net/proxy.ts decides it for the host: an HTTP CONNECT tunnel that
 * SMTPConnection then speaks over (upgrading it to TLS itself on port 465).
 *
 * The relay's SMTP transport pools and explains; this file only opens. Limits: the tunnel is opened
 * before SMTPConnection's own connection timeout starts, bounded by the same timeout.
 */
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import SMTPConnection, { type SMTPConnectionOptions } from 'nodemailer/lib/smtp-connection';
import XOAuth2 from 'nodemailer/lib/xoauth2';
import { isIP, type Socket } from 'node:net';
import { openTunnel, proxyRoute, type ProxySettings } from '../net/proxy.ts';

export interface SmtpOpenOptions {
  host: string;
  port: number;
  tls: 'implicit' | 'starttls';
  /** EHLO name. */
  name: string;
  ca?: string | undefined;
  timeoutMs: number;
  proxy?: ProxySettings | undefined;
}

/**
 * One TLS context per extra CA, shared by every connection that trusts it: a `ca` list made each
 * new connection parse Node's ~150 root certificates again (a few milliseconds of CPU on the
 * relay's event loop and native memory until the garbage collector reached the context), as it
 * did for the HTTP dispatchers (src/net/proxy.ts). The context carries the minimum TLS version,
 * since tls.connect takes it from there when one is given.
 */
const contexts = new Map<string, SecureContext>();
export function contextFor(ca: string): SecureContext {
  let context = contexts.get(ca);
  if (!context) contexts.set(ca, (context = createSecureContext({ ca: [...rootCertificates, ca], minVersion: 'TLSv1.2' })));
  return context;
}

/** A connection ready for `connect()`: through the proxy's tunnel where one applies. */
export async function smtpConnection(o: SmtpOpenOptions): Promise<SMTPConnection> {
  const route = o.proxy ? proxyRoute(o.proxy, { host: o.host, port: o.port }) : undefined;
  const connectTimeout = Math.min(o.timeoutMs, 30_000);
  const options: SMTPConnectionOptions = {
    host: o.host,
    port: o.port,
    secure: o.tls === 'implicit',
    requireTLS: o.tls === 'starttls',
    name: o.name,
    connectionTimeout: connectTimeout,
    greetingTimeout: connectTimeout,
    socketTimeout: o.timeoutMs,
    tls: { ...(o.ca ? { secureContext: contextFor(o.ca) } : {}), ...(isIP(o.host) ? {} : { servername: o.host }), minVersion: 'TLSv1.2' },
    logger: false,
  };
  if (route?.proxy) {
    // SMTPConnection takes an open socket as `connection` and does TLS (465) or STARTTLS over it.
    options.connection = (await openTunnel(route.proxy, o.host, o.port, { ca: o.ca, timeoutMs: connectTimeout })) as Socket;
  }
  return new SMTPConnection(options);
}

/** SASL XOAUTH2 credentials for `login`: nodemailer asks `renew` for a fresh token when Exchange refuses one. */
export function xoauth2(user: string, token: { accessToken: string; expiresOn: Date }, renew: (force: boolean) => Promise<{ accessToken: string; expiresOn: Date }>): XOAuth2 {
  return new XOAuth2(
    {
      user,
      accessToken: token.accessToken,
      expires: token.expiresOn.getTime(),
      provisionCallback: (_user, force, cb) => {
        renew(force).then(
          (t) => cb(null, t.accessToken, t.expiresOn.getTime()),
          (err: Error) => cb(err),
        );
      },
    },
    false,
  );
}
