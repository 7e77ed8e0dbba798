#!/usr/bin/env node
/**
 * mailbridge CLI entry. Global options (--lang, --config, --help) are taken here; everything else
 * belongs to the command. Errors are rendered from the catalogue in the admin's language, and every
 * byte printed passes the secret scrubber (see output.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { detectLang, tr, type Lang } from '../../i18n/index.ts';
import { MbError, renderText, toMbError } from '../../errors/index.ts';
import { createOutput } from './output.ts';
import { createLogger, silentLogger } from '../../log/index.ts';
import { commandGroups, commands } from './commands/index.ts';
import { commandHelp, type Command, type CommandContext } from './command.ts';
import { parseCommandLine, usageError } from './args.ts';
import { PACKAGE_DIR } from '../../util/paths.ts';

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { rest, lang: langFlag, config, logFormat, missing } = takeGlobals(argv);
  const lang = detectLang(langFlag, env);
  const out = createOutput(lang);
  const name = rest[0];
  let command: Command | undefined;
  try {
    if (missing) throw usageError('', lang, { en: '{option} needs a value', de: '{option} braucht einen Wert' }, { option: missing });
    if (logFormat !== undefined && logFormat !== 'json') throw usageError('', lang, { en: '--log-format {v}: only json', de: '--log-format {v}: nur json' }, { v: logFormat });
    const asked = logFormat === 'json' || env.MAILBRIDGE_LOG_LEVEL !== undefined;
    if (!name || name === '--help' || name === '-h' || name === 'help') {
      out.line(await overview(lang));
      return 0;
    }
    if (name === '--version' || name === '-v') {
      out.line(`mailbridge ${version()}`);
      return 0;
    }
    const load = commands[name];
    if (!load) throw new MbError('MB_CLI_UNKNOWN_COMMAND', { command: name });
    command = await load();
    const args = rest.slice(1);
    if (args.includes('--help') || args.includes('-h')) {
      out.line(commandHelp(command, lang));
      return 0;
    }
    const parsed = parseCommandLine(command.name, command.options, args, lang);
    const ctx: CommandContext = {
      args: parsed.positionals,
      opts: parsed.options,
      lang,
      out,
      configPath: config ?? env.MAILBRIDGE_CONFIG ?? 'mailbridge.yaml',
      env,
      prompt,
      readStdin,
      log: asked ? createLogger({ level: env.MAILBRIDGE_LOG_LEVEL ?? 'warn' }) : silentLogger,
      stopSignal: stopSignal(),
    };
    return await command.run(ctx);
  } catch (err) {
    const e = toMbError(err);
    out.error(renderText(e.explain(lang), lang));
    if (e.code === 'MB_INTERNAL' && env.MAILBRIDGE_DEBUG) out.error(String((err as Error).stack));
    // One usage-error path for every command: what is wrong, then what the command accepts.
    if (e.code === 'MB_CLI_USAGE' && command) out.error(`\n${commandHelp(command, lang)}`);
    return e.code.startsWith('MB_CLI_') ? 2 : 1;
  }
}

/** The global options, wherever they stand; the rest belongs to the command and its parser. */
function takeGlobals(argv: string[]): { rest: string[]; lang?: string; config?: string; logFormat?: string; missing?: string } {
  const rest: string[] = [];
  let lang: string | undefined;
  let config: string | undefined;
  let logFormat: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--lang' || a === '--config' || a === '-c' || a === '--log-format') {
      const v = argv[++i];
      if (v === undefined) return { rest, lang, config, logFormat, missing: a };
      if (a === '--lang') lang = v;
      else if (a === '--log-format') logFormat = v;
      else config = v;
    } else if (a.startsWith('--lang=')) lang = a.slice(7);
    else if (a.startsWith('--config=')) config = a.slice(9);
    else if (a.startsWith('--log-format=')) logFormat = a.slice(13);
    else rest.push(a);
  }
  return { rest, lang, config, logFormat };
}

function version(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')) as { version: string }).version;
}

async function overview(lang: Lang): Promise<string> {
  const head =
    lang === 'de'
      ? 'mailbridge – Microsoft 365 und Exchange mit moderner Authentifizierung für jede Anwendung\n\nAufruf: mailbridge [--lang en|de] [--config DATEI] [--log-format json] <befehl> [optionen]'
      : 'mailbridge – Microsoft 365 and Exchange mail with modern authentication, for any application\n\nUsage: mailbridge [--lang en|de] [--config FILE] [--log-format json] <command> [options]';
  // One column for the summaries of every group.
  const width = Math.max(...Object.keys(commands).map((name) => name.length)) + 2;
  const groups = await Promise.all(
    commandGroups.map(async (g) => {
      const rows = await Promise.all(Object.entries(g.commands).map(async ([name, load]) => `  ${name.padEnd(width)}${tr((await load()).summary, lang)}`));
      return `\n${tr(g.title, lang)}:\n${rows.join('\n')}`;
    }),
  );
  const tail =
    lang === 'de'
      ? '\n`mailbridge <befehl> --help` zeigt die Optionen eines Befehls. Befehle melden sich in Sätzen; JSON-Protokollzeilen\nauf stderr nur mit --log-format json oder MAILBRIDGE_LOG_LEVEL (serve protokolliert immer).'
      : '\n`mailbridge <command> --help` shows the options of a command. Commands report in sentences; JSON log lines\non stderr only with --log-format json or MAILBRIDGE_LOG_LEVEL (serve always logs).';
  return [head, ...groups, tail].join('\n');
}

async function prompt(question: string, options: { secret?: boolean } = {}): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: Boolean(process.stdin.isTTY) });
  if (options.secret && process.stdin.isTTY) {
    // Echo nothing while a secret is typed.
    (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
      if (s.includes(question)) process.stderr.write(question);
    };
  } else if (!process.stdin.isTTY) {
    // Piped input: read the first line, print no prompt.
    return new Promise((resolve) => {
      let answered = false;
      rl.once('line', (l) => {
        answered = true;
        rl.close();
        resolve(l);
      });
      rl.once('close', () => {
        if (!answered) resolve('');
      });
    });
  }
  return new Promise((resolve) =>
    rl.question(question, (answer) => {
      rl.close();
      if (options.secret) process.stderr.write('\n');
      resolve(answer);
    }),
  );
}

/** All of stdin when it is piped or redirected; undefined on a terminal (then the command prompts). */
async function readStdin(): Promise<string | undefined> {
  if (process.stdin.isTTY) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The first Ctrl-C or SIGTERM asks the command to stop cleanly; a second one ends the process at
 * once. The listeners stay installed so that library hooks (Dovecot's runner) see that somebody
 * handles the signal and do not end the process themselves.
 */
function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    let seen = false;
    const on = (sig: string) => () => {
      if (seen) process.exit(130);
      seen = true;
      resolve(sig);
    };
    process.on('SIGINT', on('SIGINT'));
    process.on('SIGTERM', on('SIGTERM'));
  });
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
