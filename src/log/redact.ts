/**
 * Redaction by construction. Every secret value that mailbridge decrypts or receives is registered
 * here the moment it exists in memory; every line that leaves the process (log, CLI output, API
 * error, config dump) passes through `scrub`, which replaces registered values with a mask.
 * Pattern rules catch what was never registered (bearer tokens, JWTs, PEM keys in foreign error text).
 */
const known = new Set<string>();
/** Values registered under a slot: a new value for the slot replaces the old one (rotating tokens). */
const slots = new Map<string, string>();
let pattern: RegExp | undefined;
/** Secrets shorter than MIN_SCRUB_LENGTH: masked only as whole words (see below). */
const short = new Set<string>();
let shortPattern: RegExp | undefined;

/**
 * `scrub` masks a registered secret wherever it occurs, as a substring: a secret can sit anywhere in
 * a URL, a form body or a foreign library's error message. That is only sound for values that do
 * not occur in ordinary text. A short one does: with the certificate password `mail` registered,
 * every `mailbridge` in help texts, errors and suggested fix commands became `********bridge`. So a
 * secret shorter than this (Entra ID's minimum password length; client secrets have 40 characters,
 * tokens hundreds) is masked only where it stands as a word of its own, not inside a longer word:
 * `password=mail` and `"mail"` are masked, `mailbridge` is left alone. The places that show a secret
 * field print `mask()`/`MASK` whatever its length (config show and check, secret list), and a log line
 * masks the value of every secret-named field (SECRET_FIELD below).
 */
export const MIN_SCRUB_LENGTH = 8;

/** Shorter than this, a secret is too likely to be part of ordinary words (see `scrub` below). */
const MIN_SECRET_LENGTH = 4;

/**
 * Register a clear secret so that `scrub` masks it from now on (secrets shorter than
 * MIN_SCRUB_LENGTH only as whole words, see above). Values that rotate
 * (refresh tokens) pass a `slot`: the slot's previous value is forgotten, so a long-running gateway
 * does not collect every token it ever held.
 */
export function registerSecret(value: string | undefined | null, slot?: string): void {
  if (!value || value.length < MIN_SECRET_LENGTH) return;
  if (value.length < MIN_SCRUB_LENGTH) {
    if (short.has(value)) return;
    short.add(value);
    const parts = [...short].sort((a, b) => b.length - a.length).map(escapeRegExp);
    // Not preceded or followed by a letter or digit: a word of its own, wherever it stands.
    shortPattern = new RegExp(`(?<![\\p{L}\\p{N}])(?:${parts.join('|')})(?![\\p{L}\\p{N}])`, 'gu');
    return;
  }
  if (slot !== undefined) {
    const previous = slots.get(slot);
    if (previous === value) return;
    if (previous !== undefined) {
      known.delete(previous);
      known.delete(encodeURIComponent(previous));
    }
    slots.set(slot, value);
  } else if (known.has(value)) {
    return;
  }
  known.add(value);
  // Secrets also travel URL-encoded (form bodies); mask that spelling too.
  known.add(encodeURIComponent(value));
  // Longest first, so a secret that contains another is masked whole.
  const parts = [...known].sort((a, b) => b.length - a.length).map(escapeRegExp);
  pattern = parts.length > 0 ? new RegExp(parts.join('|'), 'g') : undefined;
}

export const MASK = '********';

const GENERIC: Array<[RegExp, string]> = [
  // JWTs (access tokens, assertions, id tokens)
  [/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g, MASK],
  [/(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}/gi, `$1${MASK}`],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, `-----PRIVATE KEY ${MASK}-----`],
  [/((?:client_secret|refresh_token|access_token|client_assertion|password|code_verifier)=)[^&\s"]+/gi, `$1${MASK}`],
  [/("(?:client_secret|refresh_token|access_token|password|secret|privateKey)"\s*:\s*")[^"]+/gi, `$1${MASK}`],
  // The console's session cookie and CSRF token (a Cookie header or an answer quoted in an error).
  [/(mb_session=)[^;\s"]+/g, `$1${MASK}`],
  [/("csrfToken"\s*:\s*")[^"]+/g, `$1${MASK}`],
];

export function scrub(text: string): string {
  let out = text;
  if (pattern) out = out.replace(pattern, MASK);
  if (shortPattern) out = out.replace(shortPattern, MASK);
  for (const [re, replacement] of GENERIC) out = out.replace(re, replacement);
  return out;
}

/**
 * Query parameters that carry credentials or one-time grants in URLs: the authorization code and
 * state of /oauth/callback (a code can be redeemed by whoever reads it first, within minutes),
 * tokens and secrets sent as query parameters. Matched only after `?` or `&`, so ordinary text
 * ("exit code=1") is left alone.
 */
const SECRET_QUERY = /([?&](?:code|state|session_state|id_token|access_token|refresh_token|token|client_secret|client_assertion|code_verifier|password)=)[^&\s"'#]+/gi;

/**
 * The string value of a secret-named field, at any depth of a JSON log line (`{ connection: {
 * clientSecret } }`, `{ token }`). Only for logs: an API answer may carry a token on purpose.
 */
const SECRET_FIELD = /("(?:client_?secret|refresh_?token|access_?token|token|password|secret|private_?key)"\s*:\s*")(?:[^"\\]|\\.)+/gi;

/**
 * For lines written to a log: `scrub` plus the values of secret-looking query parameters (request
 * logs carry full URLs) and of secret-named fields. Not for CLI output, where the sign-in link the
 * admin must open carries its state on purpose.
 */
export function scrubLogLine(text: string): string {
  return scrub(text).replace(SECRET_QUERY, `$1${MASK}`).replace(SECRET_FIELD, `$1${MASK}`);
}

/** Entra ID shows the first three characters of a secret as its "hint"; mailbridge does the same. */
export function mask(value: string | undefined | null): string {
  if (!value) return '';
  return value.length >= 16 ? `${value.slice(0, 3)}${MASK}` : MASK;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
