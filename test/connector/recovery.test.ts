/**
 * Permissions granted while the connector runs (issue 18 item 7): Exchange refuses a token without
 * IMAP.AccessAsApp, and a token cached from before the grant keeps lacking the role until it
 * expires. Against the whole sandbox (Entra ID, the Exchange IMAP front, Dovecot) and the token
 * wiring `mailbridge fetch` uses: the connector starts without the grant, the admin grants it
 * through the sandbox admin API, and the next attempt (after the back-off, on a manual clock) asks
 * Entra ID for a new token and delivers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { openFetchEnvironment } from '../../src/admin/cli/commands/fetch.ts';
import type { CommandContext } from '../../src/admin/cli/command.ts';
import { createOutput } from '../../src/admin/cli/output.ts';
import { connectorSchema } from '../../src/connector/config.ts';
import { freshTokenGate, runConnector } from '../../src/connector/runner.ts';
import { startSandbox } from '../../src/sandbox/index.ts';
import { silentLogger } from '../../src/log/index.ts';
import { events, maildirFiles, makeMessage, manualSleep } from './helpers.ts';
import { waitFor } from '../support/wait.ts';
import { tempDir } from '../support/temp.ts';
import { connectorPlugins } from '../../src/app/connectors.ts';

test('IMAP.AccessAsApp granted while fetching: after the back-off the connector uses a new token and delivers', { timeout: 120_000 }, async () => {
  const dir = tempDir('mb-recover-');
  chmodSync(dir.path, 0o755);
  const sandbox = await startSandbox({ dir: join(dir.path, 'sandbox') });
  const controller = new AbortController();
  let env: Awaited<ReturnType<typeof openFetchEnvironment>> | undefined;
  let run: Promise<unknown> | undefined;
  try {
    const appId = sandbox.directory.data.tenants[0]!.apps[0]!.appId;
    const admin = async (path: string, body: object) => {
      const res = await fetch(`${sandbox.admin.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(res.status, 200, await res.text());
    };
    await admin('/entra/app-role-assignments/remove', { appId, role: 'IMAP.AccessAsApp' });
    const msg = makeMessage(1, { to: 'scanner@contoso.test' });
    await sandbox.dovecot.deliver({ from: 'sender@outside.example', to: ['scanner@contoso.test'] }, msg);

    const ctx: CommandContext = {
      args: [],
      opts: {},
      readStdin: async () => undefined,
      log: silentLogger,
      lang: 'en',
      out: createOutput('en'),
      configPath: sandbox.configFile,
      env: {},
      prompt: async () => '',
      stopSignal: new Promise(() => undefined),
    };
    env = await openFetchEnvironment(ctx);
    const md = join(dir.path, 'md');
    const c = connectorSchema.parse({
      connection: 'sandbox',
      source: { kind: 'imap', host: '127.0.0.1', port: sandbox.imap.port, caFile: sandbox.caFile, servername: 'localhost' },
      mailboxes: ['scanner@contoso.test'],
      destination: { kind: 'maildir', path: md },
    });
    const clock = manualSleep();
    const ev = events();
    run = runConnector(
      { plugins: connectorPlugins, name: 'recover', config: c, repo: env.store.checkpoints, tokens: env.tokens(c), reveal: env.reveal, onEvent: ev.on, sleep: clock.sleep },
      { signal: controller.signal },
    );

    const refused = await waitFor(() => ev.of('error')[0], 60_000, 'the first refusal');
    assert.equal(refused.error.code, 'MB_CONNECTOR_AUTH_FAILED', refused.error.message);
    await waitFor(() => clock.pending() === 1, 10_000, 'the back-off pause');
    assert.ok(clock.asked[0]! >= 60_000, `waits at least a minute before the next attempt (asked ${clock.asked[0]} ms)`);

    await admin('/entra/app-role-assignments', { appId, role: 'IMAP.AccessAsApp' });
    const seen = ev.list.length;
    clock.elapse();
    const next = await waitFor(() => ev.list.slice(seen).find((e) => e.type === 'delivered' || e.type === 'error'), 60_000, 'the attempt after the grant');
    assert.equal(next.type, 'delivered', next.type === 'error' ? `still refused: ${next.error.message}` : '');
    assert.equal(maildirFiles(md).length, 1);
  } finally {
    controller.abort();
    await run?.catch(() => undefined);
    await env?.close();
    await sandbox.close();
    dir.remove();
  }
});

test('the sandbox demo app may mark mail as read over Graph (Mail.ReadWrite): the default after-action "seen" works without a warning', { timeout: 120_000 }, async () => {
  const dir = tempDir('mb-demo-graph-');
  chmodSync(dir.path, 0o755);
  const sandbox = await startSandbox({ dir: join(dir.path, 'sandbox') });
  let env: Awaited<ReturnType<typeof openFetchEnvironment>> | undefined;
  try {
    await sandbox.dovecot.deliver({ from: 'sender@outside.example', to: ['bob@contoso.test'] }, makeMessage(1, { to: 'bob@contoso.test' }));
    env = await openFetchEnvironment({ args: [], opts: {}, readStdin: async () => undefined, log: silentLogger, lang: 'en', out: createOutput('en'), configPath: sandbox.configFile, env: {}, prompt: async () => '', stopSignal: new Promise(() => undefined) });
    const c = connectorSchema.parse({
      connection: 'sandbox',
      source: { kind: 'graph', baseUrl: `${sandbox.graph.url.replace(/\/v1\.0\/?$/, '')}/v1.0`, caFile: sandbox.caFile },
      mailboxes: ['bob@contoso.test'],
      destination: { kind: 'maildir', path: join(dir.path, 'md') },
    });
    const summary = await runConnector({ plugins: connectorPlugins, name: 'demo-graph', config: c, repo: env.store.checkpoints, tokens: env.tokens(c), reveal: env.reveal }, { once: true });
    assert.deepEqual([...summary.errors.map((e) => e.error.message), ...summary.warnings.map((w) => w.message)], []);
    assert.equal(summary.delivered, 1);
    const listed = (await (await fetch(`${sandbox.admin.url}/mailboxes/bob@contoso.test/messages`)).json()) as { messages: Array<{ flags: string[] }> };
    assert.ok(listed.messages.every((m) => m.flags.includes('\\Seen')), JSON.stringify(listed));
  } finally {
    await env?.close();
    await sandbox.close();
    dir.remove();
  }
});

test('fresh tokens after refusals: one request to Entra ID per gap for all mailboxes, the cached one in between', async () => {
  let now = 0;
  const calls: Array<boolean | undefined> = [];
  const gate = freshTokenGate(async (_m, o) => (calls.push(o?.fresh), 'token'), 30_000, () => now);
  await gate('a@x.test', { fresh: true });
  await gate('b@x.test', { fresh: true });
  await gate('c@x.test');
  now += 30_000;
  await gate('b@x.test', { fresh: true });
  assert.deepEqual(calls, [true, undefined, undefined, true]);
});
