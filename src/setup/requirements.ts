/**
 * What the configuration asks of Entra ID and Exchange: per connection (one app registration each),
 * the API permissions per resource, redirect URIs, the public-client switch, whether Exchange needs
 * the app as a service principal (New-ServicePrincipal), and per mailbox FullAccess, SendAs and
 * SMTP AUTH. `mailbridge setup` creates or checks exactly this; `mailbridge check` probes it.
 *
 * Rules (../shared/reference/microsoft-facts.md §2, §3.6; docs/microsoft-facts-addendum.md):
 *  - App-only (client-credentials): SMTP AUTH needs the Exchange role SMTP.SendAsApp, IMAP
 *    IMAP.AccessAsApp, EWS full_access_as_app; Graph sendMail Mail.Send, reading Mail.Read, and
 *    marking, moving or deleting Mail.ReadWrite. SMTP and IMAP also need the app registered in
 *    Exchange (New-ServicePrincipal) and FullAccess on each mailbox; EWS impersonates with
 *    full_access_as_app and Graph's application permissions reach every mailbox, so neither needs
 *    a mailbox permission.
 *  - Delegated (auth-code, device-code): the scopes the sign-in asks for (the connection's
 *    `scopes` override or the cloud's defaults, identity/clouds.ts) plus openid, profile and
 *    offline_access, consented for the organization; a mailbox other than the signed-in account
 *    needs FullAccess for that account. Auth code needs its redirect URI registered as a web
 *    redirect; device code needs "Allow public client flows" (isFallbackPublicClient).
 *  - Sending with a From other than the sending mailbox needs SendAs on that address (Exchange
 *    refuses it with SendAsDenied otherwise); the relay's routing decides which mailbox sends what,
 *    so the sending mailboxes come from relay/routing.ts itself, not from a copy of its rules.
 *  - SMTP AUTH must be on for every mailbox that sends over SMTP (Set-CASMailbox).
 *
 * Limits: senders given only as a domain (@contoso.com) without a fixed route mailbox send from
 * whichever mailbox the application names; they cannot be listed and are reported in
 * `openSenders`. On-premises listeners (username/password) need nothing from Entra ID.
 */
import type { Config } from '../app/schema.ts';
import type { ConnectionConfig } from '../identity/config.ts';
import { mailboxesOf, type ConnectorConfig } from '../connector/config.ts';
import { audienceOfScopes, cloudFor, defaultScopes, type Cloud, type Resource } from '../identity/clouds.ts';
import { normalizeAddress } from '../relay/policy.ts';
import { Router, senderDecision, type RouteConfig } from '../relay/routing.ts';
import type { Text } from '../i18n/index.ts';
import { consoleRedirectUri, type Role } from '../api/config.ts';
import { permissionId, RESOURCE_APP_IDS, type PermissionType } from './permissions.ts';

export type { Resource };

export interface PermissionNeed {
  resource: Resource;
  resourceAppId: string;
  /** Permission value as the portal and tokens show it (SMTP.SendAsApp, Mail.Send, …). */
  name: string;
  /** Role: application permission (admin consent = app role assignment); Scope: delegated permission. */
  type: PermissionType;
  /** Its ID on the resource service principal; undefined for a scope mailbridge does not know (a hand-written override). */
  id: string | undefined;
  /** What in the configuration needs it, as keys of USE ("relay route sales", "connector scans", …); shown through usesText. */
  usedBy: string[];
}

export interface MailboxNeed {
  /** Lower-case address. */
  address: string;
  /** Add-MailboxPermission -AccessRights FullAccess for the app's service principal (app-only) or the signed-in account (delegated). */
  fullAccess: boolean;
  /** Add-RecipientPermission -AccessRights SendAs: someone sends with this address as From without logging in as it. */
  sendAs: boolean;
  /** Set-CASMailbox -SmtpClientAuthenticationDisabled $false: the mailbox sends over SMTP AUTH. */
  smtpAuth: boolean;
  usedBy: string[];
}

