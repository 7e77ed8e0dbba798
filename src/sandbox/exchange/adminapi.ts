/**
 * Exchange Online's admin REST endpoint, the one the ExchangeOnlineManagement V3 module speaks
 * underneath its cmdlets, for the read cmdlets `mailbridge check` runs to tell apart what an
 * XOAUTH2 login cannot (docs/microsoft-facts-addendum.md, "Exchange Online admin API"):
 *
 *   POST /adminapi/beta/{tenantId}/InvokeCommand
 *   { "CmdletInput": { "CmdletName": "Get-…", "Parameters": { … } } }  →  200 { "@odata.context", "value": [ … ] }
 *
 * Cmdlets: Get-ServicePrincipal (all, or -Identity), Get-MailboxPermission -Identity,
 * Get-RecipientPermission -Identity, Get-CASMailbox -Identity, Get-TransportConfig. Objects carry
 * the properties the real cmdlets name (AppId, ObjectId, Identity; User, AccessRights; Trustee;
 * SmtpClientAuthenticationDisabled). Trustees are shown the way the sandbox stores them (the
 * service principal's object ID), where Exchange shows a display name or identity string.
 *
 * Authorization: an app-only token for Office 365 Exchange Online of the tenant in the path
 * (signature, issuer, audience as the SMTP/IMAP fronts check them) with the role
 * Exchange.ManageAsApp. Limits: the Entra directory role the service principal also needs in a real
 * tenant (Global Reader for reads) is not modelled; error bodies are an approximation (Exchange
 * answers a cmdlet failure with 400 and the cmdlet's error text; no capture of the exact envelope).
 */
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import type { SandboxDirectory } from '../directory.ts';
import { CLOUD_PROFILES } from '../entra/clouds.ts';
import type { SandboxTenant } from '../model.ts';
import type { JwksSource } from './authz.ts';

export interface AdminApiResult {
  status: number;
  json: unknown;
}

const PATH = /^\/adminapi\/beta\/([^/]+)\/InvokeCommand$/i;
const CLOCK_SKEW_S = 300;

/** Whether a request path is the admin API's. */
export function isAdminApiPath(pathname: string): boolean {
  return /^\/adminapi\//i.test(pathname);
}

const fail = (status: number, code: string, message: string): AdminApiResult => ({ status, json: { error: { code, message } } });

export async function handleAdminApi(
  directory: SandboxDirectory,
  jwks: JwksSource,
  request: { method: string; pathname: string; authorization: string | undefined; body: Buffer | undefined; now: number },
): Promise<AdminApiResult> {
  const m = PATH.exec(request.pathname);
  if (!m || request.method.toUpperCase() !== 'POST') return fail(404, 'NotFound', `The resource '${request.pathname}' was not found.`);
  const tenant = directory.tenant(decodeURIComponent(m[1] as string));
  const token = /^Bearer\s+(\S+)\s*$/i.exec(request.authorization ?? '')?.[1];
  if (!token) return fail(401, 'Unauthorized', 'The access token is missing.');
  let claims: JWTPayload;
  try {
    const keys = (typeof jwks === 'function' ? await jwks() : jwks) as JSONWebKeySet;
    ({ payload: claims } = await jwtVerify(token, createLocalJWKSet(keys), { algorithms: ['RS256'], clockTolerance: CLOCK_SKEW_S, currentDate: new Date(request.now) }));
  } catch (err) {
    return fail(401, 'Unauthorized', `The access token is invalid: ${(err as Error).message}`);
  }
  if (!tenant || String(claims.tid ?? '').toLowerCase() !== tenant.id.toLowerCase()) return fail(401, 'Unauthorized', 'The access token is not for this tenant.');
  const profile = CLOUD_PROFILES[tenant.cloud];
  if (String(claims.iss ?? '').toLowerCase() !== `https://${profile.v1IssuerHost}/${tenant.id}/`.toLowerCase()) return fail(401, 'Unauthorized', 'The access token has the wrong issuer.');
  const audiences = (Array.isArray(claims.aud) ? claims.aud : [claims.aud]).map((a) => String(a).replace(/\/+$/, '').toLowerCase());
  const exchangeIds = profile.resources.exchange.identifierUris.map((u) => u.replace(/\/+$/, '').toLowerCase());
  if (!audiences.some((a) => exchangeIds.includes(a))) return fail(401, 'Unauthorized', 'The access token is not for Office 365 Exchange Online.');
  const roles = Array.isArray(claims.roles) ? claims.roles : [];
  if (typeof claims.scp === 'string' || !roles.includes('Exchange.ManageAsApp')) {
    return fail(403, 'Forbidden', "The role assigned to application isn't supported in this scenario. (Exchange.ManageAsApp is missing.)");
  }

  let input: { CmdletName?: unknown; Parameters?: Record<string, unknown> };
  try {
    input = (JSON.parse(request.body?.toString('utf8') ?? '{}') as { CmdletInput?: typeof input }).CmdletInput ?? {};
  } catch {
    return fail(400, 'BadRequest', 'The request body is not valid JSON.');
  }
  const params = input.Parameters ?? {};
  const identity = typeof params.Identity === 'string' ? params.Identity : undefined;
  const value = run(directory, tenant, String(input.CmdletName ?? ''), identity);
  if ('error' in value) return fail(400, 'BadRequest', value.error);
  return {
    status: 200,
    json: { '@odata.context': `https://outlook.office365.com/adminapi/beta/${tenant.id}/$metadata#Collection(Exchange.GenericHashTable)`, 'adminapi.warnings@odata.type': '#Collection(String)', 'adminapi.warnings': [], value: value.rows },
  };
}

