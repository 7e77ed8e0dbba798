/**
 * Operations endpoints on the gateway's HTTP server (server.listen, loopback by default):
 *  - GET /metrics: Prometheus text format (src/metrics). With server.metricsToken set, only with
 *    `Authorization: Bearer <token>` (401 otherwise); without it open to whoever reaches
 *    server.listen, which is fine on the loopback default and what a local Prometheus agent expects.
 *  - GET /health/live: the process is up and serving HTTP; nothing else is checked (a liveness
 *    probe that restarts a gateway because Entra ID is down would only make things worse).
 *  - GET /health/ready: 200 only when the store answers a query, every relay listener is
 *    listening, the watchers' inbound listener (notify.watch.listen) too, and every connection's
 *    last token request succeeded. A connection that has not
 *    requested a token yet counts as fine: readiness does not ask Entra ID itself (a probe every few
 *    seconds would be a token request storm), and a delegated connection nobody signed in yet would
 *    otherwise keep the gateway from ever being ready. 503 lists each failing part with its MB code,
 *    cause and fix in the language of Accept-Language. A token failure reports the token's own code
 *    (e.g. AADSTS7000215 → MB_CLIENT_SECRET_INVALID), which carries the fix.
 *  - GET /health stays as it was (store ping) so existing probes keep working.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { MbError } from '../errors/index.ts';
import { langFromHeader, type Lang } from '../i18n/index.ts';
import type { Metrics } from '../metrics/index.ts';
import type { Store } from '../store/index.ts';

export interface ReadinessParts {
  store: Store;
  /** Configured listeners besides the HTTP server itself: the config key, host:port, and whether the socket is bound. */
  listeners: () => Array<{ setting: string; name: string; listening: boolean }>;
  /** The configured connections. */
  connections: string[];
  metrics: Metrics;
}

export interface ReadinessProblem {
  /** What failed: `store`, `relay.listeners.<host:port>`, `notify.watch.listen.<host:port>`, `connections.<name>`. */
  part: string;
  code: string;
  title: string;
  cause: string;
  fix: string;
}

export async function readiness(p: ReadinessParts, lang: Lang): Promise<ReadinessProblem[]> {
  const out: ReadinessProblem[] = [];
  const add = (part: string, e: MbError) => {
    const x = e.explain(lang);
    out.push({ part, code: x.code, title: x.title, cause: x.cause, fix: x.fix });
  };
  try {
    await p.store.ping();
  } catch (err) {
    add('store', new MbError('MB_HEALTH_STORE_DOWN', { driver: p.store.driver, detail: (err as Error).message }));
  }
  for (const l of p.listeners()) if (!l.listening) add(`${l.setting}.${l.name}`, new MbError('MB_HEALTH_LISTENER_DOWN', { listener: l.name, setting: l.setting }));
  for (const c of p.connections) {
    const last = p.metrics.lastToken.get(c);
    if (last && !last.ok && last.error) add(`connections.${c}`, last.error);
  }
  return out;
}

export function operationsRoutes(http: FastifyInstance, o: ReadinessParts & { metricsToken?: string }): void {
  const expected = o.metricsToken ? Buffer.from(`Bearer ${o.metricsToken}`) : undefined;
  http.get('/metrics', async (req, reply) => {
    if (expected) {
      const given = Buffer.from(req.headers.authorization ?? '');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        const x = new MbError('MB_METRICS_UNAUTHORIZED', {}).explain(langFromHeader(req.headers['accept-language']));
        return reply.code(401).header('www-authenticate', 'Bearer').send({ error: x });
      }
    }
    const { contentType, body } = await o.metrics.render();
    return reply.header('content-type', contentType).send(body);
  });
  http.get('/health/live', async () => ({ status: 'ok' }));
  http.get('/health/ready', async (req, reply) => {
    const problems = await readiness(o, langFromHeader(req.headers['accept-language']));
    if (problems.length === 0) return { status: 'ready' };
    return reply.code(503).send({ status: 'not-ready', problems });
  });
}
