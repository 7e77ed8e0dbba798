/**
 * App credentials: the client secret or the certificate a connection proves itself with, read
 * once into memory in the form MSAL wants, with the dates that matter to an admin.
 *
 * - Client secret: revealed through the SecretBox (and so registered with the log scrubber). Its
 *   expiry is not visible to the app, so the admin copies it into `clientSecretExpires`; mailbridge
 *   warns 30 days ahead and refuses to send an expired secret (the admin gets MB_CLIENT_SECRET_EXPIRED
 *   instead of a round trip ending in AADSTS7000222).
 * - Certificate: PEM (certificate and key in one file, or the key in `privateKeyPath`; the key may
 *   be encrypted with `password`) or PFX/PKCS#12 with `password`. Node's crypto reads PEM keys
 *   (encrypted PKCS#8 and legacy OpenSSL encryption) but not PKCS#12, so node-forge opens PFX files.
 *   The key must be RSA and belong to the certificate; the certificate's validity comes from the
 *   certificate itself. PS256 with the SHA-256 thumbprint (x5t#S256) is the default, as current Entra
 *   docs say; RS256 with the SHA-1 thumbprint (x5t) stays selectable for older setups.
 */
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
// node-forge (PKCS#12, which Node's crypto cannot read) loads only for a .pfx certificate.
import type Forge from 'node-forge';
import type { ConnectionConfig } from './config.ts';
import type { SecretBox } from '../config/secret-box.ts';
import { MbError } from '../errors/index.ts';
import { registerSecret } from '../log/redact.ts';

export const WARN_DAYS = 30;
const DAY = 86_400_000;
/** Entra ID caps client secret lifetime at 24 months (microsoft-facts.md §6); a little slack for time zones. */
const MAX_SECRET_MONTHS = 24;

export interface LoadedCertificate {
  path: string;
  format: 'pem' | 'pfx';
  algorithm: 'PS256' | 'RS256';
  /** Unencrypted PKCS#8 PEM, in memory only (masked by the scrubber's PEM rule and registered). */
  privateKeyPem: string;
  thumbprintSha1: string;
  thumbprintSha256: string;
  /** The public certificate (PEM): what Entra ID has registered, and what signs proofs with the key. */
  certPem: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
}

export type Credential =
  | { kind: 'secret'; clientSecret: string; expires?: Date }
  | { kind: 'certificate'; certificate: LoadedCertificate }
  | { kind: 'none' };

/** Reveal a stored secret field (enc:v1:… or plain) and make sure the scrubber knows it. */
export function revealSecret(box: SecretBox, stored: string, connection: string, field: string): string {
  let clear: string;
  try {
    clear = box.reveal(stored);
  } catch (err) {
    if (err instanceof MbError) throw err;
    throw new MbError('MB_IDENTITY_SECRET_UNREADABLE', { connection, field, detail: (err as Error).message }, { cause: err });
  }
  registerSecret(clear);
  return clear;
}

/**
 * The credential a connection presents to the token endpoint. Client credentials need exactly
 * one; auth code may have one (a "Web" redirect, confidential) or none (public client); device
 * code never sends one (a public client flow).
 */
export async function loadCredential(name: string, conn: ConnectionConfig, box: SecretBox): Promise<Credential> {
  if (conn.flow === 'device-code') return { kind: 'none' };
  if (conn.clientSecret && conn.certificate) throw new MbError('MB_IDENTITY_TWO_CREDENTIALS', { connection: name });
  if (conn.clientSecret) {
    return {
      kind: 'secret',
      clientSecret: revealSecret(box, conn.clientSecret, name, `connections.${name}.clientSecret`),
      expires: secretExpiry(conn),
    };
  }
  if (conn.certificate) {
    const password =
      conn.certificate.password !== undefined
        ? revealSecret(box, conn.certificate.password, name, `connections.${name}.certificate.password`)
        : undefined;
    return { kind: 'certificate', certificate: await loadCertificate(name, conn.certificate, password) };
  }
  if (conn.flow === 'client-credentials') throw new MbError('MB_IDENTITY_NO_CREDENTIAL', { connection: name });
  return { kind: 'none' };
}

/** The configured secret expiry: the whole day counts (the portal shows a date), so expiry is its end, UTC. */
export function secretExpiry(conn: Pick<ConnectionConfig, 'clientSecretExpires'>): Date | undefined {
  return conn.clientSecretExpires ? new Date(`${conn.clientSecretExpires}T23:59:59.999Z`) : undefined;
}

