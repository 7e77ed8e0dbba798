/**
 * The watchers as `mailbridge serve` runs them: startGateway with notify.watch groups of all three
 * kinds against the sandbox tenant (Graph change notifications to the gateway's own HTTPS listener,
 * EWS streaming, IMAP IDLE through the Exchange Online front), tokens from sandbox Entra ID through
 * the configured connection, and a webhook subscription for all mailboxes. One message into each
 * watched mailbox gives exactly one new-mail event with its unread count; reading updates it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { configSchema, type Config } from '../../../src/app/schema.ts';
import { openSecretBox } from '../../../src/config/secrets.ts';
import { MbError } from '../../../src/errors/index.ts';
import { silentLogger } from '../../../src/log/index.ts';
import type { NotifyEvent } from '../../../src/notify/events.ts';
import { sealedNotifyRepository } from '../../../src/notify/sealed.ts';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.ts';
import { startGateway, type Gateway } from '../../../src/server/index.ts';
import { openStore } from '../../../src/store/index.ts';
import { sandboxInbound, startEventReceiver, watchGatewayConfig } from '../../support/cluster.ts';
import { waitFor } from '../../support/wait.ts';
import { freePort } from '../../support/ports.ts';
import { watchers } from '../../../src/app/plugins.ts';

const WATCHED = { graph: 'alice@contoso.test', imap: 'bob@contoso.test', ews: 'info@contoso.test' } as const;
/** Watched over EWS push by a listener whose id has a slash, as every id under serve does. */
const PUSHED = 'scanner@contoso.test';

let dir: string;
let sandbox: Sandbox;
let receiver: Server;
const events: NotifyEvent[] = [];
let config: (groups?: Record<string, unknown>) => Promise<Config>;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mb-watch-svc-'));
  chmodSync(dir, 0o711); // Dovecot's unprivileged processes traverse it
  sandbox = await startSandbox({ dir: join(dir, 'sandbox') });
  receiver = await startEventReceiver(events);
  const inbound = sandboxInbound(sandbox, dir);
  const port = await freePort();
  config = async (groups) =>
    configSchema.parse(
      watchGatewayConfig(sandbox, {
        store: { driver: 'sqlite', path: join(dir, 'mb.db') },
        watch: {
          publicUrl: `https://127.0.0.1:${port}`,
          listen: inbound(port),
          groups: groups ?? {
            cloud: { kind: 'graph', listeners: [{ connection: 'sandbox' }], mailboxes: [WATCHED.graph], graph: { baseUrl: `${sandbox.graph.url}/v1.0` } },
            legacy: { kind: 'imap', listeners: [{ connection: 'sandbox' }], mailboxes: [WATCHED.imap], imap: { host: '127.0.0.1', port: sandbox.imap.port, tls: 'implicit', servername: 'outlook.office365.com' } },
            plant: { kind: 'ews', listeners: [{ connection: 'sandbox' }], mailboxes: [WATCHED.ews], ews: { url: sandbox.ews.url } },
          },
        },
      }),
    );
  // One webhook subscription for the three mailboxes, stored sealed as the API would.
  const store = await openStore({ driver: 'sqlite', path: join(dir, 'mb.db') });
  const box = await openSecretBox({ keyFile: join(sandbox.dir, 'mailbridge.key'), env: {} });
  await sealedNotifyRepository(store.notify, box).createSubscription({
    id: 'sub_all',
    kind: 'webhook',
    mailboxes: [...Object.values(WATCHED), PUSHED],
    events: [],
    params: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, secret: `whsec_${Buffer.alloc(32, 1).toString('base64')}` },
    privacy: 'full',
    state: 'active',
    createdAt: Date.now(),
    updatedAt: Date.now(),
  });
  await store.close();
});

after(async () => {
  receiver?.closeAllConnections();
  receiver?.close();
  await sandbox?.close();
  rmSync(dir, { recursive: true, force: true });
});

const mail = (to: string, subject: string) =>
  sandbox.dovecot.deliver({ from: 'bob@fabrikam.test', to: [to] }, `From: Bob <bob@fabrikam.test>\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@fabrikam.test>\r\n\r\nHallo\r\n`);

