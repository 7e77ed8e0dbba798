/**
 * The sandbox tenant file (sandbox.yaml): tenants, their app registrations and credentials, users,
 * and the Exchange Online side (service principals registered with New-ServicePrincipal, mailboxes
 * and their permissions). Sandbox Entra ID and the Exchange Online front read the same directory,
 * so a permission granted at run time is seen by both at once.
 */
import { z } from 'zod';
import { CLOUDS } from './entra/clouds.ts';
import { appRegistrationSchema } from './registration.ts';

const guid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'a GUID');

export const sandboxSecretSchema = z.object({
  keyId: guid,
  value: z.string().min(1),
  /** ISO date-time; a secret past it yields AADSTS7000222. */
  endDateTime: z.string(),
});

export const sandboxCertificateSchema = z.object({
  /** Public certificate (PEM) registered on the app (keyCredentials, usage Verify). */
  pem: z.string().includes('BEGIN CERTIFICATE'),
});

export const sandboxAppSchema = z.object({
  appId: guid,
  /** Object ID of the app registration. */
  objectId: guid,
  /** Object ID of the enterprise application (service principal) in this tenant. New-ServicePrincipal needs this one. */
  servicePrincipalId: guid,
  displayName: z.string().default('mailbridge'),
  publicClient: z.boolean().default(false),
  disabled: z.boolean().default(false),
  /** Enterprise application › Properties › "Assignment required?": only assignedUsers sign in (else AADSTS50105). */
  assignmentRequired: z.boolean().optional(),
  /** Users and groups assigned to the enterprise application (UPNs or object IDs). */
  assignedUsers: z.array(z.string()).optional(),
  /**
   * App roles this app defines (allowedMemberTypes User) assigned to users (Enterprise application ›
   * Users and groups, with a role): each role's value goes into the `roles` claim of that user's
   * ID tokens for this app; a user with none gets no `roles` claim at all.
   */
  userRoles: z.array(z.object({ user: z.string(), role: z.string() })).optional(),
  redirectUris: z.array(z.string()).default([]),
  secrets: z.array(sandboxSecretSchema).default([]),
  certificates: z.array(sandboxCertificateSchema).default([]),
  /** Application permissions with admin consent, per resource ("exchange" = Office 365 Exchange Online). */
  appRoles: z.object({ exchange: z.array(z.string()).default([]), graph: z.array(z.string()).default([]) }).default({ exchange: [], graph: [] }),
  /** Delegated scopes consented for the tenant, full form (https://outlook.office.com/IMAP.AccessAsUser.All, offline_access, …). */
  delegatedConsent: z.array(z.string()).default([]),
  /** Object IDs of the app's owners (users or service principals); Application.ReadWrite.OwnedBy may change only these apps. */
  owners: z.array(z.string()).optional(),
  /** What Graph shows and setup manages beyond sign-in (registration.ts). */
  registration: appRegistrationSchema.optional(),
});

export const sandboxUserSchema = z.object({
  objectId: guid,
  upn: z.string(),
  displayName: z.string().default(''),
  /** Password for the sandbox sign-in page (auth code and device code flows). */
  password: z.string().default('sandbox'),
  /** accountEnabled = false in Entra: sign-in and token refresh fail with AADSTS50057. */
  disabled: z.boolean().optional(),
  /** signInSessionsValidFromDateTime (ISO): refresh tokens granted before it fail with AADSTS50173 (Revoke-MgUserSignInSession). */
  signInSessionsValidFrom: z.string().optional(),
  /** Entra directory roles by display name (Global Administrator, Application Administrator, …): what Graph's directory calls check. */
  roles: z.array(z.string()).optional(),
});

export const sandboxMailboxSchema = z.object({
  address: z.string(),
  type: z.enum(['user', 'shared']).default('user'),
  displayName: z.string().default(''),
  /** Set-CASMailbox -SmtpClientAuthenticationDisabled; null follows the tenant setting. */
  smtpClientAuthenticationDisabled: z.boolean().nullable().default(null),
  /** Set-CASMailbox -ImapEnabled: false refuses IMAP logins to this mailbox (Exchange's default is on). */
  imapEnabled: z.boolean().default(true),
  /** Add-MailboxPermission -AccessRights FullAccess: Exchange service principal object IDs or user UPNs. */
  fullAccess: z.array(z.string()).default([]),
  /** Add-RecipientPermission -AccessRights SendAs: trustees. */
  sendAs: z.array(z.string()).default([]),
});

export const sandboxTenantSchema = z.object({
  id: guid,
  name: z.string().default('Sandbox'),
  domains: z.array(z.string()).min(1),
  cloud: z.enum(CLOUDS).default('global'),
  /** false: the tenant has no Exchange Online (tokens for it fail with AADSTS500011). */
  exchangeOnline: z.boolean().default(true),
  /** Set-TransportConfig -SmtpClientAuthenticationDisabled. */
  smtpClientAuthenticationDisabled: z.boolean().default(false),
  apps: z.array(sandboxAppSchema).default([]),
  users: z.array(sandboxUserSchema).default([]),
  exchange: z
    .object({
      /** New-ServicePrincipal registrations: the app ID and the object ID given to the cmdlet. */
      servicePrincipals: z.array(z.object({ appId: guid, objectId: guid, displayName: z.string().default('') })).default([]),
      mailboxes: z.array(sandboxMailboxSchema).default([]),
      /** RBAC for Applications: New-ManagementScope and New-ManagementRoleAssignment -App (exchange/powershell.ts). */
      managementScopes: z.array(z.object({ name: z.string(), recipientRestrictionFilter: z.string() })).optional(),
      /**
       * RBAC role assignments: to an app (RBAC for Applications, -App, scoped by -CustomResourceScope) or,
       * on premises, to a user (-User, e.g. ApplicationImpersonation scoped by -CustomRecipientWriteScope).
       */
      managementRoleAssignments: z
        .array(
          z.object({
            name: z.string(),
            role: z.string(),
            app: z.string().optional(),
            user: z.string().optional(),
            customResourceScope: z.string().optional(),
            customRecipientWriteScope: z.string().optional(),
          }),
        )
        .optional(),
    })
    .default({ servicePrincipals: [], mailboxes: [] }),
});

export const sandboxFileSchema = z.object({ tenants: z.array(sandboxTenantSchema).default([]) });

export type SandboxFile = z.infer<typeof sandboxFileSchema>;
export type SandboxTenant = z.infer<typeof sandboxTenantSchema>;
export type SandboxApp = z.infer<typeof sandboxAppSchema>;
export type SandboxUser = z.infer<typeof sandboxUserSchema>;
export type SandboxMailbox = z.infer<typeof sandboxMailboxSchema>;
