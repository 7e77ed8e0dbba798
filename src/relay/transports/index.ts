/**
 * The relay's delivery side: a Transport (the queue manager's contract, ../transport.ts) that routes
 * each message (../routing.ts), applies the route's sender rules, and hands it to SMTP AUTH XOAUTH2
 * (smtp-xoauth2.ts) or Graph sendMail (graph.ts) with a token from identity.
 *
 *   message ──route──▶ sender rules (rewrite / refuse) ──▶ smtp | graph (align To/Cc/Bcc, size)
 *
 * Strategies: the message body is read into memory only when something must look at it (sender
 * rules, Graph); plain SMTP routes stream it from the spool. Graph messages that Graph cannot carry
 * as they are (over 3 MiB of MIME, or To/Cc recipients outside the envelope) go over SMTP when the
 * route says `graph.fallback: smtp`; otherwise oversized ones bounce and such To/Cc addresses are
 * removed (logged as MB_RELAY_GRAPH_HEADER_RECIPIENTS). `deliver` also serves `mailbridge send`,
 * reporting each step (route, token, connect, auth, send, accept).
 *
 * Limits: routes are read once at start (a changed mailbox.yaml needs a restart); the body of a
 * message that is rewritten or sent through Graph is held in memory while it is sent (at most
 * relay.maxMessageSize per message in flight).
 */
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ConnectionConfig } from '../../identity/config.ts';
import { MbError } from '../../errors/index.ts';
import { cloudFor } from '../../identity/clouds.ts';
import type { Logger } from '../../log/index.ts';
import { silentLogger } from '../../log/index.ts';
import { Router, senderDecision, type ResolvedRoute, type RouteConfig } from '../routing.ts';
import type { OutboundMessage, SendResult, Transport } from '../transport.ts';
import { GRAPH_MAX_MIME_BYTES } from './types.ts';
import { addressesIn, alignRecipients, rewriteSender, splitMessage } from './headers.ts';
import type { DeliverHooks, DeliveryTarget, RouteTransport, TokenSource, TransportKind, TransportRegistry } from './types.ts';
import type { ProxySettings } from '../../net/proxy.ts';

export type { DeliverHooks, RouteTransport, StepEvent, StepName, TokenSource, TransportContext, TransportKind, TransportRegistry } from './types.ts';
export { GRAPH_MAX_MIME_BYTES } from './types.ts';

/** What the transports read of mailbridge.yaml besides the routes: the connections and server.proxy. */
export interface TransportSettings {
  connections: Record<string, ConnectionConfig>;
  server: { proxy?: string | undefined };
}

export interface RoutedTransportOptions {
  config: TransportSettings;
  routes: readonly RouteConfig[];
  /** The transports a route can name (src/app/plugins.ts). */
  transports: TransportRegistry;
  tokens: TokenSource;
  /** EHLO name (relay.hostname or the machine name). */
  hostname: string;
  log?: Logger;
  env?: NodeJS.ProcessEnv;
}

export interface DeliverOptions extends DeliverHooks {
  /** Use this transport instead of the route's (`mailbridge send --via`). */
  via?: 'smtp' | 'graph';
}

export class RoutedTransport implements Transport {
  readonly name = 'mailbridge';
  readonly router: Router;
  /** One of each kind, shared by all routes: connection pools and Graph clients live across messages. */
  readonly transports: Readonly<Record<TransportKind, RouteTransport>>;
  private readonly o: RoutedTransportOptions;
  private readonly log: Logger;
  private readonly cas = new Map<string, Promise<string | undefined>>();

  constructor(options: RoutedTransportOptions) {
    this.o = options;
    this.log = options.log ?? silentLogger;
    this.router = new Router(options.routes, options.config.connections);
    const unknown = this.router.unknownConnections()[0];
    if (unknown) throw new MbError('MB_RELAY_ROUTE_CONNECTION_UNKNOWN', { route: unknown[0], connection: unknown[1] });
    const caFor = (connection: string) => this.ca(connection);
    // The connection's proxy, else server.proxy, else HTTPS_PROXY; NO_PROXY in every case (src/net/proxy.ts).
    const proxyFor = (c: string): ProxySettings => {
      const own = options.config.connections[c]?.proxy;
      return { proxy: own ?? options.config.server.proxy, source: own ? 'connection' : 'server', env: options.env };
    };
    const ctx = { tokens: options.tokens, hostname: options.hostname, caFor, proxyFor, log: this.log };
    this.transports = { smtp: options.transports.smtp(ctx), graph: options.transports.graph(ctx) };
  }

  /** The sending mailbox of a new message (the queue's pacing key). */
  readonly mailboxFor = (envelope: { sender: string; relayUser?: string }): string => this.router.mailboxFor(envelope);

  send(message: OutboundMessage): Promise<SendResult> {
    return this.deliver(message);
  }

  async deliver(message: OutboundMessage, options: DeliverOptions = {}): Promise<SendResult> {
    try {
      return await this.route(message, options);
    } catch (err) {
      // A configuration problem found on the way (an unreadable caFile): deferred with its own code.
      if (err instanceof MbError) return { temporary: true, mbCode: err.code, params: err.params, detail: err.message };
      throw err;
    }
  }

