/**
 * Identity: one object that turns the connections of mailbridge.yaml into access tokens.
 * See ./index.ts for the overview; this file holds the machinery.
 */
import { EventEmitter } from 'node:events';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRemoteJWKSet, customFetch, decodeJwt, jwtVerify, type JWTPayload } from 'jose';
import {
  ConfidentialClientApplication,
  CryptoProvider,
  LogLevel,
  PublicClientApplication,
  ServerError,
  type AccountInfo,
  type AuthenticationResult,
  type Configuration,
  type DeviceCodeRequest,
} from '@azure/msal-node';
import type { ConnectionConfig } from './config.ts';
import type { SecretBox } from '../config/secret-box.ts';
import { MbError } from '../errors/index.ts';
import type { Lang } from '../i18n/index.ts';
import type { Logger } from '../log/index.ts';
import { silentLogger } from '../log/index.ts';
import type { KeyValue } from '../store/index.ts';
import { sealedCachePlugin } from './cache-plugin.ts';
import { cloudFor, defaultScopes, type Cloud, type Resource } from './clouds.ts';
import { assertUsable, credentialWarnings, loadCredential, type Credential } from './credentials.ts';
import { resolveEndpoints, type Endpoints } from './endpoints.ts';
import { fromEntraBody, toIdentityError, type ErrorContext } from './entra-errors.ts';
import type { ProxyRoute } from '../net/proxy.ts';
import { UndiciNetwork, type EntraErrorBody, type NetworkOptions } from './network.ts';
import { CONSOLE_SIGNIN_NAMESPACE, SIGNIN_TTL_MINUTES, SignInStore } from './signin-state.ts';

export interface IdentityOptions {
  /** The connections and the server defaults (proxy, publicUrl, port) from mailbridge.yaml. */
  config: { connections: Record<string, ConnectionConfig>; server?: { publicUrl?: string | undefined; port?: number | undefined; proxy?: string | undefined } };
  /** Where delegated sign-ins (MSAL cache, pending sign-ins) are kept. */
  kv: KeyValue;
  secretBox: SecretBox;
  log?: Logger;
  /** Milliseconds since the epoch; injectable so tests can move time without waiting. */
  clock?: () => number;
  env?: NodeJS.ProcessEnv;
  /** Retry and timeout tuning of the HTTP client (tests pass `sleep`). */
  network?: Pick<NetworkOptions, 'maxAttempts' | 'baseDelayMs' | 'maxDelayMs' | 'maxRetryAfterMs' | 'timeoutMs' | 'sleep'>;
  /**
   * Told of every token request to Entra ID (not of answers from a cache), for /metrics and
   * /health/ready: the connection and whether it worked.
   */
  onTokenRequest?: (connection: string, result: { ok: true } | { ok: false; error: MbError }) => void;
  /**
   * false: "expires soon" warnings are not logged here (at most daily); the caller announces them
   * itself. The gateway does, once per threshold (src/check/expiry.ts).
   */
  expiryLog?: boolean;
}

export interface AccessToken {
  accessToken: string;
  tokenType: string;
  expiresOn: Date;
  scopes: string[];
  resource: Resource;
  connection: string;
  /** UPN of the signed-in user (delegated flows). */
  account?: string;
  tenantId: string;
  /** True when the token came from a cache (mailbridge's memory or the sealed persistent one) without a request to Entra ID. */
  fromCache: boolean;
  /** Where the token came from; see TokenSource. */
  source: TokenSource;
}

/**
 * Where a token came from: `memory` (this process's token cache), `persistent` (the access token
 * kept in the sealed MSAL cache in the store, e.g. after a restart), `refresh` (redeemed the
 * stored refresh token at Entra ID), `requested` (a new request to Entra ID: client credentials,
 * an authorization code or a device code).
 */
export type TokenSource = 'memory' | 'persistent' | 'refresh' | 'requested';

export interface GetTokenOptions {
  /** Delegated flows: which signed-in account (UPN); default: the connection's `account`, or the only one. */
  account?: string;
  /** Ask Entra ID even if a cached token is still good. */
  forceRefresh?: boolean;
}

export interface TokenDescription {
  connection: string;
  flow: ConnectionConfig['flow'];
  cloud: string;
  tenantId: string;
  clientId: string;
  appName?: string;
  /** How the app proves itself: client secret, certificate (with algorithm and thumbprint), or none. */
  credential: string;
  account?: string;
  resource: Resource;
  audience?: string;
  /** App-only tokens: the application permissions granted (the `roles` claim). */
  roles?: string[];
  /** Delegated tokens: the permissions granted (the `scp` claim). */
  scopes?: string[];
  requestedScopes: string[];
  expiresOn: string;
  /** The token endpoint the request went to. */
  endpoint: string;
  authority: string;
  proxy: string;
  caFile?: string;
  fromCache: boolean;
  source: TokenSource;
  /** Things to act on before they fail (expiring credentials). */
  warnings: MbError[];
  /** Things that make the token useless already (no roles, wrong audience, missing scopes). */
  problems: MbError[];
}

export interface CredentialNotice {
  connection: string;
  severity: 'warning' | 'error';
  error: MbError;
}

export interface SignInLink {
  connection: string;
  url: string;
  state: string;
  redirectUri: string;
  expiresAt: Date;
}

export interface SignInResult {
  connection: string;
  account: string;
  warnings: MbError[];
}

/** A person signed in to the console through a connection (OpenID Connect, verified id token). */
export interface ConsoleSignIn {
  connection: string;
  /** preferred_username (the UPN), else the object ID. */
  account: string;
  oid: string;
  tenantId: string;
  /** The id token's `roles` claim: the app roles the person is assigned (none: empty). */
  roles: string[];
}

