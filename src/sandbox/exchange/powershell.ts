/**
 * Exchange Online PowerShell, as far as the script `mailbridge setup` generates needs it: the
 * sandbox "runs" such a script against its directory, line by line, answering the way Exchange
 * does (microsoft-facts.md §3.6).
 *
 * Grammar (nothing else): one cmdlet per line; parameters as `-Name value`, `-Name:value` or a bare
 * switch; values 'single-quoted' ('' inside), "double-quoted" (no variables), $true, $false,
 * $null, or a bare word; `#` comments (whole lines or after a command) and `<# … #>` blocks. No
 * variables, pipelines, semicolons, sub-expressions, line continuations or positional values: a
 * script with any of them is refused as a whole, before anything runs, naming the line.
 *
 * Cmdlets:
 *   Connect-ExchangeOnline [-Organization T]   no-op; -Organization picks the tenant for what follows
 *   Import-Module, Install-Module, Disconnect-ExchangeOnline   no-ops
 *   New-ServicePrincipal -AppId -ObjectId (or -ServiceId) [-DisplayName]
 *   Get-ServicePrincipal [-Identity]
 *   Add-MailboxPermission -Identity -User -AccessRights FullAccess [-InheritanceType All] [-AutoMapping $false]
 *   Add-RecipientPermission -Identity -Trustee -AccessRights SendAs -Confirm:$false
 *   Set-CASMailbox -Identity -SmtpClientAuthenticationDisabled $true|$false|$null
 *   Set-TransportConfig -SmtpClientAuthenticationDisabled $true|$false
 *   New-ManagementScope -Name -RecipientRestrictionFilter
 *   New-ManagementRoleAssignment -Name -Role (-App [-CustomResourceScope] | -User [-CustomRecipientWriteScope])
 *
 * Like Exchange, New-ServicePrincipal takes any object ID: registering the app registration's
 * object ID instead of the enterprise application's succeeds, and the app's logins then fail
 * ("Using the incorrect Object ID will cause an authentication failure", exchange/authz.ts).
 * Re-running a line is harmless: what exists already is reported as `exists` (Exchange's warning
 * or "already exists" error), a setting that is already so as `unchanged`; neither counts as a failure.
 * A line that fails does not stop the lines after it (PowerShell's non-terminating errors).
 */
import type { SandboxDirectory } from '../directory.ts';
import type { SandboxTenant } from '../model.ts';
import * as ops from './ops.ts';

export type PsValue = string | boolean | null;

export interface PsCommand {
  line: number;
  text: string;
  cmdlet: string;
  /** Parameter values by canonical parameter name (as the cmdlet table spells it). */
  params: Record<string, PsValue>;
}

export class PsParseError extends Error {
  readonly line: number;
  constructor(line: number, message: string) {
    super(`Line ${line}: ${message}`);
    this.name = 'PsParseError';
    this.line = line;
  }
}

export type PsStatus = 'ok' | 'exists' | 'unchanged' | 'ignored' | 'error';

export interface PsResult {
  line: number;
  command: string;
  cmdlet: string;
  status: PsStatus;
  /** Exchange's warning or error text, where there is one. */
  message?: string;
  /** PowerShell's error category for failures (ManagementObjectNotFound, …). */
  category?: string;
  output?: unknown;
}

export interface PsRun {
  /** False when a line failed. */
  ok: boolean;
  results: PsResult[];
}

interface CmdletSpec {
  /** Canonical parameter names; `true` marks required ones. */
  params: Record<string, boolean>;
  aliases?: Record<string, string>;
}

const IGNORED = ['connect-exchangeonline', 'import-module', 'install-module', 'disconnect-exchangeonline'];

