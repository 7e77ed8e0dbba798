/**
 * What scripts/build.ts makes of src/ (the packages' dist/), checked without packing: the gateway's
 * modules load without Node's own copy of undici, and no module holds a character beyond Latin-1
 * (V8 keeps a module's source for as long as the process runs, and one such character anywhere
 * doubles it: esbuild escapes them in strings, not in the text of template literals, so the
 * console's HTML templates write &ndash; and the like).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = join(import.meta.dirname, '..', '..');
mkdirSync(join(ROOT, 'tmp'), { recursive: true });
const out = mkdtempSync(join(ROOT, 'tmp', 'bundle-test-'));
after(() => rmSync(out, { recursive: true, force: true }));
execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.ts'), out, '--entry', 'server-index=server/index'], { stdio: 'inherit' });

test("the gateway's modules, bundled, load without Node's own undici (node:http's ES facade would load it)", () => {
  const loaded = (extra: string) =>
    JSON.parse(
      execFileSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(pathToFileURL(join(out, 'server-index.js')).href)}); ${extra} console.log(JSON.stringify(process.moduleLoadList.filter((m) => m.includes('deps/undici'))));`], { encoding: 'utf8' }),
    ) as string[];
  assert.deepEqual(loaded(''), []);
  // The check can fail: an ES import of node:http does load it.
  assert.notDeepEqual(loaded("await import('node:http');"), []);
});

test('no module of the bundle holds a character beyond Latin-1, so V8 keeps its source at one byte a character', () => {
  const files = readdirSync(out, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js'));
  assert.ok(files.length > 20);
  const wide = files.filter((f) => !f.startsWith('console/assets/') && [...readFileSync(join(out, f), 'utf8')].some((c) => c.codePointAt(0)! > 0xff));
  assert.deepEqual(wide, []);
});
