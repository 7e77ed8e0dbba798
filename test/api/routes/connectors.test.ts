/**
 * Connector routes against a real Dovecot: a destination refuses two messages for good; the API
 * lists them in the quarantine with their MB code, the admin asks to retry them, and the next run
 * of the connector (as `mailbridge fetch --once` runs it, without --retry-rejected) delivers them
 * once; the run after that does not retry again. The checkpoints per mailbox and folder show it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { registerAdminApi } from '../../../src/api/index.ts';
import { configSchema, type Config } from '../../../src/app/schema.ts';
import { connectorPlugins } from '../../../src/app/connectors.ts';
import { runConnector } from '../../../src/connector/index.ts';
import { RetryRequests } from '../../../src/connector/retry-requests.ts';
import { append, connectorConfig, folderContents, makeMessage, startCapture, startRig, tempStore, type Rig } from '../../connector/helpers.ts';

const KEY = randomBytes(24).toString('base64url');
const READ_KEY = randomBytes(24).toString('base64url');
const BOX = 'quarantine@contoso.test';
let rig: Rig;
let st: Awaited<ReturnType<typeof tempStore>>;
let cap: Awaited<ReturnType<typeof startCapture>>;
let http: FastifyInstance;
let connector: ReturnType<typeof connectorConfig>;

before(async () => {
  rig = await startRig();
  st = await tempStore();
  cap = await startCapture({ lmtp: true });
  connector = connectorConfig(rig, { mailboxes: [BOX], destination: { kind: 'lmtp', port: cap.port, tls: 'none', recipients: { to: ['archive@intern.example'] } } });
  const config: Config = { ...configSchema.parse({}), connectors: { archive: connector } };
  http = Fastify();
  await registerAdminApi(http, {
    config,
    store: st.store,
    keys: [
      { name: 'ops', key: KEY, scopes: ['operate'] },
      { name: 'viewer', key: READ_KEY, scopes: ['read'] },
    ],
  });
});

after(async () => {
  await http?.close();
  await cap?.close();
  await st?.close();
  await rig?.close();
});

const run = () =>
  runConnector({ name: 'archive', plugins: connectorPlugins, config: connector, repo: st.store.checkpoints, tokens: rig.tokens, retryRequests: new RetryRequests(st.store.kv) }, { once: true });

async function get(url: string, key = READ_KEY) {
  const r = await http.inject({ url, headers: { authorization: `Bearer ${key}`, 'accept-language': 'de' } });
  return { status: r.statusCode, json: r.json() as Record<string, unknown> };
}

test('quarantined messages are listed with their MB code, retried once on request, and the checkpoints show it', async () => {
  await append(rig, BOX, 'INBOX', [makeMessage(1), makeMessage(2)]);
  cap.reply = '550 5.1.1 no such user here';
  assert.equal((await run()).rejected, 2);

  const q = await get('/api/v1/connectors/archive/quarantine');
  assert.equal(q.status, 200);
  const messages = q.json.messages as Array<{ mailbox: string; folder: string; item: string; error?: { code: string; title: string } }>;
  assert.deepEqual(messages.map((m) => [m.mailbox, m.folder, m.error?.code]), [
    [BOX, 'INBOX', 'MB_CONNECTOR_DEST_REJECTED'],
    [BOX, 'INBOX', 'MB_CONNECTOR_DEST_REJECTED'],
  ]);
  assert.match(messages[0]!.error!.title, /./);
  const list = await get('/api/v1/connectors');
  const archive = (list.json.connectors as Array<{ name: string; source: string; folders: Array<{ rejected: number; delivered: number }>; lastActivity?: string }>)[0]!;
  assert.equal(archive.name, 'archive');
  assert.equal(archive.source, 'imap');
  assert.deepEqual(archive.folders.map((f) => [f.delivered, f.rejected]), [[0, 2]]);
  assert.ok(archive.lastActivity);

  // Not retried by itself; a read key may not ask for it.
  cap.reply = undefined;
  assert.equal((await run()).delivered, 0);
  assert.equal((await http.inject({ method: 'POST', url: '/api/v1/connectors/archive/retry-rejected', headers: { authorization: `Bearer ${READ_KEY}` } })).statusCode, 403);
  const asked = await http.inject({ method: 'POST', url: '/api/v1/connectors/archive/retry-rejected', headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(asked.statusCode, 202);
  assert.equal(asked.json().quarantined, 2);

  const retried = await run();
  assert.equal(retried.delivered, 2);
  assert.equal(cap.got.length, 2);
  assert.ok((await folderContents(rig, BOX, 'INBOX')).every((m) => m.flags.has('\\Seen')));
  assert.deepEqual((await get('/api/v1/connectors/archive/quarantine')).json.messages, []);
  // Once per request: the next run finds nothing to retry.
  assert.equal((await run()).delivered, 0);
  assert.equal(cap.got.length, 2);

  const unknown = await http.inject({ method: 'POST', url: '/api/v1/connectors/nope/retry-rejected', headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(unknown.statusCode, 404);
  assert.equal(unknown.json().error.code, 'MB_API_UNKNOWN_NAME');
  assert.match(unknown.json().error.cause, /archive/);
});