const CMDLETS: Record<string, CmdletSpec> = {
  'New-ServicePrincipal': { params: { AppId: true, ObjectId: true, DisplayName: false, Organization: false }, aliases: { serviceid: 'ObjectId' } },
  'Get-ServicePrincipal': { params: { Identity: false, Organization: false } },
  'Add-MailboxPermission': { params: { Identity: true, User: true, AccessRights: true, InheritanceType: false, AutoMapping: false, Confirm: false } },
  'Add-RecipientPermission': { params: { Identity: true, Trustee: true, AccessRights: true, Confirm: false } },
  'Set-CASMailbox': { params: { Identity: true, SmtpClientAuthenticationDisabled: true } },
  'Set-TransportConfig': { params: { SmtpClientAuthenticationDisabled: true } },
  'New-ManagementScope': { params: { Name: true, RecipientRestrictionFilter: true } },
  'New-ManagementRoleAssignment': { params: { Name: true, Role: true, App: false, CustomResourceScope: false, User: false, CustomRecipientWriteScope: false } },
};

/**
 * The RBAC for Applications roles of Exchange Online (the "Application …" management roles). Source:
 * MicrosoftDocs/office-docs-powershell / exchange docs "Role Based Access Control for Applications
 * in Exchange Online" (addendum).
 */
export const APPLICATION_ROLES = [
  'Application Mail.Read',
  'Application Mail.ReadBasic',
  'Application Mail.ReadWrite',
  'Application Mail.Send',
  'Application MailboxSettings.Read',
  'Application MailboxSettings.ReadWrite',
  'Application Calendars.Read',
  'Application Calendars.ReadWrite',
  'Application Contacts.Read',
  'Application Contacts.ReadWrite',
  'Application Mail Full Access',
  'Application Exchange Full Access',
  'Application EWS.AccessAsApp',
  'Application SMTP.SendAsApp',
];

/**
 * Roles the sandbox assigns to a user (-User): ApplicationImpersonation lets a service account act as
 * the mailboxes of its -CustomRecipientWriteScope through EWS (Exchange Server; removed from Exchange
 * Online in 2025, facts §3.6).
 */
export const USER_ROLES = ['ApplicationImpersonation'];

// --- parsing ---------------------------------------------------------------------------------------

export function parseScript(text: string): PsCommand[] {
  const commands: PsCommand[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let inBlock = false;
  lines.forEach((raw, i) => {
    const n = i + 1;
    let line = raw;
    if (inBlock) {
      const end = line.indexOf('#>');
      if (end < 0) return;
      inBlock = false;
      line = line.slice(end + 2);
    }
    const open = line.trimStart().startsWith('<#');
    if (open) {
      const rest = line.trimStart().slice(2);
      const end = rest.indexOf('#>');
      if (end < 0) {
        inBlock = true;
        return;
      }
      line = rest.slice(end + 2);
    }
    const tokens = tokenize(line, n);
    if (tokens.length === 0) return;
    commands.push(toCommand(tokens, n, raw.trim()));
  });
  if (inBlock) throw new PsParseError(lines.length, 'a <# comment block is not closed with #>.');
  return commands;
}

interface Token {
  text: string;
  quoted: boolean;
}

function tokenize(line: string, n: number): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i] as string;
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    if (c === '#') break;
    if (c === "'") {
      let value = '';
      i++;
      for (;;) {
        if (i >= line.length) throw new PsParseError(n, "a '…' string is not closed on its line.");
        if (line[i] === "'" && line[i + 1] === "'") {
          value += "'";
          i += 2;
          continue;
        }
        if (line[i] === "'") break;
        value += line[i];
        i++;
      }
      i++;
      tokens.push({ text: value, quoted: true });
      continue;
    }
    if (c === '"') {
      const end = line.indexOf('"', i + 1);
      if (end < 0) throw new PsParseError(n, 'a "…" string is not closed on its line.');
      const value = line.slice(i + 1, end);
      if (/[$`]/.test(value)) throw new PsParseError(n, `variables and escapes inside "…" are not supported ("${value}"); use '…'.`);
      tokens.push({ text: value, quoted: true });
      i = end + 1;
      continue;
    }
    let word = '';
    while (i < line.length && !/[\s#]/.test(line[i] as string)) {
      const ch = line[i] as string;
      if (ch === "'" || ch === '"') {
        // -Name:'value'
        if (!word.endsWith(':')) throw new PsParseError(n, `unexpected quote in "${word}${ch}".`);
        break;
      }
      word += ch;
      i++;
    }
    if (/[|;`(){}]/.test(word) || word.startsWith('@')) throw new PsParseError(n, `"${word}": pipelines, semicolons, line continuations, sub-expressions and script blocks are not supported; one cmdlet per line.`);
    if (/^\$(?!true$|false$|null$)/i.test(word) || /:\$(?!true$|false$|null$)/i.test(word)) throw new PsParseError(n, `"${word}": variables are not supported; write the value itself.`);
    if (word.endsWith(':') && i < line.length && (line[i] === "'" || line[i] === '"')) {
      const quoted = tokenize(line.slice(i), n);
      const first = quoted[0];
      if (!first) throw new PsParseError(n, `"${word}" has no value.`);
      tokens.push({ text: word + '\u0000' + first.text, quoted: true });
      tokens.push(...quoted.slice(1));
      return tokens;
    }
    tokens.push({ text: word, quoted: false });
  }
  return tokens;
}

