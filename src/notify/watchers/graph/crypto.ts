/**
 * Rich notifications (includeResourceData, microsoft-facts.md §4.5): the listener's encryption key
 * pair and certificate, and decryption of a notification's `encryptedContent`.
 *
 * - Key: RSA 2048 in a self-signed certificate (src/util/certificates.ts; Graph wants the public
 *   key as a base64 DER certificate). Kept in kv
 *   (`k\t<listener>`) with the private key sealed by the SecretBox; replaced 7 days before the
 *   certificate runs out, under a new encryptionCertificateId, so subscriptions made with the old
 *   one are recognised and recreated.
 * - Decrypt: the symmetric key with RSA-OAEP (SHA-1, as Graph uses it), then the HMAC-SHA256 over
 *   the encrypted bytes checked in constant time, then AES-256-CBC with PKCS7 padding and the first
 *   16 bytes of the key as IV. A failure throws with a reason safe to show (no key material).
 *
 * Not done: the collection's `validationTokens` (JWTs from Entra for the app) are not validated —
 * the watcher is not given the app id and tenant they must name. The clientState check still
 * applies to every rich item.
 */
import { constants, createDecipheriv, createHmac, createPrivateKey, privateDecrypt, timingSafeEqual, X509Certificate, type KeyObject } from 'node:crypto';
import { selfSignedCertificate } from '../../../util/certificates.ts';
import type { KeyValue } from '../../../store/index.ts';
import { KV_NAMESPACE } from './sync.ts';

const DAY = 86_400_000;

export interface EncryptionKey {
  /** encryptionCertificateId sent with each subscription (≤ 128 characters). */
  id: string;
  /** The certificate, base64 DER (what `encryptionCertificate` takes). */
  certificate: string;
  privateKey: KeyObject;
}

interface StoredKey {
  id: string;
  certPem: string;
  /** PKCS#8 PEM, sealed. */
  key: string;
}

export function keyRecordKey(listener: string): string {
  return `k\t${listener}`;
}

function issue(listener: string, now: number): { certPem: string; keyPem: string } {
  return selfSignedCertificate({
    commonName: `mailbridge graph notifications ${listener}`,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 2 * 365 * DAY),
    use: 'encryption',
  });
}

/** The listener's key, from kv or made (and stored) now. */
export async function encryptionKey(kv: KeyValue, listener: string, seal: (v: string) => string, reveal: (v: string) => string, now: number): Promise<EncryptionKey> {
  const raw = await kv.get(KV_NAMESPACE, keyRecordKey(listener));
  if (raw) {
    try {
      const s = JSON.parse(raw) as StoredKey;
      const cert = new X509Certificate(s.certPem);
      if (Date.parse(cert.validTo) - 7 * DAY > now) {
        return { id: s.id, certificate: cert.raw.toString('base64'), privateKey: createPrivateKey(reveal(s.key)) };
      }
    } catch {
      // Unreadable (another SecretBox key, damaged): a new key; subscriptions made with the old one are recreated.
    }
  }
  const made = issue(listener, now);
  const id = `mailbridge-${listener}-${new Date(now).toISOString().replace(/[^0-9]/g, '').slice(0, 14)}`.slice(0, 128);
  await kv.set(KV_NAMESPACE, keyRecordKey(listener), JSON.stringify({ id, certPem: made.certPem, key: seal(made.keyPem) } satisfies StoredKey));
  return { id, certificate: new X509Certificate(made.certPem).raw.toString('base64'), privateKey: createPrivateKey(made.keyPem) };
}

/** The resource of a rich notification item; throws an Error whose message says what was wrong. */
export function decryptContent(encrypted: unknown, key: EncryptionKey): Record<string, unknown> {
  const e = encrypted as { data?: unknown; dataSignature?: unknown; dataKey?: unknown; encryptionCertificateId?: unknown } | undefined;
  if (!e || typeof e.data !== 'string' || typeof e.dataSignature !== 'string' || typeof e.dataKey !== 'string') throw new Error('encryptedContent lacks data, dataSignature or dataKey');
  if (e.encryptionCertificateId !== key.id) throw new Error(`made for encryption certificate "${String(e.encryptionCertificateId)}", not the current "${key.id}"`);
  let symmetric: Buffer;
  try {
    symmetric = privateDecrypt({ key: key.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, Buffer.from(e.dataKey, 'base64'));
  } catch {
    throw new Error('the data key does not decrypt with the listener\'s private key');
  }
  if (symmetric.length !== 32) throw new Error(`the data key has ${symmetric.length} bytes, not 32`);
  const data = Buffer.from(e.data, 'base64');
  const expected = createHmac('sha256', symmetric).update(data).digest();
  const given = Buffer.from(e.dataSignature, 'base64');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new Error('the data signature does not match (content altered?)');
  let plain: string;
  try {
    const decipher = createDecipheriv('aes-256-cbc', symmetric, symmetric.subarray(0, 16));
    plain = Buffer.concat([decipher.update(data), decipher.final()]).toString('utf8');
  } catch {
    throw new Error('the data does not decrypt (bad padding)');
  }
  const parsed = JSON.parse(plain) as unknown;
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('the decrypted data is not a JSON object');
  return parsed as Record<string, unknown>;
}
