/**
 * Starting a listener: every TCP listener mailbridge opens (gateway, relay listeners, the notify
 * inbound listener, the sandbox's fronts) starts through `listenOn`, so a port that cannot be bound
 * is a coded error naming the port, and — where the system shows it — who holds it, never a bare
 * EADDRINUSE that surfaces as MB_INTERNAL.
 *
 * Who holds a port: /proc/net/tcp and tcp6 give the inode of the listening socket, /proc/<pid>/fd
 * the process that has it open (only processes this user may inspect); without /proc, `ss -ltnp`
 * when it is installed. The search runs only after a bind failed.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, readlink } from 'node:fs/promises';
import type { Server } from 'node:net';
import { MbError } from './index.ts';

const CODES: Record<string, 'MB_PORT_IN_USE' | 'MB_PORT_NOT_PERMITTED' | 'MB_ADDRESS_NOT_AVAILABLE'> = {
  EADDRINUSE: 'MB_PORT_IN_USE',
  EACCES: 'MB_PORT_NOT_PERMITTED',
  EADDRNOTAVAIL: 'MB_ADDRESS_NOT_AVAILABLE',
};

/** The errno code of a bind failure, also when a library wrapped it (error.cause). */
function errnoOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code in CODES) return code;
  }
  return undefined;
}

/**
 * Runs `start` (which binds host:port); a bind failure becomes MB_PORT_IN_USE (with the holder),
 * MB_PORT_NOT_PERMITTED or MB_ADDRESS_NOT_AVAILABLE. `what` names the listener as the admin knows
 * it: the setting (server.port, relay.listeners[0]) or the sandbox part.
 */
export async function listenOn<T>(what: string, host: string, port: number, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    const errno = errnoOf(err);
    if (!errno) throw err;
    const code = CODES[errno]!;
    const holder = code === 'MB_PORT_IN_USE' ? ((await portHolder(port).catch(() => undefined)) ?? 'PID ?') : '';
    throw new MbError(code, { what, host, port, holder }, { cause: err });
  }
}

/** net.Server.listen as a promise that rejects with the bind error (for listenOn). */
export function listenServer(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

/** "PID 4711 (node …/main.ts serve)" for the process listening on TCP `port`, or undefined. */
export async function portHolder(port: number): Promise<string | undefined> {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const inodes = new Set<string>();
  let proc = false;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    proc = true;
    // sl local_address rem_address st … inode: the port is the hex after the colon, 0A is LISTEN.
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && cols[1]!.endsWith(hex) && cols[3] === '0A') inodes.add(cols[9]!);
    }
  }
  if (proc) {
    if (inodes.size === 0) return undefined;
    for (const pid of await readdir('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      let fds: string[];
      try {
        fds = await readdir(`/proc/${pid}/fd`);
      } catch {
        continue; // another user's process
      }
      for (const fd of fds) {
        const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
        const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
        if (inode && inodes.has(inode)) return `PID ${pid} (${await commandOf(pid)})`;
      }
    }
    return undefined;
  }
  return ssHolder(port);
}

async function commandOf(pid: string): Promise<string> {
  const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  const cmd = raw.split('\0').filter(Boolean).join(' ');
  return cmd.length > 100 ? `${cmd.slice(0, 97)}…` : cmd || '?';
}

function ssHolder(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('ss', ['-Hltnp', `sport = :${port}`], { timeout: 2000 }, (err, stdout) => {
      if (err) return resolve(undefined);
      const m = /users:\(\("([^"]+)",pid=(\d+)/.exec(stdout);
      resolve(m ? `PID ${m[2]} (${m[1]})` : undefined);
    });
  });
}