function value(token: Token): PsValue {
  if (token.quoted) return token.text;
  const lower = token.text.toLowerCase();
  if (lower === '$true') return true;
  if (lower === '$false') return false;
  if (lower === '$null') return null;
  return token.text;
}

function toCommand(tokens: Token[], n: number, text: string): PsCommand {
  const [head, ...rest] = tokens;
  const name = (head as Token).text;
  if ((head as Token).quoted || !/^[A-Za-z]+-[A-Za-z0-9]+$/.test(name)) throw new PsParseError(n, `"${name}" is not a cmdlet name.`);
  if (IGNORED.includes(name.toLowerCase())) {
    const params: Record<string, PsValue> = {};
    const org = rest.findIndex((t) => !t.quoted && /^-organization(:|$)/i.test(t.text));
    if (org >= 0) {
      const t = rest[org] as Token;
      const inline = t.text.split('\u0000')[1] ?? (t.text.includes(':') ? t.text.slice(t.text.indexOf(':') + 1) : undefined);
      const v = inline ?? (rest[org + 1] ? value(rest[org + 1] as Token) : null);
      if (typeof v === 'string' && v) params.Organization = v;
    }
    return { line: n, text, cmdlet: name, params };
  }
  const cmdlet = Object.keys(CMDLETS).find((c) => c.toLowerCase() === name.toLowerCase());
  if (!cmdlet) throw new PsParseError(n, `the sandbox does not emulate ${name}. It runs: ${Object.keys(CMDLETS).join(', ')} (and ignores ${IGNORED.join(', ')}).`);
  const spec = CMDLETS[cmdlet] as CmdletSpec;
  const params: Record<string, PsValue> = {};
  for (let i = 0; i < rest.length; i++) {
    const t = rest[i] as Token;
    if (t.quoted && !t.text.includes('\u0000')) throw new PsParseError(n, `the value '${t.text}' has no -Name before it; give every value with its parameter name.`);
    const [flag, inlineQuoted] = t.text.split('\u0000');
    const m = /^-([A-Za-z]+)(?::(.*))?$/.exec(flag as string);
    if (!m) throw new PsParseError(n, `"${t.text}" has no -Name before it; give every value with its parameter name.`);
    const given = (m[1] as string).toLowerCase();
    const canonical = Object.keys(spec.params).find((p) => p.toLowerCase() === given) ?? spec.aliases?.[given];
    if (!canonical) throw new PsParseError(n, `${cmdlet} has no parameter -${m[1]} the sandbox knows (${Object.keys(spec.params).map((p) => `-${p}`).join(', ')}).`);
    if (canonical in params) throw new PsParseError(n, `-${canonical} is given twice.`);
    let v: PsValue;
    if (inlineQuoted !== undefined) v = inlineQuoted;
    else if (m[2] !== undefined) v = value({ text: m[2], quoted: false });
    else {
      const next = rest[i + 1];
      if (next && (next.quoted || !next.text.startsWith('-'))) {
        v = value(next);
        i++;
      } else v = true; // a switch
    }
    params[canonical] = v;
  }
  for (const [p, required] of Object.entries(spec.params)) {
    if (required && !(p in params)) throw new PsParseError(n, `${cmdlet} needs -${p}.`);
  }
  return { line: n, text, cmdlet, params };
}

