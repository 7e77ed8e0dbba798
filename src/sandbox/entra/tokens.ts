/**
 * Token minting. Access tokens are v1 JWTs as Exchange Online and Graph receive them (iss
 * https://sts.windows.net/{tid}/, ver 1.0, appid, roles or scp); ID tokens are v2 (iss = the
 * sandbox authority + /{tid}/v2.0, matching its OpenID configuration). Lifetimes follow Entra:
 * access tokens live a random 60–90 minutes, iat/nbf are backdated five minutes for clock skew,
 * ext_expires_in equals expires_in, and client credentials never yield a refresh token.
 */
import { createHash, randomBytes, randomInt, randomUUID } from 'node:crypto';
import type { SandboxApp, SandboxTenant, SandboxUser } from '../model.ts';
import { effectiveAppRoles } from '../registration.ts';
import { CLOUD_PROFILES } from './clouds.ts';
import type { SigningKey } from './keys.ts';
import { responseScope, type DelegatedGrant, type DelegatedScopes, type ResourceScopes } from './scopes.ts';
import type { EntraState } from './state.ts';

/** appidacr: 0 public client, 1 client secret, 2 certificate. */
export type AppIdAcr = '0' | '1' | '2';

const BACKDATE_S = 300;
const ID_TOKEN_LIFETIME_S = 3600;

export function v1Issuer(tenant: SandboxTenant): string {
  return `https://${CLOUD_PROFILES[tenant.cloud].v1IssuerHost}/${tenant.id}/`;
}

/** "A random value ranging between 60-90 minutes" (access-tokens.md); 3599 is the floor seen on the wire. */
function accessTokenLifetime(): number {
  return randomInt(3599, 5400);
}

function opaque(len: number): string {
  return randomBytes(len).toString('base64url');
}

/** Pairwise subject: stable per user and app, different across apps, like Entra's `sub`. */
function pairwiseSub(userOid: string, appId: string): string {
  return createHash('sha256').update(`${userOid}|${appId}`).digest('base64url').slice(0, 43);
}

export interface Minter {
  key: SigningKey;
  state: EntraState;
  now: () => number;
}

export async function appOnlyToken(m: Minter, tenant: SandboxTenant, app: SandboxApp, resource: ResourceScopes, appidacr: AppIdAcr): Promise<Record<string, unknown>> {
  const nowS = Math.floor(m.now() / 1000);
  const expiresIn = accessTokenLifetime();
  const iss = v1Issuer(tenant);
  // Grants made through Graph count once their propagation delay is over (registration.ts).
  const roles = effectiveAppRoles(app, resource.principal.kind, m.now());
  const claims: Record<string, unknown> = {
    aud: resource.uri,
    iss,
    iat: nowS - BACKDATE_S,
    nbf: nowS - BACKDATE_S,
    exp: nowS + expiresIn,
    aio: opaque(48),
    app_displayname: app.displayName,
    appid: app.appId,
    appidacr,
    azp: app.appId,
    idp: iss,
    idtyp: 'app',
    oid: app.servicePrincipalId,
    rh: `0.A${opaque(40)}.`,
    sub: app.servicePrincipalId,
    tid: tenant.id,
    uti: opaque(16),
    ver: '1.0',
  };
  // No granted app role: Entra still issues the token, just without `roles` (facts §1.2).
  if (roles.length > 0) claims.roles = [...roles];
  return { token_type: 'Bearer', expires_in: expiresIn, ext_expires_in: expiresIn, access_token: await m.key.sign(claims) };
}

export interface UserTokenRequest {
  base: string;
  tenant: SandboxTenant;
  app: SandboxApp;
  user: SandboxUser;
  grant: DelegatedGrant;
  requested: DelegatedScopes;
  appidacr: AppIdAcr;
  /** When the user signed in (ms); carried into refresh tokens. */
  authTime: number;
  nonce?: string;
  clientInfo: boolean;
  /** Issue a refresh token (offline_access was part of the grant). */
  refresh: boolean;
  /** Scopes recorded with a new refresh token. */
  refreshScope: string;
}

export async function userTokens(m: Minter, r: UserTokenRequest): Promise<Record<string, unknown>> {
  const now = m.now();
  const nowS = Math.floor(now / 1000);
  const expiresIn = accessTokenLifetime();
  const { tenant, app, user } = r;
  const sid = randomUUID();
  const access: Record<string, unknown> = {
    aud: r.grant.uri,
    iss: v1Issuer(tenant),
    iat: nowS - BACKDATE_S,
    nbf: nowS - BACKDATE_S,
    exp: nowS + expiresIn,
    acr: '1',
    aio: opaque(48),
    amr: ['pwd'],
    app_displayname: app.displayName,
    appid: app.appId,
    appidacr: r.appidacr,
    azp: app.appId,
    idtyp: 'user',
    ipaddr: '127.0.0.1',
    name: user.displayName || user.upn,
    oid: user.objectId,
    rh: `0.A${opaque(40)}.`,
    scp: r.grant.scp.join(' '),
    sid,
    sub: pairwiseSub(user.objectId, app.appId),
    tid: tenant.id,
    unique_name: user.upn,
    upn: user.upn,
    uti: opaque(16),
    ver: '1.0',
  };
  const body: Record<string, unknown> = {
    token_type: 'Bearer',
    scope: responseScope(r.grant, r.requested),
    expires_in: expiresIn,
    ext_expires_in: expiresIn,
    access_token: await m.key.sign(access),
  };
  if (r.refresh) {
    const token = m.state.newRefreshToken();
    m.state.refreshTokens.set(token, {
      tenantId: tenant.id,
      appId: app.appId,
      userOid: user.objectId,
      scope: r.refreshScope,
      authTime: r.authTime,
      issuedAt: now,
      lastUsedAt: now,
    });
    body.refresh_token = token;
  }
  if (r.grant.openid) {
    const id: Record<string, unknown> = {
      aud: app.appId,
      iss: `${r.base}/${tenant.id}/v2.0`,
      iat: nowS,
      nbf: nowS,
      exp: nowS + ID_TOKEN_LIFETIME_S,
      oid: user.objectId,
      rh: `0.A${opaque(40)}.`,
      sid,
      sub: pairwiseSub(user.objectId, app.appId),
      tid: tenant.id,
      uti: opaque(16),
      ver: '2.0',
    };
    if (r.grant.profile) {
      id.name = user.displayName || user.upn;
      id.preferred_username = user.upn;
    }
    if (r.grant.email) id.email = user.upn;
    // App roles assigned to the user on this app (facts addendum "App roles in ID tokens"): the
    // claim exists only when at least one is assigned.
    const userRoles = [...new Set((app.userRoles ?? []).filter((a) => [user.upn.toLowerCase(), user.objectId.toLowerCase()].includes(a.user.toLowerCase())).map((a) => a.role))];
    if (userRoles.length > 0) id.roles = userRoles;
    // Only echo a nonce the authorize request carried; MSAL rejects one it did not send.
    if (r.nonce) id.nonce = r.nonce;
    body.id_token = await m.key.sign(id);
  }
  if (r.clientInfo) body.client_info = clientInfo(user, tenant);
  return body;
}

/** client_info: base64url JSON {uid, utid} that MSAL builds the home account ID from. */
export function clientInfo(user: SandboxUser, tenant: SandboxTenant): string {
  return Buffer.from(JSON.stringify({ uid: user.objectId, utid: tenant.id })).toString('base64url');
}
