import { tr, type Lang, type Text } from '../../i18n/index.ts';
import { optionsHelp, type OptionDefs, type OptionValues } from './args.ts';
import type { Logger } from '../../log/index.ts';
import type { Output } from './output.ts';

/** What every command gets: its parsed command line, the admin's language, scrubbed output, the config path. */
export interface CommandContext<O extends OptionDefs = OptionDefs> {
  /** The arguments that are not options (subcommand, names), in order. */
  args: string[];
  /** The command's options, parsed and checked against its `options` (see args.ts). */
  opts: OptionValues<O>;
  lang: Lang;
  out: Output;
  /** Path of mailbridge.yaml (from --config, MAILBRIDGE_CONFIG, or ./mailbridge.yaml). */
  configPath: string;
  env: NodeJS.ProcessEnv;
  /** Read one line from the terminal or stdin (for secrets: without echo on a terminal). */
  prompt(question: string, options?: { secret?: boolean }): Promise<string>;
  /** Read all of stdin when it is piped (undefined on a terminal): multi-line secrets such as PEM keys. */
  readStdin(): Promise<string | undefined>;
  /**
   * The log of the libraries a command drives (identity, transports, sources). Silent unless asked
   * for with --log-format json or MAILBRIDGE_LOG_LEVEL: a command tells the admin what happened in
   * human lines in the chosen language, and does not repeat them as English JSON on stderr.
   */
  log: Logger;
  /** Resolves when the admin presses Ctrl-C (SIGINT) or the process gets SIGTERM. */
  stopSignal: Promise<string>;
}

export interface Command<O extends OptionDefs = OptionDefs> {
  name: string;
  summary: Text;
  /**
   * Help: usage line, subcommands and explanations, in both languages. `{options}` marks where the
   * option list goes; it is rendered from `options` (appended at the end when the mark is missing).
   */
  help: Text;
  /** Every option the command accepts; `--help` is always accepted. */
  options: O;
  /** Returns the process exit code. Throw MbError for failures an admin should read about. */
  run(ctx: CommandContext<O>): Promise<number>;
}

/** Keeps the option types of a command's definition for its `run`. */
export function defineCommand<O extends OptionDefs>(command: Command<O>): Command<O> {
  return command;
}

/** The full help of a command: its text with the option list rendered from its definitions. */
export function commandHelp(command: Command, lang: Lang): string {
  const text = tr(command.help, lang);
  const list = optionsHelp(command.options, lang);
  if (text.includes('{options}')) return text.replace('{options}', list);
  return list ? `${text}\n\n${list}` : text;
}
