/**
 * The whole sandbox as an admin starts it: one call brings up Entra ID, both Exchange fronts, Dovecot
 * and the admin API; a token from sandbox Entra ID sends through the SMTP front and reads back
 * through the IMAP front (nodemailer and imapflow as the clients, not mailbridge code),
 * and the Graph API sees the same mailbox; closing leaves no Dovecot behind; a restart keeps the CA and the tenant's IDs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { Agent, fetch } from 'undici';
import { parse } from 'yaml';
import { configSchema } from '../../src/app/schema.ts';
import { startSandbox } from '../../src/sandbox/index.ts';

/** Running, not a zombie: a stopped daemon whose parent is gone may linger as a zombie until PID 1 reaps it. */
function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

test('sandbox: app token from Entra ID → SMTP front → Dovecot → IMAP front, byte for byte; restart keeps state', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-sandbox-'));
  let sandbox = await startSandbox({ dir });
  try {
    const tenant = sandbox.directory.data.tenants[0]!;
    const app = tenant.apps[0]!;
    const ca = readFileSync(sandbox.caFile, 'utf8');
    const token = await sandbox.appToken('https://outlook.office365.com/.default');

    const raw = [
      'From: Scanner <scanner@contoso.test>',
      'To: Alice <alice@contoso.test>',
      'Subject: Scan 0001 =?utf-8?q?Gr=C3=BC=C3=9Fe?=',
      'Message-ID: <scan-0001@contoso.test>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      'Grüße aus der Sandbox.',
      '',
    ].join('\r\n');
    const smtp = nodemailer.createTransport({
      host: '127.0.0.1',
      port: sandbox.smtp.port,
      secure: false,
      requireTLS: true,
      tls: { ca },
      auth: { type: 'OAuth2', user: 'scanner@contoso.test', accessToken: token },
    });
    const info = await smtp.sendMail({ envelope: { from: 'scanner@contoso.test', to: ['alice@contoso.test'] }, raw });
    assert.deepEqual(info.accepted, ['alice@contoso.test']);

    const imap = new ImapFlow({
      host: '127.0.0.1',
      port: sandbox.imap.port,
      secure: true,
      tls: { ca },
      auth: { user: 'alice@contoso.test', accessToken: token },
      logger: false,
    });
    await imap.connect();
    const lock = await imap.getMailboxLock('INBOX');
    try {
      const msg = await imap.fetchOne('*', { source: true, envelope: true });
      assert.ok(msg && msg.source, 'a message in the INBOX');
      assert.equal(msg.envelope?.messageId, '<scan-0001@contoso.test>');
      // Delivery prepends Return-Path (as every MTA's final delivery does); the rest is what was sent.
      assert.equal(msg.source.toString('utf8'), `Return-Path: <scanner@contoso.test>\r\n${raw}`);
    } finally {
      lock.release();
      await imap.logout();
    }

    // The same mailbox through the Graph API, with a Graph token from the same app.
    const graphToken = await sandbox.appToken('https://graph.microsoft.com/.default');
    const folder = await fetch(`${sandbox.graph.url}/v1.0/users/alice@contoso.test/mailFolders/inbox`, {
      headers: { authorization: `Bearer ${graphToken}` },
      dispatcher: new Agent({ connect: { ca } }),
    });
    assert.equal(folder.status, 200);
    assert.equal(((await folder.json()) as { totalItemCount: number }).totalItemCount, 1);

    const pid = sandbox.dovecot.pid;
    const tenantId = tenant.id;
    const caPem = readFileSync(sandbox.caFile, 'utf8');
    const example = parse(readFileSync(sandbox.configFile, 'utf8')) as { connections: Record<string, { clientSecret?: string }> };
    assert.match(example.connections.sandbox!.clientSecret!, /^enc:v1:/, 'the example config holds the secret sealed');
    assert.ok(!readFileSync(sandbox.configFile, 'utf8').includes(app.secrets[0]!.value));
    // It is a valid mailbridge.yaml, with a Graph watch group for the first mailbox to try notifications.
    const checked = configSchema.safeParse(example);
    assert.ok(checked.success, JSON.stringify(checked.error?.issues));
    assert.deepEqual(checked.data.notify?.watch?.groups.sandbox?.mailboxes, ['alice@contoso.test']);
    await sandbox.close();
    assert.equal(alive(pid), false, 'Dovecot stopped');

    sandbox = await startSandbox({ dir });
    assert.equal(sandbox.directory.data.tenants[0]!.id, tenantId, 'tenant IDs survive a restart');
    assert.equal(readFileSync(sandbox.caFile, 'utf8'), caPem, 'the CA survives a restart');
  } finally {
    const pid = sandbox.dovecot.pid;
    await sandbox.close();
    assert.equal(alive(pid), false);
    rmSync(dir, { recursive: true, force: true });
  }
});
