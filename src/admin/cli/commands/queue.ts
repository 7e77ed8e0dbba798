import { openApp } from '../../../app/open.ts';
import { MbError, explain, renderText } from '../../../errors/index.ts';
import type { Lang } from '../../../i18n/index.ts';
import { silentLogger } from '../../../log/index.ts';
import { openQueue } from '../../../relay/index.ts';
import { relaySchema } from '../../../relay/config.ts';
import { relayStorage } from '../../../app/relay.ts';
import type { Queue, QueueRecord, QueueState } from '../../../relay/queue/index.ts';
import { formatDelay } from '../../../relay/queue/schedule.ts';
import type { TraceStep } from '../../../relay/queue/trace.ts';
import { QUEUE_STATES } from '../../../store/queue.ts';
import { defineCommand, type CommandContext } from '../command.ts';
import { noMoreArgs, subcommand, usageError, type OptionDefs } from '../args.ts';

const STATE_DE: Record<QueueState, string> = {
  incoming: 'eingehend',
  active: 'in Zustellung',
  deferred: 'verzögert',
  held: 'angehalten',
  sent: 'gesendet',
  bounced: 'unzustellbar',
};

const options = {
  state: {
    type: 'string',
    value: 'S[,S…]',
    help: { en: 'list: only messages in these states (default: all but sent)', de: 'list: nur Nachrichten in diesen Zuständen (Standard: alle außer gesendeten)' },
  },
  limit: { type: 'integer', value: 'N', min: 1, help: { en: 'list: at most N messages (default 100)', de: 'list: höchstens N Nachrichten (Standard 100)' } },
  json: { type: 'boolean', help: { en: 'list: print JSON', de: 'list: JSON ausgeben' } },
} satisfies OptionDefs;

export const command = defineCommand({
  name: 'queue',
  summary: { en: 'List and manage the relay queue', de: 'Relay-Warteschlange anzeigen und verwalten' },
  help: {
    en: `Usage: mailbridge queue [list|show <id>|retry <id|all>|hold <id>|release <id>|delete <id>]

Shows and changes the relay's queue of accepted messages. Works while mailbridge runs: the running
relay picks up changes within relay.queue.pollSeconds.

Subcommands:
  list [--state S[,S…]] [--limit N] [--json]
                  messages with state, attempts, next attempt and last error (default: all but sent)
  show <id>       one message: envelope, attempts, last error with cause and fix
  retry <id|all>  try a deferred message (or all) now
  hold <id>       stop delivering a message until it is released
  release <id>    deliver a held message again
  delete <id>     remove a message and its content for good (not while it is being delivered)

{options}

States: incoming, active, deferred, held, sent, bounced.`,
    de: `Aufruf: mailbridge queue [list|show <id>|retry <id|all>|hold <id>|release <id>|delete <id>]

Zeigt und ändert die Warteschlange der angenommenen Nachrichten des Relays. Funktioniert auch bei
laufendem mailbridge: Das Relay übernimmt Änderungen innerhalb von relay.queue.pollSeconds.

Unterbefehle:
  list [--state S[,S…]] [--limit N] [--json]
                  Nachrichten mit Zustand, Versuchen, nächstem Versuch und letztem Fehler
                  (Standard: alle außer gesendeten)
  show <id>       eine Nachricht: Umschlag, Versuche, letzter Fehler mit Ursache und Behebung
  retry <id|all>  eine verzögerte Nachricht (oder alle) jetzt versuchen
  hold <id>       eine Nachricht anhalten, bis sie freigegeben wird
  release <id>    eine angehaltene Nachricht wieder zustellen
  delete <id>     eine Nachricht samt Inhalt endgültig entfernen (nicht während der Zustellung)

{options}

Zustände: incoming (eingehend), active (in Zustellung), deferred (verzögert), held (angehalten),
sent (gesendet), bounced (unzustellbar).`,
  },
  options,
  async run(ctx) {
    const [given = 'list', ...rest] = ctx.args;
    const sub = subcommand('queue', ctx.lang, given, ['list', 'show', 'retry', 'hold', 'release', 'delete']);
    if (sub === 'list') noMoreArgs('queue', ctx.lang, rest);
    // Without the command's language: a broken file is reported in the file's own `lang`.
    const app = await openApp({ configPath: ctx.configPath, env: ctx.env });
    const { config } = app;
    try {
      const store = await app.store();
      const relayConfig = config.relay ?? relaySchema.parse({});
      const queue = await openQueue({ config: relayConfig, store, log: silentLogger, ...relayStorage(store, relayConfig) });
      switch (sub) {
        case 'list':
          return await list(ctx, queue);
        case 'show':
          return await show(ctx, queue, idArg(ctx, rest, sub));
        case 'retry': {
          const id = idArg(ctx, rest, sub);
          if (id === 'all') {
            const n = await queue.retryAll();
            ctx.out.line(ctx.lang === 'de' ? `${n} Nachrichten werden jetzt erneut versucht.` : `${n} messages will be tried again now.`);
          } else {
            await queue.retry(id);
            ctx.out.line(ctx.lang === 'de' ? `${id} wird jetzt erneut versucht.` : `${id} will be tried again now.`);
          }
          return 0;
        }
        case 'hold': {
          const rec = await queue.hold(idArg(ctx, rest, sub));
          ctx.out.line(ctx.lang === 'de' ? `${rec.id} ist angehalten.` : `${rec.id} is held.`);
          return 0;
        }
        case 'release': {
          const rec = await queue.release(idArg(ctx, rest, sub));
          ctx.out.line(ctx.lang === 'de' ? `${rec.id} ist freigegeben und wird zugestellt.` : `${rec.id} is released and will be delivered.`);
          return 0;
        }
        case 'delete': {
          const rec = await queue.delete(idArg(ctx, rest, sub));
          ctx.out.line(ctx.lang === 'de' ? `${rec.id} (${stateName(rec.state, 'de')}) ist gelöscht.` : `${rec.id} (${rec.state}) is deleted.`);
          return 0;
        }
      }
    } finally {
      await app.close();
    }
  },
});

