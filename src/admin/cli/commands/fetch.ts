/**
 * `mailbridge fetch <connector> [--once] [--retry-rejected] [--status]`: runs one mailbox connector
 * from mailbridge.yaml in the foreground (until Ctrl-C, or once through every folder with --once),
 * showing progress: messages, bytes and the rate. On a terminal one status line is redrawn; when
 * stdout is not a terminal (cron, systemd, a pipe) it prints plain lines instead. Errors are shown
 * with their MB code, cause and fix; a problem that makes the connector retry (destination down,
 * sign-in refused) is shown once when it starts, not at every retry, and again after it cleared.
 * `log.level` of mailbridge.yaml sets how much is shown (error: errors only; warn: also warnings
 * and retried problems; info: also per-folder lines; debug/trace: also the JSON log on stderr).
 * A --once run exits with a code cron can tell apart (FETCH_EXIT).
 */
import { openApp } from '../../../app/open.ts';
import type { Config } from '../../../app/schema.ts';
import { runConnector, type ConnectorConfig, type ConnectorEvent, type RunSummary, type TokenProvider } from '../../../connector/index.ts';
import { RetryRequests } from '../../../connector/retry-requests.ts';
import { MbError, renderText } from '../../../errors/index.ts';
import type { Lang } from '../../../i18n/index.ts';
import { cloudFor } from '../../../identity/index.ts';
import type { Store } from '../../../store/index.ts';
import { createLogger } from '../../../log/index.ts';
import { defineCommand, type CommandContext } from '../command.ts';
import type { OptionDefs } from '../args.ts';
import type { Output } from '../output.ts';
import { connectorPlugins } from '../../../app/connectors.ts';
import { nodeIdentity } from '../../../cluster/node.ts';
import { Ownership } from '../../../cluster/ownership.ts';

/** Exit codes of `fetch --once` (also in the help): the most serious that applies. */
export const FETCH_EXIT = {
  ok: 0,
  /** A mailbox or folder could not be fetched to the end (sign-in, source or destination failure). */
  error: 1,
  /** The destination refused messages for good (they stay in the mailbox; --retry-rejected). */
  rejected: 3,
  /** Delivered, but marking, moving or deleting in the mailbox failed (repeated on the next run). */
  afterAction: 4,
} as const;

const AFTER_ACTION_CODES = new Set(['MB_CONNECTOR_AFTER_ACTION_FAILED', 'MB_CONNECTOR_GRAPH_ACTION_FORBIDDEN']);

export function fetchExitCode(s: RunSummary): number {
  if (s.errors.length > 0) return FETCH_EXIT.error;
  if (s.rejected > 0) return FETCH_EXIT.rejected;
  if (s.warnings.some((w) => AFTER_ACTION_CODES.has(w.code))) return FETCH_EXIT.afterAction;
  return FETCH_EXIT.ok;
}

export interface FetchEnvironment {
  config: Pick<Config, 'connectors' | 'connections'> & Partial<Pick<Config, 'log' | 'node'>> & { server?: { proxy?: string | undefined } };
  store: Store;
  /** Tokens for a connector's mailboxes (Exchange for IMAP, Graph for a Graph source). */
  tokens(connector: ConnectorConfig): TokenProvider;
  reveal(stored: string): string;
  /** Seal and open small secrets kept in the store (the clientState of Graph subscriptions). */
  seal?(plain: string): string;
  open?(sealed: string): string;
  close(): Promise<void>;
}

/** Config, store and identity as the command uses them; tests pass their own. */
export async function openFetchEnvironment(ctx: CommandContext): Promise<FetchEnvironment> {
  const app = await openApp(ctx);
  try {
    const secretBox = await app.secretBox();
    const store = await app.store();
    const identity = await app.identity();
    return {
      config: app.config,
      store,
      // `fresh` after an authorization failure: the cached token may predate the admin's grant.
      tokens: (c) => async (_mailbox, o) =>
        (await identity.getToken(c.connection, c.source.kind === 'graph' ? 'graph' : 'exchange', { forceRefresh: o?.fresh })).accessToken,
      reveal: (stored) => secretBox.reveal(stored),
      seal: (plain) => secretBox.seal(plain),
      open: (sealed) => secretBox.open(sealed),
      close: () => app.close(),
    };
  } catch (err) {
    await app.close();
    throw err;
  }
}