export interface ConnectionRequirements {
  connection: string;
  cloud: ConnectionConfig['cloud'];
  tenantId: string;
  clientId: string;
  flow: ConnectionConfig['flow'];
  /** auth-code or device-code: permissions are scopes, mailbox rights go to `account`. */
  delegated: boolean;
  account?: string;
  /** Sorted by resource, type, name. */
  permissions: PermissionNeed[];
  redirectUris: { web: string[]; publicClient: string[] };
  /** "Allow public client flows" (isFallbackPublicClient): device code sign-in. */
  publicClient: boolean;
  /** App-only SMTP or IMAP: Exchange must know the app (New-ServicePrincipal with the enterprise application's object ID). */
  exchangeServicePrincipal: boolean;
  /** Sorted by address. */
  mailboxes: MailboxNeed[];
  /** Sender domains (@contoso.com) whose sending mailboxes cannot be listed: each such mailbox needs the rights named here. */
  openSenders: Array<{ pattern: string; usedBy: string; fullAccess: boolean; smtpAuth: boolean }>;
  /** Everything that uses this connection; empty: setup has nothing to ask for it. */
  usedBy: string[];
  /**
   * The connection of api.signin.entra: admins sign in to the console through its app, which
   * defines the app roles reader, operator and admin (allowedMemberTypes User) whose assignment
   * decides what each person may do.
   */
  consoleRoles: boolean;
}

/** The app roles the console reads from the id token's `roles` claim (src/api/login.ts). */
export const CONSOLE_APP_ROLES: ReadonlyArray<{ value: Role; displayName: string; description: string }> = [
  { value: 'reader', displayName: 'mailbridge reader', description: 'Sees everything in the mailbridge console and admin API, changes nothing' },
  { value: 'operator', displayName: 'mailbridge operator', description: 'Also retries, holds and releases messages and retries connectors in the mailbridge console' },
  { value: 'admin', displayName: 'mailbridge admin', description: 'Everything in the mailbridge console, including configuration and the audit log' },
];

/**
 * What uses a connection, as usedBy names it: a key per relay route, connector and watch group.
 * The keys select (check's target) and match; what the admin reads is usesText, in each language.
 */
export const USE = {
  route: (name: string) => `relay route ${name}`,
  connector: (name: string) => `connector ${name}`,
  group: (name: string) => `watch group ${name}`,
  console: () => 'console sign-in',
} as const;

const USE_WORDS: Array<[prefix: string, words: Text]> = [
  ['relay route ', { en: 'relay route', de: 'Relay-Route' }],
  ['connector ', { en: 'connector', de: 'Konnektor' }],
  ['watch group ', { en: 'watch group', de: 'Überwachungsgruppe' }],
  ['console sign-in', { en: 'console sign-in', de: 'Anmeldung an der Konsole' }],
];

/** The uses named by `keys` (USE), for the admin: "relay route erp, connector scans" / "Relay-Route erp, Konnektor scans". */
export function usesText(keys: readonly string[]): Text {
  const one = (key: string, lang: keyof Text) => {
    const found = USE_WORDS.find(([prefix]) => key.startsWith(prefix));
    return found ? `${found[1][lang]} ${key.slice(found[0].length)}`.trimEnd() : key;
  };
  return { en: keys.map((k) => one(k, 'en')).join(', '), de: keys.map((k) => one(k, 'de')).join(', ') };
}

/** Protocols a use reaches Microsoft with. */
type Protocol = 'smtp' | 'imap' | 'ews' | 'graph-send' | 'graph-read' | 'graph-readwrite';

const APP_ROLE: Record<Protocol, [Resource, string]> = {
  smtp: ['exchange', 'SMTP.SendAsApp'],
  imap: ['exchange', 'IMAP.AccessAsApp'],
  ews: ['exchange', 'full_access_as_app'],
  'graph-send': ['graph', 'Mail.Send'],
  'graph-read': ['graph', 'Mail.Read'],
  'graph-readwrite': ['graph', 'Mail.ReadWrite'],
};

const RESOURCE_OF: Record<Protocol, Resource> = { smtp: 'exchange', imap: 'exchange', ews: 'exchange', 'graph-send': 'graph', 'graph-read': 'graph', 'graph-readwrite': 'graph' };

/** Scopes MSAL adds to every delegated sign-in; the organization must have consented to them too. */
const OIDC_SCOPES = ['openid', 'profile', 'offline_access'];

class Builder {
  readonly out: ConnectionRequirements;
  private readonly conn: ConnectionConfig;
  private readonly cloud: Cloud;

  constructor(config: Config, name: string, conn: ConnectionConfig) {
    this.conn = conn;
    this.cloud = cloudFor(conn.cloud);
    const delegated = conn.flow !== 'client-credentials';
    this.out = {
      connection: name,
      cloud: conn.cloud,
      tenantId: conn.tenantId,
      clientId: conn.clientId,
      flow: conn.flow,
      delegated,
      ...(conn.account ? { account: normalizeAddress(conn.account) } : {}),
      permissions: [],
      redirectUris: { web: [], publicClient: [] },
      publicClient: conn.flow === 'device-code',
      exchangeServicePrincipal: false,
      mailboxes: [],
      openSenders: [],
      usedBy: [],
      consoleRoles: false,
    };
    if (conn.flow === 'auth-code') this.out.redirectUris.web.push(conn.redirectUri ?? defaultRedirectUri(config));
  }

