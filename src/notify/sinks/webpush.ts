/**
 * Web Push sink: events to browsers and installed web apps.
 *
 * - Delivery (RFC 8030): POST of the encrypted message to the subscription's push-service
 *   endpoint with TTL, Urgency and, for unread-count updates, a Topic so that a browser that was
 *   offline gets the newest badge count rather than every step.
 * - Encryption (RFC 8291 with RFC 8188 aes128gcm): a fresh P-256 key pair and salt per message;
 *   ECDH with the browser's p256dh key, HKDF with its auth secret; one record of 4096 bytes, so the
 *   plaintext is at most 3993 bytes (the push services' 4096-byte body limit). Built from node:crypto
 *   primitives (ECDH, HKDF, AES-128-GCM): no maintained library covers aes128gcm with ESM types.
 * - VAPID (RFC 8292): an ES256 JWT (aud = endpoint origin, exp ≤ 24 h, sub = contact) signed
 *   with jose, sent as `Authorization: vapid t=<jwt>, k=<public key>`.
 *
 * Answers: 2xx → ok; 404/410 → gone (the browser unsubscribed); others → retry.
 */
import { createCipheriv, createECDH, hkdfSync, randomBytes } from 'node:crypto';
import { importJWK, SignJWT, type CryptoKey } from 'jose';
import { z } from 'zod';
import { MbError } from '../../errors/index.ts';
import { registerSecret } from '../../log/redact.ts';
import type { EgressPolicy } from '../../net/egress.ts';
import type { WebPushSinkConfig } from '../config.ts';
import { eventId, type NotifyEvent } from '../events.ts';
import { describeTarget, parseWith, retryAfterMs, shorten, type Sink, type SinkPlugin, type SinkResult, subscriberNetwork, type SubscriberSinkOptions } from './types.ts';

const RECORD_SIZE = 4096;
/** 4096-byte body − 86-byte header − 16-byte tag − 1 delimiter. */
export const MAX_PLAINTEXT = RECORD_SIZE - 86 - 16 - 1;

export interface PushKeys {
  /** The browser's P-256 public key, uncompressed, base64url (PushSubscription.getKey('p256dh')). */
  p256dh: string;
  /** The browser's 16-byte auth secret, base64url. */
  auth: string;
}

export interface WebPushParams {
  endpoint: string;
  keys: PushKeys;
}

/**
 * aes128gcm message encryption of RFC 8291 section 3. `salt` and `asPrivateKey` are random unless
 * given (the RFC's test vector gives both).
 */
export function encryptPushMessage(plaintext: Buffer, keys: PushKeys, fixed: { salt?: Buffer; asPrivateKey?: Buffer } = {}): Buffer {
  if (plaintext.length > MAX_PLAINTEXT) throw new RangeError(`push message of ${plaintext.length} bytes exceeds ${MAX_PLAINTEXT}`);
  const uaPublic = Buffer.from(keys.p256dh, 'base64url');
  const authSecret = Buffer.from(keys.auth, 'base64url');
  const salt = fixed.salt ?? randomBytes(16);
  const ecdh = createECDH('prime256v1');
  if (fixed.asPrivateKey) ecdh.setPrivateKey(fixed.asPrivateKey);
  else ecdh.generateKeys();
  const asPublic = ecdh.getPublicKey();
  const ecdhSecret = ecdh.computeSecret(uaPublic);

  // IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info" || 0x00 || ua_public || as_public, 32)
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), uaPublic, asPublic]);
  const ikm = Buffer.from(hkdfSync('sha256', ecdhSecret, authSecret, keyInfo, 32));
  const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));

  const cipher = createCipheriv('aes-128-gcm', cek, nonce);
  // One record, the last: content followed by the 0x02 delimiter and no padding.
  const body = Buffer.concat([cipher.update(Buffer.concat([plaintext, Buffer.from([2])])), cipher.final(), cipher.getAuthTag()]);

  const header = Buffer.alloc(21);
  salt.copy(header, 0);
  header.writeUInt32BE(RECORD_SIZE, 16);
  header.writeUInt8(asPublic.length, 20);
  return Buffer.concat([header, asPublic, body]);
}

/** The JSON a service worker receives; the subject is shortened, then dropped, to stay within the limit. */
export function pushPayload(event: NotifyEvent, limit = MAX_PLAINTEXT): Buffer {
  let e: NotifyEvent = event;
  if (e.type === 'message.new' && e.subject && e.subject.length > 200) e = { ...e, subject: `${e.subject.slice(0, 199)}…` };
  let out = Buffer.from(JSON.stringify(e));
  if (out.length > limit && e.type === 'message.new') {
    const { subject: _s, sender: _f, ...rest } = e;
    out = Buffer.from(JSON.stringify(rest));
  }
  return out;
}

function b64urlBytes(n: number, label: string) {
  return z
    .string()
    .regex(/^[A-Za-z0-9_-]+=*$/, `${label} must be base64url`)
    .refine((s) => Buffer.from(s, 'base64url').length === n, `${label} must decode to ${n} bytes`);
}

export type WebPushSinkOptions = SubscriberSinkOptions<WebPushSinkConfig>;

