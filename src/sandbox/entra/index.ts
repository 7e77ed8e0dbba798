/**
 * Sandbox Entra ID: an HTTPS emulator of the Microsoft identity platform (v2.0 endpoints) on
 * loopback, for the tenants, apps, credentials and users of a SandboxDirectory. @azure/msal-node
 * talks to it as if it were login.microsoftonline.com; it fails the way Entra ID fails
 * (microsoft-facts.md §1, §2, §6, §7): AADSTS codes, `error` values, 401 for client
 * authentication, trace and correlation IDs, response headers.
 *
 * Strategies: one listener per national cloud (each its own port; a tenant is found only on the
 * listener(s) of its login host, so a wrong-cloud request gets AADSTS90002); an RS256 signing key
 * made at start or given (the sandbox keeps one in its folder); codes and device codes in memory,
 * refresh-token grants in memory or a file (`grantsFile`, so sign-ins survive a restart), expired
 * against the injectable clock `now`; the directory is read on every request, so run-time
 * changes (ops.ts) apply at once. Server code: server.ts; token contents: tokens.ts.
 *
 * Limits: single-tenant apps only (/common and /organizations refuse with AADSTS50194); no MFA,
 * Conditional Access, SSO sessions (prompt=none → login_required) or per-user consent (consent is
 * tenant-wide and checked at the token endpoint: AADSTS65001); no PoP/SSH tokens, no OBO.
 *
 * ## What an MSAL client must configure to use the sandbox
 *
 * ```ts
 * const authority = `${sandbox.urls[cloud]}/${tenantId}`;        // e.g. https://127.0.0.1:41234/<tenant GUID or domain>
 * new ConfidentialClientApplication({                            // or PublicClientApplication
 *   auth: {
 *     clientId, authority,
 *     clientSecret,                                              // or clientCertificate: { thumbprintSha256, privateKey, x5c }
 *     // Skip instance discovery: msal-node always asks https://login.microsoftonline.com/common/discovery/instance
 *     // for hosts it does not know. With the host listed here it trusts the authority as is, then reads
 *     // {authority}/v2.0/.well-known/openid-configuration from the sandbox (whose issuer has the sandbox
 *     // origin, so MSAL's issuer check passes). Host only, with the port: "127.0.0.1:41234".
 *     knownAuthorities: [new URL(sandbox.urls[cloud]).host],
 *     // Alternative to knownAuthorities: cloudDiscoveryMetadata = JSON text of
 *     //   GET {url}/common/discovery/instance?api-version=1.1&authorization_endpoint={authority}/oauth2/v2.0/authorize
 *   },
 *   system: {
 *     // TLS: the sandbox certificate comes from the sandbox CA (ca.certPem). msal-node's default client is
 *     // global fetch with no CA option, so supply an INetworkModule whose fetch trusts it, e.g. undici
 *     // fetch(url, { dispatcher: new Agent({ connect: { ca: ca.certPem } }), method, headers, body }),
 *     // returning { status, headers (lower-case names), body: await res.json() }.
 *     // (NODE_EXTRA_CA_CERTS=<ca file> at process start also works, for the whole process.)
 *     networkClient,
 *   },
 * });
 * ```
 * Scopes as for the tenant's cloud: app-only `https://outlook.office365.com/.default` (global, gcc),
 * `https://outlook.office365.us/.default` (gcc-high), `https://outlook-dod.office365.us/.default` (dod),
 * `https://partner.outlook.cn/.default` (china); delegated Exchange `https://outlook.office.com/IMAP.AccessAsUser.All`
 * (global) etc. Interactive sign-in: open getAuthCodeUrl() in a browser (sandbox sign-in page,
 * user + password from sandbox.yaml) or call `sandbox.signIn(url, upn)` in tests; device code: the
 * `verification_uri` is the sandbox's own /devicelogin page, or `sandbox.approveDeviceCode(code, upn)`.
 *
 * Token facts for resource servers (Exchange front, Graph): access tokens are v1 JWTs, RS256,
 * header kid = x5t; iss `issuer(tid)`; aud is the resource identifier as the client named it
 * (https://outlook.office365.com for .default, https://outlook.office.com for delegated global
 * scopes); app-only: oid = service principal object ID, `roles` only when granted; delegated: scp.
 */
