/**
 * `mailbridge notify test <subscription-id | sink-kind>`: sends a test notification end to end
 * through the configured sink, as MaaS360's test button and Exchange's monitoring probe do, and
 * reports each step (configuration, subscription, target, credentials, delivery) so an admin sees
 * where it breaks.
 *
 * The test event goes straight to the sink, not through the delivery queue: it reaches only the
 * one subscription (or ad-hoc target) named, is not retried, and a running gateway does not send
 * it a second time. It is a `message.new` event with a fresh id (so receivers that deduplicate
 * still show it) and a subject that says it is a test; the subscription's privacy applies.
 *
 * Its option texts and report lines are in notify.texts.json.
 */
import { randomUUID } from 'node:crypto';
import { openApp } from '../../../app/open.ts';
import { MbError, renderText, toMbError } from '../../../errors/index.ts';
import { tr, type Text } from '../../../i18n/index.ts';
import { registerSecret } from '../../../log/redact.ts';
import { forSubscription, newMessage } from '../../../notify/events.ts';
import { sealedNotifyRepository } from '../../../notify/sealed.ts';
import { buildSink, isSinkKind, SINK_KINDS } from '../../../notify/service.ts';
import type { Sink } from '../../../notify/sinks/types.ts';
import type { NotifySubscriptionRecord } from '../../../store/notify.ts';
import { defineCommand, type CommandContext } from '../command.ts';
import { noMoreArgs, subcommand, usageError } from '../args.ts';
import { sinks } from '../../../app/plugins.ts';
import texts from './notify.texts.json' with { type: 'json' };

const usage = (detail: string) => new MbError('MB_CLI_USAGE', { command: 'notify', detail });

export const command = defineCommand({
  name: 'notify',
  summary: {
    en: 'Send a test notification through a sink or subscription',
    de: 'Testbenachrichtigung über ein Ziel oder Abonnement senden',
  },
  help: {
    en: `Usage: mailbridge notify test <subscription-id> [--mailbox ADDRESS]
       mailbridge notify test <webhook|webpush|apns|fcm> --params JSON [--mailbox ADDRESS]

  test <subscription-id>
              Sends a test new-mail event to one stored subscription (sub_…), through the sink
              configured in notify.<kind>, exactly as the gateway would deliver it.
  test <kind> --params JSON
              Sends it to a target that is not subscribed yet; JSON holds the sink's parameters,
              as POST /api/v1/subscriptions takes them under "sink":
                webhook  {"url": "https://…", "secret": "whsec_…"}
                webpush  {"endpoint": "https://…", "keys": {"p256dh": "…", "auth": "…"}}
                apns     {"deviceToken": "<hex>"}
                fcm      {"registrationToken": "…"}

{options}

Each step is reported: configuration, subscription, target, credentials (FCM: access token),
delivery with the receiver's answer. The event goes to this one target only, once, without
retries. Exit code 0 when the receiver took it, 1 otherwise.`,
    de: `Aufruf: mailbridge notify test <abonnement-id> [--mailbox ADRESSE]
        mailbridge notify test <webhook|webpush|apns|fcm> --params JSON [--mailbox ADRESSE]

  test <abonnement-id>
              Sendet ein Test-Ereignis „neue Mail“ an ein gespeichertes Abonnement (sub_…), über
              das in notify.<art> eingerichtete Ziel, genau so, wie das Gateway zustellen würde.
  test <art> --params JSON
              Sendet es an ein Ziel, das noch nicht abonniert ist; JSON enthält die Parameter des
              Ziels, wie POST /api/v1/subscriptions sie unter "sink" erwartet:
                webhook  {"url": "https://…", "secret": "whsec_…"}
                webpush  {"endpoint": "https://…", "keys": {"p256dh": "…", "auth": "…"}}
                apns     {"deviceToken": "<hex>"}
                fcm      {"registrationToken": "…"}

{options}

Jeder Schritt wird gemeldet: Konfiguration, Abonnement, Ziel, Anmeldedaten (FCM: Zugriffstoken),
Zustellung mit der Antwort des Empfängers. Das Ereignis geht nur an dieses eine Ziel, einmal, ohne
Wiederholung. Rückgabewert 0, wenn der Empfänger es angenommen hat, sonst 1.`,
  },
  options: {
    params: { type: 'string', value: 'JSON', help: texts.options.params },
    mailbox: { type: 'string', value: texts.values.address, help: texts.options.mailbox },
  },
  async run(ctx) {
    const [sub, target, ...rest] = ctx.args;
    subcommand('notify', ctx.lang, sub, ['test']);
    if (!target) throw usageError('notify', ctx.lang, { en: 'notify test needs a subscription id (sub_…) or a sink kind', de: 'notify test braucht eine Abonnement-ID (sub_…) oder eine Zielart' });
    noMoreArgs('notify', ctx.lang, rest);
    return test(ctx, target, { params: ctx.opts.params, mailbox: ctx.opts.mailbox });
  },
});

/** The lines of the step report. */
const T = texts.report satisfies Record<string, Text>;

