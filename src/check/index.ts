/**
 * `mailbridge check`: one check per prerequisite the configuration needs, each ok, failed, pending
 * (granted, not yet in effect) or unverified (not readable from here), with its MB code and fix.
 * What is needed comes from src/setup/requirements.ts (the same list `mailbridge setup` creates);
 * every probe goes through the Microsoft 365 layer (src/m365/) and the connection's proxy and CA.
 *
 * Per connection, in this order:
 *  0. reach: DNS, TCP (through the proxy where one applies) and TLS to the HTTPS hosts it uses
 *     (Entra ID, Graph, EWS); SMTP and IMAP hosts show in their logins;
 *  1. credential: the secret or certificate is valid and does not expire within 30 days;
 *  2. token: one per resource the configuration uses, asked of Entra ID anew (a cached token would
 *     hide a permission granted since);
 *  3. permissions: the roles (app-only) or scopes (delegated) in the token cover what is needed. A
 *     missing application permission whose admin consent Graph shows as less than 30 minutes old
 *     is pending (Entra ID takes up to 30 minutes), not failed; reading the grant needs
 *     Application.Read.All, and check says so when it cannot;
 *  4. Exchange (app-only SMTP/IMAP): an XOAUTH2 login per mailbox, as the relay or connector would
 *     log in (SMTP AUTH for sending mailboxes, IMAP otherwise). Exchange's answers separate a
 *     refused token and SMTP AUTH switched off (5.7.139, mailbox or tenant) from "no access to this
 *     mailbox", but give one answer for a missing service principal, a wrong object ID in
 *     New-ServicePrincipal and missing FullAccess, and refuse a missing Send-As only after a
 *     message's data. So when the token carries Exchange.ManageAsApp, check reads Exchange through
 *     its admin API (Get-ServicePrincipal, Get-MailboxPermission, Get-RecipientPermission,
 *     Get-CASMailbox, Get-TransportConfig) and names the exact cause; without it a failed login is
 *     reported with all three causes and Send-As as unverified, honestly;
 *  5. watch groups: the mailboxes fit the listeners' capacity; Graph groups, and Graph connectors
 *     woken by change notifications: Graph's validation handshake against the public URL
 *     (m365/subscriptions/inbound.ts publicUrlOf; answered on the listener by check itself when the
 *     gateway is not running); EWS groups: autodiscover and GetFolder per mailbox, with
 *     impersonation or as a delegate (FullAccess), up to EWS_PROBE_MAILBOXES per listener.
 * EWS listeners with an on-premises account (no connection) are checked the same way on their own.
 *
 * Limits: senders given only as a domain cannot be listed (requirements' openSenders) and are not
 * probed; Exchange permissions have no grant date to read, so only app role grants can be pending;
 * delegated connections get credential, token and scope checks, no Exchange reads.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import { connect as tlsConnect, rootCertificates, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import { Agent, request } from '../net/undici.ts';
import type { Config } from '../app/schema.ts';
import type { ConnectionConfig } from '../identity/config.ts';
import { MbError, toMbError, type ErrorParams, type MbCode } from '../errors/index.ts';
import { cloudFor, type Identity, type Resource } from '../identity/index.ts';
import type { AccessToken } from '../identity/index.ts';
import { ExchangeAdmin } from '../m365/exchange-admin.ts';
import { GraphClient, graphError, GraphUnreachable } from '../m365/graph.ts';
import { connectWithin, imapClient } from '../m365/imap.ts';
import { smtpConnection, xoauth2 } from '../m365/smtp.ts';
import { tokenFacts, type TokenFacts } from '../m365/token-facts.ts';
import { openTunnel, proxyRoute, type ProxySettings } from '../net/proxy.ts';
import { graphBaseUrl } from '../m365/graph-url.ts';
import { assignMailboxes } from '../notify/watchers/pools.ts';
import { autodiscoverAll } from '../m365/ews/autodiscover.ts';
import { EwsClient, ntlmCredentials, type NtlmCredentials } from '../m365/ews/client.ts';
import { getFolder } from '../m365/ews/soap.ts';
import { explainEws } from '../notify/watchers/ews/mailbox.ts';
import { registerSecret } from '../log/redact.ts';
import { silentLogger, type Logger } from '../log/index.ts';
import type { Lang, Text } from '../i18n/index.ts';
import { publicUrlOf, type ListenConfig } from '../m365/subscriptions/listen.ts';
import { appRoleGrants, findServicePrincipal, type AppRoleGrant, type DirectoryGet } from '../setup/directory.ts';
import { memoryKv } from '../setup/admin.ts';
import { RESOURCE_NAMES } from '../setup/permissions.ts';
import { appRequirements, USE, usesText, type ConnectionRequirements, type MailboxNeed, type PermissionNeed } from '../setup/requirements.ts';

export type CheckStatus = 'ok' | 'failed' | 'pending' | 'unverified';

export interface CheckResult {
  connection: string;
  /** Which prerequisite: credential, token, permission, exchange-service-principal, full-access, send-as, smtp-auth, login. */
  check: string;
  /** What it is about: the credential kind, a resource, a permission, a mailbox (a stable key, also for scripts). */
  subject: string;
  /** The subject in the admin's language where it holds words (the credential's kind); else subject is shown. */
  label?: Text;
  status: CheckStatus;
  /** Why it is not ok: the code, cause and fix. */
  error?: MbError;
}

export interface CheckOptions {
  config: Config;
  identity: Identity;
  /** A connection, relay route, connector or watch group; all connections when undefined. */
  target?: string;
  /** Read PEM files (default: the connections' caFile from disk, caFileReader). */
  readCa?: (connection: string) => Promise<string | undefined>;
  clock?: () => number;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  /** Per probe (login, Graph and Exchange reads), default 30 s. */
  timeoutMs?: number;
  /** Clear value of a sealed setting (on-premises EWS listener passwords). */
  reveal?: (stored: string, path: string) => string;
  /** Told of each result as soon as it is known (the admin API's check runs show them one by one). */
  onResult?: (result: CheckResult) => void;
}

