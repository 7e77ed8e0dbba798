/**
 * The rig the sandbox Graph tests share: a sandbox CA, a real private Dovecot, a directory (tenant
 * Contoso with apps holding different Graph roles, users with and without mailboxes, a shared
 * mailbox granting SendAs; tenant Fabrikam; a GCC High tenant), the Graph sandbox, an HTTPS client
 * that trusts the CA (undici), and tokens minted with jose from a key pair whose public JWK is the
 * sandbox's JWKS, carrying the claims Entra puts into Graph access tokens.
 */
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type JSONWebKeySet, type CryptoKey } from 'jose';
import type { ImapFlow } from 'imapflow';
import { Agent, fetch } from 'undici';
import { createSandboxCa, type KeyAndCert, type SandboxCa } from '../../../src/sandbox/ca.ts';
import { SandboxDirectory } from '../../../src/sandbox/directory.ts';
import { startDovecot, type Dovecot } from '../../../src/sandbox/dovecot.ts';
import { SyntheticMailboxes } from '../../../src/sandbox/feed/synthetic.ts';
import { startGraphSandbox, type GraphLimits, type GraphSandbox, type Timers } from '../../../src/sandbox/graph/index.ts';
import { dovecotImap } from '../../support/imap.ts';

export const T = {
  contoso: '1c000000-0000-4000-8000-000000000001',
  fabrikam: '1c000000-0000-4000-8000-000000000002',
  usgov: '1c000000-0000-4000-8000-000000000003',
};

/** App IDs and enterprise-application (service principal) object IDs. */
export const APP = {
  relay: { appId: 'a0000000-0000-4000-8000-000000000001', objectId: 'a1000000-0000-4000-8000-000000000001', sp: 'a2000000-0000-4000-8000-000000000001', roles: ['Mail.Send', 'Mail.ReadWrite'] },
  reader: { appId: 'a0000000-0000-4000-8000-000000000002', objectId: 'a1000000-0000-4000-8000-000000000002', sp: 'a2000000-0000-4000-8000-000000000002', roles: ['Mail.Read'] },
  none: { appId: 'a0000000-0000-4000-8000-000000000003', objectId: 'a1000000-0000-4000-8000-000000000003', sp: 'a2000000-0000-4000-8000-000000000003', roles: [] as string[] },
  web: { appId: 'a0000000-0000-4000-8000-000000000004', objectId: 'a1000000-0000-4000-8000-000000000004', sp: 'a2000000-0000-4000-8000-000000000004', roles: [] as string[] },
  fabrikam: { appId: 'a0000000-0000-4000-8000-000000000005', objectId: 'a1000000-0000-4000-8000-000000000005', sp: 'a2000000-0000-4000-8000-000000000005', roles: ['Mail.Send', 'Mail.ReadWrite'] },
  usgov: { appId: 'a0000000-0000-4000-8000-000000000006', objectId: 'a1000000-0000-4000-8000-000000000006', sp: 'a2000000-0000-4000-8000-000000000006', roles: ['Mail.Send'] },
};

export const USER = {
  alice: { upn: 'alice@contoso.test', oid: 'b0000000-0000-4000-8000-000000000001' },
  bob: { upn: 'bob@contoso.test', oid: 'b0000000-0000-4000-8000-000000000002' },
  carol: { upn: 'carol@contoso.test', oid: 'b0000000-0000-4000-8000-000000000003' },
  dave: { upn: 'dave@contoso.test', oid: 'b0000000-0000-4000-8000-000000000004' },
};

export const INFO = 'info@contoso.test';
export const FRANK = 'frank@fabrikam.test';

