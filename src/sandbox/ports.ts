/**
 * The sandbox's ports, pinnable one by one and kept across restarts: an admin who pointed a
 * mailbridge.yaml, a firewall rule or a script at the sandbox expects the same ports after a
 * restart. They live in <dir>/ports.yaml (written after every start, editable by hand; `mailbridge
 * sandbox --port NAME=N` overrides one, 0 asks for any free port).
 *
 * Names: the sandbox's own listeners (Entra ID per cloud, the Exchange fronts, Graph, EWS, the admin
 * API, Dovecot's IMAP/IMAPS/LMTP/submission), and three that only the example mailbridge.yaml uses
 * (relay listener, server.port, the notification listener), so that file stays valid too.
 *
 * A remembered or pinned port that another program holds is refused before anything starts, with
 * the port's name and the way out, instead of a half-started sandbox and EADDRINUSE.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { parse } from 'yaml';
import { MbError } from '../errors/index.ts';
import { portHolder } from '../errors/listen.ts';

export const PORT_NAMES = [
  'entra',
  'entra-gcc',
  'entra-gcc-high',
  'entra-dod',
  'entra-china',
  'smtp',
  'imap',
  'graph',
  'ews',
  'admin',
  'dovecot-imap',
  'dovecot-imaps',
  'dovecot-lmtp',
  'dovecot-submission',
  'relay',
  'serve',
  'notify',
] as const;

export type PortName = (typeof PORT_NAMES)[number];
export type PortMap = Partial<Record<PortName, number>>;

/** Ports the example mailbridge.yaml uses but the sandbox does not bind (a running `serve` may hold them). */
export const CONFIG_ONLY: readonly PortName[] = ['relay', 'serve', 'notify'];

export function isPortName(name: string): name is PortName {
  return (PORT_NAMES as readonly string[]).includes(name);
}

function validPort(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65535;
}

/** The remembered ports; a missing file is an empty map, a broken one a coded error. */
export function readPortsFile(file: string): PortMap {
  if (!existsSync(file)) return {};
  let data: unknown;
  try {
    data = parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new MbError('MB_SANDBOX_PORTS_FILE', { file, detail: (err as Error).message.split('\n')[0] });
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new MbError('MB_SANDBOX_PORTS_FILE', { file, detail: 'not a map of name: port' });
  const out: PortMap = {};
  for (const [name, port] of Object.entries(data)) {
    if (!isPortName(name)) throw new MbError('MB_SANDBOX_PORTS_FILE', { file, detail: `unknown name "${name}" (known: ${PORT_NAMES.join(', ')})` });
    if (!validPort(port)) throw new MbError('MB_SANDBOX_PORTS_FILE', { file, detail: `${name}: ${String(port)} is not a port (0-65535)` });
    out[name] = port;
  }
  return out;
}

export function writePortsFile(file: string, ports: PortMap): void {
  const lines = [
    '# Ports of this sandbox, reused at every start. Change one here or with',
    '# `mailbridge sandbox --port NAME=N` (0: any free port, remembered from then on).',
    ...PORT_NAMES.filter((n) => ports[n] !== undefined).map((n) => `${n}: ${ports[n]}`),
    '',
  ];
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, lines.join('\n'), { mode: 0o644 });
  renameSync(tmp, file);
}

/** `NAME=N` as given on the command line. */
export function parsePortArg(arg: string): [PortName, number] | undefined {
  const m = /^([a-z-]+)=(\d{1,5})$/.exec(arg);
  if (!m || !isPortName(m[1]!) || !validPort(Number(m[2]))) return undefined;
  return [m[1] as PortName, Number(m[2])];
}

/** Whether host:port can be bound now. */
export function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/**
 * Free ports for the example config's own listeners, distinct from each other, picked from below the
 * kernel's ephemeral range. Nothing binds them until `serve` runs, perhaps much later: a port the
 * kernel handed out for port 0 could meanwhile go to any program asking for port 0 or to an outgoing
 * connection; ports below the range go to neither.
 */
export async function freePorts(host: string, count: number, avoid: readonly number[] = []): Promise<number[]> {
  const [low] = ephemeralRange();
  const floor = 10_000;
  const picked: number[] = [];
  const taken = (port: number) => picked.includes(port) || avoid.includes(port);
  for (let tries = 0; picked.length < count && low - floor > 1_000 && tries < 200; tries++) {
    const port = floor + Math.floor(Math.random() * (low - floor));
    if (!taken(port) && (await portFree(host, port))) picked.push(port);
  }
  // A kernel whose ephemeral range starts low leaves no room below it: fall back to port 0, all held
  // open together so that the three differ.
  while (picked.length < count) picked.push(...(await heldTogether(host, count - picked.length)).filter((p) => !taken(p)));
  return picked;
}

function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high) return [low, high];
  } catch {
    // Not Linux: the IANA range.
  }
  return [49_152, 65_535];
}

async function heldTogether(host: string, count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen({ host, port: 0 }, () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Refuse, before starting anything, a pinned or remembered port that is taken. */
export async function requireFree(ports: PortMap, host: string, file: string): Promise<void> {
  for (const name of PORT_NAMES) {
    const port = ports[name];
    if (!port || CONFIG_ONLY.includes(name)) continue;
    const bindHost = name.startsWith('dovecot-') ? '127.0.0.1' : host;
    if (!(await portFree(bindHost, port))) {
      const holder = (await portHolder(port).catch(() => undefined)) ?? 'PID ?';
      throw new MbError('MB_SANDBOX_PORT_BUSY', { name, port, host: bindHost, file, holder });
    }
  }
}
