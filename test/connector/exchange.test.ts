/**
 * Through the sandbox's Exchange Online IMAP front (src/sandbox/exchange/imap.ts) in front of a real
 * Dovecot, with app-only tokens shaped like Entra's: XOAUTH2 to user and shared mailboxes works, and
 * Exchange's failure replies become MB codes whose fix is the exact PowerShell line with the app ID
 * and the Enterprise application object ID taken from the token: a revoked FullAccess, a
 * New-ServicePrincipal made with the wrong object ID, a delegated user without access to a shared
 * mailbox, a token without IMAP.AccessAsApp, and throttling (the suggested backoff is honoured).
 * Nothing is lost in any of these: the messages stay in the mailbox and arrive once access is back.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ImapFlow } from 'imapflow';
import { connectorSchema, type ConnectorInput } from '../../src/connector/config.ts';
import { runConnector, type RunOptions } from '../../src/connector/index.ts';
import type { ConnectorEvent, TokenProvider } from '../../src/connector/types.ts';
import type { SandboxDirectory } from '../../src/sandbox/directory.ts';
import type { ImapFront } from '../../src/sandbox/exchange/imap.ts';
import { append, events, exchangeTenant, folderContents, maildirFiles, makeMessage, startRig, tempStore, type ExchangeTenant, type Rig } from './helpers.ts';
import { waitFor } from '../support/wait.ts';
import { tempDir } from '../support/temp.ts';
import { connectorPlugins } from '../../src/app/connectors.ts';

let rig: Rig;
let st: Awaited<ReturnType<typeof tempStore>>;
let front: ImapFront;
let directory: SandboxDirectory;
let exo: ExchangeTenant;
const kid = 'exo-test';
const tenantId = randomUUID();
const app = { appId: randomUUID(), objectId: randomUUID(), servicePrincipalId: randomUUID() };
const carol = { objectId: randomUUID(), upn: 'carol@contoso.test' };
const extraFronts: ImapFront[] = [];

before(async () => {
  rig = await startRig();
  st = await tempStore();
  exo = await exchangeTenant(rig, {
    kid,
    tenantId,
    app,
    users: [{ objectId: carol.objectId, upn: carol.upn }],
    mailboxes: [
      { address: 'alice@contoso.test', fullAccess: [app.servicePrincipalId] },
      { address: 'info@contoso.test', type: 'shared', fullAccess: [app.servicePrincipalId] },
      { address: 'revoked@contoso.test', fullAccess: [app.servicePrincipalId] },
      { address: 'team@contoso.test', type: 'shared' },
      { address: 'busy@contoso.test', fullAccess: [app.servicePrincipalId] },
      { address: 'carol@contoso.test' },
    ],
  });
  directory = exo.directory;
  front = await exo.front();
});

after(async () => {
  for (const f of extraFronts) await f.close();
  await front?.close();
  await st?.close();
  await rig?.close();
});

function token(claims: Record<string, unknown> = {}): Promise<string> {
  return exo.token(claims);
}

function config(f: ImapFront, input: Partial<ConnectorInput> & Pick<ConnectorInput, 'destination' | 'mailboxes'>) {
  return connectorSchema.parse({
    connection: 'contoso',
    source: { kind: 'imap', host: '127.0.0.1', port: f.port, tls: 'implicit', servername: 'localhost' },
    retry: { initialSeconds: 0.05, maxSeconds: 0.5 },
    ...input,
  });
}

async function run(name: string, tokens: TokenProvider, input: Partial<ConnectorInput> & Pick<ConnectorInput, 'destination' | 'mailboxes'>, opts: RunOptions = { once: true }, f = front) {
  const ev = events();
  const c = config(f, input);
  const summary = await runConnector({ plugins: connectorPlugins, name, config: c, repo: st.store.checkpoints, tokens, onEvent: ev.on, readFile: () => rig.ca.certPem }, opts);
  return { summary, ev };
}

/** The connector's config names a caFile; the test hands the CA over readFile. */
function withCa(input: Pick<ConnectorInput, 'destination' | 'mailboxes'> & Partial<ConnectorInput>, f = front): Pick<ConnectorInput, 'destination' | 'mailboxes'> & Partial<ConnectorInput> {
  return { ...input, source: { kind: 'imap', host: '127.0.0.1', port: f.port, tls: 'implicit', servername: 'localhost', caFile: '/sandbox-ca.pem' } };
}

const appTokens: TokenProvider = () => token();

