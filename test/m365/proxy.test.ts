/**
 * The outbound proxy reaches every connection an admin expects it to (issue 11 item 2): with only
 * `server.proxy` set to the sandbox's CONNECT proxy, send (SMTP XOAUTH2 and Graph), fetch (IMAP and
 * Graph), every watcher kind (Graph, EWS, IMAP, under `serve`) and every sink (webhook, Web Push,
 * APNs, FCM) work, and the proxy counted a tunnel to each destination they use. A sink's own
 * `noProxy` sends it direct.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createECDH, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createServer as createH2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { configSchema, type Config } from '../../src/app/schema.ts';
import { openSecretBox } from '../../src/config/secrets.ts';
import { runConnector } from '../../src/connector/index.ts';
import { createIdentity } from '../../src/identity/index.ts';
import { silentLogger } from '../../src/log/index.ts';
import type { NotifyEvent } from '../../src/notify/events.ts';
import { sealedNotifyRepository } from '../../src/notify/sealed.ts';
import { buildSinks } from '../../src/notify/service.ts';
import { RoutedTransport } from '../../src/relay/transports/index.ts';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { startGateway } from '../../src/server/index.ts';
import { openStore } from '../../src/store/index.ts';
import { mail, subscription } from '../notify/helpers.ts';
import { message, outbound } from '../relay/transports/rig.ts';
import { loopbackEgressConfig } from '../support/egress.ts';
import { waitFor } from '../support/wait.ts';
import { freePort } from '../support/ports.ts';
import { sandboxInbound, startEventReceiver } from '../support/cluster.ts';
import { connectorPlugins } from '../../src/app/connectors.ts';
import { sinks as sinkPlugins, transports } from '../../src/app/plugins.ts';

const ALICE = 'alice@contoso.test';
const BOB = 'bob@contoso.test';
const INFO = 'info@contoso.test';

let dir: string;
let sandbox: Sandbox;
let proxyUrl: string;
let connections: Record<string, unknown>;
const servers: Array<Server | Http2Server> = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mb-proxy-'));
  chmodSync(dir, 0o711);
  sandbox = await startSandbox({ dir: join(dir, 'sandbox'), proxy: true });
  proxyUrl = sandbox.proxy!.url;
  connections = (parse(readFileSync(sandbox.configFile, 'utf8')) as { connections: Record<string, unknown> }).connections;
});

after(async () => {
  for (const s of servers) {
    if ('closeAllConnections' in s) s.closeAllConnections();
    s.close();
  }
  await sandbox?.close();
  rmSync(dir, { recursive: true, force: true });
});

const hostPort = (url: string) => new URL(url).host;
const tunnels = (to: string) => sandbox.proxy!.tunnels()[to] ?? 0;

function baseConfig(extra: Record<string, unknown>): Config {
  return configSchema.parse({
    secrets: { keyFile: join(sandbox.dir, 'mailbridge.key') },
    store: { driver: 'sqlite', path: join(dir, 'mb.db') },
    // Only server.proxy: every outbound connection must take it; nothing in the environment.
    server: { port: 0, proxy: proxyUrl },
    connections,
    ...extra,
  });
}


async function listen<T extends Server | Http2Server>(server: T): Promise<string> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('send: SMTP XOAUTH2 and Graph sendMail go through the proxy, and so do their token requests', async () => {
  const config = baseConfig({
    relay: {
      routes: [
        { name: 'smtp', senders: [ALICE], connection: 'sandbox', transport: 'smtp', smtp: { host: '127.0.0.1', port: sandbox.smtp.port } },
        { name: 'graph', senders: [BOB], connection: 'sandbox', transport: 'graph', graph: { url: `${sandbox.graph.url}/v1.0` } },
      ],
    },
  });
  const box = await openSecretBox({ keyFile: join(sandbox.dir, 'mailbridge.key'), env: {} });
  const store = await openStore({ driver: 'sqlite', path: join(dir, 'send.db') });
  const identity = createIdentity({ config, kv: store.kv, secretBox: box, env: {} });
  const transport = new RoutedTransport({ config, routes: config.relay!.routes, transports, tokens: identity, hostname: 'relay.test', env: {} });
  try {
    const viaSmtp = await transport.send(outbound({ sender: ALICE, recipients: [INFO], raw: message({ from: ALICE, to: INFO, subject: 'proxy smtp' }) }));
    assert.ok('ok' in viaSmtp && viaSmtp.ok, JSON.stringify(viaSmtp));
    const viaGraph = await transport.send(outbound({ sender: BOB, recipients: [INFO], raw: message({ from: BOB, to: INFO, subject: 'proxy graph' }) }));
    assert.ok('ok' in viaGraph && viaGraph.ok, JSON.stringify(viaGraph));
    assert.ok(tunnels(`127.0.0.1:${sandbox.smtp.port}`) >= 1, 'SMTP through the proxy');
    assert.ok(tunnels(hostPort(sandbox.graph.url)) >= 1, 'Graph through the proxy');
    assert.ok(tunnels(hostPort(sandbox.entra.urls.global)) >= 1, 'token requests through the proxy');
  } finally {
    await transport.close();
    await identity.close();
    await store.close();
  }
});

test('fetch: the IMAP and the Graph source go through the proxy', async () => {
  await sandbox.dovecot.deliver({ from: 'bob@fabrikam.test', to: [ALICE] }, `From: bob@fabrikam.test\r\nTo: ${ALICE}\r\nSubject: fetch me\r\nMessage-ID: <fetch-proxy@fabrikam.test>\r\n\r\nHallo\r\n`);
  const config = baseConfig({
    connectors: {
      viaImap: {
        connection: 'sandbox',
        mailboxes: [ALICE],
        source: { kind: 'imap', host: '127.0.0.1', port: sandbox.imap.port, tls: 'implicit', servername: 'outlook.office365.com', caFile: sandbox.caFile, idle: false },
        destination: { kind: 'maildir', path: join(dir, 'maildir-imap') },
        after: { action: 'none' },
      },
      viaGraph: {
        connection: 'sandbox',
        mailboxes: [ALICE],
        source: { kind: 'graph', baseUrl: sandbox.graph.url, caFile: sandbox.caFile },
        destination: { kind: 'maildir', path: join(dir, 'maildir-graph') },
        after: { action: 'none' },
      },
    },
  });
  const box = await openSecretBox({ keyFile: join(sandbox.dir, 'mailbridge.key'), env: {} });
  const store = await openStore({ driver: 'sqlite', path: join(dir, 'fetch.db') });
  const identity = createIdentity({ config, kv: store.kv, secretBox: box, env: {} });
  try {
    for (const [name, resource] of [['viaImap', 'exchange'], ['viaGraph', 'graph']] as const) {
      const summary = await runConnector(
        { plugins: connectorPlugins,
          name,
          config: config.connectors![name]!,
          repo: store.checkpoints,
          tokens: async () => (await identity.getToken('sandbox', resource)).accessToken,
          proxy: { proxy: proxyUrl, source: 'server', env: {} },
        },
        { once: true },
      );
      assert.deepEqual(summary.errors, [], name);
      assert.ok(summary.delivered >= 1, `${name} delivered ${summary.delivered}`);
    }
    assert.ok(readdirSync(join(dir, 'maildir-imap', 'new')).length >= 1);
    assert.ok(readdirSync(join(dir, 'maildir-graph', 'new')).length >= 1);
    assert.ok(tunnels(`127.0.0.1:${sandbox.imap.port}`) >= 1, 'IMAP through the proxy');
    assert.ok(tunnels(hostPort(sandbox.graph.url)) >= 1, 'Graph through the proxy');
  } finally {
    await identity.close();
    await store.close();
  }
});

test('watch: Graph, EWS and IMAP watchers under serve, and the webhook sink, go through the proxy', async () => {
  const events: NotifyEvent[] = [];
  const receiver = await startEventReceiver(events);
  servers.push(receiver);
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const inbound = sandboxInbound(sandbox, dir);
  const port = await freePort();
  const watched = { graph: ALICE, imap: BOB, ews: INFO };
  const config = baseConfig({
    store: { driver: 'sqlite', path: join(dir, 'watch.db') },
    notify: {
      webhook: { requireHttps: false },
      egress: loopbackEgressConfig,
      retry: { initialSeconds: 0.2, jitter: 0 },
      watch: {
        publicUrl: `https://127.0.0.1:${port}`,
        listen: inbound(port),
        groups: {
          cloud: { kind: 'graph', listeners: [{ connection: 'sandbox' }], mailboxes: [watched.graph], graph: { baseUrl: `${sandbox.graph.url}/v1.0` } },
          legacy: { kind: 'imap', listeners: [{ connection: 'sandbox' }], mailboxes: [watched.imap], imap: { host: '127.0.0.1', port: sandbox.imap.port, tls: 'implicit', servername: 'outlook.office365.com' } },
          plant: { kind: 'ews', listeners: [{ connection: 'sandbox' }], mailboxes: [watched.ews], ews: { url: sandbox.ews.url } },
        },
      },
    },
  });
  const store = await openStore(config.store);
  const box = await openSecretBox({ keyFile: join(sandbox.dir, 'mailbridge.key'), env: {} });
  await sealedNotifyRepository(store.notify, box).createSubscription(
    subscription('webhook', Object.values(watched), { url: `${hook}/hook`, secret: `whsec_${Buffer.alloc(32, 1).toString('base64')}` }),
  );
  await store.close();
  const gw = await startGateway(config, silentLogger, { env: {} });
  try {
    await waitFor(() => {
      const s = gw.watch!.status();
      return s.groups.length === 3 && s.groups.every((g) => g.states.watching === 1);
    }, 60_000, () => `all three groups watching; ${JSON.stringify(gw.watch!.status())}`);
    for (const [kind, mb] of Object.entries(watched)) {
      await sandbox.dovecot.deliver({ from: 'bob@fabrikam.test', to: [mb] }, `From: bob@fabrikam.test\r\nTo: ${mb}\r\nSubject: watch ${kind}\r\nMessage-ID: <watch-${kind}@fabrikam.test>\r\n\r\nHallo\r\n`);
    }
    await waitFor(() => Object.values(watched).every((mb) => events.some((e) => e.type === 'message.new' && e.mailbox === mb)), 60_000, () => `a new-mail event per mailbox; ${JSON.stringify(gw.watch!.status())}`);
  } finally {
    await gw.close();
  }
  assert.ok(tunnels(hostPort(sandbox.graph.url)) >= 1, 'Graph watcher through the proxy');
  assert.ok(tunnels(hostPort(sandbox.ews.url)) >= 1, 'EWS watcher through the proxy');
  assert.ok(tunnels(`127.0.0.1:${sandbox.imap.port}`) >= 1, 'IMAP watcher through the proxy');
  assert.ok(tunnels(hostPort(hook)) >= 1, 'webhook through the proxy');
});

test('sinks: Web Push, APNs and FCM go through the proxy (server.proxy or their own); a sink with noProxy goes direct', async () => {
  const pushed: string[] = [];
  const push = await listen(
    createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        pushed.push(req.url ?? '');
        res.writeHead(201).end();
      });
    }),
  );
  const apnsServer = createH2Server();
  apnsServer.on('stream', (stream, h) => {
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'apns-id': String(h['apns-id'] ?? '') });
      stream.end();
    });
  });
  const apns = await listen(apnsServer);
  const fcm = await listen(
    createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const json = (body: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        if (req.url === '/token') return json({ access_token: 'ya29.proxy-test-token', expires_in: 3600, token_type: 'Bearer' });
        return json({ name: 'projects/mb-proxy/messages/1' });
      });
    }),
  );
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const vapid = createECDH('prime256v1');
  vapid.generateKeys();
  const notify = configSchema.parse({
    connections: {},
    notify: {
      egress: loopbackEgressConfig,
      webhook: { requireHttps: false, noProxy: '*' },
      webpush: { vapid: { subject: 'mailto:it@contoso.com', publicKey: vapid.getPublicKey().toString('base64url'), privateKey: vapid.getPrivateKey().toString('base64url') }, requireHttps: false },
      // Its own proxy (source: sink); the others take server.proxy.
      apns: { teamId: 'ABCDE12345', keyId: 'KEY1234567', privateKey: ec, topic: 'com.contoso.mail', url: apns, proxy: proxyUrl },
      fcm: {
        url: fcm,
        serviceAccount: JSON.stringify({ type: 'service_account', project_id: 'mb-proxy', private_key_id: 'k1', private_key: rsa, client_email: 'mb@mb-proxy.iam.gserviceaccount.com', token_uri: `${fcm}/token` }),
      },
    },
  }).notify!;
  const sinks = await buildSinks(sinkPlugins, notify, (s) => s, undefined, { proxy: proxyUrl, env: {} });
  const ua = createECDH('prime256v1');
  ua.generateKeys();
  const params = {
    webpush: { endpoint: `${push}/push/abc`, expirationTime: null, keys: { p256dh: ua.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') } },
    apns: { deviceToken: randomBytes(32).toString('hex') },
    fcm: { registrationToken: `${randomBytes(8).toString('base64url')}:APA91b${randomBytes(100).toString('base64url')}` },
    webhook: { url: `${push}/hook`, secret: `whsec_${Buffer.alloc(32, 2).toString('base64')}` },
  };
  for (const [kind, p] of Object.entries(params)) {
    const sink = sinks.get(kind)!;
    const sub = subscription(kind, [ALICE], sink.parseParams(p) as unknown as Record<string, unknown>);
    const before = tunnels(hostPort(kind === 'apns' ? apns : kind === 'fcm' ? fcm : push));
    const result = await sink.deliver(mail(ALICE, `m-${kind}`), sub);
    assert.equal(result.kind, 'ok', `${kind}: ${JSON.stringify(result)}`);
    const after = tunnels(hostPort(kind === 'apns' ? apns : kind === 'fcm' ? fcm : push));
    if (kind === 'webhook') assert.equal(after, before, 'webhook with noProxy: * went direct');
    else assert.ok(after > before, `${kind} through the proxy`);
  }
  assert.deepEqual(pushed, ['/push/abc', '/hook']);
});
