/**
 * Console sign-in with Entra ID end to end against the sandbox tenant, over real HTTP: the gateway's
 * /login/entra redirects to the sandbox's authorize page (PKCE S256, state, nonce, openid profile),
 * the test fills in that page as a browser would (fetch, following each redirect by hand), the
 * sandbox redirects to /login/entra/callback, the gateway redeems the code, verifies the id token
 * and opens a session whose role comes from the id token's `roles` claim. A user without an app
 * role is refused; a callback without the browser's state cookie is refused (login CSRF); the
 * whole captured log holds no code, session ID, client secret or password.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Agent, fetch, type Response } from 'undici';
import type { FastifyBaseLogger } from 'fastify';
import { openSecretBox } from '../../src/config/secrets.ts';
import { createIdentity } from '../../src/identity/index.ts';
import { createLogger } from '../../src/log/index.ts';
import { openStore } from '../../src/store/index.ts';
import { setUserAppRoles } from '../../src/sandbox/entra/ops.ts';
import { startGateway, type Gateway } from '../../src/server/index.ts';
import type { Config } from '../../src/app/schema.ts';
import { ALICE, APP, SECRET, startFixture, T, type Fixture } from '../identity/sandbox-fixture.ts';

const BOB = { upn: 'bob@contoso.example', password: 'Bob-pw-22', objectId: 'd1e00000-0000-4000-8000-000000000002' };
const CAROL = { upn: 'carol@contoso.example', password: 'Carol-pw-33', objectId: 'd1e00000-0000-4000-8000-000000000003' };

let f: Fixture;
let gw: Gateway;
let config: Config;
let agent: Agent;
const log: string[] = [];
const secrets: string[] = [SECRET.valid, ALICE.password, BOB.password, CAROL.password];
const savedConfigEnv = process.env.MAILBRIDGE_CONFIG;

before(async () => {
  f = await startFixture();
  const callback = `http://127.0.0.1:${f.gatewayPort}/login/entra/callback`;
  const tenant = f.dir.data.tenants.find((t) => t.id === T.contoso)!;
  tenant.apps.find((a) => a.appId === APP.cc)!.redirectUris.push(callback);
  tenant.users.push({ ...BOB, displayName: 'Bob' }, { ...CAROL, displayName: 'Carol' });
  setUserAppRoles(f.dir, T.contoso, APP.cc, ALICE.upn, ['admin']);
  setUserAppRoles(f.dir, T.contoso, APP.cc, CAROL.upn, ['reader', 'operator']);
  // The console signs in through a delegated connection that has its own account (alice): its
  // tokens must survive the admins' sign-ins (see the last test).
  config = f.config(
    { mailbox: { flow: 'auth-code', clientId: APP.cc, clientSecret: SECRET.valid, clientSecretExpires: '2099-01-01', redirectUri: f.redirectUri, account: ALICE.upn } },
    { api: { signin: { entra: { connection: 'mailbox', redirectUri: callback } } } },
  );
  process.env.MAILBRIDGE_CONFIG = join(f.files.path, 'mailbridge.yaml');
  delete process.env.MAILBRIDGE_KEY;
  const logger = createLogger({ level: 'trace', destination: { write: (l: string) => log.push(l) } });
  gw = await startGateway(config, logger as FastifyBaseLogger as never);
  agent = new Agent({ connect: { ca: f.ca.certPem } });
});
after(async () => {
  await agent?.close();
  await gw?.close();
  await f?.close();
  if (savedConfigEnv === undefined) delete process.env.MAILBRIDGE_CONFIG;
  else process.env.MAILBRIDGE_CONFIG = savedConfigEnv;
});

const cookiesOf = (res: Response) => res.headers.getSetCookie();
const cookie = (res: Response, name: string) => cookiesOf(res).find((c) => c.startsWith(`${name}=`));
const valueOf = (line: string | undefined) => (line ? decodeURIComponent(line.split(';')[0]!.split('=').slice(1).join('=')) : undefined);

/** The browser's way through: /login/entra → the sandbox's sign-in page → its form post → the callback URL. */
async function throughEntra(upn: string, password: string) {
  const start = await fetch(`${gw.url}/login/entra`, { redirect: 'manual' });
  assert.equal(start.status, 302);
  const stateCookie = cookie(start, 'mb_login');
  assert.ok(stateCookie, 'the state is bound to the browser');
  assert.match(stateCookie, /HttpOnly/);
  assert.match(stateCookie, /SameSite=Lax/);
  const authorize = new URL(start.headers.get('location')!);
  assert.equal(authorize.origin + authorize.pathname, `${f.sandbox.urls.global}/${T.contoso}/oauth2/v2.0/authorize`);
  assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
  assert.match(authorize.searchParams.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
  assert.ok((authorize.searchParams.get('nonce') ?? '').length >= 20, 'a nonce');
  assert.equal(authorize.searchParams.get('state'), valueOf(stateCookie));
  assert.deepEqual((authorize.searchParams.get('scope') ?? '').split(' ').sort(), ['offline_access', 'openid', 'profile']);

  const page = await fetch(authorize, { dispatcher: agent });
  const html = await page.text();
  assert.equal(page.status, 200, html);
  const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
  const hidden = Object.fromEntries([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [m[1]!, m[2]!]));
  assert.ok(action && hidden.flow, 'the sign-in form');
  const posted = await fetch(new URL(action.replace(/&amp;/g, '&'), authorize), {
    method: 'POST',
    dispatcher: agent,
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...hidden, login: upn, passwd: password, action: 'signin' }).toString(),
  });
  assert.equal(posted.status, 302, await posted.text());
  const back = new URL(posted.headers.get('location')!);
  assert.equal(back.origin + back.pathname, `http://127.0.0.1:${f.gatewayPort}/login/entra/callback`);
  const code = back.searchParams.get('code');
  assert.ok(code);
  secrets.push(code);
  return { back, stateCookie: stateCookie.split(';')[0]! };
}