/** Mailboxes per EWS listener that check opens (autodiscover and GetFolder each); the rest are named as not probed. */
export const EWS_PROBE_MAILBOXES = 20;

/** A grant younger than this that is not in the token yet is pending, not failed (Entra's propagation). */
export const PROPAGATION_MS = 30 * 60_000;
const OIDC = new Set(['openid', 'profile', 'offline_access', 'email']);
/** The credential kinds as a German admin reads them (the portal's words: Zertifikate & Geheimnisse). */
const CREDENTIAL_DE: Record<string, string> = { secret: 'geheimer Clientschlüssel', certificate: 'Zertifikat', 'public client': 'öffentlicher Client (kein Schlüssel)' };

/** The requirements `target` selects: a connection's all, or those a route, connector or group uses. */
export function selectRequirements(config: Config, target: string | undefined): ConnectionRequirements[] {
  const all = appRequirements(config);
  if (target === undefined) return all;
  if (config.connections[target]) return all.filter((r) => r.connection === target);
  const labels = [USE.route(target), USE.connector(target), USE.group(target)];
  const uses = (usedBy: string[]) => usedBy.some((u) => labels.includes(u));
  const out: ConnectionRequirements[] = [];
  for (const r of all) {
    if (!uses(r.usedBy)) continue;
    const mailboxes = r.mailboxes.filter((m) => uses(m.usedBy));
    const openSenders = r.openSenders.filter((o) => labels.includes(o.usedBy));
    out.push({
      ...r,
      permissions: r.permissions.filter((p) => uses(p.usedBy)),
      mailboxes,
      openSenders,
      // Exchange knows the app only for SMTP and IMAP logins (EWS and Graph need no service principal).
      exchangeServicePrincipal: r.exchangeServicePrincipal && (mailboxes.some((m) => m.fullAccess || m.smtpAuth) || openSenders.length > 0),
      usedBy: r.usedBy.filter((u) => labels.includes(u)),
    });
  }
  if (out.length === 0) throw new MbError('MB_CHECK_UNKNOWN_TARGET', { target, connections: Object.keys(config.connections).join(', ') || '-' });
  return out;
}

/** The options with the CA reader chosen (the checks read CAs through it). */
type ReadyOptions = CheckOptions & Required<Pick<CheckOptions, 'readCa'>>;

/** The extra CA (PEM) a connection trusts, read from its caFile; undefined without one. */
export function caFileReader(config: Config): (connection: string) => Promise<string | undefined> {
  return async (connection) => {
    const file = config.connections[connection]?.caFile;
    return file ? readFile(file, 'utf8') : undefined;
  };
}

export async function runChecks(options: CheckOptions): Promise<CheckResult[]> {
  const o: ReadyOptions = { ...options, readCa: options.readCa ?? caFileReader(options.config) };
  const out: CheckResult[] = [];
  const selected = (() => {
    try {
      return selectRequirements(o.config, o.target);
    } catch (err) {
      // A watch group whose listeners sign in on premises (no connection) is a target too.
      if (o.target !== undefined && o.config.notify?.watch?.groups[o.target]) return [];
      throw err;
    }
  })();
  for (const req of selected) out.push(...(await new ConnectionCheck(o, req).run()));
  // EWS listeners with an on-premises account need nothing from Entra ID: checked on their own.
  for (const [name, g] of Object.entries(o.config.notify?.watch?.groups ?? {})) {
    if (g.kind !== 'ews' || (o.target !== undefined && o.target !== name)) continue;
    for (const l of g.listeners) {
      if (l.connection || !l.username) continue;
      const password = l.password !== undefined && o.reveal ? o.reveal(l.password, `notify.watch.groups.${name}.listeners.password`) : undefined;
      if (password) registerSecret(password);
      const ntlm = password && g.ews.authentication === 'ntlm' ? ntlmCredentials(l.username, password) : undefined;
      const basic = password && !ntlm ? `Basic ${Buffer.from(`${l.username}:${password}`).toString('base64')}` : undefined;
      const owner = `${name} (${l.username})`;
      const proxy: ProxySettings = { proxy: o.config.server.proxy, source: 'server', env: o.env ?? process.env };
      const ca = g.ews.caFile ? (await import('node:fs/promises')).readFile(g.ews.caFile, 'utf8') : undefined;
      out.push(...(await ewsProbe(o, owner, name, g, { authorization: async () => basic ?? '', ...(ntlm ? { ntlm } : {}) }, proxy, await ca)));
    }
  }
  return out;
}

type EwsGroup = Extract<NonNullable<NonNullable<Config['notify']>['watch']>['groups'][string], { kind: 'ews' }>;

/**
 * EWS as the watcher will use it: autodiscover per mailbox (unless the group names the URL), then
 * GetFolder on the inbox with ExchangeImpersonation (app-only, or an on-premises account with
 * ApplicationImpersonation) or as a delegate (FullAccess), for up to EWS_PROBE_MAILBOXES mailboxes.
 */