import type { JsonWebKey } from 'node:crypto';
import { CLOUDS, type CloudName } from './clouds.ts';
import type { KeyAndCert, SandboxCa } from '../ca.ts';
import type { SandboxDirectory } from '../directory.ts';
import { AadstsError } from './aadsts.ts';
import { createSigningKey } from './keys.ts';
import { SandboxOpError } from './op-errors.ts';
import { pageLang } from './pages.ts';
import { buildCloudServer, type EndpointName, type EntraShared } from './server.ts';
import { EntraState } from './state.ts';
import { v1Issuer } from './tokens.ts';
import { checkUserSignIn } from './users.ts';
import { listenOn } from '../../errors/listen.ts';

export { AadstsError } from './aadsts.ts';
export { SandboxOpError } from './op-errors.ts';

export interface EntraSandbox {
  /** Base URL (https://127.0.0.1:PORT) per national cloud; each cloud listens on its own port, so a tenant of one cloud asked on another cloud's URL gets AADSTS90002, as in real life. */
  urls: Record<CloudName, string>;
  /** JWKS (public keys) that access tokens are signed with; the Exchange Online front verifies tokens with it. */
  jwks(): { keys: JsonWebKey[] };
  /** Issuer string for access tokens of a tenant (v1 style https://sts.windows.net/{tid}/ as Exchange/Graph tokens carry). */
  issuer(tenantId: string): string;
  /** Counters for tests: number of requests per endpoint (none yet: no entry), and the list of received token requests (form fields, secrets masked) plus decoded client_assertion header+claims. */
  stats: { calls: Partial<Record<EndpointName, number>>; tokenRequests: Array<Record<string, unknown>> };
  /** Complete a pending device-code sign-in as this user (what the user does in the browser). */
  approveDeviceCode(userCode: string, upn: string): void;
  /** User codes of the device-code sign-ins of a tenant still waiting for their user (for `sandbox-admin approve-device`). */
  pendingDeviceCodes(tenantId: string): string[];
  /** Non-interactive sign-in for tests: follows an authorize URL as the given user and returns the redirect URL (with code & state, or error). */
  signIn(authorizeUrl: string, upn: string, password?: string): Promise<string>;
  close(): Promise<void>;
}

