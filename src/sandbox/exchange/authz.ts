/**
 * Exchange Online's authorization of an OAuth2 (XOAUTH2) login to SMTP AUTH or IMAP, as the
 * sandbox's fronts need it: one call, one typed verdict each front maps to its own wire replies.
 *
 * Rules (../shared/reference/microsoft-facts.md §3.3, §3.4, §3.6):
 *  1. The token: RS256 signature from the sandbox Entra's JWKS, a v1 issuer
 *     (https://sts.windows.net/{tid}/ in the tenant's cloud), aud = an identifier of Office 365
 *     Exchange Online in that cloud (https://outlook.office365.com, https://outlook.office.com, the
 *     resource app ID), not expired (five minutes' clock skew, as Microsoft's token validation
 *     allows), a tenant that exists and has Exchange Online.
 *  2. The permission in the token: app-only tokens (no `scp`) need the role SMTP.SendAsApp or
 *     IMAP.AccessAsApp; delegated tokens need SMTP.Send or IMAP.AccessAsUser.All in `scp`.
 *  3. The mailbox named as the SASL user must exist in the token's tenant.
 *  4. SMTP only: SMTP AUTH must be enabled, per mailbox (Set-CASMailbox) or, when the mailbox
 *     setting is null, per tenant (Set-TransportConfig).
 *  5. App-only: the app must be registered with New-ServicePrincipal under the object ID the token
 *     carries in `oid` (the enterprise application's); a registration made with the app
 *     registration's object ID does not match, "Using the incorrect Object ID will cause an
 *     authentication failure". Then FullAccess on the mailbox (Add-MailboxPermission), granted to
 *     that service principal. SendAs alone is not enough to log in; it only widens whom the
 *     principal may send as (maySendAs).
 *     Delegated: the user is the mailbox, or holds FullAccess on it (shared mailboxes).
 *
 * Stages tell the fronts how Exchange shows the failure: `token` (the token or its permission is
 * refused: SMTP 535 5.7.3, IMAP `NO AUTHENTICATE failed.`), `disabled` (SMTP 535 5.7.139 with the
 * tenant or mailbox text), `mailbox` (token fine, no access to that mailbox: SMTP 535 5.7.3, IMAP
 * `OK AUTHENTICATE completed.` then `BAD User is authenticated but not connected.`).
 *
 *  4b. IMAP only: the mailbox's IMAP switch (Set-CASMailbox -ImapEnabled $false) refuses the login
 *     as a failed authentication (`NO AUTHENTICATE failed.`, what clients report for a mailbox with
 *     IMAP off [OBS, no Microsoft text for this case]).
 *
 * RBAC for Applications (SMTP only, facts §3.6): an app-only token without SMTP.SendAsApp may still
 * send when New-ManagementRoleAssignment gave the app's service principal 'Application
 * SMTP.SendAsApp' over a management scope that takes in the mailbox; then no FullAccess is needed.
 *
 * Limits: Conditional Access is not modelled; management scopes are read as `-eq` clauses on the
 * address joined by `-or` (no groups).
 */
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import type { SandboxDirectory } from '../directory.ts';
import { CLOUD_PROFILES } from '../entra/clouds.ts';
import type { SandboxMailbox, SandboxTenant } from '../model.ts';

export type Protocol = 'smtp' | 'imap';

/** A JWKS document ({ keys: [JWK…] }); typed loosely so Node's JsonWebKey and jose's JWK both fit. */
export interface JwksLike {
  keys: readonly object[];
}

/** The key set tokens are verified against: the JWKS itself, or a function returning the current one (keys can rotate; e.g. the sandbox Entra's `jwks`). */
export type JwksSource = JwksLike | (() => JwksLike | Promise<JwksLike>);

export interface AuthzRequest {
  protocol: Protocol;
  /** The SASL user (XOAUTH2 `user=`): the mailbox to open. */
  user: string;
  /** The bearer token (without "Bearer "). */
  token: string;
  /** Clock for expiry checks (ms since the epoch); default Date.now. */
  now?: number;
}

/** An app (client credentials) or a user (delegated) behind a valid token. */
export type Principal =
  | { kind: 'app'; tenantId: string; appId: string; /** oid: the service principal's object ID */ objectId: string; displayName: string; roles: string[] }
  | { kind: 'user'; tenantId: string; appId: string; objectId: string; upn: string; scopes: string[] };