export interface DeviceCodeInfo {
  userCode: string;
  verificationUri: string;
  message: string;
  expiresIn: number;
  interval: number;
}

export interface DeviceCodeOptions {
  onCode(info: DeviceCodeInfo): void;
  /** Called on each poll Entra answers "authorization pending" (MB_ENTRA_AUTHORIZATION_PENDING). */
  onPending?(notice: MbError): void;
  signal?: AbortSignal;
}

interface Runtime {
  name: string;
  conn: ConnectionConfig;
  cloud: Cloud;
  endpoints: Endpoints;
  network: UndiciNetwork;
  credential: Credential;
  delegated: boolean;
  app: ConfidentialClientApplication | PublicClientApplication;
  /** Device code always runs as a public client (MSAL offers it only there). */
  publicApp(): PublicClientApplication;
  lastEndpoint: string;
}

interface CachedToken {
  token: AccessToken;
  expiresAt: number;
}

const WARN_EVERY_MS = 86_400_000;
const CACHE_PREFIX = 'conn:';
const PERMISSIONS: Record<Resource, { api: string; permissions: string }> = {
  exchange: { api: 'Office 365 Exchange Online', permissions: 'SMTP.SendAsApp, IMAP.AccessAsApp (EWS: full_access_as_app)' },
  graph: { api: 'Microsoft Graph', permissions: 'Mail.Send, Mail.Read' },
};
const OIDC = new Set(['openid', 'profile', 'offline_access', 'email']);

/** The few words describe() puts into its texts, in the admin's language. */
const DESCRIBE_WORDS: Record<Lang, { secret: string; certificate: string; expires: string; publicClient: string; direct: string; noProxy: string }> = {
  en: { secret: 'client secret', certificate: 'certificate', expires: 'expires', publicClient: 'none (public client)', direct: 'none (direct)', noProxy: 'none (direct, NO_PROXY)' },
  de: { secret: 'geheimer Clientschlüssel', certificate: 'Zertifikat', expires: 'gültig bis', publicClient: 'keine (öffentlicher Client)', direct: 'keiner (direkt)', noProxy: 'keiner (direkt, NO_PROXY)' },
};

export class Identity {
  private readonly opts: IdentityOptions;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly runtimes = new Map<string, Promise<Runtime>>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<AccessToken>>();
  private readonly warned = new Map<string, number>();
  private readonly signins: SignInStore;
  private readonly consoleSignins: SignInStore;
  private readonly jwks = new Map<string, ReturnType<typeof createRemoteJWKSet>>();
  private readonly events = new EventEmitter();
  private readonly pendingListeners = new Map<string, (body: EntraErrorBody) => void>();
  private readonly crypto = new CryptoProvider();

  constructor(options: IdentityOptions) {
    this.opts = options;
    this.log = options.log ?? silentLogger;
    this.clock = options.clock ?? Date.now;
    this.signins = new SignInStore(options.kv, options.secretBox);
    this.consoleSignins = new SignInStore(options.kv, options.secretBox, CONSOLE_SIGNIN_NAMESPACE);
    this.events.setMaxListeners(0);
  }

  /** Names of the configured connections. */
  connections(): string[] {
    return Object.keys(this.opts.config.connections);
  }

