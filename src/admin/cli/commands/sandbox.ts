import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { createLogger } from '../../../log/index.ts';
import { sandboxPointerFile, startSandbox } from '../../../sandbox/index.ts';
import { parsePortArg, PORT_NAMES, type PortMap } from '../../../sandbox/ports.ts';
import { defineCommand } from '../command.ts';
import { noMoreArgs, usageError } from '../args.ts';
import texts from './sandbox.texts.json' with { type: 'json' };

export const command = defineCommand({
  name: 'sandbox',
  summary: { en: 'Start the sandbox tenant (Entra ID, Exchange Online, Graph, EWS, Dovecot)', de: 'Sandbox-Mandanten starten (Entra ID, Exchange Online, Graph, EWS, Dovecot)' },
  help: {
    en: `Usage: mailbridge sandbox [--dir DIR] [--file sandbox.yaml] [--synthetic N] [--port NAME=N …] [--smtp-port N] [--imap-port N] [--admin-port N]

Starts an emulated Microsoft 365 tenant on this machine: Entra ID for every national cloud, Exchange
Online's SMTP (STARTTLS, AUTH XOAUTH2) and IMAP (TLS, XOAUTH2) with Microsoft's authorization rules
and replies, the Microsoft Graph mail API (sendMail, delta, change notifications), an on-premises
Exchange Server's EWS (streaming and push notifications, autodiscover), a private Dovecot that stores
the mail, and an admin API to change permissions at run time (mailbridge sandbox-admin). Prints the endpoints and writes a mailbridge.yaml that works against
them. Stops everything it started on Ctrl-C.

{options}

Every port is kept in DIR/ports.yaml and reused at the next start, so a restart keeps its
addresses; the example DIR/mailbridge.yaml is written once and then left as you edit it.
\`mailbridge sandbox-admin\` finds this sandbox from any folder (the last one started).

Needs Dovecot (Debian: scripts/dovecot/install.sh, as root).`,
    de: `Aufruf: mailbridge sandbox [--dir VERZ] [--file sandbox.yaml] [--synthetic N] [--port NAME=N …] [--smtp-port N] [--imap-port N] [--admin-port N]

Startet einen nachgebildeten Microsoft-365-Mandanten auf diesem Rechner: Entra ID für jede nationale
Cloud, SMTP (STARTTLS, AUTH XOAUTH2) und IMAP (TLS, XOAUTH2) von Exchange Online mit den
Berechtigungsregeln und Antworten von Microsoft, die Mail-API von Microsoft Graph (sendMail, Delta,
Änderungsbenachrichtigungen), EWS eines lokalen Exchange Servers (Streaming- und Push-Benachrichtigungen,
Autodiscover), ein eigenes Dovecot, das die Mails speichert, und eine Admin-API, um Berechtigungen zur Laufzeit zu ändern (mailbridge sandbox-admin). Gibt die
Endpunkte aus und schreibt eine dazu passende mailbridge.yaml. Beendet mit Strg-C alles, was es
gestartet hat.

{options}

Alle Ports stehen in VERZ/ports.yaml und werden beim nächsten Start wieder verwendet, ein Neustart
behält also seine Adressen; die Beispieldatei VERZ/mailbridge.yaml wird einmal geschrieben und
danach so gelassen, wie Sie sie bearbeiten. \`mailbridge sandbox-admin\` findet diese Sandbox aus
jedem Ordner (die zuletzt gestartete).

Benötigt Dovecot (Debian: scripts/dovecot/install.sh, als root).`,
  },
  options: {
    dir: { type: 'string', value: texts.values.dir, help: texts.options.dir },
    file: { type: 'string', value: texts.values.file, help: texts.options.file },
    synthetic: { type: 'integer', value: 'N', min: 1, max: 999_999, help: texts.options.synthetic },
    port: {
      type: 'string',
      value: 'NAME=N',
      multiple: true,
      // The only option help not in sandbox.texts.json: it lists the port names the code knows.
      help: {
        en: `pin one port (0: any free one); repeatable. Names: ${PORT_NAMES.join(', ')}`,
        de: `einen Port festlegen (0: irgendein freier); mehrfach möglich. Namen: ${PORT_NAMES.join(', ')}`,
      },
    },
    proxy: { type: 'boolean', help: texts.options.proxy },
    'smtp-port': { type: 'integer', value: 'N', min: 0, max: 65535, help: texts.options['smtp-port'] },
    'imap-port': { type: 'integer', value: 'N', min: 0, max: 65535, help: texts.options['imap-port'] },
    'admin-port': { type: 'integer', value: 'N', min: 0, max: 65535, help: texts.options['admin-port'] },
    'graph-port': { type: 'integer', value: 'N', min: 0, max: 65535, help: texts.options['graph-port'] },
    'ews-port': { type: 'integer', value: 'N', min: 0, max: 65535, help: texts.options['ews-port'] },
    'entra-port': { type: 'integer', value: 'N', min: 0, max: 65535, help: texts.options['entra-port'] },
  },
  async run(ctx) {
    const o = ctx.opts;
    const de = ctx.lang === 'de';
    noMoreArgs('sandbox', ctx.lang, ctx.args);
    const ports: PortMap = {};
    for (const value of o.port) {
      const parsed = parsePortArg(value);
      if (!parsed) {
        throw usageError('sandbox', ctx.lang, { en: '--port {v}: NAME=N with NAME one of {names} and N from 0 to 65535', de: '--port {v}: NAME=N mit NAME aus {names} und N von 0 bis 65535' }, { v: value, names: PORT_NAMES.join(', ') });
      }
      ports[parsed[0]] = parsed[1];
    }
    const single = { smtp: o['smtp-port'], imap: o['imap-port'], admin: o['admin-port'], graph: o['graph-port'], ews: o['ews-port'], entra: o['entra-port'] } as const;
    for (const [name, port] of Object.entries(single)) if (port !== undefined) ports[name as keyof PortMap] = port;
    const synthetic = o.synthetic;
    const sandbox = await startSandbox({
      dir: o.dir,
      file: o.file,
      ...(synthetic !== undefined ? { synthetic: { mailboxes: synthetic } } : {}),
      ports,
      pointerFile: sandboxPointerFile(ctx.env),
      ...(o.proxy ? { proxy: true } : {}),
      log: createLogger({ level: ctx.env.MAILBRIDGE_LOG_LEVEL ?? 'warn' }),
    });
    ctx.out.line(de ? 'Sandbox-Mandant läuft:' : 'Sandbox tenant is running:');
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
});