test('serve with graph, ews and imap groups: one new-mail event per delivered message with the unread count; reading updates it', async () => {
  const gw: Gateway = await startGateway(await config(), silentLogger);
  try {
    await waitFor(() => {
      const s = gw.watch!.status();
      return s.groups.length === 3 && s.groups.every((g) => g.states.watching === 1);
    }, 30_000, () => `all three groups watching; events: ${JSON.stringify(events)}`).catch((err: Error) => {
      throw new Error(`${err.message}\n${JSON.stringify(gw.watch!.status(), null, 1)}`);
    });
    assert.equal(gw.watch!.status().publicUrl?.startsWith('https://127.0.0.1:'), true);
    for (const [kind, mb] of Object.entries(WATCHED)) await mail(mb, `Auftrag ${kind}`);
    await waitFor(() => events.filter((e) => e.type === 'message.new').length >= 3, 30_000, () => `three new-mail events; events: ${JSON.stringify(events)}`);
    // A late duplicate (a notification and a catch-up of the same change) would be published before
    // anything that happens later in the same mailbox: a second message is the marker to wait for.
    for (const [kind, mb] of Object.entries(WATCHED)) await mail(mb, `Marker ${kind}`);
    await waitFor(() => events.filter((e) => e.type === 'message.new' && e.subject?.startsWith('Marker ')).length >= 3, 30_000, () => `the three markers; events: ${JSON.stringify(events)}`);
    const news = events.filter((e) => e.type === 'message.new' && e.subject?.startsWith('Auftrag '));
    assert.equal(news.length, 3, JSON.stringify(news));
    for (const [kind, mb] of Object.entries(WATCHED)) {
      const e = news.find((n) => n.mailbox === mb);
      assert.ok(e && e.type === 'message.new', `${kind}: an event for ${mb}`);
      assert.equal(e.subject, `Auftrag ${kind}`);
      assert.equal(e.sender?.address, 'bob@fabrikam.test');
      assert.equal(e.unreadCount, 1, `${kind}: one unread message`);
    }

    // Read the Graph-watched message over IMAP (Dovecot directly): a read-state event with 0 unread.
    const client = new ImapFlow({ host: '127.0.0.1', port: sandbox.dovecot.ports.imap, secure: false, doSTARTTLS: false, auth: { user: WATCHED.graph, accessToken: await sandbox.dovecot.mintToken(WATCHED.graph) }, logger: false });
    await client.connect();
    await client.mailboxOpen('INBOX');
    await client.messageFlagsAdd('1:*', ['\\Seen']);
    await client.logout();
    await waitFor(() => events.some((e) => e.type === 'message.read-state' && e.mailbox === WATCHED.graph), 30_000, () => `the read-state event; events: ${JSON.stringify(events)}`);
    const read = events.find((e) => e.type === 'message.read-state' && e.mailbox === WATCHED.graph);
    assert.ok(read?.type === 'message.read-state');
    assert.equal(read.read, true);
    assert.equal(read.unreadCount, 0);
  } finally {
    await gw.close();
  }
});

test('serve with an EWS push group (listener id group/name): Exchange\'s pushes reach the route, the event arrives; "subscribed" until the first call', async () => {
  const groups = { ep: { kind: 'ews', listeners: [{ connection: 'sandbox', name: 'pushsvc' }], mailboxes: [PUSHED], ews: { url: sandbox.ews.url, mode: 'push', statusFrequencyMinutes: 1 } } };
  const gw: Gateway = await startGateway(await config(groups), silentLogger);
  try {
    // Subscribed and caught up, but Exchange has not called yet: nothing proves the URL works.
    await waitFor(() => gw.watch!.status().groups[0]?.states.subscribed === 1, 30_000, () => `subscribed; events: ${JSON.stringify(events)}`);
    await mail(PUSHED, 'Per Push unter serve');
    await waitFor(() => events.some((e) => e.type === 'message.new' && e.mailbox === PUSHED && e.subject === 'Per Push unter serve'), 30_000, () => `the pushed event; events: ${JSON.stringify(events)}`);
    await waitFor(() => gw.watch!.status().groups[0]?.states.watching === 1, 30_000, () => `watching after the first call; events: ${JSON.stringify(events)}`);
  } finally {
    await gw.close();
  }
});

test('a watcher warning is logged once (with group and listener) and listed once in the status', async () => {
  const { startWatchService } = await import('../../../src/notify/watchers/service.ts');
  const { createLogger } = await import('../../../src/log/index.ts');
  const store = await openStore({ driver: 'sqlite', path: join(dir, 'warn.db') });
  const lines: Array<{ level: number; code?: string; group?: string; listener?: string }> = [];
  const log = createLogger({ level: 'info', destination: { write: (l: string) => lines.push(JSON.parse(l) as (typeof lines)[number]) } });
  const watch = (await config({ plant: { kind: 'ews', listeners: [{ connection: 'sandbox' }], mailboxes: [{ address: WATCHED.ews, folders: ['inbox', 'Inbox/Orders'] }], ews: { url: sandbox.ews.url } } })).notify!.watch!;
  const svc = await startWatchService({ config: { ...watch, groups: watch.groups }, watchers, kv: store.kv, publish: async () => ({ duplicate: false }), token: async () => 'not-used', reveal: (v) => v, log });
  try {
    await waitFor(() => svc.status().problems.some((p) => p.code === 'MB_EWS_FOLDER_UNSUPPORTED'), 30_000, () => `the problem is listed; events: ${JSON.stringify(events)}`);
    assert.equal(svc.status().problems.filter((p) => p.code === 'MB_EWS_FOLDER_UNSUPPORTED').length, 1);
    const logged = lines.filter((l) => l.code === 'MB_EWS_FOLDER_UNSUPPORTED');
    assert.equal(logged.length, 1, JSON.stringify(logged));
    assert.equal(logged[0]!.level, 40);
    assert.equal(logged[0]!.group, 'plant');
    assert.equal(logged[0]!.listener, 'plant/sandbox');
  } finally {
    await svc.close();
    await store.close();
  }
});

