/**
 * The container image of packaging/container/Containerfile, built and run without pulling an image
 * (no registry image can be pulled here, and `podman run` fails: crun cannot set rlimits here):
 *  - the base: a Debian root filesystem made by mmdebstrap (minbase, the variant of
 *    debian:*-slim) for this machine's Debian release, imported into podman;
 *  - /usr/lib/mailbridge laid out on the host by scripts/package/stage.sh, the script the
 *    Containerfile's build stage runs, and imported as the image the runtime stage copies from
 *    (build-arg APP; the builder skips the unused build stage, --pull=never proves it);
 *  - `podman build --isolation=chroot` of the Containerfile's runtime stage;
 *  - the image mounted (`podman image mount`) and its ENTRYPOINT+CMD run in a chroot as the
 *    image's USER, with host folders bound over the two VOLUMEs as a fresh named volume would be
 *    (a copy of the image's content): serve answers /health, the HEALTHCHECK command passes, both
 *    volumes are writable (the database, `secret set` writing mailbridge.yaml and creating the
 *    key), nothing runs as root, SIGTERM stops it cleanly.
 * Needs root, mmdebstrap and podman (.ci/run installs them); without them it fails, never skips.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { childrenOf, getJson, isRunning, repo, run, watch, type Watched } from './helpers.ts';
import { freePort } from '../support/ports.ts';

const work = mkdtempSync(join(tmpdir(), 'mb-image-'));
const tag = `${process.pid}-${Date.now()}`;
const images = { base: `localhost/mailbridge-test-base:${tag}`, app: `localhost/mailbridge-test-app:${tag}`, image: `localhost/mailbridge-test:${tag}` };
const volumes = { config: join(work, 'vol-config'), state: join(work, 'vol-state') };
let mnt = '';
let config: { User: string; Env: string[]; Entrypoint: string[]; Cmd: string[]; WorkingDir: string; Volumes: Record<string, unknown> };
let healthcheck: { Test: string[] } | undefined;
let server: Watched | undefined;

/** Runs a command to completion without blocking the event loop (several build steps run at once). */
function runAsync(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}\n${out}\n${err}`))));
  });
}

/**
 * argv that runs `command` in the mounted image as the image's user, in its working directory,
 * with the two volumes bound and /proc and /dev from the host, in a private mount namespace (the
 * binds end with the process).
 */
function inImage(command: string[], env: Record<string, string>): string[] {
  const [uid, gid] = config.User.split(':');
  const binds = [
    [volumes.config, '/etc/mailbridge'],
    [volumes.state, '/var/lib/mailbridge'],
    ['/proc', '/proc'],
    ['/dev', '/dev'],
  ]
    .map(([from, to]) => `mount --bind '${from}' '${mnt}${to}'`)
    .join(' && ');
  // Without a PATH in the image, podman and docker give the process this one.
  const path = config.Env.some((e) => e.startsWith('PATH=')) ? [] : ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
  const envArgs = [...path, ...config.Env, ...Object.entries(env).map(([k, v]) => `${k}=${v}`)];
  const inner = ['chroot', `--userspec=${uid}:${gid ?? uid}`, mnt, '/usr/bin/env', '-i', '-C', config.WorkingDir, ...envArgs, ...command];
  return ['--mount', '--propagation', 'private', 'sh', '-c', `${binds} && exec "$@"`, 'sh', ...inner];
}

function uidOf(pid: number): number {
  return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

before(async () => {
  if (process.getuid?.() !== 0) throw new Error('the image test mounts images and uses chroot: it needs root');
  for (const tool of ['mmdebstrap', 'podman', 'unshare', 'chroot']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is missing: run .ci/run (it installs mmdebstrap and podman with apt-get)`);
  }
  const suite = /^VERSION_CODENAME=(\w+)$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
  assert.ok(suite, 'VERSION_CODENAME in /etc/os-release');
  const baseTar = join(work, 'base.tar');
  const stage = join(work, 'app', 'stage', 'usr', 'lib', 'mailbridge');
  // The network-bound mmdebstrap and the CPU-bound staging run side by side.
  await Promise.all([
    runAsync('mmdebstrap', [
      '--variant=minbase',
      '--mode=root',
      '--quiet',
      // As debian:*-slim: no documentation, manual pages or translations.
      '--dpkgopt=path-exclude=/usr/share/doc/*',
      '--dpkgopt=path-exclude=/usr/share/man/*',
      '--dpkgopt=path-exclude=/usr/share/locale/*',
      '--dpkgopt=path-include=/usr/share/locale/locale.alias',
      suite,
      baseTar,
    ]).then(() => runAsync('podman', ['import', '--quiet', baseTar, images.base])),
    runAsync(join(repo, 'scripts/package/stage.sh'), [stage]).then(() => runAsync('sh', ['-c', `tar -C '${join(work, 'app')}' -cf - . | podman import --quiet - '${images.app}'`])),
  ]);
  rmSync(baseTar, { force: true });
  await runAsync('podman', [
    'build',
    '--isolation=chroot',
    '--format=docker',
    '--layers=false',
    '--pull=never',
    '--quiet',
    '--build-arg',
    `BASE_IMAGE=${images.base}`,
    '--build-arg',
    `APP=${images.app}`,
    '-f',
    join(repo, 'packaging/container/Containerfile'),
    '-t',
    images.image,
    repo,
  ]);
  const inspected = (JSON.parse(run('podman', ['image', 'inspect', images.image]).stdout) as Array<{ Config: typeof config; Healthcheck?: typeof healthcheck }>)[0]!;
  config = inspected.Config;
  healthcheck = inspected.Healthcheck;
  mnt = run('podman', ['image', 'mount', images.image]).stdout.trim();
  // Fresh named volumes start as a copy of the image's folders, owners and modes included.
  for (const [name, dir] of [
    ['config', '/etc/mailbridge'],
    ['state', '/var/lib/mailbridge'],
  ] as const) {
    mkdirSync(volumes[name]);
    run('cp', ['-a', `${mnt}${dir}/.`, volumes[name]]);
    const st = statSync(`${mnt}${dir}`);
    run('chown', [`${st.uid}:${st.gid}`, volumes[name]]);
    run('chmod', [(st.mode & 0o7777).toString(8), volumes[name]]);
  }
}, { timeout: 900_000 });

