/**
 * The sandbox's Dovecot runner and scripts against the real Debian Dovecot: logins with our JWTs
 * (and the failures Dovecot reports), LMTP delivery read back byte for byte, IDLE, submission
 * through the in-process relay, and that nothing keeps running after stop(), after stop.sh, or
 * when the process that started Dovecot dies without stopping it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import { SignJWT } from 'jose';
import nodemailer from 'nodemailer';
import { createSandboxCa, type SandboxCa } from '../../src/sandbox/ca.ts';
import { isRunning, startDovecot, type Dovecot } from '../../src/sandbox/dovecot.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');

let ca: SandboxCa;
let dovecot: Dovecot;
const own = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ISSUER = 'https://interop.sandbox.test/';

before(async () => {
  await run('bash', [join(ROOT, 'scripts', 'dovecot', 'install.sh')]);
  ca = createSandboxCa();
  dovecot = await startDovecot({
    tls: ca.issueServer(),
    jwtPublicKeyPem: own.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    jwtKeyId: 'interop',
    issuer: ISSUER,
  });
});

after(async () => {
  const pid = dovecot?.pid;
  await dovecot?.stop();
  if (pid) assert.equal(isRunning(pid), false);
});

/** Descendants of a PID (ps --ppid, recursively). */
async function descendants(pid: number): Promise<number[]> {
  const out = await run('ps', ['-o', 'pid=', '--ppid', String(pid)]).then(
    (r) => r.stdout,
    () => '',
  );
  const direct = out.split(/\s+/).filter(Boolean).map(Number);
  const nested = await Promise.all(direct.map(descendants));
  return [...direct, ...nested.flat()];
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isRunning(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

function imap(port: number, user: string, accessToken: string, secure: boolean): ImapFlow {
  return new ImapFlow({ host: '127.0.0.1', port, secure, tls: { ca: ca.certPem }, auth: { user, accessToken }, logger: false });
}

async function ownToken(claims: Record<string, unknown>, header: Record<string, unknown> = { alg: 'RS256', typ: 'JWT', kid: 'interop' }, expSeconds = 3600): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader(header as { alg: string })
    .setIssuer(ISSUER)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + expSeconds)
    .sign(own.privateKey);
}

test('four distinct loopback ports, a running master, its files under one directory', async () => {
  const ports = Object.values(dovecot.ports);
  assert.equal(new Set(ports).size, 4);
  assert.ok(isRunning(dovecot.pid));
  assert.ok(existsSync(join(dovecot.dir, 'run', 'master.pid')));
  assert.ok(existsSync(join(dovecot.dir, 'keys', 'default', 'RS256', 'backend')));
  assert.ok(existsSync(join(dovecot.dir, 'keys', 'default', 'RS256', 'interop')));
});

test('mintToken logs in over STARTTLS and implicit TLS; a token for another user does not', async () => {
  for (const [port, secure] of [
    [dovecot.ports.imap, false],
    [dovecot.ports.imaps, true],
  ] as const) {
    const c = imap(port, 'alice@contoso.test', await dovecot.mintToken('Alice@Contoso.test'), secure);
    await c.connect();
    assert.equal(c.secureConnection || c.usable, true);
    const mailboxes = await c.list();
    assert.ok(mailboxes.some((m) => m.path === 'INBOX'));
    await c.logout();
  }
  const wrong = imap(dovecot.ports.imaps, 'bob@contoso.test', await dovecot.mintToken('alice@contoso.test'), true);
  await assert.rejects(wrong.connect(), (err: { authenticationFailed?: boolean; serverResponseCode?: string }) => {
    assert.equal(err.authenticationFailed, true);
    assert.equal(err.serverResponseCode, 'AUTHENTICATIONFAILED');
    return true;
  });
  assert.match(await dovecot.log(), /Username 'bob@contoso\.test' did not match 'alice@contoso\.test'/);
});

test('a caller-signed token (jwtPublicKeyPem) works; wrong issuer, missing typ and expiry are refused for the reasons Dovecot logs', async () => {
  const user = 'carol@contoso.test';
  const ok = imap(dovecot.ports.imaps, user, await ownToken({ sub: user, email: user }), true);
  await ok.connect();
  await ok.logout();
  const cases: [string, Promise<string>][] = [
    ['Issuer', new SignJWT({ sub: user, email: user }).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: 'interop' }).setIssuer('https://evil.test/').setExpirationTime('1h').sign(own.privateKey)],
    ["Cannot find 'typ' field", ownToken({ sub: user, email: user }, { alg: 'RS256', kid: 'interop' })],
    ['Token has expired', ownToken({ sub: user, email: user }, undefined, -60)],
  ];
  for (const [reason, token] of cases) {
    const c = imap(dovecot.ports.imaps, user, await token, true);
    await assert.rejects(c.connect(), (err: { authenticationFailed?: boolean }) => err.authenticationFailed === true);
    // Auth failures are answered after Dovecot's flush timer; the log line comes with them.
    assert.match(await dovecot.log(), new RegExp(reason), reason);
  }
});