test('a user with the app role admin signs in through the sandbox and gets an admin session; carol (reader + operator) gets operator', async () => {
  const { back, stateCookie } = await throughEntra(ALICE.upn, ALICE.password);
  const done = await fetch(back, { headers: { cookie: stateCookie, 'accept-language': 'de' }, redirect: 'manual' });
  const body = await done.text();
  assert.equal(done.status, 200, body);
  // A page of this server moves on to the console, so the SameSite=Strict cookie goes along.
  assert.match(body, /<meta http-equiv="refresh" content="0;url=\/console\/">/);
  assert.match(body, /Weiter zur Konsole/);
  const session = cookie(done, 'mb_session');
  assert.ok(session, 'the session cookie');
  assert.match(session, /HttpOnly; SameSite=Strict/);
  assert.match(cookie(done, 'mb_login') ?? '', /Max-Age=0/, 'the state cookie is deleted');
  const id = valueOf(session)!;
  secrets.push(id);
  const me = await fetch(`${gw.url}/api/v1/session`, { headers: { cookie: `mb_session=${id}` } });
  const view = (await me.json()) as { user: string; roles: string[]; scopes: string[]; csrfToken: string };
  assert.equal(me.status, 200);
  assert.deepEqual({ user: view.user, roles: view.roles, scopes: view.scopes }, { user: ALICE.upn, roles: ['admin'], scopes: ['admin', 'operate', 'read', 'subscriptions'] });
  secrets.push(view.csrfToken);

  // The same redirect again (a reload, or a stolen URL): used once.
  const again = await fetch(back, { headers: { cookie: stateCookie } });
  assert.equal(again.status, 400);
  assert.match(await again.text(), /MB_SIGNIN_STATE_UNKNOWN/);

  const carol = await throughEntra(CAROL.upn, CAROL.password);
  const carolDone = await fetch(carol.back, { headers: { cookie: carol.stateCookie } });
  assert.equal(carolDone.status, 200);
  const carolId = valueOf(cookie(carolDone, 'mb_session'))!;
  secrets.push(carolId);
  const carolView = (await (await fetch(`${gw.url}/api/v1/session`, { headers: { cookie: `mb_session=${carolId}` } })).json()) as { roles: string[]; scopes: string[] };
  assert.deepEqual(carolView.roles, ['operator'], 'the highest of the assigned roles');
  assert.deepEqual(carolView.scopes, ['operate', 'read']);
  const forbidden = await fetch(`${gw.url}/api/v1/audit`, { headers: { cookie: `mb_session=${carolId}` } });
  assert.equal(forbidden.status, 403);
  assert.equal(((await forbidden.json()) as { error: { code: string } }).error.code, 'MB_API_FORBIDDEN');

  const audit = (await (await fetch(`${gw.url}/api/v1/audit`, { headers: { cookie: `mb_session=${id}` } })).json()) as { entries: Array<{ who: string; action: string; status: number }> };
  assert.ok(audit.entries.some((e) => e.who === `user:${ALICE.upn}` && e.action === 'sign-in' && e.status === 201));
  assert.ok(audit.entries.some((e) => e.who === `user:${CAROL.upn}` && e.action === 'sign-in' && e.status === 201));
});