// --- running ---------------------------------------------------------------------------------------

const ERROR_CATEGORY: Record<ops.ExchangeOpErrorCode, string> = {
  tenant_not_found: 'ManagementObjectNotFound',
  mailbox_not_found: 'ManagementObjectNotFound',
  trustee_not_found: 'ManagementObjectNotFound',
  not_found: 'ManagementObjectNotFound',
  already_exists: 'ManagementObjectAlreadyExists',
  invalid: 'InvalidArgument',
};

class PsFailure extends Error {
  readonly category: string;
  constructor(category: string, message: string) {
    super(message);
    this.category = category;
  }
}

/** Parses the whole script (refusing it on the first line outside the grammar), then runs it line by line. */
export function runScript(directory: SandboxDirectory, script: string, options: { tenant?: string } = {}): PsRun {
  const commands = parseScript(script);
  let tenantKey = options.tenant;
  const results: PsResult[] = [];
  for (const c of commands) {
    const base = { line: c.line, command: c.text, cmdlet: c.cmdlet };
    if (IGNORED.includes(c.cmdlet.toLowerCase())) {
      if (typeof c.params.Organization === 'string') tenantKey = c.params.Organization;
      results.push({ ...base, status: 'ignored' });
      continue;
    }
    try {
      results.push({ ...base, ...run(directory, c, () => tenantOf(directory, tenantKey)) });
    } catch (err) {
      if (err instanceof ops.ExchangeOpError) {
        const status = err.code === 'already_exists' ? 'exists' : 'error';
        results.push({ ...base, status, message: err.message, category: ERROR_CATEGORY[err.code] });
      } else if (err instanceof PsFailure) {
        results.push({ ...base, status: 'error', message: err.message, category: err.category });
      } else throw err;
    }
  }
  return { ok: results.every((r) => r.status !== 'error'), results };
}

function tenantOf(directory: SandboxDirectory, key: string | undefined): SandboxTenant {
  if (key !== undefined) {
    const t = directory.tenant(key);
    if (!t) throw new PsFailure('ManagementObjectNotFound', `No tenant '${key}' in the sandbox (Connect-ExchangeOnline -Organization).`);
    return t;
  }
  if (directory.data.tenants.length === 1) return directory.data.tenants[0] as SandboxTenant;
  throw new PsFailure('InvalidArgument', 'This sandbox has several tenants: start the script with Connect-ExchangeOnline -Organization <tenant>.');
}

const eq = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
const str = (v: PsValue | undefined) => (typeof v === 'string' ? v : '');

/** Exchange's warning for a Set-* that changes nothing. */
const notModified = (identity: string) => `The command completed successfully but no settings of '${identity}' have been modified.`;

