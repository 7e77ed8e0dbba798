/**
 * FCM sink: events to Android (and iOS/web apps built on Firebase) through the FCM HTTP v1 API.
 *
 * - OAuth2 for a Google service account (RFC 7523 JWT bearer grant): an RS256 JWT signed with the
 *   service account's key (iss = client_email, scope = firebase.messaging, aud = token_uri,
 *   exp = iat + 1 h) is exchanged at token_uri for an access token. The token is cached until five
 *   minutes before it runs out; concurrent deliveries share one exchange.
 * - Request: POST `{url}/v1/projects/{projectId}/messages:send` with
 *   `{ message: { token, data, notification?, android, apns } }`. `data` carries the event as
 *   string values (FCM's data map holds strings only), with `eventId` for deduplication. A new
 *   message is a notification (sender as title, subject as body; left out with privacy minimal);
 *   a read/unread change and a deletion are data messages, collapsed per mailbox on Android, with
 *   the badge count (or a background push) for APNs through FCM.
 * Answers: 200 → ok; UNREGISTERED (404, or 400 with that errorCode) → gone; 401 → a new access
 * token and one immediate retry; 429, 5xx (Retry-After honoured) and the rest → retry. 400
 * INVALID_ARGUMENT and 403 SENDER_ID_MISMATCH are retried, not taken as gone: both also mean a
 * settings mistake (another Firebase project) that must not retire every device.
 * A token endpoint that refuses the assertion is reported as MB_NOTIFY_TOKEN_FAILED (retry).
 */
import { createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { fetch } from '../../net/undici.ts';
import { z } from 'zod';
import { MbError } from '../../errors/index.ts';
import { registerSecret } from '../../log/redact.ts';
import type { FcmSinkConfig } from '../config.ts';
import type { NotifyEvent } from '../events.ts';
import { describeTarget, parseWith, retryAfterMs, shorten, type Sink, type SinkPlugin, type SinkResult, sinkDispatcher, sinkWithSecret, type SinkOptions } from './types.ts';

export const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const DEFAULT_TOKEN_URI = 'https://oauth2.googleapis.com/token';
/** Renew the access token this long before Google says it expires. */
const TOKEN_MARGIN_MS = 5 * 60_000;

export interface FcmParams {
  registrationToken: string;
}

export interface ServiceAccount {
  clientEmail: string;
  privateKey: KeyObject;
  privateKeyId?: string;
  tokenUri: string;
  projectId?: string;
}

/** Reads the service-account key JSON; registers the key with the scrubber before anything can fail. */
export function parseServiceAccount(json: string): ServiceAccount {
  registerSecret(json);
  const bad = (detail: string, cause?: unknown) => new MbError('MB_NOTIFY_SINK_CONFIG_INVALID', { kind: 'fcm', detail }, { cause });
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(json) as Record<string, unknown>;
  } catch (err) {
    throw bad('serviceAccount is not JSON (paste the whole key file the Firebase console downloads)', err);
  }
  if (!raw || typeof raw !== 'object') throw bad('serviceAccount is not a JSON object');
  if (typeof raw.private_key === 'string') registerSecret(raw.private_key);
  if (raw.type !== undefined && raw.type !== 'service_account') throw bad(`serviceAccount has type "${String(raw.type)}", expected "service_account"`);
  if (typeof raw.client_email !== 'string' || !raw.client_email.includes('@')) throw bad('serviceAccount has no client_email');
  if (typeof raw.private_key !== 'string') throw bad('serviceAccount has no private_key');
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(raw.private_key);
  } catch (err) {
    throw bad(`serviceAccount.private_key cannot be read: ${err instanceof Error ? err.message : String(err)}`, err);
  }
  if (privateKey.asymmetricKeyType !== 'rsa') throw bad('serviceAccount.private_key is not an RSA key');
  const tokenUri = typeof raw.token_uri === 'string' ? raw.token_uri : DEFAULT_TOKEN_URI;
  try {
    if (!/^https?:$/.test(new URL(tokenUri).protocol)) throw new Error('not http(s)');
  } catch {
    throw bad(`serviceAccount.token_uri "${tokenUri}" is not an http(s) URL`);
  }
  const out: ServiceAccount = { clientEmail: raw.client_email, privateKey, tokenUri };
  if (typeof raw.private_key_id === 'string') out.privateKeyId = raw.private_key_id;
  if (typeof raw.project_id === 'string') out.projectId = raw.project_id;
  return out;
}

