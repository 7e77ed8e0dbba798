import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { analyzeText, checkConfig, keyFileFor, loadConfig, type ConfigProblem } from '../../src/app/config.ts';
import { MbError } from '../../src/errors/index.ts';
import { createLogger } from '../../src/log/index.ts';
import { scrub } from '../../src/log/redact.ts';
import { tempDir } from '../support/temp.ts';

const NOW = new Date('2026-03-01T12:00:00Z');

const byPath = (problems: ConfigProblem[], path: string) => problems.filter((p) => p.path === path);

test('a missing file gives the defaults, with the key file next to where the config would be', async (t) => {
  const dir = tempDir('mb-config-', t).path;
  const loaded = await loadConfig(join(dir, 'mailbridge.yaml'), {});
  assert.equal(loaded.path, undefined);
  assert.equal(loaded.config.server.port, 8080);
  assert.deepEqual(loaded.config.store, { driver: 'sqlite', path: 'data/mailbridge.db' });
  assert.deepEqual(loaded.config.connections, {});
  assert.equal(loaded.keyFile, join(dir, 'mailbridge.key'));
  assert.equal(keyFileFor('/etc/mb/mailbridge.yaml', '/var/lib/mb/key'), '/var/lib/mb/key');
  assert.equal(keyFileFor('/etc/mb/mailbridge.yaml', 'keys/mb.key'), '/etc/mb/keys/mb.key');
});

test('environment overrides: any path, case-insensitive, YAML scalars, text kept as written', async (t) => {
  const dir = tempDir('mb-config-', t).path;
  const file = join(dir, 'mailbridge.yaml');
  writeFileSync(
    file,
    'server:\n  port: 8080\nsecrets:\n  keyFile: keys/mb.key\nconnections:\n  Contoso:\n    tenantId: from-file.example\n    clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35\n    clientSecret: file-secret-value\n',
  );
  const loaded = await loadConfig(file, {
    MAILBRIDGE__SERVER__PORT: '9000',
    mailbridge__server__listen: '0.0.0.0',
    // (a non-loopback listener needs server.tls or this opt-out: test/server/tls.test.ts)
    MAILBRIDGE__SERVER__INSECURE: 'true',
    MAILBRIDGE__LOG__LEVEL: 'debug',
    // the file's name is Contoso: matched whatever the case
    MAILBRIDGE__CONNECTIONS__CONTOSO__ACCOUNT: '0123',
    MAILBRIDGE__CONNECTIONS__CONTOSO__CLIENTSECRET: 'env-secret-value-0001',
    MAILBRIDGE__CONNECTIONS__CONTOSO__GRACESECONDS: '120',
    MAILBRIDGE__CONNECTIONS__CONTOSO__SCOPES__GRAPH: '[https://graph.microsoft.com/.default]',
    // a connection only in the environment, named in capitals → lower case
    MAILBRIDGE__CONNECTIONS__FABRIKAM__TENANTID: 'fabrikam.onmicrosoft.com',
    MAILBRIDGE__CONNECTIONS__FABRIKAM__CLIENTID: '9a8b7c6d-1e2f-4a3b-8c5d-6e7f8a9b0c1d',
    MAILBRIDGE__CONNECTIONS__FABRIKAM__FLOW: 'device-code',
    // the store section is missing in the file: its default is the base (driver stays sqlite)
    MAILBRIDGE__STORE__PATH: '/var/lib/mailbridge/mb.db',
    MAILBRIDGE__SECRETS__KEYFILE: '/etc/mailbridge/mb.key',
    // not ours (single underscore), ignored
    MAILBRIDGE_LOG_LEVEL: 'warn',
  });
  const c = loaded.config;
  assert.equal(c.server.port, 9000);
  assert.equal(c.server.listen, '0.0.0.0');
  assert.equal(c.log.level, 'debug');
  assert.equal(c.connections.Contoso?.account, '0123', 'text fields keep the text, no number conversion');
  assert.equal(c.connections.Contoso?.clientSecret, 'env-secret-value-0001');
  assert.equal(c.connections.Contoso?.graceSeconds, 120);
  assert.deepEqual(c.connections.Contoso?.scopes.graph, ['https://graph.microsoft.com/.default']);
  assert.equal(c.connections.Contoso?.clientId, '5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35', 'values not overridden stay');
  assert.equal(c.connections.fabrikam?.flow, 'device-code');
  assert.deepEqual(c.store, { driver: 'sqlite', path: '/var/lib/mailbridge/mb.db' });
  assert.equal(loaded.keyFile, '/etc/mailbridge/mb.key');
  assert.equal(loaded.fromEnv.get('server.port'), 'MAILBRIDGE__SERVER__PORT');
  assert.equal(loaded.fromEnv.get('connections.Contoso.clientSecret'), 'MAILBRIDGE__CONNECTIONS__CONTOSO__CLIENTSECRET');
  // a plain secret from the environment is registered with the scrubber
  assert.ok(!scrub('x env-secret-value-0001 y').includes('env-secret-value-0001'));
});