export type AuthzStage = 'token' | 'disabled' | 'mailbox';

export type AuthzReason =
  // stage token
  | 'malformed_token'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_audience'
  | 'wrong_issuer'
  | 'unknown_tenant'
  | 'no_exchange_online'
  | 'missing_role'
  | 'missing_scope'
  // stage disabled
  | 'smtp_auth_disabled_tenant'
  | 'smtp_auth_disabled_mailbox'
  | 'imap_disabled_mailbox'
  // stage mailbox
  | 'mailbox_not_found'
  | 'service_principal_not_registered'
  | 'service_principal_object_id_mismatch'
  | 'no_full_access';

export interface AuthzGranted {
  ok: true;
  protocol: Protocol;
  tenant: SandboxTenant;
  mailbox: SandboxMailbox;
  /** The mailbox's primary address as the directory spells it. */
  address: string;
  principal: Principal;
  claims: JWTPayload;
}

export interface AuthzDenied {
  ok: false;
  protocol: Protocol;
  stage: AuthzStage;
  reason: AuthzReason;
  /** For logs and tests; never shown on the wire (Exchange does not say why). */
  detail: string;
  principal?: Principal;
  tenant?: SandboxTenant;
  mailbox?: SandboxMailbox;
}

export type AuthzResult = AuthzGranted | AuthzDenied;

/** The permission each protocol needs in an app-only token's `roles` and in a delegated token's `scp`. */
export const REQUIRED_PERMISSION: Record<Protocol, { role: string; scope: string }> = {
  smtp: { role: 'SMTP.SendAsApp', scope: 'SMTP.Send' },
  imap: { role: 'IMAP.AccessAsApp', scope: 'IMAP.AccessAsUser.All' },
};

/** Microsoft's token validation allows five minutes of clock skew. */
const CLOCK_SKEW_S = 300;

