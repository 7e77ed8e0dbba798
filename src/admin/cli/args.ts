/**
 * The one command-line parser of the `mailbridge` commands (node:util parseArgs underneath).
 *
 * A command declares its options once (type, value placeholder, help text in en + de, limits); the
 * same declaration parses the command line, types the values the command reads, and renders the
 * option list of its `--help`, so the help cannot drift from what is accepted. Every mistake (an
 * unknown option, a missing value, a number that is not one) becomes MB_CLI_USAGE in the admin's
 * language; main.ts prints it followed by the command's help.
 *
 * parseArgs runs with `strict: false` and `tokens: true` so that the checks, and their texts, are
 * ours: its own strict errors are English only and do not name the command.
 */
import { parseArgs } from 'node:util';
import { MbError } from '../../errors/index.ts';
import { format, type Lang, type Text } from '../../i18n/index.ts';

interface Common {
  /** One letter, e.g. 'c' for -c. */
  short?: string;
  help: Text;
}
export interface BooleanOption extends Common {
  type: 'boolean';
}
export interface StringOption extends Common {
  type: 'string';
  /** Placeholder shown in the help, e.g. FILE or { en: 'NAME', de: 'NAME' }. */
  value: string | Text;
  /** May be given more than once; the command gets every value in order. */
  multiple?: boolean;
  /** The accepted values, checked here. */
  choices?: readonly string[];
}
export interface IntegerOption extends Common {
  type: 'integer';
  value: string | Text;
  min?: number;
  max?: number;
}
export type OptionDef = BooleanOption | StringOption | IntegerOption;
export type OptionDefs = Record<string, OptionDef>;

type ValueOf<D extends OptionDef> = D extends BooleanOption
  ? boolean
  : D extends IntegerOption
    ? number | undefined
    : D extends { multiple: true }
      ? string[]
      : string | undefined;

/** The typed values of a command's options: booleans are false when absent, lists empty. */
export type OptionValues<O extends OptionDefs> = { [K in keyof O]: ValueOf<O[K]> };

export interface ParsedArgs<O extends OptionDefs> {
  options: OptionValues<O>;
  /** Arguments that are not options (subcommands, names), in order; everything after `--` too. */
  positionals: string[];
}

const T = {
  unknown: { en: 'unknown option {option}', de: 'unbekannte Option {option}' },
  needsValue: { en: '{option} needs a value ({value})', de: '{option} braucht einen Wert ({value})' },
  noValue: { en: '{option} takes no value', de: '{option} nimmt keinen Wert' },
  notInteger: { en: '{option} {given}: not a whole number', de: '{option} {given}: keine ganze Zahl' },
  range: { en: '{option} {given}: must be from {min} to {max}', de: '{option} {given}: muss zwischen {min} und {max} liegen' },
  atLeast: { en: '{option} {given}: must be at least {min}', de: '{option} {given}: muss mindestens {min} sein' },
  choice: { en: '{option} {given}: one of {choices}', de: '{option} {given}: erlaubt sind {choices}' },
  twice: { en: '{option} is given twice', de: '{option} ist doppelt angegeben' },
  unexpected: { en: 'unexpected argument {arg}', de: 'unerwartetes Argument {arg}' },
  noSubcommand: { en: 'Say what to do: {subs}.', de: 'Es fehlt, was getan werden soll: {subs}.' },
  unknownSubcommand: { en: 'Unknown subcommand: {sub} (expected {subs})', de: 'Unbekannter Unterbefehl: {sub} (erwartet: {subs})' },
  options: { en: 'Options:', de: 'Optionen:' },
} satisfies Record<string, Text>;

/** The usage error of a command, in the admin's language. */
export function usageError(command: string, lang: Lang, detail: Text, params: Record<string, unknown> = {}): MbError {
  return new MbError('MB_CLI_USAGE', { command, detail: format(detail[lang], params) });
}

/** The subcommand a command was given, if it is one of `subs`; else MB_CLI_USAGE naming them. */
export function subcommand<S extends string>(command: string, lang: Lang, given: string | undefined, subs: readonly S[]): S {
  if (given !== undefined && (subs as readonly string[]).includes(given)) return given as S;
  // en-GB: "check, schema or show", without the serial comma of en-US.
  const list = new Intl.ListFormat(lang === 'de' ? 'de' : 'en-GB', { type: 'disjunction' }).format(subs);
  throw given === undefined ? usageError(command, lang, T.noSubcommand, { subs: list }) : usageError(command, lang, T.unknownSubcommand, { sub: given, subs: list });
}

