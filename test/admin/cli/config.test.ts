import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { runCli } from './harness.ts';
import { tempDir } from '../../support/temp.ts';

/** The value at a dotted path of parsed JSON/YAML. */
function at(value: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[k] : undefined), value);
}

const BROKEN = [
  'server:',
  '  prot: 9000',
  'connections:',
  '  contoso:',
  '    tenantId: 0b7c3f3e-6d2a-4e1b-9c8f-3a5d7e9b1c24',
  '    clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35',
  '    cloud: globel',
  '    clientSecret: plain-secret-in-file-1',
].join('\n');

test('config check prints every error with path, place, cause and fix, and exits 1', async (t) => {
  const dir = tempDir('mb-cli-config-', t).path;
  const file = join(dir, 'mailbridge.yaml');
  writeFileSync(file, BROKEN);
  const r = await runCli(['--config', file, 'config', 'check'], { env: { MAILBRIDGE__SERVER__PORT: 'abc' } });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, /: 3 errors, 0 warnings/);
  assert.match(r.stdout, /Error: server\.prot \(mailbridge\.yaml, line 2, column 3\)\n {2}MB_CONFIG_KEY_TYPO: Unknown setting\n {2}Cause: server\.prot is not a setting mailbridge knows\.\n {2}Fix: Did you mean port\? Rename prot to port\./);
  assert.match(r.stdout, /Error: connections\.contoso\.cloud \(mailbridge\.yaml, line 7, column 5\)/);
  assert.match(r.stdout, /Error: server\.port \(environment variable MAILBRIDGE__SERVER__PORT\)\n.*\n {2}Cause: server\.port must be a whole number; found "abc"\./);
  assert.ok(!r.stdout.includes('plain-secret-in-file-1'));

  const de = await runCli(['--lang', 'de', '--config', file, 'config', 'check'], { env: { MAILBRIDGE__SERVER__PORT: 'abc' } });
  assert.equal(de.code, 1);
  assert.match(de.stdout, /: 3 Fehler, 0 Warnungen/);
  assert.match(de.stdout, /Fehler: server\.prot \(mailbridge\.yaml, Zeile 2, Spalte 3\)\n {2}MB_CONFIG_KEY_TYPO: Unbekannte Einstellung\n {2}Ursache: .*\n {2}Behebung: Meinten Sie port\?/);
  assert.match(de.stdout, /Fehler: server\.port \(Umgebungsvariable MAILBRIDGE__SERVER__PORT\)/);

  const json = await runCli(['--config', file, 'config', 'check', '--json'], { env: { MAILBRIDGE__SERVER__PORT: 'abc' } });
  assert.equal(json.code, 1);
  const report = JSON.parse(json.stdout) as { errors: Array<{ path: string; fix: { en: string; de: string } }> };
  assert.deepEqual(
    report.errors.map((e) => e.path),
    ['server.prot', 'connections.contoso.cloud', 'server.port'],
  );
});

test('config check: warnings alone exit 0; a YAML syntax error names line and column', async (t) => {
  const dir = tempDir('mb-cli-config-', t).path;
  const file = join(dir, 'mailbridge.yaml');
  writeFileSync(file, 'connections:\n  contoso:\n    tenantId: 0b7c3f3e-6d2a-4e1b-9c8f-3a5d7e9b1c24\n    clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35\n    clientSecret: plain-secret-in-file-2\n');
  const ok = await runCli(['--config', file, 'config', 'check']);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /0 errors, 1 warning\n/);
  assert.match(ok.stdout, /Warning: connections\.contoso\.clientSecret \(mailbridge\.yaml, line 5, column 5\)/);
  assert.match(ok.stdout, /Fix: Store it encrypted: `mailbridge secret set connections\.contoso\.clientSecret`/);

  writeFileSync(file, 'server:\n  port: 8080\n   listen: x\n');
  const bad = await runCli(['--config', file, 'config', 'check']);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /: 1 error, 0 warnings/);
  assert.match(bad.stdout, /Error: mailbridge\.yaml, line 2, column 9\n {2}MB_CONFIG_YAML_SYNTAX: Not valid YAML\n {2}Cause: mailbridge\.yaml is not valid YAML at line 2, column 9: /);
  assert.match(bad.stdout, /Fix: Look at line 2 and the lines around it/);

  const none = await runCli(['--config', join(dir, 'absent.yaml'), 'config', 'check']);
  assert.equal(none.code, 0);
  assert.match(none.stdout, /not found: defaults and environment/);
  assert.match(none.stdout, /The configuration is fine\./);
});

