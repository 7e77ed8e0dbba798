/**
 * A free loopback port, for what must know its port before it listens (a redirect URI, a config
 * file, a child process). Servers the test starts itself listen on port 0 instead.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';

// The kernel may hand the port just closed to the next listen(0): two calls in a row for two
// servers that have not started yet could get the same port. A port is handed out once per process.
const given = new Set<number>();

export async function freePort(): Promise<number> {
  for (;;) {
    const s = createServer();
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    const port = (s.address() as AddressInfo).port;
    s.close();
    await once(s, 'close');
    if (!given.has(port)) {
      given.add(port);
      return port;
    }
  }
}
