/**
 * Signing people in to the console and out again:
 * - `GET /login`: a small bilingual HTML form (en/de from ?lang= or Accept-Language) posting to
 *   `POST /api/v1/session`, and a link to the Entra ID sign-in when api.signin.entra is set;
 * - `POST /api/v1/session`: local users of api.users (scrypt hashes, util/password.ts), JSON or the
 *   form; `GET /api/v1/session` → `{ user, roles, scopes, csrfToken }`; `DELETE` signs out;
 * - `GET /login/entra` → Entra ID (OpenID Connect, auth code + PKCE through the connection of
 *   api.signin.entra) → `GET /login/entra/callback`: the id token's `roles` claim (app roles
 *   reader, operator, admin; the highest one counts) decides the role; none: refused.
 *
 * Guessing is slowed per user name and per client address (util/login-guard.ts, as the relay's
 * SMTP AUTH): each failure delays its answer (250 ms doubling up to 4 s) and 5 failures within 15
 * minutes refuse further sign-ins of that name or address for 15 minutes (429 with Retry-After,
 * MB_API_LOGIN_LOCKED). The lock per name lets a guesser lock a person out for a while; that is
 * the price of not letting a botnet of addresses guess one admin's password without limit.
 *
 * The sign-in form is protected against login CSRF by its Origin/Referer check and the cookie's
 * SameSite=Strict; the Entra redirect by a state bound to the browser (cookie mb_login, SameSite=Lax
 * because it must come back on Entra's cross-site redirect). The callback answers a page that moves
 * on to the console itself: after a cross-site redirect chain the browser would not send the
 * SameSite=Strict session cookie with a plain 302 to /console/.
 *
 * Every sign-in, failed sign-in and sign-out goes into the audit log as `user:<name>`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { MbError, toMbError } from '../errors/index.ts';
import { langFromHeader, type Lang } from '../i18n/index.ts';
import type { ConsoleSignIn, Identity } from '../identity/index.ts';
import type { Clock } from '../util/clock.ts';
import { LoginGuard, type LoginTicket } from '../util/login-guard.ts';
import { parsePasswordHash, verifyNothing, verifyPassword, type ParsedHash } from '../util/password.ts';
import type { AuditLog } from './audit.ts';
import { consoleRedirectUri, ROLES, type ApiConfig, type Role } from './config.ts';
import { foreignOrigin } from './csrf.ts';
import { routeGroup, type RouteSpec } from './route.ts';
import { cookieValue, SESSION_COOKIE, sessionCaller, setCookie, type Session, type Sessions } from './session.ts';

export const LOGIN_PATH = '/login';
export const ENTRA_LOGIN_PATH = '/login/entra';
export const ENTRA_CALLBACK_PATH = '/login/entra/callback';
/** Where a signed-in person goes when the form named no (safe) `next`. */
export const CONSOLE_PATH = '/console/';
const STATE_COOKIE = 'mb_login';

export const LOGIN_BACKOFF = { maxFailures: 5, windowMs: 15 * 60_000, lockMs: 15 * 60_000, baseDelayMs: 250, maxDelayMs: 4_000 };

export interface SignInOptions {
  /** The api and server sections as of now: config apply may change users and the Entra sign-in while the gateway runs. */
  current: () => { api: ApiConfig | undefined; server: { publicUrl?: string | undefined; port?: number } | undefined };
  sessions: Sessions;
  audit: AuditLog;
  clock: Clock;
  /** The Identity that redeems Entra sign-ins, opened at the first one. */
  identity?: () => Promise<Identity>;
}

/** Any signed-in caller may see and end its own session. */
const sessionRoute = routeGroup({ tag: 'session', scope: 'read' });

const sessionView = z.object({
  user: z.string().meta({ description: 'Who is signed in: the local user, the Entra ID account, or the API key’s name' }),
  roles: z.array(z.enum(ROLES)).meta({ description: 'The person’s role (empty for an API key)' }),
  scopes: z.array(z.string()),
  csrfToken: z.string().nullable().meta({ description: 'Send it as x-csrf-token with every change made with the session cookie (null for an API key: none needed)' }),
});

