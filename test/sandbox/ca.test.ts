import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createSandboxCa } from '../../src/sandbox/ca.ts';

test('server certificates chain to the sandbox CA and name loopback', () => {
  const ca = createSandboxCa();
  const server = ca.issueServer();
  const caCert = new X509Certificate(ca.certPem);
  const leaf = new X509Certificate(server.certPem);
  assert.ok(caCert.ca);
  assert.ok(leaf.verify(caCert.publicKey));
  assert.ok(leaf.checkIssued(caCert));
  assert.equal(leaf.checkHost('localhost'), 'localhost');
  assert.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
});

test('a CA loaded from its PEM issues certificates the first one verifies', () => {
  const first = createSandboxCa();
  const again = createSandboxCa({ keyPem: first.keyPem, certPem: first.certPem });
  assert.equal(again.certPem, first.certPem);
  const leaf = new X509Certificate(again.issueServer(['mail.sandbox.test']).certPem);
  assert.ok(leaf.verify(new X509Certificate(first.certPem).publicKey));
  assert.equal(leaf.checkHost('mail.sandbox.test'), 'mail.sandbox.test');
});

test('self-signed app certificates carry the requested validity', () => {
  const ca = createSandboxCa();
  const notAfter = new Date('2020-01-02T00:00:00Z');
  const c = new X509Certificate(ca.issueSelfSigned('expired app', { notBefore: new Date('2019-01-01T00:00:00Z'), notAfter }).certPem);
  assert.equal(new Date(c.validTo).toISOString(), notAfter.toISOString());
  assert.ok(c.verify(c.publicKey));
});
