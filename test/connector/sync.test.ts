/**
 * Synchronisation behaviour against a real Dovecot: a folder rebuilt with a new UIDVALIDITY is
 * resynchronised by Message-ID without duplicates; the crash window (destination acknowledged, store
 * not yet written) leads to one redelivery with the same delivery ID, which a maildir absorbs and a
 * non-idempotent receiver shows (reported); IDLE picks up a new message while the connector waits,
 * and polling does when IDLE is off; a second process cannot run the same connector.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runConnector, type RunSummary } from '../../src/connector/index.ts';
import { maildirDestination } from '../../src/connector/destinations/index.ts';
import type { ConnectorInput } from '../../src/connector/config.ts';
import { ConnectorError, type ConnectorEvent, type Destination } from '../../src/connector/types.ts';
import { append, connectorConfig, events, folderContents, maildirFiles, makeMessage, messageIdOfRaw, startCapture, startRig, tempStore, type Rig } from './helpers.ts';
import { waitFor } from '../support/wait.ts';
import { tempDir } from '../support/temp.ts';
import { forFile } from '../support/rig.ts';
import { connectorPlugins } from '../../src/app/connectors.ts';

let rig: Rig;
let st: Awaited<ReturnType<typeof tempStore>>;

forFile(async () => (rig = await startRig()));
forFile(async () => (st = await tempStore()));

type Input = Partial<ConnectorInput> & Pick<ConnectorInput, 'destination' | 'mailboxes'>;

async function once(name: string, input: Input, destination?: Destination, onceAttempts?: number): Promise<{ summary: RunSummary; ev: ReturnType<typeof events> }> {
  const ev = events();
  const summary = await runConnector(
    { plugins: connectorPlugins, name, config: connectorConfig(rig, input), repo: st.store.checkpoints, tokens: rig.tokens, onEvent: ev.on, destination },
    { once: true, onceAttempts },
  );
  return { summary, ev };
}

async function uidValidity(mailbox: string, folder: string): Promise<bigint> {
  const c = await rig.imap(mailbox);
  try {
    const st = await c.status(folder, { uidValidity: true });
    return st ? st.uidValidity! : -1n;
  } finally {
    await c.logout();
  }
}

test('UIDVALIDITY change: the rebuilt folder is resynchronised by Message-ID, only new messages are delivered', async () => {
  const box = 'rebuild@contoso.test';
  const md = tempDir('mb-md-uv-');
  try {
    const old = [makeMessage(1), makeMessage(2), makeMessage(3, { messageId: null })];
    await append(rig, box, 'Scans', old);
    const input: Input = { mailboxes: [{ address: box, folders: ['Scans'] }], destination: { kind: 'maildir', path: md.path } };
    assert.equal((await once('rebuild', input)).summary.delivered, 3);
    const before = await uidValidity(box, 'Scans');

    // Rebuild the folder: delete it, create it again, put the same messages back plus two new ones.
    const c = await rig.imap(box);
    await c.mailboxDelete('Scans');
    await c.logout();
    await new Promise((r) => setTimeout(r, 1100)); // Dovecot derives UIDVALIDITY from the clock
    const fresh = [makeMessage(4), makeMessage(5)];
    await append(rig, box, 'Scans', [...old, ...fresh]);
    const afterUv = await uidValidity(box, 'Scans');
    assert.notEqual(afterUv, before, 'precondition: the folder has a new UIDVALIDITY');

    const r = await once('rebuild', input);
    assert.equal(r.summary.delivered, 2, 'only the two new messages');
    assert.equal(r.summary.duplicates, 3, 'the three old ones recognised (two by Message-ID, one by content)');
    const warn = r.ev.of('warning').find((w) => w.error.code === 'MB_CONNECTOR_UIDVALIDITY_CHANGED');
    assert.ok(warn);
    assert.match(warn.error.explain('en').cause, new RegExp(`from ${before} to ${afterUv}`));
    const files = maildirFiles(md.path);
    assert.equal(files.length, 5);
    assert.equal(new Set(files.map((f) => f.raw.toString('latin1'))).size, 5, 'no message twice');
    // The after-action reached the recognised ones too.
    assert.ok((await folderContents(rig, box, 'Scans')).every((m) => m.flags.has('\\Seen')));
    assert.equal((await once('rebuild', input)).summary.delivered, 0);
  } finally {
    md.remove();
  }
});

/** Delivers for real, then fails as if the process had died before the store heard of it. */
function dyingAfterDelivery(inner: Destination, die: (item: string) => boolean): Destination {
  return {
    description: inner.description,
    idempotent: inner.idempotent,
    async deliver(d) {
      await inner.deliver(d);
      if (die(d.item)) {
        throw new ConnectorError('MB_CONNECTOR_DEST_TEMPFAIL', { destination: inner.description, detail: 'simulated crash after the acknowledgement' }, { uncertain: true });
      }
    },
    close: () => inner.close(),
  };
}

