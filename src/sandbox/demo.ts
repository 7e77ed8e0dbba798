/**
 * The demo tenant the sandbox creates when it is started without a sandbox file: one Exchange
 * Online tenant set up the way the vendor guides end up (app registration with a client secret and
 * a certificate, admin consent for SMTP.SendAsApp / IMAP.AccessAsApp / full_access_as_app (EWS) / Mail.Send /
 * Mail.Read / Mail.ReadWrite (the connector's default after-action "seen" is a Graph PATCH),
 * New-ServicePrincipal done with the enterprise application's object ID, FullAccess and SendAs on
 * the mailboxes), plus one GCC High tenant to show cloud separation. IDs are random per sandbox
 * folder and kept in its sandbox.yaml, so a restarted sandbox keeps them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { SandboxFile } from './model.ts';

export function demoTenant(certificatePem: string): SandboxFile {
  const app = { appId: randomUUID(), objectId: randomUUID(), servicePrincipalId: randomUUID() };
  const yearAhead = new Date(Date.now() + 365 * 86_400_000).toISOString();
  const mailboxes = ['alice', 'bob', 'scanner', 'info'].map((name) => ({
    address: `${name}@contoso.test`,
    type: name === 'scanner' || name === 'info' ? ('shared' as const) : ('user' as const),
    displayName: name[0]!.toUpperCase() + name.slice(1),
    smtpClientAuthenticationDisabled: null,
    imapEnabled: true,
    fullAccess: [app.servicePrincipalId],
    sendAs: [app.servicePrincipalId],
  }));
  return {
    tenants: [
      {
        id: randomUUID(),
        name: 'Contoso (sandbox)',
        domains: ['contoso.test', 'contoso.onmicrosoft.com'],
        cloud: 'global',
        exchangeOnline: true,
        smtpClientAuthenticationDisabled: false,
        apps: [
          {
            ...app,
            displayName: 'mailbridge',
            publicClient: false,
            disabled: false,
            redirectUris: ['http://127.0.0.1:8080/oauth/callback', 'http://localhost:8080/oauth/callback'],
            // Entra secret values are 40 characters from this alphabet; the sandbox's are random too.
            secrets: [{ keyId: randomUUID(), value: secretValue(), endDateTime: yearAhead }],
            certificates: [{ pem: certificatePem }],
            appRoles: { exchange: ['SMTP.SendAsApp', 'IMAP.AccessAsApp', 'full_access_as_app'], graph: ['Mail.Send', 'Mail.Read', 'Mail.ReadWrite'] },
            delegatedConsent: [
              'openid',
              'profile',
              'offline_access',
              'https://outlook.office.com/IMAP.AccessAsUser.All',
              'https://outlook.office.com/SMTP.Send',
            ],
          },
        ],
        users: [
          // Alice administers the tenant: her delegated token may create and consent apps through Graph (mailbridge setup).
          { objectId: randomUUID(), upn: 'alice@contoso.test', displayName: 'Alice', password: 'sandbox', roles: ['Global Administrator'] },
          { objectId: randomUUID(), upn: 'bob@contoso.test', displayName: 'Bob', password: 'sandbox' },
        ],
        exchange: {
          servicePrincipals: [{ appId: app.appId, objectId: app.servicePrincipalId, displayName: 'mailbridge' }],
          mailboxes,
        },
      },
      {
        id: randomUUID(),
        name: 'Fabrikam (sandbox, GCC High)',
        domains: ['fabrikam.test'],
        cloud: 'gcc-high',
        exchangeOnline: true,
        smtpClientAuthenticationDisabled: true,
        apps: [],
        users: [],
        exchange: { servicePrincipals: [], mailboxes: [] },
      },
    ],
  };
}

function secretValue(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789~._-';
  return [...randomBytes(40)].map((b) => alphabet[b % alphabet.length]).join('');
}
