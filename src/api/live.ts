/**
 * Live updates: what changed, pushed to the console as server-sent events (GET /api/v1/stream).
 * Any part of the gateway calls `publish(topic, data)` where a change already happens (the relay
 * queue's outcomes, the audit log, the watch service's states); every open stream whose topics
 * include it gets `event: <topic>` with the data as JSON.
 *
 * Strategies and limits: one process-wide hub (publishing needs no handle). Fan-out is bounded:
 * at most MAX_STREAMS streams at once (the next is refused with MB_API_STREAM_BUSY), and a stream
 * whose client does not read (more than MAX_BUFFERED bytes waiting in its socket) is closed instead
 * of buffering without end; EventSource reconnects by itself and the page reads the state afresh.
 * A stream that goes away unsubscribes at once (its 'close'), so no listener outlives its client.
 * Events carry no history: a client that was away re-reads the pages' data, not a replay.
 * Data is scrubbed (src/log/redact.ts) like every other output, although publishers send no secrets.
 */
import type { ServerResponse } from 'node:http';
import { scrub } from '../log/redact.ts';

export const MAX_STREAMS = 64;
/** Bytes waiting in a stream's socket beyond which the client counts as gone. */
export const MAX_BUFFERED = 256 * 1024;
/** A comment line this often keeps proxies and idle timeouts from closing a quiet stream. */
export const HEARTBEAT_MS = 25_000;

export interface LiveEvent {
  /** Increasing within this process (the SSE id). */
  id: number;
  topic: string;
  data: unknown;
}

type Listener = (e: LiveEvent) => void;

class LiveHub {
  private readonly listeners = new Set<Listener>();
  private seq = 0;

  /** Subscribers now (open streams and in-process listeners). */
  get size(): number {
    return this.listeners.size;
  }

  /** Returns the unsubscribe function, or undefined when MAX_STREAMS are already open. */
  subscribe(fn: Listener): (() => void) | undefined {
    if (this.listeners.size >= MAX_STREAMS) return undefined;
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  publish(topic: string, data: unknown): void {
    if (this.listeners.size === 0) return;
    const e: LiveEvent = { id: ++this.seq, topic, data };
    // A failing listener must not keep the others (or the publisher's own work) from going on.
    for (const fn of [...this.listeners]) {
      try {
        fn(e);
      } catch {
        this.listeners.delete(fn);
      }
    }
  }
}

export const live = new LiveHub();

/** Tells every open stream that `topic` changed; `data` says what (an ID, a state), never a secret. */
export function publish(topic: string, data: unknown = {}): void {
  live.publish(topic, data);
}

/** The text of one event on the wire. */
export function sseFrame(e: LiveEvent): string {
  return `id: ${e.id}\nevent: ${e.topic}\ndata: ${scrub(JSON.stringify(e.data ?? {}))}\n\n`;
}

export interface StreamHandle {
  close(): void;
}

/**
 * Serves one stream on a raw response the caller took over (Fastify's reply.hijack()): headers, the
 * events of `topics` (all when empty), a heartbeat, and the clean-up when either side closes.
 * Undefined when the hub is full (nothing was written then).
 */
export function serveStream(res: ServerResponse, topics: ReadonlySet<string>, onClose?: () => void): StreamHandle | undefined {
  let closed = false;
  const write = (text: string) => {
    if (closed) return;
    if (res.writableLength > MAX_BUFFERED) return close();
    res.write(text);
  };
  const unsubscribe = live.subscribe((e) => {
    if (topics.size === 0 || topics.has(e.topic)) write(sseFrame(e));
  });
  if (!unsubscribe) return undefined;
  const heartbeat = setInterval(() => write(': heartbeat\n\n'), HEARTBEAT_MS);
  heartbeat.unref();
  function close(): void {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    unsubscribe!();
    if (!res.writableEnded) res.end();
    onClose?.();
  }
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    // nginx and similar proxies would otherwise hold events back in their buffer.
    'x-accel-buffering': 'no',
  });
  // The browser waits 3 s before reconnecting; the first line also flushes the headers.
  res.write('retry: 3000\n: connected\n\n');
  res.on('close', close);
  res.on('error', close);
  return { close };
}
