/**
 * The sandbox Graph's directory endpoints: what `mailbridge setup` needs to create and check an
 * app registration, faithful to Microsoft Graph v1.0 (microsoft-facts.md §6, addendum "Graph
 * directory calls").
 *
 *   POST  /applications                       GET /applications?$filter=appId eq '…' | displayName eq '…'
 *   GET   /applications/{id} | /applications(appId='…')     PATCH the same (displayName,
 *         requiredResourceAccess, web.redirectUris, publicClient.redirectUris, isFallbackPublicClient,
 *         keyCredentials — the collection is replaced)
 *   POST  /applications/{id}/addPassword | removePassword | addKey | removeKey
 *   POST  /servicePrincipals                  GET /servicePrincipals?$filter=appId eq '…'
 *   GET   /servicePrincipals/{id} | /servicePrincipals(appId='…')
 *   POST/GET /servicePrincipals/{id}/appRoleAssignedTo (resource side) | /appRoleAssignments (client side)
 *   POST/GET /oauth2PermissionGrants          (tenant-wide delegated consent, consentType AllPrincipals)
 *   PATCH /oauth2PermissionGrants/{id}        (its scope replaced, as Graph does)
 *
 * Authorization, as Graph decides it for directory objects: a delegated token needs the scope
 * (Application.ReadWrite.All to write apps and service principals, Application.Read.All or
 * Application.ReadWrite.All to read, AppRoleAssignment.ReadWrite.All plus a read scope for app role
 * assignments, DelegatedPermissionGrant.ReadWrite.All for consent grants) AND a signed-in user with
 * an admin role that may do it (Global Administrator always; Application Administrator and Cloud
 * Application Administrator for apps, and for consent to resources other than Microsoft Graph;
 * Privileged Role Administrator for consent; Application Developer may create apps; an owner may
 * change their app). App-only tokens need the role; Application.ReadWrite.OwnedBy reaches only apps
 * the caller owns (it becomes owner of what it creates). Missing → 403 Authorization_RequestDenied.
 *
 * Effects on the rest of the sandbox: a created app is a tenant app at once (sandbox Entra issues
 * tokens with its secrets and certificates); an app role assignment on the Exchange Online or Graph
 * resource service principal reaches the app's tokens after `propagationMs` (registration.ts,
 * effectiveAppRoles); consent grants become the app's delegatedConsent at once.
 *
 * Limits: only the two resource service principals (Microsoft Graph, Office 365 Exchange Online)
 * can be assigned roles of; no DELETE of applications or assignments; $filter takes one `eq`
 * clause; tenant app-management policies are not modelled. Texts marked "approximation" where no
 * source shows Graph's exact words.
 */
import { randomUUID, X509Certificate } from 'node:crypto';
import { importX509, jwtVerify, decodeProtectedHeader } from 'jose';
import type { SandboxDirectory } from '../directory.ts';
import { registeredCert } from '../entra/assertion.ts';
import { CLOUD_PROFILES, type ResourcePrincipal } from '../entra/clouds.ts';
import * as entraOps from '../entra/ops.ts';
import { SandboxOpError } from '../entra/op-errors.ts';
import type { SandboxApp, SandboxTenant } from '../model.ts';
import { appRegistrationSchema, derivedGuid, PERMISSION_IDS, type AppRegistration, type AppRoleAssignment } from '../registration.ts';
import type { Principal } from './auth.ts';
import { GraphError } from './errors.ts';

/** Default delay before an app role assignment shows in tokens (the field's is up to 30 minutes). */
export const DEFAULT_PROPAGATION_MS = 2000;
/** addKey's proof: aud is the AAD Graph resource, lifetime at most 10 minutes (facts §6). */
const PROOF_AUDIENCE = '00000002-0000-0000-c000-000000000000';
const PROOF_MAX_LIFETIME_S = 600;

export interface DirectoryApiContext {
  directory: SandboxDirectory;
  now: () => number;
  /** Delay before an app role assignment reaches tokens (default DEFAULT_PROPAGATION_MS). */
  propagationMs?: number;
  /** Called after a request changed the directory (the sandbox persists sandbox.yaml). */
  onChange?: () => void | Promise<void>;
}

export interface DirectoryRequest {
  method: string;
  url: URL;
  body: Buffer | undefined;
  principal: Principal;
}

export interface DirectoryResult {
  status: number;
  json?: unknown;
}

// --- errors (Graph's envelope via GraphError) ------------------------------------------------------

export const directoryErrors = {
  /** [OBS microsoftgraph/microsoft-graph-docs#10290 and many more] */
  denied: () => new GraphError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.'),
  /** [OBS commonly observed directory text] */
  notFound: (id: string) =>
    new GraphError(404, 'Request_ResourceNotFound', `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`),
  /** [OBS commonly observed directory text] */
  badValue: (property: string, resource: string) =>
    new GraphError(400, 'Request_BadRequest', `Invalid value specified for property '${property}' of resource '${resource}'.`),
  /** [OBS Azure/reliable-web-app-pattern-java#185, KelvinTegelaar/CIPP#1142] */
  duplicateServicePrincipal: (appId: string) =>
    new GraphError(
      409,
      'Request_MultipleObjectsWithSameKeyValue',
      `The service principal cannot be created, updated, or restored because the service principal name ${appId} is already in use.`,
    ),
  /** [OBS commonly observed text] */
  noSuchApplication: (appId: string) =>
    new GraphError(400, 'Request_BadRequest', `The appId '${appId}' of the service principal does not reference a valid application object.`),
  /** [OBS commonly observed text for a repeated grant] */
  assignmentExists: () => new GraphError(400, 'Request_BadRequest', 'Permission being assigned already exists on the object.'),
  /** Approximation: modelled on the text above. */
  roleNotOnResource: (appRoleId: string) =>
    new GraphError(400, 'Request_BadRequest', `Permission (scope or role) '${appRoleId}' being assigned was not found on application.`),
  /** Approximation: an unsupported query, Graph's code for it. */
  unsupportedQuery: (detail: string) => new GraphError(400, 'Request_UnsupportedQuery', detail),
  /** Approximation: addKey/removeKey without a valid proof (facts §6: the proof must be signed by a valid existing certificate). */
  proof: (detail: string) => new GraphError(400, 'Request_BadRequest', `Key credential proof of possession is invalid: ${detail}`),
  /** Approximation: addPassword beyond two years (facts §6: "limited to two years (24 months) or less"). */
  lifetime: () => new GraphError(400, 'Request_BadRequest', 'Credential lifetime exceeds the max value allowed (24 months).'),
  /** Approximation: a removePassword/removeKey keyId the app does not have. */
  noKey: (keyId: string) => new GraphError(404, 'Request_ResourceNotFound', `No credential with keyId '${keyId}' was found on the application.`),
  badJson: () => new GraphError(400, 'BadRequest', 'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.'),
  method: () => new GraphError(405, 'Request_BadRequest', 'Specified HTTP method is not allowed for the request target.'),
  segment: (segment: string) => new GraphError(400, 'BadRequest', `Resource not found for the segment '${segment}'.`),
};

