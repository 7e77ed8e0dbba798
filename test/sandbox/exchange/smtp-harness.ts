/**
 * Test fixtures for the Exchange Online authorization model and SMTP front: a sandbox directory
 * set up like a real tenant after the vendor guide (app with SMTP.SendAsApp, New-ServicePrincipal
 * with the enterprise app's object ID, FullAccess on the mailboxes), tokens shaped like the
 * sandbox Entra's v1 access tokens, signed with a key pair whose public half is the JWKS handed to
 * the front, and a raw SMTP client for checking reply texts on the wire.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JSONWebKeySet } from 'jose';
import { SandboxDirectory } from '../../../src/sandbox/directory.ts';

export const TENANT_ID = randomUUID();
export const OTHER_TENANT_ID = randomUUID();
export const APP = { appId: randomUUID(), objectId: randomUUID(), servicePrincipalId: randomUUID() };
export const CAROL = { objectId: randomUUID(), upn: 'carol@contoso.test' };
export const DAVE = { objectId: randomUUID(), upn: 'dave@contoso.test' };

/** A fresh directory: contoso.test (alice, bob: users; info: shared, FullAccess for carol) and fabrikam.test. */
export function makeDirectory(): SandboxDirectory {
  const mailbox = (address: string, extra: Record<string, unknown> = {}) => ({
    address,
    fullAccess: [APP.servicePrincipalId],
    sendAs: [],
    ...extra,
  });
  return new SandboxDirectory({
    tenants: [
      {
        id: TENANT_ID,
        name: 'Contoso',
        domains: ['contoso.test'],
        apps: [{ ...APP, appRoles: { exchange: ['SMTP.SendAsApp', 'IMAP.AccessAsApp'], graph: [] } }],
        users: [
          { objectId: CAROL.objectId, upn: CAROL.upn },
          { objectId: DAVE.objectId, upn: DAVE.upn },
        ],
        exchange: {
          servicePrincipals: [{ appId: APP.appId, objectId: APP.servicePrincipalId, displayName: 'mailbridge' }],
          mailboxes: [
            mailbox('alice@contoso.test'),
            mailbox('bob@contoso.test'),
            mailbox('carol@contoso.test', { fullAccess: [] }),
            mailbox('dave@contoso.test', { fullAccess: [] }),
            mailbox('info@contoso.test', { type: 'shared', fullAccess: [APP.servicePrincipalId, CAROL.upn] }),
          ],
        },
      },
      {
        id: OTHER_TENANT_ID,
        name: 'Fabrikam',
        domains: ['fabrikam.test'],
        exchange: { servicePrincipals: [], mailboxes: [{ address: 'erin@fabrikam.test', fullAccess: [APP.servicePrincipalId] }] },
      },
    ],
  });
}

export interface Signer {
  jwks: JSONWebKeySet;
  key: CryptoKey;
  kid: string;
}

export async function makeSigner(kid = 'test-key'): Promise<Signer> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { jwks: { keys: [{ ...jwk, kid, use: 'sig', alg: 'RS256' }] }, key: privateKey, kid };
}

export interface TokenOptions {
  tid?: string;
  aud?: string;
  iss?: string;
  appid?: string;
  oid?: string;
  roles?: string[];
  /** Token lifetime around `now`: issued `now - 5 min`, expires `now + expiresIn` seconds. */
  expiresIn?: number;
  now?: number;
  signer?: Signer;
  extra?: Record<string, unknown>;
}

/** An app-only v1 access token as Entra issues it for https://outlook.office365.com/.default. */
export async function appToken(signer: Signer, o: TokenOptions = {}): Promise<string> {
  const tid = o.tid ?? TENANT_ID;
  const claims: Record<string, unknown> = {
    aud: o.aud ?? 'https://outlook.office365.com',
    iss: o.iss ?? `https://sts.windows.net/${tid}/`,
    appid: o.appid ?? APP.appId,
    appidacr: '1',
    idtyp: 'app',
    oid: o.oid ?? APP.servicePrincipalId,
    sub: o.oid ?? APP.servicePrincipalId,
    tid,
    ver: '1.0',
    ...o.extra,
  };
  if ((o.roles ?? ['SMTP.SendAsApp', 'IMAP.AccessAsApp']).length > 0) claims.roles = o.roles ?? ['SMTP.SendAsApp', 'IMAP.AccessAsApp'];
  return sign(o.signer ?? signer, claims, o);
}

/** A delegated v1 access token (scp, upn) for https://outlook.office.com. */
export async function userToken(signer: Signer, user: { objectId: string; upn: string }, scp: string, o: TokenOptions = {}): Promise<string> {
  const tid = o.tid ?? TENANT_ID;
  return sign(
    o.signer ?? signer,
    {
      aud: o.aud ?? 'https://outlook.office.com',
      iss: o.iss ?? `https://sts.windows.net/${tid}/`,
      appid: o.appid ?? APP.appId,
      idtyp: 'user',
      oid: user.objectId,
      scp,
      tid,
      upn: user.upn,
      unique_name: user.upn,
      ver: '1.0',
      ...o.extra,
    },
    o,
  );
}

async function sign(signer: Signer, claims: Record<string, unknown>, o: TokenOptions): Promise<string> {
  const nowS = Math.floor((o.now ?? Date.now()) / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: signer.kid, x5t: signer.kid })
    .setIssuedAt(nowS - 300)
    .setNotBefore(nowS - 300)
    .setExpirationTime(nowS + (o.expiresIn ?? 3600))
    .sign(signer.key);
}

/** XOAUTH2 initial response. */
export function xoauth2(user: string, token: string): string {
  return Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`).toString('base64');
}

/** A controllable clock for the front's limits. */
export class FakeClock {
  t = Date.now();
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** A minimal line-level SMTP client that records exact replies (for checking wording on the wire). */
export class RawSmtp {
  private socket: Socket | TLSSocket;
  private buffer = '';
  private waiting: (() => void) | undefined;
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    this.attach(socket);
  }

  static async connect(port: number): Promise<RawSmtp> {
    const socket = netConnect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    return new RawSmtp(socket);
  }

  private attach(socket: Socket | TLSSocket): void {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buffer += d;
      this.waiting?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiting?.();
    });
    socket.on('error', () => undefined);
  }

  /** One whole reply (all lines of a multi-line reply), without CRLF. */
  async reply(): Promise<string[]> {
    for (;;) {
      const lines = this.buffer.split('\r\n');
      for (let i = 0; i < lines.length - 1; i++) {
        if (/^\d{3} /.test(lines[i]!) || /^\d{3}$/.test(lines[i]!)) {
          const out = lines.slice(0, i + 1);
          this.buffer = lines.slice(i + 1).join('\r\n');
          return out;
        }
      }
      if (this.closed) throw new Error(`connection closed; pending: ${JSON.stringify(this.buffer)}`);
      await new Promise<void>((r) => (this.waiting = r));
      this.waiting = undefined;
    }
  }

  async command(line: string): Promise<string[]> {
    this.socket.write(line + '\r\n');
    return this.reply();
  }

  /** STARTTLS, then the TLS handshake trusting `ca`. */
  async startTls(ca: string): Promise<string[]> {
    const reply = await this.command('STARTTLS');
    const plain = this.socket as Socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = tlsConnect({ socket: plain, ca, servername: 'localhost' });
    await once(secure, 'secureConnect');
    this.socket = secure;
    this.attach(secure);
    return reply;
  }

  close(): void {
    this.socket.destroy();
  }
}
