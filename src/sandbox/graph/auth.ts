/**
 * Who is calling and on which mailbox, as Microsoft Graph decides it for the mail endpoints.
 *
 *  1. The token (401 InvalidAuthenticationToken, graph errors.ts): `Authorization: Bearer`, a JWT
 *     signed RS256 by a key of the sandbox Entra's JWKS, not expired (five minutes' clock skew, as
 *     Microsoft's validation allows), iss = the v1 issuer of a sandbox tenant (tid), aud = Microsoft
 *     Graph in that tenant's cloud (https://graph.microsoft.com, …us, the resource app ID).
 *  2. The mailbox in the path (`/users/{id | userPrincipalName}` or `/me`), looked up in the token's
 *     tenant only: an object ID or UPN of a user, or a (shared) mailbox address. Unknown → 404
 *     ErrorInvalidUser; a user without a mailbox, or a tenant without Exchange Online → 404
 *     MailboxNotEnabledForRESTAPI; `/me` with an app-only token → 400.
 *  3. The permission (403 ErrorAccessDenied): app-only tokens need the role in `roles` (Mail.Send to
 *     send; Mail.Read or Mail.ReadWrite to read; Mail.ReadWrite to change), and may then use any
 *     mailbox of the tenant (application access policies are not modelled). Delegated tokens need
 *     the scope in `scp` for their own mailbox, and the `.Shared` scope plus FullAccess (reads,
 *     changes) or SendAs/FullAccess (sending) for another one.
 *  4. Send-as (403 ErrorSendAsDenied): the From of a message must be the mailbox in the path, or a
 *     mailbox that granted SendAs (Add-RecipientPermission) to that mailbox or to the caller (the
 *     app's service principal object ID or app ID; the signed-in user).
 */
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import type { SandboxDirectory } from '../directory.ts';
import { CLOUD_PROFILES } from '../entra/clouds.ts';
import type { SandboxMailbox, SandboxTenant } from '../model.ts';
import { graphErrors } from './errors.ts';

/** A JWKS document; typed loosely so Node's JsonWebKey and jose's JWK both fit. */
export interface JwksLike {
  keys: readonly object[];
}

/** The JWKS itself, or a function returning the current one (e.g. the sandbox Entra's `jwks`). */
export type JwksSource = JwksLike | (() => JwksLike | Promise<JwksLike>);

export type Principal =
  | { kind: 'app'; tenant: SandboxTenant; appId: string; objectId: string; roles: string[] }
  | { kind: 'user'; tenant: SandboxTenant; appId: string; objectId: string; upn: string; scopes: string[] };

/** What a request wants to do; each needs its own permission. */
export type Operation = 'send' | 'read' | 'readFolder' | 'write';

const CLOCK_SKEW_S = 300;

const ROLES: Record<Operation, string[]> = {
  send: ['Mail.Send'],
  read: ['Mail.Read', 'Mail.ReadWrite'],
  readFolder: ['Mail.ReadBasic', 'Mail.ReadBasic.All', 'Mail.Read', 'Mail.ReadWrite'],
  write: ['Mail.ReadWrite'],
};
const OWN_SCOPES: Record<Operation, string[]> = {
  send: ['Mail.Send'],
  read: ['Mail.Read', 'Mail.ReadWrite'],
  readFolder: ['Mail.ReadBasic', 'Mail.Read', 'Mail.ReadWrite'],
  write: ['Mail.ReadWrite'],
};
const SHARED_SCOPES: Record<Operation, string[]> = {
  send: ['Mail.Send.Shared'],
  read: ['Mail.Read.Shared', 'Mail.ReadWrite.Shared'],
  readFolder: ['Mail.Read.Shared', 'Mail.ReadWrite.Shared'],
  write: ['Mail.ReadWrite.Shared'],
};

