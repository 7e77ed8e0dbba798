/**
 * Entra ID and MSAL failures → MbError. The AADSTS number is the key (parsed with /AADSTS(\d+)/
 * from error_description or taken from error_codes, never from the prose, which Microsoft changes);
 * every number a mail gateway's admin meets has its own MB code with cause and fix, and any other
 * number still yields MB_ENTRA_UNKNOWN with Microsoft's description, the trace ID and the
 * correlation ID in `details` for a support case.
 *
 * Sources of the facts, in order of preference: the error JSON the network layer kept for this
 * request (MSAL's own errors drop parts of it: the device code flow keeps only the `error` word),
 * then MSAL's ServerError (errorCode, errorMessage with "Trace ID:", subError, correlationId), then
 * MSAL's client-side error codes.
 */
import { AuthError, InteractionRequiredAuthError, ServerError } from '@azure/msal-node';
import { MbError, type ErrorParams, type MbCode } from '../errors/index.ts';
import type { EntraErrorBody, Observation } from './network.ts';

/** AADSTS number → MB code (microsoft-facts.md §1.3–1.8, docs/microsoft-facts-addendum.md). */
export const AADSTS_CODES: Record<string, MbCode> = {
  '7000215': 'MB_ENTRA_SECRET_INVALID',
  '7000222': 'MB_ENTRA_SECRET_EXPIRED',
  '700016': 'MB_ENTRA_APP_NOT_FOUND',
  '65001': 'MB_ENTRA_CONSENT_REQUIRED',
  '90002': 'MB_ENTRA_TENANT_NOT_FOUND',
  '70011': 'MB_ENTRA_SCOPE_INVALID',
  '1002012': 'MB_ENTRA_SCOPE_NOT_DEFAULT',
  '500011': 'MB_ENTRA_RESOURCE_NOT_FOUND',
  '700027': 'MB_ENTRA_ASSERTION_INVALID',
  '700024': 'MB_ENTRA_ASSERTION_TIME',
  '50012': 'MB_ENTRA_ASSERTION_FAILED',
  '50048': 'MB_ENTRA_ASSERTION_SUBJECT',
  '7000218': 'MB_ENTRA_CREDENTIAL_MISSING',
  '700025': 'MB_ENTRA_PUBLIC_CLIENT',
  '70016': 'MB_ENTRA_AUTHORIZATION_PENDING',
  '70018': 'MB_ENTRA_DEVICE_CODE_INVALID',
  '70019': 'MB_ENTRA_DEVICE_CODE_EXPIRED',
  '700082': 'MB_ENTRA_REFRESH_EXPIRED',
  '70008': 'MB_ENTRA_GRANT_REVOKED',
  '50173': 'MB_ENTRA_FRESH_TOKEN_NEEDED',
  '70000': 'MB_ENTRA_GRANT_INVALID',
  '70043': 'MB_ENTRA_SIGNIN_FREQUENCY',
  '700084': 'MB_ENTRA_SPA_REFRESH_EXPIRED',
  '54005': 'MB_ENTRA_CODE_REDEEMED',
  '501481': 'MB_ENTRA_PKCE_MISMATCH',
  '50076': 'MB_ENTRA_MFA_REQUIRED',
  '50079': 'MB_ENTRA_MFA_ENROLLMENT',
  '53003': 'MB_ENTRA_BLOCKED_BY_CA',
  '7000112': 'MB_ENTRA_APP_DISABLED',
  '70001': 'MB_ENTRA_APP_UNAUTHORIZED',
  '50011': 'MB_ENTRA_REDIRECT_MISMATCH',
  '9001023': 'MB_ENTRA_GRANT_ON_COMMON',
  '65004': 'MB_SIGNIN_DECLINED',
  // Users and assignment (docs/microsoft-facts-addendum.md)
  '50126': 'MB_ENTRA_WRONG_PASSWORD',
  '50057': 'MB_ENTRA_USER_DISABLED',
  '50105': 'MB_ENTRA_USER_NOT_ASSIGNED',
  '7000114': 'MB_ENTRA_OBO_NOT_ALLOWED',
  // App registration without its enterprise application in the tenant (docs/microsoft-facts-addendum.md)
  '7000229': 'MB_ENTRA_NO_SERVICE_PRINCIPAL',
};

