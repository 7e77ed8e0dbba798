import type { Command } from '../command.ts';

/**
 * The command map: one file per command, loaded lazily so `mailbridge --help` stays fast and a
 * command's dependencies load only when it runs.
 */
export const commands: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./serve.ts')).command,
  queue: async () => (await import('./queue.ts')).command,
  'relay-user': async () => (await import('./relay-user.ts')).command,
  token: async () => (await import('./token.ts')).command,
  signin: async () => (await import('./signin.ts')).command,
  config: async () => (await import('./config.ts')).command,
  secret: async () => (await import('./secret.ts')).command,
  sandbox: async () => (await import('./sandbox.ts')).command,
  'sandbox-admin': async () => (await import('./sandbox-admin.ts')).command,
  fetch: async () => (await import('./fetch.ts')).command,
};