async function ewsProbe(
  o: CheckOptions,
  owner: string,
  group: string,
  g: EwsGroup,
  auth: { authorization: (mailbox: string) => Promise<string>; ntlm?: NtlmCredentials },
  proxy: ProxySettings,
  ca: string | undefined,
): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const add = (check: string, subject: string, status: CheckStatus, error?: MbError) => {
    const r: CheckResult = { connection: owner, check, subject, status, ...(error ? { error } : {}) };
    out.push(r);
    o.onResult?.(r);
  };
  const timeoutMs = o.timeoutMs ?? 30_000;
  const signal = AbortSignal.timeout(timeoutMs * 4);
  const client = new EwsClient({
    version: g.ews.version,
    impersonation: g.ews.impersonation,
    authorization: auth.authorization,
    ntlm: auth.ntlm,
    ...(ca ? { ca } : {}),
    proxy,
    timeoutMs,
    maxBackOffMs: 10_000,
    busyRetries: 1,
    signal,
    secretSlot: `check:ews:${owner}`,
  });
  const all = [...new Set(g.mailboxes.map((m) => (typeof m === 'string' ? m : m.address).toLowerCase()))];
  const mailboxes = all.slice(0, EWS_PROBE_MAILBOXES);
  try {
    const urls = new Map<string, string>();
    if (g.ews.url && !g.ews.servers?.length) for (const m of mailboxes) urls.set(m, g.ews.url);
    else {
      const found = await autodiscoverAll(mailboxes, {
        agent: client.agent,
        authorization: auth.authorization,
        kv: memoryKv(),
        namespace: 'check-ews',
        now: o.clock ?? Date.now,
        version: g.ews.version,
        ...(g.ews.autodiscover.url ? { url: g.ews.autodiscover.url } : {}),
        prefer: g.ews.autodiscover.prefer,
        cacheHours: 0,
        timeoutMs,
        signal,
      });
      for (const m of mailboxes) {
        const r = found.get(m);
        if (r && !(r instanceof MbError)) {
          urls.set(m, g.ews.url ?? r.ewsUrl);
          add('autodiscover', m, 'ok');
        } else add('autodiscover', m, 'failed', r ?? new MbError('MB_EWS_AUTODISCOVER_FAILED', { mailbox: m, domain: m.split('@')[1] ?? '', detail: 'no answer' }));
      }
    }
    for (const m of mailboxes) {
      const url = urls.get(m);
      if (!url) continue;
      try {
        await client.call({ url, mailbox: m }, getFolder(['inbox'], g.ews.impersonation ? undefined : m));
        add('ews-access', m, 'ok');
      } catch (err) {
        add('ews-access', m, 'failed', explainEws(err, { operation: 'GetFolder', mailbox: m, url }));
      }
    }
    if (all.length > mailboxes.length) add('ews-access', `${all.length - mailboxes.length} more of group ${group}`, 'unverified', new MbError('MB_CHECK_NOT_PROBED', { group, probed: mailboxes.length, total: all.length }));
  } finally {
    await client.agent.close().catch(() => undefined);
  }
  return out;
}

/** What each check is called, in the admin's language (the CLI's column, the API's result titles). */
const CHECK_NAMES: Record<Lang, Record<string, string>> = {
  en: {
    credential: 'credential',
    token: 'token',
    permission: 'permission',
    'exchange-service-principal': 'Exchange service principal',
    'full-access': 'FullAccess',
    'send-as': 'Send-As',
    'smtp-auth': 'SMTP AUTH',
    login: 'XOAUTH2 login',
    reach: 'DNS and TLS',
    'open-sender': 'sender domain',
    capacity: 'capacity',
    'public-url': 'Graph validation',
    autodiscover: 'EWS autodiscover',
    'ews-access': 'EWS access',
  },
  de: {
    credential: 'Anmeldeinformation',
    token: 'Token',
    permission: 'Berechtigung',
    'exchange-service-principal': 'Exchange-Dienstprinzipal',
    'full-access': 'Vollzugriff',
    'send-as': 'Senden als',
    'smtp-auth': 'SMTP AUTH',
    login: 'XOAUTH2-Anmeldung',
    reach: 'DNS und TLS',
    'open-sender': 'Absenderdomäne',
    capacity: 'Kapazität',
    'public-url': 'Graph-Bestätigung',
    autodiscover: 'EWS-Autodiscover',
    'ews-access': 'EWS-Zugriff',
  },
};

export function checkName(check: string, lang: Lang): string {
  return CHECK_NAMES[lang][check] ?? check;
}

/** Whether every check passed (unverified ones do not fail: they say what could not be read). */
export function passed(results: readonly CheckResult[]): boolean {
  return results.every((r) => r.status === 'ok' || r.status === 'unverified');
}

interface LoginOutcome {
  ok: boolean;
  /** token: Exchange refused the token itself; disabled-mailbox / disabled-tenant: SMTP AUTH off; mailbox: no access to the mailbox; network. */
  stage?: 'token' | 'disabled-mailbox' | 'disabled-tenant' | 'mailbox' | 'network';
  reply?: string;
  protocol: 'SMTP' | 'IMAP';
  host: string;
  port: number;
}

class ConnectionCheck {
  private readonly o: ReadyOptions;
  private readonly req: ConnectionRequirements;
  private readonly conn: ConnectionConfig;
  private readonly name: string;
  private readonly out: CheckResult[] = [];
  private readonly tokens = new Map<Resource, AccessToken>();
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(o: ReadyOptions, req: ConnectionRequirements) {
    this.o = o;
    this.req = req;
    this.name = req.connection;
    this.conn = o.config.connections[req.connection] as ConnectionConfig;
    this.now = o.clock ?? Date.now;
    this.log = o.log ?? silentLogger;
  }

  private add(check: string, subject: string, status: CheckStatus, error?: MbError, label?: Text): void {
    const r: CheckResult = { connection: this.name, check, subject, status, ...(error ? { error } : {}), ...(label ? { label } : {}) };
    this.out.push(r);
    this.o.onResult?.(r);
  }

  private get base(): ErrorParams {
    return { connection: this.name, clientId: this.conn.clientId, tenantId: this.conn.tenantId, portal: cloudFor(this.conn.cloud).portal };
  }

  private proxy(): ProxySettings {
    const own = this.conn.proxy;
    return { proxy: own ?? this.o.config.server.proxy, source: own ? 'connection' : 'server', env: this.o.env ?? process.env };
  }

  async run(): Promise<CheckResult[]> {
    await this.reach();
    await this.credential();
    const resources = [...new Set(this.req.permissions.filter((p) => !OIDC.has(p.name)).map((p) => p.resource))];
    if (resources.length === 0) resources.push('exchange');
    for (const resource of resources) await this.token(resource);
    for (const resource of resources) await this.permissions(resource);
    if (!this.req.delegated && this.tokens.has('exchange') && (this.req.exchangeServicePrincipal || this.req.mailboxes.length > 0)) await this.exchange();
    for (const o of this.req.openSenders) {
      // A sender domain: its mailboxes are whatever the applications send as, so none can be probed.
      this.add('open-sender', o.pattern, 'unverified', new MbError('MB_CHECK_OPEN_SENDER', { ...this.base, pattern: o.pattern, usedBy: usesText([o.usedBy]) }));
    }
    await this.watchGroups();
    await this.connectorNotifications();
    return this.out;
  }

