/**
 * The sandbox Graph's directory endpoints (src/sandbox/graph/directory-api.ts): every endpoint's
 * success shape, Graph's 400/403/404/409 answers, owners for Application.ReadWrite.OwnedBy, the
 * addKey proof rule, and the propagation delay of app role assignments on the rig's manual clock.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { registeredCert } from '../../../src/sandbox/entra/assertion.ts';
import { EXCHANGE_APP_ID, GRAPH_APP_ID } from '../../../src/sandbox/entra/clouds.ts';
import type { SandboxApp } from '../../../src/sandbox/model.ts';
import { effectiveAppRoles } from '../../../src/sandbox/registration.ts';
import { APP, graphError, startRig, T, USER, type Rig } from './helpers.ts';

const DENIED = 'Insufficient privileges to complete the operation.';
const WRITE = 'Application.ReadWrite.All';
const CONSENT = 'AppRoleAssignment.ReadWrite.All Application.Read.All';
const HALF_HOUR = 30 * 60_000;

describe('sandbox Graph directory API', () => {
  let rig: Rig;
  const contoso = () => rig.directory.tenant(T.contoso)!;
  const appOf = (appId: string): SandboxApp => rig.directory.app(contoso(), appId)!;
  /** A delegated token of a Contoso user (alice: Global Administrator, bob: Application Administrator, dave: Privileged Role Administrator, carol: no role). */
  const as = (user: { upn: string; oid: string }, scp: string) => rig.userToken(user, scp);
  const create = async (displayName: string, token?: string) => {
    const res = await rig.call('POST', '/v1.0/applications', { token: token ?? (await as(USER.alice, WRITE)), json: { displayName } });
    assert.equal(res.status, 201, res.text);
    return res.json<{ id: string; appId: string }>();
  };
  const createSp = async (appId: string) => {
    const res = await rig.call('POST', '/v1.0/servicePrincipals', { token: await as(USER.alice, WRITE), json: { appId } });
    assert.equal(res.status, 201, res.text);
    return res.json<{ id: string }>();
  };
  const resourceSp = async (appId: string) => {
    const res = await rig.call('GET', `/v1.0/servicePrincipals?$filter=appId eq '${appId}'`, { token: await as(USER.alice, 'Application.Read.All') });
    assert.equal(res.status, 200, res.text);
    const [sp] = res.json<{ value: Array<{ id: string; appRoles: Array<{ id: string; value: string }> }> }>().value;
    assert.ok(sp);
    return { id: sp.id, role: (name: string) => sp.appRoles.find((r) => r.value === name)!.id };
  };

  before(async () => {
    rig = await startRig({ propagationMs: HALF_HOUR });
    const users = contoso().users;
    users.find((u) => u.upn === USER.alice.upn)!.roles = ['Global Administrator'];
    users.find((u) => u.upn === USER.bob.upn)!.roles = ['Application Administrator'];
    users.find((u) => u.upn === USER.dave.upn)!.roles = ['Privileged Role Administrator'];
  });
  after(async () => {
    await rig.close();
  });

  describe('applications', () => {
    it('POST creates a registration without an enterprise application, shaped as Graph returns it', async () => {
      const res = await rig.call('POST', '/v1.0/applications', {
        token: await as(USER.alice, WRITE),
        json: {
          displayName: 'mailbridge',
          signInAudience: 'AzureADMyOrg',
          web: { redirectUris: ['https://gateway.contoso.test/oauth/callback'] },
          publicClient: { redirectUris: ['http://localhost'] },
          isFallbackPublicClient: true,
          requiredResourceAccess: [{ resourceAppId: EXCHANGE_APP_ID, resourceAccess: [{ id: '7146a1f0-8703-45b3-9eae-527a64c00995', type: 'Role' }] }],
        },
      });
      assert.equal(res.status, 201, res.text);
      const app = res.json<Record<string, unknown>>();
      assert.match(String(app.id), /^[0-9a-f-]{36}$/);
      assert.match(String(app.appId), /^[0-9a-f-]{36}$/);
      assert.notEqual(app.id, app.appId);
      assert.equal(app.displayName, 'mailbridge');
      assert.equal(app['@odata.context'], 'https://graph.microsoft.com/v1.0/$metadata#applications/$entity');
      assert.deepEqual((app.web as { redirectUris: string[] }).redirectUris, ['https://gateway.contoso.test/oauth/callback']);
      assert.deepEqual(app.publicClient, { redirectUris: ['http://localhost'] });
      assert.equal(app.isFallbackPublicClient, true);
      assert.deepEqual(app.passwordCredentials, []);
      assert.deepEqual(app.keyCredentials, []);
      assert.equal((app.requiredResourceAccess as unknown[]).length, 1);
      // The tenant has the app (sandbox Entra knows it), but no enterprise application yet.
      const stored = appOf(String(app.appId));
      assert.equal(stored.objectId, app.id);
      assert.deepEqual(stored.redirectUris.sort(), ['http://localhost', 'https://gateway.contoso.test/oauth/callback']);
      const sps = await rig.call('GET', `/v1.0/servicePrincipals?$filter=appId eq '${String(app.appId)}'`, { token: await as(USER.alice, 'Application.Read.All') });
      assert.deepEqual(sps.json<{ value: unknown[] }>().value, []);
    });

    it('GET by $filter, by object id and by (appId=…) finds the same app; unknown ids are 404 Request_ResourceNotFound', async () => {
      const created = await create('findme');
      const token = await as(USER.carol, 'Application.Read.All');
      const byFilter = await rig.call('GET', `/v1.0/applications?$filter=appId eq '${created.appId}'`, { token });
      assert.equal(byFilter.status, 200);
      assert.deepEqual(
        byFilter.json<{ value: Array<{ id: string }> }>().value.map((a) => a.id),
        [created.id],
      );
      const byId = await rig.call('GET', `/v1.0/applications/${created.id}`, { token });
      assert.equal(byId.json<{ appId: string }>().appId, created.appId);
      const byAppId = await rig.call('GET', `/v1.0/applications(appId='${created.appId}')`, { token });
      assert.equal(byAppId.json<{ id: string }>().id, created.id);
      const missing = await rig.call('GET', '/v1.0/applications/00000000-0000-4000-8000-00000000dead', { token });
      assert.equal(missing.status, 404);
      assert.equal(graphError(missing).code, 'Request_ResourceNotFound');
      assert.match(graphError(missing).message, /^Resource '00000000-0000-4000-8000-00000000dead' does not exist/);
      const badFilter = await rig.call('GET', `/v1.0/applications?$filter=startswith(displayName,'x')`, { token });
      assert.equal(badFilter.status, 400);
      assert.equal(graphError(badFilter).code, 'Request_UnsupportedQuery');
    });

    it('403 Authorization_RequestDenied: a token without the scope, a user without an admin role, a read scope writing', async () => {
      for (const [user, scp] of [
        [USER.alice, 'Mail.Read'],
        [USER.carol, WRITE],
        [USER.alice, 'Application.Read.All'],
      ] as const) {
        const res = await rig.call('POST', '/v1.0/applications', { token: await as(user, scp), json: { displayName: 'x' } });
        assert.equal(res.status, 403, `${user.upn} ${scp}`);
        assert.deepEqual([graphError(res).code, graphError(res).message], ['Authorization_RequestDenied', DENIED]);
      }
      const read = await rig.call('GET', '/v1.0/applications', { token: await as(USER.alice, 'Mail.Read') });
      assert.equal(read.status, 403);
      const appOnly = await rig.call('GET', '/v1.0/applications', { token: await rig.appToken(APP.relay) });
      assert.equal(appOnly.status, 403, 'Mail roles do not read the directory');
    });

    it('PATCH appRoles replaces the collection; an enabled role is neither removed nor changed before it is disabled (CannotDeleteOrUpdateEnabledEntitlement)', async () => {
      const created = await create('roles');
      const token = await as(USER.alice, WRITE);
      const role = (value: string, isEnabled = true) => ({ id: `0e1e0000-0000-4000-8000-00000000000${value.length}`, value, displayName: value, description: value, allowedMemberTypes: ['User'], isEnabled });
      const patch = (appRoles: unknown[]) => rig.call('PATCH', `/v1.0/applications/${created.id}`, { token, json: { appRoles } });
      assert.equal((await patch([role('reader')])).status, 204);
      assert.equal((await patch([role('reader'), role('admin')])).status, 204);
      const got = (await rig.call('GET', `/v1.0/applications/${created.id}`, { token })).json<{ appRoles: Array<{ value: string; origin: string }> }>();
      assert.deepEqual(got.appRoles.map((r) => [r.value, r.origin]), [['reader', 'Application'], ['admin', 'Application']]);
      const removed = await patch([role('admin')]);
      assert.equal(removed.status, 400);
      assert.deepEqual([graphError(removed).code, graphError(removed).message], ['CannotDeleteOrUpdateEnabledEntitlement', 'Permission (scope or role) cannot be deleted or updated unless disabled first.']);
      const renamed = await patch([{ ...role('reader'), displayName: 'Leser' }, role('admin')]);
      assert.equal(graphError(renamed).code, 'CannotDeleteOrUpdateEnabledEntitlement');
      assert.equal((await patch([role('reader', false), role('admin')])).status, 204, 'disabling is allowed');
      assert.equal((await patch([role('admin')])).status, 204, 'a disabled role may go');
      assert.deepEqual(appOf(created.appId).registration!.appRoles.map((r) => r.value), ['admin']);
      const bad = await patch([{ ...role('x'), allowedMemberTypes: [] }]);
      assert.equal(graphError(bad).code, 'Request_BadRequest');
    });

    it('PATCH changes the properties setup sets (204); invalid values are 400 Request_BadRequest and change nothing', async () => {
      const created = await create('patchme');
      const token = await as(USER.bob, WRITE);
      const ok = await rig.call('PATCH', `/v1.0/applications/${created.id}`, {
        token,
        json: { displayName: 'patched', web: { redirectUris: ['https://gw.contoso.test/cb'] }, isFallbackPublicClient: true },
      });
      assert.equal(ok.status, 204, ok.text);
      const got = (await rig.call('GET', `/v1.0/applications/${created.id}`, { token: await as(USER.bob, 'Application.Read.All') })).json<Record<string, unknown>>();
      assert.equal(got.displayName, 'patched');
      assert.equal(got.isFallbackPublicClient, true);
      assert.deepEqual((got.web as { redirectUris: string[] }).redirectUris, ['https://gw.contoso.test/cb']);

      const http = await rig.call('PATCH', `/v1.0/applications/${created.id}`, { token, json: { displayName: 'again', web: { redirectUris: ['http://gw.contoso.test/cb'] } } });
      assert.equal(http.status, 400);
      assert.deepEqual([graphError(http).code, graphError(http).message], ['Request_BadRequest', "Invalid value specified for property 'web' of resource 'Application'."]);
      assert.equal(appOf(created.appId).displayName, 'patched', 'a refused PATCH changes nothing');
      const unknown = await rig.call('PATCH', `/v1.0/applications/${created.id}`, { token, json: { identifierUris: ['api://x'] } });
      assert.equal(unknown.status, 400);
      const noName = await rig.call('POST', '/v1.0/applications', { token, json: {} });
      assert.deepEqual([noName.status, graphError(noName).message], [400, "Invalid value specified for property 'displayName' of resource 'Application'."]);
    });

    it('an Application Developer may create apps but not change someone else’s', async () => {
      contoso().users.find((u) => u.upn === USER.carol.upn)!.roles = ['Application Developer'];
      try {
        const mine = await create('dev-app', await as(USER.carol, WRITE));
        const other = await create('admins-app');
        const res = await rig.call('PATCH', `/v1.0/applications/${other.id}`, { token: await as(USER.carol, WRITE), json: { displayName: 'taken' } });
        assert.equal(res.status, 403);
        assert.equal(graphError(res).code, 'Authorization_RequestDenied');
        assert.ok(mine.id);
      } finally {
        contoso().users.find((u) => u.upn === USER.carol.upn)!.roles = [];
      }
    });
  });

  describe('credentials', () => {
    it('addPassword returns secretText once, with hint, keyId and a two-year end; GET never shows it; removePassword removes it', async () => {
      const created = await create('secrets');
      const token = await as(USER.alice, WRITE);
      const before = rig.clock.offsetMs;
      const res = await rig.call('POST', `/v1.0/applications/${created.id}/addPassword`, { token, json: { passwordCredential: { displayName: 'mailbridge' } } });
      assert.equal(res.status, 200, res.text);
      const pc = res.json<{ secretText: string; hint: string; keyId: string; startDateTime: string; endDateTime: string; displayName: string }>();
      assert.ok(pc.secretText.length >= 16);
      assert.equal(pc.hint, pc.secretText.slice(0, 3));
      assert.equal(pc.displayName, 'mailbridge');
      const years = (Date.parse(pc.endDateTime) - Date.parse(pc.startDateTime)) / (365.25 * 86_400_000);
      assert.ok(Math.abs(years - 2) < 0.01, `default lifetime two years, got ${years}`);
      assert.equal(rig.clock.offsetMs, before);
      // Sandbox Entra checks exactly this secret.
      assert.equal(appOf(created.appId).secrets.find((s) => s.keyId === pc.keyId)?.value, pc.secretText);
      const got = (await rig.call('GET', `/v1.0/applications/${created.id}`, { token: await as(USER.alice, 'Application.Read.All') })).json<{ passwordCredentials: Array<Record<string, unknown>> }>();
      assert.deepEqual(got.passwordCredentials.map((p) => [p.keyId, p.hint, p.secretText, p.displayName]), [[pc.keyId, pc.hint, null, 'mailbridge']]);
      assert.ok(!JSON.stringify(got).includes(pc.secretText));

      const tooLong = await rig.call('POST', `/v1.0/applications(appId='${created.appId}')/addPassword`, {
        token,
        json: { passwordCredential: { endDateTime: new Date(Date.now() + 3 * 365 * 86_400_000).toISOString() } },
      });
      assert.equal(tooLong.status, 400);
      assert.equal(graphError(tooLong).code, 'Request_BadRequest');

      const removed = await rig.call('POST', `/v1.0/applications/${created.id}/removePassword`, { token, json: { keyId: pc.keyId } });
      assert.equal(removed.status, 204);
      assert.deepEqual(appOf(created.appId).secrets, []);
      const again = await rig.call('POST', `/v1.0/applications/${created.id}/removePassword`, { token, json: { keyId: pc.keyId } });
      assert.equal(again.status, 404);
    });

    it('PATCH keyCredentials uploads a certificate; addKey needs a proof signed by a valid one (aud, iss, 10 minutes); removeKey too', async () => {
      const created = await create('certs');
      const token = await as(USER.alice, WRITE);
      const first = rig.ca.issueSelfSigned('mailbridge-1');
      const second = rig.ca.issueSelfSigned('mailbridge-2');
      const der = (pem: string) => registeredCert(pem).x509.raw.toString('base64');
      const keyCredential = (pem: string) => ({ type: 'AsymmetricX509Cert', usage: 'Verify', key: der(pem), displayName: 'CN=mailbridge' });

      // No valid certificate yet: addKey is refused, PATCH is the way in.
      const proofless = await rig.call('POST', `/v1.0/applications/${created.id}/addKey`, { token, json: { keyCredential: keyCredential(first.certPem), passwordCredential: null, proof: 'x' } });
      assert.equal(proofless.status, 400);
      assert.match(graphError(proofless).message, /no valid certificate/);

      const patched = await rig.call('PATCH', `/v1.0/applications/${created.id}`, { token, json: { keyCredentials: [keyCredential(first.certPem)] } });
      assert.equal(patched.status, 204, patched.text);
      const got = (await rig.call('GET', `/v1.0/applications/${created.id}`, { token: await as(USER.alice, 'Application.Read.All') })).json<{ keyCredentials: Array<Record<string, unknown>> }>();
      assert.equal(got.keyCredentials.length, 1);
      const kc = got.keyCredentials[0]!;
      assert.deepEqual([kc.type, kc.usage, kc.key, kc.customKeyIdentifier], ['AsymmetricX509Cert', 'Verify', null, registeredCert(first.certPem).sha1Hex]);
      assert.equal(appOf(created.appId).certificates.length, 1);

      const now = Math.floor((Date.now() + rig.clock.offsetMs) / 1000);
      const proof = (signer: { keyPem: string; certPem: string }, claims: { aud?: string; iss?: string; exp?: number } = {}) =>
        new SignJWT({})
          .setProtectedHeader({ alg: 'RS256', x5t: registeredCert(signer.certPem).x5t })
          .setAudience(claims.aud ?? '00000002-0000-0000-c000-000000000000')
          .setIssuer(claims.iss ?? created.id)
          .setNotBefore(now)
          .setExpirationTime(claims.exp ?? now + 600)
          .sign(createPrivateKey(signer.keyPem));
      const add = async (p: string) => rig.call('POST', `/v1.0/applications/${created.id}/addKey`, { token, json: { keyCredential: keyCredential(second.certPem), passwordCredential: null, proof: p } });

      for (const bad of [await proof(second), await proof(first, { aud: GRAPH_APP_ID }), await proof(first, { iss: created.appId }), await proof(first, { exp: now + 3600 })]) {
        const res = await add(bad);
        assert.equal(res.status, 400, res.text);
        assert.equal(graphError(res).code, 'Request_BadRequest');
      }
      const added = await add(await proof(first));
      assert.equal(added.status, 200, added.text);
      const key = added.json<{ keyId: string; type: string; key: unknown }>();
      assert.deepEqual([key.type, key.key], ['AsymmetricX509Cert', null]);
      assert.equal(appOf(created.appId).certificates.length, 2);

      const removed = await rig.call('POST', `/v1.0/applications/${created.id}/removeKey`, { token, json: { keyId: key.keyId, proof: await proof(first) } });
      assert.equal(removed.status, 204, removed.text);
      assert.deepEqual(
        appOf(created.appId).certificates.map((c) => registeredCert(c.pem).sha1Hex),
        [registeredCert(first.certPem).sha1Hex],
      );
    });
  });

  describe('service principals', () => {
    it('POST creates the enterprise application (201); a second time is 409, an unknown appId 400', async () => {
      const created = await create('with-sp');
      const sp = await createSp(created.appId);
      assert.equal(sp.id, appOf(created.appId).servicePrincipalId);
      assert.notEqual(sp.id, created.id, 'the enterprise application has an object ID of its own');
      const token = await as(USER.alice, WRITE);
      const again = await rig.call('POST', '/v1.0/servicePrincipals', { token, json: { appId: created.appId } });
      assert.equal(again.status, 409);
      assert.deepEqual(
        [graphError(again).code, graphError(again).message],
        ['Request_MultipleObjectsWithSameKeyValue', `The service principal cannot be created, updated, or restored because the service principal name ${created.appId} is already in use.`],
      );
      const unknown = await rig.call('POST', '/v1.0/servicePrincipals', { token, json: { appId: '00000000-0000-4000-8000-0000000000aa' } });
      assert.equal(unknown.status, 400);
      assert.match(graphError(unknown).message, /does not reference a valid application object/);
      const byKey = await rig.call('GET', `/v1.0/servicePrincipals(appId='${created.appId}')`, { token: await as(USER.alice, 'Application.Read.All') });
      assert.equal(byKey.json<{ id: string }>().id, sp.id);
      const byId = await rig.call('GET', `/v1.0/servicePrincipals/${sp.id}`, { token: await as(USER.alice, 'Application.Read.All') });
      assert.equal(byId.json<{ appId: string }>().appId, created.appId);
    });

    it('the resource service principals exist in every tenant with the real app IDs and permission IDs', async () => {
      const exo = await resourceSp(EXCHANGE_APP_ID);
      assert.equal(exo.role('SMTP.SendAsApp'), '7146a1f0-8703-45b3-9eae-527a64c00995');
      assert.equal(exo.role('IMAP.AccessAsApp'), '5e5addcd-3e8d-4e90-baf5-964efab2b20a');
      assert.equal(exo.role('full_access_as_app'), 'dc890d15-9560-4a4c-9b7f-a736ec74ec40');
      const graph = await resourceSp(GRAPH_APP_ID);
      assert.equal(graph.role('Mail.Send'), 'b633e1c5-b582-4048-a93e-9f11b44c7e96');
      assert.equal(graph.role('Mail.ReadWrite'), 'e2a3a72e-5f79-4c64-b1b1-878b674786c9');
      assert.notEqual(exo.id, graph.id);
    });
  });

  describe('app role assignments', () => {
    it('a grant is listed at once (201) and reaches tokens only after the propagation delay', async () => {
      const created = await create('consented');
      const sp = await createSp(created.appId);
      const exo = await resourceSp(EXCHANGE_APP_ID);
      const res = await rig.call('POST', `/v1.0/servicePrincipals/${exo.id}/appRoleAssignedTo`, {
        token: await as(USER.dave, CONSENT),
        json: { principalId: sp.id, resourceId: exo.id, appRoleId: exo.role('SMTP.SendAsApp') },
      });
      assert.equal(res.status, 201, res.text);
      const a = res.json<Record<string, unknown>>();
      assert.deepEqual(
        [a.principalId, a.resourceId, a.appRoleId, a.principalType, a.resourceDisplayName],
        [sp.id, exo.id, '7146a1f0-8703-45b3-9eae-527a64c00995', 'ServicePrincipal', 'Office 365 Exchange Online'],
      );
      const listed = await rig.call('GET', `/v1.0/servicePrincipals/${sp.id}/appRoleAssignments`, { token: await as(USER.dave, 'Application.Read.All') });
      assert.deepEqual(
        listed.json<{ value: Array<{ id: string }> }>().value.map((x) => x.id),
        [a.id],
      );
      const app = appOf(created.appId);
      const now = () => Date.now() + rig.clock.offsetMs;
      assert.deepEqual(effectiveAppRoles(app, 'exchange', now()), [], 'not yet in tokens');
      rig.clock.offsetMs += HALF_HOUR - 60_000;
      assert.deepEqual(effectiveAppRoles(app, 'exchange', now()), [], 'still propagating after 29 minutes');
      rig.clock.offsetMs += 61_000;
      assert.deepEqual(effectiveAppRoles(app, 'exchange', now()), ['SMTP.SendAsApp']);

      const again = await rig.call('POST', `/v1.0/servicePrincipals/${sp.id}/appRoleAssignments`, {
        token: await as(USER.alice, CONSENT),
        json: { principalId: sp.id, resourceId: exo.id, appRoleId: exo.role('SMTP.SendAsApp') },
      });
      assert.equal(again.status, 400);
      assert.deepEqual([graphError(again).code, graphError(again).message], ['Request_BadRequest', 'Permission being assigned already exists on the object.']);
    });

    it('403 without AppRoleAssignment.ReadWrite.All or without a consenting role; Microsoft Graph roles need a privileged role; 400 for a role the resource lacks', async () => {
      const created = await create('denied-consent');
      const sp = await createSp(created.appId);
      const exo = await resourceSp(EXCHANGE_APP_ID);
      const graph = await resourceSp(GRAPH_APP_ID);
      const assign = async (user: { upn: string; oid: string }, scp: string, resource: { id: string }, appRoleId: string) =>
        rig.call('POST', `/v1.0/servicePrincipals/${resource.id}/appRoleAssignedTo`, { token: await as(user, scp), json: { principalId: sp.id, resourceId: resource.id, appRoleId } });
      for (const [user, scp, resource, role] of [
        [USER.dave, 'Application.Read.All', exo, exo.role('IMAP.AccessAsApp')],
        [USER.dave, 'AppRoleAssignment.ReadWrite.All', exo, exo.role('IMAP.AccessAsApp')],
        [USER.carol, CONSENT, exo, exo.role('IMAP.AccessAsApp')],
        [USER.bob, CONSENT, graph, graph.role('Mail.Send')],
      ] as const) {
        const res = await assign(user, scp, resource, role);
        assert.equal(res.status, 403, `${user.upn} ${scp}`);
        assert.deepEqual([graphError(res).code, graphError(res).message], ['Authorization_RequestDenied', DENIED]);
      }
      // An Application Administrator may consent to Exchange Online's roles.
      assert.equal((await assign(USER.bob, CONSENT, exo, exo.role('IMAP.AccessAsApp'))).status, 201);
      const wrong = await assign(USER.alice, CONSENT, exo, graph.role('Application.ReadWrite.All'));
      assert.equal(wrong.status, 400);
      assert.equal(graphError(wrong).code, 'Request_BadRequest');
      const mismatch = await rig.call('POST', `/v1.0/servicePrincipals/${exo.id}/appRoleAssignedTo`, {
        token: await as(USER.alice, CONSENT),
        json: { principalId: sp.id, resourceId: graph.id, appRoleId: graph.role('Mail.Send') },
      });
      assert.equal(mismatch.status, 400, 'the body must name the resource of the path');
    });

    it('app-only: AppRoleAssignment.ReadWrite.All alone is not enough; with Application.Read.All it grants', async () => {
      const created = await create('app-granted');
      const sp = await createSp(created.appId);
      const exo = await resourceSp(EXCHANGE_APP_ID);
      const body = { principalId: sp.id, resourceId: exo.id, appRoleId: exo.role('IMAP.AccessAsApp') };
      const alone = await rig.call('POST', `/v1.0/servicePrincipals/${exo.id}/appRoleAssignedTo`, { token: await rig.appToken(APP.none, { roles: ['AppRoleAssignment.ReadWrite.All'] }), json: body });
      assert.equal(alone.status, 403);
      const both = await rig.call('POST', `/v1.0/servicePrincipals/${exo.id}/appRoleAssignedTo`, {
        token: await rig.appToken(APP.none, { roles: ['AppRoleAssignment.ReadWrite.All', 'Application.Read.All'] }),
        json: body,
      });
      assert.equal(both.status, 201, both.text);
    });
  });

  describe('Application.ReadWrite.OwnedBy', () => {
    it('the caller owns what it creates, may change it, and neither sees nor changes other apps', async () => {
      const token = await rig.appToken(APP.none, { roles: ['Application.ReadWrite.OwnedBy'] });
      const mine = await create('owned', token);
      assert.deepEqual(appOf(mine.appId).owners, [APP.none.sp]);
      const patch = await rig.call('PATCH', `/v1.0/applications/${mine.id}`, { token, json: { displayName: 'owned-2' } });
      assert.equal(patch.status, 204);
      const other = await create('not-owned');
      const denied = await rig.call('PATCH', `/v1.0/applications/${other.id}`, { token, json: { displayName: 'hijack' } });
      assert.equal(denied.status, 403);
      assert.equal(graphError(denied).code, 'Authorization_RequestDenied');
      const secret = await rig.call('POST', `/v1.0/applications/${other.id}/addPassword`, { token, json: { passwordCredential: {} } });
      assert.equal(secret.status, 403);
      const list = await rig.call('GET', '/v1.0/applications', { token });
      assert.deepEqual(
        list.json<{ value: Array<{ id: string }> }>().value.map((a) => a.id),
        [mine.id],
      );
    });
  });

  describe('oauth2PermissionGrants', () => {
    it('a Privileged Role Administrator grants tenant-wide delegated consent; it is the app’s consent at once', async () => {
      const created = await create('delegated');
      const sp = await createSp(created.appId);
      const graph = await resourceSp(GRAPH_APP_ID);
      const exo = await resourceSp(EXCHANGE_APP_ID);
      const grant = async (user: { upn: string; oid: string }, scp: string, resourceId: string, scope: string) =>
        rig.call('POST', '/v1.0/oauth2PermissionGrants', { token: await as(user, scp), json: { clientId: sp.id, consentType: 'AllPrincipals', resourceId, scope } });
      const denied = await grant(USER.carol, 'DelegatedPermissionGrant.ReadWrite.All', graph.id, 'Mail.Send offline_access');
      assert.equal(denied.status, 403);
      const noScope = await grant(USER.dave, WRITE, graph.id, 'Mail.Send offline_access');
      assert.equal(noScope.status, 403);
      const res = await grant(USER.dave, 'DelegatedPermissionGrant.ReadWrite.All', graph.id, 'Mail.Send offline_access');
      assert.equal(res.status, 201, res.text);
      assert.deepEqual(res.json<Record<string, unknown>>().consentType, 'AllPrincipals');
      const exoGrant = await grant(USER.dave, 'DelegatedPermissionGrant.ReadWrite.All', exo.id, 'SMTP.Send IMAP.AccessAsUser.All');
      assert.equal(exoGrant.status, 201, exoGrant.text);
      assert.deepEqual(appOf(created.appId).delegatedConsent.sort(), [
        'Mail.Send',
        'https://outlook.office365.com/IMAP.AccessAsUser.All',
        'https://outlook.office365.com/SMTP.Send',
        'offline_access',
      ]);
      const bad = await grant(USER.dave, 'DelegatedPermissionGrant.ReadWrite.All', exo.id, 'Nope.Nothing');
      assert.equal(bad.status, 400);
      const listed = await rig.call('GET', `/v1.0/oauth2PermissionGrants?$filter=clientId eq '${sp.id}'`, { token: await as(USER.dave, 'Application.Read.All') });
      assert.equal(listed.json<{ value: unknown[] }>().value.length, 2);
    });

    it('PATCH replaces one grant\'s scope and leaves the other resource\'s consent alone; unknown ids are 404, unknown scopes 400, no role 403', async () => {
      const created = await create('patched');
      const sp = await createSp(created.appId);
      const graph = await resourceSp(GRAPH_APP_ID);
      const exo = await resourceSp(EXCHANGE_APP_ID);
      const token = await as(USER.dave, 'DelegatedPermissionGrant.ReadWrite.All Application.Read.All');
      for (const [resourceId, scope] of [[graph.id, 'openid offline_access'], [exo.id, 'SMTP.Send']] as const) {
        const r = await rig.call('POST', '/v1.0/oauth2PermissionGrants', { token, json: { clientId: sp.id, consentType: 'AllPrincipals', resourceId, scope } });
        assert.equal(r.status, 201, r.text);
      }
      const grants = (await rig.call('GET', `/v1.0/oauth2PermissionGrants?$filter=clientId eq '${sp.id}'`, { token })).json<{ value: Array<{ id: string; resourceId: string }> }>().value;
      const graphGrant = grants.find((g) => g.resourceId === graph.id)!;
      const patched = await rig.call('PATCH', `/v1.0/oauth2PermissionGrants/${graphGrant.id}`, { token, json: { scope: 'openid offline_access Mail.Send' } });
      assert.equal(patched.status, 204, patched.text);
      assert.deepEqual(appOf(created.appId).delegatedConsent.sort(), ['Mail.Send', 'https://outlook.office365.com/SMTP.Send', 'offline_access', 'openid']);
      const missing = await rig.call('PATCH', '/v1.0/oauth2PermissionGrants/00000000-0000-4000-8000-00000000dead', { token, json: { scope: 'openid' } });
      assert.equal(missing.status, 404);
      assert.equal((await rig.call('PATCH', `/v1.0/oauth2PermissionGrants/${graphGrant.id}`, { token, json: { scope: 'Nope.Nothing' } })).status, 400);
      const denied = await rig.call('PATCH', `/v1.0/oauth2PermissionGrants/${graphGrant.id}`, { token: await as(USER.carol, 'DelegatedPermissionGrant.ReadWrite.All'), json: { scope: 'openid' } });
      assert.equal(graphError(denied).code, 'Authorization_RequestDenied');
    });
  });
});
