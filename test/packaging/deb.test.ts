/**
 * The Debian package, on this machine's real dpkg: scripts/package/deb.sh builds it from the
 * checkout, `dpkg -i` installs it, `systemd-analyze verify` accepts the unit, the unit's
 * ExecStart run as the service user serves /health (no systemd runs as PID 1 here, so the test
 * starts it the way the unit says), an upgrade to a newer build keeps configuration, key and
 * state, `dpkg -r` keeps /etc/mailbridge and `dpkg -P` removes it. It purges the package at the end.
 *
 * Needs root, dpkg and systemd-analyze (.ci/run installs the `systemd` package); without them the
 * test fails and says what is missing: it never skips.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getJson, isRunning, repo, run, watch, type Watched } from './helpers.ts';
import { freePort } from '../support/ports.ts';

const work = mkdtempSync(join(tmpdir(), 'mb-deb-'));
const unitPath = '/usr/lib/systemd/system/mailbridge.service';
let v1 = '';
let v2 = '';
let server: Watched | undefined;

/** dpkg, waiting while another apt or dpkg (a colleague's CI run) holds the lock. */
function dpkg(...args: string[]): string {
  const deadline = Date.now() + 300_000;
  for (;;) {
    const r = spawnSync('dpkg', args, { encoding: 'utf8' });
    if (r.status === 0) return r.stdout;
    const locked = /lock was locked by another process|Unable to acquire the dpkg (frontend )?lock|dpkg status database is locked/.test(r.stderr);
    if (!locked || Date.now() > deadline) throw new Error(`dpkg ${args.join(' ')} exited with ${r.status}\n${r.stdout}\n${r.stderr}`);
    spawnSync('sleep', ['1']); // dpkg's lock is an fcntl lock: nothing to wait on but time
  }
}

function installedVersion(): string | undefined {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status} ${Version}', 'mailbridge'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : undefined;
}

function owner(path: string): { user: string; mode: string } {
  const st = statSync(path);
  const user = run('id', ['-nu', String(st.uid)]).stdout.trim();
  return { user, mode: (st.mode & 0o777).toString(8).padStart(4, '0') };
}

/** KEY=VALUE settings of the [Service] section (the last one wins, as in systemd). */
function unitSettings(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const hit = /^(\w+)=(.*)$/.exec(line);
    if (hit) m.set(hit[1]!, hit[2]!);
  }
  return m;
}

