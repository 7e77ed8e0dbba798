import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parse } from 'yaml';
import { loadConfig } from '../../../src/app/config.ts';
import { openSecretBox, generateKey, ENC_PREFIX } from '../../../src/config/secrets.ts';
import { MbError, toMbError } from '../../../src/errors/index.ts';
import { createLogger } from '../../../src/log/index.ts';
import { entraLikeSecret, runCli, type CliResult } from './harness.ts';
import { tempDir } from '../../support/temp.ts';

const COMMENTED = `# mailbridge for Contoso – do not edit without a change ticket
server:
  port: 8080   # firewall rule 4711

connections:
  contoso:     # production tenant
    tenantId: 0b7c3f3e-1111-2222-3333-444455556666
    clientId: 5d1e2a44-aaaa-bbbb-cccc-ddddeeeeffff
    clientSecret: old-plain-secret-value-0000   # TODO encrypt
    clientSecretExpires: 2027-06-30
`;

test('secret set (stdin) encrypts into the file, keeps comments and layout, creates the key 0600', async (t) => {
  const dir = tempDir('mb-cli-secret-', t).path;
  const file = join(dir, 'mailbridge.yaml');
  writeFileSync(file, COMMENTED);
  const secret = entraLikeSecret();
  const r = await runCli(['--config', file, 'secret', 'set', 'connections.contoso.clientSecret'], { input: `${secret}\n` });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /connections\.contoso\.clientSecret stored encrypted in .*mailbridge\.yaml; hint: Q..\*{8}/);
  assert.match(r.stdout, /Created the key file .*mailbridge\.key \(mode 0600\)/);
  const after = readFileSync(file, 'utf8');
  const stored = /clientSecret: (enc:v1:[A-Za-z0-9_-]+)/.exec(after)?.[1];
  assert.ok(stored, after);
  assert.equal(after, COMMENTED.replace('old-plain-secret-value-0000', stored), 'only the value changed');
  assert.equal(statSync(join(dir, 'mailbridge.key')).mode & 0o777, 0o600);
  const box = await openSecretBox({ keyFile: join(dir, 'mailbridge.key'), env: {} });
  assert.equal(box.reveal(stored), secret);

  // a second secret for a new connection: the key is reused, the file only grows
  const second = entraLikeSecret();
  const r2 = await runCli(['--config', file, 'secret', 'set', 'CONNECTIONS.fabrikam.CLIENTSECRET'], { input: second });
  assert.equal(r2.code, 0, r2.stderr);
  assert.doesNotMatch(r2.stdout, /Created the key file/);
  assert.match(r2.stdout, /Tip: add connections\.fabrikam\.clientSecretExpires/);
  const grown = readFileSync(file, 'utf8');
  assert.ok(grown.startsWith(after), grown);
  assert.equal(box.reveal(parse(grown).connections.fabrikam.clientSecret), second);
});

test('secret set creates a missing file; refuses non-secret paths with the list; refuses an empty value', async (t) => {
  const dir = tempDir('mb-cli-secret-', t).path;
  const file = join(dir, 'mailbridge.yaml');
  const r = await runCli(['--config', file, 'secret', 'set', 'store.url'], { input: 'postgres://mb:pw-1234@db/mb\n' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\(file created\)/);
  assert.match(parse(readFileSync(file, 'utf8')).store.url, /^enc:v1:/);
  assert.equal(statSync(file).mode & 0o777, 0o600);

  const wrong = await runCli(['--config', file, 'secret', 'set', 'connections.contoso.tenantId'], { input: 'value\n' });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /MB_SECRET_NOT_A_SECRET/);
  assert.match(wrong.stderr, /store\.url, server\.metricsToken, connections\.<name>\.clientSecret, connections\.<name>\.certificate\.password/);
  const wrongDe = await runCli(['--lang', 'de', '--config', file, 'secret', 'set', 'server.port']);
  assert.match(wrongDe.stderr, /Keine geheime Einstellung/);

  const empty = await runCli(['--config', file, 'secret', 'set', 'connections.x.clientSecret'], { input: '\n' });
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /MB_SECRET_EMPTY/);
  assert.equal(parse(readFileSync(file, 'utf8')).connections, undefined, 'nothing written');

  const usage = await runCli(['--config', file, 'secret', 'set', 'connections.x.clientSecret', 'the-value-on-the-command-line']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /exactly one path/);
});

