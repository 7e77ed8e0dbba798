/**
 * The rig the transport acceptance tests share: the sandbox tenant in parts — sandbox Entra ID, a
 * real private Dovecot, the Exchange Online SMTP front (with limit options) and the sandbox Graph —
 * all on one manual clock, and mailbridge's relay (listener, queue, routed transport, tokens from
 * identity against the sandbox Entra) on the same clock. Applications are played by nodemailer;
 * what arrived is read back from Dovecot with imapflow.
 *
 * The demo tenant (src/sandbox/demo.ts): contoso.test with alice and bob (users), scanner and info
 * (shared), an app with SMTP.SendAsApp, IMAP.AccessAsApp, Mail.Send; New-ServicePrincipal done,
 * FullAccess and SendAs for the app on every mailbox.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import nodemailer from 'nodemailer';
import { openSecretBox } from '../../../src/config/secrets.ts';
import { configSchema, type Config } from '../../../src/app/schema.ts';
import { createIdentity, type Identity } from '../../../src/identity/index.ts';
import { createSandboxCa, type SandboxCa } from '../../../src/sandbox/ca.ts';
import { demoTenant } from '../../../src/sandbox/demo.ts';
import { SandboxDirectory } from '../../../src/sandbox/directory.ts';
import { startDovecot, type Dovecot } from '../../../src/sandbox/dovecot.ts';
import { startEntraSandbox, type EntraSandbox } from '../../../src/sandbox/entra/index.ts';
import { startSmtpFront, type SmtpFront, type SmtpLimits } from '../../../src/sandbox/exchange/smtp.ts';
import { startGraphSandbox, type GraphSandbox } from '../../../src/sandbox/graph/index.ts';
import type { QueueRecord } from '../../../src/relay/queue/index.ts';
import type { OutboundMessage } from '../../../src/relay/transport.ts';
import { startRelayService, type RelayService } from '../../../src/relay/transports/service.ts';
import { openStore, type Store } from '../../../src/store/index.ts';
import { collectingLogger, ManualClock, PASSWORD, testUser, withoutReceived, type LogLine } from '../helpers/index.ts';
import { tempDir } from '../../support/temp.ts';
import { dovecotImap } from '../../support/imap.ts';
import { transports } from '../../../src/app/plugins.ts';

export const ROOT = join(import.meta.dirname, '..', '..', '..');

let installed = false;
export function ensureDovecot(): void {
  if (installed) return;
  execFileSync('bash', [join(ROOT, 'scripts', 'dovecot', 'install.sh')], { stdio: 'ignore' });
  installed = true;
}

export interface TenantRig {
  dir: string;
  clock: ManualClock;
  ca: SandboxCa;
  caFile: string;
  directory: SandboxDirectory;
  tenantId: string;
  app: { appId: string; objectId: string; servicePrincipalId: string; secret: string };
  entra: EntraSandbox;
  dovecot: Dovecot;
  smtp: SmtpFront;
  graph: GraphSandbox;
  /** connections: { sandbox } for mailbridge.yaml, pointing at this tenant. */
  connections: Record<string, unknown>;
  /** Raw messages in a mailbox's INBOX (or another folder), oldest first, straight from Dovecot. */
  inbox(address: string, folder?: string): Promise<Buffer[]>;
  close(): Promise<void>;
}

