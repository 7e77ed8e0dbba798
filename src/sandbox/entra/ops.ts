/**
 * Run-time changes to the sandbox directory, as an admin makes them in the Entra portal or with
 * Graph: grant/revoke app roles (admin consent for application permissions), client secrets
 * (add with Graph addPassword's defaults and 24-month limit, remove, expire), certificates,
 * delegated consent, disabling an app, adding and disabling users, revoking sign-in sessions.
 *
 * Plain synchronous functions on the shared SandboxDirectory: the next token request sees the
 * change, in every emulator holding the same directory. Tenants are named by ID or domain, apps
 * by application (client) ID. Failures throw SandboxOpError (op-errors.ts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { registerSecret } from '../../log/redact.ts';
import type { SandboxDirectory } from '../directory.ts';
import { sandboxAppSchema, sandboxUserSchema, type SandboxApp, type SandboxTenant, type SandboxUser } from '../model.ts';
import { registeredCert } from './assertion.ts';
import { CLOUD_PROFILES, type ResourceKind } from './clouds.ts';
import { SandboxOpError } from './op-errors.ts';
import { OIDC_SCOPES, parseDelegatedScopes } from './scopes.ts';
import { findUser } from './users.ts';

const DAY = 86_400_000;

export function tenantOf(dir: SandboxDirectory, tenant: string): SandboxTenant {
  const t = dir.tenant(tenant);
  if (!t) throw new SandboxOpError('MB_SANDBOX_TENANT_NOT_FOUND', { tenant });
  return t;
}

export function appOf(dir: SandboxDirectory, tenant: string, appId: string): SandboxApp {
  const t = tenantOf(dir, tenant);
  const a = dir.app(t, appId);
  if (!a) throw new SandboxOpError('MB_SANDBOX_APP_NOT_FOUND', { tenant, appId });
  return a;
}

export function userOf(dir: SandboxDirectory, tenant: string, upn: string): SandboxUser {
  const u = findUser(tenantOf(dir, tenant), upn);
  if (!u) throw new SandboxOpError('MB_SANDBOX_USER_NOT_FOUND', { tenant, upn });
  return u;
}

// ---- apps ------------------------------------------------------------------------------------

export function addApp(
  dir: SandboxDirectory,
  tenant: string,
  options: { displayName?: string; publicClient?: boolean; redirectUris?: string[]; appId?: string } = {},
): SandboxApp {
  const t = tenantOf(dir, tenant);
  const app = sandboxAppSchema.parse({
    appId: options.appId ?? randomUUID(),
    objectId: randomUUID(),
    servicePrincipalId: randomUUID(),
    displayName: options.displayName ?? 'mailbridge',
    publicClient: options.publicClient ?? false,
    redirectUris: options.redirectUris ?? [],
  });
  t.apps.push(app);
  return app;
}

/** Disable (accountEnabled = false on the service principal): every token request fails with AADSTS7000112. */
export function setAppDisabled(dir: SandboxDirectory, tenant: string, appId: string, disabled: boolean): void {
  appOf(dir, tenant, appId).disabled = disabled;
}

/** Admin consent for an application permission; app-only tokens for that resource carry it in `roles`. */
export function grantAppRole(dir: SandboxDirectory, tenant: string, appId: string, resource: ResourceKind, role: string): void {
  const t = tenantOf(dir, tenant);
  const app = appOf(dir, tenant, appId);
  const principal = CLOUD_PROFILES[t.cloud].resources[resource];
  const name = principal.appRoles.find((r) => r.toLowerCase() === role.toLowerCase());
  if (!name) throw new SandboxOpError('MB_SANDBOX_UNKNOWN_ROLE', { role, resource: principal.displayName, known: principal.appRoles.join(', ') });
  if (!app.appRoles[resource].includes(name)) app.appRoles[resource].push(name);
}

export function revokeAppRole(dir: SandboxDirectory, tenant: string, appId: string, resource: ResourceKind, role: string): void {
  const app = appOf(dir, tenant, appId);
  app.appRoles[resource] = app.appRoles[resource].filter((r) => r.toLowerCase() !== role.toLowerCase());
}

// ---- delegated consent ----------------------------------------------------------------------

function checkScope(t: SandboxTenant, scope: string): void {
  if ((OIDC_SCOPES as readonly string[]).includes(scope.toLowerCase())) return;
  try {
    // Validate as the token endpoint would (known resource and permission name), ignoring whether
    // the tenant has Exchange Online: consent can exist before the service does.
    parseDelegatedScopes(scope, { ...t, exchangeOnline: true });
  } catch {
    throw new SandboxOpError('MB_SANDBOX_UNKNOWN_SCOPE', { scope, cloud: t.cloud });
  }
  if (scope.endsWith('/.default')) throw new SandboxOpError('MB_SANDBOX_UNKNOWN_SCOPE', { scope, cloud: t.cloud });
}

