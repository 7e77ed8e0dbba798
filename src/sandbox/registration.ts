/**
 * What Microsoft Graph knows about an app registration beyond what sign-in needs: the parts
 * `mailbridge setup` creates and checks through Graph (src/sandbox/graph/directory-api.ts), kept
 * on the app in sandbox.yaml (`registration`) so they survive a restart.
 *
 *  - whether the enterprise application (service principal) exists yet: POST /applications makes
 *    only the registration, POST /servicePrincipals the enterprise application (apps written into
 *    sandbox.yaml by hand have both);
 *  - the Graph view of redirect URIs (web / publicClient), requiredResourceAccess, owners;
 *  - credential metadata Graph shows (display names, key IDs of certificates); the credentials
 *    themselves stay in `secrets` and `certificates`, which sandbox Entra ID checks;
 *  - app role assignments with the moment they take effect: Entra needs time before a new grant
 *    appears in tokens (up to 30 minutes in the field); the sandbox models it with one delay, and
 *    `effectiveAppRoles` is what token issuance reads.
 *
 * Permission (app role and scope) IDs of the two resource service principals are the real ones;
 * sources in docs/microsoft-facts-addendum.md ("Permission IDs of Microsoft Graph and Office 365
 * Exchange Online").
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { ResourceKind } from './entra/clouds.ts';

const guid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'a GUID');

export const appRoleAssignmentSchema = z.object({
  id: z.string(),
  resource: z.enum(['exchange', 'graph']),
  appRoleId: guid,
  /** The role's value (SMTP.SendAsApp, Mail.Send, …). */
  role: z.string(),
  createdDateTime: z.string(),
  /** From here on tokens carry the role (createdDateTime + the propagation delay). */
  effectiveDateTime: z.string(),
});

export const appRegistrationSchema = z.object({
  createdDateTime: z.string().optional(),
  /** false between POST /applications and POST /servicePrincipals. */
  servicePrincipal: z.boolean().default(true),
  webRedirectUris: z.array(z.string()).default([]),
  publicClientRedirectUris: z.array(z.string()).default([]),
  requiredResourceAccess: z
    .array(z.object({ resourceAppId: z.string(), resourceAccess: z.array(z.object({ id: z.string(), type: z.enum(['Role', 'Scope']) })) }))
    .default([]),
  /** Display names and start dates of client secrets, by keyId (the values live in `secrets`). */
  passwordCredentials: z.array(z.object({ keyId: guid, displayName: z.string().default(''), startDateTime: z.string() })).default([]),
  /** Key IDs and display names of certificates, by SHA-1 thumbprint (the PEMs live in `certificates`). */
  keyCredentials: z.array(z.object({ thumbprint: z.string(), keyId: guid, displayName: z.string().default('') })).default([]),
  appRoleAssignments: z.array(appRoleAssignmentSchema).default([]),
  /** The app roles the app itself defines (for people: allowedMemberTypes User), as Graph's application.appRoles. */
  appRoles: z
    .array(
      z.object({
        id: guid,
        value: z.string(),
        displayName: z.string(),
        description: z.string(),
        allowedMemberTypes: z.array(z.enum(['User', 'Application'])).min(1),
        isEnabled: z.boolean(),
      }),
    )
    .default([]),
});

export type AppRegistration = z.infer<typeof appRegistrationSchema>;
export type AppRoleAssignment = z.infer<typeof appRoleAssignmentSchema>;

/** Directory roles a sandbox user may hold (Entra built-in role display names). */
export const DIRECTORY_ROLES = [
  'Global Administrator',
  'Privileged Role Administrator',
  'Application Administrator',
  'Cloud Application Administrator',
  'Application Developer',
] as const;

/**
 * Application permissions (app roles) and delegated permissions (scopes) with their real IDs.
 * Microsoft Graph and Exchange Online share the IDs of their Mail.* app roles.
 */
