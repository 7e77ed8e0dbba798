/**
 * POST /api/v1/config/apply on a running gateway (relay, notify with a webhook sink, API keys, a
 * connector for `mailbridge fetch`): a candidate with an error, or with a secret sealed by another
 * key is refused with its MB code and mailbridge.yaml stays byte for byte
 * as it was; a good one is written (the old file kept as .bak) and only what changed restarts: an
 * unchanged relay keeps its open SMTP session, a changed notify section and new API keys take effect
 * at once, a rotated client secret gets a new identity (and ends the expiry warning), the connector (run by `mailbridge fetch`,
 * not the gateway) is named as needing a restart; then a changed relay is stopped and started
 * again, closing the old session.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/app/config.ts';
import { openSecretBox } from '../../src/config/secrets.ts';
import { createLogger } from '../../src/log/index.ts';
import { startGateway, type Gateway } from '../../src/server/index.ts';
import { tempDir } from '../support/temp.ts';

const ADMIN = randomBytes(24).toString('base64url');
const VIEWER = randomBytes(24).toString('base64url');
const dir = tempDir('mb-apply-');
const file = join(dir.path, 'mailbridge.yaml');
const keyFile = join(dir.path, 'mailbridge.key');
let gw: Gateway;
const logged: string[] = [];
const log = createLogger({ level: 'warn', destination: { write: (line: string) => logged.push(line) } });
let doc: Record<string, unknown>;
let sealed: (s: string) => string;

before(async () => {
  const box = await openSecretBox({ keyFile, env: {} });
  sealed = (s) => box.seal(s);
  doc = {
    log: { level: 'warn' },
    store: { driver: 'sqlite', path: join(dir.path, 'mb.db') },
    server: { port: 0 },
    connections: {
      contoso: { tenantId: randomUUID(), clientId: randomUUID(), clientSecret: sealed(`Qx8~${randomBytes(18).toString('base64url')}`), clientSecretExpires: new Date(Date.now() + 10 * 86_400_000).toISOString().slice(0, 10) },
    },
    relay: { dataDir: join(dir.path, 'relay'), hostname: 'relay.test', listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }] },
    connectors: {
      archive: {
        connection: 'contoso',
        source: { kind: 'imap', host: '127.0.0.1', port: 993 },
        mailboxes: ['scans@contoso.test'],
        destination: { kind: 'maildir', path: join(dir.path, 'maildir') },
        pollSeconds: 60,
      },
    },
    notify: { webhook: { timeoutSeconds: 10 } },
    api: { keys: { ops: { key: sealed(ADMIN), scopes: ['admin'] } } },
  };
  writeFileSync(file, stringify(doc), { mode: 0o600 });
  const { config } = await loadConfig(file, {});
  gw = await startGateway(config, log, { keyFile, env: {}, configPath: file });
});

after(async () => {
  await gw?.close('test end');
  dir.remove();
});

const apply = async (text: string, key = ADMIN) => {
  const r = await gw.http.inject({ method: 'POST', url: '/api/v1/config/apply', headers: { authorization: `Bearer ${key}`, 'accept-language': 'de' }, payload: { text } });
  return { status: r.statusCode, body: r.json() as { applied?: boolean; restarted?: string[]; needsRestart?: string[]; error?: { code: string; cause: string; fix: string } }, raw: r.body };
};

/** An SMTP session on the relay: the greeting, then one line per command. */
async function session(port: number): Promise<{ socket: Socket; greeting: string; say(line: string): Promise<string> }> {
  const socket = connect(port, '127.0.0.1');
  let buffer = '';
  const waiting: Array<(line: string) => void> = [];
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    buffer += d;
    for (let i = buffer.indexOf('\r\n'); i >= 0; i = buffer.indexOf('\r\n')) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      waiting.shift()?.(line);
    }
  });
  const next = () => new Promise<string>((resolve) => waiting.push(resolve));
  const greeting = await next();
  return {
    socket,
    greeting,
    say: (line) => {
      const answer = next();
      socket.write(`${line}\r\n`);
      return answer;
    },
  };
}

