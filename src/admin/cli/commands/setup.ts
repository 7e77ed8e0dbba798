/**
 * `mailbridge setup [connection] [--check | --dry-run] [--secret]`: creates or checks the app
 * registration each connection needs (src/setup/), after an admin signs in with a device code, and
 * writes the Exchange PowerShell script beside mailbridge.yaml.
 *
 * The admin signs in with Microsoft's public "Microsoft Graph Command Line Tools" client (the one
 * Connect-MgGraph uses), which exists in every tenant, so nothing has to be registered first; the
 * sign-in lives in this process only: an admin's token is never stored.
 */
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { loadConfig, storeSettings, type Config } from '../../../app/config.ts';
import type { ConnectionConfig } from '../../../identity/config.ts';
import { openSecretBox } from '../../../config/secrets.ts';
import { MbError } from '../../../errors/index.ts';
import { tr } from '../../../i18n/index.ts';
import { setupWillCreate, type SetupMode, type SetupResult } from '../../../setup/index.ts';
import { adminSessionKey, GRAPH_CLI_TOOLS, setupWithAdmin, signInAdmin, type AdminSession } from '../../../setup/admin.ts';
import { onPremisesScript } from '../../../setup/exchange-script.ts';
import { appRequirements, onPremisesRequirements } from '../../../setup/requirements.ts';
import { defineCommand, type CommandContext } from '../command.ts';
import { usageError } from '../args.ts';


