import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { authorize, maySendAs, type AuthzResult } from '../../../src/sandbox/exchange/authz.ts';
import { runScript } from '../../../src/sandbox/exchange/powershell.ts';
import {
  grantFullAccess,
  grantSendAs,
  newServicePrincipal,
  removeServicePrincipal,
  revokeFullAccess,
  setMailboxSmtpAuthDisabled,
  setTenantSmtpAuthDisabled,
} from '../../../src/sandbox/exchange/ops.ts';
import { APP, CAROL, DAVE, OTHER_TENANT_ID, TENANT_ID, appToken, makeDirectory, makeSigner, userToken, type Signer } from './smtp-harness.ts';

let signer: Signer;
let stranger: Signer;
before(async () => {
  signer = await makeSigner();
  stranger = await makeSigner('test-key'); // same kid, different key: a forged token
});

function denied(r: AuthzResult): { stage: string; reason: string } {
  assert.equal(r.ok, false, `expected a denial, got ${JSON.stringify(r.ok)}`);
  return r.ok ? { stage: '', reason: '' } : { stage: r.stage, reason: r.reason };
}

test('an app token with the role, the right New-ServicePrincipal and FullAccess opens the mailbox for SMTP and IMAP', async () => {
  const dir = makeDirectory();
  for (const protocol of ['smtp', 'imap'] as const) {
    const r = await authorize(dir, signer.jwks, { protocol, user: 'Alice@Contoso.test', token: await appToken(signer) });
    assert.equal(r.ok, true);
    if (!r.ok) continue;
    assert.equal(r.address, 'alice@contoso.test');
    assert.equal(r.principal.kind, 'app');
    assert.equal(r.principal.objectId, APP.servicePrincipalId);
    assert.equal(r.tenant.id, TENANT_ID);
  }
});

test('the token itself: signature, expiry, audience, issuer, tenant', async () => {
  const dir = makeDirectory();
  const run = async (token: string) => denied(await authorize(dir, signer.jwks, { protocol: 'smtp', user: 'alice@contoso.test', token }));
  assert.deepEqual(await run(await appToken(signer, { signer: stranger })), { stage: 'token', reason: 'bad_signature' });
  assert.deepEqual(await run('not.a.jwt'), { stage: 'token', reason: 'malformed_token' });
  // Expired an hour ago: beyond the five minutes of clock skew.
  assert.deepEqual(await run(await appToken(signer, { now: Date.now() - 2 * 3600_000, expiresIn: 3600 })), { stage: 'token', reason: 'expired' });
  assert.deepEqual(await run(await appToken(signer, { aud: 'https://graph.microsoft.com' })), { stage: 'token', reason: 'wrong_audience' });
  // A GCC High audience is not accepted by a global tenant's Exchange.
  assert.deepEqual(await run(await appToken(signer, { aud: 'https://outlook.office365.us' })), { stage: 'token', reason: 'wrong_audience' });
  assert.deepEqual(await run(await appToken(signer, { iss: 'https://login.microsoftonline.com/x/v2.0' })), { stage: 'token', reason: 'wrong_issuer' });
  assert.deepEqual(await run(await appToken(signer, { tid: '00000000-0000-0000-0000-000000000001' })), { stage: 'token', reason: 'unknown_tenant' });
  // The resource's app ID is an accepted audience too.
  const byAppId = await authorize(dir, signer.jwks, {
    protocol: 'smtp',
    user: 'alice@contoso.test',
    token: await appToken(signer, { aud: '00000002-0000-0ff1-ce00-000000000000' }),
  });
  assert.equal(byAppId.ok, true);
  // Within the clock skew an expired token still passes.
  const skew = await authorize(dir, signer.jwks, {
    protocol: 'smtp',
    user: 'alice@contoso.test',
    token: await appToken(signer, { now: Date.now() - 3600_000 - 60_000, expiresIn: 3600 }),
  });
  assert.equal(skew.ok, true);
});

test('the JWKS may be a function, so rotated keys are picked up', async () => {
  const dir = makeDirectory();
  let current = stranger.jwks;
  const source = () => current;
  const token = await appToken(signer);
  assert.equal(denied(await authorize(dir, source, { protocol: 'smtp', user: 'alice@contoso.test', token })).reason, 'bad_signature');
  current = signer.jwks;
  assert.equal((await authorize(dir, source, { protocol: 'smtp', user: 'alice@contoso.test', token })).ok, true);
});

