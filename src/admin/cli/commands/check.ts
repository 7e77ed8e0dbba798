/**
 * `mailbridge check [--json] [connection|route|connector|group]`: every prerequisite the
 * configuration needs in Entra ID and Exchange, probed (src/check/), one line each with its
 * status, and for each that is not ok its MB code, cause and fix.
 */
import { renderText } from '../../../errors/index.ts';
import type { Lang } from '../../../i18n/index.ts';
import { checkName, passed, runChecks, type CheckResult, type CheckStatus } from '../../../check/index.ts';
import { usageError } from '../args.ts';
import { defineCommand } from '../command.ts';
import { openApp } from '../../../app/open.ts';

const STATUS: Record<Lang, Record<CheckStatus, string>> = {
  en: { ok: 'ok', failed: 'FAILED', pending: 'PENDING', unverified: 'UNVERIFIED' },
  de: { ok: 'ok', failed: 'FEHLER', pending: 'AUSSTEHEND', unverified: 'UNGEPRÜFT' },
};

const WORDS = {
  en: {
    connection: 'Connection',
    summary: (c: Record<CheckStatus, number>) => `${c.ok} ok, ${c.failed} failed, ${c.pending} pending, ${c.unverified} unverified`,
    allOk: 'Every prerequisite is in place.',
    unverified: 'Nothing failed; the lines marked UNVERIFIED could not be checked from here (each says how to check it).',
    notOk: 'Not ready: fix the lines marked FAILED; PENDING ones need only time.',
    strict: 'Nothing failed, but --strict asks for every line to be proven: check the lines marked UNVERIFIED as each says.',
  },
  de: {
    connection: 'Verbindung',
    summary: (c: Record<CheckStatus, number>) => `${c.ok} ok, ${c.failed} fehlgeschlagen, ${c.pending} ausstehend, ${c.unverified} ungeprüft`,
    allOk: 'Alle Voraussetzungen sind erfüllt.',
    unverified: 'Nichts ist fehlgeschlagen; die mit UNGEPRÜFT markierten Zeilen ließen sich von hier nicht prüfen (jede sagt, wie man es prüft).',
    notOk: 'Nicht bereit: die mit FEHLER markierten Zeilen beheben; AUSSTEHEND braucht nur Zeit.',
    strict: 'Nichts ist fehlgeschlagen, aber --strict verlangt jede Zeile belegt: die mit UNGEPRÜFT markierten Zeilen so prüfen, wie jede es sagt.',
  },
} as const;

