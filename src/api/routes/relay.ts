/**
 * Relay routes: the queue (list, show, trace, retry, hold, release, delete — the same Queue methods
 * `mailbridge queue` uses, so the API and the CLI move messages by the same rules), relay users
 * (without their password hashes), routes, and the per-mailbox pacing of the running queue manager.
 */
import { z } from 'zod';
import { MbError, explain } from '../../errors/index.ts';
import type { Lang } from '../../i18n/index.ts';
import type { QueueError, QueueRecord } from '../../store/queue.ts';
import { QUEUE_STATES, envelopeOf } from '../../store/queue.ts';
import type { TraceStep } from '../../relay/queue/trace.ts';
import { need, type ApiContext } from '../context.ts';
import { routeGroup, type RouteSpec } from '../route.ts';

const iso = z.iso.datetime();

const explainedError = z.object({
  code: z.string(),
  title: z.string(),
  cause: z.string(),
  fix: z.string(),
  reply: z.string().optional().meta({ description: "The upstream reply, e.g. Exchange's SMTP answer" }),
  detail: z.string().optional(),
});

export const queueMessageSchema = z.object({
  id: z.string(),
  state: z.enum(QUEUE_STATES),
  kind: z.enum(['message', 'dsn']).meta({ description: 'dsn: a bounce report mailbridge wrote' }),
  sender: z.string().meta({ description: "Envelope sender; '' is the null sender of bounce reports" }),
  recipients: z.array(z.string()),
  mailbox: z.string().meta({ description: 'The mailbox that sends it upstream' }),
  relayUser: z.string().optional(),
  clientIp: z.string().optional(),
  size: z.int(),
  bodyType: z.enum(['7bit', '8bitmime']),
  smtpUtf8: z.boolean(),
  receivedAt: iso,
  attempts: z.int(),
  nextAttemptAt: iso.optional().meta({ description: 'incoming and deferred messages only' }),
  lastAttemptAt: iso.optional(),
  holdReason: z.string().optional().meta({ description: 'admin or corrupt' }),
  originId: z.string().optional().meta({ description: 'For bounce reports: the message reported on' }),
  lastError: explainedError.optional(),
});

const countsSchema = z.object(Object.fromEntries(QUEUE_STATES.map((s) => [s, z.int()])) as Record<(typeof QUEUE_STATES)[number], z.ZodInt>);

const idParams = z.object({
  id: z
    .string()
    .regex(/^[0-9A-Za-z]{18}$/, 'expected a queue ID of 18 letters and digits, e.g. 01JB8Q3ZK2M4N6P8RT')
    .transform((s) => s.toUpperCase())
    .meta({ description: 'Queue ID as `queue list` shows it' }),
});

const stepSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('accepted'),
    at: iso,
    clientIp: z.string().optional(),
    relayUser: z.string().optional(),
    sender: z.string(),
    recipients: z.array(z.string()),
    size: z.int(),
  }),
  z.object({
    type: z.literal('attempt'),
    at: iso,
    attempt: z.int(),
    outcome: z.enum(['delivered', 'deferred', 'bounced']),
    reply: z.string().optional().meta({ description: "The upstream reply: Exchange's SMTP answer or Graph's status" }),
    error: explainedError.optional(),
    nextAttemptAt: iso.optional(),
    report: z.string().optional().meta({ description: 'Queue ID of the bounce report written' }),
  }),
  z.object({ type: z.literal('admin'), at: iso, action: z.enum(['hold', 'release', 'retry']) }),
  z.object({ type: z.literal('corrupt'), at: iso, error: explainedError }),
]);

const traceSchema = z.object({
  id: z.string(),
  state: z.enum(QUEUE_STATES),
  outcome: z.enum(['delivered', 'bounced', 'pending', 'held']).meta({ description: 'How the story ends so far' }),
  steps: z.array(stepSchema),
});

const time = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

function errorView(e: QueueError, lang: Lang): z.infer<typeof explainedError> {
  const x = explain(e.code, e.params ?? {}, lang);
  return { code: x.code, title: x.title, cause: x.cause, fix: x.fix, ...(e.reply ? { reply: e.reply } : {}), ...(e.detail ? { detail: e.detail } : {}) };
}

export function queueMessageView(r: QueueRecord, lang: Lang): z.infer<typeof queueMessageSchema> {
  const waiting = r.state === 'incoming' || r.state === 'deferred';
  return {
    id: r.id,
    state: r.state,
    kind: r.kind,
    ...envelopeOf(r),
    receivedAt: time(r.receivedAt)!,
    attempts: r.attempts,
    ...(waiting ? { nextAttemptAt: time(r.nextAttemptAt)! } : {}),
    ...(r.lastAttemptAt !== undefined ? { lastAttemptAt: time(r.lastAttemptAt)! } : {}),
    ...(r.holdReason !== undefined ? { holdReason: r.holdReason } : {}),
    ...(r.originId !== undefined ? { originId: r.originId } : {}),
    ...(r.lastError ? { lastError: errorView(r.lastError, lang) } : {}),
  };
}