export async function startEntraSandbox(options: {
  directory: SandboxDirectory;
  ca: SandboxCa;
  host?: string;
  ports?: Partial<Record<CloudName, number>>;
  now?: () => number;
  /** The token signing key to use (the sandbox keeps one in its folder); default: a new one. */
  signingKey?: KeyAndCert;
  /** Where refresh-token grants are kept across restarts; default: memory only. */
  grantsFile?: string;
}): Promise<EntraSandbox> {
  const host = options.host ?? '127.0.0.1';
  const now = options.now ?? Date.now;
  const names = [...new Set([host, 'localhost', '127.0.0.1', '::1'])];
  const tls = options.ca.issueServer(names);
  const shared: EntraShared = {
    directory: options.directory,
    key: await createSigningKey(options.signingKey),
    state: new EntraState(options.grantsFile),
    now,
    stats: { calls: {}, tokenRequests: [] },
    urls: {} as Record<CloudName, string>,
  };
  const servers = new Map<CloudName, ReturnType<typeof buildCloudServer>>();
  const urlHost = host.includes(':') ? `[${host}]` : host;
  try {
    for (const cloud of CLOUDS) {
      const server = buildCloudServer(shared, cloud, tls);
      servers.set(cloud, server);
      const want = options.ports?.[cloud] ?? 0;
      await listenOn(`sandbox Entra ID (${cloud})`, host, want, () => server.listen({ host, port: want }));
      const addr = server.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      shared.urls[cloud] = `https://${urlHost}:${port}`;
    }
  } catch (err) {
    await Promise.allSettled([...servers.values()].map((s) => s.close()));
    throw err;
  }

  const serverFor = (url: URL): ReturnType<typeof buildCloudServer> => {
    for (const cloud of CLOUDS) {
      if (new URL(shared.urls[cloud]).origin === url.origin) return servers.get(cloud) as ReturnType<typeof buildCloudServer>;
    }
    throw new Error(`signIn: ${url.origin} is not a sandbox Entra ID URL (${Object.values(shared.urls).join(', ')})`);
  };

  /** The error a sign-in page shows, as an Error ("AADSTSn: text"). */
  const pageError = (page: string): Error => {
    const m = /<p class="err" id="error"(?: data-aadsts="(\d+)")?>([^<]*)<\/p>/.exec(page);
    const text = (m?.[2] ?? 'the sign-in page showed no result').replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
    return new Error(`signIn: ${text}`);
  };
  const pageKind = (page: string) => /<meta name="sandbox-page" content="([^"]+)">/.exec(page)?.[1];

  return {
    urls: shared.urls,
    jwks: () => ({ keys: [{ ...shared.key.jwk }] }),
    issuer(tenantId) {
      const tenant = options.directory.tenant(tenantId);
      return tenant ? v1Issuer(tenant) : `https://sts.windows.net/${tenantId}/`;
    },
    stats: shared.stats,

    approveDeviceCode(userCode, upn) {
      const entry = shared.state.deviceByUserCode(userCode);
      if (!entry) throw new SandboxOpError('MB_SANDBOX_DEVICE_CODE', { userCode, status: 'unknown' });
      if (now() > entry.expiresAt) throw new SandboxOpError('MB_SANDBOX_DEVICE_CODE', { userCode, status: 'expired' });
      if (entry.status !== 'pending') throw new SandboxOpError('MB_SANDBOX_DEVICE_CODE', { userCode, status: entry.status });
      const tenant = options.directory.tenant(entry.tenantId);
      const app = tenant && options.directory.app(tenant, entry.appId);
      if (!tenant || !app) throw new AadstsError(700016, { appId: entry.appId, tenant: entry.tenantId });
      const user = checkUserSignIn(options.directory, tenant, app, upn, undefined);
      entry.status = 'approved';
      entry.userOid = user.objectId;
      entry.authTime = now();
    },

    pendingDeviceCodes(tenantId) {
      const t = now();
      return [...shared.state.deviceCodes.values()].filter((e) => e.tenantId === tenantId && e.status === 'pending' && t <= e.expiresAt).map((e) => e.userCode);
    },

    async signIn(authorizeUrl, upn, password) {
      const url = new URL(authorizeUrl);
      const server = serverFor(url);
      const lang = pageLang(url.searchParams.get('ui_locales') ?? undefined, undefined);
      const first = await server.inject({ method: 'GET', url: url.pathname + url.search });
      if (first.statusCode === 302) return String(first.headers.location);
      if (pageKind(first.body) !== 'signin') throw pageError(first.body);
      const flow = /name="flow" value="([^"]+)"/.exec(first.body)?.[1] ?? '';
      const pw =
        password ??
        options.directory.data.tenants.flatMap((t) => t.users).find((u) => u.upn.toLowerCase() === upn.toLowerCase())?.password ??
        '';
      const second = await server.inject({
        method: 'POST',
        url: url.pathname,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ flow, lang, login: upn, passwd: pw, action: 'signin' }).toString(),
      });
      if (second.statusCode === 302) return String(second.headers.location);
      if (pageKind(second.body) === 'form_post') throw new Error('signIn: response_mode=form_post posts a form to the redirect URI; use query or fragment');
      throw pageError(second.body);
    },

    async close() {
      await Promise.all([...servers.values()].map((s) => s.close()));
    },
  };
}
