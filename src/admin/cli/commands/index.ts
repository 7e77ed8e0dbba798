import type { Command } from '../command.ts';

/**
 * The command map: one file per command, loaded only when it runs (or for `--help`), so a command's
 * dependencies load only when it is used. Listed in the order `mailbridge --help` shows them.
 */
export const commands: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./serve.ts')).command,
  status: async () => (await import('./status.ts')).command,
  config: async () => (await import('./config.ts')).command,
  secret: async () => (await import('./secret.ts')).command,
  setup: async () => (await import('./setup.ts')).command,
  token: async () => (await import('./token.ts')).command,
  signin: async () => (await import('./signin.ts')).command,
  check: async () => (await import('./check.ts')).command,
  credential: async () => (await import('./credential.ts')).command,
  send: async () => (await import('./send.ts')).command,
  queue: async () => (await import('./queue.ts')).command,
  store: async () => (await import('./store.ts')).command,
  'relay-user': async () => (await import('./relay-user.ts')).command,
  api: async () => (await import('./api.ts')).command,
  fetch: async () => (await import('./fetch.ts')).command,
  notify: async () => (await import('./notify.ts')).command,
  watch: async () => (await import('./watch.ts')).command,
  sandbox: async () => (await import('./sandbox.ts')).command,
  'sandbox-admin': async () => (await import('./sandbox-admin.ts')).command,
};
