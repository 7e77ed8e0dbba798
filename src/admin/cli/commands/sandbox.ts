import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { MbError } from '../../../errors/index.ts';
import { createLogger } from '../../../log/index.ts';
import { startSandbox } from '../../../sandbox/index.ts';
import type { Command } from '../command.ts';

export const command: Command = {
  name: 'sandbox',
  summary: { en: 'Start the sandbox tenant (Entra ID, Exchange Online, Graph, EWS, Dovecot)', de: 'Sandbox-Tenant starten (Entra ID, Exchange Online, Graph, EWS, Dovecot)' },
  help: {
    en: `Usage: mailbridge sandbox [--dir DIR] [--file sandbox.yaml] [--synthetic N] [--smtp-port N] [--imap-port N] [--admin-port N]

Starts an emulated Microsoft 365 tenant on this machine: Entra ID for every national cloud, Exchange
Online's SMTP (STARTTLS, AUTH XOAUTH2) and IMAP (TLS, XOAUTH2) with Microsoft's authorization rules
and replies, the Microsoft Graph mail API (sendMail, delta, change notifications), an on-premises
Exchange Server's EWS (streaming and push notifications, autodiscover), a private Dovecot that stores
the mail, and an admin API to change permissions at run time (mailbridge sandbox-admin). Prints the endpoints and writes a mailbridge.yaml that works against
them. Stops everything it started on Ctrl-C.

Options:
  --dir DIR        state folder (default .sandbox): CA, sandbox.yaml, mail, example config
  --file FILE      tenants, apps and mailboxes to use instead of the demo tenant (first start only)
  --synthetic N    also N in-memory mailboxes (user00001@synthetic.test …) in the first tenant, served
                   by Graph and EWS, for watching thousands of mailboxes (scale tests)
  --smtp-port N    SMTP front port (default: any free port); likewise --imap-port, --admin-port

Needs Dovecot (Debian: scripts/dovecot/install.sh, as root).`,
    de: `Aufruf: mailbridge sandbox [--dir VERZ] [--file sandbox.yaml] [--synthetic N] [--smtp-port N] [--imap-port N] [--admin-port N]

Startet einen nachgebildeten Microsoft-365-Tenant auf diesem Rechner: Entra ID für jede nationale
Cloud, SMTP (STARTTLS, AUTH XOAUTH2) und IMAP (TLS, XOAUTH2) von Exchange Online mit den
Berechtigungsregeln und Antworten von Microsoft, die Mail-API von Microsoft Graph (sendMail, Delta,
Änderungsbenachrichtigungen), EWS eines lokalen Exchange Servers (Streaming- und Push-Benachrichtigungen,
Autodiscover), ein eigenes Dovecot, das die Mails speichert, und eine Admin-API, um Berechtigungen zur Laufzeit zu ändern (mailbridge sandbox-admin). Gibt die
Endpunkte aus und schreibt eine dazu passende mailbridge.yaml. Beendet mit Strg-C alles, was es
gestartet hat.

Optionen:
  --dir VERZ       Zustandsordner (Standard .sandbox): CA, sandbox.yaml, Mails, Beispielkonfiguration
  --file DATEI     Tenants, Apps und Postfächer statt des Demo-Tenants (nur beim ersten Start)
  --synthetic N    zusätzlich N Postfächer im Speicher (user00001@synthetic.test …) im ersten Tenant,
                   bedient von Graph und EWS, um Tausende Postfächer zu überwachen (Lasttests)
  --smtp-port N    Port des SMTP-Frontends (Standard: ein freier Port); ebenso --imap-port, --admin-port

Benötigt Dovecot (Debian: scripts/dovecot/install.sh, als root).`,
  },
  async run(ctx) {
    const opt = (name: string) => {
      const i = ctx.args.indexOf(name);
      return i >= 0 ? ctx.args[i + 1] : undefined;
    };
    const port = (name: string) => (opt(name) === undefined ? undefined : Number(opt(name)));
    const de = ctx.lang === 'de';
    const synthetic = opt('--synthetic');
    if (synthetic !== undefined && !/^[1-9]\d{0,5}$/.test(synthetic)) throw new MbError('MB_CLI_USAGE', { command: 'sandbox', detail: '--synthetic takes a number of mailboxes from 1 to 999999' });
    const sandbox = await startSandbox({
      dir: opt('--dir'),
      file: opt('--file'),
      ...(synthetic !== undefined ? { synthetic: { mailboxes: Number(synthetic) } } : {}),
      ports: { smtp: port('--smtp-port'), imap: port('--imap-port'), admin: port('--admin-port') },
      log: createLogger({ level: ctx.env.MAILBRIDGE_LOG_LEVEL ?? 'warn' }),
    });
    ctx.out.line(de ? 'Sandbox-Tenant läuft:' : 'Sandbox tenant is running:');
    for (const [name, value] of sandbox.endpoints()) ctx.out.line(`  ${name.padEnd(34)} ${value}`);
    ctx.out.line();
    const tenants = sandbox.directory.data.tenants;
    for (const t of tenants) {
      ctx.out.line(`  ${t.name} (${t.cloud}, ${t.id}): ${t.exchange.mailboxes.map((m) => m.address).join(', ') || '-'}`);
      if (sandbox.synthetic && t === tenants[0]) {
        const n = Number(synthetic);
        ctx.out.line(`    + ${n} ${de ? 'synthetische Postfächer' : 'synthetic mailboxes'}: ${sandbox.synthetic.address(1)} … ${sandbox.synthetic.address(n)}`);
      }
    }
    const rel = relative(process.cwd(), sandbox.configFile) || sandbox.configFile;
    ctx.out.line();
    ctx.out.line(
      de
        ? `Beispielkonfiguration (Geheimnisse verschlüsselt) in ${rel}:`
        : `Example configuration (secrets encrypted) in ${rel}:`,
    );
    // The file holds enc:v1 values only; scrubbing in ctx.out masks anything else.
    ctx.out.line(readFileSync(sandbox.configFile, 'utf8'));
    ctx.out.line(de ? `Ausprobieren: mailbridge --config ${rel} token sandbox` : `Try it: mailbridge --config ${rel} token sandbox`);
    ctx.out.line(de ? 'Beenden mit Strg-C.' : 'Stop with Ctrl-C.');
    const sig = await ctx.stopSignal;
    ctx.out.line(de ? `${sig} empfangen, Sandbox wird beendet.` : `${sig} received, stopping the sandbox.`);
    await sandbox.close();
    return 0;
  },
};