export const command = defineCommand({
  name: 'setup',
  summary: {
    en: 'Create or check the app registration in Entra ID; write the Exchange PowerShell script',
    de: 'App-Registrierung in Entra ID anlegen oder prüfen; Exchange-PowerShell-Skript schreiben',
  },
  help: {
    en: `Usage: mailbridge setup [<connection>] [--check | --dry-run] [--secret]

Works out what the relay routes, connectors and watchers using a connection need from Entra ID
(API permissions, admin consent, redirect URI, public client flows, a credential) and Exchange
(the app as service principal, FullAccess, SendAs, SMTP AUTH per mailbox), then:

  (default)   signs you in (device code; as Global Administrator, or Application Administrator
              plus Privileged Role Administrator for Microsoft Graph permissions), creates the
              app registration when clientId is "new" (or fixes the one clientId names), its
              enterprise application, permissions and admin consent, and a certificate (the
              private key stays on this machine, in <connection>-app.key beside mailbridge.yaml;
              --secret: a client secret instead), stores clientId and the credential sealed in
              mailbridge.yaml, and writes exchange-<connection>.ps1 for Exchange Online
              PowerShell. Running it again changes nothing that is in place.
  --dry-run   the same reads; prints every request it would make, changes nothing.
  --check     prints exactly what is missing; exit status 1 when something is.

Without <connection>: every connection the configuration uses, and for EWS watch groups whose
listeners are service accounts of an Exchange Server on premises, exchange-onprem.ps1 for the
Exchange Management Shell (ApplicationImpersonation scoped to the watched mailboxes, or FullAccess
with ews.impersonation: false).
New permissions can take up to 30 minutes before Microsoft's tokens carry them.

{options}`,
    de: `Aufruf: mailbridge setup [<verbindung>] [--check | --dry-run] [--secret]

Ermittelt, was die Relay-Routen, Konnektoren und Überwachungen einer Verbindung von Entra ID
(API-Berechtigungen, Administratorzustimmung, Umleitungs-URI, öffentliche Clientflows, ein
Berechtigungsnachweis) und von Exchange brauchen (die App als Dienstprinzipal, Vollzugriff,
Senden als, SMTP AUTH je Postfach), und dann:

  (Standard)  meldet Sie an (Gerätecode; als Globaler Administrator, oder als
              Anwendungsadministrator plus Administrator für privilegierte Rollen für
              Microsoft-Graph-Berechtigungen), legt die App-Registrierung an, wenn clientId
              "new" ist (oder ergänzt die, die clientId nennt), dazu Unternehmensanwendung,
              Berechtigungen, Administratorzustimmung und ein Zertifikat (der private Schlüssel
              bleibt auf diesem Rechner, in <verbindung>-app.key neben mailbridge.yaml; --secret:
              stattdessen ein geheimer Clientschlüssel), speichert clientId und den Nachweis
              versiegelt in mailbridge.yaml und schreibt exchange-<verbindung>.ps1 für Exchange
              Online PowerShell. Ein zweiter Lauf ändert nichts, was schon da ist.
  --dry-run   dieselben Abfragen; zeigt jede Anfrage, die es stellen würde, ändert nichts.
  --check     zeigt genau, was fehlt; Exit-Status 1, wenn etwas fehlt.

Ohne <verbindung>: jede Verbindung, die die Konfiguration nutzt, und für EWS-Überwachungsgruppen,
deren Listener Dienstkonten eines lokalen Exchange Servers sind, exchange-onprem.ps1 für die
Exchange-Verwaltungsshell (ApplicationImpersonation auf die überwachten Postfächer beschränkt, oder
Vollzugriff bei ews.impersonation: false).
Neue Berechtigungen können bis zu 30 Minuten brauchen, bis Microsofts Token sie enthalten.

{options}`,
  },
  options: {
    check: { type: 'boolean', help: { en: 'Only report what is missing.', de: 'Nur melden, was fehlt.' } },
    'dry-run': { type: 'boolean', help: { en: 'Print the requests setup would make; change nothing.', de: 'Die Anfragen zeigen, die setup stellen würde; nichts ändern.' } },
    secret: { type: 'boolean', help: { en: 'Create a client secret instead of a certificate.', de: 'Einen geheimen Clientschlüssel statt eines Zertifikats anlegen.' } },
    'valid-months': {
      type: 'integer',
      value: { en: 'MONTHS', de: 'MONATE' },
      min: 1,
      max: 24,
      help: { en: 'Lifetime of a new certificate or secret (default 12).', de: 'Laufzeit eines neuen Zertifikats oder Schlüssels (Standard 12).' },
    },
    name: { type: 'string', value: 'NAME', help: { en: 'Display name of a new app (default "mailbridge <connection>").', de: 'Anzeigename einer neuen App (Standard "mailbridge <verbindung>").' } },
    'graph-url': { type: 'string', value: 'URL', help: { en: 'Microsoft Graph to talk to (default: the cloud\'s, or a Graph URL the connection\'s settings name).', de: 'Zu verwendendes Microsoft Graph (Standard: das der Cloud oder eine Graph-URL aus den Einstellungen der Verbindung).' } },
    'admin-client-id': {
      type: 'string',
      value: 'ID',
      help: {
        en: `Public client the admin signs in with (default ${GRAPH_CLI_TOOLS},\nMicrosoft Graph Command Line Tools).`,
        de: `Öffentlicher Client für die Anmeldung des Administrators (Standard ${GRAPH_CLI_TOOLS},\nMicrosoft Graph Command Line Tools).`,
      },
    },
  },
  async run(ctx) {
    if (ctx.args.length > 1) throw usageError('setup', ctx.lang, { en: 'Name at most one connection', de: 'Höchstens eine Verbindung angeben' });
    if (ctx.opts.check && ctx.opts['dry-run']) throw usageError('setup', ctx.lang, { en: '--check and --dry-run exclude each other', de: '--check und --dry-run schließen einander aus' });
    const mode: SetupMode = ctx.opts.check ? 'check' : ctx.opts['dry-run'] ? 'dry-run' : 'apply';
    const loaded = await loadConfig(ctx.configPath, ctx.env, { lang: ctx.lang, relax: setupWillCreate });
    const names = ctx.args.length ? [ctx.args[0] as string] : appRequirements(loaded.config).filter((r) => r.usedBy.length > 0).map((r) => r.connection);
    const onPremises = ctx.args.length ? [] : onPremisesRequirements(loaded.config);
    if (names.length === 0 && onPremises.length === 0) {
      ctx.out.line(ctx.lang === 'de' ? 'Keine Verbindung wird genutzt: nichts einzurichten.' : 'No connection is in use: nothing to set up.');
      return 0;
    }
    let incomplete = false;
    const sessions = new Map<string, AdminSession>();
    try {
      for (const name of names) {
        // Each run reads the file anew: the one before may have written a client ID or credential.
        const { config, keyFile } = await loadConfig(ctx.configPath, ctx.env, { lang: ctx.lang, relax: setupWillCreate });
        const result = await setupOne(ctx, config, keyFile, name, mode, sessions);
        incomplete ||= result.missing.length > 0;
      }
    } finally {
      for (const s of sessions.values()) await s.identity.close();
    }
    // Exchange Server on premises: its service accounts need rights only its own shell can give.
    if (onPremises.length && mode !== 'check') {
      const file = join(dirname(resolve(ctx.configPath)), 'exchange-onprem.ps1');
      const de = ctx.lang === 'de';
      if (mode === 'apply') {
        await writeFile(file, onPremisesScript(onPremises, ctx.lang, new Date()), { mode: 0o644 });
        ctx.out.line(de ? `Skript für Exchange Server (lokal, Exchange-Verwaltungsshell): ${file}` : `Script for Exchange Server (on premises, Exchange Management Shell): ${file}`);
      } else ctx.out.line(de ? `Würde das Skript für Exchange Server (lokal) schreiben: ${file}` : `Would write the script for Exchange Server (on premises): ${file}`);
    }
    return mode === 'check' && incomplete ? 1 : 0;
  },
});

