/**
 * The npm package: `npm pack` (through scripts/package/pack.sh) holds only what runs, and
 * `npm install -g --ignore-scripts` of it into a private prefix, with npm on Node 24, gives a
 * `mailbridge` on PATH that prints its version and serves /health, with runtime dependencies only
 * and no npm warnings.
 * With the optional runtime (the `node` package) it also runs on the machine's older Node.
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

let tgz = '';
const node24Bin = join(work, 'node24-bin');

function installGlobally(prefix: string, extra: string[]): { stderr: string; path24: string; installed: string } {
  const path24 = `${join(prefix, 'bin')}:${node24Bin}:/usr/local/bin:/usr/bin:/bin`;
  const r = run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', ...extra, tgz], { env: { ...process.env, PATH: path24 } });
  return { stderr: r.stderr, path24, installed: join(prefix, 'lib/node_modules/mailbridge') };
}

function topLevel(installed: string): string[] {
  const nm = join(installed, 'node_modules');
  return readdirSync(nm).flatMap((d) => (d.startsWith('@') ? readdirSync(join(nm, d)).map((s) => `${d}/${s}`) : [d]));
}

test('npm pack holds only what runs: the launcher, the compiled dist/ and the docs it serves, no sources', { timeout: 600_000 }, () => {
  tgz = run(join(repo, 'scripts/package/pack.sh'), [work]).stdout.trim();
  const files = run('tar', ['-tzf', tgz]).stdout.trim().split('\n');
  assert.ok(files.includes('package/dist/main.js'));
  assert.ok(files.includes('package/bin/mailbridge.mjs'));
  // docs/: the pages the gateway serves at /docs (Markdown, the OpenAPI document, monitoring examples),
  // not the console's screenshots (they are for the README); the console's stylesheet beside its script.
  assert.ok(files.includes('package/docs/en/errors/MB_NODE_TOO_OLD.md') && files.includes('package/docs/de/index.md'));
  const stray = files.filter((f) => !/^package\/(package\.json|README\.md|LICENSE|bin\/mailbridge\.mjs|dist\/.+\.js|dist\/console\/assets\/[\w.-]+\.css|docs\/.+\.(md|json|yml))$/.test(f));
  assert.deepEqual(stray, []);
  // npm itself runs on Node 24 in the next tests: the machine "has Node 24".
  mkdirSync(node24Bin);
  symlinkSync(node24, join(node24Bin, 'node'));
});

test('on Node 24, npm install -g --ignore-scripts: no warnings, runtime dependencies only, mailbridge on PATH prints its version and serves /health', { timeout: 600_000 }, async () => {
  // --ignore-scripts: the optional runtime's install script does not fetch a second Node 24, and
  // npm has no unreviewed install script to mention. (--omit=optional does not omit a global
  // package's optional dependencies.)
  const { stderr, path24, installed } = installGlobally(join(work, 'prefix'), ['--ignore-scripts']);
  assert.equal(stderr, '');
  const top = topLevel(installed);
  for (const dev of Object.keys(pkg.devDependencies)) assert.ok(!top.includes(dev), `dev dependency ${dev} installed`);
  for (const dep of Object.keys(pkg.dependencies)) assert.ok(top.includes(dep), `${dep} missing`);
  assert.ok(!existsSync(join(installed, 'node_modules/node/bin/node')), 'Node 24 is there: no bundled runtime fetched');

  const v = run('mailbridge', ['--version'], { env: { ...process.env, PATH: path24 } });
  assert.deepEqual(v, { stdout: `mailbridge ${pkg.version}\n`, stderr: '' });

  // The bundled code runs the gateway (dynamic imports, the store, the relay's certificate made by
  // its worker entry), not only --version.
  const config = join(work, 'mailbridge.yaml');
  const relayDir = join(work, 'relay');
  writeFileSync(config, `server: { port: 0 }\nstore: { driver: sqlite, path: ${join(work, 'mb.db')} }\nrelay: { dataDir: ${relayDir}, listeners: [{ host: 127.0.0.1, port: 0, tls: starttls }] }\n`);
  const w = watch('mailbridge', ['--config', config, 'serve'], { env: { ...process.env, PATH: path24, LANG: 'C.UTF-8' } });
  try {
    const [, url] = await w.waitFor(/mailbridge is running: (\S+\/health)/);
    assert.equal((await getJson(url!))?.body.status, 'ok');
    // The installed package serves its documentation (dist/docs finds docs/ beside dist/).
    const page = await fetch(url!.replace(/\/health$/, '/docs/de/errors/MB_NODE_TOO_OLD'));
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<h1 id="[^"]*">MB_NODE_TOO_OLD: /);
    // …and the console's assets beside the bundle.
    const css = await fetch(url!.replace(/\/health$/, '/console/assets/console.css'));
    assert.equal(css.status, 200);
    assert.match(css.headers.get('content-type') ?? '', /^text\/css/);
    await w.waitFor(/relay: listening/);
    assert.match(readFileSync(join(relayDir, 'tls', 'relay-cert.pem'), 'utf8'), /^-----BEGIN CERTIFICATE-----/);
  } finally {
    w.child.kill('SIGTERM');
  }
  assert.deepEqual(await w.exited, { code: 0, signal: null });
  assert.doesNotMatch(w.stderr(), /warning/i, w.stderr());
});

test('npm install -g with the bundled runtime: mailbridge runs on the machine\'s older Node through it; npm prints only its install-script notice', { timeout: 600_000 }, () => {
  // npm 11 names the `node` package's install script as not yet reviewed. Following its advice
  // (--allow-scripts=node) would break that script's own nested `npm install` (EALLOWSCRIPTS),
  // and npm would drop the optional runtime silently; the docs/en/install.md says so.
  const { stderr, installed } = installGlobally(join(work, 'prefix-bundled'), []);
  const warnings = stderr.split('\n').filter((l) => l.trim() && !l.startsWith('npm warn install-scripts'));
  assert.deepEqual(warnings, []);
  assert.ok(existsSync(join(installed, 'node_modules/node/bin/node')), 'the bundled Node 24');
  const path = `${join(work, 'prefix-bundled', 'bin')}:${oldNode().replace(/\/node$/, '')}:/bin`;
  assert.deepEqual(run('mailbridge', ['--version'], { env: { ...process.env, PATH: path } }), { stdout: `mailbridge ${pkg.version}\n`, stderr: '' });
});