function stepView(s: TraceStep, lang: Lang): z.infer<typeof stepSchema> {
  switch (s.type) {
    case 'attempt':
      return {
        type: 'attempt',
        at: time(s.at)!,
        attempt: s.attempt,
        outcome: s.outcome,
        ...(s.reply ? { reply: s.reply } : {}),
        ...(s.code ? { error: errorView({ code: s.code, ...(s.reply ? { reply: s.reply } : {}), ...(s.detail ? { detail: s.detail } : {}) }, lang) } : {}),
        ...(s.nextAttemptAt !== undefined ? { nextAttemptAt: time(s.nextAttemptAt)! } : {}),
        ...(s.report ? { report: s.report } : {}),
      };
    case 'admin':
      return { type: 'admin', at: time(s.at)!, action: s.action };
    case 'corrupt':
      return { type: 'corrupt', at: time(s.at)!, error: errorView({ code: s.code }, lang) };
  }
}

const listQuery = z.object({
  state: z
    .string()
    .regex(new RegExp(`^(${QUEUE_STATES.join('|')})(,(${QUEUE_STATES.join('|')}))*$`), `expected states separated by commas: ${QUEUE_STATES.join(', ')}`)
    .optional()
    .meta({ description: `Only messages in these states, comma-separated (default: all but sent): ${QUEUE_STATES.join(', ')}` }),
  limit: z.coerce.number().int().min(1).max(1000).default(100).meta({ description: 'At most this many messages (default 100)' }),
  after: z.string().regex(/^[0-9A-Z]{18}$/).optional().meta({ description: 'Paging: only messages whose ID sorts after this one' }),
});

/** Reading needs read, moving messages operate; every route answers 404 where this gateway runs no relay. */
const relayRoute = routeGroup({ tag: 'relay', scope: 'read', errors: [404] });