  /**
   * An access token for a connection and resource. Cached until expiry minus `graceSeconds`;
   * however many callers ask at once, at most one request per connection, resource and account
   * is in flight (the others wait for its answer).
   */
  async getToken(name: string, resource: Resource = 'exchange', options: GetTokenOptions = {}): Promise<AccessToken> {
    const conn = this.config(name);
    const delegated = conn.flow !== 'client-credentials';
    const account = delegated ? (options.account ?? conn.account)?.toLowerCase() : undefined;
    const key = `${name}\u0000${resource}\u0000${account ?? ''}`;
    const cached = this.tokens.get(key);
    if (cached && !options.forceRefresh && this.clock() < cached.expiresAt) return { ...cached.token, fromCache: true, source: 'memory' };
    let flight = this.inflight.get(key);
    if (!flight) {
      const report = this.opts.onTokenRequest;
      flight = this.acquire(name, resource, account, key, Boolean(cached) || Boolean(options.forceRefresh))
        .then(
          (t) => {
            if (t.source === 'requested' || t.source === 'refresh') report?.(name, { ok: true });
            return t;
          },
          (err: unknown) => {
            report?.(name, { ok: false, error: err instanceof MbError ? err : toIdentityError(err, this.bareContext(name)) });
            throw err;
          },
        )
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, flight);
    }
    return flight;
  }

  /** What an admin needs to know about a connection's token (never the token itself). */
  async describe(name: string, options: GetTokenOptions & { resource?: Resource; lang?: Lang } = {}): Promise<TokenDescription> {
    const resource = options.resource ?? 'exchange';
    const rt = await this.runtime(name);
    const token = await this.getToken(name, resource, options);
    let claims: JWTPayload & Record<string, unknown> = {};
    try {
      claims = decodeJwt(token.accessToken) as typeof claims;
    } catch {
      // Opaque token: nothing to decode; the description says what is known from the request.
    }
    const problems: MbError[] = [];
    const requested = this.scopesFor(rt, resource);
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const roles = Array.isArray(claims.roles) ? (claims.roles as string[]) : undefined;
    const scp = typeof claims.scp === 'string' ? claims.scp.split(' ').filter(Boolean) : undefined;
    const base = { connection: name, clientId: rt.conn.clientId, tenantId: rt.conn.tenantId, portal: rt.cloud.portal };
    const audience = str(claims.aud) ?? (Array.isArray(claims.aud) ? claims.aud.join(', ') : undefined);
    if (Object.keys(claims).length > 0) {
      if (!rt.delegated && (!roles || roles.length === 0)) {
        problems.push(new MbError('MB_TOKEN_NO_ROLES', { ...base, resource, ...PERMISSIONS[resource] }));
      }
      if (rt.delegated) {
        const have = new Set((scp ?? []).map((s) => s.toLowerCase()));
        const missing = requested
          .filter((s) => !OIDC.has(s.toLowerCase()) && !s.endsWith('/.default'))
          .map((s) => s.slice(s.lastIndexOf('/') + 1))
          .filter((s) => !have.has(s.toLowerCase()));
        if (missing.length > 0) problems.push(new MbError('MB_TOKEN_MISSING_SCOPES', { ...base, missing: missing.join(', ') }));
      }
      const expected = rt.cloud.audiences[resource];
      if (audience && !expected.some((a) => a.toLowerCase() === audience.toLowerCase().replace(/\/$/, ''))) {
        problems.push(new MbError('MB_TOKEN_WRONG_AUDIENCE', { ...base, resource, audience, expected: expected[0]! }));
      }
    }
    const c = rt.credential;
    const w = DESCRIBE_WORDS[options.lang ?? 'en'];
    const credential =
      c.kind === 'secret'
        ? `${w.secret}${c.expires ? ` (${w.expires} ${c.expires.toISOString().slice(0, 10)})` : ''}`
        : c.kind === 'certificate'
          ? // The thumbprint the assertion header carries: SHA-256 for x5t#S256, SHA-1 for x5t. The
            // portal lists certificates by SHA-1, so PS256 names that one too, to compare with it.
            `${w.certificate} ${
              c.certificate.algorithm === 'PS256'
                ? `PS256, x5t#S256 ${c.certificate.thumbprintSha256.toUpperCase()} (SHA-1 ${c.certificate.thumbprintSha1.toUpperCase()}, `
                : `RS256, x5t ${c.certificate.thumbprintSha1.toUpperCase()} (`
            }${c.certificate.subject}, ${w.expires} ${c.certificate.notAfter.toISOString().slice(0, 10)})`
          : w.publicClient;
    return {
      connection: name,
      flow: rt.conn.flow,
      cloud: rt.cloud.name,
      tenantId: str(claims.tid) ?? rt.conn.tenantId,
      clientId: str(claims.appid) ?? str(claims.azp) ?? rt.conn.clientId,
      appName: str(claims.app_displayname),
      credential,
      account: token.account ?? str(claims.upn) ?? str(claims.preferred_username),
      resource,
      audience,
      roles: rt.delegated ? undefined : (roles ?? []),
      scopes: rt.delegated ? (scp ?? []) : undefined,
      requestedScopes: requested,
      expiresOn: token.expiresOn.toISOString(),
      endpoint: rt.lastEndpoint,
      authority: rt.endpoints.authority,
      // The route of the token endpoint itself: with NO_PROXY covering it, the request went direct.
      proxy: proxyShown(rt.network.routeFor(rt.lastEndpoint), w),
      caFile: rt.conn.caFile,
      fromCache: token.fromCache,
      source: token.source,
      warnings: (await this.warnings(name)).filter((n) => n.severity === 'warning').map((n) => n.error),
      problems,
    };
  }

  /**
   * Credential notices for one or all connections: warnings (expiring within 30 days, implausible
   * or unknown expiry) and errors (expired, unreadable). Also logged, at most once a day each.
   */
  async warnings(name?: string): Promise<CredentialNotice[]> {
    const out = await this.credentialNotices(name);
    for (const notice of out) this.logNotice(notice);
    return out;
  }

  /**
   * The same notices as `warnings`, as of `now`, without logging them: for callers that decide
   * themselves when to tell the admin (the expiry monitor tells once per threshold, not daily).
   */
  async credentialNotices(name?: string, now: number = this.clock()): Promise<CredentialNotice[]> {
    const names = name ? [name] : this.connections();
    const out: CredentialNotice[] = [];
    for (const n of names) {
      this.config(n);
      try {
        const rt = await this.runtime(n);
        const ctx = { connection: n, clientId: rt.conn.clientId, portal: rt.cloud.portal };
        try {
          assertUsable(rt.credential, ctx, now);
        } catch (err) {
          out.push({ connection: n, severity: 'error', error: err as MbError });
        }
        for (const w of credentialWarnings(rt.credential, ctx, now)) out.push({ connection: n, severity: 'warning', error: w });
      } catch (err) {
        out.push({ connection: n, severity: 'error', error: toIdentityError(err, this.bareContext(n)) });
      }
    }
    return out;
  }

  /** When a connection's credential expires: the configured secret expiry or the certificate's notAfter; undefined when unknown or public client. */
  async credentialExpiry(name: string): Promise<{ kind: 'secret' | 'certificate'; expires: Date } | undefined> {
    const c = (await this.runtime(name)).credential;
    if (c.kind === 'secret') return c.expires ? { kind: 'secret', expires: c.expires } : undefined;
    if (c.kind === 'certificate') return { kind: 'certificate', expires: c.certificate.notAfter };
    return undefined;
  }

  /** UPNs of the accounts signed in on a delegated connection. */
  async accounts(name: string): Promise<string[]> {
    const rt = await this.runtime(name);
    if (!rt.delegated) return [];
    return (await rt.app.getTokenCache().getAllAccounts()).map((a) => a.username);
  }

  /** Redirect URIs of the auth-code connections (the gateway serves their paths). */
  redirectUris(): Array<{ connection: string; redirectUri: string }> {
    return Object.entries(this.opts.config.connections)
      .filter(([, c]) => c.flow === 'auth-code')
      .map(([connection, c]) => ({ connection, redirectUri: c.redirectUri ?? this.defaultRedirectUri() }));
  }

  defaultRedirectUri(): string {
    const s = this.opts.config.server ?? {};
    const base = s.publicUrl ? s.publicUrl.replace(/\/+$/, '') : `http://localhost:${s.port ?? 8080}`;
    return `${base}/oauth/callback`;
  }

  // ── delegated sign-in ───────────────────────────────────────────────────────────────────────

  /**
   * Starts an auth code sign-in: a link with PKCE (S256) and a random state. The redirect may reach
   * any mailbridge process sharing the store; completeSignIn() redeems it there.
   */
  async beginSignIn(name: string, options: { loginHint?: string } = {}): Promise<SignInLink> {
    const rt = await this.runtime(name);
    if (rt.conn.flow !== 'auth-code') {
      throw new MbError('MB_IDENTITY_WRONG_FLOW', { connection: name, flow: rt.conn.flow, needed: 'auth-code' });
    }
    const now = this.clock();
    await this.signins.sweep(now);
    const redirectUri = rt.conn.redirectUri ?? this.defaultRedirectUri();
    const { verifier, challenge } = await this.crypto.generatePkceCodes();
    const state = randomBytes(24).toString('base64url');
    const scopes = this.scopesFor(rt, 'exchange');
    const extra = rt.conn.scopes.graph ? this.scopesFor(rt, 'graph') : undefined;
    const hint = options.loginHint ?? rt.conn.account;
    await this.signins.put(state, { status: 'pending', connection: name, verifier, redirectUri, scopes, createdAt: now });
    const url = await rt.app.getAuthCodeUrl({
      scopes,
      extraScopesToConsent: extra,
      redirectUri,
      codeChallenge: challenge,
      codeChallengeMethod: 'S256',
      state,
      responseMode: 'query',
      // With a known account, Entra gets it as login_hint (MSAL drops the hint under select_account);
      // without one, the account picker keeps an admin's own browser session from signing in silently.
      ...(hint ? { loginHint: hint } : { prompt: 'select_account' }),
    });
    return { connection: name, url, state, redirectUri, expiresAt: new Date(now + SIGNIN_TTL_MINUTES * 60_000) };
  }

  /** Redeems the redirect's `code` (or reports its `error`) for the sign-in that `state` names. */
  async completeSignIn(query: { state?: string; code?: string; error?: string; error_description?: string }): Promise<SignInResult> {
    const unknown = () => new MbError('MB_SIGNIN_STATE_UNKNOWN', { minutes: SIGNIN_TTL_MINUTES });
    if (!query.state) throw unknown();
    const rec = await this.signins.get(query.state);
    if (!rec || rec.status !== 'pending' || this.clock() - rec.createdAt > SIGNIN_TTL_MINUTES * 60_000) throw unknown();
    const state = query.state;
    const rt = await this.runtime(rec.connection);
    const ctx = this.context(rt, 'exchange', undefined, rec.redirectUri);
    try {
      if (query.error || !query.code) throw redirectError(query, ctx, rec.connection);
      assertUsable(rt.credential, ctx, this.clock());
      const correlationId = randomUUID();
      let result: AuthenticationResult | null;
      try {
        result = await rt.app.acquireTokenByCode({ code: query.code, scopes: rec.scopes, redirectUri: rec.redirectUri, codeVerifier: rec.verifier, correlationId });
      } catch (err) {
        throw toIdentityError(err, ctx, rt.network.peek(correlationId));
      } finally {
        this.noteEndpoint(rt, correlationId);
      }
      if (!result?.account) throw new MbError('MB_IDENTITY_MSAL', { ...ctx, code: 'no_account', detail: 'the token response named no account' });
      const account = result.account.username;
      this.remember(rt, 'exchange', account.toLowerCase(), result, 'requested');
      const warnings: MbError[] = [];
      if (rt.conn.account && rt.conn.account.toLowerCase() !== account.toLowerCase()) {
        warnings.push(new MbError('MB_SIGNIN_ACCOUNT_MISMATCH', { connection: rec.connection, expected: rt.conn.account, actual: account }));
      }
      await this.signins.put(state, {
        status: 'done',
        connection: rec.connection,
        account,
        createdAt: rec.createdAt,
        warnings: warnings.map((w) => ({ code: w.code, params: w.params })),
      });
      this.log.info({ connection: rec.connection, account }, 'delegated sign-in completed');
      const out = { connection: rec.connection, account, warnings };
      this.events.emit(`signin:${state}`, out);
      return out;
    } catch (err) {
      const e = err instanceof MbError ? err : toIdentityError(err, ctx);
      await this.signins.put(state, { status: 'failed', connection: rec.connection, createdAt: rec.createdAt, code: e.code, params: e.params, details: e.details });
      this.events.emit(`signin:${state}`, e);
      throw e;
    }
  }

  // ── console sign-in (OpenID Connect) ──────────────────────────────────────────────────────

  /**
   * Starts a person's sign-in to the console through a connection's app: OpenID Connect auth code
   * with PKCE (S256), a random state and nonce, kept sealed in the store for 15 minutes under the
   * state (any node sharing the store may receive the redirect). Only `openid profile` is asked
   * for: the console needs who signed in and the app roles, no API access.
   */
  async beginConsoleSignIn(name: string, redirectUri: string): Promise<{ url: string; state: string }> {
    const rt = await this.runtime(name);
    const now = this.clock();
    await this.consoleSignins.sweep(now);
    const { verifier, challenge } = await this.crypto.generatePkceCodes();
    const state = randomBytes(24).toString('base64url');
    const nonce = randomBytes(24).toString('base64url');
    await this.consoleSignins.put(state, { status: 'pending', connection: name, verifier, redirectUri, scopes: ['openid', 'profile'], createdAt: now, nonce });
    const url = await rt.app.getAuthCodeUrl({
      scopes: ['openid', 'profile'],
      redirectUri,
      codeChallenge: challenge,
      codeChallengeMethod: 'S256',
      state,
      nonce,
      responseMode: 'query',
      prompt: 'select_account',
    });
    return { url, state };
  }

  /**
   * Redeems the console redirect (once: the record is deleted first) and verifies the id token with
   * jose against the authority's signing keys (fetched through the connection's proxy and CA):
   * signature, issuer (the token's tenant on the connection's login host), audience (the app),
   * lifetime and the nonce of this sign-in.
   */
  async completeConsoleSignIn(query: { state?: string; code?: string; error?: string; error_description?: string }): Promise<ConsoleSignIn> {
    const unknown = () => new MbError('MB_SIGNIN_STATE_UNKNOWN', { minutes: SIGNIN_TTL_MINUTES });
    if (!query.state) throw unknown();
    const rec = await this.consoleSignins.get(query.state);
    await this.consoleSignins.delete(query.state);
    if (!rec || rec.status !== 'pending' || this.clock() - rec.createdAt > SIGNIN_TTL_MINUTES * 60_000) throw unknown();
    const rt = await this.runtime(rec.connection);
    const ctx = this.context(rt, 'exchange', undefined, rec.redirectUri);
    if (query.error || !query.code) throw redirectError(query, ctx, rec.connection);
    assertUsable(rt.credential, ctx, this.clock());
    const correlationId = randomUUID();
    const cache = rt.app.getTokenCache();
    const known = new Set((await cache.getAllAccounts()).map((a) => a.homeAccountId));
    let result: AuthenticationResult | null;
    try {
      // With the nonce, MSAL checks it too (and refuses an id token with a nonce it was not given).
      result = await rt.app.acquireTokenByCode({ code: query.code, scopes: rec.scopes, redirectUri: rec.redirectUri, codeVerifier: rec.verifier, nonce: rec.nonce, correlationId });
    } catch (err) {
      throw toIdentityError(err, ctx, rt.network.peek(correlationId));
    } finally {
      this.noteEndpoint(rt, correlationId);
    }
    // The connection's token cache is for its own account(s), not for the admins who sign in; an
    // account it held before (the admin is the connection's delegated account) stays.
    if (result?.account && !known.has(result.account.homeAccountId)) await cache.removeAccount(result.account);
    if (!result?.idToken) throw new MbError('MB_IDENTITY_MSAL', { ...ctx, code: 'no_id_token', detail: 'the token response carried no id token' });
    const claims = await this.verifyIdToken(rt, result.idToken, rec.nonce ?? '');
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const oid = str(claims.oid) ?? str(claims.sub) ?? '';
    const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : [];
    const account = str(claims.preferred_username) ?? oid;
    this.log.info({ connection: rec.connection, account, roles }, 'console sign-in: id token verified');
    return { connection: rec.connection, account, oid, tenantId: str(claims.tid) ?? '', roles };
  }

  private async verifyIdToken(rt: Runtime, idToken: string, nonce: string): Promise<JWTPayload & Record<string, unknown>> {
    const jwksUri = (JSON.parse(rt.endpoints.authorityMetadata) as { jwks_uri: string }).jwks_uri;
    let keys = this.jwks.get(jwksUri);
    if (!keys) {
      const dispatcher = rt.network.dispatcher;
      keys = createRemoteJWKSet(new URL(jwksUri), {
        [customFetch]: (url, init) => fetch(url, { ...init, dispatcher } as RequestInit),
      });
      this.jwks.set(jwksUri, keys);
    }
    const fail = (detail: string) => new MbError('MB_IDENTITY_MSAL', { ...this.context(rt, 'exchange'), code: 'id_token_invalid', detail });
    const tid = (() => {
      try {
        return decodeJwt(idToken).tid;
      } catch {
        return undefined;
      }
    })();
    if (typeof tid !== 'string') throw fail('the id token names no tenant (tid)');
    // A GUID tenant in the config must be the token's; a domain is resolved by Entra to its GUID.
    if (/^[0-9a-f-]{36}$/i.test(rt.conn.tenantId) && tid.toLowerCase() !== rt.conn.tenantId.toLowerCase()) throw fail(`the id token is from tenant ${tid}`);
    try {
      const { payload } = await jwtVerify(idToken, keys, {
        issuer: `${new URL(rt.endpoints.authority).origin}/${tid}/v2.0`,
        audience: rt.conn.clientId,
        algorithms: ['RS256'],
        clockTolerance: 300,
        currentDate: new Date(this.clock()),
      });
      if (payload.nonce !== nonce) throw fail('the nonce differs from the one this sign-in sent');
      return payload as JWTPayload & Record<string, unknown>;
    } catch (err) {
      if (err instanceof MbError) throw err;
      throw fail((err as Error).message);
    }
  }

  /**
   * Waits until the sign-in started by beginSignIn() completes here or in another process sharing
   * the store (polled every `pollMs`).
   */
  async waitForSignIn(link: SignInLink, options: { signal?: AbortSignal; timeoutMs?: number; pollMs?: number } = {}): Promise<SignInResult> {
    const timeoutMs = options.timeoutMs ?? SIGNIN_TTL_MINUTES * 60_000;
    const pollMs = options.pollMs ?? 1000;
    return new Promise<SignInResult>((resolve, reject) => {
      const event = `signin:${link.state}`;
      let timer: NodeJS.Timeout | undefined;
      let settled = false;
      const deadline = setTimeout(
        () => finish(new MbError('MB_SIGNIN_TIMEOUT', { connection: link.connection, minutes: Math.round(timeoutMs / 60_000), redirectUri: link.redirectUri })),
        timeoutMs,
      );
      const finish = (v: SignInResult | MbError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearTimeout(deadline);
        this.events.off(event, finish);
        options.signal?.removeEventListener('abort', onAbort);
        void this.signins.delete(link.state);
        if (v instanceof MbError) reject(v);
        else resolve(v);
      };
      const onAbort = () => finish(new MbError('MB_SIGNIN_CANCELLED', { connection: link.connection }));
      this.events.on(event, finish);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.signal?.aborted) return onAbort();
      const poll = async () => {
        const rec = await this.signins.get(link.state).catch(() => undefined);
        if (settled) return;
        if (rec?.status === 'done') {
          return finish({ connection: rec.connection, account: rec.account, warnings: rec.warnings.map((w) => new MbError(w.code, w.params)) });
        }
        if (rec?.status === 'failed') return finish(new MbError(rec.code, rec.params, { details: rec.details }));
        timer = setTimeout(() => void poll(), pollMs);
      };
      timer = setTimeout(() => void poll(), pollMs);
    });
  }

  /** Device code sign-in: shows the code through onCode(), then polls Entra ID until the user signed in. */
  async signInWithDeviceCode(name: string, options: DeviceCodeOptions): Promise<SignInResult> {
    const rt = await this.runtime(name);
    if (!rt.delegated) {
      throw new MbError('MB_IDENTITY_WRONG_FLOW', { connection: name, flow: rt.conn.flow, needed: 'device-code | auth-code' });
    }
    const ctx = this.context(rt, 'exchange');
    const correlationId = randomUUID();
    const request: DeviceCodeRequest = {
      scopes: this.scopesFor(rt, 'exchange'),
      correlationId,
      deviceCodeCallback: (r) => {
        if (!r.userCode || !r.deviceCode) {
          // Entra answered the device code request with an error; MSAL would poll with nothing.
          const obs = rt.network.peek(correlationId);
          throw obs?.failure ?? (obs?.errorBody ? fromEntraBody(obs.errorBody, ctx, { status: obs.status }) : new MbError('MB_IDENTITY_MSAL', { ...ctx, code: 'device_code', detail: 'no user code in the answer' }));
        }
        options.onCode({ userCode: r.userCode, verificationUri: r.verificationUri, message: r.message, expiresIn: r.expiresIn, interval: r.interval });
      },
    };
    const onAbort = () => {
      request.cancel = true;
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    this.pendingListeners.set(correlationId, (body) => {
      const e = fromEntraBody(body, ctx);
      if (e.code === 'MB_ENTRA_AUTHORIZATION_PENDING') options.onPending?.(e);
    });
    try {
      const result = await rt.publicApp().acquireTokenByDeviceCode(request);
      if (!result?.account) throw new MbError('MB_IDENTITY_MSAL', { ...ctx, code: 'no_account', detail: 'the token response named no account' });
      const account = result.account.username;
      this.remember(rt, 'exchange', account.toLowerCase(), result, 'requested');
      const warnings: MbError[] = [];
      if (rt.conn.account && rt.conn.account.toLowerCase() !== account.toLowerCase()) {
        warnings.push(new MbError('MB_SIGNIN_ACCOUNT_MISMATCH', { connection: name, expected: rt.conn.account, actual: account }));
      }
      this.log.info({ connection: name, account }, 'delegated sign-in (device code) completed');
      return { connection: name, account, warnings };
    } catch (err) {
      // A cancel ends MSAL's polling between two "authorization pending" answers; the last answer
      // the network layer kept is that pending one, but what happened is the cancel.
      if (options.signal?.aborted) throw new MbError('MB_SIGNIN_CANCELLED', { connection: name }, { cause: err });
      throw toIdentityError(err, ctx, rt.network.peek(correlationId));
    } finally {
      this.pendingListeners.delete(correlationId);
      options.signal?.removeEventListener('abort', onAbort);
      this.noteEndpoint(rt, correlationId);
    }
  }

  /** Forgets cached access tokens (not sign-ins); the next getToken() asks Entra ID. */
  clearTokens(): void {
    this.tokens.clear();
  }

  async close(): Promise<void> {
    const all = await Promise.allSettled(this.runtimes.values());
    this.runtimes.clear();
    for (const r of all) if (r.status === 'fulfilled') await r.value.network.close();
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────────

  private config(name: string): ConnectionConfig {
    const conn = this.opts.config.connections[name];
    if (!conn) {
      throw new MbError('MB_IDENTITY_UNKNOWN_CONNECTION', { connection: name, known: this.connections().join(', ') || '(none)' });
    }
    return conn;
  }

  private scopesFor(rt: Runtime, resource: Resource): string[] {
    return rt.conn.scopes[resource] ?? defaultScopes(rt.cloud, resource, rt.delegated);
  }

  private runtime(name: string): Promise<Runtime> {
    let p = this.runtimes.get(name);
    if (!p) {
      p = this.build(name);
      this.runtimes.set(name, p);
      // A failed build (unreadable certificate, say) is retried on the next call, after the admin fixed it.
      p.catch(() => this.runtimes.delete(name));
    }
    return p;
  }

  private async build(name: string): Promise<Runtime> {
    const conn = this.config(name);
    const cloud = cloudFor(conn.cloud);
    const endpoints = resolveEndpoints(name, conn, cloud);
    const credential = await loadCredential(name, conn, this.opts.secretBox);
    let ca: string | undefined;
    if (conn.caFile) {
      try {
        ca = await readFile(conn.caFile, 'utf8');
      } catch (err) {
        throw new MbError('MB_IDENTITY_CA_UNREADABLE', { connection: name, path: conn.caFile, detail: (err as Error).message }, { cause: err });
      }
      if (!ca.includes('-----BEGIN CERTIFICATE-----')) {
        throw new MbError('MB_IDENTITY_CA_UNREADABLE', { connection: name, path: conn.caFile, detail: 'no -----BEGIN CERTIFICATE----- block' });
      }
    }
    const server = this.opts.config.server ?? {};
    const network = new UndiciNetwork({
      ...this.opts.network,
      proxy: conn.proxy ?? server.proxy,
      proxySource: conn.proxy ? 'connection' : 'server',
      env: this.opts.env,
      ca,
      onErrorBody: (correlationId, body) => this.pendingListeners.get(correlationId)?.(body),
    });
    const delegated = conn.flow !== 'client-credentials';
    const auth: Configuration['auth'] = {
      clientId: conn.clientId,
      authority: endpoints.authority,
      knownAuthorities: [endpoints.host],
      authorityMetadata: endpoints.authorityMetadata,
    };
    const debug = this.log.isLevelEnabled('debug');
    const system: Configuration['system'] = {
      networkClient: network,
      loggerOptions: {
        piiLoggingEnabled: false,
        logLevel: debug ? LogLevel.Info : LogLevel.Warning,
        loggerCallback: (_level, message) => this.log.debug({ connection: name, msal: true }, message),
      },
    };
    const cache = delegated ? { cachePlugin: sealedCachePlugin(this.opts.kv, this.opts.secretBox, `${CACHE_PREFIX}${name}`) } : undefined;
    let app: ConfidentialClientApplication | PublicClientApplication;
    if (credential.kind === 'secret') {
      app = new ConfidentialClientApplication({ auth: { ...auth, clientSecret: credential.clientSecret }, system, cache });
    } else if (credential.kind === 'certificate') {
      const c = credential.certificate;
      const clientCertificate =
        c.algorithm === 'PS256'
          ? { thumbprintSha256: c.thumbprintSha256, privateKey: c.privateKeyPem }
          : { thumbprint: c.thumbprintSha1, privateKey: c.privateKeyPem };
      app = new ConfidentialClientApplication({ auth: { ...auth, clientCertificate }, system, cache });
    } else {
      app = new PublicClientApplication({ auth, system, cache });
    }
    let pca: PublicClientApplication | undefined = app instanceof PublicClientApplication ? app : undefined;
    const rt: Runtime = {
      name,
      conn,
      cloud,
      endpoints,
      network,
      credential,
      delegated,
      app,
      publicApp: () => (pca ??= new PublicClientApplication({ auth, system, cache })),
      lastEndpoint: endpoints.tokenEndpoint,
    };
    for (const w of credentialWarnings(credential, { connection: name, clientId: conn.clientId, portal: cloud.portal }, this.clock())) {
      this.logNotice({ connection: name, severity: 'warning', error: w });
    }
    return rt;
  }

  private context(rt: Runtime, resource: Resource, account?: string, redirectUri?: string): ErrorContext {
    return {
      connection: rt.name,
      clientId: rt.conn.clientId,
      tenantId: rt.conn.tenantId,
      cloud: rt.cloud.name,
      portal: rt.cloud.portal,
      loginHost: rt.endpoints.host,
      scope: this.scopesFor(rt, resource).join(' '),
      account,
      appOnly: !rt.delegated,
      redirectUri: redirectUri ?? rt.conn.redirectUri ?? this.defaultRedirectUri(),
      thumbprint: rt.credential.kind === 'certificate' ? rt.credential.certificate.thumbprintSha1.toUpperCase() : undefined,
    };
  }

  /** Context for failures before a runtime exists (configuration errors). */
  private bareContext(name: string): ErrorContext {
    const conn = this.config(name);
    const cloud = cloudFor(conn.cloud);
    return { connection: name, clientId: conn.clientId, tenantId: conn.tenantId, cloud: cloud.name, portal: cloud.portal, loginHost: cloud.loginHost, scope: '' };
  }

  private async acquire(name: string, resource: Resource, account: string | undefined, key: string, renewing: boolean): Promise<AccessToken> {
    const rt = await this.runtime(name);
    const ctx = this.context(rt, resource, account);
    assertUsable(rt.credential, ctx, this.clock());
    this.periodicWarnings(rt);
    const scopes = this.scopesFor(rt, resource);
    const correlationId = randomUUID();
    try {
      let result: AuthenticationResult | null;
      if (!rt.delegated) {
        // mailbridge's own cache decides when to renew (expiry minus graceSeconds, on its clock), so
        // MSAL's cache (renews 5 minutes early, on the wall clock) is skipped.
        result = await (rt.app as ConfidentialClientApplication).acquireTokenByClientCredential({ scopes, correlationId, skipCache: true });
      } else {
        const acct = await this.findAccount(rt, account, ctx);
        ctx.account = acct.username;
        result = await rt.app.acquireTokenSilent({ account: acct, scopes, correlationId, forceRefresh: renewing });
        if (result && this.expiresAt(rt, result) <= this.clock()) {
          // MSAL's cached token is good by its rules but inside our grace time: refresh now.
          result = await rt.app.acquireTokenSilent({ account: acct, scopes, correlationId, forceRefresh: true });
        }
      }
      if (!result?.accessToken) {
        throw new MbError('MB_IDENTITY_MSAL', { ...ctx, code: 'empty_result', detail: 'MSAL returned no access token' });
      }
      // MSAL answers a silent request from the sealed cache when its access token is still good
      // (fromCache), else it redeemed the stored refresh token.
      const source: TokenSource = !rt.delegated ? 'requested' : result.fromCache ? 'persistent' : 'refresh';
      const token = this.remember(rt, resource, account, result, source, key);
      this.log.debug({ connection: name, resource, expiresOn: token.expiresOn.toISOString() }, 'access token acquired');
      return token;
    } catch (err) {
      const obs = rt.network.peek(correlationId);
      // A ServerError without any request is MSAL replaying a throttle it remembered (Retry-After).
      const e =
        !obs && err instanceof ServerError
          ? new MbError('MB_ENTRA_THROTTLED', { seconds: '?' }, { cause: err, details: { error: err.errorCode, description: err.errorMessage } })
          : toIdentityError(err, ctx, obs);
      this.log.warn({ connection: name, resource, code: e.code, details: e.details }, e.message);
      throw e;
    } finally {
      this.noteEndpoint(rt, correlationId);
    }
  }

  private async findAccount(rt: Runtime, account: string | undefined, ctx: ErrorContext): Promise<AccountInfo> {
    const all = await rt.app.getTokenCache().getAllAccounts();
    if (account) {
      const hit = all.find((a) => a.username.toLowerCase() === account);
      if (!hit) throw new MbError('MB_SIGNIN_REQUIRED', { connection: rt.name, account });
      return hit;
    }
    if (all.length === 1) return all[0]!;
    if (all.length === 0) throw new MbError('MB_SIGNIN_REQUIRED', { connection: rt.name, account: ctx.account ?? '—' });
    throw new MbError('MB_SIGNIN_ACCOUNT_AMBIGUOUS', { connection: rt.name, accounts: all.map((a) => a.username).join(', ') });
  }

  private expiresAt(rt: Runtime, result: AuthenticationResult): number {
    const exp = result.expiresOn?.getTime() ?? this.clock();
    return exp - rt.conn.graceSeconds * 1000;
  }

  private remember(rt: Runtime, resource: Resource, account: string | undefined, result: AuthenticationResult, source: TokenSource, key?: string): AccessToken {
    const token: AccessToken = {
      accessToken: result.accessToken,
      tokenType: result.tokenType || 'Bearer',
      expiresOn: result.expiresOn ?? new Date(this.clock()),
      scopes: result.scopes,
      resource,
      connection: rt.name,
      account: rt.delegated ? result.account?.username : undefined,
      tenantId: result.tenantId || rt.conn.tenantId,
      fromCache: source === 'persistent',
      source,
    };
    this.tokens.set(key ?? `${rt.name}\u0000${resource}\u0000${account ?? ''}`, { token, expiresAt: this.expiresAt(rt, result) });
    return token;
  }

  private noteEndpoint(rt: Runtime, correlationId: string): void {
    const obs = rt.network.take(correlationId);
    if (obs?.url) rt.lastEndpoint = obs.url;
  }

  private periodicWarnings(rt: Runtime): void {
    for (const w of credentialWarnings(rt.credential, { connection: rt.name, clientId: rt.conn.clientId, portal: rt.cloud.portal }, this.clock())) {
      this.logNotice({ connection: rt.name, severity: 'warning', error: w });
    }
  }

  private logNotice(n: CredentialNotice): void {
    if (this.opts.expiryLog === false && (n.error.code === 'MB_CLIENT_SECRET_EXPIRING' || n.error.code === 'MB_CERT_EXPIRING')) return;
    const key = `${n.connection}\u0000${n.error.code}`;
    const now = this.clock();
    const last = this.warned.get(key);
    if (last !== undefined && now - last < WARN_EVERY_MS) return;
    this.warned.set(key, now);
    const ex = n.error.explain('en');
    const line = { connection: n.connection, code: n.error.code, fix: ex.fix };
    if (n.severity === 'error') this.log.error(line, `${ex.title}: ${ex.cause}`);
    else this.log.warn(line, `${ex.title}: ${ex.cause}`);
  }
}

function proxyShown(route: ProxyRoute, w: { direct: string; noProxy: string }): string {
  if (route.proxy) return route.description;
  return route.bypass === 'no-proxy' ? w.noProxy : w.direct;
}

/**
 * What a sign-in redirect reports instead of a code (Entra's `error` and `error_description`, or
 * nothing at all), as the MB error an admin reads: Entra's own AADSTS code where it gave one, else
 * MB_SIGNIN_FAILED with Entra's words.
 */
function redirectError(query: { error?: string; error_description?: string }, ctx: ErrorContext, connection: string): MbError {
  const body: EntraErrorBody = { error: query.error ?? 'invalid_request', error_description: query.error_description ?? 'the redirect carried no code' };
  const e = fromEntraBody(body, ctx);
  return e.code === 'MB_ENTRA_UNKNOWN' && !/AADSTS\d+/.test(body.error_description ?? '')
    ? new MbError('MB_SIGNIN_FAILED', { connection, error: body.error!, description: body.error_description! })
    : e;
}
