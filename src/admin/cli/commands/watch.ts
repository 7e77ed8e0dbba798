/**
 * `mailbridge watch`: shows the watchers' state and new-mail events live, as the running gateway
 * (`mailbridge serve` with notify.watch groups) publishes them. It reads the store, so it works
 * beside a running gateway on the same machine and never starts a second set of watchers (which
 * would create duplicate Graph and EWS subscriptions).
 *
 * Strategy: the gateway writes its watch status to the store every few seconds; this command prints
 * it, then the last events, then follows new ones by their cursor (publication order) until Ctrl-C.
 */
import { openApp } from '../../../app/open.ts';
import { subscriptionsNotWatched } from '../../../notify/check.ts';
import { parseEvent, type NotifyEvent } from '../../../notify/events.ts';
import { webhookPayload } from '../../../notify/sinks/webhook.ts';
import { STATUS_KEY, STATUS_NAMESPACE, type WatchStatus } from '../../../notify/watchers/status.ts';
import { defineCommand, type CommandContext } from '../command.ts';
import { noMoreArgs } from '../args.ts';


/** A status older than this means no gateway is writing it. */
const STALE_MS = 30_000;

function describe(e: NotifyEvent, de: boolean): string {
  const when = e.observedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  const head = `${when}  ${e.mailbox}  #${e.seq}`;
  const unread = (n: number | undefined) => (n === undefined ? '' : de ? ` (ungelesen: ${n})` : ` (unread: ${n})`);
  switch (e.type) {
    case 'message.new': {
      const from = e.sender ? (de ? ` von ${e.sender.address}` : ` from ${e.sender.address}`) : '';
      const subject = e.subject !== undefined ? ` "${e.subject}"` : '';
      return `${head}  ${de ? 'neu     ' : 'new     '}${subject}${from} [${e.folder}]${unread(e.unreadCount)}`;
    }
    case 'message.read-state':
      return `${head}  ${e.read ? (de ? 'gelesen ' : 'read    ') : de ? 'ungelesen' : 'unread  '} ${e.messageId.slice(0, 24)}…${unread(e.unreadCount)}`;
    case 'message.deleted':
      return `${head}  ${de ? 'gelöscht' : 'deleted '} ${e.messageId.slice(0, 24)}…${unread(e.unreadCount)}`;
  }
}

const STATE_DE: Record<string, string> = {
  starting: 'startet',
  subscribed: 'abonniert, noch kein Rückruf von Exchange',
  watching: 'überwacht',
  'catching-up': 'holt auf',
  reconnecting: 'verbindet neu',
  failed: 'fehlgeschlagen',
  stopped: 'gestoppt',
};

function printStatus(ctx: CommandContext, status: WatchStatus | undefined, now: number): void {
  const de = ctx.lang === 'de';
  if (!status || status.stopped || now - Date.parse(status.updatedAt) > STALE_MS) {
    const since = status ? (de ? ` (letzter Stand: ${status.updatedAt})` : ` (last status: ${status.updatedAt})`) : '';
    ctx.out.line(
      de
        ? `Kein Watcher läuft${since}. Starten Sie \`mailbridge serve\` mit Gruppen unter notify.watch; Ereignisse erscheinen dann hier.`
        : `No watcher is running${since}. Start \`mailbridge serve\` with groups under notify.watch; events then show up here.`,
    );
    return;
  }
  if (status.publicUrl) ctx.out.line(de ? `Benachrichtigungs-URL für Microsoft: ${status.publicUrl}` : `Notification URL for Microsoft: ${status.publicUrl}`);
  const state = (s: string) => (de ? (STATE_DE[s] ?? s) : s === 'subscribed' ? 'subscribed, no call from Exchange yet' : s);
  for (const g of status.groups) {
    const states = Object.entries(g.states)
      .map(([s, n]) => `${state(s)} ${n}`)
      .join(', ');
    const boxes = de ? (g.mailboxes === 1 ? 'Postfach' : 'Postfächer') : g.mailboxes === 1 ? 'mailbox' : 'mailboxes';
    // German "Listener" is the same in singular and plural; English needs the plural s.
    const listeners = de ? 'Listener' : g.listeners === 1 ? 'listener' : 'listeners';
    ctx.out.line(`${g.group} (${g.kind}): ${g.mailboxes} ${boxes}, ${g.listeners} ${listeners} — ${states}`);
  }
  for (const m of status.attention.slice(0, 20)) ctx.out.line(`  ${m.mailbox} [${m.group}] ${state(m.state)}${m.error ? `: ${m.error.code} ${m.error.message}` : ''}`);
  for (const p of status.problems.slice(-5)) ctx.out.line(`  ! ${p.at} ${p.mailbox ?? p.listener}: ${p.message}`);
}

