import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import { smtpConnection } from '../../src/m365/smtp.ts';
import { createSandboxCa } from '../../src/sandbox/ca.ts';

const open = (port: number, ca: string) => smtpConnection({ host: '127.0.0.1', port, tls: 'starttls', name: 'relay.test', ca, timeoutMs: 5_000 });
const tlsOf = (conn: SMTPConnection) => (conn as unknown as { options: { tls: { secureContext?: object; ca?: unknown } } }).options.tls;

test('connections that trust the same extra CA share one TLS context (the root certificates are parsed once), and it still verifies the server', async () => {
  const ca = createSandboxCa();
  const other = createSandboxCa();
  const cert = ca.issueServer(['127.0.0.1']);
  const server = new SMTPServer({ key: cert.keyPem, cert: cert.certPem, authOptional: true, logger: false, disableReverseLookup: true });
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  const port = (server.server.address() as AddressInfo).port;
  try {
    const a = await open(port, ca.certPem);
    const b = await open(port, ca.certPem);
    const c = await open(port, other.certPem);
    assert.ok(tlsOf(a).secureContext, 'a prepared TLS context, not a ca list parsed per connection');
    assert.equal(tlsOf(a).ca, undefined);
    assert.equal(tlsOf(a).secureContext, tlsOf(b).secureContext);
    assert.notEqual(tlsOf(a).secureContext, tlsOf(c).secureContext);

    // The shared context trusts the CA: STARTTLS to a server with its certificate succeeds, one with another CA's fails.
    for (const [conn, ok] of [[a, true], [c, false]] as const) {
      const result = await new Promise<Error | undefined>((resolve) => {
        conn.once('error', resolve);
        conn.connect(() => resolve(undefined));
      });
      if (ok) assert.equal(result, undefined);
      else assert.match(String(result?.message), /certificate|self.signed|verify/i);
      conn.close();
    }
    b.close();
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});
