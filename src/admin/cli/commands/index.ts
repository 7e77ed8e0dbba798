import type { Command } from '../command.ts';

/**
 * The command map: one file per command, loaded lazily so `mailbridge --help` stays fast and a
 * command's dependencies load only when it runs.
 */
export const commands: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./serve.ts')).command,
};