function idArg(ctx: CommandContext, rest: string[], sub: string): string {
  const id = rest[0];
  if (!id || rest.length > 1) throw usageError('queue', ctx.lang, { en: 'queue {sub} needs one message ID', de: 'queue {sub} braucht genau eine Nachrichten-ID' }, { sub });
  return id === 'all' ? id : id.toUpperCase();
}

async function list(ctx: CommandContext<typeof options>, queue: Queue): Promise<number> {
  let states: QueueState[] = QUEUE_STATES.filter((s) => s !== 'sent');
  const limit = ctx.opts.limit ?? 100;
  const json = ctx.opts.json;
  if (ctx.opts.state !== undefined) {
    const wanted = ctx.opts.state.split(',').map((s) => s.trim());
    const bad = wanted.find((s) => !(QUEUE_STATES as readonly string[]).includes(s));
    if (bad) throw usageError('queue', ctx.lang, { en: '--state {bad}: one of {states}', de: '--state {bad}: erlaubt sind {states}' }, { bad, states: QUEUE_STATES.join(', ') });
    states = wanted as QueueState[];
  }
  const rows = await queue.list({ states, limit });
  const counts = await queue.counts();
  if (json) {
    ctx.out.json({ counts, messages: rows });
    return 0;
  }
  const de = ctx.lang === 'de';
  if (rows.length === 0) ctx.out.line(de ? 'Keine Nachrichten in diesen Zuständen.' : 'No messages in these states.');
  else {
    const head = de
      ? ['ID', 'ZUSTAND', 'ANGENOMMEN (UTC)', 'VERS.', 'NÄCHSTER', 'GRÖSSE', 'ABSENDER → EMPFÄNGER', 'LETZTER FEHLER']
      : ['ID', 'STATE', 'RECEIVED (UTC)', 'TRIES', 'NEXT', 'SIZE', 'SENDER → RECIPIENTS', 'LAST ERROR'];
    const now = Date.now();
    const table = rows.map((r) => [
      r.id,
      stateName(r.state, ctx.lang),
      time(r.receivedAt),
      String(r.attempts),
      next(r, now, ctx.lang),
      size(r.size),
      `${r.sender || '<>'} → ${r.recipients.length === 1 ? r.recipients[0] : de ? `${r.recipients.length} Empfänger` : `${r.recipients.length} recipients`}`,
      r.lastError?.code ?? '',
    ]);
    for (const line of columns([head, ...table])) ctx.out.line(line);
  }
  ctx.out.line('');
  ctx.out.line(QUEUE_STATES.map((s) => `${stateName(s, ctx.lang)}: ${counts[s]}`).join(', '));
  return 0;
}

