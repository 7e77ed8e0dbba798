/**
 * Exchange Online's IMAP replies, explained once for every IMAP session (the connector's IMAP
 * source and the IMAP watcher). Exchange answers a good app token without mailbox
 * permission with `OK AUTHENTICATE completed.` and then `BAD User is authenticated but not
 * connected.`, and throttles with `BAD Request is throttled. Suggested Backoff Time: N milliseconds`
 * (facts 3.4). This module turns those (and the ordinary network and TLS failures) into MB codes
 * whose fix is the exact PowerShell line: the app ID and the Enterprise application object ID come
 * from the token's own claims (`appid`/`azp`, `oid`, `tid`), so the admin can paste them.
 */
import { tokenFacts } from './token-facts.ts';
import { MbError, type ErrorParams, type MbCode } from '../errors/index.ts';

/**
 * A failed IMAP session step with its catalogue code and when to try again: the connector turns
 * it into its ConnectorError, the watcher maps the codes to its own; both honour retryAfterMs.
 */
export class ImapSessionError extends MbError {
  readonly retryAfterMs: number | undefined;

  constructor(code: MbCode, params: ErrorParams, options: { cause?: unknown; retryAfterMs?: number } = {}) {
    super(code, params, { cause: options.cause });
    this.name = 'ImapSessionError';
    this.retryAfterMs = options.retryAfterMs;
  }
}

export interface ImapErrorContext {
  connector: string;
  mailbox: string;
  host: string;
  port: number;
  folder?: string;
  token?: string;
  /** The backoff Exchange suggested in a throttling reply seen on this session (ms). */
  throttleHintMs?: number;
  /** The text of the server's BYE, if it sent one. */
  byeReason?: string;
}

const TLS_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_NOT_YET_VALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'EPROTO',
]);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'CONNECT_TIMEOUT',
  'GREETING_TIMEOUT',
  'UPGRADE_TIMEOUT',
  'EPROXY',
  'ProxyError',
]);

const PLACEHOLDER = { appId: '<Application (client) ID>', objectId: '<Enterprise application object ID>', tenantId: '<tenant ID>' };

/** Every text an imapflow error carries about the server's answer. */
function textsOf(err: unknown, ctx: ImapErrorContext): string {
  const e = err as Record<string, unknown> | undefined;
  const parts = [e?.message, e?.responseText, typeof e?.response === 'string' ? e.response : undefined, e?.reason, ctx.byeReason];
  const resp = e?.response as { attributes?: Array<{ value?: unknown }> } | undefined;
  if (resp && typeof resp === 'object' && Array.isArray(resp.attributes)) {
    for (const a of resp.attributes) if (typeof a?.value === 'string') parts.push(a.value);
  }
  return parts.filter((p): p is string => typeof p === 'string').join(' | ');
}

/** The suggested backoff in a throttling reply, in milliseconds. */
export function throttleHint(text: string): number | undefined {
  const m = /Request is throttled\.?\s*Suggested Backoff Time[:=\s]+(\d+)\s*milliseconds/i.exec(text);
  return m ? Number(m[1]) : undefined;
}

export function notConnectedError(ctx: Pick<ImapErrorContext, 'mailbox' | 'token'>, cause?: unknown): ImapSessionError {
  const facts = tokenFacts(ctx.token);
  // Permissions take effect within about 30 minutes; retry, but not in a tight loop.
  const retryAfterMs = 60_000;
  if (facts && !facts.appOnly && facts.user) {
    return new ImapSessionError('MB_CONNECTOR_NOT_CONNECTED_DELEGATED', { mailbox: ctx.mailbox, user: facts.user }, { cause, retryAfterMs });
  }
  return new ImapSessionError(
    'MB_CONNECTOR_NOT_CONNECTED',
    {
      mailbox: ctx.mailbox,
      appId: facts?.appId ?? PLACEHOLDER.appId,
      objectId: facts?.objectId ?? PLACEHOLDER.objectId,
      tenantId: facts?.tenantId ?? PLACEHOLDER.tenantId,
    },
    { cause, retryAfterMs },
  );
}

/** Any failure of an IMAP session → an ImapSessionError with a catalogue code, and when to try again. */
export function classifyImapError(err: unknown, ctx: ImapErrorContext): ImapSessionError {
  if (err instanceof ImapSessionError) return err;
  if (err instanceof MbError) return new ImapSessionError(err.code, err.params, { cause: err });
  const e = (err ?? {}) as Record<string, unknown>;
  const code = typeof e.code === 'string' ? e.code : '';
  const text = textsOf(err, ctx);
  const where = { mailbox: ctx.mailbox, host: ctx.host, port: ctx.port };

  const hint = throttleHint(text) ?? (code === 'ETHROTTLE' && typeof e.throttleReset === 'number' ? e.throttleReset : undefined) ?? ctx.throttleHintMs;
  if (hint !== undefined && (code === 'ETHROTTLE' || /throttled/i.test(text) || ctx.throttleHintMs !== undefined)) {
    const waited = typeof e.throttleWaited === 'number' ? e.throttleWaited : 0;
    const retryAfterMs = Math.max(1000, hint - waited);
    return new ImapSessionError(
      'MB_CONNECTOR_THROTTLED',
      { mailbox: ctx.mailbox, seconds: Math.ceil(hint / 1000), connector: ctx.connector },
      { cause: err, retryAfterMs },
    );
  }
  if (/User is authenticated but not connected/i.test(text)) return notConnectedError(ctx, err);
  if (e.authenticationFailed || /AUTHENTICATIONFAILED|AUTHENTICATE failed|Authentication failed/i.test(text)) {
    const detail = (typeof e.response === 'string' && e.response) || (typeof e.responseText === 'string' && e.responseText) || String(e.message ?? 'NO');
    return new ImapSessionError('MB_CONNECTOR_AUTH_FAILED', { ...where, detail }, { cause: err, retryAfterMs: 60_000 });
  }
  if (e.tlsFailed || TLS_CODES.has(code) || /certificate|self[- ]signed|SSL routines/i.test(String(e.message ?? ''))) {
    return new ImapSessionError('MB_CONNECTOR_SOURCE_TLS', { host: ctx.host, port: ctx.port, detail: String(e.message ?? code), connector: ctx.connector }, { cause: err });
  }
  if (e.mailboxMissing || /NONEXISTENT|Mailbox doesn't exist|mailbox does not exist/i.test(text)) {
    return new ImapSessionError('MB_CONNECTOR_FOLDER_MISSING', { mailbox: ctx.mailbox, folder: ctx.folder ?? '', connector: ctx.connector }, { cause: err, retryAfterMs: 300_000 });
  }
  if (NETWORK_CODES.has(code)) {
    return new ImapSessionError('MB_CONNECTOR_SOURCE_UNREACHABLE', { ...where, detail: `${code}: ${String(e.message ?? '')}`.trim() }, { cause: err });
  }
  const detail = [ctx.byeReason ? `BYE ${ctx.byeReason}` : '', typeof e.responseText === 'string' ? `${String(e.responseStatus ?? '')} ${e.responseText}`.trim() : '', String(e.message ?? err)]
    .filter(Boolean)
    .join(' – ');
  return new ImapSessionError('MB_CONNECTOR_SESSION_LOST', { mailbox: ctx.mailbox, detail }, { cause: err });
}