test('config schema prints a draft-07 JSON Schema with secret fields marked', async () => {
  const r = await runCli(['config', 'schema']);
  assert.equal(r.code, 0, r.stderr);
  const schema: unknown = JSON.parse(r.stdout);
  assert.equal(at(schema, '$schema'), 'http://json-schema.org/draft-07/schema#');
  assert.equal(at(schema, 'additionalProperties'), false);
  const conn = 'properties.connections.additionalProperties';
  assert.deepEqual(at(schema, `${conn}.required`), ['tenantId', 'clientId']);
  assert.equal(at(schema, `${conn}.properties.clientSecret.secret`), true);
  assert.equal(at(schema, `${conn}.properties.certificate.properties.password.secret`), true);
  assert.deepEqual(at(schema, `${conn}.properties.cloud.enum`), ['global', 'gcc', 'gcc-high', 'dod', 'china']);
  assert.equal(at(schema, 'properties.server.properties.port.type'), 'integer');
});

test('config show: effective values with environment overrides and defaults, secrets masked', async (t) => {
  const dir = tempDir('mb-cli-config-', t).path;
  const file = join(dir, 'mailbridge.yaml');
  writeFileSync(
    file,
    'server:\n  port: 8080\n  proxy: http://svc:Pr0xyPassw0rd@proxy.example:3128\nconnections:\n  contoso:\n    tenantId: 0b7c3f3e-6d2a-4e1b-9c8f-3a5d7e9b1c24\n    clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35\n    clientSecret: plain-secret-in-file-3-long\n',
  );
  const r = await runCli(['--config', file, 'config', 'show'], { env: { MAILBRIDGE__SERVER__PORT: '9000', MAILBRIDGE__CONNECTIONS__CONTOSO__CLOUD: 'gcc-high' } });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stdout.includes('plain-secret-in-file-3-long'));
  assert.ok(!r.stdout.includes('Pr0xyPassw0rd'));
  const shown: unknown = parse(r.stdout);
  assert.equal(at(shown, 'server.port'), 9000);
  assert.equal(at(shown, 'server.proxy'), 'http://svc:********@proxy.example:3128');
  assert.equal(at(shown, 'connections.contoso.cloud'), 'gcc-high');
  assert.equal(at(shown, 'connections.contoso.graceSeconds'), 30, 'defaults filled in');
  assert.equal(at(shown, 'connections.contoso.clientSecret'), 'pla********');
  assert.match(r.stdout, /port: 9000 # from MAILBRIDGE__SERVER__PORT/);
  assert.match(r.stdout, /clientSecret: pla\*{8} # plain text/);

  const json = await runCli(['--config', file, 'config', 'show', '--json']);
  assert.equal(JSON.parse(json.stdout).connections.contoso.clientSecret, 'pla********');

  const de = await runCli(['--lang', 'de', '--config', file, 'config', 'show'], { env: { MAILBRIDGE__SERVER__PORT: 'x' } });
  assert.equal(de.code, 1);
  assert.match(de.stderr, /MB_CONFIG_INVALID: Konfiguration ungültig/);
  assert.match(de.stderr, /server\.port muss eine ganze Zahl sein/);
});

test('config without or with an unknown subcommand is a usage error (exit 2), in both languages', async () => {
  const r = await runCli(['config']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /MB_CLI_USAGE/);
  assert.match(r.stderr, /check, schema or show/);
  const de = await runCli(['--lang', 'de', 'config', 'frob']);
  assert.equal(de.code, 2);
  assert.match(de.stderr, /Unbekannter Unterbefehl: frob/);
  const help = await runCli(['--lang', 'de', 'config', '--help']);
  assert.match(help.stdout, /Aufruf: mailbridge config <check\|schema\|show>/);
});
