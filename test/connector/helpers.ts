/**
 * What the connector tests share: a real private Dovecot (src/sandbox/dovecot.ts) with the sandbox
 * CA, tokens Dovecot accepts, messages of a given size put into a source mailbox by IMAP APPEND
 * (stored byte for byte), a store in a temp dir, and small readers for the results.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import { exportJWK, generateKeyPair, SignJWT, type JSONWebKeySet } from 'jose';
import { connectorSchema, type ConnectorConfig, type ConnectorInput } from '../../src/connector/config.ts';
import type { ConnectorEvent, TokenProvider } from '../../src/connector/types.ts';
import { createSandboxCa, type SandboxCa } from '../../src/sandbox/ca.ts';
import { startDovecot, type Dovecot } from '../../src/sandbox/dovecot.ts';
import { SandboxDirectory } from '../../src/sandbox/directory.ts';
import { startImapFront, type ImapFront, type ImapLimits } from '../../src/sandbox/exchange/imap.ts';
import type { SandboxMailbox, SandboxUser } from '../../src/sandbox/model.ts';
import type { Sandbox } from '../../src/sandbox/index.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { tempDir } from '../support/temp.ts';
import { dovecotImap } from '../support/imap.ts';

export const ROOT = join(import.meta.dirname, '..', '..');
export const NODE = join(ROOT, 'node_modules', '.bin', 'node');

export interface Rig {
  ca: SandboxCa;
  dovecot: Dovecot;
  tokens: TokenProvider;
  /** An imapflow client logged in to a mailbox (caller logs out). */
  imap(mailbox: string): Promise<ImapFlow>;
  close(): Promise<void>;
}

let installed = false;

/** The Sieve recipe docs/en/connector.md tells LMTP/SMTP receivers to install (drops redeliveries by X-Mailbridge-Delivery-Id). */
export const DEDUPE_SIEVE = join(ROOT, 'share', 'sieve', 'mailbridge-dedupe.sieve');

/** `sieve`: Dovecot runs this script before every LMTP delivery (Pigeonhole). */
export async function startRig(options: { sieve?: string } = {}): Promise<Rig> {
  if (!installed) {
    execFileSync('bash', [join(ROOT, 'scripts', 'dovecot', 'install.sh')], { stdio: 'ignore' });
    installed = true;
  }
  const ca = createSandboxCa();
  const dovecot = await startDovecot({ tls: ca.issueServer(), sieveBefore: options.sieve });
  const tokens: TokenProvider = (mailbox) => dovecot.mintToken(mailbox);
  return {
    ca,
    dovecot,
    tokens,
    async imap(mailbox) {
      const c = await dovecotImap(dovecot, mailbox);
      return c;
    },
    close: () => dovecot.stop(),
  };
}

export interface MessageSpec {
  subject?: string;
  from?: string;
  to?: string;
  /** null: no Message-ID header at all. */
  messageId?: string | null;
  /** Total size to pad the body to (bytes, approximately). */
  size?: number;
  returnPath?: string;
}

/** A plain CRLF message with a unique Message-ID (unless told otherwise). */
export function makeMessage(n: number, spec: MessageSpec = {}): Buffer {
  const id = spec.messageId === undefined ? `<m${n}.${randomBytes(6).toString('hex')}@test.example>` : spec.messageId;
  const head = [
    ...(spec.returnPath ? [`Return-Path: <${spec.returnPath}>`] : []),
    `From: Sender ${n} <${spec.from ?? 'sender@outside.example'}>`,
    `To: <${spec.to ?? 'alice@contoso.test'}>`,
    `Subject: ${spec.subject ?? `message ${n}`}`,
    `Date: Mon, 02 Mar 2026 10:00:00 +0000`,
    ...(id === null ? [] : [`Message-ID: ${id}`]),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    '',
  ].join('\r\n');
  let body = `Body of message ${n}.\r\n`;
  const want = (spec.size ?? 0) - head.length - body.length;
  if (want > 0) {
    const line = 'x'.repeat(76) + '\r\n';
    body += line.repeat(Math.floor(want / line.length));
    body += 'y'.repeat(Math.max(0, want % line.length - 2)) + '\r\n';
  }
  return Buffer.from(head + body, 'latin1');
}

/** Appends messages to a folder (created if missing); returns their UIDs. */
export async function append(rig: Rig, mailbox: string, folder: string, messages: Buffer[]): Promise<number[]> {
  const c = await rig.imap(mailbox);
  try {
    if (folder !== 'INBOX') await c.mailboxCreate(folder).catch(() => undefined);
    const uids: number[] = [];
    for (const m of messages) {
      const r = await c.append(folder, m);
      if (r && r.uid) uids.push(r.uid);
    }
    return uids;
  } finally {
    await c.logout().catch(() => undefined);
  }
}

