/**
 * People's console sessions on the admin API: local users (scrypt hashes of api.users) sign in with
 * POST /api/v1/session (JSON or the /login form), get the cookie mb_session with the right flags,
 * read GET /api/v1/session and sign out; every route refuses a missing cookie (401) and a role
 * without its scope (403); changes made with the cookie need x-csrf-token and a same-origin
 * Origin; failed sign-ins slow down and lock per user name and per address (manual clock, no
 * sleeps); sessions live in the store (survive a reopen) and end when idle or too old; the audit
 * log names `user:<name>`; no password, session ID or CSRF token reaches the log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { apiDocument, registerAdminApi } from '../../src/api/index.ts';
import { LOGIN_BACKOFF } from '../../src/api/login.ts';
import type { ApiScope } from '../../src/api/config.ts';
import { analyzeText } from '../../src/app/config.ts';
import { configSchema } from '../../src/app/schema.ts';
import { catalogue } from '../../src/errors/index.ts';
import { createLogger } from '../../src/log/index.ts';
import { hashPassword } from '../../src/util/password.ts';
import { ManualClock } from '../relay/helpers/index.ts';
import { tempStore, type TempStore } from '../notify/helpers.ts';
import { waitFor } from '../support/wait.ts';

const PASSWORDS = { rita: 'reader-password-1', otto: 'operator-password-2', ada: 'admin-password-3' } as const;
const ROLE = { rita: 'reader', otto: 'operator', ada: 'admin' } as const;
type Person = keyof typeof PASSWORDS;
const SAMPLE: Record<string, string> = { id: '01JB8Q3ZK2M4N6P8RT', name: 'contoso' };

async function usersConfig(extra: Record<string, unknown> = {}) {
  const users: Record<string, { password: string; role: string }> = {};
  // ln=10: the lowest cost the parser accepts, to keep the test fast; the product default is 15.
  for (const p of Object.keys(PASSWORDS) as Person[]) users[p] = { password: await hashPassword(PASSWORDS[p], 10), role: ROLE[p] };
  return configSchema.parse({ api: { users, ...extra }, server: { port: 8080 } });
}

interface Rig {
  http: FastifyInstance;
  served: Awaited<ReturnType<typeof registerAdminApi>>;
  t: TempStore;
  clock: ManualClock;
  log: string[];
  close(): Promise<void>;
}

async function rig(options: { config?: ReturnType<typeof configSchema.parse>; t?: TempStore; clock?: ManualClock } = {}): Promise<Rig> {
  const t = options.t ?? (await tempStore());
  const clock = options.clock ?? new ManualClock(Date.now());
  const log: string[] = [];
  const logger = createLogger({ level: 'trace', destination: { write: (l: string) => log.push(l) } });
  const http = Fastify({ loggerInstance: logger as FastifyBaseLogger });
  const served = await registerAdminApi(http, { config: options.config ?? (await usersConfig()), store: t.store, keys: [], clock });
  await http.ready();
  return { http, served, t, clock, log, close: () => http.close() };
}

const cookieOf = (setCookie: string | string[] | undefined) => {
  const line = [setCookie ?? []].flat().find((c) => c.startsWith('mb_session='));
  assert.ok(line, `a mb_session cookie in ${JSON.stringify(setCookie)}`);
  return { line, id: decodeURIComponent(line.split(';')[0]!.slice('mb_session='.length)) };
};

/**
 * A sign-in expected to fail. Its answer waits for the back-off delay, a timer of the manual clock:
 * with `delay`, the test checks the answer is still pending 1 ms before it and comes at it.
 */
async function failSignIn(r: Rig, payload: Record<string, string>, o: { delay?: number; remoteAddress?: string; headers?: Record<string, string> } = {}) {
  const before = r.clock.pending;
  let done = false;
  const answer = r.http.inject({ method: 'POST', url: '/api/v1/session', payload, headers: o.headers ?? {}, remoteAddress: o.remoteAddress ?? '127.0.0.1' });
  void answer.finally(() => (done = true));
  // Either the delay timer appears or the answer comes at once (a lock needs no delay).
  await waitFor(() => done || r.clock.pending > before, 10_000, 'the back-off timer or the answer');
  const delayed = !done;
  if (delayed && o.delay !== undefined) {
    r.clock.advance(o.delay - 1);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(done, false, `answered before its ${o.delay} ms delay`);
    r.clock.advance(1);
  } else if (delayed) {
    r.clock.advance(LOGIN_BACKOFF.maxDelayMs);
  }
  return { res: await answer, delayed };
}

