/**
 * The IMAP watcher through the sandbox's Exchange Online IMAP front (implicit TLS, XOAUTH2 with
 * Entra-shaped app tokens, Exchange's capability list: no CONDSTORE, no QRESYNC, no ENABLE) in front
 * of a real Dovecot. Without CONDSTORE the watcher compares unseen sets and finds deletions by UID
 * list; new, read and deleted still arrive once each through the real store, dispatcher and webhook
 * sink. Exchange's refusals become MB codes with the fix: "authenticated but not connected" names the
 * Add-MailboxPermission and New-ServicePrincipal lines with the IDs from the token, a token without
 * IMAP.AccessAsApp names the API permission, throttling honours the suggested wait.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ImapFlow } from 'imapflow';
import type { SandboxDirectory } from '../../../../src/sandbox/directory.ts';
import type { ImapFront } from '../../../../src/sandbox/exchange/imap.ts';
import { IMAP_KV_NAMESPACE, imapCheckpointKey, type StoredCheckpoint } from '../../../../src/notify/watchers/imap/index.ts';
import type { ReadStateEvent } from '../../../../src/notify/events.ts';
import { ImapSessionError } from '../../../../src/m365/imap-replies.ts';
import { createLogger } from '../../../../src/log/index.ts';
import { append, exchangeTenant, makeMessage, startRig, type ExchangeTenant, type Rig } from '../../../connector/helpers.ts';
import { startPipeline, watcherFor, type Pipeline } from './helpers.ts';
import { waitFor } from '../../../support/wait.ts';

let rig: Rig;
let front: ImapFront;
let directory: SandboxDirectory;
let exo: ExchangeTenant;
const kid = 'exo-watch';
const tenantId = randomUUID();
const app = { appId: randomUUID(), objectId: randomUUID(), servicePrincipalId: randomUUID() };
const open: Array<{ close(): Promise<void> }> = [];

before(async () => {
  rig = await startRig();
  exo = await exchangeTenant(rig, {
    kid,
    tenantId,
    app,
    mailboxes: [
      { address: 'eva@contoso.test', fullAccess: [app.servicePrincipalId] },
      { address: 'revoked@contoso.test', fullAccess: [] },
      { address: 'busy@contoso.test', fullAccess: [app.servicePrincipalId] },
    ],
  });
  directory = exo.directory;
  front = await exo.front();
});

after(async () => {
  for (const o of open.reverse()) await o.close().catch(() => undefined);
  await front?.close();
  await rig?.close();
});

function token(claims: Record<string, unknown> = {}): Promise<string> {
  return exo.token(claims);
}

async function pipeline(mailboxes: string[]): Promise<Pipeline> {
  const p = await startPipeline(mailboxes);
  open.push(p);
  return p;
}

const viaFront = (f = front) => ({ port: f.port, tls: 'implicit' as const, servername: 'localhost' });

async function onDovecot(mailbox: string, fn: (c: ImapFlow) => Promise<void>): Promise<void> {
  const c = await rig.imap(mailbox);
  try {
    await c.mailboxOpen('INBOX');
    await fn(c);
  } finally {
    await c.logout().catch(() => undefined);
  }
}

test('through the Exchange front (no CONDSTORE): new, read, unread and deleted arrive once each with the unread count', async () => {
  const box = 'eva@contoso.test';
  const [old] = await append(rig, box, 'INBOX', [makeMessage(1)]);
  const p = await pipeline([box]);
  const w = watcherFor(p, viaFront(), [{ address: box, folders: ['INBOX'] }], () => token(), { ca: rig.ca.certPem });
  open.push(w);
  await w.start();
  assert.deepEqual(w.status().map((s) => s.state), ['watching'], JSON.stringify(w.status()));
  assert.equal(p.published.length, 0);

  await rig.dovecot.deliver({ from: 'anna@fabrikam.test', to: [box] }, makeMessage(2, { subject: 'Angebot', from: 'anna@fabrikam.test', to: box }));
  await waitFor(() => p.receiver.of(box).length === 1, 20_000, 'message.new through the front');
  const created = p.receiver.of(box)[0]!;
  assert.ok(created.type === 'message.new');
  assert.equal(created.subject, 'Angebot');
  assert.equal(created.unreadCount, 2);
  const uid = Number(created.messageId.split('/').pop());

  await onDovecot(box, (c) => c.messageFlagsAdd(String(uid), ['\\Seen'], { uid: true }).then(() => undefined));
  await waitFor(() => p.receiver.of(box).length === 2, 20_000, 'read-state');
  await onDovecot(box, (c) => c.messageFlagsRemove(String(uid), ['\\Seen'], { uid: true }).then(() => undefined));
  await waitFor(() => p.receiver.of(box).length === 3, 20_000, 'unread again');
  const states = p.receiver.of(box, 'message.read-state') as ReadStateEvent[];
  assert.deepEqual(states.map((s) => [s.read, s.unreadCount]), [[true, 1], [false, 2]]);
  assert.notEqual(states[0]!.id, states[1]!.id);

  await onDovecot(box, (c) => c.messageDelete(String(old), { uid: true }).then(() => undefined));
  await waitFor(() => p.receiver.of(box).length === 4, 20_000, 'message.deleted');
  const gone = p.receiver.of(box)[3]!;
  assert.ok(gone.type === 'message.deleted');
  assert.equal(Number(gone.messageId.split('/').pop()), old);
  assert.equal(gone.unreadCount, 1);
  assert.equal(new Set(p.receiver.got.map((g) => g.id)).size, 4, 'each once');

  assert.equal(w.folders[0]!.mode, 'compare');
  // No CONDSTORE through the front: the checkpoint holds no MODSEQ.
  const cp = JSON.parse((await p.store.store.kv.get(IMAP_KV_NAMESPACE, imapCheckpointKey(box, 'INBOX')))!) as StoredCheckpoint;
  assert.equal(cp.modseq, undefined);
  assert.equal(cp.unseen, String(uid));
  await w.close();
});

test('"authenticated but not connected": MB_CONNECTOR_NOT_CONNECTED with the Add-MailboxPermission line and the IDs from the token; watching once access is back', async () => {
  const box = 'revoked@contoso.test';
  const mailbox = directory.mailbox(box)!.mailbox;
  const p = await pipeline([box]);
  const w = watcherFor(p, viaFront(), [{ address: box, folders: ['INBOX'] }], () => token(), { ca: rig.ca.certPem });
  open.push(w);
  try {
    await w.start();
    const st = w.status()[0]!;
    assert.equal(st.state, 'failed');
    assert.equal(st.error?.code, 'MB_CONNECTOR_NOT_CONNECTED');
    const problem = p.problems.find((x) => x.mailbox === box)!.error;
    const fix = problem.explain('en').fix;
    assert.ok(fix.includes(`Add-MailboxPermission -Identity ${box} -User ${app.servicePrincipalId} -AccessRights FullAccess`), fix);
    assert.ok(fix.includes(`New-ServicePrincipal -AppId ${app.appId} -ObjectId ${app.servicePrincipalId}`), fix);
    assert.match(problem.explain('de').fix, /Unternehmensanwendung/);
    // Permissions take a while in Exchange: the next attempt is a minute away, not a tight loop.
    assert.ok(problem instanceof ImapSessionError && (problem.retryAfterMs ?? 0) >= 60_000);
  } finally {
    await w.close();
  }
  // Add-MailboxPermission run: a new start watches.
  mailbox.fullAccess = [app.servicePrincipalId];
  const w2 = watcherFor(p, viaFront(), [{ address: box, folders: ['INBOX'] }], () => token(), { ca: rig.ca.certPem });
  open.push(w2);
  await w2.start();
  assert.equal(w2.status()[0]!.state, 'watching');
  await w2.close();
});

test('a token without IMAP.AccessAsApp: MB_CONNECTOR_AUTH_FAILED naming the API permission; the token never appears in the error', async () => {
  const box = 'eva@contoso.test';
  const p = await pipeline([box]);
  const bad = await token({ roles: ['SMTP.SendAsApp'] });
  const w = watcherFor(p, viaFront(), [{ address: box, folders: ['INBOX'] }], async () => bad, { ca: rig.ca.certPem });
  open.push(w);
  await w.start();
  const st = w.status()[0]!;
  assert.equal(st.state, 'failed');
  assert.equal(st.error?.code, 'MB_CONNECTOR_AUTH_FAILED');
  const e = p.problems[0]!.error;
  assert.match(e.explain('en').cause, /AUTHENTICATE failed/);
  assert.match(e.explain('en').fix, /IMAP\.AccessAsApp/);
  assert.ok(!JSON.stringify([st, e.explain('en'), e.message]).includes(bad), 'no token in status or error');
  await w.close();
});

test('throttled by the front: MB_WATCH_IMAP_THROTTLED with the suggested wait, honoured before the next attempt', async () => {
  const box = 'busy@contoso.test';
  const limited = await exo.front({ maxConnectionsPerMailbox: 1, backoffMs: 7000 });
  open.push(limited);
  const holder = new ImapFlow({ host: '127.0.0.1', port: limited.port, secure: true, tls: { ca: [rig.ca.certPem], servername: 'localhost' }, auth: { user: box, accessToken: await token() }, logger: false });
  holder.on('error', () => undefined);
  await holder.connect();
  try {
    const p = await pipeline([box]);
    // The watcher's own line says when it tries again: that is the wait it then sleeps.
    const lines: Array<{ code?: string; retryInMs?: number }> = [];
    const log = createLogger({ level: 'warn', destination: { write: (l: string) => lines.push(JSON.parse(l) as (typeof lines)[number]) } });
    const w = watcherFor(p, viaFront(limited), [{ address: box, folders: ['INBOX'] }], () => token(), { ca: rig.ca.certPem, log });
    open.push(w);
    await w.start();
    const st = w.status()[0]!;
    assert.equal(st.state, 'reconnecting');
    assert.equal(st.error?.code, 'MB_WATCH_IMAP_THROTTLED');
    const e = p.problems[0]!.error;
    assert.ok(e instanceof ImapSessionError && (e.retryAfterMs ?? 0) >= 7000);
    assert.match(e.explain('en').cause, /suggested waiting 7 seconds/);
    assert.match(e.explain('de').fix, /concurrentLogins/);
    // The next attempt waits the suggested 7 s, not the back-off's own first pause (50 ms here).
    const planned = lines.filter((l) => l.code === 'MB_WATCH_IMAP_THROTTLED');
    assert.equal(planned.length, 1);
    assert.ok((planned[0]!.retryInMs ?? 0) >= 7000, `retry planned in ${planned[0]!.retryInMs} ms`);
    assert.equal(w.folders[0]!.connects, 1);
    await w.close();
  } finally {
    await holder.logout().catch(() => undefined);
    holder.close();
  }
});
