/**
 * The one place that opens what mailbridge runs on: configuration → secret box → store → identity.
 * Every command that needs them and the gateway (`serve`, src/server/index.ts) take them from an
 * App instead of opening each its own way.
 *
 * Strategy: the configuration is read at once (a bad file fails before anything opens); the rest
 * opens on first use and once: the secret box (a key file that must not be world-readable, or
 * MAILBRIDGE_KEY) only when something needs a secret, the store only when something reads state, and
 * the identity on both. `close` closes what was opened, identity before the store it writes to.
 */
import type { LoadOptions } from '../config/index.ts';
import { openSecretBox, type KeyedSecretBox } from '../config/secrets.ts';
import type { Lang } from '../i18n/index.ts';
import { createIdentity, type Identity, type IdentityOptions } from '../identity/index.ts';
import type { Logger } from '../log/index.ts';
import { openStore, type Store } from '../store/index.ts';
import { loadConfig, type Config, type ConfigProblem } from './config.ts';

export interface AppOptions {
  env?: NodeJS.ProcessEnv;
  /** The log of identity (default: silent). */
  log?: Logger;
  /** Told of every token request (the gateway counts them for /metrics). */
  onTokenRequest?: IdentityOptions['onTokenRequest'];
  /** false: the identity leaves "expires soon" to the caller (the gateway's expiry monitor). */
  expiryLog?: IdentityOptions['expiryLog'];
}

export interface App {
  readonly config: Config;
  /** The file the configuration came from; undefined when there is none (defaults and environment). */
  readonly path?: string;
  /** The secrets key file, resolved against the configuration file's folder. */
  readonly keyFile: string;
  readonly warnings: readonly ConfigProblem[];
  /** Dotted paths whose value came from the environment → the variable that set it. */
  readonly fromEnv: ReadonlyMap<string, string>;
  secretBox(): Promise<KeyedSecretBox>;
  store(): Promise<Store>;
  /** Tokens for the connections; opens the secret box and the store first. */
  identity(): Promise<Identity>;
  close(): Promise<void>;
}

/** What opening needs of the command line: CommandContext fits as it is. */
export interface OpenOptions extends AppOptions {
  configPath: string;
  env: NodeJS.ProcessEnv;
  /** Language of a configuration error; default: the file's `lang`, else the environment. */
  lang?: Lang;
}

/** Read and check the configuration at `configPath`, and keep the rest ready to open. */
export async function openApp(o: OpenOptions): Promise<App> {
  const options: LoadOptions = o.lang ? { lang: o.lang } : {};
  const loaded = await loadConfig(o.configPath, o.env, options);
  return appOf(loaded, o);
}

/** An App over a configuration already in hand (the gateway, tests). */
export function appOf(
  loaded: { config: Config; keyFile: string; path?: string | undefined; warnings?: readonly ConfigProblem[]; fromEnv?: ReadonlyMap<string, string> },
  o: AppOptions = {},
): App {
  const env = o.env ?? process.env;
  let box: Promise<KeyedSecretBox> | undefined;
  let store: Promise<Store> | undefined;
  let identity: Promise<Identity> | undefined;
  const app: App = {
    config: loaded.config,
    ...(loaded.path !== undefined ? { path: loaded.path } : {}),
    keyFile: loaded.keyFile,
    warnings: loaded.warnings ?? [],
    fromEnv: loaded.fromEnv ?? new Map(),
    secretBox: () => (box ??= openSecretBox({ keyFile: loaded.keyFile, env })),
    store: () => (store ??= openStore(loaded.config.store)),
    identity: () =>
      (identity ??= (async () => {
        const secretBox = await app.secretBox();
        const s = await app.store();
        return createIdentity({ config: loaded.config, kv: s.kv, secretBox, env, ...(o.log ? { log: o.log } : {}), ...(o.onTokenRequest ? { onTokenRequest: o.onTokenRequest } : {}), ...(o.expiryLog !== undefined ? { expiryLog: o.expiryLog } : {}) });
      })()),
    async close() {
      // What failed to open has nothing to close.
      await (await identity?.catch(() => undefined))?.close();
      await (await store?.catch(() => undefined))?.close();
    },
  };
  return app;
}
