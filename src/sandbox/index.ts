/**
 * The sandbox tenant, all of it: sandbox Entra ID (every national cloud), the Exchange Online SMTP
 * and IMAP fronts, the Graph mail API, and a private real Dovecot behind them, plus the run-time admin API. Admins use it
 * to try mailbridge without a tenant; tests use the parts one by one.
 *
 * State lives in one folder (default .sandbox/), so a restart picks up where the last run stopped:
 * the CA (clients stay trusting), sandbox.yaml (tenants, apps, certificates, mailboxes, permissions;
 * rewritten after every admin change), ports.yaml (every port, reused; src/sandbox/ports.ts), Entra
 * ID's token signing key and its refresh-token grants (delegated sign-ins survive), the demo app's
 * certificate, Dovecot's mail, and an example mailbridge.yaml (relay, connector, watch group,
 * subscriptions API key) whose secrets are sealed with its own key file. That file is the admin's
 * once written: a restart changes only the values the sandbox owns that really changed (a port
 * pinned anew), through the YAML document so comments and edits stay; `secret set` additions stay.
 * Nothing secret is printed: the example config is shown as written (sealed values only); the API
 * key is in a 0600 file for scripts.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Agent, fetch } from 'undici';
import { parseDocument, stringify } from 'yaml';
import type { CloudName } from './entra/clouds.ts';
import { openSecretBox } from '../config/secrets.ts';
import type { Logger } from '../log/index.ts';
import { silentLogger } from '../log/index.ts';
import { createSandboxCa, type KeyAndCert } from './ca.ts';
import { demoTenant } from './demo.ts';
import { SandboxDirectory } from './directory.ts';
import { requireTraversable, startDovecot, type Dovecot } from './dovecot.ts';
import { startEntraSandbox, type EntraSandbox } from './entra/index.ts';
import { startImapFront, type ImapFront } from './exchange/imap.ts';
import { startSmtpFront, type SmtpFront } from './exchange/smtp.ts';
import { startSandboxAdmin, type SandboxAdmin } from './admin.ts';
import { startGraphSandbox, type GraphSandbox } from './graph/index.ts';
import { DovecotFeed } from './feed/dovecot.ts';
import { SyntheticMailboxes } from './feed/synthetic.ts';
import { startEwsSandbox, type SandboxEws } from './ews/index.ts';
import { newSigningPair } from './entra/keys.ts';
import { CONFIG_ONLY, freePorts, readPortsFile, requireFree, writePortsFile, type PortMap, type PortName } from './ports.ts';
import { startSandboxProxy, type SandboxProxy, type SandboxProxyOptions } from './proxy.ts';

export interface SandboxOptions {
  /** State folder (default .sandbox). */
  dir?: string;
  /** A sandbox file to use instead of the demo tenant (copied into the state folder on first start). */
  file?: string;
  host?: string;
  /**
   * Ports to use (0: any free one); the rest come from <dir>/ports.yaml, i.e. what the last start
   * used, else any free port. The ports used are written back to ports.yaml.
   */
  ports?: Omit<PortMap, 'entra'> & { entra?: number | Partial<Record<CloudName, number>> };
  /**
   * A file naming this sandbox (admin URL and folder) for `mailbridge sandbox-admin` run from
   * anywhere; the CLI passes the well-known one (sandboxPointerFile), tests none. Removed on close.
   */
  pointerFile?: string;
  /**
   * In-memory mailboxes for scale tests (user00001@domain …, default domain synthetic.test), in the
   * first tenant (or `tenant`), served by Graph (and EWS) next to the Dovecot ones; not written to sandbox.yaml.
   */
  synthetic?: { mailboxes: number; domain?: string; tenant?: string };
  /** Delay before an app role granted through Graph reaches tokens (default 2 s; Entra's can be 30 minutes). */
  propagationMs?: number;
  /** Clock of sandbox Entra ID and Graph (tests move it forward instead of waiting). */
  now?: () => number;
  /** Also start an HTTP CONNECT proxy that counts tunnels per destination (src/sandbox/proxy.ts). */
  proxy?: boolean | SandboxProxyOptions;
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
  /** The outbound proxy, when started with `proxy`. */
  proxy?: SandboxProxy;
  caFile: string;
  /** Path of the example mailbridge.yaml written for this sandbox. */
  configFile: string;
  /** False when configFile was kept from an earlier start (the admin's, edits and all). */
  configWritten: boolean;
  /** The ports in use, by name (as in ports.yaml). */
  ports: Record<PortName, number>;
  /** File with the clear API key of the example config's subscriptions API (0600), for scripts. */
  apiKeyFile: string;
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
  // Before anything is created or started: Dovecot's users must be able to reach the folder.
  requireTraversable(dir);
  mkdirSync(dir, { recursive: true });
  // Dovecot delivers as the vmail user into dir/dovecot: it must be able to pass through this folder
  // (x), not list it; the files with secrets in it are 0600 each.
  chmodSync(dir, 0o711);

  const host = options.host ?? '127.0.0.1';
  const portsFile = join(dir, 'ports.yaml');
  const remembered = readPortsFile(portsFile);
  const wanted: PortMap = { ...remembered, ...flattenPorts(options.ports) };
  await requireFree(wanted, host, portsFile);

  const ca = createSandboxCa(readPair(join(dir, 'ca.key'), join(dir, 'ca.pem')));
  writePair(join(dir, 'ca.key'), join(dir, 'ca.pem'), ca);
  const appCert = readPair(join(dir, 'app-cert.key'), join(dir, 'app-cert.pem')) ?? ca.issueSelfSigned('mailbridge sandbox app');
  writePair(join(dir, 'app-cert.key'), join(dir, 'app-cert.pem'), appCert);
  // Entra's token signing key is kept too: tokens a client cached before a restart still verify.
  const signingKey = readPair(join(dir, 'entra-signing.key'), join(dir, 'entra-signing.pem')) ?? newSigningPair();
  writePair(join(dir, 'entra-signing.key'), join(dir, 'entra-signing.pem'), signingKey);

  const sandboxFile = join(dir, 'sandbox.yaml');
  if (!existsSync(sandboxFile)) {
    const initial = options.file ? readFileSync(options.file, 'utf8') : stringify(demoTenant(appCert.certPem));
    writeFileSync(sandboxFile, initial, { mode: 0o600 });
  }
  const directory = await SandboxDirectory.fromFile(sandboxFile);
  const persist = () => writeFileSync(sandboxFile, stringify(directory.data), { mode: 0o600 });

  const started: Array<{ close?: () => Promise<void>; stop?: () => Promise<void> }> = [];
  try {
    const entra = await startEntraSandbox({
      directory,
      ca,
      host,
      ports: { global: wanted.entra, gcc: wanted['entra-gcc'], 'gcc-high': wanted['entra-gcc-high'], dod: wanted['entra-dod'], china: wanted['entra-china'] },
      signingKey,
      grantsFile: join(dir, 'entra-grants.json'),
      ...(options.now ? { now: options.now } : {}),
    });
    started.push(entra);
    const dovecot = await startDovecot({
      dir: join(dir, 'dovecot'),
      tls: ca.issueServer(),
      ports: { imap: wanted['dovecot-imap'], imaps: wanted['dovecot-imaps'], lmtp: wanted['dovecot-lmtp'], submission: wanted['dovecot-submission'] },
    });
    started.push(dovecot);
    const jwks = () => entra.jwks();
    const tls = ca.issueServer(['localhost', '127.0.0.1', '::1', 'smtp.office365.com', 'outlook.office365.com']);
    const smtp = await startSmtpFront({ directory, jwks, tls, dovecot, host, port: wanted.smtp, log });
    started.push(smtp);
    const imap = await startImapFront({ directory, jwks, tls, dovecot, host, port: wanted.imap, log });
    started.push(imap);
    const feed = new DovecotFeed(dovecot, { log });
    started.push(feed);
    const synthetic = options.synthetic ? new SyntheticMailboxes(options.synthetic) : undefined;
    if (synthetic) {
      const tenant = options.synthetic?.tenant ? directory.tenant(options.synthetic.tenant) : directory.data.tenants[0];
      if (!tenant) throw new Error('synthetic mailboxes need a tenant in the sandbox');
      directory.addSynthetic(tenant.id, synthetic);
    }
    const graph = await startGraphSandbox({
      directory,
      jwks,
      tls,
      dovecot,
      host,
      port: wanted.graph,
      log,
      feed,
      synthetic,
      trust: [ca.certPem],
      ...(options.now ? { now: options.now } : {}),
      ...(options.propagationMs !== undefined ? { propagationMs: options.propagationMs } : {}),
      // Apps, service principals and grants made through Graph survive a restart, like admin API changes.
      onDirectoryChange: persist,
    });
    started.push(graph);
    const ews = await startEwsSandbox({ directory, jwks, tls, feed, dovecot, synthetic, host, port: wanted.ews, pushCa: ca.certPem, log });
    started.push(ews);
    const admin = await startSandboxAdmin({
      directory,
      dovecot,
      host,
      port: wanted.admin,
      urlFile: join(dir, 'admin-url'),
      onChange: persist,
      graph,
      entra,
      log,
    });
    started.push(admin);
    const proxy = options.proxy ? await startSandboxProxy(options.proxy === true ? { host } : { host, ...options.proxy }) : undefined;
    if (proxy) started.push(proxy);

    const portOf = (url: string) => Number(new URL(url).port);
    const ports: Record<PortName, number> = {
      entra: portOf(entra.urls.global),
      'entra-gcc': portOf(entra.urls.gcc),
      'entra-gcc-high': portOf(entra.urls['gcc-high']),
      'entra-dod': portOf(entra.urls.dod),
      'entra-china': portOf(entra.urls.china),
      smtp: smtp.port,
      imap: imap.port,
      graph: portOf(graph.url),
      ews: portOf(ews.url),
      admin: portOf(admin.url),
      'dovecot-imap': dovecot.ports.imap,
      'dovecot-imaps': dovecot.ports.imaps,
      'dovecot-lmtp': dovecot.ports.lmtp,
      'dovecot-submission': dovecot.ports.submission,
      // Only the example mailbridge.yaml binds these (when `serve` runs): chosen once, then kept.
      relay: wanted.relay ?? 0,
      serve: wanted.serve ?? 0,
      notify: wanted.notify ?? 0,
    };
    const unset = CONFIG_ONLY.filter((name) => !ports[name]);
    const fresh = await freePorts(host, unset.length, Object.values(ports));
    unset.forEach((name, i) => (ports[name] = fresh[i]!));
    writePortsFile(portsFile, ports);

    const caFile = join(dir, 'ca.pem');
    const configFile = join(dir, 'mailbridge.yaml');
    const apiKeyFile = join(dir, 'notify-api.key');
    const inbound = { certFile: join(dir, 'notify-inbound.pem'), keyFile: join(dir, 'notify-inbound.key') };
    if (!existsSync(inbound.certFile) || !existsSync(inbound.keyFile)) writePair(inbound.keyFile, inbound.certFile, ca.issueServer(['127.0.0.1', 'localhost']));
    const configWritten = await writeExampleConfig(configFile, { dir, host, directory, caFile, apiKeyFile, inbound }, ports, { ...ports, ...remembered });
    // Last, once everything runs: sandbox-admin from any folder finds this sandbox.
    if (options.pointerFile) writePointer(options.pointerFile, { url: admin.url, dir, pid: process.pid });

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
      ...(proxy ? { proxy } : {}),
      caFile,
      configFile,
      configWritten,
      ports,
      apiKeyFile,
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
        ...(proxy ? [['Outbound proxy (CONNECT)', proxy.url] as [string, string]] : []),
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
        if (options.pointerFile) removePointer(options.pointerFile, admin.url);
        await closeAll(started);
      },
    };
  } catch (err) {
    await closeAll(started);
    throw err;
  }
}

