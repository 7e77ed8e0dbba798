/**
 * Who calls the sandbox EWS and as which mailbox.
 *
 * Credentials:
 * - `Authorization: Bearer` (both profiles): a JWT signed RS256 by a key of the sandbox Entra's JWKS,
 *   not expired (five minutes' skew), iss = the v1 issuer of a sandbox tenant, aud = Office 365
 *   Exchange Online of that tenant's cloud (as src/sandbox/exchange/authz.ts checks IMAP/SMTP
 *   tokens). App-only tokens need the role `full_access_as_app`, delegated ones the scope
 *   `EWS.AccessAsUser.All`. Anything else: HTTP 401 with an empty body, `WWW-Authenticate: Bearer …`
 *   and an `x-ms-diagnostics` reason, as Exchange Online answers (reason texts [APPROX]).
 * - `Authorization: Basic` (on-premises profiles only; Exchange Online turned Basic auth off for
 *   EWS): a directory user's UPN and its sandbox password (the same the sandbox sign-in page uses).
 *   Exchange Online profile: 401.
 *
 * The mailbox a request acts as:
 * - With `t:ExchangeImpersonation/t:ConnectingSID` (SmtpAddress, PrimarySmtpAddress or
 *   PrincipalName; a SID is not resolvable here): that mailbox. Unknown → fault
 *   ErrorNonExistentMailbox. App-only: any mailbox of the token's tenant (full_access_as_app;
 *   application access policies are not modelled). Users: the mailboxes an ApplicationImpersonation
 *   role assignment gives them (New-ManagementRoleAssignment -User, within its
 *   -CustomRecipientWriteScope), and — an approximation kept from before that role was modelled —
 *   the mailboxes they hold FullAccess on [APPROX]; ErrorImpersonateUserDenied for the others.
 * - Without it: app-only → fault ErrorInvalidExchangeImpersonationHeader (Exchange Online's
 *   "ExchangeImpersonation SOAP header must be present for this type of OAuth token."); a user acts
 *   as its own mailbox.
 */
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import type { SandboxDirectory } from '../directory.ts';
import { CLOUD_PROFILES } from '../entra/clouds.ts';
import { inScope } from '../exchange/authz.ts';
import { EwsFault } from './errors.ts';
import { challengeMessage, ntlmMessage, parseAuthenticate, verifyNtlmV2, type NtlmServer } from './ntlm.ts';

export interface JwksLike {
  keys: readonly object[];
}
export type JwksSource = JwksLike | (() => JwksLike | Promise<JwksLike>);

/** A mailbox the sandbox EWS serves (directory mailboxes, or synthetic ones). */
export interface EwsMailboxInfo {
  /** Primary SMTP address as spelled by the directory. */
  address: string;
  displayName: string;
  /** Tenant that owns it; undefined: any tenant's app may use it (synthetic mode). */
  tenantId?: string;
  /** Trustees with FullAccess (user UPNs, service principal object IDs). */
  fullAccess: string[];
  /** UPNs of users whose ApplicationImpersonation role assignment covers this mailbox (Exchange Server RBAC). */
  impersonators?: string[];
}

export type MailboxResolver = (address: string) => EwsMailboxInfo | undefined;

export type EwsPrincipal =
  | { kind: 'app'; tenantId: string; appId: string; objectId: string }
  | { kind: 'user'; tenantId: string; upn: string; via: 'bearer' | 'basic' | 'ntlm' };

/** Windows authentication of the on-premises profiles (ntlm.ts): per-connection NTLM state. */
export interface WindowsAuth {
  /** NTLM required: Basic is refused (Exchange's default EWS virtual directory has only Windows authentication). */
  required: boolean;
  connections: WeakMap<object, { challenge?: Buffer; principal?: EwsPrincipal }>;
  server: NtlmServer;
}

export interface AuthOptions {
  directory: SandboxDirectory;
  jwks: JwksSource;
  online: boolean;
  /** Host name for the Basic realm. */
  realm: string;
  windows?: WindowsAuth;
  /** The TCP connection the request came on (NTLM authenticates connections). */
  connection?: object;
}

const CLOCK_SKEW_S = 300;