// --- routing -----------------------------------------------------------------------------------------

const ROOTS = ['applications', 'serviceprincipals', 'oauth2permissiongrants'];

/** Whether a path belongs here (/v1.0/applications…, /v1.0/servicePrincipals…, /v1.0/oauth2PermissionGrants). */
export function isDirectoryPath(pathname: string): boolean {
  const segs = split(pathname);
  if (segs[0]?.toLowerCase() !== 'v1.0' || segs[1] === undefined) return false;
  const root = segs[1].toLowerCase().replace(/\(.*$/, '');
  return ROOTS.includes(root);
}

function split(pathname: string): string[] {
  return pathname
    .split('/')
    .filter(Boolean)
    .map((s) => decodeURIComponent(s));
}

/** `applications(appId='…')` → { root, appId }; `applications` → { root }. */
function rootSegment(seg: string): { root: string; appId?: string } {
  const m = /^([A-Za-z0-9]+)\(appId='([^']*)'\)$/i.exec(seg);
  if (m) return { root: (m[1] as string).toLowerCase(), appId: m[2] as string };
  return { root: seg.toLowerCase() };
}

const action = (seg: string | undefined) => (seg ?? '').toLowerCase().replace(/^microsoft\.graph\./, '');

export async function handleDirectory(ctx: DirectoryApiContext, req: DirectoryRequest): Promise<DirectoryResult> {
  const result = await dispatch(ctx, req);
  if (req.method.toUpperCase() !== 'GET' && result.status < 300) await ctx.onChange?.();
  return result;
}

async function dispatch(ctx: DirectoryApiContext, req: DirectoryRequest): Promise<DirectoryResult> {
  const segs = split(req.url.pathname).slice(1);
  const first = rootSegment(segs[0] ?? '');
  const method = req.method.toUpperCase();
  const op = new Ops(ctx, req.principal);
  // applications(appId='…') and servicePrincipals(appId='…') name the object in the root segment; else it is the next one.
  const key = first.appId !== undefined ? { appId: first.appId } : segs[1] !== undefined ? { id: segs[1] } : undefined;
  const rest = first.appId !== undefined ? segs.slice(1) : segs.slice(2);

  if (first.root === 'applications') {
    if (!key) return byMethod(method, { GET: () => op.listApplications(req.url), POST: () => op.createApplication(json(req.body)) });
    if (rest.length === 0) return byMethod(method, { GET: () => op.getApplication(key), PATCH: () => op.patchApplication(key, json(req.body)) });
    if (rest.length === 1 && method === 'POST') {
      switch (action(rest[0])) {
        case 'addpassword':
          return op.addPassword(key, json(req.body));
        case 'removepassword':
          return op.removePassword(key, json(req.body));
        case 'addkey':
          return await op.addKey(key, json(req.body));
        case 'removekey':
          return await op.removeKey(key, json(req.body));
      }
    }
    throw directoryErrors.segment(rest[0] ?? '');
  }

  if (first.root === 'serviceprincipals') {
    if (!key) return byMethod(method, { GET: () => op.listServicePrincipals(req.url), POST: () => op.createServicePrincipal(json(req.body)) });
    if (rest.length === 0) return byMethod(method, { GET: () => op.getServicePrincipal(key) });
    const nav = action(rest[0]);
    if (rest.length === 1 && (nav === 'approleassignedto' || nav === 'approleassignments')) {
      const side = nav === 'approleassignedto' ? 'resource' : 'client';
      return byMethod(method, { GET: () => op.listAssignments(key, side), POST: () => op.assignAppRole(key, side, json(req.body)) });
    }
    throw directoryErrors.segment(rest[0] ?? '');
  }

  if (first.root === 'oauth2permissiongrants' && segs.length === 1) {
    return byMethod(method, { GET: () => op.listGrants(req.url), POST: () => op.grantDelegated(json(req.body)) });
  }
  if (first.root === 'oauth2permissiongrants' && segs.length === 2) {
    if (method === 'PATCH') return op.updateGrant(segs[1] as string, json(req.body));
    throw directoryErrors.method();
  }
  throw directoryErrors.segment(segs[1] ?? segs[0] ?? '');
}

/** The handler for the request's method; any other method gets Graph's 405. */
function byMethod<R>(method: string, handlers: Partial<Record<'GET' | 'POST' | 'PATCH', () => R>>): R {
  const handler = handlers[method as keyof typeof handlers];
  if (!handler) throw directoryErrors.method();
  return handler();
}

function json(body: Buffer | undefined): Record<string, unknown> {
  if (!body || body.length === 0) throw directoryErrors.badJson();
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch {
    throw directoryErrors.badJson();
  }
}

/** One `eq` clause of $filter: `appId eq '…'` or `displayName eq '…'`. */
function eqFilter(url: URL, allowed: string[]): { property: string; value: string } | undefined {
  const filter = url.searchParams.get('$filter');
  if (filter === null) return undefined;
  const m = /^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$/i.exec(filter);
  const property = m ? allowed.find((a) => a.toLowerCase() === (m[1] as string).toLowerCase()) : undefined;
  if (!m || !property) throw directoryErrors.unsupportedQuery(`Unsupported or invalid query filter clause specified for property '${m?.[1] ?? filter}'.`);
  return { property, value: (m[2] as string).replace(/''/g, "'") };
}

