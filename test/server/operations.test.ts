/**
 * Operations endpoints in one sandbox run, as `serve` runs them: the gateway with a relay (SMTP
 * XOAUTH2 route), an IMAP IDLE watch group and a webhook subscription, plus a connector run in the
 * same process. Mail sent through the relay lands in bob's mailbox, the watcher's event reaches the
 * webhook, and the connector fetches it into a maildir: /metrics must show each step moving. Then
 * the connection's client secret is removed in the sandbox, a token request fails, and
 * /health/ready turns 503 naming the connection with its MB code, in English and German.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { loadConfig } from '../../src/app/config.ts';
import { openSecretBox } from '../../src/config/secrets.ts';
import { connectorSchema } from '../../src/connector/config.ts';
import { runConnector } from '../../src/connector/index.ts';
import { createLogger } from '../../src/log/index.ts';
import { sealedNotifyRepository } from '../../src/notify/sealed.ts';
import { removeSecret } from '../../src/sandbox/entra/ops.ts';
import { startGateway, type Gateway } from '../../src/server/index.ts';
import { openStore } from '../../src/store/index.ts';
import { startFullSandbox, type FullSandbox } from '../relay/transports/full-sandbox.ts';
import { loopbackEgressConfig } from '../support/egress.ts';
import { waitFor } from '../support/wait.ts';
import { connectorPlugins } from '../../src/app/connectors.ts';

const PASSWORD = 'scanner password 1';
const WATCHED = 'bob@contoso.test';
let s: FullSandbox;
let gw: Gateway | undefined;
let receiver: Server;
const hooks: Array<{ type: string; mailbox: string; subject?: string }> = [];

before(async () => {
  s = await startFullSandbox();
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      hooks.push((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: (typeof hooks)[number] }).data);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
});

after(async () => {
  await gw?.close('test end');
  receiver?.closeAllConnections();
  receiver?.close();
  await s?.close();
});

/** One sample's value from the exposition text (0 when the series does not exist yet). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      total += Number(m[3]);
      found = true;
    }
  }
  return found ? total : 0;
}

async function scrape(): Promise<string> {
  const res = await fetch(`${gw!.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return res.text();
}

test('metrics move when mail is sent through the relay, notified to a webhook and fetched by a connector', async () => {
  const file = s.writeConfig('mailbridge-ops.yaml', {
    server: { listen: '127.0.0.1', port: 0 },
    relay: await s.relay('relay', PASSWORD, [{ name: 'smtp', senders: ['@contoso.test'], connection: 'sandbox', smtp: { host: '127.0.0.1', port: s.sandbox.smtp.port } }]),
    notify: {
      webhook: { requireHttps: false },
      egress: loopbackEgressConfig,
      retry: { initialSeconds: 0.2, jitter: 0 },
      watch: {
        groups: {
          legacy: {
            kind: 'imap',
            listeners: [{ connection: 'sandbox' }],
            mailboxes: [WATCHED],
            imap: { host: '127.0.0.1', port: s.sandbox.imap.port, tls: 'implicit', servername: 'outlook.office365.com' },
          },
        },
      },
    },
  });
  const { config, keyFile } = await loadConfig(file, {});
  // The webhook subscription, stored sealed as the API would.
  const store = await openStore(config.store);
  const box = await openSecretBox({ keyFile: keyFile!, env: {} });
  await sealedNotifyRepository(store.notify, box).createSubscription({
    id: 'sub_ops',
    kind: 'webhook',
    mailboxes: [WATCHED],
    events: [],
    params: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, secret: `whsec_${Buffer.alloc(32, 1).toString('base64')}` },
    privacy: 'full',
    state: 'active',
    createdAt: Date.now(),
    updatedAt: Date.now(),
  });
  await store.close();

  gw = await startGateway(config, createLogger({ level: 'silent' }), { keyFile, env: {} });
  const g = gw;
  await waitFor(() => g.watch!.status().groups[0]?.states.watching === 1, 30_000, 'the watch group watching');
  const ready = await fetch(`${g.url}/health/ready`);
  assert.equal(ready.status, 200, await ready.clone().text());
  assert.deepEqual(await ready.json(), { status: 'ready' });
  assert.equal((await fetch(`${g.url}/health/live`)).status, 200);

  const before = await scrape();
  assert.equal(sample(before, 'mailbridge_watch_mailboxes', { group: 'legacy', state: 'watching' }), 1);
  // Both connections carry an expiry: the configured secret date and the certificate's notAfter.
  const secretExpiry = sample(before, 'mailbridge_credential_expiry_timestamp_seconds', { connection: 'sandbox', kind: 'secret' });
  assert.ok(secretExpiry > Date.now() / 1000, `secret expiry ${secretExpiry}`);
  assert.ok(sample(before, 'mailbridge_credential_expiry_timestamp_seconds', { connection: 'sandbox-cert', kind: 'certificate' }) > Date.now() / 1000);

  // Sent: an application hands a scan to the relay.
  const app = nodemailer.createTransport({
    host: '127.0.0.1',
    port: g.relay!.relay.listeners[0]!.port,
    secure: false,
    requireTLS: true,
    tls: { ca: g.relay!.relay.tls.cert, checkServerIdentity: () => undefined },
    auth: { user: 'scanner', pass: PASSWORD },
  });
  await app.sendMail({ from: 'scanner@contoso.test', to: WATCHED, subject: 'Scan 4711', text: 'Scan.' });
  app.close();
  await g.relay!.relay.manager.whenIdle();

  // Notified: the watcher sees it arrive in bob's mailbox, the dispatcher posts it to the webhook.
  await waitFor(() => hooks.some((h) => h.type === 'message.new' && h.subject === 'Scan 4711'), 30_000, 'the webhook got the new-mail event');
  await waitFor(async () => sample(await scrape(), 'mailbridge_notify_deliveries_total', { sink: 'webhook', outcome: 'delivered' }) >= 1, 30_000, 'the delivery is counted');

  // Fetched: a connector in this process, with the gateway's tokens and recorder.
  const connector = connectorSchema.parse({
    connection: 'sandbox',
    source: { kind: 'imap', host: '127.0.0.1', port: s.sandbox.imap.port, tls: 'implicit', caFile: s.sandbox.caFile, servername: 'outlook.office365.com', idle: false },
    mailboxes: [WATCHED],
    destination: { kind: 'maildir', path: join(s.dir, 'maildir') },
    after: { action: 'none' },
  });
  const summary = await runConnector(
    { plugins: connectorPlugins,
      name: 'scans',
      config: connector,
      repo: g.store.checkpoints,
      tokens: async () => (await g.identity!.getToken('sandbox', 'exchange')).accessToken,
      onEvent: (e) => g.metrics.connector('scans', e),
    },
    { once: true },
  );
  assert.equal(summary.errors.length, 0, JSON.stringify(summary.errors.map((e) => e.error.code)));
  assert.ok(summary.delivered >= 1);

  const now = await scrape();
  const moved = (name: string, labels: Record<string, string>) => {
    const b = sample(before, name, labels);
    const a = sample(now, name, labels);
    assert.ok(a > b, `${name}${JSON.stringify(labels)}: ${b} → ${a}`);
  };
  moved('mailbridge_relay_messages_total', { outcome: 'accepted', route: 'smtp', mailbox: 'scanner@contoso.test' });
  moved('mailbridge_relay_messages_total', { outcome: 'delivered', route: 'smtp', mailbox: 'scanner@contoso.test' });
  moved('mailbridge_relay_delivery_seconds_count', { route: 'smtp' });
  moved('mailbridge_relay_queue_messages', { state: 'sent' });
  moved('mailbridge_smtp_sessions_total', { listener: `127.0.0.1:${g.relay!.relay.listeners[0]!.port}` });
  moved('mailbridge_notify_events_published_total', { type: 'message.new' });
  moved('mailbridge_notify_deliveries_total', { sink: 'webhook', outcome: 'delivered' });
  moved('mailbridge_connector_messages_total', { connector: 'scans', outcome: 'delivered' });
  moved('mailbridge_http_requests_total', { method: 'GET', route: '/metrics', status: '200' });
  assert.ok(sample(now, 'mailbridge_token_requests_total', { connection: 'sandbox' }) >= 1);
  assert.equal(sample(now, 'mailbridge_token_failures_total', { connection: 'sandbox' }), 0);
  // Bounded labels: no series carries a message id, a URL with a query or a recipient.
  assert.ok(!now.includes(WATCHED), 'no recipient address among the labels');
});

test('/health/ready turns 503 naming the connection when its secret is revoked in the sandbox and a token request fails', async () => {
  const g = gw!;
  assert.equal((await fetch(`${g.url}/health/ready`)).status, 200);
  const tenant = s.sandbox.directory.data.tenants[0]!;
  const app = tenant.apps[0]!;
  for (const secret of [...app.secrets]) removeSecret(s.sandbox.directory, tenant.id, app.appId, secret.keyId);
  // Cached tokens stay valid after a secret is removed (as at Microsoft); the next request fails.
  await assert.rejects(g.identity!.getToken('sandbox', 'exchange', { forceRefresh: true }));

  const en = await fetch(`${g.url}/health/ready`, { headers: { 'accept-language': 'en-US,en;q=0.9' } });
  assert.equal(en.status, 503);
  const body = (await en.json()) as { status: string; problems: Array<{ part: string; code: string; title: string; fix: string }> };
  assert.equal(body.status, 'not-ready');
  assert.equal(body.problems.length, 1, JSON.stringify(body));
  const p = body.problems[0]!;
  assert.equal(p.part, 'connections.sandbox');
  assert.match(p.code, /^MB_/);
  assert.notEqual(p.code, 'MB_INTERNAL');
  assert.ok(p.fix.length > 0);

  const de = (await (await fetch(`${g.url}/health/ready`, { headers: { 'accept-language': 'de-DE,de;q=0.9' } })).json()) as typeof body;
  assert.equal(de.problems[0]!.code, p.code);
  assert.notEqual(de.problems[0]!.title, p.title, 'the German title differs from the English one');
  assert.equal((await fetch(`${g.url}/health/live`)).status, 200, 'alive while not ready');
  assert.ok(sample(await scrape(), 'mailbridge_token_failures_total', { connection: 'sandbox', code: p.code }) >= 1);
});
