/**
 * Where mailbridge's own files are. A checkout runs src/*.ts as they are; the packages run one
 * bundle (scripts/build.ts) in dist/, where every file — the entry points and the chunks the
 * modules were merged into — sits at the top of the folder. A module therefore cannot find a file
 * by its own place in src/ (`new URL('../../docs/', import.meta.url)` points elsewhere in the
 * bundle); it asks here instead.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

/** Whether this is the checkout's TypeScript rather than the packages' bundle. */
const FROM_SOURCES = import.meta.url.endsWith('.ts');

/** src/ of a checkout, or the bundle's folder (dist/ in the packages). */
export const CODE_DIR = FROM_SOURCES ? dirname(HERE) : HERE;

/** The folder above it (the checkout, or /usr/lib/mailbridge): package.json and docs/. */
export const PACKAGE_DIR = dirname(CODE_DIR);

/** The bundle's entry points: its file name in dist/ (without .js) → the module under src/. */
export const BUNDLE_ENTRIES = {
  main: 'admin/cli/main.ts',
  // Run as a worker thread by its own module (util/certificate-worker.ts).
  'certificate-worker': 'util/certificate-worker.ts',
  // loadConfig for packaging/libexec/ready.mjs, the readiness check.
  config: 'app/config.ts',
} as const;

/** The file of an entry point, to start it as a worker or a process. */
export function entryFile(name: keyof typeof BUNDLE_ENTRIES): string {
  return FROM_SOURCES ? join(CODE_DIR, BUNDLE_ENTRIES[name]) : join(CODE_DIR, `${name}.js`);
}
