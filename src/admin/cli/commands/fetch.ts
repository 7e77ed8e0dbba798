/**
 * `mailbridge fetch <connector> [--once] [--retry-rejected] [--status]`: runs one mailbox connector
 * from mailbridge.yaml in the foreground (until Ctrl-C, or once through every folder with --once),
 * showing progress: messages, bytes and the rate. On a terminal one status line is redrawn; when
 * stdout is not a terminal (cron, systemd, a pipe) it prints plain lines instead. Errors are shown
 * with their MB code, cause and fix. Exit code 1 when a --once run met an error.
 */
import { loadConfig } from '../../../config/index.ts';
import { openSecretBox } from '../../../config/secrets.ts';
import type { Config } from '../../../config/schema.ts';
import { runConnector, type ConnectorConfig, type ConnectorEvent, type RunSummary, type TokenProvider } from '../../../connector/index.ts';
import { MbError, renderText } from '../../../errors/index.ts';
import type { Lang } from '../../../i18n/index.ts';
import { cloudFor, createIdentity } from '../../../identity/index.ts';
import { createLogger } from '../../../log/index.ts';
import { openStore, type Store } from '../../../store/index.ts';
import type { Command, CommandContext } from '../command.ts';
import type { Output } from '../output.ts';

export interface FetchEnvironment {
  config: Pick<Config, 'connectors' | 'connections'>;
  store: Store;
  /** Tokens for a connector's mailboxes (Exchange for IMAP, Graph for a Graph source). */
  tokens(connector: ConnectorConfig): TokenProvider;
  reveal(stored: string): string;
  close(): Promise<void>;
}

/** Config, store and identity as the command uses them; tests pass their own. */
export async function openFetchEnvironment(ctx: CommandContext): Promise<FetchEnvironment> {
  const { config, keyFile } = await loadConfig(ctx.configPath, ctx.env, { lang: ctx.lang });
  const log = createLogger({ level: ctx.env.MAILBRIDGE_LOG_LEVEL ?? 'warn' });
  const secretBox = await openSecretBox({ keyFile, env: ctx.env });
  const store = await openStore(config.store);
  const identity = createIdentity({ config, kv: store.kv, secretBox, log, env: ctx.env });
  return {
    config,
    store,
    // `fresh` after an authorization failure: the cached token may predate the admin's grant.
    tokens: (c) => async (_mailbox, o) =>
      (await identity.getToken(c.connection, c.source.kind === 'graph' ? 'graph' : 'exchange', { forceRefresh: o?.fresh })).accessToken,
    reveal: (stored) => secretBox.reveal(stored),
    async close() {
      await identity.close();
      await store.close();
    },
  };
}

