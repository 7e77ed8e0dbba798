import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  ExchangeOpError,
  addMailbox,
  grantFullAccess,
  grantSendAs,
  newServicePrincipal,
  removeServicePrincipal,
  revokeFullAccess,
  revokeSendAs,
  setMailboxSmtpAuthDisabled,
  setTenantSmtpAuthDisabled,
} from '../../../src/sandbox/exchange/ops.ts';
import { APP, CAROL, TENANT_ID, makeDirectory } from './smtp-harness.ts';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ExchangeOpError, `expected ExchangeOpError, got ${String(err)}`);
    return err.code;
  }
  assert.fail('expected an ExchangeOpError');
}

test('New-ServicePrincipal checks GUIDs and duplicates but, like Exchange, not the object ID against Entra', () => {
  const dir = makeDirectory();
  assert.equal(code(() => newServicePrincipal(dir, TENANT_ID, { appId: 'x', objectId: randomUUID() })), 'invalid');
  assert.equal(code(() => newServicePrincipal(dir, TENANT_ID, { appId: APP.appId, objectId: APP.servicePrincipalId })), 'already_exists');
  assert.equal(code(() => newServicePrincipal(dir, 'nowhere.test', { appId: APP.appId, objectId: randomUUID() })), 'tenant_not_found');
  const wrong = newServicePrincipal(dir, 'contoso.test', { appId: APP.appId, objectId: APP.objectId, displayName: 'wrong one' });
  assert.equal(wrong.objectId, APP.objectId);
  assert.equal(dir.tenant(TENANT_ID)?.exchange.servicePrincipals.length, 2);
  assert.equal(code(() => removeServicePrincipal(dir, TENANT_ID, randomUUID())), 'not_found');
  assert.equal(removeServicePrincipal(dir, TENANT_ID, 'wrong one').objectId, APP.objectId, 'by display name');
});

test('permission trustees resolve like the cmdlets: service principal by object ID, app ID or name; users by UPN or object ID', () => {
  const dir = makeDirectory();
  const bob = () => dir.mailbox('bob@contoso.test')!.mailbox;
  revokeFullAccess(dir, 'bob@contoso.test', 'mailbridge');
  assert.deepEqual(bob().fullAccess, []);
  grantFullAccess(dir, 'bob@contoso.test', APP.appId);
  grantFullAccess(dir, 'bob@contoso.test', APP.servicePrincipalId);
  assert.deepEqual(bob().fullAccess, [APP.servicePrincipalId], 'granted once');
  grantSendAs(dir, 'bob@contoso.test', CAROL.objectId);
  assert.deepEqual(bob().sendAs, [CAROL.upn]);
  revokeSendAs(dir, 'bob@contoso.test', CAROL.upn);
  assert.deepEqual(bob().sendAs, []);
  // The app registration object ID is no principal in Exchange until someone registers it.
  assert.equal(code(() => grantFullAccess(dir, 'bob@contoso.test', APP.objectId)), 'trustee_not_found');
  assert.equal(code(() => grantFullAccess(dir, 'nobody@contoso.test', APP.appId)), 'mailbox_not_found');
});

test('Remove-ServicePrincipal drops its mailbox permissions', () => {
  const dir = makeDirectory();
  grantSendAs(dir, 'alice@contoso.test', APP.servicePrincipalId);
  removeServicePrincipal(dir, TENANT_ID, APP.appId);
  for (const m of dir.tenant(TENANT_ID)!.exchange.mailboxes) {
    assert.ok(!m.fullAccess.includes(APP.servicePrincipalId), m.address);
    assert.ok(!m.sendAs.includes(APP.servicePrincipalId), m.address);
  }
  assert.deepEqual(dir.mailbox('info@contoso.test')!.mailbox.fullAccess, [CAROL.upn], 'other trustees stay');
});

test('SMTP AUTH switches and new mailboxes', () => {
  const dir = makeDirectory();
  assert.equal(setTenantSmtpAuthDisabled(dir, 'contoso.test', true).smtpClientAuthenticationDisabled, true);
  assert.equal(setMailboxSmtpAuthDisabled(dir, 'alice@contoso.test', false).smtpClientAuthenticationDisabled, false);
  assert.equal(setMailboxSmtpAuthDisabled(dir, 'alice@contoso.test', null).smtpClientAuthenticationDisabled, null);
  const m = addMailbox(dir, { address: 'scanner@contoso.test', type: 'shared' });
  assert.equal(dir.mailbox('scanner@contoso.test')?.mailbox, m);
  assert.deepEqual([m.type, m.fullAccess, m.sendAs, m.smtpClientAuthenticationDisabled], ['shared', [], [], null]);
  assert.equal(code(() => addMailbox(dir, { address: 'SCANNER@contoso.test' })), 'already_exists');
  assert.equal(code(() => addMailbox(dir, { address: 'x@elsewhere.test' })), 'tenant_not_found');
  assert.equal(code(() => addMailbox(dir, { address: 'not-an-address' })), 'invalid');
});
