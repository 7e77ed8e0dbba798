/**
 * The routes of a subscription owner (the Graph watcher, a Graph connector) on its inbound HTTPS
 * listener (facts §4.2–4.4):
 *   POST {path}            change notifications
 *   POST {path}/lifecycle  lifecycle notifications (either route takes both kinds)
 *
 * - `?validationToken=…`: answered at once with 200, text/plain, the token URL-decoded (Fastify's
 *   query parser decodes it), whatever the body; Graph gives 10 seconds.
 * - A notification collection: every item is handed to `accept` (which checks the subscription and
 *   its clientState and only queues work), then 202 — Graph wants an answer within 3 seconds, and
 *   a slow endpoint gets its notifications delayed or dropped, so no Graph call or store write runs
 *   before the answer. What the queued work would have done is not lost when the process dies after
 *   the 202: the folder's delta link still covers it and the restart catches up.
 * - A closed owner answers 503, so Graph retries (for up to 4 hours) instead of dropping.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Graph's notification batches are small; rich notifications carry encrypted content, still well under 4 MB. */
const BODY_LIMIT = 4 * 1024 * 1024;

export interface EndpointHandlers {
  /** Handles one item of a collection; must not block (queue work, return). */
  accept(item: Record<string, unknown>, route: 'notification' | 'lifecycle'): void;
  /** `validationTokens` of a rich notification collection (validated after the answer). */
  tokens?(tokens: string[]): void;
  closed(): boolean;
}

export function registerRoutes(http: FastifyInstance, path: string, h: EndpointHandlers): void {
  const handler = (route: 'notification' | 'lifecycle') => async (req: FastifyRequest, reply: FastifyReply) => {
    const token = (req.query as Record<string, unknown> | undefined)?.validationToken;
    if (typeof token === 'string') return reply.code(200).type('text/plain; charset=utf-8').send(token);
    if (h.closed()) return reply.code(503).send();
    const body = req.body as { value?: unknown; validationTokens?: unknown } | undefined;
    if (!body || typeof body !== 'object' || !Array.isArray(body.value)) return reply.code(400).send();
    for (const item of body.value) {
      if (item && typeof item === 'object' && !Array.isArray(item)) h.accept(item as Record<string, unknown>, route);
    }
    if (Array.isArray(body.validationTokens) && h.tokens) h.tokens(body.validationTokens.filter((t): t is string => typeof t === 'string'));
    return reply.code(202).send();
  };
  http.post(path, { bodyLimit: BODY_LIMIT }, handler('notification'));
  http.post(`${path}/lifecycle`, { bodyLimit: BODY_LIMIT }, handler('lifecycle'));
}