async function show(ctx: CommandContext, queue: Queue, id: string): Promise<number> {
  const r = await queue.get(id);
  if (!r) throw new MbError('MB_RELAY_QUEUE_NOT_FOUND', { id });
  const de = ctx.lang === 'de';
  const rows: Array<[string, string]> = [
    ['ID', r.id],
    [de ? 'Zustand' : 'State', stateName(r.state, ctx.lang) + (r.holdReason ? ` (${r.holdReason})` : '')],
    [de ? 'Art' : 'Kind', r.kind === 'dsn' ? (de ? 'Unzustellbarkeitsbericht' : 'bounce report') + (r.originId ? ` → ${r.originId}` : '') : de ? 'Nachricht' : 'message'],
    [de ? 'Absender' : 'Sender', r.sender || '<>'],
    [de ? 'Empfänger' : 'Recipients', r.recipients.join(', ')],
    [de ? 'Sendendes Postfach' : 'Sending mailbox', r.mailbox],
    [de ? 'Relay-Benutzer' : 'Relay user', r.relayUser ?? '-'],
    ['Client', r.clientIp ?? '-'],
    [de ? 'Größe' : 'Size', `${size(r.size)} (${r.bodyType}${r.smtpUtf8 ? ', SMTPUTF8' : ''})`],
    [de ? 'Angenommen' : 'Received', time(r.receivedAt) + ' UTC'],
    [de ? 'Versuche' : 'Attempts', String(r.attempts)],
    [de ? 'Letzter Versuch' : 'Last attempt', r.lastAttemptAt ? time(r.lastAttemptAt) + ' UTC' : '-'],
    [de ? 'Nächster Versuch' : 'Next attempt', next(r, Date.now(), ctx.lang)],
  ];
  for (const line of columns(rows)) ctx.out.line(line);
  if (r.lastError) {
    ctx.out.line('');
    ctx.out.line(de ? 'Letzter Fehler:' : 'Last error:');
    ctx.out.line(renderText(explain(r.lastError.code, r.lastError.params ?? {}, ctx.lang), ctx.lang));
    if (r.lastError.reply) ctx.out.line(`  ${de ? 'Antwort des Servers' : 'Server reply'}: ${r.lastError.reply}`);
    if (r.lastError.detail) ctx.out.line(`  ${de ? 'Einzelheiten' : 'Detail'}: ${r.lastError.detail}`);
  }
  // The message trace (relay/queue/trace.ts): what the admin API's …/trace answers, as lines.
  const steps = (await queue.trace?.get(r.id)) ?? [];
  if (steps.length) {
    ctx.out.line('');
    ctx.out.line(de ? 'Verlauf (UTC):' : 'Trace (UTC):');
    ctx.out.line(`  ${time(r.receivedAt)}  ${de ? 'angenommen' : 'accepted'}${r.clientIp ? ` ${de ? 'von' : 'from'} ${r.clientIp}` : ''}${r.relayUser ? ` (${r.relayUser})` : ''}`);
    for (const step of steps) ctx.out.line(`  ${time(step.at)}  ${traceLine(step, ctx.lang)}`);
  }
  return 0;
}

const OUTCOME_DE = { delivered: 'zugestellt', deferred: 'verzögert', bounced: 'unzustellbar' } as const;
const ACTION_DE = { hold: 'angehalten', release: 'freigegeben', retry: 'erneut versucht' } as const;

function traceLine(step: TraceStep, lang: Lang): string {
  const de = lang === 'de';
  switch (step.type) {
    case 'attempt': {
      const head = de ? `Versuch ${step.attempt}: ${OUTCOME_DE[step.outcome]}` : `attempt ${step.attempt}: ${step.outcome}`;
      const parts = [step.code, step.reply].filter(Boolean).join(' – ');
      const report = step.report ? (de ? `, Unzustellbarkeitsbericht ${step.report}` : `, bounce report ${step.report}`) : '';
      return `${head}${parts ? ` (${parts})` : ''}${report}`;
    }
    case 'admin':
      return de ? `vom Admin ${ACTION_DE[step.action]}` : `${step.action} by admin`;
    case 'corrupt':
      return de ? `angehalten, Inhalt fehlt (${step.code})` : `held, body missing (${step.code})`;
  }
}

function stateName(s: QueueState, lang: Lang): string {
  return lang === 'de' ? STATE_DE[s] : s;
}

function next(r: QueueRecord, now: number, lang: Lang): string {
  if (r.state !== 'incoming' && r.state !== 'deferred') return '-';
  if (r.nextAttemptAt <= now) return lang === 'de' ? 'jetzt' : 'now';
  return (lang === 'de' ? 'in ' : 'in ') + formatDelay(r.nextAttemptAt - now);
}

function time(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function columns(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}
