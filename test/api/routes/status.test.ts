/**
 * Status routes in one sandbox run, as `serve` runs them: a relay and an IMAP IDLE watch group on
 * the sandbox connection. A message sent through the relay reaches alice; the API shows the
 * connection's last token request and credential expiry, the roles of its token, the watch group
 * per listener, and the watcher's new-mail event. Answers never carry the connection's secret.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import nodemailer from 'nodemailer';
import { loadConfig } from '../../../src/app/config.ts';
import { createLogger } from '../../../src/log/index.ts';
import { startGateway, type Gateway } from '../../../src/server/index.ts';
import { readUntil } from '../../support/wait.ts';
import { startFullSandbox, type FullSandbox } from '../../relay/transports/full-sandbox.ts';

const PASSWORD = 'scanner password 1';
const WATCHED = 'alice@contoso.test';
const KEY = randomBytes(24).toString('base64url');
let s: FullSandbox;
let gw: Gateway;

before(async () => {
  s = await startFullSandbox();
  const file = s.writeConfig('mailbridge-api-status.yaml', {
    server: { listen: '127.0.0.1', port: 0 },
    relay: await s.relay('relay-api-status', PASSWORD, [{ name: 'exo', senders: ['@contoso.test'], connection: 'sandbox', smtp: { host: '127.0.0.1', port: s.sandbox.smtp.port } }]),
    notify: {
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
    api: { keys: { viewer: { key: KEY, scopes: ['read'] } } },
  });
  const { config, keyFile } = await loadConfig(file, {});
  gw = await startGateway(config, createLogger({ level: 'silent' }), { keyFile, env: {} });
});

after(async () => {
  await gw?.close('test end');
  await s?.close();
});

const secrets = () => s.sandbox.directory.data.tenants.flatMap((t) => t.apps.flatMap((a) => a.secrets.map((x) => x.value)));

async function get(path: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${KEY}` } });
  const text = await res.text();
  assert.equal(res.status, 200, `${path}: ${text}`);
  for (const secret of [KEY, ...secrets()]) assert.equal(text.includes(secret), false, `a secret in ${path}`);
  return JSON.parse(text) as Record<string, unknown>;
}

type Watchers = { unwatchedSubscriptions: Array<{ id: string; mailboxes: string[]; error: { code: string } }>; running: boolean; groups: Array<{ group: string; kind: string; listeners: Array<{ name: string; capacity: number; mailboxes: number; states: Record<string, number> }> }> };
type Events = { events: Array<{ type: string; mailbox: string; cursor: number; event: { subject?: string } }> };
type Connections = { connections: Array<{ name: string; lastToken?: { ok: boolean }; credential: { kind: string; expires?: string } }> };

test('connections, token, watchers and events of a running gateway', async () => {
  // A subscription no group serves: the watchers answer names it.
  await gw.store.notify.createSubscription({
    id: 'sub_unwatched',
    kind: 'webhook',
    mailboxes: ['nobody@contoso.test'],
    events: [],
    params: { url: 'https://dms.contoso.test/hook' },
    privacy: 'full',
    state: 'active',
    createdAt: Date.now(),
    updatedAt: Date.now(),
  });
  const watchers = await readUntil('the group watching', () => get('/api/v1/watchers') as Promise<Watchers>, (w) => w.groups[0]?.listeners[0]?.states.watching === 1);
  assert.equal(watchers.running, true);
  assert.deepEqual(watchers.groups.map((g) => [g.group, g.kind, g.listeners.map((l) => [l.name, l.mailboxes, l.capacity])]), [['legacy', 'imap', [['legacy/sandbox', 1, 1250]]]]);
  assert.deepEqual(
    watchers.unwatchedSubscriptions.map((u) => [u.id, u.mailboxes, u.error.code]),
    [['sub_unwatched', ['nobody@contoso.test'], 'MB_NOTIFY_MAILBOX_NOT_WATCHED']],
  );
  const boxes = (await get('/api/v1/watchers/legacy/mailboxes')) as { mailboxes: Array<{ mailbox: string; listener: string; state: string; group: string }> };
  assert.deepEqual(boxes.mailboxes.map((m) => [m.group, m.mailbox, m.listener, m.state]), [['legacy', WATCHED, 'legacy/sandbox', 'watching']]);

  const app = nodemailer.createTransport({
    host: '127.0.0.1',
    port: gw.relay!.relay.listeners[0]!.port,
    secure: false,
    requireTLS: true,
    tls: { ca: gw.relay!.relay.tls.cert, checkServerIdentity: () => undefined },
    auth: { user: 'scanner', pass: PASSWORD },
  });
  await app.sendMail({ from: 'scanner@contoso.test', to: WATCHED, subject: 'Status 0815', text: 'Scan.' });
  app.close();

  const events = await readUntil(
    'the new-mail event',
    () => get(`/api/v1/events?mailbox=${encodeURIComponent(WATCHED)}`) as Promise<Events>,
    (e) => e.events.some((x) => x.type === 'message.new' && x.event.subject === 'Status 0815'),
  );
  const last = events.events.at(-1)!;
  assert.equal(last.mailbox, WATCHED);
  const after = (await get(`/api/v1/events?after=${last.cursor}`)) as Events;
  assert.deepEqual(after.events, [], 'nothing after the last cursor');

  const connections = (await get('/api/v1/connections')) as Connections;
  const sandbox = connections.connections.find((c) => c.name === 'sandbox')!;
  assert.equal(sandbox.lastToken?.ok, true, 'the relay and the watcher got tokens');
  assert.equal(sandbox.credential.kind, 'secret');
  assert.ok(sandbox.credential.expires && Date.parse(sandbox.credential.expires) > Date.now());

  const token = (await get('/api/v1/connections/sandbox/token')) as { roles?: string[]; problems: unknown[]; expiresOn: string; resource: string };
  assert.equal(token.resource, 'exchange');
  assert.ok((token.roles ?? []).length > 0, JSON.stringify(token));
  assert.deepEqual(token.problems, []);
  assert.ok(Date.parse(token.expiresOn) > Date.now());
});
