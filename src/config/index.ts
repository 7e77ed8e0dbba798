/**
 * Loading mailbridge.yaml: read the file (a missing file means "all defaults"), apply environment
 * overrides (MAILBRIDGE__<PATH>, see env.ts), validate against the schema, run the checks the
 * schema cannot make. config/ knows no section by name: the schema of the whole file and the
 * capabilities' checks come as a ConfigModel from the composition root (src/app/config.ts, which
 * also offers these functions bound to mailbridge's model). Validation collects every error, not
 * just the first; each names the path in the file, where it is (line and column, or the
 * environment variable), what is wrong and the fix, in English and German (problems.ts).
 * `checkConfig` (what `mailbridge config check` runs) also opens the key file and every file the
 * configuration names (TLS certificates and keys), so neither fails only when serve starts.
 * Warnings (plain-text secrets found here; the model's checks add theirs, such as expiring client
 * secrets) do not stop loading.
 *
 * Secrets stay as stored (enc:v1:… or plain text) in the returned config; whoever needs one in
 * clear opens the SecretBox (secrets.ts) with `keyFile` and reveals it for a moment. Plain-text
 * secrets are registered with the log scrubber here, as soon as they are read.
 */
import { open, readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { isMap, isPair, isScalar, isSeq, type Node } from 'yaml';
import { MbError } from '../errors/index.ts';
import { detectLang, type Lang } from '../i18n/index.ts';
import type { Logger } from '../log/index.ts';
import { registerSecret } from '../log/redact.ts';
import type { z } from 'zod';
import { applyEnvOverrides } from './env.ts';
import { describeLocation, makeProblem, plainTextWarnings, problemsFromIssues, type CheckContext, type ConfigCheck, type ConfigProblem, type Locate, type ProblemLocation } from './problems.ts';
import { fileSlots, secretSlots, type AnySchema } from './schema-walk.ts';
import { isEncrypted, openSecretBox } from './secrets.ts';
import { parseForEdit } from './yaml-edit.ts';

export type { CheckContext, ConfigCheck, ConfigProblem, ProblemLocation } from './problems.ts';
export { describeLocation } from './problems.ts';

/** What a configuration file is: the schema of the whole file and the checks it cannot make itself. */
export interface ConfigModel<C> {
  schema: z.ZodType<C>;
  /** Run in order on a configuration that validated; their errors stop loading, their warnings are reported. */
  checks: ReadonlyArray<ConfigCheck<C>>;
}

export interface LoadedConfig<C> {
  config: C;
  /** Absolute or relative path the config came from, or undefined when no file exists. */
  path?: string;
  /** The key file for secrets: `secrets.keyFile` resolved against the config file's folder. */
  keyFile: string;
  /** Dotted paths whose value came from the environment → the variable that set it. */
  fromEnv: Map<string, string>;
  /** Warnings found while loading (see `checkConfig`). */
  warnings: ConfigProblem[];
}

export interface LoadOptions {
  /** Language of the thrown error's detail; default: the file's `lang`, else the environment (LANG). */
  lang?: Lang;
  /** "Today" for expiry warnings (tests). */
  now?: Date;
  /** Warnings are logged here (one line each, with code and path). */
  log?: Logger;
  /**
   * Errors of the model's checks the caller takes as warnings: `mailbridge setup` loads a
   * configuration whose app and credential it is about to create.
   */
  relax?: (problem: ConfigProblem) => boolean;
}

export interface CheckOptions extends LoadOptions {
  /**
   * Also try to decrypt every encrypted secret with the configured key (default true), so a wrong
   * or missing key shows up in `config check` and not at the first sign-in. Never creates a key.
   */
  verifySecrets?: boolean;
  /**
   * Also open every file the configuration names for mailbridge to read (default true: TLS
   * certificates and keys), so a missing one shows up in `config check` and not when serve starts.
   */
  verifyFiles?: boolean;
}

export interface ConfigReport<C> {
  errors: ConfigProblem[];
  warnings: ConfigProblem[];
  /** The validated configuration, when there are no errors. */
  config?: C;
  /** The file read, or undefined when it does not exist (defaults and environment only). */
  path?: string;
  /** The file asked for (for messages when it does not exist). */
  file: string;
  keyFile: string;
  fromEnv: Map<string, string>;
  /** The configuration as written plus environment overrides, before validation and defaults. */
  raw: Record<string, unknown>;
}

/** Load and validate; throws MB_CONFIG_INVALID (naming the first error and the count) on errors. */
export async function loadConfig<C>(model: ConfigModel<C>, path: string, env: NodeJS.ProcessEnv = process.env, options: LoadOptions = {}): Promise<LoadedConfig<C>> {
  const report = await analyzeConfig(model, path, env, options);
  if (report.errors.length || !report.config) throw invalid(report, langFor(report, env, options));
  for (const w of report.warnings) options.log?.warn({ code: w.code, path: w.path }, w.message.en);
  return { config: report.config, path: report.path, keyFile: report.keyFile, fromEnv: report.fromEnv, warnings: report.warnings };
}

/** Every error and warning of the configuration at `path` with the environment `env`; never throws for content. */
export async function checkConfig<C>(model: ConfigModel<C>, path: string, env: NodeJS.ProcessEnv = process.env, options: CheckOptions = {}): Promise<ConfigReport<C>> {
  const report = await analyzeConfig(model, path, env, options);
  if (options.verifySecrets !== false && report.errors.length === 0) report.errors.push(...(await verifySecrets(model.schema, report, env)));
  if (options.verifyFiles !== false && report.config) report.errors.push(...(await unreadableFiles(model.schema, report)));
  return report;
}

/** The key file path for a configuration file and its `secrets.keyFile` value. */
export function keyFileFor(configPath: string, keyFile: string = 'mailbridge.key'): string {
  return isAbsolute(keyFile) ? keyFile : resolve(dirname(resolve(configPath)), keyFile);
}

async function readSource(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MbError('MB_CONFIG_UNREADABLE', { path, detail: (err as Error).message }, { cause: err });
  }
}