async function signIn(http: FastifyInstance, who: Person, headers: Record<string, string> = {}) {
  const r = await http.inject({ method: 'POST', url: '/api/v1/session', payload: { user: who, password: PASSWORDS[who] }, headers });
  assert.equal(r.statusCode, 201, r.body);
  const { id } = cookieOf(r.headers['set-cookie']);
  return { id, csrf: (r.json() as { csrfToken: string }).csrfToken, body: r.json() as { user: string; roles: string[]; scopes: string[]; csrfToken: string } };
}

test('sign-in, session, sign-out: cookie flags, the session view, CSRF token; the audit names user:<name>; nothing secret in the log', async () => {
  const r = await rig();
  try {
    const first = await r.http.inject({ method: 'POST', url: '/api/v1/session', payload: { user: 'ada', password: PASSWORDS.ada } });
    assert.equal(first.statusCode, 201);
    const { line, id } = cookieOf(first.headers['set-cookie']);
    const flags = line.split(';').map((f) => f.trim());
    assert.ok(flags.includes('HttpOnly') && flags.includes('SameSite=Strict') && flags.includes('Path=/'), line);
    assert.ok(!flags.includes('Secure'), 'plain HTTP on loopback: no Secure flag (the browser would drop the cookie)');
    assert.ok(flags.includes('Max-Age=43200'), 'the cookie ends with the session (12 h)');
    assert.ok(id.length >= 40);
    const body = first.json() as { user: string; roles: string[]; scopes: string[]; csrfToken: string };
    assert.deepEqual({ user: body.user, roles: body.roles, scopes: body.scopes }, { user: 'ada', roles: ['admin'], scopes: ['admin', 'operate', 'read', 'subscriptions'] });

    const cookie = `mb_session=${id}`;
    const read = await r.http.inject({ url: '/api/v1/session', headers: { cookie } });
    assert.equal(read.statusCode, 200);
    assert.equal(read.json().csrfToken, body.csrfToken);
    assert.equal(read.json().user, 'ada');

    // A change by the person, with the CSRF token, is audited under user:ada (this gateway has no
    // relay, so the change itself ends in MB_API_NOT_CONFIGURED; it got past the session checks).
    const change = await r.http.inject({ method: 'POST', url: `/api/v1/relay/queue/${SAMPLE.id}/retry`, headers: { cookie, 'x-csrf-token': body.csrfToken } });
    assert.equal(change.json().error.code, 'MB_API_NOT_CONFIGURED');

    const out = await r.http.inject({ method: 'DELETE', url: '/api/v1/session', headers: { cookie, 'x-csrf-token': body.csrfToken } });
    assert.equal(out.statusCode, 204);
    assert.match(String(out.headers['set-cookie']), /^mb_session=; Path=\/; HttpOnly; SameSite=Strict; Max-Age=0/);
    const after = await r.http.inject({ url: '/api/v1/session', headers: { cookie } });
    assert.equal(after.statusCode, 401);
    assert.equal(after.json().error.code, 'MB_API_UNAUTHORIZED');

    const failed = await failSignIn(r, { user: 'ada', password: 'wrong-password-x' });
    assert.equal(failed.res.statusCode, 401);
    assert.equal(failed.res.json().error.code, 'MB_API_LOGIN_FAILED');
    assert.ok(failed.delayed, 'a failed sign-in is answered only after the back-off delay');

    const admin = await signIn(r.http, 'ada', { cookie: `mb_session=${id}` });
    // A sign-in from a browser that still had a session ends that one.
    const stale = await signIn(r.http, 'ada');
    const renewed = await signIn(r.http, 'ada', { cookie: `mb_session=${stale.id}` });
    assert.equal((await r.http.inject({ url: '/api/v1/session', headers: { cookie: `mb_session=${stale.id}` } })).statusCode, 401);
    assert.equal((await r.http.inject({ url: '/api/v1/session', headers: { cookie: `mb_session=${renewed.id}` } })).statusCode, 200);
    const audit = await r.http.inject({ url: '/api/v1/audit?limit=100', headers: { cookie: `mb_session=${admin.id}` } });
    const entries = (audit.json() as { entries: Array<{ who: string; action: string; status: number; code?: string }> }).entries;
    // Entries at the same instant of the manual clock have no order among themselves.
    const actions = entries.map((e) => `${e.who} ${e.action} ${e.status}${e.code ? ` ${e.code}` : ''}`).sort();
    assert.deepEqual(actions, [
      'user:ada POST /api/v1/relay/queue/{id}/retry 404 MB_API_NOT_CONFIGURED',
      'user:ada sign-in 201',
      'user:ada sign-in 201',
      'user:ada sign-in 201',
      'user:ada sign-in 201',
      'user:ada sign-in 401 MB_API_LOGIN_FAILED',
      'user:ada sign-out 204',
    ]);
    const all = r.log.join('');
    assert.ok(all.length > 0, 'requests were logged');
    assert.match(all, /"msg":"console sign-in refused"/);
    assert.match(all, /"code":"MB_API_LOGIN_FAILED","user":"ada","ip":"127\.0\.0\.1"/);
    for (const secret of [...Object.values(PASSWORDS), 'wrong-password-x', id, admin.id, stale.id, renewed.id, body.csrfToken, admin.csrf]) {
      assert.equal(all.includes(secret), false, 'a password, session ID or CSRF token in the log');
    }
  } finally {
    await r.close();
    await r.t.cleanup();
  }
});

