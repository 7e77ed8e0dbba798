/**
 * The Entra ID objects that `mailbridge setup`, `mailbridge check` and `credential rotate` look up
 * through Graph, in one place: the app registration, its enterprise application (service
 * principal) and the app roles granted to it (admin consent for application permissions). Each
 * caller reads with its own token (the admin's delegated one, or the app's own) and turns a failed
 * read into its own error; `get` is that reader: it answers a path below the Graph base URL with
 * the reply's JSON, or throws.
 */
export type DirectoryGet = (path: string) => Promise<Record<string, unknown>>;

/** An app registration as Graph's application resource has it (the properties mailbridge uses). */
export interface GraphApp {
  id: string;
  appId: string;
  displayName: string;
  isFallbackPublicClient?: boolean;
  web?: { redirectUris?: string[] };
  requiredResourceAccess?: Array<{ resourceAppId: string; resourceAccess: Array<{ id: string; type: string }> }>;
  passwordCredentials?: Array<{ keyId: string; hint?: string | null; endDateTime?: string | null }>;
  keyCredentials?: Array<{ keyId: string; customKeyIdentifier?: string | null; endDateTime?: string | null }>;
  appRoles?: Array<{ id: string; value: string | null; displayName?: string; description?: string; allowedMemberTypes?: string[]; isEnabled?: boolean }>;
}

/** One app role granted to a service principal: which role, on which resource, since when. */
export interface AppRoleGrant {
  appRoleId: string;
  resourceId: string;
  resourceDisplayName: string;
  /** Epoch ms; 0 when Graph gave no date. */
  created: number;
}

/** An OData $filter query on one property (quotes doubled as OData wants). */
export function odataFilter(prop: string, value: string): string {
  return `$filter=${encodeURIComponent(`${prop} eq '${value.replace(/'/g, "''")}'`)}`;
}

const list = async <T>(get: DirectoryGet, path: string): Promise<T[]> => ((await get(path)).value as T[] | undefined) ?? [];

/** The app registration with this application (client) ID, if there is one. */
export async function findApplication(get: DirectoryGet, appId: string): Promise<GraphApp | undefined> {
  return (await list<GraphApp>(get, `/applications?${odataFilter('appId', appId)}`))[0];
}

/** The enterprise application (service principal) of an application ID, if there is one. */
export async function findServicePrincipal<T extends { id: string } = { id: string }>(get: DirectoryGet, appId: string): Promise<T | undefined> {
  return (await list<T>(get, `/servicePrincipals?${odataFilter('appId', appId)}`))[0];
}

/** The app roles granted to a service principal (its object ID). */
export async function appRoleGrants(get: DirectoryGet, servicePrincipalId: string): Promise<AppRoleGrant[]> {
  const value = await list<Record<string, unknown>>(get, `/servicePrincipals/${servicePrincipalId}/appRoleAssignments`);
  return value.map((v) => ({
    appRoleId: String(v.appRoleId ?? ''),
    resourceId: String(v.resourceId ?? ''),
    resourceDisplayName: typeof v.resourceDisplayName === 'string' ? v.resourceDisplayName : '',
    created: Date.parse(String(v.createdDateTime ?? '')) || 0,
  }));
}