export async function authorize(directory: SandboxDirectory, jwks: JwksSource, request: AuthzRequest): Promise<AuthzResult> {
  const { protocol } = request;
  const deny = (stage: AuthzStage, reason: AuthzReason, detail: string, extra: Partial<AuthzDenied> = {}): AuthzDenied => ({
    ok: false,
    protocol,
    stage,
    reason,
    detail,
    ...extra,
  });

  // 1. The token.
  const keySet = (typeof jwks === 'function' ? await jwks() : jwks) as JSONWebKeySet;
  let claims: JWTPayload;
  try {
    const verified = await jwtVerify(request.token, createLocalJWKSet(keySet), {
      algorithms: ['RS256'],
      clockTolerance: CLOCK_SKEW_S,
      currentDate: new Date(request.now ?? Date.now()),
    });
    claims = verified.payload;
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) return deny('token', 'expired', 'token expired');
    if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'nbf') return deny('token', 'not_yet_valid', 'token not yet valid (nbf)');
    if (err instanceof joseErrors.JWSSignatureVerificationFailed || err instanceof joseErrors.JWKSNoMatchingKey) {
      return deny('token', 'bad_signature', `signature not verified: ${(err as Error).message}`);
    }
    return deny('token', 'malformed_token', `not a valid JWT: ${(err as Error).message}`);
  }
  const tid = typeof claims.tid === 'string' ? claims.tid : '';
  const tenant = tid ? directory.tenant(tid) : undefined;
  if (!tenant || tenant.id.toLowerCase() !== tid.toLowerCase()) return deny('token', 'unknown_tenant', `no tenant ${tid || '(tid missing)'}`);
  const profile = CLOUD_PROFILES[tenant.cloud];
  const issuer = `https://${profile.v1IssuerHost}/${tenant.id}/`;
  if (typeof claims.iss !== 'string' || claims.iss.toLowerCase() !== issuer.toLowerCase()) {
    return deny('token', 'wrong_issuer', `iss ${String(claims.iss)} is not ${issuer}`, { tenant });
  }
  const audiences = (Array.isArray(claims.aud) ? claims.aud : [claims.aud]).filter((a): a is string => typeof a === 'string');
  const exchangeIds = profile.resources.exchange.identifierUris.map((u) => u.replace(/\/+$/, '').toLowerCase());
  if (!audiences.some((a) => exchangeIds.includes(a.replace(/\/+$/, '').toLowerCase()))) {
    return deny('token', 'wrong_audience', `aud ${audiences.join(',') || '(none)'} is not Exchange Online in cloud ${tenant.cloud}`, { tenant });
  }
  if (!tenant.exchangeOnline) return deny('token', 'no_exchange_online', `tenant ${tenant.id} has no Exchange Online`, { tenant });

  // 2. The permission in the token.
  const need = REQUIRED_PERMISSION[protocol];
  const appId = str(claims.appid) || str(claims.azp);
  const objectId = str(claims.oid);
  let principal: Principal;
  if (typeof claims.scp === 'string') {
    const scopes = claims.scp.split(/\s+/).filter(Boolean);
    const upn = str(claims.upn) || str(claims.unique_name) || str(claims.preferred_username);
    principal = { kind: 'user', tenantId: tenant.id, appId, objectId, upn, scopes };
    if (!scopes.some((s) => s.toLowerCase() === need.scope.toLowerCase())) {
      return deny('token', 'missing_scope', `scp "${claims.scp}" lacks ${need.scope}`, { tenant, principal });
    }
  } else {
    const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : [];
    principal = { kind: 'app', tenantId: tenant.id, appId, objectId, displayName: str(claims.app_displayname), roles };
    // SMTP through RBAC for Applications needs no role in the token; it is checked per mailbox below.
    if (!roles.includes(need.role) && !(protocol === 'smtp' && rbacAssignments(tenant, principal).length > 0)) {
      return deny('token', 'missing_role', `roles [${roles.join(', ')}] lack ${need.role}`, { tenant, principal });
    }
  }

  // 3. The mailbox, in the token's tenant.
  const found = directory.mailbox(request.user);
  if (!found || found.tenant.id !== tenant.id) {
    return deny('mailbox', 'mailbox_not_found', `no mailbox ${request.user} in tenant ${tenant.id}`, { tenant, principal });
  }
  const { mailbox } = found;

  // 4. SMTP AUTH enabled (mailbox setting wins when set).
  if (protocol === 'smtp') {
    if (mailbox.smtpClientAuthenticationDisabled === true) {
      return deny('disabled', 'smtp_auth_disabled_mailbox', `SMTP AUTH disabled for mailbox ${mailbox.address}`, { tenant, principal, mailbox });
    }
    if (mailbox.smtpClientAuthenticationDisabled === null && tenant.smtpClientAuthenticationDisabled) {
      return deny('disabled', 'smtp_auth_disabled_tenant', `SMTP AUTH disabled for tenant ${tenant.id}`, { tenant, principal, mailbox });
    }
  }

  if (protocol === 'imap' && mailbox.imapEnabled === false) {
    return deny('disabled', 'imap_disabled_mailbox', `IMAP disabled for mailbox ${mailbox.address} (ImapEnabled $false)`, { tenant, principal, mailbox });
  }

  // 5. Access to the mailbox.
  if (principal.kind === 'app') {
    const registrations = tenant.exchange.servicePrincipals.filter((sp) => sp.appId.toLowerCase() === principal.appId.toLowerCase());
    if (registrations.length === 0) {
      return deny('mailbox', 'service_principal_not_registered', `no New-ServicePrincipal for app ${principal.appId}`, { tenant, principal, mailbox });
    }
    if (!registrations.some((sp) => sp.objectId.toLowerCase() === principal.objectId.toLowerCase())) {
      return deny(
        'mailbox',
        'service_principal_object_id_mismatch',
        `New-ServicePrincipal for app ${principal.appId} used object ID ${registrations.map((r) => r.objectId).join(', ')}, the token's oid is ${principal.objectId}`,
        { tenant, principal, mailbox },
      );
    }
  }
  if (principal.kind === 'app' && !principal.roles.includes(REQUIRED_PERMISSION[protocol].role)) {
    // RBAC for Applications: the role assignment's scope, not FullAccess, decides (facts §3.6).
    if (rbacAssignments(tenant, principal).some((a) => inScope(tenant, a.customResourceScope, mailbox))) {
      return { ok: true, protocol, tenant, mailbox, address: mailbox.address, principal, claims };
    }
    return deny('mailbox', 'no_full_access', `no 'Application SMTP.SendAsApp' role assignment of ${principal.objectId} covers ${mailbox.address}`, { tenant, principal, mailbox });
  }
  if (!hasFullAccess(tenant, mailbox, principal)) {
    const who = principal.kind === 'app' ? `service principal ${principal.objectId}` : `user ${principal.upn}`;
    return deny('mailbox', 'no_full_access', `${who} has no FullAccess on ${mailbox.address}`, { tenant, principal, mailbox });
  }
  return { ok: true, protocol, tenant, mailbox, address: mailbox.address, principal, claims };
}