const operations = () => {
  const doc = apiDocument() as { paths: Record<string, Record<string, { 'x-scope'?: ApiScope; responses: Record<string, { content?: Record<string, unknown> }> }>> };
  return Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops)
      .filter(([, op]) => op['x-scope'] !== undefined)
      .map(([method, op]) => ({
        method: method.toUpperCase() as 'GET' | 'POST' | 'DELETE',
        path,
        url: path.replace(/\{(\w+)\}/g, (_, p: string) => (p === 'id' && path.includes('subscriptions') ? 'sub_x1' : SAMPLE[p]!)),
        scope: op['x-scope']!,
        // A stream never ends, so inject() would wait for ever: test/api/routes/stream.test.ts lets the scope in on a real socket.
        stream: op.responses['200']?.content?.['text/event-stream'] !== undefined,
      })),
  );
};

test('every route refuses a request without cookie or with an unknown session (401) and a role without the scope (403), each with an MB code', async () => {
  const r = await rig();
  try {
    const people = { rita: await signIn(r.http, 'rita'), otto: await signIn(r.http, 'otto'), ada: await signIn(r.http, 'ada') };
    const roleHas: Record<Person, Set<ApiScope>> = { rita: new Set(['read']), otto: new Set(['read', 'operate']), ada: new Set(['read', 'operate', 'admin', 'subscriptions']) };
    const ops = operations();
    assert.ok(ops.length >= 20);
    let forbidden = 0;
    for (const op of ops) {
      const payload = op.method === 'POST' ? {} : undefined;
      for (const cookie of [undefined, 'mb_session=not-a-session', 'other=1']) {
        const res = await r.http.inject({ method: op.method, url: op.url, headers: cookie ? { cookie } : {}, ...(payload ? { payload } : {}) });
        assert.equal(res.statusCode, 401, `${op.method} ${op.url} with ${cookie}`);
        assert.equal(res.json().error.code, 'MB_API_UNAUTHORIZED');
      }
      for (const p of Object.keys(people) as Person[]) {
        if (op.stream && roleHas[p].has(op.scope)) continue;
        const res = await r.http.inject({
          method: op.method,
          url: op.url,
          headers: { cookie: `mb_session=${people[p].id}`, 'x-csrf-token': people[p].csrf, 'accept-language': 'de' },
          ...(payload ? { payload } : {}),
        });
        if (roleHas[p].has(op.scope)) {
          assert.ok(res.statusCode !== 401 && res.statusCode !== 403, `${op.method} ${op.url} as ${ROLE[p]}: ${res.statusCode} ${res.body}`);
          // That was the sign-out: sign in again for the routes still to come.
          if (op.method === 'DELETE' && op.path === '/api/v1/session') people[p] = await signIn(r.http, p);
        } else {
          forbidden++;
          assert.equal(res.statusCode, 403, `${op.method} ${op.url} as ${ROLE[p]}`);
          assert.equal(res.json().error.code, 'MB_API_FORBIDDEN');
          assert.equal(res.json().error.title, catalogue.MB_API_FORBIDDEN.title.de);
          assert.ok(res.json().error.cause.includes(`user:${p}`), res.json().error.cause);
        }
      }
    }
    assert.ok(forbidden >= 10, `${forbidden} refusals by role`);
  } finally {
    await r.close();
    await r.t.cleanup();
  }
});