export const PERMISSION_IDS: Record<ResourceKind, { roles: Record<string, string>; scopes: Record<string, string> }> = {
  graph: {
    roles: {
      'Mail.Read': '810c84a8-4a9e-49e6-bf7d-12d183f40d01',
      'Mail.ReadBasic': '6be147d2-ea4f-4b5a-a3fa-3eab6f3c140a',
      'Mail.ReadBasic.All': '693c5e45-0940-467d-9b8a-1022fb9d42ef',
      'Mail.ReadWrite': 'e2a3a72e-5f79-4c64-b1b1-878b674786c9',
      'Mail.Send': 'b633e1c5-b582-4048-a93e-9f11b44c7e96',
      'User.Read.All': 'df021288-bdef-4463-88db-98f22de89214',
      'Application.Read.All': '9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30',
      'Application.ReadWrite.All': '1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9',
      'Application.ReadWrite.OwnedBy': '18a4783c-866b-4cc7-a460-3d5e5662c884',
      'AppRoleAssignment.ReadWrite.All': '06b708a9-e830-4db3-a914-8e69da51d44f',
    },
    scopes: {
      'User.Read': 'e1fe6dd8-ba31-4d61-89e7-88639da4683d',
      'Mail.Read': '570282fd-fa5c-430d-a7fd-fc8dc98a9dca',
      'Mail.ReadBasic': 'a4b8392a-d8d1-4954-a029-8e668a39a170',
      'Mail.ReadWrite': '024d486e-b451-40bb-833d-3e66d98c5c73',
      'Mail.Send': 'e383f46e-2787-4529-855e-0e479a3ffac0',
      'Mail.Read.Shared': '7b9103a5-4610-446b-9670-80643382c1fa',
      'Mail.Send.Shared': 'a367ab51-6b49-43bf-a716-a1fb06d2a174',
      'IMAP.AccessAsUser.All': '652390e4-393a-48de-9484-05f9b1212954',
      'POP.AccessAsUser.All': 'd7b7f2d9-0f45-4ea1-9d42-e50810c06991',
      'SMTP.Send': '258f6531-6087-4cc4-bb90-092c5fb3ed3f',
      offline_access: '7427e0e9-2fba-42fe-b0c0-848c9e6a8182',
      openid: '37f7f235-527c-4136-accd-4a02d197296e',
      profile: '14dad69e-099b-42c9-810b-d002981feec1',
      email: '64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0',
      'Application.Read.All': 'c79f8feb-a9db-4090-85f9-90d820caa0eb',
      'Application.ReadWrite.All': 'bdfbf15f-ee85-4955-8675-146e8e5296b5',
      'AppRoleAssignment.ReadWrite.All': '84bccea3-f856-4a8a-967b-dbe0a3d53a64',
      'DelegatedPermissionGrant.ReadWrite.All': '41ce6ca6-6826-4807-84f1-1c82854f7ee5',
    },
  },
  exchange: {
    roles: {
      'IMAP.AccessAsApp': '5e5addcd-3e8d-4e90-baf5-964efab2b20a',
      'POP.AccessAsApp': 'cb842b43-da6e-4506-86fe-bb12199c656d',
      'SMTP.SendAsApp': '7146a1f0-8703-45b3-9eae-527a64c00995',
      full_access_as_app: 'dc890d15-9560-4a4c-9b7f-a736ec74ec40',
      'Mail.Read': '810c84a8-4a9e-49e6-bf7d-12d183f40d01',
      'Mail.ReadWrite': 'e2a3a72e-5f79-4c64-b1b1-878b674786c9',
      'Mail.Send': 'b633e1c5-b582-4048-a93e-9f11b44c7e96',
      'Exchange.ManageAsApp': 'dc50a0fb-09a3-484d-be87-e023b12c6440',
    },
    scopes: {
      'IMAP.AccessAsUser.All': '195adc35-e27b-454b-a7ed-1ecdffa1c09f',
      'POP.AccessAsUser.All': 'fb698133-92fa-453e-a9ed-688e10f2e5ac',
      'SMTP.Send': '76faac2a-0f20-42f1-928a-50de5b9dbe52',
      'EWS.AccessAsUser.All': '3b5f3d61-589b-4a3c-a359-5dd4b5ee5bd5',
      'Mail.Read': '185758ba-798d-4b72-9e54-429a413a2510',
      'Mail.ReadWrite': '75767999-c7a8-481e-a6b4-19458e0b30a5',
      'Mail.Send': '5eb43c10-865a-4259-960a-83946678f8dd',
      'User.Read': '6223a6d3-53ef-4f8f-982a-895b39483c61',
    },
  },
};

/** A GUID derived from a text (stable object IDs the sandbox must not store: resource service principals, certificate key IDs). */
export function derivedGuid(text: string): string {
  const h = createHash('sha1').update(text).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The app roles a token for `resource` carries now: those in sandbox.yaml plus assignments whose propagation is over. */
export function effectiveAppRoles(app: { appRoles: Record<ResourceKind, string[]>; registration?: AppRegistration }, resource: ResourceKind, now: number): string[] {
  const roles = [...app.appRoles[resource]];
  for (const a of app.registration?.appRoleAssignments ?? []) {
    if (a.resource === resource && Date.parse(a.effectiveDateTime) <= now && !roles.includes(a.role)) roles.push(a.role);
  }
  return roles;
}