// --- authorization -----------------------------------------------------------------------------------

const GA = 'Global Administrator';
const PRA = 'Privileged Role Administrator';
const APP_ADMINS = [GA, 'Application Administrator', 'Cloud Application Administrator'];

type Resource = ResourcePrincipal & { objectId: string };

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

class Ops {
  private readonly ctx: DirectoryApiContext;
  private readonly p: Principal;

  constructor(ctx: DirectoryApiContext, principal: Principal) {
    this.ctx = ctx;
    this.p = principal;
  }

  private hasScope(...any: string[]): boolean {
    return this.p.kind === 'user' && this.p.scopes.some((s) => any.some((a) => same(a, s)));
  }

  private hasRole(...any: string[]): boolean {
    return this.p.kind === 'app' && this.p.roles.some((r) => any.some((a) => same(a, r)));
  }

  private userRoles(): string[] {
    if (this.p.kind !== 'user') return [];
    const oid = this.p.objectId;
    return this.p.tenant.users.find((u) => same(u.objectId, oid))?.roles ?? [];
  }

  private userHasRole(roles: string[]): boolean {
    return this.userRoles().some((r) => roles.some((x) => same(x, r)));
  }

  /** The caller's own service principal object ID (app-only), for owner checks. */
  private callerId(): string {
    return this.p.objectId;
  }

  private ownsApp(app: SandboxApp): boolean {
    return (app.owners ?? []).some((o) => same(o, this.callerId()));
  }

  private requireRead(app?: SandboxApp): void {
    if (this.p.kind === 'user') {
      if (!this.hasScope('Application.Read.All', 'Application.ReadWrite.All', 'Directory.Read.All')) throw directoryErrors.denied();
      return;
    }
    if (this.hasRole('Application.Read.All', 'Application.ReadWrite.All', 'Directory.Read.All')) return;
    if (this.hasRole('Application.ReadWrite.OwnedBy') && (!app || this.ownsApp(app))) return;
    throw directoryErrors.denied();
  }

  /** Write an app (or create one when `app` is undefined) or its service principal. */
  private requireWrite(app: SandboxApp | undefined): void {
    if (this.p.kind === 'user') {
      if (!this.hasScope('Application.ReadWrite.All')) throw directoryErrors.denied();
      const roles = app ? APP_ADMINS : [...APP_ADMINS, 'Application Developer'];
      if (this.userHasRole(roles) || (app && this.ownsApp(app))) return;
      throw directoryErrors.denied();
    }
    if (this.hasRole('Application.ReadWrite.All')) return;
    if (this.hasRole('Application.ReadWrite.OwnedBy') && (!app || this.ownsApp(app))) return;
    throw directoryErrors.denied();
  }

  /** Admin consent: app roles (appRoleAssignments) or delegated grants on a resource. */
  private requireConsent(kind: 'appRole' | 'delegated', resource: Resource): void {
    // Consent to Microsoft Graph's permissions needs a privileged role; other APIs an application admin too.
    const admins = resource.kind === 'graph' ? [GA, PRA] : [...APP_ADMINS, PRA];
    if (this.p.kind === 'user') {
      const scoped =
        kind === 'appRole'
          ? this.hasScope('AppRoleAssignment.ReadWrite.All') && this.hasScope('Application.Read.All', 'Application.ReadWrite.All', 'Directory.Read.All')
          : this.hasScope('DelegatedPermissionGrant.ReadWrite.All');
      if (scoped && this.userHasRole(admins)) return;
      throw directoryErrors.denied();
    }
    // App-only AppRoleAssignment.ReadWrite.All also needs to read the service principals involved.
    if (kind === 'appRole' && this.hasRole('AppRoleAssignment.ReadWrite.All') && this.hasRole('Application.Read.All', 'Application.ReadWrite.All')) return;
    throw directoryErrors.denied();
  }

  // --- lookups -------------------------------------------------------------------------------------

  private findApp(key: { id?: string; appId?: string }): SandboxApp {
    const app = this.p.tenant.apps.find((a) => (key.id !== undefined ? same(a.objectId, key.id) : same(a.appId, key.appId ?? '')));
    if (!app) throw directoryErrors.notFound(key.id ?? key.appId ?? '');
    return app;
  }

  private resources(): Resource[] {
    return Object.values(CLOUD_PROFILES[this.p.tenant.cloud].resources).map((r) => ({ ...r, objectId: resourceObjectId(this.p.tenant, r) }));
  }

  private findServicePrincipal(key: { id?: string; appId?: string }): { resource: Resource } | { app: SandboxApp } {
    const match = (objectId: string, appId: string) => (key.id !== undefined ? same(objectId, key.id) : same(appId, key.appId ?? ''));
    const resource = this.resources().find((r) => match(r.objectId, r.appId));
    if (resource) return { resource };
    const app = this.p.tenant.apps.find((a) => hasServicePrincipal(a) && match(a.servicePrincipalId, a.appId));
    if (!app) throw directoryErrors.notFound(key.id ?? key.appId ?? '');
    return { app };
  }

  private registration(app: SandboxApp): AppRegistration {
    if (!app.registration) {
      app.registration = appRegistrationSchema.parse({
        webRedirectUris: app.publicClient ? [] : app.redirectUris,
        publicClientRedirectUris: app.publicClient ? app.redirectUris : [],
      });
    }
    return app.registration;
  }

  // --- applications ----------------------------------------------------------------------------------

