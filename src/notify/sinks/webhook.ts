/**
 * Webhook sink: signed HTTP POSTs in the Standard Webhooks scheme (https://www.standardwebhooks.com).
 *
 * Each request carries `webhook-id` (the event id: the same on every retry, so receivers
 * deduplicate on it), `webhook-timestamp` (seconds, of this attempt) and `webhook-signature`
 * (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the bytes of the subscriber's
 * `whsec_<base64>` secret). The body is `{"type", "timestamp", "data"}` with the event as data.
 *
 * Answers: 2xx → ok; 410 → gone (the scheme's way to unsubscribe); anything else, a timeout or a
 * network error → retry (Retry-After honoured). The subscriber supplies the secret; mailbridge never
 * shows it again (GET lists the URL only).
 */
import { createHmac } from 'node:crypto';
import { z } from 'zod';
import { MbError } from '../../errors/index.ts';
import { registerSecret } from '../../log/redact.ts';
import type { EgressPolicy } from '../../net/egress.ts';
import type { WebhookSinkConfig } from '../config.ts';
import type { NotifyEvent } from '../events.ts';
import { describeTarget, parseWith, retryAfterMs, type Sink, type SinkPlugin, type SinkResult, subscriberNetwork, type SubscriberSinkOptions } from './types.ts';

const SECRET_RE = /^whsec_([A-Za-z0-9+/]+={0,2})$/;

function secretBytes(secret: string): Buffer {
  const m = SECRET_RE.exec(secret);
  if (!m) throw new MbError('MB_NOTIFY_SUBSCRIPTION_INVALID', { detail: 'sink.secret: not a whsec_<base64> secret' });
  return Buffer.from(m[1]!, 'base64');
}

/** `v1,<signature>` for one message; exported for `notify test` and receivers written in TypeScript. */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const mac = createHmac('sha256', secretBytes(secret)).update(`${id}.${timestamp}.${body}`).digest('base64');
  return `v1,${mac}`;
}

export interface WebhookParams {
  url: string;
  secret: string;
}

export interface WebhookSinkOptions extends SubscriberSinkOptions<WebhookSinkConfig> {
  /** Overrides config.timeoutSeconds (tests). */
  timeoutMs?: number;
}

export function webhookPayload(event: NotifyEvent): string {
  return JSON.stringify({ type: event.type, timestamp: event.observedAt, data: event });
}

/** notify.webhook as configured. */
export const webhookSink: SinkPlugin = async ({ config, egress, network }) =>
  config.webhook ? createWebhookSink({ config: config.webhook, egress, network }) : undefined;

export function createWebhookSink(options: WebhookSinkOptions): Sink {
  const now = options.now ?? Date.now;
  const timeoutMs = options.timeoutMs ?? options.config.timeoutSeconds * 1000;
  const { egress, via, close } = subscriberNetwork(options);
  const schema = z
    .object({
      url: z.url({ protocol: options.config.requireHttps ? /^https$/ : /^https?$/ }),
      secret: z.string().regex(SECRET_RE, 'expected whsec_ followed by base64'),
    })
    .strict()
    .refine((p) => {
      const n = secretBytes(p.secret).length;
      return n >= 24 && n <= 64;
    }, { message: 'the secret must hold 24 to 64 random bytes', path: ['secret'] });

  return {
    kind: 'webhook',
    parseParams(input) {
      return parseWith(schema, input);
    },
    publicParams(params) {
      return { url: params.url };
    },
    destinations(params) {
      return [String(params.url)];
    },
    close,
    async deliver(event, subscription): Promise<SinkResult> {
      const p = subscription.params as unknown as WebhookParams;
      registerSecret(p.secret);
      const target = describeTarget(p.url);
      const body = webhookPayload(event);
      const ts = Math.floor(now() / 1000);
      let res: Awaited<ReturnType<EgressPolicy['fetch']>>;
      try {
        res = await egress.fetch(p.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'mailbridge-webhook',
            'webhook-id': event.id,
            'webhook-timestamp': String(ts),
            'webhook-signature': signWebhook(p.secret, event.id, ts, body),
          },
          body,
          signal: AbortSignal.timeout(timeoutMs),
        }, via(p.url));
        // The answer's body is not needed; drain it so the connection can be reused.
        await res.arrayBuffer().catch(() => undefined);
      } catch (err) {
        if (err instanceof MbError) return { kind: 'retry', error: err };
        const detail = err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : errText(err);
        return { kind: 'retry', error: new MbError('MB_NOTIFY_UNREACHABLE', { target, detail }) };
      }
      if (res.status >= 200 && res.status < 300) return { kind: 'ok' };
      const params = { kind: 'webhook', target, status: res.status, reason: res.statusText };
      if (res.status === 410) return { kind: 'gone', error: new MbError('MB_NOTIFY_GONE', params) };
      const afterMs = retryAfterMs(res.headers.get('retry-after'), now());
      const out: SinkResult = { kind: 'retry', error: new MbError('MB_NOTIFY_REJECTED', params) };
      if (afterMs !== undefined) out.afterMs = afterMs;
      return out;
    },
  };
}

function errText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
}
