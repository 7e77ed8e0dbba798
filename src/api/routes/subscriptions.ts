/**
 * Notification subscriptions: apps and devices subscribe to mailboxes here (the routes that were
 * the notify service's own API, now served like every other admin route: same keys, same errors,
 * in the OpenAPI document). Scope `subscriptions`, which the keys of notify.api.keys carry.
 *
 * - Sink parameters are checked by the sink itself (`parseParams`); a sink that is not configured
 *   is refused with MB_NOTIFY_SINK_NOT_CONFIGURED. URLs the subscriber chose go through the egress
 *   policy (src/net/egress.ts): internal targets, credentials in URLs and mailbridge's own
 *   listeners are refused with MB_NOTIFY_EGRESS_* (400).
 * - Answers show sink parameters only through the sink's `publicParams`: never the webhook secret,
 *   never a full device token or push key. A subscription whose sink was taken out of the
 *   configuration shows its kind only.
 * - A subscription for mailboxes no watch group watches is created (a group may follow), and the
 *   201 answer carries `warnings: [{code: MB_NOTIFY_MAILBOX_NOT_WATCHED, …}]`; the log says so too.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { MbError } from '../../errors/index.ts';
import { unwatched } from '../../notify/check.ts';
import { EVENT_TYPES } from '../../notify/events.ts';
import type { NotifySubscriptionRecord } from '../../store/notify.ts';
import { need, type ApiContext, type SubscriptionsContext } from '../context.ts';
import { routeGroup, type RouteSpec } from '../route.ts';

export const SUBSCRIPTIONS_PATH = '/api/v1/subscriptions';

/** Largest list of mailboxes in one subscription (an MDM may watch a whole listener pool). */
export const MAX_MAILBOXES = 10_000;

const createSchema = z
  .object({
    mailboxes: z.array(z.email().max(320)).min(1).max(MAX_MAILBOXES),
    events: z.array(z.enum(EVENT_TYPES)).max(EVENT_TYPES.length).default([]).meta({ description: 'Event types wanted; empty: all' }),
    privacy: z.enum(['full', 'minimal']).default('full').meta({ description: 'minimal: no subject or sender in the events' }),
    label: z.string().min(1).max(200).optional(),
    sink: z
      .looseObject({ kind: z.string().regex(/^[a-z0-9-]{1,32}$/, 'expected a sink kind such as webhook, webpush, apns or fcm') })
      .meta({ description: 'The sink kind and its parameters, e.g. {kind: webhook, url, secret}' }),
  })
  .strict();

const explained = z.object({ code: z.string(), title: z.string(), cause: z.string(), fix: z.string() });

