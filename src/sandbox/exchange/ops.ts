/**
 * Run-time Exchange Online administration on the sandbox directory, one plain function per
 * PowerShell cmdlet an admin runs while setting up a mail gateway (microsoft-facts.md §3.5, §3.6):
 *
 *   New-ServicePrincipal / Remove-ServicePrincipal     newServicePrincipal / removeServicePrincipal
 *   Add-/Remove-MailboxPermission -AccessRights FullAccess   grantFullAccess / revokeFullAccess
 *   Add-/Remove-RecipientPermission -AccessRights SendAs     grantSendAs / revokeSendAs
 *   Set-TransportConfig -SmtpClientAuthenticationDisabled    setTenantSmtpAuthDisabled
 *   Set-CASMailbox -SmtpClientAuthenticationDisabled         setMailboxSmtpAuthDisabled
 *   New-Mailbox (user or shared)                             addMailbox
 *
 * They change the directory in place, so both fronts and the sandbox Entra see the change on the
 * next request (authorization is evaluated per login and per message). Like Exchange,
 * New-ServicePrincipal does not check the object ID against Entra ID: registering the app
 * registration's object ID succeeds and only logins fail. Permission trustees are resolved the way
 * the cmdlets do (service principal by object ID, app ID or display name; user by UPN or object
 * ID; a mailbox address) and stored as the service principal's object ID or the user's UPN; an
 * unknown trustee is an error, as in Exchange. Errors are ExchangeOpError with a code the admin API
 * maps to its replies. Saving the directory to sandbox.yaml is the caller's business.
 */
import type { SandboxDirectory } from '../directory.ts';
import { SandboxOpError } from '../entra/op-errors.ts';
import type { SandboxMailbox, SandboxTenant } from '../model.ts';

export type ExchangeOpErrorCode = 'tenant_not_found' | 'mailbox_not_found' | 'trustee_not_found' | 'already_exists' | 'not_found' | 'invalid';

export class ExchangeOpError extends Error {
  readonly code: ExchangeOpErrorCode;
  constructor(code: ExchangeOpErrorCode, message: string) {
    super(message);
    this.name = 'ExchangeOpError';
    this.code = code;
  }
}

type ServicePrincipal = SandboxTenant['exchange']['servicePrincipals'][number];

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const eq = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

function requireTenant(directory: SandboxDirectory, idOrDomain: string): SandboxTenant {
  const tenant = directory.tenant(idOrDomain);
  if (!tenant) throw new ExchangeOpError('tenant_not_found', `No tenant '${idOrDomain}' in the sandbox.`);
  return tenant;
}

function requireMailbox(directory: SandboxDirectory, identity: string): { tenant: SandboxTenant; mailbox: SandboxMailbox } {
  const found = directory.mailbox(identity);
  if (!found) throw new ExchangeOpError('mailbox_not_found', `The operation couldn't be performed because object '${identity}' couldn't be found.`);
  return found;
}

/** A trustee as the permission cmdlets resolve it, in the mailbox's tenant: the value to store. */
function resolveTrustee(tenant: SandboxTenant, trustee: string): string {
  const sp = findServicePrincipal(tenant, trustee);
  if (sp) return sp.objectId;
  const user = tenant.users.find((u) => eq(u.upn, trustee) || eq(u.objectId, trustee));
  if (user) return user.upn;
  const mailbox = tenant.exchange.mailboxes.find((m) => eq(m.address, trustee));
  if (mailbox) return mailbox.address;
  throw new ExchangeOpError('trustee_not_found', `The user '${trustee}' wasn't found. Make sure you've typed it correctly.`);
}

/** Entries naming the same trustee (stored forms may differ: object ID or app ID, UPN or object ID). */
function sameTrustee(tenant: SandboxTenant, entry: string, resolved: string): boolean {
  if (eq(entry, resolved)) return true;
  const sp = findServicePrincipal(tenant, resolved);
  if (sp) return eq(entry, sp.appId) || eq(entry, sp.objectId);
  const user = tenant.users.find((u) => eq(u.upn, resolved));
  return !!user && (eq(entry, user.objectId) || eq(entry, user.upn));
}

