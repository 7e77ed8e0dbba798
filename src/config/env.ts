/**
 * Environment overrides: `MAILBRIDGE__<PATH>` with `__` between the path's parts overrides any value
 * of mailbridge.yaml, e.g. MAILBRIDGE__SERVER__PORT=9000 or MAILBRIDGE__CONNECTIONS__CONTOSO__CLIENTSECRET=….
 *
 * Strategy: parts are matched case-insensitively against the schema's keys; names under a record
 * (connection names) match the file's names case-insensitively, and a name new to the file that is
 * written all in capitals is taken in lower case. Values are read as YAML scalars (9000 is a number,
 * true a boolean), except where the schema expects text: there the text is taken as written (a
 * tenant ID 0123 stays "0123"), unless it is quoted. Secret fields are always taken verbatim. An
 * empty value removes the setting, so its default applies. Sections missing in the file start from
 * their schema default (MAILBRIDGE__STORE__PATH keeps driver: sqlite).
 * Limits: names of connections that differ only in case cannot be told apart.
 */
import { parse as parseYaml } from 'yaml';
import { basename } from 'node:path';
import { makeProblem, type ConfigProblem } from './problems.ts';
import { closest, defaultOf, isSecretSchema, kindOf, resolvePath, type AnySchema } from './schema-walk.ts';

export const ENV_PREFIX = 'MAILBRIDGE__';

export interface EnvOverrides {
  /** The raw configuration with the overrides applied (a copy; the input is left alone). */
  raw: Record<string, unknown>;
  /** Dotted path → the variable that set it. */
  fromEnv: Map<string, string>;
  /** Variables that name no setting. */
  problems: ConfigProblem[];
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function applyEnvOverrides(root: AnySchema, raw: unknown, env: NodeJS.ProcessEnv, file: string): EnvOverrides {
  const out: Record<string, unknown> = isPlainObject(raw) ? structuredClone(raw) : {};
  const fromEnv = new Map<string, string>();
  const problems: ConfigProblem[] = [];
  const names = Object.keys(env)
    .filter((n) => n.toUpperCase().startsWith(ENV_PREFIX) && env[n] !== undefined)
    .sort();
  for (const name of names) {
    const text = env[name]!;
    const given = name.slice(ENV_PREFIX.length).split('__');
    const r = resolvePath(root, given, out, { foldNewNames: true });
    if (!r.ok) {
      const at = r.segments.slice(0, r.at + 1);
      const field = at.join('.');
      const key = given[r.at] ?? '';
      const suggestion = r.reason === 'unknown' ? closest(key, r.known) : undefined;
      const params = { field, key, file: basename(file) };
      if (r.reason === 'name') problems.push(makeProblem('error', 'MB_CONFIG_BAD_NAME', field, { ...params, field: at.slice(0, -1).join('.'), found: JSON.stringify(key) }, { env: name }));
      else if (suggestion) problems.push(makeProblem('error', 'MB_CONFIG_KEY_TYPO', field, { ...params, suggestion }, { env: name }));
      else problems.push(makeProblem('error', 'MB_CONFIG_UNKNOWN_KEY', field, { ...params, allowed: r.known.join(', ') || '–' }, { env: name }));
      continue;
    }
    const leaf = r.schemas[r.schemas.length - 1]!;
    let parent = out;
    for (let i = 0; i < r.segments.length - 1; i++) {
      const seg = r.segments[i]!;
      // A list (notify.watch.groups.<g>.listeners) is entered by index, never replaced.
      if (!isPlainObject(parent[seg]) && !Array.isArray(parent[seg])) {
        const seed = defaultOf(r.schemas[i]!);
        parent[seg] = isPlainObject(seed) ? seed : {};
      }
      parent = parent[seg] as Record<string, unknown>;
    }
    const last = r.segments[r.segments.length - 1]!;
    if (text === '') delete parent[last];
    else parent[last] = envValue(text, leaf);
    fromEnv.set(r.segments.join('.'), name);
  }
  return { raw: out, fromEnv, problems };
}

function envValue(text: string, leaf: Parameters<typeof kindOf>[0]): unknown {
  if (isSecretSchema(leaf)) return text;
  const kind = kindOf(leaf);
  const quoted = /^(["']).*\1$/s.test(text);
  if ((kind === 'string' || kind === 'enum' || kind === 'literal') && !quoted) return text;
  try {
    return parseYaml(text) ?? text;
  } catch {
    return text;
  }
}
