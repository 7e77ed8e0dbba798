/**
 * Destinations behind one interface (types.ts `Destination`): SMTP/LMTP to a local mail server, a
 * maildir, an HTTP receiver, or a command. Each file exports its plug-in (the factory from its
 * section of the configuration); `createDestination` builds the one the connector's `destination`
 * names from the registry the composition root filled (src/app/plugins.ts).
 */
import type { DestinationConfig } from '../config.ts';
import type { Destination, DestinationContext, DestinationPlugin, DestinationRegistry } from '../types.ts';

export { commandDestination, commandDestinationPlugin } from './command.ts';
export { httpDestination, httpDestinationPlugin, verifySignature, signBody, buildBody, type HttpMessageBody } from './http.ts';
export { maildirDestination, maildirDestinationPlugin, maildirFileName } from './maildir.ts';
export { smtpDestination, smtpDestinationPlugin, recipientsFor, envelopeFrom } from './smtp.ts';
export type { DestinationContext } from '../types.ts';

export function createDestination(c: DestinationConfig, ctx: DestinationContext, registry: DestinationRegistry): Destination {
  // The registry is keyed by kind, so the plug-in found takes exactly this kind's section.
  return (registry[c.kind] as DestinationPlugin)(c, ctx);
}