test('refused candidates leave mailbridge.yaml untouched; a good one restarts only what changed', async () => {
  const original = readFileSync(file, 'utf8');
  const relay = gw.relay!;
  const smtp = await session(relay.relay.listeners[0]!.port);
  assert.match(smtp.greeting, /^220 relay\.test/);

  // An error: refused with its line, nothing written.
  const bad = await apply(original.replace('server:\n  port: 0\n', 'server:\n  port: 99999\n'));
  assert.equal(bad.status, 422, bad.raw);
  assert.equal(bad.body.error?.code, 'MB_API_CONFIG_REFUSED');
  assert.match(bad.body.error!.cause, /Zeile \d+ \(server\.port\)/);
  // A secret sealed with another installation's key: refused as well. (A secret typed in clear is
  // sealed, and refused only without a key: test/api/routes/config-file.test.ts.)
  const other = await openSecretBox({ keyFile: join(dir.path, 'other.key'), env: {} });
  const foreign = await apply(original.replace(/clientSecret: enc:v1:\S+/, `clientSecret: ${other.seal('Qx8~another-secret-value')}`));
  assert.equal(foreign.body.error?.code, 'MB_API_CONFIG_SECRET_UNREADABLE', foreign.raw);
  assert.equal(readFileSync(file, 'utf8'), original);
  assert.ok(!existsSync(`${file}.bak`));

  // Log level, notify, a new API key and the connector change; the relay does not.
  const next = structuredClone(doc) as Record<string, Record<string, unknown>>;
  next.log = { level: 'info' };
  next.notify = { webhook: { timeoutSeconds: 20 } };
  next.api = { keys: { ops: { key: sealed(ADMIN), scopes: ['admin'] }, viewer: { key: sealed(VIEWER), scopes: ['read'] } } };
  (next.connectors!.archive as Record<string, unknown>).pollSeconds = 30;
  // A rotated client secret: a new identity; the relay, whose routes do not use the connection, stays.
  Object.assign(next.connections!.contoso as Record<string, unknown>, { clientSecret: sealed(`Qx8~${randomBytes(18).toString('base64url')}`), clientSecretExpires: '2099-01-01' });
  const expiring = (await (await fetch(`${gw.url}/health`)).json()) as { status: string; credentials?: Array<{ connection: string }> };
  assert.deepEqual([expiring.status, expiring.credentials?.map((c) => c.connection)], ['degraded', ['contoso']]);
  const notifyBefore = gw.notify;
  const identityBefore = gw.identity;
  assert.ok(identityBefore);
  const good = await apply(stringify(next));
  assert.equal(good.status, 200, good.raw);
  assert.deepEqual(good.body, { applied: true, restarted: ['log.level', 'connections.contoso', 'notify', 'api.keys'], needsRestart: ['connectors.archive'] });
  assert.notEqual(gw.identity, identityBefore);
  // The expiring secret was replaced: /health is fine again at once.
  assert.equal(((await (await fetch(`${gw.url}/health`)).json()) as { status: string }).status, 'ok');
  assert.equal(readFileSync(file, 'utf8'), stringify(next));
  assert.equal(readFileSync(`${file}.bak`, 'utf8'), original);
  assert.equal(log.level, 'info', 'the log level applies at once');
  // The relay was left alone: the same service, and the session opened before goes on.
  assert.equal(gw.relay, relay);
  assert.match(await smtp.say('NOOP'), /^250/);
  assert.notEqual(gw.notify, notifyBefore);
  const viewer = await gw.http.inject({ url: '/api/v1/check/runs', headers: { authorization: `Bearer ${VIEWER}` } });
  assert.equal(viewer.statusCode, 200, 'the new key works at once');
  const audit = await gw.http.inject({ url: '/api/v1/audit', headers: { authorization: `Bearer ${ADMIN}` } });
  const entries = (audit.json() as { entries: Array<{ who: string; action: string; status: number; code?: string }> }).entries.filter((e) => e.action === 'POST /api/v1/config/apply');
  assert.deepEqual(
    entries.map((e) => [e.who, e.status, e.code]),
    [
      ['ops', 200, undefined],
      ['ops', 422, 'MB_API_CONFIG_SECRET_UNREADABLE'],
      ['ops', 422, 'MB_API_CONFIG_REFUSED'],
    ],
  );

  // Now the relay changes: it is stopped (the old session ends) and started with the new settings.
  next.relay = { ...(next.relay as Record<string, unknown>), hostname: 'relay2.test' };
  const closed = once(smtp.socket, 'close');
  const again = await apply(stringify(next));
  assert.equal(again.status, 200, again.raw);
  assert.deepEqual(again.body, { applied: true, restarted: ['relay'], needsRestart: ['connectors.archive'] });
  await closed;
  assert.notEqual(gw.relay, relay);
  const fresh = await session(gw.relay!.relay.listeners[0]!.port);
  assert.match(fresh.greeting, /^220 relay2\.test/);
  fresh.socket.destroy();
  // /health/ready looks at the listener that runs now.
  assert.equal((await fetch(`${gw.url}/health/ready`)).status, 200);
});
