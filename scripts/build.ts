/**
 * Builds what the packages run (npm run build; npm pack's prepack): src/ and its runtime
 * dependencies bundled into one folder of ES modules (dist/, or the folder given), the console's
 * assets beside them.
 *
 * Why a bundle rather than tsc's file-for-file output: V8 keeps the source text of every module it
 * loads, and `serve` loads about 1,000 of them (6.4 MB of files, comments included). Bundled with
 * the white space taken out, an idle gateway holds 9 to 10 MB less memory for its whole life
 * (docs/en/benchmarks.md). Names are kept, so stack traces in a log still read.
 *
 * Type checking is `npm run typecheck`'s job; esbuild only strips the types.
 *
 * Run: node scripts/build.ts [OUTDIR] [--entry NAME=MODULE ...] — the benchmarks add entries
 * (MODULE under src/, without .ts) for the modules their child processes load one by one.
 */
import { cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { build, type Plugin } from 'esbuild';
import { BUNDLE_ENTRIES } from '../src/util/paths.ts';

const ROOT = join(import.meta.dirname, '..');
const { values, positionals } = parseArgs({ options: { entry: { type: 'string', multiple: true, default: [] } }, allowPositionals: true });
const out = positionals[0] ?? join(ROOT, 'dist');
const entries: Record<string, string> = { ...BUNDLE_ENTRIES };
for (const e of values.entry) {
  const [name, module] = e.split('=');
  entries[name!] = `${module}.ts`;
}

/**
 * `import … from 'node:http'` in an ES module makes Node build the module's ES facade, which reads
 * every export of node:http, including the getters of http.WebSocket, CloseEvent and MessageEvent
 * that load Node's own copy of undici: 8 MB more in every process, for classes mailbridge never
 * uses (nodejs/node#59686; a require() does not read them). Imports of node:http in the bundle get
 * its exports through require() instead, all but those three (esbuild fails the build should a
 * module use one of them).
 */
const httpWithoutUndici: Plugin = {
  name: 'node-http-without-undici',
  setup(b) {
    const http = createRequire(import.meta.url)('node:http') as object;
    const lazy = new Set(['WebSocket', 'CloseEvent', 'MessageEvent']);
    const names = Object.keys(http).filter((k) => !lazy.has(k));
    b.onResolve({ filter: /^(node:)?http$/ }, (args) => (args.kind === 'import-statement' || args.kind === 'dynamic-import' ? { path: 'node:http', namespace: 'http-without-undici' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'http-without-undici' }, () => ({
      contents: `const http = require('node:http');\nexport default http;\n${names.map((n) => `export const ${n} = http.${n};`).join('\n')}\n`,
      loader: 'js',
    }));
  },
};

rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: Object.fromEntries(Object.entries(entries).map(([name, path]) => [name, join(ROOT, 'src', path)])),
  outdir: out,
  bundle: true,
  // Commands and plug-ins load their code when they are used (the command map, app/plugins.ts):
  // each dynamic import() becomes a chunk of its own.
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  minifyWhitespace: true,
  minifySyntax: true,
  // CommonJS dependencies call require() for Node's modules; an ES module has none of its own.
  banner: { js: "import { createRequire as __mbRequire } from 'node:module'; const require = __mbRequire(import.meta.url);" },
  // pg's optional native binding, which mailbridge does not use.
  external: ['pg-native'],
  plugins: [httpWithoutUndici],
  logLevel: 'warning',
});
cpSync(join(ROOT, 'src', 'console', 'assets'), join(out, 'console', 'assets'), { recursive: true });
