/**
 * Sandbox run-time administration: a small JSON HTTP API (Fastify, loopback only) over the live
 * sandbox directory and the sandbox Dovecot, so tests and admins can do at run time what a tenant
 * admin does in Exchange Online PowerShell and the Entra portal, and watch the emulators react at
 * once (the directory is shared, so the next login sees the change).
 *
 * Strategy: the routes are thin. Directory changes are the Exchange cmdlets of exchange/ops.ts and
 * the portal actions of entra/ops.ts (trustees resolved as the cmdlets do; Remove-ServicePrincipal
 * takes the principal's mailbox permissions with it); mail goes into the real Dovecot over LMTP and
 * is listed by an imapflow session straight to Dovecot as the mailbox.
 *
 * Routes (JSON in, JSON out; errors as `{ error: { code, message, explain? } }` with 400/404/409/502;
 * `explain` carries title, cause and fix in en and de where the op has a catalogue entry):
 *   GET  /state                                   tenants, apps, service principals, mailboxes
 *   POST /exchange/Add-MailboxPermission          { identity, user, accessRights: "FullAccess" }
 *   POST /exchange/Remove-MailboxPermission       { identity, user, accessRights: "FullAccess" }
 *   POST /exchange/Add-RecipientPermission        { identity, trustee, accessRights: "SendAs" }
 *   POST /exchange/Remove-RecipientPermission     { identity, trustee, accessRights: "SendAs" }
 *   POST /exchange/New-ServicePrincipal           { appId, objectId, displayName?, tenant? }
 *   POST /exchange/Remove-ServicePrincipal        { identity (app ID or object ID), tenant? }
 *   POST /exchange/Set-TransportConfig            { tenant, smtpClientAuthenticationDisabled: boolean }
 *   POST /exchange/Set-CASMailbox                 { identity, smtpClientAuthenticationDisabled?: boolean | null, imapEnabled?: boolean }
 *   POST /exchange/New-Mailbox                    { address, shared?, displayName? }
 *   POST /exchange/powershell                     { script, tenant? } → { ok, results: [{ line, cmdlet, status, message? }] }
 *                                                 (the lines of mailbridge setup's script, exchange/powershell.ts)
 *   POST /entra/app-role-assignments              { appId, role, resource?: "exchange" | "graph", tenant? }   (grant + admin consent)
 *   POST /entra/app-role-assignments/remove       same body (revoke)
 *   POST /entra/apps/:appId/certificates          { pem, tenant? }  upload a public certificate (keyCredentials)
 *   GET  /graph/subscriptions                     the Graph change-notification subscriptions
 *   POST /graph/subscriptions/:id/lifecycle       { event: missed | subscriptionRemoved | reauthorizationRequired }
 *                                                 (:id a subscription ID, or a mailbox: all its subscriptions)
 *   POST /mailboxes/:address/messages             { raw, from? }  → delivered into Dovecot over LMTP (bytes kept)
 *   GET  /mailboxes/:address/messages?folder=INBOX  [{ uid, flags, subject, size }]
 *   GET  /mailboxes/:address/messages/:uid?folder=INBOX  the message source (message/rfc822)
 *
 * Limits: no authentication, so it listens on loopback only; this is a test tenant. Changes live in
 * memory; `onChange` lets the sandbox runner persist them.
 */
