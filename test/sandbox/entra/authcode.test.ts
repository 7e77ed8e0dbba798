import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { revokeDelegatedConsent, revokeSignInSessions, setUserDisabled, grantDelegatedConsent } from '../../../src/sandbox/entra/ops.ts';
import { APP, assertAadError, get, IMAP, post, REDIRECT, SECRET, SMTP, startFixture, T, tokenUrl, USER, verifyToken, type Fixture } from './helpers.ts';

let f: Fixture;
before(async () => {
  f = await startFixture();
});
after(async () => {
  await f?.close();
});

const SCOPE = `${IMAP} ${SMTP} openid profile offline_access`;

function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function authorizeUrl(p: Record<string, string | undefined>, tenant: string = T.contoso): string {
  const url = new URL(`${f.url}/${tenant}/oauth2/v2.0/authorize`);
  const params: Record<string, string | undefined> = { client_id: APP.cc, response_type: 'code', redirect_uri: REDIRECT, scope: SCOPE, state: 'st-1', ...p };
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  return url.toString();
}

async function codeFor(p: Record<string, string | undefined> = {}, upn: string = USER.alice.upn, tenant?: string): Promise<string> {
  const redirect = new URL(await f.sandbox.signIn(authorizeUrl(p, tenant), upn));
  const code = redirect.searchParams.get('code');
  assert.ok(code, `no code in ${redirect.toString()}`);
  return code;
}

function redeem(code: string, extra: Record<string, string | undefined> = {}, clientId: string = APP.cc) {
  const form: Record<string, string> = {};
  const all: Record<string, string | undefined> = {
    grant_type: 'authorization_code',
    client_id: clientId,
    code,
    redirect_uri: REDIRECT,
    scope: SCOPE,
    client_secret: SECRET.valid,
    ...extra,
  };
  for (const [k, v] of Object.entries(all)) if (v !== undefined) form[k] = v;
  return post(f, tokenUrl(f, T.contoso), form);
}

