/**
 * A private, real Dovecot 2.3 for the sandbox: the mail store behind the Exchange Online fronts
 * (IMAP is piped to it, accepted SMTP mail is delivered into it over LMTP), and a real server for
 * interop tests.
 *
 * Strategy (recipe and pitfalls: ../shared/reference/test-rig.md). Everything lives under one
 * directory (a fresh temp dir unless `dir` is given): config, TLS files, JWT keys, base_dir, state,
 * log and the Maildirs. Nothing includes /etc/dovecot and nothing system-wide is touched. Dovecot
 * listens on 127.0.0.1 only, on free ports found by probing (retried if another process takes a
 * port in between). Logins use the oauth2 passdb with local JWT validation: the runner makes its own
 * RS256 key pair, so `mintToken(address)` gives a token Dovecot accepts for that mailbox (the fronts'
 * backend credential; clients' tokens never reach Dovecot). A caller may trust one more public key
 * (`jwtPublicKeyPem`) to sign tokens itself. Auth failure delay and the anvil penalty are off so
 * negative tests stay fast, IDLE polls every second as a fallback to inotify, mail is stored with
 * CRLF line ends so a message reads back byte for byte.
 *
 * Processes. `dovecot -c conf` is launched detached with stdio to a file (a daemon holding the
 * caller's pipes would hang it); the master PID comes from base_dir/master.pid. Start returns once
 * every service greets (a Dovecot stopped while its services still handshake with stats takes 5 s
 * to go). `stop()` sends SIGTERM to the master and its service processes, waits for all of them
 * (SIGKILL after 10 s) and treats zombies as gone, since PID 1 here may not reap them: about 0.1 s.
 * A watchdog shell kills the master when this Node process disappears without calling stop()
 * (test runner killed), and an exit/signal hook stops every Dovecot this process started.
 *
 * Dovecot submission only relays over SMTP (pitfall 9), so by default the runner also starts an
 * in-process relay on loopback that hands submitted mail to Dovecot's LMTP; mail submitted on
 * `ports.submission` therefore lands in the Maildirs like on a real server.
 *
 * Limits: Debian's Dovecot 2.3 (scripts/dovecot/install.sh); as root mail is owned by `vmail` and
 * every directory above `dir` must be world-executable (the auth process runs as `dovecot`); as
 * another user Dovecot runs entirely as that user, without chroot. Tokens must carry no `azp` claim
 * (the key is looked up under keys/default/RS256/<kid>).
 */
