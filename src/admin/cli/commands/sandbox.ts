import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { MbError } from '../../../errors/index.ts';
import { createLogger } from '../../../log/index.ts';
import { sandboxPointerFile, startSandbox } from '../../../sandbox/index.ts';
import { parsePortArg, PORT_NAMES, type PortMap } from '../../../sandbox/ports.ts';
import type { Command } from '../command.ts';

export const command: Command = {
  name: 'sandbox',
  summary: { en: 'Start the sandbox tenant (Entra ID, Exchange Online, Graph, EWS, Dovecot)', de: 'Sandbox-Tenant starten (Entra ID, Exchange Online, Graph, EWS, Dovecot)' },
  help: {
    en: `Usage: mailbridge sandbox [--dir DIR] [--file sandbox.yaml] [--synthetic N] [--port NAME=N …] [--smtp-port N] [--imap-port N] [--admin-port N]

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
  --port NAME=N    pin one port (0: any free one); repeatable. Names: ${PORT_NAMES.join(', ')}
  --smtp-port N    the same as --port smtp=N; likewise --imap-port, --admin-port, --graph-port,
                   --ews-port, --entra-port
  --proxy          also an HTTP CONNECT proxy that counts tunnels per destination, to try server.proxy

Every port is kept in DIR/ports.yaml and reused at the next start, so a restart keeps its
addresses; the example DIR/mailbridge.yaml is written once and then left as you edit it.
\`mailbridge sandbox-admin\` finds this sandbox from any folder (the last one started).

Needs Dovecot (Debian: scripts/dovecot/install.sh, as root).`,
    de: `Aufruf: mailbridge sandbox [--dir VERZ] [--file sandbox.yaml] [--synthetic N] [--port NAME=N …] [--smtp-port N] [--imap-port N] [--admin-port N]

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
  --port NAME=N    einen Port festlegen (0: irgendein freier); mehrfach möglich. Namen: ${PORT_NAMES.join(', ')}
  --smtp-port N    dasselbe wie --port smtp=N; ebenso --imap-port, --admin-port, --graph-port,
                   --ews-port, --entra-port
  --proxy          zusätzlich ein HTTP-CONNECT-Proxy, der Tunnel je Ziel zählt, um server.proxy zu erproben

Alle Ports stehen in VERZ/ports.yaml und werden beim nächsten Start wieder verwendet, ein Neustart
behält also seine Adressen; die Beispieldatei VERZ/mailbridge.yaml wird einmal geschrieben und
danach so gelassen, wie Sie sie bearbeiten. \`mailbridge sandbox-admin\` findet diese Sandbox aus
jedem Ordner (die zuletzt gestartete).

Benötigt Dovecot (Debian: scripts/dovecot/install.sh, als root).`,
  },
  async run(ctx) {
    const opt = (name: string) => {
      const i = ctx.args.indexOf(name);
      return i >= 0 ? ctx.args[i + 1] : undefined;
    };
    const de = ctx.lang === 'de';
    const ports: PortMap = {};
    const legacy: Record<string, keyof PortMap> = {
      '--smtp-port': 'smtp',
      '--imap-port': 'imap',
      '--admin-port': 'admin',
      '--graph-port': 'graph',
      '--ews-port': 'ews',
      '--entra-port': 'entra',
    };
    for (let i = 0; i < ctx.args.length; i++) {
      const a = ctx.args[i]!;
      const value = ctx.args[i + 1];
      if (a === '--port') {
        const parsed = value === undefined ? undefined : parsePortArg(value);
        if (!parsed) throw new MbError('MB_CLI_USAGE', { command: 'sandbox', detail: `--port takes NAME=N with NAME one of ${PORT_NAMES.join(', ')} and N from 0 to 65535` });
        ports[parsed[0]] = parsed[1];
      } else if (legacy[a]) {
        if (value === undefined || !/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new MbError('MB_CLI_USAGE', { command: 'sandbox', detail: `${a} takes a port from 0 to 65535` });
        ports[legacy[a]] = Number(value);
      }
    }
    const synthetic = opt('--synthetic');
    if (synthetic !== undefined && !/^[1-9]\d{0,5}$/.test(synthetic)) throw new MbError('MB_CLI_USAGE', { command: 'sandbox', detail: '--synthetic takes a number of mailboxes from 1 to 999999' });
    const sandbox = await startSandbox({
      dir: opt('--dir'),
      file: opt('--file'),
      ...(synthetic !== undefined ? { synthetic: { mailboxes: Number(synthetic) } } : {}),
      ports,
      pointerFile: sandboxPointerFile(ctx.env),
      ...(ctx.args.includes('--proxy') ? { proxy: true } : {}),
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
      sandbox.configWritten
        ? de
          ? `Beispielkonfiguration (Geheimnisse verschlüsselt) in ${rel}:`
          : `Example configuration (secrets encrypted) in ${rel}:`
        : de
          ? `Konfiguration aus einem früheren Start, mit Ihren Änderungen (löschen Sie ${rel} für eine neue Beispieldatei):`
          : `Configuration kept from an earlier start, with your edits (delete ${rel} for a fresh example):`,
    );
    // The file holds enc:v1 values only; scrubbing in ctx.out masks anything else.
    ctx.out.line(readFileSync(sandbox.configFile, 'utf8'));
    const relKey = relative(process.cwd(), sandbox.apiKeyFile) || sandbox.apiKeyFile;
    ctx.out.line(de ? `Ausprobieren: mailbridge --config ${rel} token sandbox` : `Try it: mailbridge --config ${rel} token sandbox`);
    ctx.out.line(
      de
        ? `  Relay und Benachrichtigungen: mailbridge --config ${rel} serve   (Relay auf 127.0.0.1:${sandbox.ports.relay})`
        : `  Relay and notifications: mailbridge --config ${rel} serve   (relay on 127.0.0.1:${sandbox.ports.relay})`,
    );
    ctx.out.line(de ? `  Postfach abholen: mailbridge --config ${rel} fetch sandbox-scans --once` : `  Fetch a mailbox: mailbridge --config ${rel} fetch sandbox-scans --once`);
    ctx.out.line(de ? `  API-Schlüssel der Abonnement-API: ${relKey}` : `  Subscriptions API key: ${relKey}`);
    ctx.out.line(de ? 'Beenden mit Strg-C.' : 'Stop with Ctrl-C.');
    const sig = await ctx.stopSignal;
    ctx.out.line(de ? `${sig} empfangen, Sandbox wird beendet.` : `${sig} received, stopping the sandbox.`);
    await sandbox.close();
    return 0;
  },
};