  // --- 0. reach ---------------------------------------------------------------------------------------

  /** DNS, TCP (through the proxy where one applies) and TLS to each HTTPS host this connection talks to. */
  private async reach(): Promise<void> {
    const cloud = cloudFor(this.conn.cloud);
    const targets = new Map<string, { url: URL; service: string }>();
    const addUrl = (raw: string, service: string) => {
      const url = new URL(raw);
      const key = `${url.hostname}:${url.port || 443}`;
      if (!targets.has(key)) targets.set(key, { url, service });
    };
    addUrl((this.conn.tokenEndpoint ?? `https://${cloud.loginHost}/#TenantID#/oauth2/v2.0/token`).replace('#TenantID#', this.conn.tenantId), 'Entra ID');
    if (this.req.permissions.some((p) => p.resource === 'graph' && !OIDC.has(p.name))) addUrl(graphBaseUrl(graphUrlFor(this.o.config, this.name), cloud.graphHost), 'Microsoft Graph');
    for (const [name, g] of Object.entries(this.o.config.notify?.watch?.groups ?? {})) {
      if (g.kind !== 'ews' || !this.req.usedBy.includes(USE.group(name)) || !g.listeners.some((l) => l.connection === this.name)) continue;
      // Without a URL, autodiscover finds one per mailbox (its own check line).
      if (g.ews.url) addUrl(g.ews.url, 'EWS');
      else if (g.ews.autodiscover.url) addUrl(g.ews.autodiscover.url, 'EWS Autodiscover');
    }
    const ca = await this.o.readCa(this.name);
    for (const [key, t] of targets) {
      const host = t.url.hostname.replace(/^\[|\]$/g, '');
      const port = Number(t.url.port || 443);
      try {
        await tlsReach(host, port, { ca, proxy: this.proxy(), timeoutMs: this.o.timeoutMs ?? 30_000 });
        this.add('reach', key, 'ok');
      } catch (err) {
        const e = err as Error & { code?: string };
        this.add('reach', key, 'failed', new MbError('MB_CHECK_HOST_UNREACHABLE', { host, port, service: t.service, proxy: proxyShown(this.proxy()), detail: `${e.code ?? ''} ${e.message}`.trim() }));
      }
    }
  }

  // --- 5. watch groups --------------------------------------------------------------------------------

  /** Per watch group this connection listens for: the mailboxes fit the listeners, and Graph can reach the public URL. */
  private async watchGroups(): Promise<void> {
    const watch = this.o.config.notify?.watch;
    for (const [name, g] of Object.entries(watch?.groups ?? {})) {
      if (!this.req.usedBy.includes(USE.group(name))) continue;
      const mine = g.listeners.filter((l) => l.connection === this.name);
      if (mine.length === 0) continue;
      // The first listener's connection reports for the group (capacity is the group's).
      if (g.listeners.find((l) => l.connection)?.connection === this.name) {
        const listeners = g.listeners.map((l) => ({ id: `${name}/${l.name ?? l.connection ?? l.username}`, capacity: l.capacity }));
        const mailboxes = g.mailboxes.map((m) => ({ address: typeof m === 'string' ? m : m.address, folders: [...g.folders] }));
        try {
          const plan = assignMailboxes(name, mailboxes, listeners);
          this.add('capacity', `${name}: ${plan.map((a) => `${a.listener.id} ${a.mailboxes.length}/${a.listener.capacity}`).join(', ')}`, 'ok');
        } catch (err) {
          this.add('capacity', name, 'failed', toMbError(err));
        }
      }
      if (g.kind === 'ews' && !this.req.delegated && this.tokens.has('exchange')) {
        const token = this.tokens.get('exchange') as AccessToken;
        const ca = g.ews.caFile ? await readFile(g.ews.caFile, 'utf8') : await this.o.readCa(this.name);
        this.out.push(...(await ewsProbe(this.o, this.name, name, g, { authorization: async () => `Bearer ${token.accessToken}` }, this.proxy(), ca)));
      }
      if (g.kind !== 'graph' || !watch) continue;
      // The watch service's listener falls back to server.publicUrl (notify/watchers/service.ts).
      const base = publicUrlOf(watch.listen, watch.publicUrl ?? this.o.config.server.publicUrl);
      for (const l of mine) {
        await this.publicUrl({ base, path: `${g.graph.path}/${name}/${l.name ?? l.connection ?? l.username}`, listen: watch.listen, setting: 'notify.watch', owner: usesText([USE.group(name)]) });
      }
    }
  }

  /** Per Graph connector of this connection woken by change notifications: Graph can reach its public URL. */
  private async connectorNotifications(): Promise<void> {
    for (const [name, c] of Object.entries(this.o.config.connectors ?? {})) {
      if (c.connection !== this.name || !this.req.usedBy.includes(USE.connector(name)) || c.source.kind !== 'graph' || !c.source.notifications) continue;
      const n = c.source.notifications;
      // The same URL the connector subscribes with (connector/graph.ts: publicUrl + path + /<connector>).
      await this.publicUrl({ base: publicUrlOf(n.listen, n.publicUrl), path: `${n.path}/${name}`, listen: n.listen, setting: `connectors.${name}.source.notifications`, owner: usesText([USE.connector(name)]) });
    }
  }

