/**
 * The AADSTS errors the sandbox emits, with the `error` value, HTTP status and message text Entra
 * ID uses (microsoft-facts.md §1.7/§1.8 and the Entra error-code reference). The body has the real
 * shape: error, error_description ("AADSTSn: text Trace ID: … Correlation ID: … Timestamp: …", one
 * line as in current captures), error_codes, timestamp, trace_id, correlation_id, error_uri and,
 * where Entra sends one, suberror.
 *
 * Texts marked "approx." are not from a capture or the docs word for word; their codes are.
 */
import { format } from '../../i18n/index.ts';

export interface AadstsDef {
  error: string;
  status: number;
  text: string;
  suberror?: string;
}

const CERT_DOC = 'Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .';
const KEYS_HINT =
  "Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{appId}'.";

/**
 * HTTP status by `error`: client-authentication failures (invalid_client) are 401, a failure of
 * Entra itself is 500, every other error 400 (microsoft-facts.md §1.7).
 */
const STATUS: Record<string, number> = { invalid_client: 401, server_error: 500 };

/** Code → `error`, text and, where Entra sends one, suberror; AADSTS adds the status. */
const TABLE: Record<number, [error: string, text: string, suberror?: string]> = {
  // Requests and tenants
  900144: ['invalid_request', "The request body must contain the following parameter: '{name}'."],
  900561: ['invalid_request', 'The endpoint only accepts POST, OPTIONS requests. Received a {method} request.'],
  900971: ['invalid_request', 'No reply address provided.'],
  70003: ['unsupported_grant_type', "The app requested an unsupported grant type '{grant}'."],
  90002: ['invalid_request', "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."],
  9001023: ['invalid_request', "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint."],
  50194: ['invalid_request', "Application '{appId}'({appName}) is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant."],
  50049: ['invalid_instance', 'Unknown or invalid instance.'],
  90023: ['invalid_request', 'Invalid request. {detail}'], // approx.
  9002313: ['invalid_grant', 'Invalid request. Request is malformed or invalid.'],
  // Applications
  700016: ['unauthorized_client', "Application with identifier '{appId}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."],
  7000112: ['unauthorized_client', "Application '{appId}'({appName}) is disabled."],
  // Client credentials for an app registration without an enterprise application [OBS Azure/azure-sdk-for-net#46762,
  // Azure/Commercial-Marketplace-SaaS-Accelerator#830: error invalid_client; the status 401 is approx., as for the other invalid_client errors].
  7000229: ['invalid_client', 'The client application {appId} is missing service principal in the tenant {tenant}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119'],
  // On-behalf-of with an app-only assertion (reference-error-codes.md; `error` approx.). The sandbox has no OBO grant; tests build the body.
  7000114: ['invalid_grant', "Application '{appId}' is not allowed to make application on-behalf-of calls."],
  // Client authentication (HTTP 401)
  7000215: ['invalid_client', "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{appId}'."],
  7000222: ['invalid_client', "The provided client secret keys for app '{appId}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."],
  7000218: ['invalid_client', "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."],
  700025: ['invalid_client', "Client is public so neither 'client_assertion' nor 'client_secret' should be presented."],
  90011: ['invalid_request', 'Unexpected client assertion type.'],
  50027: ['invalid_client', 'JWT token is invalid or malformed.'],
  50048: ['invalid_client', `Subject mismatches Issuer claim in the client assertion for application '{appId}'. ${CERT_DOC}`], // approx.
  700021: ['invalid_client', `Client assertion application identifier doesn't match 'client_id' parameter. ${CERT_DOC}`],
  700024: ['invalid_client', `Client assertion is not within its valid time range. Current time: {now}, assertion valid from {nbf}, expiry time of assertion {exp}. ${CERT_DOC}`],
  700027: ['invalid_client', `Client assertion contains an invalid signature. [Reason - {reason}, Thumbprint of key used by client: '{thumbprint}'{found}, ${KEYS_HINT}]`],
  // Scopes and resources
  1002012: ['invalid_scope', 'The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).'],
  70011: ['invalid_scope', "The provided value for the input parameter 'scope' is not valid. {detail}"],
  500011: ['invalid_resource', 'The resource principal named {resource} was not found in the tenant named {tenantName}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.'],
  65001: ['invalid_grant', "The user or administrator has not consented to use the application with ID '{appId}' named '{appName}'. Send an interactive authorization request for this user and resource.", 'consent_required'],
  // Grants
  54005: ['invalid_grant', 'OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.'],
  501481: ['invalid_grant', "The Code_Verifier does not match the code_challenge supplied in the authorization request."],
  501491: ['invalid_request', 'Invalid size of Code_Challenge parameter.'],
  500112: ['invalid_grant', "The reply address '{got}' does not match the reply address '{expected}' provided when requesting Authorization code."],
  700005: ['invalid_grant', 'Provided Authorization Code is intended to use against other tenant, thus rejected.'],
  70000: ['invalid_grant', 'Provided grant is invalid or malformed.'],
  70008: ['invalid_grant', 'The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.'],
  700082: ['invalid_grant', 'The refresh token has expired due to inactivity. The token was issued on {issued} and was inactive for {inactive}.', 'bad_token'],
  50173: ['invalid_grant', "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{issued}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{validFrom}'.", 'bad_token'],
  // Device code
  70016: ['authorization_pending', 'OAuth 2.0 device flow error. Authorization is pending. Continue polling.'],
  70018: ['bad_verification_code', 'Invalid verification code. The device code is not valid for this application.'], // approx.
  70019: ['expired_token', 'Verification code expired.'],
  // The polling error for a declined sign-in is `authorization_declined` (v2-oauth2-device-code.md);
  // the doc names no AADSTS number for it, so the sandbox uses the one for a user declining (65004).
  65004: ['access_denied', 'User declined to consent to access the app.'],
  90120: ['invalid_request', 'The request was already authorized or declined.'],
  // Users (sign-in pages, token redemption)
  50034: ['invalid_grant', "The user account {upn} does not exist in the '{tenantName}' directory. To sign into this application, the account must be added to the directory."],
  50020: ['invalid_grant', "User account '{upn}' from identity provider '{idp}' does not exist in tenant '{tenantName}' and cannot access the application '{appId}'({appName}) in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different Azure Active Directory user account."],
  50126: ['invalid_grant', 'Error validating credentials due to invalid username or password.'],
  50057: ['invalid_grant', 'The user account is disabled.'],
  // approx.: the text Entra shows since 2023; the doc's short form is "The signed in user isn't assigned to a role for the signed in app."
  50105: ['invalid_grant', "Your administrator has configured the application {appName} ('{appId}') to block users unless they are specifically granted ('assigned') access to the application. The signed in user '{upn}' is blocked because they are not a direct member of a group with access, nor had access directly assigned by an administrator. Please contact your administrator to assign access to this application."],
  50058: ['login_required', 'A silent sign-in request was sent but no user is signed in.'],
  50011: ['invalid_request', "The redirect URI '{redirectUri}' specified in the request does not match the redirect URIs configured for the application '{appId}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this."],
  50089: ['invalid_request', 'Authentication failed due to flow token expired.'],
  70005: ['unsupported_response_type', "The provided value for the input parameter 'response_type' is not allowed for this request. Expected value: 'code'."], // approx.
  70007: ['invalid_request', "The provided value '{mode}' for the input parameter 'response_mode' is not valid."], // approx.
  50000: ['server_error', 'There was an error issuing a token or an issue with our sign-in service.'],
};

