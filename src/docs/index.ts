/**
 * The documentation served by the gateway: docs/<lang>/… rendered from Markdown to HTML on the
 * server, so an admin reads the guides and the page of an MB code (/docs/<lang>/errors/<CODE>,
 * linked from the console) where mailbridge runs, without outside network access.
 *
 * Strategies: pages are read from the docs/ folder beside src/ (or dist/) on each request (a few KB,
 * no cache to go stale after an upgrade); Markdown goes through `marked` with raw HTML escaped, so a
 * page shows text, never markup; links between pages drop their `.md` so they work in the browser
 * as on GitHub. Limits: only names of letters, digits, dots, dashes and underscores are looked up,
 * under docs/ and nowhere else; only Markdown pages and the JSON/YAML files next to them are served.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Marked, type Tokens } from 'marked';
import { LANGS, langFromHeader, type Lang } from '../i18n/index.ts';
import { PACKAGE_DIR } from '../util/paths.ts';

export const DOCS_ROOT = join(PACKAGE_DIR, 'docs');

const T = {
  en: { home: 'Documentation', errors: 'MB codes', other: 'Deutsch', skip: 'Skip to the content', notFound: 'No such page', notFoundText: 'There is no documentation page at this address.', missing: 'The documentation is not installed with this copy of mailbridge.' },
  de: { home: 'Dokumentation', errors: 'MB-Codes', other: 'English', skip: 'Zum Inhalt springen', notFound: 'Seite nicht gefunden', notFoundText: 'Unter dieser Adresse gibt es keine Dokumentationsseite.', missing: 'Die Dokumentation ist bei dieser Installation von mailbridge nicht dabei.' },
} satisfies Record<Lang, Record<string, string>>;

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const RAW: Record<string, string> = { '.json': 'application/json; charset=utf-8', '.yml': 'text/plain; charset=utf-8', '.yaml': 'text/plain; charset=utf-8' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** GitHub's heading anchors (lower case, spaces to dashes, punctuation dropped), so README-style links keep working. */
export function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/<[^>]*>/g, '')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .trim()
    .replace(/\s/g, '-');
}