/** OAuth `error` words without an AADSTS number (device flow, other authorities) → MB code. */
const OAUTH_ERRORS: Record<string, MbCode> = {
  authorization_pending: 'MB_ENTRA_AUTHORIZATION_PENDING',
  authorization_declined: 'MB_SIGNIN_DECLINED',
  access_denied: 'MB_SIGNIN_DECLINED',
  bad_verification_code: 'MB_ENTRA_DEVICE_CODE_INVALID',
  expired_token: 'MB_ENTRA_DEVICE_CODE_EXPIRED',
};

/** Everything the texts may name about the connection the failure belongs to. */
export interface ErrorContext {
  connection: string;
  clientId: string;
  tenantId: string;
  cloud: string;
  portal: string;
  loginHost: string;
  scope: string;
  account?: string;
  /** client-credentials: no user signs in, so there is no account to name. */
  appOnly?: boolean;
  redirectUri?: string;
  thumbprint?: string;
}

export function aadstsOf(text: string | undefined): string | undefined {
  return text ? /AADSTS(\d+)/.exec(text)?.[1] : undefined;
}

/** The first sentence Microsoft wrote, without the trace/correlation/timestamp tail. */
export function plainDescription(text: string | undefined): string {
  if (!text) return '';
  return text
    .split(/\r?\n|\s+Trace ID:|\s+Correlation ID:|\s+Timestamp:/)[0]!
    .replace(/^AADSTS\d+:\s*/, '')
    .trim();
}

function baseParams(ctx: ErrorContext): ErrorParams {
  return {
    connection: ctx.connection,
    clientId: ctx.clientId,
    tenantId: ctx.tenantId,
    cloud: ctx.cloud,
    portal: ctx.portal,
    loginHost: ctx.loginHost,
    scope: ctx.scope,
    // Language-neutral fallbacks: these values are inserted into English and German texts alike.
    account: ctx.account ?? '—',
    redirectUri: ctx.redirectUri ?? '—',
    thumbprint: ctx.thumbprint ?? '—',
  };
}

/** Entra's error JSON → MbError. */
export function fromEntraBody(
  body: EntraErrorBody,
  ctx: ErrorContext,
  extra: { status?: number; retryAfterMs?: number; cause?: unknown } = {},
): MbError {
  const aadsts = aadstsOf(body.error_description) ?? (body.error_codes?.[0] !== undefined ? String(body.error_codes[0]) : undefined);
  return build({
    aadsts,
    error: body.error ?? '',
    description: body.error_description ?? '',
    traceId: body.trace_id,
    correlationId: body.correlation_id,
    timestamp: body.timestamp,
    subError: body.suberror,
    status: extra.status,
    retryAfterMs: extra.retryAfterMs,
    ctx,
    cause: extra.cause,
  });
}

interface Facts {
  aadsts?: string;
  error: string;
  description: string;
  traceId?: string;
  correlationId?: string;
  timestamp?: string;
  subError?: string;
  status?: number;
  retryAfterMs?: number;
  ctx: ErrorContext;
  cause?: unknown;
}

function build(f: Facts): MbError {
  const details: Record<string, string> = {};
  if (f.aadsts) details.aadsts = `AADSTS${f.aadsts}`;
  if (f.error) details.error = f.error;
  if (f.subError) details.suberror = f.subError;
  if (f.traceId) details.traceId = f.traceId;
  if (f.correlationId) details.correlationId = f.correlationId;
  if (f.timestamp) details.timestamp = f.timestamp;
  const description = plainDescription(f.description) || f.error || 'no description';
  const params: ErrorParams = { ...baseParams(f.ctx), description, error: f.error || 'an error', aadsts: f.aadsts ?? '?' };
  const opts = { cause: f.cause, details };
  if (f.status === 429) {
    const seconds = f.retryAfterMs === undefined ? '?' : Math.ceil(f.retryAfterMs / 1000);
    return new MbError('MB_ENTRA_THROTTLED', { ...params, seconds }, opts);
  }
  const code = (f.aadsts && AADSTS_CODES[f.aadsts]) || OAUTH_ERRORS[f.error];
  // A policy that blocks or demands MFA of an app-only token targets the app (workload identity),
  // not a user: the user-shaped texts would read "for — (connection …)".
  if (f.ctx.appOnly && (code === 'MB_ENTRA_BLOCKED_BY_CA' || code === 'MB_ENTRA_MFA_REQUIRED')) return new MbError('MB_ENTRA_APP_BLOCKED_BY_CA', params, opts);
  if (code) return new MbError(code, params, opts);
  if (f.status !== undefined && f.status >= 500) {
    return new MbError('MB_ENTRA_UNAVAILABLE', { ...params, status: f.status, endpoint: f.ctx.loginHost }, opts);
  }
  if (f.description) details.description = plainDescription(f.description);
  return new MbError('MB_ENTRA_UNKNOWN', params, opts);
}

