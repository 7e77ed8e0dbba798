/**
 * What a Microsoft access token says about who it is for (app or user, app ID, service principal
 * object ID, tenant, roles), read for fix texts: the PowerShell lines an admin pastes need the IDs
 * from the token's own claims. Nothing is verified here, it only names things.
 */
// The subpath: jose's index loads signing and encryption too, which reading claims does not need.
import { decodeJwt } from 'jose/jwt/decode';

export interface TokenFacts {
  /** App-only token (roles claim) or delegated (scp claim). */
  appOnly: boolean;
  appId?: string;
  /** App-only: the enterprise application (service principal) object ID; delegated: the user's. */
  objectId?: string;
  tenantId?: string;
  /** Delegated: the signed-in user. */
  user?: string;
  roles: string[];
}

export function tokenFacts(token: string | undefined): TokenFacts | undefined {
  if (!token) return undefined;
  try {
    const c = decodeJwt(token) as Record<string, unknown>;
    const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
    const out: TokenFacts = { appOnly: c.scp === undefined, roles: Array.isArray(c.roles) ? c.roles.filter((r): r is string => typeof r === 'string') : [] };
    const appId = str(c.appid) ?? str(c.azp);
    const objectId = str(c.oid);
    const tenantId = str(c.tid);
    const user = str(c.upn) ?? str(c.unique_name) ?? str(c.preferred_username);
    if (appId) out.appId = appId;
    if (objectId) out.objectId = objectId;
    if (tenantId) out.tenantId = tenantId;
    if (user) out.user = user;
    return out;
  } catch {
    return undefined;
  }
}
