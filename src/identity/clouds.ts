/**
 * National clouds: where each Microsoft cloud signs in (Entra ID), where Graph and Exchange Online
 * live, and which scopes ask for Exchange and Graph tokens there. Tokens of one cloud are not
 * accepted by another, and a tenant asked for in the wrong cloud answers AADSTS90002, so every
 * connection resolves all its hosts and scopes from exactly one row of this table.
 *
 * Sources: ../shared/reference/microsoft-facts.md §2 (Entra docs authentication-national-cloud.md,
 * Graph deployments.md, the Microsoft 365 endpoint lists). Rows marked "less certain" there are
 * marked here too; a connection can override scopes (`scopes.exchange`, `scopes.graph`) and the
 * token endpoint (`tokenEndpoint`) when a tenant needs something else.
 */
import { CLOUDS, type CloudName } from './config.ts';

export { CLOUDS, type CloudName };

export type Resource = 'exchange' | 'graph';
export const RESOURCES: readonly Resource[] = ['exchange', 'graph'];

export interface HostPort {
  host: string;
  port: number;
}

export interface Cloud {
  name: CloudName;
  /** Entra ID sign-in host (token, authorize and device code endpoints). */
  loginHost: string;
  /** Portal where admins manage app registrations in this cloud (used in fix texts). */
  portal: string;
  graphHost: string;
  exchange: {
    imap: HostPort;
    pop: HostPort;
    smtp: HostPort;
    ews: string;
    autodiscover: string;
  };
  scopes: {
    /** client credentials: one `/.default` scope of the Exchange Online resource. */
    exchangeApp: string[];
    /** delegated: IMAP and SMTP AUTH as the signed-in user (offline_access is added by MSAL). */
    exchangeDelegated: string[];
    graphApp: string[];
    graphDelegated: string[];
  };
  /** Values the `aud` claim of a token for each resource may carry (host URLs and resource app IDs). */
  audiences: Record<Resource, string[]>;
}

/** Office 365 Exchange Online's and Microsoft Graph's resource application IDs (the same in every cloud). */
export const EXCHANGE_RESOURCE_APP_ID = '00000002-0000-0ff1-ce00-000000000000';
export const GRAPH_RESOURCE_APP_ID = '00000003-0000-0000-c000-000000000000';

interface Row {
  loginHost: string;
  portal: string;
  graphHost: string;
  /** Host of the Exchange resource for app-only tokens (`https://<host>/.default`). */
  exchangeAppResource: string;
  /** Host prefix of the delegated Exchange scopes (`https://<host>/IMAP.AccessAsUser.All`). */
  exchangeDelegatedResource: string;
  imapHost: string;
  smtpHost: string;
  ewsHost: string;
  autodiscover: string;
}

/** Microsoft's worldwide service. */
const WORLDWIDE: Row = {
  loginHost: 'login.microsoftonline.com',
  portal: 'https://entra.microsoft.com',
  graphHost: 'graph.microsoft.com',
  exchangeAppResource: 'outlook.office365.com',
  exchangeDelegatedResource: 'outlook.office.com',
  imapHost: 'outlook.office365.com',
  smtpHost: 'smtp.office365.com',
  ewsHost: 'outlook.office365.com',
  autodiscover: 'https://autodiscover-s.outlook.com/autodiscover/autodiscover.svc',
};