async function analyzeConfig<C>(model: ConfigModel<C>, path: string, env: NodeJS.ProcessEnv, options: LoadOptions): Promise<ConfigReport<C>> {
  const text = await readSource(path);
  return analyzeText(model, text, path, env, options);
}

/** The pure part of loading: text of the file (undefined: no file) → report. For tests and tools with the text in hand. */
export function analyzeText<C>(model: ConfigModel<C>, text: string | undefined, file: string, env: NodeJS.ProcessEnv, options: LoadOptions = {}): ConfigReport<C> {
  const root: AnySchema = model.schema;
  const errors: ConfigProblem[] = [];
  let fileRaw: unknown = {};
  let locateInFile: Locate = () => ({});
  if (text !== undefined) {
    const { doc, lines, errors: syntax } = parseForEdit(text);
    if (syntax.length) {
      const fileName = basename(file);
      // The yaml package often reports one mistake twice at the same place.
      const seen = new Set<string>();
      for (const e of syntax) {
        if (seen.has(`${e.line}:${e.column}`)) continue;
        seen.add(`${e.line}:${e.column}`);
        errors.push(
          makeProblem('error', 'MB_CONFIG_YAML_SYNTAX', '', { file: fileName, line: e.line, column: e.column, detail: e.message }, { line: e.line, column: e.column }),
        );
      }
      return { errors, warnings: [], path: file, file, keyFile: keyFileFor(file), fromEnv: new Map(), raw: {} };
    }
    fileRaw = doc.toJS() ?? {};
    locateInFile = (p) => {
      const offset = offsetOf(doc.contents as Node | null, p);
      if (offset === undefined) return {};
      const pos = lines.linePos(offset);
      return { line: pos.line, column: pos.col };
    };
  }
  // Plain-text secrets exist in memory from here on: register them before anything can print them.
  for (const slot of secretSlots(root, fileRaw)) if (typeof slot.value === 'string' && !isEncrypted(slot.value)) registerSecret(slot.value);
  const overridden = applyEnvOverrides(root, fileRaw, env, file);
  errors.push(...overridden.problems);
  const raw = overridden.raw;
  for (const slot of secretSlots(root, raw)) if (typeof slot.value === 'string' && !isEncrypted(slot.value)) registerSecret(slot.value);

  const locate: Locate = (p) => {
    // The deepest path set from the environment that covers p wins over the file.
    for (let n = p.length; n > 0; n--) {
      const name = overridden.fromEnv.get(p.slice(0, n).map(String).join('.'));
      if (name) return { env: name };
    }
    return locateInFile(p);
  };
  // A file that is a list or a single value cannot take overrides; validate it as written.
  const isSection = typeof fileRaw === 'object' && fileRaw !== null && !Array.isArray(fileRaw);
  const input = isSection ? raw : fileRaw;
  const result = model.schema.safeParse(input, { reportInput: true });
  const keyFile = keyFileFor(file, keyFileSetting(raw));
  const base = { path: text === undefined ? undefined : file, file, keyFile, fromEnv: overridden.fromEnv, raw };
  if (!result.success) {
    errors.push(...problemsFromIssues(root, result.error.issues, input, file, locate));
    return { ...base, errors: inFileOrder(errors), warnings: [] };
  }
  const ctx: CheckContext = { file, now: options.now ?? new Date(), locate, fromEnv: overridden.fromEnv };
  const warnings = plainTextWarnings(root, result.data, ctx);
  // What the schema cannot see (IDs, endpoints, proxies, listeners on one port, pools over capacity):
  // errors here, so that serve refuses what config check refuses.
  for (const p of model.checks.flatMap((check) => check(result.data, ctx))) {
    if (p.severity === 'error' && options.relax?.(p)) warnings.push({ ...p, severity: 'warning' });
    else (p.severity === 'error' ? errors : warnings).push(p);
  }
  return { ...base, errors: inFileOrder(errors), warnings: inFileOrder(warnings), config: errors.length ? undefined : result.data };
}