export type ExpiryContext = {
  connection: string;
  clientId: string;
  portal: string;
};

/** Throws when the credential is past its date (or not yet valid); no request is made with it. */
export function assertUsable(cred: Credential, ctx: ExpiryContext, now: number): void {
  if (cred.kind === 'secret' && cred.expires && now > cred.expires.getTime()) {
    throw new MbError('MB_CLIENT_SECRET_EXPIRED', { ...ctx, expires: day(cred.expires) });
  }
  if (cred.kind === 'certificate') {
    const c = cred.certificate;
    if (now > c.notAfter.getTime()) {
      throw new MbError('MB_CERT_EXPIRED', { ...ctx, path: c.path, notAfter: day(c.notAfter), thumbprint: c.thumbprintSha1.toUpperCase() });
    }
    if (now < c.notBefore.getTime()) {
      throw new MbError('MB_CERT_NOT_YET_VALID', { ...ctx, path: c.path, notBefore: c.notBefore.toISOString() });
    }
  }
}

/** What an admin should act on before it fails: expiry within 30 days, implausible or unknown dates. */
export function credentialWarnings(cred: Credential, ctx: ExpiryContext, now: number): MbError[] {
  const out: MbError[] = [];
  if (cred.kind === 'secret') {
    if (!cred.expires) {
      out.push(new MbError('MB_CLIENT_SECRET_EXPIRY_UNKNOWN', ctx));
    } else {
      const left = cred.expires.getTime() - now;
      if (left > 0 && left <= WARN_DAYS * DAY) {
        out.push(new MbError('MB_CLIENT_SECRET_EXPIRING', { ...ctx, expires: day(cred.expires), days: Math.ceil(left / DAY) }));
      }
      const limit = new Date(now);
      limit.setUTCMonth(limit.getUTCMonth() + MAX_SECRET_MONTHS);
      if (cred.expires.getTime() > limit.getTime() + DAY) {
        out.push(new MbError('MB_CLIENT_SECRET_EXPIRY_TOO_FAR', { ...ctx, expires: day(cred.expires) }));
      }
    }
  }
  if (cred.kind === 'certificate') {
    const c = cred.certificate;
    const left = c.notAfter.getTime() - now;
    if (left > 0 && left <= WARN_DAYS * DAY) {
      out.push(
        new MbError('MB_CERT_EXPIRING', {
          ...ctx,
          path: c.path,
          notAfter: day(c.notAfter),
          days: Math.ceil(left / DAY),
          thumbprint: c.thumbprintSha1.toUpperCase(),
        }),
      );
    }
  }
  return out;
}

function day(d: Date): string {
  return d.toISOString().slice(0, 10);
}

// ── certificates ─────────────────────────────────────────────────────────────────────────────────

interface CertificateInput {
  path: string;
  privateKeyPath?: string;
  algorithm: 'PS256' | 'RS256';
}

export async function loadCertificate(connection: string, cfg: CertificateInput, password: string | undefined): Promise<LoadedCertificate> {
  const file = await read(connection, cfg.path);
  const isPem = file.includes('-----BEGIN ');
  let certPem: string;
  let key: KeyObject;
  let keyPath = cfg.path;
  let format: 'pem' | 'pfx';
  if (isPem) {
    format = 'pem';
    const text = file.toString('utf8');
    const cert = pemBlocks(text, 'CERTIFICATE')[0];
    if (!cert) throw new MbError('MB_CERT_NO_CERTIFICATE', { connection, path: cfg.path });
    certPem = cert;
    let keyText = pemKey(text);
    if (!keyText && cfg.privateKeyPath) {
      keyPath = cfg.privateKeyPath;
      keyText = pemKey((await read(connection, cfg.privateKeyPath)).toString('utf8'));
    }
    if (!keyText) throw new MbError('MB_CERT_NO_KEY', { connection, path: cfg.privateKeyPath ?? cfg.path });
    key = openPemKey(connection, keyPath, keyText, password);
  } else {
    format = 'pfx';
    const opened = openPfx((await import('node-forge')).default, connection, cfg.path, file, password);
    certPem = opened.certPem;
    key = opened.key;
  }

  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certPem);
  } catch (err) {
    throw new MbError('MB_CERT_UNREADABLE', { connection, path: cfg.path, detail: (err as Error).message }, { cause: err });
  }
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'rsa-pss') {
    throw new MbError('MB_CERT_NOT_RSA', { connection, path: keyPath, type: String(key.asymmetricKeyType).toUpperCase() });
  }
  if (!x509.checkPrivateKey(key)) {
    throw new MbError('MB_CERT_KEY_MISMATCH', { connection, path: cfg.path, keyPath });
  }
  const privateKeyPem = key.export({ type: 'pkcs8', format: 'pem' }).toString();
  registerSecret(privateKeyPem);
  return {
    path: cfg.path,
    format,
    algorithm: cfg.algorithm,
    privateKeyPem,
    thumbprintSha1: hex(x509.fingerprint),
    thumbprintSha256: hex(x509.fingerprint256),
    certPem: x509.toString(),
    subject: x509.subject.replace(/\n/g, ', '),
    notBefore: x509.validFromDate,
    notAfter: x509.validToDate,
  };
}