import { writeFile, rm, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import { ImapFlow } from 'imapflow';
import { z } from 'zod';
import { silentLogger, type Logger } from '../log/index.ts';
import type { SandboxDirectory } from './directory.ts';
import type { Dovecot } from './dovecot.ts';
import type { SandboxMailbox, SandboxTenant } from './model.ts';
import * as exchangeOps from './exchange/ops.ts';
import * as entraOps from './entra/ops.ts';
import { PsParseError, runScript } from './exchange/powershell.ts';
import { SandboxOpError } from './entra/op-errors.ts';
import { listenOn } from '../errors/listen.ts';
import type { GraphSandbox } from './graph/index.ts';
import type { EntraSandbox } from './entra/index.ts';

/** What the admin API needs from the sandbox Dovecot. */
export type AdminBackend = Pick<Dovecot, 'host' | 'ports' | 'mintToken' | 'deliver'>;

/** What the admin API needs from the sandbox Graph (lifecycle events on demand). */
export type AdminGraph = Pick<GraphSandbox, 'subscriptions' | 'lifecycle' | 'removeSubscription'>;

export interface SandboxAdminOptions {
  directory: SandboxDirectory;
  dovecot: AdminBackend;
  /** The Graph sandbox, for its subscriptions' lifecycle events (routes absent without it). */
  graph?: AdminGraph;
  /** Entra ID, to approve device-code sign-ins as a user would (routes absent without it). */
  entra?: Pick<EntraSandbox, 'approveDeviceCode' | 'pendingDeviceCodes'>;
  /** Loopback only (default 127.0.0.1). */
  host?: string;
  port?: number;
  /** Where to write the API's URL for `mailbridge sandbox-admin` (e.g. .sandbox/admin-url); removed on close. */
  urlFile?: string;
  /** Called after every change to the directory (persist sandbox.yaml, say). */
  onChange?: () => void | Promise<void>;
  log?: Logger;
}

export interface SandboxAdmin {
  url: string;
  http: FastifyInstance;
  close(): Promise<void>;
}

/** An admin-side failure, shaped like the PowerShell error class the real cmdlet would raise. */
export class AdminError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const notFound = (what: string) =>
  new AdminError(404, 'ManagementObjectNotFound', `The operation couldn't be performed because object '${what}' couldn't be found.`);

const guid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'a GUID');
const mailboxPermission = z.object({ identity: z.string().min(1), user: z.string().min(1), accessRights: z.literal('FullAccess').default('FullAccess') });
const recipientPermission = z.object({ identity: z.string().min(1), trustee: z.string().min(1), accessRights: z.literal('SendAs').default('SendAs') });
const newServicePrincipal = z.object({ appId: guid, objectId: guid, displayName: z.string().optional(), tenant: z.string().optional() });
const removeServicePrincipal = z.object({ identity: z.string().min(1), tenant: z.string().optional() });
const transportConfig = z.object({ tenant: z.string().min(1), smtpClientAuthenticationDisabled: z.boolean() });
const casMailbox = z
  .object({ identity: z.string().min(1), smtpClientAuthenticationDisabled: z.boolean().nullable().optional(), imapEnabled: z.boolean().optional() })
  .refine((b) => b.smtpClientAuthenticationDisabled !== undefined || b.imapEnabled !== undefined, { message: 'name smtpClientAuthenticationDisabled or imapEnabled' });
const certificate = z.object({ pem: z.string().min(1), tenant: z.string().optional() });
const lifecycleEvent = z.object({ event: z.enum(['missed', 'subscriptionRemoved', 'reauthorizationRequired']) });
const newMailbox = z.object({ address: z.string().min(1), shared: z.boolean().default(false), displayName: z.string().default('') });
const appRole = z.object({ appId: guid, role: z.string().min(1), resource: z.enum(['exchange', 'graph']).default('exchange'), tenant: z.string().optional() });
const deliver = z.object({ raw: z.string().min(1), from: z.string().default('sandbox-admin@sandbox.test') });
const folderQuery = z.object({ folder: z.string().default('INBOX') });

