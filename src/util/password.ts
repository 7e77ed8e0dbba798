/**
 * Relay user passwords: scrypt (node:crypto) in the PHC string format
 * `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (base64 without padding). mailbridge.yaml holds only the
 * hash, so it is not a secret; the clear password exists only in the AUTH exchange and in the
 * `relay-user` command that makes the hash.
 *
 * Verification compares in constant time, and an unknown user is checked against a dummy hash of
 * the same cost, so timing does not tell which user names exist.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const KEY_LENGTH = 32;
const SALT_LENGTH = 16;
/** 2^15 × r=8 × 128 bytes = 32 MiB per hash, about 50–100 ms: OWASP's minimum for scrypt. */
export const DEFAULT_LOG_N = 15;

export interface ParsedHash {
  logN: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

export function parsePasswordHash(text: string): ParsedHash | undefined {
  const m = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,})\$([A-Za-z0-9+/]{32,})$/.exec(text);
  if (!m) return undefined;
  const logN = Number(m[1]);
  const r = Number(m[2]);
  const p = Number(m[3]);
  // Bounds keep a typo in the config from asking for gigabytes per login.
  if (logN < 10 || logN > 20 || r < 1 || r > 32 || p < 1 || p > 16) return undefined;
  return { logN, r, p, salt: Buffer.from(m[4]!, 'base64'), hash: Buffer.from(m[5]!, 'base64') };
}

export async function hashPassword(password: string, logN = DEFAULT_LOG_N): Promise<string> {
  const salt = randomBytes(SALT_LENGTH);
  const r = 8;
  const p = 1;
  const hash = await scrypt(password, salt, KEY_LENGTH, { N: 2 ** logN, r, p });
  return `$scrypt$ln=${logN},r=${r},p=${p}$${b64(salt)}$${b64(hash)}`;
}

export async function verifyPassword(password: string, parsed: ParsedHash): Promise<boolean> {
  const actual = await scrypt(password, parsed.salt, parsed.hash.length, { N: 2 ** parsed.logN, r: parsed.r, p: parsed.p });
  return actual.length === parsed.hash.length && timingSafeEqual(actual, parsed.hash);
}

let dummy: Promise<ParsedHash> | undefined;
/** Burns the time of one verification, for unknown users. */
export async function verifyNothing(password: string): Promise<false> {
  dummy ??= hashPassword('mailbridge-dummy').then((h) => parsePasswordHash(h)!);
  await verifyPassword(password, await dummy);
  return false;
}

function scrypt(password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  // Node's default maxmem (32 MiB) is exactly the cost of ln=15,r=8; leave headroom.
  const maxmem = 256 * (options.N ?? 0) * (options.r ?? 8) + 1024 * 1024;
  return new Promise((resolve, reject) =>
    scryptCb(password.normalize('NFC'), salt, keylen, { ...options, maxmem }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

function b64(buf: Buffer): string {
  return buf.toString('base64').replace(/=+$/, '');
}