const subscriptionSchema = z.object({
  id: z.string(),
  mailboxes: z.array(z.string()),
  events: z.array(z.string()),
  privacy: z.enum(['full', 'minimal']),
  sink: z.looseObject({ kind: z.string() }).meta({ description: 'Kind and the parameters that are not secret' }),
  state: z.string(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  label: z.string().optional(),
  goneReason: z.string().optional(),
  warnings: z.array(explained).optional(),
});

const idParams = z.object({ id: z.string().regex(/^sub_[A-Za-z0-9_-]{1,64}$/, 'expected a subscription ID (sub_…)') });

/** Every route needs the scope the keys of notify.api.keys carry, and answers 404 where notify is not configured. */
const subscriptionsRoute = routeGroup({ tag: 'subscriptions', scope: 'subscriptions', errors: [404] });

function view(s: SubscriptionsContext, rec: NotifySubscriptionRecord): z.infer<typeof subscriptionSchema> {
  const sink = s.sinks.get(rec.kind);
  return {
    id: rec.id,
    mailboxes: rec.mailboxes,
    events: rec.events,
    privacy: rec.privacy,
    sink: { kind: rec.kind, ...(sink ? sink.publicParams(rec.params) : {}) },
    state: rec.state,
    createdAt: new Date(rec.createdAt).toISOString(),
    updatedAt: new Date(rec.updatedAt).toISOString(),
    ...(rec.label !== undefined ? { label: rec.label } : {}),
    ...(rec.goneReason !== undefined ? { goneReason: rec.goneReason } : {}),
  };
}

export function subscriptionRoutes(ctx: ApiContext): RouteSpec[] {
  const now = ctx.now ?? Date.now;
  const subs = (path: string) => need(ctx.subscriptions, 'notify', path);
  const find = async (s: SubscriptionsContext, id: string) => {
    const rec = await s.repo.getSubscription(id);
    if (!rec) throw new MbError('MB_NOTIFY_SUBSCRIPTION_NOT_FOUND', { id: id.slice(0, 80) });
    return rec;
  };
  return [
    subscriptionsRoute.post(SUBSCRIPTIONS_PATH, {
      summary: { en: 'Subscribe to new-mail events of mailboxes', de: 'Neue-Mail-Ereignisse von Postfächern abonnieren' },
      body: createSchema,
      bodyLimit: 1024 * 1024,
      status: 201,
      response: subscriptionSchema,
      target: ({ body }) => `${body.sink.kind}: ${body.mailboxes.length} mailbox(es)`,
      async handler({ body, lang, req, reply }) {
        const s = subs(req.url);
        const { kind, ...given } = body.sink;
        const sink = s.sinks.get(kind);
        if (!sink) throw new MbError('MB_NOTIFY_SINK_NOT_CONFIGURED', { kind });
        const params = sink.parseParams(given);
        // Refused now, on the URL and what its name resolves to; each connection is judged again.
        if (s.egress) for (const url of sink.destinations?.(params) ?? []) await s.egress.check(url);
        const t = now();
        const rec: NotifySubscriptionRecord = {
          id: `sub_${randomBytes(16).toString('base64url')}`,
          kind,
          mailboxes: [...new Set(body.mailboxes.map((m) => m.toLowerCase()))],
          events: [...new Set(body.events)],
          params,
          privacy: body.privacy,
          state: 'active',
          createdAt: t,
          updatedAt: t,
          ...(body.label !== undefined ? { label: body.label } : {}),
        };
        await s.repo.createSubscription(rec);
        req.log.info({ subscription: rec.id, kind, mailboxes: rec.mailboxes.length }, 'notify: subscription created');
        const out = view(s, (await s.repo.getSubscription(rec.id)) ?? rec);
        const missing = s.watched ? unwatched(rec.mailboxes, s.watched) : [];
        if (missing.length) {
          const shown = missing.length > 10 ? `${missing.slice(0, 10).join(', ')} (+${missing.length - 10})` : missing.join(', ');
          const w = new MbError('MB_NOTIFY_MAILBOX_NOT_WATCHED', { mailboxes: shown, count: missing.length });
          req.log.warn({ code: w.code, subscription: rec.id, mailboxes: missing.length }, w.message);
          const { code, title, cause, fix } = w.explain(lang);
          out.warnings = [{ code, title, cause, fix }];
        }
        reply.header('location', `${SUBSCRIPTIONS_PATH}/${rec.id}`);
        return out;
      },
    }),
    subscriptionsRoute.get(SUBSCRIPTIONS_PATH, {
      summary: { en: 'List subscriptions', de: 'Abonnements auflisten' },
      query: z.object({ mailbox: z.string().min(1).max(320).optional().meta({ description: 'Only subscriptions of this mailbox' }) }),
      status: 200,
      response: z.object({ subscriptions: z.array(subscriptionSchema) }),
      async handler({ query, req }) {
        const s = subs(req.url);
        const rows = await s.repo.listSubscriptions(query.mailbox ? { mailbox: query.mailbox } : {});
        return { subscriptions: rows.map((r) => view(s, r)) };
      },
    }),
    subscriptionsRoute.get(`${SUBSCRIPTIONS_PATH}/{id}`, {
      summary: { en: 'One subscription', de: 'Ein Abonnement' },
      params: idParams,
      status: 200,
      response: subscriptionSchema,
      async handler({ params, req }) {
        const s = subs(req.url);
        return view(s, await find(s, params.id));
      },
    }),
    subscriptionsRoute.delete(`${SUBSCRIPTIONS_PATH}/{id}`, {
      summary: { en: 'End a subscription', de: 'Ein Abonnement beenden' },
      params: idParams,
      status: 204,
      async handler({ params, req }) {
        const s = subs(req.url);
        const rec = await find(s, params.id);
        await s.repo.deleteSubscription(rec.id);
        req.log.info({ subscription: rec.id }, 'notify: subscription deleted');
      },
    }),
  ];
}