test('secret list: each secret setting with state, origin and hint, never the value', async (t) => {
  const dir = tempDir('mb-cli-secret-', t).path;
  const file = join(dir, 'mailbridge.yaml');
  writeFileSync(file, 'connections:\n  a:\n    clientSecret: plain-text-secret-value-aa\n  b:\n    certificate:\n      path: b.pfx\n  d:\n    tenantId: t\n');
  const secret = entraLikeSecret();
  assert.equal((await runCli(['--config', file, 'secret', 'set', 'connections.b.certificate.password'], { input: secret })).code, 0);
  const r = await runCli(['--config', file, 'secret', 'list'], { env: { MAILBRIDGE__CONNECTIONS__C__CLIENTSECRET: 'from-env-secret-value-cc' } });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.deepEqual(
    lines.map((l) => l.replace(/ +/g, ' ')),
    [
      'connections.a.clientSecret plain text pla******** – encrypt it with `mailbridge secret set`',
      // b signs in with its certificate: its clientSecret is no gap and is not listed as missing.
      `connections.b.certificate.password encrypted ${secret.slice(0, 3)}********`,
      'connections.d.clientSecret missing',
      'connections.c.clientSecret plain text fro******** (from MAILBRIDGE__CONNECTIONS__C__CLIENTSECRET)',
    ],
  );
  const de = await runCli(['--lang', 'de', '--config', file, 'secret', 'list']);
  assert.match(de.stdout, /connections\.d\.clientSecret +fehlt/);
  assert.doesNotMatch(de.stdout, /connections\.b\.clientSecret/);
  assert.match(de.stdout, /verschlüsselt/);
  const wrongKey = await runCli(['--config', file, 'secret', 'list', '--json'], { env: { MAILBRIDGE_KEY: generateKey() } });
  assert.equal(wrongKey.code, 1);
  const infos = JSON.parse(wrongKey.stdout) as Array<{ path: string; problem?: string }>;
  assert.equal(infos.find((i) => i.path === 'connections.b.certificate.password')?.problem, 'MB_SECRET_UNDECRYPTABLE');
});

/**
 * The leak test: a secret set through the CLI must not appear in clear anywhere mailbridge writes —
 * stdout, stderr, log lines, thrown errors, the YAML file, the config dump — including when
 * commands fail with the secret in play. Each output is also checked for a positive sign that the
 * secret was in play (its masked hint, or the error about it), so no check passes by accident.
 */
