/**
 * bin/mailbridge.mjs: on an older Node it runs the bundled Node 24 as a child that gets the
 * signals and whose status comes back; on Node 24 it runs the CLI in its own process; without a
 * Node 24 it prints MB_NODE_TOO_OLD in the admin's language; and it prints no warnings.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { explain, renderText } from '../../src/errors/index.ts';
import { childrenOf, getJson, isRunning, node24, oldNode, repo, run, watch, type Watched } from './helpers.ts';

const launcher = join(repo, 'bin', 'mailbridge.mjs');
const version = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version;
const work = mkdtempSync(join(tmpdir(), 'mb-launcher-'));
const started: Watched[] = [];
const children: number[] = [];
// A launcher that does not pass signals on leaves its child behind: stop both, and fail by timeout
// rather than hang on the child's open output.
const limit = { timeout: 60_000 };
after(() => {
  for (const w of started) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
  for (const pid of children) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

function serve(node: string, name: string, env: NodeJS.ProcessEnv = {}, nodeFlags: string[] = []): Watched {
  const config = join(work, `${name}.yaml`);
  writeFileSync(config, `server: { port: 0 }\nstore: { driver: sqlite, path: ${join(work, `${name}.db`)} }\nlog: { level: info }\n`);
  const w = watch(node, [...nodeFlags, launcher, '--config', config, 'serve'], { env: { ...process.env, LANG: 'C.UTF-8', MAILBRIDGE_LANG: 'en', ...env } });
  started.push(w);
  return w;
}

async function healthy(w: Watched): Promise<void> {
  const [, url] = await w.waitFor(/mailbridge is running: (\S+\/health)/);
  const h = await getJson(url!);
  assert.equal(h?.status, 200);
  assert.equal(h?.body.status, 'ok');
}

/** The one child of the launcher, which must be the bundled Node 24. */
function theChild(w: Watched): number {
  const kids = childrenOf(w.child.pid!);
  assert.equal(kids.length, 1, `launcher children: ${kids.join(' ')}`);
  children.push(kids[0]!);
  assert.equal(readlinkSync(`/proc/${kids[0]}/exe`), realpathSync(node24));
  return kids[0]!;
}

test('on an older Node the launcher runs Node 24 as a child: SIGTERM reaches it, it stops cleanly and its status comes back', limit, async () => {
  const w = serve(oldNode(), 'term');
  await healthy(w);
  const child = theChild(w);
  w.child.kill('SIGTERM');
  const end = await w.exited;
  assert.deepEqual(end, { code: 0, signal: null });
  assert.match(w.stdout(), /SIGTERM received, stopping mailbridge\./);
  assert.equal(isRunning(child), false, 'the Node 24 child outlived the launcher');
});

test('on an older Node SIGHUP reaches the child (serve reloads) and SIGINT stops it cleanly', limit, async () => {
  const w = serve(oldNode(), 'hup');
  await healthy(w);
  const child = theChild(w);
  writeFileSync(join(work, 'hup.yaml'), readFileSync(join(work, 'hup.yaml'), 'utf8').replace('level: info', 'level: debug'));
  w.child.kill('SIGHUP');
  await w.waitFor(/"to":"debug".*reload: log level changed/);
  await w.waitFor(/reload: done/);
  assert.equal(isRunning(child), true);
  w.child.kill('SIGINT');
  assert.deepEqual(await w.exited, { code: 0, signal: null });
  assert.match(w.stdout(), /SIGINT received/);
  assert.equal(isRunning(child), false);
});

test('on an older Node in a terminal, Ctrl-C reaches the child once (from the terminal, not again from the launcher) and it stops cleanly', limit, async () => {
  const config = join(work, 'tty.yaml');
  writeFileSync(config, `server: { port: 0 }\nstore: { driver: sqlite, path: ${join(work, 'tty.db')} }\n`);
  // script(1) runs the launcher on a pseudo-terminal, as the foreground job; ^C typed there makes
  // the terminal send SIGINT to the launcher and its child alike. A second SIGINT from the
  // launcher would make mailbridge stop at once with 130 instead of cleanly. `exec` makes the
  // launcher the session leader whatever $SHELL is: dash would otherwise stay in between, be
  // ended by the same ^C itself and make script(1) report 130.
  const w = watch('script', ['-qfec', `exec ${oldNode()} ${launcher} --config ${config} serve`, '/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, LANG: 'C.UTF-8', MAILBRIDGE_LANG: 'en' },
  });
  started.push(w);
  await w.waitFor(/mailbridge is running: \S+\/health/);
  w.child.stdin!.write('\x03');
  assert.deepEqual(await w.exited, { code: 0, signal: null }, w.stdout());
  assert.equal(w.stdout().match(/SIGINT received/g)?.length, 1, w.stdout());
});

