/**
 * One HTTPS listener of the sandbox Entra ID, for one national cloud. Routes (as msal-node and
 * browsers call them on login.microsoftonline.com):
 *   GET  /common/discovery/instance                     instance discovery (MSAL's cloud metadata)
 *   GET  /{tenant}/v2.0/.well-known/openid-configuration
 *   GET  /{tenant}/discovery/v2.0/keys, /{tenant}/discovery/keys   JWKS
 *   POST /{tenant}/oauth2/v2.0/token                    client_credentials, authorization_code,
 *                                                       refresh_token, device_code
 *   POST /{tenant}/oauth2/v2.0/devicecode
 *   GET|POST /{tenant}/oauth2/v2.0/authorize            sign-in page → 302 to redirect_uri
 *   GET|POST /devicelogin                               device-code sign-in page
 *   GET  /error?code=n                                  the error_uri of error bodies
 * Tenants of clouds with another login host are "not found" here (AADSTS90002), as a GCC High
 * tenant is at login.microsoftonline.com. Apps are single-tenant (the directory keeps each app in
 * one tenant), so /common and /organizations answer AADSTS50194 for user flows and
 * AADSTS9001023 for client credentials on /common and /consumers.
 */
import { createHash, randomUUID } from 'node:crypto';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { CLOUDS, type CloudName } from './clouds.ts';
import { mask, scrub } from '../../log/redact.ts';
import type { KeyAndCert } from '../ca.ts';
import type { SandboxDirectory } from '../directory.ts';
import type { SandboxApp, SandboxTenant } from '../model.ts';
import { AADSTS, AadstsError, entraTimestamp, errorBody, type RequestTrace } from './aadsts.ts';
import { decodeAssertion, verifyClientAssertion } from './assertion.ts';
import { CLOUD_PROFILES, sameLoginHost } from './clouds.ts';
import type { SigningKey } from './keys.ts';
import { deviceCodePage, errorPage, formPostPage, messagePage, pageLang, signInPage, t } from './pages.ts';
import { grantDelegated, parseClientCredentialsScope, parseDelegatedScopes, type DelegatedScopes } from './scopes.ts';
import {
  AUTH_CODE_LIFETIME_MS,
  DEVICE_CODE_INTERVAL_S,
  DEVICE_CODE_LIFETIME_S,
  REFRESH_INACTIVITY_MS,
  SIGN_IN_PAGE_LIFETIME_MS,
  type EntraState,
  type ResponseMode,
} from './state.ts';
import { appOnlyToken, clientInfo, userTokens, type AppIdAcr, type Minter, type UserTokenRequest } from './tokens.ts';
import { checkAssignment, checkUserSignIn, findUser, sameSecret } from './users.ts';

export type EndpointName = 'token' | 'devicecode' | 'authorize' | 'discovery' | 'openid' | 'jwks' | 'devicelogin';

export interface EntraShared {
  directory: SandboxDirectory;
  key: SigningKey;
  state: EntraState;
  now: () => number;
  stats: { calls: Partial<Record<EndpointName, number>>; tokenRequests: Array<Record<string, unknown>> };
  /** Base URL per cloud, filled in once every listener is bound. */
  urls: Record<CloudName, string>;
}

// msal-node sends the short `device_code`; the v2 docs spell the RFC 8628 URN. Entra takes both.
const GRANTS = new Set(['client_credentials', 'authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code', 'device_code']);
const MULTI_TENANT = new Set(['common', 'organizations', 'consumers']);
const MASKED_FIELDS = new Set(['client_secret', 'client_assertion', 'code', 'refresh_token', 'code_verifier', 'device_code', 'password']);
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type Form = Record<string, string | undefined>;
type Target = SandboxTenant | 'common' | 'organizations' | 'consumers';

function parseForm(body: string): Form {
  const out: Form = {};
  for (const [k, v] of new URLSearchParams(body)) if (!(k in out)) out[k] = v;
  return out;
}

function formOf(req: FastifyRequest): Form {
  return (req.body && typeof req.body === 'object' ? req.body : {}) as Form;
}

