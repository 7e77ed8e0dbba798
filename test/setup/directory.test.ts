/**
 * setup/directory.ts: the one place setup, check and credential rotate look up the app
 * registration, its service principal and its app role assignments (the callers' runs against the
 * sandbox Graph are in test/setup/setup.test.ts, test/check/check.test.ts and rotate.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appRoleGrants, findApplication, findServicePrincipal, odataFilter, type DirectoryGet } from '../../src/setup/directory.ts';

/** A reader answering from a map of paths, recording what was asked. */
function reader(answers: Record<string, Record<string, unknown>>): { get: DirectoryGet; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    get: async (path) => {
      asked.push(path);
      const a = answers[path];
      if (!a) throw new Error(`unexpected ${path}`);
      return a;
    },
  };
}

test('OData filters double single quotes and are URL-encoded', () => {
  assert.equal(odataFilter('displayName', "mailbridge o'brien"), "$filter=displayName%20eq%20'mailbridge%20o''brien'");
});

test('the app, its service principal and its grants: found by appId, absent as undefined, grants with resource and date', async () => {
  const appId = '2a000000-0000-4000-8000-000000000001';
  const { get, asked } = reader({
    [`/applications?${odataFilter('appId', appId)}`]: { value: [{ id: 'app-object', appId, displayName: 'mailbridge x' }] },
    [`/servicePrincipals?${odataFilter('appId', appId)}`]: { value: [] },
    '/servicePrincipals/sp-1/appRoleAssignments': {
      value: [
        { appRoleId: 'r1', resourceId: 'exo', resourceDisplayName: 'Office 365 Exchange Online', createdDateTime: '2026-12-07T06:00:00Z' },
        { appRoleId: 'r2', resourceId: 'graph' },
      ],
    },
  });
  assert.equal((await findApplication(get, appId))?.id, 'app-object');
  assert.equal(await findServicePrincipal(get, appId), undefined);
  assert.deepEqual(await appRoleGrants(get, 'sp-1'), [
    { appRoleId: 'r1', resourceId: 'exo', resourceDisplayName: 'Office 365 Exchange Online', created: Date.parse('2026-12-07T06:00:00Z') },
    { appRoleId: 'r2', resourceId: 'graph', resourceDisplayName: '', created: 0 },
  ]);
  assert.equal(asked.length, 3);
});
