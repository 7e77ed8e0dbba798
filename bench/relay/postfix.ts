/**
 * A private Postfix instance for the relay benchmark: Debian's package (bench/relay/setup.sh), run
 * with its own config directory, queue directory and data directory under the bench's temp dir,
 * never touching the system's Postfix. It is configured as a plain relay: accepts mail from
 * 127.0.0.0/8 on one port (smtpd, no TLS, like mailbridge's listener in the bench) and relays
 * everything to `relayhost` with STARTTLS required, through its durable queue (Postfix fsyncs a
 * queue file before it answers 250, as mailbridge does), reusing its TLS connections to the
 * relayhost (smtp_tls_connection_reuse, via tlsproxy). No chroot, so nothing needs copying.
 *
 * Started with `postfix -c <dir> start`; stopped by sending SIGTERM to its master's PID (from
 * <queue>/pid/master.pid), then waiting until that PID is gone.
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const POSTFIX = '/usr/sbin/postfix';

export interface PostfixOptions {
  dir: string;
  port: number;
  relay: { host: string; port: number };
  caFile: string;
  /** Parallel deliveries to the relayhost (smtp_destination_concurrency_limit). */
  concurrency: number;
}

export interface Postfix {
  port: number;
  masterPid: number;
  /** PIDs of the master and all its children (for memory sampling). */
  pids(): number[];
  log(): string;
  stop(): Promise<void>;
}

const MASTER_CF = `# bench/relay/postfix.ts: a plain relay, no chroot
{LISTEN} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
tlsproxy  unix  -       -       n       -       0       tlsproxy
`;

export async function startPostfix(o: PostfixOptions): Promise<Postfix> {
  const etc = join(o.dir, 'etc');
  const spool = join(o.dir, 'spool');
  const data = join(o.dir, 'data');
  for (const d of [etc, spool, data]) mkdirSync(d, { recursive: true });
  // Postfix's daemons run as the postfix user: they must be able to pass through to the queue.
  for (let d = o.dir; d !== dirname(d) && d.startsWith('/tmp/'); d = dirname(d)) chmodSync(d, 0o711);
  const uid = Number((await run('id', ['-u', 'postfix'])).stdout.trim());
  const gid = Number((await run('id', ['-g', 'postfix'])).stdout.trim());
  chownSync(data, uid, gid);
  const logFile = join(o.dir, 'postfix.log');
  writeFileSync(
    join(etc, 'main.cf'),
    [
      'compatibility_level = 3.6',
      `queue_directory = ${spool}`,
      `data_directory = ${data}`,
      'mail_owner = postfix',
      'setgid_group = postdrop',
      'myhostname = postfix.bench.test',
      'mydomain = bench.test',
      'myorigin = bench.test',
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'mydestination =',
      'relay_domains =',
      'local_recipient_maps =',
      'alias_maps =',
      'alias_database =',
      'mynetworks = 127.0.0.0/8',
      'smtpd_relay_restrictions = permit_mynetworks, reject',
      `relayhost = [${o.relay.host}]:${o.relay.port}`,
      'smtp_tls_security_level = encrypt',
      // Without this Postfix (3.4+) opens a new TLS connection per message; mailbridge reuses its
      // connections, so the peer gets connection reuse too (through tlsproxy).
      'smtp_tls_connection_reuse = yes',
      `smtp_tls_CAfile = ${o.caFile}`,
      `smtp_destination_concurrency_limit = ${o.concurrency}`,
      `default_destination_concurrency_limit = ${o.concurrency}`,
      `maillog_file = ${logFile}`,
      'maillog_file_prefixes = /tmp, /var',
      'biff = no',
      '',
    ].join('\n'),
  );
  writeFileSync(join(etc, 'master.cf'), MASTER_CF.replace('{LISTEN}', `127.0.0.1:${o.port}`));
  await run(POSTFIX, ['-c', etc, 'start']);
  const pidFile = join(spool, 'pid', 'master.pid');
  const deadline = Date.now() + 10_000;
  while (!existsSync(pidFile) || !alive(Number(readFileSync(pidFile, 'utf8').trim()))) {
    if (Date.now() > deadline) throw new Error(`postfix did not start; see ${logFile}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const masterPid = Number(readFileSync(pidFile, 'utf8').trim());
  return {
    port: o.port,
    masterPid,
    pids: () => [masterPid, ...childrenOf(masterPid)],
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    async stop() {
      if (!alive(masterPid)) return;
      process.kill(masterPid, 'SIGTERM');
      const until = Date.now() + 15_000;
      while (alive(masterPid) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    },
  };
}

/** Running (not a zombie). */
export function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid && fields[0] !== 'Z') out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * CPU time (user + system, seconds) a process has used itself and, separately, what its children
 * that it has already reaped used (0s if gone). Postfix's master reaps its daemons, so the CPU of a
 * daemon that exited during a measurement is in the master's `children` figure.
 */
export function cpuSeconds(pid: number): { self: number; children: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    return { self: (f[11]! + f[12]!) / TICKS, children: (f[13]! + f[14]!) / TICKS };
  } catch {
    return { self: 0, children: 0 };
  }
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const TICKS = 100;

/**
 * Proportional set size of a process in bytes (0 if gone): its resident memory with shared pages
 * divided among the processes sharing them, so summing it over Postfix's many daemons does not
 * count the shared libraries once per process (RSS would).
 */
/**
 * A process's proportional set size and its anonymous part (bytes): PSS splits shared pages among
 * their sharers, so its file part moves with how many other processes map the same program (other
 * Node processes on the machine for mailbridge); the anonymous part is the process's own memory.
 */
export function pss(pid: number): { total: number; anon: number } {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
    return { total: kb('Pss'), anon: kb('Pss_Anon') };
  } catch {
    return { total: 0, anon: 0 };
  }
}
