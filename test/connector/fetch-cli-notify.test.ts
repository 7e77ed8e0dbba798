/**
 * `mailbridge fetch` with a Graph source woken by change notifications, as an admin runs it: the
 * sandbox's mailbridge.yaml plus a connector with source.notifications (its listener on a port of
 * its own, with a certificate the sandbox's Graph trusts as Microsoft trusts public CAs), the
 * command in a child process polling only once an hour: it subscribes, new mail is delivered while
 * it runs, and SIGTERM stops it. The subscription's clientState is sealed with the config's key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { SUBSCRIPTION_NAMESPACE } from '../../src/connector/graph.ts';
import { subscriptionKey } from '../../src/m365/subscriptions/index.ts';
import { startSandbox } from '../../src/sandbox/index.ts';
import { openStore } from '../../src/store/index.ts';
import { freePort } from '../support/ports.ts';
import { tempDir } from '../support/temp.ts';
import { waitFor } from '../support/wait.ts';
import { graphNotifyConnector, makeMessage, maildirFiles, NODE, ROOT } from './helpers.ts';

test('mailbridge fetch (no --once) with source.notifications: subscribes through its own listener, delivers new mail, stops on SIGTERM', { timeout: 120_000 }, async () => {
  const dir = tempDir('mb-fetch-notify-');
  // Dovecot's mail processes (vmail) must pass through this folder to the sandbox's mail.
  chmodSync(dir.path, 0o755);
  const sandbox = await startSandbox({ dir: join(dir.path, 'sandbox') });
  const mailbox = 'scanner@contoso.test';
  let child: ReturnType<typeof spawn> | undefined;
  try {
    const doc = parse(readFileSync(sandbox.configFile, 'utf8')) as Record<string, unknown> & { store: { path: string } };
    const md = join(dir.path, 'maildir');
    const port = await freePort();
    doc.connectors = { invoices: graphNotifyConnector(sandbox, { port, publicUrl: `https://127.0.0.1:${port}`, mailboxes: [mailbox], maildir: md }) };
    writeFileSync(sandbox.configFile, stringify(doc));
    child = spawn(NODE, [join(ROOT, 'src/admin/cli/main.ts'), '--config', sandbox.configFile, 'fetch', 'invoices'], { cwd: dir.path, env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = once(child, 'exit');

    const sub = await waitFor(() => sandbox.graph.subscriptions().find((s) => s.mailbox === mailbox && s.notificationUrl === `https://127.0.0.1:${port}/notify/connector/invoices`), 60_000, `subscription (stderr: ${stderr})`);
    await sandbox.dovecot.deliver({ from: 'sender@outside.example', to: [mailbox] }, makeMessage(1, { to: mailbox, subject: 'Invoice 4711' }));
    await waitFor(() => maildirFiles(md).some((f) => f.raw.includes('Invoice 4711')), 60_000, `delivery (stdout: ${stdout}, stderr: ${stderr})`);

    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^Done: 1 messages,/m);

    // The subscription is kept for the next start, its clientState sealed with the config's key.
    const store = await openStore({ driver: 'sqlite', path: resolve(dirname(sandbox.configFile), doc.store.path) });
    try {
      const rec = JSON.parse((await store.kv.get(SUBSCRIPTION_NAMESPACE, subscriptionKey(mailbox, 'INBOX', 's\tinvoices\t'))) ?? '{}') as { id?: string; clientState?: string };
      assert.equal(rec.id, sub.id);
      assert.match(rec.clientState ?? '', /^enc:v1:/);
    } finally {
      await store.close();
    }
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await sandbox.close();
    dir.remove();
  }
});