const T = {
  en: {
    usage: 'Name exactly one connector',
    starting: 'Fetching with connector {name}: {mailboxes} mailbox(es) → {destination}{mode}',
    once: ' (once)',
    running: ' (until Ctrl-C)',
    progress: '{messages} messages, {bytes}, {rate} messages/s, {byteRate}/s',
    progressTty: '↓ {messages} messages  {bytes}  {rate} msg/s  {byteRate}/s  {mailboxes}  {problems}',
    connected: 'connected {connected}/{total}',
    problems: 'refused {rejected}, errors {errors}',
    synced: '{mailbox} {folder}: {count} delivered',
    retry: 'retrying in {seconds} s: ',
    retrying: 'retrying until it works (shown once): ',
    recovered: '{mailbox} {folder}: delivering again ({code} is over)',
    stopping: '{signal} received, stopping after the messages in flight.',
    summary: 'Done: {messages} messages, {bytes} in {seconds} s ({rate} messages/s, {byteRate}/s); {rejected} refused, {duplicates} already delivered, {redelivered} redelivered, {errors} error(s).',
    noCheckpoints: 'No checkpoints for connector {name} yet.',
    statusHead: 'Mailbox / folder                          UIDVALIDITY   last UID  delivered  refused  in flight  updated',
  },
  de: {
    usage: 'Genau einen Connector angeben',
    starting: 'Abruf mit Connector {name}: {mailboxes} Postfach/Postfächer → {destination}{mode}',
    once: ' (einmalig)',
    running: ' (bis Strg-C)',
    progress: '{messages} Nachrichten, {bytes}, {rate} Nachrichten/s, {byteRate}/s',
    progressTty: '↓ {messages} Nachrichten  {bytes}  {rate} Nachr./s  {byteRate}/s  {mailboxes}  {problems}',
    connected: 'verbunden {connected}/{total}',
    problems: 'abgewiesen {rejected}, Fehler {errors}',
    synced: '{mailbox} {folder}: {count} zugestellt',
    retry: 'neuer Versuch in {seconds} s: ',
    retrying: 'wird wiederholt, bis es klappt (einmal angezeigt): ',
    recovered: '{mailbox} {folder}: Zustellung läuft wieder ({code} ist behoben)',
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

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const RANK: Record<Level, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: 100 };

/**
 * Progress from connector events. On a terminal: one status line, redrawn at most every 200 ms
 * (cursor up + clear line, so error blocks printed in between stay visible). Otherwise: a plain
 * line per folder that received mail, per error, and a progress line every `plainEveryMs`.
 * A problem the connector keeps retrying (a retried delivery, a mailbox that fails to connect) is
 * printed when it starts, not at every attempt: once per mailbox, folder and code until it clears
 * (a delivery in that folder, a connection to that mailbox). `level` filters like log.level.
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
  private readonly level: number;
  /** Problems shown and not yet cleared: `mailbox\0folder\0code` for retries, `mailbox\0code` for errors. */
  private readonly retrying = new Map<string, string>();
  private readonly failing = new Set<string>();
  private lastDraw = 0;
  private statusShown = false;
  private lastPlain: number;

  constructor(out: Output, options: { mailboxes: number; now?: () => number; plainEveryMs?: number; level?: Level }) {
    this.out = out;
    this.lang = out.lang;
    this.now = options.now ?? Date.now;
    this.started = this.now();
    this.lastPlain = this.started;
    this.total = options.mailboxes;
    this.plainEveryMs = options.plainEveryMs ?? 10_000;
    this.level = RANK[options.level ?? 'info'];
  }

  private shows(level: Level): boolean {
    return RANK[level] >= this.level;
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
        for (const k of [...this.failing]) if (k.startsWith(`${e.mailbox}\0`)) this.failing.delete(k);
        break;
      case 'delivered': {
        this.messages++;
        this.bytes += e.bytes;
        const prefix = `${e.scope.mailbox}\0${e.scope.folder}\0`;
        for (const [k, code] of [...this.retrying]) {
          if (!k.startsWith(prefix)) continue;
          this.retrying.delete(k);
          if (this.shows('warn')) this.out.error(fmt(t.recovered, { mailbox: e.scope.mailbox, folder: e.scope.folder, code }));
        }
        break;
      }
      case 'retry': {
        const key = `${e.scope.mailbox}\0${e.scope.folder}\0${e.error.code}`;
        if (this.retrying.has(key)) break;
        this.retrying.set(key, e.error.code);
        if (this.shows('warn')) this.message(t.retrying + renderText(e.error.explain(this.lang), this.lang));
        break;
      }
      case 'rejected':
        this.rejected++;
        if (this.shows('error')) this.message(renderText(e.error.explain(this.lang), this.lang));
        break;
      case 'error': {
        this.errors++;
        this.connected.delete(e.mailbox);
        // A long run retries by itself: the same failure of the same mailbox is shown once until it connects again.
        const key = `${e.mailbox}\0${e.error.code}`;
        if (e.retryInMs !== undefined && this.failing.has(key)) break;
        if (e.retryInMs !== undefined) this.failing.add(key);
        if (this.shows('error')) {
          this.message(
            (e.retryInMs !== undefined ? t.retry.replace('{seconds}', num(e.retryInMs / 1000, this.lang)) : '') + renderText(e.error.explain(this.lang), this.lang),
          );
        }
        break;
      }
      case 'warning':
        if (this.shows('warn')) this.message(renderText(e.error.explain(this.lang), this.lang));
        break;
      case 'synced':
        if (!this.out.tty && e.delivered > 0 && this.shows('info')) this.out.line(fmt(t.synced, { mailbox: e.scope.mailbox, folder: e.scope.folder, count: e.delivered }));
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
    } else if (now - this.lastPlain >= this.plainEveryMs && this.messages > 0 && this.shows('info')) {
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

const options = {
  once: {
    type: 'boolean',
    help: { en: 'go through every folder once, then exit (exit codes below)', de: 'jeden Ordner einmal durchgehen, dann beenden (Exit-Codes unten)' },
  },
  'retry-rejected': {
    type: 'boolean',
    help: { en: 'deliver again the messages the destination refused for good before', de: 'vom Ziel endgültig abgewiesene Nachrichten erneut zustellen' },
  },
  status: {
    type: 'boolean',
    help: { en: 'show the checkpoints (UIDVALIDITY, last UID, counts) and exit', de: 'die Prüfpunkte (UIDVALIDITY, letzte UID, Zähler) zeigen und beenden' },
  },
} satisfies OptionDefs;

export async function runFetch(ctx: CommandContext<typeof options>, open: (ctx: CommandContext) => Promise<FetchEnvironment> = openFetchEnvironment): Promise<number> {
  const t = T[ctx.lang];
  const { once, status } = ctx.opts;
  const retryRejected = ctx.opts['retry-rejected'];
  if (ctx.args.length !== 1) throw new MbError('MB_CLI_USAGE', { detail: t.usage, command: 'fetch' });
  const name = ctx.args[0]!;

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
    // log.level of mailbridge.yaml: what is shown here; MAILBRIDGE_LOG_LEVEL still sets the JSON log alone.
    const level = env.config.log?.level ?? 'info';
    const progress = new Progress(ctx.out, { mailboxes: c.mailboxes.length, level });
    const jsonLevel = ctx.env.MAILBRIDGE_LOG_LEVEL ?? (level === 'debug' || level === 'trace' ? level : 'silent');
    // On PostgreSQL a long run is a node: several `fetch` processes of one connector (on several
    // hosts) share its mailboxes through per-mailbox leases, and take over those of one that dies.
    const ownership =
      !once && env.store.driver === 'postgres'
        ? new Ownership({ cluster: env.store.cluster, node: nodeIdentity({ name: env.config.node?.name, role: `fetch ${name}` }), log: createLogger({ level: jsonLevel, destination: { write: (line: string) => ctx.out.error(line.trimEnd()) } }) })
        : undefined;
    ownership?.start();
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
        plugins: connectorPlugins,
        repo: env.store.checkpoints,
        tokens: env.tokens(c),
        proxy: { proxy: connection.proxy ?? env.config.server?.proxy, source: connection.proxy ? 'connection' : 'server', env: ctx.env },
        reveal: (stored) => env.reveal(stored),
        // Graph change notifications (source.notifications) keep their subscriptions here.
        kv: env.store.kv,
        ...(env.seal && env.open ? { seal: env.seal, open: env.open } : {}),
        log: createLogger({ level: jsonLevel, destination: { write: (line: string) => ctx.out.error(line.trimEnd()) } }),
        onEvent: (e) => progress.on(e),
        // Retries of the quarantine asked for through the admin API while this runs (or before).
        retryRequests: new RetryRequests(env.store.kv),
        // A Graph notification that reaches this node for a mailbox another node holds goes to it through the store's signals.
        ...(ownership ? { ownership, signals: env.store.signals } : {}),
      },
      { once, retryRejected, signal: controller.signal },
    ).finally(() => ownership?.close());
    progress.tick(true);
    ctx.out.line(progress.summary(summary));
    return once ? fetchExitCode(summary) : FETCH_EXIT.ok;
  } finally {
    await env.close();
  }
}

