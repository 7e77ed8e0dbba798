import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { analyzeText } from '../../src/app/config.ts';
import { configSchema } from '../../src/app/schema.ts';
import { setupWillCreate } from '../../src/setup/index.ts';

test('every mailbridge.yaml example in README.md is valid against the schema', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.ok(blocks.length >= 2, 'README has its configuration examples');
  for (const block of blocks) {
    // enc:v1:… stands for a sealed secret. IDs are real-looking GUIDs: an admin who copies the
    // example and forgets one gets a config check error, not a placeholder that looks valid.
    const result = configSchema.safeParse(parse(block));
    assert.ok(result.success, `${block}\n${JSON.stringify(result.error?.issues, null, 2)}`);
    const connections = (parse(block) as { connections?: unknown }).connections;
    if (connections) {
      // clientId: new is what `mailbridge setup` replaces (with the credential it creates).
      const problems = analyzeText(block, 'README.md', {}, /clientId: new\b/.test(block) ? { relax: setupWillCreate } : {}).errors.filter((p) => p.path.startsWith('connections.'));
      assert.deepEqual(problems.map((p) => `${p.code} ${p.path}`), [], block);
    }
  }
});
