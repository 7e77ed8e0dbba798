/**
 * A free loopback port, for what must know its port before it listens (a redirect URI, a config
 * file, a child process). Servers the test starts itself listen on port 0 instead.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';

export async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  s.close();
  await once(s, 'close');
  return port;
}