export const AADSTS: Record<number, AadstsDef> = Object.fromEntries(
  Object.entries(TABLE).map(([code, [error, text, suberror]]) => [code, { error, status: STATUS[error] ?? 400, text, ...(suberror ? { suberror } : {}) }]),
);

/** Thrown inside the emulator; the edge turns it into a JSON error, an error page or an error redirect. */
export class AadstsError extends Error {
  readonly code: number;
  readonly def: AadstsDef;
  readonly params: Record<string, string>;

  constructor(code: number, params: Record<string, string | number> = {}, override: Partial<Pick<AadstsDef, 'error' | 'status'>> = {}) {
    const def = AADSTS[code];
    if (!def) throw new Error(`sandbox Entra: no text for AADSTS${code}`);
    const p = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)]));
    super(`AADSTS${code}: ${format(def.text, p)}`);
    this.name = 'AadstsError';
    this.code = code;
    this.def = { ...def, ...override };
    this.params = p;
  }

  /** "AADSTSn: text" without the trace suffix, as the sign-in pages show it. */
  get description(): string {
    return this.message;
  }
}

export interface RequestTrace {
  traceId: string;
  correlationId: string;
  /** ms since epoch, from the sandbox clock. */
  at: number;
}

/** "2016-01-09 02:02:12Z", the timestamp format of Entra error bodies. */
export function entraTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function errorBody(err: AadstsError, trace: RequestTrace, base: string): Record<string, unknown> {
  const timestamp = entraTimestamp(trace.at);
  const body: Record<string, unknown> = {
    error: err.def.error,
    error_description: `${err.message} Trace ID: ${trace.traceId} Correlation ID: ${trace.correlationId} Timestamp: ${timestamp}`,
    error_codes: [err.code],
    timestamp,
    trace_id: trace.traceId,
    correlation_id: trace.correlationId,
    error_uri: `${base}/error?code=${err.code}`,
  };
  if (err.def.suberror) body.suberror = err.def.suberror;
  return body;
}
