/**
 * config/ knows no section of mailbridge.yaml: it loads, overrides, validates and checks whatever
 * ConfigModel it is handed. Shown with a schema of this test's own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { analyzeText, type ConfigModel } from '../../src/config/index.ts';
import { makeProblem } from '../../src/config/problems.ts';
import { secretField } from '../../src/config/secret-field.ts';

const schema = z
  .object({
    pump: z.object({ rate: z.int().min(1).default(5), token: secretField('token of the pump').optional() }).strict().default({ rate: 5 }),
  })
  .strict();
type PumpConfig = z.infer<typeof schema>;

const model: ConfigModel<PumpConfig> = {
  schema,
  checks: [
    (c, ctx) => (c.pump.rate > 100 ? [makeProblem('error', 'MB_CONFIG_TOO_BIG', 'pump.rate', { field: 'pump.rate', found: c.pump.rate, maximum: 100 }, ctx.locate(['pump', 'rate']))] : []),
  ],
};

test('a model of its own: defaults, environment overrides by its keys, its secret fields', () => {
  const r = analyzeText(model, 'pump:\n  token: plain-pump-token\n', '/etc/pump/pump.yaml', { MAILBRIDGE__PUMP__RATE: '7' });
  assert.deepEqual(r.errors, []);
  assert.equal(r.config?.pump.rate, 7);
  assert.equal(r.fromEnv.get('pump.rate'), 'MAILBRIDGE__PUMP__RATE');
  // The key file of the secret box: config/'s own setting, next to the file by default.
  assert.equal(r.keyFile, '/etc/pump/mailbridge.key');
  assert.deepEqual(
    r.warnings.map((w) => [w.code, w.path]),
    [['MB_CONFIG_SECRET_PLAINTEXT', 'pump.token']],
  );
});

test("a model's checks run on the validated configuration; their errors stop it", () => {
  const r = analyzeText(model, 'pump:\n  rate: 500\n', 'pump.yaml', {});
  assert.deepEqual(
    r.errors.map((e) => [e.code, e.path, e.line]),
    [['MB_CONFIG_TOO_BIG', 'pump.rate', 2]],
  );
  assert.equal(r.config, undefined);
  const typo = analyzeText(model, 'pump:\n  rte: 5\n', 'pump.yaml', {});
  assert.deepEqual(
    typo.errors.map((e) => [e.code, e.path, e.params.suggestion]),
    [['MB_CONFIG_KEY_TYPO', 'pump.rte', 'rate']],
  );
});