describe('authorization code + PKCE', () => {
  test('sign-in redirects with code, state, client_info; redemption gives access, id and refresh tokens', async () => {
    const { verifier, challenge } = pkce();
    const redirect = new URL(await f.sandbox.signIn(authorizeUrl({ code_challenge: challenge, code_challenge_method: 'S256', nonce: 'n-0S6', client_info: '1' }), USER.alice.upn));
    assert.equal(`${redirect.origin}${redirect.pathname}`, REDIRECT);
    assert.equal(redirect.searchParams.get('state'), 'st-1');
    assert.ok(redirect.searchParams.get('session_state'));
    const info = JSON.parse(Buffer.from(redirect.searchParams.get('client_info') ?? '', 'base64url').toString());
    assert.deepEqual(info, { uid: USER.alice.oid, utid: T.contoso });

    const r = await redeem(redirect.searchParams.get('code') ?? '', { code_verifier: verifier, client_info: '1' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.token_type, 'Bearer');
    assert.equal(r.body.scope, `${IMAP} ${SMTP} openid profile offline_access`);
    assert.ok(Number(r.body.expires_in) >= 3599 && Number(r.body.expires_in) <= 5399);
    assert.equal(r.body.ext_expires_in, r.body.expires_in);
    assert.match(String(r.body.refresh_token), /^1\.A/);
    assert.equal(r.body.client_info, redirect.searchParams.get('client_info'));

    const { payload } = await verifyToken(f, String(r.body.access_token));
    assert.equal(payload.aud, 'https://outlook.office.com');
    assert.equal(payload.scp, 'IMAP.AccessAsUser.All SMTP.Send');
    assert.equal(payload.oid, USER.alice.oid);
    assert.equal(payload.upn, USER.alice.upn);
    assert.equal(payload.unique_name, USER.alice.upn);
    assert.equal(payload.appid, APP.cc);
    assert.equal(payload.appidacr, '1');
    assert.equal(payload.idtyp, 'user');
    assert.equal(payload.ver, '1.0');
    assert.equal(payload.iss, `https://sts.windows.net/${T.contoso}/`);
    assert.equal('roles' in payload, false);

    const id = await verifyToken(f, String(r.body.id_token));
    assert.equal(id.payload.aud, APP.cc);
    assert.equal(id.payload.iss, `${f.url}/${T.contoso}/v2.0`);
    assert.equal(id.payload.nonce, 'n-0S6');
    assert.equal(id.payload.preferred_username, USER.alice.upn);
    assert.equal(id.payload.name, 'Alice Example');
    assert.equal(id.payload.oid, USER.alice.oid);
    assert.equal(id.payload.tid, T.contoso);
    assert.equal(id.payload.ver, '2.0');
  });

  test('the same code twice: invalid_grant AADSTS54005', async () => {
    const code = await codeFor();
    assert.equal((await redeem(code)).status, 200);
    assertAadError(await redeem(code), 400, 'invalid_grant', 54005, /already redeemed/);
  });

  test('PKCE: wrong or missing verifier AADSTS501481; plain method compares as is', async () => {
    const { challenge } = pkce();
    const code = await codeFor({ code_challenge: challenge, code_challenge_method: 'S256' });
    assertAadError(await redeem(code, { code_verifier: pkce().verifier }), 400, 'invalid_grant', 501481, /Code_Verifier does not match the code_challenge/);
    const code2 = await codeFor({ code_challenge: challenge, code_challenge_method: 'S256' });
    assertAadError(await redeem(code2), 400, 'invalid_grant', 501481);
    const plain = 'plain-verifier-plain-verifier-plain-verifier-0001';
    const code3 = await codeFor({ code_challenge: plain, code_challenge_method: 'plain' });
    assert.equal((await redeem(code3, { code_verifier: plain })).status, 200);
    const code4 = await codeFor({ code_challenge: plain }); // method omitted: plain
    assert.equal((await redeem(code4, { code_verifier: plain })).status, 200);
  });

  test('redirect URI not registered: AADSTS50011 page at authorize, no redirect', async () => {
    await assert.rejects(f.sandbox.signIn(authorizeUrl({ redirect_uri: 'https://evil.example/cb' }), USER.alice.upn), /AADSTS50011: The redirect URI 'https:\/\/evil\.example\/cb' specified in the request does not match/);
    const page = await get(f, authorizeUrl({ redirect_uri: 'https://evil.example/cb' }));
    assert.equal(page.status, 400);
    assert.equal(page.headers.get('location'), null);
    assert.match(page.text, /data-aadsts="50011"/);
  });

  test('redirect_uri at redemption differs from the one at authorize: AADSTS500112', async () => {
    const code = await codeFor();
    assertAadError(await redeem(code, { redirect_uri: 'https://app.example/other' }), 400, 'invalid_grant', 500112);
  });

  test('code expires after 10 minutes: AADSTS70008', async () => {
    const code = await codeFor();
    f.clock.now += 11 * 60_000;
    try {
      assertAadError(await redeem(code), 400, 'invalid_grant', 70008, /expired due to inactivity/);
    } finally {
      f.clock.now -= 11 * 60_000;
    }
  });

  test('confidential client without a credential: AADSTS7000218; public client with one: AADSTS700025', async () => {
    const code = await codeFor();
    assertAadError(await redeem(code, { client_secret: undefined }), 401, 'invalid_client', 7000218);
    const pub = new URL(await f.sandbox.signIn(authorizeUrl({ client_id: APP.public, redirect_uri: 'http://localhost:53123' }), USER.alice.upn));
    const pubCode = pub.searchParams.get('code') ?? '';
    const withSecret = await post(f, tokenUrl(f, T.contoso), { grant_type: 'authorization_code', client_id: APP.public, code: pubCode, redirect_uri: 'http://localhost:53123', scope: SCOPE, client_secret: 'x' });
    assertAadError(withSecret, 401, 'invalid_client', 700025, /Client is public/);
    const ok = await post(f, tokenUrl(f, T.contoso), { grant_type: 'authorization_code', client_id: APP.public, code: pubCode, redirect_uri: 'http://localhost:53123', scope: SCOPE });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(decodeJwt(String(ok.body.access_token)).appidacr, '0');
  });

  test('delegated scope without consent: invalid_grant AADSTS65001 with suberror consent_required', async () => {
    const code = await codeFor({ client_id: APP.noConsent });
    const r = await redeem(code, {}, APP.noConsent);
    const body = assertAadError(r, 400, 'invalid_grant', 65001, new RegExp(`not consented to use the application with ID '${APP.noConsent}' named 'unconsented'`));
    assert.equal(body.suberror, 'consent_required');
  });

  test('sign-in page: wrong password (50126), unknown user (50034), user of another tenant (50020), disabled user (50057)', async () => {
    await assert.rejects(f.sandbox.signIn(authorizeUrl({}), USER.alice.upn, 'wrong'), /AADSTS50126: Error validating credentials/);
    await assert.rejects(f.sandbox.signIn(authorizeUrl({}), 'nobody@contoso.example', 'x'), /AADSTS50034: The user account nobody@contoso\.example does not exist in the 'Contoso' directory/);
    await assert.rejects(f.sandbox.signIn(authorizeUrl({}), USER.frank.upn), /AADSTS50020: User account 'frank@fabrikam\.example' from identity provider/);
    await assert.rejects(f.sandbox.signIn(authorizeUrl({}), USER.bob.upn), /AADSTS50057: The user account is disabled/);
  });

  test('the sign-in form by hand: Cancel redirects with error=access_denied and the state', async () => {
    const page = await get(f, authorizeUrl({ state: 'st-cancel' }), { 'accept-language': 'de-DE,de;q=0.9' });
    assert.equal(page.status, 200);
    assert.match(page.text, /<html lang="de">/);
    assert.match(page.text, /Anmelden/);
    const flow = /name="flow" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
    const r = await post(f, `${f.url}/${T.contoso}/oauth2/v2.0/authorize`, { flow, login: USER.alice.upn, passwd: '', action: 'cancel' });
    assert.equal(r.status, 302);
    const loc = new URL(r.headers.get('location') ?? '');
    assert.equal(loc.searchParams.get('error'), 'access_denied');
    assert.match(loc.searchParams.get('error_description') ?? '', /^AADSTS65004: User declined to consent/);
    assert.equal(loc.searchParams.get('state'), 'st-cancel');
  });

  test('errors after the redirect URI is trusted go back to it: invalid_scope, unsupported_response_type, login_required', async () => {
    const bad = new URL(await f.sandbox.signIn(authorizeUrl({ scope: 'https://outlook.office.com/Not.A.Permission' }), USER.alice.upn));
    assert.equal(bad.searchParams.get('error'), 'invalid_scope');
    assert.match(bad.searchParams.get('error_description') ?? '', /^AADSTS70011: .*The scope https:\/\/outlook\.office\.com\/Not\.A\.Permission is not valid/);
    assert.equal(bad.searchParams.get('state'), 'st-1');
    const rt = new URL(await f.sandbox.signIn(authorizeUrl({ response_type: 'token' }), USER.alice.upn));
    assert.equal(rt.searchParams.get('error'), 'unsupported_response_type');
    const silent = new URL(await f.sandbox.signIn(authorizeUrl({ prompt: 'none' }), USER.alice.upn));
    assert.equal(silent.searchParams.get('error'), 'login_required');
    assert.match(silent.searchParams.get('error_description') ?? '', /^AADSTS50058/);
  });

  test('response_mode=fragment puts code and state after #', async () => {
    const url = await f.sandbox.signIn(authorizeUrl({ response_mode: 'fragment' }), USER.alice.upn);
    const hash = new URLSearchParams(new URL(url).hash.slice(1));
    assert.ok(hash.get('code'));
    assert.equal(hash.get('state'), 'st-1');
  });

  test('response_mode=form_post: a page that posts code and state to the redirect URI', async () => {
    const page = await get(f, authorizeUrl({ response_mode: 'form_post', state: 'st-post' }));
    const flow = /name="flow" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
    const r = await post(f, `${f.url}/${T.contoso}/oauth2/v2.0/authorize`, { flow, login: USER.alice.upn, passwd: USER.alice.password, action: 'signin' });
    assert.equal(r.status, 200);
    assert.match(r.text, new RegExp(`<form method="post" action="${REDIRECT}"`));
    assert.match(r.text, /<input type="hidden" name="code" value="1\.A[\w-]+">/);
    assert.match(r.text, /<input type="hidden" name="state" value="st-post">/);
    await assert.rejects(f.sandbox.signIn(authorizeUrl({ response_mode: 'form_post' }), USER.alice.upn), /form_post/);
  });

  test('/common with a single-tenant app: AADSTS50194 page', async () => {
    await assert.rejects(f.sandbox.signIn(authorizeUrl({}, 'common'), USER.alice.upn), /AADSTS50194/);
  });

  test('a code works at its tenant by ID or domain, and only for its own client (AADSTS70000)', async () => {
    const code = await codeFor();
    const r = await post(f, tokenUrl(f, 'contoso.onmicrosoft.com'), { grant_type: 'authorization_code', client_id: APP.cc, code, redirect_uri: REDIRECT, client_secret: SECRET.valid });
    assert.equal(r.status, 200, 'same tenant by domain works');
    const other = await post(f, tokenUrl(f, T.fabrikam), { grant_type: 'authorization_code', client_id: APP.fabrikam, code: await codeFor(), redirect_uri: REDIRECT, client_secret: SECRET.valid });
    assertAadError(other, 400, 'invalid_grant', 70000);
  });
});

describe('refresh token grant', () => {
  async function signInTokens(): Promise<Record<string, unknown>> {
    const r = await redeem(await codeFor());
    assert.equal(r.status, 200, r.text);
    return r.body;
  }
  const refresh = (rt: string, extra: Record<string, string> = {}) =>
    post(f, tokenUrl(f, T.contoso), { grant_type: 'refresh_token', client_id: APP.cc, refresh_token: rt, scope: SCOPE, client_secret: SECRET.valid, ...extra });

  test('rotation: a new refresh token each time, and the old one keeps working', async () => {
    const first = await signInTokens();
    const r1 = await refresh(String(first.refresh_token));
    assert.equal(r1.status, 200, r1.text);
    assert.notEqual(r1.body.refresh_token, first.refresh_token);
    const r2 = await refresh(String(first.refresh_token));
    assert.equal(r2.status, 200, 'old refresh token still valid');
    const r3 = await refresh(String(r1.body.refresh_token), { scope: `${SMTP} offline_access` });
    assert.equal(r3.status, 200);
    assert.equal((await verifyToken(f, String(r3.body.access_token))).payload.scp, 'IMAP.AccessAsUser.All SMTP.Send');
    const graph = await refresh(String(r1.body.refresh_token), { scope: 'https://graph.microsoft.com/Mail.Read offline_access' });
    assert.equal(graph.status, 200, graph.text);
    const gp = (await verifyToken(f, String(graph.body.access_token))).payload;
    assert.equal(gp.aud, 'https://graph.microsoft.com');
    assert.equal(gp.scp, 'Mail.Read');
  });

  test('unknown refresh token: AADSTS9002313; another client: AADSTS70000', async () => {
    assertAadError(await refresh('1.Agarbage'), 400, 'invalid_grant', 9002313);
    const first = await signInTokens();
    const other = await post(f, tokenUrl(f, T.contoso), { grant_type: 'refresh_token', client_id: APP.noConsent, refresh_token: String(first.refresh_token), client_secret: SECRET.valid });
    assertAadError(other, 400, 'invalid_grant', 70000);
  });

  test('90 days unused: AADSTS700082 (inactivity)', async () => {
    const first = await signInTokens();
    f.clock.now += 91 * 86_400_000;
    try {
      const body = assertAadError(await refresh(String(first.refresh_token)), 400, 'invalid_grant', 700082, /expired due to inactivity\. The token was issued on .* and was inactive for 90\.00:00:00/);
      assert.equal(body.suberror, 'bad_token');
    } finally {
      f.clock.now -= 91 * 86_400_000;
    }
  });

  test('sign-in sessions revoked: AADSTS50173 for every earlier grant', async () => {
    const first = await signInTokens();
    const rotated = await refresh(String(first.refresh_token));
    f.clock.now += 1000;
    revokeSignInSessions(f.dir, T.contoso, USER.alice.upn, f.clock.now);
    try {
      assertAadError(await refresh(String(first.refresh_token)), 400, 'invalid_grant', 50173, /revoked/);
      assertAadError(await refresh(String(rotated.body.refresh_token)), 400, 'invalid_grant', 50173);
      // A new sign-in works again.
      f.clock.now += 1000;
      assert.equal((await refresh(String((await signInTokens()).refresh_token))).status, 200);
    } finally {
      delete f.dir.tenant(T.contoso)?.users[0]?.signInSessionsValidFrom;
    }
  });

  test('consent withdrawn: AADSTS65001; user disabled: AADSTS50057', async () => {
    const first = await signInTokens();
    revokeDelegatedConsent(f.dir, T.contoso, APP.cc, [SMTP]);
    try {
      assertAadError(await refresh(String(first.refresh_token)), 400, 'invalid_grant', 65001);
    } finally {
      grantDelegatedConsent(f.dir, T.contoso, APP.cc, [SMTP]);
    }
    assert.equal((await refresh(String(first.refresh_token))).status, 200);
    setUserDisabled(f.dir, T.contoso, USER.alice.upn, true);
    try {
      assertAadError(await refresh(String(first.refresh_token)), 400, 'invalid_grant', 50057);
    } finally {
      setUserDisabled(f.dir, T.contoso, USER.alice.upn, false);
    }
  });

  test('no offline_access at sign-in: no refresh token; openid absent: no id_token', async () => {
    const code = await codeFor({ scope: IMAP });
    const r = await redeem(code, { scope: IMAP });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.refresh_token, undefined);
    assert.equal(r.body.id_token, undefined);
    assert.equal(r.body.scope, IMAP + ' ' + SMTP);
  });
});
