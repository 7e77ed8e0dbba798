/**
 * The sandbox tenant, all of it: sandbox Entra ID (every national cloud), the Exchange Online SMTP
 * and IMAP fronts, the Graph mail API, and a private real Dovecot behind them, plus the run-time admin API. Admins use it
 * to try mailbridge without a tenant; tests use the parts one by one.
 *
 * State lives in one folder (default .sandbox/): the CA (kept, so clients stay trusting across
 * restarts), sandbox.yaml (tenants, apps, mailboxes, permissions; rewritten after every admin
 * change), the demo app's certificate, Dovecot's mail, and an example mailbridge.yaml whose client
 * secret is stored encrypted with its own key file. Nothing secret is printed: the example config is
 * written to a file and shown with secrets masked.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Agent, fetch } from 'undici';
import { stringify } from 'yaml';
import type { CloudName } from '../config/schema.ts';
import { openSecretBox } from '../config/secrets.ts';
import type { Logger } from '../log/index.ts';
import { silentLogger } from '../log/index.ts';
import { createSandboxCa, type KeyAndCert } from './ca.ts';
import { demoTenant } from './demo.ts';
import { SandboxDirectory } from './directory.ts';
import { startDovecot, type Dovecot } from './dovecot.ts';
import { startEntraSandbox, type EntraSandbox } from './entra/index.ts';
import { startImapFront, type ImapFront } from './exchange/imap.ts';
import { startSmtpFront, type SmtpFront } from './exchange/smtp.ts';
import { startSandboxAdmin, type SandboxAdmin } from './admin.ts';
import { startGraphSandbox, type GraphSandbox } from './graph/index.ts';
import { DovecotFeed } from './feed/dovecot.ts';
import { SyntheticMailboxes } from './feed/synthetic.ts';
import { startEwsSandbox, type SandboxEws } from './ews/index.ts';

export interface SandboxOptions {
  /** State folder (default .sandbox). */
  dir?: string;
  /** A sandbox file to use instead of the demo tenant (copied into the state folder on first start). */
  file?: string;
  host?: string;
  ports?: { smtp?: number; imap?: number; graph?: number; ews?: number; admin?: number; entra?: Partial<Record<CloudName, number>> };
  /**
   * In-memory mailboxes for scale tests (user00001@domain …, default domain synthetic.test), in the
   * first tenant (or `tenant`), served by Graph (and EWS) next to the Dovecot ones; not written to sandbox.yaml.
   */
  synthetic?: { mailboxes: number; domain?: string; tenant?: string };
  log?: Logger;
}

