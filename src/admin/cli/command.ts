import type { Lang, Text } from '../../i18n/index.ts';
import type { Output } from './output.ts';

/** What every command gets: its own arguments, the admin's language, scrubbed output, the config path. */
export interface CommandContext {
  args: string[];
  lang: Lang;
  out: Output;
  /** Path of mailbridge.yaml (from --config, MAILBRIDGE_CONFIG, or ./mailbridge.yaml). */
  configPath: string;
  env: NodeJS.ProcessEnv;
  /** Read one line from the terminal or stdin (for secrets: without echo on a terminal). */
  prompt(question: string, options?: { secret?: boolean }): Promise<string>;
  /** Resolves when the admin presses Ctrl-C (SIGINT) or the process gets SIGTERM. */
  stopSignal: Promise<string>;
}

export interface Command {
  name: string;
  summary: Text;
  /** Full help: usage line, subcommands and options, in both languages. */
  help: Text;
  /** Returns the process exit code. Throw MbError for failures an admin should read about. */
  run(ctx: CommandContext): Promise<number>;
}
