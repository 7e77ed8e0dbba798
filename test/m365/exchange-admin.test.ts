/**
 * The Exchange Online admin API client against the sandbox's admin endpoint: a cmdlet answers its
 * objects; a cmdlet Exchange refuses is MB_EXO_ADMIN_REFUSED with Exchange's status and words, in
 * English and German, and never the token.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { MbError } from '../../src/errors/index.ts';
import { ExchangeAdmin } from '../../src/m365/exchange-admin.ts';
import { APP, startRig, T, type Rig } from '../sandbox/graph/helpers.ts';

let rig: Rig;

before(async () => {
  rig = await startRig();
});

after(async () => {
  await rig?.close();
});

/** Runs one cmdlet with `token`; the client is closed afterwards. */
async function run(token: string, cmdlet: string, parameters: Record<string, unknown> = {}) {
  const admin = new ExchangeAdmin({ baseUrl: `${rig.graph.url}/adminapi/beta`, tenantId: T.contoso, token: async () => token, ca: rig.ca.certPem });
  try {
    return await admin.run(cmdlet, parameters);
  } finally {
    await admin.close();
  }
}

const exchangeToken = (roles: string[]) => rig.appToken(APP.relay, { aud: 'https://outlook.office365.com', roles });

/** The MbError a refused cmdlet rejects with. */
async function refusal(token: string, cmdlet: string, parameters: Record<string, unknown> = {}): Promise<MbError> {
  const err = await run(token, cmdlet, parameters).then(
    () => assert.fail(`${cmdlet} was not refused`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof MbError, `expected an MbError, got ${String(err)}`);
  assert.equal(err.code, 'MB_EXO_ADMIN_REFUSED');
  assert.ok(!JSON.stringify([err.message, err.explain('en'), err.explain('de')]).includes(token), 'the token is in the error');
  return err;
}

test('with Exchange.ManageAsApp a cmdlet answers its objects', async () => {
  const rows = await run(await exchangeToken(['Exchange.ManageAsApp']), 'Get-ServicePrincipal');
  assert.deepEqual(
    rows.map((r) => [r.AppId, r.ObjectId]),
    [[APP.relay.appId, APP.relay.sp]],
  );
});

test("a cmdlet Exchange refuses names the cmdlet, Exchange's status and its words, in English and German", async () => {
  const token = await exchangeToken(['Exchange.ManageAsApp']);
  const err = await refusal(token, 'Get-MailboxPermission', { Identity: 'nobody@contoso.test' });
  assert.deepEqual(err.params, {
    cmdlet: 'Get-MailboxPermission',
    status: 400,
    reply: "|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object 'nobody@contoso.test' couldn't be found on 'contoso.test'.",
  });
  assert.match(err.explain('en').cause, /answered Get-MailboxPermission with HTTP 400: .*'nobody@contoso\.test' couldn't be found/);
  assert.match(err.explain('de').cause, /hat Get-MailboxPermission mit HTTP 400 beantwortet: .*'nobody@contoso\.test' couldn't be found/);
  assert.equal(err.http, 502);
});

test('without Exchange.ManageAsApp Exchange answers 403, and the fix names the permission and the role', async () => {
  const err = await refusal(await exchangeToken([]), 'Get-ServicePrincipal');
  assert.equal(err.params.status, 403);
  assert.match(err.explain('en').fix, /Exchange\.ManageAsApp .*Global Reader/);
  assert.match(err.explain('de').fix, /Exchange\.ManageAsApp .*Globaler Leser/);
});
