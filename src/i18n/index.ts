/**
 * i18n: every text an admin reads exists in English and German.
 *
 * Texts are plain objects `{ en, de }` kept next to the code that uses them (commands, error entries),
 * so a missing translation is a type error, not a runtime surprise. A module whose texts are whole
 * tables of prose (console pages, sign-in pages, a command's option texts) keeps them as data in
 * `<module>.texts.json` beside it, imported `with { type: 'json' }` and read through `textsOf`, which
 * still rejects an entry without `de` (test/i18n/texts.test.ts checks every leaf of every such file).
 * `{name}` placeholders are filled by `format`.
 */
export const LANGS = ['en', 'de'] as const;
export type Lang = (typeof LANGS)[number];
export type Text = Record<Lang, string>;

/**
 * --lang wins, then LC_ALL, LC_MESSAGES, LANG (POSIX order); anything starting with "de" is German.
 * A variable set but empty counts as unset, as POSIX says (`LC_ALL= mailbridge …` is common).
 */
export function detectLang(explicit?: string, env: NodeJS.ProcessEnv = process.env): Lang {
  const pick = explicit || env.MAILBRIDGE_LANG || env.LC_ALL || env.LC_MESSAGES || env.LANG || 'en';
  return pick.toLowerCase().startsWith('de') ? 'de' : 'en';
}

export function format(template: string, params: Record<string, unknown> = {}): string {
  return template.replace(/\{(\w+)\}/g, (whole, key: string) =>
    key in params && params[key] !== undefined ? String(params[key]) : whole,
  );
}

export function tr(text: Text, lang: Lang, params?: Record<string, unknown>): string {
  return format(text[lang], params);
}

/** The lookup into one table of texts (a page's, a command's): the key's text in the language, placeholders filled. */
export function textsOf<K extends string>(table: Record<K, Text>): (key: K, lang: Lang, params?: Record<string, unknown>) => string {
  return (key, lang, params) => format(table[key][lang], params);
}

/** en or de from an Accept-Language header, honouring q-values; English when neither is asked for. */
export function langFromHeader(header: string | undefined): Lang {
  let best: { lang: Lang; q: number } | undefined;
  for (const part of (header ?? '').split(',')) {
    const [tag = '', ...rest] = part.trim().toLowerCase().split(';');
    const qp = rest.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qp ? Number(qp.slice(2)) : 1;
    const lang: Lang | undefined = tag.startsWith('de') ? 'de' : tag.startsWith('en') ? 'en' : undefined;
    if (lang && Number.isFinite(q) && q > 0 && (!best || q > best.q)) best = { lang, q };
  }
  return best?.lang ?? 'en';
}
