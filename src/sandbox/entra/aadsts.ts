/**
 * The AADSTS errors the sandbox emits, with the `error` value, HTTP status and message text Entra
 * ID uses (microsoft-facts.md §1.7/§1.8 and the Entra error-code reference). The body has the real
 * shape: error, error_description ("AADSTSn: text Trace ID: … Correlation ID: … Timestamp: …", one
 * line as in current captures), error_codes, timestamp, trace_id, correlation_id, error_uri and,
 * where Entra sends one, suberror.
 *
 * The codes and Microsoft's texts are data, in aadsts.json beside this file, grouped by topic. Texts
 * marked "approx." there are not from a capture or the docs word for word; their codes are.
 */
import { format } from '../../i18n/index.ts';
import table from './aadsts.json' with { type: 'json' };

export interface AadstsDef {
  error: string;
  status: number;
  text: string;
  suberror?: string;
}

/**
 * HTTP status by `error`: client-authentication failures (invalid_client) are 401, a failure of
 * Entra itself is 500, every other error 400 (microsoft-facts.md §1.7).
 */
const STATUS: Record<string, number> = { invalid_client: 401, server_error: 500 };

/** aadsts.json, by topic: code → `error`, text and, where Entra sends one, suberror ("//" says where a text or `error` is approx. or comes from). */
const TOPICS: Record<string, Record<string, { error: string; text: string; suberror?: string }>> = table;

export const AADSTS: Record<number, AadstsDef> = Object.fromEntries(
  Object.values(TOPICS)
    .flatMap((topic) => Object.entries(topic))
    .map(([code, { error, text, suberror }]) => [code, { error, status: STATUS[error] ?? 400, text, ...(suberror ? { suberror } : {}) }]),
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
