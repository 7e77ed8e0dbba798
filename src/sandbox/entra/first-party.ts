/**
 * Microsoft's own public clients that exist in every tenant without an app registration of the
 * tenant's: an admin signs in with one of them to manage the directory before any app of theirs
 * exists (Connect-MgGraph, and `mailbridge setup`, use "Microsoft Graph Command Line Tools").
 *
 * The sandbox answers sign-ins of such a client like any public client app (device code, auth code
 * with a loopback redirect) but never lists it among the tenant's applications, and never writes it
 * to sandbox.yaml. Consent: Entra shows an admin the consent prompt at sign-in; the sandbox has no
 * prompt and treats the directory scopes below as consented, so whether a call works is decided
 * where Entra decides it for an admin tool: by Graph's directory API, from the user's directory
 * roles (403 Authorization_RequestDenied without one, graph/directory-api.ts). Approximation: a
 * user without an admin role would, in Entra, already be stopped at the prompt ("Need admin
 * approval").
 *
 * Source: docs/microsoft-facts-addendum.md "Microsoft Graph Command Line Tools".
 */
import type { SandboxApp, SandboxTenant } from '../model.ts';
import { derivedGuid } from '../registration.ts';

export const GRAPH_CLI_TOOLS_APP_ID = '14d82eec-204b-4c2f-b7e8-296a70dab67e';

const FIRST_PARTY: Record<string, { displayName: string; redirectUris: string[]; consent: string[] }> = {
  [GRAPH_CLI_TOOLS_APP_ID]: {
    displayName: 'Microsoft Graph Command Line Tools',
    redirectUris: ['http://localhost', 'https://login.microsoftonline.com/common/oauth2/nativeclient'],
    consent: [
      'openid',
      'profile',
      'offline_access',
      'email',
      'User.Read',
      'Application.Read.All',
      'Application.ReadWrite.All',
      'AppRoleAssignment.ReadWrite.All',
      'DelegatedPermissionGrant.ReadWrite.All',
    ],
  },
};

const made = new WeakMap<SandboxTenant, Map<string, SandboxApp>>();

/** The first-party client with this app ID as the tenant sees it, or undefined. One object per tenant, so what sign-ins keep on it stays. */
export function firstPartyApp(tenant: SandboxTenant, appId: string): SandboxApp | undefined {
  const key = appId.toLowerCase();
  const def = FIRST_PARTY[key];
  if (!def) return undefined;
  let apps = made.get(tenant);
  if (!apps) made.set(tenant, (apps = new Map()));
  let app = apps.get(key);
  if (!app) {
    app = {
      appId: key,
      objectId: derivedGuid(`first-party/${key}`),
      servicePrincipalId: derivedGuid(`${tenant.id}/sp/${key}`),
      displayName: def.displayName,
      publicClient: true,
      disabled: false,
      redirectUris: def.redirectUris,
      secrets: [],
      certificates: [],
      appRoles: { exchange: [], graph: [] },
      delegatedConsent: def.consent,
    };
    apps.set(key, app);
  }
  return app;
}