function findServicePrincipal(tenant: SandboxTenant, identity: string): ServicePrincipal | undefined {
  return tenant.exchange.servicePrincipals.find(
    (sp) => eq(sp.objectId, identity) || eq(sp.appId, identity) || (sp.displayName !== '' && eq(sp.displayName, identity)),
  );
}

/** New-ServicePrincipal -AppId -ObjectId [-DisplayName] in a tenant (by ID or domain). */
export function newServicePrincipal(
  directory: SandboxDirectory,
  tenantIdOrDomain: string,
  registration: { appId: string; objectId: string; displayName?: string },
): ServicePrincipal {
  const tenant = requireTenant(directory, tenantIdOrDomain);
  if (!GUID.test(registration.appId)) throw new ExchangeOpError('invalid', `AppId '${registration.appId}' is not a GUID.`);
  if (!GUID.test(registration.objectId)) throw new ExchangeOpError('invalid', `ObjectId '${registration.objectId}' is not a GUID.`);
  if (tenant.exchange.servicePrincipals.some((sp) => eq(sp.objectId, registration.objectId))) {
    throw new ExchangeOpError('already_exists', `A service principal with ObjectId '${registration.objectId}' already exists.`);
  }
  const sp: ServicePrincipal = { appId: registration.appId, objectId: registration.objectId, displayName: registration.displayName ?? '' };
  tenant.exchange.servicePrincipals.push(sp);
  return sp;
}

/**
 * Remove-ServicePrincipal -Identity (object ID, app ID or display name). Its mailbox permissions go
 * with it: a later registration is a new principal and must be granted again.
 */
export function removeServicePrincipal(directory: SandboxDirectory, tenantIdOrDomain: string, identity: string): ServicePrincipal {
  const tenant = requireTenant(directory, tenantIdOrDomain);
  const sp = tenant.exchange.servicePrincipals.find((s) => eq(s.objectId, identity)) ?? findServicePrincipal(tenant, identity);
  if (!sp) throw new ExchangeOpError('not_found', `The operation couldn't be performed because object '${identity}' couldn't be found.`);
  tenant.exchange.servicePrincipals.splice(tenant.exchange.servicePrincipals.indexOf(sp), 1);
  const others = tenant.exchange.servicePrincipals.filter((s) => eq(s.appId, sp.appId));
  const orphaned = (entry: string) => eq(entry, sp.objectId) || (others.length === 0 && eq(entry, sp.appId));
  for (const m of tenant.exchange.mailboxes) {
    m.fullAccess = m.fullAccess.filter((t) => !orphaned(t));
    m.sendAs = m.sendAs.filter((t) => !orphaned(t));
  }
  return sp;
}

/** Adds or removes a trustee in one of a mailbox's permission lists (the same trustee once). */
function setPermission(directory: SandboxDirectory, mailbox: string, trustee: string, list: 'fullAccess' | 'sendAs', granted: boolean): SandboxMailbox {
  const found = requireMailbox(directory, mailbox);
  const value = resolveTrustee(found.tenant, trustee);
  const others = found.mailbox[list].filter((t) => !sameTrustee(found.tenant, t, value));
  // Granting again keeps the entry where it was, as Exchange lists a permission once.
  if (!granted) found.mailbox[list] = others;
  else if (others.length === found.mailbox[list].length) found.mailbox[list].push(value);
  return found.mailbox;
}

/** Add-MailboxPermission -Identity <mailbox> -User <trustee> -AccessRights FullAccess. */
export const grantFullAccess = (directory: SandboxDirectory, mailbox: string, trustee: string): SandboxMailbox => setPermission(directory, mailbox, trustee, 'fullAccess', true);

/** Remove-MailboxPermission -Identity <mailbox> -User <trustee> -AccessRights FullAccess. */
export const revokeFullAccess = (directory: SandboxDirectory, mailbox: string, trustee: string): SandboxMailbox => setPermission(directory, mailbox, trustee, 'fullAccess', false);