test('CSRF: a change with the cookie needs x-csrf-token of its own session and a same-origin Origin/Referer; an API key needs neither', async () => {
  const t = await tempStore();
  const clock = new ManualClock(Date.now());
  const http = Fastify();
  const key = 'k'.repeat(20) + 'csrf-test-key';
  await registerAdminApi(http, { config: await usersConfig(), store: t.store, keys: [{ name: 'ops', key, scopes: ['admin'] }], clock });
  await http.ready();
  try {
    const ada = await signIn(http, 'ada');
    const otto = await signIn(http, 'otto');
    const url = `/api/v1/relay/queue/${SAMPLE.id}/retry`;
    const cookie = `mb_session=${ada.id}`;
    const attempt = (headers: Record<string, string>) => http.inject({ method: 'POST', url, headers: { cookie, host: 'mb.example:8080', ...headers } });
    const missing = await attempt({});
    assert.equal(missing.statusCode, 403);
    assert.equal(missing.json().error.code, 'MB_API_CSRF');
    assert.match(missing.json().error.cause, /without the header x-csrf-token/);
    const wrong = await attempt({ 'x-csrf-token': otto.csrf, 'accept-language': 'de' });
    assert.equal(wrong.json().error.code, 'MB_API_CSRF');
    assert.match(wrong.json().error.cause, /nicht das dieser Sitzung/);
    const foreign = await attempt({ 'x-csrf-token': ada.csrf, origin: 'https://evil.example' });
    assert.equal(foreign.json().error.code, 'MB_API_CSRF');
    assert.match(foreign.json().error.cause, /evil\.example/);
    const foreignReferer = await attempt({ 'x-csrf-token': ada.csrf, referer: 'https://evil.example/page' });
    assert.equal(foreignReferer.json().error.code, 'MB_API_CSRF');
    // Right token, own origin (or none, as from a script): past the checks.
    for (const extra of [{ origin: 'http://mb.example:8080' }, { referer: 'http://mb.example:8080/console/' }, {}] as Array<Record<string, string>>) {
      const right = await attempt({ 'x-csrf-token': ada.csrf, ...extra });
      assert.equal(right.json().error.code, 'MB_API_NOT_CONFIGURED', JSON.stringify(extra));
    }
    // A read needs no token; a key needs none for changes.
    assert.equal((await http.inject({ url: '/api/v1/session', headers: { cookie } })).statusCode, 200);
    const byKey = await http.inject({ method: 'POST', url, headers: { authorization: `Bearer ${key}`, origin: 'https://evil.example' } });
    assert.equal(byKey.json().error.code, 'MB_API_NOT_CONFIGURED');
    // A wrong key is not rescued by a valid cookie.
    const badKey = await http.inject({ url: '/api/v1/session', headers: { authorization: 'Bearer wrong-key-wrong-key', cookie } });
    assert.equal(badKey.statusCode, 401);
    // The sign-in form itself refuses a foreign origin (login CSRF).
    const loginCsrf = await http.inject({ method: 'POST', url: '/api/v1/session', payload: { user: 'ada', password: PASSWORDS.ada }, headers: { origin: 'https://evil.example' } });
    assert.equal(loginCsrf.statusCode, 403);
    assert.equal(loginCsrf.json().error.code, 'MB_API_CSRF');
    // Refused changes are in the audit log under the person.
    const audit = (await http.inject({ url: '/api/v1/audit', headers: { authorization: `Bearer ${key}` } })).json() as { entries: Array<{ who: string; code?: string }> };
    assert.equal(audit.entries.filter((e) => e.who === 'user:ada' && e.code === 'MB_API_CSRF').length, 5);
  } finally {
    await http.close();
    await t.cleanup();
  }
});