/** The ports of SandboxOptions as one map by name (explicit ones only). */
function flattenPorts(p: SandboxOptions['ports']): PortMap {
  if (!p) return {};
  const { entra, ...rest } = p;
  const out: PortMap = {};
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) out[k as PortName] = v;
  const cloudName: Record<CloudName, PortName> = { global: 'entra', gcc: 'entra-gcc', 'gcc-high': 'entra-gcc-high', dod: 'entra-dod', china: 'entra-china' };
  // A number is the global cloud's port (--port entra=N); a map names clouds.
  if (typeof entra === 'number') out.entra = entra;
  else for (const [cloud, v] of Object.entries(entra ?? {})) if (v !== undefined) out[cloudName[cloud as CloudName]] = v;
  return out;
}

interface ExampleInputs {
  dir: string;
  host: string;
  directory: SandboxDirectory;
  caFile: string;
  apiKeyFile: string;
  inbound: { certFile: string; keyFile: string };
}

/**
 * The example mailbridge.yaml: written once; on later starts only sandbox-owned values whose
 * source changed (a port pinned anew) are updated, and only where the file still has the value the
 * sandbox wrote, so the admin's edits and `secret set` additions stay.
 */
async function writeExampleConfig(path: string, inputs: ExampleInputs, ports: Record<PortName, number>, previous: PortMap): Promise<boolean> {
  const box = await openSecretBox({ keyFile: join(dirname(path), 'mailbridge.key'), env: {} });
  if (!existsSync(inputs.apiKeyFile)) {
    // 32 random bytes as base64url: well over the 16 characters the subscriptions API asks of a key.
    writeFileSync(inputs.apiKeyFile, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
  }
  const apiKey = readFileSync(inputs.apiKeyFile, 'utf8').trim();
  if (!existsSync(path)) {
    const doc = exampleDoc(inputs, ports, (v) => box.seal(v), apiKey);
    writeFileSync(path, `# Written by \`mailbridge sandbox\`: a configuration that works against this sandbox.\n${stringify(doc)}`, { mode: 0o600 });
    return true;
  }
  // Compare what the sandbox wrote (old ports) with what it would write now; sealed values are left alone.
  const mark = () => '<sealed>';
  const before = exampleDoc(inputs, { ...ports, ...previous }, mark, apiKey);
  const after = exampleDoc(inputs, ports, mark, apiKey);
  const changes = leafChanges(before, after);
  if (changes.length === 0) return false;
  const text = readFileSync(path, 'utf8');
  const doc = parseDocument(text);
  if (doc.errors.length) return false; // the admin's file does not parse: leave it to `config check` to say so
  let changed = false;
  for (const { path: at, from, to } of changes) {
    if (!isDeepStrictEqual(doc.getIn(at), from)) continue;
    doc.setIn(at, to);
    changed = true;
  }
  if (!changed) return false;
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, doc.toString({ lineWidth: 0 }), { mode: 0o600 });
  renameSync(tmp, path);
  return false;
}