/** RFC 6749 §2.3.1: client_id and secret are form-urlencoded before base64. */
function parseBasic(header: string | undefined): { clientId: string; secret: string } | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!m?.[1]) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const unform = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
  try {
    return { clientId: unform(decoded.slice(0, colon)), secret: unform(decoded.slice(colon + 1)) };
  } catch {
    return undefined;
  }
}

function hostOf(url: string): string {
  return new URL(url).host;
}

/** Loopback redirect URIs match whatever the port (Entra ignores it for http://localhost). */
export function redirectAllowed(registered: string[], uri: string): boolean {
  if (registered.includes(uri)) return true;
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return false;
  }
  if (u.protocol !== 'http:' || !['localhost', '127.0.0.1', '[::1]'].includes(u.hostname)) return false;
  return registered.some((r) => {
    try {
      const x = new URL(r);
      return x.protocol === u.protocol && x.hostname === u.hostname && x.pathname === u.pathname && x.search === u.search;
    } catch {
      return false;
    }
  });
}

export function buildCloudServer(shared: EntraShared, cloud: CloudName, tls: KeyAndCert) {
  const app = Fastify({ https: { key: tls.keyPem, cert: tls.certPem }, logger: false, bodyLimit: 1 << 20 });
  const traces = new WeakMap<FastifyRequest, RequestTrace>();
  const base = () => shared.urls[cloud];
  const { directory, state } = shared;
  const minter: Minter = { key: shared.key, state, now: shared.now };
  const count = (name: EndpointName) => {
    shared.stats.calls[name] = (shared.stats.calls[name] ?? 0) + 1;
  };
  const traceOf = (req: FastifyRequest): RequestTrace => traces.get(req) ?? { traceId: randomUUID(), correlationId: randomUUID(), at: shared.now() };

  // Entra reads only form bodies; anything else is as if no parameter was sent.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, parseForm(String(body))));
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, _body, done) => done(null, {}));

  app.addHook('onRequest', async (req, reply) => {
    const traceId = randomUUID();
    const requested = req.headers['client-request-id'];
    const cri = typeof requested === 'string' && GUID.test(requested) ? requested.toLowerCase() : undefined;
    traces.set(req, { traceId, correlationId: cri ?? randomUUID(), at: shared.now() });
    state.prune(shared.now());
    reply.headers({
      'cache-control': 'no-store, no-cache',
      pragma: 'no-cache',
      expires: '-1',
      'strict-transport-security': 'max-age=31536000; includeSubDomains',
      'x-content-type-options': 'nosniff',
      'x-ms-request-id': traceId,
      'x-ms-ests-server': '2.1.0.0 - mailbridge sandbox',
    });
    if (cri) reply.header('client-request-id', cri);
  });

  app.setErrorHandler((err, req, reply) => {
    let aad: AadstsError;
    const status = (err as { statusCode?: number }).statusCode;
    if (err instanceof AadstsError) aad = err;
    else if (status !== undefined && status >= 400 && status < 500) {
      // Fastify's own refusals (body too large, bad encoding): a malformed request to Entra.
      aad = new AadstsError(90023, { detail: (err as Error).message }, { status });
    } else {
      // A bug in the emulator, not an Entra behaviour: say so on stderr, answer like an STS outage.
      console.error(`sandbox Entra ID: internal error: ${scrub(err instanceof Error ? (err.stack ?? err.message) : String(err))}`);
      aad = new AadstsError(50000);
    }
    return reply.code(aad.def.status).type('application/json; charset=utf-8').send(errorBody(aad, traceOf(req), base()));
  });

  // ---- tenant and app resolution -------------------------------------------------------------

  const lookupTenant = (path: string): Target => {
    const lower = path.toLowerCase();
    if (MULTI_TENANT.has(lower)) return lower as Target;
    const tenant = directory.tenant(path);
    if (!tenant || !sameLoginHost(tenant.cloud, cloud)) throw new AadstsError(90002, { tenant: path });
    return tenant;
  };

  /** A multi-tenant endpoint: every sandbox app is single-tenant, so this always fails. */
  const multiTenantRefusal = (which: string, clientId: string, grantType?: string): AadstsError => {
    if (grantType === 'client_credentials' && which !== 'organizations') return new AadstsError(9001023);
    for (const t of directory.data.tenants) {
      if (!sameLoginHost(t.cloud, cloud)) continue;
      const found = directory.app(t, clientId);
      if (found) return new AadstsError(50194, { appId: found.appId, appName: found.displayName });
    }
    return new AadstsError(700016, { appId: clientId, tenant: which });
  };

  const resolveApp = (target: Target, clientId: string, grantType?: string): { tenant: SandboxTenant; app: SandboxApp } => {
    if (typeof target === 'string') throw multiTenantRefusal(target, clientId, grantType);
    const found = directory.app(target, clientId);
    if (!found) throw new AadstsError(700016, { appId: clientId, tenant: target.name });
    if (found.disabled) throw new AadstsError(7000112, { appId: found.appId, appName: found.displayName });
    // An app created through Graph has no enterprise application until POST /servicePrincipals;
    // client credentials need one (user sign-ins create it on consent, so they are not refused).
    if (grantType === 'client_credentials' && found.registration?.servicePrincipal === false) {
      throw new AadstsError(7000229, { appId: found.appId, tenant: target.id });
    }
    return { tenant: target, app: found };
  };

  // ---- client authentication ----------------------------------------------------------------

  const tokenAudiences = (tenant: SandboxTenant): string[] =>
    [tenant.id, ...tenant.domains].flatMap((t) => [`${base()}/${t}/oauth2/v2.0/token`, `${base()}/${t}/oauth2/token`]);

  const authenticateClient = async (o: {
    form: Form;
    basic: ReturnType<typeof parseBasic>;
    tenant: SandboxTenant;
    app: SandboxApp;
    clientId: string;
    userFlow: boolean;
  }): Promise<AppIdAcr> => {
    const secret = o.form.client_secret ?? o.basic?.secret;
    const assertion = o.form.client_assertion;
    const presented = secret !== undefined || assertion !== undefined;
    if (o.userFlow && o.app.publicClient) {
      if (presented) throw new AadstsError(700025);
      return '0';
    }
    if (!presented) throw new AadstsError(7000218);
    if (assertion !== undefined) {
      await verifyClientAssertion({
        assertion,
        assertionType: o.form.client_assertion_type,
        app: o.app,
        clientId: o.clientId,
        audiences: tokenAudiences(o.tenant),
        now: shared.now(),
      });
      return '2';
    }
    const match = o.app.secrets.find((s) => sameSecret(s.value, secret ?? ''));
    if (!match) throw new AadstsError(7000215, { appId: o.app.appId });
    if (Date.parse(match.endDateTime) <= shared.now()) throw new AadstsError(7000222, { appId: o.app.appId });
    return '1';
  };

  const recordTokenRequest = (tenantPath: string, form: Form, basic: ReturnType<typeof parseBasic>) => {
    const entry: Record<string, unknown> = { cloud, tenant: tenantPath };
    for (const [k, v] of Object.entries(form)) entry[k] = v !== undefined && MASKED_FIELDS.has(k) ? mask(v) : v;
    if (basic) entry.basic = { client_id: basic.clientId, client_secret: mask(basic.secret) };
    if (form.client_assertion) entry.assertion = decodeAssertion(form.client_assertion) ?? 'malformed';
    shared.stats.tokenRequests.push(entry);
  };

  // ---- token endpoint -----------------------------------------------------------------------

  app.get('/:tenant/oauth2/v2.0/token', async () => {
    count('token');
    throw new AadstsError(900561, { method: 'GET' });
  });

  app.post<{ Params: { tenant: string } }>('/:tenant/oauth2/v2.0/token', async (req) => {
    count('token');
    const form = formOf(req);
    const basic = parseBasic(req.headers.authorization);
    recordTokenRequest(req.params.tenant, form, basic);
    const target = lookupTenant(req.params.tenant);
    const grantType = form.grant_type;
    if (!grantType) throw new AadstsError(900144, { name: 'grant_type' });
    if (!GRANTS.has(grantType)) throw new AadstsError(70003, { grant: grantType });
    const clientId = form.client_id ?? basic?.clientId;
    if (!clientId) throw new AadstsError(900144, { name: 'client_id' });
    const { tenant, app: client } = resolveApp(target, clientId, grantType);
    const auth = { form, basic, tenant, app: client, clientId };

    if (grantType === 'client_credentials') {
      const appidacr = await authenticateClient({ ...auth, userFlow: false });
      const resource = parseClientCredentialsScope(form.scope ?? '', tenant);
      return appOnlyToken(minter, tenant, client, resource, appidacr);
    }
    if (grantType === 'authorization_code') return redeemCode(form, auth);
    if (grantType === 'refresh_token') return redeemRefreshToken(form, auth);
    return redeemDeviceCode(form, auth);
  });

  type Auth = { form: Form; basic: ReturnType<typeof parseBasic>; tenant: SandboxTenant; app: SandboxApp; clientId: string };

  const userOf = (tenant: SandboxTenant, client: SandboxApp, oid: string) => {
    const user = findUser(tenant, oid);
    if (!user) throw new AadstsError(70000);
    if (user.disabled) throw new AadstsError(50057);
    // An admin who turns on "Assignment required?" after the sign-in stops the refresh too.
    checkAssignment(client, user);
    return user;
  };

  /** OpenID scopes of both legs count (id_token, refresh token); the resource is the request's. */
  const mergeOidc = (a: DelegatedScopes, b: DelegatedScopes): DelegatedScopes => ({ oidc: new Set([...a.oidc, ...b.oidc]), resources: a.resources });

  /** What every user flow does first: its own parameter present, then the client authenticated. */
  const startUserFlow = async (form: Form, auth: Auth, param: 'code' | 'refresh_token' | 'device_code') => {
    const value = form[param];
    if (!value) throw new AadstsError(900144, { name: param });
    return { value, appidacr: await authenticateClient({ ...auth, userFlow: true }) };
  };

  /** A user flow's tokens: for the client and tenant of the request, with client_info when asked. */
  const tokensFor = (auth: Auth, form: Form, r: Omit<UserTokenRequest, 'base' | 'tenant' | 'app' | 'clientInfo'>) =>
    userTokens(minter, { base: base(), tenant: auth.tenant, app: auth.app, clientInfo: form.client_info === '1', ...r });

  const redeemCode = async (form: Form, auth: Auth) => {
    const { tenant, app: client } = auth;
    const { value, appidacr } = await startUserFlow(form, auth, 'code');
    const rec = state.codes.get(value);
    if (!rec) throw new AadstsError(9002313);
    if (rec.appId !== client.appId) throw new AadstsError(70000);
    if (rec.tenantId !== tenant.id) throw new AadstsError(700005);
    if (rec.redeemed) throw new AadstsError(54005);
    if (shared.now() - rec.issuedAt > AUTH_CODE_LIFETIME_MS) throw new AadstsError(70008);
    if (!form.redirect_uri) throw new AadstsError(900144, { name: 'redirect_uri' });
    if (form.redirect_uri !== rec.redirectUri) throw new AadstsError(500112, { got: form.redirect_uri, expected: rec.redirectUri });
    if (rec.codeChallenge) {
      const verifier = form.code_verifier ?? '';
      const computed = rec.codeChallengeMethod === 'S256' ? createHash('sha256').update(verifier).digest('base64url') : verifier;
      if (!verifier || computed !== rec.codeChallenge) throw new AadstsError(501481);
    }
    rec.redeemed = true;
    const user = userOf(tenant, client, rec.userOid);
    const requested = mergeOidc(parseDelegatedScopes(form.scope || rec.scope, tenant), parseDelegatedScopes(rec.scope, tenant));
    const grant = grantDelegated(requested, client, tenant);
    return tokensFor(auth, form, { user, grant, requested, appidacr, authTime: rec.issuedAt, nonce: rec.nonce, refresh: grant.offlineAccess, refreshScope: rec.scope });
  };

  const redeemRefreshToken = async (form: Form, auth: Auth) => {
    const { tenant, app: client } = auth;
    const { value, appidacr } = await startUserFlow(form, auth, 'refresh_token');
    const rec = state.refreshTokens.get(value);
    if (!rec) throw new AadstsError(9002313);
    if (rec.appId !== client.appId || rec.tenantId !== tenant.id) throw new AadstsError(70000);
    const user = userOf(tenant, client, rec.userOid);
    const now = shared.now();
    const validFrom = user.signInSessionsValidFrom ? Date.parse(user.signInSessionsValidFrom) : NaN;
    if (validFrom > rec.authTime) {
      throw new AadstsError(50173, { issued: new Date(rec.authTime).toISOString(), validFrom: new Date(validFrom).toISOString() });
    }
    if (now - rec.lastUsedAt > REFRESH_INACTIVITY_MS) {
      throw new AadstsError(700082, { issued: new Date(rec.issuedAt).toISOString().replace(/Z$/, '0000Z'), inactive: '90.00:00:00' });
    }
    const original = parseDelegatedScopes(rec.scope, tenant);
    const requested = form.scope ? parseDelegatedScopes(form.scope, tenant) : original;
    const grant = grantDelegated(requested, client, tenant);
    // "Refresh tokens aren't revoked when used": the old one stays valid; its use counts as activity.
    state.refreshTokens.used(rec, now);
    const refresh = original.oidc.has('offline_access') || grant.offlineAccess;
    return tokensFor(auth, form, { user, grant, requested, appidacr, authTime: rec.authTime, refresh, refreshScope: rec.scope });
  };

  const redeemDeviceCode = async (form: Form, auth: Auth) => {
    const { tenant, app: client } = auth;
    const { value, appidacr } = await startUserFlow(form, auth, 'device_code');
    const rec = state.deviceCodes.get(value);
    if (!rec || rec.appId !== client.appId || rec.tenantId !== tenant.id) throw new AadstsError(70018);
    if (rec.status === 'redeemed') throw new AadstsError(54005);
    if (shared.now() > rec.expiresAt) throw new AadstsError(70019);
    if (rec.status === 'declined') throw new AadstsError(65004, {}, { error: 'authorization_declined' });
    if (rec.status === 'pending' || !rec.userOid) throw new AadstsError(70016);
    const user = userOf(tenant, client, rec.userOid);
    const requested = parseDelegatedScopes(rec.scope, tenant);
    const grant = grantDelegated(requested, client, tenant);
    rec.status = 'redeemed';
    return tokensFor(auth, form, { user, grant, requested, appidacr, authTime: rec.authTime ?? shared.now(), refresh: grant.offlineAccess, refreshScope: rec.scope });
  };

  // ---- device code ----------------------------------------------------------------------------

  app.post<{ Params: { tenant: string }; Querystring: Record<string, string | undefined> }>('/:tenant/oauth2/v2.0/devicecode', async (req) => {
    count('devicecode');
    const form = formOf(req);
    const target = lookupTenant(req.params.tenant);
    if (!form.client_id) throw new AadstsError(900144, { name: 'client_id' });
    const { tenant, app: client } = resolveApp(target, form.client_id);
    if (!form.scope) throw new AadstsError(900144, { name: 'scope' });
    parseDelegatedScopes(form.scope, tenant);
    const now = shared.now();
    const entry = {
      deviceCode: state.newDeviceCode(),
      userCode: state.newUserCode(),
      tenantId: tenant.id,
      appId: client.appId,
      scope: form.scope,
      issuedAt: now,
      expiresAt: now + DEVICE_CODE_LIFETIME_S * 1000,
      status: 'pending' as const,
    };
    state.deviceCodes.set(entry.deviceCode, entry);
    const uri = `${base()}/devicelogin`;
    const lang = pageLang(form.mkt ?? req.query.mkt, undefined);
    const message =
      lang === 'de'
        ? `Um sich anzumelden, verwenden Sie einen Webbrowser, um die Seite ${uri} zu öffnen, und geben Sie den Code ${entry.userCode} ein, um sich zu authentifizieren.`
        : `To sign in, use a web browser to open the page ${uri} and enter the code ${entry.userCode} to authenticate.`;
    return {
      user_code: entry.userCode,
      device_code: entry.deviceCode,
      verification_uri: uri,
      expires_in: DEVICE_CODE_LIFETIME_S,
      interval: DEVICE_CODE_INTERVAL_S,
      message,
    };
  });

  // ---- authorize (sign-in page) ---------------------------------------------------------------

  const html = (reply: FastifyReply, status: number, body: string) => reply.code(status).type('text/html; charset=utf-8').send(body);

  const showError = (reply: FastifyReply, req: FastifyRequest, lang: 'en' | 'de', err: unknown) => {
    const aad = err instanceof AadstsError ? err : new AadstsError(50000);
    if (!(err instanceof AadstsError)) console.error(`sandbox Entra ID: internal error: ${scrub(err instanceof Error ? (err.stack ?? err.message) : String(err))}`);
    const tr = traceOf(req);
    return html(reply, aad.def.status, errorPage(lang, { code: aad.code, text: aad.message }, { ...tr, timestamp: entraTimestamp(tr.at) }));
  };

  const sendToClient = (reply: FastifyReply, lang: 'en' | 'de', redirectUri: string, mode: ResponseMode, params: Record<string, string | undefined>) => {
    const fields = Object.fromEntries(Object.entries(params).filter((e): e is [string, string] => e[1] !== undefined));
    if (mode === 'form_post') return html(reply, 200, formPostPage(lang, redirectUri, fields));
    const qs = new URLSearchParams(fields).toString();
    if (mode === 'fragment') return reply.redirect(`${redirectUri.split('#')[0]}#${qs}`, 302);
    const url = new URL(redirectUri);
    for (const [k, v] of Object.entries(fields)) url.searchParams.append(k, v);
    return reply.redirect(url.toString(), 302);
  };

  const errorParams = (err: AadstsError, req: FastifyRequest, stateParam: string | undefined) => {
    const body = errorBody(err, traceOf(req), base());
    return { error: String(body.error), error_description: String(body.error_description), error_uri: String(body.error_uri), state: stateParam };
  };

  app.get<{ Params: { tenant: string }; Querystring: Record<string, string | undefined> }>('/:tenant/oauth2/v2.0/authorize', async (req, reply) => {
    count('authorize');
    const q = req.query;
    const lang = pageLang(q.ui_locales ?? q.mkt, req.headers['accept-language']);
    let tenant: SandboxTenant;
    let client: SandboxApp;
    let redirectUri: string;
    // Errors before the redirect URI is trusted are shown to the user, never sent to the URI.
    try {
      const target = lookupTenant(req.params.tenant);
      if (!q.client_id) throw new AadstsError(900144, { name: 'client_id' });
      ({ tenant, app: client } = resolveApp(target, q.client_id));
      if (!q.redirect_uri) throw new AadstsError(900971);
      if (!redirectAllowed(client.redirectUris, q.redirect_uri)) throw new AadstsError(50011, { redirectUri: q.redirect_uri, appId: client.appId });
      redirectUri = q.redirect_uri;
    } catch (err) {
      return showError(reply, req, lang, err);
    }
    const rawMode = q.response_mode ?? 'query';
    const mode: ResponseMode = rawMode === 'fragment' || rawMode === 'form_post' ? rawMode : 'query';
    let method: 'S256' | 'plain' | undefined;
    try {
      if (rawMode !== mode) throw new AadstsError(70007, { mode: rawMode });
      if (!q.response_type) throw new AadstsError(900144, { name: 'response_type' });
      if (!q.response_type.split(' ').includes('code')) throw new AadstsError(70005);
      if (!q.scope) throw new AadstsError(900144, { name: 'scope' });
      parseDelegatedScopes(q.scope, tenant);
      if (q.code_challenge) {
        const m = q.code_challenge_method ?? 'plain';
        if (m !== 'S256' && m !== 'plain') throw new AadstsError(90023, { detail: `The code_challenge_method '${m}' is not supported.` });
        if (m === 'S256' && q.code_challenge.length !== 43) throw new AadstsError(501491);
        method = m;
      }
      if (q.prompt === 'none') throw new AadstsError(50058);
    } catch (err) {
      if (!(err instanceof AadstsError)) return showError(reply, req, lang, err);
      return sendToClient(reply, lang, redirectUri, mode, errorParams(err, req, q.state));
    }
    const id = state.newSignInId();
    state.signIns.set(id, {
      id,
      tenantId: tenant.id,
      appId: client.appId,
      redirectUri,
      scope: q.scope,
      state: q.state,
      nonce: q.nonce,
      codeChallenge: q.code_challenge,
      codeChallengeMethod: method,
      responseMode: mode,
      clientInfo: q.client_info === '1',
      loginHint: q.login_hint,
      createdAt: shared.now(),
    });
    return html(
      reply,
      200,
      signInPage({ lang, action: req.url.split('?')[0] ?? '', hidden: { flow: id, lang }, appName: client.displayName, tenantName: tenant.name, loginHint: q.login_hint }),
    );
  });

  app.post<{ Params: { tenant: string } }>('/:tenant/oauth2/v2.0/authorize', async (req, reply) => {
    count('authorize');
    const form = formOf(req);
    const lang = pageLang(form.lang, req.headers['accept-language']);
    const pending = state.signIns.get(form.flow ?? '');
    if (!pending || shared.now() - pending.createdAt > SIGN_IN_PAGE_LIFETIME_MS) return showError(reply, req, lang, new AadstsError(50089));
    const tenant = directory.tenant(pending.tenantId);
    const client = tenant && directory.app(tenant, pending.appId);
    if (!tenant || !client) return showError(reply, req, lang, new AadstsError(700016, { appId: pending.appId, tenant: tenant?.name ?? pending.tenantId }));
    if (form.action === 'cancel') {
      state.signIns.delete(pending.id);
      return sendToClient(reply, lang, pending.redirectUri, pending.responseMode, errorParams(new AadstsError(65004), req, pending.state));
    }
    let user;
    try {
      user = checkUserSignIn(directory, tenant, client, form.login ?? '', form.passwd ?? '');
    } catch (err) {
      if (err instanceof AadstsError && (err.code === 50126 || err.code === 50034)) {
        const page = signInPage({
          lang,
          action: req.url,
          hidden: { flow: pending.id, lang },
          appName: client.displayName,
          tenantName: tenant.name,
          loginHint: form.login,
          error: { code: err.code, text: err.message },
        });
        return html(reply, 200, page);
      }
      return showError(reply, req, lang, err);
    }
    state.signIns.delete(pending.id);
    const code = state.newCode();
    state.codes.set(code, {
      code,
      tenantId: tenant.id,
      appId: client.appId,
      redirectUri: pending.redirectUri,
      scope: pending.scope,
      userOid: user.objectId,
      nonce: pending.nonce,
      codeChallenge: pending.codeChallenge,
      codeChallengeMethod: pending.codeChallengeMethod,
      issuedAt: shared.now(),
      redeemed: false,
    });
    return sendToClient(reply, lang, pending.redirectUri, pending.responseMode, {
      code,
      client_info: pending.clientInfo ? clientInfo(user, tenant) : undefined,
      state: pending.state,
      session_state: randomUUID(),
    });
  });

  // ---- device login page ------------------------------------------------------------------------

  app.get('/devicelogin', async (req, reply) => {
    count('devicelogin');
    return html(reply, 200, deviceCodePage(pageLang(undefined, req.headers['accept-language']), '/devicelogin'));
  });

  app.post('/devicelogin', async (req, reply) => {
    count('devicelogin');
    const form = formOf(req);
    const lang = pageLang(form.lang, req.headers['accept-language']);
    const otc = (form.otc ?? '').trim();
    const entry = otc ? state.deviceByUserCode(otc) : undefined;
    const entryTenant = entry && directory.tenant(entry.tenantId);
    // A code from another cloud's login host is unknown here, as on the real devicelogin pages.
    if (!entry || !entryTenant || !sameLoginHost(entryTenant.cloud, cloud)) {
      return html(reply, 200, deviceCodePage(lang, '/devicelogin', { text: t('deviceUnknown', lang) }));
    }
    if (shared.now() > entry.expiresAt) return showError(reply, req, lang, new AadstsError(70019));
    if (entry.status !== 'pending') return showError(reply, req, lang, new AadstsError(90120));
    const client = directory.app(entryTenant, entry.appId);
    if (!client) return showError(reply, req, lang, new AadstsError(700016, { appId: entry.appId, tenant: entryTenant.name }));
    const page = (error?: { code: number; text: string }) =>
      signInPage({
        lang,
        action: '/devicelogin',
        hidden: { otc: entry.userCode, lang },
        appName: client.displayName,
        tenantName: entryTenant.name,
        loginHint: form.login,
        error,
        confirm: t('deviceConfirm', lang, { app: client.displayName }),
      });
    if (!form.action) return html(reply, 200, page());
    if (form.action === 'cancel') {
      entry.status = 'declined';
      return html(reply, 200, messagePage('devicelogin-declined', lang, t('deviceDeclined', lang, { app: client.displayName })));
    }
    try {
      const user = checkUserSignIn(directory, entryTenant, client, form.login ?? '', form.passwd ?? '');
      entry.status = 'approved';
      entry.userOid = user.objectId;
      entry.authTime = shared.now();
    } catch (err) {
      if (err instanceof AadstsError && (err.code === 50126 || err.code === 50034)) return html(reply, 200, page({ code: err.code, text: err.message }));
      return showError(reply, req, lang, err);
    }
    return html(reply, 200, messagePage('devicelogin-done', lang, t('deviceDone', lang, { app: client.displayName })));
  });

  // ---- discovery ------------------------------------------------------------------------------

  app.get<{ Querystring: Record<string, string | undefined> }>('/common/discovery/instance', async (req) => {
    count('discovery');
    const endpoint = req.query.authorization_endpoint;
    if (!endpoint) throw new AadstsError(900144, { name: 'authorization_endpoint' });
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new AadstsError(50049);
    }
    if (url.protocol !== 'https:' || url.host !== hostOf(base())) throw new AadstsError(50049);
    const tenantSegment = url.pathname.split('/')[1] || 'common';
    return {
      tenant_discovery_endpoint: `${base()}/${tenantSegment}/v2.0/.well-known/openid-configuration`,
      'api-version': req.query['api-version'] ?? '1.1',
      // Like the real answer, one entry per cloud; MSAL picks the one that lists its host.
      metadata: CLOUDS.map((c) => {
        const host = hostOf(shared.urls[c]);
        return { preferred_network: host, preferred_cache: host, aliases: [host] };
      }),
    };
  });

  /** Discovery documents and keys answer an unknown tenant with error "invalid_tenant". */
  const lookupTenantForDiscovery = (path: string): Target => {
    try {
      return lookupTenant(path);
    } catch (err) {
      if (err instanceof AadstsError && err.code === 90002) throw new AadstsError(90002, err.params, { error: 'invalid_tenant' });
      throw err;
    }
  };

  app.get<{ Params: { tenant: string } }>('/:tenant/v2.0/.well-known/openid-configuration', async (req) => {
    count('openid');
    const target = lookupTenantForDiscovery(req.params.tenant);
    const seg = typeof target === 'string' ? target : target.id;
    const profile = CLOUD_PROFILES[typeof target === 'string' ? cloud : target.cloud];
    const b = base();
    return {
      token_endpoint: `${b}/${seg}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${b}/${seg}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: `${b}/${typeof target === 'string' ? '{tenantid}' : target.id}/v2.0`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: `https://${profile.graphHost}/oidc/userinfo`,
      authorization_endpoint: `${b}/${seg}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${b}/${seg}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${b}/${seg}/oauth2/v2.0/logout`,
      claims_supported: ['sub', 'iss', 'cloud_instance_name', 'cloud_instance_host_name', 'cloud_graph_host_name', 'msgraph_host', 'aud', 'exp', 'iat', 'auth_time', 'acr', 'nonce', 'preferred_username', 'name', 'tid', 'ver', 'at_hash', 'c_hash', 'email'],
      tenant_region_scope: typeof target === 'string' ? null : profile.tenantRegionScope,
      cloud_instance_name: profile.cloudInstanceName,
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: profile.graphHost,
      rbac_url: 'https://pas.windows.net',
    };
  });

  for (const path of ['/:tenant/discovery/v2.0/keys', '/:tenant/discovery/keys']) {
    app.get<{ Params: { tenant: string } }>(path, async (req) => {
      count('jwks');
      lookupTenantForDiscovery(req.params.tenant);
      return { keys: [shared.key.jwk] };
    });
  }

  app.get<{ Querystring: { code?: string } }>('/error', async (req, reply) => {
    const code = Number(req.query.code);
    const def = AADSTS[code];
    const lang = pageLang(undefined, req.headers['accept-language']);
    if (!def) return html(reply, 404, messagePage('error-lookup', lang, `AADSTS${req.query.code ?? ''}: unknown code`));
    return html(reply, 200, messagePage('error-lookup', lang, `AADSTS${code}: ${def.text}`));
  });

  return app;
}
