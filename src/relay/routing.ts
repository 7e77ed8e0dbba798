/**
 * Routing: which connection, sending mailbox and transport carry a message, and the sender rules
 * that decide what the message may say it is from.
 *
 * A route matches by the envelope sender (an address or `@domain`) and/or by the relay user that
 * handed the message over; the first route in `relay.routes` that matches wins. It names a
 * connection (credentials and cloud), the sending mailbox (SMTP SASL user / Graph
 * `/users/{mailbox}`; default: the envelope sender, or the signed-in account for delegated
 * connections) and a transport (`smtp`: SMTP AUTH XOAUTH2, `graph`: Graph sendMail).
 *
 * Sender rules (`sendAs`, `rewriteFrom`): without them mailbridge leaves the decision to Exchange,
 * which refuses a From it may not use with SendAsDenied. With `sendAs`, the envelope sender and
 * every From address must be the mailbox or match the list; otherwise the message bounces with
 * MB_RELAY_ROUTE_SENDER_DENIED, or — with `rewriteFrom` — the envelope sender and From are
 * rewritten to the mailbox (or the address `rewriteFrom` names), the original From is kept as
 * Reply-To (unless the message has one already) and a Sender header naming the old address is
 * removed. Scanners and ERP systems that insist on their own sender address can send that way
 * from a single licensed mailbox.
 *
 * Bounce reports (null sender) are routed by their sending mailbox: first to the route that has it
 * as its fixed mailbox, else as if it were the sender; relay users do not apply to them.
 */
import { z } from 'zod';
import { intField } from '../config/number-field.ts';
import type { ConnectionConfig } from '../identity/config.ts';
import { isSenderPattern, normalizeAddress, SenderRules } from './policy.ts';
import { graphUrlField } from '../m365/graph-url.ts';

/** A sender rule's entry, in the relay users' and networks' allowedSenders and in routes. */
export const senderPattern = z
  .string()
  .refine(isSenderPattern, { message: 'not an address or @domain / keine Adresse und keine @Domain (name@contoso.com, @contoso.com)' })
  .meta({ description: 'An address (name@domain) or a whole domain (@domain)' });

export const smtpRouteSchema = z
  .object({
    host: z.string().min(1).optional().meta({ description: "SMTP host; default: the connection's cloud (smtp.office365.com for global)" }),
    port: intField({ min: 1, max: 65535, default: 587 }, 'SMTP port (Exchange Online: 587 with STARTTLS)'),
    tls: z
      .enum(['starttls', 'implicit'])
      .default('starttls')
      .meta({ description: 'starttls: plain connection upgraded with STARTTLS (required); implicit: TLS from the first byte' }),
    maxConnections: intField({ min: 1, max: 3, default: 3 }, 'Connections at once per sending mailbox (Exchange Online allows 3; a 4th gets 432 4.3.2)'),
    messagesPerConnection: intField({ min: 1, max: 10_000, default: 100 }, 'Messages sent over one connection before it is replaced'),
    idleSeconds: intField({ min: 1, max: 600, default: 30 }, 'An unused connection is closed after this long'),
    timeoutSeconds: intField({ min: 5, max: 3600, default: 120 }, 'Silence from the server that ends an attempt (Exchange holds the reply up to a minute when the 30 per minute limit is reached)'),
  })
  .strict();

export const graphRouteSchema = z
  .object({
    url: graphUrlField('Graph for sendMail.'),
    saveToSentItems: z
      .literal(true)
      .default(true)
      .meta({
        description:
          'Graph keeps a copy of every MIME message in Sent Items; sendMail with MIME content cannot turn that off (Graph takes saveToSentItems only with a JSON message), so only true is accepted',
      }),
    fallback: z
      .enum(['none', 'smtp'])
      .default('none')
      .meta({
        description:
          'smtp: messages Graph cannot carry as they are (over the 4 MB request limit, or with To/Cc recipients that are not envelope recipients) go over SMTP AUTH XOAUTH2 with the same connection and mailbox; none: oversized messages bounce, such To/Cc addresses are removed',
      }),
    timeoutSeconds: intField({ min: 5, max: 3600, default: 120 }, 'How long one sendMail request may take'),
  })
  .strict();

export const routeSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._-]+$/).optional().meta({ description: 'Name for logs and `mailbridge send` output' }),
    senders: z.array(senderPattern).min(1).optional().meta({ description: 'Match: envelope senders (name@domain or @domain); omitted: any' }),
    users: z.array(z.string().min(1)).min(1).optional().meta({ description: 'Match: relay users (relay.users) that handed the message over; omitted: any client' }),
    connection: z.string().min(1).meta({ description: 'Connection (connections.<name>) whose token sends the message' }),
    mailbox: z
      .email()
      .optional()
      .meta({ description: 'Sending mailbox (SMTP login / Graph user); default: the envelope sender, or the account of a delegated connection' }),
    transport: z.enum(['smtp', 'graph']).default('smtp').meta({ description: 'smtp: SMTP AUTH XOAUTH2; graph: Microsoft Graph sendMail' }),
    sendAs: z
      .array(senderPattern)
      .min(1)
      .optional()
      .meta({ description: 'Addresses the mailbox may send as (besides itself); checked on the envelope sender and From. Omitted: Exchange decides' }),
    rewriteFrom: z
      .union([z.boolean(), z.email()])
      .default(false)
      .meta({ description: 'Senders not allowed by sendAs are rewritten to the mailbox (true) or to this address, with the original kept as Reply-To' }),
    smtp: smtpRouteSchema.prefault({}),
    graph: graphRouteSchema.prefault({}),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.rewriteFrom === true && !r.mailbox) {
      ctx.addIssue({ code: 'custom', path: ['rewriteFrom'], message: 'rewriteFrom: true needs a fixed mailbox / braucht ein festes mailbox' });
    }
  });

