/**
 * The Graph source woken by change notifications, against the sandbox Graph (subscriptions, the
 * validation handshake, notifications and lifecycle events over HTTPS to the connector's own
 * listener, delta) on a real Dovecot. Every connector here polls only once an hour, so a message
 * that arrives within a test was delivered because the subscription machinery woke the mailbox:
 * a notification, a `missed` event, a recreated subscription, or a renewal that found the
 * subscription gone. Without notifications.publicUrl nothing of this runs and the source polls.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { generateKey, openSecretBox, type KeyedSecretBox } from '../../src/config/secrets.ts';
import { connectorSchema, type ConnectorConfig, type ConnectorInput } from '../../src/connector/config.ts';
import { graphSource, SUBSCRIPTION_NAMESPACE, Wakes, type GraphSourceFactory } from '../../src/connector/graph.ts';
import { runConnector } from '../../src/connector/index.ts';
import { MbError } from '../../src/errors/index.ts';
import { subscriptionKey } from '../../src/m365/subscriptions/index.ts';
import { connectorPlugins } from '../../src/app/connectors.ts';
import { APP, INFO, rfc822, startRig, USER, type Rig } from '../sandbox/graph/helpers.ts';
import { freePort } from '../support/ports.ts';
import { tempDir } from '../support/temp.ts';
import { waitFor } from '../support/wait.ts';
import { events, maildirFiles, tempStore } from './helpers.ts';

let rig: Rig;
let st: Awaited<ReturnType<typeof tempStore>>;
let box: KeyedSecretBox;
const now = () => Date.now() + rig.clock.offsetMs;
const files: Record<string, string> = {};
const readFile = (path: string) => {
  const f = files[path];
  if (f === undefined) throw new Error(`unexpected file ${path}`);
  return f;
};

before(async () => {
  rig = await startRig();
  st = await tempStore();
  box = await openSecretBox({ keyFile: join(st.path, '..', 'unused.key'), env: { MAILBRIDGE_KEY: generateKey() } });
  const tls = rig.ca.issueServer(['127.0.0.1']);
  files['/ca.pem'] = rig.ca.certPem;
  files['/tls/cert.pem'] = tls.certPem;
  files['/tls/key.pem'] = tls.keyPem;
});
after(async () => {
  await st?.close();
  await rig?.close();
});

async function deliver(mailbox: string, subject: string): Promise<void> {
  const r = await rig.dovecot.deliver({ from: 'anna@fabrikam.test', to: [mailbox] }, Buffer.from(rfc822({ from: 'anna@fabrikam.test', to: mailbox, subject })));
  assert.deepEqual(r.accepted, [mailbox]);
}

async function config(mailbox: string, md: string, notify: boolean, extra: Partial<ConnectorInput> = {}): Promise<ConnectorConfig> {
  const port = await freePort();
  return connectorSchema.parse({
    connection: 'contoso',
    source: {
      kind: 'graph',
      baseUrl: `${rig.graph.url}/v1.0`,
      caFile: '/ca.pem',
      ...(notify ? { notifications: { publicUrl: `https://127.0.0.1:${port}`, listen: { host: '127.0.0.1', port, certFile: '/tls/cert.pem', keyFile: '/tls/key.pem' } } } : {}),
    },
    mailboxes: [mailbox],
    destination: { kind: 'maildir', path: md },
    after: { action: 'none' },
    pollSeconds: 3600,
    retry: { initialSeconds: 0.05, maxSeconds: 0.5 },
    ...extra,
  });
}

/** A connector running in the background until `stop`. */
function start(name: string, c: ConnectorConfig, source?: GraphSourceFactory) {
  const ev = events();
  const controller = new AbortController();
  const running = runConnector(
    {
      name,
      config: c,
      plugins: connectorPlugins,
      repo: st.store.checkpoints,
      kv: st.store.kv,
      seal: (plain) => box.seal(plain),
      open: (sealed) => box.open(sealed),
      tokens: () => rig.appToken(APP.relay),
      onEvent: ev.on,
      readFile,
      ...(source ? { source } : {}),
    },
    { signal: controller.signal },
  );
  // A failed start (e.g. the listener) must fail the test, not hang it.
  running.catch(() => controller.abort());
  return {
    ev,
    running,
    async stop() {
      controller.abort();
      await running;
      await source?.close?.();
    },
    /** Steady state: the first sync, then the round for the new subscription, then waiting (nothing pending). */
    async settled(mailbox: string) {
      await waitFor(() => rig.graph.subscriptions().some((s) => s.mailbox === mailbox), 20_000, 'subscription');
      await waitFor(() => ev.of('waiting').length >= 2, 20_000, 'waiting after the catch-up round');
    },
    warnings: (code: string) => ev.of('warning').filter((w) => (w.error as MbError).code === code),
  };
}

const delivered = (md: string, subject: string) => maildirFiles(md).filter((f) => f.raw.includes(subject)).length;

