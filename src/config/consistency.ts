/**
 * Checks across a configuration that the schema alone cannot make, so that `config check` fails
 * every configuration `serve` would fail with (each an error with its code and fix):
 *  - tenantId a GUID or a verified domain (delegated flows also common/organizations/consumers),
 *    clientId a GUID: a placeholder like "0b7c3f3e-…" is caught here, not as AADSTS90002 later;
 *  - the token endpoint exactly as identity will use it (resolveEndpoints: https only, the v2.0
 *    token path, a concrete tenant for client credentials), and not the login host of another
 *    cloud than `cloud` (a gcc-high connection at login.microsoftonline.com);
 *  - every `proxy` setting an http:// or https:// URL (a bare host:port parses as a URL scheme);
 *  - a client-credentials connection with a client secret or certificate;
 *  - no two listeners of the configuration on the same address and port.
 */
import { MbError } from '../errors/index.ts';
import { cloudFor } from '../identity/clouds.ts';
import { resolveEndpoints } from '../identity/endpoints.ts';
import { makeProblem, type ConfigProblem, type Locate } from './problems.ts';
import { markedKeys } from './schema-walk.ts';
import { CLOUDS, connectionSchema, type CloudName, type Config } from './schema.ts';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DOMAIN = /^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;
const MULTI_TENANT = new Set(['common', 'organizations', 'consumers']);
/** Aliases of the clouds' login hosts that Microsoft and MSAL use besides the ones in clouds.ts. */
const LOGIN_ALIASES: Record<string, CloudName[]> = {
  'login.microsoft.com': ['global', 'gcc'],
  'login.windows.net': ['global', 'gcc'],
  'login.chinacloudapi.cn': ['china'],
};

function loginHosts(): Map<string, CloudName[]> {
  const hosts = new Map<string, CloudName[]>(Object.entries(LOGIN_ALIASES));
  for (const c of CLOUDS) {
    const h = cloudFor(c).loginHost;
    hosts.set(h, [...(hosts.get(h) ?? []), c]);
  }
  return hosts;
}

interface Listener {
  path: string;
  at: Array<string | number>;
  host: string;
  port: number;
}

const WILDCARD = new Set(['0.0.0.0', '::', '']);
const normalHost = (h: string) => (h === 'localhost' ? '127.0.0.1' : h.replace(/^\[|\]$/g, ''));

function overlaps(a: Listener, b: Listener): boolean {
  if (a.port === 0 || a.port !== b.port) return false;
  const x = normalHost(a.host);
  const y = normalHost(b.host);
  return x === y || WILDCARD.has(x) || WILDCARD.has(y);
}

function listenersOf(config: Config): Listener[] {
  const out: Listener[] = [{ path: 'server.port', at: ['server', 'port'], host: config.server.listen, port: config.server.port }];
  config.relay?.listeners.forEach((l, i) => out.push({ path: `relay.listeners.${i}.port`, at: ['relay', 'listeners', i, 'port'], host: l.host, port: l.port }));
  const watch = config.notify?.watch;
  // The inbound listener runs only for Graph groups and EWS push groups (notify/watchers/service.ts).
  const inbound = Object.values(watch?.groups ?? {}).some((g) => g.kind === 'graph' || (g.kind === 'ews' && g.ews.mode === 'push'));
  if (watch && inbound) out.push({ path: 'notify.watch.listen.port', at: ['notify', 'watch', 'listen', 'port'], host: watch.listen.host, port: watch.listen.port });
  return out;
}

/** Every `proxy` string in the configuration, wherever a section has one. */
function proxies(value: unknown, at: Array<string | number> = []): Array<{ at: Array<string | number>; value: string }> {
  if (Array.isArray(value)) return value.flatMap((v, i) => proxies(v, [...at, i]));
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) => (k === 'proxy' && typeof v === 'string' ? [{ at: [...at, k], value: v }] : proxies(v, [...at, k])));
}

export function consistencyErrors(config: Config, locate: Locate): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const add = (code: Parameters<typeof makeProblem>[1], at: Array<string | number>, params: Record<string, string | number>) =>
    out.push(makeProblem('error', code, at.join('.'), { field: at.join('.'), ...params }, locate(at)));
  const hosts = loginHosts();
  const credentialKeys = markedKeys(connectionSchema, 'credential');
  for (const [name, c] of Object.entries(config.connections)) {
    const base = ['connections', name];
    if (!GUID.test(c.clientId)) add('MB_CONFIG_CLIENT_ID_INVALID', [...base, 'clientId'], { found: JSON.stringify(c.clientId) });
    // common/organizations/consumers: fine for delegated flows; resolveEndpoints below refuses them for client credentials.
    const tenantOk = GUID.test(c.tenantId) || DOMAIN.test(c.tenantId) || MULTI_TENANT.has(c.tenantId.toLowerCase());
    if (!tenantOk) add('MB_CONFIG_TENANT_ID_INVALID', [...base, 'tenantId'], { found: JSON.stringify(c.tenantId) });
    const cloud = cloudFor(c.cloud);
    try {
      const endpoints = resolveEndpoints(name, c, cloud);
      const host = endpoints.host.toLowerCase();
      const owners = hosts.get(host);
      if (owners && !owners.includes(c.cloud)) {
        add('MB_CONFIG_CLOUD_MISMATCH', [...base, 'tokenEndpoint'], { connection: name, cloud: c.cloud, host, hostCloud: owners.join(', '), expected: cloud.loginHost });
      }
    } catch (err) {
      if (!(err instanceof MbError)) throw err;
      const at = err.code === 'MB_IDENTITY_TENANT_REQUIRED' ? [...base, 'tenantId'] : [...base, 'tokenEndpoint'];
      out.push(makeProblem('error', err.code, at.join('.'), err.params, locate(at)));
    }
    if (c.flow === 'client-credentials' && !credentialKeys.some((k) => (c as Record<string, unknown>)[k] !== undefined)) {
      out.push(makeProblem('error', 'MB_CONFIG_NO_CREDENTIAL', base.join('.'), { field: base.join('.'), flow: c.flow }, locate(base)));
    }
  }
  for (const p of proxies(config)) {
    if (!/^https?:\/\/[^/]/i.test(p.value)) add('MB_CONFIG_PROXY_SCHEME', p.at, { found: JSON.stringify(p.value.replace(/\/\/[^@/]*@/, '//…@')) });
  }
  const listeners = listenersOf(config);
  listeners.forEach((a, i) => {
    const clash = listeners.slice(0, i).find((b) => overlaps(a, b));
    if (clash) add('MB_CONFIG_PORT_TWICE', a.at, { other: clash.path, host: a.host, port: a.port, otherHost: clash.host });
  });
  return out;
}
