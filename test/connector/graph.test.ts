/**
 * The Graph source against the sandbox Graph API (src/sandbox/graph) over the same real Dovecot:
 * delta paging ($skiptoken, then $deltatoken kept as the cursor), the raw MIME from /$value byte for
 * byte, the after-delivery action as Graph calls (isRead, move, permanentDelete), a lost delta
 * state (410 SyncStateNotFound) resynchronised without duplicates, 429 with Retry-After waited out,
 * and a missing permission explained (MB_CONNECTOR_GRAPH_FORBIDDEN).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type JSONWebKeySet } from 'jose';
import { connectorSchema, type ConnectorInput } from '../../src/connector/config.ts';
import { fetchExitCode, FETCH_EXIT } from '../../src/admin/cli/commands/fetch.ts';
import { runConnector } from '../../src/connector/index.ts';
import type { TokenProvider } from '../../src/connector/types.ts';
import { SandboxDirectory } from '../../src/sandbox/directory.ts';
import { startGraphSandbox, type GraphSandbox } from '../../src/sandbox/graph/index.ts';
import { append, events, folderContents, maildirFiles, makeMessage, manualSleep, startRig, tempStore, type Rig } from './helpers.ts';
import { waitFor } from '../support/wait.ts';
import { tempDir } from '../support/temp.ts';
import { connectorPlugins } from '../../src/app/connectors.ts';

let rig: Rig;
let st: Awaited<ReturnType<typeof tempStore>>;
let graph: GraphSandbox;
let signer: Awaited<ReturnType<typeof generateKeyPair>>;
const kid = 'graph-test';
const tenantId = randomUUID();
const app = { appId: randomUUID(), objectId: randomUUID(), servicePrincipalId: randomUUID() };
const reader = { appId: randomUUID(), objectId: randomUUID(), servicePrincipalId: randomUUID() };
const boxes = ['g-seen', 'g-move', 'g-delete', 'g-resync', 'g-throttle', 'g-forbidden', 'g-readonly', 'g-granted'].map((n) => `${n}@contoso.test`);

before(async () => {
  rig = await startRig();
  st = await tempStore();
  signer = await generateKeyPair('RS256', { extractable: true });
  const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(signer.publicKey)), kid, alg: 'RS256', use: 'sig' }] };
  const directory = new SandboxDirectory({
    tenants: [
      {
        id: tenantId,
        domains: ['contoso.test'],
        apps: [
          { ...app, displayName: 'mailbridge', appRoles: { exchange: [], graph: ['Mail.ReadWrite'] } },
          { ...reader, displayName: 'no-mail', appRoles: { exchange: [], graph: [] } },
        ],
        exchange: { servicePrincipals: [], mailboxes: boxes.map((address) => ({ address })) },
      },
    ],
  });
  graph = await startGraphSandbox({ directory, jwks, tls: rig.ca.issueServer(), dovecot: rig.dovecot });
});

after(async () => {
  await graph?.close();
  await st?.close();
  await rig?.close();
});

function tokens(who = app, roles = ['Mail.ReadWrite']): TokenProvider {
  return async () => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ aud: 'https://graph.microsoft.com', iss: `https://sts.windows.net/${tenantId}/`, tid: tenantId, appid: who.appId, oid: who.servicePrincipalId, idtyp: 'app', roles, ver: '1.0' })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid })
      .setIssuedAt(now - 60)
      .setExpirationTime(now + 3600)
      .sign(signer.privateKey);
  };
}

async function run(name: string, input: Partial<ConnectorInput> & Pick<ConnectorInput, 'destination' | 'mailboxes'>, provider = tokens()) {
  const ev = events();
  const config = connectorSchema.parse({
    connection: 'contoso',
    source: { kind: 'graph', baseUrl: `${graph.url}/v1.0`, caFile: '/sandbox-ca.pem', pageSize: 3 },
    retry: { initialSeconds: 0.05, maxSeconds: 0.5 },
    ...input,
  });
  const summary = await runConnector({ plugins: connectorPlugins, name, config, repo: st.store.checkpoints, tokens: provider, onEvent: ev.on, readFile: () => rig.ca.certPem }, { once: true });
  return { summary, ev };
}

const sorted = (l: Buffer[]) => l.map((b) => b.toString('latin1')).sort();

test('delta over pages, /$value byte for byte, isRead afterwards; the deltaLink cursor brings only what is new', async () => {
  const box = boxes[0]!;
  const md = tempDir('mb-graph-');
  try {
    const msgs = Array.from({ length: 8 }, (_, i) => makeMessage(i, { to: box }));
    await append(rig, box, 'INBOX', msgs);
    const r = await run('g-seen', { mailboxes: [box], destination: { kind: 'maildir', path: md.path } });
    assert.deepEqual(r.summary.errors.map((e) => e.error.message), []);
    assert.equal(r.summary.delivered, 8);
    assert.deepEqual(sorted(maildirFiles(md.path).map((f) => f.raw)), sorted(msgs));
    assert.ok((await folderContents(rig, box, 'INBOX')).every((m) => m.flags.has('\\Seen')), 'PATCH isRead reached the mailbox');
    const cp = (await st.store.checkpoints.get({ connector: 'g-seen', mailbox: box, folder: 'INBOX' }))!;
    assert.match(cp.cursor ?? '', /\$deltatoken=/);

    // The isRead changes come back as "updated" in the next round: known ids, not delivered again.
    const quiet = await run('g-seen', { mailboxes: [box], destination: { kind: 'maildir', path: md.path } });
    assert.equal(quiet.summary.delivered, 0);
    const extra = makeMessage(99, { to: box });
    await append(rig, box, 'INBOX', [extra]);
    const more = await run('g-seen', { mailboxes: [box], destination: { kind: 'maildir', path: md.path } });
    assert.equal(more.summary.delivered, 1);
    assert.equal(maildirFiles(md.path).length, 9);
  } finally {
    md.remove();
  }
});

test('move and permanentDelete as after-delivery actions', async () => {
  const [mv, del] = [boxes[1]!, boxes[2]!];
  const md = tempDir('mb-graph-mv-');
  try {
    await append(rig, mv, 'INBOX', [makeMessage(1, { to: mv }), makeMessage(2, { to: mv })]);
    await append(rig, mv, 'Archive', [makeMessage(3, { to: mv })]);
    await append(rig, del, 'INBOX', [makeMessage(4, { to: del })]);
    const a = await run('g-move', { mailboxes: [mv], destination: { kind: 'maildir', path: md.path }, after: { action: 'move', folder: 'archive' } });
    assert.equal(a.summary.delivered, 2);
    assert.equal((await folderContents(rig, mv, 'INBOX')).length, 0);
    assert.equal((await folderContents(rig, mv, 'Archive')).length, 3);
    const b = await run('g-delete', { mailboxes: [del], destination: { kind: 'maildir', path: md.path }, after: { action: 'delete' } });
    assert.equal(b.summary.delivered, 1);
    assert.equal((await folderContents(rig, del, 'INBOX')).length, 0);
    assert.equal((await folderContents(rig, del, 'Deleted Items')).length, 0, 'gone for good, not in Deleted Items');
  } finally {
    md.remove();
  }
});

test('lost delta state (410 SyncStateNotFound): MB_CONNECTOR_GRAPH_RESYNC, a new round, nothing twice', async () => {
  const box = boxes[3]!;
  const md = tempDir('mb-graph-410-');
  try {
    await append(rig, box, 'INBOX', Array.from({ length: 5 }, (_, i) => makeMessage(i, { to: box })));
    assert.equal((await run('g-resync', { mailboxes: [box], destination: { kind: 'maildir', path: md.path }, after: { action: 'none' } })).summary.delivered, 5);
    graph.expireDeltaTokens();
    await append(rig, box, 'INBOX', [makeMessage(50, { to: box })]);
    const r = await run('g-resync', { mailboxes: [box], destination: { kind: 'maildir', path: md.path }, after: { action: 'none' } });
    const w = r.ev.of('warning').find((x) => x.error.code === 'MB_CONNECTOR_GRAPH_RESYNC');
    assert.ok(w, 'resync reported');
    assert.match(w.error.explain('en').cause, /410 SyncStateNotFound/);
    assert.equal(r.summary.delivered, 1, 'only the new message');
    assert.equal(maildirFiles(md.path).length, 6);
  } finally {
    md.remove();
  }
});

test('429 with Retry-After is waited out (MB_CONNECTOR_GRAPH_THROTTLED reported), the messages arrive', async () => {
  const box = boxes[4]!;
  const md = tempDir('mb-graph-429-');
  try {
    await append(rig, box, 'INBOX', [makeMessage(1, { to: box }), makeMessage(2, { to: box })]);
    const before = graph.stats.throttled;
    graph.throttle(box, 2, 1);
    const r = await run('g-throttle', { mailboxes: [box], destination: { kind: 'maildir', path: md.path } });
    assert.deepEqual(r.summary.errors.map((e) => e.error.message), []);
    assert.equal(graph.stats.throttled - before, 2);
    const notices = r.ev.of('warning').filter((w) => w.error.code === 'MB_CONNECTOR_GRAPH_THROTTLED');
    assert.equal(notices.length, 2);
    assert.match(notices[0]!.error.explain('de').cause, /429 .* 1 Sekunden Wartezeit/);
    assert.equal(r.summary.delivered, 2);
  } finally {
    md.remove();
  }
});

test('an app without Mail.Read: MB_CONNECTOR_GRAPH_FORBIDDEN; the messages stay', async () => {
  const box = boxes[5]!;
  await append(rig, box, 'INBOX', [makeMessage(1, { to: box })]);
  const r = await run('g-forbidden', { mailboxes: [box], destination: { kind: 'maildir', path: '/nonexistent/never' } }, tokens(reader, []));
  assert.equal(r.summary.errors.length, 1);
  const e = r.summary.errors[0]!.error;
  assert.equal(e.code, 'MB_CONNECTOR_GRAPH_FORBIDDEN');
  assert.match(e.explain('en').cause, /403 ErrorAccessDenied/);
  assert.match(e.explain('en').fix, /Mail\.ReadWrite/);
  assert.equal((await folderContents(rig, box, 'INBOX')).length, 1);
});

test('an app with Mail.Read only and the default after-action "seen": delivered once, the warning names Mail.ReadWrite and the portal path, fetch --once exits 4', async () => {
  const box = boxes[6]!;
  await append(rig, box, 'INBOX', [makeMessage(1, { to: box }), makeMessage(2, { to: box })]);
  const md = tempDir('mb-graph-ro-');
  try {
    const r = await run('g-readonly', { mailboxes: [box], destination: { kind: 'maildir', path: md.path } }, tokens(app, ['Mail.Read']));
    assert.equal(r.summary.delivered, 2);
    assert.deepEqual(r.summary.errors, []);
    const w = r.summary.warnings.find((x) => x.code === 'MB_CONNECTOR_GRAPH_ACTION_FORBIDDEN');
    assert.ok(w, r.summary.warnings.map((x) => x.message).join('\n'));
    assert.match(w.explain('en').cause, /403 ErrorAccessDenied/);
    assert.match(w.explain('en').fix, /API permissions › Add a permission › Microsoft Graph › Application permissions › Mail\.ReadWrite/);
    assert.match(w.explain('de').fix, /Anwendungsberechtigungen › Mail\.ReadWrite/);
    assert.doesNotMatch(w.explain('en').fix, /target folder/);
    assert.equal(fetchExitCode(r.summary), FETCH_EXIT.afterAction);
    assert.ok((await folderContents(rig, box, 'INBOX')).every((m) => !m.flags.has('\\Seen')), 'not marked');
    // Not delivered again; the action is repeated once the permission is there.
    const again = await run('g-readonly', { mailboxes: [box], destination: { kind: 'maildir', path: md.path } });
    assert.equal(again.summary.delivered, 0);
    assert.equal(fetchExitCode(again.summary), FETCH_EXIT.ok);
    assert.ok((await folderContents(rig, box, 'INBOX')).every((m) => m.flags.has('\\Seen')));
  } finally {
    md.remove();
  }
});

test('a typo in the mailbox address: MB_CONNECTOR_MAILBOX_NOT_FOUND (Graph 404 ErrorInvalidUser), not a permission problem', async () => {
  const r = await run('g-typo', { mailboxes: ['g-sen@contoso.test'], destination: { kind: 'maildir', path: '/nonexistent/never' } });
  const e = r.summary.errors[0]!.error;
  assert.equal(e.code, 'MB_CONNECTOR_MAILBOX_NOT_FOUND');
  assert.match(e.explain('en').cause, /404 ErrorInvalidUser.*typo/);
  assert.match(e.explain('en').fix, /connectors\.g-typo\.mailboxes/);
  assert.equal(fetchExitCode(r.summary), FETCH_EXIT.error);
});

test('Mail.ReadWrite granted while the connector runs: after the 403 the next attempt asks for a new token and delivers', async () => {
  const box = boxes[7]!;
  await append(rig, box, 'INBOX', [makeMessage(1, { to: box })]);
  // Like the identity cache: the token from before the grant is handed out until a fresh one is asked for.
  let cached = await tokens(app, [])(box);
  const provider: TokenProvider = async (mailbox, o) => {
    if (o?.fresh) cached = await tokens(app, ['Mail.ReadWrite'])(mailbox);
    return cached;
  };
  const md = tempDir('mb-graph-grant-');
  const controller = new AbortController();
  const clock = manualSleep();
  const ev = events();
  const config = connectorSchema.parse({
    connection: 'contoso',
    source: { kind: 'graph', baseUrl: `${graph.url}/v1.0`, caFile: '/sandbox-ca.pem' },
    mailboxes: [box],
    destination: { kind: 'maildir', path: md.path },
  });
  const running = runConnector({ plugins: connectorPlugins, name: 'g-granted', config, repo: st.store.checkpoints, tokens: provider, onEvent: ev.on, readFile: () => rig.ca.certPem, sleep: clock.sleep }, { signal: controller.signal });
  try {
    const refused = await waitFor(() => ev.of('error')[0], 30_000, 'the 403');
    assert.equal(refused.error.code, 'MB_CONNECTOR_GRAPH_FORBIDDEN');
    await waitFor(() => clock.pending() === 1, 10_000, 'the back-off pause');
    const seen = ev.list.length;
    clock.elapse();
    const next = await waitFor(() => ev.list.slice(seen).find((e) => e.type === 'delivered' || e.type === 'error'), 30_000, 'the next attempt');
    assert.equal(next.type, 'delivered', next.type === 'error' ? next.error.message : '');
  } finally {
    controller.abort();
    await running.catch(() => undefined);
    md.remove();
  }
});