/** A path on this server (not `//host`, not a URL) the form may send the person back to. */
function safeNext(next: string | undefined): string {
  return next && /^\/(?![/\\])[^\s]*$/.test(next) ? next : CONSOLE_PATH;
}

function secureCookie(req: FastifyRequest, publicUrl: string | undefined): boolean {
  return req.protocol === 'https' || (publicUrl?.startsWith('https:') ?? false);
}

function pageLang(req: FastifyRequest, explicit?: string): Lang {
  return explicit === 'de' || explicit === 'en' ? explicit : langFromHeader(req.headers['accept-language']);
}

/** The highest of the app roles mailbridge knows, or undefined. */
export function roleFrom(roles: readonly string[]): Role | undefined {
  for (const r of [...ROLES].reverse()) if (roles.includes(r)) return r;
  return undefined;
}

export class SignIn {
  private readonly o: SignInOptions;
  private parsed: { from: unknown; users: Map<string, { hash: ParsedHash; role: Role }> } = { from: undefined, users: new Map() };
  private readonly guard: LoginGuard;

  constructor(o: SignInOptions) {
    this.o = o;
    this.guard = new LoginGuard(LOGIN_BACKOFF, o.clock);
  }

  /** The local users of api.users, parsed again when config apply replaced the section. */
  private get users(): Map<string, { hash: ParsedHash; role: Role }> {
    const from = this.o.current().api?.users;
    if (from !== this.parsed.from) {
      const users = new Map<string, { hash: ParsedHash; role: Role }>();
      // The schema refused anything but a valid hash, so parsing cannot fail here.
      for (const [name, u] of Object.entries(from ?? {})) users.set(name, { hash: parsePasswordHash(u.password)!, role: u.role });
      this.parsed = { from, users };
    }
    return this.parsed.users;
  }

  get entraConnection(): string | undefined {
    return this.o.current().api?.signin.entra?.connection;
  }

  redirectUri(): string {
    const { api, server } = this.o.current();
    return consoleRedirectUri(api, server);
  }

  private publicUrl(): string | undefined {
    return this.o.current().server?.publicUrl;
  }

  /** Checks a local user's password under the back-off; the session, or throws an MbError. */
  async local(name: string, password: string, ip: string): Promise<{ id: string; session: Session }> {
    const key = name.toLowerCase();
    const tickets: LoginTicket[] = [];
    for (const k of [`ip:${ip}`, `user:${key}`]) {
      const slot = await this.guard.acquire(k);
      if (!('success' in slot)) {
        for (const t of tickets) t.abandon();
        throw new MbError('MB_API_LOGIN_LOCKED', { seconds: Math.ceil(slot.lockedMs / 1000), failures: LOGIN_BACKOFF.maxFailures });
      }
      tickets.push(slot);
    }
    let ok: boolean;
    const u = this.users.get(name);
    try {
      ok = u ? await verifyPassword(password, u.hash) : await verifyNothing(password);
    } catch (err) {
      for (const t of tickets) t.abandon();
      throw err;
    }
    if (!ok || !u) {
      const results = tickets.map((t) => t.failure());
      const delayMs = Math.max(...results.map((r) => r.delayMs));
      await new Promise<void>((resolve) => this.o.clock.setTimer(delayMs, resolve));
      throw new MbError('MB_API_LOGIN_FAILED', {});
    }
    for (const t of tickets) t.success();
    return this.o.sessions.create(name, u.role, 'local');
  }

  setSessionCookie(req: FastifyRequest, reply: FastifyReply, id: string): void {
    reply.header('set-cookie', setCookie(SESSION_COOKIE, id, { secure: secureCookie(req, this.publicUrl()), maxAge: this.o.sessions.maxAgeSeconds }));
  }

  clearSessionCookie(req: FastifyRequest, reply: FastifyReply): void {
    reply.header('set-cookie', setCookie(SESSION_COOKIE, '', { secure: secureCookie(req, this.publicUrl()), maxAge: 0 }));
  }

