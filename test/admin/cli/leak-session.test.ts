/**
 * A whole sandbox session, as an admin runs it, leaks none of the configured secrets: the sandbox is
 * started; every kind of secret is set with `secret set` (the client secret the sandbox wrote, API
 * key, APNs .p8 key from a file, FCM service account JSON and VAPID key from stdin, EWS and IMAP
 * listener passwords, the IMAP watch login, a connector's signing secret and login, the store URL
 * from the environment); then config check/show, secret list, token, check, `serve` with the subscriptions
 * API called and mail arriving, watch, notify test and fetch --status run. Every byte they print
 * (stdout, stderr, the gateway's debug log) and every API answer is searched for each clear value,
 * its URL-encoded form and, for listener accounts, the Basic credentials built from it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createECDH, generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { openSecretBox } from '../../../src/config/secrets.ts';
import { startSandbox } from '../../../src/sandbox/index.ts';
import { MAIN, NODE, runCli, type CliResult } from './harness.ts';
import { freePort } from '../../support/ports.ts';
import { tempDir } from '../../support/temp.ts';

/** The parts of the sandbox's mailbridge.yaml this test changes. */
interface Doc {
  log?: unknown;
  connections: { sandbox: { clientSecret: string } };
  notify: { api?: unknown; apns?: unknown; fcm?: unknown; webpush?: unknown; watch: { publicUrl: string; listen: { port: number }; groups: Record<string, unknown> } };
  connectors?: Record<string, { destination: unknown; [key: string]: unknown }>;
}

const unique = (label: string) => `${label}-${randomBytes(18).toString('base64url')}`;

