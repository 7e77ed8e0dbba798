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

const MIN_SECRET_LENGTH = 4;

/**
 * Register a clear secret so that `scrub` masks it from now on. Values that rotate (refresh tokens)
 * pass a `slot`: the slot's previous value is forgotten, so a long-running gateway does not collect
 * every token it ever held.
 */
export function registerSecret(value: string | undefined | null, slot?: string): void {
  if (!value || value.length < MIN_SECRET_LENGTH) return;
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
];

export function scrub(text: string): string {
  let out = text;
  if (pattern) out = out.replace(pattern, MASK);
  for (const [re, replacement] of GENERIC) out = out.replace(re, replacement);
  return out;
}

/** Entra ID shows the first three characters of a secret as its "hint"; mailbridge does the same. */
export function mask(value: string | undefined | null): string {
  if (!value) return '';
  return value.length >= 16 ? `${value.slice(0, 3)}${MASK}` : MASK;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
