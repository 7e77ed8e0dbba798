import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyzeText } from '../../src/app/config.ts';
import { setupWillCreate } from '../../src/setup/index.ts';

const yaml = `connections:
  contoso: { tenantId: 71f2c0de-1111-4111-8111-0000000000c1, clientId: new }
  typo: { tenantId: 71f2c0de-1111-4111-8111-0000000000c1, clientId: neu }
`;

test('loaded for setup (relax: setupWillCreate), clientId new and a missing credential are warnings, since setup makes both; any other placeholder stays an error', () => {
  const strict = analyzeText(yaml, 'mailbridge.yaml', {});
  assert.deepEqual(strict.errors.map((p) => `${p.code} ${p.path}`).sort(), [
    'MB_CONFIG_CLIENT_ID_INVALID connections.contoso.clientId',
    'MB_CONFIG_CLIENT_ID_INVALID connections.typo.clientId',
    'MB_CONFIG_NO_CREDENTIAL connections.contoso',
    'MB_CONFIG_NO_CREDENTIAL connections.typo',
  ]);
  const setup = analyzeText(yaml, 'mailbridge.yaml', {}, { relax: setupWillCreate });
  assert.deepEqual(setup.errors.map((p) => `${p.code} ${p.path}`), ['MB_CONFIG_CLIENT_ID_INVALID connections.typo.clientId']);
  assert.ok(setup.warnings.some((w) => w.code === 'MB_CONFIG_CLIENT_ID_INVALID' && w.path === 'connections.contoso.clientId' && w.severity === 'warning'));
});