export const routesSchema = z
  .array(routeSchema)
  .default([])
  .meta({ description: 'Where messages go: the first route whose senders and users match sends the message' });

export type RouteConfig = z.infer<typeof routeSchema>;

/** A route resolved for one message. */
export interface ResolvedRoute {
  /** Route name, or `#<index>` (1-based) when unnamed. */
  name: string;
  index: number;
  config: RouteConfig;
  connection: string;
  /** Normalized sending mailbox. */
  mailbox: string;
  transport: 'smtp' | 'graph';
}

export type SenderDecision =
  | { kind: 'ok' }
  | { kind: 'rewrite'; to: string; addresses: string[] }
  | { kind: 'refuse'; address: string; allowed: string };

export interface RouteQuery {
  sender: string;
  relayUser?: string;
  /** Messages mailbridge wrote (null sender): routed by this mailbox. */
  mailbox?: string;
}

export class Router {
  private readonly routes: Array<{ config: RouteConfig; name: string; senders?: SenderRules; users?: Set<string> }>;
  private readonly connections: Record<string, Pick<ConnectionConfig, 'flow' | 'account'>>;

  constructor(routes: readonly RouteConfig[], connections: Record<string, Pick<ConnectionConfig, 'flow' | 'account'>> = {}) {
    this.connections = connections;
    this.routes = routes.map((config, i) => ({
      config,
      name: config.name ?? `#${i + 1}`,
      ...(config.senders ? { senders: new SenderRules(config.senders) } : {}),
      ...(config.users ? { users: new Set(config.users) } : {}),
    }));
  }

  get size(): number {
    return this.routes.length;
  }

  /** Routes whose connection is not configured: `[route name, connection]`. */
  unknownConnections(): Array<[string, string]> {
    return this.routes.filter((r) => !(r.config.connection in this.connections)).map((r) => [r.name, r.config.connection]);
  }

  /** The first matching route, or undefined. */
  resolve(q: RouteQuery): ResolvedRoute | undefined {
    const nullSender = q.sender === '';
    const sender = nullSender ? (q.mailbox ?? '') : q.sender;
    if (nullSender && sender) {
      // A report goes out through the mailbox that sent (or failed to send) the original: the route
      // with that fixed mailbox, whatever it matches on.
      const own = normalizeAddress(sender);
      const i = this.routes.findIndex((r) => r.config.mailbox !== undefined && normalizeAddress(r.config.mailbox) === own);
      const r = this.routes[i];
      if (r) return { name: r.name, index: i, config: r.config, connection: r.config.connection, mailbox: own, transport: r.config.transport };
    }
    for (let i = 0; i < this.routes.length; i++) {
      const r = this.routes[i]!;
      if (r.senders && !(sender && r.senders.allows(sender))) continue;
      // Mail mailbridge writes itself has no relay user; a route limited to users still serves it
      // when its senders match the sending mailbox.
      if (r.users && !nullSender && !(q.relayUser !== undefined && r.users.has(q.relayUser))) continue;
      if (r.users && nullSender && !r.senders) continue;
      const mailbox = this.mailboxOf(r.config, sender);
      if (!mailbox) continue;
      return { name: r.name, index: i, config: r.config, connection: r.config.connection, mailbox, transport: r.config.transport };
    }
    return undefined;
  }

  /** The sending mailbox for a new message (the queue's pacing key); the sender itself when no route matches. */
  mailboxFor(envelope: { sender: string; relayUser?: string }): string {
    return this.resolve(envelope)?.mailbox ?? normalizeAddress(envelope.sender);
  }

  private mailboxOf(config: RouteConfig, sender: string): string | undefined {
    if (config.mailbox) return normalizeAddress(config.mailbox);
    const conn = this.connections[config.connection];
    if (conn && conn.flow !== 'client-credentials' && conn.account) return normalizeAddress(conn.account);
    return sender ? normalizeAddress(sender) : undefined;
  }
}

/**
 * What the route's sender rules say about a message whose envelope sender is `sender` and whose
 * From header names `from` (addresses). Null senders (reports) are not checked on the envelope.
 */
export function senderDecision(route: ResolvedRoute, sender: string, from: readonly string[]): SenderDecision {
  const { sendAs, rewriteFrom } = route.config;
  if (!sendAs && rewriteFrom === false) return { kind: 'ok' };
  const rules = new SenderRules([route.mailbox, ...(sendAs ?? [])]);
  const checked = [...(sender ? [sender] : []), ...from];
  const bad = [...new Map(checked.filter((a) => !rules.allows(a)).map((a) => [normalizeAddress(a), a])).values()];
  if (bad.length === 0) return { kind: 'ok' };
  if (rewriteFrom !== false) return { kind: 'rewrite', to: rewriteFrom === true ? route.mailbox : normalizeAddress(rewriteFrom), addresses: bad };
  return { kind: 'refuse', address: bad[0]!, allowed: rules.described };
}