test('leak test: a secret set via the CLI never appears in clear output, logs, errors or files', async (t) => {
  const dir = tempDir('mb-cli-secret-', t).path;
  const file = join(dir, 'mailbridge.yaml');
  const secret = entraLikeSecret();
  const hint = `${secret.slice(0, 3)}********`;
  const seen: Array<[string, string]> = [];
  const record = (what: string, r: CliResult) => {
    seen.push([`${what} stdout`, r.stdout], [`${what} stderr`, r.stderr]);
    return r;
  };
  const valid = { MAILBRIDGE__CONNECTIONS__X__TENANTID: 'contoso.onmicrosoft.com', MAILBRIDGE__CONNECTIONS__X__CLIENTID: '5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35' };

  const set = record('secret set', await runCli(['--config', file, 'secret', 'set', 'connections.x.clientSecret'], { input: `${secret}\n` }));
  assert.equal(set.code, 0, set.stderr);
  assert.ok(set.stdout.includes(hint));
  const yaml = readFileSync(file, 'utf8');
  seen.push(['mailbridge.yaml', yaml], ['key file', readFileSync(join(dir, 'mailbridge.key'), 'utf8')]);
  assert.ok(yaml.includes(ENC_PREFIX));

  const show = record('config show', await runCli(['--config', file, 'config', 'show'], { env: valid }));
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, new RegExp(`clientSecret: ${hint.replace(/\*/g, '\\*')} # encrypted`));
  const showJson = record('config show --json', await runCli(['--config', file, 'config', 'show', '--json'], { env: valid }));
  assert.equal(JSON.parse(showJson.stdout).connections.x.clientSecret, hint);

  const check = record('config check', await runCli(['--config', file, 'config', 'check', '--json'], { env: valid }));
  assert.equal(check.code, 0, check.stdout + check.stderr);
  const list = record('secret list', await runCli(['--config', file, 'secret', 'list'], { env: valid }));
  assert.ok(list.stdout.includes(hint));

  // Failing commands with the secret in play.
  const invalid = record('config show, invalid config', await runCli(['--config', file, 'config', 'show']));
  assert.equal(invalid.code, 1);
  assert.match(invalid.stderr, /MB_CONFIG_INVALID/);
  const wrongKey = record('config check, wrong key', await runCli(['--config', file, 'config', 'check'], { env: { ...valid, MAILBRIDGE_KEY: generateKey() } }));
  assert.equal(wrongKey.code, 1);
  assert.match(wrongKey.stdout, /MB_SECRET_UNDECRYPTABLE/);
  const typo = record(
    'config check, secret under a mistyped variable',
    await runCli(['--config', file, 'config', 'check'], { env: { ...valid, MAILBRIDGE__CONNECTIONS__X__CLIENTSECRT: secret } }),
  );
  assert.equal(typo.code, 1);
  assert.match(typo.stdout, /Did you mean clientSecret\?/);
  const typoShow = record(
    'config show, secret under a mistyped variable',
    await runCli(['--config', file, 'config', 'show'], { env: { ...valid, MAILBRIDGE__CONNECTIONS__X__CLIENTSECRT: secret } }),
  );
  assert.equal(typoShow.code, 1);
  const refused = record('secret set, not a secret path', await runCli(['--config', file, 'secret', 'set', 'connections.x.tenantId'], { input: `${secret}\n` }));
  assert.equal(refused.code, 1);
  assert.equal(readFileSync(file, 'utf8'), yaml, 'file unchanged by the refused command');

  // In this process: load, reveal as identity will, log the config and errors carrying the secret.
  const lines: string[] = [];
  const log = createLogger({ level: 'trace', destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
  const loaded = await loadConfig(file, valid, { log });
  const box = await openSecretBox({ keyFile: loaded.keyFile, env: {} });
  const conn = loaded.config.connections.x!;
  const clear = box.reveal(conn.clientSecret!, 'connections.x.clientSecret');
  assert.equal(clear, secret, 'the secret really is in play');
  log.info({ config: loaded.config }, 'configuration loaded');
  log.debug({ connection: { ...conn, clientSecret: clear } }, 'connection with the clear secret');
  log.info(`token request body: client_id=app&client_secret=${encodeURIComponent(clear)}&grant_type=client_credentials`);
  const errors: Error[] = [
    new MbError('MB_INTERNAL', { detail: `token endpoint rejected ${clear}` }),
    toMbError(new Error(`AADSTS7000215: Invalid client secret provided: ${clear}`)),
  ];
  try {
    const other = await openSecretBox({ keyFile: loaded.keyFile, env: { MAILBRIDGE_KEY: generateKey() } });
    other.reveal(conn.clientSecret!, 'connections.x.clientSecret');
  } catch (err) {
    errors.push(err as Error);
  }
  assert.equal(errors.length, 3);
  for (const err of errors) {
    log.error({ err }, `failed: ${err.message}`);
    seen.push([`thrown ${(err as MbError).code}`, `${err.message}\n${JSON.stringify((err as MbError).explain('en'))}\n${JSON.stringify((err as MbError).explain('de'))}`]);
  }
  assert.equal(lines.length, 6);
  assert.ok(lines.some((l) => l.includes('********')), 'the secret was masked, not absent');
  seen.push(['log lines', lines.join('')]);

  for (const [where, text] of seen) {
    assert.ok(!text.includes(secret), `secret in clear in ${where}:\n${text}`);
    assert.ok(!text.includes(encodeURIComponent(secret)), `URL-encoded secret in ${where}`);
  }
});

test('one secret type: listener passwords, PEM keys (all of stdin or --file) and JSON service accounts are set, listed, shown masked', async (t) => {
  const dir = tempDir('mb-cli-secret-', t).path;
  const file = join(dir, 'mailbridge.yaml');
  const listenerPw = `Listener-${entraLikeSecret()}`;
  const imapPw = `Imap-${entraLikeSecret()}`;
  writeFileSync(
    file,
    `connections:
  cert:
    tenantId: contoso.onmicrosoft.com
    clientId: 5d1e2a44-aaaa-bbbb-cccc-ddddeeeeffff
    certificate:
      path: /etc/mailbridge/app.pem
notify:
  apns:
    teamId: ABCDE12345
    keyId: KEY1234567
    topic: com.contoso.mail
    privateKey: placeholder
  fcm:
    serviceAccount: placeholder
  watch:
    groups:
      plant:
        kind: ews
        listeners:
          - username: svc-notify@plant.contoso.com
            password: ${listenerPw}
        mailboxes: [meister@plant.contoso.com]
      dove:
        kind: imap
        imap:
          auth:
            user: '{mailbox}*master'
            password: ${imapPw}
        listeners:
          - connection: cert
        mailboxes: [a@plant.contoso.com]
`,
  );
  const { generateKeyPairSync } = await import('node:crypto');
  const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const account = JSON.stringify({ type: 'service_account', client_email: 'mb@contoso.iam.gserviceaccount.com', private_key: pem, token_uri: 'https://oauth2.googleapis.com/token' }, null, 2);
  const keyPath = join(dir, 'AuthKey_KEY1234567.p8');
  writeFileSync(keyPath, pem);

  const plainList = await runCli(['--config', file, 'secret', 'list']);
  assert.match(plainList.stdout, /notify\.watch\.groups\.plant\.listeners\.0\.password\s+plain text/);
  assert.match(plainList.stdout, /notify\.watch\.groups\.dove\.imap\.auth\.password\s+plain text/);
  assert.doesNotMatch(plainList.stdout, /clientSecret/, 'a certificate connection needs no client secret');
  const check = await runCli(['--config', file, 'config', 'check']);
  assert.match(check.stdout, /MB_CONFIG_SECRET_PLAINTEXT[\s\S]*listeners\.0\.password|listeners\.0\.password[\s\S]*MB_CONFIG_SECRET_PLAINTEXT/);
  const shownPlain = await runCli(['--config', file, 'config', 'show']);
  for (const v of [listenerPw, imapPw]) assert.ok(!shownPlain.stdout.includes(v) && !shownPlain.stderr.includes(v), 'config show prints a listener password');

  const sets: Array<[string[], string | undefined]> = [
    [['notify.watch.groups.plant.listeners.0.password'], `${listenerPw}\n`],
    [['notify.watch.groups.dove.imap.auth.password'], imapPw],
    [['notify.apns.privateKey', '--file', keyPath], undefined],
    [['notify.fcm.serviceAccount'], `${account}\n`],
  ];
  for (const [args, input] of sets) {
    const r = await runCli(['--config', file, 'secret', 'set', ...args], { input });
    assert.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
    assert.ok(!r.stdout.includes('BEGIN PRIVATE KEY') && !r.stdout.includes(listenerPw));
  }
  const after = readFileSync(file, 'utf8');
  for (const v of [listenerPw, imapPw, 'BEGIN PRIVATE KEY', 'service_account']) assert.ok(!after.includes(v), `${v} left in clear in the file`);
  const raw = parse(after);
  const box = await openSecretBox({ keyFile: join(dir, 'mailbridge.key'), env: {} });
  assert.equal(box.reveal(raw.notify.watch.groups.plant.listeners[0].password), listenerPw);
  assert.equal(raw.notify.watch.groups.plant.listeners[0].username, 'svc-notify@plant.contoso.com', 'the list item keeps its other keys');
  assert.equal(box.reveal(raw.notify.watch.groups.dove.imap.auth.password), imapPw);
  assert.equal(box.reveal(raw.notify.apns.privateKey), pem.trimEnd(), 'the whole PEM, every line');
  assert.deepEqual(JSON.parse(box.reveal(raw.notify.fcm.serviceAccount)), JSON.parse(account), 'the whole pretty-printed JSON');

  const list = await runCli(['--config', file, 'secret', 'list']);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /notify\.watch\.groups\.plant\.listeners\.0\.password\s+encrypted/);
  assert.match(list.stdout, /notify\.apns\.privateKey\s+encrypted/);
  const shown = await runCli(['--config', file, 'config', 'show']);
  assert.equal(shown.code, 0, shown.stderr);
  for (const v of [listenerPw, imapPw, 'BEGIN PRIVATE KEY', 'client_email']) assert.ok(!shown.stdout.includes(v), `config show prints ${v}`);
  assert.match(shown.stdout, /password: Lis\*{8} # encrypted/);

  const missing = await runCli(['--config', file, '--lang', 'de', 'secret', 'set', 'notify.apns.privateKey', '--file', join(dir, 'nope.p8')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /MB_SECRET_FILE_UNREADABLE: Datei mit dem Geheimnis nicht lesbar/);
});