async function read(connection: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new MbError('MB_CERT_UNREADABLE', { connection, path, detail: (err as Error).message }, { cause: err });
  }
}

function hex(fingerprint: string): string {
  return fingerprint.replace(/:/g, '').toLowerCase();
}

function pemBlocks(text: string, label: string): string[] {
  const re = new RegExp(`-----BEGIN ${label}-----[\\s\\S]*?-----END ${label}-----`, 'g');
  return text.match(re) ?? [];
}

/** The first private key block of any PEM flavour (PKCS#8, encrypted PKCS#8, PKCS#1 RSA, EC). */
function pemKey(text: string): string | undefined {
  return /-----BEGIN ((?:ENCRYPTED |RSA |EC )?PRIVATE KEY)-----[\s\S]*?-----END \1-----/.exec(text)?.[0];
}

function openPemKey(connection: string, path: string, pem: string, password: string | undefined): KeyObject {
  const encrypted = pem.includes('ENCRYPTED PRIVATE KEY') || /Proc-Type:\s*4,ENCRYPTED/.test(pem);
  if (encrypted && password === undefined) throw new MbError('MB_CERT_PASSWORD_REQUIRED', { connection, path });
  try {
    return createPrivateKey(encrypted ? { key: pem, format: 'pem', passphrase: password } : { key: pem, format: 'pem' });
  } catch (err) {
    if (encrypted) throw new MbError('MB_CERT_WRONG_PASSWORD', { connection, path }, { cause: err });
    throw new MbError('MB_CERT_UNREADABLE', { connection, path, detail: (err as Error).message }, { cause: err });
  }
}

function openPfx(forge: typeof Forge, connection: string, path: string, file: Buffer, password: string | undefined): { certPem: string; key: KeyObject } {
  let p12: Forge.pkcs12.Pkcs12Pfx;
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(file.toString('binary')));
    // A PFX exported without a password still has a MAC over the empty password.
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, password ?? '');
  } catch (err) {
    const message = (err as Error).message ?? String(err);
    if (/MAC could not be verified|Invalid password/i.test(message)) {
      throw new MbError(password === undefined ? 'MB_CERT_PASSWORD_REQUIRED' : 'MB_CERT_WRONG_PASSWORD', { connection, path }, { cause: err });
    }
    throw new MbError('MB_CERT_UNREADABLE', { connection, path, detail: `not a PEM or PFX/PKCS#12 file (${message})` }, { cause: err });
  }
  const oids = forge.pki.oids;
  const certs = (p12.getBags({ bagType: oids.certBag! })[oids.certBag!] ?? []).filter((b) => b.cert);
  const keys = [
    ...(p12.getBags({ bagType: oids.pkcs8ShroudedKeyBag! })[oids.pkcs8ShroudedKeyBag!] ?? []),
    ...(p12.getBags({ bagType: oids.keyBag! })[oids.keyBag!] ?? []),
  ].filter((b) => b.key);
  if (certs.length === 0) throw new MbError('MB_CERT_NO_CERTIFICATE', { connection, path });
  if (keys.length === 0) throw new MbError('MB_CERT_NO_KEY', { connection, path });
  const key = createPrivateKey(forge.pki.privateKeyToPem(keys[0]!.key!));
  // With a chain in the file, the app's certificate is the one matching the key.
  const pems = certs.map((b) => forge.pki.certificateToPem(b.cert!));
  const keyPub = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const certPem =
    pems.find((p) => new X509Certificate(p).publicKey.export({ type: 'spki', format: 'der' }).equals(keyPub)) ?? pems[0]!;
  return { certPem, key };
}