/** Every leaf (path into maps and arrays) whose value differs between two documents of the same shape. */
function leafChanges(a: unknown, b: unknown, at: Array<string | number> = []): Array<{ path: Array<string | number>; from: unknown; to: unknown }> {
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const keys = Array.isArray(a) ? [...a.keys()] : Object.keys(a);
    return keys.flatMap((k) => leafChanges((a as Record<string | number, unknown>)[k], (b as Record<string | number, unknown>)[k], [...at, k]));
  }
  return isDeepStrictEqual(a, b) ? [] : [{ path: at, from: a, to: b }];
}

/**
 * What the example mailbridge.yaml holds: connections (client secret and certificate) of the first
 * tenant's first app; a relay whose listener takes mail from this machine for the tenant's domains and
 * sends it through the sandbox's SMTP front; a connector that fetches the scanner mailbox into a
 * local maildir; the subscriptions API with one key; a Graph watch group for the first mailbox.
 */
function exampleDoc(inputs: ExampleInputs, ports: Record<PortName, number>, seal: (v: string) => string, apiKey: string): Record<string, unknown> {
  const { dir, host, directory, caFile } = inputs;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const entraPort: Record<CloudName, number> = {
    global: ports.entra,
    gcc: ports['entra-gcc'],
    'gcc-high': ports['entra-gcc-high'],
    dod: ports['entra-dod'],
    china: ports['entra-china'],
  };
  const tenant = directory.data.tenants.find((t) => t.apps.length > 0);
  const app = tenant?.apps[0];
  const connections: Record<string, unknown> = {};
  if (tenant && app) {
    const base = {
      cloud: tenant.cloud,
      tenantId: tenant.id,
      clientId: app.appId,
      tokenEndpoint: `https://${urlHost}:${entraPort[tenant.cloud]}/#TenantID#/oauth2/v2.0/token`,
      caFile,
      // Exchange Online's admin API, which the sandbox serves on its Graph port (`mailbridge check` reads through it).
      exchangeAdminUrl: `https://${urlHost}:${ports.graph}/adminapi/beta`,
    };
    const secret = app.secrets[0];
    if (secret) connections.sandbox = { ...base, clientSecret: seal(secret.value), clientSecretExpires: secret.endDateTime.slice(0, 10) };
    connections['sandbox-cert'] = { ...base, certificate: { path: join(dir, 'app-cert.pem'), privateKeyPath: join(dir, 'app-cert.key') } };
  }
  const mailboxes = tenant?.exchange.mailboxes.map((m) => m.address) ?? [];
  const first = mailboxes[0];
  const scans = mailboxes.find((m) => m.startsWith('scanner@')) ?? mailboxes[1] ?? first;
  const domains = tenant?.domains ?? [];
  const doc: Record<string, unknown> = {
    secrets: { keyFile: 'mailbridge.key' },
    store: { driver: 'sqlite', path: join(dir, 'mailbridge.db') },
    server: { listen: '127.0.0.1', port: ports.serve },
    connections,
  };
  if (!connections.sandbox || !first) return doc;
  // Applications on this machine hand mail to the relay without logging in, for the tenant's
  // domains; the relay sends it as the sender's mailbox through the sandbox's Exchange SMTP front.
  doc.relay = {
    dataDir: join(dir, 'relay'),
    listeners: [{ host: '127.0.0.1', port: ports.relay, tls: 'starttls' }],
    networks: { 'this-machine': { cidrs: ['127.0.0.1/32', '::1/128'], allowedSenders: domains.map((d) => `@${d}`) } },
    routes: [{ name: 'sandbox', connection: 'sandbox', transport: 'smtp', smtp: { host: '127.0.0.1', port: ports.smtp } }],
  };
  // `mailbridge fetch` copies the scanner mailbox into a maildir over the sandbox's Exchange IMAP front.
  if (scans) {
    doc.connectors = {
      'sandbox-scans': {
        connection: 'sandbox',
        source: { kind: 'imap', host: '127.0.0.1', port: ports.imap, tls: 'implicit', caFile },
        mailboxes: [scans],
        destination: { kind: 'maildir', path: join(dir, 'maildir', 'scans') },
        after: { action: 'seen' },
      },
    };
  }
  // New-mail notifications for the first mailbox over Graph change notifications: `mailbridge serve`
  // with this file and `mailbridge watch` show events as mail arrives. The listener's certificate is
  // issued by the sandbox CA, which the sandbox's Graph trusts, as Microsoft trusts public CAs. Apps
  // subscribe over the subscriptions API with the key in notify-api.key.
  doc.notify = {
    api: { keys: { sandbox: seal(apiKey) } },
    webhook: {},
    watch: {
      publicUrl: `https://127.0.0.1:${ports.notify}`,
      listen: { host: '127.0.0.1', port: ports.notify, certFile: inputs.inbound.certFile, keyFile: inputs.inbound.keyFile },
      groups: { sandbox: { kind: 'graph', listeners: [{ connection: 'sandbox' }], mailboxes: [first], graph: { baseUrl: `https://${urlHost}:${ports.graph}/v1.0` } } },
    },
  };
  return doc;
}

/** Where `mailbridge sandbox` says which sandbox runs, for `mailbridge sandbox-admin` run from any folder. */
export function sandboxPointerFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME || join(env.HOME || '/root', '.local', 'state');
  return join(base, 'mailbridge', 'sandbox.json');
}

export interface SandboxPointer {
  url: string;
  dir: string;
  pid: number;
}

function writePointer(file: string, pointer: SandboxPointer): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, JSON.stringify(pointer) + '\n', { mode: 0o600 });
}

/** Only if it still names this sandbox (another one may have started since). */
function removePointer(file: string, url: string): void {
  try {
    if ((JSON.parse(readFileSync(file, 'utf8')) as SandboxPointer).url === url) rmSync(file, { force: true });
  } catch {
    // gone or not ours: nothing to remove
  }
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
