/**
 * The mailbridge.yaml the sandbox writes is a working configuration, used as an admin would use it:
 * valid against the schema, with a relay, a connector, a watch group and a subscriptions API key;
 * `mailbridge serve` with it takes a message on the relay listener and sends it through the sandbox's
 * Exchange SMTP front, and `mailbridge fetch --once` with it copies that message into the maildir.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { parse } from 'yaml';
import { configSchema } from '../../src/app/schema.ts';
import { startSandbox } from '../../src/sandbox/index.ts';
import { MAIN, NODE, runCli } from '../admin/cli/harness.ts';
import { waitFor } from '../support/wait.ts';

test('the example mailbridge.yaml: valid; serve relays through the sandbox, fetch --once brings the message into the maildir, the API key opens the subscriptions API', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-sandbox-example-'));
  const sandbox = await startSandbox({ dir });
  let serve: ReturnType<typeof spawn> | undefined;
  try {
    const text = readFileSync(sandbox.configFile, 'utf8');
    const checked = configSchema.safeParse(parse(text));
    assert.ok(checked.success, JSON.stringify(checked.error?.issues));
    const config = checked.data;
    assert.deepEqual(config.relay?.listeners.map((l) => `${l.host}:${l.port}`), [`127.0.0.1:${sandbox.ports.relay}`]);
    assert.equal(config.relay?.routes[0]?.smtp.port, sandbox.smtp.port);
    assert.deepEqual(config.connectors?.['sandbox-scans']?.mailboxes, ['scanner@contoso.test']);
    assert.match(String(config.notify?.api.keys.sandbox), /^enc:v1:/, 'the API key is sealed in the file');
    assert.equal(config.server.port, sandbox.ports.serve);
    assert.equal(config.notify?.watch?.listen.port, sandbox.ports.notify);
    const apiKey = readFileSync(sandbox.apiKeyFile, 'utf8').trim();
    assert.ok(!text.includes(apiKey));
    const check = await runCli(['--config', sandbox.configFile, 'config', 'check'], { cwd: dir });
    assert.equal(check.code, 0, `config check passes the example: ${check.stdout}${check.stderr}`);

    serve = spawn(NODE, [MAIN, '--config', sandbox.configFile, 'serve'], { cwd: dir, env: { PATH: process.env.PATH, LANG: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    serve.stderr!.on('data', (d) => (err += d));
    await new Promise<void>((resolve, reject) => {
      serve!.stdout!.on('data', (d) => {
        out += d;
        if (/mailbridge is running/.test(out)) resolve();
      });
      serve!.once('exit', (code) => reject(new Error(`serve exited ${code}: ${out} ${err}`)));
    });

    // The subscriptions API: the key from notify-api.key is accepted, no key is not.
    const api = `http://127.0.0.1:${sandbox.ports.serve}/api/v1/subscriptions`;
    assert.equal((await fetch(api)).status, 401);
    const listed = await fetch(api, { headers: { authorization: `Bearer ${apiKey}` } });
    assert.equal(listed.status, 200, await listed.clone().text());

    // An application on this machine hands a message to the relay without logging in.
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: sandbox.ports.relay, secure: false, tls: { rejectUnauthorized: false } });
    const subject = `Scan via relay ${Date.now()}`;
    await transport.sendMail({ from: 'alice@contoso.test', to: 'scanner@contoso.test', subject, text: 'Scan attached.' });

    // The relay sends it on through the sandbox's Exchange SMTP front into the scanner mailbox.
    const arrived = async () => {
      const res = await fetch(`${sandbox.admin.url}/mailboxes/scanner@contoso.test/messages`);
      return ((await res.json()) as { messages: Array<{ subject: string }> }).messages.some((m) => m.subject === subject);
    };
    await waitFor(arrived, 60_000, () => `the relay to deliver: ${out} ${err}`, 200);

    const fetched = await runCli(['--config', sandbox.configFile, 'fetch', 'sandbox-scans', '--once'], { cwd: dir });
    assert.equal(fetched.code, 0, fetched.stdout + fetched.stderr);
    const maildir = join(dir, 'maildir', 'scans');
    const files = ['new', 'cur'].flatMap((sub) => (existsSync(join(maildir, sub)) ? readdirSync(join(maildir, sub)).map((f) => join(maildir, sub, f)) : []));
    assert.ok(files.some((f) => readFileSync(f, 'utf8').includes(`Subject: ${subject}`)), `the message is in ${maildir}: ${files.join(', ')}`);
  } finally {
    if (serve && serve.exitCode === null) {
      const exited = once(serve, 'exit');
      serve.kill('SIGTERM');
      await exited;
    }
    await sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