test('with notifications.publicUrl and an hourly poll, a new message is delivered after its change notification; the subscription is kept in kv with its clientState sealed', async () => {
  const mailbox = USER.alice.upn;
  const md = tempDir('mb-graph-notify-');
  const r = start('notified', await config(mailbox, md.path, true));
  try {
    await r.settled(mailbox);
    const sub = rig.graph.subscriptions().find((s) => s.mailbox === mailbox)!;
    assert.match(sub.notificationUrl, /^https:\/\/127\.0\.0\.1:\d+\/notify\/connector\/notified$/);
    assert.deepEqual(sub.changeTypes, ['created']);
    assert.match(sub.lifecycleNotificationUrl ?? '', /\/notify\/connector\/notified\/lifecycle$/);
    const notified = rig.graph.notificationStats.delivered;

    await deliver(mailbox, 'Woken by Graph');
    // The delivered event comes once the destination has it and the store recorded it.
    await waitFor(() => r.ev.of('delivered').length === 1, 20_000, 'delivery after the notification');
    assert.equal(delivered(md.path, 'Woken by Graph'), 1);
    // Graph counts a notification once it has read the 202, which may come after the delivery.
    await waitFor(() => rig.graph.notificationStats.delivered > notified, 20_000, 'Graph notified the connector');
    // The record is the connector's own; its clientState is sealed with the SecretBox.
    const rec = JSON.parse((await st.store.kv.get(SUBSCRIPTION_NAMESPACE, subscriptionKey(mailbox, 'INBOX', 's\tnotified\t'))) ?? '{}') as { id?: string; clientState?: string };
    assert.equal(rec.id, sub.id);
    assert.match(rec.clientState ?? '', /^enc:v1:/);
    assert.equal(box.open(rec.clientState!).length, 43);
  } finally {
    await r.stop();
    md.remove();
  }
});

test('missed notifications (Graph drops one and sends `missed`): MB_CONNECTOR_GRAPH_MISSED, the folder is read at once and the message delivered', async () => {
  const mailbox = USER.bob.upn;
  const md = tempDir('mb-graph-missed-');
  const r = start('missed', await config(mailbox, md.path, true));
  try {
    await r.settled(mailbox);
    rig.graph.dropNotifications(mailbox, 1);
    await deliver(mailbox, 'Dropped notification');
    await waitFor(() => delivered(md.path, 'Dropped notification') === 1, 20_000, 'delivery after missed');
    assert.equal(rig.graph.notificationStats.droppedByHook, 1);
    const [w] = r.warnings('MB_CONNECTOR_GRAPH_MISSED');
    assert.ok(w, 'missed reported');
    assert.match(w.error.explain('en').fix, /connectors\.missed\.source\.notifications\.publicUrl/);
    assert.match(w.error.explain('de').cause, /Lebenszyklusereignis missed/);
  } finally {
    await r.stop();
    md.remove();
  }
});

test('a removed subscription (subscriptionRemoved) is recreated and the mail of the gap is read at once; new mail then comes by the new subscription', async () => {
  const mailbox = USER.dave.upn;
  const md = tempDir('mb-graph-removed-');
  const r = start('removed', await config(mailbox, md.path, true));
  try {
    await r.settled(mailbox);
    const old = rig.graph.subscriptions().find((s) => s.mailbox === mailbox)!;
    // The message's notification is lost (and `missed` never comes: the subscription goes first).
    rig.graph.dropNotifications(mailbox, 2);
    await deliver(mailbox, 'During the gap');
    await waitFor(() => rig.graph.notificationStats.droppedByHook === 1, 20_000, 'notification dropped');
    rig.graph.removeSubscription(old.id);
    await waitFor(() => delivered(md.path, 'During the gap') === 1, 20_000, 'the gap caught up');
    const renewed = await waitFor(() => rig.graph.subscriptions().find((s) => s.mailbox === mailbox), 20_000, 'a new subscription');
    assert.notEqual(renewed.id, old.id);
    assert.equal(r.warnings('MB_CONNECTOR_GRAPH_SUBSCRIPTION_REMOVED').length, 1);

    const notified = rig.graph.notificationStats.delivered;
    await deliver(mailbox, 'After the gap');
    await waitFor(() => delivered(md.path, 'After the gap') === 1, 20_000, 'delivery by the new subscription');
    await waitFor(() => rig.graph.notificationStats.delivered > notified, 20_000, 'notified by the new subscription');
  } finally {
    await r.stop();
    md.remove();
  }
});

test('a subscription that ran out unnoticed is found gone at renewal (404), recreated, and the mail that got no notification is delivered', async () => {
  const mailbox = INFO;
  const md = tempDir('mb-graph-expired-');
  const c = await config(mailbox, md.path, true);
  const n = c.source.kind === 'graph' ? c.source.notifications! : assert.fail('graph source');
  const source = graphSource({
    connector: 'expired',
    baseUrl: `${rig.graph.url}/v1.0`,
    tokens: () => rig.appToken(APP.relay),
    ca: rig.ca.certPem,
    notifications: { config: n, kv: st.store.kv, readFile, now, tickMs: 3_600_000 },
  });
  const r = start('expired', c, source);
  try {
    await r.settled(mailbox);
    const old = rig.graph.subscriptions().find((s) => s.mailbox === mailbox)!;
    await source.tick();
    assert.equal(rig.graph.subscriptions().find((s) => s.mailbox === mailbox)?.id, old.id, 'not due yet: nothing renewed or replaced');

    // Three days later Graph has dropped it without a word (as at expiry): no notification for new mail.
    rig.clock.offsetMs += 4231 * 60_000;
    await deliver(mailbox, 'Nobody told');
    await source.tick();
    await waitFor(() => delivered(md.path, 'Nobody told') === 1, 20_000, 'delivery after the renewal found it gone');
    const replaced = rig.graph.subscriptions().find((s) => s.mailbox === mailbox);
    assert.ok(replaced && replaced.id !== old.id, 'a new subscription');
  } finally {
    rig.clock.offsetMs = 0;
    await r.stop();
    md.remove();
  }
});

