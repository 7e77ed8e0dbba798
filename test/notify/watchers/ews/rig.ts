/**
 * The rig the EWS watcher tests share: a real private Dovecot with its mail feed, the sandbox EWS
 * emulator over it (on-premises Exchange 2019 profile, two backend servers), app-only tokens
 * minted with jose and trusted through the emulator's JWKS, and the real notify pipeline: a temp
 * SQLite store, the dispatcher and the webhook sink posting to a local receiver.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JSONWebKeySet } from 'jose';
import type { ImapFlow } from 'imapflow';
import { silentLogger } from '../../../../src/log/index.ts';
import type { MbError } from '../../../../src/errors/index.ts';
import { webhookSinkSchema } from '../../../../src/notify/config.ts';
import { createDispatcher, type Dispatcher } from '../../../../src/notify/dispatcher.ts';
import type { NotifyEvent } from '../../../../src/notify/events.ts';
import { createWebhookSink } from '../../../../src/notify/sinks/webhook.ts';
import type { WatcherContext } from '../../../../src/notify/watchers/types.ts';
import { createSandboxCa, type SandboxCa } from '../../../../src/sandbox/ca.ts';
import { SandboxDirectory } from '../../../../src/sandbox/directory.ts';
import { startDovecot, type Dovecot } from '../../../../src/sandbox/dovecot.ts';
import { startEwsSandbox, type SandboxEws, type Scheduler } from '../../../../src/sandbox/ews/index.ts';
import { DovecotFeed } from '../../../../src/sandbox/feed/dovecot.ts';
import { MailStore } from '../../../../src/sandbox/graph/store.ts';
import { noJitter, subscription, tempStore, type TempStore } from '../../helpers.ts';
import { loopbackEgress } from '../../../support/egress.ts';
import { dovecotImap } from '../../../support/imap.ts';

export const TENANT = '1c000000-0000-4000-8000-0000000000e1';
export const APP_ID = 'a0000000-0000-4000-8000-0000000000e1';
export const SP_ID = 'a2000000-0000-4000-8000-0000000000e1';
export const MAILBOXES = ['anna@contoso.test', 'ben@contoso.test', 'cara@contoso.test', 'dora@contoso.test'];

export interface Received {
  id: string;
  event: NotifyEvent;
}

export interface Rig {
  ca: SandboxCa;
  dovecot: Dovecot;
  feed: DovecotFeed;
  ews: SandboxEws;
  directory: SandboxDirectory;
  store: TempStore;
  dispatcher: Dispatcher;
  /** Events as the webhook receiver got them, in arrival order (retries included). */
  received: Received[];
  problems: Array<{ mailbox?: string; error: MbError }>;
  ctx: WatcherContext;
  authorization: (mailbox: string) => Promise<string>;
  deliver(to: string, subject: string): Promise<void>;
  imap(address: string): Promise<ImapFlow>;
  /** Events of one type for one mailbox at the receiver. */
  at(mailbox: string, type?: NotifyEvent['type']): NotifyEvent[];
  close(): Promise<void>;
}

export function ewsDirectory(): SandboxDirectory {
  return new SandboxDirectory({
    tenants: [
      {
        id: TENANT,
        name: 'Contoso',
        domains: ['contoso.test'],
        apps: [{ appId: APP_ID, objectId: 'a1000000-0000-4000-8000-0000000000e1', servicePrincipalId: SP_ID, displayName: 'mailbridge', appRoles: { exchange: ['full_access_as_app'], graph: [] } }],
        users: MAILBOXES.map((a, i) => ({ objectId: `b0000000-0000-4000-8000-00000000000${i}`, upn: a, displayName: a.split('@')[0] })),
        exchange: { mailboxes: MAILBOXES.map((address) => ({ address, displayName: address.split('@')[0] })) },
      },
    ],
  });
}