test('a user without an app role is refused with MB_API_SIGNIN_NO_ROLE and gets no session', async () => {
  const { back, stateCookie } = await throughEntra(BOB.upn, BOB.password);
  const res = await fetch(back, { headers: { cookie: stateCookie } });
  const body = await res.text();
  assert.equal(res.status, 403, body);
  assert.match(body, /MB_API_SIGNIN_NO_ROLE/);
  assert.match(body, new RegExp(BOB.upn.replace('.', '\\.')));
  assert.equal(cookie(res, 'mb_session'), undefined);
});

test('a callback without the state cookie of the browser that started it is refused (login CSRF)', async () => {
  const { back } = await throughEntra(ALICE.upn, ALICE.password);
  const res = await fetch(back);
  assert.equal(res.status, 400);
  assert.match(await res.text(), /MB_SIGNIN_STATE_UNKNOWN/);
  assert.equal(cookie(res, 'mb_session'), undefined);
});

test('a console sign-in through a delegated connection keeps the tokens of its own account and stores no one else\'s', async () => {
  const store = await openStore(config.store);
  const box = await openSecretBox({ keyFile: join(f.files.path, 'mailbridge.key'), env: {} });
  const identities = [createIdentity({ config, kv: store.kv, secretBox: box, env: {} })];
  try {
    // The connection's own sign-in (as `mailbridge signin mailbox` does), redeemed by the gateway.
    const link = await identities[0]!.beginSignIn('mailbox');
    const redirect = await f.sandbox.signIn(link.url, ALICE.upn, ALICE.password);
    secrets.push(new URL(redirect).searchParams.get('code')!);
    assert.equal((await fetch(redirect)).status, 200);
    await identities[0]!.waitForSignIn(link, { pollMs: 20 });
    // Alice (the connection's account) and carol sign in to the console through the same app.
    for (const [upn, password] of [[ALICE.upn, ALICE.password], [CAROL.upn, CAROL.password]] as const) {
      const { back, stateCookie } = await throughEntra(upn, password);
      const done = await fetch(back, { headers: { cookie: stateCookie } });
      assert.equal(done.status, 200, await done.text());
      secrets.push(valueOf(cookie(done, 'mb_session'))!);
    }
    // A new Identity reads the stored cache: alice's sign-in is there, carol's is not.
    const fresh = createIdentity({ config, kv: store.kv, secretBox: box, env: {} });
    identities.push(fresh);
    assert.deepEqual(await fresh.accounts('mailbox'), [ALICE.upn]);
    const calls = f.tokenCalls();
    const token = await fresh.getToken('mailbox');
    assert.equal(token.account, ALICE.upn);
    assert.ok(f.tokenCalls() <= calls + 1, 'from the stored refresh token');
  } finally {
    await Promise.all(identities.map((i) => i.close()));
    await store.close();
  }
});

test('the whole captured log holds no authorization code, session ID, CSRF token, client secret or password', async () => {
  const all = log.join('');
  assert.match(all, /login\/entra\/callback/, 'the callback requests were logged');
  assert.ok(secrets.length >= 8);
  for (const s of secrets) assert.equal(all.includes(s), false, `a secret in the log (${s.slice(0, 3)}…)`);
});