/** MSAL's ServerError.errorMessage is "Error(s): … - Description: … - Correlation ID: … - Trace ID: …". */
function fromServerMessage(e: AuthError): { description: string; traceId?: string; correlationId?: string; timestamp?: string } {
  const m = e.errorMessage ?? '';
  const pick = (label: string) => new RegExp(`${label}: ([0-9a-fA-F-]{8,})`).exec(m)?.[1];
  const desc = /Description: ([\s\S]*?)(?: - Correlation ID:| - Trace ID:|$)/.exec(m)?.[1] ?? m;
  return {
    description: desc,
    traceId: pick('Trace ID'),
    correlationId: pick('Correlation ID'),
    timestamp: /Timestamp: ([^-][^\r\n]*?Z)/.exec(m)?.[1],
  };
}

/**
 * Any failure of an MSAL call → MbError. `obs` is what the network layer kept for the call's
 * correlation ID.
 */
export function toIdentityError(err: unknown, ctx: ErrorContext, obs?: Observation): MbError {
  if (err instanceof MbError) return err;
  if (obs?.failure) return obs.failure;
  if (obs?.errorBody && (obs.errorBody.error || obs.errorBody.error_description)) {
    return fromEntraBody(obs.errorBody, ctx, { status: obs.status, retryAfterMs: obs.retryAfterMs, cause: err });
  }
  if (err instanceof ServerError || err instanceof InteractionRequiredAuthError) {
    const s = fromServerMessage(err);
    const aadsts =
      aadstsOf(err.errorMessage) ?? ((err as ServerError).errorNo !== undefined ? String((err as ServerError).errorNo) : undefined);
    if (aadsts || (err.errorCode && OAUTH_ERRORS[err.errorCode])) {
      return build({
        aadsts,
        error: err.errorCode,
        description: s.description,
        traceId: s.traceId,
        correlationId: s.correlationId ?? (err.correlationId || undefined),
        timestamp: s.timestamp,
        subError: err.subError || undefined,
        status: (err as ServerError).status,
        ctx,
        cause: err,
      });
    }
    if (err instanceof InteractionRequiredAuthError) {
      return new MbError('MB_SIGNIN_REQUIRED', baseParams(ctx), { cause: err });
    }
    return build({ error: err.errorCode, description: s.description, correlationId: err.correlationId, subError: err.subError, ctx, cause: err });
  }
  if (err instanceof AuthError) {
    const params = baseParams(ctx);
    switch (err.errorCode) {
      case 'no_tokens_found':
      case 'no_account_found':
      case 'no_account_in_silent_request':
      case 'refresh_token_expired':
      case 'token_refresh_required':
      case 'interaction_required':
      case 'login_required':
      case 'consent_required':
      case 'bad_token':
        return new MbError('MB_SIGNIN_REQUIRED', params, { cause: err });
      case 'device_code_polling_cancelled':
        return new MbError('MB_SIGNIN_CANCELLED', params, { cause: err });
      case 'device_code_expired':
      case 'user_timeout_reached':
        return new MbError('MB_ENTRA_DEVICE_CODE_EXPIRED', params, { cause: err });
      case 'state_mismatch':
      case 'invalid_state':
      case 'state_not_found':
        return new MbError('MB_SIGNIN_STATE_UNKNOWN', { ...params, minutes: 15 }, { cause: err });
      case 'network_error':
        return new MbError('MB_IDENTITY_NETWORK', { host: ctx.loginHost, detail: err.errorMessage || err.message }, { cause: err });
      default:
        return new MbError('MB_IDENTITY_MSAL', { ...params, code: err.errorCode, detail: err.errorMessage || err.message }, { cause: err });
    }
  }
  const detail = err instanceof Error ? err.message : String(err);
  return new MbError('MB_IDENTITY_MSAL', { ...baseParams(ctx), code: 'unexpected', detail }, { cause: err });
}
