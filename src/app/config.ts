/**
 * mailbridge.yaml as the gateway and every command read it: config/'s loader bound to the schema
 * assembled in schema.ts and to the checks the capabilities own (identity's connections, the
 * notify pools), plus the two that span sections (proxies anywhere, listeners on one port).
 * The names are config/'s, without the model argument.
 */
import { BlockList, isIP } from 'node:net';
import * as loader from '../config/index.ts';
import { makeProblem, type ConfigProblem, type Locate } from '../config/problems.ts';
import { listenerClashes, proxyProblems, type ConfiguredListener } from '../config/consistency.ts';
import * as walk from '../config/schema-walk.ts';
import * as secretFile from '../config/secret-file.ts';
import { connectionProblems } from '../identity/check.ts';
import { notifyConfigProblems } from '../notify/check.ts';
import { configSchema, type Config } from './schema.ts';

export type { Config, ConnectionConfig, CertificateConfig } from './schema.ts';
export type { CheckOptions, ConfigProblem, LoadOptions, ProblemLocation } from '../config/index.ts';
export { describeLocation, keyFileFor } from '../config/index.ts';

/** Every listening socket the configuration asks for, in the order a clash is reported. */
function listenersOf(config: Config): ConfiguredListener[] {
  const out: ConfiguredListener[] = [{ path: 'server.port', at: ['server', 'port'], host: config.server.listen, port: config.server.port }];
  config.relay?.listeners.forEach((l, i) => out.push({ path: `relay.listeners.${i}.port`, at: ['relay', 'listeners', i, 'port'], host: l.host, port: l.port }));
  const watch = config.notify?.watch;
  // The inbound listener runs only for Graph groups and EWS push groups (notify/watchers/service.ts).
  const inbound = Object.values(watch?.groups ?? {}).some((g) => g.kind === 'graph' || (g.kind === 'ews' && g.ews.mode === 'push'));
  if (watch && inbound) out.push({ path: 'notify.watch.listen.port', at: ['notify', 'watch', 'listen', 'port'], host: watch.listen.host, port: watch.listen.port });
  return out;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Whether only this host reaches an address: localhost, 127.0.0.0/8, ::1 (also IPv4-mapped). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h)?.[1];
  const addr = mapped ?? h;
  const family = isIP(addr);
  return family !== 0 && LOOPBACK.check(addr, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The gateway refuses to serve a non-loopback server.listen in plain HTTP (passwords, session
 * cookies and API keys would cross the network in clear) unless server.tls or the explicit opt-out
 * server.insecure is set. `config check` reports it (so does `serve`, before it starts anything).
 */
export function serverTlsProblems(config: Pick<Config, 'server'>, locate: Locate): ConfigProblem[] {
  const s = config.server;
  if (s.tls || s.insecure || isLoopbackHost(s.listen)) return [];
  return [makeProblem('error', 'MB_SERVER_TLS_REQUIRED', 'server.listen', { listen: s.listen }, locate(['server', 'listen']))];
}

/** api.signin.entra must name a connection of the file: the console's Entra sign-in goes through its app. */
export function apiSigninProblems(config: Pick<Config, 'api' | 'connections'>, locate: Locate): ConfigProblem[] {
  const connection = config.api?.signin.entra?.connection;
  if (connection === undefined || connection in config.connections) return [];
  const at = ['api', 'signin', 'entra', 'connection'];
  return [makeProblem('error', 'MB_API_SIGNIN_NOT_CONFIGURED', at.join('.'), { connection }, locate(at))];
}

export const configModel: loader.ConfigModel<Config> = {
  schema: configSchema,
  checks: [
    connectionProblems,
    (config, ctx) => proxyProblems(config, ctx.locate),
    (config, ctx) => listenerClashes(listenersOf(config), ctx.locate),
    (config, ctx) => notifyConfigProblems(config, ctx.locate),
    (config, ctx) => serverTlsProblems(config, ctx.locate),
    (config, ctx) => apiSigninProblems(config, ctx.locate),
  ],
};

export type LoadedConfig = loader.LoadedConfig<Config>;
export type ConfigReport = loader.ConfigReport<Config>;

export const loadConfig = (path: string, env?: NodeJS.ProcessEnv, options?: loader.LoadOptions): Promise<LoadedConfig> => loader.loadConfig(configModel, path, env, options);
export const checkConfig = (path: string, env?: NodeJS.ProcessEnv, options?: loader.CheckOptions): Promise<ConfigReport> => loader.checkConfig(configModel, path, env, options);
export const analyzeText = (text: string | undefined, file: string, env: NodeJS.ProcessEnv, options?: loader.LoadOptions): ConfigReport =>
  loader.analyzeText(configModel, text, file, env, options);

// The schema walks of config/, on mailbridge.yaml's schema.
export const resolvePath = (given: string[], raw: unknown, options?: walk.ResolveOptions): walk.Resolved => walk.resolvePath(configSchema, given, raw, options);
export const schemaFields = (): walk.SchemaField[] => walk.schemaFields(configSchema);
export const secretPatterns = (): string[] => walk.secretPatterns(configSchema);
export const secretSlots = (raw: unknown): walk.SecretSlot[] => walk.secretSlots(configSchema, raw);

// Secrets in the file (`secret set`, `secret list`).
export type { RawConfig, SecretInfo, StoredSecret } from '../config/secret-file.ts';
export const readRawConfig = (configPath: string, env: NodeJS.ProcessEnv) => secretFile.readRawConfig(configSchema, configPath, env);
export const secretSettings = (): string[] => secretFile.secretSettings(configSchema);
export const secretPathFor = (given: string, raw: unknown): string[] => secretFile.secretPathFor(configSchema, given, raw);
export const storeSecret = (configPath: string, segments: string[], clear: string, env: NodeJS.ProcessEnv) => secretFile.storeSecret(configSchema, configPath, segments, clear, env);
export const listSecrets = (configPath: string, env: NodeJS.ProcessEnv) => secretFile.listSecrets(configSchema, configPath, env);
export const replaceConfigText = secretFile.replaceConfigText;
export type { ResolvedCandidate } from '../config/secret-file.ts';
export const resolveMasks = (configPath: string | undefined, candidate: string, env: NodeJS.ProcessEnv, options: { seal: boolean }) =>
  secretFile.resolveMasks(configSchema, configPath, candidate, env, options);
export const storeSettings = (configPath: string, entries: Array<{ path: string[]; value: string; secret?: boolean }>, env: NodeJS.ProcessEnv) =>
  secretFile.storeSettings(configSchema, configPath, entries, env);
