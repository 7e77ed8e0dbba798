/**
 * What the benchmarks run of mailbridge: src/ compiled as the packages ship it (npm run build's
 * tsconfig.build.json, with the console's assets beside the JavaScript), started with the V8 options
 * and environment of `mailbridge serve`. An installed mailbridge runs JavaScript: Node's type
 * stripper, which a checkout's .ts files load (about 12 MB), is not part of it.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const builds = new Map<string, string>();

/**
 * src/ of `checkout` compiled into its tmp/ (so that its node_modules resolve), once per checkout
 * and process; `cleanups` gets the removal.
 */
export function compiledSources(checkout: string, cleanups: Array<() => Promise<void>>): string {
  let out = builds.get(checkout);
  if (!out) {
    const dir = join(checkout, 'tmp', `bench-build-${process.pid}`);
    execFileSync(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', join(checkout, 'tsconfig.build.json'), '--outDir', dir], { stdio: 'inherit' });
    if (existsSync(join(checkout, 'src', 'console', 'assets'))) cpSync(join(checkout, 'src', 'console', 'assets'), join(dir, 'console', 'assets'), { recursive: true });
    builds.set(checkout, dir);
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    out = dir;
  }
  return out;
}

/** The V8 options and environment `mailbridge serve` starts with (package.json mailbridge.serveFlags and serveEnv, see bin/mailbridge.mjs). */
export function serveSettings(checkout = ROOT): { flags: string[]; env: Record<string, string> } {
  const pkg = JSON.parse(readFileSync(join(checkout, 'package.json'), 'utf8')) as { mailbridge?: { serveFlags?: string[]; serveEnv?: Record<string, string> } };
  return { flags: pkg.mailbridge?.serveFlags ?? [], env: pkg.mailbridge?.serveEnv ?? {} };
}
