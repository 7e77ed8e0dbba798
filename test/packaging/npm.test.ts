/**
 * The npm package: `npm pack` (through scripts/package/pack.sh) holds only what runs, and
 * `npm install -g` of it into a private prefix, with npm on Node 24, gives a `mailbridge` on PATH
 * that prints its version and serves /health, with runtime dependencies only and no npm warnings.
 * The same install also runs on the machine's older Node, through the bundled Node 24.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getJson, node24, oldNode, repo, run, watch } from './helpers.ts';

const work = mkdtempSync(join(tmpdir(), 'mb-npm-'));
after(() => rmSync(work, { recursive: true, force: true }));
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
  optionalDependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

test('npm pack, npm install -g into a prefix on Node 24: mailbridge on PATH, --version, serve, runtime dependencies only, no warnings', { timeout: 600_000 }, async () => {
  const tgz = run(join(repo, 'scripts/package/pack.sh'), [work]).stdout.trim();
  const files = run('tar', ['-tzf', tgz]).stdout.trim().split('\n');
  assert.ok(files.includes('package/dist/admin/cli/main.js'));
  assert.ok(files.includes('package/bin/mailbridge.mjs'));
  const stray = files.filter((f) => !/^package\/(package\.json|README\.md|LICENSE|bin\/mailbridge\.mjs|dist\/.+\.js)$/.test(f));
  assert.deepEqual(stray, [], 'the package holds only what runs');

  // npm itself runs on Node 24 here: the machine "has Node 24".
  const node24Bin = join(work, 'node24-bin');
  mkdirSync(node24Bin);
  symlinkSync(node24, join(node24Bin, 'node'));
  const prefix = join(work, 'prefix');
  const path24 = `${join(prefix, 'bin')}:${node24Bin}:/usr/local/bin:/usr/bin:/bin`;
  // The `node` dependency's install script fetches the Node 24 binary; npm 11 runs unreviewed
  // dependency scripts with a warning unless they are allowed.
  const install = run('npm', ['install', '-g', '--prefix', prefix, '--allow-scripts=node', '--prefer-offline', '--no-audit', '--no-fund', tgz], { env: { ...process.env, PATH: path24 } });
  assert.doesNotMatch(install.stderr, /npm warn|EBADENGINE/i, install.stderr);

  const installed = join(prefix, 'lib/node_modules/mailbridge');
  const top = readdirSync(join(installed, 'node_modules')).flatMap((d) => (d.startsWith('@') ? readdirSync(join(installed, 'node_modules', d)).map((s) => `${d}/${s}`) : [d]));
  for (const dev of Object.keys(pkg.devDependencies)) assert.ok(!top.includes(dev), `dev dependency ${dev} installed`);
  for (const dep of [...Object.keys(pkg.dependencies), ...Object.keys(pkg.optionalDependencies)]) assert.ok(top.includes(dep), `${dep} missing`);
  assert.ok(existsSync(join(installed, 'node_modules/node/bin/node')), 'the bundled Node 24');

  const v = run('mailbridge', ['--version'], { env: { ...process.env, PATH: path24 } });
  assert.deepEqual(v, { stdout: `mailbridge ${pkg.version}\n`, stderr: '' });
  // On the machine's older Node the same command runs through the bundled Node 24.
  const old = run('mailbridge', ['--version'], { env: { ...process.env, PATH: `${join(prefix, 'bin')}:${oldNode().replace(/\/node$/, '')}:/bin` } });
  assert.deepEqual(old, { stdout: `mailbridge ${pkg.version}\n`, stderr: '' });

  // The compiled code runs the gateway (dynamic imports, the store), not only --version.
  const config = join(work, 'mailbridge.yaml');
  writeFileSync(config, `server: { port: 0 }\nstore: { driver: sqlite, path: ${join(work, 'mb.db')} }\n`);
  const w = watch('mailbridge', ['--config', config, 'serve'], { env: { ...process.env, PATH: path24, LANG: 'C.UTF-8' } });
  try {
    const [, url] = await w.waitFor(/mailbridge is running: (\S+\/health)/);
    assert.equal((await getJson(url!))?.body.status, 'ok');
  } finally {
    w.child.kill('SIGTERM');
  }
  assert.deepEqual(await w.exited, { code: 0, signal: null });
  assert.doesNotMatch(w.stderr(), /warning/i, w.stderr());
});
