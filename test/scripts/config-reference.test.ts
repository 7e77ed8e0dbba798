import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { renderReference, spliceReadme } from '../../scripts/config-reference.ts';

test('README.md carries the configuration reference generated from the schema', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const table = renderReference();
  assert.match(table, /connections\.<name>\.tenantId/);
  assert.equal(readme, spliceReadme(readme, table), 'README is stale: run `node scripts/config-reference.ts --write`');
});
