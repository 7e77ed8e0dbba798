/**
 * The shared Graph client against a local stand-in: a token asked for every request, 429/503/504
 * waited out by Retry-After (or handed back at once when the caller defers), never more than 4
 * requests per mailbox in flight whatever is configured, and no answer → GraphUnreachable.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GraphClient, GraphUnreachable } from '../../src/m365/graph.ts';

async function standIn(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('a token per request; 504 and 429 are waited out by Retry-After; with no retries the answer comes back with the wait', async () => {
  const seen: Array<{ path: string; auth: string }> = [];
  const script = [504, 429, 200];
  const s = await standIn((req, res) => {
    seen.push({ path: req.url ?? '', auth: String(req.headers.authorization) });
    const status = script.shift() ?? 200;
    res.writeHead(status, { 'content-type': 'application/json', 'retry-after': '1', 'request-id': `r-${seen.length}` }).end(JSON.stringify(status === 200 ? { ok: true } : { error: { code: 'TooManyRequests', message: 'slow down' } }));
  });
  let n = 0;
  const waits: Array<[number, number]> = [];
  const c = new GraphClient({ baseUrl: `${s.url}/v1.0/`, tokens: async () => `token-${++n}`, onThrottle: (_m, status, ms) => waits.push([status, ms]) });
  try {
    const r = await c.call('Anna@contoso.com', 'GET', c.url('Anna@contoso.com', '/mailFolders/inbox'));
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { ok: true });
    assert.equal(r.requestId, 'r-3');
    assert.deepEqual(waits, [[504, 1000], [429, 1000]]);
    assert.deepEqual(seen.map((x) => x.path), Array(3).fill('/v1.0/users/Anna%40contoso.com/mailFolders/inbox'), 'one /v1.0, however the base URL was written');
    assert.deepEqual(seen.map((x) => x.auth), ['Bearer token-1', 'Bearer token-2', 'Bearer token-3']);

    script.push(503);
    const deferred = new GraphClient({ baseUrl: s.url, tokens: async () => 't', throttleRetries: 0 });
    const d = await deferred.call('anna@contoso.com', 'POST', '/users/anna@contoso.com/sendMail', { raw: { data: 'TUlNRQ==', contentType: 'text/plain' } });
    assert.equal(d.status, 503);
    assert.equal(d.retryAfterMs, 1000);
    await deferred.close();
  } finally {
    await c.close();
    await s.close();
  }
});

test('at most 4 requests per mailbox in flight even when more are configured; other mailboxes are not held up', async () => {
  const held: ServerResponse[] = [];
  let arrived = 0;
  const s = await standIn((req, res) => {
    if (req.url?.includes('bob')) return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    arrived++;
    held.push(res);
  });
  const waitFor = async (n: number) => {
    const end = Date.now() + 10_000;
    while (arrived < n && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  };
  const release = () => held.splice(0).forEach((r) => r.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  const c = new GraphClient({ baseUrl: s.url, tokens: async () => 't', perMailbox: 10 });
  try {
    const calls = Array.from({ length: 7 }, () => c.call('anna@contoso.com', 'GET', c.url('anna@contoso.com', '/messages')));
    await waitFor(4);
    assert.equal(held.length, 4);
    assert.equal(c.inFlight('ANNA@contoso.com'), 4);
    assert.equal((await c.call('bob@contoso.com', 'GET', c.url('bob@contoso.com', '/messages'))).status, 200);
    assert.equal(arrived, 4, 'the fifth request waited for a slot');
    release();
    await waitFor(7);
    release();
    assert.deepEqual([...new Set((await Promise.all(calls)).map((r) => r.status))], [200]);
    assert.equal(c.inFlight('anna@contoso.com'), 0);
  } finally {
    await c.close();
    await s.close();
  }
});

test('no HTTP answer is GraphUnreachable with the socket error', async () => {
  const s = await standIn(() => undefined);
  const url = s.url;
  await s.close();
  const c = new GraphClient({ baseUrl: url, tokens: async () => 't' });
  try {
    await assert.rejects(c.call('anna@contoso.com', 'GET', '/users/anna@contoso.com'), (e: unknown) => e instanceof GraphUnreachable && e.code === 'ECONNREFUSED');
  } finally {
    await c.close();
  }
});