test('the crash window: a maildir absorbs the redelivery (same file), an LMTP receiver gets the one message twice and the run says so', async () => {
  const box = 'window@contoso.test';
  const msgs = [makeMessage(1), makeMessage(2), makeMessage(3)];
  await append(rig, box, 'INBOX', msgs);
  const md = tempDir('mb-md-win-');
  const cap = await startCapture({ lmtp: true });
  try {
    const mdInput: Input = { mailboxes: [box], destination: { kind: 'maildir', path: md.path }, after: { action: 'none' } };
    const first = await once('window-md', mdInput, dyingAfterDelivery(maildirDestination({ connector: 'window-md', path: md.path, create: true }), (i) => i === '2'), 1);
    assert.equal(first.summary.errors.length, 1);
    const scope = { connector: 'window-md', mailbox: box, folder: 'INBOX' };
    assert.deepEqual((await st.store.checkpoints.inFlight(scope)).map((e) => e.item), ['2'], 'the unknown fate is on record');
    const second = await once('window-md', mdInput);
    assert.equal(second.summary.redelivered, 1);
    const w = second.ev.of('warning').find((x) => x.error.code === 'MB_CONNECTOR_REDELIVERED')!;
    assert.match(w.error.explain('en').cause, /sees as Maildir <date>\.<delivery ID>\.mailbridge/);
    assert.equal(maildirFiles(md.path).length, 3, 'no second file');
    assert.deepEqual(await st.store.checkpoints.inFlight(scope), []);

    const lmtpInput: Input = { mailboxes: [box], destination: { kind: 'lmtp', port: cap.port, tls: 'none', recipients: { to: ['x@intern.example'] } }, after: { action: 'none' } };
    const { smtpDestination } = await import('../../src/connector/destinations/index.ts');
    const inner = smtpDestination({ connector: 'window-lmtp', protocol: 'lmtp', host: '127.0.0.1', port: cap.port, tls: 'none', recipients: { to: ['x@intern.example'] }, from: 'return-path', maxConnections: 1, timeoutMs: 5000 });
    await once('window-lmtp', lmtpInput, dyingAfterDelivery(inner, (i) => i === '2'), 1);
    await inner.close();
    const again = await once('window-lmtp', lmtpInput);
    assert.equal(again.summary.redelivered, 1);
    assert.match(again.ev.of('warning').find((x) => x.error.code === 'MB_CONNECTOR_REDELIVERED')!.error.explain('en').cause, /sees as Message-ID/);
    const ids = cap.got.map((g) => messageIdOfRaw(g.raw));
    assert.equal(ids.length, 4, 'three messages, one of them twice');
    assert.equal(new Set(ids).size, 3);
  } finally {
    md.remove();
    await cap.close();
  }
});