  /**
   * Graph's validation handshake against this gateway's notification URL (facts §4.2): POST
   * ?validationToken=… must come back 200, text/plain, the token decoded, within 10 seconds, over
   * TLS with a certificate Graph trusts (public CAs; a configured non-Microsoft Graph, such as the
   * sandbox, trusts the connection's caFile too). When nothing listens yet (the gateway is not
   * running), check answers on the listener (notify.watch.listen, a connector's notifications.listen)
   * itself for the moment of the handshake, so the
   * path from the public URL to the listener is what is tested.
   */
  private async publicUrl(target: { base: string; path: string; listen: ListenConfig; setting: string; owner: Text }): Promise<void> {
    const { base, path: routePath, listen } = target;
    const url = `${base}${routePath}`;
    const customGraph = graphUrlFor(this.o.config, this.name) !== undefined;
    const ca = customGraph ? await this.o.readCa(this.name) : undefined;
    const token = `mailbridge check ${randomBytes(6).toString('hex')} +/=&`;
    const handshake = async (): Promise<string | Text | undefined> => {
      const agent = new Agent({ connect: { ca: ca ? [...rootCertificates, ca] : [...rootCertificates], timeout: 10_000 } });
      try {
        const res = await request(`${url}?validationToken=${encodeURIComponent(token)}`, {
          method: 'POST',
          dispatcher: agent,
          headers: { 'content-type': 'text/plain; charset=utf-8' },
          body: '',
          headersTimeout: 10_000,
          bodyTimeout: 10_000,
        });
        const body = await res.body.text();
        if (res.statusCode !== 200) return `HTTP ${res.statusCode}`;
        if (!/^text\/plain/i.test(String(res.headers['content-type'] ?? ''))) return `Content-Type ${String(res.headers['content-type'])}`;
        if (body !== token) return { en: 'the answer is not the decoded validationToken', de: 'die Antwort ist nicht das decodierte validationToken' };
        return undefined;
      } finally {
        await agent.close();
      }
    };
    let problem: string | Text | undefined;
    try {
      problem = await handshake();
    } catch (err) {
      const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
      const code = e.cause?.code ?? e.code;
      if (code === 'ECONNREFUSED') {
        problem = await this.answerOnListener(listen, routePath, token, handshake).catch((x: Error) => `${code}; ${x.message}`);
      } else problem = `${code ?? ''} ${e.cause?.message ?? e.message}`.trim();
    }
    if (problem === undefined) this.add('public-url', url, 'ok');
    else this.add('public-url', url, 'failed', new MbError('MB_CHECK_PUBLIC_URL_FAILED', { url, owner: target.owner, setting: target.setting, detail: problem, listen: `${listen.host}:${listen.port}` }));
  }

  /** Opens the listener for one handshake (the gateway is not running), then closes it. */
  private async answerOnListener(listen: ListenConfig, routePath: string, token: string, handshake: () => Promise<string | Text | undefined>): Promise<string | Text | undefined> {
    const { readFile } = await import('node:fs/promises');
    const https = listen.certFile && listen.keyFile ? { cert: await readFile(listen.certFile, 'utf8'), key: await readFile(listen.keyFile, 'utf8') } : undefined;
    let answered = false;
    const answer = (req: IncomingMessage, res: ServerResponse) => {
      const u = new URL(req.url ?? '/', 'https://listener.invalid');
      const given = u.searchParams.get('validationToken');
      if (req.method !== 'POST' || u.pathname !== routePath || given === null) {
        res.writeHead(404).end();
        return;
      }
      answered = given === token;
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(given);
    };
    const http = https ? createHttpsServer(https, answer) : createHttpServer(answer);
    http.listen(listen.port, listen.host);
    await once(http, 'listening');
    try {
      const problem = await handshake();
      if (problem === undefined && !answered) return { en: 'the public URL answered, but not from the listener', de: 'die öffentliche URL hat geantwortet, aber nicht vom Listener' };
      return problem;
    } finally {
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
    }
  }

  // --- 1. credential ----------------------------------------------------------------------------------

  private async credential(): Promise<void> {
    const notices = await this.o.identity.credentialNotices(this.name, this.now());
    const expiry = await this.o.identity.credentialExpiry(this.name).catch(() => undefined);
    const kind = expiry ? expiry.kind : this.conn.flow === 'device-code' ? 'public client' : this.conn.clientSecret ? 'secret' : 'certificate';
    const date = expiry ? ` ${expiry.expires.toISOString().slice(0, 10)}` : '';
    const subject = `${kind}${date}`;
    const label = { en: subject, de: `${CREDENTIAL_DE[kind]}${date}` };
    if (notices.length === 0) return this.add('credential', subject, 'ok', undefined, label);
    for (const n of notices) this.add('credential', subject, 'failed', n.error, label);
  }

  // --- 2. token ---------------------------------------------------------------------------------------

  private async token(resource: Resource): Promise<void> {
    try {
      const t = await this.o.identity.getToken(this.name, resource, { forceRefresh: true });
      this.tokens.set(resource, t);
      this.add('token', resource, 'ok');
    } catch (err) {
      this.add('token', resource, 'failed', toMbError(err));
    }
  }

  // --- 3. permissions ---------------------------------------------------------------------------------

  private grants: Promise<{ grants: AppRoleGrant[] } | { error: string }> | undefined;

  private async permissions(resource: Resource): Promise<void> {
    const token = this.tokens.get(resource);
    if (!token) return;
    const facts = tokenFacts(token.accessToken);
    const needed = this.req.permissions.filter((p) => p.resource === resource && !OIDC.has(p.name));
    if (this.req.delegated) {
      const scp = new Set((decodeScp(token.accessToken) ?? []).map((s) => s.toLowerCase()));
      for (const p of needed.filter((x) => x.type === 'Scope')) {
        if (scp.has(p.name.toLowerCase())) this.add('permission', p.name, 'ok');
        else this.add('permission', p.name, 'failed', new MbError('MB_CHECK_SCOPE_MISSING', { ...this.base, permission: p.name, api: RESOURCE_NAMES[resource], usedBy: usesText(p.usedBy) }));
      }
      return;
    }
    const roles = new Set(facts?.roles ?? []);
    for (const p of needed.filter((x) => x.type === 'Role')) {
      if (roles.has(p.name)) {
        this.add('permission', p.name, 'ok');
        continue;
      }
      this.add('permission', p.name, ...(await this.missingRole(p)));
    }
  }

