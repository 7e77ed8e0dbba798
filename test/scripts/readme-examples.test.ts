import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { configSchema } from '../../src/config/schema.ts';

test('every mailbridge.yaml example in README.md is valid against the schema', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.ok(blocks.length >= 2, 'README has its configuration examples');
  for (const block of blocks) {
    // Placeholders such as "0b7c3f3e-…" stand for real IDs; enc:v1:… for sealed secrets.
    const result = configSchema.safeParse(parse(block));
    assert.ok(result.success, `${block}\n${JSON.stringify(result.error?.issues, null, 2)}`);
  }
});
