/**
 * The relay routes against a real relay run through the sandbox (Entra ID, Exchange Online's SMTP
 * front over Dovecot), as `serve` runs them: a message the mailbox may not send (SMTP AUTH off for
 * it, 535 5.7.139) is deferred; it is held, released, and after the admin fixed the mailbox retried
 * through the API until Exchange takes it. The trace shows the acceptance, each attempt with
 * Exchange's reply and the admin's actions, and the delivery; a second message is deleted. Every
 * change is in the audit log under the key's name. Answers are checked against the route's schema.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import nodemailer from 'nodemailer';
import { loadConfig } from '../../../src/app/config.ts';
import { createLogger } from '../../../src/log/index.ts';
import { setMailboxSmtpAuthDisabled } from '../../../src/sandbox/exchange/ops.ts';
import { startGateway, type Gateway } from '../../../src/server/index.ts';
import { readUntil } from '../../support/wait.ts';
import { startFullSandbox, type FullSandbox } from '../../relay/transports/full-sandbox.ts';

const PASSWORD = 'scanner password 1';
const SENDER = 'scanner@contoso.test';
const TO = 'alice@contoso.test';
const KEY = randomBytes(24).toString('base64url');
let s: FullSandbox;
let gw: Gateway;

before(async () => {
  s = await startFullSandbox();
  const file = s.writeConfig('mailbridge-api.yaml', {
    server: { listen: '127.0.0.1', port: 0 },
    relay: await s.relay('relay-api', PASSWORD, [{ name: 'exo', senders: ['@contoso.test'], connection: 'sandbox', smtp: { host: '127.0.0.1', port: s.sandbox.smtp.port, messagesPerConnection: 1 } }]),
    api: { keys: { ops: { key: KEY, scopes: ['operate'] }, auditor: { key: `${KEY}-audit`, scopes: ['admin'] } } },
  });
  const { config, keyFile } = await loadConfig(file, {});
  gw = await startGateway(config, createLogger({ level: 'silent' }), { keyFile, env: {} });
});

after(async () => {
  await gw?.close('test end');
  await s?.close();
});

async function call(method: string, path: string, key = KEY): Promise<{ status: number; body: Record<string, unknown> & { error?: { code: string } } }> {
  const res = await fetch(`${gw.url}${path}`, { method, headers: { authorization: `Bearer ${key}` } });
  const text = await res.text();
  assert.equal(text.includes(KEY), false, 'the key in an answer');
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown> & { error?: { code: string } }) : {} };
}

async function send(subject: string): Promise<string> {
  const app = nodemailer.createTransport({
    host: '127.0.0.1',
    port: gw.relay!.relay.listeners[0]!.port,
    secure: false,
    requireTLS: true,
    tls: { ca: gw.relay!.relay.tls.cert, checkServerIdentity: () => undefined },
    auth: { user: 'scanner', pass: PASSWORD },
  });
  try {
    const info = await app.sendMail({ from: SENDER, to: TO, subject, text: 'Scan.' });
    // The relay's 250 names the queue ID.
    const id = /queued as ([0-9A-Z]{18})/.exec(info.response)?.[1] ?? /([0-9A-HJKMNP-TV-Z]{18})/.exec(info.response)?.[1];
    assert.ok(id, info.response);
    return id;
  } finally {
    app.close();
  }
}

type Message = { id: string; state: string; attempts: number; lastError?: { code: string; reply?: string; fix: string } };
const message = async (id: string) => (await call('GET', `/api/v1/relay/queue/${id}`)).body as unknown as Message;

test('queue actions through the API move a real message, and its trace shows each attempt with Exchange\'s reply', async () => {
  setMailboxSmtpAuthDisabled(s.sandbox.directory, SENDER, true);
  const id = await send('Scan API 1');
  const deferred = await readUntil('deferred', () => message(id), (m) => m.state === 'deferred' && m.attempts === 1);
  assert.equal(deferred.lastError?.code, 'MB_RELAY_SMTP_AUTH_DISABLED_MAILBOX');
  assert.match(deferred.lastError?.reply ?? '', /^535 5\.7\.139 .*disabled for the Mailbox/);
  assert.match(deferred.lastError?.fix ?? '', /Set-CASMailbox -Identity scanner@contoso\.test -SmtpClientAuthenticationDisabled \$false/);

  const list = await call('GET', '/api/v1/relay/queue?state=deferred');
  assert.equal(list.status, 200);
  assert.deepEqual((list.body.messages as Message[]).map((m) => m.id), [id]);
  assert.equal((list.body.counts as Record<string, number>).deferred, 1);

  const held = await call('POST', `/api/v1/relay/queue/${id}/hold`);
  assert.equal(held.status, 200);
  assert.equal(held.body.state, 'held');
  assert.equal(held.body.holdReason, 'admin');
  // Holding twice is refused by the queue's rules, with its MB code.
  const twice = await call('POST', `/api/v1/relay/queue/${id}/hold`);
  assert.equal(twice.status, 409);
  assert.equal(twice.body.error?.code, 'MB_RELAY_QUEUE_STATE');

  // Released while the mailbox is still refused: tried again at once (the admin asked), deferred again.
  assert.equal((await call('POST', `/api/v1/relay/queue/${id}/release`)).status, 200);
  await readUntil('second attempt', () => message(id), (m) => m.state === 'deferred' && m.attempts === 2);

  // The admin fixes the mailbox and retries: delivered.
  setMailboxSmtpAuthDisabled(s.sandbox.directory, SENDER, false);
  const retried = await call('POST', `/api/v1/relay/queue/${id}/retry`);
  assert.equal(retried.status, 200);
  await readUntil('sent', () => message(id), (m) => m.state === 'sent');
  assert.equal((await s.inbox(TO)).filter((m) => m.includes('Subject: Scan API 1\r\n')).length, 1);

  const trace = await call('GET', `/api/v1/relay/queue/${id}/trace`);
  assert.equal(trace.status, 200);
  assert.equal(trace.body.outcome, 'delivered');
  const steps = trace.body.steps as Array<{ type: string; outcome?: string; action?: string; reply?: string; attempt?: number; error?: { code: string }; relayUser?: string }>;
  assert.deepEqual(
    steps.map((x) => (x.type === 'attempt' ? `attempt ${x.attempt} ${x.outcome}` : x.type === 'admin' ? `admin ${x.action}` : x.type)),
    ['accepted', 'attempt 1 deferred', 'admin hold', 'admin release', 'attempt 2 deferred', 'admin retry', 'attempt 3 delivered'],
  );
  assert.equal(steps[0]!.relayUser, 'scanner');
  for (const i of [1, 4]) {
    assert.match(steps[i]!.reply ?? '', /^535 5\.7\.139/);
    assert.equal(steps[i]!.error?.code, 'MB_RELAY_SMTP_AUTH_DISABLED_MAILBOX');
  }
  assert.match(steps[6]!.reply ?? '', /^250 /, 'Exchange acknowledged the message');

  const pacing = await call('GET', '/api/v1/relay/pacing');
  assert.ok((pacing.body.mailboxes as Array<{ mailbox: string; startsLastMinute: number }>).some((m) => m.mailbox === SENDER && m.startsLastMinute >= 1), JSON.stringify(pacing.body));
  const routes = await call('GET', '/api/v1/relay/routes');
  assert.deepEqual((routes.body.routes as Array<{ name: string; transport: string }>).map((r) => [r.name, r.transport]), [['exo', 'smtp']]);
  const users = await call('GET', '/api/v1/relay/users');
  assert.deepEqual(users.body, { users: [{ name: 'scanner', allowedSenders: ['@contoso.test'], disabled: false }] }, 'never the password hash');
});

test('a held message is deleted through the API with its trace; every change is in the audit log under the key\'s name', async () => {
  setMailboxSmtpAuthDisabled(s.sandbox.directory, SENDER, true);
  const id = await send('Scan API 2');
  await readUntil('deferred', () => message(id), (m) => m.state === 'deferred');
  assert.equal((await call('POST', `/api/v1/relay/queue/${id}/hold`)).status, 200);
  assert.equal((await call('DELETE', `/api/v1/relay/queue/${id}`)).status, 204);
  const gone = await call('GET', `/api/v1/relay/queue/${id}`);
  assert.equal(gone.status, 404);
  assert.equal(gone.body.error?.code, 'MB_RELAY_QUEUE_NOT_FOUND');
  assert.equal((await call('GET', `/api/v1/relay/queue/${id}/trace`)).status, 404);
  assert.equal(await gw.store.kv.get('relay.trace', id), undefined, 'the trace went with the message');
  setMailboxSmtpAuthDisabled(s.sandbox.directory, SENDER, false);

  // The operate key may not read the audit log; the admin key may.
  assert.equal((await call('GET', '/api/v1/audit')).status, 403);
  const audit = await call('GET', '/api/v1/audit?who=ops', `${KEY}-audit`);
  assert.equal(audit.status, 200);
  const entries = (audit.body.entries as Array<{ who: string; action: string; target: string; status: number; code?: string }>).reverse();
  assert.deepEqual(
    entries.map((e) => [e.action.replace('/api/v1/relay/queue/', ''), e.status, e.code ?? '']),
    [
      ['POST {id}/hold', 200, ''],
      ['POST {id}/hold', 409, 'MB_RELAY_QUEUE_STATE'],
      ['POST {id}/release', 200, ''],
      ['POST {id}/retry', 200, ''],
      ['POST {id}/hold', 200, ''],
      ['DELETE {id}', 204, ''],
    ],
  );
  assert.ok(entries.every((e) => e.who === 'ops' && /^[0-9A-Z]{18}$/.test(e.target)));
});