  /** A role not in the token: pending when Graph shows a grant younger than 30 minutes. */
  private async missingRole(p: PermissionNeed): Promise<[CheckStatus, MbError]> {
    const params = { ...this.base, permission: p.name, api: RESOURCE_NAMES[p.resource], usedBy: usesText(p.usedBy) };
    this.grants ??= this.readGrants();
    const read = await this.grants;
    if ('error' in read) return ['failed', new MbError('MB_CHECK_PERMISSION_MISSING_GRANT_UNKNOWN', { ...params, detail: read.error })];
    const grant = read.grants.find((g) => p.id !== undefined && g.appRoleId.toLowerCase() === p.id.toLowerCase() && (g.resourceDisplayName === '' || g.resourceDisplayName === RESOURCE_NAMES[p.resource]));
    const age = grant ? this.now() - grant.created : Infinity;
    if (grant && age < PROPAGATION_MS) {
      return [
        'pending',
        new MbError('MB_CHECK_PERMISSION_PENDING', {
          ...params,
          granted: new Date(grant.created).toISOString().slice(11, 16) + ' UTC',
          minutes: Math.max(0, Math.floor(age / 60_000)),
          until: new Date(grant.created + PROPAGATION_MS).toISOString().slice(11, 16) + ' UTC',
        }),
      ];
    }
    return ['failed', new MbError('MB_CHECK_PERMISSION_MISSING', params)];
  }

  /** The app's app role assignments, read with its own token (Application.Read.All) through setup/directory.ts. */
  private async readGrants(): Promise<{ grants: AppRoleGrant[] } | { error: string }> {
    let token: AccessToken;
    try {
      token = this.tokens.get('graph') ?? (await this.o.identity.getToken(this.name, 'graph', { forceRefresh: true }));
    } catch (err) {
      return { error: toMbError(err).code };
    }
    const client = new GraphClient({
      baseUrl: graphUrlFor(this.o.config, this.name),
      graphHost: cloudFor(this.conn.cloud).graphHost,
      tokens: async () => token.accessToken,
      proxy: this.proxy(),
      ca: await this.o.readCa(this.name),
      throttleRetries: 1,
      timeoutMs: this.o.timeoutMs ?? 30_000,
    });
    const get: DirectoryGet = async (path) => {
      const reply = await client.call('directory', 'GET', path);
      if (reply.status === 200) return reply.json ?? {};
      const e = graphError(reply);
      throw new Error(`Graph ${reply.status} ${e.code}: ${e.message}`);
    };
    try {
      const sp = await findServicePrincipal(get, this.conn.clientId);
      if (!sp) return { error: `no service principal with appId ${this.conn.clientId}` };
      return { grants: await appRoleGrants(get, sp.id) };
    } catch (err) {
      return { error: err instanceof GraphUnreachable ? `Graph unreachable: ${err.message}` : (err as Error).message };
    } finally {
      await client.close();
    }
  }

  // --- 4. Exchange ------------------------------------------------------------------------------------