  listApplications(url: URL): DirectoryResult {
    this.requireRead();
    const f = eqFilter(url, ['appId', 'displayName']);
    let apps = this.p.tenant.apps;
    if (f) apps = apps.filter((a) => same(f.property === 'appId' ? a.appId : a.displayName, f.value));
    // OwnedBy callers see only their own apps.
    if (this.p.kind === 'app' && !this.hasRole('Application.Read.All', 'Application.ReadWrite.All', 'Directory.Read.All')) apps = apps.filter((a) => this.ownsApp(a));
    return { status: 200, json: { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#applications', value: apps.map((a) => this.applicationView(a)) } };
  }

  getApplication(key: { id?: string; appId?: string }): DirectoryResult {
    const app = this.findApp(key);
    this.requireRead(app);
    return { status: 200, json: { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#applications/$entity', ...this.applicationView(app) } };
  }

  createApplication(body: Record<string, unknown>): DirectoryResult {
    this.requireWrite(undefined);
    const displayName = body.displayName;
    if (typeof displayName !== 'string' || displayName.trim() === '') throw directoryErrors.badValue('displayName', 'Application');
    const app = entraOps.addApp(this.ctx.directory, this.p.tenant.id, { displayName });
    app.registration = appRegistrationSchema.parse({ createdDateTime: iso(this.ctx.now()), servicePrincipal: false });
    // Application.ReadWrite.OwnedBy: the calling app becomes the owner of what it creates.
    if (this.p.kind === 'app') app.owners = [this.callerId()];
    try {
      this.applyPatch(app, body);
    } catch (err) {
      this.p.tenant.apps.splice(this.p.tenant.apps.indexOf(app), 1);
      throw err;
    }
    return { status: 201, json: { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#applications/$entity', ...this.applicationView(app) } };
  }

  patchApplication(key: { id?: string; appId?: string }, body: Record<string, unknown>): DirectoryResult {
    const app = this.findApp(key);
    this.requireWrite(app);
    this.applyPatch(app, body);
    return { status: 204 };
  }

  /** The properties setup sets; anything else is refused rather than silently dropped. */
  private applyPatch(app: SandboxApp, body: Record<string, unknown>): void {
    const known = ['displayName', 'requiredResourceAccess', 'web', 'publicClient', 'isFallbackPublicClient', 'keyCredentials', 'signInAudience', 'appRoles'];
    for (const k of Object.keys(body)) {
      if (!known.includes(k)) throw new GraphError(400, 'Request_BadRequest', `Property '${k}' is not supported by the mailbridge sandbox.`);
    }
    // Validate everything before changing anything: a refused PATCH changes nothing.
    if (body.displayName !== undefined && (typeof body.displayName !== 'string' || body.displayName.trim() === '')) throw directoryErrors.badValue('displayName', 'Application');
    if (body.signInAudience !== undefined && body.signInAudience !== 'AzureADMyOrg') throw directoryErrors.badValue('signInAudience', 'Application');
    const rra = body.requiredResourceAccess === undefined ? undefined : parseRequiredResourceAccess(body.requiredResourceAccess);
    const web = body.web === undefined ? undefined : redirectUris(body.web, 'web');
    const pub = body.publicClient === undefined ? undefined : redirectUris(body.publicClient, 'publicClient');
    if (body.isFallbackPublicClient !== undefined && typeof body.isFallbackPublicClient !== 'boolean') throw directoryErrors.badValue('isFallbackPublicClient', 'Application');
    const keys = body.keyCredentials === undefined ? undefined : parseKeyCredentials(body.keyCredentials);
    const roles = body.appRoles === undefined ? undefined : parseAppRoles(body.appRoles, this.registration(app).appRoles);

    const reg = this.registration(app);
    if (typeof body.displayName === 'string') app.displayName = body.displayName;
    if (rra) reg.requiredResourceAccess = rra;
    if (web) reg.webRedirectUris = web;
    if (pub) reg.publicClientRedirectUris = pub;
    if (web || pub) app.redirectUris = [...new Set([...reg.webRedirectUris, ...reg.publicClientRedirectUris])];
    if (typeof body.isFallbackPublicClient === 'boolean') app.publicClient = body.isFallbackPublicClient;
    if (roles) reg.appRoles = roles;
    if (keys) {
      // PATCH replaces the collection (facts §6: the way to add a certificate to an app without a valid one).
      app.certificates = keys.map((k) => ({ pem: k.pem }));
      reg.keyCredentials = keys.map((k) => ({ thumbprint: registeredCert(k.pem).sha1Hex, keyId: k.keyId ?? randomUUID(), displayName: k.displayName }));
    }
  }

  private applicationView(app: SandboxApp): Record<string, unknown> {
    const reg = app.registration;
    const web = reg ? reg.webRedirectUris : app.publicClient ? [] : app.redirectUris;
    const pub = reg ? reg.publicClientRedirectUris : app.publicClient ? app.redirectUris : [];
    return {
      id: app.objectId,
      appId: app.appId,
      displayName: app.displayName,
      createdDateTime: reg?.createdDateTime ?? null,
      signInAudience: 'AzureADMyOrg',
      isFallbackPublicClient: app.publicClient,
      publicClient: { redirectUris: pub },
      web: { redirectUris: web, implicitGrantSettings: { enableAccessTokenIssuance: false, enableIdTokenIssuance: false } },
      requiredResourceAccess: reg?.requiredResourceAccess ?? [],
      appRoles: (reg?.appRoles ?? []).map((r) => ({ ...r, origin: 'Application' })),
      passwordCredentials: app.secrets.map((s) => {
        const meta = reg?.passwordCredentials.find((m) => same(m.keyId, s.keyId));
        return {
          customKeyIdentifier: null,
          displayName: meta?.displayName ?? null,
          endDateTime: s.endDateTime,
          hint: s.value.slice(0, 3),
          keyId: s.keyId,
          secretText: null,
          startDateTime: meta?.startDateTime ?? null,
        };
      }),
      keyCredentials: app.certificates.map((c) => keyCredentialView(app, c.pem)),
    };
  }

  // --- credentials -------------------------------------------------------------------------------------

  addPassword(key: { id?: string; appId?: string }, body: Record<string, unknown>): DirectoryResult {
    const app = this.findApp(key);
    this.requireWrite(app);
    const pc = (body.passwordCredential ?? {}) as Record<string, unknown>;
    if (typeof pc !== 'object' || pc === null) throw directoryErrors.badValue('passwordCredential', 'Application');
    const now = this.ctx.now();
    const start = typeof pc.startDateTime === 'string' ? Date.parse(pc.startDateTime) : now;
    if (!Number.isFinite(start)) throw directoryErrors.badValue('startDateTime', 'PasswordCredential');
    let end: number | undefined;
    if (pc.endDateTime !== undefined) {
      end = typeof pc.endDateTime === 'string' ? Date.parse(pc.endDateTime) : NaN;
      if (!Number.isFinite(end) || end <= start) throw directoryErrors.badValue('endDateTime', 'PasswordCredential');
    }
    let added;
    try {
      added = entraOps.addSecret(this.ctx.directory, this.p.tenant.id, app.appId, {
        displayName: typeof pc.displayName === 'string' ? pc.displayName : '',
        ...(end !== undefined ? { endDateTime: new Date(end).toISOString() } : {}),
        now: start,
      });
    } catch (err) {
      if (err instanceof SandboxOpError) throw directoryErrors.lifetime();
      throw err;
    }
    this.registration(app).passwordCredentials.push({ keyId: added.keyId, displayName: added.displayName, startDateTime: added.startDateTime });
    return {
      status: 200,
      json: {
        '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.passwordCredential',
        customKeyIdentifier: null,
        displayName: added.displayName,
        endDateTime: added.endDateTime,
        hint: added.hint,
        keyId: added.keyId,
        // Returned here only, never again (GET shows secretText null).
        secretText: added.secretText,
        startDateTime: added.startDateTime,
      },
    };
  }

  removePassword(key: { id?: string; appId?: string }, body: Record<string, unknown>): DirectoryResult {
    const app = this.findApp(key);
    this.requireWrite(app);
    const keyId = typeof body.keyId === 'string' ? body.keyId : '';
    if (!app.secrets.some((s) => same(s.keyId, keyId))) throw directoryErrors.noKey(keyId);
    entraOps.removeSecret(this.ctx.directory, this.p.tenant.id, app.appId, keyId);
    const reg = this.registration(app);
    reg.passwordCredentials = reg.passwordCredentials.filter((m) => !same(m.keyId, keyId));
    return { status: 204 };
  }

  async addKey(key: { id?: string; appId?: string }, body: Record<string, unknown>): Promise<DirectoryResult> {
    const app = this.findApp(key);
    this.requireWrite(app);
    await this.verifyProof(app, body.proof);
    const [parsed] = parseKeyCredentials([body.keyCredential]);
    if (!parsed) throw directoryErrors.badValue('keyCredential', 'Application');
    if (body.passwordCredential !== undefined && body.passwordCredential !== null) {
      throw new GraphError(400, 'Request_BadRequest', 'The sandbox supports addKey with keyCredential only (passwordCredential null).');
    }
    const reg = this.registration(app);
    const thumbprint = registeredCert(parsed.pem).sha1Hex;
    if (!app.certificates.some((c) => registeredCert(c.pem).sha1Hex === thumbprint)) app.certificates.push({ pem: parsed.pem });
    if (!reg.keyCredentials.some((k) => k.thumbprint === thumbprint)) reg.keyCredentials.push({ thumbprint, keyId: parsed.keyId ?? randomUUID(), displayName: parsed.displayName });
    return { status: 200, json: { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.keyCredential', ...keyCredentialView(app, parsed.pem) } };
  }

  async removeKey(key: { id?: string; appId?: string }, body: Record<string, unknown>): Promise<DirectoryResult> {
    const app = this.findApp(key);
    this.requireWrite(app);
    const keyId = typeof body.keyId === 'string' ? body.keyId : '';
    const cert = app.certificates.find((c) => same(keyIdOf(app, c.pem), keyId));
    if (!cert) throw directoryErrors.noKey(keyId);
    await this.verifyProof(app, body.proof);
    app.certificates = app.certificates.filter((c) => c !== cert);
    const reg = this.registration(app);
    reg.keyCredentials = reg.keyCredentials.filter((k) => !same(k.keyId, keyId));
    return { status: 204 };
  }

  /**
   * addKey/removeKey proof (facts §6): a JWT signed by one of the app's currently valid
   * certificates, aud 00000002-0000-0000-c000-000000000000, iss = the application's object id,
   * nbf, exp at most 10 minutes after nbf.
   */
  private async verifyProof(app: SandboxApp, proof: unknown): Promise<void> {
    if (typeof proof !== 'string' || proof === '') throw directoryErrors.proof('the proof is missing');
    const now = this.ctx.now();
    const valid = app.certificates.filter((c) => {
      const x = new X509Certificate(c.pem);
      return Date.parse(x.validFrom) <= now && now <= Date.parse(x.validTo);
    });
    if (valid.length === 0) throw directoryErrors.proof('the application has no valid certificate to sign it; upload one with PATCH keyCredentials');
    let header;
    try {
      header = decodeProtectedHeader(proof);
    } catch {
      throw directoryErrors.proof('not a JWT');
    }
    const candidates = header.x5t ? valid.filter((c) => registeredCert(c.pem).x5t === header.x5t) : valid;
    for (const c of candidates) {
      try {
        const { payload } = await jwtVerify(proof, await importX509(c.pem, typeof header.alg === 'string' ? header.alg : 'RS256'), {
          audience: PROOF_AUDIENCE,
          issuer: app.objectId,
          currentDate: new Date(now),
          requiredClaims: ['nbf', 'exp'],
        });
        if ((payload.exp as number) - (payload.nbf as number) > PROOF_MAX_LIFETIME_S) throw directoryErrors.proof('exp must be at most 10 minutes after nbf');
        return;
      } catch (err) {
        if (err instanceof GraphError) throw err;
      }
    }
    throw directoryErrors.proof('not signed by a valid certificate of the application, or aud/iss/nbf/exp wrong');
  }

  // --- service principals ------------------------------------------------------------------------------

  listServicePrincipals(url: URL): DirectoryResult {
    this.requireRead();
    const f = eqFilter(url, ['appId', 'displayName']);
    const all = [...this.resources().map((r) => resourceView(this.p.tenant, r)), ...this.p.tenant.apps.filter(hasServicePrincipal).map((a) => appSpView(this.p.tenant, a))];
    const value = f ? all.filter((s) => same(String(s[f.property]), f.value)) : all;
    return { status: 200, json: { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#servicePrincipals', value } };
  }

  getServicePrincipal(key: { id?: string; appId?: string }): DirectoryResult {
    this.requireRead();
    const found = this.findServicePrincipal(key);
    const view = 'resource' in found ? resourceView(this.p.tenant, found.resource) : appSpView(this.p.tenant, found.app);
    return { status: 200, json: { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#servicePrincipals/$entity', ...view } };
  }

  createServicePrincipal(body: Record<string, unknown>): DirectoryResult {
    const appId = typeof body.appId === 'string' ? body.appId : '';
    if (!appId) throw directoryErrors.badValue('appId', 'ServicePrincipal');
    const app = this.p.tenant.apps.find((a) => same(a.appId, appId));
    if (this.resources().some((r) => same(r.appId, appId))) throw directoryErrors.duplicateServicePrincipal(appId);
    if (!app) {
      this.requireWrite(undefined);
      throw directoryErrors.noSuchApplication(appId);
    }
    this.requireWrite(app);
    if (hasServicePrincipal(app)) throw directoryErrors.duplicateServicePrincipal(app.appId);
    this.registration(app).servicePrincipal = true;
    if (this.p.kind === 'app' && !this.ownsApp(app)) app.owners = [...(app.owners ?? []), this.callerId()];
    return { status: 201, json: { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#servicePrincipals/$entity', ...appSpView(this.p.tenant, app) } };
  }

  // --- app role assignments ----------------------------------------------------------------------------

  listAssignments(key: { id?: string; appId?: string }, side: 'resource' | 'client'): DirectoryResult {
    this.requireRead();
    const found = this.findServicePrincipal(key);
    const all = this.p.tenant.apps.filter(hasServicePrincipal).flatMap((a) => this.assignmentsOf(a));
    let value: Record<string, unknown>[];
    if ('resource' in found) value = side === 'resource' ? all.filter((x) => same(String(x.resourceId), found.resource.objectId)) : [];
    else value = side === 'client' ? this.assignmentsOf(found.app) : [];
    return { status: 200, json: { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#appRoleAssignments', value } };
  }

  /** Assignments as Graph lists them: those made through Graph plus the consented roles of sandbox.yaml. */
  private assignmentsOf(app: SandboxApp): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const r of this.resources()) {
      const made = (app.registration?.appRoleAssignments ?? []).filter((a) => a.resource === r.kind);
      for (const a of made) out.push(assignmentView(app, r, a));
      for (const role of app.appRoles[r.kind]) {
        if (made.some((a) => a.role === role)) continue;
        const appRoleId = PERMISSION_IDS[r.kind].roles[role] ?? derivedGuid(`${r.appId}/${role}`);
        out.push(assignmentView(app, r, { id: derivedGuid(`${app.servicePrincipalId}/${r.appId}/${role}`), resource: r.kind, appRoleId, role, createdDateTime: '', effectiveDateTime: '' }));
      }
    }
    return out;
  }

  assignAppRole(key: { id?: string; appId?: string }, side: 'resource' | 'client', body: Record<string, unknown>): DirectoryResult {
    const found = this.findServicePrincipal(key);
    const principalId = typeof body.principalId === 'string' ? body.principalId : '';
    const resourceId = typeof body.resourceId === 'string' ? body.resourceId : '';
    const appRoleId = typeof body.appRoleId === 'string' ? body.appRoleId : '';
    if (!principalId) throw directoryErrors.badValue('principalId', 'AppRoleAssignment');
    if (!resourceId) throw directoryErrors.badValue('resourceId', 'AppRoleAssignment');
    if (!appRoleId) throw directoryErrors.badValue('appRoleId', 'AppRoleAssignment');
    // The path names one side of the assignment; the body must agree with it.
    const pathId = 'resource' in found ? found.resource.objectId : found.app.servicePrincipalId;
    if (!same(side === 'resource' ? resourceId : principalId, pathId)) throw directoryErrors.badValue(side === 'resource' ? 'resourceId' : 'principalId', 'AppRoleAssignment');
    const resource = this.resources().find((r) => same(r.objectId, resourceId));
    if (!resource) throw directoryErrors.notFound(resourceId);
    this.requireConsent('appRole', resource);
    const app = this.p.tenant.apps.find((a) => hasServicePrincipal(a) && same(a.servicePrincipalId, principalId));
    if (!app) throw directoryErrors.notFound(principalId);
    const role = Object.entries(PERMISSION_IDS[resource.kind].roles).find(([name, id]) => same(id, appRoleId) && resource.appRoles.includes(name))?.[0];
    if (!role) throw directoryErrors.roleNotOnResource(appRoleId);
    const reg = this.registration(app);
    if (app.appRoles[resource.kind].includes(role) || reg.appRoleAssignments.some((a) => a.resource === resource.kind && a.role === role)) throw directoryErrors.assignmentExists();
    const now = this.ctx.now();
    const assignment: AppRoleAssignment = {
      id: randomUUID(),
      resource: resource.kind,
      appRoleId: PERMISSION_IDS[resource.kind].roles[role] as string,
      role,
      createdDateTime: iso(now),
      effectiveDateTime: iso(now + (this.ctx.propagationMs ?? DEFAULT_PROPAGATION_MS)),
    };
    reg.appRoleAssignments.push(assignment);
    return { status: 201, json: { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#appRoleAssignments/$entity', ...assignmentView(app, resource, assignment) } };
  }

  // --- delegated consent -------------------------------------------------------------------------------

  listGrants(url: URL): DirectoryResult {
    this.requireRead();
    const f = eqFilter(url, ['clientId', 'resourceId']);
    const value = this.p.tenant.apps.filter(hasServicePrincipal).flatMap((a) => this.grantsOf(a));
    return { status: 200, json: { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#oauth2PermissionGrants', value: f ? value.filter((g) => same(String(g[f.property]), f.value)) : value } };
  }

  private grantsOf(app: SandboxApp): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const r of this.resources()) {
      const scopes = app.delegatedConsent.filter((c) => consentResource(c, r) !== undefined).map((c) => consentResource(c, r) as string);
      if (scopes.length === 0) continue;
      out.push({
        id: derivedGuid(`${app.servicePrincipalId}/${r.objectId}`),
        clientId: app.servicePrincipalId,
        consentType: 'AllPrincipals',
        principalId: null,
        resourceId: r.objectId,
        scope: scopes.join(' '),
      });
    }
    return out;
  }

  grantDelegated(body: Record<string, unknown>): DirectoryResult {
    const clientId = typeof body.clientId === 'string' ? body.clientId : '';
    const resourceId = typeof body.resourceId === 'string' ? body.resourceId : '';
    const scope = typeof body.scope === 'string' ? body.scope.trim() : '';
    if (body.consentType !== 'AllPrincipals') throw directoryErrors.badValue('consentType', 'OAuth2PermissionGrant');
    const resource = this.resources().find((r) => same(r.objectId, resourceId));
    if (!resource) throw directoryErrors.notFound(resourceId);
    this.requireConsent('delegated', resource);
    const app = this.p.tenant.apps.find((a) => hasServicePrincipal(a) && same(a.servicePrincipalId, clientId));
    if (!app) throw directoryErrors.notFound(clientId);
    const names = scope.split(/\s+/).filter(Boolean);
    if (names.length === 0) throw directoryErrors.badValue('scope', 'OAuth2PermissionGrant');
    const full = names.map((n) => this.fullScope(resource, n));
    entraOps.grantDelegatedConsent(this.ctx.directory, this.p.tenant.id, app.appId, full);
    const grant = this.grantsOf(app).find((g) => same(String(g.resourceId), resource.objectId));
    return { status: 201, json: { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#oauth2PermissionGrants/$entity', ...grant } };
  }

  /** PATCH of a grant's `scope` (learn.microsoft.com/graph/api/oauth2permissiongrant-update): the resource's consented scopes become exactly these. */
  updateGrant(id: string, body: Record<string, unknown>): DirectoryResult {
    const found = this.p.tenant.apps.filter(hasServicePrincipal).flatMap((a) => this.grantsOf(a).map((g) => ({ app: a, g }))).find((x) => same(String(x.g.id), id));
    if (!found) throw directoryErrors.notFound(id);
    const resource = this.resources().find((r) => same(r.objectId, String(found.g.resourceId))) as Resource;
    this.requireConsent('delegated', resource);
    const names = (typeof body.scope === 'string' ? body.scope : '').split(/\s+/).filter(Boolean);
    if (names.length === 0 || Object.keys(body).some((k) => k !== 'scope')) throw directoryErrors.badValue('scope', 'OAuth2PermissionGrant');
    const full = names.map((n) => this.fullScope(resource, n));
    const others = found.app.delegatedConsent.filter((c) => consentResource(c, resource) === undefined);
    entraOps.setDelegatedConsent(this.ctx.directory, this.p.tenant.id, found.app.appId, [...others, ...full]);
    return { status: 204 };
  }

  /** A scope name of the resource in the form delegatedConsent keeps it; refused when the resource has no such scope. */
  private fullScope(resource: Resource, n: string): string {
    const oidc = ['openid', 'profile', 'email', 'offline_access'].includes(n.toLowerCase());
    // OpenID scopes belong to Microsoft Graph's service principal; delegatedConsent keeps them bare.
    if (oidc && resource.kind === 'graph') return n.toLowerCase();
    if (!oidc && resource.delegated.some((d) => same(d, n))) return resource.kind === 'graph' ? n : `${resource.identifierUris[0]}/${n}`;
    throw directoryErrors.badValue('scope', 'OAuth2PermissionGrant');
  }
}

// --- views and helpers -------------------------------------------------------------------------------

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function hasServicePrincipal(app: SandboxApp): boolean {
  return app.registration?.servicePrincipal ?? true;
}

/** The object ID of a resource service principal in a tenant: stable, different per tenant, like Entra's. */
export function resourceObjectId(tenant: SandboxTenant, resource: { appId: string }): string {
  return derivedGuid(`${tenant.id}/sp/${resource.appId}`);
}

function resourceView(tenant: SandboxTenant, r: Resource): Record<string, unknown> {
  const ids = PERMISSION_IDS[r.kind];
  return {
    id: r.objectId,
    appId: r.appId,
    displayName: r.displayName,
    accountEnabled: true,
    servicePrincipalType: 'Application',
    appOwnerOrganizationId: 'f8cdef31-a31e-4b4a-93e4-5f571e91255a',
    servicePrincipalNames: [r.appId, ...r.identifierUris.filter((u) => u !== r.appId)],
    appRoles: r.appRoles.map((name) => ({
      allowedMemberTypes: ['Application'],
      description: name,
      displayName: name,
      id: ids.roles[name] ?? derivedGuid(`${r.appId}/${name}`),
      isEnabled: true,
      origin: 'Application',
      value: name,
    })),
    oauth2PermissionScopes: [...r.delegated, ...(r.kind === 'graph' ? ['offline_access', 'openid', 'profile', 'email'] : [])].map((name) => ({
      adminConsentDescription: name,
      adminConsentDisplayName: name,
      id: ids.scopes[name] ?? derivedGuid(`${r.appId}/scope/${name}`),
      isEnabled: true,
      type: 'Admin',
      value: name,
    })),
    tenantId: tenant.id,
  };
}

function appSpView(tenant: SandboxTenant, app: SandboxApp): Record<string, unknown> {
  return {
    id: app.servicePrincipalId,
    appId: app.appId,
    displayName: app.displayName,
    accountEnabled: !app.disabled,
    appRoleAssignmentRequired: app.assignmentRequired ?? false,
    servicePrincipalType: 'Application',
    appOwnerOrganizationId: tenant.id,
    servicePrincipalNames: [app.appId],
    // The enterprise application shows the roles its app registration defines.
    appRoles: (app.registration?.appRoles ?? []).map((r) => ({ ...r, origin: 'Application' })),
    oauth2PermissionScopes: [],
  };
}

function assignmentView(app: SandboxApp, r: Resource, a: AppRoleAssignment): Record<string, unknown> {
  return {
    id: a.id,
    appRoleId: a.appRoleId,
    createdDateTime: a.createdDateTime || null,
    deletedDateTime: null,
    principalDisplayName: app.displayName,
    principalId: app.servicePrincipalId,
    principalType: 'ServicePrincipal',
    resourceDisplayName: r.displayName,
    resourceId: r.objectId,
  };
}

/** A delegatedConsent entry as a scope name of this resource, or undefined. */
function consentResource(entry: string, r: ResourcePrincipal): string | undefined {
  const slash = entry.lastIndexOf('/');
  if (slash < 0) return r.kind === 'graph' ? entry : undefined;
  const uri = entry.slice(0, slash).toLowerCase();
  return r.identifierUris.some((u) => u.toLowerCase() === uri) ? entry.slice(slash + 1) : undefined;
}

function keyIdOf(app: SandboxApp, pem: string): string {
  const thumbprint = registeredCert(pem).sha1Hex;
  return app.registration?.keyCredentials.find((k) => k.thumbprint === thumbprint)?.keyId ?? derivedGuid(`${app.appId}/key/${thumbprint}`);
}

function keyCredentialView(app: SandboxApp, pem: string): Record<string, unknown> {
  const c = registeredCert(pem);
  const meta = app.registration?.keyCredentials.find((k) => k.thumbprint === c.sha1Hex);
  return {
    customKeyIdentifier: c.sha1Hex,
    displayName: meta?.displayName || `CN=${c.x509.subject.replace(/^CN=/, '').split('\n')[0]}`,
    endDateTime: iso(Date.parse(c.x509.validTo)),
    // Graph never returns the key itself.
    key: null,
    keyId: keyIdOf(app, pem),
    startDateTime: iso(Date.parse(c.x509.validFrom)),
    type: 'AsymmetricX509Cert',
    usage: 'Verify',
  };
}

function parseRequiredResourceAccess(v: unknown): AppRegistration['requiredResourceAccess'] {
  const parsed = appRegistrationSchema.shape.requiredResourceAccess.safeParse(v);
  if (!parsed.success) throw directoryErrors.badValue('requiredResourceAccess', 'Application');
  return parsed.data;
}

function redirectUris(v: unknown, property: string): string[] {
  const uris = (v as { redirectUris?: unknown } | null)?.redirectUris;
  if (!Array.isArray(uris) || uris.some((u) => typeof u !== 'string')) throw directoryErrors.badValue(property, 'Application');
  for (const u of uris as string[]) {
    // Entra accepts https, and http only for localhost (loopback redirects of native apps).
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw directoryErrors.badValue(property, 'Application');
    }
    const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback) && !(property === 'publicClient' && url.protocol !== 'http:')) {
      throw directoryErrors.badValue(property, 'Application');
    }
  }
  return uris as string[];
}

/** keyCredentials entries: type AsymmetricX509Cert, usage Verify, key = base64 DER (or PEM) of a public certificate. */
function parseKeyCredentials(v: unknown): Array<{ pem: string; keyId?: string; displayName: string }> {
  if (!Array.isArray(v)) throw directoryErrors.badValue('keyCredentials', 'Application');
  return v.map((k: unknown) => {
    const o = (k ?? {}) as Record<string, unknown>;
    if (o.type !== 'AsymmetricX509Cert' || o.usage !== 'Verify' || typeof o.key !== 'string') throw directoryErrors.badValue('keyCredentials', 'Application');
    const text = Buffer.from(o.key, 'base64').toString('latin1');
    if (/PRIVATE KEY/.test(text)) throw directoryErrors.badValue('keyCredentials', 'Application');
    let pem: string;
    try {
      const x = text.includes('BEGIN CERTIFICATE') ? new X509Certificate(text) : new X509Certificate(Buffer.from(o.key, 'base64'));
      pem = x.toString();
    } catch {
      throw directoryErrors.badValue('keyCredentials', 'Application');
    }
    return { pem, ...(typeof o.keyId === 'string' ? { keyId: o.keyId } : {}), displayName: typeof o.displayName === 'string' ? o.displayName : '' };
  });
}

/**
 * application.appRoles in a PATCH or POST: the whole collection (Graph replaces it). Each role needs
 * a GUID id, a value unique in the app, display name, description and allowedMemberTypes; an
 * enabled role may be neither removed nor changed (only disabled) before a PATCH has disabled it
 * (CannotDeleteOrUpdateEnabledEntitlement; facts addendum "Changing app roles through Graph").
 */
function parseAppRoles(value: unknown, current: AppRegistration['appRoles']): AppRegistration['appRoles'] {
  if (!Array.isArray(value)) throw directoryErrors.badValue('appRoles', 'Application');
  const out: AppRegistration['appRoles'] = [];
  for (const v of value) {
    const r = v as Record<string, unknown>;
    const types = Array.isArray(r.allowedMemberTypes) ? r.allowedMemberTypes : [];
    if (
      typeof r.id !== 'string' ||
      !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(r.id) ||
      typeof r.value !== 'string' ||
      r.value === '' ||
      typeof r.displayName !== 'string' ||
      typeof r.description !== 'string' ||
      types.length === 0 ||
      !types.every((t) => t === 'User' || t === 'Application')
    ) {
      throw directoryErrors.badValue('appRoles', 'Application');
    }
    if (out.some((o) => o.value === r.value || same(o.id, r.id as string))) throw directoryErrors.badValue('appRoles', 'Application');
    out.push({ id: r.id, value: r.value, displayName: r.displayName, description: r.description, allowedMemberTypes: types as Array<'User' | 'Application'>, isEnabled: r.isEnabled !== false });
  }
  for (const old of current) {
    if (!old.isEnabled) continue;
    const now = out.find((o) => same(o.id, old.id));
    const unchanged = now && now.value === old.value && now.displayName === old.displayName && now.description === old.description && now.allowedMemberTypes.join() === old.allowedMemberTypes.join();
    if (!unchanged) throw new GraphError(400, 'CannotDeleteOrUpdateEnabledEntitlement', 'Permission (scope or role) cannot be deleted or updated unless disabled first.');
  }
  return out;
}
