/**
 * `mailbridge token <connection>`: acquire a token the way the gateway would and show what an admin
 * needs to judge it (cloud, tenant, app, roles or scopes, expiry, endpoint) — never the token.
 * Exit code 1 when the token has problems (no roles, wrong audience, missing scopes).
 */
import { loadConfig } from '../../../config/index.ts';
import { openSecretBox } from '../../../config/secrets.ts';
import { MbError, renderText } from '../../../errors/index.ts';
import { createIdentity, type Identity, type Resource } from '../../../identity/index.ts';
import { createLogger } from '../../../log/index.ts';
import { openStore, type Store } from '../../../store/index.ts';
import type { Config } from '../../../config/schema.ts';
import type { Command, CommandContext } from '../command.ts';

export interface OpenedIdentity {
  config: Config;
  keyFile: string;
  identity: Identity;
  store: Store;
  close(): Promise<void>;
}

/** Config, SecretBox, store and Identity for a command (also used by `signin`). */
export async function openIdentity(ctx: CommandContext): Promise<OpenedIdentity> {
  const { config, keyFile } = await loadConfig(ctx.configPath, ctx.env, { lang: ctx.lang });
  const log = createLogger({ level: ctx.env.MAILBRIDGE_LOG_LEVEL ?? 'warn' });
  const secretBox = await openSecretBox({ keyFile, env: ctx.env });
  const store = await openStore(config.store);
  const identity = createIdentity({ config, kv: store.kv, secretBox, log, env: ctx.env });
  return {
    config,
    keyFile,
    identity,
    store,
    async close() {
      await identity.close();
      await store.close();
    },
  };
}

export function takeOption(ctx: CommandContext, args: string[], name: string, command: string): string | undefined {
  const i = args.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  const a = args[i]!;
  const value = a.includes('=') ? a.slice(a.indexOf('=') + 1) : args[i + 1];
  if (value === undefined || value.startsWith('--')) {
    throw new MbError('MB_CLI_USAGE', { detail: ctx.lang === 'de' ? `${name} braucht einen Wert` : `${name} needs a value`, command });
  }
  args.splice(i, a.includes('=') ? 1 : 2);
  return value;
}

export function takeFlag(args: string[], name: string): boolean {
  const i = args.indexOf(name);
  if (i < 0) return false;
  args.splice(i, 1);
  return true;
}

export function oneConnection(ctx: CommandContext, args: string[], command: string): string {
  const unknown = args.find((a) => a.startsWith('-'));
  if (unknown) throw new MbError('MB_CLI_USAGE', { detail: ctx.lang === 'de' ? `Unbekannte Option: ${unknown}` : `Unknown option: ${unknown}`, command });
  if (args.length !== 1) {
    throw new MbError('MB_CLI_USAGE', { detail: ctx.lang === 'de' ? 'Genau eine Verbindung angeben' : 'Name exactly one connection', command });
  }
  return args[0]!;
}

const LABELS = {
  en: {
    connection: 'Connection',
    flow: 'Flow',
    cloud: 'Cloud',
    tenant: 'Tenant',
    app: 'App',
    credential: 'Credential',
    account: 'Account',
    resource: 'Resource',
    audience: 'Audience',
    roles: 'Roles',
    scopes: 'Scopes',
    none: '(none)',
    expires: 'Expires',
    inMinutes: 'in {n} min',
    endpoint: 'Endpoint',
    proxy: 'Proxy',
    ca: 'Extra CA',
    source: 'Token from',
    sources: {
      memory: 'memory cache (this process)',
      persistent: 'persistent cache (sealed in the store)',
      refresh: 'refreshed with the stored sign-in',
      requested: 'requested from Entra ID',
    },
    ok: 'Token obtained; it looks usable.',
    problems: 'The token was issued, but will not work:',
    warnings: 'Act on these before they fail:',
  },
  de: {
    connection: 'Verbindung',
    flow: 'Ablauf',
    cloud: 'Cloud',
    tenant: 'Mandant',
    app: 'App',
    credential: 'Anmeldeinfo',
    account: 'Konto',
    resource: 'Ressource',
    audience: 'Zielgruppe',
    roles: 'Rollen',
    scopes: 'Scopes',
    none: '(keine)',
    expires: 'Gültig bis',
    inMinutes: 'in {n} Min.',
    endpoint: 'Endpunkt',
    proxy: 'Proxy',
    ca: 'Zusätzliche CA',
    source: 'Token aus',
    sources: {
      memory: 'Speicher-Cache (dieser Prozess)',
      persistent: 'dauerhaftem Cache (verschlüsselt in der Datenbank)',
      refresh: 'Erneuerung mit der gespeicherten Anmeldung',
      requested: 'neuer Anfrage bei Entra ID',
    },
    ok: 'Token erhalten; es scheint verwendbar.',
    problems: 'Das Token wurde ausgestellt, wird aber nicht funktionieren:',
    warnings: 'Bitte vor dem Ausfall handeln:',
  },
} as const;

