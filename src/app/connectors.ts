/**
 * The connector's registry: source and destination kinds (see plugins.ts for the pattern). Apart
 * from plugins.ts because only `mailbridge fetch` runs connectors: `serve` and the relay do not load
 * IMAP, MIME parsing or the destinations' clients.
 */
import {
  commandDestinationPlugin,
  graphSourcePlugin,
  httpDestinationPlugin,
  imapSourcePlugin,
  maildirDestinationPlugin,
  smtpDestinationPlugin,
  type ConnectorPlugins,
} from '../connector/index.ts';

/** connectors.<name>.source.kind and connectors.<name>.destination.kind */
export const connectorPlugins: ConnectorPlugins = {
  sources: { imap: imapSourcePlugin, graph: graphSourcePlugin },
  destinations: {
    smtp: smtpDestinationPlugin,
    lmtp: smtpDestinationPlugin,
    maildir: maildirDestinationPlugin,
    http: httpDestinationPlugin,
    command: commandDestinationPlugin,
  },
};