/** UIDs and flags of a folder's messages, with their raw source. */
export async function folderContents(rig: Rig, mailbox: string, folder: string): Promise<Array<{ uid: number; flags: Set<string>; raw: Buffer }>> {
  const c = await rig.imap(mailbox);
  try {
    const st = await c.status(folder, { messages: true });
    if (!st || !st.messages) return [];
    await c.mailboxOpen(folder, { readOnly: true });
    const all = await c.fetchAll('1:*', { uid: true, flags: true, source: true });
    return all.map((m) => ({ uid: m.uid, flags: m.flags ?? new Set<string>(), raw: m.source! }));
  } catch (err) {
    if ((err as { mailboxMissing?: boolean }).mailboxMissing) return [];
    throw err;
  } finally {
    await c.logout().catch(() => undefined);
  }
}

export async function tempStore(): Promise<{ store: Store; path: string; close(): Promise<void> }> {
  const dir = tempDir('mb-conn-store-');
  const path = join(dir.path, 'mb.db');
  const store = await openStore({ driver: 'sqlite', path });
  return {
    store,
    path,
    async close() {
      await store.close();
      dir.remove();
    },
  };
}

/** A connector section as mailbridge.yaml would give it, for Dovecot on loopback. */
export function connectorConfig(rig: Rig, input: Partial<ConnectorInput> & Pick<ConnectorInput, 'destination' | 'mailboxes'>): ConnectorConfig {
  return connectorSchema.parse({
    connection: 'test',
    source: { kind: 'imap', host: '127.0.0.1', port: rig.dovecot.ports.imap, tls: 'none' },
    retry: { initialSeconds: 0.05, maxSeconds: 0.5 },
    pollSeconds: 5,
    ...input,
  });
}

export function events(): { list: ConnectorEvent[]; on: (e: ConnectorEvent) => void; of<T extends ConnectorEvent['type']>(t: T): Array<Extract<ConnectorEvent, { type: T }>> } {
  const list: ConnectorEvent[] = [];
  return {
    list,
    on: (e) => void list.push(e),
    of: <T extends ConnectorEvent['type']>(t: T) => list.filter((e): e is Extract<ConnectorEvent, { type: T }> => e.type === t),
  };
}

/** Files of a maildir's new/ and cur/, with contents. */
export function maildirFiles(path: string): Array<{ name: string; raw: Buffer }> {
  const out: Array<{ name: string; raw: Buffer }> = [];
  for (const sub of ['new', 'cur']) {
    let names: string[];
    try {
      names = readdirSync(join(path, sub));
    } catch {
      continue;
    }
    for (const n of names) out.push({ name: `${sub}/${n}`, raw: readFileSync(join(path, sub, n)) });
  }
  return out;
}

export function messageIdOfRaw(raw: Buffer): string | undefined {
  return /^Message-ID:\s*(\S+)/im.exec(raw.toString('latin1'))?.[1];
}

export interface Captured {
  from: string;
  to: string[];
  raw: Buffer;
}

/**
 * A local SMTP or LMTP server (smtp-server) that keeps what it receives, or answers DATA with
 * `reply` (e.g. "550 5.7.1 no", "451 4.3.0 later") while `reply` is set.
 */
export async function startCapture(options: { lmtp: boolean; port?: number }): Promise<{
  port: number;
  got: Captured[];
  reply: string | undefined;
  close(): Promise<void>;
}> {
  const { SMTPServer } = await import('smtp-server');
  const state = { port: 0, got: [] as Captured[], reply: undefined as string | undefined, close: async () => {} };
  const server = new SMTPServer({
    lmtp: options.lmtp,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    size: 200 * 1024 * 1024,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (state.reply) {
          const code = Number(state.reply.slice(0, 3));
          const err = Object.assign(new Error(state.reply.slice(4)), { responseCode: code });
          return callback(err);
        }
        state.got.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
        });
        callback();
      });
    },
  });
  // A client killed mid-session (the crash tests) resets its connection; that is no failure here.
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  state.port = (server.server.address() as { port: number }).port;
  state.close = () => new Promise<void>((r) => server.close(() => r()));
  return state;
}