export async function startTenant(options: { smtpLimits?: SmtpLimits; clock?: ManualClock } = {}): Promise<TenantRig> {
  ensureDovecot();
  const tmp = tempDir('mb-transport-');
  const clock = options.clock ?? new ManualClock(Date.now());
  const now = () => clock.now();
  const ca = createSandboxCa();
  const caFile = join(tmp.path, 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  const directory = new SandboxDirectory(demoTenant(ca.issueSelfSigned('mailbridge test app').certPem));
  const tenant = directory.data.tenants[0]!;
  const a = tenant.apps[0]!;
  const started: Array<() => Promise<void>> = [];
  try {
    const entra = await startEntraSandbox({ directory, ca, now });
    started.push(() => entra.close());
    const dovecot = await startDovecot({ tls: ca.issueServer() });
    started.push(() => dovecot.stop());
    const jwks = () => entra.jwks();
    const tls = ca.issueServer(['localhost', '127.0.0.1', '::1', 'smtp.office365.com']);
    const smtp = await startSmtpFront({ directory, jwks, tls, dovecot, now, ...(options.smtpLimits ? { limits: options.smtpLimits } : {}) });
    started.push(() => smtp.close());
    const graph = await startGraphSandbox({ directory, jwks, tls: ca.issueServer(), dovecot, now });
    started.push(() => graph.close());
    const connections = {
      sandbox: {
        cloud: 'global',
        tenantId: tenant.id,
        clientId: a.appId,
        clientSecret: a.secrets[0]!.value,
        tokenEndpoint: `${entra.urls.global}/#TenantID#/oauth2/v2.0/token`,
        caFile,
      },
    };
    return {
      dir: tmp.path,
      clock,
      ca,
      caFile,
      directory,
      tenantId: tenant.id,
      app: { appId: a.appId, objectId: a.objectId, servicePrincipalId: a.servicePrincipalId, secret: a.secrets[0]!.value },
      entra,
      dovecot,
      smtp,
      graph,
      connections,
      inbox: (address, folder = 'INBOX') => readFolder(dovecot, address, folder),
      async close() {
        for (const stop of started.reverse()) await stop().catch(() => undefined);
        tmp.remove();
      },
    };
  } catch (err) {
    for (const stop of started.reverse()) await stop().catch(() => undefined);
    tmp.remove();
    throw err;
  }
}

async function readFolder(dovecot: Dovecot, address: string, folder: string): Promise<Buffer[]> {
  const c = await dovecotImap(dovecot, address);
  try {
    const st = await c.status(folder, { messages: true }).catch(() => undefined);
    if (!st || !st.messages) return [];
    const lock = await c.getMailboxLock(folder, { readOnly: true });
    try {
      const out: Buffer[] = [];
      for await (const m of c.fetch('1:*', { source: true })) if (m.source) out.push(m.source);
      return out;
    } finally {
      lock.release();
    }
  } finally {
    await c.logout().catch(() => undefined);
  }
}

export interface RelayRig {
  service: RelayService;
  store: Store;
  identity: Identity;
  lines: LogLine[];
  port: number;
  config: Config;
  /** Sends a raw message as the application would (nodemailer, STARTTLS, relay user "app"); returns the queue ID from the 250 reply. */
  submit(envelope: { from: string; to: string[] }, raw: string | Buffer): Promise<string>;
  /** The queue record of a message. */
  record(id: string): Promise<QueueRecord>;
  /** Lets the queue manager deliver everything due now. */
  settle(): Promise<void>;
  /** Advances the shared clock and lets the queue deliver what became due. */
  advance(ms: number): Promise<void>;
  records(): Promise<QueueRecord[]>;
  close(): Promise<void>;
}

/** mailbridge's relay on the rig's tenant; `routes` and `relay` extend the relay section. */
export async function startRelayRig(t: TenantRig, options: { routes: unknown[]; relay?: Record<string, unknown>; users?: string[] }): Promise<RelayRig> {
  const dir = join(t.dir, `relay-${Math.random().toString(36).slice(2, 8)}`);
  const config = configSchema.parse({
    store: { driver: 'sqlite', path: join(dir, 'mb.db') },
    connections: t.connections,
    relay: {
      hostname: 'relay.test',
      dataDir: join(dir, 'relay'),
      listeners: [{ host: '127.0.0.1', port: 0 }],
      users: { app: await testUser(options.users ?? ['@contoso.test', '@legacy.example']) },
      queue: { retrySchedule: '1m, 5m*3' },
      routes: options.routes,
      ...options.relay,
    },
  });
  const store = await openStore(config.store);
  const secretBox = await openSecretBox({ keyFile: join(dir, 'mailbridge.key'), env: {} });
  const { log, lines } = collectingLogger();
  const identity = createIdentity({ config, kv: store.kv, secretBox, log, clock: () => t.clock.now(), env: {} });
  const service = await startRelayService({ config: { ...config, relay: config.relay! }, transports, store, log, tokens: identity, clock: t.clock, env: {} });
  const port = service.relay.listeners[0]!.port;
  const client = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    requireTLS: true,
    tls: { ca: service.relay.tls.cert, checkServerIdentity: () => undefined },
    auth: { user: 'app', pass: PASSWORD },
  });
  const settle = () => service.relay.manager.whenIdle();
  return {
    service,
    store,
    identity,
    lines,
    port,
    config,
    async submit(envelope, raw) {
      const info = await client.sendMail({ envelope, raw });
      const id = /queued as (\S+)/.exec(info.response)?.[1];
      if (!id) throw new Error(`no queue ID in ${info.response}`);
      return id;
    },
    async record(id) {
      const rec = await service.relay.queue.get(id);
      if (!rec) throw new Error(`no queue record ${id}`);
      return rec;
    },
    settle,
    async advance(ms) {
      t.clock.advance(ms);
      await settle();
    },
    records: () => service.relay.queue.list({}),
    async close() {
      client.close();
      await service.close(undefined, 1000);
      await identity.close();
      await store.close();
    },
  };
}

