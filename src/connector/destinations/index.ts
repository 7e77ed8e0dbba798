/**
 * Destinations behind one interface (types.ts `Destination`): SMTP/LMTP to a local mail server, a
 * maildir, an HTTP receiver, or a command. Built from the connector's `destination` section.
 */
import type { Logger } from '../../log/index.ts';
import type { DestinationConfig } from '../config.ts';
import type { Destination } from '../types.ts';
import { commandDestination } from './command.ts';
import { httpDestination } from './http.ts';
import { maildirDestination } from './maildir.ts';
import { smtpDestination } from './smtp.ts';

export { commandDestination } from './command.ts';
export { httpDestination, verifySignature, signBody, buildBody, type HttpMessageBody } from './http.ts';
export { maildirDestination, maildirFileName } from './maildir.ts';
export { smtpDestination, recipientsFor, envelopeFrom } from './smtp.ts';

export interface DestinationContext {
  connector: string;
  /** Window size: a pooled SMTP/LMTP transport keeps this many connections. */
  window: number;
  log?: Logger;
  /** Turns a stored secret (enc:v1:… or plain) into its clear value. */
  reveal?: (stored: string, field: string) => string;
}

export function createDestination(c: DestinationConfig, ctx: DestinationContext): Destination {
  const reveal = ctx.reveal ?? ((s: string) => s);
  switch (c.kind) {
    case 'lmtp':
    case 'smtp':
      return smtpDestination({
        connector: ctx.connector,
        protocol: c.kind,
        host: c.host,
        port: c.port,
        tls: c.tls,
        caFile: c.caFile,
        auth: c.auth ? { user: c.auth.user, pass: reveal(c.auth.pass, 'destination.auth.pass') } : undefined,
        recipients: c.recipients,
        from: c.from,
        name: c.name,
        maxConnections: ctx.window,
        timeoutMs: c.timeoutSeconds * 1000,
        deliveryIdHeader: c.deliveryIdHeader,
        log: ctx.log,
      });
    case 'maildir':
      return maildirDestination({ connector: ctx.connector, path: c.path, create: c.create });
    case 'http':
      return httpDestination({
        connector: ctx.connector,
        url: c.url,
        secret: reveal(c.secret, 'destination.secret'),
        timeoutMs: c.timeoutSeconds * 1000,
        headers: c.headers,
        includeRaw: c.includeRaw,
      });
    case 'command':
      return commandDestination({ connector: ctx.connector, command: c.command, timeoutMs: c.timeoutSeconds * 1000, env: c.env });
  }
}