async function test(ctx: CommandContext, target: string, opts: { params?: string; mailbox?: string }): Promise<number> {
  const t = (text: Text, params?: Record<string, unknown>) => tr(text, ctx.lang, params);
  let n = 0;
  const ok = (line: string) => ctx.out.line(`  ✓ ${++n} ${line}`);
  const fail = (err: unknown, line?: string, note?: string) => {
    const e = toMbError(err);
    ctx.out.line(`  ✗ ${++n} ${line ?? t(T.stepFailed)}`);
    ctx.out.line(renderText(e.explain(ctx.lang), ctx.lang).replace(/^/gm, '      '));
    if (note) ctx.out.line(note);
    ctx.out.line(t(T.notOk));
    return 1;
  };

  ctx.out.line(t(T.head, { what: target }));
  const isSub = target.startsWith('sub_');
  if (!isSub && !isSinkKind(target)) throw usage(`"${target}" is neither a subscription id (sub_…) nor a sink kind (${SINK_KINDS.join(', ')})`);
  if (isSub && opts.params !== undefined) throw usage('--params is for a sink kind; a subscription has its own');
  if (!isSub && opts.params === undefined) throw usage(`notify test ${target} needs --params JSON with the target (see --help)`);

  const app = await openApp(ctx);
  const { config } = app;
  let sink: Sink | undefined;
  try {
    // Subscription (or ad-hoc target) first: it says which sink to test.
    let subscription: NotifySubscriptionRecord;
    if (isSub) {
      const store = await app.store();
      const found = await sealedNotifyRepository(store.notify, await app.secretBox()).getSubscription(target);
      if (!found) return fail(new MbError('MB_NOTIFY_SUBSCRIPTION_NOT_FOUND', { id: target }));
      subscription = found;
    } else {
      let params: unknown;
      try {
        params = JSON.parse(opts.params!);
      } catch (err) {
        return fail(new MbError('MB_NOTIFY_SUBSCRIPTION_INVALID', { detail: `--params: ${(err as Error).message}` }));
      }
      if (params && typeof params === 'object' && typeof (params as { secret?: unknown }).secret === 'string') registerSecret((params as { secret: string }).secret);
      const now = Date.now();
      subscription = { id: 'sub_cli_test', kind: target, mailboxes: [], events: [], params: params as Record<string, unknown>, privacy: 'full', state: 'active', createdAt: now, updatedAt: now };
    }
    const kind = subscription.kind;
    if (typeof subscription.params.secret === 'string') registerSecret(subscription.params.secret);

    // 1. Configuration: the sink's section exists and its keys can be used.
    if (!isSinkKind(kind) || !config.notify) return fail(new MbError('MB_NOTIFY_SINK_NOT_CONFIGURED', { kind }));
    try {
      sink = await buildSink(kind, sinks, config.notify, await app.secretBox(), undefined, { proxy: config.server.proxy, env: ctx.env });
    } catch (err) {
      return fail(err);
    }
    if (!sink) return fail(new MbError('MB_NOTIFY_SINK_NOT_CONFIGURED', { kind }));
    ok(t(T.config, { kind }));

    // 2. Subscription.
    if (isSub) {
      const state = subscription.state === 'gone' ? `gone (${subscription.goneReason ?? '?'})` : subscription.state;
      ok(t(T.subscription, { id: subscription.id, kind, n: subscription.mailboxes.length, state }));
    } else ok(t(T.adhoc, { kind }));

    // 3. Target: the parameters as the sink checks them today (settings such as requireHttps may have changed).
    let params: Record<string, unknown>;
    try {
      params = sink.parseParams(subscription.params);
    } catch (err) {
      return fail(err);
    }
    const shown = Object.entries(sink.publicParams(params))
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    ok(t(T.params, { target: shown }));

    // 4. Credentials.
    if (sink.prepare) {
      try {
        await sink.prepare();
      } catch (err) {
        return fail(err);
      }
      ok(t(T.prepared));
    } else ok(t(T.local));

    // 5. Delivery.
    const mailbox = (opts.mailbox ?? subscription.mailboxes[0] ?? 'test@mailbridge.invalid').toLowerCase();
    const event = newMessage({
      type: 'message.new',
      mailbox,
      messageId: `mailbridge-test-${randomUUID()}`,
      folder: 'Inbox',
      sender: { address: 'mailbridge@mailbridge.invalid', name: 'mailbridge' },
      subject: t(T.subject),
      receivedAt: new Date().toISOString(),
    });
    const started = performance.now();
    const result = await sink.deliver(forSubscription(event, subscription.privacy), { ...subscription, params });
    const ms = Math.round(performance.now() - started);
    if (result.kind === 'ok') {
      ok(t(T.delivered, { id: event.id, mailbox, ms }));
      ctx.out.line(t(T.ok));
      return 0;
    }
    return fail(result.error, t(T.failed, { id: event.id, mailbox, ms }), result.kind === 'gone' ? t(T.gone) : undefined);
  } finally {
    await sink?.close?.();
    await app.close();
  }
}
