/**
 * GET /api/v1/stream (server-sent events from src/api/live.ts): authenticated like every route,
 * an audited change arrives as an `audit` event, topics narrow the stream, a client that goes away
 * leaves no subscriber behind, a client that stops reading is dropped instead of buffered without
 * end, the hub refuses streams beyond MAX_STREAMS with an MB code, and closing the gateway ends
 * the open streams (an open stream would otherwise keep the server from closing).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { configSchema } from '../../../src/app/schema.ts';
import { registerAdminApi, WATCH_LIVE_MS } from '../../../src/api/index.ts';
import { live, MAX_BUFFERED, MAX_STREAMS, publish } from '../../../src/api/live.ts';
import { tempStore } from '../../notify/helpers.ts';
import { waitFor } from '../../support/wait.ts';

const ADMIN = randomBytes(24).toString('base64url');
const READ = randomBytes(24).toString('base64url');
const SUBS = randomBytes(24).toString('base64url');

async function gateway(): Promise<{ http: FastifyInstance; url: string; cleanup(): Promise<void> }> {
  const t = await tempStore();
  const config = configSchema.parse({ connections: {} });
  const http = Fastify();
  await registerAdminApi(http, {
    config,
    store: t.store,
    keys: [
      { name: 'ops', key: ADMIN, scopes: ['admin'] },
      { name: 'viewer', key: READ, scopes: ['read'] },
      { name: 'subscriber', key: SUBS, scopes: ['subscriptions'] },
    ],
  });
  const url = await http.listen({ host: '127.0.0.1', port: 0 });
  return {
    http,
    url,
    async cleanup() {
      await http.close();
      await t.cleanup();
    },
  };
}

/** Reads SSE frames from a fetch body until `until` holds for one; returns the frames read. */
async function readEvents(body: ReadableStream<Uint8Array>, until: (e: { event: string; data: string }) => boolean): Promise<Array<{ event: string; data: string }>> {
  const reader = body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const out: Array<{ event: string; data: string }> = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended before the event came; read: ${JSON.stringify(out)}`);
    buf += dec.decode(value, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const event = /^event: (.*)$/m.exec(frame)?.[1];
      const data = /^data: (.*)$/m.exec(frame)?.[1];
      if (event === undefined || data === undefined) continue;
      out.push({ event, data });
      if (until(out.at(-1)!)) {
        reader.releaseLock();
        return out;
      }
    }
  }
}

test('the stream needs a key with the read scope; an audited change arrives as an audit event; a closed client leaves no subscriber', async () => {
  const g = await gateway();
  try {
    const refused = await fetch(`${g.url}/api/v1/stream`);
    assert.equal(refused.status, 401);
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'MB_API_UNAUTHORIZED');

    const lacking = await fetch(`${g.url}/api/v1/stream`, { headers: { authorization: `Bearer ${SUBS}` } });
    assert.equal(lacking.status, 403);
    assert.equal(((await lacking.json()) as { error: { code: string } }).error.code, 'MB_API_FORBIDDEN');

    const before = live.size;
    const ac = new AbortController();
    // The read scope is enough to watch.
    const res = await fetch(`${g.url}/api/v1/stream?topics=audit`, { headers: { authorization: `Bearer ${READ}` }, signal: ac.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    await waitFor(() => live.size === before + 1, 5_000, 'the stream to subscribe');
    // A topic the stream did not ask for is not sent: the audit event is the first one it sees.
    publish('queue', { id: 'NOT-ASKED-FOR' });
    // An unknown connector: refused (404) but audited, which is what the console's audit page shows.
    const change = await fetch(`${g.url}/api/v1/connectors/nope/retry-rejected`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(change.status, 404);
    const events = await readEvents(res.body!, (e) => e.event === 'audit');
    assert.equal(events.length, 1, JSON.stringify(events));
    const entry = JSON.parse(events[0]!.data) as { who: string; action: string; status: number; code: string };
    assert.deepEqual([entry.who, entry.action, entry.status, entry.code], ['ops', 'POST /api/v1/connectors/{name}/retry-rejected', 404, 'MB_API_UNKNOWN_NAME']);

    ac.abort();
    await waitFor(() => live.size === before, 5_000, () => `the closed stream to unsubscribe (${live.size} subscribers)`);
  } finally {
    await g.cleanup();
  }
});

test('a client that stops reading is dropped; beyond MAX_STREAMS the stream is refused with MB_API_STREAM_BUSY', async () => {
  const g = await gateway();
  const fillers: Array<() => void> = [];
  try {
    const before = live.size;
    const { port } = new URL(g.url);
    // A raw socket that never reads: what a hung browser tab or a stuck proxy looks like to the server.
    const sock = connect(Number(port), '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(`GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\n\r\n`);
    sock.pause();
    await waitFor(() => live.size === before + 1, 5_000, 'the stream to subscribe');
    const chunk = 'x'.repeat(64 * 1024);
    // Far more than MAX_BUFFERED plus what the kernel's socket buffers absorb.
    await waitFor(() => {
      for (let i = 0; i < 16; i++) publish('queue', { chunk });
      return live.size === before;
    }, 20_000, () => `the unread stream to be dropped (${live.size} subscribers, bound ${MAX_BUFFERED} bytes)`);
    sock.destroy();

    while (live.size < MAX_STREAMS) {
      const off = live.subscribe(() => undefined);
      assert.ok(off);
      fillers.push(off);
    }
    const busy = await fetch(`${g.url}/api/v1/stream`, { headers: { authorization: `Bearer ${ADMIN}`, 'accept-language': 'de' } });
    assert.equal(busy.status, 503);
    const body = (await busy.json()) as { error: { code: string; cause: string } };
    assert.equal(body.error.code, 'MB_API_STREAM_BUSY');
    assert.match(body.error.cause, new RegExp(`${MAX_STREAMS} Live-Aktualisierungs-Streams`));
  } finally {
    for (const off of fillers) off();
    await g.cleanup();
  }
});

test('closing the gateway ends its open streams', async () => {
  const g = await gateway();
  const res = await fetch(`${g.url}/api/v1/stream`, { headers: { authorization: `Bearer ${ADMIN}` } });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  await g.cleanup();
  // Without the preClose hook http.close() waits for this client and the test times out here.
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
  }
  assert.equal(g.http.server.listening, false);
});

test('the watchers’ states are published as a watcher event when they change', async () => {
  const t = await tempStore();
  const http = Fastify();
  const states = { watching: 1, 'catching-up': 1 };
  const status = () => ({ updatedAt: new Date().toISOString(), groups: [{ group: 'legacy', kind: 'imap', listeners: 1, mailboxes: 2, states: { ...states } }], attention: [], problems: [] });
  await registerAdminApi(http, {
    config: configSchema.parse({ connections: {} }),
    store: t.store,
    keys: [{ name: 'ops', key: ADMIN, scopes: ['admin'] }],
    watch: { watchers: [], status, mailboxes: () => [], close: async () => undefined },
  });
  const seen: Array<Record<string, unknown>> = [];
  const off = live.subscribe((e) => {
    if (e.topic === 'watcher') seen.push(e.data as Record<string, unknown>);
  })!;
  try {
    await http.ready();
    await waitFor(() => seen.length === 1, 3 * WATCH_LIVE_MS, 'the first watcher event');
    states.watching = 2;
    delete (states as Record<string, number>)['catching-up'];
    await waitFor(() => seen.length === 2, 3 * WATCH_LIVE_MS, 'the event of the change');
    assert.deepEqual(seen[1], { groups: [{ group: 'legacy', states: { watching: 2 } }] });
  } finally {
    off();
    await http.close();
    await t.cleanup();
  }
});

test('a connector’s checkpoint moved by another process (mailbridge fetch on the same store) is published as a connector event', async () => {
  const t = await tempStore();
  const http = Fastify();
  const config = { ...configSchema.parse({ connections: {} }), connectors: { scans: {} as never } };
  await registerAdminApi(http, { config, store: t.store, keys: [{ name: 'ops', key: ADMIN, scopes: ['admin'] }] });
  const seen: Array<Record<string, unknown>> = [];
  const off = live.subscribe((e) => {
    if (e.topic === 'connector') seen.push(e.data as Record<string, unknown>);
  })!;
  try {
    await http.ready();
    const scope = { connector: 'scans', mailbox: 'scanner@contoso.test', folder: 'INBOX' };
    await t.store.checkpoints.setEpoch(scope, '7', 0);
    // Deliveries go on as a running connector's would; one of them comes after the feed's first look.
    let n = 0;
    await waitFor(
      async () => {
        n++;
        await t.store.checkpoints.record(scope, { epoch: '7', item: String(n), key: `<m${n}@contoso.test>`, state: 'delivered', size: 10 }, { position: n });
        return seen.length > 0;
      },
      4 * WATCH_LIVE_MS,
      'a connector event',
      500,
    );
    assert.equal(seen[0]!.connector, 'scans');
    assert.ok(typeof seen[0]!.delivered === 'number' && seen[0]!.delivered >= 1, JSON.stringify(seen[0]));
  } finally {
    off();
    await http.close();
    await t.cleanup();
  }
});