export const command = defineCommand({
  name: 'watch',
  summary: { en: 'Show watched mailboxes and new-mail events live', de: 'Überwachte Postfächer und Neue-Mail-Ereignisse live anzeigen' },
  help: {
    en: `Usage: mailbridge watch [--mailbox ADDRESS] [--last N] [--once] [--json]

Shows the state of the watchers run by \`mailbridge serve\` (per group: mailboxes watching,
catching up, reconnecting, failed; the last problems with their MB codes), then the last N
events (default 10), then new events as they are published, until Ctrl-C.

{options}`,
    de: `Aufruf: mailbridge watch [--mailbox ADRESSE] [--last N] [--once] [--json]

Zeigt den Zustand der Watcher, die \`mailbridge serve\` betreibt (je Gruppe: Postfächer, die
überwacht werden, aufholen, neu verbinden, fehlgeschlagen sind; die letzten Probleme mit ihren
MB-Codes), dann die letzten N Ereignisse (Standard 10), dann neue Ereignisse, sobald sie
veröffentlicht werden, bis Strg-C.

{options}`,
  },
  options: {
    mailbox: { type: 'string', value: 'A', help: { en: 'only events of this mailbox', de: 'nur Ereignisse dieses Postfachs' } },
    last: { type: 'integer', value: 'N', min: 0, help: { en: 'events shown at the start (default 10)', de: 'beim Start gezeigte Ereignisse (Standard 10)' } },
    once: { type: 'boolean', help: { en: 'print the state and the last events, then exit', de: 'Zustand und letzte Ereignisse ausgeben, dann beenden' } },
    json: { type: 'boolean', help: { en: 'one JSON object per event (as sinks receive it)', de: 'ein JSON-Objekt je Ereignis (wie Ziele es erhalten)' } },
    'poll-ms': {
      type: 'integer',
      value: 'N',
      min: 50,
      help: { en: 'how often to look for new events (default 500)', de: 'wie oft nach neuen Ereignissen gesehen wird (Standard 500)' },
    },
  },
  async run(ctx) {
    noMoreArgs('watch', ctx.lang, ctx.args);
    const o = {
      mailbox: ctx.opts.mailbox?.toLowerCase(),
      last: ctx.opts.last ?? 10,
      once: ctx.opts.once,
      json: ctx.opts.json,
      pollMs: ctx.opts['poll-ms'] ?? 500,
    };
    const app = await openApp(ctx);
    const { config } = app;
    const de = ctx.lang === 'de';
    try {
      const store = await app.store();
      const raw = await store.kv.get(STATUS_NAMESPACE, STATUS_KEY);
      if (!o.json) {
        printStatus(ctx, raw ? (JSON.parse(raw) as WatchStatus) : undefined, Date.now());
        // Subscriptions that can never get an event: their mailboxes are in no watch group.
        for (const s of await subscriptionsNotWatched(store.notify, config.notify?.watch)) {
          const list = s.mailboxes.length > 5 ? `${s.mailboxes.slice(0, 5).join(', ')} (+${s.mailboxes.length - 5})` : s.mailboxes.join(', ');
          ctx.out.line(de ? `  ! Abonnement ${s.id}: keine Gruppe überwacht ${list} (MB_NOTIFY_MAILBOX_NOT_WATCHED)` : `  ! subscription ${s.id}: no group watches ${list} (MB_NOTIFY_MAILBOX_NOT_WATCHED)`);
        }
      }
      const show = (rows: Array<{ body: string; seq: number; cursor: number }>) => {
        for (const r of rows) {
          const e = { ...parseEvent(r.body), seq: r.seq };
          // What a webhook receives (type, timestamp, data), so a receiver can be written against this output.
          if (o.json) ctx.out.json(JSON.parse(webhookPayload(e)));
          else ctx.out.line(describe(e, de));
        }
      };
      const mailbox = o.mailbox !== undefined ? { mailbox: o.mailbox } : {};
      const first = await store.notify.listEvents({ last: o.last, ...mailbox });
      show(first);
      let cursor = first.at(-1)?.cursor ?? (await store.notify.listEvents({ last: 1 })).at(-1)?.cursor ?? 0;
      if (o.once) return 0;
      if (!o.json) ctx.out.line(de ? '— warte auf neue Ereignisse (Strg-C beendet) —' : '— waiting for new events (Ctrl-C to stop) —');
      let stopped = false;
      void ctx.stopSignal.then(() => (stopped = true));
      while (!stopped) {
        const rows = await store.notify.listEvents({ after: cursor, limit: 500, ...mailbox });
        show(rows);
        if (rows.length > 0) cursor = rows.at(-1)!.cursor;
        else await Promise.race([new Promise((r) => setTimeout(r, o.pollMs)), ctx.stopSignal]);
      }
      return 0;
    } finally {
      await app.close();
    }
  },
});