  private async exchange(): Promise<void> {
    const token = this.tokens.get('exchange') as AccessToken;
    const facts = tokenFacts(token.accessToken) as TokenFacts;
    const objectId = facts.objectId ?? '';
    const appId = facts.appId ?? this.conn.clientId;
    const ids = new Set([objectId, appId].map((s) => s.toLowerCase()));
    const p = { ...this.base, appId, objectId, displayName: 'mailbridge' };
    const roleMissing = (protocol: 'SMTP' | 'IMAP') => !facts.roles.includes(protocol === 'SMTP' ? 'SMTP.SendAsApp' : 'IMAP.AccessAsApp');

    // Logins first: a login that works proves the service principal and FullAccess for that mailbox.
    const logins = new Map<string, LoginOutcome>();
    for (const m of this.req.mailboxes.filter((x) => x.fullAccess || x.smtpAuth)) logins.set(m.address, await this.login(m, token));

    const reader = facts.roles.includes('Exchange.ManageAsApp') ? await this.exchangeReader(token) : undefined;
    const readNote = `roles: ${facts.roles.join(', ') || '-'}`;
    type Read = { rows: Array<Record<string, unknown>> } | { error: string | Text };
    const read = async (cmdlet: string, params: Record<string, unknown> = {}): Promise<Read> => {
      if (!reader) return { error: readNote };
      try {
        return { rows: await reader.run(cmdlet, params) };
      } catch (err) {
        // Exchange's refusal (status and its own words) in the admin's language; a network failure as it came.
        return { error: err instanceof MbError ? { en: err.explain('en').cause, de: err.explain('de').cause } : (err as Error).message };
      }
    };
    try {
      // The service principal.
      let spOk = true;
      if (this.req.exchangeServicePrincipal) {
        const r = await read('Get-ServicePrincipal');
        if ('rows' in r) {
          const mine = r.rows.filter((s) => String(s.AppId ?? '').toLowerCase() === appId.toLowerCase());
          if (mine.length === 0) {
            spOk = false;
            this.add('exchange-service-principal', appId, 'failed', new MbError('MB_CHECK_EXO_NO_SERVICE_PRINCIPAL', p));
          } else if (!mine.some((s) => String(s.ObjectId ?? '').toLowerCase() === objectId.toLowerCase())) {
            spOk = false;
            this.add('exchange-service-principal', appId, 'failed', new MbError('MB_CHECK_EXO_SP_WRONG_OBJECT_ID', { ...p, registered: String(mine[0]?.ObjectId ?? '') }));
          } else this.add('exchange-service-principal', appId, 'ok');
        } else if ([...logins.values()].some((l) => l.ok)) {
          this.add('exchange-service-principal', appId, 'ok');
        } else {
          this.add('exchange-service-principal', appId, 'unverified', new MbError('MB_CHECK_EXO_UNVERIFIED', { ...p, cmdlet: `Get-ServicePrincipal | Where-Object AppId -eq ${appId}`, detail: r.error }));
        }
      }

      let tenantSmtpDisabled: boolean | undefined;
      for (const m of this.req.mailboxes) {
        const usedBy = usesText(m.usedBy);
        const login = logins.get(m.address);
        const mp = { ...p, mailbox: m.address, usedBy };
        if (m.fullAccess) {
          const r: Read = spOk ? await read('Get-MailboxPermission', { Identity: m.address }) : { error: 'service principal' };
          if ('rows' in r) {
            const has = r.rows.some((x) => ids.has(String(x.User ?? '').toLowerCase()) && JSON.stringify(x.AccessRights ?? '').includes('FullAccess'));
            if (has) this.add('full-access', m.address, 'ok');
            else this.add('full-access', m.address, 'failed', new MbError('MB_CHECK_EXO_NO_FULL_ACCESS', mp));
          } else if (login?.ok) this.add('full-access', m.address, 'ok');
          else if (spOk) this.add('full-access', m.address, 'unverified', new MbError('MB_CHECK_EXO_UNVERIFIED', { ...mp, cmdlet: `Get-MailboxPermission -Identity ${m.address}`, detail: r.error }));
        }
        if (m.sendAs) {
          const r = await read('Get-RecipientPermission', { Identity: m.address });
          if ('rows' in r) {
            const has = r.rows.some((x) => ids.has(String(x.Trustee ?? '').toLowerCase()) && JSON.stringify(x.AccessRights ?? '').includes('SendAs'));
            if (has) this.add('send-as', m.address, 'ok');
            else this.add('send-as', m.address, 'failed', new MbError('MB_CHECK_EXO_NO_SEND_AS', mp));
          } else {
            // Exchange refuses a missing Send-As only after a message's data: no login shows it.
            this.add('send-as', m.address, 'unverified', new MbError('MB_CHECK_EXO_UNVERIFIED', { ...mp, cmdlet: `Get-RecipientPermission -Identity ${m.address} -AccessRights SendAs`, detail: r.error }));
          }
        }
        if (m.smtpAuth) {
          const r = await read('Get-CASMailbox', { Identity: m.address });
          let disabled: 'mailbox' | 'tenant' | undefined;
          let known = false;
          if ('rows' in r) {
            known = true;
            const own = r.rows[0]?.SmtpClientAuthenticationDisabled;
            if (own === true) disabled = 'mailbox';
            else if (own === null || own === undefined) {
              if (tenantSmtpDisabled === undefined) {
                const t = await read('Get-TransportConfig');
                tenantSmtpDisabled = 'rows' in t ? t.rows[0]?.SmtpClientAuthenticationDisabled === true : undefined;
              }
              if (tenantSmtpDisabled) disabled = 'tenant';
            }
          } else if (login && (login.stage === 'disabled-mailbox' || login.stage === 'disabled-tenant')) {
            known = true;
            disabled = login.stage === 'disabled-mailbox' ? 'mailbox' : 'tenant';
          } else if (login?.ok) known = true;
          if (disabled === 'mailbox') this.add('smtp-auth', m.address, 'failed', new MbError('MB_RELAY_SMTP_AUTH_DISABLED_MAILBOX', mp));
          else if (disabled === 'tenant') this.add('smtp-auth', m.address, 'failed', new MbError('MB_RELAY_SMTP_AUTH_DISABLED_TENANT', mp));
          else if (known) this.add('smtp-auth', m.address, 'ok');
        }
        if (login) {
          const lp = { ...mp, protocol: login.protocol, reply: login.reply ?? '' };
          if (login.ok) this.add('login', `${login.protocol} ${m.address}`, 'ok');
          else if (login.stage === 'network') {
            this.add('login', `${login.protocol} ${m.address}`, 'failed', new MbError('MB_CHECK_HOST_UNREACHABLE', { host: login.host, port: login.port, service: `Exchange ${login.protocol}`, proxy: proxyShown(this.proxy()), detail: login.reply ?? '' }));
          } else if (login.stage === 'token' || (login.stage === 'mailbox' && roleMissing(login.protocol) && login.protocol === 'SMTP')) {
            this.add('login', `${login.protocol} ${m.address}`, 'failed', new MbError('MB_CHECK_EXO_TOKEN_REFUSED', lp));
          } else {
            // With Exchange readable the exact cause is named above (service principal, FullAccess,
            // SMTP AUTH); the login line repeats it. Otherwise all Exchange's answer allows.
            const named = this.out.find(
              (x) => x.status === 'failed' && x.error && (x.check === 'exchange-service-principal' || (['full-access', 'smtp-auth'].includes(x.check) && x.subject === m.address)),
            );
            this.add('login', `${login.protocol} ${m.address}`, 'failed', named?.error ?? new MbError('MB_CHECK_EXO_LOGIN_REFUSED', lp));
          }
        }
      }
    } finally {
      await reader?.close();
    }
  }

  private async exchangeReader(token: AccessToken): Promise<ExchangeAdmin> {
    const cloud = cloudFor(this.conn.cloud);
    const domain = this.req.mailboxes[0]?.address.split('@')[1];
    const ca = await this.o.readCa(this.name);
    return new ExchangeAdmin({
      baseUrl: this.conn.exchangeAdminUrl ?? `${cloud.audiences.exchange[0]}/adminapi/beta`,
      tenantId: this.conn.tenantId,
      ...(domain ? { domain } : {}),
      token: async () => token.accessToken,
      proxy: this.proxy(),
      ...(ca ? { ca } : {}),
      timeoutMs: this.o.timeoutMs ?? 30_000,
    });
  }

