/**
 * The subscriptions REST API: apps and devices subscribe to mailboxes here.
 *
 *   POST   /api/v1/subscriptions       {mailboxes, events?, privacy?, label?, sink: {kind, …params}} → 201
 *   GET    /api/v1/subscriptions       [?mailbox=…] → {subscriptions: [...]}
 *   GET    /api/v1/subscriptions/:id   → the subscription
 *   DELETE /api/v1/subscriptions/:id   → 204
 *
 * - Every call needs `Authorization: Bearer <key>` with one of notify.api.keys (compared in
 *   constant time); otherwise 401 MB_NOTIFY_API_UNAUTHORIZED.
 * - Sink parameters are checked by the sink itself (`parseParams`); a sink that is not configured
 *   is refused with MB_NOTIFY_SINK_NOT_CONFIGURED. URLs the subscriber chose go through the egress
 *   policy (src/net/egress.ts): internal targets, credentials in URLs and mailbridge's own
 *   listeners are refused with MB_NOTIFY_EGRESS_* (400).
 * - Answers show sink parameters only through the sink's `publicParams`: never the webhook secret,
 *   never a full device token or push key. A subscription whose sink was taken out of the
 *   configuration shows its kind only.
 * - Errors are `{error: {code, title, cause, fix}}` from the catalogue, in the language of
 *   Accept-Language (de → German, else English), with the catalogue's HTTP status.
 * - A subscription for mailboxes no watch group watches is created (a group may follow), and the
 *   201 answer carries `warnings: [{code: MB_NOTIFY_MAILBOX_NOT_WATCHED, …}]`; the log says so too.
 *
 * The plugin is encapsulated (its own auth hook and error handler apply to these routes only).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { MbError, toMbError } from '../errors/index.ts';
import type { Lang } from '../i18n/index.ts';
import type { EgressPolicy } from '../net/egress.ts';
import type { NotifyRepository, NotifySubscriptionRecord } from '../store/notify.ts';
import { unwatched } from './check.ts';
import { EVENT_TYPES } from './events.ts';
import type { Sink } from './sinks/types.ts';

export const SUBSCRIPTIONS_PATH = '/api/v1/subscriptions';

export interface NotifyApiOptions {
  repo: NotifyRepository;
  sinks: ReadonlyMap<string, Sink>;
  /** API keys in clear, by name (revealed from notify.api.keys). */
  apiKeys: Readonly<Record<string, string>>;
  /** Mailboxes some watch group watches: a subscription for others gets a warning (no event would come). */
  watched?: ReadonlySet<string>;
  /** Judges the URLs subscribers choose (webhook URL, push endpoint); refused ones get 400 with the MB code. */
  egress?: Pick<EgressPolicy, 'check'>;
  now?: () => number;
}

/** Largest list of mailboxes in one subscription (an MDM may watch a whole listener pool). */
export const MAX_MAILBOXES = 10_000;

const createSchema = z
  .object({
    mailboxes: z.array(z.email().max(320)).min(1).max(MAX_MAILBOXES),
    events: z.array(z.enum(EVENT_TYPES)).max(EVENT_TYPES.length).default([]),
    privacy: z.enum(['full', 'minimal']).default('full'),
    label: z.string().min(1).max(200).optional(),
    sink: z.looseObject({ kind: z.string().regex(/^[a-z0-9-]{1,32}$/, 'expected a sink kind such as webhook, webpush, apns or fcm') }),
  })
  .strict();

const ID_RE = /^sub_[A-Za-z0-9_-]{1,64}$/;