  /** A use of this connection over `protocol`, for `mailboxes` (rights per mailbox as given). */
  use(label: string, protocol: Protocol, mailboxes: Array<{ address: string; sendAs?: boolean; send?: boolean }>): void {
    if (!this.out.usedBy.includes(label)) this.out.usedBy.push(label);
    const smtpOrImap = protocol === 'smtp' || protocol === 'imap';
    if (this.out.delegated) {
      for (const scope of this.requestedScopes(RESOURCE_OF[protocol])) this.permission(scope.resource, 'Scope', scope.name, label);
      for (const s of OIDC_SCOPES) this.permission('graph', 'Scope', s, label);
    } else {
      const [resource, role] = APP_ROLE[protocol];
      this.permission(resource, 'Role', role, label);
      if (smtpOrImap) this.out.exchangeServicePrincipal = true;
    }
    for (const m of mailboxes) {
      const own = this.out.delegated && this.out.account === normalizeAddress(m.address);
      // App-only Graph and EWS reach every mailbox through the application permission itself.
      const fullAccess = (this.out.delegated ? !own : smtpOrImap) && m.sendAs !== true;
      this.mailbox(m.address, label, {
        fullAccess,
        sendAs: m.sendAs === true,
        smtpAuth: protocol === 'smtp' && m.sendAs !== true,
      });
    }
  }

  /** The console's sign-in (OpenID Connect: openid and profile), its redirect URI and app roles. */
  consoleSignIn(redirectUri: string): void {
    const label = USE.console();
    if (!this.out.usedBy.includes(label)) this.out.usedBy.push(label);
    for (const s of ['openid', 'profile']) this.permission('graph', 'Scope', s, label);
    if (!this.out.redirectUris.web.includes(redirectUri)) this.out.redirectUris.web.push(redirectUri);
    this.out.consoleRoles = true;
  }

  openSender(pattern: string, label: string, protocol: Protocol): void {
    const fullAccess = !this.out.delegated && (protocol === 'smtp' || protocol === 'imap');
    const smtpAuth = protocol === 'smtp';
    const known = this.out.openSenders.find((o) => o.pattern === pattern && o.usedBy === label);
    if (known) {
      known.fullAccess ||= fullAccess;
      known.smtpAuth ||= smtpAuth;
    } else this.out.openSenders.push({ pattern, usedBy: label, fullAccess, smtpAuth });
  }

  private mailbox(address: string, label: string, rights: { fullAccess: boolean; sendAs: boolean; smtpAuth: boolean }): void {
    const key = normalizeAddress(address);
    let m = this.out.mailboxes.find((x) => x.address === key);
    if (!m) {
      m = { address: key, fullAccess: false, sendAs: false, smtpAuth: false, usedBy: [] };
      this.out.mailboxes.push(m);
    }
    m.fullAccess ||= rights.fullAccess;
    m.sendAs ||= rights.sendAs;
    m.smtpAuth ||= rights.smtpAuth;
    if (!m.usedBy.includes(label)) m.usedBy.push(label);
  }

  private permission(resource: Resource, type: PermissionType, name: string, label: string): void {
    let p = this.out.permissions.find((x) => x.resource === resource && x.type === type && x.name.toLowerCase() === name.toLowerCase());
    if (!p) {
      p = { resource, resourceAppId: RESOURCE_APP_IDS[resource], name, type, id: permissionId(resource, type, name), usedBy: [] };
      this.out.permissions.push(p);
    }
    if (!p.usedBy.includes(label)) p.usedBy.push(label);
  }

  /** The scopes a delegated sign-in asks for, for one resource, as (resource, permission name). */
  private requestedScopes(resource: Resource): Array<{ resource: Resource; name: string }> {
    const scopes = this.conn.scopes[resource] ?? defaultScopes(this.cloud, resource, true);
    const out: Array<{ resource: Resource; name: string }> = [];
    for (const s of scopes) {
      const audience = audienceOfScopes([s]);
      const name = audience ? s.slice(audience.length).replace(/^\/+/, '') : s;
      // `.default` asks for what is consented already; it names no permission of its own.
      if (!name || name === '.default' || OIDC_SCOPES.includes(name)) continue;
      const onGraph = audience === undefined || this.cloud.audiences.graph.includes(audience);
      out.push({ resource: onGraph ? 'graph' : 'exchange', name });
    }
    return out;
  }

