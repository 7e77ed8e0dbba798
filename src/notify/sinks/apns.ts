/**
 * APNs sink: events to iOS/macOS apps through Apple's HTTP/2 provider API with token auth.
 *
 * - One HTTP/2 session per APNs origin (api.push.apple.com or api.sandbox.push.apple.com), reused
 *   for every request as Apple asks; reopened when it closes.
 * - Provider token: an ES256 JWT with `kid` (key id) and `iss` (team id), `iat`; reused for 50
 *   minutes (Apple refuses tokens older than an hour and renewals more often than every 20).
 * - Request: POST `/3/device/<token>` with apns-topic (bundle id), apns-push-type, apns-priority,
 *   apns-expiration and apns-id (a UUID derived from the event id, so Apple's logs and the
 *   device can match retries).
 * - Payloads: a new message is an alert (sender as title, subject as body; both left out with
 *   privacy minimal); a read/unread change is a badge-only alert with the unread count and a
 *   collapse id per mailbox; a deletion is a background push. Event fields travel under `mb`.
 * Answers: 200 → ok; 410 Unregistered → gone; 403 Expired/InvalidProviderToken → new token and
 * retry; 429, 5xx and the rest → retry. 400 BadDeviceToken is retried, not taken as gone: it also
 * means a sandbox token sent to production (a settings mistake that must not retire every device).
 */
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { openTunnel, proxyRoute } from '../../net/proxy.ts';
import { createHash, createPrivateKey } from 'node:crypto';
import { SignJWT } from 'jose';
import { z } from 'zod';
import { MbError } from '../../errors/index.ts';
import { registerSecret } from '../../log/redact.ts';
import type { ApnsSinkConfig } from '../config.ts';
import type { NotifyEvent } from '../events.ts';
import { parseWith, retryAfterMs, shorten, type Sink, type SinkPlugin, type SinkResult, sinkProxy, sinkWithSecret, type SinkOptions } from './types.ts';

const ORIGINS = { production: 'https://api.push.apple.com', sandbox: 'https://api.sandbox.push.apple.com' } as const;
const TOKEN_REASONS = new Set(['ExpiredProviderToken', 'InvalidProviderToken']);

export interface ApnsParams {
  deviceToken: string;
}

