/**
 * Delegated tokens from the sandbox Entra ID: auth code + PKCE with the redirect served by the
 * gateway (another Identity than the one that printed the link, sharing the store, as `mailbridge
 * signin` and `mailbridge serve` do), refresh with rotation, silent tokens after a restart, device
 * code with authorization_pending, and the delegated failures.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fetch } from 'undici';
import { openSecretBox } from '../../src/config/secrets.ts';
import { MbError } from '../../src/errors/index.ts';
import { createIdentity, type Identity } from '../../src/identity/index.ts';
import { CACHE_NAMESPACE } from '../../src/identity/cache-plugin.ts';
import { setAppAssignment, setUserDisabled } from '../../src/sandbox/entra/ops.ts';
import { silentLogger } from '../../src/log/index.ts';
import { startGateway, type Gateway } from '../../src/server/index.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import type { SecretBox } from '../../src/config/secret-box.ts';
import type { Config } from '../../src/app/schema.ts';
import { memoryKv, testBox } from './helpers.ts';
import { ALICE, APP, IMAP, recorded, SECRET, SMTP, startFixture, T, type Fixture } from './sandbox-fixture.ts';

let f: Fixture;
let gw: Gateway;
let store: Store;
let box: SecretBox;
let config: Config;
const open: Identity[] = [];
const savedConfigEnv = process.env.MAILBRIDGE_CONFIG;

before(async () => {
  f = await startFixture();
  config = f.config({
    mailbox: { flow: 'auth-code', clientId: APP.cc, clientSecret: SECRET.valid, clientSecretExpires: '2099-01-01', redirectUri: f.redirectUri, account: ALICE.upn, graceSeconds: 60 },
    desk: { flow: 'device-code', clientId: APP.desk },
    deskBadScope: { flow: 'device-code', clientId: APP.desk, scopes: { exchange: ['https://outlook.office.com/Nonsense.All'] } },
  });
  // The gateway finds its key file next to MAILBRIDGE_CONFIG, as `mailbridge serve --config …` would.
  process.env.MAILBRIDGE_CONFIG = join(f.files.path, 'mailbridge.yaml');
  delete process.env.MAILBRIDGE_KEY;
  gw = await startGateway(config, silentLogger);
  // The "CLI" side: its own store handle and SecretBox on the same database and key file.
  store = await openStore(config.store);
  box = await openSecretBox({ keyFile: join(f.files.path, 'mailbridge.key'), env: {} });
});
after(async () => {
  await Promise.all(open.map((i) => i.close()));
  await store?.close();
  await gw?.close();
  await f?.close();
  if (savedConfigEnv === undefined) delete process.env.MAILBRIDGE_CONFIG;
  else process.env.MAILBRIDGE_CONFIG = savedConfigEnv;
});

function cliIdentity(clock?: () => number): Identity {
  const id = createIdentity({ config, kv: store.kv, secretBox: box, env: {}, clock });
  open.push(id);
  return id;
}

function expectMb(code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof MbError, String(e));
    assert.equal(e.code, code, e.message);
    assert.ok(e.explain('en').fix.length > 10 && e.explain('de').fix.length > 10);
    assert.notEqual(e.explain('en').cause, e.explain('de').cause);
    return true;
  };
}

describe('auth code + PKCE, redirect served by the gateway', () => {
  let now = Date.now();
  let id: Identity;

  test('the link carries PKCE S256 and state; the gateway redeems the code; the CLI side sees the sign-in', async () => {
    id = cliIdentity(() => now);
    const link = await id.beginSignIn('mailbox');
    const url = new URL(link.url);
    assert.equal(url.origin + url.pathname, `${f.sandbox.urls.global}/${T.contoso}/oauth2/v2.0/authorize`);
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.match(url.searchParams.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.equal(url.searchParams.get('state'), link.state);
    assert.equal(url.searchParams.get('redirect_uri'), f.redirectUri);
    assert.equal(url.searchParams.get('response_type'), 'code');
    assert.equal(url.searchParams.get('login_hint'), ALICE.upn);
    const scopes = (url.searchParams.get('scope') ?? '').split(' ');
    for (const s of [IMAP, SMTP, 'offline_access']) assert.ok(scopes.includes(s), s);
    // The pending sign-in is sealed in the store: the PKCE verifier is not readable there.
    const rows = await store.kv.list('identity.signin');
    assert.equal(rows.length, 1);
    assert.match(rows[0]!.value, /^enc:v1:/);

    const from = f.sandbox.stats.tokenRequests.length;
    const redirect = await f.sandbox.signIn(link.url, ALICE.upn, ALICE.password);
    assert.ok(redirect.startsWith(`${f.redirectUri}?`), redirect);
    const res = await fetch(redirect, { headers: { 'accept-language': 'de-DE,de;q=0.9' } });
    const page = await res.text();
    assert.equal(res.status, 200, page);
    assert.match(page, /Anmeldung abgeschlossen/);
    assert.match(page, new RegExp(ALICE.upn.replace('.', '\\.')));
    assert.ok(!page.includes(new URL(redirect).searchParams.get('code')!), 'the page never shows the code');

    const result = await id.waitForSignIn(link, { pollMs: 20 });
    assert.equal(result.account, ALICE.upn);
    assert.deepEqual(result.warnings, []);

    const [req] = recorded(f, from);
    assert.equal(req?.grant_type, 'authorization_code');
    assert.equal(req?.redirect_uri, f.redirectUri);
    assert.ok(req?.code_verifier, 'PKCE verifier sent');
    assert.ok(req?.client_secret, 'confidential client sends its secret');
    assert.match(String(req?.scope), /IMAP\.AccessAsUser\.All/);

    // Reloading the redirect page does not redeem twice.
    const again = await fetch(redirect);
    assert.equal(again.status, 400);
    assert.match(await again.text(), /MB_SIGNIN_STATE_UNKNOWN/);
  });

  test('later tokens are silent (from the stored sign-in); the refresh token rotates at expiry minus grace', async () => {
    const calls = f.tokenCalls();
    const first = await id.getToken('mailbox');
    assert.equal(first.account, ALICE.upn);
    assert.equal(f.tokenCalls(), calls, 'the access token from the code redemption is reused');
    const d = await id.describe('mailbox');
    assert.deepEqual(d.scopes?.sort(), ['IMAP.AccessAsUser.All', 'SMTP.Send']);
    assert.equal(d.audience, 'https://outlook.office.com');
    assert.deepEqual(d.problems, []);

    const sealedBefore = await store.kv.get(CACHE_NAMESPACE, 'conn:mailbox');
    assert.match(sealedBefore ?? '', /^enc:v1:/);
    const rtBefore = refreshTokenIn(box.reveal(sealedBefore!));
    assert.ok(!sealedBefore!.includes(rtBefore), 'refresh token not in clear in the store');

    const from = f.sandbox.stats.tokenRequests.length;
    now = first.expiresOn.getTime() - 60_000 - 1;
    assert.equal((await id.getToken('mailbox')).fromCache, true);
    assert.equal(f.sandbox.stats.tokenRequests.length, from);
    now = first.expiresOn.getTime() - 60_000;
    const renewed = await id.getToken('mailbox');
    assert.equal(renewed.fromCache, false);
    assert.notEqual(renewed.accessToken, first.accessToken);
    const [req] = recorded(f, from);
    assert.equal(req?.grant_type, 'refresh_token');
    assert.ok(req?.client_secret);

    const sealedAfter = await store.kv.get(CACHE_NAMESPACE, 'conn:mailbox');
    assert.notEqual(sealedAfter, sealedBefore);
    assert.notEqual(refreshTokenIn(box.reveal(sealedAfter!)), rtBefore, 'the new refresh token replaced the old one');
  });

  test('after a restart (new Identity, same store) the token comes silently; no sign-in needed', async () => {
    const restarted = cliIdentity();
    const from = f.sandbox.stats.tokenRequests.length;
    const t = await restarted.getToken('mailbox', 'exchange', { forceRefresh: true });
    assert.equal(t.account, ALICE.upn);
    assert.equal(recorded(f, from)[0]?.grant_type, 'refresh_token');
    assert.equal(t.source, 'refresh');
    assert.deepEqual(await restarted.accounts('mailbox'), [ALICE.upn]);
  });

  test('each token says truthfully where it came from: the sealed persistent cache, then memory', async () => {
    const restarted = cliIdentity();
    const calls = f.tokenCalls();
    const first = await restarted.getToken('mailbox');
    assert.equal(f.tokenCalls(), calls, 'no request to Entra ID');
    assert.equal(first.source, 'persistent');
    assert.equal(first.fromCache, true);
    const second = await restarted.getToken('mailbox');
    assert.equal(second.source, 'memory');
    assert.equal((await restarted.describe('mailbox')).source, 'memory');
  });

  test('a disabled user (AADSTS50057) and a user not assigned to the app (AADSTS50105) get their own codes', async () => {
    const restarted = cliIdentity();
    setUserDisabled(f.dir, T.contoso, ALICE.upn, true);
    try {
      await assert.rejects(restarted.getToken('mailbox', 'exchange', { forceRefresh: true }), expectMb('MB_ENTRA_USER_DISABLED'));
    } finally {
      setUserDisabled(f.dir, T.contoso, ALICE.upn, false);
    }
    setAppAssignment(f.dir, T.contoso, APP.cc, true, []);
    try {
      await assert.rejects(restarted.getToken('mailbox', 'exchange', { forceRefresh: true }), (e: unknown) => {
        expectMb('MB_ENTRA_USER_NOT_ASSIGNED')(e);
        assert.match((e as MbError).explain('en').fix, /Enterprise applications › <app> › Users and groups/);
        assert.match((e as MbError).explain('de').fix, /Unternehmensanwendungen › <App> › Benutzer und Gruppen/);
        return true;
      });
      setAppAssignment(f.dir, T.contoso, APP.cc, true, [ALICE.upn]);
      assert.equal((await restarted.getToken('mailbox', 'exchange', { forceRefresh: true })).account, ALICE.upn);
    } finally {
      setAppAssignment(f.dir, T.contoso, APP.cc, false);
    }
  });

  test('a redirect with an error (user cancelled) shows MB_SIGNIN_DECLINED and fails the waiting side', async () => {
    const id2 = cliIdentity();
    const link = await id2.beginSignIn('mailbox');
    // Settled before the redirect arrives, so the rejection is never unhandled.
    const waiting = id2.waitForSignIn(link, { pollMs: 20 }).then(
      () => assert.fail('the sign-in should fail'),
      (e: unknown) => e,
    );
    const res = await fetch(`${f.redirectUri}?error=access_denied&error_description=${encodeURIComponent('AADSTS65004: User declined to consent to access the app.')}&state=${link.state}`);
    assert.equal(res.status, 403);
    assert.match(await res.text(), /MB_SIGNIN_DECLINED/);
    expectMb('MB_SIGNIN_DECLINED')(await waiting);
  });
});

describe('device code', () => {
  test('prints the code, reports authorization_pending (AADSTS70016) in both languages, then gets the token', async () => {
    const id = createIdentity({ config, kv: memoryKv(), secretBox: testBox, env: {} });
    open.push(id);
    const from = f.sandbox.stats.tokenRequests.length;
    const codes: string[] = [];
    const pending: MbError[] = [];
    const result = await id.signInWithDeviceCode('desk', {
      onCode: (info) => {
        codes.push(info.userCode);
        assert.match(info.message, new RegExp(info.userCode));
        assert.match(info.verificationUri, /\/devicelogin$/);
      },
      onPending: (notice) => {
        pending.push(notice);
        // The user signs in only now, after the first poll was answered "pending".
        if (pending.length === 1) f.sandbox.approveDeviceCode(codes[0]!, ALICE.upn);
      },
    });
    assert.equal(result.account, ALICE.upn);
    assert.equal(pending[0]?.code, 'MB_ENTRA_AUTHORIZATION_PENDING');
    assert.match(pending[0]!.explain('en').title, /AADSTS70016/);
    assert.match(pending[0]!.explain('de').fix, /Bestätigungsseite/);
    // msal-node sends the short grant name; Entra takes it and the RFC 8628 URN.
    const polls = recorded(f, from).filter((r) => r.grant_type === 'device_code' || r.grant_type === 'urn:ietf:params:oauth:grant-type:device_code');
    assert.equal(polls.length, 2, 'one pending poll, one successful');
    assert.equal(polls[0]?.client_secret, undefined, 'public client: no credential');
    // Later tokens are silent.
    const t = await id.getToken('desk');
    assert.equal(t.account, ALICE.upn);
  });

  test('a cancel while Entra answers "pending" ends with MB_SIGNIN_CANCELLED, not the pending notice', async () => {
    const id = createIdentity({ config, kv: memoryKv(), secretBox: testBox, env: {} });
    open.push(id);
    const abort = new AbortController();
    await assert.rejects(
      id.signInWithDeviceCode('desk', { signal: abort.signal, onCode: () => {}, onPending: () => abort.abort() }),
      expectMb('MB_SIGNIN_CANCELLED'),
    );
  });

  test('a device code nobody enters expires → MB_ENTRA_DEVICE_CODE_EXPIRED (AADSTS70019)', async () => {
    const id = createIdentity({ config, kv: memoryKv(), secretBox: testBox, env: {} });
    open.push(id);
    const saved = f.clock.now;
    try {
      await assert.rejects(
        id.signInWithDeviceCode('desk', {
          onCode: () => {},
          onPending: () => {
            f.clock.now += 16 * 60_000;
          },
        }),
        expectMb('MB_ENTRA_DEVICE_CODE_EXPIRED'),
      );
    } finally {
      f.clock.now = saved;
    }
  });

  test('an invalid delegated scope fails at the device code request → MB_ENTRA_SCOPE_INVALID (AADSTS70011)', async () => {
    const id = createIdentity({ config, kv: memoryKv(), secretBox: testBox, env: {} });
    open.push(id);
    let shown = false;
    await assert.rejects(id.signInWithDeviceCode('deskBadScope', { onCode: () => void (shown = true) }), expectMb('MB_ENTRA_SCOPE_INVALID'));
    assert.equal(shown, false, 'no code is shown when Entra refused the request');
  });

  test('no sign-in yet → MB_SIGNIN_REQUIRED naming the command to run', async () => {
    const id = createIdentity({ config, kv: memoryKv(), secretBox: testBox, env: {} });
    open.push(id);
    await assert.rejects(id.getToken('desk'), (e: unknown) => {
      expectMb('MB_SIGNIN_REQUIRED')(e);
      assert.match((e as MbError).explain('en').fix, /mailbridge signin desk/);
      return true;
    });
  });
});

function refreshTokenIn(serializedCache: string): string {
  const cache = JSON.parse(serializedCache) as { RefreshToken: Record<string, { secret: string }> };
  const all = Object.values(cache.RefreshToken);
  assert.equal(all.length, 1);
  return all[0]!.secret;
}