test('app-only: the role must match the protocol', async () => {
  const dir = makeDirectory();
  const imapOnly = await appToken(signer, { roles: ['IMAP.AccessAsApp'] });
  assert.deepEqual(denied(await authorize(dir, signer.jwks, { protocol: 'smtp', user: 'alice@contoso.test', token: imapOnly })), {
    stage: 'token',
    reason: 'missing_role',
  });
  assert.equal((await authorize(dir, signer.jwks, { protocol: 'imap', user: 'alice@contoso.test', token: imapOnly })).ok, true);
  const none = await appToken(signer, { roles: [] });
  assert.equal(denied(await authorize(dir, signer.jwks, { protocol: 'imap', user: 'alice@contoso.test', token: none })).reason, 'missing_role');
});

test('app-only: New-ServicePrincipal with the app registration object ID fails; the enterprise app object ID works', async () => {
  const dir = makeDirectory();
  removeServicePrincipal(dir, 'contoso.test', APP.servicePrincipalId);
  const token = await appToken(signer);
  const ask = () => authorize(dir, signer.jwks, { protocol: 'smtp', user: 'alice@contoso.test', token });
  assert.deepEqual(denied(await ask()), { stage: 'mailbox', reason: 'service_principal_not_registered' });

  // The classic mistake: the app registration's object ID. Exchange accepts the cmdlet, logins fail.
  newServicePrincipal(dir, TENANT_ID, { appId: APP.appId, objectId: APP.objectId });
  grantFullAccess(dir, 'alice@contoso.test', APP.objectId);
  assert.deepEqual(denied(await ask()), { stage: 'mailbox', reason: 'service_principal_object_id_mismatch' });

  removeServicePrincipal(dir, TENANT_ID, APP.objectId);
  newServicePrincipal(dir, TENANT_ID, { appId: APP.appId, objectId: APP.servicePrincipalId });
  // Removing the old principal took its permissions along; FullAccess must be granted to the new one.
  assert.deepEqual(denied(await ask()), { stage: 'mailbox', reason: 'no_full_access' });
  grantFullAccess(dir, 'alice@contoso.test', APP.servicePrincipalId);
  assert.equal((await ask()).ok, true);
});

test('app-only: FullAccess on the SASL user mailbox is required; SendAs alone is not enough', async () => {
  const dir = makeDirectory();
  const token = await appToken(signer);
  revokeFullAccess(dir, 'bob@contoso.test', APP.servicePrincipalId);
  grantSendAs(dir, 'bob@contoso.test', APP.servicePrincipalId);
  const ask = () => authorize(dir, signer.jwks, { protocol: 'smtp', user: 'bob@contoso.test', token });
  assert.deepEqual(denied(await ask()), { stage: 'mailbox', reason: 'no_full_access' });
  // Granting by app ID resolves to the same principal.
  grantFullAccess(dir, 'bob@contoso.test', APP.appId);
  assert.equal((await ask()).ok, true);
  assert.deepEqual(dir.mailbox('bob@contoso.test')?.mailbox.fullAccess, [APP.servicePrincipalId]);
});

test('a mailbox that does not exist, or lives in another tenant, is refused at the mailbox stage', async () => {
  const dir = makeDirectory();
  const token = await appToken(signer);
  assert.deepEqual(denied(await authorize(dir, signer.jwks, { protocol: 'imap', user: 'nobody@contoso.test', token })), {
    stage: 'mailbox',
    reason: 'mailbox_not_found',
  });
  // erin@fabrikam.test even lists the same object ID under FullAccess; the token is for contoso.
  assert.equal(denied(await authorize(dir, signer.jwks, { protocol: 'imap', user: 'erin@fabrikam.test', token })).reason, 'mailbox_not_found');
  assert.ok(OTHER_TENANT_ID);
});

test('SMTP AUTH switches: the mailbox setting wins over the tenant when set; IMAP is not affected', async () => {
  const dir = makeDirectory();
  const token = await appToken(signer);
  const ask = (protocol: 'smtp' | 'imap' = 'smtp') => authorize(dir, signer.jwks, { protocol, user: 'alice@contoso.test', token });
  setTenantSmtpAuthDisabled(dir, 'contoso.test', true);
  assert.deepEqual(denied(await ask()), { stage: 'disabled', reason: 'smtp_auth_disabled_tenant' });
  assert.equal((await ask('imap')).ok, true);
  setMailboxSmtpAuthDisabled(dir, 'alice@contoso.test', false);
  assert.equal((await ask()).ok, true, 'enabled per mailbox in a disabled tenant');
  setTenantSmtpAuthDisabled(dir, 'contoso.test', false);
  setMailboxSmtpAuthDisabled(dir, 'alice@contoso.test', true);
  assert.deepEqual(denied(await ask()), { stage: 'disabled', reason: 'smtp_auth_disabled_mailbox' });
  setMailboxSmtpAuthDisabled(dir, 'alice@contoso.test', null);
  assert.equal((await ask()).ok, true);
});

