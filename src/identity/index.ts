/**
 * identity: credentials → tokens.
 *
 * What it does: for each connection of mailbridge.yaml, obtains access tokens for Exchange Online
 * (IMAP, SMTP AUTH, EWS) and Microsoft Graph from Entra ID, with @azure/msal-node doing the
 * protocol:
 *  - app-only (`flow: client-credentials`) with a client secret or a certificate (PEM or PFX;
 *    PS256 + x5t#S256 by default, RS256 + x5t selectable);
 *  - delegated (`flow: auth-code`): mailbridge prints a sign-in link (PKCE S256 + state), the
 *    gateway serves the redirect and redeems the code; `flow: device-code` is the headless fallback.
 *    MSAL's cache (refresh tokens) lives sealed in the store and rotates; later requests are silent.
 *
 * Strategies:
 *  - one token cache in front of MSAL: a token is reused until expiry minus `graceSeconds` on an
 *    injectable clock; at most one request per connection + resource + account is in flight
 *    (single flight), whatever the number of callers;
 *  - endpoints come from the token endpoint template (`#TenantID#`), so national clouds and the
 *    sandbox need no discovery round trips (see endpoints.ts);
 *  - one HTTP client (network.ts) with proxy, extra CA, timeouts and bounded retries honouring
 *    Retry-After;
 *  - every failure becomes an MbError from the catalogue (src/errors/entries/identity.ts); AADSTS
 *    numbers map one to one (entra-errors.ts); expired secrets and certificates are refused before
 *    any request, and both warn 30 days ahead (log + warnings()).
 *
 * Limits: one tenant per connection; RSA certificates only (what Entra accepts for assertions);
 * no managed identity or federated credentials yet; the token cache is per process (a restart asks
 * Entra ID once per connection, delegated sign-ins survive restarts).
 */
export { Identity } from './identity.ts';
export type {
  ConsoleSignIn,
  AccessToken,
  CredentialNotice,
  DeviceCodeInfo,
  DeviceCodeOptions,
  GetTokenOptions,
  IdentityOptions,
  SignInLink,
  SignInResult,
  TokenDescription,
  TokenSource,
} from './identity.ts';
export { clouds, cloudFor, defaultScopes, defaultTokenEndpoint, RESOURCES, type Cloud, type CloudName, type Resource } from './clouds.ts';
export { resolveEndpoints, type Endpoints } from './endpoints.ts';
export { AADSTS_CODES, aadstsOf } from './entra-errors.ts';

import { Identity, type IdentityOptions } from './identity.ts';

export function createIdentity(options: IdentityOptions): Identity {
  return new Identity(options);
}