import { spawn, execFileSync } from 'node:child_process';
import { generateKeyPairSync, createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { rm, readFile, mkdtemp } from 'node:fs/promises';
import { createServer, connect, type AddressInfo, type Server } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { SignJWT } from 'jose';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { MbError } from '../errors/index.ts';

export interface DovecotPorts {
  /** IMAP with STARTTLS (also plain on loopback, which Dovecot treats as secured). */
  imap: number;
  /** IMAP on implicit TLS. */
  imaps: number;
  /** LMTP (plain, loopback): delivery into the mailboxes. */
  lmtp: number;
  /** Dovecot submission with STARTTLS; relays to the in-process LMTP bridge (or `submissionRelay`). */
  submission: number;
}

export interface DovecotOptions {
  /** Directory for everything (created if missing, emptied of stale runtime state); default: a new temp dir, removed by stop(). */
  dir?: string;
  /** Server certificate and key (PEM), e.g. from the sandbox CA's issueServer(). */
  tls: { certPem: string; keyPem: string };
  /** One more RS256 public key (PEM, SPKI) Dovecot trusts, under kid `jwtKeyId`, for callers that sign their own tokens. */
  jwtPublicKeyPem?: string;
  /** kid of `jwtPublicKeyPem` (default "sandbox"). */
  jwtKeyId?: string;
  /** The only `iss` Dovecot accepts (default https://dovecot.sandbox.invalid/). */
  issuer?: string;
  /** Fixed ports; the rest are probed. */
  ports?: Partial<DovecotPorts>;
  /** Name in Dovecot's greetings (default mail.sandbox.test). */
  hostname?: string;
  /** Where Dovecot submission relays to; default: an in-process relay that delivers over LMTP. */
  submissionRelay?: { host: string; port: number };
  /**
   * Keep Dovecot running after this process exits (scripts/dovecot/start.sh): no watchdog, no exit
   * hook. Stop it with scripts/dovecot/stop.sh or by the PID in <dir>/run/master.pid. Needs `dir` and
   * `submissionRelay` (the in-process relay would die with this process).
   */
  persistent?: boolean;
  /**
   * A Sieve script (path) Pigeonhole runs before every LMTP delivery (`sieve_before`), e.g.
   * share/sieve/mailbridge-dedupe.sieve; needs dovecot-sieve (scripts/dovecot/install.sh). Off by
   * default: Exchange Online has no Sieve, so the sandbox's own mailboxes never run one.
   */
  sieveBefore?: string;
}

export interface DeliveryResult {
  accepted: string[];
  /** Recipients LMTP refused, with the server's reply. */
  rejected: { recipient: string; response: string }[];
}

export interface Dovecot {
  dir: string;
  host: '127.0.0.1';
  ports: DovecotPorts;
  /** PID of the Dovecot master process. */
  pid: number;
  issuer: string;
  /** A token Dovecot accepts for this mailbox (XOAUTH2/OAUTHBEARER user = address), valid 1 h. */
  mintToken(address: string, options?: { ttlSeconds?: number }): Promise<string>;
  /** Delivers a message over LMTP as is (envelope from/to given separately). */
  deliver(envelope: { from: string; to: string[] }, raw: Buffer | string | Readable): Promise<DeliveryResult>;
  /** The Maildir of a mailbox (exists after the first delivery or login). */
  maildir(address: string): string;
  /** Files of the messages in a mailbox's INBOX (new/ and cur/), oldest first by name. */
  inboxFiles(address: string): string[];
  /** Dovecot's log so far (auth failures name their reason here). */
  log(): Promise<string>;
  stop(): Promise<void>;
}

const BACKEND_KID = 'backend';
const DEFAULT_ISSUER = 'https://dovecot.sandbox.invalid/';
const running = new Set<{ pid: number; watchdog?: number }>();

export async function startDovecot(options: DovecotOptions): Promise<Dovecot> {
  if (options.persistent && (!options.dir || !options.submissionRelay)) throw new Error('persistent Dovecot needs dir and submissionRelay');
  const ownDir = !options.dir;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'mb-dovecot-')));
  const issuer = options.issuer ?? DEFAULT_ISSUER;
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const backendKey = createPrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const layout = prepareDir(dir, options, publicKey.export({ type: 'spki', format: 'pem' }).toString());

  const relay = options.submissionRelay ? undefined : await startLmtpBridge(() => lmtpPort);
  let lmtpPort = 0;
  let pid = 0;
  let ports: DovecotPorts | undefined;
  let lastError: unknown;
  // Probed ports can be taken by another process before Dovecot binds them; try a few times.
  for (let attempt = 0; attempt < 4 && !ports; attempt++) {
    const chosen = await choosePorts(options.ports);
    lmtpPort = chosen.lmtp;
    writeFileSync(layout.conf, renderConfig(layout, chosen, options, issuer, options.submissionRelay ?? { host: '127.0.0.1', port: relay!.port }));
    try {
      pid = await launch(layout);
      ports = chosen;
    } catch (err) {
      lastError = err;
      if (!/Address already in use/i.test(String((err as Error).message))) break;
    }
  }
  if (!ports) {
    await relay?.close();
    if (ownDir) await rm(dir, { recursive: true, force: true });
    throw lastError;
  }
  const entry: { pid: number; watchdog?: number } = { pid, watchdog: options.persistent ? undefined : startWatchdog(pid, layout.logDir, ownDir ? dir : undefined) };
  if (!options.persistent) {
    running.add(entry);
    installExitHook();
  }
  try {
    await Promise.all([
      waitForService(ports.imap, true, 10_000),
      waitForService(ports.imaps, false, 10_000),
      waitForService(ports.lmtp, true, 10_000),
      waitForService(ports.submission, true, 10_000),
    ]);
  } catch (err) {
    await stopMaster(entry);
    await relay?.close();
    throw new Error(`${(err as Error).message}\n${await readFile(layout.log, 'utf8').catch(() => '')}`, { cause: err });
  }

  const finalPorts = ports;
  let stopped = false;
  return {
    dir,
    host: '127.0.0.1',
    ports: finalPorts,
    pid,
    issuer,
    mintToken: (address, o) => mint(backendKey, BACKEND_KID, issuer, address, o?.ttlSeconds ?? 3600),
    deliver: (envelope, raw) => lmtpDeliver(finalPorts.lmtp, envelope, raw),
    maildir: (address) => maildirOf(layout.mail, address),
    inboxFiles: (address) => {
      const md = maildirOf(layout.mail, address);
      return ['new', 'cur']
        .flatMap((sub) => (existsSync(join(md, sub)) ? readdirSync(join(md, sub)).map((f) => join(md, sub, f)) : []))
        .sort((a, b) => basename(a).localeCompare(basename(b)));
    },
    log: () => readFile(layout.log, 'utf8').catch(() => ''),
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopMaster(entry);
      await relay?.close();
      if (ownDir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Signs a token the way Dovecot 2.3's local validation wants it: typ JWT, kid, sub, exp, email = user. */
/**
 * iat lies 5 minutes back, as in Entra's own tokens: Dovecot compares it with its event loop's cached
 * second, which can trail the wall clock, and refused tokens minted in the current second as
 * "issued in future" (tests that log in to many mailboxes at once failed now and then).
 */
const ISSUED_BEFORE_S = 300;

async function mint(key: KeyObject, kid: string, issuer: string, address: string, ttlSeconds: number): Promise<string> {
  const user = address.toLowerCase();
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ email: user })
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid })
    .setSubject(user)
    .setIssuer(issuer)
    .setIssuedAt(now - ISSUED_BEFORE_S)
    .setExpirationTime(now + ttlSeconds)
    .sign(key);
}