const ROWS: Record<CloudName, Row> = {
  global: WORLDWIDE,
  // GCC (Moderate) uses the worldwide endpoints throughout.
  gcc: WORLDWIDE,
  'gcc-high': {
    loginHost: 'login.microsoftonline.us',
    portal: 'https://portal.azure.us',
    graphHost: 'graph.microsoft.us',
    // App-only scope and SMTP host: third-party sources, consistent across many tools.
    exchangeAppResource: 'outlook.office365.us',
    exchangeDelegatedResource: 'outlook.office365.us',
    imapHost: 'outlook.office365.us',
    smtpHost: 'smtp.office365.us',
    ewsHost: 'outlook.office365.us',
    autodiscover: 'https://autodiscover-s.office365.us/autodiscover/autodiscover.svc',
  },
  dod: {
    loginHost: 'login.microsoftonline.us',
    portal: 'https://portal.azure.us',
    graphHost: 'dod-graph.microsoft.us',
    // Less certain (one tool uses outlook.office365.us); override with scopes.exchange if the tenant differs.
    exchangeAppResource: 'outlook-dod.office365.us',
    exchangeDelegatedResource: 'outlook-dod.office365.us',
    imapHost: 'outlook-dod.office365.us',
    smtpHost: 'outlook-dod.office365.us',
    ewsHost: 'outlook-dod.office365.us',
    autodiscover: 'https://autodiscover-s-dod.office365.us/autodiscover/autodiscover.svc',
  },
  // 21Vianet. The Entra docs name login.partner.microsoftonline.cn; MSAL's AzureChina alias
  // login.chinacloudapi.cn reaches the same service.
  china: {
    loginHost: 'login.partner.microsoftonline.cn',
    portal: 'https://portal.azure.cn',
    graphHost: 'microsoftgraph.chinacloudapi.cn',
    exchangeAppResource: 'partner.outlook.cn',
    exchangeDelegatedResource: 'partner.outlook.cn',
    imapHost: 'partner.outlook.cn',
    smtpHost: 'smtp.partner.outlook.cn',
    ewsHost: 'partner.outlook.cn',
    autodiscover: 'https://partner.outlook.cn/autodiscover/autodiscover.svc',
  },
};

function build(name: CloudName): Cloud {
  const r = ROWS[name];
  const graph = `https://${r.graphHost}`;
  return {
    name,
    loginHost: r.loginHost,
    portal: r.portal,
    graphHost: r.graphHost,
    exchange: {
      imap: { host: r.imapHost, port: 993 },
      pop: { host: r.imapHost, port: 995 },
      smtp: { host: r.smtpHost, port: 587 },
      ews: `https://${r.ewsHost}/EWS/Exchange.asmx`,
      autodiscover: r.autodiscover,
    },
    scopes: {
      exchangeApp: [`https://${r.exchangeAppResource}/.default`],
      // IMAP and SMTP AUTH are what legacy apps need; EWS.AccessAsUser.All can be added through
      // scopes.exchange. Graph-prefixed IMAP/SMTP scopes would give a Graph audience that IMAP rejects.
      exchangeDelegated: [
        `https://${r.exchangeDelegatedResource}/IMAP.AccessAsUser.All`,
        `https://${r.exchangeDelegatedResource}/SMTP.Send`,
      ],
      graphApp: [`${graph}/.default`],
      graphDelegated: [`${graph}/Mail.ReadWrite`, `${graph}/Mail.Send`],
    },
    audiences: {
      exchange: unique([
        `https://${r.exchangeAppResource}`,
        `https://${r.exchangeDelegatedResource}`,
        `https://${r.ewsHost}`,
        EXCHANGE_RESOURCE_APP_ID,
      ]),
      graph: unique([graph, `${graph}/`, GRAPH_RESOURCE_APP_ID]),
    },
  };
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

export const clouds: Record<CloudName, Cloud> = Object.fromEntries(CLOUDS.map((c) => [c, build(c)])) as Record<
  CloudName,
  Cloud
>;

export function cloudFor(name: CloudName): Cloud {
  return clouds[name];
}

/** The token endpoint template of a cloud, in the `#TenantID#` form vendor tools use (e.g. enaio's OfficeTokenEndpoint). */
export function defaultTokenEndpoint(cloud: Cloud): string {
  return `https://${cloud.loginHost}/#TenantID#/oauth2/v2.0/token`;
}

/**
 * Default scopes for a resource: app-only flows ask for `/.default` (the permissions come from
 * admin consent), delegated flows for the named permissions.
 */
export function defaultScopes(cloud: Cloud, resource: Resource, delegated: boolean): string[] {
  if (resource === 'exchange') return delegated ? cloud.scopes.exchangeDelegated : cloud.scopes.exchangeApp;
  return delegated ? cloud.scopes.graphDelegated : cloud.scopes.graphApp;
}

/**
 * The audience (`aud`) a scope list asks for: the scheme and host of the first scope that is a URL.
 * Used to tell an admin that overridden scopes point at the wrong resource.
 */
export function audienceOfScopes(scopes: readonly string[]): string | undefined {
  for (const s of scopes) {
    try {
      const u = new URL(s);
      if (u.protocol === 'https:') return `${u.protocol}//${u.host}`;
    } catch {
      // not a URL (openid, offline_access, a bare Graph permission name): skip
    }
  }
  return undefined;
}