export function relayRoutes(ctx: ApiContext): RouteSpec[] {
  const queue = (path: string) => need(ctx.relay, 'relay', path).relay.queue;
  const found = async (path: string, id: string) => {
    const rec = await queue(path).get(id);
    if (!rec) throw new MbError('MB_RELAY_QUEUE_NOT_FOUND', { id });
    return rec;
  };
  const action = (name: 'retry' | 'hold' | 'release', summary: { en: string; de: string }) =>
    relayRoute.post(`/api/v1/relay/queue/{id}/${name}`, {
      scope: 'operate',
      summary,
      params: idParams,
      status: 200,
      response: queueMessageSchema,
      errors: [409],
      async handler({ params, lang, req }) {
        const rec = await queue(req.url)[name](params.id);
        return queueMessageView(rec, lang);
      },
    });
  return [
    relayRoute.get('/api/v1/relay/queue', {
      summary: { en: 'List queued messages with state, attempts, next attempt and last error', de: 'Nachrichten der Warteschlange mit Zustand, Versuchen, nächstem Versuch und letztem Fehler' },
      query: listQuery,
      status: 200,
      response: z.object({ counts: countsSchema, messages: z.array(queueMessageSchema) }),
      async handler({ query, lang, req }) {
        const q = queue(req.url);
        const states = query.state ? (query.state.split(',') as QueueRecord['state'][]) : QUEUE_STATES.filter((s) => s !== 'sent');
        const rows = await q.list({ states, limit: query.limit, ...(query.after ? { after: query.after } : {}) });
        return { counts: await q.counts(), messages: rows.map((r) => queueMessageView(r, lang)) };
      },
    }),
    relayRoute.post('/api/v1/relay/queue/retry', {
      scope: 'operate',
      summary: { en: 'Try every incoming and deferred message now', de: 'Alle eingehenden und verzögerten Nachrichten jetzt versuchen' },
      status: 200,
      response: z.object({ retried: z.int() }),
      target: () => 'all',
      async handler({ req }) {
        return { retried: await queue(req.url).retryAll() };
      },
    }),
    relayRoute.get('/api/v1/relay/queue/{id}', {
      summary: { en: 'One message: envelope, attempts, last error with cause and fix', de: 'Eine Nachricht: Umschlag, Versuche, letzter Fehler mit Ursache und Behebung' },
      params: idParams,
      status: 200,
      response: queueMessageSchema,
      async handler({ params, lang, req }) {
        return queueMessageView(await found(req.url, params.id), lang);
      },
    }),
    relayRoute.get('/api/v1/relay/queue/{id}/trace', {
      summary: {
        en: "Message trace: accepted, each attempt with Exchange's reply, bounced or delivered",
        de: 'Nachrichtenverlauf: angenommen, jeder Versuch mit der Antwort von Exchange, unzustellbar oder zugestellt',
      },
      params: idParams,
      status: 200,
      response: traceSchema,
      async handler({ params, lang, req }) {
        const rec = await found(req.url, params.id);
        const steps = (await queue(req.url).trace?.get(rec.id)) ?? [];
        const outcome = rec.state === 'sent' ? 'delivered' : rec.state === 'bounced' ? 'bounced' : rec.state === 'held' ? 'held' : 'pending';
        return {
          id: rec.id,
          state: rec.state,
          outcome,
          steps: [
            {
              type: 'accepted' as const,
              at: time(rec.receivedAt)!,
              ...(rec.clientIp !== undefined ? { clientIp: rec.clientIp } : {}),
              ...(rec.relayUser !== undefined ? { relayUser: rec.relayUser } : {}),
              sender: rec.sender,
              recipients: rec.recipients,
              size: rec.size,
            },
            ...steps.map((s) => stepView(s, lang)),
          ],
        };
      },
    }),
    action('retry', { en: 'Try a message now (also lifts its mailbox’s pause after a failure)', de: 'Eine Nachricht jetzt versuchen (hebt auch die Pause ihres Postfachs nach einem Fehler auf)' }),
    action('hold', { en: 'Stop delivering a message until it is released', de: 'Eine Nachricht anhalten, bis sie freigegeben wird' }),
    action('release', { en: 'Deliver a held message again', de: 'Eine angehaltene Nachricht wieder zustellen' }),
    relayRoute.delete('/api/v1/relay/queue/{id}', {
      scope: 'operate',
      summary: { en: 'Remove a message and its content for good (not while it is being delivered)', de: 'Eine Nachricht samt Inhalt endgültig entfernen (nicht während der Zustellung)' },
      params: idParams,
      status: 204,
      errors: [409],
      async handler({ params, req }) {
        await queue(req.url).delete(params.id);
      },
    }),
    relayRoute.get('/api/v1/relay/users', {
      summary: { en: 'Relay users (never their password hashes)', de: 'Relay-Benutzer (nie ihre Kennwort-Hashes)' },
      status: 200,
      response: z.object({ users: z.array(z.object({ name: z.string(), allowedSenders: z.array(z.string()), allowedIps: z.array(z.string()).optional(), disabled: z.boolean() })) }),
      async handler({ req }) {
        const relay = need(ctx.config.relay, 'relay', req.url);
        return {
          users: Object.entries(relay.users).map(([name, u]) => ({ name, allowedSenders: u.allowedSenders, ...(u.allowedIps ? { allowedIps: u.allowedIps } : {}), disabled: u.disabled })),
        };
      },
    }),
    relayRoute.get('/api/v1/relay/routes', {
      summary: { en: 'Relay routes in the order they are matched', de: 'Relay-Routen in der Reihenfolge, in der sie geprüft werden' },
      status: 200,
      response: z.object({
        routes: z.array(
          z.object({
            name: z.string(),
            senders: z.array(z.string()).optional(),
            users: z.array(z.string()).optional(),
            connection: z.string(),
            mailbox: z.string().optional(),
            transport: z.enum(['smtp', 'graph']),
            upstream: z.string().meta({ description: 'host:port of the SMTP route, or the Graph base URL' }),
          }),
        ),
      }),
      async handler({ req }) {
        const relay = need(ctx.config.relay, 'relay', req.url);
        return {
          routes: relay.routes.map((r, i) => ({
            name: r.name ?? `#${i + 1}`,
            ...(r.senders ? { senders: r.senders } : {}),
            ...(r.users ? { users: r.users } : {}),
            connection: r.connection,
            ...(r.mailbox ? { mailbox: r.mailbox } : {}),
            transport: r.transport,
            // Without a host or URL the connection's cloud decides (smtp.office365.com, graph.microsoft.com for global).
            upstream: r.transport === 'smtp' ? `${r.smtp.host ?? 'cloud default'}:${r.smtp.port}` : (r.graph.url ?? 'cloud default'),
          })),
        };
      },
    }),
    relayRoute.get('/api/v1/relay/pacing', {
      summary: {
        en: 'Per-mailbox pacing: deliveries running, starts this minute, recipients today, pauses',
        de: 'Takt je Postfach: laufende Zustellungen, Starts in dieser Minute, Empfänger heute, Pausen',
      },
      status: 200,
      response: z.object({
        mailboxes: z.array(
          z.object({
            mailbox: z.string(),
            running: z.int(),
            startsLastMinute: z.int(),
            recipientsLastDay: z.int(),
            remainingToday: z.int().nullable().meta({ description: 'null: no daily budget (relay.queue.recipientsPerDay off)' }),
            pausedUntil: iso.optional().meta({ description: 'After 429/432 or a refused login; an admin retry lifts it' }),
            nextStartAt: iso.optional().meta({ description: 'Absent: when a running delivery finishes' }),
          }),
        ),
      }),
      async handler({ req }) {
        const manager = need(ctx.relay, 'relay', req.url).relay.manager;
        return {
          mailboxes: manager.pacing().map((m) => ({
            ...m,
            ...(m.pausedUntil !== undefined ? { pausedUntil: time(m.pausedUntil)! } : {}),
            ...(m.nextStartAt !== undefined ? { nextStartAt: time(m.nextStartAt)! } : {}),
          })),
        };
      },
    }),
  ];
}