test('failed sign-ins: the delay doubles, 5 failures per user name (from any address) or per address (any name) lock with 429, Retry-After and an MB code; time unlocks (manual clock)', async () => {
  const r = await rig();
  try {
    // Per user name, from five different addresses: 250, 500, 1000, 2000 ms, then the lock.
    const delays = [250, 500, 1000, 2000, 4000];
    for (let i = 0; i < 5; i++) {
      const f = await failSignIn(r, { user: 'ada', password: `guess-${i}` }, { delay: delays[i]!, remoteAddress: `192.0.2.${i + 1}` });
      assert.equal(f.res.statusCode, 401);
      assert.equal(f.res.json().error.code, 'MB_API_LOGIN_FAILED');
    }
    // Locked: even the right password from a new address is not checked.
    const locked = await r.http.inject({ method: 'POST', url: '/api/v1/session', payload: { user: 'ada', password: PASSWORDS.ada }, remoteAddress: '198.51.100.1', headers: { 'accept-language': 'de' } });
    assert.equal(locked.statusCode, 429);
    assert.equal(locked.json().error.code, 'MB_API_LOGIN_LOCKED');
    assert.equal(locked.json().error.title, catalogue.MB_API_LOGIN_LOCKED.title.de);
    const retryAfter = Number(locked.headers['retry-after']);
    assert.ok(retryAfter > 800 && retryAfter <= 900, `Retry-After ${retryAfter}`);
    // Others are not affected.
    await signIn(r.http, 'otto', {});
    r.clock.advance(retryAfter * 1000);
    await signIn(r.http, 'ada');

    // Per address, with a different name each time: the address locks.
    for (let i = 0; i < 5; i++) {
      const f = await failSignIn(r, { user: `nobody${i}`, password: 'x' }, { remoteAddress: '203.0.113.7' });
      assert.equal(f.res.statusCode, 401);
    }
    const byAddress = await r.http.inject({ method: 'POST', url: '/api/v1/session', payload: { user: 'otto', password: PASSWORDS.otto }, remoteAddress: '203.0.113.7' });
    assert.equal(byAddress.statusCode, 429);
    assert.equal((await r.http.inject({ method: 'POST', url: '/api/v1/session', payload: { user: 'otto', password: PASSWORDS.otto }, remoteAddress: '203.0.113.8' })).statusCode, 201);
    // An unknown user name fails the same way as a wrong password (no hint which names exist).
    const a = await failSignIn(r, { user: 'nobody', password: 'x' }, { remoteAddress: '192.0.2.77' });
    const b = await failSignIn(r, { user: 'rita', password: 'x' }, { remoteAddress: '192.0.2.78' });
    assert.deepEqual(a.res.json(), b.res.json());
  } finally {
    await r.close();
    await r.t.cleanup();
  }
});

test('sessions live in the store: they survive a restart, and end when idle (30 min) or after 12 h however active', async () => {
  const t = await tempStore();
  const clock = new ManualClock(Date.now());
  const config = await usersConfig();
  let r = await rig({ config, t, clock });
  const { id } = await signIn(r.http, 'rita');
  const cookie = `mb_session=${id}`;
  try {
    await r.close();
    await t.reopen();
    r = await rig({ config, t, clock });
    assert.equal((await r.http.inject({ url: '/api/v1/session', headers: { cookie } })).statusCode, 200, 'the session survived the restart');
    // Active every 29 minutes: alive until the 12 hours are over.
    for (let elapsed = 0; elapsed + 29 < 12 * 60; elapsed += 29) {
      clock.advance(29 * 60_000);
      const res = await r.http.inject({ url: '/api/v1/session', headers: { cookie } });
      if (elapsed + 29 < 12 * 60) assert.equal(res.statusCode, 200, `after ${elapsed + 29} min`);
    }
    clock.advance(29 * 60_000);
    assert.equal((await r.http.inject({ url: '/api/v1/session', headers: { cookie } })).statusCode, 401, 'after 12 h');
    // Idle: 30 minutes without a request end a session.
    const other = await signIn(r.http, 'otto');
    clock.advance(29 * 60_000);
    assert.equal((await r.http.inject({ url: '/api/v1/session', headers: { cookie: `mb_session=${other.id}` } })).statusCode, 200);
    clock.advance(30 * 60_000);
    assert.equal((await r.http.inject({ url: '/api/v1/session', headers: { cookie: `mb_session=${other.id}` } })).statusCode, 401);
    // The store holds no session ID, only its digest.
    const rows = await t.store.kv.list('api.session');
    for (const row of rows) assert.ok(!row.key.includes(id) && !row.value.includes(id));
  } finally {
    await r.close();
    await t.cleanup();
  }
});

