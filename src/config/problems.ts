/**
 * Problems in a configuration, as `mailbridge config check` reports them: each names the path in
 * the file, where it is (line and column, or the environment variable that set it), what is wrong
 * in plain words and the fix, in English and German.
 *
 * Strategy: every kind of mistake is a catalogue code (src/errors/entries/config.ts) with
 * language-neutral parameters; zod's issues are mapped onto those codes here. Values are quoted
 * back to the admin only where they are not secret, and never for unknown keys (a mistyped
 * `clientSecrte:` still holds a secret).
 */
import type { z } from 'zod';
import { basename } from 'node:path';
import { explain, type ErrorParams, type MbCode } from '../errors/index.ts';
import type { Lang, Text } from '../i18n/index.ts';
import { MASK } from '../log/redact.ts';
import { closest, isSecretSchema, knownKeys, resolvePath, secretSlots, unwrap, type AnySchema, type SecretSlot } from './schema-walk.ts';

export type Severity = 'error' | 'warning';

export interface ProblemLocation {
  /** 1-based line and column in the file. */
  line?: number;
  column?: number;
  /** The environment variable the value came from (MAILBRIDGE__SERVER__PORT). */
  env?: string;
}

export interface ConfigProblem extends ProblemLocation {
  severity: Severity;
  code: MbCode;
  /** Dotted path in the file, e.g. connections.contoso.tenantId ('' for the file as a whole). */
  path: string;
  params: ErrorParams;
  title: Text;
  /** What is wrong, in plain words. */
  message: Text;
  fix: Text;
}

export type Locate = (path: ReadonlyArray<PropertyKey>) => ProblemLocation;

export function makeProblem(severity: Severity, code: MbCode, path: string, params: ErrorParams, where: ProblemLocation = {}): ConfigProblem {
  const both = (part: 'title' | 'cause' | 'fix'): Text => ({ en: explain(code, params, 'en')[part], de: explain(code, params, 'de')[part] });
  return { severity, code, path, params: { ...params }, title: both('title'), message: both('cause'), fix: both('fix'), ...where };
}

/** "connections.contoso.tenantId (mailbridge.yaml, line 7, column 5)" in the admin's language. */
export function describeLocation(p: ConfigProblem, file: string, lang: Lang): string {
  if (p.env) return lang === 'de' ? `Umgebungsvariable ${p.env}` : `environment variable ${p.env}`;
  if (p.line !== undefined) {
    return lang === 'de' ? `${basename(file)}, Zeile ${p.line}, Spalte ${p.column ?? 1}` : `${basename(file)}, line ${p.line}, column ${p.column ?? 1}`;
  }
  return basename(file);
}

const dotted = (path: ReadonlyArray<PropertyKey>): string => path.map(String).join('.');

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Passwords inside URLs (http://user:password@proxy:3128) are masked wherever mailbridge quotes a
 * value back: such a URL is not a secret field, but its password is a secret.
 */
export function maskUrlPassword(text: string): string {
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s/]+@/gi, `$1${MASK}@`);
}

/** A value as the admin wrote it, short, for quoting back: text in quotes, lists in brackets. */
export function showValue(v: unknown): string {
  let s: string;
  if (typeof v === 'string') s = JSON.stringify(maskUrlPassword(v));
  else if (v === null || v === undefined) s = 'null';
  else if (Array.isArray(v)) s = `[${v.map((x) => (isPlainObject(x) || Array.isArray(x) ? '…' : showValue(x))).join(', ')}]`;
  else if (isPlainObject(v)) s = `{ ${Object.keys(v).join(', ')} }`;
  else s = String(v);
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
}