  /** The routes under /api/v1/session (documented in the OpenAPI document like every other). */
  routes(): RouteSpec[] {
    const { sessions, audit } = this.o;
    const view = (user: string, roles: Role[], scopes: Iterable<string>, csrfToken: string | null) => ({ user, roles, scopes: [...scopes].sort(), csrfToken });
    return [
      sessionRoute.get('/api/v1/session', {
        summary: { en: 'Who is signed in, the role, scopes and the CSRF token of the session', de: 'Wer angemeldet ist, Rolle, Berechtigungen und CSRF-Token der Sitzung' },
        status: 200,
        response: sessionView,
        handler: async ({ caller, session }) =>
          session ? view(session.data.user, [session.data.role], caller.scopes, session.data.csrf) : view(caller.key, [], caller.scopes, null),
      }),
      sessionRoute.post<undefined, undefined, { user: string; password: string; next?: string | undefined; lang?: string | undefined }>('/api/v1/session', {
        public: true,
        summary: { en: 'Sign in with a local user (JSON, or the form of /login); sets the cookie mb_session', de: 'Anmelden mit einem lokalen Benutzer (JSON oder das Formular von /login); setzt das Cookie mb_session' },
        body: z.object({
          user: z.string().max(200).default(''),
          password: z.string().max(1024).default(''),
          next: z.string().max(2000).optional().meta({ description: 'Form only: the path to go to after signing in (default /console/)' }),
          lang: z.string().max(8).optional(),
        }),
        status: 201,
        response: sessionView,
        errors: [401, 429],
        audit: false,
        handler: async ({ body, req, reply }) => {
          const form = String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
          const lang = pageLang(req, body.lang);
          const name = body.user.trim();
          const who = `user:${name}`;
          try {
            const foreign = foreignOrigin(req, this.publicUrl());
            if (foreign) throw new MbError('MB_API_CSRF', { path: req.url.split('?')[0], problem: foreign });
            const { id, session } = await this.local(name, body.password, req.ip);
            // A session this browser had before ends: a new sign-in never continues an old ID.
            await sessions.delete(cookieValue(req.headers.cookie, SESSION_COOKIE));
            await audit.write({ who, action: 'sign-in', target: req.ip, status: 201 });
            req.log.info({ user: name, ip: req.ip }, 'console sign-in');
            this.setSessionCookie(req, reply, id);
            if (form) return reply.header('cache-control', 'no-store').redirect(safeNext(body.next), 303);
            return view(session.user, [session.role], sessionCaller(session).scopes, session.csrf);
          } catch (err) {
            const e = toMbError(err);
            await audit.write({ who, action: 'sign-in', target: req.ip, status: e.http, code: e.code });
            // One line per refusal with name and address (what fail2ban and the like match on); never the password.
            req.log.warn({ code: e.code, user: name, ip: req.ip }, 'console sign-in refused');
            if (e.code === 'MB_API_LOGIN_LOCKED') reply.header('retry-after', String(e.params.seconds));
            if (!form) throw e;
            return reply
              .code(e.http)
              .header('cache-control', 'no-store')
              .type('text/html; charset=utf-8')
              .send(loginPage(lang, { entra: this.entraConnection !== undefined, local: this.users.size > 0, error: e, user: name, next: body.next }));
          }
        },
      }),
      sessionRoute.delete('/api/v1/session', {
        summary: { en: 'Sign out: ends the session and deletes the cookie', de: 'Abmelden: beendet die Sitzung und löscht das Cookie' },
        status: 204,
        audit: false,
        handler: async ({ session, caller, req, reply }) => {
          if (!session) return undefined;
          await sessions.delete(session.id);
          await audit.write({ who: caller.key, action: 'sign-out', status: 204 });
          this.clearSessionCookie(req, reply);
          return undefined;
        },
      }),
    ];
  }

