/**
 * The sandbox's sign-in pages (authorize, devicelogin, error), in English and German. They are
 * deliberately plain: an admin trying mailbridge without a tenant signs in here as a sandbox user,
 * and `EntraSandbox.signIn` drives the same forms in tests. A `<meta name="sandbox-page">` names
 * each page and `data-aadsts` carries the error code so tests do not scrape prose. Their texts are
 * in pages.texts.json beside this file.
 */
import { textsOf, type Lang } from '../../i18n/index.ts';
import texts from './pages.texts.json' with { type: 'json' };

export type PageText = keyof typeof texts;

export const t = textsOf(texts);

/** ui_locales / mkt (de-DE) first, then Accept-Language; German when it starts with "de". */
export function pageLang(explicit: string | undefined, acceptLanguage: string | undefined): Lang {
  const pick = explicit ?? acceptLanguage ?? 'en';
  return pick.trim().toLowerCase().startsWith('de') ? 'de' : 'en';
}

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

function layout(kind: string, lang: Lang, title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="${lang}"><head><meta charset="utf-8"><meta name="sandbox-page" content="${kind}">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>${esc(title)}</title>
<style>body{font-family:"Segoe UI",sans-serif;background:#f2f2f2;margin:0}main{background:#fff;max-width:440px;margin:8vh auto;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}
h1{font-size:24px;font-weight:600}input{display:block;width:100%;box-sizing:border-box;margin:8px 0 16px;padding:6px;font-size:15px}
button{padding:6px 20px;font-size:15px;margin-right:8px}.err{color:#e81123}.note{color:#666;font-size:12px;margin-top:32px}</style>
</head><body><main>
${body}
</main></body></html>`;
}

function errorLine(error?: { code: number; text: string }): string {
  return error ? `<p class="err" id="error" data-aadsts="${error.code}">${esc(error.text)}</p>` : '';
}

export function signInPage(o: {
  lang: Lang;
  action: string;
  hidden: Record<string, string>;
  appName: string;
  tenantName: string;
  loginHint?: string;
  error?: { code: number; text: string };
  confirm?: string;
}): string {
  const hidden = Object.entries(o.hidden)
    .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
    .join('');
  return layout(
    'signin',
    o.lang,
    t('signInTitle', o.lang),
    `<h1>${t('signInTitle', o.lang)}</h1>
<p>${esc(t('signInTo', o.lang, { app: o.appName }))}</p>
${o.confirm ? `<p>${esc(o.confirm)}</p>` : ''}
${errorLine(o.error)}
<form method="post" action="${esc(o.action)}">${hidden}
<label>${t('upn', o.lang)}<input name="login" type="email" autocomplete="username" value="${esc(o.loginHint ?? '')}"></label>
<label>${t('password', o.lang)}<input name="passwd" type="password" autocomplete="current-password"></label>
<button type="submit" name="action" value="signin">${t('signInButton', o.lang)}</button>
<button type="submit" name="action" value="cancel">${t('cancel', o.lang)}</button>
</form>
<p class="note">${esc(t('sandboxNote', o.lang, { tenant: o.tenantName }))}</p>`,
  );
}

export function errorPage(lang: Lang, error: { code: number; text: string }, trace: { traceId: string; correlationId: string; timestamp: string }): string {
  return layout(
    'error',
    lang,
    t('errorTitle', lang),
    `<h1>${t('errorTitle', lang)}</h1>
${errorLine(error)}
<p class="note">Request Id: ${esc(trace.traceId)}<br>Correlation Id: ${esc(trace.correlationId)}<br>Timestamp: ${esc(trace.timestamp)}</p>`,
  );
}

export function deviceCodePage(lang: Lang, action: string, message?: { code?: number; text: string }): string {
  const err = message ? `<p class="err" id="error"${message.code ? ` data-aadsts="${message.code}"` : ''}>${esc(message.text)}</p>` : '';
  return layout(
    'devicelogin',
    lang,
    t('deviceTitle', lang),
    `<h1>${t('deviceTitle', lang)}</h1>
<p>${t('deviceIntro', lang)}</p>
${err}
<form method="post" action="${esc(action)}"><input name="otc" autocomplete="off" maxlength="20">
<button type="submit">${t('next', lang)}</button></form>`,
  );
}

export function messagePage(kind: string, lang: Lang, text: string): string {
  return layout(kind, lang, text, `<p id="message">${esc(text)}</p>`);
}

/** response_mode=form_post: the browser posts code and state to the redirect URI. */
export function formPostPage(lang: Lang, redirectUri: string, fields: Record<string, string>): string {
  const inputs = Object.entries(fields)
    .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
    .join('');
  return layout(
    'form_post',
    lang,
    t('formPost', lang),
    `<form method="post" action="${esc(redirectUri)}" id="post">${inputs}<noscript><button type="submit">${t('formPost', lang)}</button></noscript></form>
<script>document.getElementById('post').submit()</script>`,
  );
}
