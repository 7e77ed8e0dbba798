/**
 * Shared pieces of the identity tests: an in-memory kv, a SecretBox that really seals (so a test
 * can prove nothing is stored in clear), certificates, and a tiny HTTPS token endpoint stub for the
 * behaviour the sandbox cannot be asked for (429, 5xx, counting every request).
 */
import { createServer as createHttpsServer } from 'node:https';
import { once } from 'node:events';
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { SecretBox } from '../../src/config/secret-box.ts';
import type { KeyValue } from '../../src/store/index.ts';
import { registerSecret } from '../../src/log/redact.ts';
import { createSandboxCa, type SandboxCa } from '../../src/sandbox/ca.ts';

export function memoryKv(): KeyValue & { rows: Map<string, string> } {
  const rows = new Map<string, string>();
  const k = (ns: string, key: string) => `${ns}\u0000${key}`;
  return {
    rows,
    async get(ns, key) {
      return rows.get(k(ns, key));
    },
    async set(ns, key, value) {
      rows.set(k(ns, key), value);
    },
    async delete(ns, key) {
      return rows.delete(k(ns, key));
    },
    async add(ns, key, value) {
      if (!rows.has(k(ns, key))) rows.set(k(ns, key), value);
      return rows.get(k(ns, key))!;
    },
    async list(ns) {
      return [...rows]
        .filter(([key]) => key.startsWith(`${ns}\u0000`))
        .map(([key, value]) => ({ key: key.slice(ns.length + 1), value, updatedAt: new Date().toISOString() }));
    },
  };
}

/**
 * Stand-in for config/secrets.ts (being written elsewhere): `enc:test:` + base64, reversible, and
 * plain text passes through, as the SecretBox contract says. Revealed values are registered.
 */
export const testBox: SecretBox & { sealed: number } = {
  sealed: 0,
  seal(plain) {
    this.sealed++;
    return `enc:test:${Buffer.from(plain, 'utf8').toString('base64')}`;
  },
  reveal(stored) {
    const clear = this.open(stored);
    registerSecret(clear);
    return clear;
  },
  open(stored) {
    return stored.startsWith('enc:test:') ? Buffer.from(stored.slice(9), 'base64').toString('utf8') : stored;
  },
};

export interface StubRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  form: Record<string, string>;
}

export type StubHandler = (req: StubRequest, res: ServerResponse) => void;

/** An HTTPS server with a certificate from its own CA (tests trust it through caFile). */
export async function httpsStub(handler: StubHandler, ca: SandboxCa = sharedCa()) {
  const { keyPem, certPem } = ca.issueServer(['localhost', '127.0.0.1']);
  const requests: StubRequest[] = [];
  const server = createHttpsServer({ key: keyPem, cert: certPem }, (req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'https://localhost');
      const r = { method: req.method ?? 'GET', path: url.pathname, headers: req.headers, form: Object.fromEntries(new URLSearchParams(body)) };
      requests.push(r);
      handler(r, res);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    caPem: ca.certPem,
    requests,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

let ca: SandboxCa | undefined;
export function sharedCa(): SandboxCa {
  return (ca ??= createSandboxCa());
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}

/** A JWT-shaped access token with the given claims (unsigned: mailbridge only decodes it for describe()). */
export function fakeJwt(claims: Record<string, unknown>): string {
  const b = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b({ typ: 'JWT', alg: 'RS256' })}.${b(claims)}.${Buffer.from('signature-bytes').toString('base64url')}`;
}

export const GUID = () => randomUUID();

export interface TestCert {
  certPem: string;
  /** Unencrypted PKCS#8 PEM. */
  keyPem: string;
  key: KeyObject;
  forgeCert: forge.pki.Certificate;
}

/**
 * A self-signed RSA certificate like the ones admins upload to app registrations. Node makes the
 * key (fast); node-forge makes the certificate (Node's crypto cannot issue X.509).
 */
export function makeCert(options: { cn?: string; notBefore?: Date; notAfter?: Date } = {}): TestCert {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const fkey = forge.pki.privateKeyFromPem(keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(fkey.n, fkey.e);
  cert.serialNumber = '01' + randomUUID().replace(/-/g, '').slice(0, 30);
  cert.validity.notBefore = options.notBefore ?? new Date(Date.now() - 86_400_000);
  cert.validity.notAfter = options.notAfter ?? new Date(Date.now() + 365 * 86_400_000);
  const subject = [{ name: 'commonName', value: options.cn ?? 'mailbridge test' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.sign(fkey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem, key: privateKey, forgeCert: cert };
}

/** PFX/PKCS#12 with certificate and key, as Windows' certificate export writes it. */
export function makePfx(c: TestCert, password: string, algorithm: '3des' | 'aes256' = 'aes256'): Buffer {
  const asn1 = forge.pkcs12.toPkcs12Asn1(forge.pki.privateKeyFromPem(c.keyPem), [c.forgeCert], password, { algorithm });
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
}

/** A CONNECT proxy: tunnels, or answers with `status` (407, 403) instead. */
export async function connectProxy(status?: number) {
  const connects: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createHttpServer();
  server.on('connect', (req, client: Socket) => {
    connects.push(req.url ?? '');
    sockets.add(client);
    if (status) return void client.end(`HTTP/1.1 ${status} Nope\r\nProxy-Authenticate: Basic realm="corp"\r\n\r\n`);
    const [host, port] = (req.url ?? '').split(':');
    const upstream = connect(Number(port), host!, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connects,
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
