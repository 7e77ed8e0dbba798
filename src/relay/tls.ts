/**
 * The listeners' TLS certificate: the admin's (relay.tls.certPath/keyPath, PEM), or one mailbridge
 * generates at first start — self-signed for the host name, localhost and the loopback addresses —
 * and keeps in `<dataDir>/tls/` so clients that pinned it keep working after a restart. Node's
 * crypto makes the RSA key; node-forge signs the certificate (Node cannot issue X.509).
 */
import { generateKeyPairSync, randomBytes, X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import forge from 'node-forge';
import { MbError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';

export interface TlsMaterial {
  key: string;
  cert: string;
  /** Where it came from: the configured paths, or the generated files. */
  source: 'config' | 'generated';
  certPath: string;
}

export async function loadTls(options: { certPath?: string; keyPath?: string; dataDir: string; hostname: string; log: Logger }): Promise<TlsMaterial> {
  if (options.certPath && options.keyPath) {
    const cert = await read(options.certPath);
    const key = await read(options.keyPath);
    check(options.certPath, () => new X509Certificate(cert));
    check(options.keyPath, () => createPrivateKey(key));
    return { key, cert, source: 'config', certPath: options.certPath };
  }
  const dir = join(options.dataDir, 'tls');
  const certPath = join(dir, 'relay-cert.pem');
  const keyPath = join(dir, 'relay-key.pem');
  try {
    const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
    return { key, cert, source: 'generated', certPath };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new MbError('MB_RELAY_TLS_UNREADABLE', { path: dir, detail: (err as Error).message }, { cause: err });
    }
  }
  const made = selfSigned(options.hostname);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // Key first, each via a temp name: a crash never leaves a certificate without its key.
    await writeFile(keyPath + '.tmp', made.key, { mode: 0o600 });
    await rename(keyPath + '.tmp', keyPath);
    await writeFile(certPath + '.tmp', made.cert, { mode: 0o644 });
    await rename(certPath + '.tmp', certPath);
  } catch (err) {
    throw new MbError('MB_RELAY_TLS_UNREADABLE', { path: dir, detail: (err as Error).message }, { cause: err });
  }
  options.log.info({ certPath }, 'relay: generated a self-signed TLS certificate for the listeners');
  return { ...made, source: 'generated', certPath };
}

function selfSigned(hostname: string): { key: string; cert: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 86_400_000);
  cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 86_400_000);
  const subject = [{ name: 'commonName', value: hostname }, { name: 'organizationName', value: 'mailbridge relay' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  const names = [...new Set([hostname, 'localhost'])];
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [...names.map((value) => ({ type: 2, value })), { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }],
    },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(privateKey), forge.md.sha256.create());
  return { key: privateKey, cert: forge.pki.certificateToPem(cert) };
}

async function read(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new MbError('MB_RELAY_TLS_UNREADABLE', { path, detail: (err as Error).message }, { cause: err });
  }
}

function check(path: string, parse: () => unknown): void {
  try {
    parse();
  } catch (err) {
    throw new MbError('MB_RELAY_TLS_UNREADABLE', { path, detail: (err as Error).message }, { cause: err });
  }
}
