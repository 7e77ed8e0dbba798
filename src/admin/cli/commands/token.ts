/**
 * `mailbridge token <connection>`: acquire a token the way the gateway would and show what an admin
 * needs to judge it (cloud, tenant, app, roles or scopes, expiry, endpoint) — never the token.
 * Exit code 1 when the token has problems (no roles, wrong audience, missing scopes).
 */
import { openApp } from '../../../app/open.ts';
import type { Config } from '../../../app/schema.ts';
import { renderText } from '../../../errors/index.ts';
import type { Identity, Resource } from '../../../identity/index.ts';
import type { Store } from '../../../store/index.ts';
import { defineCommand, type CommandContext } from '../command.ts';
import { usageError } from '../args.ts';

export interface OpenedIdentity {
  config: Config;
  keyFile: string;
  identity: Identity;
  store: Store;
  close(): Promise<void>;
}

/** Config, SecretBox, store and Identity for a command (also used by `signin`). */
export async function openIdentity(ctx: CommandContext): Promise<OpenedIdentity> {
  const app = await openApp(ctx);
  try {
    return { config: app.config, keyFile: app.keyFile, identity: await app.identity(), store: await app.store(), close: () => app.close() };
  } catch (err) {
    await app.close();
    throw err;
  }
}

/** The one connection name a command takes (token, signin). */
export function oneConnection(ctx: CommandContext, command: string): string {
  if (ctx.args.length !== 1) throw usageError(command, ctx.lang, { en: 'Name exactly one connection', de: 'Genau eine Verbindung angeben' });
  return ctx.args[0]!;
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
    flow: 'Anmeldeverfahren',
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

export const command = defineCommand({
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

{options}

Exit code 0: token obtained and usable; 1: failed, or issued with problems (e.g. no roles,
because admin consent is missing); 2: wrong command line.`,
    de: `Aufruf: mailbridge token <verbindung> [--resource exchange|graph] [--account UPN] [--json]

Fragt Entra ID genau wie das Gateway nach einem Zugriffstoken (gleiche Anmeldeinformation,
gleicher Proxy, gleiche CA, gleicher Token-Endpunkt) und zeigt Cloud, Mandant, App, die Rollen
(App-Zugriff) bzw. Scopes (delegiert) im Token, die Gültigkeit und den verwendeten Endpunkt.
Das Token selbst wird nie ausgegeben.

{options}

Exit-Code 0: Token erhalten und verwendbar; 1: fehlgeschlagen oder mit Problemen ausgestellt
(z. B. ohne Rollen, weil die Administratorzustimmung fehlt); 2: falscher Aufruf.`,
  },
  options: {
    resource: {
      type: 'string',
      value: 'R',
      choices: ['exchange', 'graph'],
      help: { en: 'exchange (IMAP, SMTP, EWS; default) or graph', de: 'exchange (IMAP, SMTP, EWS; Standard) oder graph' },
    },
    account: {
      type: 'string',
      value: 'UPN',
      help: { en: 'delegated connections: the signed-in account to use', de: 'delegierte Verbindungen: das zu verwendende angemeldete Konto' },
    },
    json: { type: 'boolean', help: { en: 'machine-readable output', de: 'maschinenlesbare Ausgabe' } },
  },
  async run(ctx) {
    const resource = ctx.opts.resource ?? 'exchange';
    const account = ctx.opts.account;
    const asJson = ctx.opts.json;
    const name = oneConnection(ctx, 'token');
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
});