/** Problems top to bottom as they appear in the file; those from the environment after them. */
function inFileOrder(problems: ConfigProblem[]): ConfigProblem[] {
  const placed = (p: ConfigProblem) => (p.line === undefined ? 1 : 0);
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => placed(a.p) - placed(b.p) || (a.p.line ?? 0) - (b.p.line ?? 0) || (a.p.column ?? 0) - (b.p.column ?? 0) || a.i - b.i)
    .map(({ p }) => p);
}

function keyFileSetting(raw: Record<string, unknown>): string | undefined {
  const s = raw.secrets;
  const k = typeof s === 'object' && s !== null ? (s as Record<string, unknown>).keyFile : undefined;
  return typeof k === 'string' && k !== '' ? k : undefined;
}

/** Offset in the file of the deepest existing node on the path: the key's position if there is one. */
function offsetOf(root: Node | null, path: ReadonlyArray<PropertyKey>): number | undefined {
  let node: Node | null = root;
  let best = root?.range?.[0];
  for (const k of path) {
    if (isMap(node)) {
      const pair = node.items.find((it) => isPair(it) && (isScalar(it.key) ? it.key.value : it.key) === k);
      if (!pair) break;
      const key = pair.key as Node | null;
      best = key?.range?.[0] ?? best;
      node = pair.value as Node | null;
    } else if (isSeq(node) && typeof k === 'number') {
      const item = node.items[k] as Node | undefined;
      if (!item) break;
      best = item.range?.[0] ?? best;
      node = item;
    } else {
      break;
    }
  }
  return best;
}

async function verifySecrets(root: AnySchema, report: ConfigReport<unknown>, env: NodeJS.ProcessEnv): Promise<ConfigProblem[]> {
  const slots = secretSlots(root, report.config ?? report.raw).filter((s) => isEncrypted(s.value));
  if (slots.length === 0) return [];
  const where = (p: string[]): ProblemLocation => {
    const name = report.fromEnv.get(p.join('.'));
    return name ? { env: name } : {};
  };
  let box;
  try {
    box = await openSecretBox({ keyFile: report.keyFile, env });
  } catch (err) {
    const e = err instanceof MbError ? err : undefined;
    if (!e) throw err;
    const at = env.MAILBRIDGE_KEY ? { env: 'MAILBRIDGE_KEY' } : where(['secrets', 'keyFile']);
    return [makeProblem('error', e.code, 'secrets.keyFile', e.params, at)];
  }
  const out: ConfigProblem[] = [];
  for (const slot of slots) {
    try {
      box.reveal(slot.value as string, slot.path);
    } catch (err) {
      if (!(err instanceof MbError)) throw err;
      out.push(makeProblem('error', err.code, slot.path, err.params, where(slot.segments)));
    }
  }
  return out;
}

/** Files the gateway will read that it cannot: missing, a folder, or not readable by this user. */
async function unreadableFiles(root: AnySchema, report: ConfigReport<unknown>): Promise<ConfigProblem[]> {
  const out: ConfigProblem[] = [];
  for (const slot of fileSlots(root, report.config)) {
    const path = slot.value as string;
    try {
      // Opened, not only looked at: the permission that counts is this process's read access.
      const handle = await open(path, 'r');
      const isFile = (await handle.stat()).isFile();
      await handle.close();
      if (!isFile) throw new Error('not a file');
    } catch (err) {
      const at = report.fromEnv.get(slot.path);
      out.push(makeProblem('error', 'MB_CONFIG_FILE_UNREADABLE', slot.path, { field: slot.path, path: resolve(path), detail: (err as Error).message }, at ? { env: at } : {}));
    }
  }
  return out;
}

function langFor(report: ConfigReport<unknown>, env: NodeJS.ProcessEnv, options: LoadOptions): Lang {
  if (options.lang) return options.lang;
  const l = report.raw.lang;
  return l === 'en' || l === 'de' ? l : detectLang(undefined, env);
}

function invalid(report: ConfigReport<unknown>, lang: Lang): MbError {
  const first = report.errors[0];
  if (!first) return new MbError('MB_INTERNAL', { detail: 'configuration invalid without a reported error' });
  const detail = `${first.message[lang]} ${first.fix[lang]} (${describeLocation(first, report.file, lang)})`;
  return new MbError('MB_CONFIG_INVALID', { path: report.file, count: report.errors.length, field: first.path || basename(report.file), detail });
}