test('IDLE: a message that arrives while the connector waits is delivered without waiting for the poll interval', async () => {
  const box = 'idle@contoso.test';
  const md = tempDir('mb-md-idle-');
  const controller = new AbortController();
  const seen: ConnectorEvent[] = [];
  const config = connectorConfig(rig, { mailboxes: [box], destination: { kind: 'maildir', path: md.path }, pollSeconds: 3600 });
  await append(rig, box, 'INBOX', [makeMessage(0)]);
  const running = runConnector({ plugins: connectorPlugins, name: 'idle', config, repo: st.store.checkpoints, tokens: rig.tokens, onEvent: (e) => seen.push(e) }, { signal: controller.signal });
  try {
    await waitFor(() => seen.some((e) => e.type === 'waiting'), 20_000, 'connector waiting');
    assert.equal(maildirFiles(md.path).length, 1);
    const late = makeMessage(1, { subject: 'arrives during IDLE' });
    await rig.dovecot.deliver({ from: 'sender@outside.example', to: [box] }, late);
    // The poll interval is an hour: only IDLE can bring it within the test's lifetime.
    await waitFor(() => maildirFiles(md.path).length === 2, 30_000, 'IDLE pickup');
    const got = maildirFiles(md.path).find((f) => f.raw.toString('latin1').includes('arrives during IDLE'))!;
    assert.ok(got.raw.toString('latin1').endsWith(late.toString('latin1')), 'the message (after the Return-Path LMTP adds)');
    assert.equal(seen.filter((e) => e.type === 'connected').length, 1, 'one session throughout');
  } finally {
    controller.abort();
    const summary = await running;
    assert.equal(summary.delivered, 2);
    md.remove();
  }
});

test('polling: with IDLE off, new mail is found at the next poll', async () => {
  const box = 'poll@contoso.test';
  const md = tempDir('mb-md-poll-');
  const controller = new AbortController();
  const seen: ConnectorEvent[] = [];
  const config = connectorConfig(rig, {
    mailboxes: [box],
    destination: { kind: 'maildir', path: md.path },
    pollSeconds: 5,
    source: { kind: 'imap', host: '127.0.0.1', port: rig.dovecot.ports.imap, tls: 'none', idle: false },
  });
  const running = runConnector({ plugins: connectorPlugins, name: 'poll', config, repo: st.store.checkpoints, tokens: rig.tokens, onEvent: (e) => seen.push(e) }, { signal: controller.signal });
  try {
    await waitFor(() => seen.some((e) => e.type === 'waiting'), 20_000, 'connector waiting');
    await append(rig, box, 'INBOX', [makeMessage(1)]);
    await waitFor(() => maildirFiles(md.path).length === 1, 30_000, 'poll pickup');
    // The run goes on waiting for the next poll, with the one session it opened.
    await waitFor(() => seen.filter((e) => e.type === 'waiting').length >= 2, 30_000, 'waiting again');
    assert.equal(seen.filter((e) => e.type === 'connected').length, 1);
  } finally {
    controller.abort();
    await running;
    md.remove();
  }
});

test('STARTTLS with the sandbox CA works; one connector cannot run twice at once (MB_CONNECTOR_BUSY)', async () => {
  const box = 'lease@contoso.test';
  const md = tempDir('mb-md-lease-');
  const controller = new AbortController();
  const seen: ConnectorEvent[] = [];
  const caFile = `${md.path}/ca.pem`;
  (await import('node:fs')).writeFileSync(caFile, rig.ca.certPem);
  const config = connectorConfig(rig, {
    mailboxes: [box],
    destination: { kind: 'maildir', path: `${md.path}/md` },
    source: { kind: 'imap', host: '127.0.0.1', port: rig.dovecot.ports.imap, tls: 'starttls', caFile, servername: 'localhost' },
  });
  await append(rig, box, 'INBOX', [makeMessage(1)]);
  const running = runConnector({ plugins: connectorPlugins, name: 'lease', config, repo: st.store.checkpoints, tokens: rig.tokens, onEvent: (e) => seen.push(e) }, { signal: controller.signal });
  try {
    await waitFor(() => seen.some((e) => e.type === 'waiting'), 20_000, 'first run waiting');
    assert.equal(maildirFiles(`${md.path}/md`).length, 1);
    await assert.rejects(runConnector({ plugins: connectorPlugins, name: 'lease', config, repo: st.store.checkpoints, tokens: rig.tokens }, { once: true }), (err: unknown) => {
      assert.ok(err instanceof ConnectorError);
      assert.equal(err.code, 'MB_CONNECTOR_BUSY');
      assert.match(err.explain('de').cause, /wird bereits von .* ausgeführt/);
      return true;
    });
  } finally {
    controller.abort();
    await running;
  }
  // Released at the end of the first run.
  assert.equal((await runConnector({ plugins: connectorPlugins, name: 'lease', config, repo: st.store.checkpoints, tokens: rig.tokens }, { once: true })).errors.length, 0);
  md.remove();
});
