import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { APP, assertAadError, get, IMAP, post, SECRET, startFixture, T, tokenUrl, USER, verifyToken, type Fixture } from './helpers.ts';

let f: Fixture;
before(async () => {
  f = await startFixture();
});
after(async () => {
  await f?.close();
});

const SCOPE = `${IMAP} openid profile offline_access`;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

async function start(clientId: string = APP.public, extra: Record<string, string> = {}) {
  const r = await post(f, `${f.url}/${T.contoso}/oauth2/v2.0/devicecode`, { client_id: clientId, scope: SCOPE, ...extra });
  assert.equal(r.status, 200, r.text);
  return r.body as { user_code: string; device_code: string; verification_uri: string; expires_in: number; interval: number; message: string };
}

const poll = (deviceCode: string, clientId: string = APP.public, extra: Record<string, string> = {}) =>
  post(f, tokenUrl(f, T.contoso), { grant_type: DEVICE_GRANT, client_id: clientId, device_code: deviceCode, ...extra });

describe('device authorization grant', () => {
  test('devicecode response: fields of Entra, verification_uri is the sandbox /devicelogin, no verification_uri_complete', async () => {
    const d = await start();
    assert.match(d.user_code, /^[A-Z0-9]{9}$/);
    assert.ok(d.device_code.length > 100);
    assert.equal(d.verification_uri, `${f.url}/devicelogin`);
    assert.equal(d.expires_in, 900);
    assert.equal(d.interval, 5);
    assert.equal(d.message, `To sign in, use a web browser to open the page ${f.url}/devicelogin and enter the code ${d.user_code} to authenticate.`);
    assert.equal('verification_uri_complete' in d, false);
    const de = await start(APP.public, { mkt: 'de-DE' });
    assert.match(de.message, /^Um sich anzumelden, verwenden Sie einen Webbrowser/);
    assert.ok((f.sandbox.stats.calls.devicecode ?? 0) >= 2);
  });

  test('polling: authorization_pending (70016) until approved, then tokens; the code works once', async () => {
    const d = await start();
    assertAadError(await poll(d.device_code), 400, 'authorization_pending', 70016, /Authorization is pending/);
    f.sandbox.approveDeviceCode(d.user_code.toLowerCase(), USER.alice.upn);
    const r = await poll(d.device_code);
    assert.equal(r.status, 200, r.text);
    assert.ok(r.body.refresh_token);
    assert.ok(r.body.id_token);
    const { payload } = await verifyToken(f, String(r.body.access_token));
    assert.equal(payload.upn, USER.alice.upn);
    assert.equal(payload.scp, 'IMAP.AccessAsUser.All SMTP.Send');
    assert.equal(payload.appidacr, '0');
    assertAadError(await poll(d.device_code), 400, 'invalid_grant', 54005);
    assert.throws(() => f.sandbox.approveDeviceCode(d.user_code, USER.alice.upn), /MB_SANDBOX_DEVICE_CODE: The user code .* is redeemed/);
  });

  test('expired after 15 minutes: expired_token (70019)', async () => {
    const d = await start();
    f.clock.now += 901_000;
    try {
      assertAadError(await poll(d.device_code), 400, 'expired_token', 70019, /Verification code expired/);
      assert.throws(() => f.sandbox.approveDeviceCode(d.user_code, USER.alice.upn), /expired/);
    } finally {
      f.clock.now -= 901_000;
    }
  });

  test('unknown device code: bad_verification_code (70018)', async () => {
    assertAadError(await poll('DAQABIQEAAADnot-a-real-code'), 400, 'bad_verification_code', 70018);
  });

  test('confidential app: device code polling needs its credential (7000218), then works with it', async () => {
    const d = await start(APP.cc);
    f.sandbox.approveDeviceCode(d.user_code, USER.alice.upn);
    assertAadError(await poll(d.device_code, APP.cc), 401, 'invalid_client', 7000218);
    const r = await poll(d.device_code, APP.cc, { client_secret: SECRET.valid });
    assert.equal(r.status, 200, r.text);
    assert.equal((await verifyToken(f, String(r.body.access_token))).payload.appidacr, '1');
  });

  test('no consent for the app: 65001 once the user approved', async () => {
    const d = await start(APP.noConsent);
    f.sandbox.approveDeviceCode(d.user_code, USER.alice.upn);
    const body = assertAadError(await poll(d.device_code, APP.noConsent, { client_secret: SECRET.valid }), 400, 'invalid_grant', 65001);
    assert.equal(body.suberror, 'consent_required');
  });

  test('devicecode request errors: unknown tenant 90002, unknown app 700016, missing scope 900144, bad scope 70011', async () => {
    assertAadError(await post(f, `${f.url}/nowhere.example/oauth2/v2.0/devicecode`, { client_id: APP.public, scope: SCOPE }), 400, 'invalid_request', 90002);
    assertAadError(await post(f, `${f.url}/${T.contoso}/oauth2/v2.0/devicecode`, { client_id: '99999999-9999-4999-8999-999999999999', scope: SCOPE }), 400, 'unauthorized_client', 700016);
    assertAadError(await post(f, `${f.url}/${T.contoso}/oauth2/v2.0/devicecode`, { client_id: APP.public }), 400, 'invalid_request', 900144, /'scope'/);
    assertAadError(await post(f, `${f.url}/${T.contoso}/oauth2/v2.0/devicecode`, { client_id: APP.public, scope: 'https://outlook.office.com/Nope' }), 400, 'invalid_scope', 70011);
  });

  test('approveDeviceCode checks the user like the sign-in page does', async () => {
    const d = await start();
    assert.throws(() => f.sandbox.approveDeviceCode(d.user_code, 'nobody@contoso.example'), /AADSTS50034/);
    assert.throws(() => f.sandbox.approveDeviceCode(d.user_code, USER.bob.upn), /AADSTS50057/);
    assert.throws(() => f.sandbox.approveDeviceCode('NOTACODE1', USER.alice.upn), /unknown/);
  });
});

