/**
 * Secrets at rest: AES-256-GCM with one key per installation.
 *
 * Value format: `enc:v1:<base64url(iv | tag | ciphertext)>`, a fresh 12-byte IV per value, the
 * 16-byte GCM tag authenticating the ciphertext (and the format version, as associated data), so a
 * changed byte or another key fails to decrypt instead of yielding garbage.
 *
 * The key comes from MAILBRIDGE_KEY (base64 of 32 bytes; containers, vaults) or from the key file
 * (config `secrets.keyFile`, relative to the config file's folder). The key file is created on
 * first use — the first `seal` — never on reading: a missing key while encrypted values exist means
 * the key was lost, and a new one would only hide that. Creation is atomic (written to a private
 * temporary file with mode 0600, then hard-linked into place, so no one ever sees a half-written
 * key and two processes racing agree on one key). An existing key file that the group or others
 * may read or write is refused, as ssh does with private keys.
 *
 * Every clear value `reveal` returns, and the key itself, is registered with the log scrubber, so
 * it cannot be printed afterwards.
 * Limits: one key; rotating it means setting every secret again. GCM cannot tell a wrong key from
 * a changed value, so both get one error that names both causes.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { closeSync, fchmodSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { MbError } from '../errors/index.ts';
import { registerSecret } from '../log/redact.ts';
import type { SecretBox } from './secret-box.ts';

export type { SecretBox } from './secret-box.ts';

/** The `secrets` section of mailbridge.yaml: where the key of this box lives. */
export const secretsSchema = z
  .object({ keyFile: z.string().default('mailbridge.key').meta({ description: 'AES-256 key file, created with mode 0600 on first use; MAILBRIDGE_KEY overrides it' }) })
  .strict()
  .default({ keyFile: 'mailbridge.key' });

export const ENC_PREFIX = 'enc:v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const AAD = Buffer.from('mailbridge enc:v1');

export interface SecretBoxOptions {
  /** Absolute path of the key file (see `LoadedConfig.keyFile`). */
  keyFile: string;
  env?: NodeJS.ProcessEnv;
}

/** The SecretBox of this module, with what the CLI needs to tell the admin about the key. */
export interface KeyedSecretBox extends SecretBox {
  /** Where the key comes from: the MAILBRIDGE_KEY variable or the key file. */
  readonly keySource: 'env' | 'file';
  readonly keyFile: string;
  /** Whether a key exists yet (false: key file missing and MAILBRIDGE_KEY unset). */
  readonly hasKey: boolean;
  /** True once this box has created the key file. */
  readonly created: boolean;
  /** `field` names the setting in errors (e.g. connections.contoso.clientSecret). */
  reveal(stored: string, field?: string): string;
  open(stored: string, field?: string): string;
}

/** True for values in the encrypted form (any version); everything else is plain text. */
export function isEncrypted(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith('enc:');
}