/** The `message` object of messages:send for one event (without the token). */
export function fcmMessage(event: NotifyEvent): Record<string, unknown> {
  const data: Record<string, string> = {
    eventId: event.id,
    type: event.type,
    mailbox: event.mailbox,
    seq: String(event.seq),
    messageId: event.messageId,
    folder: event.folder,
    observedAt: event.observedAt,
  };
  const collapse = createHash('sha256').update(event.mailbox).digest('base64url').slice(0, 32);
  if (event.type === 'message.new') {
    data.receivedAt = event.receivedAt;
    if (event.sender) {
      data.senderAddress = event.sender.address;
      if (event.sender.name) data.senderName = event.sender.name;
    }
    if (event.subject !== undefined) data.subject = event.subject;
    const notification: Record<string, string> = { title: event.sender ? (event.sender.name ?? event.sender.address) : event.mailbox };
    if (event.subject !== undefined) notification.body = event.subject.length > 200 ? `${event.subject.slice(0, 199)}…` : event.subject;
    return {
      data,
      notification,
      android: { priority: 'HIGH' },
      apns: { headers: { 'apns-priority': '10', 'apns-push-type': 'alert' }, payload: { aps: { sound: 'default', 'thread-id': event.mailbox, 'mutable-content': 1 } } },
    };
  }
  if (event.type === 'message.read-state') {
    data.read = String(event.read);
    data.unreadCount = String(event.unreadCount);
    // A newer unread count replaces an undelivered older one.
    return {
      data,
      android: { collapse_key: collapse, priority: 'NORMAL' },
      apns: { headers: { 'apns-priority': '5', 'apns-push-type': 'alert', 'apns-collapse-id': collapse }, payload: { aps: { badge: event.unreadCount } } },
    };
  }
  if (event.unreadCount !== undefined) data.unreadCount = String(event.unreadCount);
  return {
    data,
    android: { priority: 'NORMAL' },
    apns: { headers: { 'apns-priority': '5', 'apns-push-type': 'background' }, payload: { aps: { 'content-available': 1 } } },
  };
}

/** config.serviceAccount in clear (revealed from the SecretBox by the caller). */
export type FcmSinkOptions = SinkOptions<FcmSinkConfig>;

/** notify.fcm as configured; the service account is revealed here. */
export const fcmSink: SinkPlugin = sinkWithSecret('fcm', 'serviceAccount', createFcmSink);