  /** GET /login, /login/entra and its callback, on the gateway's root. */
  pages(http: FastifyInstance): void {
    http.get(LOGIN_PATH, async (req, reply) => {
      const q = req.query as { lang?: string; next?: string };
      const lang = pageLang(req, q.lang);
      return html(reply, 200, lang).send(loginPage(lang, { entra: this.entraConnection !== undefined, local: this.users.size > 0, next: q.next }));
    });

    http.get(ENTRA_LOGIN_PATH, async (req, reply) => {
      const lang = pageLang(req, (req.query as { lang?: string }).lang);
      try {
        const connection = this.entraConnection;
        if (!connection || !this.o.identity) throw new MbError('MB_API_SIGNIN_NOT_CONFIGURED', { connection: connection ?? '—' });
        const id = await this.o.identity();
        if (!id.connections().includes(connection)) throw new MbError('MB_API_SIGNIN_NOT_CONFIGURED', { connection });
        const { url, state } = await id.beginConsoleSignIn(connection, this.redirectUri());
        reply.header('set-cookie', setCookie(STATE_COOKIE, state, { secure: secureCookie(req, this.publicUrl()), sameSite: 'Lax', maxAge: 900, path: ENTRA_LOGIN_PATH }));
        return reply.header('cache-control', 'no-store').redirect(url, 302);
      } catch (err) {
        const e = toMbError(err);
        req.log.warn({ code: e.code }, 'console sign-in with Entra ID could not start');
        return html(reply, e.http, lang).send(loginPage(lang, { entra: false, local: this.users.size > 0, error: e }));
      }
    });

    http.get(ENTRA_CALLBACK_PATH, async (req, reply) => {
      const lang = pageLang(req);
      const q = req.query as Record<string, string | undefined>;
      const secure = secureCookie(req, this.publicUrl());
      const cookies: string[] = [setCookie(STATE_COOKIE, '', { secure, sameSite: 'Lax', maxAge: 0, path: ENTRA_LOGIN_PATH })];
      let signedIn: ConsoleSignIn | undefined;
      try {
        // The state must be the one this browser started with: otherwise an attacker's own
        // redirect (with the attacker's code) would sign the victim in as the attacker.
        const bound = cookieValue(req.headers.cookie, STATE_COOKIE);
        if (!q.state || bound !== q.state || !this.o.identity) throw new MbError('MB_SIGNIN_STATE_UNKNOWN', { minutes: 15 });
        signedIn = await (await this.o.identity()).completeConsoleSignIn({ state: q.state, code: q.code, error: q.error, error_description: q.error_description });
        const role = roleFrom(signedIn.roles);
        if (!role) throw new MbError('MB_API_SIGNIN_NO_ROLE', { account: signedIn.account, connection: signedIn.connection });
        const { id } = await this.o.sessions.create(signedIn.account, role, 'entra');
        await this.o.audit.write({ who: `user:${signedIn.account}`, action: 'sign-in', target: `entra:${signedIn.connection} ${req.ip}`, status: 201 });
        cookies.push(setCookie(SESSION_COOKIE, id, { secure, maxAge: this.o.sessions.maxAgeSeconds }));
        return html(reply, 200, lang).header('set-cookie', cookies).send(continuePage(lang));
      } catch (err) {
        const e = toMbError(err);
        const who = signedIn ? `user:${signedIn.account}` : 'anonymous';
        await this.o.audit.write({ who, action: 'sign-in', target: `entra:${this.entraConnection ?? ''} ${req.ip}`, status: e.http, code: e.code });
        req.log.warn({ code: e.code, details: e.details }, 'console sign-in with Entra ID failed');
        return html(reply, e.http, lang).header('set-cookie', cookies).send(loginPage(lang, { entra: this.entraConnection !== undefined, local: this.users.size > 0, error: e }));
      }
    });
  }
}

