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
import { z } from 'zod';
import { listenOn } from '../../errors/listen.ts';
import type { Logger } from '../../log/index.ts';

/** The public https:// URL Microsoft calls (validated: Microsoft refuses any other scheme). */
export function publicUrlField(description: string) {
  return z
    .url()
    .refine((u) => u.startsWith('https://'), { message: 'Microsoft only calls https:// URLs / Microsoft ruft nur https://-URLs auf' })
    .meta({ description });
}

export const DEFAULT_LISTEN = { host: '0.0.0.0', port: 8443 } as const;

/** Where the inbound listener binds, and its certificate. */
export function listenSchema() {
  return z
    .object({
      host: z.string().default(DEFAULT_LISTEN.host),
      port: z.int().min(0).max(65535).default(DEFAULT_LISTEN.port),
      certFile: z.string().optional().meta({ description: 'TLS certificate chain (PEM) of the public name; without it the listener speaks plain HTTP for a TLS-terminating proxy' }),
      keyFile: z.string().optional().meta({ description: 'Its private key (PEM)' }),
    })
    .strict();
}

export type ListenConfig = z.infer<ReturnType<typeof listenSchema>>;

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

/**
 * The URL Microsoft calls for a listener: the configured public URL, else the listener itself
 * (0.0.0.0 as 127.0.0.1), without a trailing slash. `mailbridge check` probes this same URL.
 */
export function publicUrlOf(listen: ListenConfig, publicUrl?: string): string {
  return (publicUrl ?? `https://${listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host}:${listen.port}`).replace(/\/+$/, '');
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