export interface Sandbox {
  dir: string;
  directory: SandboxDirectory;
  entra: EntraSandbox;
  dovecot: Dovecot;
  smtp: SmtpFront;
  imap: ImapFront;
  graph: GraphSandbox;
  /** EWS (on-premises Exchange 2019) and Autodiscover, with test hooks (src/sandbox/ews/). */
  ews: SandboxEws;
  admin: SandboxAdmin;
  /** Change feed of the Dovecot mailboxes (src/sandbox/mailfeed.ts), shared by Graph notifications and EWS. */
  feed: DovecotFeed;
  /** The synthetic mailboxes (a MailFeed too), when started with `synthetic`. */
  synthetic?: SyntheticMailboxes;
  caFile: string;
  /** Path of the example mailbridge.yaml written for this sandbox. */
  configFile: string;
  /** Human-readable endpoint list. */
  endpoints(): Array<[string, string]>;
  /**
   * An app-only token of the first tenant's first app, from sandbox Entra ID over HTTPS with its
   * client secret (for tests, benchmarks and trying a front by hand).
   */
  appToken(scope: string): Promise<string>;
  close(): Promise<void>;
}

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const dir = resolve(options.dir ?? '.sandbox');
  const log = options.log ?? silentLogger;
  mkdirSync(dir, { recursive: true });
  // Dovecot delivers as the vmail user into dir/dovecot: it must be able to pass through this folder
  // (x), not list it; the files with secrets in it are 0600 each.
  chmodSync(dir, 0o711);

  const ca = createSandboxCa(readPair(join(dir, 'ca.key'), join(dir, 'ca.pem')));
  writePair(join(dir, 'ca.key'), join(dir, 'ca.pem'), ca);
  const appCert = readPair(join(dir, 'app-cert.key'), join(dir, 'app-cert.pem')) ?? ca.issueSelfSigned('mailbridge sandbox app');
  writePair(join(dir, 'app-cert.key'), join(dir, 'app-cert.pem'), appCert);

  const sandboxFile = join(dir, 'sandbox.yaml');
  if (!existsSync(sandboxFile)) {
    const initial = options.file ? readFileSync(options.file, 'utf8') : stringify(demoTenant(appCert.certPem));
    writeFileSync(sandboxFile, initial, { mode: 0o600 });
  }
  const directory = await SandboxDirectory.fromFile(sandboxFile);
  const persist = () => writeFileSync(sandboxFile, stringify(directory.data), { mode: 0o600 });

  const host = options.host ?? '127.0.0.1';
  const started: Array<{ close?: () => Promise<void>; stop?: () => Promise<void> }> = [];
  try {
    const entra = await startEntraSandbox({ directory, ca, host, ports: options.ports?.entra });
    started.push(entra);
    const dovecot = await startDovecot({ dir: join(dir, 'dovecot'), tls: ca.issueServer() });
    started.push(dovecot);
    const jwks = () => entra.jwks();
    const tls = ca.issueServer(['localhost', '127.0.0.1', '::1', 'smtp.office365.com', 'outlook.office365.com']);
    const smtp = await startSmtpFront({ directory, jwks, tls, dovecot, host, port: options.ports?.smtp, log });
    started.push(smtp);
    const imap = await startImapFront({ directory, jwks, tls, dovecot, host, port: options.ports?.imap, log });
    started.push(imap);
    const feed = new DovecotFeed(dovecot, { log });
    started.push(feed);
    const synthetic = options.synthetic ? new SyntheticMailboxes(options.synthetic) : undefined;
    if (synthetic) {
      const tenant = options.synthetic?.tenant ? directory.tenant(options.synthetic.tenant) : directory.data.tenants[0];
      if (!tenant) throw new Error('synthetic mailboxes need a tenant in the sandbox');
      directory.addSynthetic(tenant.id, synthetic);
    }
    const graph = await startGraphSandbox({ directory, jwks, tls, dovecot, host, port: options.ports?.graph, log, feed, synthetic, trust: [ca.certPem] });
    started.push(graph);
    const ews = await startEwsSandbox({ directory, jwks, tls, feed, dovecot, synthetic, host, port: options.ports?.ews, pushCa: ca.certPem, log });
    started.push(ews);
    const admin = await startSandboxAdmin({
      directory,
      dovecot,
      host,
      port: options.ports?.admin,
      urlFile: join(dir, 'admin-url'),
      onChange: persist,
      log,
    });
    started.push(admin);

    const caFile = join(dir, 'ca.pem');
    const configFile = join(dir, 'mailbridge.yaml');
    await writeExampleConfig(configFile, directory, entra, caFile, { graphUrl: graph.url, inbound: ca.issueServer(['127.0.0.1', 'localhost']) });

    return {
      dir,
      directory,
      entra,
      dovecot,
      smtp,
      imap,
      graph,
      ews,
      admin,
      feed,
      ...(synthetic ? { synthetic } : {}),
      caFile,
      configFile,
      endpoints: () => [
        ['Entra ID (global)', `${entra.urls.global}/<tenant>/oauth2/v2.0/token`],
        ...(['gcc', 'gcc-high', 'dod', 'china'] as const).map((c): [string, string] => [`Entra ID (${c})`, entra.urls[c]]),
        ['Exchange Online SMTP (STARTTLS)', `${host}:${smtp.port}`],
        ['Exchange Online IMAP (TLS)', `${host}:${imap.port}`],
        ['Microsoft Graph', `${graph.url}/v1.0`],
        ['EWS (Exchange Server 2019)', ews.url],
        ['Autodiscover', ews.autodiscoverUrl],
        ['Dovecot IMAP / LMTP', `127.0.0.1:${dovecot.ports.imap} / 127.0.0.1:${dovecot.ports.lmtp}`],
        ['Sandbox admin API', admin.url],
        ['CA certificate', caFile],
      ],
      async appToken(scope) {
        const tenant = directory.data.tenants.find((t) => t.apps[0]?.secrets[0]);
        const app = tenant?.apps[0];
        if (!tenant || !app) throw new Error('the sandbox has no app with a client secret');
        const res = await fetch(`${entra.urls[tenant.cloud]}/${tenant.id}/oauth2/v2.0/token`, {
          method: 'POST',
          body: new URLSearchParams({ grant_type: 'client_credentials', client_id: app.appId, client_secret: app.secrets[0]!.value, scope }),
          dispatcher: new Agent({ connect: { ca: ca.certPem } }),
        });
        const body = (await res.json()) as { access_token?: string; error_description?: string };
        if (!body.access_token) throw new Error(`sandbox token: ${res.status} ${body.error_description ?? ''}`);
        return body.access_token;
      },
      async close() {
        await closeAll(started);
      },
    };
  } catch (err) {
    await closeAll(started);
    throw err;
  }
}

