/**
 * The frame of every console page: skip link, header with the navigation (a landmark with the
 * current page marked), the language switch, the main region whose live parts are replaced when
 * an update arrives, and a polite status line that screen readers announce. Also the pieces pages
 * share: a state badge (colour plus a word, never colour alone) and a problem with its MB code,
 * cause, fix, copy buttons for the fix's commands and the link to the error's documentation.
 * The console's texts are data: this frame's in layout.texts.json, each page's in
 * pages/<module>.texts.json, beside the code that shows them.
 */
import { textsOf, type Lang, type Text } from '../i18n/index.ts';
import { html, raw, type Html } from './html.ts';
import type { ApiError } from './request.ts';
import texts from './layout.texts.json' with { type: 'json' };

export const PAGES = [
  { id: 'overview', path: '/console/' },
  { id: 'queue', path: '/console/queue' },
  { id: 'connectors', path: '/console/connectors' },
  { id: 'watchers', path: '/console/watchers' },
  { id: 'subscriptions', path: '/console/subscriptions' },
  { id: 'config', path: '/console/config' },
  { id: 'audit', path: '/console/audit' },
  { id: 'setup', path: '/console/setup' },
] as const;

export type PageId = (typeof PAGES)[number]['id'];

export type State = 'green' | 'amber' | 'red';

export const t = textsOf(texts.frame);
const pageLabel = textsOf(texts.pages);

/**
 * The texts a page's script shows, in the page's language: its own table's and those every script
 * shares with the pages (copy buttons, a problem's cause, fix and documentation link).
 */
export function scriptTexts(table: Record<string, Text>, lang: Lang): Record<string, string> {
  const shared = (['copy', 'copyWhat', 'cause', 'fix', 'more'] as const).map((k) => [k, t(k, lang)]);
  return Object.fromEntries([...shared, ...Object.entries(table).map(([k, v]) => [k, v[lang]])]);
}

/** A time as the tables show it (UTC, short date, seconds), – for none. */
export function when(iso: string | undefined, lang: Lang): string {
  return iso ? new Date(iso).toLocaleString(lang === 'de' ? 'de-DE' : 'en-GB', { dateStyle: 'short', timeStyle: 'medium', timeZone: 'UTC' }) + ' UTC' : '–';
}

/** Why a page has no data: the capability is not configured in this gateway, or the API's problem. */
export function refused(e: { error?: ApiError; notConfigured?: boolean }, lang: Lang, notConfigured = t('notConfigured', lang)): Html {
  return e.notConfigured ? html`<p>${notConfigured}</p>` : problem(e.error!, lang, 3);
}

export function badge(state: State, lang: Lang): Html {
  return html`<span class="badge badge-${state}">${t(state, lang)}</span>`;
}

/** Commands in a fix: what the catalogue writes between backticks (PowerShell lines, mailbridge commands). */
export function commandsOf(fix: string): string[] {
  return [...fix.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
}

export function copyButton(text: string, lang: Lang, label = t('copyWhat', lang)): Html {
  return html`<button type="button" class="copy" data-copy="${text}" aria-label="${label}: ${text}">${t('copy', lang)}</button>`;
}

/** One MB problem: code, title, cause, fix (commands copyable) and the link to its documentation page. */
export function problem(e: ApiError, lang: Lang, headingLevel: 3 | 4 = 4): Html {
  const commands = commandsOf(e.fix);
  const heading = headingLevel === 3 ? html`<h3>${e.title}</h3>` : html`<h4>${e.title}</h4>`;
  return html`<div class="problem" data-code="${e.code}">
  ${heading}
  <dl>
    <dt>${t('code', lang)}</dt><dd><code>${e.code}</code> <a href="/docs/${lang}/errors/${e.code}">${t('more', lang, { code: e.code })}</a></dd>
    <dt>${t('cause', lang)}</dt><dd>${e.cause}</dd>
    <dt>${t('fix', lang)}</dt><dd class="fix">${e.fix}${commands.length ? html`<ul class="commands">${commands.map((c) => html`<li><code>${c}</code> ${copyButton(c, lang)}</li>`)}</ul>` : ''}</dd>
  </dl>
</div>`;
}

export interface PageOptions {
  lang: Lang;
  page: PageId | 'signin';
  title: string;
  /** Path and query of this page, for the language switch's way back. */
  path: string;
  body: Html;
  /** Live update topics this page follows (GET /api/v1/stream?topics=…); none: no stream. */
  topics?: readonly string[];
  /** JSON the page's script reads (texts, IDs), put in a non-executed script element. */
  data?: Record<string, unknown>;
  /** The signed-in person (none for an API key): shown with the sign-out button. */
  person?: { user: string; roles: string[] } | undefined;
}

export function layout(o: PageOptions): Html {
  const other: Lang = o.lang === 'en' ? 'de' : 'en';
  const back = encodeURIComponent(o.path);
  const data = o.data ? JSON.stringify(o.data).replace(/</g, '\\u003c') : undefined;
  return html`<!doctype html>
<html lang="${o.lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${o.title} &ndash; mailbridge</title>
<link rel="stylesheet" href="/console/assets/console.css">
<script src="/console/assets/console.js" defer></script>
</head>
<body>
<a class="skip" href="#main">${t('skip', o.lang)}</a>
<header class="top">
  <p class="brand"><a href="/console/">mailbridge</a></p>
  <nav aria-label="${t('nav', o.lang)}">
    <ul>${PAGES.map((p) => html`<li><a href="${p.path}"${p.id === o.page ? html` aria-current="page"` : ''}>${pageLabel(p.id, o.lang)}</a></li>`)}</ul>
  </nav>
  ${o.person ? html`<p class="who">${t('signedIn', o.lang, { user: o.person.user, role: o.person.roles.join(', ') })} <button type="button" data-signout>${t('signOut', o.lang)}</button></p>` : ''}
  <p class="lang"><a href="/console/lang?to=${other}&amp;back=${back}" hreflang="${other}" lang="${other}" title="${t('otherLang', o.lang)}">${t('other', o.lang)}</a></p>
</header>
<main id="main" tabindex="-1"${o.topics?.length ? html` data-topics="${o.topics.join(',')}"` : ''}>
<h1>${o.title}</h1>
${o.body}
</main>
<div id="status" class="status" role="status" aria-live="polite"></div>
<footer><a href="/api/reference?lang=${o.lang}">${t('api', o.lang)}</a> · <a href="/docs/${o.lang}/">${t('docs', o.lang)}</a></footer>
${data ? html`<script type="application/json" id="page-data">${raw(data)}</script>` : ''}
</body>
</html>
`;
}