test('without notifications.publicUrl nothing changes: no listener, no subscription, new mail is found by the poll', async () => {
  const mailbox = USER.alice.upn;
  const md = tempDir('mb-graph-poll-');
  const before = rig.graph.subscriptions().filter((s) => s.mailbox === mailbox).map((s) => s.id);
  const c = await config(mailbox, md.path, false, { pollSeconds: 5 });
  assert.equal(c.source.kind === 'graph' && c.source.notifications, undefined);
  const r = start('polling', c);
  try {
    await waitFor(() => r.ev.of('waiting').length >= 1, 20_000, 'first round');
    await deliver(mailbox, 'Found by polling');
    await waitFor(() => delivered(md.path, 'Found by polling') === 1, 20_000, 'delivery at the poll');
    assert.deepEqual(
      rig.graph.subscriptions().filter((s) => s.mailbox === mailbox).map((s) => s.id),
      before,
      'no subscription of its own',
    );
  } finally {
    await r.stop();
    md.remove();
  }
});

test('a listener port that is taken fails the start with MB_PORT_IN_USE naming the connector\'s setting, before any subscription', async () => {
  const mailbox = USER.alice.upn;
  const md = tempDir('mb-graph-port-');
  const c = await config(mailbox, md.path, true);
  const port = c.source.kind === 'graph' ? c.source.notifications!.listen.port : 0;
  const blocker = createServer().listen(port, '127.0.0.1');
  await once(blocker, 'listening');
  const subscriptions = rig.graph.subscriptions().length;
  try {
    await assert.rejects(
      runConnector({ name: 'taken', config: c, plugins: connectorPlugins, repo: st.store.checkpoints, kv: st.store.kv, tokens: () => rig.appToken(APP.relay), readFile }, {}),
      (e: unknown) => e instanceof MbError && e.code === 'MB_PORT_IN_USE' && e.params.what === 'connectors.taken.source.notifications.listen',
    );
    assert.equal(rig.graph.subscriptions().length, subscriptions);
  } finally {
    blocker.close();
    md.remove();
  }
});

test('wake-ups: a mark before the wait returns at once and names its folder; a stop that came while the folder was read ends the wait at once', async () => {
  const w = new Wakes();
  const never = new AbortController().signal;
  w.mark('Scans@contoso.test', 'INBOX');
  w.mark('scans@contoso.test', 'Archive');
  assert.equal(await w.wait('scans@contoso.test', 3_600_000, never), 'changed');
  assert.deepEqual(w.take('SCANS@contoso.test').sort(), ['Archive', 'INBOX']);
  assert.deepEqual(w.take('scans@contoso.test'), []);
  const waiting = w.wait('scans@contoso.test', 3_600_000, never);
  w.mark('scans@contoso.test', 'INBOX');
  assert.equal(await waiting, 'changed');
  w.take('scans@contoso.test');
  // Aborted before the wait began (the abort event is gone): without the check this waited an hour.
  const stopped = new AbortController();
  stopped.abort();
  assert.equal(await w.wait('scans@contoso.test', 3_600_000, stopped.signal), 'timeout');
});

test('config: notifications need an https publicUrl; listen and path have defaults; unknown keys are refused', () => {
  const base = { connection: 'c', mailboxes: ['a@contoso.test'], destination: { kind: 'maildir', path: '/tmp/x' } };
  assert.throws(() => connectorSchema.parse({ ...base, source: { kind: 'graph', notifications: { publicUrl: 'http://mb.contoso.com' } } }), /https/);
  assert.throws(() => connectorSchema.parse({ ...base, source: { kind: 'graph', notifications: {} } }));
  assert.throws(() => connectorSchema.parse({ ...base, source: { kind: 'graph', notifications: { publicUrl: 'https://mb.contoso.com', extra: 1 } } }));
  assert.throws(() => connectorSchema.parse({ ...base, source: { kind: 'imap', notifications: { publicUrl: 'https://mb.contoso.com' } } }));
  const c = connectorSchema.parse({ ...base, source: { kind: 'graph', notifications: { publicUrl: 'https://mb.contoso.com:8444' } } });
  assert.deepEqual(c.source.kind === 'graph' && c.source.notifications, {
    publicUrl: 'https://mb.contoso.com:8444',
    listen: { host: '0.0.0.0', port: 8443 },
    path: '/notify/connector',
    expirationMinutes: 4230,
    renewBeforeMinutes: 60,
  });
});