export const command = defineCommand({
  name: 'check',
  summary: {
    en: 'Check every prerequisite in Entra ID and Exchange, with the fix for each one missing',
    de: 'Jede Voraussetzung in Entra ID und Exchange prüfen, mit der Behebung für jede fehlende',
  },
  help: {
    en: `Usage: mailbridge check [--json] [--strict] [connection|route|connector|group]

Probes what the configuration needs, per connection: the credential (valid, not expiring within
30 days), a token per resource (asked anew), the API permissions in it, and for app-only SMTP and
IMAP the Exchange side: the service principal (New-ServicePrincipal with the right object ID),
FullAccess and Send-As per mailbox, SMTP AUTH for mailbox and organization, and an XOAUTH2 login
as each mailbox; DNS and TLS to the HTTPS hosts (through the proxy); for watch groups the
capacity of their listeners, Graph's validation handshake with the public URL (also for each
Graph connector with change notifications), and EWS autodiscover and access (impersonation or
FullAccess). Each line is ok, FAILED, PENDING (granted less than 30 minutes ago, not yet in
effect) or UNVERIFIED (Exchange could not be read: it needs Exchange.ManageAsApp), with the MB
code and the fix.

{options}

Exit codes: 0 nothing failed or is pending; UNVERIFIED lines do not count, because reading
Exchange's permissions needs Exchange.ManageAsApp, which mailbridge itself never uses (each such
line says how to check it by hand). With --strict UNVERIFIED counts as not passed (exit 1), for
scripts that must prove every line. 1: a prerequisite failed or is pending (or, with --strict,
unverified); 2: wrong command line.`,
    de: `Aufruf: mailbridge check [--json] [--strict] [verbindung|route|konnektor|gruppe]

Prüft, was die Konfiguration braucht, je Verbindung: die Anmeldeinformation (gültig, läuft
nicht innerhalb von 30 Tagen ab), ein Token je Ressource (neu angefragt), die API-Berechtigungen
darin, und für SMTP und IMAP mit App-Zugriff die Exchange-Seite: den Dienstprinzipal
(New-ServicePrincipal mit der richtigen Objekt-ID), Vollzugriff und „Senden als“ je Postfach,
SMTP AUTH für Postfach und Organisation und eine XOAUTH2-Anmeldung als jedes Postfach; DNS und
TLS zu den HTTPS-Hosts (über den Proxy); für Überwachungsgruppen die Kapazität ihrer Listener, den
Bestätigungs-Handshake von Graph mit der öffentlichen URL (auch für jeden Graph-Konnektor mit
Änderungsbenachrichtigungen) sowie EWS-Autodiscover und -Zugriff
(Identitätswechsel oder Vollzugriff). Jede Zeile
ist ok, FEHLER, AUSSTEHEND (vor weniger als 30 Minuten erteilt, noch nicht wirksam) oder UNGEPRÜFT
(Exchange war nicht lesbar: dafür braucht es Exchange.ManageAsApp), mit MB-Code und Behebung.

{options}

Exit-Codes: 0 nichts ist fehlgeschlagen oder ausstehend; UNGEPRÜFT-Zeilen zählen nicht, denn
Exchange-Berechtigungen lesen braucht Exchange.ManageAsApp, das mailbridge selbst nie verwendet
(jede solche Zeile sagt, wie man es von Hand prüft). Mit --strict gilt UNGEPRÜFT als nicht
bestanden (Exit-Code 1), für Skripte, die jede Zeile belegen müssen. 1: eine Voraussetzung fehlt
oder ist ausstehend (mit --strict auch ungeprüft); 2: falscher Aufruf.`,
  },
  options: {
    json: { type: 'boolean', help: { en: 'machine-readable output', de: 'maschinenlesbare Ausgabe' } },
    strict: { type: 'boolean', help: { en: 'UNVERIFIED lines fail too (exit 1)', de: 'auch UNGEPRÜFT-Zeilen lassen die Prüfung scheitern (Exit-Code 1)' } },
  },
  async run(ctx) {
    if (ctx.args.length > 1) throw usageError('check', ctx.lang, { en: 'Name at most one connection, route, connector or group', de: 'Höchstens eine Verbindung, Route, einen Konnektor oder eine Gruppe angeben' });
    const app = await openApp(ctx);
    try {
      const { config } = app;
      const box = await app.secretBox();
      const results = await runChecks({
        config,
        identity: await app.identity(),
        ...(ctx.args[0] !== undefined ? { target: ctx.args[0] } : {}),
        env: ctx.env,
        log: ctx.log,
        reveal: (stored) => box.reveal(stored),
      });
      const ok = passed(results) && !(ctx.opts.strict && results.some((r) => r.status === 'unverified'));
      if (ctx.opts.json) {
        ctx.out.json({ ok, results: results.map((r) => json(r, ctx.lang)) });
        return ok ? 0 : 1;
      }
      print(ctx.out, results, ctx.lang, ok);
      return ok ? 0 : 1;
    } finally {
      await app.close();
    }
  },
});

function json(r: CheckResult, lang: Lang) {
  return { connection: r.connection, check: r.check, subject: r.subject, ...(r.label ? { label: r.label[lang] } : {}), status: r.status, ...(r.error ? r.error.explain(lang) : {}) };
}

function print(out: { line(text?: string): void }, results: readonly CheckResult[], lang: Lang, ok: boolean): void {
  const w = WORDS[lang];
  const counts: Record<CheckStatus, number> = { ok: 0, failed: 0, pending: 0, unverified: 0 };
  const width = Math.max(...Object.values(STATUS[lang]).map((s) => s.length)) + 2;
  const checkWidth = Math.max(...results.map((r) => checkName(r.check, lang).length), 0) + 2;
  let current = '';
  for (const r of results) {
    counts[r.status]++;
    if (r.connection !== current) {
      if (current) out.line();
      current = r.connection;
      out.line(`${w.connection} ${r.connection}`);
    }
    out.line(`  ${STATUS[lang][r.status].padEnd(width)}${checkName(r.check, lang).padEnd(checkWidth)}${r.label?.[lang] ?? r.subject}`);
    if (r.error && r.status !== 'ok') {
      for (const l of renderText(r.error.explain(lang), lang).split('\n')) out.line(`  ${' '.repeat(width)}${l}`);
    }
  }
  out.line();
  out.line(w.summary(counts));
  out.line(!passed(results) ? w.notOk : !ok ? w.strict : counts.unverified > 0 ? w.unverified : w.allOk);
}
