/**
 * Groups of settings that all have defaults (config/settings-group.ts): an absent group is filled
 * from its fields' defaults, a given one keeps what it sets, an unknown key is refused, and a
 * required field does not type-check (it would make an absent group invalid).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { settingsGroup } from '../../src/config/settings-group.ts';
import { intField } from '../../src/config/number-field.ts';

const schema = z.object({
  session: settingsGroup({
    idleMinutes: intField({ min: 1, max: 1440, default: 30 }),
    mode: z.enum(['a', 'b']).default('a'),
    note: z.string().optional(),
  }),
});

test('an absent group takes every default; a given one keeps its values and fills the rest', () => {
  assert.deepEqual(schema.parse({}), { session: { idleMinutes: 30, mode: 'a' } });
  assert.deepEqual(schema.parse({ session: { mode: 'b', note: 'x' } }), { session: { idleMinutes: 30, mode: 'b', note: 'x' } });
});

test('an unknown key in a group is refused', () => {
  const r = schema.safeParse({ session: { idleMinuets: 5 } });
  assert.equal(r.success, false);
  assert.deepEqual(r.error.issues.map((i) => i.code), ['unrecognized_keys']);
});

test('a field without a default or optional() is refused by the type checker', () => {
  // @ts-expect-error a required field would make an absent group fail to parse
  const bad = settingsGroup({ port: z.int() });
  // What the type check prevents: the group, left out, is invalid.
  assert.equal(z.object({ g: bad }).safeParse({}).success, false);
});
