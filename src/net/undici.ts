/**
 * The product's one door to undici: the parts it uses, each loaded from its own file instead of
 * undici's index. The index also loads undici's fetch, WebSocket, EventSource, cache and cookie
 * code, and its cookie module reads globalThis.Headers, which makes Node load its own bundled copy
 * of undici besides (node:internal/deps/undici): together about 8 MB in every mailbridge process,
 * for code `serve` never runs. fetch (the notification sinks' webhooks and FCM) loads on first use.
 *
 * The classes and `dispatcher.request()` are undici's public API (types from its index); only
 * where they are loaded from is not. test/net/undici.test.ts holds this to undici's index, so an
 * undici release that moves a file fails there, not in production.
 */
import type * as Undici from 'undici';
import api from 'undici/lib/api/index.js';
import DispatcherBase from 'undici/lib/dispatcher/dispatcher.js';
import AgentClass from 'undici/lib/dispatcher/agent.js';
import ClientClass from 'undici/lib/dispatcher/client.js';
import EnvHttpProxyAgentClass from 'undici/lib/dispatcher/env-http-proxy-agent.js';
import connect from 'undici/lib/core/connect.js';

export type { Dispatcher, RequestInit, Response } from 'undici';

// What undici's index does for every dispatcher: dispatcher.request(), .stream(), .connect() ….
Object.assign(DispatcherBase.prototype, api);

export const Agent = AgentClass;
export type Agent = Undici.Agent;
export const Client = ClientClass;
export type Client = Undici.Client;
export const EnvHttpProxyAgent = EnvHttpProxyAgentClass;
export type EnvHttpProxyAgent = Undici.EnvHttpProxyAgent;
export const buildConnector = connect;
export type Connector = Undici.buildConnector.connector;
export type ConnectorOptions = Undici.buildConnector.BuildOptions;

type RequestOptions = Omit<Undici.Dispatcher.RequestOptions<null>, 'origin' | 'path' | 'method'> & {
  method?: Undici.Dispatcher.HttpMethod;
  /** Always given: mailbridge never sends through undici's global dispatcher. */
  dispatcher: Undici.Dispatcher;
};

/** undici's request(url, options): the dispatcher's request, with origin and path taken from the URL. */
export function request(url: string | URL, options: RequestOptions): Promise<Undici.Dispatcher.ResponseData> {
  const u = typeof url === 'string' ? new URL(url) : url;
  const { dispatcher, ...rest } = options;
  return dispatcher.request({ ...rest, origin: u.origin, path: `${u.pathname}${u.search}`, method: options.method ?? (options.body ? 'PUT' : 'GET') });
}

/** undici's fetch, loaded with the first call. */
export async function fetch(input: string | URL, init?: Undici.RequestInit): Promise<Undici.Response> {
  const { default: web } = await import('undici/lib/web/fetch/index.js');
  return web.fetch(input, init);
}
