/**
 * Scope strings → resource principal + permissions, the way Entra reads them:
 *  - `{identifier URI or app ID}/{permission}` or `/.default`; a bare name (`Mail.Read`) is Graph;
 *  - `openid profile email offline_access` are OpenID scopes without a resource;
 *  - client credentials take exactly one `{resource}/.default` (AADSTS1002012, 70011);
 *  - an unknown resource, or Exchange in a tenant without Exchange Online, is AADSTS500011;
 *  - delegated consent is per resource principal and permission, whichever identifier URI names it
 *    (https://outlook.office.com/SMTP.Send and https://outlook.office365.com/SMTP.Send are one).
 */
import type { CloudName } from './clouds.ts';
import type { SandboxApp, SandboxTenant } from '../model.ts';
import { AadstsError } from './aadsts.ts';
import { CLOUD_PROFILES, resourceByIdentifier, type ResourceKind, type ResourcePrincipal } from './clouds.ts';

export const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;

export interface ResourceScopes {
  principal: ResourcePrincipal;
  /** The identifier as the client wrote it (without trailing slash): the token's aud. */
  uri: string;
  /** Permission names as requested; '.default' means "everything consented". */
  permissions: string[];
}

export interface DelegatedScopes {
  oidc: Set<string>;
  /** In request order; a token is for the first one (facts §1.5). */
  resources: ResourceScopes[];
}

export function splitScopes(value: string | undefined): string[] {
  return (value ?? '').split(/\s+/).filter((s) => s.length > 0);
}

interface ParsedScope {
  principal: ResourcePrincipal;
  uri: string;
  permission: string;
}

/** One non-OIDC scope; undefined for a resource identifier no principal in this cloud has. */
function parseResourceScope(scope: string, cloud: CloudName): ParsedScope | { unknownResource: string } {
  const slash = scope.lastIndexOf('/');
  if (slash < 0) {
    // Bare permission names belong to Microsoft Graph.
    const principal = CLOUD_PROFILES[cloud].resources.graph;
    return { principal, uri: principal.identifierUris[0] ?? '', permission: scope };
  }
  const identifier = scope.slice(0, slash).replace(/\/+$/, '');
  const permission = scope.slice(slash + 1);
  const principal = resourceByIdentifier(cloud, identifier);
  return principal ? { principal, uri: identifier, permission } : { unknownResource: identifier };
}

function requireResourceInTenant(principal: ResourcePrincipal, uri: string, tenant: SandboxTenant): void {
  if (principal.kind === 'exchange' && !tenant.exchangeOnline) {
    throw new AadstsError(500011, { resource: uri, tenantName: tenant.name });
  }
}

/** client_credentials: one resource, `/.default` only. Returns the resource the token is for. */
export function parseClientCredentialsScope(scope: string, tenant: SandboxTenant): ResourceScopes {
  const scopes = splitScopes(scope);
  if (scopes.length === 0) throw new AadstsError(900144, { name: 'scope' });
  if (scopes.some((s) => !s.toLowerCase().endsWith('/.default'))) throw new AadstsError(1002012, { scope });
  const parsed = scopes.map((s) => {
    const p = parseResourceScope(s, tenant.cloud);
    if ('unknownResource' in p) throw new AadstsError(500011, { resource: p.unknownResource, tenantName: tenant.name });
    requireResourceInTenant(p.principal, p.uri, tenant);
    return p;
  });
  const kinds = new Set(parsed.map((p) => p.principal.kind));
  if (kinds.size > 1) {
    throw new AadstsError(70011, { detail: `One or more scopes in '${scope}' are not compatible with each other.` });
  }
  const first = parsed[0] as ParsedScope;
  return { principal: first.principal, uri: first.uri, permissions: ['.default'] };
}

