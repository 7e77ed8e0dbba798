import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { openStore } from '../../src/store/index.ts';
import { runCli } from '../admin/cli/harness.ts';
import { subscription } from './helpers.ts';
import { loopbackEgressConfig } from '../support/egress.ts';
import { freePort } from '../support/ports.ts';

/** `mailbridge notify test` as a child process against a local webhook receiver. */
const dir = mkdtempSync(join(tmpdir(), 'mb-notify-cli-'));
const cfg = join(dir, 'mailbridge.yaml');
const got: Array<{ path: string; headers: IncomingHttpHeaders; body: string }> = [];
const script: number[] = [];
let server: Server;
let hook = '';
const secret = `whsec_${randomBytes(32).toString('base64')}`;
const sub = subscription('webhook', ['ben@contoso.com', 'cara@contoso.com'], {}, { id: `sub_${randomBytes(16).toString('base64url')}`, privacy: 'minimal' });

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(script.shift() ?? 200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  hook = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/mail`;
  writeFileSync(cfg, JSON.stringify({ store: { driver: 'sqlite', path: join(dir, 'mb.db') }, notify: { webhook: { requireHttps: false }, egress: loopbackEgressConfig } }));
  const store = await openStore({ driver: 'sqlite', path: join(dir, 'mb.db') });
  await store.notify.createSubscription({ ...sub, params: { url: hook, secret } });
  await store.close();
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

const verify = (g: (typeof got)[number], s = secret) =>
  new Webhook(s).verify(g.body, g.headers as Record<string, string>) as { type: string; data: { id: string; mailbox: string; subject?: string; sender?: unknown } };

test('notify test <subscription>: every step reported, the event arrives signed, the secret is never printed', async () => {
  const before = got.length;
  const r = await runCli(['--config', cfg, 'notify', 'test', sub.id]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(got.length, before + 1);
  const g = got.at(-1)!;
  assert.equal(g.path, '/hooks/mail');
  const v = verify(g);
  assert.equal(v.type, 'message.new');
  assert.equal(v.data.mailbox, 'ben@contoso.com');
  // The subscription's privacy applies to the test event too.
  assert.equal(v.data.subject, undefined);
  assert.equal(v.data.sender, undefined);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines[0], `mailbridge notify test: ${sub.id}`);
  assert.deepEqual(lines.slice(1, 6).map((l) => l.slice(0, 5)), ['  ✓ 1', '  ✓ 2', '  ✓ 3', '  ✓ 4', '  ✓ 5']);
  assert.match(r.stdout, /Configuration: notify\.webhook is set up/);
  assert.match(r.stdout, new RegExp(`Subscription ${sub.id}: webhook, 2 mailbox\\(es\\), active`));
  assert.ok(r.stdout.includes(`Target: url=${hook}`));
  assert.ok(r.stdout.includes(`test event ${v.data.id} for ben@contoso.com taken by the receiver`));
  assert.match(lines.at(-1)!, /^The test notification arrived\.$/);
  assert.equal((r.stdout + r.stderr).includes(secret), false);
  assert.equal((r.stdout + r.stderr).includes(secret.slice(6)), false);
});

test('notify test webhook --params: an ad-hoc target, in German, with the mailbox given', async () => {
  const other = `whsec_${randomBytes(24).toString('base64')}`;
  const r = await runCli(['--lang', 'de', '--config', cfg, 'notify', 'test', 'webhook', '--params', JSON.stringify({ url: `${hook}?adhoc=1`, secret: other }), '--mailbox', 'Dora@Contoso.com']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const g = got.at(-1)!;
  assert.equal(g.path, '/hooks/mail?adhoc=1');
  const v = verify(g, other);
  assert.equal(v.data.mailbox, 'dora@contoso.com');
  assert.equal(v.data.subject, 'mailbridge-Testbenachrichtigung');
  assert.throws(() => verify(g, secret), 'signed with the given secret, not another');
  assert.match(r.stdout, /Konfiguration: notify\.webhook ist eingerichtet/);
  assert.match(r.stdout, /Ziel von der Befehlszeile: webhook/);
  assert.match(r.stdout, /Die Testbenachrichtigung ist angekommen\./);
  assert.equal(r.stdout.includes(other), false);
});

test('a refusing receiver, a 410, an unknown subscription and an unconfigured sink fail with exit code 1 and the MB explanation', async () => {
  script.push(500);
  const refused = await runCli(['--config', cfg, 'notify', 'test', sub.id]);
  assert.equal(refused.code, 1);
  assert.match(refused.stdout, /✗ 5 Delivery: test event evt_\S+ for ben@contoso\.com not taken/);
  assert.match(refused.stdout, /MB_NOTIFY_REJECTED: Notification refused by the receiver/);
  assert.match(refused.stdout, /answered 500/);
  assert.match(refused.stdout, /The test notification did not arrive\.$/m);
  // A test event goes out once: nothing may promise a retry.
  assert.doesNotMatch(refused.stdout, /retried|queue/i);

  // An http:// receiver that is down: the fix does not speak of HTTPS, and nothing is retried.
  const closed = await freePort();
  const target = JSON.stringify({ url: `http://127.0.0.1:${closed}/hooks`, secret });
  for (const lang of ['en', 'de']) {
    const down = await runCli(['--lang', lang, '--config', cfg, 'notify', 'test', 'webhook', '--params', target]);
    assert.equal(down.code, 1);
    assert.match(down.stdout, /MB_NOTIFY_UNREACHABLE/);
    assert.doesNotMatch(down.stdout, /HTTPS|retried|erneut versucht|Warteschlange/);
  }

  script.push(410);
  const gone = await runCli(['--lang', 'de', '--config', cfg, 'notify', 'test', sub.id]);
  assert.equal(gone.code, 1);
  assert.match(gone.stdout, /MB_NOTIFY_GONE: Benachrichtigungsziel existiert nicht mehr/);
  assert.match(gone.stdout, /das Gateway würde das Abonnement beenden/);
  // A test does not retire the subscription: only the gateway's dispatcher does that.
  const store = await openStore({ driver: 'sqlite', path: join(dir, 'mb.db') });
  try {
    assert.equal((await store.notify.getSubscription(sub.id))?.state, 'active');
  } finally {
    await store.close();
  }

  const unknown = await runCli(['--config', cfg, 'notify', 'test', 'sub_doesnotexist']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stdout, /✗ 1 failed\n\s+MB_NOTIFY_SUBSCRIPTION_NOT_FOUND/);

  const fcm = await runCli(['--config', cfg, 'notify', 'test', 'fcm', '--params', '{"registrationToken":"x"}']);
  assert.equal(fcm.code, 1);
  assert.match(fcm.stdout, /MB_NOTIFY_SINK_NOT_CONFIGURED: Notification sink not configured/);

  const usage = await runCli(['--config', cfg, 'notify', 'test', 'pager']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /MB_CLI_USAGE/);
});

test('notify --help exists in English and German', async () => {
  const en = await runCli(['notify', '--help']);
  const de = await runCli(['--lang', 'de', 'notify', '--help']);
  assert.equal(en.code, 0);
  assert.match(en.stdout, /^Usage: mailbridge notify test <subscription-id>/);
  assert.match(de.stdout, /^Aufruf: mailbridge notify test <abonnement-id>/);
  const overview = await runCli(['--help']);
  assert.match(overview.stdout, /notify +Send a test notification/);
});