before(() => {
  if (process.getuid?.() !== 0) throw new Error('the Debian package test installs with dpkg and needs root');
  for (const tool of ['dpkg', 'dpkg-deb', 'systemd-analyze', 'setpriv']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is missing: run .ci/run (it installs dpkg and systemd with apt-get)`);
  }
  // A package left by an interrupted run would make the first install an upgrade.
  if (installedVersion()) dpkg('--purge', 'mailbridge');
  v1 = run(join(repo, 'scripts/package/deb.sh'), ['--revision', '1', '--compress', 'gzip', work]).stdout.trim();
  // The newer build: the same package with the next revision, rebuilt by dpkg-deb.
  const tree = join(work, 'v2');
  run('dpkg-deb', ['-R', v1, tree]);
  const control = join(tree, 'DEBIAN/control');
  writeFileSync(control, readFileSync(control, 'utf8').replace(/^Version: (.*)-1$/m, 'Version: $1-2'));
  v2 = join(work, 'mailbridge_v2.deb');
  run('dpkg-deb', ['--root-owner-group', '-Znone', '--build', tree, v2]);
  rmSync(tree, { recursive: true, force: true });
}, { timeout: 900_000 });

after(async () => {
  if (server && server.child.exitCode === null && server.child.signalCode === null) {
    server.child.kill('SIGKILL');
    await server.exited;
  }
  if (installedVersion()) dpkg('--purge', 'mailbridge');
  rmSync(work, { recursive: true, force: true });
}, { timeout: 300_000 });

test('dpkg -i installs the package: service user, config and key 0600 owned by it, state folder, conffile, /usr/bin/mailbridge', { timeout: 600_000 }, () => {
  dpkg('-i', v1);
  assert.match(installedVersion() ?? '', /^install ok installed \d+\.\d+\.\d+-1$/);
  const [, , uid, , , home, shell] = run('getent', ['passwd', 'mailbridge']).stdout.trim().split(':');
  assert.ok(Number(uid) < 1000, `system user, uid ${uid}`);
  assert.equal(home, '/var/lib/mailbridge');
  assert.equal(shell, '/usr/sbin/nologin');
  assert.deepEqual(owner('/etc/mailbridge'), { user: 'mailbridge', mode: '0750' });
  assert.deepEqual(owner('/etc/mailbridge/mailbridge.yaml'), { user: 'mailbridge', mode: '0600' });
  assert.deepEqual(owner('/etc/mailbridge/mailbridge.key'), { user: 'mailbridge', mode: '0600' });
  assert.equal(Buffer.from(readFileSync('/etc/mailbridge/mailbridge.key', 'utf8').trim(), 'base64').length, 32);
  assert.deepEqual(owner('/var/lib/mailbridge'), { user: 'mailbridge', mode: '0750' });
  assert.match(run('dpkg-query', ['-W', '-f=${Conffiles}', 'mailbridge']).stdout, /^ \/etc\/mailbridge\/mailbridge\.yaml [0-9a-f]{32}$/m);
  const version = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version;
  // Run by root, the command runs as the service user and reads /etc/mailbridge/mailbridge.yaml.
  assert.equal(run('mailbridge', ['--version']).stdout, `mailbridge ${version}\n`);
  const check = run('mailbridge', ['config', 'check'], { env: { ...process.env, LANG: 'C.UTF-8' } }).stdout;
  assert.match(check, /\/etc\/mailbridge\/mailbridge\.yaml/);
});

test('systemd-analyze verify accepts the unit, which has the hardening settings', { timeout: 120_000 }, () => {
  const r = spawnSync('systemd-analyze', ['verify', unitPath], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /mailbridge/, r.stderr);
  const s = unitSettings(readFileSync(unitPath, 'utf8'));
  for (const [k, v] of Object.entries({
    User: 'mailbridge',
    NoNewPrivileges: 'yes',
    ProtectSystem: 'strict',
    ReadWritePaths: '/var/lib/mailbridge',
    PrivateTmp: 'yes',
    CapabilityBoundingSet: 'CAP_NET_BIND_SERVICE',
    AmbientCapabilities: 'CAP_NET_BIND_SERVICE',
    Restart: 'on-failure',
    ExecReload: '/bin/kill -HUP $MAINPID',
  })) {
    assert.equal(s.get(k), v, k);
  }
});

test("the unit's ExecStart, run as the service user, serves /health; ExecStartPost sees it ready; SIGHUP reloads; SIGTERM stops it", { timeout: 120_000 }, async () => {
  const s = unitSettings(readFileSync(unitPath, 'utf8'));
  const port = await freePort();
  const env: Record<string, string> = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', MAILBRIDGE__SERVER__PORT: String(port) };
  for (const assignment of (s.get('Environment') ?? '').split(' ')) {
    const [k, ...v] = assignment.split('=');
    if (k) env[k] = v.join('=');
  }
  const asService = ['--reuid', s.get('User')!, '--regid', s.get('Group')!, '--init-groups', '--no-new-privs', '--'];
  const [exe, ...args] = s.get('ExecStart')!.split(' ');
  server = watch('setpriv', [...asService, exe!, ...args], { cwd: s.get('WorkingDirectory')!, env });
  const [post, ...postArgs] = s.get('ExecStartPost')!.split(' ');
  const ready = spawnSync('setpriv', [...asService, post!, ...postArgs], { env: { ...env, MAINPID: String(server.child.pid) }, encoding: 'utf8', timeout: 90_000 });
  assert.equal(ready.status, 0, `${ready.stderr}\n${server.stderr()}`);
  const h = await getJson(`http://127.0.0.1:${port}/health`);
  assert.equal(h?.status, 200);
  assert.equal(h?.body.status, 'ok');
  const uid = run('id', ['-u', 'mailbridge']).stdout.trim();
  assert.match(readFileSync(`/proc/${server.child.pid}/status`, 'utf8'), new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s`, 'm'));
  assert.equal(owner('/var/lib/mailbridge/mailbridge.db').user, 'mailbridge');
  process.kill(server.child.pid!, 'SIGHUP');
  await server.waitFor(/reload: done/);
  process.kill(server.child.pid!, 'SIGTERM');
  assert.deepEqual(await server.exited, { code: 0, signal: null });
  assert.match(server.stdout(), /SIGTERM received/);
  assert.equal(isRunning(server.child.pid!), false);
});

test('an upgrade to a newer build keeps the edited config, the key and the state, with their owners and modes', { timeout: 600_000 }, () => {
  const yaml = '/etc/mailbridge/mailbridge.yaml';
  writeFileSync(yaml, readFileSync(yaml, 'utf8').replace('level: info', 'level: warn') + '# edited by the admin\n');
  const before = { yaml: readFileSync(yaml, 'utf8'), key: readFileSync('/etc/mailbridge/mailbridge.key', 'utf8'), db: readFileSync('/var/lib/mailbridge/mailbridge.db') };
  dpkg('-i', v2);
  assert.match(installedVersion() ?? '', /^install ok installed \d+\.\d+\.\d+-2$/);
  assert.equal(readFileSync(yaml, 'utf8'), before.yaml);
  assert.equal(readFileSync('/etc/mailbridge/mailbridge.key', 'utf8'), before.key);
  assert.deepEqual(readFileSync('/var/lib/mailbridge/mailbridge.db'), before.db);
  assert.deepEqual(owner(yaml), { user: 'mailbridge', mode: '0600' });
  assert.deepEqual(owner('/etc/mailbridge/mailbridge.key'), { user: 'mailbridge', mode: '0600' });
  assert.equal(existsSync(`${yaml}.dpkg-new`) || existsSync(`${yaml}.dpkg-dist`), false);
});

test('dpkg -r keeps /etc/mailbridge and the state; dpkg -P removes them', { timeout: 600_000 }, () => {
  dpkg('-r', 'mailbridge');
  assert.match(installedVersion() ?? '', /^deinstall ok config-files /);
  assert.equal(existsSync('/usr/lib/mailbridge'), false);
  assert.equal(existsSync('/usr/bin/mailbridge'), false);
  assert.ok(existsSync('/etc/mailbridge/mailbridge.yaml'));
  assert.ok(existsSync('/etc/mailbridge/mailbridge.key'));
  assert.ok(existsSync('/var/lib/mailbridge/mailbridge.db'));
  dpkg('-P', 'mailbridge');
  assert.equal(installedVersion(), undefined);
  assert.equal(existsSync('/etc/mailbridge'), false);
  assert.equal(existsSync('/var/lib/mailbridge'), false);
  assert.doesNotMatch(run('dpkg-statoverride', ['--list']).stdout, /mailbridge/);
});