test('GET /login: an accessible form in English and German (Accept-Language, ?lang=); the form post signs in with a redirect, a wrong password shows the page again with the MB code', async () => {
  const r = await rig({ config: await usersConfig() });
  try {
    const en = await r.http.inject({ url: '/login' });
    assert.equal(en.statusCode, 200);
    assert.match(en.headers['content-type'] as string, /text\/html/);
    assert.match(en.body, /<html lang="en">/);
    assert.match(en.body, /<label for="user">User name<\/label><input id="user" name="user" autocomplete="username"/);
    assert.match(en.body, /<label for="password">Password<\/label><input id="password" name="password" type="password" autocomplete="current-password"/);
    assert.match(en.body, /<form method="post" action="\/api\/v1\/session">/);
    assert.doesNotMatch(en.body, /Entra/, 'no Entra link without api.signin.entra');
    const de = await r.http.inject({ url: '/login', headers: { 'accept-language': 'de-DE,de;q=0.9' } });
    assert.match(de.body, /<html lang="de">/);
    assert.match(de.body, /Kennwort/);
    assert.match((await r.http.inject({ url: '/login?lang=de' })).body, /Bei mailbridge anmelden/);

    const form = (user: string, password: string, next?: string) =>
      new URLSearchParams({ user, password, lang: 'de', ...(next ? { next } : {}) }).toString();
    const ok = await r.http.inject({ method: 'POST', url: '/api/v1/session', payload: form('ada', PASSWORDS.ada), headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://localhost:80' } });
    assert.equal(ok.statusCode, 303);
    assert.equal(ok.headers.location, '/console/');
    cookieOf(ok.headers['set-cookie']);
    const next = await r.http.inject({ method: 'POST', url: '/api/v1/session', payload: form('ada', PASSWORDS.ada, '//evil.example/x'), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(next.headers.location, '/console/', 'no redirect off the server');
    const answer = r.http.inject({ method: 'POST', url: '/api/v1/session', payload: form('ada', 'falsch-falsch'), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    await waitFor(() => r.clock.pending > 0, 10_000, 'the back-off timer');
    r.clock.advance(LOGIN_BACKOFF.maxDelayMs);
    const bad = await answer;
    assert.equal(bad.statusCode, 401);
    assert.match(bad.body, /<html lang="de">/);
    assert.match(bad.body, /role="alert"/);
    assert.match(bad.body, /MB_API_LOGIN_FAILED: Anmeldung fehlgeschlagen/);
    assert.match(bad.body, /value="ada"/, 'the user name stays filled in');
    assert.doesNotMatch(bad.body, /falsch-falsch/);
    // Without users or Entra: the page says how to create a user.
    const none = await rig({ config: configSchema.parse({}) });
    try {
      assert.match((await none.http.inject({ url: '/login' })).body, /mailbridge api user set &#60;name&#62; --role admin/);
    } finally {
      await none.close();
      await none.t.cleanup();
    }
  } finally {
    await r.close();
    await r.t.cleanup();
  }
});

test('config check: api.signin.entra must name a connection of the file', () => {
  const report = analyzeText('api:\n  signin:\n    entra:\n      connection: contso\nconnections:\n  contoso: { tenantId: contoso.example, clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35 }\n', 'mailbridge.yaml', {});
  const e = report.errors.find((p) => p.code === 'MB_API_SIGNIN_NOT_CONFIGURED');
  assert.ok(e, JSON.stringify(report.errors));
  assert.equal(e.path, 'api.signin.entra.connection');
  assert.equal(e.line, 4);
  assert.match(e.message.de, /contso/);
  const fine = analyzeText('api: { signin: { entra: { connection: contoso } } }\nconnections:\n  contoso: { tenantId: contoso.example, clientId: 5d1e2a44-8b3c-4f7d-a2e6-9c1b4d8f0e35 }\n', 'mailbridge.yaml', {});
  assert.deepEqual(fine.errors.filter((p) => p.code === 'MB_API_SIGNIN_NOT_CONFIGURED'), []);
});

test('config apply: users added or removed in api.users sign in, or no longer, without a restart', async () => {
  const config = await usersConfig();
  const r = await rig({ config });
  try {
    await signIn(r.http, 'otto');
    const { otto: _gone, ...rest } = config.api!.users;
    void _gone;
    const next = configSchema.parse({ ...config, api: { ...config.api, users: { ...rest, neu: { password: await hashPassword('new-user-password', 10), role: 'reader' } } } });
    r.served.update({ config: next });
    const neu = await r.http.inject({ method: 'POST', url: '/api/v1/session', payload: { user: 'neu', password: 'new-user-password' } });
    assert.equal(neu.statusCode, 201, neu.body);
    assert.deepEqual(neu.json().roles, ['reader']);
    const otto = await failSignIn(r, { user: 'otto', password: PASSWORDS.otto });
    assert.equal(otto.res.json().error.code, 'MB_API_LOGIN_FAILED');
  } finally {
    await r.close();
    await r.t.cleanup();
  }
});