const T = {
  en: {
    usage: 'Name exactly one connector',
    unknownOption: 'Unknown option: {option}',
    starting: 'Fetching with connector {name}: {mailboxes} mailbox(es) → {destination}{mode}',
    once: ' (once)',
    running: ' (until Ctrl-C)',
    progress: '{messages} messages, {bytes}, {rate} messages/s, {byteRate}/s',
    progressTty: '↓ {messages} messages  {bytes}  {rate} msg/s  {byteRate}/s  {mailboxes}  {problems}',
    connected: 'connected {connected}/{total}',
    problems: 'refused {rejected}, errors {errors}',
    synced: '{mailbox} {folder}: {count} delivered',
    retry: 'retrying in {seconds} s: ',
    stopping: '{signal} received, stopping after the messages in flight.',
    summary: 'Done: {messages} messages, {bytes} in {seconds} s ({rate} messages/s, {byteRate}/s); {rejected} refused, {duplicates} already delivered, {redelivered} redelivered, {errors} error(s).',
    noCheckpoints: 'No checkpoints for connector {name} yet.',
    statusHead: 'Mailbox / folder                          UIDVALIDITY   last UID  delivered  refused  in flight  updated',
  },
  de: {
    usage: 'Genau einen Connector angeben',
    unknownOption: 'Unbekannte Option: {option}',
    starting: 'Abruf mit Connector {name}: {mailboxes} Postfach/Postfächer → {destination}{mode}',
    once: ' (einmalig)',
    running: ' (bis Strg-C)',
    progress: '{messages} Nachrichten, {bytes}, {rate} Nachrichten/s, {byteRate}/s',
    progressTty: '↓ {messages} Nachrichten  {bytes}  {rate} Nachr./s  {byteRate}/s  {mailboxes}  {problems}',
    connected: 'verbunden {connected}/{total}',
    problems: 'abgewiesen {rejected}, Fehler {errors}',
    synced: '{mailbox} {folder}: {count} zugestellt',
    retry: 'neuer Versuch in {seconds} s: ',
    stopping: '{signal} empfangen, Abruf endet nach den laufenden Nachrichten.',
    summary: 'Fertig: {messages} Nachrichten, {bytes} in {seconds} s ({rate} Nachrichten/s, {byteRate}/s); {rejected} abgewiesen, {duplicates} bereits zugestellt, {redelivered} erneut zugestellt, {errors} Fehler.',
    noCheckpoints: 'Für Connector {name} gibt es noch keine Prüfpunkte.',
    statusHead: 'Postfach / Ordner                         UIDVALIDITY  letzte UID  zugestellt  abgew.  unterwegs  aktualisiert',
  },
} satisfies Record<Lang, Record<string, string>>;

function fmt(template: string, params: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (w, k: string) => (k in params ? String(params[k]) : w));
}

export function formatBytes(n: number, lang: Lang): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const s = u === 0 ? String(v) : v.toFixed(1);
  return `${lang === 'de' ? s.replace('.', ',') : s} ${units[u]}`;
}

function num(n: number, lang: Lang, digits = 1): string {
  const s = n.toFixed(digits);
  return lang === 'de' ? s.replace('.', ',') : s;
}

/**
 * Progress from connector events. On a terminal: one status line, redrawn at most every 200 ms
 * (cursor up + clear line, so error blocks printed in between stay visible). Otherwise: a plain
 * line per folder that received mail, per error, and a progress line every `plainEveryMs`.
 */
export class Progress {
  private readonly out: Output;
  private readonly lang: Lang;
  private readonly now: () => number;
  private readonly started: number;
  private readonly total: number;
  private readonly plainEveryMs: number;
  private messages = 0;
  private bytes = 0;
  private rejected = 0;
  private errors = 0;
  private readonly connected = new Set<string>();
  private lastDraw = 0;
  private statusShown = false;
  private lastPlain: number;

  constructor(out: Output, options: { mailboxes: number; now?: () => number; plainEveryMs?: number }) {
    this.out = out;
    this.lang = out.lang;
    this.now = options.now ?? Date.now;
    this.started = this.now();
    this.lastPlain = this.started;
    this.total = options.mailboxes;
    this.plainEveryMs = options.plainEveryMs ?? 10_000;
  }

  private rates(): { rate: string; byteRate: string } {
    const s = Math.max(0.001, (this.now() - this.started) / 1000);
    return { rate: num(this.messages / s, this.lang), byteRate: formatBytes(Math.round(this.bytes / s), this.lang) };
  }

  on(e: ConnectorEvent): void {
    const t = T[this.lang];
    switch (e.type) {
      case 'connected':
        this.connected.add(e.mailbox);
        break;
      case 'delivered':
        this.messages++;
        this.bytes += e.bytes;
        break;
      case 'rejected':
        this.rejected++;
        this.message(renderText(e.error.explain(this.lang), this.lang));
        break;
      case 'error':
        this.errors++;
        this.connected.delete(e.mailbox);
        this.message(
          (e.retryInMs !== undefined ? t.retry.replace('{seconds}', num(e.retryInMs / 1000, this.lang)) : '') + renderText(e.error.explain(this.lang), this.lang),
        );
        break;
      case 'warning':
        this.message(renderText(e.error.explain(this.lang), this.lang));
        break;
      case 'synced':
        if (!this.out.tty && e.delivered > 0) this.out.line(fmt(t.synced, { mailbox: e.scope.mailbox, folder: e.scope.folder, count: e.delivered }));
        break;
      default:
        break;
    }
    this.tick();
  }

