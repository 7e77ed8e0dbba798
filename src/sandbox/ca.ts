/**
 * The sandbox's own certificate authority: every sandbox endpoint speaks TLS like the real
 * service, with a server certificate from this CA. Clients trust it through `caPem` (mailbridge's
 * connection `caFile`, or NODE_EXTRA_CA_CERTS). node-forge makes the certificates because Node's
 * crypto can verify X.509 but cannot issue it.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface KeyAndCert {
  keyPem: string;
  certPem: string;
}

export interface SandboxCa extends KeyAndCert {
  /** A server certificate for these DNS names and IP addresses (default: localhost, 127.0.0.1, ::1). */
  issueServer(names?: string[]): KeyAndCert;
  /** A client certificate (for app credentials), self-signed as Entra expects uploaded certificates to be. */
  issueSelfSigned(commonName: string, options?: { notBefore?: Date; notAfter?: Date }): KeyAndCert;
}

const DAY = 86_400_000;

/**
 * A new CA, or the one in `existing` (PEM key and certificate) so that a restarted sandbox keeps the
 * trust anchor that clients were already given.
 */
export function createSandboxCa(existing?: KeyAndCert, commonName = 'mailbridge sandbox CA'): SandboxCa {
  const ca = existing
    ? { key: forge.pki.privateKeyFromPem(existing.keyPem), cert: forge.pki.certificateFromPem(existing.certPem) }
    : newCa(commonName);

  return {
    keyPem: forge.pki.privateKeyToPem(ca.key),
    certPem: forge.pki.certificateToPem(ca.cert),
    issueServer(names = ['localhost', '127.0.0.1', '::1']) {
      const k = rsaKeyPair();
      const c = baseCert(k.publicKey, new Date(Date.now() - DAY), new Date(Date.now() + 825 * DAY));
      c.setSubject([{ name: 'commonName', value: names[0] ?? 'localhost' }]);
      c.setIssuer(ca.cert.subject.attributes);
      c.setExtensions([
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        {
          name: 'subjectAltName',
          altNames: names.map((n) => (/^[\d.]+$|:/.test(n) ? { type: 7, ip: n } : { type: 2, value: n })),
        },
      ]);
      c.sign(ca.key, forge.md.sha256.create());
      return { keyPem: forge.pki.privateKeyToPem(k.privateKey), certPem: forge.pki.certificateToPem(c) };
    },
    issueSelfSigned(cn, options = {}) {
      return selfSigned(cn, options.notBefore ?? new Date(Date.now() - DAY), options.notAfter ?? new Date(Date.now() + 365 * DAY));
    },
  };
}

function newCa(commonName: string): { key: forge.pki.rsa.PrivateKey; cert: forge.pki.Certificate } {
  const keys = rsaKeyPair();
  const cert = baseCert(keys.publicKey, new Date(Date.now() - DAY), new Date(Date.now() + 3650 * DAY));
  const subject = [{ name: 'commonName', value: commonName }, { name: 'organizationName', value: 'mailbridge sandbox' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { key: keys.privateKey, cert };
}

export function selfSigned(commonName: string, notBefore: Date, notAfter: Date): KeyAndCert {
  const k = rsaKeyPair();
  const c = baseCert(k.publicKey, notBefore, notAfter);
  const subject = [{ name: 'commonName', value: commonName }];
  c.setSubject(subject);
  c.setIssuer(subject);
  c.setExtensions([{ name: 'basicConstraints', cA: false }, { name: 'keyUsage', digitalSignature: true, critical: true }]);
  c.sign(k.privateKey, forge.md.sha256.create());
  return { keyPem: forge.pki.privateKeyToPem(k.privateKey), certPem: forge.pki.certificateToPem(c) };
}

/** RSA keys from node:crypto (native, ~20x faster than forge's JS prime search), handed to forge. */
function rsaKeyPair(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    privateKey: forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey,
    publicKey: forge.pki.publicKeyFromPem(publicKey) as forge.pki.rsa.PublicKey,
  };
}

function baseCert(publicKey: forge.pki.PublicKey, notBefore: Date, notAfter: Date): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // Positive serial: a leading 0x00..0x7f byte keeps the DER integer positive.
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  return cert;
}