test('XOAUTH2 through the Exchange front: a user and a shared mailbox (SASL user = the shared mailbox), moved afterwards', async () => {
  const md = tempDir('mb-exo-');
  try {
    const a = [makeMessage(1, { to: 'alice@contoso.test' }), makeMessage(2, { to: 'alice@contoso.test' })];
    const s = [makeMessage(3, { to: 'info@contoso.test' })];
    await append(rig, 'alice@contoso.test', 'INBOX', a);
    await append(rig, 'info@contoso.test', 'INBOX', s);
    const r = await run('exo', appTokens, withCa({ mailboxes: ['alice@contoso.test', 'info@contoso.test'], destination: { kind: 'maildir', path: md.path }, after: { action: 'move', folder: 'Archive' } }));
    assert.deepEqual(r.summary.errors.map((e) => e.error.message), []);
    assert.equal(r.summary.delivered, 3);
    const sorted = (l: Buffer[]) => l.map((b) => b.toString('latin1')).sort();
    assert.deepEqual(sorted(maildirFiles(md.path).map((f) => f.raw)), sorted([...a, ...s]));
    assert.equal((await folderContents(rig, 'alice@contoso.test', 'Archive')).length, 2);
    assert.equal((await folderContents(rig, 'info@contoso.test', 'Archive')).length, 1);
    assert.equal((await folderContents(rig, 'info@contoso.test', 'INBOX')).length, 0);
  } finally {
    md.remove();
  }
});

test('IDLE through the Exchange front picks up new mail', async () => {
  const md = tempDir('mb-exo-idle-');
  const controller = new AbortController();
  const seen: ConnectorEvent[] = [];
  const c = config(front, withCa({ mailboxes: ['carol@contoso.test'], destination: { kind: 'maildir', path: md.path }, pollSeconds: 3600 }));
  const running = runConnector(
    { plugins: connectorPlugins,
      name: 'exo-idle',
      config: c,
      repo: st.store.checkpoints,
      tokens: () => token({ scp: 'IMAP.AccessAsUser.All', upn: carol.upn, oid: carol.objectId, roles: undefined, idtyp: 'user' }),
      onEvent: (e) => seen.push(e),
      readFile: () => rig.ca.certPem,
    },
    { signal: controller.signal },
  );
  try {
    await waitFor(() => seen.some((e) => e.type === 'waiting'), 20_000, 'waiting in IDLE');
    await rig.dovecot.deliver({ from: 'x@outside.example', to: ['carol@contoso.test'] }, makeMessage(7, { to: 'carol@contoso.test' }));
    await waitFor(() => maildirFiles(md.path).length === 1, 30_000, 'IDLE pickup through the front');
  } finally {
    controller.abort();
    await running;
    md.remove();
  }
});

test('revoked FullAccess: MB_CONNECTOR_NOT_CONNECTED with the exact PowerShell lines; nothing lost, delivered once access is back', async () => {
  const box = 'revoked@contoso.test';
  const md = tempDir('mb-exo-rev-');
  const mailbox = directory.mailbox(box)!.mailbox;
  try {
    const msgs = [makeMessage(1, { to: box }), makeMessage(2, { to: box })];
    await append(rig, box, 'INBOX', msgs);
    mailbox.fullAccess = [];
    const r = await run('exo-revoked', appTokens, withCa({ mailboxes: [box], destination: { kind: 'maildir', path: md.path } }));
    assert.equal(r.summary.delivered, 0);
    assert.equal(r.summary.errors.length, 1);
    const e = r.summary.errors[0]!.error;
    assert.equal(e.code, 'MB_CONNECTOR_NOT_CONNECTED');
    const en = e.explain('en');
    assert.ok(en.fix.includes(`New-ServicePrincipal -AppId ${app.appId} -ObjectId ${app.servicePrincipalId}`), en.fix);
    assert.ok(en.fix.includes(`Add-MailboxPermission -Identity ${box} -User ${app.servicePrincipalId} -AccessRights FullAccess`), en.fix);
    assert.ok(en.fix.includes(`Connect-ExchangeOnline -Organization ${tenantId}`));
    assert.ok(!en.fix.includes(app.objectId), 'never the app registration object ID');
    assert.match(e.explain('de').fix, /Unternehmensanwendung/);
    const src = await folderContents(rig, box, 'INBOX');
    assert.equal(src.length, 2);
    assert.ok(src.every((m) => !m.flags.has('\\Seen')));
    assert.equal(maildirFiles(md.path).length, 0);

    // Add-MailboxPermission run: the next run delivers both.
    mailbox.fullAccess = [app.servicePrincipalId];
    const ok = await run('exo-revoked', appTokens, withCa({ mailboxes: [box], destination: { kind: 'maildir', path: md.path } }));
    assert.deepEqual(ok.summary.errors, []);
    assert.equal(ok.summary.delivered, 2);
    assert.equal(maildirFiles(md.path).length, 2);
  } finally {
    mailbox.fullAccess = [app.servicePrincipalId];
    md.remove();
  }
});

test('New-ServicePrincipal made with the app registration object ID: the fix names the Enterprise application object ID from the token', async () => {
  const tenant = directory.tenant(tenantId)!;
  const saved = tenant.exchange.servicePrincipals;
  tenant.exchange.servicePrincipals = [{ appId: app.appId, objectId: app.objectId, displayName: 'mailbridge' }];
  try {
    const r = await run('exo-wrong-oid', appTokens, withCa({ mailboxes: ['alice@contoso.test'], destination: { kind: 'maildir', path: '/nonexistent/never-used' } }));
    const e = r.summary.errors[0]!.error;
    assert.equal(e.code, 'MB_CONNECTOR_NOT_CONNECTED');
    assert.ok(e.explain('en').fix.includes(`-ObjectId ${app.servicePrincipalId}`));
  } finally {
    tenant.exchange.servicePrincipals = saved;
  }
});

