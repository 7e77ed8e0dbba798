/**
 * Temporary folders for tests. Each is removed by its `remove()` where a test or rig is done with
 * it, and in after() at the latest: the test's own when a test context is given
 * (`tempDir('mb-x-', t)`), else the test file's, once all its tests ran. (From a before() hook,
 * give no context: node:test runs an after() registered inside a hook right after that hook.)
 */
import { after } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  path: string;
  /** Writes a file into the folder and returns its path. */
  file(name: string, content: string | Buffer): string;
  remove(): void;
}

interface Scope {
  after(fn: () => void | Promise<void>): void;
}

// Registered when the first test file that uses it loads it, so it runs after the file's tests.
const fileDirs = new Set<TempDir>();
after(() => {
  for (const d of fileDirs) d.remove();
});

/** A new empty folder under the system's temp dir. */
export function tempDir(prefix = 'mb-test-', scope?: Scope): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  const dir: TempDir = {
    path,
    file(name, content) {
      const p = join(path, name);
      writeFileSync(p, content);
      return p;
    },
    remove() {
      fileDirs.delete(dir);
      rmSync(path, { recursive: true, force: true });
    },
  };
  if (scope) scope.after(() => dir.remove());
  else fileDirs.add(dir);
  return dir;
}