/** A UUID made from the event id: the same event always carries the same apns-id. */
export function apnsId(eventId: string): string {
  const h = createHash('sha256').update(eventId).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`.toUpperCase();
}

export function apnsRequest(event: NotifyEvent): { pushType: 'alert' | 'background'; priority: 5 | 10; payload: Record<string, unknown>; collapseId?: string } {
  const mb = { id: event.id, type: event.type, mailbox: event.mailbox, seq: event.seq, messageId: event.messageId, folder: event.folder };
  if (event.type === 'message.new') {
    const alert: Record<string, string> = { title: event.sender ? (event.sender.name ?? event.sender.address) : event.mailbox };
    if (event.subject !== undefined) alert.body = event.subject.length > 200 ? `${event.subject.slice(0, 199)}…` : event.subject;
    return { pushType: 'alert', priority: 10, payload: { aps: { alert, sound: 'default', 'thread-id': event.mailbox, 'mutable-content': 1 }, mb } };
  }
  if (event.type === 'message.read-state') {
    const collapseId = createHash('sha256').update(event.mailbox).digest('base64url').slice(0, 32);
    return { pushType: 'alert', priority: 5, payload: { aps: { badge: event.unreadCount }, mb: { ...mb, read: event.read, unreadCount: event.unreadCount } }, collapseId };
  }
  return { pushType: 'background', priority: 5, payload: { aps: { 'content-available': 1 }, mb: { ...mb, unreadCount: event.unreadCount } } };
}

export type ApnsSinkOptions = SinkOptions<ApnsSinkConfig>;

/** notify.apns as configured; the .p8 key is revealed here. */
export const apnsSink: SinkPlugin = sinkWithSecret('apns', 'privateKey', createApnsSink);

export function createApnsSink(options: ApnsSinkOptions): Sink {
  const { config } = options;
  const now = options.now ?? Date.now;
  registerSecret(config.privateKey);
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(config.privateKey);
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('the key is not a P-256 EC key');
  } catch (err) {
    throw new MbError('MB_NOTIFY_SINK_CONFIG_INVALID', { kind: 'apns', detail: err instanceof Error ? err.message : String(err) }, { cause: err });
  }
  const origin = config.url ?? ORIGINS[config.environment];
  const timeoutMs = config.timeoutSeconds * 1000;

  let token: { jwt: string; iat: number } | undefined;
  async function providerToken(): Promise<string> {
    const t = Math.floor(now() / 1000);
    if (token && t - token.iat < 50 * 60) return token.jwt;
    const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: config.keyId }).setIssuer(config.teamId).setIssuedAt(t).sign(key);
    token = { jwt, iat: t };
    return jwt;
  }

  let session: ClientHttp2Session | undefined;
  const proxy = sinkProxy(config, options.network);
  async function getSession(): Promise<ClientHttp2Session> {
    if (session && !session.closed && !session.destroyed) return session;
    const u = new URL(origin);
    const port = Number(u.port || (u.protocol === 'http:' ? 80 : 443));
    const route = proxyRoute(proxy, { host: u.hostname, port });
    let s: ClientHttp2Session;
    if (route.proxy) {
      // HTTP/2 over a CONNECT tunnel: TLS (with ALPN h2) is spoken inside the tunnel, end to end with APNs.
      const tunnel = await openTunnel(route.proxy, u.hostname, port, { timeoutMs });
      if (session && !session.closed && !session.destroyed) {
        tunnel.destroy();
        return session;
      }
      s = connect(origin, {
        createConnection: () => (u.protocol === 'http:' ? tunnel : tlsConnect({ socket: tunnel as Socket, servername: u.hostname, ALPNProtocols: ['h2'] })),
      });
    } else {
      s = connect(origin);
    }
    s.on('error', () => s.destroy());
    s.on('close', () => {
      if (session === s) session = undefined;
    });
    s.unref();
    session = s;
    return s;
  }

  function post(path: string, headers: Record<string, string | number>, body: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
    return getSession().then((s) => new Promise((resolve, reject) => {
      s.ref();
      const req = s.request({ [constants.HTTP2_HEADER_METHOD]: 'POST', [constants.HTTP2_HEADER_PATH]: path, ...headers });
      req.setTimeout(timeoutMs, () => req.close(constants.NGHTTP2_CANCEL));
      let status = 0;
      let resHeaders: Record<string, unknown> = {};
      const chunks: Buffer[] = [];
      req.on('response', (h) => {
        status = Number(h[constants.HTTP2_HEADER_STATUS]);
        resHeaders = h;
      });
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve({ status, headers: resHeaders, body: Buffer.concat(chunks).toString('utf8') }));
      req.on('close', () => {
        s.unref();
        if (status === 0) reject(new Error(`no answer within ${timeoutMs} ms or stream reset`));
      });
      req.on('error', reject);
      req.end(body);
    }));
  }

  const schema = z.object({ deviceToken: z.string().regex(/^[0-9a-fA-F]{64,200}$/, 'expected the hex device token from registerForRemoteNotifications') }).strict();

  return {
    kind: 'apns',
    parseParams(input) {
      const p = parseWith(schema, input);
      return { deviceToken: p.deviceToken.toLowerCase() };
    },
    publicParams(params) {
      return { deviceToken: shorten(params.deviceToken) };
    },
    async deliver(event, subscription): Promise<SinkResult> {
      const p = subscription.params as unknown as ApnsParams;
      const target = `${origin}/3/device/${shorten(p.deviceToken)}`;
      const r = apnsRequest(event);
      const headers: Record<string, string | number> = {
        authorization: `bearer ${await providerToken()}`,
        'apns-topic': config.topic,
        'apns-push-type': r.pushType,
        'apns-priority': r.priority,
        'apns-id': apnsId(event.id),
        'apns-expiration': Math.floor(now() / 1000) + 24 * 3600,
        'content-type': 'application/json',
      };
      if (r.collapseId) headers['apns-collapse-id'] = r.collapseId;
      let res: Awaited<ReturnType<typeof post>>;
      try {
        res = await post(`/3/device/${p.deviceToken}`, headers, JSON.stringify(r.payload));
      } catch (err) {
        session?.destroy();
        return { kind: 'retry', error: new MbError('MB_NOTIFY_UNREACHABLE', { target: origin, detail: err instanceof Error ? err.message : String(err) }) };
      }
      if (res.status === 200) return { kind: 'ok' };
      let reason: string;
      try {
        reason = String((JSON.parse(res.body) as { reason?: string }).reason ?? '');
      } catch {
        reason = res.body.slice(0, 100);
      }
      const params = { kind: 'apns', target, status: res.status, reason };
      if (res.status === 410) return { kind: 'gone', error: new MbError('MB_NOTIFY_GONE', params) };
      if (res.status === 403 && TOKEN_REASONS.has(reason)) token = undefined;
      const out: SinkResult = { kind: 'retry', error: new MbError('MB_NOTIFY_REJECTED', params) };
      const afterMs = retryAfterMs(typeof res.headers['retry-after'] === 'string' ? res.headers['retry-after'] : undefined, now());
      if (afterMs !== undefined) out.afterMs = afterMs;
      return out;
    },
    async close() {
      const s = session;
      session = undefined;
      if (s && !s.closed) await new Promise<void>((r) => s.close(() => r()));
    },
  };
}
