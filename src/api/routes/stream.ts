/**
 * GET /api/v1/stream: the live updates of live.ts as server-sent events, authenticated like every
 * route (read scope). `topics` narrows the stream (queue, audit, watcher, connector, …); without
 * it the client gets every topic. Each event's data says what changed; the console then reads the
 * affected data again through the API's own routes.
 */
import { z } from 'zod';
import { MbError } from '../../errors/index.ts';
import { live, MAX_STREAMS, serveStream, type StreamHandle } from '../live.ts';
import { route, type RouteSpec } from '../route.ts';

/** Streams open on this gateway, ended when it closes (an open stream would keep the server from closing). */
export class OpenStreams {
  private readonly open = new Set<StreamHandle>();

  add(h: StreamHandle): void {
    this.open.add(h);
  }

  remove(h: StreamHandle): void {
    this.open.delete(h);
  }

  closeAll(): void {
    for (const h of [...this.open]) h.close();
  }
}

export function streamRoutes(streams: OpenStreams): RouteSpec[] {
  return [
    route({
      method: 'GET',
      path: '/api/v1/stream',
      scope: 'read',
      tag: 'live',
      summary: {
        en: 'Live updates as server-sent events: event = topic (queue, audit, watcher, …), data = JSON saying what changed',
        de: 'Live-Aktualisierungen als Server-Sent Events: event = Thema (queue, audit, watcher, …), data = JSON mit dem, was sich geändert hat',
      },
      query: z.object({
        topics: z
          .string()
          .regex(/^[a-z]+(,[a-z]+)*$/, 'expected topics separated by commas, e.g. queue,audit')
          .optional()
          .meta({ description: 'Only these topics, comma-separated (default: all)' }),
      }),
      status: 200,
      produces: 'text/event-stream',
      errors: [503],
      async handler({ query, reply }) {
        const topics = new Set(query.topics ? query.topics.split(',') : []);
        // Checked before the reply is taken over, so the refusal is an ordinary MB error answer.
        if (live.size >= MAX_STREAMS) throw new MbError('MB_API_STREAM_BUSY', { max: MAX_STREAMS });
        reply.hijack();
        const handle: StreamHandle | undefined = serveStream(reply.raw, topics, () => {
          if (handle) streams.remove(handle);
        });
        if (!handle) return reply.raw.end();
        streams.add(handle);
      },
    }),
  ];
}