function run(directory: SandboxDirectory, tenant: SandboxTenant, cmdlet: string, identity: string | undefined): { rows: unknown[] } | { error: string } {
  const eq = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
  const notFound = (what: string) => ({ error: `|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object '${what}' couldn't be found on '${tenant.domains[0]}'.` });
  const mailbox = () => {
    if (!identity) return undefined;
    const found = directory.mailbox(identity);
    return found && found.tenant.id === tenant.id ? found.mailbox : undefined;
  };
  switch (cmdlet.toLowerCase()) {
    case 'get-serviceprincipal': {
      const all = tenant.exchange.servicePrincipals.map((sp) => ({ AppId: sp.appId, ObjectId: sp.objectId, DisplayName: sp.displayName, Identity: sp.objectId }));
      if (!identity) return { rows: all };
      const rows = all.filter((sp) => eq(sp.ObjectId, identity) || eq(sp.AppId, identity) || (sp.DisplayName !== '' && eq(sp.DisplayName, identity)));
      return rows.length ? { rows } : notFound(identity);
    }
    case 'get-mailboxpermission': {
      const mb = mailbox();
      if (!mb) return notFound(identity ?? '');
      return { rows: mb.fullAccess.map((u) => ({ Identity: mb.address, User: u, AccessRights: ['FullAccess'], IsInherited: false, Deny: false })) };
    }
    case 'get-recipientpermission': {
      const mb = mailbox();
      if (!mb) return notFound(identity ?? '');
      return { rows: mb.sendAs.map((t) => ({ Identity: mb.address, Trustee: t, AccessRights: ['SendAs'], AccessControlType: 'Allow', IsInherited: false })) };
    }
    case 'get-casmailbox': {
      const mb = mailbox();
      if (!mb) return notFound(identity ?? '');
      return { rows: [{ Identity: mb.address, PrimarySmtpAddress: mb.address, SmtpClientAuthenticationDisabled: mb.smtpClientAuthenticationDisabled, ImapEnabled: mb.imapEnabled }] };
    }
    case 'get-transportconfig':
      return { rows: [{ Identity: 'Transport Settings', SmtpClientAuthenticationDisabled: tenant.smtpClientAuthenticationDisabled }] };
    default:
      return { error: `The term '${cmdlet}' is not recognized as a cmdlet the sandbox admin API runs.` };
  }
}