/** A link of a page: `x.md` and `x.md#part` → `x`, `x#part`; a scheme other than http(s)/mailto is dropped. */
function linkTarget(href: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(href)) return /^(https?|mailto):/i.test(href) ? href : '#';
  // A folder's index.md is the folder itself (served with its slash): `index.md` → `./`, `errors/index.md` → `errors/`.
  const index = /(^|\/)index\.md(?=#|$)/.exec(href);
  if (index) return href.replace(index[0], index[1] || './');
  return href.replace(/\.md(?=#|$)/, '');
}

const marked = new Marked({
  gfm: true,
  walkTokens(token) {
    if (token.type === 'link' || token.type === 'image') (token as Tokens.Link).href = linkTarget((token as Tokens.Link).href);
  },
  renderer: {
    // Raw HTML in a page is shown as text: pages are Markdown, and markup in them is never trusted.
    html({ text }) {
      return escapeHtml(text);
    },
    heading({ tokens, depth, text }) {
      return `<h${depth} id="${escapeHtml(slug(text))}">${this.parser.parseInline(tokens)}</h${depth}>\n`;
    },
  },
});

export function renderMarkdown(markdown: string): string {
  return marked.parse(markdown, { async: false });
}

/** The whole HTML page around a rendered document: skip link, navigation, the other language. */
export function page(lang: Lang, title: string, body: string, otherHref: string): string {
  const t = T[lang];
  const other: Lang = lang === 'en' ? 'de' : 'en';
  return `<!doctype html>
<html lang="${lang}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} – mailbridge</title>
<style>
body{font-family:system-ui,sans-serif;max-width:62rem;margin:0 auto;padding:0 1rem 2rem;line-height:1.55;color:#1b1b1b;background:#fff}
a{color:#0b4f8a}a:focus{outline:3px solid #f2a900}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.3rem}
header nav ul{list-style:none;display:flex;gap:1.2rem;padding:0;margin:1rem 0;border-bottom:1px solid #ccc;padding-bottom:.6rem}
pre{background:#f4f4f4;padding:.6rem;overflow-x:auto;font-size:.9rem}code{font-size:.92em}
table{border-collapse:collapse;display:block;overflow-x:auto}th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
</style></head>
<body>
<a class="skip" href="#main">${t.skip}</a>
<header><nav aria-label="${t.home}"><ul>
<li><a href="/docs/${lang}/">${t.home}</a></li>
<li><a href="/docs/${lang}/errors/">${t.errors}</a></li>
<li><a href="${escapeHtml(otherHref)}" hreflang="${other}" lang="${other}">${t.other}</a></li>
</ul></nav></header>
<main id="main">
${body}
</main>
</body></html>
`;
}

function titleOf(markdown: string): string {
  return /^# (.+)$/m.exec(markdown)?.[1] ?? 'mailbridge';
}

async function readOrUndefined(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EISDIR') return undefined;
    throw err;
  }
}

export interface DocsOptions {
  /** The docs/ folder; default the one beside src/ (or dist/). */
  root?: string;
}

/** GET /docs, /docs/<lang>/ and /docs/<lang>/<page…> (and the JSON/YAML files under docs/). */
export async function docsRoutes(http: FastifyInstance, options: DocsOptions = {}): Promise<void> {
  const root = options.root ?? DOCS_ROOT;
  http.get('/docs', async (req, reply) => reply.redirect(`/docs/${langFromHeader(req.headers['accept-language'])}/`));
  http.get('/docs/*', async (req, reply) => {
    const rest = (req.params as { '*': string })['*'];
    const segments = rest.split('/');
    const dir = rest === '' || rest.endsWith('/');
    if (dir) segments.pop();
    const first = segments[0] ?? '';
    const lang: Lang = (LANGS as readonly string[]).includes(first) ? (first as Lang) : langFromHeader(req.headers['accept-language']);
    const notFound = (text: string) =>
      reply.code(404).header('content-type', 'text/html; charset=utf-8').send(page(lang, T[lang].notFound, `<h1>${T[lang].notFound}</h1>\n<p>${escapeHtml(text)}</p>`, `/docs/${lang === 'en' ? 'de' : 'en'}/`));
    if (segments.length === 0 || !segments.every((s) => SEGMENT.test(s))) return notFound(T[lang].notFoundText);

    const raw = Object.keys(RAW).find((ext) => rest.endsWith(ext));
    if (raw) {
      const text = await readOrUndefined(join(root, ...segments));
      return text === undefined ? notFound(T[lang].notFoundText) : reply.header('content-type', RAW[raw]).send(text);
    }
    if (!(LANGS as readonly string[]).includes(first)) return notFound(T[lang].notFoundText);
    const last = segments.at(-1)!.replace(/\.md$/, '');
    const base = [...segments.slice(0, -1), last];
    // A folder's page is its index.md; asked for without the slash, redirect, so that its relative links resolve.
    const file = dir ? join(root, ...segments, 'index.md') : join(root, ...base) + '.md';
    let markdown = await readOrUndefined(file);
    if (markdown === undefined && !dir && (await readOrUndefined(join(root, ...base, 'index.md'))) !== undefined) return reply.redirect(`/docs/${base.join('/')}/`);
    if (markdown === undefined) {
      const installed = (await readOrUndefined(join(root, lang, 'index.md'))) !== undefined;
      return notFound(installed ? T[lang].notFoundText : T[lang].missing);
    }
    if (segments.at(-1)!.endsWith('.md')) return reply.redirect(`/docs/${base.join('/')}`);
    const other: Lang = lang === 'en' ? 'de' : 'en';
    const otherHref = `/docs/${[other, ...(dir ? segments : base).slice(1)].join('/')}${dir ? '/' : ''}`;
    markdown = markdown.replace(/^<!--[^\n]*-->\n/, '');
    return reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-language', lang)
      .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")
      .send(page(lang, titleOf(markdown), renderMarkdown(markdown), otherHref));
  });
}
