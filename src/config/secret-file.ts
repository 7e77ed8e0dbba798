/**
 * Secrets in mailbridge.yaml: which settings are secret, storing one encrypted (`secret set`), and
 * the state of each (`secret list`).
 *
 * These work on the configuration as written plus environment overrides, without requiring it to
 * validate: setting the client secret of a connection whose tenantId is not filled in yet is a
 * normal step of setting one up. The secret settings are those the schema marks secret
 * (schema-walk.ts), so this file lists none by name; `root` is the schema of the whole file
 * (src/app/config.ts binds mailbridge's).
 */
import { randomBytes } from 'node:crypto';
import { chmod, chown, open, readFile, realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { MbError, type MbCode } from '../errors/index.ts';
import { mask, MASK, registerSecret } from '../log/redact.ts';
import { applyEnvOverrides } from './env.ts';
import { keyFileFor } from './index.ts';
import { stringsIn } from './masked.ts';
import { maskUrlPassword } from './problems.ts';
import { hiddenSlots, isSecretSchema, resolvePath, secretPatterns, secretSlots, slotNeeded, type AnySchema } from './schema-walk.ts';
import { isEncrypted, openSecretBox, type KeyedSecretBox } from './secrets.ts';
import { copyScalar, parseForEdit, setInYaml } from './yaml-edit.ts';

export interface RawConfig {
  /** The file's text, undefined when it does not exist. */
  text?: string;
  /** As written, with environment overrides applied; not validated. */
  raw: Record<string, unknown>;
  /** As written in the file only. */
  fileRaw: Record<string, unknown>;
  fromEnv: Map<string, string>;
  keyFile: string;
}

/** Read the file leniently (only YAML syntax must be right). */
export async function readRawConfig(root: AnySchema, configPath: string, env: NodeJS.ProcessEnv): Promise<RawConfig> {
  let text: string | undefined;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new MbError('MB_CONFIG_UNREADABLE', { path: configPath, detail: (err as Error).message }, { cause: err });
    }
  }
  let fileRaw: Record<string, unknown> = {};
  if (text !== undefined) {
    const { doc, errors } = parseForEdit(text);
    if (errors.length) {
      const e = errors[0]!;
      throw new MbError('MB_CONFIG_YAML_SYNTAX', { file: basename(configPath), line: e.line, column: e.column, detail: e.message });
    }
    const js: unknown = doc.toJS();
    if (typeof js === 'object' && js !== null && !Array.isArray(js)) fileRaw = js as Record<string, unknown>;
  }
  const { raw, fromEnv } = applyEnvOverrides(root, fileRaw, env, configPath);
  const s = raw.secrets;
  const k = typeof s === 'object' && s !== null ? (s as Record<string, unknown>).keyFile : undefined;
  return { text, raw, fileRaw, fromEnv, keyFile: keyFileFor(configPath, typeof k === 'string' && k ? k : undefined) };
}

/** The secret settings, as patterns (connections.<name>.clientSecret, …). */
export function secretSettings(root: AnySchema): string[] {
  return secretPatterns(root);
}

/**
 * The schema's spelling of a secret path an admin typed (keys case-insensitive, connection names
 * as in the file). Throws MB_SECRET_NOT_A_SECRET, listing the secret settings, for anything else.
 */
export function secretPathFor(root: AnySchema, given: string, raw: unknown): string[] {
  const r = resolvePath(root, given.split('.'), raw);
  if (!r.ok && r.reason === 'name') {
    throw new MbError('MB_CONFIG_BAD_NAME', { field: r.segments.slice(0, r.at).join('.'), found: JSON.stringify(r.segments[r.at]) });
  }
  if (!r.ok || r.schemas.length === 0 || !isSecretSchema(r.schemas[r.schemas.length - 1]!)) {
    throw new MbError('MB_SECRET_NOT_A_SECRET', { field: given, valid: secretPatterns(root).join(', ') });
  }
  return r.segments;
}

export interface StoredSecret {
  path: string;
  file: string;
  /** The file did not exist and was created. */
  fileCreated: boolean;
  keyFile: string;
  keySource: 'env' | 'file';
  /** The key file was created for this secret. */
  keyCreated: boolean;
  /** Hint as Entra ID shows it (first three characters of long secrets), never the value. */
  hint: string;
  /** An environment variable that overrides what was just stored. */
  overriddenBy?: string;
}

/** Encrypt `clear` and write it at `segments` into the file, keeping the rest of the file as it is. */
export async function storeSecret(root: AnySchema, configPath: string, segments: string[], clear: string, env: NodeJS.ProcessEnv): Promise<StoredSecret> {
  const current = await readRawConfig(root, configPath, env);
  const box = await openSecretBox({ keyFile: current.keyFile, env });
  const sealed = sealChecked(box, clear);
  const text = setInYaml(current.text ?? '', segments, sealed, basename(configPath));
  const target = await writeAtomic(configPath, text);
  if (box.created) await giveToOwnerOf(box.keyFile, target);
  const path = segments.join('.');
  return {
    path,
    file: target,
    fileCreated: current.text === undefined,
    keyFile: box.keyFile,
    keySource: box.keySource,
    keyCreated: box.created,
    hint: mask(clear),
    overriddenBy: current.fromEnv.get(path),
  };
}