test('a group with more mailboxes than its listeners hold fails the start with MB_NOTIFY_POOL_FULL, before anything connects', async () => {
  const groups = { big: { kind: 'imap', listeners: [{ connection: 'sandbox', capacity: 1 }], mailboxes: ['alice@contoso.test', 'bob@contoso.test'] } };
  await assert.rejects(
    startGateway(await config(groups), silentLogger),
    (e: unknown) => e instanceof MbError && e.code === 'MB_NOTIFY_POOL_FULL' && /big has 2 mailboxes, but its 1 listener\(s\) hold 1/.test(e.message),
  );
});

test('config: a mailbox in two groups is refused with both group names', async () => {
  const groups = {
    a: { kind: 'imap', listeners: [{ connection: 'sandbox' }], mailboxes: ['alice@contoso.test'] },
    b: { kind: 'graph', listeners: [{ connection: 'sandbox' }], mailboxes: ['Alice@contoso.test'] },
  };
  await assert.rejects(config(groups), /alice@contoso\.test is already watched by group a/);
});

test('config: a Graph listener must be a connection, not an on-premises account', async () => {
  const groups = { cloud: { kind: 'graph', listeners: [{ username: 'svc@contoso.test', password: 'x' }], mailboxes: ['alice@contoso.test'] } };
  await assert.rejects(config(groups), /Graph needs a connection/);
});

test('several nodes: a shard\'s watchers write their cursors as the lease holder; a node that lost the shard cannot overwrite its successor\'s cursor', async () => {
  const { startWatchService } = await import('../../../src/notify/watchers/service.ts');
  const { Ownership } = await import('../../../src/cluster/ownership.ts');
  const { nodeIdentity } = await import('../../../src/cluster/node.ts');
  const { startPostgres } = await import('../../support/postgres.ts');
  const pg = await startPostgres();
  let now = 1_800_000_000_000;
  const clock = () => now;
  // The manual clock times the leases too (the store's lease clock), so the pause below is one step.
  const store = await openStore({ driver: 'postgres', url: await pg.database('fence') }, { clock });
  const ownership = new Ownership({ cluster: store.cluster, node: nodeIdentity({ name: 'stale', role: 'serve' }), now: clock, leaseMs: 30_000 });
  // The IMAP watcher as the service builds it, with the context it would write its positions through.
  const built: Array<Parameters<(typeof watchers)['imap']>[1]> = [];
  const fake: typeof watchers = {
    ...watchers,
    imap: async (_group, build) => {
      built.push(build);
      return { kind: 'imap', listener: build.listener, start: async () => undefined, status: () => [], close: async () => undefined };
    },
  };
  const watch = (await config({ legacy: { kind: 'imap', listeners: [{ connection: 'sandbox' }], mailboxes: [WATCHED.imap], imap: { host: '127.0.0.1', port: sandbox.imap.port, tls: 'implicit' } } })).notify!.watch!;
  const svc = await startWatchService({
    config: { ...watch, groups: watch.groups },
    watchers: fake,
    kv: store.kv,
    publish: async () => ({ duplicate: false }),
    token: async () => 'not-used',
    reveal: (v) => v,
    now: clock,
    cluster: { ownership, signals: store.signals },
  });
  try {
    await waitFor(() => built.length === 1, 10_000, 'the shard\'s watcher built on this node');
    const kv = built[0]!.ctx.kv;
    await kv.set('notify.watch.imap', `cursor:${WATCHED.imap}`, 'uid 7');
    // This node is paused past its lease; another takes the shard over and moves the cursor on.
    const [lease] = await store.cluster.leases('watch:legacy/');
    assert.ok(lease);
    now += 31_000;
    const next = await store.cluster.acquire(lease.name, 'successor', 30_000);
    assert.ok(next.ok);
    await store.kv.fenced({ lease: lease.name, owner: 'successor', epoch: next.epoch }).set('notify.watch.imap', `cursor:${WATCHED.imap}`, 'uid 9');
    // The stale watcher wakes up and writes the position it had: refused, the successor's stays.
    const lost = (err: unknown) => err instanceof MbError && err.code === 'MB_CLUSTER_LEASE_LOST';
    await assert.rejects(kv.set('notify.watch.imap', `cursor:${WATCHED.imap}`, 'uid 7'), lost);
    await assert.rejects(kv.delete('notify.watch.imap', `cursor:${WATCHED.imap}`), lost);
    assert.equal(await store.kv.get('notify.watch.imap', `cursor:${WATCHED.imap}`), 'uid 9');
  } finally {
    await svc.close();
    await ownership.close();
    await store.close();
    await pg.stop();
  }
});
