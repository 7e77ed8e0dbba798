/**
 * The TLS rule of the gateway: a server.listen that other hosts reach needs server.tls (HTTPS) or
 * the explicit opt-out server.insecure. `config check` reports it at server.listen before run time,
 * `startGateway` refuses it before opening anything, and the packaged configurations (container:
 * 0.0.0.0 with insecure and the reason; Debian: loopback) pass. With server.tls the gateway serves
 * HTTPS, and the console's session cookie gets the Secure flag.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent, fetch } from 'undici';
import { analyzeText, isLoopbackHost } from '../../src/app/config.ts';
import { configSchema } from '../../src/app/schema.ts';
import { MbError } from '../../src/errors/index.ts';
import { silentLogger } from '../../src/log/index.ts';
import { startGateway } from '../../src/server/index.ts';
import { selfSignedCertificate } from '../../src/util/certificates.ts';
import { hashPassword } from '../../src/util/password.ts';
import { tempDir } from '../support/temp.ts';

const errorsOf = (yaml: string) => analyzeText(yaml, 'mailbridge.yaml', {}).errors.filter((e) => e.code === 'MB_SERVER_TLS_REQUIRED');

test('loopback or not: localhost, 127.0.0.0/8 and ::1 are; wildcard, LAN and names are not', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1']) assert.equal(isLoopbackHost(h), true, h);
  for (const h of ['0.0.0.0', '::', '192.0.2.10', '10.0.0.1', 'mail.example.com', '::ffff:192.0.2.1', '128.0.0.1']) assert.equal(isLoopbackHost(h), false, h);
});

test('config check: a non-loopback server.listen without server.tls or server.insecure is an error at server.listen, in English and German', () => {
  const [e] = errorsOf('store: { driver: sqlite, path: /tmp/x.db }\nserver:\n  listen: 0.0.0.0\n  port: 8443\n');
  assert.ok(e, 'reported');
  assert.equal(e.severity, 'error');
  assert.equal(e.path, 'server.listen');
  assert.equal(e.line, 3);
  assert.match(e.message.en, /0\.0\.0\.0/);
  assert.match(e.message.de, /unverschlüsselt/);
  assert.match(e.fix.en, /server\.tls\.cert/);
  assert.match(e.fix.de, /server\.insecure: true/);
  assert.equal(errorsOf('server: { listen: 192.0.2.10 }\n').length, 1);
  assert.equal(errorsOf('server: { listen: 0.0.0.0, insecure: true }\n').length, 0);
  assert.equal(errorsOf('server: { listen: 0.0.0.0, tls: { cert: /etc/mb/c.pem, key: /etc/mb/k.pem } }\n').length, 0);
  assert.equal(errorsOf('server: { listen: 127.0.0.1 }\n').length, 0);
  assert.equal(errorsOf('server: { listen: "::1" }\n').length, 0);
  assert.equal(errorsOf('{}\n').length, 0, 'the default listens on loopback');
});

test('the packaged configurations pass: the container (0.0.0.0) opts out with its reason, the Debian package listens on loopback', () => {
  const container = readFileSync(new URL('../../packaging/container/mailbridge.yaml', import.meta.url), 'utf8');
  const debian = readFileSync(new URL('../../packaging/debian/mailbridge.yaml', import.meta.url), 'utf8');
  const c = analyzeText(container, 'mailbridge.yaml', {});
  assert.deepEqual(c.errors, []);
  assert.equal(c.config?.server.listen, '0.0.0.0');
  assert.equal(c.config?.server.insecure, true);
  assert.match(container, /reverse proxy that terminates TLS/, 'the choice is explained where it is made');
  const d = analyzeText(debian, 'mailbridge.yaml', {});
  assert.deepEqual(d.errors, []);
  assert.equal(d.config?.server.listen, '127.0.0.1');
  // Without its opt-out the container's file would be refused.
  assert.equal(errorsOf(container.replace(/^\s*insecure: true\s*$/m, '')).length, 1);
});

test('startGateway refuses a non-loopback listener without TLS before opening anything', async () => {
  const dir = tempDir('mb-tls-');
  const config = configSchema.parse({ store: { driver: 'sqlite', path: dir.file('mb.db', '') }, server: { listen: '0.0.0.0', port: 0 } });
  await assert.rejects(startGateway(config, silentLogger, { env: {} }), (e: unknown) => e instanceof MbError && e.code === 'MB_SERVER_TLS_REQUIRED');
  dir.remove();
});

test('with server.tls the gateway serves HTTPS (and the session cookie is Secure); an unreadable or mismatched key is MB_SERVER_TLS_UNREADABLE', async () => {
  const dir = tempDir('mb-tls-');
  const now = Date.now();
  const pair = selfSignedCertificate({ commonName: 'localhost', notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000), use: 'server' });
  const other = selfSignedCertificate({ commonName: 'localhost', notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000), use: 'server' });
  const cert = dir.file('tls.crt', pair.certPem);
  const key = dir.file('tls.key', pair.keyPem);
  const password = 'tls-test-password-1';
  const config = configSchema.parse({
    store: { driver: 'sqlite', path: `${dir.path}/mb.db` },
    server: { listen: '127.0.0.1', port: 0, tls: { cert, key } },
    api: { users: { ada: { password: await hashPassword(password, 10), role: 'admin' } } },
  });
  const gw = await startGateway(config, silentLogger, { env: {}, keyFile: `${dir.path}/mb.key` });
  const agent = new Agent({ connect: { ca: pair.certPem, servername: 'localhost' } });
  try {
    assert.match(gw.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const health = await fetch(`${gw.url}/health`, { dispatcher: agent });
    assert.equal(health.status, 200);
    const signIn = await fetch(`${gw.url}/api/v1/session`, { dispatcher: agent, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'ada', password }) });
    assert.equal(signIn.status, 201);
    const cookie = signIn.headers.getSetCookie().find((c) => c.startsWith('mb_session='));
    assert.match(cookie ?? '', /; Secure$/);
    // Plain HTTP to the TLS port gets no answer of the API.
    await assert.rejects(fetch(gw.url.replace('https:', 'http:') + '/health', { signal: AbortSignal.timeout(5000) }).then(async (r) => {
      if (r.status === 200) return r;
      throw new Error(`HTTP ${r.status}`);
    }));
  } finally {
    await agent.close();
    await gw.close();
  }
  const mismatched = configSchema.parse({ ...config, server: { listen: '127.0.0.1', port: 0, tls: { cert, key: dir.file('other.key', other.keyPem) } } });
  await assert.rejects(startGateway(mismatched, silentLogger, { env: {} }), (e: unknown) => e instanceof MbError && e.code === 'MB_SERVER_TLS_UNREADABLE' && /mismatch/i.test(String(e.params.detail)));
  const missing = configSchema.parse({ ...config, server: { listen: '127.0.0.1', port: 0, tls: { cert, key: `${dir.path}/nope.key` } } });
  await assert.rejects(startGateway(missing, silentLogger, { env: {} }), (e: unknown) => e instanceof MbError && e.code === 'MB_SERVER_TLS_UNREADABLE' && /nope\.key/.test(e.explain('en').cause));
  dir.remove();
});