  finish(): ConnectionRequirements {
    const order = (r: Resource) => (r === 'exchange' ? 0 : 1);
    this.out.permissions.sort((a, b) => order(a.resource) - order(b.resource) || a.type.localeCompare(b.type) || a.name.localeCompare(b.name));
    this.out.mailboxes.sort((a, b) => a.address.localeCompare(b.address));
    return this.out;
  }
}

/** The redirect URI an auth-code connection without its own uses (the same as identity's). */
function defaultRedirectUri(config: Config): string {
  const base = config.server.publicUrl ? config.server.publicUrl.replace(/\/+$/, '') : `http://localhost:${config.server.port}`;
  return `${base}/oauth/callback`;
}

const isDomain = (pattern: string) => pattern.startsWith('@');

/** Requirements of every connection in the configuration, in its order. */
export function appRequirements(config: Config): ConnectionRequirements[] {
  const builders = new Map(Object.entries(config.connections).map(([name, c]) => [name, new Builder(config, name, c)]));
  relayNeeds(config, builders);
  for (const [name, c] of Object.entries(config.connectors ?? {})) connectorNeeds(name, c, builders);
  watchNeeds(config, builders);
  const signin = config.api?.signin.entra;
  if (signin) builders.get(signin.connection)?.consoleSignIn(consoleRedirectUri(config.api, config.server));
  return [...builders.values()].map((b) => b.finish());
}

/** The requirements of one connection, or undefined when the configuration has no such connection. */
export function connectionRequirements(config: Config, connection: string): ConnectionRequirements | undefined {
  return appRequirements(config).find((r) => r.connection === connection);
}

/** requiredResourceAccess as Graph's application resource takes it (permissions without a known ID are left out). */
export function requiredResourceAccess(req: ConnectionRequirements): Array<{ resourceAppId: string; resourceAccess: Array<{ id: string; type: PermissionType }> }> {
  const out: Array<{ resourceAppId: string; resourceAccess: Array<{ id: string; type: PermissionType }> }> = [];
  for (const p of req.permissions) {
    if (p.id === undefined) continue;
    let entry = out.find((e) => e.resourceAppId === p.resourceAppId);
    if (!entry) out.push((entry = { resourceAppId: p.resourceAppId, resourceAccess: [] }));
    entry.resourceAccess.push({ id: p.id, type: p.type });
  }
  return out;
}

// --- relay -------------------------------------------------------------------------------------------

function relayNeeds(config: Config, builders: Map<string, Builder>): void {
  const relay = config.relay;
  if (!relay || relay.routes.length === 0) return;
  const router = new Router(relay.routes, config.connections);
  const label = (r: { name: string }) => USE.route(r.name);
  const protocols = (r: RouteConfig): Protocol[] => (r.transport === 'smtp' ? ['smtp'] : r.graph.fallback === 'smtp' ? ['graph-send', 'smtp'] : ['graph-send']);

  // Every sender the configuration names, with the relay user that may use it: the router says
  // which route and mailbox carry it, and whether its From needs SendAs.
  const senders: Array<{ sender: string; relayUser?: string }> = [];
  for (const r of relay.routes) for (const s of r.senders ?? []) senders.push({ sender: s });
  for (const [user, u] of Object.entries(relay.users)) for (const s of u.allowedSenders) senders.push({ sender: s, relayUser: user });
  for (const n of Object.values(relay.networks)) for (const s of n.allowedSenders) senders.push({ sender: s });
  if (relay.adminMail) senders.push({ sender: relay.adminMail.from });
  if (relay.bounces.from) senders.push({ sender: relay.bounces.from });

  relay.routes.forEach((route, index) => {
    const name = route.name ?? `#${index + 1}`;
    const b = builders.get(route.connection);
    if (!b) return;
    const conn = config.connections[route.connection] as ConnectionConfig;
    const fixed = route.mailbox ?? (conn.flow !== 'client-credentials' ? conn.account : undefined);
    for (const p of protocols(route)) {
      const mailboxes: Array<{ address: string; sendAs?: boolean }> = [];
      if (fixed) mailboxes.push({ address: fixed });
      for (const a of route.sendAs ?? []) if (!isDomain(a) && (!fixed || normalizeAddress(a) !== normalizeAddress(fixed))) mailboxes.push({ address: a, sendAs: true });
      if (typeof route.rewriteFrom === 'string' && (!fixed || normalizeAddress(route.rewriteFrom) !== normalizeAddress(fixed))) mailboxes.push({ address: route.rewriteFrom, sendAs: true });
      b.use(label({ name }), p, mailboxes);
    }
  });

  for (const s of senders) {
    if (isDomain(s.sender)) {
      // A domain: only a route with a fixed mailbox makes its mailbox known.
      const r = routeForDomain(relay.routes, s.sender, s.relayUser);
      if (r && !r.route.mailbox) {
        const conn = config.connections[r.route.connection];
        if (conn && conn.flow === 'client-credentials') for (const p of protocols(r.route)) builders.get(r.route.connection)?.openSender(s.sender, label(r), p);
      }
      continue;
    }
    const resolved = router.resolve({ sender: s.sender, ...(s.relayUser !== undefined ? { relayUser: s.relayUser } : {}) });
    if (!resolved) continue;
    const b = builders.get(resolved.connection);
    if (!b) continue;
    const address = normalizeAddress(s.sender);
    const decision = senderDecision(resolved, address, [address]);
    // A rewritten sender goes out as the mailbox (or rewriteFrom, handled per route above); a
    // refused one never goes out.
    if (decision.kind !== 'ok') continue;
    for (const p of protocols(resolved.config)) {
      const mailboxes = address === resolved.mailbox ? [{ address }] : [{ address: resolved.mailbox }, { address, sendAs: true }];
      b.use(label(resolved), p, mailboxes);
    }
  }
}

