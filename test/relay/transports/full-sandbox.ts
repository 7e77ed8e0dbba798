/**
 * The whole sandbox as an admin starts it (startSandbox: Entra ID, Exchange Online SMTP and IMAP
 * fronts, Dovecot, admin API) plus the sandbox Graph on the same directory, CA and Dovecot, for the
 * interop tests of the relay (serve, `mailbridge send`). Mail is read back through the sandbox's
 * IMAP front with an app token, as a customer's mail client would see it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { Agent, fetch } from 'undici';
import { parse, stringify } from 'yaml';
import { hashPassword } from '../../../src/util/password.ts';
import { createSandboxCa } from '../../../src/sandbox/ca.ts';
import { startGraphSandbox, type GraphSandbox } from '../../../src/sandbox/graph/index.ts';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.ts';
import { ensureDovecot } from './rig.ts';
import { tempDir } from '../../support/temp.ts';

export interface FullSandbox {
  sandbox: Sandbox;
  graph: GraphSandbox;
  dir: string;
  /** Writes a mailbridge.yaml next to the sandbox's example (same key file and store) with `extra` merged in; returns its path. */
  writeConfig(name: string, extra: Record<string, unknown>): string;
  /**
   * The relay section the gateway tests share: one loopback listener and the user `scanner`
   * (with `password`) who may send as anyone at contoso.test, spooling into `dataDir` under the
   * sandbox folder; `more` adds or replaces fields.
   */
  relay(dataDir: string, password: string, routes: unknown[], more?: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** Raw messages of a folder, read through the IMAP front with an app token. */
  inbox(address: string, folder?: string): Promise<Buffer[]>;
  close(): Promise<void>;
}

export async function startFullSandbox(): Promise<FullSandbox> {
  ensureDovecot();
  const tmp = tempDir('mb-relay-interop-');
  const sandbox = await startSandbox({ dir: tmp.path });
  let graph: GraphSandbox | undefined;
  try {
    const ca = createSandboxCa({ keyPem: readFileSync(join(sandbox.dir, 'ca.key'), 'utf8'), certPem: readFileSync(sandbox.caFile, 'utf8') });
    graph = await startGraphSandbox({ directory: sandbox.directory, jwks: () => sandbox.entra.jwks(), tls: ca.issueServer(), dovecot: sandbox.dovecot });
  } catch (err) {
    await sandbox.close();
    tmp.remove();
    throw err;
  }
  const caPem = readFileSync(sandbox.caFile, 'utf8');
  const tenant = sandbox.directory.data.tenants[0]!;
  const app = tenant.apps[0]!;
  const appToken = async (): Promise<string> => {
    const res = await fetch(`${sandbox.entra.urls.global}/${tenant.id}/oauth2/v2.0/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: app.appId, client_secret: app.secrets[0]!.value, scope: 'https://outlook.office365.com/.default' }),
      dispatcher: new Agent({ connect: { ca: caPem } }),
    });
    return ((await res.json()) as { access_token: string }).access_token;
  };
  const g = graph;
  return {
    sandbox,
    graph: g,
    dir: sandbox.dir,
    writeConfig(name, extra) {
      const doc = parse(readFileSync(sandbox.configFile, 'utf8')) as Record<string, unknown>;
      const path = join(sandbox.dir, name);
      writeFileSync(path, stringify({ ...doc, ...extra }), { mode: 0o600 });
      return path;
    },
    async relay(dataDir, password, routes, more = {}) {
      return {
        hostname: 'relay.sandbox.test',
        dataDir: join(sandbox.dir, dataDir),
        listeners: [{ host: '127.0.0.1', port: 0 }],
        users: { scanner: { passwordHash: await hashPassword(password, 10), allowedSenders: ['@contoso.test'] } },
        routes,
        ...more,
      };
    },
    async inbox(address, folder = 'INBOX') {
      const imap = new ImapFlow({
        host: '127.0.0.1',
        port: sandbox.imap.port,
        secure: true,
        tls: { ca: caPem },
        auth: { user: address, accessToken: await appToken() },
        logger: false,
        disableAutoIdle: true,
      });
      imap.on('error', () => undefined);
      await imap.connect();
      try {
        const lock = await imap.getMailboxLock(folder, { readOnly: true });
        try {
          const out: Buffer[] = [];
          if (!imap.mailbox || !imap.mailbox.exists) return out;
          for await (const m of imap.fetch('1:*', { source: true })) if (m.source) out.push(m.source);
          return out;
        } finally {
          lock.release();
        }
      } finally {
        await imap.logout().catch(() => undefined);
      }
    },
    async close() {
      await g.close().catch(() => undefined);
      await sandbox.close();
      tmp.remove();
    },
  };
}
