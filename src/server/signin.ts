/**
 * The sign-in redirect: Entra ID sends the admin's browser back here after a delegated sign-in
 * (`flow: auth-code`) with `?code=…&state=…` (or `?error=…`). The route redeems the code through
 * identity (PKCE verifier and connection found by `state` in the store, so the link may have been
 * printed by another process: `mailbridge signin`) and answers a small page in the browser's
 * language. The page never shows the code, the tokens or the state.
 *
 * One GET route per distinct path of the auth-code connections' redirect URIs, plus the default
 * /oauth/callback. The Identity comes from the caller (the gateway's App opens it at the first
 * redirect when nothing else needed it; the CLI's temporary listener shares its own), and the caller
 * closes it.
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../app/config.ts';
import { detailLabel, toMbError } from '../errors/index.ts';
import { detectLang, type Lang } from '../i18n/index.ts';
import type { Identity } from '../identity/index.ts';

export interface SignInRoutesOptions {
  config: Config;
  /** The Identity that redeems the codes, asked for at each redirect. */
  identity: () => Promise<Identity>;
}

export const DEFAULT_CALLBACK_PATH = '/oauth/callback';

/** The paths the gateway must serve for the configured auth-code connections. */
export function callbackPaths(config: Config): string[] {
  const base = config.server.publicUrl ? config.server.publicUrl.replace(/\/+$/, '') : `http://localhost:${config.server.port}`;
  const paths = new Set([DEFAULT_CALLBACK_PATH]);
  for (const c of Object.values(config.connections)) {
    if (c.flow !== 'auth-code') continue;
    paths.add(new URL(c.redirectUri ?? `${base}${DEFAULT_CALLBACK_PATH}`).pathname);
  }
  return [...paths];
}

export async function signinRoutes(http: FastifyInstance, opts: SignInRoutesOptions): Promise<void> {
  for (const path of callbackPaths(opts.config)) {
    http.get(path, async (req, reply) => {
      const lang = detectLang(String(req.headers['accept-language'] ?? 'en').split(',')[0]);
      const q = req.query as Record<string, string | undefined>;
      reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').type('text/html; charset=utf-8');
      try {
        const id = await opts.identity();
        const result = await id.completeSignIn({ state: q.state, code: q.code, error: q.error, error_description: q.error_description });
        const notes = result.warnings.map((w) => w.explain(lang));
        return page(lang, 'ok', {
          title: lang === 'de' ? 'Anmeldung abgeschlossen' : 'Signed in',
          lines: [
            lang === 'de'
              ? `mailbridge verwendet für die Verbindung „${result.connection}“ jetzt das Konto ${result.account}.`
              : `mailbridge now uses the account ${result.account} for connection "${result.connection}".`,
            ...notes.map((n) => `${n.title}: ${n.cause} ${n.fix}`),
            lang === 'de' ? 'Sie können dieses Fenster schließen.' : 'You can close this window.',
          ],
        });
      } catch (err) {
        const e = toMbError(err);
        const ex = e.explain(lang);
        req.log.warn({ code: e.code, details: e.details }, 'sign-in redirect failed');
        reply.code(e.http);
        return page(lang, 'error', {
          title: `${ex.code}: ${ex.title}`,
          lines: [ex.cause, `${lang === 'de' ? 'Behebung' : 'Fix'}: ${ex.fix}`, ...Object.entries(ex.details ?? {}).map(([k, v]) => `${detailLabel(k, lang)}: ${v}`)],
        });
      }
    });
  }
}

function page(lang: Lang, kind: 'ok' | 'error', content: { title: string; lines: string[] }): string {
  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="${lang}"><head><meta charset="utf-8"><meta name="mailbridge-signin" content="${kind}"><title>mailbridge – ${esc(content.title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}h1{font-size:1.3rem}.error h1{color:#a4262c}.ok h1{color:#107c10}</style>
</head><body class="${kind}"><h1>${esc(content.title)}</h1>${content.lines.map((l) => `<p>${esc(l)}</p>`).join('')}</body></html>`;
}
