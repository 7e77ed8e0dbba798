/**
 * HTTP destination: one POST per message with a JSON body (headers, text, HTML, attachment metadata
 * from mailparser, and the raw MIME in base64), signed so that the receiver can tell it came from
 * this mailbridge and was not altered.
 *
 * Signature: `X-Mailbridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`;
 * receivers check it with `verifySignature` (or the same three lines in their language) and reject
 * old timestamps against replay. `Idempotency-Key` (= delivery ID) is the same on a redelivery, so a
 * receiver that remembers keys holds every message once; `X-Mailbridge-Redelivery: 1` marks those.
 *
 * Replies: 2xx = acknowledged. 408, 425, 429 and 5xx = temporary (Retry-After honoured), like a
 * network failure; other 4xx = refused for good (the message stays in the mailbox). A timeout leaves
 * open whether the receiver got it, so the retry is flagged as a possible redelivery.
 */
import { createHmac, createHash, timingSafeEqual } from 'node:crypto';
import { simpleParser, type AddressObject } from 'mailparser';
import { registerSecret } from '../../log/redact.ts';
import { headerLines, mimeProblem } from '../message.ts';
import type { DestinationConfig } from '../config.ts';
import { ConnectorError, type Delivery, type Destination, type DestinationPlugin } from '../types.ts';
import { parseRetryAfter } from '../../util/limits.ts';

export interface HttpDestinationOptions {
  connector: string;
  url: string;
  secret: string;
  timeoutMs: number;
  headers?: Record<string, string>;
  includeRaw: boolean;
  /** For tests: the clock (ms). */
  now?: () => number;
}

export interface HttpMessageBody {
  deliveryId: string;
  connector: string;
  mailbox: string;
  folder: string;
  item: string;
  redelivery: boolean;
  receivedAt?: string;
  size: number;
  messageId?: string;
  subject?: string;
  date?: string;
  from?: string[];
  to?: string[];
  cc?: string[];
  headers: Array<{ name: string; value: string }>;
  text?: string;
  html?: string;
  attachments: Array<{ filename?: string; contentType: string; size: number; contentId?: string; disposition?: string; sha256: string }>;
  /** Set when the MIME structure is damaged; the other fields are then best effort, `raw` is exact. */
  mimeProblem?: string;
  raw?: string;
}

