/**
 * The long-running gateway: opens the store and serves HTTP (health now; the REST API, sign-in
 * redirects and notification endpoints of later features hang on the same Fastify instance).
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from '../config/index.ts';
import { openStore, type Store } from '../store/index.ts';
import type { Logger } from '../log/index.ts';

export interface Gateway {
  http: FastifyInstance;
  store: Store;
  /** The address actually bound (port 0 in config picks a free port). */
  url: string;
  close(): Promise<void>;
}

export interface GatewayOptions {
  /** The secrets key file resolved against the config file's folder (LoadedConfig.keyFile). */
  keyFile?: string;
}

export async function startGateway(config: Config, log: Logger, options: GatewayOptions = {}): Promise<Gateway> {
  const store = await openStore(config.store);
  const http = Fastify({ loggerInstance: log as FastifyBaseLogger });
  const started = new Date().toISOString();

  http.get('/health', async (_req, reply) => {
    try {
      await store.ping();
      return { status: 'ok', store: store.driver, started };
    } catch (err) {
      return reply.code(503).send({ status: 'failing', store: store.driver, error: (err as Error).message });
    }
  });

  await http.register((await import('./signin.ts')).signinRoutes, { config, store, log, keyFile: options.keyFile });
  await http.listen({ host: config.server.listen, port: config.server.port });
  const addr = http.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.server.port;
  const host = config.server.listen.includes(':') ? `[${config.server.listen}]` : config.server.listen;
  return {
    http,
    store,
    url: `http://${host}:${port}`,
    async close() {
      await http.close();
      await store.close();
    },
  };
}
