/**
 * What `config check` (and `serve`, before it starts) finds in the connections that the schema alone
 * cannot see, so that a connection is refused before the first token request, not by Entra ID:
 *  - tenantId a GUID or a verified domain (delegated flows also common/organizations/consumers),
 *    clientId a GUID: a placeholder like "0b7c3f3e-…" is caught here, not as AADSTS90002 later;
 *  - the token endpoint exactly as identity will use it (resolveEndpoints: https only, the v2.0
 *    token path, a concrete tenant for client credentials), and not the login host of another
 *    cloud than `cloud` (a gcc-high connection at login.microsoftonline.com);
 *  - a client-credentials connection with a client secret or certificate (an error); a delegated
 *    one without (a warning: it may still work as a public client);
 *  - client secrets that expire within 30 days or have expired, and expiry dates beyond what
 *    Entra ID issues (warnings).
 * Registered with the composition root (src/app/config.ts) as a configuration check.
 */
import { MbError } from '../errors/index.ts';
import { makeProblem, type CheckContext, type ConfigProblem } from '../config/problems.ts';
import { markedKeys } from '../config/schema-walk.ts';
import { cloudFor } from './clouds.ts';
import { CLOUDS, connectionSchema, type CloudName, type ConnectionConfig } from './config.ts';
import { resolveEndpoints } from './endpoints.ts';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DOMAIN = /^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;
const MULTI_TENANT = new Set(['common', 'organizations', 'consumers']);
/** Aliases of the clouds' login hosts that Microsoft and MSAL use besides the ones in clouds.ts. */
const LOGIN_ALIASES: Record<string, CloudName[]> = {
  'login.microsoft.com': ['global', 'gcc'],
  'login.windows.net': ['global', 'gcc'],
  'login.chinacloudapi.cn': ['china'],
};

/** Flows that sign in without an app credential (device code is a public-client flow). */
const FLOWS_WITHOUT_CREDENTIAL = new Set(['device-code']);
const DAY = 86_400_000;
const WARN_DAYS = 30;
const ENTRA_MAX_MONTHS = 24;

function loginHosts(): Map<string, CloudName[]> {
  const hosts = new Map<string, CloudName[]>(Object.entries(LOGIN_ALIASES));
  for (const c of CLOUDS) {
    const h = cloudFor(c).loginHost;
    hosts.set(h, [...(hosts.get(h) ?? []), c]);
  }
  return hosts;
}

/** Errors and warnings of every connection of a validated configuration. */
export function connectionProblems(config: { connections: Record<string, ConnectionConfig> }, ctx: CheckContext): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const { locate } = ctx;
  const add = (code: Parameters<typeof makeProblem>[1], at: Array<string | number>, params: Record<string, string | number>) =>
    out.push(makeProblem('error', code, at.join('.'), { field: at.join('.'), ...params }, locate(at)));
  const hosts = loginHosts();
  const credentialKeys = markedKeys(connectionSchema, 'credential');
  const hasCredential = (c: ConnectionConfig) => credentialKeys.some((k) => (c as Record<string, unknown>)[k] !== undefined && (c as Record<string, unknown>)[k] !== null);
  const today = Date.UTC(ctx.now.getUTCFullYear(), ctx.now.getUTCMonth(), ctx.now.getUTCDate());
  const limit = new Date(today);
  limit.setUTCMonth(limit.getUTCMonth() + ENTRA_MAX_MONTHS);
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
    if (c.flow === 'client-credentials' && !hasCredential(c)) {
      out.push(makeProblem('error', 'MB_CONFIG_NO_CREDENTIAL', base.join('.'), { field: base.join('.'), flow: c.flow }, locate(base)));
    }
    const expires = c.clientSecretExpires;
    if (typeof expires === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(expires)) {
      const at = [...base, 'clientSecretExpires'];
      const field = at.join('.');
      const when = Date.parse(`${expires}T00:00:00Z`);
      const days = Math.round((when - today) / DAY);
      const params = { field, date: expires, connection: name, secretField: `${base.join('.')}.clientSecret` };
      if (days < 0) out.push(makeProblem('warning', 'MB_CONFIG_SECRET_EXPIRED', field, params, locate(at)));
      else if (days <= WARN_DAYS) out.push(makeProblem('warning', 'MB_CONFIG_SECRET_EXPIRING', field, { ...params, days }, locate(at)));
      else if (when > limit.getTime()) out.push(makeProblem('warning', 'MB_CONFIG_SECRET_EXPIRY_TOO_FAR', field, params, locate(at)));
    }
    // client-credentials without one is the error above; a delegated flow may still work as a public client.
    if (!FLOWS_WITHOUT_CREDENTIAL.has(c.flow) && c.flow !== 'client-credentials' && !hasCredential(c)) {
      out.push(makeProblem('warning', 'MB_CONFIG_NO_CREDENTIAL', base.join('.'), { field: base.join('.'), flow: c.flow }, locate(base)));
    }
  }
  return out;
}