/** Tenant-wide (admin) consent for delegated scopes, full form (https://outlook.office.com/SMTP.Send, offline_access). */
export function grantDelegatedConsent(dir: SandboxDirectory, tenant: string, appId: string, scopes: string[]): void {
  const t = tenantOf(dir, tenant);
  const app = appOf(dir, tenant, appId);
  for (const s of scopes) checkScope(t, s);
  for (const s of scopes) if (!app.delegatedConsent.some((c) => c.toLowerCase() === s.toLowerCase())) app.delegatedConsent.push(s);
}

export function revokeDelegatedConsent(dir: SandboxDirectory, tenant: string, appId: string, scopes: string[]): void {
  const app = appOf(dir, tenant, appId);
  const drop = new Set(scopes.map((s) => s.toLowerCase()));
  app.delegatedConsent = app.delegatedConsent.filter((c) => !drop.has(c.toLowerCase()));
}

/** Replace the consented scopes as a whole (empty list = no consent). */
export function setDelegatedConsent(dir: SandboxDirectory, tenant: string, appId: string, scopes: string[]): void {
  const t = tenantOf(dir, tenant);
  const app = appOf(dir, tenant, appId);
  for (const s of scopes) checkScope(t, s);
  app.delegatedConsent = [...scopes];
}

// ---- client secrets --------------------------------------------------------------------------

export interface AddedSecret {
  keyId: string;
  displayName: string;
  /** The value, returned only here (like Graph addPassword's secretText). Registered for redaction. */
  secretText: string;
  /** First three characters, as the portal shows it. */
  hint: string;
  startDateTime: string;
  endDateTime: string;
}

const SECRET_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.~';

/** Entra secret values look like "Abc8Q~…" (40 characters, with "8Q~" after the hint). */
function newSecretValue(): string {
  const pick = (n: number) => [...randomBytes(n)].map((b) => SECRET_CHARS[b % 64]).join('');
  return `${pick(3)}8Q~${pick(34)}`;
}

/** Graph addPassword: default end = start + 2 years; more than 24 months is refused. */
export function addSecret(
  dir: SandboxDirectory,
  tenant: string,
  appId: string,
  options: { displayName?: string; endDateTime?: string; now?: number } = {},
): AddedSecret {
  const app = appOf(dir, tenant, appId);
  const start = options.now ?? Date.now();
  const max = new Date(start);
  max.setUTCMonth(max.getUTCMonth() + 24);
  const end = options.endDateTime ? Date.parse(options.endDateTime) : max.getTime();
  if (!Number.isFinite(end) || end > max.getTime() + DAY) {
    throw new SandboxOpError('MB_SANDBOX_SECRET_LIFETIME', { endDateTime: options.endDateTime ?? '' });
  }
  const secretText = newSecretValue();
  registerSecret(secretText);
  const added: AddedSecret = {
    keyId: randomUUID(),
    displayName: options.displayName ?? '',
    secretText,
    hint: secretText.slice(0, 3),
    startDateTime: new Date(start).toISOString(),
    endDateTime: new Date(end).toISOString(),
  };
  app.secrets.push({ keyId: added.keyId, value: secretText, endDateTime: added.endDateTime });
  return added;
}

export function removeSecret(dir: SandboxDirectory, tenant: string, appId: string, keyId: string): void {
  const app = appOf(dir, tenant, appId);
  const before = app.secrets.length;
  app.secrets = app.secrets.filter((s) => s.keyId.toLowerCase() !== keyId.toLowerCase());
  if (app.secrets.length === before) throw new SandboxOpError('MB_SANDBOX_SECRET_NOT_FOUND', { appId, keyId });
}

/** Move a secret's end date into the past (default: one second before `now`): AADSTS7000222 from then on. */
export function expireSecret(dir: SandboxDirectory, tenant: string, appId: string, keyId: string, now: number = Date.now()): void {
  const app = appOf(dir, tenant, appId);
  const secret = app.secrets.find((s) => s.keyId.toLowerCase() === keyId.toLowerCase());
  if (!secret) throw new SandboxOpError('MB_SANDBOX_SECRET_NOT_FOUND', { appId, keyId });
  secret.endDateTime = new Date(now - 1000).toISOString();
}

// ---- certificates ----------------------------------------------------------------------------

export interface AddedCertificate {
  /** Hex SHA-1 thumbprint (upper case), as the portal lists it. */
  thumbprint: string;
  thumbprintSha256: string;
  /** keyCredentials.customKeyIdentifier: base64 SHA-1 thumbprint. */
  customKeyIdentifier: string;
  startDateTime: string;
  endDateTime: string;
}

