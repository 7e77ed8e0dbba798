/**
 * The effective configuration with every secret masked, for `mailbridge config show` and the admin
 * API's GET /api/v1/config: secret fields (found by their schema mark) show `********`, or the
 * masked clear value (first and last characters) when the key can open them, and passwords inside
 * URLs (proxy, PostgreSQL) are masked too, and so are password hashes (shown as the mask alone).
 * Each secret slot is reported with whether it is encrypted and, if it could not be opened, the MB
 * code why. maskedFileText does the same to the file's text for the console's editor.
 */
import { MbError } from '../errors/index.ts';
import { mask, MASK } from '../log/redact.ts';
import { maskUrlPassword } from './problems.ts';
import { hiddenSlots, isHashSchema, secretSlots, type AnySchema } from './schema-walk.ts';
import { isEncrypted } from './secrets.ts';
import { parseForEdit, setInYaml } from './yaml-edit.ts';

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
  // Password hashes are no secrets (nothing to open), but not for display either.
  for (const slot of hiddenSlots(root, config)) if (isHashSchema(slot.schema) && typeof slot.value === 'string') setAt(copy, slot.segments, MASK);
  maskUrlPasswords(copy);
  return { config: copy, secrets };
}

/**
 * mailbridge.yaml as written (comments, order and layout kept) for the console's editor: the value
 * of every secret slot and password hash, sealed or clear, replaced by MASK, and passwords inside
 * URLs masked. Nothing of a secret survives, not even the first characters maskedConfig shows: the
 * text goes back to the gateway as a whole, and a mask means "keep what the file has"
 * (secret-file.ts resolveMasks). A file with YAML syntax errors is refused (MB_CONFIG_YAML_SYNTAX):
 * its slots cannot be found, so nothing could be masked safely.
 */
export function maskedFileText(root: AnySchema, text: string, file = 'mailbridge.yaml'): string {
  const { doc, errors } = parseForEdit(text);
  if (errors.length) {
    const e = errors[0]!;
    throw new MbError('MB_CONFIG_YAML_SYNTAX', { file, line: e.line, column: e.column, detail: e.message });
  }
  const raw: unknown = doc.toJS();
  let out = text;
  const hidden = hiddenSlots(root, raw);
  for (const slot of hidden) {
    if (slot.value === undefined || slot.value === null) continue;
    out = setInYaml(out, slot.segments, MASK, file);
  }
  const masked = new Set(hidden.map((s) => s.path));
  for (const { segments, value } of stringsIn(raw, [])) {
    // A secret URL (store.url) is masked whole above; its password must not bring the rest back.
    if (masked.has(segments.join('.'))) continue;
    const shown = maskUrlPassword(value);
    if (shown !== value) out = setInYaml(out, segments, shown, file);
  }
  return out;
}

/** Every string value of a parsed file with its path (list items by index). */
export function stringsIn(node: unknown, path: string[]): Array<{ segments: string[]; value: string }> {
  if (typeof node === 'string') return [{ segments: path, value: node }];
  if (typeof node !== 'object' || node === null) return [];
  return Object.entries(node).flatMap(([k, v]) => stringsIn(v, [...path, k]));
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