/** An example mailbridge.yaml for the first tenant's first app, secret sealed with a key file next to it. */
async function writeExampleConfig(path: string, directory: SandboxDirectory, entra: EntraSandbox, caFile: string, watch: { graphUrl: string; inbound: KeyAndCert }): Promise<void> {
  const tenant = directory.data.tenants.find((t) => t.apps.length > 0);
  const app = tenant?.apps[0];
  const box = await openSecretBox({ keyFile: join(path, '..', 'mailbridge.key'), env: {} });
  const connections: Record<string, unknown> = {};
  if (tenant && app) {
    const base = {
      cloud: tenant.cloud,
      tenantId: tenant.id,
      clientId: app.appId,
      tokenEndpoint: `${entra.urls[tenant.cloud]}/#TenantID#/oauth2/v2.0/token`,
      caFile,
    };
    const secret = app.secrets[0];
    if (secret) {
      connections.sandbox = { ...base, clientSecret: box.seal(secret.value), clientSecretExpires: secret.endDateTime.slice(0, 10) };
    }
    connections['sandbox-cert'] = { ...base, certificate: { path: join(path, '..', 'app-cert.pem'), privateKeyPath: join(path, '..', 'app-cert.key') } };
  }
  // New-mail notifications for the first mailbox over Graph change notifications: `mailbridge serve`
  // with this file and `mailbridge watch` show events as mail arrives. The listener's certificate is
  // issued by the sandbox CA, which the sandbox's Graph trusts, as Microsoft trusts public CAs.
  const certFile = join(path, '..', 'notify-inbound.pem');
  const keyFile = join(path, '..', 'notify-inbound.key');
  writePair(keyFile, certFile, watch.inbound);
  const first = tenant?.exchange.mailboxes[0]?.address;
  const notify =
    connections.sandbox && first
      ? {
          webhook: {},
          watch: {
            publicUrl: 'https://127.0.0.1:8443',
            listen: { host: '127.0.0.1', port: 8443, certFile, keyFile },
            groups: { sandbox: { kind: 'graph', listeners: [{ connection: 'sandbox' }], mailboxes: [first], graph: { baseUrl: `${watch.graphUrl}/v1.0` } } },
          },
        }
      : undefined;
  const doc = {
    secrets: { keyFile: 'mailbridge.key' },
    store: { driver: 'sqlite', path: join(path, '..', 'mailbridge.db') },
    connections,
    ...(notify ? { notify } : {}),
  };
  writeFileSync(path, `# Written by \`mailbridge sandbox\`: a configuration that works against this sandbox.\n${stringify(doc)}`, { mode: 0o600 });
}

function readPair(keyPath: string, certPath: string): KeyAndCert | undefined {
  if (!existsSync(keyPath) || !existsSync(certPath)) return undefined;
  return { keyPem: readFileSync(keyPath, 'utf8'), certPem: readFileSync(certPath, 'utf8') };
}

function writePair(keyPath: string, certPath: string, pair: KeyAndCert): void {
  writeFileSync(keyPath, pair.keyPem, { mode: 0o600 });
  chmodSync(keyPath, 0o600);
  writeFileSync(certPath, pair.certPem);
}

async function closeAll(items: Array<{ close?: () => Promise<void>; stop?: () => Promise<void> }>): Promise<void> {
  for (const item of items.reverse()) {
    try {
      await (item.close ?? item.stop)?.call(item);
    } catch {
      // Keep closing the rest; a half-stopped sandbox must not leave Dovecot running.
    }
  }
}
