/**
 * The effective configuration with every secret masked, for `mailbridge config show` and the admin
 * API's GET /api/v1/config: secret fields (found by their schema mark) show `********`, or the
 * masked clear value (first and last characters) when the key can open them, and passwords inside
 * URLs (proxy, PostgreSQL) are masked too. Each secret slot is reported with whether it is
 * encrypted and, if it could not be opened, the MB code why.
 */
import { MbError } from '../errors/index.ts';
import { mask, MASK } from '../log/redact.ts';
import { maskUrlPassword } from './problems.ts';
import { secretSlots, type AnySchema } from './schema-walk.ts';
import { isEncrypted } from './secrets.ts';

export interface MaskedSecret {
  path: string;
  encrypted: boolean;
  /** MB code of why an encrypted value could not be opened (wrong or missing key). */
  unreadable?: string;
}

export function maskedConfig(
  root: AnySchema,
  config: unknown,
  box: { reveal(stored: string, field?: string): string } | undefined,
  boxError?: string,
): { config: Record<string, unknown>; secrets: MaskedSecret[] } {
  const copy = structuredClone(config) as Record<string, unknown>;
  const secrets: MaskedSecret[] = [];
  for (const slot of secretSlots(root, config)) {
    if (typeof slot.value !== 'string') continue;
    let shown = MASK;
    const s: MaskedSecret = { path: slot.path, encrypted: isEncrypted(slot.value) };
    if (!s.encrypted) shown = mask(slot.value);
    else if (box) {
      try {
        shown = mask(box.reveal(slot.value, slot.path));
      } catch (err) {
        s.unreadable = err instanceof MbError ? err.code : 'MB_INTERNAL';
      }
    } else if (boxError) s.unreadable = boxError;
    setAt(copy, slot.segments, shown);
    secrets.push(s);
  }
  maskUrlPasswords(copy);
  return { config: copy, secrets };
}

/** Proxy URLs may carry a password (http://user:pass@proxy:3128): mask it like a secret. */
function maskUrlPasswords(node: Record<string, unknown> | unknown[]): void {
  for (const [k, v] of Object.entries(node)) {
    if (typeof v === 'string') (node as Record<string, unknown>)[k] = maskUrlPassword(v);
    else if (typeof v === 'object' && v !== null) maskUrlPasswords(v as Record<string, unknown>);
  }
}

function setAt(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = obj;
  for (const k of path.slice(0, -1)) cur = cur[k] as Record<string, unknown>;
  cur[path[path.length - 1]!] = value;
}