test('an empty variable removes the setting, so the default applies', async () => {
  const r = analyzeText('server:\n  port: 9999\n', 'mailbridge.yaml', { MAILBRIDGE__SERVER__PORT: '' });
  assert.deepEqual(r.errors, []);
  assert.equal(r.config?.server.port, 8080);
});

test('a mistyped variable is an error naming the variable, with "did you mean"', () => {
  const r = analyzeText(undefined, 'mailbridge.yaml', { MAILBRIDGE__SERVER__PROT: '9000', MAILBRIDGE__SERVR__PORT: '1', MAILBRIDGE__SERVER__PORT__X: '1' });
  const prot = byPath(r.errors, 'server.PROT')[0];
  assert.equal(prot?.code, 'MB_CONFIG_KEY_TYPO');
  assert.equal(prot?.env, 'MAILBRIDGE__SERVER__PROT');
  assert.match(prot!.fix.en, /Did you mean port\?/);
  assert.match(prot!.fix.de, /Meinten Sie port\?/);
  assert.equal(byPath(r.errors, 'SERVR')[0]?.params.suggestion, 'server');
  assert.equal(byPath(r.errors, 'server.port.X')[0]?.code, 'MB_CONFIG_UNKNOWN_KEY');
});

test('validation reports ALL errors, each with path, place, message and fix in English and German', () => {
  const text = [
    'lang: fr', // 1
    'server:', // 2
    '  port: "eighty"', // 3
    '  publicUrl: not a url', // 4
    'store:', // 5
    '  driver: mysql', // 6
    'connections:', // 7
    '  contoso:', // 8
    '    tenantId: ""', // 9
    '    cloud: globel', // 10
    '    graceSeconds: 99999', // 11
    '    clientSecretExpires: 30.06.2027', // 12
    '    scopes: x', // 13
    '  "bad name":', // 14
    '    tenantId: 0b7c3f3e-6d2a-4e1b-9c8f-3a5d7e9b1c24', // 15
    '    clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35', // 16
  ].join('\n');
  const r = analyzeText(text, '/etc/mailbridge/mailbridge.yaml', { MAILBRIDGE__CONNECTIONS__CONTOSO__FLOW: 'implicit' });
  const expected: Array<[string, string, number | string]> = [
    ['lang', 'MB_CONFIG_NOT_ALLOWED', 1],
    ['server.port', 'MB_CONFIG_EXPECTED_INTEGER', 3],
    ['server.publicUrl', 'MB_CONFIG_BAD_URL', 4],
    ['store.driver', 'MB_CONFIG_NOT_ALLOWED', 6],
    ['connections.contoso.clientId', 'MB_CONFIG_REQUIRED', 8],
    ['connections.contoso.tenantId', 'MB_CONFIG_EMPTY', 9],
    ['connections.contoso.cloud', 'MB_CONFIG_NOT_ALLOWED', 10],
    ['connections.contoso.graceSeconds', 'MB_CONFIG_TOO_BIG', 11],
    ['connections.contoso.clientSecretExpires', 'MB_CONFIG_BAD_DATE', 12],
    ['connections.contoso.scopes', 'MB_CONFIG_EXPECTED_SECTION', 13],
    ['connections.bad name', 'MB_CONFIG_BAD_NAME', 14],
    ['connections.contoso.flow', 'MB_CONFIG_NOT_ALLOWED', 'MAILBRIDGE__CONNECTIONS__CONTOSO__FLOW'],
  ];
  assert.deepEqual(
    r.errors.map((p) => [p.path, p.code, p.env ?? p.line]),
    expected,
  );
  for (const p of r.errors) {
    assert.equal(p.severity, 'error');
    for (const lang of ['en', 'de'] as const) {
      for (const part of [p.title, p.message, p.fix]) {
        assert.ok(part[lang].trim().length > 0, `${p.code} ${lang}`);
        assert.doesNotMatch(part[lang], /\{\w+\}/, `unfilled placeholder in ${p.code} ${lang}: ${part[lang]}`);
      }
    }
    assert.notEqual(p.message.en, p.message.de, `${p.code} message translated`);
    assert.notEqual(p.fix.en, p.fix.de, `${p.code} fix translated`);
  }
  const port = byPath(r.errors, 'server.port')[0]!;
  assert.equal(port.message.en, 'server.port must be a whole number; found "eighty".');
  assert.equal(port.message.de, 'server.port muss eine ganze Zahl sein; gefunden: "eighty".');
  assert.equal(port.column, 3);
  const cloud = byPath(r.errors, 'connections.contoso.cloud')[0]!;
  assert.match(cloud.fix.en, /Use one of: global, gcc, gcc-high, dod, china/);
  assert.match(cloud.fix.de, /Verwenden Sie einen dieser Werte: global, gcc, gcc-high, dod, china/);
  assert.match(byPath(r.errors, 'connections.contoso.clientId')[0]!.fix.de, /Ergänzen Sie connections\.contoso\.clientId in mailbridge\.yaml/);
  assert.equal(r.config, undefined);
});

