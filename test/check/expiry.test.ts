/**
 * Credential expiry in the running gateway, on a manual clock: one announcement per threshold (30,
 * 14, 7, 1 days, expired), not one per day, and not again after a restart; the gateway shows it on
 * /health (degraded, with the reason, in the asked language), queues the admin mail and exposes
 * the expiry metric.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { configSchema } from '../../src/app/schema.ts';
import { openSecretBox } from '../../src/config/secrets.ts';
import { createIdentity } from '../../src/identity/index.ts';
import { createLogger, silentLogger } from '../../src/log/index.ts';
import { openStore } from '../../src/store/index.ts';
import { CredentialMonitor, expiryStage } from '../../src/check/expiry.ts';
import { startGateway } from '../../src/server/index.ts';

const DAY = 86_400_000;
const SECRET = 'Xy78Q~expiry-monitor-test-secret-000000001';

function connection(expires: string) {
  return {
    tenantId: '71f2c0de-1111-4111-8111-0000000000c1',
    clientId: '5a1e0000-0000-4000-8000-000000000001',
    clientSecret: SECRET,
    clientSecretExpires: expires,
  };
}

test('expiryStage: the nearest threshold at or above the days left, expired after the date', () => {
  const expires = new Date('2027-03-31T23:59:59.999Z');
  const at = (days: number) => expires.getTime() - days * DAY;
  assert.equal(expiryStage(expires, at(31)), undefined);
  assert.equal(expiryStage(expires, at(30)), 30);
  assert.equal(expiryStage(expires, at(15)), 30);
  assert.equal(expiryStage(expires, at(14)), 14);
  assert.equal(expiryStage(expires, at(8)), 14);
  assert.equal(expiryStage(expires, at(7)), 7);
  assert.equal(expiryStage(expires, at(1)), 1);
  assert.equal(expiryStage(expires, at(0.5)), 1);
  assert.equal(expiryStage(expires, at(-0.01)), 'expired');
});

test('a secret walked day by day to past its expiry is announced once per threshold, and not again after a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-expiry-'));
  const store = await openStore({ driver: 'sqlite', path: join(dir, 'mb.db') });
  const config = configSchema.parse({ connections: { m365: connection('2027-03-31') } });
  const box = await openSecretBox({ keyFile: join(dir, 'mailbridge.key'), env: {} });
  const identity = createIdentity({ config, kv: store.kv, secretBox: box, log: silentLogger, env: {} });
  const expires = Date.parse('2027-03-31T23:59:59.999Z');
  const clock = { now: expires - 40 * DAY };
  const lines: Array<{ level: number; code?: string; stage?: unknown }> = [];
  const log = createLogger({ level: 'info', destination: { write: (l: string) => lines.push(JSON.parse(l) as (typeof lines)[number]) } });
  const announced: string[] = [];
  const monitor = () =>
    new CredentialMonitor({
      connections: ['m365'],
      notices: (c, now) => identity.credentialNotices(c, now),
      expiry: (c) => identity.credentialExpiry(c),
      kv: store.kv,
      log,
      clock: () => clock.now,
      announce: async (a) => void announced.push(`${a.stage}:${a.error.code}`),
    });
  try {
    let m = monitor();
    // Every day from 40 days before until 3 days after, as the gateway's daily look does.
    for (let day = 0; day <= 43; day++) {
      clock.now = expires - 40 * DAY + day * DAY;
      if (day === 30) m = monitor(); // a restart half-way (stage 14 already announced): nothing repeated
      await m.check();
    }
    assert.deepEqual(announced, ['30:MB_CLIENT_SECRET_EXPIRING', '14:MB_CLIENT_SECRET_EXPIRING', '7:MB_CLIENT_SECRET_EXPIRING', '1:MB_CLIENT_SECRET_EXPIRING', 'expired:MB_CLIENT_SECRET_EXPIRED']);
    const logged = lines.filter((l) => l.code?.startsWith('MB_CLIENT_SECRET_EXPIR'));
    assert.deepEqual(
      logged.map((l) => [l.level, l.stage]),
      [
        [40, 30],
        [40, 14],
        [40, 7],
        [40, 1],
        [50, 'expired'],
      ],
    );
    // The current state stays visible between announcements.
    assert.deepEqual(
      m.alerts().map((a) => [a.connection, a.stage, a.error.code]),
      [['m365', 'expired', 'MB_CLIENT_SECRET_EXPIRED']],
    );
  } finally {
    await identity.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the gateway: credentials checked at start; /health degraded with the reason (en, de), the admin mail queued, the expiry metric set', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-expiry-gw-'));
  const now = Date.now();
  const inTenDays = new Date(now + 10 * DAY).toISOString().slice(0, 10);
  const config = configSchema.parse({
    store: { driver: 'sqlite', path: join(dir, 'mb.db') },
    server: { port: 0 },
    connections: { m365: connection(inTenDays) },
    relay: {
      hostname: 'gw.example',
      dataDir: join(dir, 'relay'),
      listeners: [{ host: '127.0.0.1', port: 0 }],
      adminMail: { to: ['it@example.test'], from: 'mailbridge@example.test', events: ['credentials'] },
    },
  });
  const lines: Array<{ code?: string }> = [];
  const log = createLogger({ level: 'info', destination: { write: (l: string) => lines.push(JSON.parse(l) as { code?: string }) } });
  const gw = await startGateway(config, log, { keyFile: join(dir, 'mailbridge.key'), env: {}, clock: () => now });
  try {
    const res = await fetch(`${gw.url}/health`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { status: string; credentials: Array<{ connection: string; code: string; title: string; fix: string }> };
    assert.equal(body.status, 'degraded');
    assert.deepEqual(
      body.credentials.map((c) => [c.connection, c.code]),
      [['m365', 'MB_CLIENT_SECRET_EXPIRING']],
    );
    assert.match(body.credentials[0]!.fix, /mailbridge secret set connections\.m365\.clientSecret/);
    const de = (await (await fetch(`${gw.url}/health`, { headers: { 'accept-language': 'de' } })).json()) as typeof body;
    assert.equal(de.credentials[0]!.title, 'Geheimer Clientschlüssel läuft bald ab');

    const queued = await gw.relay!.relay.queue.list();
    assert.equal(queued.length, 1, 'one admin mail for the 14-day threshold');
    const mail = await simpleParser(await gw.relay!.relay.queue.spool.readBody(queued[0]!.id));
    assert.equal(mail.headers.get('x-mailbridge-event'), 'credentials');
    assert.equal(mail.subject, 'mailbridge on gw.example: the credential of connection m365 expires in 14 days / Anmeldeinformation der Verbindung m365 läuft in 14 Tagen ab');
    assert.match(mail.text ?? '', /^MB_CLIENT_SECRET_EXPIRING: Client secret expires soon[\s\S]*---- Deutsch ----[\s\S]*Geheimer Clientschlüssel läuft bald ab/);
    assert.ok(!(mail.text ?? '').includes(SECRET), 'the secret is not in the mail');

    // Another look the same day announces nothing new.
    await gw.credentials!.check();
    assert.equal((await gw.relay!.relay.queue.list()).length, 1);

    // A token request (it fails: no tenant answers here) logs no second "expires soon" of its own.
    await gw.identity!.getToken('m365').catch(() => undefined);
    assert.equal(lines.filter((l) => l.code === 'MB_CLIENT_SECRET_EXPIRING').length, 1, 'announced once, by the monitor');

    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    const expected = Math.floor(Date.parse(`${inTenDays}T23:59:59.999Z`) / 1000);
    assert.match(metrics, new RegExp(`mailbridge_credential_expiry_timestamp_seconds\\{connection="m365",kind="secret"\\} ${expected}`));
  } finally {
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
