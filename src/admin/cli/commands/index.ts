import type { Text } from '../../../i18n/index.ts';
import type { Command } from '../command.ts';

type CommandMap = Record<string, () => Promise<Command>>;

/**
 * The command map by task, in the order `mailbridge --help` and docs/<lang>/reference/cli.md show
 * it: one file per command, loaded only when it runs (or for `--help`), so a command's dependencies
 * load only when it is used.
 */
export const commandGroups: ReadonlyArray<{ title: Text; commands: CommandMap }> = [
  {
    title: { en: 'Run', de: 'Betrieb' },
    commands: {
      serve: async () => (await import('./serve.ts')).command,
      status: async () => (await import('./status.ts')).command,
      store: async () => (await import('./store.ts')).command,
    },
  },
  {
    title: { en: 'Set up and check', de: 'Einrichten und prüfen' },
    commands: {
      config: async () => (await import('./config.ts')).command,
      secret: async () => (await import('./secret.ts')).command,
      setup: async () => (await import('./setup.ts')).command,
      token: async () => (await import('./token.ts')).command,
      signin: async () => (await import('./signin.ts')).command,
      check: async () => (await import('./check.ts')).command,
      credential: async () => (await import('./credential.ts')).command,
      api: async () => (await import('./api.ts')).command,
    },
  },
  {
    title: { en: 'Send', de: 'Senden' },
    commands: {
      send: async () => (await import('./send.ts')).command,
      queue: async () => (await import('./queue.ts')).command,
      'relay-user': async () => (await import('./relay-user.ts')).command,
    },
  },
  {
    title: { en: 'Fetch', de: 'Abrufen' },
    commands: {
      fetch: async () => (await import('./fetch.ts')).command,
    },
  },
  {
    title: { en: 'Notify', de: 'Benachrichtigen' },
    commands: {
      notify: async () => (await import('./notify.ts')).command,
      watch: async () => (await import('./watch.ts')).command,
    },
  },
  {
    title: { en: 'Sandbox', de: 'Sandbox' },
    commands: {
      sandbox: async () => (await import('./sandbox.ts')).command,
      'sandbox-admin': async () => (await import('./sandbox-admin.ts')).command,
    },
  },
];

/** Every command by its name. */
export const commands: CommandMap = Object.assign({}, ...commandGroups.map((g) => g.commands));