/**
 * Write several settings at once (one atomic replace of the file), sealing those marked secret:
 * `mailbridge setup` stores the client ID, the credential and its date together, so a crash leaves
 * either all or none of them.
 */
export async function storeSettings(
  root: AnySchema,
  configPath: string,
  entries: Array<{ path: string[]; value: string; secret?: boolean }>,
  env: NodeJS.ProcessEnv,
): Promise<{ file: string; keyCreated: boolean }> {
  const current = await readRawConfig(root, configPath, env);
  const box = await openSecretBox({ keyFile: current.keyFile, env });
  let text = current.text ?? '';
  for (const e of entries) {
    let value = e.value;
    if (e.secret) value = sealChecked(box, e.value);
    text = setInYaml(text, e.path, value, basename(configPath));
  }
  const target = await writeAtomic(configPath, text);
  if (box.created) await giveToOwnerOf(box.keyFile, target);
  return { file: target, keyCreated: box.created };
}

/** `clear` sealed, with the round trip proven before anything is written (creates the key file on first use). */
function sealChecked(box: KeyedSecretBox, clear: string): string {
  const sealed = box.seal(clear);
  if (box.reveal(sealed) !== clear) throw new MbError('MB_INTERNAL', { detail: 'encrypted secret did not decrypt to the same value' });
  return sealed;
}

export interface ResolvedCandidate {
  /** The candidate with every resolvable mask replaced by the file's value (and typed secrets sealed, if asked and possible). */
  text: string;
  /** Masks at paths where the file has no value: nothing to keep, and the mask is no value. */
  unresolved: Array<{ path: string; segments: string[]; line?: number; column?: number }>;
  /** Secret slots typed in clear in the candidate (new values, not masks). */
  typed: string[];
  /** Whether the installation has a key to seal `typed` with (MAILBRIDGE_KEY or the key file). */
  keyAvailable: boolean;
  /** Whether `typed` were sealed in `text` (false without `seal`, or when no key exists yet). */
  sealed: boolean;
  /** Slots whose value was taken from the file for a mask (a clear secret the file has stays as it was). */
  kept: string[];
}

/**
 * A candidate mailbridge.yaml from the console's editor, which got the file with every secret and
 * password hash masked (masked.ts maskedFileText), made ready to be checked and written:
 *  - a secret or hash slot whose value is exactly MASK keeps what the file has at that path (also a
 *    password inside a URL that reads as the file's URL masked);
 *  - a secret typed in clear is sealed with the installation's key as `secret set` seals it, when
 *    `seal` is asked for and a key exists (MAILBRIDGE_KEY or the key file); a key is never created
 *    here: the gateway would create it under its own user, unseen by the admin who must back it up.
 * Clear values met on the way are registered with the log scrubber. Broken YAML is returned as it
 * is: the check that follows reports it at its line.
 */
export async function resolveMasks(
  root: AnySchema,
  configPath: string | undefined,
  candidate: string,
  env: NodeJS.ProcessEnv,
  options: { seal: boolean },
): Promise<ResolvedCandidate> {
  const result: ResolvedCandidate = { text: candidate, unresolved: [], typed: [], keyAvailable: false, sealed: false, kept: [] };
  const { doc, lines, errors } = parseForEdit(candidate);
  if (errors.length) return result;
  const raw: unknown = doc.toJS();
  const current = configPath === undefined ? undefined : await readRawConfig(root, configPath, env);
  const file = configPath === undefined ? 'mailbridge.yaml' : basename(configPath);
  const inFile = (segments: string[]): unknown => segments.reduce<unknown>((node, k) => (typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[k] : undefined), current?.fileRaw);
  const where = (segments: string[]) => {
    const node = doc.getIn(segments, true) as { range?: [number, number, number] } | undefined;
    if (!node?.range) return {};
    const pos = lines.linePos(node.range[0]);
    return { line: pos.line, column: pos.col };
  };
  const keep = (path: string, segments: string[], old: unknown) => {
    if (typeof old === 'string' && old !== '') {
      if (!isEncrypted(old)) registerSecret(old);
      result.text = copyScalar(result.text, current!.text!, segments) ?? setInYaml(result.text, segments, old, file);
      result.kept.push(path);
    } else {
      result.unresolved.push({ path, segments, ...where(segments) });
    }
  };
  const typed: Array<{ segments: string[]; value: string }> = [];
  const slots = hiddenSlots(root, raw);
  for (const slot of slots) {
    if (slot.value === MASK) keep(slot.path, slot.segments, inFile(slot.segments));
    else if (isSecretSchema(slot.schema) && typeof slot.value === 'string' && slot.value !== '' && !isEncrypted(slot.value)) {
      registerSecret(slot.value);
      typed.push({ segments: slot.segments, value: slot.value });
      result.typed.push(slot.path);
    }
  }
  const hidden = new Set(slots.map((s) => s.path));
  for (const { segments, value } of stringsIn(raw, [])) {
    if (hidden.has(segments.join('.')) || !value.includes(`:${MASK}@`)) continue;
    const old = inFile(segments);
    keep(segments.join('.'), segments, typeof old === 'string' && maskUrlPassword(old) === value ? old : undefined);
  }
  if (typed.length > 0 && current) {
    const box = await openSecretBox({ keyFile: current.keyFile, env });
    result.keyAvailable = box.hasKey;
    if (options.seal && box.hasKey) {
      for (const t of typed) result.text = setInYaml(result.text, t.segments, sealChecked(box, t.value), file);
      result.sealed = true;
    }
  }
  return result;
}