/** The identities a permission entry (FullAccess, SendAs trustee) may name for this principal. */
export function principalIdentities(tenant: SandboxTenant, principal: Principal): string[] {
  if (principal.kind === 'user') {
    const user = tenant.users.find((u) => u.objectId.toLowerCase() === principal.objectId.toLowerCase());
    return [principal.upn, principal.objectId, user?.upn ?? ''].filter(Boolean).map((s) => s.toLowerCase());
  }
  // The Exchange service principal is known by its object ID (the oid) or its app ID; the display
  // name of the registration also identifies it in the cmdlets.
  const sp = tenant.exchange.servicePrincipals.find(
    (s) => s.appId.toLowerCase() === principal.appId.toLowerCase() && s.objectId.toLowerCase() === principal.objectId.toLowerCase(),
  );
  return sp ? [sp.objectId.toLowerCase(), sp.appId.toLowerCase()] : [];
}

function hasFullAccess(tenant: SandboxTenant, mailbox: SandboxMailbox, principal: Principal): boolean {
  const ids = principalIdentities(tenant, principal);
  if (principal.kind === 'user' && ids.includes(mailbox.address.toLowerCase())) return true;
  return mailbox.fullAccess.some((t) => ids.includes(t.toLowerCase()));
}

/**
 * Whether a logged-in principal may send with this From / envelope sender: the mailbox it logged in
 * as, the user's own mailbox (delegated), or a mailbox that granted the principal SendAs
 * (Add-RecipientPermission). Evaluated per message, so a grant made after login counts.
 */
export function maySendAs(directory: SandboxDirectory, granted: AuthzGranted, sender: string): boolean {
  const address = sender.toLowerCase();
  if (address === granted.address.toLowerCase()) return true;
  const ids = principalIdentities(granted.tenant, granted.principal);
  if (granted.principal.kind === 'user' && ids.includes(address)) return true;
  const target = directory.mailbox(address);
  if (!target || target.tenant.id !== granted.tenant.id) return false;
  return target.mailbox.sendAs.some((t) => ids.includes(t.toLowerCase()));
}

/** New-ManagementRoleAssignment -Role 'Application SMTP.SendAsApp' -App <this app's Exchange service principal>. */
function rbacAssignments(tenant: SandboxTenant, principal: Extract<Principal, { kind: 'app' }>) {
  const sp = tenant.exchange.servicePrincipals.find((s) => same(s.appId, principal.appId) && same(s.objectId, principal.objectId));
  if (!sp) return [];
  return (tenant.exchange.managementRoleAssignments ?? []).filter((a) => same(a.role, 'Application SMTP.SendAsApp') && a.app !== undefined && same(a.app, sp.objectId));
}

/**
 * Whether a management scope's RecipientRestrictionFilter takes in the mailbox. The sandbox reads
 * `-eq` clauses joined by `-or`, each `PrimarySmtpAddress|WindowsEmailAddress|EmailAddresses|Alias
 * -eq 'value'`; groups (MemberOfGroup) are not modelled and match nothing. No scope: the whole
 * organization.
 */
export function inScope(tenant: SandboxTenant, scopeName: string | undefined, mailbox: SandboxMailbox): boolean {
  if (scopeName === undefined) return true;
  const scope = (tenant.exchange.managementScopes ?? []).find((s) => same(s.name, scopeName));
  if (!scope) return false;
  return scope.recipientRestrictionFilter.split(/\s+-or\s+/i).some((clause) => {
    const m = /^\s*\(?\s*(\w+)\s+-eq\s+'([^']*)'\s*\)?\s*$/i.exec(clause);
    if (!m) return false;
    const property = (m[1] as string).toLowerCase();
    const value = (m[2] as string).replace(/^smtp:/i, '');
    if (property === 'alias') return same(mailbox.address.split('@')[0] ?? '', value);
    return ['primarysmtpaddress', 'windowsemailaddress', 'emailaddresses'].includes(property) && same(mailbox.address, value);
  });
}

function same(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}
