import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import nodemailer from 'nodemailer';
import { createSandboxCa } from '../../../src/sandbox/ca.ts';
import { startRelay } from '../../../src/relay/index.ts';
import { openStore } from '../../../src/store/index.ts';
import { collectingLogger, relayConfig, RecordingTransport, startTestRelay } from '../helpers/index.ts';
import { tempDir } from '../../support/temp.ts';

test('the generated certificate is kept across restarts; a configured certificate is used as given', async () => {
  const dir = tempDir();
  try {
    const first = await startTestRelay({ dir: dir.path });
    const cert = first.relay.tls.cert;
    assert.equal(first.relay.tls.source, 'generated');
    await first.close();
    const second = await startTestRelay({ dir: dir.path });
    assert.equal(second.relay.tls.cert, cert, 'same certificate after a restart');
    await second.close();

    // The sandbox CA stands in for an admin's own PKI here (test-only use of sandbox code).
    const ca = createSandboxCa();
    const own = ca.issueServer(['mail.contoso.test', 'localhost', '127.0.0.1']);
    writeFileSync(join(dir.path, 'own.crt'), own.certPem);
    writeFileSync(join(dir.path, 'own.key'), own.keyPem);
    const third = await startTestRelay({
      dir: dir.path,
      config: {
        tls: { certPath: join(dir.path, 'own.crt'), keyPath: join(dir.path, 'own.key') },
        networks: { lan: { cidrs: ['127.0.0.1'], allowedSenders: ['@contoso.test'] } },
      },
    });
    try {
      assert.equal(third.relay.tls.source, 'config');
      const client = nodemailer.createTransport({ host: '127.0.0.1', port: third.port, requireTLS: true, tls: { ca: ca.certPem, servername: 'mail.contoso.test' } });
      const info = await client.sendMail({ from: 'app@contoso.test', to: 'a@example.com', text: 'verified against the configured CA' });
      assert.match(info.response, /^250 /);
    } finally {
      await third.close();
    }
  } finally {
    dir.remove();
  }
});

test('start-up failures name their MB code: unreadable certificate, port in use, spool used by another relay', async () => {
  const dir = tempDir();
  const store = await openStore({ driver: 'sqlite', path: join(dir.path, 'mb.db') });
  const { log } = collectingLogger();
  const transport = new RecordingTransport();
  try {
    await assert.rejects(
      startRelay({ config: relayConfig(join(dir.path, 'a'), { tls: { certPath: join(dir.path, 'missing.crt'), keyPath: join(dir.path, 'missing.key') } }), store, log, transport }),
      (e: { code?: string; explain?: (l: 'en') => { cause: string } }) => e.code === 'MB_RELAY_TLS_UNREADABLE' && e.explain!('en').cause.includes('missing.crt'),
    );

    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    try {
      await assert.rejects(startRelay({ config: relayConfig(join(dir.path, 'b'), { listeners: [{ port }] }), store, log, transport }), (e: unknown) => {
        // A busy port is the shared listener error, naming the port and who holds it (this process).
        assert.equal((e as { code?: string }).code, 'MB_PORT_IN_USE');
        assert.equal((e as { params: { port: number } }).params.port, port);
        if (process.platform === 'linux') assert.match((e as Error).message + JSON.stringify((e as { params: unknown }).params), new RegExp(`PID ${process.pid}`));
        return true;
      });
    } finally {
      busy.close();
    }
    // The failed start released what it had taken: the same data directory starts fine.
    await (await startRelay({ config: relayConfig(join(dir.path, 'b')), store, log, transport })).close();

    // The same spool is locked while a relay runs, and free again after it stopped (or died).
    const running = await startRelay({ config: relayConfig(join(dir.path, 'c')), store, log, transport });
    const other = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { FileSpool } from ${JSON.stringify(new URL('../../../src/relay/queue/spool.ts', import.meta.url).pathname)};
         try { await new FileSpool(${JSON.stringify(join(dir.path, 'c', 'spool'))}).open(); console.log('opened'); } catch (e) { console.log(e.code); }`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(other.stdout.trim(), 'MB_RELAY_SPOOL_LOCKED');
    await running.close();
    const again = await startRelay({ config: relayConfig(join(dir.path, 'c')), store, log, transport });
    await again.close();
  } finally {
    await store.close();
    dir.remove();
  }
});
