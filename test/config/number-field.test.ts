/**
 * Numeric settings (config/number-field.ts): a value inside the bounds is taken, one outside is
 * refused, an absent one takes the default, and the description reaches the JSON Schema the docs
 * and editors read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { intField, numberField } from '../../src/config/number-field.ts';

test('intField: whole numbers within the bounds, the default when absent, the description in the JSON Schema', () => {
  const schema = z.object({ n: intField({ min: 1, max: 10, default: 4 }, 'How many') });
  assert.deepEqual(schema.parse({}), { n: 4 });
  assert.deepEqual(schema.parse({ n: 10 }), { n: 10 });
  for (const n of [0, 11, 2.5]) assert.equal(schema.safeParse({ n }).success, false, `n: ${n}`);
  assert.deepEqual(z.toJSONSchema(schema, { io: 'input' }).properties?.n, { type: 'integer', minimum: 1, maximum: 10, default: 4, description: 'How many' });
});

test('numberField: fractions within the bounds; without a description none is shown', () => {
  const schema = z.object({ s: numberField({ min: 0.01, max: 60, default: 1 }) });
  assert.deepEqual(schema.parse({}), { s: 1 });
  assert.deepEqual(schema.parse({ s: 0.5 }), { s: 0.5 });
  assert.equal(schema.safeParse({ s: 0 }).success, false);
  assert.deepEqual(z.toJSONSchema(schema, { io: 'input' }).properties?.s, { type: 'number', minimum: 0.01, maximum: 60, default: 1 });
});
