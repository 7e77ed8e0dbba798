import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as full from 'undici';
import { Agent, buildConnector, Client, EnvHttpProxyAgent, fetch, request } from '../../src/net/undici.ts';

const ROOT = join(import.meta.dirname, '..', '..');

test("the parts are undici's own, the same objects its index exports (an undici release that moves a file fails here)", () => {
  assert.equal(Agent, full.Agent);
  assert.equal(Client, full.Client);
  assert.equal(EnvHttpProxyAgent, full.EnvHttpProxyAgent);
  assert.equal(buildConnector, full.buildConnector);
  assert.equal(typeof new Agent().request, 'function');
});

test('request sends method, path with query and body through the given dispatcher; fetch answers too', async (t) => {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${body}`);
      res.end('ok');
    });
  }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const dispatcher = new Agent();
  t.after(async () => {
    await dispatcher.close();
    server.close();
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const res = await request(`${base}/a/b?x=1&y=2`, { method: 'POST', body: 'hello', dispatcher });
  assert.equal(res.statusCode, 200);
  assert.equal(await res.body.text(), 'ok');
  const put = await request(new URL(`${base}/c`), { body: 'b', dispatcher });
  await put.body.dump();
  const got = await fetch(`${base}/d?z=3`, { dispatcher });
  assert.equal(await got.text(), 'ok');
  assert.deepEqual(seen, ['POST /a/b?x=1&y=2 hello', 'PUT /c b', 'GET /d?z=3 ']);
});

test("loading them (and making a request) does not load Node's own copy of undici, which undici's index pulls in", () => {
  const script = `
    const { Agent, request } = await import(${JSON.stringify(join(ROOT, 'src', 'net', 'undici.ts'))});
    const dispatcher = new Agent();
    await request('http://127.0.0.1:9/', { dispatcher, headersTimeout: 500 }).catch(() => undefined);
    await dispatcher.close();
    console.log(JSON.stringify(process.moduleLoadList.filter((m) => m.includes('deps/undici'))));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out), []);
  // The check can fail: the index does load it.
  const index = execFileSync(process.execPath, ['--input-type=module', '-e', `await import('undici'); console.log(JSON.stringify(process.moduleLoadList.filter((m) => m.includes('deps/undici'))));`], { encoding: 'utf8', cwd: ROOT });
  assert.notDeepEqual(JSON.parse(index), []);
});