/** A loopback port nothing listens on (taken and released at once). */
export async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** An app-only access token for Exchange Online shaped as Entra ID issues it (v1, roles), signed with a test key. */
export async function exchangeAppToken(
  key: Parameters<SignJWT['sign']>[0],
  o: { kid: string; tenantId: string; app: { appId: string; servicePrincipalId: string } },
  claims: Record<string, unknown> = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    aud: 'https://outlook.office365.com',
    iss: `https://sts.windows.net/${o.tenantId}/`,
    tid: o.tenantId,
    appid: o.app.appId,
    appidacr: '1',
    idtyp: 'app',
    oid: o.app.servicePrincipalId,
    sub: o.app.servicePrincipalId,
    roles: ['IMAP.AccessAsApp'],
    ver: '1.0',
    ...claims,
  })
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: o.kid })
    .setIssuedAt(now - 60)
    .setNotBefore(now - 60)
    .setExpirationTime(now + 3600)
    .sign(key);
}

/** A tenant for the Exchange Online IMAP front (src/sandbox/exchange/imap.ts) over the rig's Dovecot. */
export interface ExchangeTenant {
  directory: SandboxDirectory;
  jwks: JSONWebKeySet;
  /** An Entra-shaped app-only token of the tenant's app; `claims` override (a delegated token, a missing role). */
  token(claims?: Record<string, unknown>): Promise<string>;
  /** A front for this tenant (the caller closes it); `limits` for the throttling tests. */
  front(limits?: ImapLimits): Promise<ImapFront>;
}

/**
 * One tenant with the mailbridge app (IMAP.AccessAsApp, its service principal registered in
 * Exchange) and the given users and mailboxes, and a key that signs its tokens.
 */
export async function exchangeTenant(
  rig: Rig,
  o: { kid: string; tenantId: string; app: { appId: string; objectId: string; servicePrincipalId: string }; users?: Array<Pick<SandboxUser, 'objectId' | 'upn'>>; mailboxes: Array<Partial<SandboxMailbox> & { address: string }> },
): Promise<ExchangeTenant> {
  const signer = await generateKeyPair('RS256', { extractable: true });
  const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(signer.publicKey)), kid: o.kid, alg: 'RS256', use: 'sig' }] };
  const directory = new SandboxDirectory({
    tenants: [
      {
        id: o.tenantId,
        domains: ['contoso.test'],
        apps: [{ ...o.app, displayName: 'mailbridge', appRoles: { exchange: ['IMAP.AccessAsApp'], graph: [] } }],
        users: o.users ?? [],
        exchange: {
          servicePrincipals: [{ appId: o.app.appId, objectId: o.app.servicePrincipalId, displayName: 'mailbridge' }],
          mailboxes: o.mailboxes,
        },
      },
    ],
  });
  return {
    directory,
    jwks,
    token: (claims = {}) => exchangeAppToken(signer.privateKey, o, claims),
    front: (limits) => startImapFront({ directory, jwks, tls: rig.ca.issueServer(), dovecot: rig.dovecot, ...(limits ? { limits } : {}) }),
  };
}

/**
 * The runner's reconnect pauses on a manual clock (ConnectorDeps.sleep): each pause waits until the
 * test lets the time pass with `elapse()`; `asked` keeps the lengths the runner wanted.
 */
export function manualSleep(): { sleep: (ms: number, signal: AbortSignal) => Promise<void>; asked: number[]; pending(): number; elapse(): void } {
  const waiting: Array<() => void> = [];
  const asked: number[] = [];
  return {
    asked,
    pending: () => waiting.length,
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        asked.push(ms);
        const done = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          waiting.splice(waiting.indexOf(done), 1);
          reject(signal.reason);
        };
        waiting.push(done);
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    elapse: () => {
      for (const done of waiting.splice(0)) done();
    },
  };
}

/**
 * A Graph connector of the sandbox's connection woken by change notifications: delivered to a
 * maildir, listening on `port` with the sandbox's inbound certificate (127.0.0.1, from its CA), and
 * polling only hourly, so that a delivery within a test's time came from a notification.
 */
export function graphNotifyConnector(sandbox: Sandbox, o: { port: number; publicUrl: string; mailboxes: string[]; maildir: string }): Record<string, unknown> {
  return {
    connection: 'sandbox',
    source: {
      kind: 'graph',
      baseUrl: sandbox.graph.url,
      caFile: sandbox.caFile,
      notifications: {
        publicUrl: o.publicUrl,
        listen: { host: '127.0.0.1', port: o.port, certFile: join(sandbox.dir, 'notify-inbound.pem'), keyFile: join(sandbox.dir, 'notify-inbound.key') },
      },
    },
    mailboxes: o.mailboxes,
    destination: { kind: 'maildir', path: o.maildir },
    after: { action: 'none' },
    pollSeconds: 3600,
  };
}