export type SecretState = 'encrypted' | 'plain' | 'missing';

export interface SecretInfo {
  path: string;
  state: SecretState;
  /** The environment variable the value comes from, if not the file. */
  env?: string;
  /** Masked hint (abc********) or the mask alone; empty when missing. */
  hint: string;
  /** Why an encrypted value cannot be decrypted (MB_SECRET_*). */
  problem?: MbCode;
}

/** Every secret setting the configuration has room for, with its state; values never leave this function. */
export async function listSecrets(root: AnySchema, configPath: string, env: NodeJS.ProcessEnv): Promise<SecretInfo[]> {
  const current = await readRawConfig(root, configPath, env);
  const slots = secretSlots(root, current.raw);
  let box: KeyedSecretBox | undefined;
  let boxProblem: MbCode | undefined;
  if (slots.some((s) => isEncrypted(s.value))) {
    try {
      box = await openSecretBox({ keyFile: current.keyFile, env });
    } catch (err) {
      if (!(err instanceof MbError)) throw err;
      boxProblem = err.code;
    }
  }
  // An unset optional secret is no gap (a certificate without password, the clientSecret of a
  // connection that signs in with a certificate): listing it as "missing" would send admins hunting.
  return slots.filter((slot) => slot.value !== undefined || slotNeeded(slot)).map((slot) => {
    const info: SecretInfo = { path: slot.path, state: 'missing', hint: '' };
    const name = current.fromEnv.get(slot.path);
    if (name) info.env = name;
    const v = slot.value;
    if (typeof v !== 'string' || v === '') return info;
    if (!isEncrypted(v)) return { ...info, state: 'plain', hint: mask(v) };
    info.state = 'encrypted';
    info.hint = MASK;
    if (!box) return { ...info, problem: boxProblem };
    try {
      info.hint = mask(box.reveal(v, slot.path));
    } catch (err) {
      if (!(err instanceof MbError)) throw err;
      info.problem = err.code;
    }
    return info;
  });
}

/**
 * Replace mailbridge.yaml with `text` (the admin API's config apply): the file as it was goes to
 * `<file>.bak` first, then the new text replaces it in one step; both writes are atomic and synced.
 */
export async function replaceConfigText(configPath: string, text: string): Promise<{ file: string; backup?: string }> {
  const target = await realpath(configPath).catch(() => resolve(configPath));
  const current = await readFile(target, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new MbError('MB_CONFIG_WRITE_FAILED', { path: target, detail: err.message }, { cause: err });
  });
  const backup = current === undefined ? undefined : await writeAtomic(`${target}.bak`, current);
  return { file: await writeAtomic(target, text), ...(backup ? { backup } : {}) };
}

/**
 * Replace the file in one step (temporary file in the same folder, fsync, rename), keeping its
 * mode and owner; a symlinked config is written through the link. A new file gets mode 0600.
 */
async function writeAtomic(configPath: string, text: string): Promise<string> {
  const target = await realpath(configPath).catch(() => resolve(configPath));
  const before = await stat(target).catch(() => undefined);
  const mode = before ? before.mode & 0o777 : 0o600;
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(tmp, mode);
    if (before && process.getuid?.() === 0) await chown(tmp, before.uid, before.gid);
    await rename(tmp, target);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw new MbError('MB_CONFIG_WRITE_FAILED', { path: target, detail: (err as Error).message }, { cause: err });
  }
  try {
    const dir = await open(dirname(target), 'r');
    await dir.sync().finally(() => dir.close());
  } catch {
    // directories cannot be fsynced everywhere; the file itself is synced
  }
  return target;
}

/** Run as root, a new key file goes to the owner of the config file, who runs the service. */
async function giveToOwnerOf(keyFile: string, configFile: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const st = await stat(configFile).catch(() => undefined);
  if (st && st.uid !== 0) await chown(keyFile, st.uid, st.gid).catch(() => {});
}