test('unknown keys get "did you mean" with the closest known key; no close key lists the allowed ones', () => {
  const text = 'servr:\n  port: 1\nconnections:\n  contoso:\n    tenantID: t\n    clientId: c\n    client_secret: abcdefgh\n    frobnicate: 1\n';
  const r = analyzeText(text, 'mailbridge.yaml', {});
  const typo = (path: string) => byPath(r.errors, path)[0];
  assert.equal(typo('servr')?.params.suggestion, 'server');
  assert.equal(typo('connections.contoso.tenantID')?.params.suggestion, 'tenantId');
  assert.equal(typo('connections.contoso.client_secret')?.params.suggestion, 'clientSecret');
  assert.equal(typo('connections.contoso.tenantID')?.line, 5);
  assert.equal(typo('connections.contoso.tenantID')?.fix.en, 'Did you mean tenantId? Rename tenantID to tenantId.');
  assert.equal(typo('connections.contoso.tenantID')?.fix.de, 'Meinten Sie tenantId? Benennen Sie tenantID in tenantId um.');
  // the mistyped tenantID does not also count as a missing tenantId
  assert.equal(byPath(r.errors, 'connections.contoso.tenantId').length, 0);
  const unknown = typo('connections.contoso.frobnicate')!;
  assert.equal(unknown.code, 'MB_CONFIG_UNKNOWN_KEY');
  assert.match(unknown.fix.en, /allowed here are: kind, cloud, tenantId, clientId/);
  // the value under a mistyped key may be a secret: never quoted back
  assert.ok(!JSON.stringify(r.errors).includes('abcdefgh'));
});

test('YAML syntax errors name line and column, and show no source text', () => {
  const text = 'server:\n  port: 8080\nconnections:\n  contoso:\n    clientSecret: "s3cr3t-unclosed\n    tenantId: t\n';
  const r = analyzeText(text, '/srv/mb/mailbridge.yaml', {});
  assert.ok(r.errors.length >= 1);
  const e = r.errors[0]!;
  assert.equal(e.code, 'MB_CONFIG_YAML_SYNTAX');
  assert.equal(e.line, 5);
  assert.equal(e.column, 19);
  assert.match(e.message.en, /^mailbridge\.yaml is not valid YAML at line 5, column 19: /);
  assert.match(e.message.de, /^mailbridge\.yaml ist in Zeile 5, Spalte 19 kein gültiges YAML: /);
  assert.match(e.fix.en, /line 5/);
  assert.ok(!JSON.stringify(r.errors).includes('s3cr3t'), 'no excerpt of the file');

  const tabs = analyzeText('server:\n\tport: 1\n', 'mailbridge.yaml', {});
  assert.equal(tabs.errors[0]?.line, 2);
});