/** en or de from an Accept-Language header, honouring q-values; English when neither is asked for. */
export function langFromHeader(header: string | undefined): Lang {
  let best: { lang: Lang; q: number } | undefined;
  for (const part of (header ?? '').split(',')) {
    const [tag = '', ...rest] = part.trim().toLowerCase().split(';');
    const qp = rest.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qp ? Number(qp.slice(2)) : 1;
    const lang: Lang | undefined = tag.startsWith('de') ? 'de' : tag.startsWith('en') ? 'en' : undefined;
    if (lang && Number.isFinite(q) && q > 0 && (!best || q > best.q)) best = { lang, q };
  }
  return best?.lang ?? 'en';
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export async function notifyApi(http: FastifyInstance, opts: NotifyApiOptions): Promise<void> {
  const now = opts.now ?? Date.now;
  const keys = Object.values(opts.apiKeys).filter((k) => k.length > 0).map(digest);

  function sendError(req: FastifyRequest, reply: FastifyReply, e: MbError) {
    const lang = langFromHeader(req.headers['accept-language']);
    const { code, title, cause, fix } = e.explain(lang);
    if (e.http >= 500) req.log.error({ code, err: e.message }, 'subscriptions API failed');
    if (e.code === 'MB_NOTIFY_API_UNAUTHORIZED') reply.header('www-authenticate', 'Bearer realm="mailbridge"');
    return reply.code(e.http).header('content-language', lang).header('cache-control', 'no-store').send({ error: { code, title, cause, fix } });
  }

  http.setErrorHandler((err, req, reply) => {
    if (err instanceof MbError) return sendError(req, reply, err);
    const status = (err as { statusCode?: number }).statusCode;
    // Fastify's own refusals (malformed JSON, wrong content type, body too large) are the caller's mistake.
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return sendError(req, reply, new MbError('MB_NOTIFY_SUBSCRIPTION_INVALID', { detail: `body: ${(err as Error).message}` }));
    }
    return sendError(req, reply, toMbError(err));
  });

  http.addHook('onRequest', async (req, reply) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(String(req.headers.authorization ?? ''));
    let ok = false;
    if (m) {
      const given = digest(m[1]!);
      // Compare with every key, without stopping early, so timing tells nothing about which matched.
      for (const k of keys) ok = timingSafeEqual(given, k) || ok;
    }
    if (!ok) return sendError(req, reply, new MbError('MB_NOTIFY_API_UNAUTHORIZED', { path: req.url.split('?')[0] }));
  });

  function view(rec: NotifySubscriptionRecord): Record<string, unknown> {
    const sink = opts.sinks.get(rec.kind);
    const out: Record<string, unknown> = {
      id: rec.id,
      mailboxes: rec.mailboxes,
      events: rec.events,
      privacy: rec.privacy,
      sink: { kind: rec.kind, ...(sink ? sink.publicParams(rec.params) : {}) },
      state: rec.state,
      createdAt: new Date(rec.createdAt).toISOString(),
      updatedAt: new Date(rec.updatedAt).toISOString(),
    };
    if (rec.label !== undefined) out.label = rec.label;
    if (rec.goneReason !== undefined) out.goneReason = rec.goneReason;
    return out;
  }

  async function find(id: string): Promise<NotifySubscriptionRecord> {
    const rec = ID_RE.test(id) ? await opts.repo.getSubscription(id) : undefined;
    if (!rec) throw new MbError('MB_NOTIFY_SUBSCRIPTION_NOT_FOUND', { id: id.slice(0, 80) });
    return rec;
  }

  http.post(SUBSCRIPTIONS_PATH, { bodyLimit: 1024 * 1024 }, async (req, reply) => {
    const r = createSchema.safeParse(req.body);
    if (!r.success) {
      const issue = r.error.issues[0];
      const path = (issue?.path ?? []).map(String).join('.') || 'body';
      throw new MbError('MB_NOTIFY_SUBSCRIPTION_INVALID', { detail: `${path}: ${issue?.message ?? 'invalid'}` });
    }
    const { kind, ...given } = r.data.sink;
    const sink = opts.sinks.get(kind);
    if (!sink) throw new MbError('MB_NOTIFY_SINK_NOT_CONFIGURED', { kind });
    const params = sink.parseParams(given);
    // Refused now, on the URL and what its name resolves to; each connection is judged again.
    if (opts.egress) for (const url of sink.destinations?.(params) ?? []) await opts.egress.check(url);
    const t = now();
    const rec: NotifySubscriptionRecord = {
      id: `sub_${randomBytes(16).toString('base64url')}`,
      kind,
      mailboxes: [...new Set(r.data.mailboxes.map((m) => m.toLowerCase()))],
      events: [...new Set(r.data.events)],
      params,
      privacy: r.data.privacy,
      state: 'active',
      createdAt: t,
      updatedAt: t,
    };
    if (r.data.label !== undefined) rec.label = r.data.label;
    await opts.repo.createSubscription(rec);
    req.log.info({ subscription: rec.id, kind, mailboxes: rec.mailboxes.length }, 'notify: subscription created');
    const body = view((await opts.repo.getSubscription(rec.id)) ?? rec);
    const missing = opts.watched ? unwatched(rec.mailboxes, opts.watched) : [];
    if (missing.length) {
      const shown = missing.length > 10 ? `${missing.slice(0, 10).join(', ')} (+${missing.length - 10})` : missing.join(', ');
      const w = new MbError('MB_NOTIFY_MAILBOX_NOT_WATCHED', { mailboxes: shown, count: missing.length });
      req.log.warn({ code: w.code, subscription: rec.id, mailboxes: missing.length }, w.message);
      const { code, title, cause, fix } = w.explain(langFromHeader(req.headers['accept-language']));
      body.warnings = [{ code, title, cause, fix }];
    }
    return reply.code(201).header('location', `${SUBSCRIPTIONS_PATH}/${rec.id}`).header('cache-control', 'no-store').send(body);
  });

  http.get(SUBSCRIPTIONS_PATH, async (req, reply) => {
    const q = req.query as { mailbox?: unknown };
    const mailbox = typeof q.mailbox === 'string' && q.mailbox !== '' ? q.mailbox : undefined;
    const rows = await opts.repo.listSubscriptions(mailbox ? { mailbox } : {});
    return reply.header('cache-control', 'no-store').send({ subscriptions: rows.map(view) });
  });

  http.get(`${SUBSCRIPTIONS_PATH}/:id`, async (req, reply) => {
    const rec = await find((req.params as { id: string }).id);
    return reply.header('cache-control', 'no-store').send(view(rec));
  });

  http.delete(`${SUBSCRIPTIONS_PATH}/:id`, async (req, reply) => {
    const rec = await find((req.params as { id: string }).id);
    await opts.repo.deleteSubscription(rec.id);
    req.log.info({ subscription: rec.id }, 'notify: subscription deleted');
    return reply.code(204).send();
  });
}