function valueAt(raw: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let v = raw;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

function secretAt(root: AnySchema, raw: unknown, path: ReadonlyArray<PropertyKey>): boolean {
  const r = resolvePath(root, path.filter((k): k is string => typeof k === 'string'), raw);
  return r.ok && r.schemas.length > 0 && isSecretSchema(r.schemas[r.schemas.length - 1]!);
}

function schemaAt(root: AnySchema, raw: unknown, path: ReadonlyArray<PropertyKey>): z.core.$ZodType | undefined {
  if (path.length === 0) return root;
  const r = resolvePath(root, path.map(String), raw);
  return r.ok ? r.schemas[r.schemas.length - 1] : undefined;
}

const list = (values: ReadonlyArray<unknown>): string => values.map((v) => String(v)).join(', ');

/** zod issues → problems, one per issue (one per key for unknown keys); `root` is the schema the issues came from. */
export function problemsFromIssues(root: AnySchema, issues: ReadonlyArray<z.core.$ZodIssue>, raw: unknown, file: string, locate: Locate): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const fileName = basename(file);
  for (const issue of issues) {
    const path = issue.path;
    const field = path.length ? dotted(path) : fileName;
    const value = valueAt(raw, path);
    const found = secretAt(root, raw, path) ? MASK : showValue(value);
    const add = (code: MbCode, params: ErrorParams, at: ReadonlyArray<PropertyKey> = path, f = field) =>
      out.push(makeProblem('error', code, at.length ? dotted(at) : '', { field: f, file: fileName, ...params }, locate(at)));
    switch (issue.code) {
      case 'invalid_type': {
        if (value === undefined) add('MB_CONFIG_REQUIRED', {});
        else if (value === null) add('MB_CONFIG_EMPTY', {});
        else {
          const leaf = schemaAt(root, raw, path);
          const isInt = leaf !== undefined && (unwrap(leaf).inner._zod.def as { format?: string }).format?.includes('int') === true;
          const code: MbCode =
            issue.expected === 'int' || (issue.expected === 'number' && isInt)
              ? 'MB_CONFIG_EXPECTED_INTEGER'
              : issue.expected === 'number'
                ? 'MB_CONFIG_EXPECTED_NUMBER'
                : issue.expected === 'boolean'
                  ? 'MB_CONFIG_EXPECTED_BOOLEAN'
                  : issue.expected === 'array' || issue.expected === 'tuple'
                    ? 'MB_CONFIG_EXPECTED_LIST'
                    : issue.expected === 'object' || issue.expected === 'record'
                      ? 'MB_CONFIG_EXPECTED_SECTION'
                      : 'MB_CONFIG_EXPECTED_TEXT';
          add(code, { found });
        }
        break;
      }
      case 'invalid_value':
        add('MB_CONFIG_NOT_ALLOWED', { found, allowed: list(issue.values) });
        break;
      case 'invalid_union': {
        const options = 'options' in issue ? issue.options : undefined;
        if (issue.discriminator && options) {
          // zod reports a bad discriminator at the union's path (store); the admin wrote store.driver.
          const at = path[path.length - 1] === issue.discriminator ? path : [...path, issue.discriminator];
          const v = valueAt(raw, at);
          const params = { allowed: list(options) };
          if (v === undefined || v === null) add('MB_CONFIG_REQUIRED_CHOICE', params, at, dotted(at));
          else add('MB_CONFIG_NOT_ALLOWED', { ...params, found: showValue(v) }, at, dotted(at));
        } else {
          add('MB_CONFIG_VALUE_INVALID', { detail: issue.message });
        }
        break;
      }
      case 'too_small': {
        const minimum = String(issue.minimum);
        if (issue.origin === 'number' || issue.origin === 'int' || issue.origin === 'bigint') add('MB_CONFIG_TOO_SMALL', { found, minimum });
        else if (Number(issue.minimum) <= 1) add('MB_CONFIG_EMPTY', {});
        else add('MB_CONFIG_TOO_SHORT', { minimum });
        break;
      }
      case 'too_big': {
        const maximum = String(issue.maximum);
        if (issue.origin === 'number' || issue.origin === 'int' || issue.origin === 'bigint') add('MB_CONFIG_TOO_BIG', { found, maximum });
        else add('MB_CONFIG_TOO_LONG', { maximum });
        break;
      }
      case 'invalid_format':
        if (issue.format === 'url') add('MB_CONFIG_BAD_URL', { found });
        else if (issue.format === 'date') add('MB_CONFIG_BAD_DATE', { found });
        else add('MB_CONFIG_BAD_FORMAT', { found, format: issue.format === 'regex' && issue.pattern ? issue.pattern : issue.format });
        break;
      case 'invalid_key':
        add('MB_CONFIG_BAD_NAME', { found: showValue(path[path.length - 1]) }, path, dotted(path.slice(0, -1)));
        break;
      case 'unrecognized_keys': {
        const parent = schemaAt(root, raw, path);
        const known = parent ? knownKeys(parent, value) : [];
        for (const key of issue.keys) {
          const at = [...path, key];
          const suggestion = closest(key, known);
          if (suggestion) add('MB_CONFIG_KEY_TYPO', { key, suggestion }, at, dotted(at));
          else add('MB_CONFIG_UNKNOWN_KEY', { key, allowed: list(known) }, at, dotted(at));
        }
        break;
      }
      case 'custom': {
        // A field that names its own code (e.g. the Graph base URL, src/m365/graph-url.ts).
        const p = issue.params as { mbCode?: MbCode; mbParams?: ErrorParams } | undefined;
        if (p?.mbCode) add(p.mbCode, { ...p.mbParams, found });
        else add('MB_CONFIG_VALUE_INVALID', { detail: issue.message });
        break;
      }
      default:
        add('MB_CONFIG_VALUE_INVALID', { detail: issue.message });
    }
  }
  // `tenantID:` gives two issues, an unknown key and a missing tenantId; the first says it all.
  const typos = new Set(out.filter((p) => p.code === 'MB_CONFIG_KEY_TYPO').map((p) => `${p.path.split('.').slice(0, -1).join('.')}.${String(p.params.suggestion)}`));
  return out.filter((p) => !(p.code === 'MB_CONFIG_REQUIRED' && typos.has(p.path.includes('.') ? p.path : `.${p.path}`)));
}

export interface CheckContext {
  file: string;
  now: Date;
  locate: Locate;
  /** Paths whose value came from the environment (no plain-text warning for those). */
  fromEnv: ReadonlyMap<string, string>;
}

/**
 * A check across a validated configuration that the schema alone cannot make (IDs, endpoints,
 * listeners on one port, pools over capacity). Each capability owns its checks; the composition
 * root hands them to the loader with the schema (src/app/config.ts), so config/ knows none of them.
 * A problem's severity says whether it stops loading (error) or is only reported (warning).
 */
export type ConfigCheck<C> = (config: C, ctx: CheckContext) => ConfigProblem[];

/** Warnings for a configuration that validated: secret fields written in the file as plain text. */
export function plainTextWarnings(root: AnySchema, config: unknown, ctx: CheckContext): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const slot of secretSlots(root, config)) {
    if (typeof slot.value === 'string' && !slot.value.startsWith('enc:') && !ctx.fromEnv.has(slot.path)) {
      out.push(makeProblem('warning', 'MB_CONFIG_SECRET_PLAINTEXT', slot.path, { field: slot.path }, ctx.locate(slot.segments)));
    }
  }
  return out;
}

export type { SecretSlot };
