/**
 * The admin API's configuration tools, bound to the whole schema the composition root assembles:
 * the running configuration with its secrets masked (as `mailbridge config show`), the check of a
 * candidate file (as `mailbridge config check`), and for the console's editor the file as written
 * with its secrets masked, and a candidate's masks resolved against that file.
 */
import { readFile } from 'node:fs/promises';
import type { ConfigTools } from '../api/context.ts';
import { analyzeText, resolveMasks, type Config } from '../app/config.ts';
import { configSchema } from '../app/schema.ts';
import { maskedConfig, maskedFileText } from '../config/masked.ts';
import { MbError } from '../errors/index.ts';

export interface ConfigToolsOptions {
  /** mailbridge.yaml; without it there is no file to show, and every mask in a candidate is unresolved. */
  configPath?: string | undefined;
  /** The gateway's environment (MAILBRIDGE_KEY seals typed secrets). */
  env?: NodeJS.ProcessEnv;
}

/** `config`: the running configuration, or how to read it when config apply may replace it. */
export function configTools(config: Config | (() => Config), box?: { reveal(stored: string, field?: string): string }, options: ConfigToolsOptions = {}): ConfigTools {
  const current = typeof config === 'function' ? config : () => config;
  const env = options.env ?? {};
  return {
    masked: () => maskedConfig(configSchema, current(), box),
    // The text alone: the environment overrides of the running gateway are no part of a candidate.
    check: (text, lang) => analyzeText(text, 'mailbridge.yaml', {}, { lang }),
    async file() {
      const path = options.configPath;
      if (path === undefined) throw new MbError('MB_API_NOT_CONFIGURED', { section: 'mailbridge.yaml', path: '/api/v1/config/file' });
      const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return '';
        throw new MbError('MB_CONFIG_UNREADABLE', { path, detail: err.message }, { cause: err });
      });
      return { path, text: maskedFileText(configSchema, text) };
    },
    resolve: (text, seal) => resolveMasks(options.configPath, text, env, { seal }),
  };
}
