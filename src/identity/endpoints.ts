/**
 * Token endpoint → authority. Admins know the token endpoint from vendor guides in the
 * `https://login.microsoftonline.com/#TenantID#/oauth2/v2.0/token` form (enaio's
 * OfficeTokenEndpoint); mailbridge takes that template as the one override for where Entra ID is,
 * national clouds and the sandbox included, and derives the MSAL authority and the authorize and
 * device code endpoints from it.
 *
 * MSAL normally discovers endpoints over the network (instance discovery at
 * login.microsoftonline.com, then the tenant's OpenID configuration). mailbridge hands MSAL the
 * endpoints instead (`authorityMetadata` + `knownAuthorities`): the token endpoint used is exactly
 * the configured one, nothing leaves for the global cloud when a connection lives in another (or in
 * the sandbox), and a gateway behind a strict proxy needs only the token endpoint's host.
 */
import { MbError } from '../errors/index.ts';
import type { Cloud } from './clouds.ts';
import { defaultTokenEndpoint } from './clouds.ts';

export interface Endpoints {
  /** The template as configured (or the cloud's default), still with #TenantID#. */
  template: string;
  tokenEndpoint: string;
  authorizeEndpoint: string;
  deviceCodeEndpoint: string;
  /** MSAL authority: scheme, host and path up to and including the tenant, with a trailing slash. */
  authority: string;
  /** host[:port] of the authority (MSAL's knownAuthorities entry). */
  host: string;
  /** The tenant path segment as sent (GUID or domain). */
  tenant: string;
  /** JSON for MSAL's `authorityMetadata` option (OpenID configuration without a network call). */
  authorityMetadata: string;
  /** True when the connection overrides the cloud's default endpoint. */
  overridden: boolean;
}

const TOKEN_PATH = /\/oauth2\/v2\.0\/token\/?$/i;
const MULTI_TENANT = new Set(['common', 'organizations', 'consumers']);

export function resolveEndpoints(
  connection: string,
  conn: { tenantId: string; tokenEndpoint?: string; flow: string },
  cloud: Cloud,
): Endpoints {
  const template = conn.tokenEndpoint ?? defaultTokenEndpoint(cloud);
  const filled = template.replace(/#TenantID#/gi, encodeURIComponent(conn.tenantId));
  const invalid = (detail: string) =>
    new MbError('MB_IDENTITY_TOKEN_ENDPOINT_INVALID', { connection, endpoint: template, detail });
  // "login.microsoftonline.com:443/…" would even parse, with "login.microsoftonline.com:" as its scheme.
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(template)) throw invalid('it has no scheme; write it with https://');
  let url: URL;
  try {
    url = new URL(filled);
  } catch {
    throw invalid('not a URL');
  }
  if (url.protocol !== 'https:') throw invalid('Entra ID and MSAL accept only https:// token endpoints');
  if (url.search || url.hash) throw invalid('the token endpoint takes no query string or fragment');
  if (!TOKEN_PATH.test(url.pathname)) {
    throw invalid(
      /\/oauth2\/token\/?$/i.test(url.pathname)
        ? 'this is the v1.0 endpoint; mailbridge needs …/oauth2/v2.0/token'
        : 'the path must end in /oauth2/v2.0/token',
    );
  }
  const base = url.pathname.replace(TOKEN_PATH, '');
  const segments = base.split('/').filter(Boolean);
  const tenant = segments.at(-1);
  if (!tenant) throw invalid('the path has no tenant before /oauth2/v2.0/token (use #TenantID#)');
  if (conn.flow === 'client-credentials' && MULTI_TENANT.has(tenant.toLowerCase())) {
    // Entra answers AADSTS9001023 for client credentials on /common or /consumers; say it before asking.
    throw new MbError('MB_IDENTITY_TENANT_REQUIRED', { connection, tenant });
  }
  const authority = `${url.origin}${base}/`;
  const tokenEndpoint = `${url.origin}${base}/oauth2/v2.0/token`;
  const authorizeEndpoint = `${url.origin}${base}/oauth2/v2.0/authorize`;
  const deviceCodeEndpoint = `${url.origin}${base}/oauth2/v2.0/devicecode`;
  const authorityMetadata = JSON.stringify({
    token_endpoint: tokenEndpoint,
    authorization_endpoint: authorizeEndpoint,
    end_session_endpoint: `${url.origin}${base}/oauth2/v2.0/logout`,
    issuer: `${url.origin}${base}/v2.0`,
    jwks_uri: `${url.origin}${base}/discovery/v2.0/keys`,
  });
  return {
    template,
    tokenEndpoint,
    authorizeEndpoint,
    deviceCodeEndpoint,
    authority,
    host: url.host,
    tenant: decodeURIComponent(tenant),
    authorityMetadata,
    overridden: conn.tokenEndpoint !== undefined,
  };
}
