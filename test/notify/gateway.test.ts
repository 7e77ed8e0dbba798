import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { configSchema } from '../../src/app/schema.ts';
import { openSecretBox } from '../../src/config/secrets.ts';
import { silentLogger } from '../../src/log/index.ts';
import { startGateway } from '../../src/server/index.ts';
import { mail } from './helpers.ts';
import { loopbackEgressConfig } from '../support/egress.ts';

test('the gateway with a notify section: a webhook subscription made through the API receives a published event, signed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-notify-gw-'));
  const got: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
  let arrived!: () => void;
  const first = new Promise<void>((r) => (arrived = r));
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
      arrived();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/mailbridge`;

  // The API key is stored encrypted, as `mailbridge secret set notify.api.keys.erp` leaves it.
  const keyFile = join(dir, 'mailbridge.key');
  const apiKey = randomBytes(24).toString('base64url');
  const sealed = (await openSecretBox({ keyFile, env: {} })).seal(apiKey);
  const config = configSchema.parse({
    store: { driver: 'sqlite', path: join(dir, 'mb.db') },
    server: { port: 0 },
    notify: { webhook: { requireHttps: false }, egress: loopbackEgressConfig, api: { keys: { erp: sealed } } },
  });
  const gw = await startGateway(config, silentLogger, { keyFile, env: {} });
  try {
    assert.ok(gw.notify, 'the notify service runs');
    const api = `${gw.url}/api/v1/subscriptions`;
    const refused = await fetch(api, { headers: { authorization: `Bearer ${sealed}` } });
    assert.equal(refused.status, 401, 'the stored (encrypted) form is not the key');
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'MB_API_UNAUTHORIZED');

    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    const created = await fetch(api, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ mailboxes: ['ben@contoso.com'], sink: { kind: 'webhook', url: hook, secret } }),
    });
    assert.equal(created.status, 201);
    const sub = (await created.json()) as { id: string; sink: Record<string, unknown> };
    assert.deepEqual(sub.sink, { kind: 'webhook', url: hook });

    // A watcher publishes; the dispatcher running in the gateway delivers without being asked.
    const event = mail('ben@contoso.com', 'AAMkAGI2-1', 'Auftrag 4711');
    assert.deepEqual(await gw.notify.dispatcher.publish(event), { seq: 1, duplicate: false, deliveries: 1 });
    await first;
    assert.equal(got.length, 1);
    const verified = new Webhook(secret).verify(got[0]!.body, got[0]!.headers as Record<string, string>) as { type: string; data: { id: string; subject: string; seq: number } };
    assert.equal(verified.type, 'message.new');
    assert.equal(verified.data.id, event.id);
    assert.equal(verified.data.subject, 'Auftrag 4711');
    assert.equal(verified.data.seq, 1);
    assert.equal(got[0]!.headers['webhook-id'], event.id);
    assert.throws(() => new Webhook(`whsec_${randomBytes(32).toString('base64')}`).verify(got[0]!.body, got[0]!.headers as Record<string, string>));

    // Stopping waits for the delivery's bookkeeping: the row is done.
    await gw.notify.dispatcher.stop();
    const rows = await gw.store.notify.listDeliveries({ subscriptionId: sub.id });
    assert.deepEqual(rows.map((r) => [r.eventId, r.state, r.attempts]), [[event.id, 'done', 1]]);
  } finally {
    await gw.close();
    receiver.closeAllConnections();
    await new Promise<void>((r) => receiver.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without a notify section the subscriptions routes answer 404 MB_API_NOT_CONFIGURED naming the section', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-notify-gw-'));
  const key = randomBytes(24).toString('base64url');
  const config = configSchema.parse({ store: { driver: 'sqlite', path: join(dir, 'mb.db') }, server: { port: 0 }, api: { keys: { ops: { key, scopes: ['admin'] } } } });
  const gw = await startGateway(config, silentLogger, { keyFile: join(dir, 'mailbridge.key'), env: {} });
  try {
    assert.equal(gw.notify, undefined);
    const res = await fetch(`${gw.url}/api/v1/subscriptions`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(res.status, 404);
    const body = (await res.json()) as { error: { code: string; cause: string } };
    assert.equal(body.error.code, 'MB_API_NOT_CONFIGURED');
    assert.match(body.error.cause, /notify/);
  } finally {
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
