/**
 * The token signing key: an RSA key pair (made at start, or the one the sandbox kept in its folder,
 * so tokens issued before a restart still verify after it), with a
 * self-signed certificate like Entra's (CN=accounts.accesscontrol.windows.net), because the JWKS
 * publishes x5c and x5t and Entra's kid is the SHA-1 thumbprint (x5t). Tokens are RS256.
 */
import { createHash, createPrivateKey, X509Certificate, type JsonWebKey } from 'node:crypto';
import { exportJWK, importPKCS8, SignJWT, type JWTPayload } from 'jose';
import { selfSigned, type KeyAndCert } from '../ca.ts';

export interface SigningKey {
  kid: string;
  /** Public JWK as the JWKS endpoints publish it (kty, use, kid, x5t, n, e, x5c). */
  jwk: JsonWebKey & { kid: string; x5t: string; x5c: string[]; use: string };
  sign(claims: JWTPayload): Promise<string>;
}

const DAY = 86_400_000;

/** A new key pair and certificate as Entra's (PEM), for `createSigningKey` and for keeping. */
export function newSigningPair(): KeyAndCert {
  return selfSigned('accounts.accesscontrol.windows.net', new Date(Date.now() - DAY), new Date(Date.now() + 5 * 365 * DAY));
}

export async function createSigningKey(pair: KeyAndCert = newSigningPair()): Promise<SigningKey> {
  const { keyPem, certPem } = pair;
  const cert = new X509Certificate(certPem);
  const x5t = createHash('sha1').update(cert.raw).digest('base64url');
  // node-forge writes PKCS#1; jose imports PKCS#8.
  const pkcs8 = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'pem' }).toString();
  const privateKey = await importPKCS8(pkcs8, 'RS256', { extractable: false });
  const pub = await exportJWK(cert.publicKey);
  const jwk = { kty: pub.kty, use: 'sig', kid: x5t, x5t, n: pub.n, e: pub.e, x5c: [cert.raw.toString('base64')] };
  return {
    kid: x5t,
    jwk,
    sign: (claims) => new SignJWT(claims).setProtectedHeader({ typ: 'JWT', alg: 'RS256', x5t, kid: x5t }).sign(privateKey),
  };
}
