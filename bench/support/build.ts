/**
 * What the benchmarks run of mailbridge: what the packages ship (npm run build: src/ and its
 * dependencies bundled by scripts/build.ts, the console's assets beside them), started with the V8
 * options and environment of `mailbridge serve`. An installed mailbridge runs JavaScript: Node's
 * type stripper, which a checkout's .ts files load (about 12 MB), is not part of it. A checkout from
 * before the bundle (a --baseline) is compiled file for file with tsc, as it shipped then.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const builds = new Map<string, Build>();

/** A build: its folder, and how a module of src/ is found in it. */
export interface Build {
  dir: string;
  /** The file of the command line (`mailbridge`). */
  main: string;
  /** The file of a module under src/ (without .ts) that a benchmark's child process loads itself. */
  module(path: string): string;
}

/**
 * src/ of `checkout` built into its tmp/ (so that its node_modules resolve), once per checkout and
 * process, with `modules` (paths under src/ without .ts) as entry points of their own;
 * `cleanups` gets the removal.
 */
export function compiledSources(checkout: string, cleanups: Array<() => Promise<void>>, modules: string[] = []): Build {
  let b = builds.get(checkout);
  if (!b) {
    const dir = join(checkout, 'tmp', `bench-build-${process.pid}`);
    const node = join(ROOT, 'node_modules', '.bin', 'node');
    if (existsSync(join(checkout, 'scripts', 'build.ts'))) {
      const entry = (path: string) => path.replaceAll('/', '-');
      execFileSync(node, [join(checkout, 'scripts', 'build.ts'), dir, ...modules.flatMap((m) => ['--entry', `${entry(m)}=${m}`])], { stdio: 'inherit' });
      b = { dir, main: join(dir, 'main.js'), module: (path) => join(dir, `${entry(path)}.js`) };
    } else {
      execFileSync(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', join(checkout, 'tsconfig.build.json'), '--outDir', dir], { stdio: 'inherit' });
      if (existsSync(join(checkout, 'src', 'console', 'assets'))) cpSync(join(checkout, 'src', 'console', 'assets'), join(dir, 'console', 'assets'), { recursive: true });
      b = { dir, main: join(dir, 'admin', 'cli', 'main.js'), module: (path) => join(dir, `${path}.js`) };
    }
    builds.set(checkout, b);
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  }
  return b;
}

/** The files of `paths` (modules under src/ without .ts) in a build: what a child process is handed to load. */
export function moduleFiles(b: Build, paths: readonly string[]): Record<string, string> {
  return Object.fromEntries(paths.map((p) => [p, b.module(p)]));
}

/** The V8 options and environment `mailbridge serve` starts with (package.json mailbridge.serveFlags and serveEnv, see bin/mailbridge.mjs). */
export function serveSettings(checkout = ROOT): { flags: string[]; env: Record<string, string> } {
  const pkg = JSON.parse(readFileSync(join(checkout, 'package.json'), 'utf8')) as { mailbridge?: { serveFlags?: string[]; serveEnv?: Record<string, string> } };
  return { flags: pkg.mailbridge?.serveFlags ?? [], env: pkg.mailbridge?.serveEnv ?? {} };
}