async function adminSession(ctx: CommandContext, config: Config, keyFile: string, conn: ConnectionConfig, sessions: Map<string, AdminSession>): Promise<AdminSession> {
  const de = ctx.lang === 'de';
  const clientId = (ctx.opts['admin-client-id'] as string | undefined) ?? GRAPH_CLI_TOOLS;
  const key = adminSessionKey(conn, clientId);
  const known = sessions.get(key);
  if (known) return known;
  ctx.out.line(de ? `Anmeldung eines Administrators von Mandant ${conn.tenantId} …` : `Sign-in of an administrator of tenant ${conn.tenantId} …`);
  const session = await signInAdmin({
    config,
    conn,
    secretBox: await openSecretBox({ keyFile, env: ctx.env }),
    env: ctx.env,
    log: ctx.log,
    clientId,
    onCode: (info) => {
      ctx.out.line(info.message);
      ctx.out.line(
        de
          ? `Öffnen Sie ${info.verificationUri}, geben Sie den Code ${info.userCode} ein und melden Sie sich als Administrator des Mandanten an (gültig ${Math.round(info.expiresIn / 60)} Minuten).`
          : `Open ${info.verificationUri}, enter the code ${info.userCode} and sign in as an administrator of the tenant (valid for ${Math.round(info.expiresIn / 60)} minutes).`,
      );
    },
  });
  ctx.out.line(de ? `Angemeldet: ${session.account}` : `Signed in: ${session.account}`);
  sessions.set(key, session);
  return session;
}