function unauthorized(online: boolean, realm: string, reason?: string, ntlmOnly = false): EwsFault {
  const headers: Record<string, string> = online
    ? {
        'www-authenticate':
          'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", trusted_issuers="00000001-0000-0000-c000-000000000000@*", token_types="app_asserted_user_v1 service_asserted_app_v1", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"' +
          (reason ? ', error="invalid_token"' : ''),
      }
    : { 'www-authenticate': ntlmOnly ? 'Negotiate, NTLM, Bearer' : `Negotiate, NTLM, Basic realm="${realm}", Bearer` };
  if (reason) headers['x-ms-diagnostics'] = `2000001;reason="${reason}";error_category="invalid_token"`;
  return new EwsFault('ErrorAccessDenied', { status: 401, headers });
}

export async function authenticate(options: AuthOptions, authorization: string | undefined, now: number): Promise<EwsPrincipal> {
  const header = authorization ?? '';
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (bearer) return verifyBearer(options, bearer[1]!, now);
  const windows = !options.online && options.windows && options.connection ? { ...options.windows, connection: options.connection } : undefined;
  const ntlm = windows ? ntlmMessage(header) : undefined;
  if (windows && ntlm) return ntlmStep(options, windows, ntlm);
  // A connection NTLM authenticated stays so (IIS keeps the logon per connection).
  const kept = windows && header === '' ? windows.connections.get(windows.connection)?.principal : undefined;
  if (kept) return kept;
  const basic = /^Basic\s+(\S+)\s*$/i.exec(header);
  if (basic) {
    if (options.online) throw unauthorized(true, options.realm);
    if (windows?.required) throw unauthorized(false, options.realm, undefined, true);
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    const name = (i >= 0 ? decoded.slice(0, i) : decoded).replace(/^[^\\]*\\/, '');
    const password = i >= 0 ? decoded.slice(i + 1) : '';
    for (const tenant of options.directory.data.tenants) {
      const user = tenant.users.find((u) => u.upn.toLowerCase() === name.toLowerCase());
      if (user && !user.disabled && user.password === password) return { kind: 'user', tenantId: tenant.id, upn: user.upn, via: 'basic' };
    }
    throw unauthorized(false, options.realm);
  }
  throw unauthorized(options.online, options.realm, undefined, windows?.required === true);
}

/** One NTLM leg: NEGOTIATE → 401 with a CHALLENGE; AUTHENTICATE → the user, if the NTLMv2 response is right. */
function ntlmStep(options: AuthOptions, w: WindowsAuth & { connection: object }, msg: { type: number; buf: Buffer }): EwsPrincipal {
  const state = w.connections.get(w.connection) ?? {};
  w.connections.set(w.connection, state);
  if (msg.type === 1) {
    const { header, challenge } = challengeMessage(w.server);
    state.challenge = challenge;
    delete state.principal;
    throw new EwsFault('ErrorAccessDenied', { status: 401, headers: { 'www-authenticate': header } });
  }
  const refused = () => unauthorized(false, options.realm, undefined, w.required);
  const challenge = state.challenge;
  delete state.challenge;
  const auth = msg.type === 3 ? parseAuthenticate(msg.buf) : undefined;
  if (!challenge || !auth) throw refused();
  for (const tenant of options.directory.data.tenants) {
    for (const user of tenant.users) {
      if (user.disabled || !sameAccount(user.upn, auth.user, auth.domain)) continue;
      if (!verifyNtlmV2(auth, challenge, user.password)) throw refused();
      state.principal = { kind: 'user', tenantId: tenant.id, upn: user.upn, via: 'ntlm' };
      return state.principal;
    }
  }
  throw refused();
}

/** A UPN (empty domain), or DOMAIN\\user where DOMAIN is the UPN's DNS domain or its NetBIOS name (first label). */
function sameAccount(upn: string, user: string, domain: string): boolean {
  const [local = '', dns = ''] = upn.toLowerCase().split('@');
  const u = user.toLowerCase();
  if (u.includes('@')) return u === upn.toLowerCase() && domain === '';
  const d = domain.toLowerCase();
  return u === local && (d === dns || d === dns.split('.')[0]);
}