export function sandboxDirectory(): SandboxDirectory {
  const app = (a: (typeof APP)[keyof typeof APP], name: string) => ({
    appId: a.appId,
    objectId: a.objectId,
    servicePrincipalId: a.sp,
    displayName: name,
    appRoles: { exchange: ['IMAP.AccessAsApp'], graph: a.roles },
  });
  return new SandboxDirectory({
    tenants: [
      {
        id: T.contoso,
        name: 'Contoso',
        domains: ['contoso.test'],
        apps: [app(APP.relay, 'relay'), app(APP.reader, 'reader'), app(APP.none, 'none'), app(APP.web, 'web')],
        users: [
          { objectId: USER.alice.oid, upn: USER.alice.upn, displayName: 'Alice Able' },
          { objectId: USER.bob.oid, upn: USER.bob.upn, displayName: 'Bob Baker' },
          { objectId: USER.carol.oid, upn: USER.carol.upn, displayName: 'Carol (no mailbox)' },
          { objectId: USER.dave.oid, upn: USER.dave.upn, displayName: 'Dave Delegate' },
        ],
        exchange: {
          // For the Exchange IMAP front (reading Graph-sent mail over IMAP): New-ServicePrincipal + FullAccess.
          servicePrincipals: [{ appId: APP.relay.appId, objectId: APP.relay.sp, displayName: 'relay' }],
          mailboxes: [
            { address: USER.alice.upn, displayName: 'Alice Able', fullAccess: [APP.relay.sp] },
            { address: USER.bob.upn, displayName: 'Bob Baker', fullAccess: [APP.relay.sp] },
            { address: USER.dave.upn, displayName: 'Dave Delegate' },
            // Shared mailbox: the relay app and alice may send as it; dave has FullAccess.
            { address: INFO, type: 'shared', displayName: 'Contoso Info', sendAs: [APP.relay.sp, USER.alice.upn], fullAccess: [USER.dave.upn] },
          ],
        },
      },
      {
        id: T.fabrikam,
        name: 'Fabrikam',
        domains: ['fabrikam.test'],
        apps: [app(APP.fabrikam, 'fabrikam')],
        exchange: { mailboxes: [{ address: FRANK }] },
      },
      {
        id: T.usgov,
        name: 'US Gov',
        domains: ['usgov.test'],
        cloud: 'gcc-high',
        apps: [app(APP.usgov, 'usgov')],
        exchange: { mailboxes: [{ address: 'gina@usgov.test' }] },
      },
    ],
  });
}

export interface Response {
  status: number;
  headers: Headers;
  text: string;
  body: Buffer;
  json<T = Record<string, unknown>>(): T;
}

export interface Rig {
  ca: SandboxCa;
  /** An undici dispatcher trusting the sandbox CA. */
  agent: Agent;
  tls: KeyAndCert;
  dovecot: Dovecot;
  directory: SandboxDirectory;
  graph: GraphSandbox;
  /** Synthetic mailboxes in tenant Contoso, when started with `synthetic`. */
  synthetic?: SyntheticMailboxes;
  jwks: JSONWebKeySet;
  /** Clock the Graph sandbox reads; tests move it forward. */
  clock: { offsetMs: number };
  /** A Graph app-only token (client credentials) of an app, claims overridable. */
  appToken(app?: (typeof APP)[keyof typeof APP], claims?: Record<string, unknown>, options?: { expiresIn?: number; foreignKey?: boolean; tenant?: string }): Promise<string>;
  /** A delegated Graph token for a user (scp). */
  userToken(user: { upn: string; oid: string }, scp: string, claims?: Record<string, unknown>): Promise<string>;
  /** An HTTPS request to the Graph sandbox. */
  call(method: string, path: string, options?: { token?: string; json?: unknown; body?: string | Buffer; headers?: Record<string, string> }): Promise<Response>;
  /** imapflow straight to Dovecot as the mailbox (the ground truth). */
  imap(address: string): Promise<ImapFlow>;
  close(): Promise<void>;
}

export interface RigOptions {
  limits?: GraphLimits;
  deltaTokenCacheSize?: number;
  /** Synthetic mailboxes (user00001@domain …) added to tenant Contoso. */
  synthetic?: { mailboxes: number; domain?: string };
  /** Timers for notification retries and subscription expiry. */
  timers?: Timers;
  notificationTimeouts?: { validationMs?: number; deliveryMs?: number };
  /** Delay before Graph-made app role assignments reach tokens. */
  propagationMs?: number;
}

