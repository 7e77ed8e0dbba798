/**
 * The admin API's configuration tools, bound to the whole schema the composition root assembles:
 * the running configuration with its secrets masked (as `mailbridge config show`) and the check of
 * a candidate file (as `mailbridge config check`).
 */
import type { ConfigTools } from '../api/context.ts';
import { analyzeText, type Config } from '../app/config.ts';
import { configSchema } from '../app/schema.ts';
import { maskedConfig } from '../config/masked.ts';

/** `config`: the running configuration, or how to read it when config apply may replace it. */
export function configTools(config: Config | (() => Config), box?: { reveal(stored: string, field?: string): string }): ConfigTools {
  const current = typeof config === 'function' ? config : () => config;
  return {
    masked: () => maskedConfig(configSchema, current(), box),
    // The text alone: the environment overrides of the running gateway are no part of a candidate.
    check: (text, lang) => analyzeText(text, 'mailbridge.yaml', {}, { lang }),
  };
}
