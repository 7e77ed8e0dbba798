/**
 * IDLE wake-up through the sandbox's Exchange Online IMAP front, side by side with the same
 * Dovecot reached directly (the peer): N messages are delivered one at a time over LMTP, and for
 * each we time from the start of the delivery to the EXISTS that imapflow reports on each of the two
 * IDLE connections. Prints p50/p99 for both and the ratios. Not a test: figures depend on the machine.
 *   node bench/sandbox/idle-wake.ts [N=50]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { startSandbox } from '../../src/sandbox/index.ts';

const N = Number(process.argv[2] ?? 50);
const dir = mkdtempSync(join(tmpdir(), 'mb-bench-idle-'));
const sandbox = await startSandbox({ dir });
try {
  const ca = readFileSync(sandbox.caFile, 'utf8');
  const token = await sandbox.appToken('https://outlook.office365.com/.default');
  const mailbox = 'bob@contoso.test';

  const front = new ImapFlow({ host: '127.0.0.1', port: sandbox.imap.port, secure: true, tls: { ca }, auth: { user: mailbox, accessToken: token }, logger: false });
  const direct = new ImapFlow({
    host: '127.0.0.1',
    port: sandbox.dovecot.ports.imap,
    secure: false,
    tls: { ca },
    auth: { user: mailbox, accessToken: await sandbox.dovecot.mintToken(mailbox) },
    logger: false,
  });
  const waiters = new Map<ImapFlow, (t: number) => void>();
  for (const c of [front, direct]) {
    await c.connect();
    await c.mailboxOpen('INBOX');
    c.on('exists', () => waiters.get(c)?.(performance.now()));
    void c.idle();
  }
  const wake = (c: ImapFlow) => new Promise<number>((resolve) => waiters.set(c, resolve));

  const times = { front: [] as number[], direct: [] as number[] };
  for (let i = 0; i < N; i++) {
    const woke = [wake(front), wake(direct)];
    const t0 = performance.now();
    await sandbox.dovecot.deliver({ from: 'alice@contoso.test', to: [mailbox] }, `From: alice@contoso.test\r\nTo: ${mailbox}\r\nSubject: idle ${i}\r\n\r\nx\r\n`);
    const [f, d] = await Promise.all(woke);
    times.front.push(f! - t0);
    times.direct.push(d! - t0);
  }
  await front.logout();
  await direct.logout();

  const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
  const row = (name: string, xs: number[]) => `${name.padEnd(28)} p50 ${pct(xs, 50).toFixed(1).padStart(7)} ms   p99 ${pct(xs, 99).toFixed(1).padStart(7)} ms`;
  console.log(`IDLE wake-up after LMTP delivery, ${N} messages`);
  console.log(row('Exchange IMAP front (TLS)', times.front));
  console.log(row('Dovecot direct (peer)', times.direct));
  console.log(`ratio front/direct          p50 ${(pct(times.front, 50) / pct(times.direct, 50)).toFixed(2)}   p99 ${(pct(times.front, 99) / pct(times.direct, 99)).toFixed(2)}`);
} finally {
  await sandbox.close();
  rmSync(dir, { recursive: true, force: true });
}