export async function startRig(options: RigOptions = {}): Promise<Rig> {
  const ca = createSandboxCa();
  const tls = ca.issueServer();
  const signer = await generateKeyPair('RS256', { extractable: true });
  const foreign = await generateKeyPair('RS256');
  const kid = 'graph-rig-key';
  const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(signer.publicKey)), kid, alg: 'RS256', use: 'sig' }] };
  const directory = sandboxDirectory();
  const clock = { offsetMs: 0 };
  const now = () => Date.now() + clock.offsetMs;
  const synthetic = options.synthetic ? new SyntheticMailboxes({ ...options.synthetic, now }) : undefined;
  if (synthetic) directory.addSynthetic(T.contoso, synthetic);
  const dovecot = await startDovecot({ tls });
  let graph: GraphSandbox;
  try {
    graph = await startGraphSandbox({
      directory,
      jwks,
      tls,
      dovecot,
      now,
      limits: options.limits,
      deltaTokenCacheSize: options.deltaTokenCacheSize,
      synthetic,
      // Notification receivers in tests hold certificates from this CA.
      trust: [ca.certPem],
      timers: options.timers,
      notificationTimeouts: options.notificationTimeouts,
      ...(options.propagationMs !== undefined ? { propagationMs: options.propagationMs } : {}),
    });
  } catch (err) {
    await dovecot.stop();
    throw err;
  }
  const agent = new Agent({ connect: { ca: ca.certPem } });
  const clients: ImapFlow[] = [];

  const sign = async (claims: Record<string, unknown>, expiresIn: number, key: CryptoKey) => {
    const t = Math.floor(now() / 1000);
    // iat/nbf backdated five minutes as Entra does; a test's own nbf wins.
    return new SignJWT({ iat: t - 300, nbf: t - 300, exp: t + expiresIn, ...claims })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid })
      .sign(key);
  };
  const tenantOfApp = (appId: string) => directory.data.tenants.find((t) => t.apps.some((a) => a.appId === appId))?.id ?? T.contoso;

  return {
    ca,
    agent,
    tls,
    dovecot,
    directory,
    graph,
    ...(synthetic ? { synthetic } : {}),
    jwks,
    clock,
    appToken(app = APP.relay, claims = {}, o = {}) {
      const tid = o.tenant ?? tenantOfApp(app.appId);
      return sign(
        {
          aud: 'https://graph.microsoft.com',
          iss: `https://sts.windows.net/${tid}/`,
          tid,
          appid: app.appId,
          appidacr: '1',
          idtyp: 'app',
          oid: app.sp,
          sub: app.sp,
          ...(app.roles.length ? { roles: app.roles } : {}),
          uti: randomUUID(),
          ver: '1.0',
          ...claims,
        },
        o.expiresIn ?? 3600,
        o.foreignKey ? foreign.privateKey : signer.privateKey,
      );
    },
    userToken(user, scp, claims = {}) {
      return sign(
        {
          aud: 'https://graph.microsoft.com',
          iss: `https://sts.windows.net/${T.contoso}/`,
          tid: T.contoso,
          appid: APP.web.appId,
          appidacr: '0',
          idtyp: 'user',
          oid: user.oid,
          upn: user.upn,
          unique_name: user.upn,
          scp,
          ver: '1.0',
          ...claims,
        },
        3600,
        signer.privateKey,
      );
    },
    async call(method, path, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
      let body: string | Buffer | undefined = o.body;
      if (o.json !== undefined) {
        body = JSON.stringify(o.json);
        headers['content-type'] ??= 'application/json';
      }
      const res = await fetch(graph.url + path, { method, headers, body, dispatcher: agent });
      const buf = Buffer.from(await res.arrayBuffer());
      const text = buf.toString('utf8');
      return {
        status: res.status,
        headers: res.headers as unknown as Headers,
        text,
        body: buf,
        json: <T>() => JSON.parse(text) as T,
      };
    },
    async imap(address) {
      const c = await dovecotImap(dovecot, address);
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) await c.logout().catch(() => c.close());
      await graph.close();
      await agent.close();
      await dovecot.stop();
    },
  };
}

/** The Graph error envelope, checked for shape; returns code and message. */
export function graphError(res: Response): { code: string; message: string; innerError: Record<string, string> } {
  const body = res.json<{ error: { code: string; message: string; innerError: Record<string, string> } }>();
  return body.error;
}

/** A small RFC 5322 message with CRLF line ends. */
export function rfc822(o: { from: string; to: string; subject: string; body?: string; extra?: string }): string {
  return (
    `From: ${o.from}\r\nTo: ${o.to}\r\nSubject: ${o.subject}\r\n` +
    `Message-ID: <${randomUUID()}@sandbox.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\n${o.extra ?? ''}\r\n${o.body ?? `Body of ${o.subject}.`}\r\n`
  );
}