  /** Error and warning blocks go to stderr; on a terminal the status line is drawn again below them. */
  private message(text: string): void {
    this.out.error(text);
    this.statusShown = false;
  }

  tick(force = false): void {
    const now = this.now();
    if (this.out.tty) {
      if (!force && now - this.lastDraw < 200) return;
      this.lastDraw = now;
      const line = fmt(T[this.lang].progressTty, {
        messages: this.messages,
        bytes: formatBytes(this.bytes, this.lang),
        ...this.rates(),
        mailboxes: fmt(T[this.lang].connected, { connected: this.connected.size, total: this.total }),
        problems: fmt(T[this.lang].problems, { rejected: this.rejected, errors: this.errors }),
      });
      this.out.line((this.statusShown ? '\x1b[1A\x1b[2K' : '') + line);
      this.statusShown = true;
    } else if (now - this.lastPlain >= this.plainEveryMs && this.messages > 0) {
      this.lastPlain = now;
      this.out.line(fmt(T[this.lang].progress, { messages: this.messages, bytes: formatBytes(this.bytes, this.lang), ...this.rates() }));
    }
  }

  summary(s: RunSummary): string {
    const secs = Math.max(0.001, s.seconds);
    return fmt(T[this.lang].summary, {
      messages: s.delivered,
      bytes: formatBytes(s.bytes, this.lang),
      seconds: num(s.seconds, this.lang),
      rate: num(s.delivered / secs, this.lang),
      byteRate: formatBytes(Math.round(s.bytes / secs), this.lang),
      rejected: s.rejected,
      duplicates: s.duplicates,
      redelivered: s.redelivered,
      errors: s.errors.length,
    });
  }
}

export async function runFetch(ctx: CommandContext, open: (ctx: CommandContext) => Promise<FetchEnvironment> = openFetchEnvironment): Promise<number> {
  const t = T[ctx.lang];
  const args = [...ctx.args];
  const take = (flag: string) => {
    const i = args.indexOf(flag);
    if (i >= 0) args.splice(i, 1);
    return i >= 0;
  };
  const once = take('--once');
  const retryRejected = take('--retry-rejected');
  const status = take('--status');
  const unknown = args.find((a) => a.startsWith('-'));
  if (unknown) throw new MbError('MB_CLI_USAGE', { detail: fmt(t.unknownOption, { option: unknown }), command: 'fetch' });
  if (args.length !== 1) throw new MbError('MB_CLI_USAGE', { detail: t.usage, command: 'fetch' });
  const name = args[0]!;

  const env = await open(ctx);
  try {
    const connectors = env.config.connectors ?? {};
    const c = connectors[name];
    if (!c) throw new MbError('MB_CONNECTOR_UNKNOWN', { connector: name, known: Object.keys(connectors).join(', ') || '–' });
    const connection = env.config.connections?.[c.connection];
    if (!connection) throw new MbError('MB_CONNECTOR_CONNECTION_UNKNOWN', { connector: name, connection: c.connection });
    // Endpoints follow the connection's cloud unless the section names them.
    const cloud = cloudFor(connection.cloud ?? 'global');
    if (c.source.kind === 'imap') c.source.host ??= cloud.exchange.imap.host;
    else c.source.baseUrl ??= `https://${cloud.graphHost}/v1.0`;

    if (status) {
      const rows = await env.store.checkpoints.list(name);
      if (rows.length === 0) {
        ctx.out.line(fmt(t.noCheckpoints, { name }));
        return 0;
      }
      ctx.out.line(t.statusHead);
      for (const r of rows) {
        ctx.out.line(
          [`${r.mailbox} / ${r.folder}`.padEnd(42), r.epoch.padStart(11), String(r.position).padStart(10), String(r.delivered).padStart(10), String(r.rejected).padStart(8), String(r.inFlight).padStart(10), `  ${r.updatedAt}`].join(
            ' ',
          ),
        );
      }
      return 0;
    }

    const destination = c.destination.kind === 'maildir' ? `maildir ${c.destination.path}` : c.destination.kind === 'http' ? `http ${c.destination.url}` : c.destination.kind === 'command' ? `command ${c.destination.command[0]}` : `${c.destination.kind} ${c.destination.host}:${c.destination.port}`;
    ctx.out.line(fmt(t.starting, { name, mailboxes: c.mailboxes.length, destination, mode: once ? t.once : t.running }));
    const progress = new Progress(ctx.out, { mailboxes: c.mailboxes.length });
    const controller = new AbortController();
    void ctx.stopSignal.then((sig) => {
      if (controller.signal.aborted) return;
      ctx.out.error(fmt(t.stopping, { signal: sig }));
      controller.abort();
    });
    const summary = await runConnector(
      {
        name,
        config: c,
        repo: env.store.checkpoints,
        tokens: env.tokens(c),
        reveal: (stored) => env.reveal(stored),
        log: createLogger({ level: ctx.env.MAILBRIDGE_LOG_LEVEL ?? 'silent' }),
        onEvent: (e) => progress.on(e),
      },
      { once, retryRejected, signal: controller.signal },
    );
    progress.tick(true);
    ctx.out.line(progress.summary(summary));
    return once && summary.errors.length > 0 ? 1 : 0;
  } finally {
    await env.close();
  }
}

