/**
 * What the transports share: the resolved target of one delivery (route, connection, mailbox,
 * endpoints), the token source (Identity satisfies it), progress steps for `mailbridge send`, and
 * the facts an access token tells about who it is for (to fill the PowerShell lines of fixes).
 */
import type { ConnectionConfig } from '../../identity/config.ts';
import { MbError } from '../../errors/index.ts';
import type { Cloud } from '../../identity/clouds.ts';
import type { Logger } from '../../log/index.ts';
import type { ProxySettings } from '../../net/proxy.ts';
import type { RouteConfig } from '../routing.ts';
import type { OutboundMessage, SendResult } from '../transport.ts';

export interface TokenSource {
  getToken(
    connection: string,
    resource: 'exchange' | 'graph',
    options?: { forceRefresh?: boolean },
  ): Promise<{ accessToken: string; expiresOn: Date; fromCache: boolean }>;
}

export interface DeliveryTarget {
  /** Route name (for logs and `mailbridge send`). */
  route: string;
  connection: string;
  conn: ConnectionConfig;
  cloud: Cloud;
  /** Sending mailbox, normalized. */
  mailbox: string;
  smtp: RouteConfig['smtp'];
  graph: RouteConfig['graph'];
}

export type StepName = 'route' | 'token' | 'connect' | 'auth' | 'send' | 'accept';

export interface StepEvent {
  step: StepName;
  ok: boolean;
  /** What happened: host:port, reused connection, reply line, … (never a secret). */
  detail?: string;
  /** Milliseconds the step took. */
  ms?: number;
}

export interface DeliverHooks {
  onStep?(event: StepEvent): void;
}

/** What a transport plug-in gets: tokens, the EHLO name, and per connection its extra CA and proxy. */
export interface TransportContext {
  tokens: TokenSource;
  /** EHLO name (relay.hostname or the machine name). */
  hostname: string;
  /** PEM of the connection's caFile, or undefined. */
  caFor(connection: string): Promise<string | undefined>;
  /** The connection's proxy, else server.proxy, else the environment. */
  proxyFor(connection: string): ProxySettings;
  log: Logger;
}

/**
 * The way a route sends (its `transport:`): one message, its body as it is to be sent (sender rules
 * and header alignment already applied), to the route's mailbox.
 */
export interface RouteTransport {
  deliver(message: OutboundMessage, target: DeliveryTarget, hooks?: DeliverHooks): Promise<SendResult>;
  /** Live connections to a mailbox, for transports that keep them (status output and tests). */
  connections?(mailbox: string): number;
  close(): Promise<void>;
}

export type TransportKind = RouteConfig['transport'];

/** Graph's request size limit (4 MB) and the largest MIME message that fits after base64. */
export const GRAPH_MAX_REQUEST_BYTES = 4 * 1024 * 1024;
export const GRAPH_MAX_MIME_BYTES = Math.floor(GRAPH_MAX_REQUEST_BYTES / 4) * 3;

/** The transports a route can name, by kind; filled by the composition root (src/app/plugins.ts). */
export type TransportRegistry = Record<TransportKind, (ctx: TransportContext) => RouteTransport>;

export { tokenFacts, type TokenFacts } from '../../m365/token-facts.ts';

/** Placeholders for fix texts when the token could not be read (never empty PowerShell arguments). */
export const PLACEHOLDER = {
  appId: '<Application (client) ID>',
  objectId: '<Enterprise application object ID>',
  tenantId: '<tenant ID>',
};

/** A token failure (MbError from identity) as a delivery result: deferred, the admin reads the identity code. */
export function tokenFailure(err: unknown): SendResult {
  if (err instanceof MbError) return { temporary: true, mbCode: err.code, params: err.params, detail: err.message };
  const detail = err instanceof Error ? err.message : String(err);
  return { temporary: true, mbCode: 'MB_RELAY_TRANSPORT_FAILED', params: { transport: 'token', detail }, detail };
}

export type DeliveryToken = Awaited<ReturnType<TokenSource['getToken']>>;

/**
 * The connection's token for one attempt, reported as the `token` step: the token and when the
 * step began, or the failure (already reported) as the delivery's result.
 */
export async function attemptToken(
  tokens: TokenSource,
  target: DeliveryTarget,
  resource: 'exchange' | 'graph',
  forceRefresh: boolean,
  hooks: DeliverHooks,
): Promise<{ token: DeliveryToken; t0: number } | { failure: SendResult; error: unknown }> {
  const t0 = performance.now();
  try {
    return { token: await tokens.getToken(target.connection, resource, { forceRefresh }), t0 };
  } catch (err) {
    hooks.onStep?.({ step: 'token', ok: false, detail: err instanceof Error ? err.message : String(err), ms: since(t0) });
    return { failure: tokenFailure(err), error: err };
  }
}

/** Milliseconds since `t0`, rounded. */
export function since(t0: number): number {
  return Math.round(performance.now() - t0);
}