/** Add-RecipientPermission -Identity <mailbox> -Trustee <trustee> -AccessRights SendAs. */
export const grantSendAs = (directory: SandboxDirectory, mailbox: string, trustee: string): SandboxMailbox => setPermission(directory, mailbox, trustee, 'sendAs', true);

/** Remove-RecipientPermission -Identity <mailbox> -Trustee <trustee> -AccessRights SendAs. */
export const revokeSendAs = (directory: SandboxDirectory, mailbox: string, trustee: string): SandboxMailbox => setPermission(directory, mailbox, trustee, 'sendAs', false);

/** Set-TransportConfig -SmtpClientAuthenticationDisabled $true|$false. */
export function setTenantSmtpAuthDisabled(directory: SandboxDirectory, tenantIdOrDomain: string, disabled: boolean): SandboxTenant {
  const tenant = requireTenant(directory, tenantIdOrDomain);
  tenant.smtpClientAuthenticationDisabled = disabled;
  return tenant;
}

/** Set-CASMailbox -SmtpClientAuthenticationDisabled $true|$false|$null ($null: follow the tenant). */
export function setMailboxSmtpAuthDisabled(directory: SandboxDirectory, mailbox: string, disabled: boolean | null): SandboxMailbox {
  const found = requireMailbox(directory, mailbox);
  found.mailbox.smtpClientAuthenticationDisabled = disabled;
  return found.mailbox;
}

/** Set-CASMailbox -ImapEnabled. */
export function setMailboxImapEnabled(directory: SandboxDirectory, mailbox: string, enabled: boolean): SandboxMailbox {
  const found = directory.mailbox(mailbox);
  if (!found) throw new ExchangeOpError('mailbox_not_found', `The operation couldn't be performed because object '${mailbox}' couldn't be found.`);
  found.mailbox.imapEnabled = enabled;
  return found.mailbox;
}

/**
 * New-Mailbox (user) or New-Mailbox -Shared: the tenant comes from the address's domain. An address
 * whose local part is not ASCII is refused: Exchange Online sends to and receives from EAI addresses
 * but does not give one to a mailbox (docs/microsoft-facts-addendum.md), and Dovecot's LMTP would
 * refuse every delivery to it.
 */
export function addMailbox(
  directory: SandboxDirectory,
  mailbox: { address: string; type?: 'user' | 'shared'; displayName?: string; smtpClientAuthenticationDisabled?: boolean | null },
): SandboxMailbox {
  const address = mailbox.address.trim();
  if (!/^[^@\s]+@[^@\s]+$/.test(address)) throw new ExchangeOpError('invalid', `'${mailbox.address}' is not an email address.`);
  const tenant = directory.tenantForAddress(address);
  if (!tenant) throw new ExchangeOpError('tenant_not_found', `No tenant in the sandbox has the domain of '${address}'.`);
  if (directory.mailbox(address)) throw new ExchangeOpError('already_exists', `The proxy address "SMTP:${address}" is already being used.`);
  const local = address.slice(0, address.lastIndexOf('@'));
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(local)) {
    const ascii = local.normalize('NFD').replace(/[\u0300-\u036f]/g, '').replace(/ß/g, 'ss').replace(/[^A-Za-z0-9._-]/g, '') || 'user';
    throw new SandboxOpError('MB_SANDBOX_EAI_MAILBOX', { address, suggestion: `${ascii}${address.slice(address.lastIndexOf('@'))}`, name: mailbox.displayName || local });
  }
  const created: SandboxMailbox = {
    address,
    type: mailbox.type ?? 'user',
    displayName: mailbox.displayName ?? address.split('@')[0] ?? '',
    smtpClientAuthenticationDisabled: mailbox.smtpClientAuthenticationDisabled ?? null,
    imapEnabled: true,
    fullAccess: [],
    sendAs: [],
  };
  tenant.exchange.mailboxes.push(created);
  return created;
}