export function signBody(secret: string, body: string, timestamp: number): string {
  const mac = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

/** For receivers (and tests): true when the header matches the body and is at most `toleranceSeconds` old. */
export function verifySignature(secret: string, header: string | undefined, body: string, options: { toleranceSeconds?: number; now?: number } = {}): boolean {
  if (!header) return false;
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=', 2) as [string, string]));
  const t = Number(parts.t);
  if (!Number.isFinite(t) || !parts.v1) return false;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - t) > (options.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(createHmac('sha256', secret).update(`${t}.${body}`).digest('hex'));
  const given = Buffer.from(parts.v1);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function addresses(a: AddressObject | AddressObject[] | undefined): string[] | undefined {
  if (!a) return undefined;
  const list = Array.isArray(a) ? a : [a];
  const out = list.flatMap((x) => x.value.map((v) => v.address ?? v.name ?? '').filter(Boolean));
  return out.length > 0 ? out : undefined;
}

export async function buildBody(d: Delivery, includeRaw: boolean): Promise<HttpMessageBody> {
  const body: HttpMessageBody = {
    deliveryId: d.deliveryId,
    connector: d.connector,
    mailbox: d.mailbox,
    folder: d.folder,
    item: d.item,
    redelivery: d.redelivery,
    receivedAt: d.internalDate?.toISOString(),
    size: d.raw.length,
    messageId: d.messageId,
    headers: headerLines(d.raw)
      .filter((l) => l.includes(':'))
      .map((l) => ({ name: l.slice(0, l.indexOf(':')), value: l.slice(l.indexOf(':') + 1).trim() })),
    attachments: [],
  };
  const problem = mimeProblem(d.raw);
  if (problem) body.mimeProblem = problem;
  try {
    const parsed = await simpleParser(d.raw, { skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true });
    body.subject = parsed.subject;
    body.date = parsed.date?.toISOString();
    body.from = addresses(parsed.from);
    body.to = addresses(parsed.to);
    body.cc = addresses(parsed.cc);
    body.text = parsed.text;
    if (typeof parsed.html === 'string') body.html = parsed.html;
    body.attachments = parsed.attachments.map((a) => ({
      filename: a.filename,
      contentType: a.contentType,
      size: a.size,
      contentId: a.contentId,
      disposition: a.contentDisposition,
      sha256: createHash('sha256').update(a.content).digest('hex'),
    }));
  } catch (err) {
    body.mimeProblem ??= `not parseable: ${(err as Error).message}`;
  }
  if (includeRaw) body.raw = d.raw.toString('base64');
  return body;
}

export function httpDestination(o: HttpDestinationOptions): Destination {
  registerSecret(o.secret);
  const description = `http ${redactUrl(o.url)}`;
  const now = o.now ?? Date.now;
  return {
    description,
    idempotent: false,
    dedupeBy: 'Idempotency-Key',
    async deliver(d: Delivery) {
      const json = JSON.stringify(await buildBody(d, o.includeRaw));
      const params = { destination: description, connector: o.connector, item: d.item, mailbox: d.mailbox, folder: d.folder };
      let res: Response;
      try {
        res = await fetch(o.url, {
          method: 'POST',
          headers: {
            ...o.headers,
            'content-type': 'application/json; charset=utf-8',
            'user-agent': 'mailbridge/0.1.0',
            'idempotency-key': d.deliveryId,
            'x-mailbridge-delivery-id': d.deliveryId,
            'x-mailbridge-signature': signBody(o.secret, json, Math.floor(now() / 1000)),
            ...(d.redelivery ? { 'x-mailbridge-redelivery': '1' } : {}),
          },
          body: json,
          signal: AbortSignal.timeout(o.timeoutMs),
        });
      } catch (err) {
        const e = err as Error & { cause?: { code?: string; message?: string } };
        const timeout = e.name === 'TimeoutError' || e.name === 'AbortError';
        const detail = timeout ? `no answer within ${Math.round(o.timeoutMs / 1000)} s` : `${e.cause?.code ?? e.name}: ${e.cause?.message ?? e.message}`;
        // A request that timed out may have been processed.
        throw new ConnectorError(timeout ? 'MB_CONNECTOR_DEST_TEMPFAIL' : 'MB_CONNECTOR_DEST_UNREACHABLE', { ...params, detail }, { cause: err, uncertain: timeout });
      }
      const text = (await res.text().catch(() => '')).slice(0, 300);
      if (res.status >= 200 && res.status < 300) return;
      const detail = `HTTP ${res.status}${text ? `: ${text}` : ''}`;
      if (res.status === 408 || res.status === 425 || res.status === 429 || res.status >= 500) {
        throw new ConnectorError('MB_CONNECTOR_DEST_TEMPFAIL', { ...params, detail }, { retryAfterMs: retryAfterMs(res.headers.get('retry-after'), now()) });
      }
      throw new ConnectorError('MB_CONNECTOR_DEST_REJECTED', { ...params, detail }, { permanent: true });
    },
    async close() {},
  };
}

/** Retry-After as seconds or an HTTP date → milliseconds from now (the one parser, src/util/limits.ts). */
export const retryAfterMs = parseRetryAfter;

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    return u.toString();
  } catch {
    return url;
  }
}

/** The `http` destination as configured; its signing secret is revealed here. */
export const httpDestinationPlugin: DestinationPlugin<Extract<DestinationConfig, { kind: 'http' }>> = (c, ctx) =>
  httpDestination({
    connector: ctx.connector,
    url: c.url,
    secret: (ctx.reveal ?? ((s: string) => s))(c.secret, 'destination.secret'),
    timeoutMs: c.timeoutSeconds * 1000,
    headers: c.headers,
    includeRaw: c.includeRaw,
  });
