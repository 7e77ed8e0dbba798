/**
 * What each national cloud looks like to the sandbox Entra ID (microsoft-facts.md §2): its login
 * host (clouds that share one also share tenants: GCC signs in at login.microsoftonline.com like
 * Global, DoD at login.microsoftonline.us like GCC High), the v1 token issuer, and the resource
 * principals a token can be asked for, with their identifier URIs and permissions.
 */

/**
 * The national clouds the sandbox emulates, by the names mailbridge.yaml gives them (`cloud:` of a
 * connection). The sandbox keeps its own list because it takes nothing of the product but config,
 * errors, i18n and log; test/sandbox/entra/clouds.test.ts holds it equal to identity's.
 */
export const CLOUDS = ['global', 'gcc', 'gcc-high', 'dod', 'china'] as const;
export type CloudName = (typeof CLOUDS)[number];

export type ResourceKind = 'exchange' | 'graph';

export interface ResourcePrincipal {
  kind: ResourceKind;
  displayName: string;
  appId: string;
  /** Identifier URIs accepted in scopes, without trailing slash; the first is the app-only one of the facts. */
  identifierUris: string[];
  /** Delegated permissions (scope names) the resource exposes. */
  delegated: string[];
  /** Application permissions (app roles). */
  appRoles: string[];
}

export interface CloudProfile {
  name: CloudName;
  loginHost: string;
  /** v1 access tokens (what Exchange and Graph get) carry iss https://{v1IssuerHost}/{tid}/. */
  v1IssuerHost: string;
  cloudInstanceName: string;
  tenantRegionScope: string;
  graphHost: string;
  resources: Record<ResourceKind, ResourcePrincipal>;
}

export const EXCHANGE_APP_ID = '00000002-0000-0ff1-ce00-000000000000';
export const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';

const EXCHANGE_DELEGATED = [
  'IMAP.AccessAsUser.All',
  'POP.AccessAsUser.All',
  'SMTP.Send',
  'EWS.AccessAsUser.All',
  'Mail.Read',
  'Mail.ReadWrite',
  'Mail.Send',
  'User.Read',
];
const EXCHANGE_ROLES = [
  'IMAP.AccessAsApp',
  'POP.AccessAsApp',
  'SMTP.SendAsApp',
  'full_access_as_app',
  'Mail.Read',
  'Mail.ReadWrite',
  'Mail.Send',
  'Exchange.ManageAsApp',
];
const GRAPH_DELEGATED = [
  'User.Read',
  'Mail.Read',
  'Mail.ReadBasic',
  'Mail.ReadWrite',
  'Mail.Send',
  'Mail.Read.Shared',
  'Mail.Send.Shared',
  // Graph exposes these too; a token for them has the Graph audience, which IMAP/SMTP reject (facts §2).
  'IMAP.AccessAsUser.All',
  'POP.AccessAsUser.All',
  'SMTP.Send',
  // What an admin's sign-in needs to create and consent the app (mailbridge setup, graph/directory-api.ts).
  'Application.Read.All',
  'Application.ReadWrite.All',
  'AppRoleAssignment.ReadWrite.All',
  'DelegatedPermissionGrant.ReadWrite.All',
];
const GRAPH_ROLES = [
  'Mail.Read',
  'Mail.ReadBasic',
  'Mail.ReadBasic.All',
  'Mail.ReadWrite',
  'Mail.Send',
  'User.Read.All',
  'Application.ReadWrite.OwnedBy',
  'Application.ReadWrite.All',
  'Application.Read.All',
  'AppRoleAssignment.ReadWrite.All',
];

function exchange(uris: string[]): ResourcePrincipal {
  return {
    kind: 'exchange',
    displayName: 'Office 365 Exchange Online',
    appId: EXCHANGE_APP_ID,
    identifierUris: [...uris, EXCHANGE_APP_ID],
    delegated: EXCHANGE_DELEGATED,
    appRoles: EXCHANGE_ROLES,
  };
}

function graph(uri: string): ResourcePrincipal {
  return {
    kind: 'graph',
    displayName: 'Microsoft Graph',
    appId: GRAPH_APP_ID,
    identifierUris: [uri, GRAPH_APP_ID],
    delegated: GRAPH_DELEGATED,
    appRoles: GRAPH_ROLES,
  };
}

const GLOBAL_EXCHANGE = exchange(['https://outlook.office365.com', 'https://outlook.office.com', 'https://ps.outlook.com']);

export const CLOUD_PROFILES: Record<CloudName, CloudProfile> = {
  global: {
    name: 'global',
    loginHost: 'login.microsoftonline.com',
    v1IssuerHost: 'sts.windows.net',
    cloudInstanceName: 'microsoftonline.com',
    tenantRegionScope: 'EU',
    graphHost: 'graph.microsoft.com',
    resources: { exchange: GLOBAL_EXCHANGE, graph: graph('https://graph.microsoft.com') },
  },
  gcc: {
    name: 'gcc',
    loginHost: 'login.microsoftonline.com',
    v1IssuerHost: 'sts.windows.net',
    cloudInstanceName: 'microsoftonline.com',
    tenantRegionScope: 'NA',
    graphHost: 'graph.microsoft.com',
    resources: { exchange: GLOBAL_EXCHANGE, graph: graph('https://graph.microsoft.com') },
  },
  'gcc-high': {
    name: 'gcc-high',
    loginHost: 'login.microsoftonline.us',
    v1IssuerHost: 'sts.windows.net',
    cloudInstanceName: 'microsoftonline.us',
    tenantRegionScope: 'USGov',
    graphHost: 'graph.microsoft.us',
    resources: { exchange: exchange(['https://outlook.office365.us']), graph: graph('https://graph.microsoft.us') },
  },
  dod: {
    name: 'dod',
    loginHost: 'login.microsoftonline.us',
    v1IssuerHost: 'sts.windows.net',
    cloudInstanceName: 'microsoftonline.us',
    tenantRegionScope: 'USGov',
    graphHost: 'dod-graph.microsoft.us',
    // facts §2 marks the DoD Exchange URI "less certain"; the sandbox accepts only this one.
    resources: { exchange: exchange(['https://outlook-dod.office365.us']), graph: graph('https://dod-graph.microsoft.us') },
  },
  china: {
    name: 'china',
    loginHost: 'login.partner.microsoftonline.cn',
    v1IssuerHost: 'sts.chinacloudapi.cn',
    cloudInstanceName: 'partner.microsoftonline.cn',
    tenantRegionScope: 'AS',
    graphHost: 'microsoftgraph.chinacloudapi.cn',
    resources: { exchange: exchange(['https://partner.outlook.cn']), graph: graph('https://microsoftgraph.chinacloudapi.cn') },
  },
};

/** Two clouds whose users sign in at the same login host see the same tenants. */
export function sameLoginHost(a: CloudName, b: CloudName): boolean {
  return CLOUD_PROFILES[a].loginHost === CLOUD_PROFILES[b].loginHost;
}

/** The resource principal named by an identifier URI or app ID (case-insensitive, trailing slash ignored). */
export function resourceByIdentifier(cloud: CloudName, identifier: string): ResourcePrincipal | undefined {
  const key = identifier.replace(/\/+$/, '').toLowerCase();
  return Object.values(CLOUD_PROFILES[cloud].resources).find((r) => r.identifierUris.some((u) => u.toLowerCase() === key));
}