  private async route(message: OutboundMessage, options: DeliverOptions): Promise<SendResult> {
    const hooks: DeliverHooks = options;
    const route = this.router.resolve({
      sender: message.sender,
      ...(message.relayUser !== undefined ? { relayUser: message.relayUser } : {}),
      mailbox: message.mailbox,
    });
    if (!route) {
      const domain = message.sender.split('@')[1] ?? 'contoso.com';
      hooks.onStep?.({ step: 'route', ok: false, detail: `no route for ${message.sender || '<>'}` });
      return {
        temporary: true,
        mbCode: 'MB_RELAY_NO_ROUTE',
        params: { sender: message.sender || '<>', user: message.relayUser ?? '-', domain },
        detail: `no route in relay.routes for sender ${message.sender || '<>'} (relay user ${message.relayUser ?? '-'})`,
      };
    }
    const target = this.target(route);
    const via = options.via ?? route.transport;
    hooks.onStep?.({ step: 'route', ok: true, detail: `route ${route.name}: ${via} via connection ${route.connection} as ${route.mailbox}` });

    const rules = route.config.sendAs !== undefined || route.config.rewriteFrom !== false;
    const smtp = this.transports.smtp;
    if (!rules && via === 'smtp') return smtp.deliver(message, target, hooks);

    let raw = await message.readBody();
    let sender = message.sender;
    if (rules) {
      const decision = senderDecision(route, message.sender, addressesIn(splitMessage(raw), 'from'));
      if (decision.kind === 'refuse') {
        hooks.onStep?.({ step: 'route', ok: false, detail: `sender ${decision.address} not allowed on route ${route.name}` });
        return {
          permanent: true,
          mbCode: 'MB_RELAY_ROUTE_SENDER_DENIED',
          params: { route: route.name, mailbox: route.mailbox, allowed: decision.allowed, address: decision.address },
          detail: `sender ${decision.address} not allowed on route ${route.name} (sendAs: ${decision.allowed})`,
        };
      }
      if (decision.kind === 'rewrite') {
        raw = rewriteSender(raw, decision.to, decision.addresses).raw;
        const bad = new Set(decision.addresses.map((a) => a.toLowerCase()));
        if (sender !== '' && bad.has(sender.toLowerCase())) sender = decision.to;
        hooks.onStep?.({ step: 'route', ok: true, detail: `sender ${decision.addresses.join(', ')} rewritten to ${decision.to} (original kept as Reply-To)` });
        this.log.info({ id: message.id, route: route.name, from: decision.addresses, to: decision.to }, 'relay: sender rewritten by route');
      }
    }
    const rewritten = raw;

    if (via === 'graph') {
      const aligned = alignRecipients(raw, message.recipients, route.config.graph.fallback !== 'smtp');
      const tooLarge = aligned.raw.length > GRAPH_MAX_MIME_BYTES;
      if (route.config.graph.fallback === 'smtp' && (tooLarge || aligned.headerOnly.length > 0)) {
        const why = tooLarge ? `${aligned.raw.length} bytes is over Graph's limit` : `To/Cc name ${aligned.headerOnly.join(', ')} outside the envelope`;
        hooks.onStep?.({ step: 'route', ok: true, detail: `sent over SMTP instead: ${why}` });
        this.log.info({ id: message.id, route: route.name, reason: why }, 'relay: Graph cannot carry this message as it is; using SMTP');
        return smtp.deliver(withBody(message, rewritten, sender, route.mailbox), target, hooks);
      }
      if (aligned.removed) {
        this.log.warn(
          { id: message.id, mb: 'MB_RELAY_GRAPH_HEADER_RECIPIENTS', route: route.name, removed: aligned.headerOnly },
          'relay: To/Cc addresses outside the envelope removed for Graph',
        );
      }
      return this.transports.graph.deliver(withBody(message, aligned.raw, sender, route.mailbox), target, hooks);
    }
    return smtp.deliver(withBody(message, rewritten, sender, route.mailbox), target, hooks);
  }

  async close(): Promise<void> {
    for (const t of Object.values(this.transports)) await t.close();
  }

  private target(route: ResolvedRoute): DeliveryTarget {
    const conn = this.o.config.connections[route.connection]!;
    return {
      route: route.name,
      connection: route.connection,
      conn,
      cloud: cloudFor(conn.cloud),
      mailbox: route.mailbox,
      smtp: route.config.smtp,
      graph: route.config.graph,
    };
  }

  private ca(connection: string): Promise<string | undefined> {
    let p = this.cas.get(connection);
    if (!p) {
      const file = this.o.config.connections[connection]?.caFile;
      p = file
        ? readFile(file, 'utf8').catch((err: Error) => {
            this.cas.delete(connection);
            throw new MbError('MB_IDENTITY_CA_UNREADABLE', { connection, path: file, detail: err.message });
          })
        : Promise.resolve(undefined);
      this.cas.set(connection, p);
    }
    return p;
  }
}

/** The message with another body, envelope sender and sending mailbox. */
function withBody(m: OutboundMessage, raw: Buffer, sender: string, mailbox: string): OutboundMessage {
  return {
    id: m.id,
    sender,
    recipients: m.recipients,
    mailbox,
    ...(m.relayUser !== undefined ? { relayUser: m.relayUser } : {}),
    ...(m.clientIp !== undefined ? { clientIp: m.clientIp } : {}),
    size: raw.length,
    bodyType: m.bodyType,
    smtpUtf8: m.smtpUtf8,
    receivedAt: m.receivedAt,
    attempt: m.attempt,
    isBounce: m.isBounce,
    body: () => Readable.from([raw]),
    readBody: async () => raw,
    signal: m.signal,
  };
}