after(async () => {
  if (server && server.child.exitCode === null && server.child.signalCode === null) {
    server.child.kill('SIGKILL');
    await server.exited;
  }
  if (mnt) spawnSync('podman', ['image', 'unmount', images.image]);
  for (const image of Object.values(images)) spawnSync('podman', ['rmi', '--force', image]);
  rmSync(work, { recursive: true, force: true });
}, { timeout: 300_000 });

test('the image runs as a non-root user with /etc/mailbridge and /var/lib/mailbridge as volumes and a HEALTHCHECK on /health', () => {
  assert.equal(config.User, '10001:10001');
  assert.deepEqual(Object.keys(config.Volumes).sort(), ['/etc/mailbridge', '/var/lib/mailbridge']);
  assert.deepEqual(config.Cmd, ['serve']);
  assert.ok(config.Env.includes('MAILBRIDGE_CONFIG=/etc/mailbridge/mailbridge.yaml'));
  assert.deepEqual(healthcheck?.Test, ['CMD', '/usr/lib/mailbridge/node_modules/node/bin/node', '/usr/lib/mailbridge/libexec/ready.mjs', '--once']);
  assert.match(readFileSync(join(mnt, '/etc/passwd'), 'utf8'), /^mailbridge:x:10001:10001:/m);
  // The image holds no npm and no TypeScript sources: only what runs.
  assert.equal(existsSync(join(mnt, '/usr/lib/mailbridge/src')), false);
  assert.equal(existsSync(join(mnt, '/usr/lib/mailbridge/node_modules/typescript')), false);
});

test('the entrypoint, run in the mounted image as its user, serves /health; the HEALTHCHECK passes; the volumes are writable; nothing runs as root', { timeout: 120_000 }, async () => {
  const port = await freePort();
  const env = { MAILBRIDGE__SERVER__PORT: String(port), LANG: 'C.UTF-8' };
  server = watch('unshare', inImage([...config.Entrypoint, ...config.Cmd], env));
  const [, url] = await server.waitFor(/mailbridge is running: (\S+\/health)/);
  assert.equal(url, `http://0.0.0.0:${port}/health`);
  const h = await getJson(`http://127.0.0.1:${port}/health`);
  assert.equal(h?.status, 200);
  assert.equal(h?.body.status, 'ok');
  const pid = server.child.pid!;
  const tree = [pid, ...childrenOf(pid)];
  for (const p of tree) assert.notEqual(uidOf(p), 0, `PID ${p} runs as root`);
  assert.equal(uidOf(pid), 10001);

  const health = spawnSync('unshare', inImage(healthcheck!.Test.slice(1), env), { encoding: 'utf8' });
  assert.equal(health.status, 0, health.stderr);

  // The state volume: the database; the config volume: `secret set` rewrites mailbridge.yaml and
  // creates the key there.
  assert.equal(statSync(join(volumes.state, 'mailbridge.db')).uid, 10001);
  // (`mailbridge` on PATH, as `podman exec <container> mailbridge …` finds it.)
  const set = spawnSync('unshare', inImage(['mailbridge', 'secret', 'set', 'notify.api.keys.mdm'], env), { input: 'image-test-value\n', encoding: 'utf8' });
  assert.equal(set.status, 0, set.stderr);
  assert.match(readFileSync(join(volumes.config, 'mailbridge.yaml'), 'utf8'), /mdm: enc:v1:/);
  const key = statSync(join(volumes.config, 'mailbridge.key'));
  assert.deepEqual([key.uid, key.mode & 0o777], [10001, 0o600]);

  server.child.kill('SIGTERM');
  assert.deepEqual(await server.exited, { code: 0, signal: null });
  assert.match(server.stdout(), /SIGTERM received/);
  assert.equal(isRunning(pid), false);
});

test("compose.yaml's environment for mailbridge (PostgreSQL as the store) is a valid configuration with the image's mailbridge.yaml", { timeout: 60_000 }, () => {
  const compose = parse(readFileSync(join(repo, 'packaging/container/compose.yaml'), 'utf8')) as { services: { mailbridge: { image: string; environment: Record<string, string> } } };
  const env = Object.fromEntries(
    Object.entries(compose.services.mailbridge.environment).map(([k, v]) => [k, String(v).replace(/\$\{POSTGRES_PASSWORD[^}]*\}/, 'compose-test')]),
  );
  assert.equal(env.MAILBRIDGE__STORE__DRIVER, 'postgres');
  const check = spawnSync('unshare', inImage(['mailbridge', 'config', 'check'], { ...env, LANG: 'C.UTF-8' }), { encoding: 'utf8' });
  assert.equal(check.status, 0, `${check.stdout}\n${check.stderr}`);
  assert.match(check.stdout, /0 errors/);
});