/** notify.webpush as configured; the VAPID private key is revealed here. */
export const webPushSink: SinkPlugin = async ({ config, reveal, egress, network }) => {
  const c = config.webpush;
  if (!c) return undefined;
  return createWebPushSink({ config: { ...c, vapid: { ...c.vapid, privateKey: reveal(c.vapid.privateKey, 'notify.webpush.vapid.privateKey') } }, egress, network });
};

export async function createWebPushSink(options: WebPushSinkOptions): Promise<Sink> {
  const { config } = options;
  const now = options.now ?? Date.now;
  const { egress, via, close } = subscriberNetwork(options);
  registerSecret(config.vapid.privateKey);
  const publicKey = Buffer.from(config.vapid.publicKey, 'base64url');
  const d = Buffer.from(config.vapid.privateKey, 'base64url');
  if (publicKey.length !== 65 || publicKey[0] !== 4 || d.length !== 32) {
    throw new MbError('MB_NOTIFY_SINK_CONFIG_INVALID', { kind: 'webpush', detail: 'vapid.publicKey must be a 65-byte uncompressed P-256 point and vapid.privateKey 32 bytes, both base64url' });
  }
  let signingKey: CryptoKey;
  try {
    const check = createECDH('prime256v1');
    check.setPrivateKey(d);
    if (!check.getPublicKey().equals(publicKey)) throw new Error('vapid.publicKey does not belong to vapid.privateKey');
    signingKey = (await importJWK(
      { kty: 'EC', crv: 'P-256', d: config.vapid.privateKey, x: publicKey.subarray(1, 33).toString('base64url'), y: publicKey.subarray(33).toString('base64url') },
      'ES256',
    )) as CryptoKey;
  } catch (err) {
    throw new MbError('MB_NOTIFY_SINK_CONFIG_INVALID', { kind: 'webpush', detail: err instanceof Error ? err.message : String(err) }, { cause: err });
  }

  // One JWT per push-service origin, renewed an hour before it runs out.
  const tokens = new Map<string, { jwt: string; exp: number }>();
  async function vapidToken(origin: string): Promise<string> {
    const t = Math.floor(now() / 1000);
    const cached = tokens.get(origin);
    if (cached && cached.exp - t > 3600) return cached.jwt;
    const exp = t + 12 * 3600;
    const jwt = await new SignJWT({ sub: config.vapid.subject })
      .setProtectedHeader({ typ: 'JWT', alg: 'ES256' })
      .setAudience(origin)
      .setExpirationTime(exp)
      .sign(signingKey);
    tokens.set(origin, { jwt, exp });
    return jwt;
  }

  const schema = z
    .object({
      endpoint: z.url({ protocol: config.requireHttps ? /^https$/ : /^https?$/ }),
      expirationTime: z.number().nullable().optional(),
      keys: z.object({ p256dh: b64urlBytes(65, 'p256dh'), auth: b64urlBytes(16, 'auth') }).strict(),
    })
    .strict()
    .transform(({ endpoint, keys }) => ({ endpoint, keys }));

  return {
    kind: 'webpush',
    parseParams(input) {
      return parseWith(schema, input);
    },
    publicParams(params) {
      return { endpoint: describeTarget(String(params.endpoint)), keys: { p256dh: shorten((params.keys as PushKeys | undefined)?.p256dh) } };
    },
    destinations(params) {
      return [String(params.endpoint)];
    },
    close,
    async deliver(event, subscription): Promise<SinkResult> {
      const p = subscription.params as unknown as WebPushParams;
      const target = describeTarget(p.endpoint);
      const body = encryptPushMessage(pushPayload(event), p.keys);
      const headers: Record<string, string> = {
        'content-type': 'application/octet-stream',
        'content-encoding': 'aes128gcm',
        ttl: String(config.ttlSeconds),
        urgency: event.type === 'message.new' ? config.urgency : 'low',
        authorization: `vapid t=${await vapidToken(new URL(p.endpoint).origin)}, k=${config.vapid.publicKey}`,
      };
      // A newer unread count replaces an undelivered older one (RFC 8030 section 5.4).
      if (event.type === 'message.read-state') headers.topic = eventId(event.mailbox, event.type, 'badge').slice(4, 36);
      let res: Awaited<ReturnType<EgressPolicy['fetch']>>;
      try {
        res = await egress.fetch(p.endpoint, { method: 'POST', headers, body, signal: AbortSignal.timeout(config.timeoutSeconds * 1000) }, via(p.endpoint));
        await res.arrayBuffer().catch(() => undefined);
      } catch (err) {
        if (err instanceof MbError) return { kind: 'retry', error: err };
        return { kind: 'retry', error: new MbError('MB_NOTIFY_UNREACHABLE', { target, detail: err instanceof Error ? err.message : String(err) }) };
      }
      if (res.status >= 200 && res.status < 300) return { kind: 'ok' };
      const params = { kind: 'webpush', target, status: res.status, reason: res.statusText };
      if (res.status === 404 || res.status === 410) return { kind: 'gone', error: new MbError('MB_NOTIFY_GONE', params) };
      const out: SinkResult = { kind: 'retry', error: new MbError('MB_NOTIFY_REJECTED', params) };
      const afterMs = retryAfterMs(res.headers.get('retry-after'), now());
      if (afterMs !== undefined) out.afterMs = afterMs;
      return out;
    },
  };
}