test('loadConfig throws MB_CONFIG_INVALID with the count and the first error in the chosen language', async (t) => {
  const dir = tempDir('mb-config-', t).path;
  const file = join(dir, 'mailbridge.yaml');
  writeFileSync(file, 'server:\n  port: -1\n  listen: 1.2.3.4\nlog:\n  level: loud\n');
  await assert.rejects(loadConfig(file, { LANG: 'de_DE.UTF-8' }), (err: unknown) => {
    assert.ok(err instanceof MbError);
    assert.equal(err.code, 'MB_CONFIG_INVALID');
    assert.equal(err.params.count, 2);
    assert.equal(err.params.field, 'server.port');
    const de = err.explain('de');
    assert.match(de.cause, /enthält 2 Fehler/);
    assert.match(de.cause, /server\.port ist -1 und damit kleiner als der kleinste zulässige Wert 0/);
    assert.match(de.cause, /Zeile 2, Spalte 3/);
    return true;
  });
  await assert.rejects(loadConfig(file, {}, { lang: 'en' }), /has 2 error\(s\)\. The first, at server\.port: server\.port is -1, below the smallest allowed value 0/);
});

test('warnings: plain-text secret, expiring, expired, implausibly far expiry, no credential for the flow', async (t) => {
  const text = [
    'connections:',
    '  soon:',
    '    tenantId: 0b7c3f3e-6d2a-4e1b-9c8f-3a5d7e9b1c24',
    '    clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35',
    '    clientSecret: plain-text-secret-0815',
    '    clientSecretExpires: 2026-03-20',
    '  gone:',
    '    tenantId: 0b7c3f3e-6d2a-4e1b-9c8f-3a5d7e9b1c24',
    '    clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35',
    '    clientSecret: enc:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    '    clientSecretExpires: 2026-02-28',
    '  far:',
    '    tenantId: 0b7c3f3e-6d2a-4e1b-9c8f-3a5d7e9b1c24',
    '    clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35',
    '    certificate:',
    '      path: /etc/mb/far.pfx',
    '    clientSecretExpires: 2028-03-02',
    '  ok:',
    '    tenantId: 0b7c3f3e-6d2a-4e1b-9c8f-3a5d7e9b1c24',
    '    clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35',
    '    certificate: { path: /etc/mb/ok.pfx }',
    '    clientSecretExpires: 2028-03-01',
    '  nocred:',
    '    tenantId: 0b7c3f3e-6d2a-4e1b-9c8f-3a5d7e9b1c24',
    '    clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35',
    '    flow: auth-code',
    '  device:',
    '    tenantId: 0b7c3f3e-6d2a-4e1b-9c8f-3a5d7e9b1c24',
    '    clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35',
    '    flow: device-code',
  ].join('\n');
  const r = analyzeText(text, 'mailbridge.yaml', { MAILBRIDGE__CONNECTIONS__OK__CLIENTSECRET: 'env-plain-is-fine-1' }, { now: NOW });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(
    r.warnings.map((w) => [w.code, w.path, w.line]),
    [
      ['MB_CONFIG_SECRET_PLAINTEXT', 'connections.soon.clientSecret', 5],
      ['MB_CONFIG_SECRET_EXPIRING', 'connections.soon.clientSecretExpires', 6],
      ['MB_CONFIG_SECRET_EXPIRED', 'connections.gone.clientSecretExpires', 11],
      ['MB_CONFIG_SECRET_EXPIRY_TOO_FAR', 'connections.far.clientSecretExpires', 17],
      ['MB_CONFIG_NO_CREDENTIAL', 'connections.nocred', 23],
    ],
  );
  const [plain, soon, gone, far, nocred] = r.warnings;
  assert.match(plain!.fix.en, /`mailbridge secret set connections\.soon\.clientSecret`/);
  assert.match(plain!.fix.de, /`mailbridge secret set connections\.soon\.clientSecret`/);
  assert.match(soon!.message.en, /expires on 2026-03-20, in 19 day\(s\)/);
  assert.match(soon!.message.de, /läuft am 2026-03-20 ab, in 19 Tag\(en\)/);
  assert.match(gone!.message.en, /expired on 2026-02-28/);
  assert.match(gone!.fix.en, /Certificates & secrets › New client secret/);
  assert.match(gone!.fix.de, /Zertifikate & Geheimnisse/);
  assert.match(far!.message.en, /more than 24 months away/);
  assert.match(nocred!.message.en, /auth-code flow/);
  assert.match(nocred!.fix.de, /mailbridge secret set connections\.nocred\.clientSecret/);
  // and loadConfig logs them (code, path), continuing to load
  const dir = tempDir('mb-config-', t).path;
  const file = join(dir, 'mailbridge.yaml');
  writeFileSync(file, text);
  const lines: string[] = [];
  const log = createLogger({ level: 'warn', destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
  const loaded = await loadConfig(file, {}, { now: NOW, log });
  assert.equal(loaded.warnings.length, 5);
  assert.equal(lines.length, 5);
  assert.match(lines[0]!, /"code":"MB_CONFIG_SECRET_PLAINTEXT"/);
  assert.ok(!lines.join('').includes('plain-text-secret-0815'));
});

test('checkConfig verifies encrypted secrets against the key without creating one', async (t) => {
  const dir = tempDir('mb-config-', t).path;
  const file = join(dir, 'mailbridge.yaml');
  writeFileSync(file, 'connections:\n  x:\n    tenantId: 0b7c3f3e-6d2a-4e1b-9c8f-3a5d7e9b1c24\n    clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35\n    clientSecret: enc:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n');
  const r = await checkConfig(file, {});
  assert.deepEqual(
    r.errors.map((e) => [e.code, e.path]),
    [['MB_SECRET_KEY_MISSING', 'connections.x.clientSecret']],
  );
  assert.match(r.errors[0]!.fix.de, /Schlüsseldatei aus Ihrer Sicherung/);
  const unverified = await checkConfig(file, {}, { verifySecrets: false });
  assert.deepEqual(unverified.errors, []);
  // no key file appeared
  await assert.rejects(import('node:fs/promises').then((fs) => fs.stat(join(dir, 'mailbridge.key'))), { code: 'ENOENT' });
});

test('checkConfig opens the TLS certificate and key files of server.tls and relay.tls: a missing one or a folder is an error there, not only when serve starts', async (t) => {
  const dir = tempDir('mb-config-', t).path;
  const file = join(dir, 'mailbridge.yaml');
  writeFileSync(join(dir, 'gw.pem'), 'certificate');
  writeFileSync(join(dir, 'relay.pem'), 'certificate');
  writeFileSync(join(dir, 'relay.key'), 'key');
  writeFileSync(
    file,
    `server:\n  tls:\n    cert: ${join(dir, 'gw.pem')}\n    key: ${join(dir, 'missing.key')}\nrelay:\n  tls:\n    certPath: ${join(dir, 'relay.pem')}\n    keyPath: ${join(dir, 'relay.key')}\n`,
  );
  const r = await checkConfig(file, {});
  assert.deepEqual(
    r.errors.map((e) => [e.code, e.path]),
    [['MB_CONFIG_FILE_UNREADABLE', 'server.tls.key']],
  );
  assert.match(r.errors[0]!.message.en, /server\.tls\.key names the file \/.*\/missing\.key, which mailbridge cannot read \(.*ENOENT/);
  assert.match(r.errors[0]!.fix.de, /`ls -l \/.*\/missing\.key`/);
  // A folder is not a key file either; a path set from the environment is located there.
  const env = { MAILBRIDGE__RELAY__TLS__KEYPATH: dir };
  const fromEnv = await checkConfig(file, env);
  assert.deepEqual(
    fromEnv.errors.map((e) => [e.code, e.path, e.env]),
    [
      ['MB_CONFIG_FILE_UNREADABLE', 'server.tls.key', undefined],
      ['MB_CONFIG_FILE_UNREADABLE', 'relay.tls.keyPath', 'MAILBRIDGE__RELAY__TLS__KEYPATH'],
    ],
  );
  // Loading (every command) does not open them: serve says so itself when it starts.
  assert.equal((await loadConfig(file, env)).config.relay?.tls?.keyPath, dir);
  assert.deepEqual((await checkConfig(file, {}, { verifyFiles: false })).errors, []);
});

test("checkConfig opens a connection's certificate, its separate key and its extra CA file too", async (t) => {
  const dir = tempDir('mb-config-', t).path;
  const file = join(dir, 'mailbridge.yaml');
  writeFileSync(join(dir, 'app.pem'), 'certificate');
  writeFileSync(join(dir, 'ca.pem'), 'ca');
  const connection = (extra: string) =>
    `connections:\n  contoso:\n    tenantId: 0b7c3f3e-6d2a-4e1b-9c8f-3a5d7e9b1c24\n    clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35\n${extra}`;
  writeFileSync(file, connection(`    certificate:\n      path: ${join(dir, 'app.pem')}\n    caFile: ${join(dir, 'ca.pem')}\n`));
  assert.deepEqual((await checkConfig(file, {})).errors, []);
  writeFileSync(file, connection(`    certificate:\n      path: ${join(dir, 'gone.pfx')}\n      privateKeyPath: ${join(dir, 'gone.key')}\n    caFile: ${dir}\n`));
  assert.deepEqual(
    (await checkConfig(file, {})).errors.map((e) => [e.code, e.path]),
    [
      ['MB_CONFIG_FILE_UNREADABLE', 'connections.contoso.certificate.path'],
      ['MB_CONFIG_FILE_UNREADABLE', 'connections.contoso.certificate.privateKeyPath'],
      ['MB_CONFIG_FILE_UNREADABLE', 'connections.contoso.caFile'],
    ],
  );
});

test('a file that is not a section of settings is one clear error', () => {
  const r = analyzeText('- a\n- b\n', '/x/mailbridge.yaml', { MAILBRIDGE__SERVER__PORT: '1' });
  assert.deepEqual(
    r.errors.map((e) => e.code),
    ['MB_CONFIG_EXPECTED_SECTION'],
  );
  assert.match(r.errors[0]!.message.en, /^mailbridge\.yaml must be a section/);
});

test('a non-secret value is quoted back, a secret one is masked; URL passwords are masked', () => {
  const r = analyzeText(
    'server:\n  proxy: "http://svc:Pr0xy-Pa55@proxy example:3128"\nstore:\n  driver: postgres\n  url: 12345678\n',
    'mailbridge.yaml',
    {},
  );
  const proxy = byPath(r.errors, 'server.proxy')[0]!;
  assert.equal(proxy.code, 'MB_CONFIG_BAD_URL');
  assert.ok(!proxy.message.en.includes('Pr0xy-Pa55'), proxy.message.en);
  assert.match(proxy.message.en, /http:\/\/svc:\*{8}@proxy example:3128/);
  const url = byPath(r.errors, 'store.url')[0]!;
  assert.equal(url.code, 'MB_CONFIG_EXPECTED_TEXT');
  assert.ok(!url.message.en.includes('12345678'));
});

test('server.listen with a port ("127.0.0.1:8080", "[::1]:8080") is an error that names server.port; addresses and host names pass', () => {
  for (const listen of ['127.0.0.1:8080', '[::1]:8080', 'localhost:80']) {
    const r = analyzeText(`server:\n  listen: "${listen}"\n`, '/etc/mailbridge/mailbridge.yaml', {});
    assert.deepEqual(
      r.errors.map((e) => [e.path, e.code]),
      [['server.listen', 'MB_CONFIG_VALUE_INVALID']],
      listen,
    );
    assert.match(r.errors[0]!.message.en, /the port goes in server\.port/);
    assert.match(r.errors[0]!.message.de, /der Port gehört in server\.port/);
  }
  for (const listen of ['127.0.0.1', '::1', 'localhost', '::ffff:127.0.0.1']) {
    assert.deepEqual(analyzeText(`server:\n  listen: "${listen}"\n`, '/etc/mailbridge/mailbridge.yaml', {}).errors, [], listen);
  }
});