export async function openSecretBox(options: SecretBoxOptions): Promise<KeyedSecretBox> {
  const env = options.env ?? process.env;
  const keyFile = options.keyFile;
  const fromEnv = env.MAILBRIDGE_KEY;
  let key: Buffer | undefined;
  let created = false;
  const keySource: 'env' | 'file' = fromEnv !== undefined && fromEnv !== '' ? 'env' : 'file';
  if (keySource === 'env') key = decodeKey(fromEnv!, 'MAILBRIDGE_KEY');
  else key = readKeyFile(keyFile);
  const source = keySource === 'env' ? 'MAILBRIDGE_KEY' : keyFile;

  const box: KeyedSecretBox = {
    keySource,
    keyFile,
    get hasKey() {
      return key !== undefined;
    },
    get created() {
      return created;
    },
    seal(plain: string): string {
      // Not registered here: callers seal things such as MSAL's token cache on every refresh, and
      // registering each would grow the scrubber without bound. Whoever holds a clear secret from
      // elsewhere (the CLI prompt) registers it; reveal registers everything it returns.
      if (!key) {
        const made = createKeyFile(keyFile);
        key = made.key;
        created = made.created;
      }
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(AAD);
      const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return ENC_PREFIX + Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64url');
    },
    reveal(stored: string, field?: string): string {
      const clear = box.open(stored, field);
      registerSecret(clear);
      return clear;
    },
    open(stored: string, field?: string): string {
      if (!isEncrypted(stored)) return stored;
      const name = field ?? `${stored.slice(0, ENC_PREFIX.length + 8)}…`;
      const body = stored.startsWith(ENC_PREFIX) ? stored.slice(ENC_PREFIX.length) : undefined;
      if (body === undefined || !/^[A-Za-z0-9_-]+$/.test(body)) throw new MbError('MB_SECRET_MALFORMED', { field: name });
      const raw = Buffer.from(body, 'base64url');
      if (raw.length < IV_BYTES + TAG_BYTES) throw new MbError('MB_SECRET_MALFORMED', { field: name });
      if (!key) throw new MbError('MB_SECRET_KEY_MISSING', { field: name, keyFile });
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
      decipher.setAAD(AAD);
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      let clear: string;
      try {
        clear = Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
      } catch (err) {
        throw new MbError('MB_SECRET_UNDECRYPTABLE', { field: name, source }, { cause: err });
      }
      return clear;
    },
  };
  return box;
}

/** A new random key in the form MAILBRIDGE_KEY and the key file use (base64 of 32 bytes). */
export function generateKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

function decodeKey(text: string, source: string): Buffer {
  const t = text.trim();
  registerSecret(t);
  const key = /^[A-Za-z0-9+/_-]+={0,2}$/.test(t) ? Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64') : Buffer.alloc(0);
  if (key.length !== KEY_BYTES) throw new MbError('MB_SECRET_KEY_INVALID', { source });
  return key;
}

function readKeyFile(keyFile: string): Buffer | undefined {
  let text: string;
  try {
    const st = statSync(keyFile);
    if (!st.isFile()) throw new MbError('MB_SECRET_KEY_UNREADABLE', { keyFile, detail: 'not a regular file' });
    checkMode(keyFile, st.mode);
    text = readFileSync(keyFile, 'utf8');
  } catch (err) {
    if (err instanceof MbError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MbError('MB_SECRET_KEY_UNREADABLE', { keyFile, detail: (err as Error).message }, { cause: err });
  }
  return decodeKey(text, keyFile);
}

function checkMode(keyFile: string, mode: number): void {
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new MbError('MB_SECRET_KEY_PERMISSIONS', { keyFile, mode: (mode & 0o777).toString(8).padStart(4, '0') });
  }
}

/**
 * Create the key file atomically: write a private temporary file, then hard-link it to the final
 * name, which fails if the name exists. If another process won the race, its key is used.
 */
function createKeyFile(keyFile: string): { key: Buffer; created: boolean } {
  const text = generateKey();
  registerSecret(text);
  const tmp = `${keyFile}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 });
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      fchmodSync(fd, 0o600); // the umask could have taken bits away, never added: make it exact
      writeSync(fd, `${text}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, keyFile);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return { key: readKeyFile(keyFile)!, created: false };
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV') throw err;
      // File systems without hard links: exclusive create still refuses to overwrite a key.
      const fd2 = openSync(keyFile, 'wx', 0o600);
      try {
        writeSync(fd2, `${text}\n`);
        fsyncSync(fd2);
      } finally {
        closeSync(fd2);
      }
    }
    syncDir(dirname(keyFile));
    return { key: decodeKey(text, keyFile), created: true };
  } catch (err) {
    if (err instanceof MbError) throw err;
    throw new MbError('MB_SECRET_KEY_UNREADABLE', { keyFile, detail: (err as Error).message }, { cause: err });
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone or never made
    }
  }
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Not every platform lets a directory be fsynced; the key file itself is synced.
  }
}
