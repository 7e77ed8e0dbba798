/**
 * The web console under /console/: server-rendered HTML (one module per page in pages/, built with
 * the escaping template of html.ts, in English or German), one stylesheet and one plain script
 * (assets/: live updates over /api/v1/stream, copy buttons, list filters, the queue's buttons, the
 * config editor's validation as you type, the setup wizard). Nothing is fetched from elsewhere and
 * nothing is built at run time.
 *
 * Data comes from the admin API itself, called on the caller's behalf (request.ts), so the console
 * needs no permission logic of its own: whoever may not read a route sees its MB code, and an
 * unknown caller gets the sign-in page (401). Every page answers with a strict Content Security
 * Policy (no inline script, nothing from other origins) and is never cached.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Lang } from '../i18n/index.ts';
import { html, type Html } from './html.ts';
import { layout, problem } from './layout.ts';
import { configPage } from './pages/config.ts';
import { auditPage, connectorsPage, subscriptionsPage, watchersPage } from './pages/lists.ts';
import { overviewPage } from './pages/overview.ts';
import { messagePage, queuePage } from './pages/queue.ts';
import { setupPage } from './pages/setup.ts';
import { ctxOf, LANG_COOKIE, langOf, SignInNeeded, type Ctx } from './request.ts';
import { CODE_DIR } from '../util/paths.ts';

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const ASSETS: Record<string, { type: string; body: Buffer }> = Object.fromEntries(
  [
    ['console.js', 'text/javascript; charset=utf-8'],
    ['console.css', 'text/css; charset=utf-8'],
  ].map(([name, type]) => [name, { type: type!, body: readFileSync(join(CODE_DIR, 'console', 'assets', name!)) }]),
);

const SIGNIN = {
  title: { en: 'Sign in', de: 'Anmelden' },
  text: { en: 'The console shows what the admin API shows you. Sign in first.', de: 'Die Konsole zeigt, was die Admin-API Ihnen zeigt. Melden Sie sich zuerst an.' },
  link: { en: 'Sign in', de: 'Anmelden' },
} as const;

function send(reply: FastifyReply, page: Html, lang: Lang, status = 200): FastifyReply {
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-language', lang)
    .header('cache-control', 'no-store')
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'same-origin')
    .send(page.value);
}

function signInPage(ctx: Ctx, e: SignInNeeded): Html {
  const { lang } = ctx;
  const next = encodeURIComponent(ctx.path);
  return layout({
    lang,
    page: 'signin',
    title: SIGNIN.title[lang],
    path: ctx.path,
    body: html`<p>${SIGNIN.text[lang]}</p><p><a class="button" href="/login?next=${next}">${SIGNIN.link[lang]}</a></p>${problem(e.error, lang, 3)}`,
  });
}

/** Mounts the console on the gateway; `/` leads to it. */
export function registerConsole(http: FastifyInstance): void {
  const page = (url: string, render: (ctx: Ctx, req: FastifyRequest) => Promise<Html>) =>
    http.get(url, async (req, reply) => {
      const ctx = ctxOf(http, req);
      // Who is signed in (a session; an API key has none): the header shows them with sign-out.
      if (req.headers.cookie) {
        const me = await ctx.api<{ user: string; roles: string[] }>('/api/v1/session');
        if (me.ok) ctx.person = { user: me.body.user, roles: me.body.roles };
      }
      try {
        return send(reply, await render(ctx, req), ctx.lang);
      } catch (err) {
        if (err instanceof SignInNeeded) return send(reply, signInPage(ctx, err), ctx.lang, 401);
        throw err;
      }
    });

  http.get('/', async (_req, reply) => reply.redirect('/console/', 302));
  http.get('/console', async (_req, reply) => reply.redirect('/console/', 301));
  page('/console/', (ctx) => overviewPage(ctx));
  page('/console/queue', (ctx, req) => {
    const s = (req.query as { state?: string | string[] }).state;
    return queuePage(ctx, { state: Array.isArray(s) ? s.join(',') : s });
  });
  page('/console/queue/:id', (ctx, req) => messagePage(ctx, (req.params as { id: string }).id));
  page('/console/connectors', (ctx) => connectorsPage(ctx));
  page('/console/watchers', (ctx) => watchersPage(ctx));
  page('/console/subscriptions', (ctx) => subscriptionsPage(ctx));
  page('/console/config', (ctx) => configPage(ctx));
  page('/console/audit', (ctx, req) => auditPage(ctx, req.query as { who?: string }));
  page('/console/setup', (ctx) => setupPage(ctx));

  // The language switch: a cookie for a year, then back to the page (only within the console).
  http.get('/console/lang', async (req, reply) => {
    const q = req.query as { to?: string; back?: string };
    const to: Lang = q.to === 'de' ? 'de' : q.to === 'en' ? 'en' : langOf(req);
    const back = typeof q.back === 'string' && q.back.startsWith('/console/') && !q.back.startsWith('//') ? q.back : '/console/';
    const secure = req.protocol === 'https' ? '; Secure' : '';
    return reply.header('set-cookie', `${LANG_COOKIE}=${to}; Path=/; Max-Age=31536000; SameSite=Lax${secure}`).redirect(back, 303);
  });

  http.get('/console/assets/:name', async (req, reply) => {
    const a = ASSETS[(req.params as { name: string }).name];
    if (!a) return reply.code(404).send();
    return reply.header('content-type', a.type).header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').send(a.body);
  });
}