interface Layout {
  dir: string;
  conf: string;
  oauthConf: string;
  keys: string;
  baseDir: string;
  state: string;
  logDir: string;
  log: string;
  startLog: string;
  mail: string;
  cert: string;
  key: string;
  /** The sieve_before script (a copy), when options.sieveBefore is set. */
  sieve?: string;
}

function prepareDir(dir: string, options: DovecotOptions, backendPublicPem: string): Layout {
  const l: Layout = {
    dir,
    conf: join(dir, 'dovecot.conf'),
    oauthConf: join(dir, 'dovecot-oauth2.conf.ext'),
    keys: join(dir, 'keys'),
    baseDir: join(dir, 'run'),
    state: join(dir, 'state'),
    logDir: join(dir, 'log'),
    log: join(dir, 'log', 'dovecot.log'),
    startLog: join(dir, 'log', 'dovecot-start.log'),
    mail: join(dir, 'mail'),
    cert: join(dir, 'tls', 'server.crt'),
    key: join(dir, 'tls', 'server.key'),
  };
  mkdirSync(dir, { recursive: true });
  requireTraversable(dir);
  // Dovecot's unprivileged processes (auth as dovecot, mail as vmail) must traverse the tree.
  chmodSync(dir, 0o755);
  // A stale base_dir (sockets of an earlier run) makes the first auth hang for 5 s (pitfall 2).
  execFileSync('rm', ['-rf', l.baseDir, l.keys]);
  for (const d of [l.state, l.logDir, l.mail, join(dir, 'tls'), join(l.keys, 'default', 'RS256')]) mkdirSync(d, { recursive: true, mode: 0o755 });
  for (const d of [join(dir, 'tls'), l.keys, join(l.keys, 'default'), join(l.keys, 'default', 'RS256')]) chmodSync(d, 0o755);
  writeFileSync(l.cert, options.tls.certPem, { mode: 0o644 });
  writeFileSync(l.key, options.tls.keyPem, { mode: 0o600 });
  // Key path: <prefix>/<azp or "default">/<alg>/<kid> (fs:posix drops the "shared/" of the dict key).
  writeFileSync(join(l.keys, 'default', 'RS256', BACKEND_KID), backendPublicPem, { mode: 0o644 });
  if (options.jwtPublicKeyPem) {
    writeFileSync(join(l.keys, 'default', 'RS256', escapeKeyPart(options.jwtKeyId ?? 'sandbox')), options.jwtPublicKeyPem, { mode: 0o644 });
  }
  if (options.sieveBefore) {
    mkdirSync(join(dir, 'sieve'), { recursive: true, mode: 0o755 });
    l.sieve = join(dir, 'sieve', 'before.sieve');
    writeFileSync(l.sieve, readFileSync(options.sieveBefore), { mode: 0o644 });
    // Compiled now: the LMTP process (vmail) may not write the binary next to the script.
    execFileSync('sievec', [l.sieve], { stdio: 'pipe' });
    chmodSync(`${l.sieve.slice(0, -'.sieve'.length)}.svbin`, 0o644);
  }
  const { uid, gid } = mailOwner();
  if (isRoot()) chownSync(l.mail, uid, gid);
  return l;
}