async function setupOne(ctx: CommandContext, config: Config, keyFile: string, name: string, mode: SetupMode, sessions: Map<string, AdminSession>): Promise<SetupResult> {
  const de = ctx.lang === 'de';
  const conn = config.connections[name];
  if (!conn) throw new MbError('MB_IDENTITY_UNKNOWN_CONNECTION', { connection: name, known: Object.keys(config.connections).join(', ') || '—' });
  ctx.out.line(de ? `Verbindung ${name}:` : `Connection ${name}:`);
  const session = await adminSession(ctx, config, keyFile, conn, sessions);
  const result = await setupWithAdmin({
    config,
    configPath: ctx.configPath,
    connection: name,
    mode,
    session,
    env: ctx.env,
    ...(ctx.opts['graph-url'] !== undefined ? { graphUrl: ctx.opts['graph-url'] as string } : {}),
    ...(ctx.opts.secret ? { credential: 'secret' as const } : {}),
    ...(ctx.opts['valid-months'] !== undefined ? { validMonths: ctx.opts['valid-months'] as number } : {}),
    ...(ctx.opts.name !== undefined ? { displayName: ctx.opts.name as string } : {}),
    secretBox: await openSecretBox({ keyFile, env: ctx.env }),
    lang: ctx.lang,
    onRead: (path) => {
      if (mode === 'dry-run') ctx.out.line(`  ${de ? 'gelesen' : 'read'}: GET ${path}`);
    },
    onWrite: (w) => {
      const verb = w.sent ? (de ? 'erledigt' : 'done') : mode === 'dry-run' ? (de ? 'würde' : 'would') : de ? 'fehlt' : 'missing';
      ctx.out.line(`  ${verb}: ${w.method} ${w.path}  – ${tr(w.why, ctx.lang)}`);
      if (mode === 'dry-run') ctx.out.line(`        ${abbreviate(JSON.stringify(w.body))}`);
    },
    storeSettings: async (entries) => {
      await storeSettings(ctx.configPath, entries, ctx.env);
    },
  });
  report(ctx, result, mode);
  if (result.script !== undefined) {
    const file = join(dirname(resolve(ctx.configPath)), `exchange-${name}.ps1`);
    if (mode === 'apply') {
      await writeFile(file, result.script, { mode: 0o644 });
      ctx.out.line(de ? `Exchange-Skript: ${file}` : `Exchange script: ${file}`);
      ctx.out.line(
        de
          ? '  In PowerShell als Exchange-Administrator ausführen (pwsh -File …); es registriert die App in Exchange und erteilt die Postfachrechte.'
          : '  Run it in PowerShell as an Exchange administrator (pwsh -File …); it registers the app in Exchange and grants the mailbox rights.',
      );
    } else ctx.out.line(de ? `Würde das Exchange-Skript schreiben: ${file}` : `Would write the Exchange script: ${file}`);
  }
  // The next step after this (mailbridge check, issue 12 item 3) proves each prerequisite.
  return result;
}

function report(ctx: CommandContext, r: SetupResult, mode: SetupMode): void {
  const de = ctx.lang === 'de';
  const l = (en: string, deText: string) => ctx.out.line(de ? deText : en);
  l(
    `App: ${r.app.displayName} (application (client) ID ${r.app.appId}, enterprise application object ID ${r.app.servicePrincipalId || '—'})${r.app.created ? (mode === 'apply' ? ', created' : ', to be created') : ''}`,
    `App: ${r.app.displayName} (Anwendungs-ID ${r.app.appId}, Objekt-ID der Unternehmensanwendung ${r.app.servicePrincipalId || '—'})${r.app.created ? (mode === 'apply' ? ', angelegt' : ', wird angelegt') : ''}`,
  );
  for (const s of r.settings) l(`  mailbridge.yaml: ${s.path} = ${s.value}`, `  mailbridge.yaml: ${s.path} = ${s.value}`);
  if (r.credential) {
    const kind = r.credential.kind === 'certificate' ? (de ? 'Zertifikat' : 'certificate') : de ? 'geheimer Clientschlüssel' : 'client secret';
    l(`  Credential: ${kind}, valid until ${r.credential.expires}${r.credential.keyFile ? `, private key ${r.credential.keyFile}` : ''}`, `  Nachweis: ${kind}, gültig bis ${r.credential.expires}${r.credential.keyFile ? `, privater Schlüssel ${r.credential.keyFile}` : ''}`);
  }
  if (mode === 'check') {
    if (r.missing.length === 0) l('  Entra ID: nothing missing.', '  Entra ID: nichts fehlt.');
    else {
      l('  Missing:', '  Fehlt:');
      for (const m of r.missing) ctx.out.line(`  - ${tr(m, ctx.lang)}`);
    }
    return;
  }
  for (const m of r.missing) ctx.out.line(`  ${de ? 'Nicht erledigt' : 'Not done'}: ${tr(m, ctx.lang)}`);
  if (r.writes.length === 0) l('  Entra ID: everything in place, nothing changed.', '  Entra ID: alles vorhanden, nichts geändert.');
  else if (mode === 'apply') l('  New permissions can take up to 30 minutes before Microsoft\'s tokens carry them.', '  Neue Berechtigungen können bis zu 30 Minuten brauchen, bis Microsofts Token sie enthalten.');
}

function abbreviate(text: string, max = 300): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
