/**
 * Failures the sandbox does not produce on demand, against small local servers: an SMTP port
 * nobody listens on, a server whose certificate nobody trusts, one that never greets, and a fake
 * Graph that answers 503 with a Retry-After date, 400 with Graph's error body, and 401 twice (the
 * token is renewed once in between). Each becomes the right result with its MB code.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { configSchema } from '../../../src/app/schema.ts';
import { RoutedTransport } from '../../../src/relay/transports/index.ts';
import type { TokenSource } from '../../../src/relay/transports/types.ts';
import { createSandboxCa } from '../../../src/sandbox/ca.ts';
import { message, outbound } from './rig.ts';
import { transports } from '../../../src/app/plugins.ts';

const SENDER = 'scanner@contoso.test';
const raw = message({ from: SENDER, to: 'alice@contoso.test', subject: 'x' });

class CountingTokens implements TokenSource {
  calls: Array<{ resource: string; forceRefresh: boolean }> = [];
  async getToken(_connection: string, resource: 'exchange' | 'graph', options: { forceRefresh?: boolean } = {}) {
    this.calls.push({ resource, forceRefresh: Boolean(options.forceRefresh) });
    return { accessToken: 'eyJhbGciOiJub25lIn0.eyJhcHBpZCI6ImFwcCJ9.', expiresOn: new Date(Date.now() + 3_600_000), fromCache: this.calls.length > 1 };
  }
}

function transport(route: Record<string, unknown>, tokens: TokenSource = new CountingTokens(), caFile?: string): RoutedTransport {
  const config = configSchema.parse({
    connections: { c: { tenantId: 'contoso.test', clientId: '00000000-0000-4000-8000-000000000001', clientSecret: 'not-used', ...(caFile ? { caFile } : {}) } },
    relay: { routes: [{ connection: 'c', ...route }] },
  });
  return new RoutedTransport({ config, routes: config.relay!.routes, transports, tokens, hostname: 'relay.test' });
}

const servers: Array<{ close(cb?: () => void): unknown }> = [];
const sockets = new Set<Socket>();
after(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
});

async function listen<S extends NetServer | HttpServer>(s: S): Promise<number> {
  s.on('connection', (sock: Socket) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
  });
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  servers.push(s);
  return (s.address() as AddressInfo).port;
}

test('SMTP: nobody listening → deferred, MB_RELAY_UPSTREAM_UNREACHABLE with host and port', async () => {
  const probe = createNetServer();
  const port = await listen(probe);
  await new Promise<void>((res) => probe.close(() => res()));
  servers.splice(servers.indexOf(probe), 1);
  const tr = transport({ smtp: { host: '127.0.0.1', port } });
  const result = await tr.deliver(outbound({ sender: SENDER, recipients: ['alice@contoso.test'], raw }));
  assert.ok('temporary' in result, JSON.stringify(result));
  assert.equal(result.mbCode, 'MB_RELAY_UPSTREAM_UNREACHABLE');
  assert.deepEqual([result.params?.host, result.params?.port], ['127.0.0.1', port]);
  await tr.close();
});

test('SMTP: a certificate from an unknown CA → deferred, MB_RELAY_UPSTREAM_TLS naming caFile', async () => {
  const other = createSandboxCa(undefined, 'some firewall CA').issueServer();
  const server = new SMTPServer({ key: other.keyPem, cert: other.certPem, authMethods: ['XOAUTH2'], logger: false });
  server.on('error', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  servers.push(server);
  const port = (server.server.address() as AddressInfo).port;
  const tr = transport({ smtp: { host: '127.0.0.1', port } });
  const result = await tr.deliver(outbound({ sender: SENDER, recipients: ['alice@contoso.test'], raw }));
  assert.ok('temporary' in result, JSON.stringify(result));
  assert.equal(result.mbCode, 'MB_RELAY_UPSTREAM_TLS');
  assert.equal(result.params?.connection, 'c');
  await tr.close();
});

test('SMTP: a server that never greets → deferred, MB_RELAY_UPSTREAM_TIMEOUT', async () => {
  const port = await listen(createNetServer(() => undefined));
  const tr = transport({ smtp: { host: '127.0.0.1', port, timeoutSeconds: 5 } });
  const result = await tr.deliver(outbound({ sender: SENDER, recipients: ['alice@contoso.test'], raw }));
  assert.ok('temporary' in result, JSON.stringify(result));
  assert.equal(result.mbCode, 'MB_RELAY_UPSTREAM_TIMEOUT');
  await tr.close();
});

test('SMTP: 530 5.7.57 after the login → deferred, MB_RELAY_SMTP_NOT_AUTHENTICATED', async () => {
  const ca = createSandboxCa();
  const dir = mkdtempSync(join(tmpdir(), 'mb-530-'));
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  const tls = ca.issueServer();
  const server = new SMTPServer({
    key: tls.keyPem,
    cert: tls.certPem,
    authMethods: ['XOAUTH2'],
    logger: false,
    onAuth: (auth, _s, cb) => cb(null, { user: auth.username }),
    onMailFrom: (_a, _s, cb) => cb(Object.assign(new Error('5.7.57 Client not authenticated to send mail.'), { responseCode: 530 })),
  });
  server.on('error', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  servers.push(server);
  const tr = transport({ smtp: { host: '127.0.0.1', port: (server.server.address() as AddressInfo).port } }, new CountingTokens(), caFile);
  const result = await tr.deliver(outbound({ sender: SENDER, recipients: ['alice@contoso.test'], raw }));
  assert.ok('temporary' in result, JSON.stringify(result));
  assert.equal(result.mbCode, 'MB_RELAY_SMTP_NOT_AUTHENTICATED');
  assert.match(result.code ?? '', /^530 5\.7\.57 /);
  await tr.close();
  rmSync(dir, { recursive: true, force: true });
});

let graphUrl = '';
const answers: Array<{ status: number; headers?: Record<string, string>; body?: unknown }> = [];
const seen: Array<{ auth: string; type: string; body: string; path: string }> = [];
before(async () => {
  const server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ auth: String(req.headers.authorization), type: String(req.headers['content-type']), body, path: req.url ?? '' });
      const a = answers.shift() ?? { status: 202 };
      res.writeHead(a.status, { 'request-id': 'req-1', ...(a.body ? { 'content-type': 'application/json' } : {}), ...a.headers });
      res.end(a.body ? JSON.stringify(a.body) : undefined);
    });
  });
  graphUrl = `http://127.0.0.1:${await listen(server)}`;
});

const graphRoute = () => ({ transport: 'graph', mailbox: SENDER, graph: { url: graphUrl } });

test('Graph: the request is POST /v1.0/users/{mailbox}/sendMail, text/plain, base64 MIME with the bearer token', async () => {
  seen.length = 0;
  const tr = transport(graphRoute());
  const result = await tr.deliver(outbound({ sender: SENDER, recipients: ['alice@contoso.test'], raw }));
  assert.ok('ok' in result, JSON.stringify(result));
  assert.equal(seen[0]?.path, '/v1.0/users/scanner%40contoso.test/sendMail');
  assert.equal(seen[0]?.type, 'text/plain');
  assert.match(seen[0]?.auth ?? '', /^Bearer eyJ/);
  assert.equal(Buffer.from(seen[0]!.body, 'base64').toString('utf8'), raw);
  await tr.close();
});

test('Graph: 503 with a Retry-After date → deferred, MB_RELAY_GRAPH_UNAVAILABLE with the wait', async () => {
  answers.push({ status: 503, headers: { 'retry-after': new Date(Date.now() + 90_000).toUTCString() }, body: { error: { code: 'serviceNotAvailable', message: 'try later' } } });
  const tr = transport(graphRoute());
  const result = await tr.deliver(outbound({ sender: SENDER, recipients: ['alice@contoso.test'], raw }));
  assert.ok('temporary' in result, JSON.stringify(result));
  assert.equal(result.mbCode, 'MB_RELAY_GRAPH_UNAVAILABLE');
  assert.ok(result.retryAfter! >= 85 && result.retryAfter! <= 91, String(result.retryAfter));
  assert.match(result.code ?? '', /request-id req-1, client-request-id [0-9a-f-]{36}/);
  await tr.close();
});

test('Graph: 400 ErrorInvalidRecipients → bounced, MB_RELAY_GRAPH_REJECTED with Graph code and message', async () => {
  answers.push({ status: 400, body: { error: { code: 'ErrorInvalidRecipients', message: "At least one recipient isn't valid." } } });
  const tr = transport(graphRoute());
  const result = await tr.deliver(outbound({ sender: SENDER, recipients: ['alice@contoso.test'], raw }));
  assert.ok('permanent' in result, JSON.stringify(result));
  assert.equal(result.mbCode, 'MB_RELAY_GRAPH_REJECTED');
  assert.equal(result.params?.code, 'ErrorInvalidRecipients');
  await tr.close();
});

test('Graph: 401 → the token is renewed once; a second 401 → deferred, MB_RELAY_GRAPH_TOKEN_REJECTED', async () => {
  const body = { error: { code: 'InvalidAuthenticationToken', message: 'Access token validation failure. Invalid audience.' } };
  answers.push({ status: 401, body }, { status: 401, body });
  const tokens = new CountingTokens();
  const tr = transport(graphRoute(), tokens);
  const result = await tr.deliver(outbound({ sender: SENDER, recipients: ['alice@contoso.test'], raw }));
  assert.ok('temporary' in result, JSON.stringify(result));
  assert.equal(result.mbCode, 'MB_RELAY_GRAPH_TOKEN_REJECTED');
  assert.deepEqual(tokens.calls, [{ resource: 'graph', forceRefresh: false }, { resource: 'graph', forceRefresh: true }]);
  await tr.close();
});

test('no route for the sender → deferred, MB_RELAY_NO_ROUTE; an unknown connection is refused at start', async () => {
  const tr = transport({ senders: ['@contoso.test'], smtp: { host: '127.0.0.1', port: 1 } });
  const result = await tr.deliver(outbound({ sender: 'x@elsewhere.example', recipients: ['alice@contoso.test'], raw }));
  assert.ok('temporary' in result, JSON.stringify(result));
  assert.equal(result.mbCode, 'MB_RELAY_NO_ROUTE');
  await tr.close();
  const config = configSchema.parse({ connections: {}, relay: { routes: [{ name: 'r1', connection: 'missing' }] } });
  assert.throws(() => new RoutedTransport({ config, routes: config.relay!.routes, transports, tokens: new CountingTokens(), hostname: 'h' }), /MB_RELAY_ROUTE_CONNECTION_UNKNOWN/);
});
