import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const MODULE = pathToFileURL(join(import.meta.dirname, '..', '..', 'src', 'util', 'certificate-worker.ts')).href;

test('a certificate made apart is a server certificate for the names asked, its key matches, and node-forge never loads in the calling thread', () => {
  // A child process, so that "never loaded here" is about a fresh module graph, not this test runner's.
  const script = `
    import { registerHooks } from 'node:module';
    const forge = [];
    registerHooks({ load(url, ctx, next) { if (url.includes('/node-forge/')) forge.push(url); return next(url, ctx); } });
    const { selfSignedCertificateApart } = await import(${JSON.stringify(MODULE)});
    const made = await selfSignedCertificateApart({ commonName: 'relay.example.test', dnsNames: ['localhost'], notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000), use: 'server' });
    console.log(JSON.stringify({ ...made, forge }));`;
  const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as { keyPem: string; certPem: string; forge: string[] };
  assert.deepEqual(out.forge, [], 'node-forge loaded in the calling thread');
  const cert = new X509Certificate(out.certPem);
  assert.match(cert.subject, /CN=relay\.example\.test/);
  assert.ok(cert.checkHost('localhost'), cert.subjectAltName);
  assert.ok(cert.checkPrivateKey(createPrivateKey(out.keyPem)));
  assert.ok(cert.verify(createPublicKey(out.certPem)), 'self-signed');
});
