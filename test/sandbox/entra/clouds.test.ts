import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLOUDS as IDENTITY_CLOUDS } from '../../../src/identity/config.ts';
import { CLOUD_PROFILES, CLOUDS as SANDBOX_CLOUDS } from '../../../src/sandbox/entra/clouds.ts';

// The sandbox keeps its own list of cloud names (it takes nothing of identity); a connection's
// `cloud:` must name a cloud the sandbox emulates, and every emulated cloud must be one a connection can name.
test('the sandbox emulates exactly the clouds a connection can name', () => {
  assert.deepEqual([...SANDBOX_CLOUDS], [...IDENTITY_CLOUDS]);
  assert.deepEqual(Object.keys(CLOUD_PROFILES).sort(), [...IDENTITY_CLOUDS].sort());
});