async function verifyBearer(options: AuthOptions, token: string, now: number): Promise<EwsPrincipal> {
  const { directory, jwks, online, realm } = options;
  const keySet = (typeof jwks === 'function' ? await jwks() : jwks) as JSONWebKeySet;
  let claims: JWTPayload;
  try {
    ({ payload: claims } = await jwtVerify(token, createLocalJWKSet(keySet), { algorithms: ['RS256'], clockTolerance: CLOCK_SKEW_S, currentDate: new Date(now) }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) throw unauthorized(online, realm, 'The token has expired.');
    throw unauthorized(online, realm, 'The token is invalid.');
  }
  const tid = typeof claims.tid === 'string' ? claims.tid : '';
  const tenant = directory.data.tenants.find((t) => t.id.toLowerCase() === tid.toLowerCase());
  if (!tenant || !tenant.exchangeOnline) throw unauthorized(online, realm, 'The token issuer is not trusted.');
  const profile = CLOUD_PROFILES[tenant.cloud];
  if (typeof claims.iss !== 'string' || claims.iss.toLowerCase() !== `https://${profile.v1IssuerHost}/${tenant.id}/`.toLowerCase()) {
    throw unauthorized(online, realm, 'The token issuer is not trusted.');
  }
  const auds = (Array.isArray(claims.aud) ? claims.aud : [claims.aud]).filter((a): a is string => typeof a === 'string').map((a) => a.replace(/\/+$/, '').toLowerCase());
  const exchangeIds = profile.resources.exchange.identifierUris.map((u) => u.replace(/\/+$/, '').toLowerCase());
  if (!auds.some((a) => exchangeIds.includes(a))) throw unauthorized(online, realm, 'The audience claim value is invalid.');
  if (typeof claims.scp === 'string') {
    if (!claims.scp.split(/\s+/).some((s) => s.toLowerCase() === 'ews.accessasuser.all')) throw unauthorized(online, realm, 'The token does not have the required scope EWS.AccessAsUser.All.');
    const upn = [claims.upn, claims.unique_name, claims.preferred_username].find((v): v is string => typeof v === 'string') ?? '';
    return { kind: 'user', tenantId: tenant.id, upn, via: 'bearer' };
  }
  const roles = Array.isArray(claims.roles) ? claims.roles : [];
  if (!roles.includes('full_access_as_app')) throw unauthorized(online, realm, 'The token does not have the required role full_access_as_app.');
  const appId = typeof claims.appid === 'string' ? claims.appid : typeof claims.azp === 'string' ? claims.azp : '';
  return { kind: 'app', tenantId: tenant.id, appId, objectId: typeof claims.oid === 'string' ? claims.oid : '' };
}

/** May this principal open `mailbox` (as itself, by FullAccess, or — `impersonating` — by ApplicationImpersonation)? */
export function mayAccess(principal: EwsPrincipal, mailbox: EwsMailboxInfo, impersonating = false): boolean {
  if (mailbox.tenantId && mailbox.tenantId.toLowerCase() !== principal.tenantId.toLowerCase()) return false;
  if (principal.kind === 'app') return true;
  const upn = principal.upn.toLowerCase();
  if (impersonating && (mailbox.impersonators ?? []).some((u) => u.toLowerCase() === upn)) return true;
  return mailbox.address.toLowerCase() === upn || mailbox.fullAccess.some((t) => t.toLowerCase() === upn);
}

/** The default resolver: mailboxes of the sandbox directory. */
export function directoryMailboxes(directory: SandboxDirectory): MailboxResolver {
  return (address) => {
    const found = directory.mailbox(address);
    if (!found) return undefined;
    const impersonators = (found.tenant.exchange.managementRoleAssignments ?? [])
      .filter((a) => a.user !== undefined && a.role.toLowerCase() === 'applicationimpersonation' && inScope(found.tenant, a.customRecipientWriteScope, found.mailbox))
      .map((a) => a.user as string);
    return { address: found.mailbox.address, displayName: found.mailbox.displayName || found.mailbox.address, tenantId: found.tenant.id, fullAccess: found.mailbox.fullAccess, impersonators };
  };
}