/** The first route that would carry mail from some address of `domain` (by its senders and users). */
function routeForDomain(routes: readonly RouteConfig[], domain: string, relayUser: string | undefined): { route: RouteConfig; name: string } | undefined {
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i] as RouteConfig;
    if (r.senders && !r.senders.some((s) => s.toLowerCase() === domain.toLowerCase())) continue;
    if (r.users && !(relayUser !== undefined && r.users.includes(relayUser))) continue;
    return { route: r, name: r.name ?? `#${i + 1}` };
  }
  return undefined;
}

// --- connectors and watchers -------------------------------------------------------------------------

function connectorNeeds(name: string, c: ConnectorConfig, builders: Map<string, Builder>): void {
  const b = builders.get(c.connection);
  if (!b) return;
  // Graph: marking read, moving and deleting are writes (addendum: Mail.ReadWrite); `none` only reads.
  const protocol: Protocol = c.source.kind === 'imap' ? 'imap' : c.after.action === 'none' ? 'graph-read' : 'graph-readwrite';
  b.use(USE.connector(name), protocol, mailboxesOf(c).map((m) => ({ address: m.address })));
}

function watchNeeds(config: Config, builders: Map<string, Builder>): void {
  for (const [name, g] of Object.entries(config.notify?.watch?.groups ?? {})) {
    const mailboxes = g.mailboxes.map((m) => ({ address: typeof m === 'string' ? m : m.address }));
    // On-premises IMAP with a password, or EWS with a service account, needs nothing from Entra ID.
    if (g.kind === 'imap' && g.imap.auth !== 'xoauth2') continue;
    const protocol: Protocol = g.kind === 'graph' ? 'graph-read' : g.kind === 'ews' ? 'ews' : 'imap';
    for (const l of g.listeners) {
      if (!l.connection) continue;
      builders.get(l.connection)?.use(USE.group(name), protocol, mailboxes);
    }
  }
}

// --- Exchange Server on premises ---------------------------------------------------------------------

/** An EWS watch group whose listeners log in as service accounts: what Exchange Server must grant them. */
export interface OnPremisesNeed {
  group: string;
  /** The listeners' account names as configured (UPN or DOMAIN\name). */
  accounts: string[];
  /** Lower-case addresses. */
  mailboxes: string[];
  /** ews.impersonation: the ApplicationImpersonation role (scoped to the mailboxes); off: FullAccess per mailbox. */
  impersonation: boolean;
}

/** What on-premises Exchange must grant the EWS service accounts of the configuration (nothing in Entra ID). */
export function onPremisesRequirements(config: Config): OnPremisesNeed[] {
  const out: OnPremisesNeed[] = [];
  for (const [group, g] of Object.entries(config.notify?.watch?.groups ?? {})) {
    if (g.kind !== 'ews') continue;
    const accounts = g.listeners.flatMap((l) => (l.username !== undefined ? [l.username] : []));
    if (accounts.length === 0) continue;
    const mailboxes = [...new Set(g.mailboxes.map((m) => normalizeAddress(typeof m === 'string' ? m : m.address)))].sort();
    out.push({ group, accounts, mailboxes, impersonation: g.ews.impersonation });
  }
  return out;
}
