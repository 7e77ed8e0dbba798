/**
 * MbError: the single error type that crosses module boundaries. It carries a catalogue code and
 * the parameters for its texts; rendering (language, CLI vs. API) happens at the edge.
 *
 * Secrets never reach an MbError: parameters are scrubbed of every registered secret value when
 * the error is built, so even a careless `String(err)` cannot leak one.
 */
import { format, type Lang, type Text } from '../i18n/index.ts';
import { scrub } from '../log/redact.ts';
import { catalogue, entryFor, type MbCode } from './catalogue.ts';
import { detailLabels } from './entries/details.ts';

export { catalogue, type MbCode } from './catalogue.ts';

/** A Text value is a phrase in the admin's language ("relay route x" / "Relay-Route x"), chosen when rendered. */
export type ErrorParams = Record<string, string | number | boolean | undefined | Text>;

export interface Explanation {
  code: string;
  title: string;
  cause: string;
  fix: string;
  /** Extra facts an admin may need to quote to Microsoft support (trace IDs and the like). */
  details?: Record<string, string>;
}

export class MbError extends Error {
  readonly code: MbCode;
  readonly params: ErrorParams;
  readonly details: Record<string, string>;

  constructor(code: MbCode, params: ErrorParams = {}, options: { cause?: unknown; details?: Record<string, string> } = {}) {
    const clean = scrubParams(params);
    const en = inLang(clean, 'en');
    super(`${code}: ${format(catalogue[code].title.en, en)}: ${format(catalogue[code].cause.en, en)}`, {
      cause: options.cause,
    });
    this.name = 'MbError';
    this.code = code;
    this.params = clean;
    this.details = Object.fromEntries(Object.entries(options.details ?? {}).map(([k, v]) => [k, scrub(v)]));
  }

  get http(): number {
    return catalogue[this.code].http;
  }

  explain(lang: Lang = 'en'): Explanation {
    return explain(this.code, this.params, lang, this.details);
  }
}

export function explain(code: string, params: ErrorParams, lang: Lang, details?: Record<string, string>): Explanation {
  const entry = entryFor(code) ?? catalogue.MB_INTERNAL;
  const p = inLang(scrubParams(params), lang);
  const out: Explanation = {
    code,
    title: format(entry.title[lang], p),
    cause: format(entry.cause[lang], p),
    fix: format(entry.fix[lang], p),
  };
  if (details && Object.keys(details).length > 0) out.details = details;
  return out;
}

/** Any thrown value → MbError, so the edges have one shape to render. */
export function toMbError(err: unknown): MbError {
  if (err instanceof MbError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new MbError('MB_INTERNAL', { detail }, { cause: err });
}

/** Text block for terminals and logs: code and title, then cause and fix on their own lines. */
export function renderText(e: Explanation, lang: Lang): string {
  const label = lang === 'de' ? { cause: 'Ursache', fix: 'Behebung' } : { cause: 'Cause', fix: 'Fix' };
  const lines = [`${e.code}: ${e.title}`, `  ${label.cause}: ${e.cause}`, `  ${label.fix}: ${e.fix}`];
  for (const [k, v] of Object.entries(e.details ?? {})) lines.push(`  ${detailLabel(k, lang)}: ${v}`);
  return lines.join('\n');
}

/** The label a detail is shown under; unknown keys (header names such as request-id) as they are. */
export function detailLabel(key: string, lang: Lang): string {
  return detailLabels[key]?.[lang] ?? key;
}

function scrubParams(params: ErrorParams): ErrorParams {
  const out: ErrorParams = {};
  for (const [k, v] of Object.entries(params)) out[k] = typeof v === 'string' ? scrub(v) : typeof v === 'object' ? { en: scrub(v.en), de: scrub(v.de) } : v;
  return out;
}

function inLang(params: ErrorParams, lang: Lang): Record<string, string | number | boolean | undefined> {
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, typeof v === 'object' ? v[lang] : v]));
}