test('LMTP delivery is stored byte for byte (only Return-Path is prepended) and wakes an IDLE client', async () => {
  const user = 'dave@contoso.test';
  const c = imap(dovecot.ports.imaps, user, await dovecot.mintToken(user), true);
  await c.connect();
  await c.mailboxOpen('INBOX');
  const exists = new Promise<number>((resolve) => c.on('exists', (e: { count: number }) => resolve(e.count)));
  void c.idle();
  const raw = Buffer.from('From: x@example.org\r\nTo: dave@contoso.test\r\nSubject: lmtp\r\n\r\n.leading dot\r\nGrüße\r\n', 'utf8');
  const result = await dovecot.deliver({ from: 'x@example.org', to: [user, 'nobody@contoso.test'] }, raw);
  assert.deepEqual(result.accepted, [user, 'nobody@contoso.test']);
  assert.equal(await exists, 1);
  const message = await c.fetchOne('1', { source: true });
  assert.ok(message && message.source);
  assert.ok(message.source.equals(Buffer.concat([Buffer.from('Return-Path: <x@example.org>\r\n'), raw])), message.source.toString());
  await c.logout();
  assert.equal(dovecot.inboxFiles(user).length, 1);
});

test('Dovecot submission (XOAUTH2 via nodemailer) relays through the in-process bridge into the Maildir', async () => {
  const user = 'erin@contoso.test';
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: dovecot.ports.submission,
    secure: false,
    requireTLS: true,
    tls: { ca: ca.certPem },
    auth: { type: 'OAuth2', user, accessToken: await dovecot.mintToken(user) },
  });
  const info = await transport.sendMail({ from: user, to: 'frank@contoso.test', subject: 'via submission', text: 'hello' });
  transport.close();
  assert.match(info.response, /^250 /);
  assert.equal(dovecot.inboxFiles('frank@contoso.test').length, 1);
});

test('two instances run side by side; stop() ends the master and every child and removes the temp dir', async () => {
  const second = await startDovecot({ tls: ca.issueServer() });
  assert.notEqual(second.pid, dovecot.pid);
  for (const p of Object.values(second.ports)) assert.ok(!Object.values(dovecot.ports).includes(p));
  const kids = await descendants(second.pid);
  assert.ok(kids.length > 0, 'Dovecot runs its service processes under the master');
  await second.stop();
  assert.equal(isRunning(second.pid), false);
  for (const k of kids) assert.equal(isRunning(k), false, `child ${k}`);
  assert.equal(existsSync(second.dir), false);
  await second.stop(); // idempotent
});