test('on an older Node a child ended by a signal ends the launcher with the same signal', limit, async () => {
  const w = serve(oldNode(), 'kill');
  await healthy(w);
  process.kill(theChild(w), 'SIGKILL');
  assert.deepEqual(await w.exited, { code: null, signal: 'SIGKILL' });
});

test('on Node 24 the launcher runs the CLI in its own process: no child, SIGTERM stops it cleanly', limit, async () => {
  const w = serve(node24, 'inproc');
  await healthy(w);
  assert.deepEqual(childrenOf(w.child.pid!), []);
  w.child.kill('SIGTERM');
  assert.deepEqual(await w.exited, { code: 0, signal: null });
  assert.match(w.stdout(), /SIGTERM received/);
});

test("serve runs with package.json's V8 options and environment (mailbridge.serveFlags, serveEnv) in the same process on Node 24 and in the child on an older Node; an admin's own values win", limit, async () => {
  const { serveFlags: flags, serveEnv } = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { mailbridge: { serveFlags: string[]; serveEnv: Record<string, string> } }).mailbridge;
  assert.ok(flags.length > 0 && Object.keys(serveEnv).length > 0);
  const args = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  const env = (pid: number) => Object.fromEntries(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const hasEnv = (pid: number) => {
    const e = env(pid);
    for (const [k, v] of Object.entries(serveEnv)) assert.equal(e[k], v, k);
  };
  const stop = async (w: Watched) => {
    w.child.kill('SIGTERM');
    assert.deepEqual(await w.exited, { code: 0, signal: null });
  };

  const inproc = serve(node24, 'flags-inproc');
  await healthy(inproc);
  assert.deepEqual(childrenOf(inproc.child.pid!), [], 'started over in place (execve), not as a child');
  for (const f of flags) assert.ok(args(inproc.child.pid!).includes(f), `${f} in ${args(inproc.child.pid!).join(' ')}`);
  hasEnv(inproc.child.pid!);
  await stop(inproc);

  const old = serve(oldNode(), 'flags-child');
  await healthy(old);
  const kid = theChild(old);
  for (const f of flags) assert.ok(args(kid).includes(f));
  hasEnv(kid);
  await stop(old);

  const ownEnv = Object.fromEntries(Object.keys(serveEnv).map((k) => [k, '4']));
  // A boolean option turned off (`--no-…`, which Node takes on its command line only) counts as
  // given, so the package's `--…` does not turn it on again.
  const own = serve(node24, 'flags-own', { NODE_OPTIONS: '--max-semi-space-size=8', ...ownEnv }, ['--no-optimize-for-size']);
  await healthy(own);
  assert.ok(!args(own.child.pid!).some((a) => a.startsWith('--max-semi-space-size') || a === '--optimize-for-size'), args(own.child.pid!).join(' '));
  for (const k of Object.keys(serveEnv)) assert.equal(env(own.child.pid!)[k], '4');
  await stop(own);
});

test('no warnings: --version on the old Node, on Node 24 and through npx on the old Node prints the version and nothing else', limit, () => {
  for (const [cmd, args, env] of [
    [oldNode(), [launcher, '--version'], process.env],
    [node24, [launcher, '--version'], process.env],
    // npx on the system's Node 20 used to print EBADENGINE twice per call.
    ['npx', ['mailbridge', '--version'], { ...process.env, PATH: '/usr/bin:/bin' }],
  ] as const) {
    const r = run(cmd, [...args], { cwd: repo, env });
    assert.equal(r.stdout, `mailbridge ${version}\n`, `${cmd} ${args.join(' ')}`);
    assert.equal(r.stderr, '', `${cmd} ${args.join(' ')}`);
  }
});

test('without Node 24 and without the bundled runtime the launcher prints MB_NODE_TOO_OLD in English or German and exits with 1', limit, () => {
  // The launcher alone, without node_modules around it: no bundled runtime to find.
  const bare = join(work, 'bare', 'bin');
  mkdirSync(bare, { recursive: true });
  copyFileSync(launcher, join(bare, 'mailbridge.mjs'));
  const old = oldNode();
  const oldVersion = run(old, ['-p', 'process.versions.node']).stdout.trim();
  for (const [LANG, lang] of [
    ['C.UTF-8', 'en'],
    ['de_DE.UTF-8', 'de'],
  ] as const) {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LANG };
    assert.throws(() => run(old, [join(bare, 'mailbridge.mjs'), '--version'], { env }), (err: Error) => {
      const stderr = err.message.split('\nstderr: ')[1]!;
      assert.match(err.message, /exited with 1/);
      assert.equal(stderr, `${renderText(explain('MB_NODE_TOO_OLD', { version: oldVersion, node: old }, lang), lang)}\n`);
      return true;
    });
  }
});
