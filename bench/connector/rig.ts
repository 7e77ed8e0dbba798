/**
 * The benchmarks' own Dovecot: the sandbox's private Dovecot (src/sandbox/dovecot.ts), plus a
 * second passdb so that fetchmail (Debian's 6.4, which has no OAuth2) can log in with a password.
 * mailbridge keeps using XOAUTH2/OAUTHBEARER with a JWT, checked by the oauth2 passdb as before.
 *
 * The runner writes a complete dovecot.conf; this appends `auth_mechanisms` with PLAIN/LOGIN (the
 * later value wins) and a passwd-file passdb after the oauth2 one, then makes the master reload
 * (SIGHUP) and waits until a password login works. Everything stays under the runner's temp dir,
 * which stop() removes.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { createSandboxCa } from '../../src/sandbox/ca.ts';
import { startDovecot, type Dovecot } from '../../src/sandbox/dovecot.ts';

export const ROOT = join(import.meta.dirname, '..', '..');

export interface BenchRig {
  dovecot: Dovecot;
  /** Password logins for these mailboxes (fetchmail). */
  passwords: Map<string, string>;
  close(): Promise<void>;
}

/** `sieve`: a Sieve script Dovecot runs before every LMTP delivery (the dedupe recipe). */
export async function startBenchRig(passwordUsers: string[], options: { sieve?: string } = {}): Promise<BenchRig> {
  execFileSync('bash', [join(ROOT, 'bench', 'connector', 'setup.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
  const ca = createSandboxCa();
  const dovecot = await startDovecot({ tls: ca.issueServer(), sieveBefore: options.sieve });
  try {
    const passwords = new Map(passwordUsers.map((u) => [u.toLowerCase(), `pw-${Math.random().toString(36).slice(2)}`]));
    const file = join(dovecot.dir, 'bench.passwd');
    writeFileSync(file, [...passwords].map(([u, p]) => `${u}:{PLAIN}${p}::::::\n`).join(''), { mode: 0o644 });
    appendFileSync(
      join(dovecot.dir, 'dovecot.conf'),
      `\n# bench/connector/rig.ts: password logins for fetchmail, which has no OAuth2 in Debian's 6.4.\nauth_mechanisms = xoauth2 oauthbearer plain login\npassdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%Lu ${file}\n}\n`,
    );
    process.kill(dovecot.pid, 'SIGHUP');
    const [user, pass] = [...passwords][0] ?? [];
    if (user && pass) await waitForPasswordLogin(dovecot.ports.imap, user, pass);
    return { dovecot, passwords, close: () => dovecot.stop() };
  } catch (err) {
    await dovecot.stop();
    throw err;
  }
}

async function waitForPasswordLogin(port: number, user: string, pass: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const c = new ImapFlow({ host: '127.0.0.1', port, secure: false, doSTARTTLS: false, auth: { user, pass }, logger: false });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.logout();
      return;
    } catch (err) {
      c.close();
      if (Date.now() > deadline) throw new Error(`password login to the bench Dovecot does not work: ${(err as Error).message}`, { cause: err });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** A message of about `size` bytes, CRLF, unique Message-ID. */
export function benchMessage(n: number, size: number, tag: string): Buffer {
  const head = [
    'From: Scanner <scanner@bench.test>',
    'To: <inbox@bench.test>',
    `Subject: ${tag} message ${n}`,
    'Date: Mon, 02 Mar 2026 10:00:00 +0000',
    `Message-ID: <${tag}-${n}@bench.test>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    '',
  ].join('\r\n');
  const line = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghij\r\n';
  const lines = Math.max(1, Math.floor((size - head.length) / line.length));
  return Buffer.from(head + line.repeat(lines), 'latin1');
}

/** Fills a mailbox's INBOX with IMAP APPEND over one session. */
export async function fill(dovecot: Dovecot, mailbox: string, messages: Buffer[]): Promise<void> {
  const c = new ImapFlow({ host: '127.0.0.1', port: dovecot.ports.imap, secure: false, doSTARTTLS: false, auth: { user: mailbox, accessToken: await dovecot.mintToken(mailbox) }, logger: false });
  c.on('error', () => undefined);
  await c.connect();
  try {
    for (const m of messages) await c.append('INBOX', m);
  } finally {
    await c.logout();
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
