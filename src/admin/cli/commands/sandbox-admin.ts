/**
 * `mailbridge sandbox-admin <op> …`: run-time administration of a running sandbox tenant through
 * its loopback admin API (src/sandbox/admin.ts). The API's URL comes from --url, else from
 * <folder>/admin-url of --dir (or MAILBRIDGE_SANDBOX_DIR), else ./.sandbox/admin-url, else the
 * well-known file naming the last sandbox started on this machine (sandboxPointerFile), so an
 * admin finds the sandbox from any folder. Each Exchange operation prints the
 * PowerShell line it stands for, so the admin learns the real fix while testing. The operations its
 * help lists are one table for both languages in sandbox-admin.texts.json, with the option texts.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { MbError } from '../../../errors/index.ts';
import type { Lang, Text } from '../../../i18n/index.ts';
import { sandboxPointerFile, type SandboxPointer } from '../../../sandbox/index.ts';
import { defineCommand, type CommandContext } from '../command.ts';
import { helpColumns, type OptionDefs, type OptionValues } from '../args.ts';
import { processAlive } from '../../../util/process.ts';
import texts from './sandbox-admin.texts.json' with { type: 'json' };

interface Call {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  /** The Exchange Online PowerShell (or portal) step this operation emulates. */
  equivalent?: string;
  /** Print the response body as it is (message source). */
  raw?: boolean;
}

interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

const options = {
  dir: { type: 'string', value: texts.values.dir, help: texts.options.dir },
  url: { type: 'string', value: 'URL', help: texts.options.url },
  json: { type: 'boolean', help: texts.options.json },
  name: { type: 'string', value: 'N', help: texts.options.name },
  tenant: { type: 'string', value: 'T', help: texts.options.tenant },
  resource: { type: 'string', value: 'exchange|graph', help: texts.options.resource },
  from: { type: 'string', value: texts.values.address, help: texts.options.from },
  folder: { type: 'string', value: 'F', help: texts.options.folder },
  code: { type: 'string', value: 'CODE', help: texts.options.code },
  shared: { type: 'boolean', help: texts.options.shared },
} satisfies OptionDefs;

/** The operations as the help lists them: arguments and what each does (mostly the cmdlet it stands for). */
const OPERATIONS: Record<string, { args?: Text; does: Text }> = texts.operations;

function operationsHelp(lang: Lang): string {
  return helpColumns(
    Object.entries(OPERATIONS).map(([op, o]) => [o.args ? `${op} ${o.args[lang]}` : op, o.does[lang]] as const),
    40,
  ).join('\n');
}

export const command = defineCommand({
  name: 'sandbox-admin',
  summary: {
    en: 'Change a running sandbox tenant (permissions, service principals, mailboxes, mail)',
    de: 'Laufenden Sandbox-Mandanten ändern (Berechtigungen, Dienstprinzipale, Postfächer, Mails)',
  },
  help: {
    en: `Usage: mailbridge sandbox-admin <operation> [arguments] [--dir DIR | --url URL] [--json]

Talks to the admin API of a running sandbox (\`mailbridge sandbox\`). It finds the sandbox by --url;
else by DIR/admin-url (--dir, or MAILBRIDGE_SANDBOX_DIR); else by ./.sandbox/admin-url; else by
the last sandbox started on this machine (~/.local/state/mailbridge/sandbox.json).

Operations:
${operationsHelp('en')}

{options}`,
    de: `Aufruf: mailbridge sandbox-admin <vorgang> [argumente] [--dir VERZ | --url URL] [--json]

Spricht mit der Admin-API einer laufenden Sandbox (\`mailbridge sandbox\`). Sie findet die Sandbox
über --url; sonst über VERZ/admin-url (--dir oder MAILBRIDGE_SANDBOX_DIR); sonst über
./.sandbox/admin-url; sonst über die zuletzt auf diesem Rechner gestartete Sandbox
(~/.local/state/mailbridge/sandbox.json).

Vorgänge:
${operationsHelp('de')}

{options}`,
  },
  options,
  async run(ctx) {
    const args = parsed(ctx.args, ctx.opts);
    const [op, ...rest] = args.positional;
    if (!op) throw usage('an operation is missing, e.g. `mailbridge sandbox-admin state`');
    const call = await buildCall(op, rest, args);
    const base = await adminUrl(args, ctx);
    let res: Response;
    try {
      res = await fetch(new URL(call.path, base), {
        method: call.method,
        headers: call.body === undefined ? {} : { 'content-type': 'application/json' },
        body: call.body === undefined ? undefined : JSON.stringify(call.body),
      });
    } catch (err) {
      throw new MbError('MB_SANDBOX_ADMIN_UNREACHABLE', { url: String(base), detail: (err as Error).message }, { cause: err });
    }
    if (call.raw && res.ok) {
      ctx.out.line((await res.text()).replace(/\r?\n$/, ''));
      return 0;
    }
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) {
      const e = (body.error ?? {}) as { code?: string; message?: string; explain?: Record<Lang, { cause: string; fix: string }> };
      // Catalogue-shaped errors come in both languages; Exchange-style ones carry Exchange's English text.
      const text = e.explain ? `${e.explain[ctx.lang].cause} ${e.explain[ctx.lang].fix}` : (e.message ?? res.statusText);
      throw new MbError('MB_SANDBOX_ADMIN_REFUSED', { op, code: e.code ?? String(res.status), detail: text });
    }
    if (args.flags.has('--json')) {
      ctx.out.json(body);
      return op === 'powershell' && body.ok === false ? 1 : 0;
    }
    if (op === 'powershell') return printPowerShell(ctx, body);
    printResult(ctx, op, call, body);
    return 0;
  },
});