test('delegated: the scope, and the user is the mailbox or has FullAccess on it (shared mailbox)', async () => {
  const dir = makeDirectory();
  const smtp = await userToken(signer, CAROL, 'SMTP.Send User.Read');
  const ask = (user: string, token: string, protocol: 'smtp' | 'imap' = 'smtp') => authorize(dir, signer.jwks, { protocol, user, token });
  const own = await ask('carol@contoso.test', smtp);
  assert.equal(own.ok, true);
  assert.equal(own.ok && own.principal.kind, 'user');
  assert.equal((await ask('info@contoso.test', smtp)).ok, true, 'shared mailbox with FullAccess');
  assert.deepEqual(denied(await ask('bob@contoso.test', smtp)), { stage: 'mailbox', reason: 'no_full_access' });
  assert.deepEqual(denied(await ask('carol@contoso.test', smtp, 'imap')), { stage: 'token', reason: 'missing_scope' });
  const imap = await userToken(signer, DAVE, 'IMAP.AccessAsUser.All');
  assert.equal((await ask('dave@contoso.test', imap, 'imap')).ok, true);
  assert.equal(denied(await ask('info@contoso.test', imap, 'imap')).reason, 'no_full_access');
  grantFullAccess(dir, 'info@contoso.test', DAVE.objectId);
  assert.equal((await ask('info@contoso.test', imap, 'imap')).ok, true, 'FullAccess granted by object ID resolves to the UPN');
});

test('maySendAs: the logged-in mailbox, the delegated user, or a mailbox granting SendAs (checked live)', async () => {
  const dir = makeDirectory();
  const app = await authorize(dir, signer.jwks, { protocol: 'smtp', user: 'alice@contoso.test', token: await appToken(signer) });
  assert.ok(app.ok);
  assert.equal(maySendAs(dir, app, 'ALICE@contoso.test'), true);
  assert.equal(maySendAs(dir, app, 'bob@contoso.test'), false, 'FullAccess on bob is not SendAs');
  grantSendAs(dir, 'bob@contoso.test', APP.servicePrincipalId);
  assert.equal(maySendAs(dir, app, 'bob@contoso.test'), true);
  assert.equal(maySendAs(dir, app, 'erin@fabrikam.test'), false, 'another tenant');
  assert.equal(maySendAs(dir, app, 'someone@example.org'), false, 'not a mailbox at all');

  const user = await authorize(dir, signer.jwks, { protocol: 'smtp', user: 'info@contoso.test', token: await userToken(signer, CAROL, 'SMTP.Send') });
  assert.ok(user.ok);
  assert.equal(maySendAs(dir, user, 'info@contoso.test'), true);
  assert.equal(maySendAs(dir, user, 'carol@contoso.test'), true);
  assert.equal(maySendAs(dir, user, 'alice@contoso.test'), false);
  grantSendAs(dir, 'alice@contoso.test', CAROL.upn);
  assert.equal(maySendAs(dir, user, 'alice@contoso.test'), true);
});

test('RBAC for Applications: SMTP without SMTP.SendAsApp in the token, within the management scope only, no FullAccess needed', async () => {
  const dir = makeDirectory();
  revokeFullAccess(dir, 'bob@contoso.test', APP.servicePrincipalId);
  revokeFullAccess(dir, 'alice@contoso.test', APP.servicePrincipalId);
  const noRole = await appToken(signer, { roles: [] });
  const ask = (user: string, protocol: 'smtp' | 'imap' = 'smtp') => authorize(dir, signer.jwks, { protocol, user, token: noRole });
  assert.deepEqual(denied(await ask('bob@contoso.test')), { stage: 'token', reason: 'missing_role' });

  const run = runScript(
    dir,
    [
      `New-ManagementScope -Name 'bob only' -RecipientRestrictionFilter "PrimarySmtpAddress -eq 'bob@contoso.test'"`,
      `New-ManagementRoleAssignment -Name 'mailbridge SMTP' -Role 'Application SMTP.SendAsApp' -App ${APP.servicePrincipalId} -CustomResourceScope 'bob only'`,
    ].join('\n'),
    { tenant: TENANT_ID },
  );
  assert.equal(run.ok, true, JSON.stringify(run.results));
  assert.equal((await ask('bob@contoso.test')).ok, true, 'in scope, without FullAccess');
  assert.deepEqual(denied(await ask('alice@contoso.test')), { stage: 'mailbox', reason: 'no_full_access' });
  assert.deepEqual(denied(await ask('bob@contoso.test', 'imap')), { stage: 'token', reason: 'missing_role' }, 'RBAC covers SMTP only here');
});