test('a delegated user without FullAccess on a shared mailbox: MB_CONNECTOR_NOT_CONNECTED_DELEGATED names the user', async () => {
  const delegated: TokenProvider = () => token({ scp: 'IMAP.AccessAsUser.All', upn: carol.upn, oid: carol.objectId, roles: undefined, idtyp: 'user' });
  const r = await run('exo-delegated', delegated, withCa({ mailboxes: ['team@contoso.test'], destination: { kind: 'maildir', path: '/nonexistent/never-used' } }));
  const e = r.summary.errors[0]!.error;
  assert.equal(e.code, 'MB_CONNECTOR_NOT_CONNECTED_DELEGATED');
  assert.ok(e.explain('en').fix.includes(`Add-MailboxPermission -Identity team@contoso.test -User ${carol.upn} -AccessRights FullAccess`));
});

test('a typo in the mailbox address: Exchange answers as for a missing permission, and the explanation lists the typo first', async () => {
  const r = await run('exo-typo', appTokens, withCa({ mailboxes: ['alcie@contoso.test'], destination: { kind: 'maildir', path: '/nonexistent/never-used' } }));
  const e = r.summary.errors[0]!.error;
  assert.equal(e.code, 'MB_CONNECTOR_NOT_CONNECTED');
  const { cause, fix } = e.explain('en');
  assert.match(cause, /1\. the address alcie@contoso\.test has a typo/);
  assert.ok(cause.indexOf('typo') < cause.indexOf('service principal'), 'the typo is the first thing to check');
  assert.ok(fix.startsWith('First the address: Get-EXOMailbox -Identity alcie@contoso.test'));
  assert.match(e.explain('de').cause, /1\. Die Adresse alcie@contoso\.test enthält einen Tippfehler/);
});

test('a token without IMAP.AccessAsApp: MB_CONNECTOR_AUTH_FAILED pointing at the API permission', async () => {
  const r = await run('exo-norole', () => token({ roles: ['SMTP.SendAsApp'] }), withCa({ mailboxes: ['alice@contoso.test'], destination: { kind: 'maildir', path: '/nonexistent/never-used' } }));
  const e = r.summary.errors[0]!.error;
  assert.equal(e.code, 'MB_CONNECTOR_AUTH_FAILED');
  assert.match(e.explain('en').cause, /NO AUTHENTICATE failed|AUTHENTICATE failed/);
  assert.match(e.explain('en').fix, /IMAP\.AccessAsApp/);
});

test('throttling: MB_CONNECTOR_THROTTLED with the suggested time, and the reconnect waits at least that long', async () => {
  const box = 'busy@contoso.test';
  const limited = await exo.front({ maxConnectionsPerMailbox: 1, backoffMs: 7000 });
  extraFronts.push(limited);
  // Another program holds the one session Exchange allows for this mailbox.
  const holder = new ImapFlow({ host: '127.0.0.1', port: limited.port, secure: true, tls: { ca: [rig.ca.certPem], servername: 'localhost' }, auth: { user: box, accessToken: await token() }, logger: false });
  holder.on('error', () => undefined);
  await holder.connect();
  const md = tempDir('mb-exo-thr-');
  try {
    await append(rig, box, 'INBOX', [makeMessage(1, { to: box })]);
    const input = withCa({ mailboxes: [box], destination: { kind: 'maildir', path: md.path } }, limited);
    const once = await run('exo-throttle', appTokens, input, { once: true }, limited);
    const e = once.summary.errors[0]!.error;
    assert.equal(e.code, 'MB_CONNECTOR_THROTTLED');
    assert.match(e.explain('en').cause, /suggested waiting 7 seconds/);

    // Running: the error event carries the wait before the next attempt, which honours the hint.
    const controller = new AbortController();
    const seen: ConnectorEvent[] = [];
    const running = runConnector(
      { plugins: connectorPlugins, name: 'exo-throttle', config: config(limited, input), repo: st.store.checkpoints, tokens: appTokens, onEvent: (ev) => seen.push(ev), readFile: () => rig.ca.certPem },
      { signal: controller.signal },
    );
    const err = await waitFor(() => seen.find((x): x is Extract<ConnectorEvent, { type: 'error' }> => x.type === 'error'), 20_000, 'throttled');
    controller.abort();
    await running;
    assert.equal(err.error.code, 'MB_CONNECTOR_THROTTLED');
    assert.ok((err.retryInMs ?? 0) >= 7000, `waits ${err.retryInMs} ms, at least the suggested 7000`);
    assert.equal(maildirFiles(md.path).length, 0);

    await holder.logout();
    const free = await run('exo-throttle', appTokens, input, { once: true }, limited);
    assert.deepEqual(free.summary.errors, []);
    assert.equal(free.summary.delivered, 1);
  } finally {
    holder.close();
    md.remove();
  }
});