/** The parsed command line in the shape the operations read (`--name` → its value, `--shared` → true). */
function parsed(positional: string[], opts: OptionValues<typeof options>): Parsed {
  const flags = new Map<string, string | true>();
  for (const [name, v] of Object.entries(opts)) if (v !== undefined && v !== false) flags.set(`--${name}`, v);
  return { positional, flags };
}

function usage(detail: string): MbError {
  return new MbError('MB_CLI_USAGE', { detail, command: 'sandbox-admin' });
}

function flag(args: Parsed, name: string): string | undefined {
  const v = args.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

function need(rest: string[], names: string[], op: string): string[] {
  if (rest.length !== names.length) throw usage(`${op} takes ${names.map((n) => `<${n}>`).join(' ') || 'no arguments'}`);
  return rest;
}

function onOff(v: string, allowDefault: boolean): boolean | null {
  // SmtpClientAuthenticationDisabled is the inverse of "SMTP AUTH on".
  if (v === 'on') return false;
  if (v === 'off') return true;
  if (allowDefault && v === 'default') return null;
  throw usage(`expected on|off${allowDefault ? '|default' : ''}, not "${v}"`);
}

/**
 * Add-/Remove-MailboxPermission (FullAccess, the trustee is -User) and Add-/Remove-RecipientPermission
 * (SendAs, the trustee is -Trustee): the admin API takes the cmdlet's parameters by their names.
 */
function permission(op: string, rest: string[], cmdlet: { noun: string; trustee: 'User' | 'Trustee'; rights: string }): Call {
  const [identity, trustee] = need(rest, ['mailbox', 'trustee'], op);
  const verb = op.startsWith('grant') ? 'Add' : 'Remove';
  return {
    method: 'POST',
    path: `/exchange/${verb}-${cmdlet.noun}`,
    body: { identity, [cmdlet.trustee.toLowerCase()]: trustee, accessRights: cmdlet.rights },
    equivalent: `${verb}-${cmdlet.noun} -Identity "${identity}" -${cmdlet.trustee} ${trustee} -AccessRights ${cmdlet.rights}`,
  };
}

async function buildCall(op: string, rest: string[], args: Parsed): Promise<Call> {
  const tenant = flag(args, '--tenant');
  const folder = flag(args, '--folder');
  const q = folder ? `?folder=${encodeURIComponent(folder)}` : '';
  switch (op) {
    case 'state':
      need(rest, [], op);
      return { method: 'GET', path: '/state' };
    case 'grant-full-access':
    case 'revoke-full-access':
      return permission(op, rest, { noun: 'MailboxPermission', trustee: 'User', rights: 'FullAccess' });
    case 'grant-send-as':
    case 'revoke-send-as':
      return permission(op, rest, { noun: 'RecipientPermission', trustee: 'Trustee', rights: 'SendAs' });
    case 'register-sp': {
      const [appId, objectId] = need(rest, ['appId', 'objectId'], op);
      const name = flag(args, '--name') ?? '';
      return {
        method: 'POST',
        path: '/exchange/New-ServicePrincipal',
        body: { appId, objectId, displayName: name, tenant },
        equivalent: `New-ServicePrincipal -AppId ${appId} -ObjectId ${objectId}${name ? ` -DisplayName "${name}"` : ''}`,
      };
    }
    case 'remove-sp': {
      const [identity] = need(rest, ['appId|objectId'], op);
      return { method: 'POST', path: '/exchange/Remove-ServicePrincipal', body: { identity, tenant }, equivalent: `Remove-ServicePrincipal -Identity ${identity}` };
    }
    case 'smtp-auth-tenant': {
      const [t, v] = need(rest, ['tenant', 'on|off'], op);
      const disabled = onOff(v!, false)!;
      return {
        method: 'POST',
        path: '/exchange/Set-TransportConfig',
        body: { tenant: t, smtpClientAuthenticationDisabled: disabled },
        equivalent: `Set-TransportConfig -SmtpClientAuthenticationDisabled $${disabled}`,
      };
    }
    case 'smtp-auth-mailbox': {
      const [identity, v] = need(rest, ['mailbox', 'on|off|default'], op);
      const disabled = onOff(v!, true);
      return {
        method: 'POST',
        path: '/exchange/Set-CASMailbox',
        body: { identity, smtpClientAuthenticationDisabled: disabled },
        equivalent: `Set-CASMailbox -Identity "${identity}" -SmtpClientAuthenticationDisabled $${disabled === null ? 'null' : disabled}`,
      };
    }
    case 'imap-mailbox': {
      const [identity, v] = need(rest, ['mailbox', 'on|off'], op);
      if (v !== 'on' && v !== 'off') throw usage(`expected on|off, not "${v}"`);
      return {
        method: 'POST',
        path: '/exchange/Set-CASMailbox',
        body: { identity, imapEnabled: v === 'on' },
        equivalent: `Set-CASMailbox -Identity "${identity}" -ImapEnabled $${v === 'on'}`,
      };
    }
    case 'add-cert': {
      const [appId, file] = need(rest, ['appId', 'cert.pem'], op);
      const pem = await readFile(file!, 'utf8').catch((err: Error) => {
        throw usage(`cannot read ${file}: ${err.message}`);
      });
      return {
        method: 'POST',
        path: `/entra/apps/${encodeURIComponent(appId!)}/certificates`,
        body: { pem, tenant },
        equivalent: `Entra admin center → App registrations → ${appId} → Certificates & secrets → Certificates → Upload certificate`,
      };
    }
    case 'approve-device': {
      const [upn] = need(rest, ['upn'], op);
      return {
        method: 'POST',
        path: '/entra/devicelogin',
        body: { upn, userCode: flag(args, '--code') },
        equivalent: `https://microsoft.com/devicelogin → ${upn}`,
      };
    }
    case 'subscriptions':
      need(rest, [], op);
      return { method: 'GET', path: '/graph/subscriptions' };
    case 'lifecycle': {
      const [id, event] = need(rest, ['subscriptionId|mailbox', 'missed|subscriptionRemoved|reauthorizationRequired'], op);
      if (!['missed', 'subscriptionRemoved', 'reauthorizationRequired'].includes(event!)) throw usage(`the event is missed, subscriptionRemoved or reauthorizationRequired, not "${event}"`);
      return { method: 'POST', path: `/graph/subscriptions/${encodeURIComponent(id!)}/lifecycle`, body: { event } };
    }
    case 'add-mailbox': {
      const [address] = need(rest, ['address'], op);
      const shared = args.flags.has('--shared');
      const name = flag(args, '--name') ?? '';
      return {
        method: 'POST',
        path: '/exchange/New-Mailbox',
        body: { address, shared, displayName: name },
        equivalent: `New-Mailbox${shared ? ' -Shared' : ''} -Name "${name || address!.split('@')[0]}" -PrimarySmtpAddress ${address!}`,
      };
    }
    case 'grant-role':
    case 'revoke-role': {
      const [appId, role] = need(rest, ['appId', 'role'], op);
      const resource = flag(args, '--resource') ?? 'exchange';
      if (resource !== 'exchange' && resource !== 'graph') throw usage(`--resource is exchange or graph, not "${resource}"`);
      const api = resource === 'exchange' ? 'Office 365 Exchange Online' : 'Microsoft Graph';
      return {
        method: 'POST',
        path: op === 'grant-role' ? '/entra/app-role-assignments' : '/entra/app-role-assignments/remove',
        body: { appId, role, resource, tenant },
        equivalent:
          op === 'grant-role'
            ? `Entra admin center → App registrations → ${appId} → API permissions → ${api} → Application permissions → ${role} → Grant admin consent`
            : `Entra admin center → App registrations → ${appId} → API permissions → ${api} → ${role} → Remove permission`,
      };
    }
    case 'deliver': {
      const [mailbox, file] = need(rest, ['mailbox', 'file|-'], op);
      const raw = file === '-' ? await readStdin() : await readFile(file!, 'utf8').catch((err: Error) => {
        throw usage(`cannot read ${file}: ${err.message}`);
      });
      if (raw.length === 0) throw usage('the message is empty');
      return { method: 'POST', path: `/mailboxes/${encodeURIComponent(mailbox!)}/messages`, body: { raw, from: flag(args, '--from') } };
    }
    case 'list': {
      const [mailbox] = need(rest, ['mailbox'], op);
      return { method: 'GET', path: `/mailboxes/${encodeURIComponent(mailbox!)}/messages${q}` };
    }
    case 'show-message': {
      const [mailbox, uid] = need(rest, ['mailbox', 'uid'], op);
      return { method: 'GET', path: `/mailboxes/${encodeURIComponent(mailbox!)}/messages/${encodeURIComponent(uid!)}${q}`, raw: true };
    }
    case 'powershell': {
      const [file] = need(rest, ['file|-'], op);
      const script = file === '-' ? await readStdin() : await readFile(file!, 'utf8').catch((err: Error) => {
        throw usage(`cannot read ${file}: ${err.message}`);
      });
      return { method: 'POST', path: '/exchange/powershell', body: { script, tenant } };
    }
    default:
      throw usage(`unknown operation "${op}"`);
  }
}

async function adminUrl(args: Parsed, ctx: CommandContext): Promise<string> {
  const given = flag(args, '--url');
  if (given) return given;
  const readUrl = async (file: string) => (await readFile(file, 'utf8').catch(() => '')).trim();
  const dir = flag(args, '--dir') ?? (ctx.env.MAILBRIDGE_SANDBOX_DIR || undefined);
  const looked: string[] = [];
  if (dir !== undefined) {
    // A named folder is the answer or an error: never silently another sandbox.
    const file = join(resolve(dir), 'admin-url');
    const url = await readUrl(file);
    if (url) return url;
    throw new MbError('MB_SANDBOX_ADMIN_NOT_FOUND', { looked: file });
  }
  const local = resolve('.sandbox', 'admin-url');
  looked.push(local);
  const url = await readUrl(local);
  if (url) return url;
  const pointerFile = sandboxPointerFile(ctx.env);
  looked.push(pointerFile);
  try {
    const pointer = JSON.parse(await readFile(pointerFile, 'utf8')) as SandboxPointer;
    // A sandbox killed without closing leaves its pointer behind: only a live one counts.
    if (pointer.url && processAlive(pointer.pid)) return pointer.url;
  } catch {
    // no pointer: nothing started here
  }
  throw new MbError('MB_SANDBOX_ADMIN_NOT_FOUND', { looked: looked.join(', ') });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function printResult(ctx: CommandContext, op: string, call: Call, body: Record<string, unknown>): void {
  const de = ctx.lang === 'de';
  if (op === 'state') {
    for (const t of (body.tenants ?? []) as {
      id: string;
      name: string;
      domains: string[];
      apps: { appId: string; servicePrincipalId: string; displayName: string; appRoles: { exchange: string[]; graph: string[] } }[];
      servicePrincipals: { appId: string; objectId: string }[];
      mailboxes: { address: string; type: string; fullAccess: string[]; sendAs: string[]; imapEnabled?: boolean }[];
    }[]) {
      ctx.out.line(`${t.name} (${t.id}) ${t.domains.join(', ')}`);
      for (const a of t.apps)
        ctx.out.line(`  app ${a.displayName} appId=${a.appId} servicePrincipalId=${a.servicePrincipalId} roles=${[...a.appRoles.exchange, ...a.appRoles.graph].join(',') || '-'}`);
      for (const sp of t.servicePrincipals) ctx.out.line(`  New-ServicePrincipal appId=${sp.appId} objectId=${sp.objectId}`);
      for (const m of t.mailboxes)
        ctx.out.line(
          `  ${de ? 'Postfach' : 'mailbox'} ${m.address} (${m.type}) FullAccess=${m.fullAccess.join(',') || '-'} SendAs=${m.sendAs.join(',') || '-'}${m.imapEnabled === false ? ' IMAP=off' : ''}`,
        );
    }
    return;
  }
  if (op === 'list') {
    const messages = (body.messages ?? []) as { uid: number; flags: string[]; subject: string }[];
    if (messages.length === 0) ctx.out.line(de ? `${body.folder} ist leer.` : `${body.folder} is empty.`);
    for (const m of messages) ctx.out.line(`${String(m.uid).padStart(6)}  ${(m.flags.join(' ') || '-').padEnd(20)}  ${m.subject}`);
    return;
  }
  if (op === 'subscriptions') {
    const subs = (body.subscriptions ?? []) as { id: string; mailbox: string; notificationUrl: string; lifecycleNotificationUrl: string | null; expirationDateTime: string }[];
    if (subs.length === 0) ctx.out.line(de ? 'Keine Abonnements.' : 'No subscriptions.');
    for (const s of subs) ctx.out.line(`${s.id}  ${s.mailbox}  ${s.notificationUrl}  lifecycle=${s.lifecycleNotificationUrl ?? '-'}  ${de ? 'bis' : 'until'} ${s.expirationDateTime}`);
    return;
  }
  if (op === 'lifecycle') {
    const ids = (body.subscriptions ?? []) as string[];
    ctx.out.line(de ? `${String(body.event)} gesendet für ${ids.join(', ')}.` : `Sent ${String(body.event)} for ${ids.join(', ')}.`);
    return;
  }
  if (op === 'add-cert') {
    ctx.out.line(
      de
        ? `Zertifikat hochgeladen: Fingerabdruck ${String(body.thumbprint)} (SHA-256 ${String(body.thumbprintSha256)}), gültig bis ${String(body.endDateTime)}.`
        : `Certificate uploaded: thumbprint ${String(body.thumbprint)} (SHA-256 ${String(body.thumbprintSha256)}), valid until ${String(body.endDateTime)}.`,
    );
    return;
  }
  if (op === 'deliver') {
    ctx.out.line(de ? `Zugestellt an ${body.mailbox}.` : `Delivered to ${body.mailbox}.`);
    return;
  }
  if (op === 'approve-device') {
    ctx.out.line(de ? `Code ${String(body.userCode)} als ${String(body.upn)} bestätigt.` : `Code ${String(body.userCode)} approved as ${String(body.upn)}.`);
    return;
  }
  ctx.out.line(de ? `Erledigt: ${call.equivalent}` : `Done: ${call.equivalent}`);
}

/** One line per cmdlet run: line number, outcome, cmdlet, and Exchange's own warning or error text. */
function printPowerShell(ctx: CommandContext, body: Record<string, unknown>): number {
  const words: Record<string, Text> = texts.lineStatus;
  const results = (body.results ?? []) as { line: number; cmdlet: string; status: string; message?: string }[];
  for (const r of results) {
    const word = words[r.status]?.[ctx.lang] ?? r.status;
    ctx.out.line(`${String(r.line).padStart(4)}  ${word.padEnd(12)} ${r.cmdlet}${r.message ? `  ${r.message}` : ''}`);
  }
  return body.ok === false ? 1 : 0;
}
