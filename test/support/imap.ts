/**
 * An IMAP client for tests that look into a sandbox mailbox directly: imapflow connected to the
 * sandbox Dovecot's loopback IMAP port (no TLS) and signed in with a token Dovecot accepts, without
 * auto-IDLE, so the test decides what the session does. The caller logs out (or closes) it.
 */
import { ImapFlow } from 'imapflow';
import type { Dovecot } from '../../src/sandbox/dovecot.ts';

export async function dovecotImap(dovecot: Dovecot, address: string): Promise<ImapFlow> {
  const c = new ImapFlow({
    host: '127.0.0.1',
    port: dovecot.ports.imap,
    secure: false,
    doSTARTTLS: false,
    auth: { user: address, accessToken: await dovecot.mintToken(address) },
    logger: false,
    disableAutoIdle: true,
  });
  // imapflow emits 'error' once and closes; the next command reports it.
  c.on('error', () => undefined);
  await c.connect();
  return c;
}
