/**
 * Client assertions (private_key_jwt, facts §1.3): RS256 with the SHA-1 `x5t`, or PS256 with
 * `x5t#S256`, checked against the certificates registered on the app. Checks and their errors:
 * assertion type (90011), parse (50027), iss = sub (50048), iss = client_id (700021), key found by
 * thumbprint and inside its validity (700027), signature (700027), aud = this tenant's token
 * endpoint (50027), nbf/exp (700024). jti is not checked for replay: MSAL reuses an assertion until
 * it expires, and Entra accepts that.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { compactVerify, decodeJwt, decodeProtectedHeader, type JWTPayload, type ProtectedHeaderParameters } from 'jose';
import type { SandboxApp } from '../model.ts';
import { AadstsError } from './aadsts.ts';

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Entra tolerates a few minutes of clock skew on assertion times. */
const SKEW_S = 300;

export interface RegisteredCert {
  pem: string;
  x509: X509Certificate;
  /** Hex SHA-1 thumbprint, upper case, as the portal shows it. */
  sha1Hex: string;
  x5t: string;
  x5tS256: string;
}

const certCache = new Map<string, RegisteredCert>();

export function registeredCert(pem: string): RegisteredCert {
  let c = certCache.get(pem);
  if (!c) {
    const x509 = new X509Certificate(pem);
    const sha1 = createHash('sha1').update(x509.raw).digest();
    c = {
      pem,
      x509,
      sha1Hex: sha1.toString('hex').toUpperCase(),
      x5t: sha1.toString('base64url'),
      x5tS256: createHash('sha256').update(x509.raw).digest('base64url'),
    };
    certCache.set(pem, c);
  }
  return c;
}

export interface DecodedAssertion {
  header: ProtectedHeaderParameters;
  claims: JWTPayload;
}

/** For the request log: header and claims, or undefined when the JWT does not parse. */
export function decodeAssertion(jwt: string): DecodedAssertion | undefined {
  try {
    return { header: decodeProtectedHeader(jwt), claims: decodeJwt(jwt) };
  } catch {
    return undefined;
  }
}

/** .NET-style round-trip time as Entra prints it: 2023-06-06T09:27:23.4575014Z. */
function entraTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$10000Z');
}

export interface AssertionCheck {
  assertion: string;
  assertionType: string | undefined;
  app: SandboxApp;
  clientId: string;
  /** Token endpoint URLs this request may name as aud (tenant ID and domains, v2 and v1). */
  audiences: string[];
  now: number;
}

/** Returns the certificate that signed the assertion, or throws the AADSTS error Entra gives. */
export async function verifyClientAssertion(check: AssertionCheck): Promise<RegisteredCert> {
  const { assertion, app, now } = check;
  if (check.assertionType !== JWT_BEARER) throw new AadstsError(90011);
  const decoded = decodeAssertion(assertion);
  if (!decoded) throw new AadstsError(50027);
  const { header, claims } = decoded;
  if (claims.iss !== claims.sub) throw new AadstsError(50048, { appId: app.appId });
  if (String(claims.iss).toLowerCase() !== check.clientId.toLowerCase()) throw new AadstsError(700021);

  const s256 = typeof header['x5t#S256'] === 'string' ? (header['x5t#S256'] as string) : undefined;
  const sha1 = typeof header.x5t === 'string' ? header.x5t : undefined;
  const certs = app.certificates.map((c) => registeredCert(c.pem));
  const cert = certs.find((c) => (s256 ? c.x5tS256 === s256 : c.x5t === sha1));
  const usedThumb = s256 ? Buffer.from(s256, 'base64url').toString('hex').toUpperCase() : sha1 ? Buffer.from(sha1, 'base64url').toString('hex').toUpperCase() : '';
  if (!cert) {
    throw new AadstsError(700027, { reason: 'The key was not found.', thumbprint: usedThumb, found: '', appId: app.appId });
  }
  const start = Date.parse(cert.x509.validFrom);
  const end = Date.parse(cert.x509.validTo);
  if (now > end || now < start) {
    throw new AadstsError(700027, {
      reason: 'The key used is expired.',
      thumbprint: usedThumb,
      found: `, Found key 'Start=${new Date(start).toISOString()}, End=${new Date(end).toISOString()}'`,
      appId: app.appId,
    });
  }
  try {
    await compactVerify(assertion, cert.x509.publicKey, { algorithms: ['RS256', 'PS256'] });
  } catch {
    throw new AadstsError(700027, {
      reason: 'The provided signature value did not match the expected signature value.',
      thumbprint: usedThumb,
      found: `, Found key 'Start=${new Date(start).toISOString()}, End=${new Date(end).toISOString()}'`,
      appId: app.appId,
    });
  }
  const norm = (u: string) => u.replace(/\/+$/, '').toLowerCase();
  // A list-valued aud is rejected too: captured as AADSTS50027 (panva/openid-client#348).
  if (typeof claims.aud !== 'string' || !check.audiences.map(norm).includes(norm(claims.aud))) throw new AadstsError(50027);
  const nowS = now / 1000;
  const nbf = typeof claims.nbf === 'number' ? claims.nbf : undefined;
  const exp = typeof claims.exp === 'number' ? claims.exp : undefined;
  if (exp === undefined || nowS > exp + SKEW_S || (nbf !== undefined && nowS < nbf - SKEW_S)) {
    throw new AadstsError(700024, {
      now: entraTime(now),
      nbf: nbf === undefined ? '' : entraTime(nbf * 1000),
      exp: exp === undefined ? '' : entraTime(exp * 1000),
    });
  }
  return cert;
}