/** Step 1: the bearer token. Throws a GraphError (401). */
export async function verifyToken(directory: SandboxDirectory, jwks: JwksSource, authorization: string | undefined, now: number): Promise<Principal> {
  const m = /^Bearer\s+(\S*)\s*$/i.exec(authorization ?? '');
  const token = m?.[1] ?? '';
  if (!token) throw graphErrors.tokenEmpty();
  // Not a JWS compact serialization at all (opaque or MSA-style tokens): Graph's CompactToken error.
  try {
    decodeProtectedHeader(token);
    decodeJwt(token);
  } catch {
    throw graphErrors.tokenMalformed();
  }
  const keySet = (typeof jwks === 'function' ? await jwks() : jwks) as JSONWebKeySet;
  let claims: JWTPayload;
  try {
    ({ payload: claims } = await jwtVerify(token, createLocalJWKSet(keySet), {
      algorithms: ['RS256'],
      clockTolerance: CLOCK_SKEW_S,
      currentDate: new Date(now),
    }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) throw graphErrors.tokenExpired();
    if (err instanceof joseErrors.JWTClaimValidationFailed && (err.claim === 'nbf' || err.claim === 'iat')) throw graphErrors.tokenExpired();
    if (err instanceof joseErrors.JWSSignatureVerificationFailed || err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) {
      throw graphErrors.tokenSignature();
    }
    throw graphErrors.tokenMalformed();
  }
  // Graph requires an expiry; a token without exp is not one Entra issues.
  if (typeof claims.exp !== 'number') throw graphErrors.tokenExpired();

  const tid = typeof claims.tid === 'string' ? claims.tid : '';
  const tenant = tid ? directory.data.tenants.find((t) => t.id.toLowerCase() === tid.toLowerCase()) : undefined;
  if (!tenant) throw graphErrors.tokenIssuer();
  const profile = CLOUD_PROFILES[tenant.cloud];
  const issuer = `https://${profile.v1IssuerHost}/${tenant.id}/`;
  if (typeof claims.iss !== 'string' || claims.iss.toLowerCase() !== issuer.toLowerCase()) throw graphErrors.tokenIssuer();
  const audiences = (Array.isArray(claims.aud) ? claims.aud : [claims.aud]).filter((a): a is string => typeof a === 'string');
  const graphIds = profile.resources.graph.identifierUris.map(normalizeAud);
  if (!audiences.some((a) => graphIds.includes(normalizeAud(a)))) throw graphErrors.tokenAudience();

  const appId = str(claims.appid) || str(claims.azp);
  const objectId = str(claims.oid);
  if (typeof claims.scp === 'string') {
    return {
      kind: 'user',
      tenant,
      appId,
      objectId,
      upn: str(claims.upn) || str(claims.unique_name) || str(claims.preferred_username),
      scopes: claims.scp.split(/\s+/).filter(Boolean),
    };
  }
  const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : [];
  return { kind: 'app', tenant, appId, objectId, roles };
}

export interface ResolvedMailbox {
  mailbox: SandboxMailbox;
  /** The mailbox's address as the directory spells it. */
  address: string;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Step 2: the mailbox named in the path (`me` for /me). Throws a GraphError (400/404). With the
 * directory, synthetic mailboxes (addresses and user object ids) are found too.
 */
export function resolveMailbox(principal: Principal, userSegment: string | 'me', directory?: SandboxDirectory): ResolvedMailbox {
  const { tenant } = principal;
  let key: string;
  if (userSegment === 'me') {
    if (principal.kind !== 'user') throw graphErrors.meAppOnly();
    key = principal.upn;
  } else {
    key = userSegment;
  }
  if (GUID.test(key)) {
    const user = tenant.users.find((u) => u.objectId.toLowerCase() === key.toLowerCase());
    const synthetic = user ? undefined : directory?.syntheticAddressOfUserId(tenant, key);
    if (!user && !synthetic) throw graphErrors.invalidUser(key);
    key = user ? user.upn : (synthetic as string);
  }
  const mailbox = tenant.exchange.mailboxes.find((m) => m.address.toLowerCase() === key.toLowerCase()) ?? directory?.syntheticMailbox(tenant, key);
  if (!mailbox) {
    if (tenant.users.some((u) => u.upn.toLowerCase() === key.toLowerCase())) throw graphErrors.mailboxNotEnabled();
    throw graphErrors.invalidUser(userSegment === 'me' ? key : userSegment);
  }
  if (!tenant.exchangeOnline) throw graphErrors.mailboxNotEnabled();
  return { mailbox, address: mailbox.address };
}

/** The identities a SendAs or FullAccess entry may name for this caller. */
function callerIdentities(principal: Principal): string[] {
  if (principal.kind === 'app') return [principal.objectId, principal.appId].filter(Boolean).map((s) => s.toLowerCase());
  return [principal.upn, principal.objectId].filter(Boolean).map((s) => s.toLowerCase());
}

function isOwnMailbox(principal: Principal, target: ResolvedMailbox): boolean {
  return principal.kind === 'user' && principal.upn.toLowerCase() === target.address.toLowerCase();
}

/** Step 3: the permission for this operation on this mailbox. Throws 403 ErrorAccessDenied. */
export function requirePermission(principal: Principal, target: ResolvedMailbox, op: Operation): void {
  if (principal.kind === 'app') {
    if (!principal.roles.some((r) => ROLES[op].includes(r))) throw graphErrors.accessDenied();
    return;
  }
  const has = (list: string[]) => principal.scopes.some((s) => list.some((l) => l.toLowerCase() === s.toLowerCase()));
  if (isOwnMailbox(principal, target)) {
    if (!has(OWN_SCOPES[op])) throw graphErrors.accessDenied();
    return;
  }
  if (!has(SHARED_SCOPES[op])) throw graphErrors.accessDenied();
  const ids = callerIdentities(principal);
  const granted = [...target.mailbox.fullAccess, ...(op === 'send' ? target.mailbox.sendAs : [])].some((t) => ids.includes(t.toLowerCase()));
  if (!granted) throw graphErrors.accessDenied();
}

/** Step 4: may a message from `sender` be submitted through `target`'s sendMail? */
export function maySendAs(principal: Principal, target: ResolvedMailbox, sender: string): boolean {
  const address = sender.toLowerCase();
  if (address === target.address.toLowerCase()) return true;
  // A signed-in user may always send as themselves.
  if (principal.kind === 'user' && principal.upn.toLowerCase() === address) return true;
  const from = principal.tenant.exchange.mailboxes.find((m) => m.address.toLowerCase() === address);
  if (!from) return false;
  const trustees = [target.address.toLowerCase(), ...callerIdentities(principal)];
  return from.sendAs.some((t) => trustees.includes(t.toLowerCase()));
}

function normalizeAud(a: string): string {
  return a.replace(/\/+$/, '').toLowerCase();
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}
