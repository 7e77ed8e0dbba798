/**
 * The sandbox's Exchange PowerShell emulation (src/sandbox/exchange/powershell.ts) on a directory
 * alone: the grammar it takes and what it refuses (the whole script, before anything runs), each
 * cmdlet's effect, Exchange's answers on a re-run, and failures that do not stop the script.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SandboxDirectory } from '../../../src/sandbox/directory.ts';
import { parseScript, PsParseError, runScript } from '../../../src/sandbox/exchange/powershell.ts';

const TENANT = '2c000000-0000-4000-8000-000000000001';
const APP = { appId: 'a0000000-0000-4000-8000-0000000000a1', objectId: 'a1000000-0000-4000-8000-0000000000a1', sp: 'a2000000-0000-4000-8000-0000000000a1' };

function directory(): SandboxDirectory {
  return new SandboxDirectory({
    tenants: [
      {
        id: TENANT,
        name: 'Contoso',
        domains: ['contoso.test'],
        apps: [{ appId: APP.appId, objectId: APP.objectId, servicePrincipalId: APP.sp, displayName: 'mailbridge' }],
        exchange: { mailboxes: [{ address: 'scanner@contoso.test', type: 'shared' }, { address: 'alice@contoso.test' }] },
      },
    ],
  });
}

/** What `mailbridge setup` prints, in the grammar the issue names. */
const SCRIPT = `# Exchange Online: run in PowerShell as an Exchange administrator
Install-Module -Name ExchangeOnlineManagement
Connect-ExchangeOnline -Organization contoso.test
<# The enterprise application's object ID,
   not the app registration's #>
New-ServicePrincipal -AppId ${APP.appId} -ObjectId "${APP.sp}" -DisplayName 'mailbridge'
Get-ServicePrincipal -Identity ${APP.appId}
Add-MailboxPermission -Identity 'scanner@contoso.test' -User ${APP.sp} -AccessRights FullAccess -InheritanceType All   # read and send as the scanner
Add-RecipientPermission -Identity "scanner@contoso.test" -Trustee ${APP.sp} -AccessRights SendAs -Confirm:$false
Set-CASMailbox -Identity scanner@contoso.test -SmtpClientAuthenticationDisabled $false
Set-TransportConfig -SmtpClientAuthenticationDisabled:$false
New-ManagementScope -Name 'mailbridge scanner' -RecipientRestrictionFilter "PrimarySmtpAddress -eq 'scanner@contoso.test'"
New-ManagementRoleAssignment -Name 'mailbridge SMTP' -Role 'Application SMTP.SendAsApp' -App ${APP.sp} -CustomResourceScope 'mailbridge scanner'
`;

