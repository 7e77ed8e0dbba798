/**
 * What a CLI command prints is one human text in the chosen language: no English JSON log line on
 * stderr beside it unless JSON logs are asked for, and no English labels in German output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './harness.ts';

function config(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mb-cli-texts-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'mailbridge.yaml');
  // A connection whose token endpoint refuses connections: identity warns and fails.
  writeFileSync(
    file,
    `store:
  driver: sqlite
  path: ${join(dir, 'mb.db')}
connections:
  x:
    tenantId: 0b7c3f3e-1111-2222-3333-444455556666
    clientId: 5d1e2a44-aaaa-bbbb-cccc-ddddeeeeffff
    clientSecret: plain-text-secret-value-0000
    tokenEndpoint: https://127.0.0.1:9/#TenantID#/oauth2/v2.0/token
  cert:
    tenantId: 0b7c3f3e-1111-2222-3333-444455556666
    clientId: 5d1e2a44-aaaa-bbbb-cccc-ddddeeeeffff
    certificate:
      path: ${join(dir, 'missing.pem')}
`,
  );
  return file;
}

test('a failing command prints its error once, in German, with no JSON log line unless --log-format json', async (t) => {
  const file = config(t);
  const de = await runCli(['--lang', 'de', '--config', file, 'token', 'x']);
  assert.equal(de.code, 1);
  assert.match(de.stderr, /^MB_IDENTITY_NETWORK: Entra ID nicht erreichbar$/m);
  assert.doesNotMatch(de.stderr, /^\{/m, 'a JSON log line on stderr');
  assert.doesNotMatch(de.stderr + de.stdout, /unreachable|could not reach/, 'English beside German');
  assert.equal(de.stderr.match(/MB_IDENTITY_NETWORK/g)?.length, 1, 'the error once');

  const json = await runCli(['--lang', 'de', '--log-format', 'json', '--config', file, 'token', 'x']);
  assert.equal(json.code, 1);
  const logLines = json.stderr.split('\n').filter((l) => l.startsWith('{'));
  assert.ok(logLines.length > 0, 'asked for, the JSON log is there');
  for (const l of logLines) assert.equal(JSON.parse(l).name, 'mailbridge');
  const bad = await runCli(['--log-format', 'xml', '--config', file, 'token', 'x']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--log-format xml: only json/);
});

test('German output of config check, secret list and watch carries no English labels', async (t) => {
  const file = config(t);
  const english = /\b(Error|Warning|Cause|Fix|missing|plain text|encrypted|from|Flow|Expires|Tenant|listeners?|mailboxes)\b/;
  const outputs = [
    await runCli(['--lang', 'de', '--config', file, 'config', 'check']),
    await runCli(['--lang', 'de', '--config', file, 'secret', 'list']),
    await runCli(['--lang', 'de', '--config', file, 'watch', '--once']),
    await runCli(['--lang', 'de', '--config', file, 'serve', '--port', 'abc']),
  ];
  assert.match(outputs[0]!.stdout, /Warnung: connections\.x\.clientSecret/);
  assert.match(outputs[1]!.stdout, /connections\.x\.clientSecret\s+Klartext/);
  for (const r of outputs) {
    for (const line of (r.stdout + r.stderr).split('\n')) {
      // Paths, codes and quoted file contents are not prose; the words around them are.
      const prose = line.replace(/\b[\w-]+(\.[\w<>-]+)+\b/g, '').replace(/MB_[A-Z_]+/g, '').replace(/`[^`]*`/g, '');
      assert.doesNotMatch(prose, english, `English in German output: ${line}`);
    }
  }
});

test('German summaries and help say Mandant, never Tenant, as Microsoft German documentation does', async () => {
  const { commands } = await import('../../../src/admin/cli/commands/index.ts');
  const { commandHelp } = await import('../../../src/admin/cli/command.ts');
  for (const [name, load] of Object.entries(commands)) {
    const c = await load();
    const text = `${c.summary.de}\n${commandHelp(c, 'de')}`;
    assert.doesNotMatch(text, /Tenant/, `${name}: ${text.split('\n').find((l) => l.includes('Tenant'))}`);
  }
  const overview = await runCli(['--lang', 'de', '--help']);
  assert.match(overview.stdout, /Sandbox-Mandanten starten/);
});