test('a whole sandbox session prints, logs and answers none of the configured secrets', { timeout: 300_000 }, async () => {
  const dir = tempDir('mb-leak-session-');
  chmodSync(dir.path, 0o755);
  const sandbox = await startSandbox({ dir: join(dir.path, 'sandbox') });
  const captured: Array<[string, string]> = [];
  let serve: ReturnType<typeof spawn> | undefined;
  try {
    const file = sandbox.configFile;
    const cwd = dir.path;
    const run = async (what: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> => {
      const r = await runCli(['--config', file, ...args], { cwd, ...options });
      captured.push([`${what} stdout`, r.stdout], [`${what} stderr`, r.stderr]);
      return r;
    };

    // The secrets of the session.
    const box = await openSecretBox({ keyFile: join(dir.path, 'sandbox', 'mailbridge.key'), env: {} });
    const doc = parse(readFileSync(file, 'utf8')) as Doc;
    const clientSecret = box.reveal(doc.connections.sandbox.clientSecret);
    const apnsPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const fcmPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const fcmJson = JSON.stringify(
      { type: 'service_account', project_id: 'mb-leak', client_email: 'mb@mb-leak.iam.gserviceaccount.com', private_key: fcmPem, token_uri: 'http://127.0.0.1:9/token' },
      null,
      2,
    );
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const vapidPrivate = ecdh.getPrivateKey().toString('base64url');
    const apiKey = unique('api');
    const ewsPassword = unique('ews');
    const imapListenerPassword = unique('imapl');
    const imapLogin = unique('imapg');
    const signing = unique('sign');
    const destinationPass = unique('dest');
    const storePassword = unique('pg');
    const webhookSecret = `whsec_${randomBytes(24).toString('base64')}`;
    const secrets: Record<string, string> = {
      clientSecret,
      apiKey,
      vapidPrivate,
      ewsPassword,
      imapListenerPassword,
      imapLogin,
      signing,
      destinationPass,
      storePassword,
      webhookSecret,
    };
    // Multi-line keys: any line of their body would be a leak.
    const bodyLines = (pem: string) => pem.split('\n').filter((l) => l.length >= 40 && !l.startsWith('-----'));
    bodyLines(apnsPem).forEach((l, i) => (secrets[`apns key line ${i}`] = l));
    bodyLines(fcmPem).forEach((l, i) => (secrets[`fcm key line ${i}`] = l));
    secrets['ews Basic'] = Buffer.from(`alice@contoso.test:${ewsPassword}`).toString('base64');

    // The configuration: every kind of secret in place (placeholders first, then `secret set`).
    const mailboxes = sandbox.directory.data.tenants[0]!.exchange.mailboxes.map((m) => m.address);
    const inbound = await freePort();
    doc.log = { level: 'debug' };
    doc.notify.watch.publicUrl = `https://127.0.0.1:${inbound}`;
    doc.notify.watch.listen.port = inbound;
    doc.notify.api = { keys: { mdm: 'placeholder' } };
    doc.notify.apns = { teamId: 'ABCDE12345', keyId: 'KEY1234567', topic: 'com.contoso.mail', privateKey: 'placeholder', url: 'http://127.0.0.1:9' };
    doc.notify.fcm = { serviceAccount: 'placeholder', url: 'http://127.0.0.1:9' };
    doc.notify.webpush = { vapid: { subject: 'mailto:admin@contoso.test', publicKey: ecdh.getPublicKey().toString('base64url'), privateKey: 'placeholder' } };
    doc.notify.watch.groups.plant = {
      kind: 'ews',
      listeners: [{ username: 'alice@contoso.test', password: 'placeholder' }],
      ews: { url: sandbox.ews.url, caFile: sandbox.caFile },
      mailboxes: [mailboxes[1]],
    };
    doc.notify.watch.groups.dove = {
      kind: 'imap',
      imap: { host: '127.0.0.1', port: sandbox.imap.port, caFile: sandbox.caFile, servername: 'localhost', auth: { user: '{mailbox}', password: 'placeholder' } },
      listeners: [{ username: 'bob@contoso.test', password: 'placeholder' }],
      mailboxes: [mailboxes[2]],
    };
    doc.connectors = {
      scans: {
        connection: 'sandbox',
        source: { kind: 'imap', host: '127.0.0.1', port: sandbox.imap.port, caFile: sandbox.caFile, servername: 'localhost' },
        mailboxes: [mailboxes[3]],
        destination: { kind: 'http', url: 'http://127.0.0.1:9/inbox', secret: 'placeholder' },
      },
    };
    writeFileSync(file, stringify(doc));
    const keyFile = join(dir.path, 'AuthKey_KEY1234567.p8');
    writeFileSync(keyFile, apnsPem);
    const sets: Array<[string, string[], string | undefined]> = [
      ['api key', ['notify.api.keys.mdm'], `${apiKey}\n`],
      ['apns key', ['notify.apns.privateKey', '--file', keyFile], undefined],
      ['fcm account', ['notify.fcm.serviceAccount'], fcmJson],
      ['vapid key', ['notify.webpush.vapid.privateKey'], vapidPrivate],
      ['ews listener', ['notify.watch.groups.plant.listeners.0.password'], ewsPassword],
      ['imap listener', ['notify.watch.groups.dove.listeners.0.password'], imapListenerPassword],
      ['imap login', ['notify.watch.groups.dove.imap.auth.password'], imapLogin],
      ['signing secret', ['connectors.scans.destination.secret'], signing],
    ];
    for (const [what, path, input] of sets) {
      const r = await run(`secret set ${what}`, ['secret', 'set', ...path], { input });
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
    }
    // The connector's login at its destination is left in plain text: config check must warn, show must mask.
    const plain = parse(readFileSync(file, 'utf8')) as Doc;
    plain.connectors!.scans!.destination = { kind: 'lmtp', host: '127.0.0.1', port: 9, auth: { user: 'mb', pass: destinationPass } };
    writeFileSync(file, stringify(plain));
    const yaml = readFileSync(file, 'utf8');
    for (const v of [apiKey, ewsPassword, imapLogin, vapidPrivate, 'BEGIN PRIVATE KEY', 'service_account']) assert.ok(!yaml.includes(v), 'secret set left a clear value in the file');

    const postgres = { MAILBRIDGE__STORE__DRIVER: 'postgres', MAILBRIDGE__STORE__PATH: '', MAILBRIDGE__STORE__URL: `postgres://mailbridge:${storePassword}@db.contoso.test/mailbridge` };
    const check = await run('config check', ['config', 'check']);
    assert.match(check.stdout, /MB_CONFIG_SECRET_PLAINTEXT[\s\S]*connectors\.scans\.destination\.auth\.pass|connectors\.scans\.destination\.auth\.pass[\s\S]*MB_CONFIG_SECRET_PLAINTEXT/);
    const show = await run('config show', ['config', 'show']);
    assert.equal(show.code, 0, show.stderr);
    const showPg = await run('config show --json (postgres)', ['config', 'show', '--json'], { env: postgres });
    assert.equal(showPg.code, 0, showPg.stderr);
    const list = await run('secret list', ['secret', 'list']);
    assert.equal(list.code, 0, list.stderr);
    for (const p of ['notify.watch.groups.plant.listeners.0.password', 'notify.apns.privateKey', 'notify.fcm.serviceAccount', 'notify.api.keys.mdm']) assert.match(list.stdout, new RegExp(`${p.replace(/\./g, '\\.')}\\s+encrypted`));
    assert.match((await run('secret list (postgres)', ['secret', 'list', '--json'], { env: postgres })).stdout, /store\.url/);
    assert.equal((await run('token', ['token', 'sandbox'])).code, 0);
    // check probes with every credential: logins, Exchange reads, EWS with the listener passwords.
    assert.match((await run('check', ['check'])).stdout, /Connection sandbox/);
    await run('check --json', ['check', '--json']);
    await run('fetch --status', ['fetch', 'scans', '--status']);

    // serve: the gateway with every watcher and sink, the subscriptions API, a new mail.
    serve = spawn(NODE, [MAIN, '--config', file, 'serve', '--port', '0'], { cwd, env: { PATH: process.env.PATH, LANG: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    serve.stdout!.on('data', (d) => (out += d));
    serve.stderr!.on('data', (d) => (err += d));
    const exited = once(serve, 'exit');
    const base = await new Promise<string>((resolve, reject) => {
      serve!.stdout!.on('data', () => {
        const m = /(http:\/\/\S+)\/health/.exec(out);
        if (m) resolve(m[1]!);
      });
      serve!.once('exit', () => reject(new Error(`serve exited: ${err}`)));
    });
    const api = async (what: string, path: string, init: RequestInit = {}, key = apiKey) => {
      const res = await fetch(`${base}${path}`, { ...init, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...init.headers } });
      const text = await res.text();
      captured.push([`API ${what} (${res.status})`, `${JSON.stringify([...res.headers])}\n${text}`]);
      return { status: res.status, text };
    };
    const created = await api('subscribe', '/api/v1/subscriptions', {
      method: 'POST',
      body: JSON.stringify({ mailboxes: [mailboxes[0]], sink: { kind: 'webhook', url: 'https://receiver.contoso.invalid/hook', secret: webhookSecret } }),
    });
    assert.ok(created.status === 201 || (created.status >= 400 && created.status < 500), created.text);
    assert.equal((await api('list', '/api/v1/subscriptions')).status, 200);
    assert.equal((await api('wrong key', '/api/v1/subscriptions', {}, unique('wrong'))).status, 401);
    await api('bad body', '/api/v1/subscriptions', { method: 'POST', body: JSON.stringify({ sink: { kind: 'apns', deviceToken: apiKey } }) });

    // Mail counts once the Graph watcher has subscribed (its status, written by serve, says so).
    const until = Date.now() + 90_000;
    const waitFor = async (what: string, args: string[], pattern: RegExp): Promise<string> => {
      while (Date.now() < until) {
        const w = await runCli(['--config', file, ...args], { cwd });
        captured.push([what, w.stdout + w.stderr]);
        if (pattern.test(w.stdout)) return w.stdout;
        await new Promise((r) => setTimeout(r, 500));
      }
      assert.fail(`${what}: no ${pattern} before the deadline; serve said:\n${out}\n${err.slice(-4000)}`);
    };
    await waitFor('watch status', ['watch', '--once'], /^sandbox \(graph\): .*watching 1/m);
    await sandbox.dovecot.deliver({ from: 'sender@outside.example', to: [mailboxes[0]!] }, Buffer.from(`From: sender@outside.example\r\nTo: ${mailboxes[0]}\r\nSubject: leak test\r\n\r\nhello\r\n`));
    // The session is whole when the new mail has become an event (Graph change notification → store).
    await waitFor('watch --json', ['watch', '--once', '--json'], /"subject": "leak test"/);
    await run('watch', ['watch', '--once']);
    await run('notify test fcm', ['notify', 'test', 'fcm', '--params', JSON.stringify({ registrationToken: 'leak-test-token' })]);
    await run('notify test apns', ['notify', 'test', 'apns', '--params', JSON.stringify({ deviceToken: 'ab'.repeat(32) })]);

    serve.kill('SIGTERM');
    await exited;
    serve = undefined;
    captured.push(['serve stdout', out], ['serve stderr', err]);
    assert.match(out, /SIGTERM received/);
    // A clean start: no process warning (Fastify deprecations came on every serve with a watch listener).
    assert.doesNotMatch(err, /\(node:\d+\) \[?\w*\]? ?\w*(Warning|Deprecation)/, err.split('\n').find((l) => /Warning|Deprecation/.test(l)));
    assert.ok(err.split('\n').filter(Boolean).length > 5, 'the debug log was written');
    // The listener passwords were in play: Exchange and the IMAP server were asked with them.
    assert.match(err, /MB_EWS_UNAUTHORIZED/);
    assert.match(err, /MB_WATCH_IMAP_LOGIN_FAILED/);

    for (const [where, text] of captured) {
      for (const [name, value] of Object.entries(secrets)) {
        assert.ok(!text.includes(value), `${name} in clear in ${where}:\n${text.slice(Math.max(0, text.indexOf(value) - 300), text.indexOf(value) + 300)}`);
        assert.ok(!text.includes(encodeURIComponent(value)), `${name} URL-encoded in ${where}`);
      }
    }
  } finally {
    if (serve) {
      serve.kill('SIGKILL');
      await once(serve, 'exit').catch(() => undefined);
    }
    await sandbox.close();
    dir.remove();
  }
});
