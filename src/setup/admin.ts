/**
 * The admin's side of setup, apart from how it is shown: the admin's device code sign-in to a
 * tenant (with Microsoft's public "Microsoft Graph Command Line Tools" client, which exists in every
 * tenant, so nothing has to be registered first) and one setup run of a connection through Graph
 * with that sign-in. `mailbridge setup` prints what these report; the admin API's setup runs
 * (src/server/ops.ts) keep it for the console. The sign-in lives in this process only: an admin's
 * token is never stored (memoryKv).
 */
import { readFile } from 'node:fs/promises';
import type { Config } from '../app/schema.ts';
import type { SecretBox } from '../config/secret-box.ts';
import { MbError } from '../errors/index.ts';
import { cloudFor } from '../identity/clouds.ts';
import { connectionSchema, type ConnectionConfig } from '../identity/config.ts';
import { createIdentity, type DeviceCodeInfo, type Identity } from '../identity/index.ts';
import type { Logger } from '../log/index.ts';
import { GraphClient, GraphUnreachable } from '../m365/graph.ts';
import type { KeyValue } from '../store/index.ts';
import { adminScopes, runSetup, setupGraphUrl, type SetupOptions, type SetupResult } from './index.ts';

/** Microsoft Graph Command Line Tools: Microsoft's public client for admins (docs/microsoft-facts-addendum.md). */
export const GRAPH_CLI_TOOLS = '14d82eec-204b-4c2f-b7e8-296a70dab67e';
const ADMIN = 'setup-admin';

/** An admin's sign-in to one tenant, reused for every connection of that tenant in one run. */
export interface AdminSession {
  identity: Identity;
  account: string;
  token: string;
}

export interface AdminSignIn {
  config: Config;
  conn: ConnectionConfig;
  secretBox: SecretBox;
  env: NodeJS.ProcessEnv;
  log?: Logger;
  /** Public client the admin signs in with (default GRAPH_CLI_TOOLS). */
  clientId?: string;
  onCode(info: DeviceCodeInfo): void;
  signal?: AbortSignal;
}

/** Which sessions can be shared: the same tenant, cloud, endpoints, proxy and admin client. */
export function adminSessionKey(conn: ConnectionConfig, clientId = GRAPH_CLI_TOOLS): string {
  return [conn.cloud, conn.tenantId, conn.tokenEndpoint ?? '', conn.caFile ?? '', conn.proxy ?? '', clientId].join('\n').toLowerCase();
}

/** The admin signs in with a device code (onCode shows it); resolves once they did, with a Graph token. */
export async function signInAdmin(o: AdminSignIn): Promise<AdminSession> {
  const scopes = adminScopes(o.conn);
  const adminConn = connectionSchema.parse({
    cloud: o.conn.cloud,
    tenantId: o.conn.tenantId,
    clientId: o.clientId ?? GRAPH_CLI_TOOLS,
    flow: 'device-code',
    scopes: { exchange: scopes, graph: scopes },
    ...(o.conn.tokenEndpoint ? { tokenEndpoint: o.conn.tokenEndpoint } : {}),
    ...(o.conn.caFile ? { caFile: o.conn.caFile } : {}),
    ...(o.conn.proxy ? { proxy: o.conn.proxy } : {}),
  });
  const identity = createIdentity({ config: { connections: { [ADMIN]: adminConn }, server: o.config.server }, kv: memoryKv(), secretBox: o.secretBox, env: o.env, ...(o.log ? { log: o.log } : {}) });
  try {
    const signedIn = await identity.signInWithDeviceCode(ADMIN, { onCode: o.onCode, ...(o.signal ? { signal: o.signal } : {}) });
    const token = (await identity.getToken(ADMIN, 'graph')).accessToken;
    return { identity, account: signedIn.account, token };
  } catch (err) {
    await identity.close();
    throw err;
  }
}

/** runSetup's options that do not concern Graph: the caller's mode, credential choice and reports. */
export type SetupWith = Omit<SetupOptions, 'send' | 'account'> & {
  session: AdminSession;
  env: NodeJS.ProcessEnv;
  /** --graph-url: Microsoft Graph to talk to instead of the cloud's or the configuration's. */
  graphUrl?: string;
};

/** One setup run of a connection through Microsoft Graph with the admin's sign-in. */
export async function setupWithAdmin(o: SetupWith): Promise<SetupResult> {
  const conn = o.config.connections[o.connection];
  if (!conn) throw new MbError('MB_IDENTITY_UNKNOWN_CONNECTION', { connection: o.connection, known: Object.keys(o.config.connections).join(', ') || '—' });
  const { session, env, graphUrl, ...setup } = o;
  const ca = conn.caFile ? await readFile(conn.caFile, 'utf8') : undefined;
  const client = new GraphClient({
    baseUrl: setupGraphUrl(o.config, o.connection, graphUrl),
    graphHost: cloudFor(conn.cloud).graphHost,
    tokens: async () => session.token,
    ca,
    proxy: { proxy: conn.proxy ?? o.config.server.proxy, source: conn.proxy ? 'connection' : o.config.server.proxy ? 'server' : undefined, env },
    secretSlot: 'setup-admin',
  });
  try {
    return await runSetup({
      ...setup,
      account: session.account,
      send: async (method, path, body) => {
        try {
          return await client.call('directory', method, path, body === undefined ? {} : { json: body });
        } catch (err) {
          if (err instanceof GraphUnreachable) throw new MbError('MB_SETUP_GRAPH_UNREACHABLE', { request: `${method} ${path}`, url: client.base, detail: err.message, connection: o.connection }, { cause: err });
          throw err;
        }
      },
    });
  } finally {
    await client.close();
  }
}

/** A KeyValue that lives as long as the admin's sign-in: a Global Administrator's refresh token is never written anywhere. */
export function memoryKv(): KeyValue {
  const rows = new Map<string, { value: string; updatedAt: string }>();
  const k = (ns: string, key: string) => `${ns}\u0000${key}`;
  return {
    get: async (ns, key) => rows.get(k(ns, key))?.value,
    set: async (ns, key, value) => {
      rows.set(k(ns, key), { value, updatedAt: new Date().toISOString() });
    },
    delete: async (ns, key) => rows.delete(k(ns, key)),
    add: async (ns, key, value) => {
      if (!rows.has(k(ns, key))) rows.set(k(ns, key), { value, updatedAt: new Date().toISOString() });
      return rows.get(k(ns, key))!.value;
    },
    list: async (ns) =>
      [...rows.entries()].filter(([key]) => key.startsWith(`${ns}\u0000`)).map(([key, v]) => ({ key: key.slice(ns.length + 1), value: v.value, updatedAt: v.updatedAt })),
  };
}