export const command = defineCommand({
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
running, picks up new mail at once (IMAP IDLE; Graph change notifications when the Graph source has
notifications.publicUrl, with its own listener) and stops cleanly on Ctrl-C or SIGTERM.

On a terminal one status line shows messages, bytes and the rate; otherwise plain lines are printed
(one per folder that received mail, errors with their MB code, progress every 10 seconds).

{options}

log.level in mailbridge.yaml sets what is shown: error, warn (also warnings and problems that are
retried, once each), info (default: also a line per folder), debug or trace (also the JSON log).

Exit codes of --once (the most serious one): 0 all delivered and marked/moved; 1 a mailbox or
folder could not be fetched to the end (sign-in, mail server or destination failed; see the MB
code); 3 the destination refused messages for good (they stay in the mailbox: --retry-rejected);
4 delivered, but marking, moving or deleting them failed (repeated on the next run); 2 wrong
command line.`,
    de: `Aufruf: mailbridge fetch <connector> [--once] [--retry-rejected] [--status]

Führt den Connector connectors.<connector> aus mailbridge.yaml aus: öffnet seine Postfächer mit den
Tokens seiner Verbindung, übergibt jede neue Nachricht unverändert und genau einmal an sein Ziel
(LMTP/SMTP, Maildir, HTTP oder ein Befehl) und markiert, verschiebt oder löscht sie danach wie
eingestellt. Ohne --once läuft er weiter, holt neue Mail sofort ab (IMAP IDLE; bei einer Graph-Quelle
mit notifications.publicUrl über Graph-Änderungsbenachrichtigungen an einen eigenen Listener) und
endet sauber mit Strg-C oder SIGTERM.

Im Terminal zeigt eine Statuszeile Nachrichten, Bytes und die Rate; sonst erscheinen einfache Zeilen
(eine je Ordner mit neuer Mail, Fehler mit ihrem MB-Code, alle 10 Sekunden der Fortschritt).

{options}

log.level in mailbridge.yaml bestimmt, was erscheint: error, warn (auch Warnungen und Probleme,
die wiederholt werden, je einmal), info (Standard: auch eine Zeile je Ordner), debug oder trace
(auch das JSON-Protokoll).

Exit-Codes von --once (der schwerwiegendste): 0 alles zugestellt und markiert/verschoben; 1 ein
Postfach oder Ordner konnte nicht bis zum Ende abgerufen werden (Anmeldung, Mailserver oder Ziel
fehlgeschlagen; siehe MB-Code); 3 das Ziel hat Nachrichten endgültig abgewiesen (sie bleiben im
Postfach: --retry-rejected); 4 zugestellt, aber Markieren, Verschieben oder Löschen ist
fehlgeschlagen (wird beim nächsten Lauf wiederholt); 2 falscher Befehlsaufruf.`,
  },
  options,
  run: (ctx) => runFetch(ctx),
});
