/**
 * The sandbox's outbound proxy: a small HTTP CONNECT proxy, as corporate proxies (Squid, Zscaler's
 * connector, Blue Coat) look to mailbridge, so that an admin (and the tests) can see which
 * connections took the configured proxy. It counts tunnels per destination (host:port, as asked in
 * the CONNECT line) and can require Basic proxy authentication (407 otherwise).
 *
 * Hand-written on purpose: a CONNECT proxy is one request line and two pipes, and the emulator
 * must not share the product's client code. Limits: CONNECT only (no absolute-form GET; undici,
 * imapflow and mailbridge's tunnels all use CONNECT); loopback by default.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { listenOn, listenServer } from '../errors/listen.ts';

export interface SandboxProxyOptions {
  host?: string;
  port?: number;
  /** Require `Proxy-Authorization: Basic` with this user and password. */
  auth?: { user: string; password: string };
}

export interface SandboxProxy {
  url: string;
  port: number;
  /** Tunnels opened per destination ("host:port"). */
  tunnels(): Record<string, number>;
  /** CONNECT requests refused (407, bad target, unreachable). */
  refused(): number;
  reset(): void;
  close(): Promise<void>;
}

export async function startSandboxProxy(o: SandboxProxyOptions = {}): Promise<SandboxProxy> {
  const counts = new Map<string, number>();
  let refused = 0;
  const sockets = new Set<Duplex>();
  const server: Server = createServer((_req, res) => {
    res.writeHead(405, { allow: 'CONNECT', connection: 'close' }).end('This proxy only tunnels (CONNECT).\n');
  });
  const expected = o.auth ? `Basic ${Buffer.from(`${o.auth.user}:${o.auth.password}`).toString('base64')}` : undefined;

  server.on('connect', (req: IncomingMessage, client: Duplex, head: Buffer) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    const target = req.url ?? '';
    const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(target);
    if (expected && req.headers['proxy-authorization'] !== expected) {
      refused++;
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="sandbox"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    if (!m) {
      refused++;
      client.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const upstream: Socket = connect({ host: m[1]!, port: Number(m[2]) });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.once('connect', () => {
      counts.set(target, (counts.get(target) ?? 0) + 1);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => {
      if (!upstream.readyState || upstream.connecting) {
        refused++;
        client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
      } else {
        client.destroy();
      }
    });
    client.on('close', () => upstream.destroy());
    upstream.on('end', () => client.end());
  });

  await listenOn('sandbox outbound proxy', o.host ?? '127.0.0.1', o.port ?? 0, () => listenServer(server, o.port ?? 0, o.host ?? '127.0.0.1'));
  const port = (server.address() as AddressInfo).port;
  const host = o.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    tunnels: () => Object.fromEntries(counts),
    refused: () => refused,
    reset() {
      counts.clear();
      refused = 0;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