function run(directory: SandboxDirectory, c: PsCommand, tenant: () => SandboxTenant): Omit<PsResult, 'line' | 'command' | 'cmdlet'> {
  const p = c.params;
  switch (c.cmdlet) {
    case 'New-ServicePrincipal': {
      const t = typeof p.Organization === 'string' ? tenantOf(directory, p.Organization) : tenant();
      const sp = ops.newServicePrincipal(directory, t.id, { appId: str(p.AppId), objectId: str(p.ObjectId), ...(typeof p.DisplayName === 'string' ? { displayName: p.DisplayName } : {}) });
      return { status: 'ok', output: spView(sp) };
    }
    case 'Get-ServicePrincipal': {
      const t = typeof p.Organization === 'string' ? tenantOf(directory, p.Organization) : tenant();
      const id = str(p.Identity);
      const sps = t.exchange.servicePrincipals.filter((s) => !id || eq(s.objectId, id) || eq(s.appId, id) || (s.displayName !== '' && eq(s.displayName, id)));
      if (id && sps.length === 0) throw new PsFailure('ManagementObjectNotFound', `The operation couldn't be performed because object '${id}' couldn't be found.`);
      return { status: 'ok', output: sps.map(spView) };
    }
    case 'Add-MailboxPermission': {
      if (!eq(str(p.AccessRights), 'FullAccess')) throw new PsFailure('InvalidArgument', `The sandbox grants -AccessRights FullAccess only, not '${str(p.AccessRights)}'.`);
      if (p.InheritanceType !== undefined && !eq(str(p.InheritanceType), 'All')) throw new PsFailure('InvalidArgument', `The sandbox takes -InheritanceType All only.`);
      const before = directory.mailbox(str(p.Identity))?.mailbox.fullAccess.length;
      const m = ops.grantFullAccess(directory, str(p.Identity), str(p.User));
      if (m.fullAccess.length === before) return { status: 'exists', message: `An existing permission entry was found for user: ${str(p.User)}.` };
      return { status: 'ok', output: { Identity: m.address, User: str(p.User), AccessRights: ['FullAccess'], IsInherited: false, Deny: false } };
    }
    case 'Add-RecipientPermission': {
      if (!eq(str(p.AccessRights), 'SendAs')) throw new PsFailure('InvalidArgument', `The sandbox grants -AccessRights SendAs only, not '${str(p.AccessRights)}'.`);
      // Without -Confirm:$false the cmdlet stops to ask; an unattended run would hang there.
      if (p.Confirm !== false) throw new PsFailure('InvalidArgument', 'Add-RecipientPermission asks for confirmation; add -Confirm:$false so the script runs unattended.');
      const before = directory.mailbox(str(p.Identity))?.mailbox.sendAs.length;
      const m = ops.grantSendAs(directory, str(p.Identity), str(p.Trustee));
      // Approximation: Exchange accepts a repeated grant; the sandbox says it was there already.
      if (m.sendAs.length === before) return { status: 'exists', message: `'${str(p.Trustee)}' already has the SendAs right on '${m.address}'.` };
      return { status: 'ok', output: { Identity: m.address, Trustee: str(p.Trustee), AccessControlType: 'Allow', AccessRights: ['SendAs'] } };
    }
    case 'Set-CASMailbox': {
      const v = p.SmtpClientAuthenticationDisabled;
      if (typeof v !== 'boolean' && v !== null) throw new PsFailure('InvalidArgument', '-SmtpClientAuthenticationDisabled takes $true, $false or $null.');
      const current = directory.mailbox(str(p.Identity))?.mailbox.smtpClientAuthenticationDisabled;
      const m = ops.setMailboxSmtpAuthDisabled(directory, str(p.Identity), v);
      if (current === v) return { status: 'unchanged', message: notModified(m.address) };
      return { status: 'ok' };
    }
    case 'Set-TransportConfig': {
      const v = p.SmtpClientAuthenticationDisabled;
      if (typeof v !== 'boolean') throw new PsFailure('InvalidArgument', '-SmtpClientAuthenticationDisabled takes $true or $false.');
      const t = tenant();
      const current = t.smtpClientAuthenticationDisabled;
      ops.setTenantSmtpAuthDisabled(directory, t.id, v);
      if (current === v) return { status: 'unchanged', message: notModified('Transport Settings') };
      return { status: 'ok' };
    }
    case 'New-ManagementScope': {
      const t = tenant();
      const name = str(p.Name);
      const filter = str(p.RecipientRestrictionFilter);
      if (!name || !filter) throw new PsFailure('InvalidArgument', '-Name and -RecipientRestrictionFilter need values.');
      const scopes = (t.exchange.managementScopes ??= []);
      if (scopes.some((s) => eq(s.name, name))) return { status: 'exists', message: `The management scope "${name}" already exists.` };
      scopes.push({ name, recipientRestrictionFilter: filter });
      return { status: 'ok', output: { Name: name, RecipientFilter: filter, ScopeRestrictionType: 'RecipientScope' } };
    }
    case 'New-ManagementRoleAssignment': {
      const t = tenant();
      const name = str(p.Name);
      if ((p.App === undefined) === (p.User === undefined)) throw new PsFailure('InvalidArgument', 'Give either -App or -User.');
      const scopeOf = (v: PsValue | undefined) => {
        if (v === undefined) return undefined;
        const scope = str(v);
        if (!(t.exchange.managementScopes ?? []).some((s) => eq(s.name, scope))) {
          throw new PsFailure('ManagementObjectNotFound', `The operation couldn't be performed because object '${scope}' couldn't be found.`);
        }
        return scope;
      };
      const assignments = (t.exchange.managementRoleAssignments ??= []);
      if (p.User !== undefined) {
        const role = USER_ROLES.find((r) => eq(r, str(p.Role)));
        if (!role) throw new PsFailure('ManagementObjectNotFound', `The operation couldn't be performed because object '${str(p.Role)}' couldn't be found.`);
        const user = str(p.User);
        // A UPN, an object ID, or the account name (DOMAIN\name or name alone).
        const account = user.replace(/^.*\\/, '');
        const known = t.users.find((u) => eq(u.upn, user) || eq(u.objectId, user) || eq(u.upn.split('@')[0] ?? '', account));
        if (!known) throw new PsFailure('ManagementObjectNotFound', `The operation couldn't be performed because object '${user}' couldn't be found.`);
        const scope = scopeOf(p.CustomRecipientWriteScope);
        if (assignments.some((a) => eq(a.name, name))) return { status: 'exists', message: `The role assignment "${name}" already exists.` };
        assignments.push({ name, role, user: known.upn, ...(scope !== undefined ? { customRecipientWriteScope: scope } : {}) });
        return { status: 'ok', output: { Name: name, Role: role, RoleAssigneeName: known.upn, CustomRecipientWriteScope: scope ?? null } };
      }
      const role = APPLICATION_ROLES.find((r) => eq(r, str(p.Role)));
      if (!role) throw new PsFailure('ManagementObjectNotFound', `The operation couldn't be performed because object '${str(p.Role)}' couldn't be found.`);
      const app = str(p.App);
      const sp = t.exchange.servicePrincipals.find((s) => eq(s.objectId, app) || eq(s.appId, app) || (s.displayName !== '' && eq(s.displayName, app)));
      if (!sp) throw new PsFailure('ManagementObjectNotFound', `The operation couldn't be performed because object '${app}' couldn't be found. Register it with New-ServicePrincipal first.`);
      const scope = scopeOf(p.CustomResourceScope);
      if (assignments.some((a) => eq(a.name, name))) return { status: 'exists', message: `The role assignment "${name}" already exists.` };
      assignments.push({ name, role, app: sp.objectId, ...(scope !== undefined ? { customResourceScope: scope } : {}) });
      return { status: 'ok', output: { Name: name, Role: role, RoleAssigneeName: sp.displayName || sp.objectId, CustomResourceScope: scope ?? null } };
    }
  }
  throw new PsFailure('InvalidArgument', `${c.cmdlet} is not emulated.`);
}

function spView(sp: { appId: string; objectId: string; displayName: string }) {
  return { DisplayName: sp.displayName, AppId: sp.appId, ObjectId: sp.objectId, Identity: sp.objectId };
}