function html(reply: FastifyReply, status: number, lang: Lang): FastifyReply {
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .header('content-language', lang)
    .header('cache-control', 'no-store')
    // same-origin, not no-referrer: under no-referrer Chromium sends `Origin: null` with the form's
    // POST, which the origin check (csrf.ts) rightly refuses, so no one could sign in from a browser.
    .header('referrer-policy', 'same-origin')
    .header('x-frame-options', 'DENY')
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'");
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const T = {
  en: {
    title: 'Sign in to mailbridge',
    user: 'User name',
    password: 'Password',
    submit: 'Sign in',
    entra: 'Sign in with Microsoft Entra ID',
    or: 'or with a local mailbridge user:',
    none: 'No way to sign in is set up. On the mailbridge host, create a local admin user with: mailbridge api user set <name> --role admin — or set api.signin.entra.connection in mailbridge.yaml.',
    fix: 'Fix',
    other: 'Deutsch',
    continue: 'Signed in. Continue to the console',
  },
  de: {
    title: 'Bei mailbridge anmelden',
    user: 'Benutzername',
    password: 'Kennwort',
    submit: 'Anmelden',
    entra: 'Mit Microsoft Entra ID anmelden',
    or: 'oder mit einem lokalen mailbridge-Benutzer:',
    none: 'Es ist keine Anmeldung eingerichtet. Legen Sie auf dem mailbridge-Host einen lokalen Admin-Benutzer an: mailbridge api user set <name> --role admin — oder setzen Sie api.signin.entra.connection in mailbridge.yaml.',
    fix: 'Behebung',
    other: 'English',
    continue: 'Angemeldet. Weiter zur Konsole',
  },
} as const;

const STYLE =
  'body{font:16px/1.5 system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem}h1{font-size:1.4rem}label{display:block;margin-top:1rem;font-weight:600}' +
  'input{width:100%;box-sizing:border-box;padding:.5rem;font:inherit}button,.entra{display:inline-block;margin-top:1.2rem;padding:.55rem 1.2rem;font:inherit;cursor:pointer}' +
  '.error{border-left:4px solid #a4262c;padding:.2rem .8rem;background:#fde7e9}:focus-visible{outline:3px solid #005a9e;outline-offset:2px}nav{text-align:right}';

export function loginPage(lang: Lang, o: { entra: boolean; local: boolean; error?: MbError; user?: string; next?: string | undefined }): string {
  const t = T[lang];
  const other: Lang = lang === 'de' ? 'en' : 'de';
  const err = o.error?.explain(lang);
  const parts: string[] = [];
  if (err) {
    parts.push(`<div class="error" role="alert" id="login-error"><p><strong>${esc(err.code)}: ${esc(err.title)}</strong></p><p>${esc(err.cause)}</p><p>${t.fix}: ${esc(err.fix)}</p></div>`);
  }
  if (o.entra) parts.push(`<p><a class="entra" href="${ENTRA_LOGIN_PATH}?lang=${lang}">${t.entra}</a></p>`);
  if (o.local) {
    if (o.entra) parts.push(`<p>${t.or}</p>`);
    const described = err ? ' aria-describedby="login-error"' : '';
    parts.push(
      `<form method="post" action="/api/v1/session">` +
        `<input type="hidden" name="lang" value="${lang}">` +
        (o.next ? `<input type="hidden" name="next" value="${esc(safeNext(o.next))}">` : '') +
        `<label for="user">${t.user}</label><input id="user" name="user" autocomplete="username" required${described} value="${esc(o.user ?? '')}"${o.user ? '' : ' autofocus'}>` +
        `<label for="password">${t.password}</label><input id="password" name="password" type="password" autocomplete="current-password" required${o.user ? ' autofocus' : ''}>` +
        `<button type="submit">${t.submit}</button></form>`,
    );
  }
  if (!o.entra && !o.local) parts.push(`<p>${esc(t.none)}</p>`);
  return `<!doctype html>
<html lang="${lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${t.title}</title><style>${STYLE}</style></head>
<body><nav><a href="${LOGIN_PATH}?lang=${other}" hreflang="${other}" lang="${other}">${t.other}</a></nav><main><h1>${t.title}</h1>${parts.join('')}</main></body></html>`;
}

/** After the Entra callback: a same-site step to the console, so the SameSite=Strict cookie goes with it. */
function continuePage(lang: Lang): string {
  const t = T[lang];
  return `<!doctype html>
<html lang="${lang}"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${CONSOLE_PATH}"><meta name="mailbridge-signin" content="ok"><title>${t.title}</title><style>${STYLE}</style></head>
<body><main><p><a href="${CONSOLE_PATH}">${t.continue}</a></p></main></body></html>`;
}