export const command: Command = {
  name: 'fetch',
  summary: {
    en: 'Fetch mail from Microsoft 365 mailboxes into a local system (one connector)',
    de: 'Mail aus Microsoft-365-Postfächern in ein lokales System abrufen (ein Connector)',
  },
  help: {
    en: `Usage: mailbridge fetch <connector> [--once] [--retry-rejected] [--status]

Runs the connector connectors.<connector> of mailbridge.yaml: opens its mailboxes with the tokens of
its connection, hands every new message unchanged to its destination (LMTP/SMTP, maildir, HTTP or a
command) exactly once, then marks, moves or deletes it as configured. Without --once it keeps
running, picks up new mail at once (IMAP IDLE) and stops cleanly on Ctrl-C or SIGTERM.

On a terminal one status line shows messages, bytes and the rate; otherwise plain lines are printed
(one per folder that received mail, errors with their MB code, progress every 10 seconds).

Options:
  --once            go through every folder once, then exit (exit code 1 if an error occurred)
  --retry-rejected  deliver again the messages the destination refused for good before
  --status          show the checkpoints (UIDVALIDITY, last UID, counts) and exit`,
    de: `Aufruf: mailbridge fetch <connector> [--once] [--retry-rejected] [--status]

Führt den Connector connectors.<connector> aus mailbridge.yaml aus: öffnet seine Postfächer mit den
Tokens seiner Verbindung, übergibt jede neue Nachricht unverändert und genau einmal an sein Ziel
(LMTP/SMTP, Maildir, HTTP oder ein Befehl) und markiert, verschiebt oder löscht sie danach wie
eingestellt. Ohne --once läuft er weiter, holt neue Mail sofort ab (IMAP IDLE) und endet sauber mit
Strg-C oder SIGTERM.

Im Terminal zeigt eine Statuszeile Nachrichten, Bytes und die Rate; sonst erscheinen einfache Zeilen
(eine je Ordner mit neuer Mail, Fehler mit ihrem MB-Code, alle 10 Sekunden der Fortschritt).

Optionen:
  --once            jeden Ordner einmal durchgehen, dann beenden (Exit-Code 1 bei einem Fehler)
  --retry-rejected  vom Ziel endgültig abgewiesene Nachrichten erneut zustellen
  --status          die Prüfpunkte (UIDVALIDITY, letzte UID, Zähler) zeigen und beenden`,
  },
  run: (ctx) => runFetch(ctx),
};
