import { join, resolve } from 'node:path';
import pg from 'pg';
import { openApp } from '../../../app/open.ts';
import { MbError } from '../../../errors/index.ts';
import { registerSecret } from '../../../log/redact.ts';
import { relaySchema } from '../../../relay/config.ts';
import { FileSpool } from '../../../relay/queue/spool.ts';
import { migrateSqliteToPostgres } from '../../../store/migrate.ts';
import { openPostgresStore } from '../../../store/postgres.ts';
import { defineCommand } from '../command.ts';
import { noMoreArgs, subcommand, usageError, type OptionDefs } from '../args.ts';

const options = {
  from: { type: 'string', value: 'sqlite:PATH', help: { en: 'migrate: the SQLite file to copy from', de: 'migrate: die SQLite-Datei, aus der kopiert wird' } },
  to: {
    type: 'string',
    value: 'postgres:URL',
    help: { en: 'migrate: the PostgreSQL database to copy to (postgres://user:password@host/db)', de: 'migrate: die PostgreSQL-Datenbank, in die kopiert wird (postgres://benutzer:kennwort@host/db)' },
  },
  spool: {
    type: 'string',
    value: 'DIR',
    help: {
      en: 'migrate: the relay spool folder with the queued messages (default: relay.dataDir/spool from mailbridge.yaml)',
      de: 'migrate: der Spool-Ordner des Relays mit den eingereihten Nachrichten (Standard: relay.dataDir/spool aus mailbridge.yaml)',
    },
  },
} satisfies OptionDefs;

export const command = defineCommand({
  name: 'store',
  summary: { en: 'Move the store from SQLite to PostgreSQL', de: 'Datenspeicher von SQLite nach PostgreSQL umziehen' },
  help: {
    en: `Usage: mailbridge store migrate --from sqlite:<path> --to postgres:<url> [--spool <dir>]

Copies everything a single-node install keeps — the relay queue with the bodies of waiting messages,
connector checkpoints, notification subscriptions, events and deliveries, watcher state, sealed token
caches, the audit log — from its SQLite file into PostgreSQL, for running several nodes.

Stop the gateway first: the command refuses while a mailbridge holds the relay spool or writes the
SQLite file. Each batch is verified (its rows are counted in PostgreSQL) and the command can be run
again: rows already copied stay as they are. Afterwards set store.driver: postgres and store.url.

{options}`,
    de: `Aufruf: mailbridge store migrate --from sqlite:<pfad> --to postgres:<url> [--spool <ordner>]

Kopiert alles, was eine Einzelinstallation speichert — die Relay-Warteschlange mit den Inhalten der
wartenden Nachrichten, Konnektor-Prüfpunkte, Benachrichtigungs-Abonnements, -Ereignisse und
-Zustellungen, Überwachungsstand, versiegelte Token-Caches und das Audit-Log — aus der SQLite-Datei
nach PostgreSQL, um mehrere Knoten zu betreiben.

Beenden Sie zuerst das Gateway: Der Befehl verweigert den Umzug, solange ein mailbridge den
Relay-Spool hält oder in die SQLite-Datei schreibt. Jeder Stapel wird geprüft (seine Zeilen werden in
PostgreSQL gezählt), und der Befehl darf erneut laufen: bereits kopierte Zeilen bleiben unverändert.
Stellen Sie danach store.driver: postgres und store.url ein.

{options}`,
  },
  options,
  async run(ctx) {
    const [given, ...rest] = ctx.args;
    subcommand('store', ctx.lang, given, ['migrate']);
    noMoreArgs('store', ctx.lang, rest);
    const de = ctx.lang === 'de';
    const from = ctx.opts.from;
    const to = ctx.opts.to;
    if (to) registerSecret(to);
    if (!from?.startsWith('sqlite:') || from.length <= 'sqlite:'.length) {
      throw usageError('store', ctx.lang, { en: '--from sqlite:<path> is needed', de: '--from sqlite:<pfad> fehlt' });
    }
    if (!to?.startsWith('postgres:') || to.length <= 'postgres:'.length) {
      throw usageError('store', ctx.lang, { en: '--to postgres:<url> is needed', de: '--to postgres:<url> fehlt' });
    }
    const sqlitePath = resolve(from.slice('sqlite:'.length));
    // postgres:postgres://… and postgres://… both name the URL.
    const url = to.startsWith('postgres://') || to.startsWith('postgresql://') ? to : to.slice('postgres:'.length);
    const password = safeUrl(url)?.password;
    if (password) registerSecret(decodeURIComponent(password));

    let spoolDir = ctx.opts.spool;
    if (!spoolDir) {
      const app = await openApp({ configPath: ctx.configPath, env: ctx.env });
      spoolDir = join((app.config.relay ?? relaySchema.parse({})).dataDir, 'spool');
      await app.close();
    }
    // Stop the writer: the spool lock is what a running relay holds; taking it also keeps a
    // gateway from starting on this install while the copy runs.
    const spool = new FileSpool(resolve(spoolDir));
    try {
      await spool.open();
    } catch (err) {
      if (err instanceof MbError && err.code === 'MB_RELAY_SPOOL_LOCKED') {
        throw new MbError('MB_STORE_MIGRATE_RUNNING', { pid: String(err.params.pid ?? '?'), path: spool.dir }, { cause: err });
      }
      throw err;
    }
    try {
      // Creates (or brings up to date) the tables, with the same named migrations as the nodes.
      await (await openPostgresStore(url, { max: 1 })).close();
      const pool = new pg.Pool({ connectionString: url, max: 2 });
      pool.on('error', () => {});
      try {
        const report = await migrateSqliteToPostgres({
          sqlitePath,
          postgres: pool,
          now: Date.now(),
          body: async (id) => {
            const stored = await spool.openStored(id);
            if (!stored) return undefined;
            try {
              return await stored.read();
            } finally {
              await stored.close();
            }
          },
        });
        for (const t of report.tables) {
          ctx.out.line(
            de
              ? `${t.table}: ${t.read} gelesen, ${t.inserted} kopiert, ${t.present} schon vorhanden — geprüft`
              : `${t.table}: ${t.read} read, ${t.inserted} copied, ${t.present} already there — verified`,
          );
        }
        ctx.out.line(de ? `Nachrichteninhalte: ${report.bodies.copied} kopiert` : `message bodies: ${report.bodies.copied} copied`);
        if (report.bodies.missing.length) {
          ctx.out.line(
            de
              ? `Ohne Inhalt im Spool (werden auf den Knoten als beschädigt angehalten, MB_RELAY_BODY_MISSING): ${report.bodies.missing.join(', ')}`
              : `without a body in the spool (held as corrupt on the nodes, MB_RELAY_BODY_MISSING): ${report.bodies.missing.join(', ')}`,
          );
        }
        ctx.out.line(
          de
            ? 'Fertig. Stellen Sie in mailbridge.yaml store.driver: postgres und store.url ein und starten Sie die Knoten.'
            : 'Done. Set store.driver: postgres and store.url in mailbridge.yaml and start the nodes.',
        );
        return 0;
      } finally {
        await pool.end();
      }
    } finally {
      await spool.close();
    }
  },
});

function safeUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}
