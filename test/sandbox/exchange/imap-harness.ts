/**
 * The rig the IMAP front tests share: a sandbox CA, a real private Dovecot, a directory with one
 * tenant (an app registered with New-ServicePrincipal under its enterprise application object ID,
 * FullAccess on alice only), the IMAP front, and the admin API. App tokens are minted here with
 * jose from a key pair whose public JWK is the front's JWKS, with the claims Entra puts into an
 * Exchange Online client-credentials token.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { exportJWK, generateKeyPair, SignJWT, type JSONWebKeySet } from 'jose';
import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import { createSandboxCa } from '../../../src/sandbox/ca.ts';
import { SandboxDirectory } from '../../../src/sandbox/directory.ts';
import { startDovecot, type Dovecot } from '../../../src/sandbox/dovecot.ts';
import { startImapFront, type ImapFront, type ImapLimits } from '../../../src/sandbox/exchange/imap.ts';
import { startSandboxAdmin, type SandboxAdmin } from '../../../src/sandbox/admin.ts';

export interface Rig {
  caPem: string;
  dovecot: Dovecot;
  directory: SandboxDirectory;
  front: ImapFront;
  admin: SandboxAdmin;
  tenantId: string;
  app: { appId: string; objectId: string; servicePrincipalId: string };
  /** An Exchange Online app-only token (client credentials) for the rig's app, or with claims overridden. */
  appToken(claims?: Record<string, unknown>, options?: { expiresIn?: number; foreignKey?: boolean }): Promise<string>;
  /** imapflow against the front, as an application would connect to outlook.office365.com:993. */
  imapflow(user: string, accessToken: string, extra?: Partial<ImapFlowOptions>): ImapFlow;
  /** Another front on the same directory and Dovecot (other limits); closed with the rig. */
  startFront(limits: ImapLimits): Promise<ImapFront>;
  /** POST to the admin API; throws unless 2xx. */
  admin$(path: string, body: unknown): Promise<unknown>;
  close(): Promise<void>;
}

export async function startRig(options: { limits?: ImapLimits } = {}): Promise<Rig> {
  const ca = createSandboxCa();
  const serverTls = ca.issueServer();
  const signer = await generateKeyPair('RS256', { extractable: true });
  const foreign = await generateKeyPair('RS256');
  const kid = 'rig-key';
  const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(signer.publicKey)), kid, alg: 'RS256', use: 'sig' }] };

  const tenantId = randomUUID();
  const app = { appId: randomUUID(), objectId: randomUUID(), servicePrincipalId: randomUUID() };
  const directory = new SandboxDirectory({
    tenants: [
      {
        id: tenantId,
        domains: ['contoso.test'],
        apps: [{ ...app, displayName: 'scanner-app', appRoles: { exchange: ['IMAP.AccessAsApp'], graph: [] } }],
        exchange: {
          servicePrincipals: [{ appId: app.appId, objectId: app.servicePrincipalId, displayName: 'scanner-app' }],
          mailboxes: [
            { address: 'alice@contoso.test', fullAccess: [app.servicePrincipalId] },
            { address: 'bob@contoso.test' },
            { address: 'info@contoso.test', type: 'shared' },
          ],
        },
      },
    ],
  });

  const dovecot = await startDovecot({ tls: serverTls });
  let front: ImapFront | undefined;
  let admin: SandboxAdmin | undefined;
  try {
    front = await startImapFront({ directory, jwks, tls: serverTls, dovecot, limits: options.limits });
    admin = await startSandboxAdmin({ directory, dovecot });
  } catch (err) {
    await front?.close();
    await dovecot.stop();
    throw err;
  }
  const adminUrl = admin.url;
  const extraFronts: ImapFront[] = [];
  let closed = false;

  return {
    caPem: ca.certPem,
    dovecot,
    directory,
    front,
    admin,
    tenantId,
    app,
    async appToken(claims = {}, o = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({
        aud: 'https://outlook.office365.com',
        iss: `https://sts.windows.net/${tenantId}/`,
        tid: tenantId,
        appid: app.appId,
        appidacr: '1',
        idtyp: 'app',
        oid: app.servicePrincipalId,
        sub: app.servicePrincipalId,
        roles: ['IMAP.AccessAsApp'],
        ver: '1.0',
        ...claims,
      })
        .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid })
        .setIssuedAt(now - 300)
        .setNotBefore(now - 300)
        .setExpirationTime(now + (o.expiresIn ?? 3600))
        .sign(o.foreignKey ? foreign.privateKey : signer.privateKey);
    },
    imapflow(user, accessToken, extra = {}) {
      return new ImapFlow({
        host: '127.0.0.1',
        port: front.port,
        secure: true,
        tls: { ca: [ca.certPem], servername: 'localhost' },
        auth: { user, accessToken },
        logger: false,
        ...extra,
      });
    },
    async startFront(limits) {
      const f = await startImapFront({ directory, jwks, tls: serverTls, dovecot, limits });
      extraFronts.push(f);
      return f;
    },
    async admin$(path, body) {
      const res = await fetch(adminUrl + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const json = await res.json();
      if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
      return json;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const f of extraFronts) await f.close();
      await front.close();
      await admin.close();
      await dovecot.stop();
    },
  };
}

/** True when no process with this PID runs any more (a zombie, never reaped here, counts as gone). */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}
