/**
 * SIGHUP for `mailbridge serve` (`systemctl reload mailbridge`): read mailbridge.yaml (and the
 * environment) again and apply what can change while the gateway runs. Today that is `log.level`
 * (child loggers follow the root logger's level). Every other change needs a restart: the reload
 * names the changed sections in the log instead of applying half of them. A file that no longer
 * loads is logged with its MB code, and the gateway keeps running on the configuration it has.
 */
import { isDeepStrictEqual } from 'node:util';
import { loadConfig, type Config } from '../app/config.ts';
import { toMbError } from '../errors/index.ts';
import type { Lang } from '../i18n/index.ts';
import type { Logger } from '../log/index.ts';

export interface ReloadOptions {
  configPath: string;
  env: NodeJS.ProcessEnv;
  lang: Lang;
  log: Logger;
  /** What the command line changed at start (serve --port), applied to the new file as well. */
  adjust?: (config: Config) => void;
}

/** Load the configuration again and apply it to `running`; returns the configuration now in effect. */
export async function reloadConfig(running: Config, o: ReloadOptions): Promise<Config> {
  let next: Config;
  try {
    next = (await loadConfig(o.configPath, o.env, { lang: o.lang, log: o.log })).config;
    o.adjust?.(next);
  } catch (err) {
    const e = toMbError(err);
    o.log.error({ code: e.code }, `reload: ${e.message}; the running configuration stays in effect`);
    return running;
  }
  if (next.log.level !== running.log.level) {
    o.log.info({ from: running.log.level, to: next.log.level }, 'reload: log level changed');
    o.log.level = next.log.level;
  }
  const pending = Object.keys({ ...running, ...next }).filter(
    (k) => k !== 'log' && !isDeepStrictEqual(running[k as keyof Config], next[k as keyof Config]),
  );
  if (pending.length) {
    o.log.warn({ sections: pending }, 'reload: these sections changed and take effect after a restart (systemctl restart mailbridge)');
  }
  o.log.info('reload: done');
  // What was not applied stays as it runs, so the next reload reports it again.
  return { ...running, log: next.log };
}

/** What applying `next` over `running` restarts (true) and what only a restart of the process can change. */
export interface ApplyPlan {
  logLevel: boolean;
  relay: boolean;
  /** The dispatcher and sinks (and with them the watchers, which publish into it). */
  notify: boolean;
  /** The watch groups alone. */
  watch: boolean;
  /** api.keys or notify.api.keys. */
  keys: boolean;
  /** Connections added, removed or changed: a new identity, and what uses them restarts. */
  connections: string[];
  /** Changed settings no capability of the gateway can take while it runs. */
  needsRestart: string[];
}

export function planApply(running: Config, next: Config): ApplyPlan {
  const same = (a: unknown, b: unknown) => isDeepStrictEqual(a, b);
  const notifyCore = (c: Config) => (c.notify ? { ...c.notify, watch: undefined, api: undefined } : undefined);
  const needsRestart: string[] = [];
  for (const k of ['lang', 'secrets', 'store', 'server'] as const) if (!same(running[k], next[k])) needsRestart.push(k);
  const connections = [...new Set([...Object.keys(running.connections), ...Object.keys(next.connections)])].filter((name) => !same(running.connections[name], next.connections[name]));
  // Connectors run in their own `mailbridge fetch <name>` process, which reads the file when it starts.
  for (const name of new Set([...Object.keys(running.connectors ?? {}), ...Object.keys(next.connectors ?? {})])) {
    if (!same(running.connectors?.[name], next.connectors?.[name])) needsRestart.push(`connectors.${name}`);
  }
  return {
    logLevel: running.log.level !== next.log.level,
    relay: !same(running.relay, next.relay),
    notify: !same(notifyCore(running), notifyCore(next)),
    watch: !same(running.notify?.watch, next.notify?.watch),
    keys: !same(running.api, next.api) || !same(running.notify?.api, next.notify?.api),
    connections,
    needsRestart,
  };
}