describe('the /devicelogin page', () => {
  test('enter the code, sign in with the password: the polling client gets tokens', async () => {
    const d = await start();
    const page = await get(f, d.verification_uri);
    assert.equal(page.status, 200);
    assert.match(page.text, /name="otc"/);
    const step1 = await post(f, d.verification_uri, { otc: d.user_code });
    assert.match(step1.text, /content="signin"/);
    assert.match(step1.text, /mailbridge desktop/);
    const wrong = await post(f, d.verification_uri, { otc: d.user_code, login: USER.alice.upn, passwd: 'nope', action: 'signin' });
    assert.match(wrong.text, /data-aadsts="50126"/);
    assertAadError(await poll(d.device_code), 400, 'authorization_pending', 70016);
    const done = await post(f, d.verification_uri, { otc: d.user_code, login: USER.alice.upn, passwd: USER.alice.password, action: 'signin' });
    assert.match(done.text, /You have signed in to the mailbridge desktop application on your device/);
    assert.equal((await poll(d.device_code)).status, 200);
    const again = await post(f, d.verification_uri, { otc: d.user_code });
    assert.match(again.text, /data-aadsts="90120"/);
  });

  test('Cancel on the page: the client gets authorization_declined', async () => {
    const d = await start();
    const declined = await post(f, d.verification_uri, { otc: d.user_code, action: 'cancel' }, { 'accept-language': 'de' });
    assert.match(declined.text, /abgelehnt/);
    assertAadError(await poll(d.device_code), 400, 'authorization_declined', 65004);
  });

  test('an unknown code, or a code from another cloud, is not recognised', async () => {
    const unknown = await post(f, `${f.url}/devicelogin`, { otc: 'ZZZZZZZZZ' });
    assert.match(unknown.text, /That code didn’t work/);
    const d = await start();
    const otherCloud = await post(f, `${f.sandbox.urls['gcc-high']}/devicelogin`, { otc: d.user_code });
    assert.match(otherCloud.text, /That code didn’t work/);
  });
});