/** Delegated flows (authorize, devicecode, code/refresh/device token requests). */
export function parseDelegatedScopes(scope: string, tenant: SandboxTenant): DelegatedScopes {
  const out: DelegatedScopes = { oidc: new Set(), resources: [] };
  for (const s of splitScopes(scope)) {
    const lower = s.toLowerCase();
    if ((OIDC_SCOPES as readonly string[]).includes(lower)) {
      out.oidc.add(lower);
      continue;
    }
    const p = parseResourceScope(s, tenant.cloud);
    if ('unknownResource' in p) throw new AadstsError(500011, { resource: p.unknownResource, tenantName: tenant.name });
    requireResourceInTenant(p.principal, p.uri, tenant);
    const known = p.permission === '.default' || p.principal.delegated.some((d) => d.toLowerCase() === p.permission.toLowerCase());
    if (!known) throw new AadstsError(70011, { detail: `The scope ${s} is not valid.` });
    const canonical = p.permission === '.default' ? '.default' : (p.principal.delegated.find((d) => d.toLowerCase() === p.permission.toLowerCase()) as string);
    const existing = out.resources.find((r) => r.principal.kind === p.principal.kind);
    if (existing) {
      if (!existing.permissions.includes(canonical)) existing.permissions.push(canonical);
    } else {
      out.resources.push({ principal: p.principal, uri: p.uri, permissions: [canonical] });
    }
  }
  return out;
}

/** The app's tenant-wide delegated consent as resource kind → permission names, plus 'offline_access'. */
export function consentedPermissions(app: SandboxApp, cloud: CloudName): { byResource: Map<ResourceKind, string[]>; offlineAccess: boolean } {
  const byResource = new Map<ResourceKind, string[]>();
  let offlineAccess = false;
  for (const entry of app.delegatedConsent) {
    const lower = entry.toLowerCase();
    if (lower === 'offline_access') {
      offlineAccess = true;
      continue;
    }
    if ((OIDC_SCOPES as readonly string[]).includes(lower)) continue;
    const p = parseResourceScope(entry, cloud);
    if ('unknownResource' in p) continue;
    const name = p.principal.delegated.find((d) => d.toLowerCase() === p.permission.toLowerCase());
    if (!name) continue;
    const list = byResource.get(p.principal.kind) ?? [];
    if (!list.includes(name)) list.push(name);
    byResource.set(p.principal.kind, list);
  }
  return { byResource, offlineAccess };
}

export interface DelegatedGrant {
  /** Resource of the access token; Graph when only OpenID scopes were asked. */
  principal: ResourcePrincipal;
  uri: string;
  /** scp claim values: every permission of that resource the tenant consented to. */
  scp: string[];
  openid: boolean;
  offlineAccess: boolean;
  email: boolean;
  profile: boolean;
}

/**
 * What a delegated token request yields, or AADSTS65001 (consent_required) when a requested
 * permission of the token's resource, or offline_access, lacks consent.
 */
export function grantDelegated(requested: DelegatedScopes, app: SandboxApp, tenant: SandboxTenant): DelegatedGrant {
  const consent = consentedPermissions(app, tenant.cloud);
  const denied = () => new AadstsError(65001, { appId: app.appId, appName: app.displayName });
  if (requested.oidc.has('offline_access') && !consent.offlineAccess) throw denied();
  const first = requested.resources[0];
  const flags = {
    openid: requested.oidc.has('openid'),
    offlineAccess: requested.oidc.has('offline_access'),
    email: requested.oidc.has('email'),
    profile: requested.oidc.has('profile'),
  };
  if (!first) {
    // Only OpenID scopes: Entra returns a Graph token whose scp is the OpenID scopes asked.
    const graph = CLOUD_PROFILES[tenant.cloud].resources.graph;
    const scp = [...requested.oidc].filter((s) => s !== 'offline_access');
    return { principal: graph, uri: graph.identifierUris[0] ?? '', scp, ...flags };
  }
  const granted = consent.byResource.get(first.principal.kind) ?? [];
  for (const p of first.permissions) {
    if (p === '.default' ? granted.length === 0 : !granted.includes(p)) throw denied();
  }
  return { principal: first.principal, uri: first.uri, scp: granted, ...flags };
}

/** The `scope` field of a delegated token response: granted permissions in the form Entra echoes. */
export function responseScope(grant: DelegatedGrant, requested: DelegatedScopes): string {
  const resourceScopes = grant.scp.map((p) =>
    grant.principal.kind === 'graph' && grant.uri.toLowerCase() === (grant.principal.identifierUris[0] ?? '').toLowerCase() ? p : `${grant.uri}/${p}`,
  );
  const oidc = OIDC_SCOPES.filter((s) => requested.oidc.has(s));
  return [...new Set([...resourceScopes, ...oidc])].join(' ');
}