  /** An XOAUTH2 login as the mailbox: SMTP AUTH for a sending mailbox, IMAP for a fetched or watched one. */
  private async login(m: MailboxNeed, token: AccessToken): Promise<LoginOutcome> {
    const cloud = cloudFor(this.conn.cloud);
    const ca = await this.o.readCa(this.name);
    const timeoutMs = this.o.timeoutMs ?? 30_000;
    if (m.smtpAuth) {
      const route = (this.o.config.relay?.routes ?? []).find((r) => r.connection === this.name && (r.transport === 'smtp' || r.graph.fallback === 'smtp'));
      const host = route?.smtp.host ?? cloud.exchange.smtp.host;
      const port = route?.smtp.port ?? cloud.exchange.smtp.port;
      const outcome: LoginOutcome = { ok: false, protocol: 'SMTP', host, port };
      let conn: SMTPConnection | undefined;
      try {
        conn = await smtpConnection({ host, port, tls: route?.smtp.tls ?? 'starttls', name: this.o.config.relay?.hostname ?? 'mailbridge-check', ca, timeoutMs, proxy: this.proxy() });
        const c = conn;
        await new Promise<void>((resolve, reject) => {
          c.once('error', reject);
          c.connect(() => resolve());
        });
        const oauth2 = xoauth2(m.address, token, async () => token);
        await new Promise<void>((resolve, reject) => c.login({ user: m.address, oauth2 } as never, (err) => (err ? reject(err) : resolve())));
        outcome.ok = true;
      } catch (err) {
        const e = err as { response?: string; message?: string; code?: string };
        const reply = (e.response ?? e.message ?? '').trim();
        outcome.reply = reply;
        if (/5\.7\.139/.test(reply) && /disabled for the Mailbox/i.test(reply)) outcome.stage = 'disabled-mailbox';
        else if (/5\.7\.139/.test(reply) && /disabled for the Tenant/i.test(reply)) outcome.stage = 'disabled-tenant';
        else if (/^535\b/.test(reply)) outcome.stage = 'mailbox';
        else if (/^5\d\d\b/.test(reply)) outcome.stage = 'token';
        else outcome.stage = 'network';
      } finally {
        try {
          conn?.quit();
        } catch {
          // already closed
        }
        conn?.close();
      }
      this.log.debug({ connection: this.name, mailbox: m.address, ok: outcome.ok, stage: outcome.stage }, 'check: SMTP login');
      return outcome;
    }
    const source = this.imapSourceFor(m.address);
    const outcome: LoginOutcome = { ok: false, protocol: 'IMAP', host: source.host, port: source.port };
    const client = imapClient(
      {
        host: source.host,
        port: source.port,
        tls: source.tls,
        ca: source.ca ?? ca,
        servername: source.servername,
        auth: { user: m.address, accessToken: token.accessToken },
        proxy: this.proxy(),
        log: this.log,
        idleRestartMs: 600_000,
        connectTimeoutMs: timeoutMs,
      },
      {},
    );
    client.on('error', () => undefined);
    try {
      await connectWithin(client, AbortSignal.timeout(timeoutMs + 5000), timeoutMs);
      // Exchange says "authenticated but not connected" only on the command after AUTHENTICATE.
      await client.mailboxOpen('INBOX', { readOnly: true });
      outcome.ok = true;
    } catch (err) {
      const e = err as { response?: string; responseText?: string; message?: string; code?: string; authenticationFailed?: boolean };
      const reply = [e.responseText, e.response, e.message].filter(Boolean).join(' ').trim();
      outcome.reply = reply.slice(0, 200);
      if (/authenticated but not connected/i.test(reply)) outcome.stage = 'mailbox';
      else if (e.authenticationFailed || /AUTHENTICATE failed|AUTHENTICATIONFAILED/i.test(reply)) outcome.stage = 'token';
      else if (e.code && /^E[A-Z]+/.test(e.code)) outcome.stage = 'network';
      else outcome.stage = 'mailbox';
    } finally {
      await client.logout().catch(() => client.close());
    }
    return outcome;
  }

  /** Where the configuration reads this mailbox over IMAP (a connector or watch group), else the cloud's host. */
  private imapSourceFor(address: string): { host: string; port: number; tls: 'implicit' | 'starttls' | 'none'; ca?: string; servername?: string } {
    const cloud = cloudFor(this.conn.cloud);
    for (const c of Object.values(this.o.config.connectors ?? {})) {
      if (c.connection !== this.name || c.source.kind !== 'imap') continue;
      const s = c.source;
      return { host: s.host ?? cloud.exchange.imap.host, port: s.port, tls: s.tls, ...(s.servername ? { servername: s.servername } : {}) };
    }
    void address;
    return { host: cloud.exchange.imap.host, port: cloud.exchange.imap.port, tls: 'implicit' };
  }
}

/**
 * The Graph base URL configured for this connection (relay route, connector, watch group), else
 * one configured for another connection of the same cloud (one tenant's Graph is one service),
 * else undefined: the cloud's.
 */
export function graphUrlFor(config: Config, connection: string): string | undefined {
  const cloud = config.connections[connection]?.cloud;
  const found: Array<{ connection: string; url: string }> = [];
  for (const r of config.relay?.routes ?? []) if (r.graph.url) found.push({ connection: r.connection, url: r.graph.url });
  for (const c of Object.values(config.connectors ?? {})) if (c.source.kind === 'graph' && c.source.baseUrl) found.push({ connection: c.connection, url: c.source.baseUrl });
  for (const g of Object.values(config.notify?.watch?.groups ?? {})) {
    if (g.kind === 'graph' && g.graph.baseUrl) for (const l of g.listeners) if (l.connection) found.push({ connection: l.connection, url: g.graph.baseUrl });
  }
  return (found.find((f) => f.connection === connection) ?? found.find((f) => config.connections[f.connection]?.cloud === cloud))?.url;
}

function decodeScp(token: string): string[] | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { scp?: unknown };
    return typeof payload.scp === 'string' ? payload.scp.split(' ').filter(Boolean) : undefined;
  } catch {
    return undefined;
  }
}

/** A TLS handshake with host:port, directly or through the proxy's CONNECT tunnel. */
async function tlsReach(host: string, port: number, o: { ca?: string | undefined; proxy: ProxySettings; timeoutMs: number }): Promise<void> {
  const route = proxyRoute(o.proxy, { host, port });
  const ca = o.ca ? [...rootCertificates, o.ca] : undefined;
  let tunnel: Duplex | undefined;
  if (route.proxy) tunnel = await openTunnel(route.proxy, host, port, { ca: o.ca, timeoutMs: o.timeoutMs });
  const socket: TLSSocket = tlsConnect({
    ...(tunnel ? { socket: tunnel } : { host, port }),
    servername: /^[\d.]+$|:/.test(host) ? undefined : host,
    ...(ca ? { ca } : {}),
    minVersion: 'TLSv1.2',
    timeout: o.timeoutMs,
  });
  try {
    await Promise.race([
      once(socket, 'secureConnect'),
      once(socket, 'timeout').then(() => {
        throw Object.assign(new Error(`no TLS handshake within ${o.timeoutMs / 1000} s`), { code: 'ETIMEDOUT' });
      }),
    ]);
  } finally {
    socket.destroy();
    tunnel?.destroy();
  }
}

function proxyShown(p: ProxySettings): string {
  return p.proxy ?? p.env?.HTTPS_PROXY ?? p.env?.https_proxy ?? '-';
}

export type { MbCode };
