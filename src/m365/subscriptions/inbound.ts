/**
 * The inbound HTTPS listener Microsoft calls back (Graph change notifications, EWS push), and the
 * settings that describe it: the public URL Microsoft uses and where mailbridge listens. The watch
 * service (notify.watch.publicUrl / listen) and a Graph connector (connectors.<name>.source.
 * notifications) use the same two settings and the same listener, built here.
 *
 * No line is logged per request: Graph and EWS call once per change of every watched mailbox.
 * Without certFile/keyFile the listener speaks plain HTTP, for a TLS-terminating reverse proxy in
 * front (Microsoft only calls https:// URLs).
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { listenOn } from '../../errors/listen.ts';
import type { Logger } from '../../log/index.ts';
import { publicUrlOf, type ListenConfig } from './listen.ts';

export interface Inbound {
  /** Register routes here before `listen()`. */
  http: FastifyInstance;
  /** How Microsoft reaches `http` (no trailing slash). */
  publicUrl: string;
  /** Binds host:port; a failure is MB_PORT_IN_USE & co. naming `setting`. Resolves with the bound URL. */
  listen(): Promise<string>;
  listening(): boolean;
  close(): Promise<void>;
}

export interface InboundOptions {
  listen: ListenConfig;
  /** Default: https://<listen.host>:<listen.port>. */
  publicUrl?: string | undefined;
  /** The setting that names this listener in errors, e.g. notify.watch.listen. */
  setting: string;
  log: Logger;
  readFile: (path: string) => string;
}

export function createInbound(o: InboundOptions): Inbound {
  const { listen } = o;
  const tls = listen.certFile && listen.keyFile ? { cert: o.readFile(listen.certFile), key: o.readFile(listen.keyFile) } : undefined;
  // (Fastify 5 deprecates the top-level disableRequestLogging and warns on every start.)
  const common = { loggerInstance: o.log as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }), bodyLimit: 4 * 1024 * 1024 };
  const http = tls ? Fastify({ ...common, https: tls }) : Fastify(common);
  const publicUrl = publicUrlOf(listen, o.publicUrl);
  return {
    http,
    publicUrl,
    listen: () => listenOn(o.setting, listen.host, listen.port, () => http.listen({ host: listen.host, port: listen.port })),
    listening: () => http.server.listening,
    close: () => http.close(),
  };
}