/**
 * Dovecot's auth process (user dovecot) reads the key files and mail processes (vmail) write the
 * Maildirs, so every directory above `dir` must let others through. Say so instead of letting
 * every login fail with "Permission denied" in Dovecot's log.
 */
export function requireTraversable(dir: string): void {
  if (!isRoot()) return;
  for (let d = dirname(resolve(dir)); ; d = dirname(d)) {
    // A parent that does not exist yet is created by mkdir with mode 0755 (umask aside): nothing to check.
    const mode = existsSync(d) ? statSync(d).mode : 0o755;
    if ((mode & 0o001) === 0) throw new MbError('MB_SANDBOX_DIR_NOT_TRAVERSABLE', { dir, folder: d, mode: (mode & 0o777).toString(8).padStart(4, '0') });
    if (d === dirname(d)) return;
  }
}

/** Dovecot escapes '%' and '/' in azp and kid when it builds the key path. */
function escapeKeyPart(s: string): string {
  return s.replace(/%/g, '%25').replace(/\//g, '%2f');
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function mailOwner(): { user: string; uid: number; gid: number } {
  if (!isRoot()) {
    const me = userInfo();
    return { user: me.username, uid: me.uid, gid: me.gid };
  }
  try {
    const uid = Number(execFileSync('id', ['-u', 'vmail']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'vmail']).toString().trim());
    return { user: 'vmail', uid, gid };
  } catch {
    throw new Error('no system user "vmail": run scripts/dovecot/install.sh');
  }
}

function renderConfig(l: Layout, ports: DovecotPorts, options: DovecotOptions, issuer: string, relay: { host: string; port: number }): string {
  const owner = mailOwner();
  // As a normal user Dovecot cannot switch users: every service runs as the caller.
  const users = isRoot()
    ? ''
    : `# Not root: no user switching and no chroot for the login and anvil processes.\ndefault_internal_user = ${owner.user}\ndefault_internal_group = ${execFileSync('id', ['-gn']).toString().trim()}\ndefault_login_user = ${owner.user}\n`;
  const chroot = isRoot() ? '' : '  chroot =\n';
  writeFileSync(
    l.oauthConf,
    [
      '# oauth2 passdb: local JWT validation only (no introspection).',
      'introspection_mode = local',
      `local_validation_key_dict = fs:posix:prefix=${l.keys}/`,
      'username_attribute = email',
      'username_format = %Lu',
      'active_attribute = active',
      'active_value = true',
      `issuers = ${issuer}`,
      'debug = no',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  return `# Generated by src/sandbox/dovecot.ts; a private instance, nothing from /etc/dovecot.
base_dir = ${l.baseDir}
state_dir = ${l.state}
instance_name = mb-sandbox-${randomBytes(4).toString('hex')}
protocols = imap lmtp submission
listen = 127.0.0.1
hostname = ${options.hostname ?? 'mail.sandbox.test'}
${users}
log_path = ${l.log}
auth_verbose = yes
auth_verbose_passwords = no
disable_plaintext_auth = yes
auth_mechanisms = xoauth2 oauthbearer
auth_username_format = %Lu

ssl = yes
ssl_cert = <${l.cert}
ssl_key = <${l.key}
ssl_dh = </usr/share/dovecot/dh.pem
ssl_min_protocol = TLSv1.2

mail_location = maildir:~/Maildir
# Exchange's IMAP answers NAMESPACE (("" "/")): folders are "Inbox/Scans", not "INBOX.Scans".
# Only the separator clients see changes; on disk Maildir++ keeps its own "." (Dovecot maps it).
namespace inbox {
  inbox = yes
  separator = /
}
# Store what was received (CRLF), so a message reads back byte for byte.
mail_save_crlf = yes

passdb {
  driver = oauth2
  args = ${l.oauthConf}
}
userdb {
  driver = static
  # LMTP and submission look users up without a token; the oauth2 passdb cannot answer that.
  args = uid=${owner.uid} gid=${owner.gid} home=${l.mail}/%Ld/%Ln allow_all_users=yes
}

default_client_limit = 2000
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${ports.imap}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = ${ports.imaps}
    ssl = yes
  }
${chroot}  service_count = 0
  process_min_avail = 1
  client_limit = 2000
  vsz_limit = 1G
}
service imap {
  process_limit = 2000
}
protocol imap {
  mail_max_userip_connections = 1000
}
# IDLE falls back to polling when inotify instances run out; poll every second, not 30.
mailbox_idle_check_interval = 1 secs

service submission-login {
${chroot}  inet_listener submission {
    address = 127.0.0.1
    port = ${ports.submission}
  }
}
submission_relay_host = ${relay.host}
submission_relay_port = ${relay.port}
submission_relay_trusted = yes
submission_relay_ssl = no

service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${ports.lmtp}
  }
}
protocol lmtp {
${l.sieve ? '  mail_plugins = $mail_plugins sieve\n' : ''}  # Keep delivered mail as submitted: only Return-Path (always added by LMTP) precedes it.
  lmtp_add_received_header = no
  lmtp_hdr_delivery_address = none
  postmaster_address = postmaster@${options.hostname ?? 'mail.sandbox.test'}
}

${l.sieve ? `plugin {\n  sieve_before = ${l.sieve}\n}\n\n` : ''}# Fast negative tests: no failure delay, no per-IP penalty (mode 0: the listener is not created).
auth_failure_delay = 0
service anvil {
${chroot}  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`;
}

async function choosePorts(fixed: Partial<DovecotPorts> = {}): Promise<DovecotPorts> {
  const held: Server[] = [];
  const pick = async (p: number | undefined): Promise<number> => {
    if (p) return p;
    // Hold each probe until all are chosen so the four ports differ.
    const s = createServer();
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    held.push(s);
    return (s.address() as AddressInfo).port;
  };
  try {
    return { imap: await pick(fixed.imap), imaps: await pick(fixed.imaps), lmtp: await pick(fixed.lmtp), submission: await pick(fixed.submission) };
  } finally {
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  }
}

/** Runs `dovecot -c conf` (it forks the master and exits) and returns the master PID. */
async function launch(l: Layout): Promise<number> {
  execFileSync('rm', ['-rf', l.baseDir]);
  const out = openSync(l.startLog, 'w');
  try {
    const child = spawn('dovecot', ['-c', l.conf], { detached: true, stdio: ['ignore', out, out] });
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) {
      const text = readFileSync(l.startLog, 'utf8') + (await readFile(l.log, 'utf8').catch(() => ''));
      throw new Error(`dovecot did not start (exit ${code}): ${text.trim().split('\n').slice(-5).join(' | ')}`);
    }
  } finally {
    closeSync(out);
  }
  const pidFile = join(l.baseDir, 'master.pid');
  for (let i = 0; i < 200; i++) {
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (pid > 0) return pid;
    }
    await sleep(25);
  }
  throw new Error(`dovecot started but wrote no ${pidFile}`);
}

/**
 * A detached shell that stops the master if this Node process dies without stop() (SIGKILL, a
 * crashed test runner, or the exit hook's SIGTERM), then removes the temp dir this runner made.
 * It exits by itself once the master is gone; stop() kills it first.
 */
function startWatchdog(masterPid: number, logDir: string, removeDir: string | undefined): number | undefined {
  const script = [
    `gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^[^)]*) Z' "/proc/$1/stat" 2>/dev/null; }`,
    `while ! gone ${process.pid} && ! gone ${masterPid}; do sleep 1; done`,
    `kill -TERM ${masterPid} 2>/dev/null`,
    `i=0; while ! gone ${masterPid} && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done`,
    `gone ${masterPid} || kill -KILL ${masterPid} 2>/dev/null`,
    `if [ -n "$MB_DOVECOT_DIR" ]; then rm -rf -- "$MB_DOVECOT_DIR"; fi`,
    'exit 0',
  ].join('\n');
  const out = openSync(join(logDir, 'watchdog.log'), 'a');
  try {
    const child = spawn('sh', ['-c', script], {
      detached: true,
      stdio: ['ignore', out, out],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', MB_DOVECOT_DIR: removeDir ?? '' },
    });
    child.unref();
    return child.pid;
  } finally {
    closeSync(out);
  }
}

/** Whether a process runs (a zombie waiting to be reaped counts as gone). For tests that assert a stop. */
export function isRunning(pid: number): boolean {
  return alive(pid);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill -0; PID 1 in a container may never reap it.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/** PIDs of all descendants of `pid` (from /proc), so none survives the master. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  for (const e of entries) {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(e));
      children.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

async function stopMaster(entry: { pid: number; watchdog?: number }): Promise<void> {
  running.delete(entry);
  // The watchdog leads its own process group (detached): take its `sleep` along.
  if (entry.watchdog) signal(-entry.watchdog, 'SIGKILL');
  const children = descendants(entry.pid);
  signal(entry.pid, 'SIGTERM');
  // Dovecot's master stops its services one by one, and a service still waiting for its
  // stats-writer handshake holds the shutdown up for 5 s; told directly, each exits at once.
  await sleep(50);
  for (const c of children) signal(c, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while ((alive(entry.pid) || children.some(alive)) && Date.now() < deadline) await sleep(20);
  // Nothing of this instance may survive.
  for (const pid of [entry.pid, ...children]) if (alive(pid)) signal(pid, 'SIGKILL');
  const late = Date.now() + 2_000;
  while ((alive(entry.pid) || children.some(alive)) && Date.now() < late) await sleep(20);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

let hookInstalled = false;
/** Stops every Dovecot of this process when it exits or is told to stop, even if a test forgot. */
function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  const killAll = () => {
    // The watchdogs see their masters go and remove the temp dirs.
    for (const e of running) signal(e.pid, 'SIGTERM');
    running.clear();
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => {
      killAll();
      process.removeListener(sig, handler);
      // Nobody else handles it: die of the signal as we would have.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

/**
 * Waits until a service greets (not just accepts): Dovecot's login and LMTP processes answer only
 * once their auth and stats connections are up, and a Dovecot stopped before that point takes 5 s
 * to shut down. Implicit TLS ports are checked by connecting only.
 */
async function waitForService(port: number, greets: boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        if (!greets) {
          s.destroy();
          resolve(true);
        }
      });
      const timer = setTimeout(() => {
        s.destroy();
        resolve(false);
      }, 2_000);
      s.on('data', (d: Buffer) => {
        clearTimeout(timer);
        s.destroy();
        resolve(/^(\* OK|220 )/.test(d.toString()));
      });
      s.on('error', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`dovecot is not serving on 127.0.0.1:${port}`);
    await sleep(25);
  }
}

function maildirOf(mailRoot: string, address: string): string {
  const [local = '', domain = ''] = address.toLowerCase().split('@');
  return join(mailRoot, domain, local, 'Maildir');
}

function basename(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

async function lmtpDeliver(port: number, envelope: { from: string; to: string[] }, raw: Buffer | string | Readable): Promise<DeliveryResult> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, lmtp: true, ignoreTLS: true, name: 'sandbox.local' });
  try {
    const info = await transport.sendMail({ envelope, raw });
    const rejected = (info.rejected ?? []).map(String);
    const errors = (info as { rejectedErrors?: { recipient?: string; response?: string }[] }).rejectedErrors ?? [];
    return {
      accepted: (info.accepted ?? []).map(String),
      rejected: rejected.map((recipient) => ({ recipient, response: errors.find((e) => e.recipient === recipient)?.response ?? '' })),
    };
  } catch (err) {
    const e = err as { rejected?: string[]; response?: string; code?: string };
    // All recipients refused: nodemailer throws; report it as a result, not an exception.
    if (e.code === 'EENVELOPE' && e.rejected) {
      return { accepted: [], rejected: envelope.to.map((recipient) => ({ recipient, response: e.response ?? '' })) };
    }
    throw err;
  } finally {
    transport.close();
  }
}

/**
 * Dovecot submission relays over SMTP only; this loopback SMTP server takes its relayed mail and
 * hands it to Dovecot LMTP unchanged (Postfix's job in the rig).
 */
async function startLmtpBridge(lmtpPort: () => number): Promise<{ port: number; close(): Promise<void> }> {
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    size: 157_286_400,
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        lmtpDeliver(lmtpPort(), { from, to: session.envelope.rcptTo.map((r) => r.address) }, Buffer.concat(chunks)).then(
          (r) => (r.accepted.length ? callback() : callback(new Error(r.rejected[0]?.response || 'delivery failed'))),
          (err: Error) => callback(err),
        );
      });
    },
  });
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  return {
    port: (server.server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