/** Upload a public certificate (PEM). An expired one is accepted, as in the portal; assertions signed with it fail with AADSTS700027. */
export function addCertificate(dir: SandboxDirectory, tenant: string, appId: string, pem: string): AddedCertificate {
  const app = appOf(dir, tenant, appId);
  if (/PRIVATE KEY/.test(pem)) throw new SandboxOpError('MB_SANDBOX_BAD_CERTIFICATE', { detail: 'it contains a private key' });
  const match = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  if (!match) throw new SandboxOpError('MB_SANDBOX_BAD_CERTIFICATE', { detail: 'no PEM certificate block' });
  let cert;
  try {
    cert = registeredCert(match[0]);
  } catch (err) {
    throw new SandboxOpError('MB_SANDBOX_BAD_CERTIFICATE', { detail: (err as Error).message });
  }
  if (!app.certificates.some((c) => registeredCert(c.pem).sha1Hex === cert.sha1Hex)) app.certificates.push({ pem: match[0] });
  const sha256Hex = Buffer.from(cert.x5tS256, 'base64url').toString('hex').toUpperCase();
  return {
    thumbprint: cert.sha1Hex,
    thumbprintSha256: sha256Hex,
    customKeyIdentifier: Buffer.from(cert.sha1Hex, 'hex').toString('base64'),
    startDateTime: new Date(cert.x509.validFrom).toISOString(),
    endDateTime: new Date(cert.x509.validTo).toISOString(),
  };
}

export function removeCertificate(dir: SandboxDirectory, tenant: string, appId: string, thumbprint: string): void {
  const app = appOf(dir, tenant, appId);
  const key = thumbprint.replace(/[:\s]/g, '').toUpperCase();
  const before = app.certificates.length;
  app.certificates = app.certificates.filter((c) => {
    const r = registeredCert(c.pem);
    return r.sha1Hex !== key && Buffer.from(r.x5tS256, 'base64url').toString('hex').toUpperCase() !== key;
  });
  if (app.certificates.length === before) throw new SandboxOpError('MB_SANDBOX_CERT_NOT_FOUND', { appId, thumbprint });
}

// ---- users -----------------------------------------------------------------------------------

export function addUser(
  dir: SandboxDirectory,
  tenant: string,
  user: { upn: string; displayName?: string; password?: string; objectId?: string },
): SandboxUser {
  const t = tenantOf(dir, tenant);
  const domain = user.upn.split('@')[1]?.toLowerCase();
  if (!domain || !t.domains.some((d) => d.toLowerCase() === domain)) {
    throw new SandboxOpError('MB_SANDBOX_USER_DOMAIN', { upn: user.upn, tenant, domains: t.domains.join(', ') });
  }
  if (dir.data.tenants.some((x) => findUser(x, user.upn))) throw new SandboxOpError('MB_SANDBOX_USER_EXISTS', { upn: user.upn });
  const created = sandboxUserSchema.parse({
    objectId: user.objectId ?? randomUUID(),
    upn: user.upn,
    displayName: user.displayName ?? '',
    ...(user.password !== undefined ? { password: user.password } : {}),
  });
  t.users.push(created);
  return created;
}

/**
 * Enterprise application › Properties › "Assignment required?" and its Users and groups: with
 * `required`, only the `users` (UPNs) sign in and refresh; the others get AADSTS50105.
 */
export function setAppAssignment(dir: SandboxDirectory, tenant: string, appId: string, required: boolean, users: string[] = []): void {
  const app = appOf(dir, tenant, appId);
  app.assignmentRequired = required;
  app.assignedUsers = users;
}

/**
 * Enterprise application › Users and groups › Add user/group with a role (New-MgUserAppRoleAssignment):
 * the user's ID tokens for the app carry the role's value in `roles`. An empty list removes them all.
 */
export function setUserAppRoles(dir: SandboxDirectory, tenant: string, appId: string, upn: string, roles: string[]): void {
  const app = appOf(dir, tenant, appId);
  const user = userOf(dir, tenant, upn);
  const others = (app.userRoles ?? []).filter((a) => a.user.toLowerCase() !== user.upn.toLowerCase() && a.user.toLowerCase() !== user.objectId.toLowerCase());
  app.userRoles = [...others, ...roles.map((role) => ({ user: user.upn, role }))];
}

/** accountEnabled = false: sign-in and token redemption fail with AADSTS50057. */
export function setUserDisabled(dir: SandboxDirectory, tenant: string, upn: string, disabled: boolean): void {
  userOf(dir, tenant, upn).disabled = disabled;
}

/** Revoke-MgUserSignInSession: refresh tokens from earlier sign-ins fail with AADSTS50173. */
export function revokeSignInSessions(dir: SandboxDirectory, tenant: string, upn: string, now: number = Date.now()): void {
  userOf(dir, tenant, upn).signInSessionsValidFrom = new Date(now).toISOString();
}