test('a given dir is kept and reused; stale runtime state does not get in the way', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-dovecot-keep-'));
  try {
    chmodSync(dir, 0o755);
    const first = await startDovecot({ dir, tls: ca.issueServer() });
    await first.deliver({ from: 'a@example.org', to: ['gina@contoso.test'] }, 'Subject: one\r\n\r\n1\r\n');
    await first.stop();
    assert.ok(existsSync(join(dir, 'mail')));
    const again = await startDovecot({ dir, tls: ca.issueServer() });
    await again.deliver({ from: 'a@example.org', to: ['gina@contoso.test'] }, 'Subject: two\r\n\r\n2\r\n');
    assert.equal(again.inboxFiles('gina@contoso.test').length, 2);
    await again.stop();
    assert.equal(isRunning(again.pid), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no Dovecot survives the process that started it: exit without stop(), and SIGKILL', async () => {
  const script = `
    import { startDovecot } from ${JSON.stringify(join(ROOT, 'src', 'sandbox', 'dovecot.ts'))};
    import { createSandboxCa } from ${JSON.stringify(join(ROOT, 'src', 'sandbox', 'ca.ts'))};
    const d = await startDovecot({ tls: createSandboxCa().issueServer() });
    console.log(JSON.stringify({ pid: d.pid, dir: d.dir }));
    // node -e puts the first extra argument at argv[1].
    if (process.argv.includes('exit')) process.exit(1);
    setInterval(() => {}, 1000);
  `;
  for (const mode of ['exit', 'kill'] as const) {
    const child = spawn(NODE, ['--input-type=module', '-e', script, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((r) => child.once('exit', r));
    // Never leave the child behind, whatever fails below.
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const { pid, dir } = await new Promise<{ pid: number; dir: string }>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => resolve(JSON.parse(d.toString()) as { pid: number; dir: string }));
      void exited.then(() => reject(new Error('child exited before starting Dovecot')));
    });
    // The child prints once startDovecot() returned, i.e. Dovecot served; in exit mode it may be gone already.
    assert.ok(pid > 0 && (mode === 'exit' || isRunning(pid)), `${mode}: Dovecot started`);
    if (mode === 'kill') child.kill('SIGKILL');
    await exited;
    clearTimeout(guard);
    // exit: the exit hook sends SIGTERM at once; SIGKILL: the watchdog notices within a second.
    assert.equal(await waitGone(pid, 15_000), true, `${mode}: Dovecot ${pid} stopped`);
    // …and the watchdog removes the temp dir the runner made.
    const deadline = Date.now() + 15_000;
    while (existsSync(dir) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(existsSync(dir), false, `${mode}: ${dir} removed`);
  }
});

test('runs without root too: as an unprivileged user Dovecot needs no user switch and no chroot', async () => {
  const script = `
    import { startDovecot } from ${JSON.stringify(join(ROOT, 'src', 'sandbox', 'dovecot.ts'))};
    import { createSandboxCa } from ${JSON.stringify(join(ROOT, 'src', 'sandbox', 'ca.ts'))};
    import { ImapFlow } from 'imapflow';
    const ca = createSandboxCa();
    const d = await startDovecot({ tls: ca.issueServer() });
    await d.deliver({ from: 'a@example.org', to: ['ivy@contoso.test'] }, 'Subject: hi\\r\\n\\nbody\\r\\n');
    const c = new ImapFlow({ host: '127.0.0.1', port: d.ports.imaps, secure: true, tls: { ca: ca.certPem },
      auth: { user: 'ivy@contoso.test', accessToken: await d.mintToken('ivy@contoso.test') }, logger: false });
    await c.connect();
    const box = await c.mailboxOpen('INBOX');
    await c.logout();
    await d.stop();
    console.log(JSON.stringify({ uid: process.getuid(), exists: box.exists }));
  `;
  // As root (this machine, CI containers) run the child as nobody; otherwise we are unprivileged already.
  const [cmd, args] = process.getuid?.() === 0 ? ['runuser', ['-u', 'nobody', '--', NODE]] : [NODE, []];
  const { stdout } = await run(cmd, [...args, '--input-type=module', '-e', script], { cwd: ROOT, env: { ...process.env, HOME: tmpdir() }, timeout: 60_000 });
  const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { uid: number; exists: number };
  assert.notEqual(result.uid, 0);
  assert.equal(result.exists, 1);
});

test('scripts/dovecot/start.sh starts from nothing, its token logs in, stop.sh leaves no process', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'mb-dovecot-script-'));
  const dir = join(parent, 'fresh');
  try {
    // A parent Dovecot's auth process cannot enter is refused with a clear message.
    await assert.rejects(run('bash', [join(ROOT, 'scripts', 'dovecot', 'start.sh'), dir], { cwd: ROOT }), /MB_SANDBOX_DIR_NOT_TRAVERSABLE: .*may not pass through.*Fix: .*chmod o\+x/s);
    chmodSync(parent, 0o755);
    const { stdout } = await run('bash', [join(ROOT, 'scripts', 'dovecot', 'start.sh'), dir, '--user', 'hank@contoso.test'], { cwd: ROOT });
    const values = Object.fromEntries(stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    const pid = Number(values.pid);
    assert.ok(pid > 0 && isRunning(pid));
    const kids = await descendants(pid);
    const c = new ImapFlow({
      host: '127.0.0.1',
      port: Number(values.imaps),
      secure: true,
      tls: { ca: readFileSync(values.ca!, 'utf8') },
      auth: { user: 'hank@contoso.test', accessToken: values['token(hank@contoso.test)']! },
      logger: false,
    });
    await c.connect().catch(async (err: Error) => {
      throw new Error(`${err.message}: ${readFileSync(join(dir, 'log', 'dovecot.log'), 'utf8')}`);
    });
    await c.logout();
    // A second start refuses while the first runs.
    await assert.rejects(run('bash', [join(ROOT, 'scripts', 'dovecot', 'start.sh'), dir], { cwd: ROOT }), /already running/);
    const stop = await run('bash', [join(ROOT, 'scripts', 'dovecot', 'stop.sh'), dir]);
    assert.match(stop.stdout, new RegExp(`stopped Dovecot ${pid}`));
    assert.equal(isRunning(pid), false);
    for (const k of kids) assert.equal(isRunning(k), false, `child ${k}`);
    const again = await run('bash', [join(ROOT, 'scripts', 'dovecot', 'stop.sh'), dir]);
    assert.match(again.stdout, /no Dovecot running/);
  } finally {
    // Whatever failed above, the daemon goes before its directory does.
    await run('bash', [join(ROOT, 'scripts', 'dovecot', 'stop.sh'), dir]).catch(() => undefined);
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});