/** The FCM sink; `prepare` fetches an access token (used by `notify test`). */
export function createFcmSink(options: FcmSinkOptions): Sink {
  const { config } = options;
  const now = options.now ?? Date.now;
  const dispatcher = sinkDispatcher(config, options.network);
  const sa = parseServiceAccount(config.serviceAccount);
  const projectId = config.projectId ?? sa.projectId;
  if (!projectId) throw new MbError('MB_NOTIFY_SINK_CONFIG_INVALID', { kind: 'fcm', detail: 'no projectId, and the service account has no project_id' });
  const origin = config.url.replace(/\/+$/, '');
  const sendUrl = `${origin}/v1/projects/${encodeURIComponent(projectId)}/messages:send`;
  const timeoutMs = config.timeoutSeconds * 1000;
  const tokenTarget = describeTarget(sa.tokenUri);

  let cached: { token: string; renewAt: number } | undefined;
  let pending: Promise<string> | undefined;

  async function exchange(): Promise<string> {
    const t = Math.floor(now() / 1000);
    const header: { alg: 'RS256'; typ: 'JWT'; kid?: string } = { alg: 'RS256', typ: 'JWT' };
    if (sa.privateKeyId) header.kid = sa.privateKeyId;
    const assertion = await new SignJWT({ scope: FCM_SCOPE })
      .setProtectedHeader(header)
      .setIssuer(sa.clientEmail)
      .setAudience(sa.tokenUri)
      .setIssuedAt(t)
      .setExpirationTime(t + 3600)
      .sign(sa.privateKey);
    const failed = (detail: string, cause?: unknown) => new MbError('MB_NOTIFY_TOKEN_FAILED', { kind: 'fcm', target: tokenTarget, detail }, { cause });
    let res: Awaited<ReturnType<typeof fetch>>;
    let text: string;
    try {
      res = await fetch(sa.tokenUri, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion }).toString(),
        redirect: 'manual',
        dispatcher,
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      throw failed(err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : errText(err), err);
    }
    let body: { access_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      // Not JSON: reported with the status below.
    }
    if (!res.ok || typeof body.access_token !== 'string' || body.access_token === '') {
      const why = [body.error, body.error_description].filter((v) => typeof v === 'string').join(': ') || text.slice(0, 100);
      throw failed(`${res.status} ${why}`.trim());
    }
    registerSecret(body.access_token, `fcm-access-token:${sa.clientEmail}`);
    const lifetimeMs = (typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 3600) * 1000;
    cached = { token: body.access_token, renewAt: now() + Math.max(lifetimeMs - TOKEN_MARGIN_MS, lifetimeMs / 2) };
    return body.access_token;
  }

  function accessToken(): Promise<string> {
    if (cached && now() < cached.renewAt) return Promise.resolve(cached.token);
    pending ??= exchange().finally(() => {
      pending = undefined;
    });
    return pending;
  }

  async function send(token: string, body: string): Promise<{ status: number; headers: Headers; text: string }> {
    const res = await fetch(sendUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json; charset=utf-8' },
      body,
      redirect: 'manual',
      dispatcher,
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: res.status, headers: res.headers, text: await res.text() };
  }

  const schema = z
    .object({
      registrationToken: z.string().regex(/^[A-Za-z0-9_:.-]{32,4096}$/, 'expected the FCM registration token from getToken()'),
    })
    .strict();

  const sink: Sink = {
    kind: 'fcm',
    parseParams(input) {
      return parseWith(schema, input);
    },
    publicParams(params) {
      return { registrationToken: shorten(params.registrationToken) };
    },
    async prepare() {
      await accessToken();
    },
    async deliver(event, subscription): Promise<SinkResult> {
      const p = subscription.params as unknown as FcmParams;
      const target = `${describeTarget(origin)} ${shorten(p.registrationToken)}`;
      const body = JSON.stringify({ message: { token: p.registrationToken, ...fcmMessage(event) } });
      let res: Awaited<ReturnType<typeof send>> | undefined;
      for (let attempt = 0; attempt < 2; attempt++) {
        let token: string;
        try {
          token = await accessToken();
        } catch (err) {
          const error = err instanceof MbError ? err : new MbError('MB_NOTIFY_TOKEN_FAILED', { kind: 'fcm', target: tokenTarget, detail: errText(err) });
          return { kind: 'retry', error };
        }
        try {
          res = await send(token, body);
        } catch (err) {
          const detail = err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : errText(err);
          return { kind: 'retry', error: new MbError('MB_NOTIFY_UNREACHABLE', { target: describeTarget(sendUrl), detail }) };
        }
        // 401: the access token was revoked or expired early; fetch a new one and try once more.
        if (res.status !== 401) break;
        if (cached?.token === token) cached = undefined;
      }
      if (!res) throw new Error('unreachable');
      if (res.status === 200) return { kind: 'ok' };
      const { status, errorCode } = fcmError(res.text);
      const reason = [errorCode, status].filter(Boolean).join(' ') || res.text.slice(0, 100);
      const params = { kind: 'fcm', target, status: res.status, reason };
      if (errorCode === 'UNREGISTERED' && (res.status === 404 || res.status === 400)) return { kind: 'gone', error: new MbError('MB_NOTIFY_GONE', params) };
      const out: SinkResult = { kind: 'retry', error: new MbError('MB_NOTIFY_REJECTED', params) };
      const afterMs = retryAfterMs(res.headers.get('retry-after'), now());
      if (afterMs !== undefined) out.afterMs = afterMs;
      return out;
    },
  };
  return sink;
}

/** `error.status` and the FcmError `errorCode` of an FCM error answer (google.rpc.Status). */
export function fcmError(text: string): { status?: string; errorCode?: string } {
  try {
    const e = (JSON.parse(text) as { error?: { status?: unknown; details?: Array<{ '@type'?: unknown; errorCode?: unknown }> } }).error;
    const out: { status?: string; errorCode?: string } = {};
    if (typeof e?.status === 'string') out.status = e.status;
    const detail = e?.details?.find((d) => typeof d?.errorCode === 'string');
    if (detail) out.errorCode = String(detail.errorCode);
    return out;
  } catch {
    return {};
  }
}

function errText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
}