/** MB_CLI_USAGE for the first argument left over after those a command takes. */
export function noMoreArgs(command: string, lang: Lang, rest: readonly string[]): void {
  if (rest.length > 0) throw usageError(command, lang, T.unexpected, { arg: rest[0] });
}

function placeholder(def: StringOption | IntegerOption, lang: Lang): string {
  return typeof def.value === 'string' ? def.value : def.value[lang];
}

export function parseCommandLine<O extends OptionDefs>(command: string, defs: O, argv: string[], lang: Lang): ParsedArgs<O> {
  const { tokens } = parseArgs({
    args: argv,
    options: Object.fromEntries(
      Object.entries(defs).map(([name, d]) => [name, { type: d.type === 'boolean' ? 'boolean' : 'string', ...(d.short ? { short: d.short } : {}) }]),
    ),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const values: Record<string, unknown> = {};
  for (const [name, d] of Object.entries(defs)) {
    if (d.type === 'boolean') values[name] = false;
    else if (d.type === 'string' && d.multiple) values[name] = [];
  }
  const positionals: string[] = [];
  const fail = (detail: Text, params: Record<string, unknown>) => usageError(command, lang, detail, params);
  for (const t of tokens) {
    if (t.kind === 'positional') positionals.push(t.value);
    if (t.kind !== 'option') continue;
    const def = defs[t.name];
    const option = t.rawName.startsWith('--') ? t.rawName : `${t.rawName} (--${t.name})`;
    if (!def) throw fail(T.unknown, { option: t.rawName });
    if (def.type === 'boolean') {
      if (t.value !== undefined) throw fail(T.noValue, { option });
      values[t.name] = true;
      continue;
    }
    // A following option is not a value: `--from --to x` is a forgotten value, not the address "--to".
    if (t.value === undefined || (!t.inlineValue && t.value.startsWith('--'))) throw fail(T.needsValue, { option, value: placeholder(def, lang) });
    const given = t.value;
    if (def.type === 'integer') {
      if (!/^-?\d+$/.test(given.trim())) throw fail(T.notInteger, { option, given });
      const n = Number(given);
      if ((def.min !== undefined && n < def.min) || (def.max !== undefined && n > def.max)) {
        throw fail(def.max === undefined ? T.atLeast : T.range, { option, given, min: def.min ?? Number.MIN_SAFE_INTEGER, max: def.max });
      }
      if (values[t.name] !== undefined) throw fail(T.twice, { option });
      values[t.name] = n;
      continue;
    }
    if (def.choices && !def.choices.includes(given)) throw fail(T.choice, { option, given, choices: def.choices.join(' | ') });
    if (def.multiple) (values[t.name] as string[]).push(given);
    else if (values[t.name] !== undefined) throw fail(T.twice, { option });
    else values[t.name] = given;
  }
  return { options: values as OptionValues<O>, positionals };
}

/** The option list of a command's help, rendered from its definitions. */
export function optionsHelp(defs: OptionDefs, lang: Lang): string {
  const rows = Object.entries(defs).map(([name, d]) => {
    const short = d.short ? `-${d.short}, ` : '';
    const value = d.type === 'boolean' ? '' : ` ${placeholder(d, lang)}`;
    return [`${short}--${name}${value}`, d.help[lang]] as const;
  });
  if (rows.length === 0) return '';
  return [T.options[lang], ...helpColumns(rows, Math.max(...rows.map(([left]) => left.length)) + 2)].join('\n');
}

/**
 * Two columns of a help text, indented by two: the left one padded to `width`, the right one beside
 * it with its further lines under it. A left one that leaves less than two spaces puts its right one
 * on the next line, so the right column stays straight however long the left one is.
 */
export function helpColumns(rows: ReadonlyArray<readonly [left: string, right: string]>, width: number): string[] {
  const indent = ' '.repeat(2 + width);
  return rows.map(([left, right]) => {
    const text = right.split('\n').join(`\n${indent}`);
    return left.length <= width - 2 ? `  ${left.padEnd(width)}${text}` : `  ${left}\n${indent}${text}`;
  });
}
