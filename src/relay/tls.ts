/**
 * The listeners' TLS certificate: the admin's (relay.tls.certPath/keyPath, PEM), or one mailbridge
 * generates at first start — self-signed for the host name, localhost and the loopback addresses —
 * and keeps in `<dataDir>/tls/` so clients that pinned it keep working after a restart
 * (src/util/certificates.ts makes it).
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
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
  // Made apart, in a worker thread: node-forge never enters the relay's own heap.
  const { selfSignedCertificateApart } = await import('../util/certificate-worker.ts');
  const { keyPem: key, certPem: cert } = await selfSignedCertificateApart({
    commonName: options.hostname,
    organization: 'mailbridge relay',
    dnsNames: ['localhost'],
    notBefore: new Date(Date.now() - 86_400_000),
    notAfter: new Date(Date.now() + 10 * 365 * 86_400_000),
    use: 'server',
  });
  const made = { key, cert };
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
