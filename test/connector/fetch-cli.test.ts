/**
 * `mailbridge fetch`: the whole way through as an admin runs it (mailbridge.yaml written by the
 * sandbox plus a connectors section; the client secret sealed; a token from sandbox Entra ID; the
 * Exchange Online IMAP front; a maildir), with plain lines when stdout is not a terminal; the status
 * line drawn on a terminal; the checkpoint listing; and the usage and configuration errors, in
 * English and German.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { command, Progress, runFetch, type FetchEnvironment } from '../../src/admin/cli/commands/fetch.ts';
import type { CommandContext } from '../../src/admin/cli/command.ts';
import { parseCommandLine } from '../../src/admin/cli/args.ts';
import { silentLogger } from '../../src/log/index.ts';
import type { Output } from '../../src/admin/cli/output.ts';
import { MbError } from '../../src/errors/index.ts';
import type { Lang } from '../../src/i18n/index.ts';
import { startSandbox } from '../../src/sandbox/index.ts';
import { append, connectorConfig, folderContents, maildirFiles, makeMessage, NODE, ROOT, startRig, tempStore } from './helpers.ts';
import { waitFor } from '../support/wait.ts';
import { tempDir } from '../support/temp.ts';

const run = promisify(execFile);

function capture(lang: Lang, tty: boolean): Output & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lang, tty, lines, errors, line: (t = '') => void lines.push(t), error: (t) => void errors.push(t), json: (v) => void lines.push(JSON.stringify(v)) };
}

function ctx(argv: string[], out: Output): CommandContext<typeof command.options> {
  const { positionals: args, options: opts } = parseCommandLine('fetch', command.options, argv, out.lang);
  return { args, opts, lang: out.lang, out, configPath: '/nonexistent.yaml', env: {}, prompt: async () => '', readStdin: async () => undefined, log: silentLogger, stopSignal: new Promise(() => undefined) };
}

test('mailbridge fetch --once end to end: sandbox Entra token, Exchange IMAP front, maildir; plain lines off a terminal', { timeout: 120_000 }, async () => {
  const dir = tempDir('mb-fetch-cli-');
  // Dovecot's mail processes (vmail) must pass through this folder to the sandbox's mail.
  chmodSync(dir.path, 0o755);
  const sandbox = await startSandbox({ dir: join(dir.path, 'sandbox') });
  try {
    const msgs = [makeMessage(1, { to: 'scanner@contoso.test' }), makeMessage(2, { to: 'scanner@contoso.test', size: 30_000 })];
    for (const m of msgs) await sandbox.dovecot.deliver({ from: 'sender@outside.example', to: ['scanner@contoso.test'] }, m);
    const doc = parse(readFileSync(sandbox.configFile, 'utf8')) as Record<string, unknown>;
    const md = join(dir.path, 'maildir');
    doc.connectors = {
      scans: {
        connection: 'sandbox',
        source: { kind: 'imap', host: '127.0.0.1', port: sandbox.imap.port, caFile: sandbox.caFile, servername: 'localhost' },
        mailboxes: ['scanner@contoso.test'],
        destination: { kind: 'maildir', path: md },
        after: { action: 'move', folder: 'Archive' },
      },
    };
    writeFileSync(sandbox.configFile, stringify(doc));
    const cli = (args: string[], lang = 'en') =>
      run(NODE, [join(ROOT, 'src/admin/cli/main.ts'), '--config', sandbox.configFile, '--lang', lang, ...args], { cwd: dir.path, env: { PATH: process.env.PATH } }).catch(
        (err: { code: number; stdout: string; stderr: string }) => err,
      );

    const first = await cli(['fetch', 'scans', '--once']);
    assert.equal('code' in first ? first.code : 0, 0, `stderr: ${first.stderr}`);
    const lines = first.stdout.trim().split('\n');
    assert.match(lines[0]!, /^Fetching with connector scans: 1 mailbox\(es\) → maildir .* \(once\)$/);
    assert.ok(lines.includes('scanner@contoso.test INBOX: 2 delivered'), first.stdout);
    assert.match(lines.at(-1)!, /^Done: 2 messages, [\d.]+ KB in [\d.]+ s \([\d.]+ messages\/s, .*\/s\); 0 refused, 0 already delivered, 0 redelivered, 0 error\(s\)\.$/);
    assert.ok(!first.stdout.includes('\u001b['), 'no terminal control codes off a terminal');
    // The secret and the token never appear.
    const secret = sandbox.directory.data.tenants[0]!.apps[0]!.secrets[0]!.value;
    assert.ok(!first.stdout.includes(secret) && !first.stderr.includes(secret));
    assert.ok(!/eyJ[A-Za-z0-9_-]{8,}\./.test(first.stdout + first.stderr));

    // Maildir files carry Dovecot's Return-Path line in front of each message as delivered into the source.
    const files = maildirFiles(md);
    assert.equal(files.length, 2);
    for (const m of msgs) assert.ok(files.some((f) => f.raw.toString('latin1').endsWith(m.toString('latin1'))));
    assert.equal(sandbox.dovecot.inboxFiles('scanner@contoso.test').length, 0, 'moved out of the INBOX');

    const again = await cli(['fetch', 'scans', '--once'], 'de');
    assert.match(again.stdout.trim().split('\n').at(-1)!, /^Fertig: 0 Nachrichten, 0 B in [\d,]+ s/);

    const status = await cli(['fetch', 'scans', '--status']);
    assert.match(status.stdout, /scanner@contoso\.test \/ INBOX\s+\d+\s+\d+\s+2\s+0\s+0/);

    const unknown = await cli(['fetch', 'nope', '--once'], 'de');
    assert.equal('code' in unknown ? unknown.code : 0, 1);
    assert.match(unknown.stderr, /MB_CONNECTOR_UNKNOWN: Unbekannter Connector/);
    assert.match(unknown.stderr, /scans/);
  } finally {
    await sandbox.close();
    dir.remove();
  }
});

test('fetch through runFetch: --once exit code 1 after an error, usage errors, unknown connection', async () => {
  const rig = await startRig();
  const st = await tempStore();
  const md = tempDir('mb-fetch-md-');
  try {
    await append(rig, 'cli@contoso.test', 'INBOX', [makeMessage(1), makeMessage(2), makeMessage(3)]);
    const good = connectorConfig(rig, { mailboxes: ['cli@contoso.test'], destination: { kind: 'maildir', path: md.path } });
    const broken = connectorConfig(rig, { mailboxes: ['cli@contoso.test'], destination: { kind: 'lmtp', port: 1, tls: 'none' } });
    const env: FetchEnvironment = {
      config: { connections: { test: {} as never }, connectors: { good, broken, orphan: { ...good, connection: 'missing' } } },
      store: st.store,
      tokens: () => rig.tokens,
      reveal: (s) => s,
      close: async () => undefined,
    };
    const open = async () => env;

    const tty = capture('en', true);
    assert.equal(await runFetch(ctx(['good', '--once'], tty), open), 0);
    const status = tty.lines.filter((l) => l.includes('↓'));
    assert.ok(status.length >= 1);
    assert.match(status.at(-1)!, /↓ 3 messages/);
    assert.match(status.at(-1)!, /connected 1\/1/);
    if (status.length > 1) assert.ok(status.slice(1).every((l) => l.startsWith('\x1b[1A\x1b[2K')), 'redrawn in place');
    assert.ok((await folderContents(rig, 'cli@contoso.test', 'INBOX')).every((m) => m.flags.has('\\Seen')));

    await append(rig, 'cli@contoso.test', 'INBOX', [makeMessage(4)]);
    const plain = capture('de', false);
    assert.equal(await runFetch(ctx(['broken', '--once'], plain), open), 1);
    assert.ok(plain.errors.some((e) => e.startsWith('MB_CONNECTOR_DEST_UNREACHABLE: Ziel nicht erreichbar')), plain.errors.join('\n'));
    assert.match(plain.lines.at(-1)!, /^Fertig: .* 1 Fehler\.$/);

    await assert.rejects(async () => runFetch(ctx([], capture('en', false)), open), (e: unknown) => e instanceof MbError && e.code === 'MB_CLI_USAGE');
    await assert.rejects(async () => runFetch(ctx(['good', '--fast'], capture('en', false)), open), (e: unknown) => e instanceof MbError && e.code === 'MB_CLI_USAGE' && /--fast/.test(e.message));
    await assert.rejects(async () => runFetch(ctx(['orphan'], capture('en', false)), open), (e: unknown) => e instanceof MbError && e.code === 'MB_CONNECTOR_CONNECTION_UNKNOWN');
  } finally {
    md.remove();
    await st.close();
    await rig.close();
  }
});

test('progress: plain lines every interval off a terminal; help exists in English and German', () => {
  let now = 0;
  const out = capture('en', false);
  const p = new Progress(out, { mailboxes: 2, now: () => now, plainEveryMs: 1000 });
  const scope = { connector: 'c', mailbox: 'a@b.c', folder: 'INBOX' };
  for (let i = 0; i < 10; i++) {
    now += 200;
    p.on({ type: 'delivered', scope, item: String(i), bytes: 2048, deliveryId: 'x', redelivery: false });
  }
  assert.deepEqual(out.lines, ['5 messages, 10.0 KB, 5.0 messages/s, 10.0 KB/s', '10 messages, 20.0 KB, 5.0 messages/s, 10.0 KB/s']);
  assert.match(command.help.en, /--retry-rejected/);
  assert.match(command.help.de, /--retry-rejected/);
  assert.notEqual(command.summary.en, command.summary.de);
});

test('a problem the connector keeps retrying is shown once with its MB code, again only after it cleared; log.level filters', () => {
  const out = capture('en', false);
  const p = new Progress(out, { mailboxes: 1 });
  const scope = { connector: 'c', mailbox: 'a@b.c', folder: 'INBOX' };
  const down = new MbError('MB_CONNECTOR_DEST_TEMPFAIL', { destination: 'http http://127.0.0.1/', detail: 'HTTP 500', connector: 'c', item: '1', mailbox: 'a@b.c', folder: 'INBOX' });
  for (let attempt = 1; attempt <= 20; attempt++) p.on({ type: 'retry', scope, item: '1', error: down, delayMs: 50, attempt });
  assert.equal(out.errors.length, 1, out.errors.join('\n'));
  assert.match(out.errors[0]!, /^retrying until it works \(shown once\): MB_CONNECTOR_DEST_TEMPFAIL/);
  p.on({ type: 'delivered', scope, item: '1', bytes: 10, deliveryId: 'x', redelivery: false });
  assert.equal(out.errors[1], 'a@b.c INBOX: delivering again (MB_CONNECTOR_DEST_TEMPFAIL is over)');
  p.on({ type: 'retry', scope, item: '2', error: down, delayMs: 50, attempt: 1 });
  assert.equal(out.errors.length, 3, 'a new outage is shown again');

  // A mailbox that keeps failing to sign in: once until it connects.
  const refused = new MbError('MB_CONNECTOR_AUTH_FAILED', { mailbox: 'a@b.c', host: 'outlook.office365.com', port: 993, detail: 'NO AUTHENTICATE failed.' });
  for (let i = 0; i < 5; i++) p.on({ type: 'error', connector: 'c', mailbox: 'a@b.c', error: refused, retryInMs: 60_000 });
  assert.equal(out.errors.filter((e) => e.includes('MB_CONNECTOR_AUTH_FAILED')).length, 1);
  p.on({ type: 'connected', connector: 'c', mailbox: 'a@b.c' });
  p.on({ type: 'error', connector: 'c', mailbox: 'a@b.c', error: refused, retryInMs: 60_000 });
  assert.equal(out.errors.filter((e) => e.includes('MB_CONNECTOR_AUTH_FAILED')).length, 2);

  const quiet = capture('de', false);
  const q = new Progress(quiet, { mailboxes: 1, level: 'error' });
  q.on({ type: 'retry', scope, item: '1', error: down, delayMs: 50, attempt: 1 });
  q.on({ type: 'warning', scope, error: new MbError('MB_CONNECTOR_MIME_MALFORMED', { item: '1', mailbox: 'a@b.c', folder: 'INBOX', detail: 'x' }) });
  assert.deepEqual(quiet.errors, []);
  q.on({ type: 'error', connector: 'c', mailbox: 'a@b.c', error: refused });
  assert.equal(quiet.errors.length, 1);
  assert.match(quiet.errors[0]!, /^MB_CONNECTOR_AUTH_FAILED/);
});

test('fetch against a destination that answers 500: one line with the MB code while it retries; --once exit codes 3 (refused) and the log.level of mailbridge.yaml', async () => {
  const rig = await startRig();
  const st = await tempStore();
  let status = 500;
  let requests = 0;
  const http = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests++;
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 500 ? 'database down' : 'no such tenant');
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  try {
    const url = `http://127.0.0.1:${(http.address() as { port: number }).port}/`;
    await append(rig, 'down@contoso.test', 'INBOX', [makeMessage(1)]);
    const down = connectorConfig(rig, { mailboxes: ['down@contoso.test'], destination: { kind: 'http', url, secret: 'abcdefgh-secret' } });
    const env = (level?: 'error' | 'debug'): FetchEnvironment => ({
      config: { connections: { test: {} as never }, connectors: { down }, ...(level ? { log: { level } } : {}) },
      store: st.store,
      tokens: () => rig.tokens,
      reveal: (s) => s,
      close: async () => undefined,
    });

    // Running (not --once): stopped by the test after several retries.
    let stop: (s: NodeJS.Signals) => void = () => undefined;
    const out = capture('en', false);
    const running = runFetch({ ...ctx(['down'], out), stopSignal: new Promise((r) => (stop = r)) }, async () => env());
    await waitFor(() => requests >= 5, 30_000, 'five attempts');
    stop('SIGTERM');
    assert.equal(await running, 0);
    assert.equal(out.errors.filter((e) => e.includes('MB_CONNECTOR_DEST_TEMPFAIL')).length, 1, out.errors.join('\n'));
    assert.match(out.errors.find((e) => e.includes('MB_CONNECTOR_DEST_TEMPFAIL'))!, /HTTP 500: database down/);

    // --once: refused for good → exit 3, for cron.
    status = 422;
    const refused = capture('en', false);
    assert.equal(await runFetch(ctx(['down', '--once'], refused), async () => env()), 3);
    assert.ok(refused.errors.some((e) => e.startsWith('MB_CONNECTOR_DEST_REJECTED')));

    // log.level: error hides warnings; debug adds the JSON log.
    await append(rig, 'down@contoso.test', 'INBOX', [Buffer.from('From: a@outside.example\r\nnot a header\r\n\r\nbody\r\n')]);
    status = 200;
    const quiet = capture('en', false);
    assert.equal(await runFetch(ctx(['down', '--once', '--retry-rejected'], quiet), async () => env('error')), 0);
    assert.ok(!quiet.errors.some((e) => e.includes('MB_CONNECTOR_MIME_MALFORMED')), quiet.errors.join('\n'));
    await append(rig, 'down@contoso.test', 'INBOX', [makeMessage(3)]);
    const verbose = capture('en', false);
    assert.equal(await runFetch(ctx(['down', '--once'], verbose), async () => env('debug')), 0);
    const json = verbose.errors.filter((e) => e.startsWith('{')).map((e) => JSON.parse(e) as { level: number; msg: string });
    assert.ok(json.some((l) => l.msg === 'delivered' && l.level === 20), verbose.errors.join('\n'));
  } finally {
    await new Promise<void>((r) => http.close(() => r()));
    await st.close();
    await rig.close();
  }
});