export async function startRig(o: { scheduler?: Scheduler; heartbeatMs?: number; profile?: 'exchange2016' | 'exchange2019' | 'online' } = {}): Promise<Rig> {
  const ca = createSandboxCa();
  const tls = ca.issueServer(['localhost', '127.0.0.1']);
  const signer = await generateKeyPair('RS256', { extractable: true });
  const kid = 'ews-rig';
  const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(signer.publicKey)), kid, alg: 'RS256', use: 'sig' }] };
  const directory = ewsDirectory();
  const dovecot = await startDovecot({ tls });
  const feed = new DovecotFeed(dovecot, { reconnectDelays: [50] });
  const lister = new MailStore(dovecot);
  const ews = await startEwsSandbox({ directory, jwks, tls, feed, lister, scheduler: o.scheduler, heartbeatMs: o.heartbeatMs, pushCa: ca.certPem, streamingLifetimeMs: 30 * 60_000, ...(o.profile ? { profile: o.profile } : {}) });
  const store = await tempStore();

  const received: Received[] = [];
  const receiver: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: NotifyEvent };
      received.push({ id: String(req.headers['webhook-id']), event: body.data });
      res.writeHead(200).end('{}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  const sink = createWebhookSink({ config: webhookSinkSchema.parse({ requireHttps: false }), egress: loopbackEgress() });
  await store.store.notify.createSubscription(subscription('webhook', MAILBOXES, sink.parseParams({ url, secret: `whsec_${randomBytes(32).toString('base64')}` })));
  const dispatcher = createDispatcher({ repo: store.store.notify, sinks: [sink], retry: noJitter });
  dispatcher.start();

  const problems: Rig['problems'] = [];
  const ctx: WatcherContext = {
    publish: (e) => dispatcher.publish(e),
    kv: store.store.kv,
    log: silentLogger,
    now: Date.now,
    problem: (mailbox, error) => problems.push({ mailbox, error }),
  };
  const token = async () => {
    const t = Math.floor((o.scheduler?.now() ?? Date.now()) / 1000);
    return new SignJWT({
      aud: 'https://outlook.office365.com',
      iss: `https://sts.windows.net/${TENANT}/`,
      tid: TENANT,
      appid: APP_ID,
      oid: SP_ID,
      sub: SP_ID,
      idtyp: 'app',
      roles: ['full_access_as_app'],
      iat: t - 300,
      nbf: t - 300,
      exp: t + 3600,
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid })
      .sign(signer.privateKey);
  };
  let cached: string | undefined;
  const authorization = async () => `Bearer ${(cached ??= await token())}`;
  const clients: ImapFlow[] = [];

  return {
    ca,
    dovecot,
    feed,
    ews,
    directory,
    store,
    dispatcher,
    received,
    problems,
    ctx,
    authorization,
    async deliver(to, subject) {
      const raw = `From: Anna Schmidt <anna.schmidt@fabrikam.test>\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${randomUUID()}@fabrikam.test>\r\nDate: Mon, 02 Mar 2026 08:00:00 +0000\r\n\r\nHallo.\r\n`;
      const r = await dovecot.deliver({ from: 'anna.schmidt@fabrikam.test', to: [to] }, raw);
      if (r.accepted.length !== 1) throw new Error(`not delivered: ${JSON.stringify(r.rejected)}`);
    },
    async imap(address) {
      const c = await dovecotImap(dovecot, address);
      clients.push(c);
      return c;
    },
    at(mailbox, type) {
      return received.map((r) => r.event).filter((e) => e.mailbox === mailbox && (!type || e.type === type));
    },
    async close() {
      for (const c of clients) await c.logout().catch(() => c.close());
      await dispatcher.stop();
      receiver.closeAllConnections();
      await new Promise<void>((r) => receiver.close(() => r()));
      await ews.close();
      await feed.close();
      await lister.close?.();
      await dovecot.stop();
      await store.cleanup();
    },
  };
}

