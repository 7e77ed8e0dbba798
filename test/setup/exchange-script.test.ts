/**
 * The generated Exchange PowerShell script (src/setup/exchange-script.ts): what each line does and
 * why (in the admin's language), the enterprise application's object ID in New-ServicePrincipal,
 * and the sandbox's Exchange PowerShell emulation accepting every line — the RBAC for Applications
 * alternative too, once its comment marks are removed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/app/schema.ts';
import { SandboxDirectory } from '../../src/sandbox/directory.ts';
import { runScript } from '../../src/sandbox/exchange/powershell.ts';
import { directoryMailboxes, mayAccess } from '../../src/sandbox/ews/auth.ts';
import { exchangeScript, onPremisesScript } from '../../src/setup/exchange-script.ts';
import { connectionRequirements, onPremisesRequirements } from '../../src/setup/requirements.ts';

const TENANT = '2c000000-0000-4000-8000-000000000001';
const APP = { appId: '2a000000-0000-4000-8000-000000000001', displayName: "mailbridge o'brien", servicePrincipalId: '2b000000-0000-4000-8000-000000000001' };
const config = configSchema.parse({
  connections: { c: { tenantId: TENANT, clientId: APP.appId, clientSecret: 'x' } },
  relay: { routes: [{ name: 'erp', senders: ['erp@contoso.test'], connection: 'c', mailbox: 'relay@contoso.test' }] },
  connectors: { scans: { connection: 'c', mailboxes: ['scanner@contoso.test'], destination: { kind: 'maildir', path: '/tmp/x' } } },
});
const req = connectionRequirements(config, 'c')!;
const directory = () =>
  new SandboxDirectory({
    tenants: [
      {
        id: TENANT,
        domains: ['contoso.test'],
        smtpClientAuthenticationDisabled: true,
        exchange: { mailboxes: ['relay@contoso.test', 'scanner@contoso.test', 'erp@contoso.test'].map((address) => ({ address })) },
      },
    ],
  });
/** The lines PowerShell runs (outside the <# … #> comment block). */
const commands = (script: string) => script.replace(/<#[\s\S]*?#>/g, '').split('\n').filter((l) => /^[A-Z][a-z]+-/.test(l));

test('the script grants exactly what the configuration needs, each line after a comment saying why', () => {
  const script = exchangeScript(req, APP, 'en', new Date('2026-12-07T00:00:00Z'));
  assert.deepEqual(commands(script), [
    `Connect-ExchangeOnline -Organization '${TENANT}'`,
    `New-ServicePrincipal -AppId '${APP.appId}' -ObjectId '${APP.servicePrincipalId}' -DisplayName 'mailbridge o''brien'`,
    `Add-RecipientPermission -Identity 'erp@contoso.test' -Trustee '${APP.servicePrincipalId}' -AccessRights SendAs -Confirm:$false`,
    `Add-MailboxPermission -Identity 'relay@contoso.test' -User '${APP.servicePrincipalId}' -AccessRights FullAccess -InheritanceType All -AutoMapping $false`,
    `Set-CASMailbox -Identity 'relay@contoso.test' -SmtpClientAuthenticationDisabled $false`,
    `Add-MailboxPermission -Identity 'scanner@contoso.test' -User '${APP.servicePrincipalId}' -AccessRights FullAccess -InheritanceType All -AutoMapping $false`,
    'Disconnect-ExchangeOnline -Confirm:$false',
  ]);
  const lines = script.split('\n');
  for (const c of commands(script)) assert.match(lines[lines.indexOf(c) - 1]!, /^# /, `no comment before ${c}`);
  // Comment text as one line (the script wraps it at 100 characters).
  const prose = (text: string) => text.replace(/\n# /g, ' ');
  assert.match(prose(script), /not the one of the app registration/);
  assert.match(prose(script), /The app opens scanner@contoso\.test \(connector scans\): Exchange lets it in only with FullAccess/);
  const de = exchangeScript(req, APP, 'de', new Date('2026-12-07T00:00:00Z'));
  assert.deepEqual(commands(de), commands(script));
  assert.match(prose(de), /Die App öffnet scanner@contoso\.test \(Konnektor scans\): Exchange lässt sie nur mit Vollzugriff/);
  assert.match(prose(de), /Relay-Route erp/);
  assert.match(prose(de), /Erneutes Ausführen schadet nicht/);
  // The comments a German admin reads name what uses each right in German, nowhere in English.
  const comments = de.split('\n').filter((l) => l.startsWith('# '));
  assert.deepEqual(comments.filter((l) => /relay route|\bconnector\b|watch group|needed by/i.test(l)), []);
});

test('the sandbox runs it: SMTP AUTH on, rights granted; a second run reports everything as there already', () => {
  const dir = directory();
  const script = exchangeScript(req, APP, 'de', new Date());
  const first = runScript(dir, script);
  assert.ok(first.ok, JSON.stringify(first.results.filter((r) => r.status === 'error')));
  const t = dir.data.tenants[0]!;
  assert.deepEqual(t.exchange.servicePrincipals, [{ appId: APP.appId, objectId: APP.servicePrincipalId, displayName: "mailbridge o'brien" }]);
  const box = (a: string) => t.exchange.mailboxes.find((m) => m.address === a)!;
  assert.deepEqual([box('relay@contoso.test').fullAccess, box('relay@contoso.test').smtpClientAuthenticationDisabled], [[APP.servicePrincipalId], false]);
  assert.deepEqual(box('erp@contoso.test').sendAs, [APP.servicePrincipalId]);
  assert.equal(box('erp@contoso.test').smtpClientAuthenticationDisabled, null, 'only sending mailboxes get SMTP AUTH');
  const second = runScript(dir, script);
  assert.ok(second.ok);
  assert.deepEqual(second.results.filter((r) => r.status === 'ok'), [], 'nothing changes the second time');
});

test('the RBAC for Applications alternative: commented out, and accepted by Exchange once uncommented', () => {
  const script = exchangeScript(req, APP, 'en', new Date());
  const block = /<#\n([\s\S]*?)#>/.exec(script)?.[1] ?? '';
  assert.match(block, /remove: SMTP\.SendAsApp \(Office 365 Exchange Online\)/);
  const rbac = block.split('\n').filter((l) => /^New-/.test(l));
  assert.deepEqual(rbac, [
    `New-ManagementScope -Name 'mailbridge c relay@contoso.test' -RecipientRestrictionFilter "PrimarySmtpAddress -eq 'relay@contoso.test'"`,
    `New-ManagementRoleAssignment -Name 'mailbridge c relay@contoso.test SMTP.SendAsApp' -Role 'Application SMTP.SendAsApp' -App '${APP.servicePrincipalId}' -CustomResourceScope 'mailbridge c relay@contoso.test'`,
  ]);
  const dir = directory();
  const assignments = () => dir.data.tenants[0]!.exchange.managementRoleAssignments ?? [];
  assert.ok(runScript(dir, script).ok);
  assert.deepEqual(assignments(), [], 'the block is a comment');
  const run = runScript(dir, rbac.join('\n'));
  assert.ok(run.ok, JSON.stringify(run.results));
  assert.deepEqual(assignments().map((a) => [a.role, a.app, a.customResourceScope]), [['Application SMTP.SendAsApp', APP.servicePrincipalId, 'mailbridge c relay@contoso.test']]);
});

test('Exchange Server on premises: ApplicationImpersonation scoped to exactly the watched mailboxes, or FullAccess without impersonation; the sandbox runs it and EWS honours it', () => {
  const onprem = configSchema.parse({
    notify: {
      watch: {
        groups: {
          plant: { kind: 'ews', listeners: [{ username: 'PLANT\\svc-notify', password: 'x' }], mailboxes: ['Meister@plant.test', 'halle@plant.test'], ews: { url: 'https://mail.plant.test/EWS/Exchange.asmx' } },
          office: { kind: 'ews', listeners: [{ username: 'svc-office@plant.test', password: 'x' }], mailboxes: ['chef@plant.test'], ews: { url: 'https://mail.plant.test/EWS/Exchange.asmx', impersonation: false } },
        },
      },
    },
  });
  const needs = onPremisesRequirements(onprem);
  const script = onPremisesScript(needs, 'en', new Date('2026-12-07T00:00:00Z'));
  assert.deepEqual(commands(script), [
    `New-ManagementScope -Name 'mailbridge plant' -RecipientRestrictionFilter "PrimarySmtpAddress -eq 'halle@plant.test' -or PrimarySmtpAddress -eq 'meister@plant.test'"`,
    `New-ManagementRoleAssignment -Name 'mailbridge plant svc-notify' -Role ApplicationImpersonation -User 'PLANT\\svc-notify' -CustomRecipientWriteScope 'mailbridge plant'`,
    `Add-MailboxPermission -Identity 'chef@plant.test' -User 'svc-office@plant.test' -AccessRights FullAccess -InheritanceType All -AutoMapping $false`,
  ]);
  assert.match(onPremisesScript(needs, 'de', new Date()).replace(/\n# /g, ' '), /nur mit der Rolle ApplicationImpersonation, hier auf den Bereich oben beschränkt/);

  const dir = new SandboxDirectory({
    tenants: [
      {
        id: TENANT,
        domains: ['plant.test'],
        users: [
          { objectId: '2d000000-0000-4000-8000-000000000001', upn: 'svc-notify@plant.test' },
          { objectId: '2d000000-0000-4000-8000-000000000002', upn: 'svc-office@plant.test' },
        ],
        exchange: { mailboxes: ['meister@plant.test', 'halle@plant.test', 'chef@plant.test', 'lager@plant.test'].map((address) => ({ address })) },
      },
    ],
  });
  const first = runScript(dir, script);
  assert.ok(first.ok, JSON.stringify(first.results.filter((r) => r.status === 'error')));
  const mailboxes = directoryMailboxes(dir);
  const svc = { kind: 'user' as const, tenantId: TENANT, upn: 'svc-notify@plant.test', via: 'ntlm' as const };
  const may = (address: string) => mayAccess(svc, mailboxes(address)!, true);
  assert.deepEqual(['meister@plant.test', 'halle@plant.test', 'lager@plant.test', 'chef@plant.test'].map(may), [true, true, false, false]);
  assert.equal(mayAccess({ ...svc, upn: 'svc-office@plant.test' }, mailboxes('chef@plant.test')!), true);
  const second = runScript(dir, script);
  assert.ok(second.ok);
  assert.deepEqual(second.results.filter((r) => r.status === 'ok'), []);
});