export async function startSandboxAdmin(options: SandboxAdminOptions): Promise<SandboxAdmin> {
  const { directory, dovecot } = options;
  const log = options.log ?? silentLogger;
  const host = options.host ?? '127.0.0.1';
  if (!/^(127\.|::1$|localhost$)/.test(host)) throw new Error(`the sandbox admin API listens on loopback only, not ${host}`);
  const http = Fastify({ loggerInstance: log as FastifyBaseLogger, bodyLimit: 64 * 1024 * 1024 });

  http.setErrorHandler((err, _req, reply) => sendError(reply, err));

  const changed = async () => {
    await options.onChange?.();
  };
  const mailboxOf = (identity: string) => {
    const found = directory.mailbox(identity);
    if (!found) throw notFound(identity);
    return found;
  };
  const tenantOf = (idOrDomain: string | undefined): SandboxTenant => {
    if (idOrDomain === undefined) {
      if (directory.data.tenants.length === 1) return directory.data.tenants[0]!;
      throw new AdminError(400, 'TenantRequired', 'This sandbox has several tenants: name one with "tenant".');
    }
    const t = directory.tenant(idOrDomain);
    if (!t) throw notFound(idOrDomain);
    return t;
  };
  /** The tenant named, else the one whose app (or New-ServicePrincipal registration) has this app ID, else the only tenant. */
  const tenantOfApp = (appId: string, tenant: string | undefined): SandboxTenant =>
    tenant !== undefined
      ? tenantOf(tenant)
      : (directory.data.tenants.find((t) => directory.app(t, appId) || t.exchange.servicePrincipals.some((sp) => same(sp.appId, appId))) ??
        tenantOf(undefined));
  const tenantOfServicePrincipal = (identity: string, tenant: string | undefined): SandboxTenant =>
    tenant !== undefined
      ? tenantOf(tenant)
      : (directory.data.tenants.find((t) =>
          t.exchange.servicePrincipals.some((sp) => same(sp.appId, identity) || same(sp.objectId, identity) || (sp.displayName !== '' && same(sp.displayName, identity))),
        ) ?? tenantOf(undefined));

  http.get('/state', async () => ({
    tenants: directory.data.tenants.map((t) => ({
      id: t.id,
      name: t.name,
      domains: t.domains,
      smtpClientAuthenticationDisabled: t.smtpClientAuthenticationDisabled,
      apps: t.apps.map((a) => ({ appId: a.appId, objectId: a.objectId, servicePrincipalId: a.servicePrincipalId, displayName: a.displayName, appRoles: a.appRoles })),
      servicePrincipals: t.exchange.servicePrincipals,
      mailboxes: t.exchange.mailboxes,
    })),
  }));

  // Each route is one cmdlet (exchange/ops.ts) or one portal action (entra/ops.ts); they change the live directory.
  const exchangeRoute = <T>(path: string, schema: z.ZodType<T>, run: (body: T) => unknown, status = 200) =>
    http.post(`/exchange/${path}`, async (req, reply) => {
      const result = run(schema.parse(req.body));
      await changed();
      return reply.code(status).send(result);
    });

  exchangeRoute('Add-MailboxPermission', mailboxPermission, (b) => view(exchangeOps.grantFullAccess(directory, b.identity, b.user)));
  exchangeRoute('Remove-MailboxPermission', mailboxPermission, (b) => view(exchangeOps.revokeFullAccess(directory, b.identity, b.user)));
  exchangeRoute('Add-RecipientPermission', recipientPermission, (b) => view(exchangeOps.grantSendAs(directory, b.identity, b.trustee)));
  exchangeRoute('Remove-RecipientPermission', recipientPermission, (b) => view(exchangeOps.revokeSendAs(directory, b.identity, b.trustee)));
  // Like Exchange, New-ServicePrincipal takes whatever object ID it is given; a wrong one (the app registration's) only shows at login.
  exchangeRoute('New-ServicePrincipal', newServicePrincipal, (b) => exchangeOps.newServicePrincipal(directory, tenantOfApp(b.appId, b.tenant).id, b));
  exchangeRoute('Remove-ServicePrincipal', removeServicePrincipal, (b) => ({
    removed: exchangeOps.removeServicePrincipal(directory, tenantOfServicePrincipal(b.identity, b.tenant).id, b.identity),
  }));
  exchangeRoute('Set-TransportConfig', transportConfig, (b) => {
    const t = exchangeOps.setTenantSmtpAuthDisabled(directory, b.tenant, b.smtpClientAuthenticationDisabled);
    return { tenant: t.id, smtpClientAuthenticationDisabled: t.smtpClientAuthenticationDisabled };
  });
  exchangeRoute('Set-CASMailbox', casMailbox, (b) => {
    if (b.smtpClientAuthenticationDisabled !== undefined) exchangeOps.setMailboxSmtpAuthDisabled(directory, b.identity, b.smtpClientAuthenticationDisabled);
    return view(b.imapEnabled !== undefined ? exchangeOps.setMailboxImapEnabled(directory, b.identity, b.imapEnabled) : mailboxOf(b.identity).mailbox);
  });
  exchangeRoute(
    'New-Mailbox',
    newMailbox,
    (b) => view(exchangeOps.addMailbox(directory, { address: b.address, type: b.shared ? 'shared' : 'user', displayName: b.displayName || undefined })),
    201,
  );

  http.post('/exchange/powershell', async (req, reply) => {
    const body = z.object({ script: z.string(), tenant: z.string().optional() }).parse(req.body);
    let run;
    try {
      run = runScript(directory, body.script, body.tenant !== undefined ? { tenant: body.tenant } : {});
    } catch (err) {
      // Refused before any line ran: nothing changed.
      if (err instanceof PsParseError) throw new AdminError(400, 'PowerShellParseError', err.message);
      throw err;
    }
    await changed();
    return reply.code(200).send(run);
  });

  const roleRoute = (grant: boolean) => async (req: { body: unknown }) => {
    const body = appRole.parse(req.body);
    const tenant = tenantOfApp(body.appId, body.tenant);
    if (grant) entraOps.grantAppRole(directory, tenant.id, body.appId, body.resource, body.role);
    else entraOps.revokeAppRole(directory, tenant.id, body.appId, body.resource, body.role);
    await changed();
    return { appId: body.appId, resource: body.resource, appRoles: entraOps.appOf(directory, tenant.id, body.appId).appRoles[body.resource] };
  };
  http.post('/entra/app-role-assignments', roleRoute(true));
  http.post('/entra/app-role-assignments/remove', roleRoute(false));

  // Entra admin center → App registrations → Certificates & secrets → Upload certificate.
  http.post<{ Params: { appId: string } }>('/entra/apps/:appId/certificates', async (req, reply) => {
    const body = certificate.parse(req.body);
    const tenant = tenantOfApp(req.params.appId, body.tenant);
    const added = entraOps.addCertificate(directory, tenant.id, req.params.appId, body.pem);
    await changed();
    return reply.code(201).send({ appId: req.params.appId, ...added });
  });

  // https://microsoft.com/devicelogin as the user, for scripts: `mailbridge setup` waits for its
  // admin there. Without a code it waits (bounded) for the one sign-in pending in the user's tenant,
  // so a script can start setup in the background and approve right after.
  const entra = options.entra;
  if (entra) {
    http.post('/entra/devicelogin', async (req) => {
      const body = z.object({ upn: z.string(), userCode: z.string().optional(), waitSeconds: z.number().min(0).max(300).default(60) }).parse(req.body);
      const tenant = directory.tenantForAddress(body.upn);
      if (!tenant) throw new AdminError(404, 'UnknownUser', `no tenant has the domain of ${body.upn}`);
      const until = Date.now() + body.waitSeconds * 1000;
      for (;;) {
        const codes = body.userCode ? [body.userCode] : entra.pendingDeviceCodes(tenant.id);
        if (codes.length > 1) throw new AdminError(409, 'SeveralDeviceCodes', `${codes.length} device-code sign-ins are waiting in ${tenant.id} (${codes.join(', ')}); name one with --code`);
        if (codes.length === 1) {
          entra.approveDeviceCode(codes[0]!, body.upn);
          return { userCode: codes[0], upn: body.upn, tenant: tenant.id };
        }
        if (Date.now() >= until) throw new AdminError(404, 'NoDeviceCode', `no device-code sign-in waited in ${tenant.id} within ${body.waitSeconds} s`);
        await new Promise((r) => setTimeout(r, 100));
      }
    });
  }

  const graph = options.graph;
  if (graph) {
    http.get('/graph/subscriptions', async () => ({ subscriptions: graph.subscriptions() }));
    // What Exchange decides on its own (a missed batch, a removed or to-be-reauthorized subscription), on demand.
    http.post<{ Params: { id: string } }>('/graph/subscriptions/:id/lifecycle', async (req) => {
      const { event } = lifecycleEvent.parse(req.body);
      const key = req.params.id.toLowerCase();
      const subs = graph.subscriptions().filter((s) => s.id.toLowerCase() === key || s.mailbox.toLowerCase() === key);
      if (subs.length === 0) throw new AdminError(404, 'ResourceNotFound', `No subscription or subscribed mailbox '${req.params.id}'.`);
      const sent: string[] = [];
      const withoutUrl: string[] = [];
      for (const s of subs) {
        if (!s.lifecycleNotificationUrl) withoutUrl.push(s.id);
        else if (event === 'subscriptionRemoved') {
          graph.removeSubscription(s.id);
          sent.push(s.id);
        } else if (graph.lifecycle(s.id, event)) sent.push(s.id);
      }
      if (sent.length === 0) {
        // Graph sends lifecycle events only to a lifecycleNotificationUrl; without one there is nothing to send.
        throw new AdminError(409, 'NoLifecycleNotificationUrl', `Subscription ${withoutUrl.join(', ')} has no lifecycleNotificationUrl, so Graph sends it no lifecycle events.`);
      }
      return { event, subscriptions: sent };
    });
  }

  http.post<{ Params: { address: string } }>('/mailboxes/:address/messages', async (req, reply) => {
    const { mailbox } = mailboxOf(req.params.address);
    const body = deliver.parse(req.body);
    // Exchange's transport would deliver it; here Dovecot's LMTP puts it into the Maildir.
    const result = await dovecot.deliver({ from: body.from, to: [mailbox.address] }, body.raw);
    if (result.accepted.length === 0) throw new AdminError(502, 'DeliveryFailed', result.rejected[0]?.response || 'Dovecot refused the message.');
    return reply.code(201).send({ mailbox: mailbox.address, accepted: result.accepted });
  });

  http.get<{ Params: { address: string } }>('/mailboxes/:address/messages', async (req) => {
    const { mailbox } = mailboxOf(req.params.address);
    const { folder } = folderQuery.parse(req.query);
    return withDovecot(dovecot, mailbox.address, async (client) => {
      const box = await client.mailboxOpen(folder, { readOnly: true });
      if (box.exists === 0) return { mailbox: mailbox.address, folder, messages: [] };
      const messages: { uid: number; flags: string[]; subject: string; size: number }[] = [];
      for await (const m of client.fetch('1:*', { uid: true, flags: true, envelope: true, size: true })) {
        // \Recent is per session (this one's), not a property of the message: leave it out.
        const flags = [...(m.flags ?? [])].filter((f) => f !== '\\Recent');
        messages.push({ uid: m.uid, flags, subject: m.envelope?.subject ?? '', size: m.size ?? 0 });
      }
      return { mailbox: mailbox.address, folder, messages };
    });
  });

  http.get<{ Params: { address: string; uid: string } }>('/mailboxes/:address/messages/:uid', async (req, reply) => {
    const { mailbox } = mailboxOf(req.params.address);
    const { folder } = folderQuery.parse(req.query);
    const uid = Number(req.params.uid);
    if (!Number.isInteger(uid) || uid <= 0) throw new AdminError(400, 'InvalidUid', `'${req.params.uid}' is not a message UID.`);
    const source = await withDovecot(dovecot, mailbox.address, async (client) => {
      await client.mailboxOpen(folder, { readOnly: true });
      const m = await client.fetchOne(String(uid), { source: true }, { uid: true });
      return m ? m.source : undefined;
    });
    if (!source) throw new AdminError(404, 'MessageNotFound', `No message with UID ${uid} in ${folder} of '${mailbox.address}'.`);
    return reply.type('message/rfc822').send(source);
  });

  await listenOn('sandbox admin API', host, options.port ?? 0, () => http.listen({ host, port: options.port ?? 0 }));
  const port = (http.server.address() as { port: number }).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (options.urlFile) {
    await mkdir(dirname(options.urlFile), { recursive: true });
    await writeFile(options.urlFile, url + '\n', { mode: 0o600 });
  }
  return {
    url,
    http,
    async close() {
      await http.close();
      if (options.urlFile) await rm(options.urlFile, { force: true });
    },
  };
}

