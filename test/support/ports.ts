/**
 * A free loopback port, for what must know its port before it listens (a redirect URI, a config
 * file, a child process). Servers the test starts itself listen on port 0 instead.
 *
 * Picked as the sandbox picks its example config's ports (src/sandbox/ports.ts): below the kernel's
 * ephemeral range, so nothing that listens on port 0 meanwhile — a Dovecot another test file starts
 * at the same moment — can take it before its user binds it. A port is handed out once per process.
 */
import { freePorts } from '../../src/sandbox/ports.ts';

const given = new Set<number>();

export async function freePort(): Promise<number> {
  const [port] = await freePorts('127.0.0.1', 1, [...given]);
  given.add(port!);
  return port!;
}