describe('Exchange PowerShell emulation: grammar', () => {
  it('reads cmdlets, -Name value, -Name:value, quotes, $true/$false/$null, switches and comments', () => {
    const cmds = parseScript(SCRIPT);
    assert.deepEqual(
      cmds.map((c) => c.cmdlet),
      [
        'Install-Module',
        'Connect-ExchangeOnline',
        'New-ServicePrincipal',
        'Get-ServicePrincipal',
        'Add-MailboxPermission',
        'Add-RecipientPermission',
        'Set-CASMailbox',
        'Set-TransportConfig',
        'New-ManagementScope',
        'New-ManagementRoleAssignment',
      ],
    );
    const byName = (n: string) => cmds.find((c) => c.cmdlet === n)!;
    assert.deepEqual(byName('New-ServicePrincipal').params, { AppId: APP.appId, ObjectId: APP.sp, DisplayName: 'mailbridge' });
    assert.equal(byName('New-ServicePrincipal').line, 6);
    assert.deepEqual(byName('Add-MailboxPermission').params, { Identity: 'scanner@contoso.test', User: APP.sp, AccessRights: 'FullAccess', InheritanceType: 'All' });
    assert.equal(byName('Add-RecipientPermission').params.Confirm, false);
    assert.equal(byName('Set-TransportConfig').params.SmtpClientAuthenticationDisabled, false);
    assert.equal(byName('New-ManagementScope').params.RecipientRestrictionFilter, "PrimarySmtpAddress -eq 'scanner@contoso.test'");
    assert.deepEqual(byName('Connect-ExchangeOnline').params, { Organization: 'contoso.test' });
    assert.deepEqual(parseScript("Set-CASMailbox -Identity 'o''brien@contoso.test' -SmtpClientAuthenticationDisabled $null")[0]!.params, {
      Identity: "o'brien@contoso.test",
      SmtpClientAuthenticationDisabled: null,
    });
    assert.deepEqual(parseScript(`New-ServicePrincipal -AppId ${APP.appId} -ServiceId ${APP.sp}`)[0]!.params, { AppId: APP.appId, ObjectId: APP.sp });
  });

  it('refuses what is outside the grammar, naming the line', () => {
    const refused: Array<[string, RegExp]> = [
      [`$app = '${APP.appId}'`, /not a cmdlet name|variables/],
      [`New-ServicePrincipal -AppId $app -ObjectId ${APP.sp}`, /variables are not supported/],
      ['Get-Mailbox scanner@contoso.test | Add-MailboxPermission -User x -AccessRights FullAccess', /pipelines/],
      ["Set-CASMailbox -Identity a@contoso.test -SmtpClientAuthenticationDisabled $false; Get-CASMailbox", /pipelines, semicolons/],
      ['Add-MailboxPermission scanner@contoso.test -User x -AccessRights FullAccess', /no -Name before it/],
      ['Remove-Mailbox -Identity scanner@contoso.test', /does not emulate Remove-Mailbox/],
      ['Add-MailboxPermission -Identity scanner@contoso.test -User x -AccessRights FullAccess -Owner y', /no parameter -Owner/],
      ['Add-MailboxPermission -Identity scanner@contoso.test -AccessRights FullAccess', /needs -User/],
      ["New-ManagementScope -Name 'x -RecipientRestrictionFilter y", /not closed/],
      ['Set-CASMailbox -Identity "$env:USER@contoso.test" -SmtpClientAuthenticationDisabled $false', /variables and escapes/],
      ['Add-MailboxPermission -Identity a@contoso.test `', /line continuations/],
      ['<# never closed', /not closed with #>/],
    ];
    for (const [line, message] of refused) {
      assert.throws(
        () => parseScript(`# header\n${line}\n`),
        (err: unknown) => err instanceof PsParseError && (err.line === 2 || line.startsWith('<#')) && message.test(err.message),
        line,
      );
    }
  });

  it('a script with one bad line changes nothing at all', () => {
    const dir = directory();
    assert.throws(() => runScript(dir, `New-ServicePrincipal -AppId ${APP.appId} -ObjectId ${APP.sp}\nGet-Mailbox | Set-Mailbox\n`), PsParseError);
    assert.deepEqual(dir.tenant(TENANT)!.exchange.servicePrincipals, []);
  });
});

describe('Exchange PowerShell emulation: running', () => {
  it('applies every line to the directory; a second run reports exists/unchanged and still succeeds', () => {
    const dir = directory();
    const tenant = dir.tenant(TENANT)!;
    tenant.smtpClientAuthenticationDisabled = true;
    dir.mailbox('scanner@contoso.test')!.mailbox.smtpClientAuthenticationDisabled = true;

    const first = runScript(dir, SCRIPT);
    assert.equal(first.ok, true, JSON.stringify(first.results));
    assert.deepEqual(
      first.results.map((r) => [r.cmdlet, r.status]),
      [
        ['Install-Module', 'ignored'],
        ['Connect-ExchangeOnline', 'ignored'],
        ['New-ServicePrincipal', 'ok'],
        ['Get-ServicePrincipal', 'ok'],
        ['Add-MailboxPermission', 'ok'],
        ['Add-RecipientPermission', 'ok'],
        ['Set-CASMailbox', 'ok'],
        ['Set-TransportConfig', 'ok'],
        ['New-ManagementScope', 'ok'],
        ['New-ManagementRoleAssignment', 'ok'],
      ],
    );
    assert.deepEqual(tenant.exchange.servicePrincipals, [{ appId: APP.appId, objectId: APP.sp, displayName: 'mailbridge' }]);
    assert.deepEqual(first.results[3]!.output, [{ DisplayName: 'mailbridge', AppId: APP.appId, ObjectId: APP.sp, Identity: APP.sp }]);
    const scanner = dir.mailbox('scanner@contoso.test')!.mailbox;
    assert.deepEqual([scanner.fullAccess, scanner.sendAs, scanner.smtpClientAuthenticationDisabled], [[APP.sp], [APP.sp], false]);
    assert.equal(tenant.smtpClientAuthenticationDisabled, false);
    assert.deepEqual(tenant.exchange.managementScopes, [{ name: 'mailbridge scanner', recipientRestrictionFilter: "PrimarySmtpAddress -eq 'scanner@contoso.test'" }]);
    assert.deepEqual(tenant.exchange.managementRoleAssignments, [
      { name: 'mailbridge SMTP', role: 'Application SMTP.SendAsApp', app: APP.sp, customResourceScope: 'mailbridge scanner' },
    ]);

    const second = runScript(dir, SCRIPT);
    assert.equal(second.ok, true, 're-running is harmless');
    const status = Object.fromEntries(second.results.map((r) => [r.cmdlet, [r.status, r.message]]));
    assert.deepEqual(status['New-ServicePrincipal'], ['exists', `A service principal with ObjectId '${APP.sp}' already exists.`]);
    assert.deepEqual(status['Add-MailboxPermission'], ['exists', `An existing permission entry was found for user: ${APP.sp}.`]);
    assert.equal(status['Add-RecipientPermission']![0], 'exists');
    assert.deepEqual(status['Set-CASMailbox'], ['unchanged', "The command completed successfully but no settings of 'scanner@contoso.test' have been modified."]);
    assert.equal(status['Set-TransportConfig']![0], 'unchanged');
    assert.equal(status['New-ManagementScope']![0], 'exists');
    assert.equal(status['New-ManagementRoleAssignment']![0], 'exists');
    assert.deepEqual([scanner.fullAccess, scanner.sendAs], [[APP.sp], [APP.sp]], 'nothing doubled');
  });

  it('a failing line is reported with its category and does not stop the lines after it', () => {
    const dir = directory();
    const run = runScript(
      dir,
      [
        `New-ServicePrincipal -AppId ${APP.appId} -ObjectId ${APP.sp}`,
        `Add-MailboxPermission -Identity nobody@contoso.test -User ${APP.sp} -AccessRights FullAccess`,
        `Add-MailboxPermission -Identity alice@contoso.test -User b9999999-0000-4000-8000-000000000000 -AccessRights FullAccess`,
        `Add-RecipientPermission -Identity alice@contoso.test -Trustee ${APP.sp} -AccessRights SendAs`,
        `New-ManagementRoleAssignment -Name x -Role 'Application Fly' -App ${APP.sp}`,
        `New-ManagementRoleAssignment -Name y -Role 'Application Mail.Send' -App ${APP.appId} -CustomResourceScope nowhere`,
        `New-ManagementRoleAssignment -Name z -Role 'Application Mail.Send' -App 00000000-0000-4000-8000-000000000000`,
        `Add-MailboxPermission -Identity alice@contoso.test -User ${APP.sp} -AccessRights FullAccess`,
      ].join('\n'),
    );
    assert.equal(run.ok, false);
    assert.deepEqual(
      run.results.map((r) => [r.line, r.status, r.category ?? '']),
      [
        [1, 'ok', ''],
        [2, 'error', 'ManagementObjectNotFound'],
        [3, 'error', 'ManagementObjectNotFound'],
        [4, 'error', 'InvalidArgument'],
        [5, 'error', 'ManagementObjectNotFound'],
        [6, 'error', 'ManagementObjectNotFound'],
        [7, 'error', 'ManagementObjectNotFound'],
        [8, 'ok', ''],
      ],
    );
    assert.match(run.results[1]!.message!, /object 'nobody@contoso\.test' couldn't be found/);
    assert.match(run.results[2]!.message!, /The user 'b9999999-0000-4000-8000-000000000000' wasn't found/);
    assert.match(run.results[3]!.message!, /-Confirm:\$false/);
    assert.deepEqual(dir.mailbox('alice@contoso.test')!.mailbox.fullAccess, [APP.sp]);
  });

  it('takes any object ID in New-ServicePrincipal, as Exchange does (the wrong one shows at login, not here)', () => {
    const dir = directory();
    const run = runScript(dir, `New-ServicePrincipal -AppId ${APP.appId} -ObjectId ${APP.objectId}\nAdd-MailboxPermission -Identity alice@contoso.test -User ${APP.objectId} -AccessRights FullAccess`);
    assert.equal(run.ok, true);
    assert.deepEqual(dir.tenant(TENANT)!.exchange.servicePrincipals.map((s) => s.objectId), [APP.objectId]);
  });

  it('Connect-ExchangeOnline -Organization picks the tenant; an unknown one fails the lines that need a tenant', () => {
    const dir = directory();
    const run = runScript(dir, `Connect-ExchangeOnline -Organization fabrikam.test\nSet-TransportConfig -SmtpClientAuthenticationDisabled $true`);
    assert.equal(run.ok, false);
    assert.match(run.results[1]!.message!, /No tenant 'fabrikam\.test'/);
    assert.equal(dir.tenant(TENANT)!.smtpClientAuthenticationDisabled, false);
  });
});