export const command: Command = {
  name: 'token',
  summary: {
    en: 'Get a token for a connection and show what it grants (never the token)',
    de: 'Token für eine Verbindung holen und zeigen, was es erlaubt (nie das Token)',
  },
  help: {
    en: `Usage: mailbridge token <connection> [--resource exchange|graph] [--account UPN] [--json]

Asks Entra ID for an access token exactly as the gateway would (same credential, proxy, CA,
token endpoint) and prints cloud, tenant, app, the roles (app-only) or scopes (delegated) in
the token, its expiry and the endpoint used. The token itself is never printed.

Options:
  --resource R   exchange (IMAP, SMTP, EWS; default) or graph
  --account UPN  delegated connections: the signed-in account to use
  --json         machine-readable output

Exit code 0: token obtained and usable; 1: failed, or issued with problems (e.g. no roles,
because admin consent is missing); 2: wrong command line.`,
    de: `Aufruf: mailbridge token <verbindung> [--resource exchange|graph] [--account UPN] [--json]

Fragt Entra ID genau wie das Gateway nach einem Zugriffstoken (gleiche Anmeldeinformation,
gleicher Proxy, gleiche CA, gleicher Token-Endpunkt) und zeigt Cloud, Mandant, App, die Rollen
(App-Zugriff) bzw. Scopes (delegiert) im Token, die Gültigkeit und den verwendeten Endpunkt.
Das Token selbst wird nie ausgegeben.

Optionen:
  --resource R   exchange (IMAP, SMTP, EWS; Standard) oder graph
  --account UPN  delegierte Verbindungen: das zu verwendende angemeldete Konto
  --json         maschinenlesbare Ausgabe

Exit-Code 0: Token erhalten und verwendbar; 1: fehlgeschlagen oder mit Problemen ausgestellt
(z. B. ohne Rollen, weil die Administratorzustimmung fehlt); 2: falscher Aufruf.`,
  },
  async run(ctx) {
    const args = [...ctx.args];
    const resource = takeOption(ctx, args, '--resource', 'token') ?? 'exchange';
    if (resource !== 'exchange' && resource !== 'graph') {
      throw new MbError('MB_CLI_USAGE', { detail: `--resource ${resource}: exchange | graph`, command: 'token' });
    }
    const account = takeOption(ctx, args, '--account', 'token');
    const asJson = takeFlag(args, '--json');
    const name = oneConnection(ctx, args, 'token');
    const opened = await openIdentity(ctx);
    try {
      const d = await opened.identity.describe(name, { resource: resource as Resource, account, lang: ctx.lang });
      const lang = ctx.lang;
      if (asJson) {
        ctx.out.json({ ...d, warnings: d.warnings.map((w) => w.explain(lang)), problems: d.problems.map((p) => p.explain(lang)) });
        return d.problems.length ? 1 : 0;
      }
      const L = LABELS[lang];
      const minutes = Math.max(0, Math.round((Date.parse(d.expiresOn) - Date.now()) / 60_000));
      const rows: Array<[string, string | undefined]> = [
        [L.connection, d.connection],
        [L.flow, d.flow],
        [L.cloud, d.cloud],
        [L.tenant, d.tenantId],
        [L.app, d.appName ? `${d.clientId} (${d.appName})` : d.clientId],
        [L.credential, d.credential],
        [L.account, d.account],
        [L.resource, d.resource],
        [L.audience, d.audience],
        d.roles ? [L.roles, d.roles.length ? d.roles.join(', ') : L.none] : [L.scopes, d.scopes?.length ? d.scopes.join(' ') : L.none],
        [L.expires, `${d.expiresOn} (${L.inMinutes.replace('{n}', String(minutes))})`],
        [L.endpoint, d.endpoint],
        [L.proxy, d.proxy],
        [L.ca, d.caFile],
        [L.source, L.sources[d.source]],
      ];
      const width = Math.max(...rows.map(([k]) => k.length)) + 2;
      for (const [k, v] of rows) if (v !== undefined) ctx.out.line(`${k.padEnd(width)}${v}`);
      if (d.warnings.length) {
        ctx.out.line();
        ctx.out.line(L.warnings);
        for (const w of d.warnings) ctx.out.line(renderText(w.explain(lang), lang));
      }
      ctx.out.line();
      if (d.problems.length) {
        ctx.out.line(L.problems);
        for (const p of d.problems) ctx.out.line(renderText(p.explain(lang), lang));
        return 1;
      }
      ctx.out.line(L.ok);
      return 0;
    } finally {
      await opened.close();
    }
  },
};