/** A mailbox as the API shows it. */
function view(m: SandboxMailbox): SandboxMailbox {
  return { ...m, fullAccess: [...m.fullAccess], sendAs: [...m.sendAs] };
}

function same(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** Exchange op failures, named like the PowerShell error categories the real cmdlets raise. */
const EXCHANGE_OP_ERRORS: Record<exchangeOps.ExchangeOpErrorCode, { status: number; code: string }> = {
  tenant_not_found: { status: 404, code: 'ManagementObjectNotFound' },
  mailbox_not_found: { status: 404, code: 'ManagementObjectNotFound' },
  trustee_not_found: { status: 404, code: 'ManagementObjectNotFound' },
  not_found: { status: 404, code: 'ManagementObjectNotFound' },
  already_exists: { status: 409, code: 'ManagementObjectAlreadyExists' },
  invalid: { status: 400, code: 'InvalidArgument' },
};

function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof AdminError) return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
  if (err instanceof exchangeOps.ExchangeOpError) {
    const m = EXCHANGE_OP_ERRORS[err.code];
    return reply.code(m.status).send({ error: { code: m.code, message: err.message } });
  }
  if (err instanceof SandboxOpError) {
    // Catalogue-shaped: the CLI shows cause and fix in the admin's language.
    const en = err.explain('en');
    return reply.code(err.http).send({ error: { code: err.code, message: `${en.cause} ${en.fix}`, explain: { en, de: err.explain('de') } } });
  }
  if (err instanceof z.ZodError) {
    const message = err.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
    return reply.code(400).send({ error: { code: 'InvalidArgument', message } });
  }
  const e = err as { statusCode?: number; message?: string };
  if (typeof e.statusCode === 'number' && e.statusCode < 500) return reply.code(e.statusCode).send({ error: { code: 'BadRequest', message: e.message ?? 'bad request' } });
  return reply.code(502).send({ error: { code: 'BackendFailed', message: e.message ?? String(err) } });
}

/** An IMAP session straight to Dovecot as the mailbox (the admin looks past the Exchange front). */
async function withDovecot<T>(dovecot: AdminBackend, address: string, fn: (client: ImapFlow) => Promise<T>): Promise<T> {
  const client = new ImapFlow({
    host: dovecot.host,
    port: dovecot.ports.imap,
    secure: false,
    doSTARTTLS: false,
    auth: { user: address.toLowerCase(), accessToken: await dovecot.mintToken(address.toLowerCase()) },
    logger: false,
  });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.logout().catch(() => client.close());
  }
}
