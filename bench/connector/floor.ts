/**
 * The floor of the connector benchmark: what fetching and delivering costs with no bookkeeping at
 * all, so the figures say how close mailbridge comes to the possible, not only how it compares
 * with fetchmail.
 *
 * One IMAP session (imapflow, the same OAUTHBEARER login as mailbridge) sends a single
 * `UID FETCH 1:* BODY.PEEK[]` and streams every message back in one response (pipelined by
 * construction); each message is handed at once to an LMTP pool of the same width as mailbridge's
 * window (nodemailer, `lmtp: true`), and after the last acknowledgement one
 * `UID STORE … +FLAGS (\Deleted)` and one EXPUNGE delete them all. No checkpoint, no in-flight
 * record, no fsync, no per-message after-action: a message lost in a crash would simply be lost,
 * which is exactly the work mailbridge's exactly-once bookkeeping adds on top.
 */
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import type { BenchRig } from './rig.ts';

export async function floorFetch(rig: BenchRig, src: string, sink: string, window: number): Promise<number> {
  const imap = new ImapFlow({
    host: '127.0.0.1',
    port: rig.dovecot.ports.imap,
    secure: false,
    doSTARTTLS: false,
    auth: { user: src, accessToken: await rig.dovecot.mintToken(src) },
    logger: false,
  });
  imap.on('error', () => undefined);
  const lmtp = nodemailer.createTransport({
    host: '127.0.0.1',
    port: rig.dovecot.ports.lmtp,
    lmtp: true,
    secure: false,
    ignoreTLS: true,
    pool: true,
    maxConnections: window,
    maxMessages: Infinity,
  });
  const t0 = performance.now();
  await imap.connect();
  try {
    await imap.mailboxOpen('INBOX');
    const uids: number[] = [];
    const pending = new Set<Promise<unknown>>();
    let failed: unknown;
    for await (const msg of imap.fetch('1:*', { uid: true, source: true }, { uid: true })) {
      if (!msg.source) continue;
      // Keep at most `window` deliveries in flight, as mailbridge does; the fetch stream waits meanwhile.
      while (pending.size >= window) await Promise.race(pending);
      const p = lmtp
        .sendMail({ envelope: { from: 'scanner@bench.test', to: [sink] }, raw: msg.source })
        .then(() => uids.push(msg.uid))
        .catch((err: unknown) => (failed ??= err))
        .finally(() => pending.delete(p));
      pending.add(p);
    }
    await Promise.all(pending);
    if (failed) throw failed;
    if (uids.length > 0) await imap.messageDelete(uids.join(','), { uid: true });
  } finally {
    await imap.logout().catch(() => imap.close());
    lmtp.close();
  }
  return (performance.now() - t0) / 1000;
}