/**
 * A message as Dovecot stored it, taken apart: the Return-Path final delivery adds, the relay's
 * Received header, and the rest (what the application sent, after the relay's cleanup).
 */
export function stored(got: Buffer | string): { returnPath: string; received: string; rest: string } {
  const text = typeof got === 'string' ? got : got.toString('utf8');
  const m = /^Return-Path: <[^>]*>\r\n/.exec(text);
  if (!m) throw new Error(`no Return-Path on top: ${text.slice(0, 200)}`);
  const { received, rest } = withoutReceived(text.slice(m[0].length));
  return { returnPath: m[0], received, rest: rest.toString('utf8') };
}

/** A CRLF message. */
export function message(h: { from: string; to?: string; cc?: string; subject: string; id?: string; extra?: string[] }, body = 'Hello from the application.\r\n'): string {
  return [
    `From: ${h.from}`,
    ...(h.to ? [`To: ${h.to}`] : []),
    ...(h.cc ? [`Cc: ${h.cc}`] : []),
    `Subject: ${h.subject}`,
    `Date: Mon, 02 Nov 2026 10:00:00 +0000`,
    `Message-ID: <${h.id ?? Math.random().toString(36).slice(2)}@legacy.example>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    ...(h.extra ?? []),
    '',
    body,
  ].join('\r\n');
}

/** An OutboundMessage as the queue manager builds it, for calling a transport directly. */
export function outbound(m: { sender: string; recipients: string[]; raw: string | Buffer; relayUser?: string; mailbox?: string; id?: string; signal?: AbortSignal }): OutboundMessage {
  const raw = typeof m.raw === 'string' ? Buffer.from(m.raw, 'utf8') : m.raw;
  return {
    id: m.id ?? 'TEST0000000001',
    sender: m.sender,
    recipients: m.recipients,
    mailbox: m.mailbox ?? m.sender,
    ...(m.relayUser !== undefined ? { relayUser: m.relayUser } : {}),
    size: raw.length,
    bodyType: raw.some((b) => b >= 0x80) ? '8bitmime' : '7bit',
    smtpUtf8: false,
    receivedAt: new Date(),
    attempt: 1,
    isBounce: false,
    body: () => Readable.from([raw]),
    readBody: async () => raw,
    signal: m.signal ?? new AbortController().signal,
  };
}
