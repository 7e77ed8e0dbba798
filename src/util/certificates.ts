/**
 * Self-signed certificates that mailbridge makes for itself: the relay listeners' TLS certificate
 * (src/relay/tls.ts), the Graph watcher's encryption certificate for rich notifications
 * (src/notify/watchers/graph/crypto.ts) and an app's new client certificate (src/check/rotate.ts,
 * src/setup/). Node's crypto makes the RSA key; node-forge signs the
 * certificate, since Node cannot issue X.509. The sandbox has its own CA (src/sandbox/ca.ts) and
 * never uses this, so the emulator shares no code with what it tests.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface SelfSignedOptions {
  commonName: string;
  organization?: string;
  notBefore: Date;
  notAfter: Date;
  /** server: TLS server certificate (names and loopback addresses in subjectAltName); encryption: key and data encipherment only; signing: an app's client credential (digital signature). */
  use: 'server' | 'encryption' | 'signing';
  /** DNS names for a server certificate (the common name is added). */
  dnsNames?: string[];
}

/** A new RSA 2048 key (PKCS#8 PEM) and its self-signed certificate (PEM), SHA-256 signed. */
export function selfSignedCertificate(o: SelfSignedOptions): { keyPem: string; certPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  // Positive (leading 01) and unique: clients that pinned an earlier one see a new serial.
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  cert.validity.notBefore = o.notBefore;
  cert.validity.notAfter = o.notAfter;
  const subject = [{ name: 'commonName', value: o.commonName }, ...(o.organization ? [{ name: 'organizationName', value: o.organization }] : [])];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  if (o.use === 'server') {
    const names = [...new Set([o.commonName, ...(o.dnsNames ?? [])])];
    cert.setExtensions([
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [...names.map((value) => ({ type: 2, value })), { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] },
    ]);
  } else if (o.use === 'signing') {
    cert.setExtensions([{ name: 'basicConstraints', cA: false }, { name: 'keyUsage', digitalSignature: true, critical: true }]);
  } else {
    cert.setExtensions([{ name: 'basicConstraints', cA: false }, { name: 'keyUsage', keyEncipherment: true, dataEncipherment: true, critical: true }]);
  }
  cert.sign(forge.pki.privateKeyFromPem(privateKey), forge.md.sha256.create());
  return { keyPem: privateKey, certPem: forge.pki.certificateToPem(cert) };
}
