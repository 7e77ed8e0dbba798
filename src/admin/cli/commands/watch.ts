/**
 * `mailbridge watch`: shows the watchers' state and new-mail events live, as the running gateway
 * (`mailbridge serve` with notify.watch groups) publishes them. It reads the store, so it works
 * beside a running gateway on the same machine and never starts a second set of watchers (which
 * would create duplicate Graph and EWS subscriptions).
 *
 * Strategy: the gateway writes its watch status to the store every few seconds; this command prints
 * it, then the last events, then follows new ones by their cursor (publication order) until Ctrl-C.
 */
import { loadConfig } from '../../../config/index.ts';
import { MbError } from '../../../errors/index.ts';
import { subscriptionsNotWatched } from '../../../notify/check.ts';
import { parseEvent, type NotifyEvent } from '../../../notify/events.ts';
import { STATUS_KEY, STATUS_NAMESPACE, type WatchStatus } from '../../../notify/watchers/service.ts';
import { openStore } from '../../../store/index.ts';
import type { Command, CommandContext } from '../command.ts';

const usage = (detail: string) => new MbError('MB_CLI_USAGE', { command: 'watch', detail });

/** A status older than this means no gateway is writing it. */
const STALE_MS = 30_000;

interface Options {
  mailbox?: string;
  last: number;
  once: boolean;
  json: boolean;
  pollMs: number;
}

function options(args: string[]): Options {
  const o: Options = { last: 10, once: false, json: false, pollMs: 500 };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw usage(`${a} needs a value`);
      return v;
    };
    if (a === '--mailbox') o.mailbox = value().toLowerCase();
    else if (a === '--last') {
      o.last = Number(value());
      if (!Number.isInteger(o.last) || o.last < 0) throw usage('--last takes a whole number');
    } else if (a === '--once') o.once = true;
    else if (a === '--json') o.json = true;
    else if (a === '--poll-ms') o.pollMs = Math.max(50, Number(value()) || 500);
    else throw usage(`unknown option "${a}"`);
  }
  return o;
}

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
    ctx.out.line(`${g.group} (${g.kind}): ${g.mailboxes} ${boxes}, ${g.listeners} Listener — ${states}`);
  }
  for (const m of status.attention.slice(0, 20)) ctx.out.line(`  ${m.mailbox} [${m.group}] ${state(m.state)}${m.error ? `: ${m.error.code} ${m.error.message}` : ''}`);
  for (const p of status.problems.slice(-5)) ctx.out.line(`  ! ${p.at} ${p.mailbox ?? p.listener}: ${p.message}`);
}

export const command: Command = {
  name: 'watch',
  summary: { en: 'Show watched mailboxes and new-mail events live', de: 'Überwachte Postfächer und Neue-Mail-Ereignisse live anzeigen' },
  help: {
    en: `Usage: mailbridge watch [--mailbox ADDRESS] [--last N] [--once] [--json]

Shows the state of the watchers run by \`mailbridge serve\` (per group: mailboxes watching,
catching up, reconnecting, failed; the last problems with their MB codes), then the last N
events (default 10), then new events as they are published, until Ctrl-C.

Options:
  --mailbox A  only events of this mailbox
  --last N     events shown at the start (default 10)
  --once       print the state and the last events, then exit
  --json       one JSON object per event (as sinks receive it)
  --poll-ms N  how often to look for new events (default 500)`,
    de: `Aufruf: mailbridge watch [--mailbox ADRESSE] [--last N] [--once] [--json]

Zeigt den Zustand der Watcher, die \`mailbridge serve\` betreibt (je Gruppe: Postfächer, die
überwacht werden, aufholen, neu verbinden, fehlgeschlagen sind; die letzten Probleme mit ihren
MB-Codes), dann die letzten N Ereignisse (Standard 10), dann neue Ereignisse, sobald sie
veröffentlicht werden, bis Strg-C.

Optionen:
  --mailbox A  nur Ereignisse dieses Postfachs
  --last N     beim Start gezeigte Ereignisse (Standard 10)
  --once       Zustand und letzte Ereignisse ausgeben, dann beenden
  --json       ein JSON-Objekt je Ereignis (wie Ziele es erhalten)
  --poll-ms N  wie oft nach neuen Ereignissen gesehen wird (Standard 500)`,
  },
  async run(ctx) {
    const o = options(ctx.args);
    const { config } = await loadConfig(ctx.configPath, ctx.env, { lang: ctx.lang });
    const store = await openStore(config.store);
    const de = ctx.lang === 'de';
    try {
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
          if (o.json) ctx.out.json(e);
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
      await store.close();
    }
  },
};
