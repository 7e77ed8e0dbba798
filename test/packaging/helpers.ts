/**
 * Helpers of the packaging tests: processes watched by their output (no fixed waits), the
 * machine's own older Node (the launcher's child mode needs one), and commands run to completion.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const repo = fileURLToPath(new URL('../..', import.meta.url));
/** The project's Node 24 (node_modules/.bin/node). */
export const node24 = `${repo}node_modules/node/bin/node`;

/**
 * A Node older than 24 from the machine (Debian's or NodeSource's /usr/bin/node). CI has one
 * (the system Node 20); a machine without one cannot test the launcher's child mode, and says so.
 */
export function oldNode(): string {
  const path = '/usr/bin/node';
  if (!existsSync(path)) throw new Error('no /usr/bin/node: the launcher tests need a Node older than 24 on the machine');
  const major = Number(spawnSync(path, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).stdout.trim());
  if (!(major < 24)) throw new Error(`/usr/bin/node is Node ${major}; the launcher tests need one older than 24`);
  return path;
}

export interface Watched {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout+stderr match `re`; rejects if the process ends first. */
  waitFor(re: RegExp): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function watch(cmd: string, args: string[], options: SpawnOptions = {}): Watched {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => ((out += d), wake()));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => ((err += d), wake()));
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      done = true;
      wake();
      resolve({ code, signal });
    }),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(re) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = (out + err).match(re);
          if (m) {
            waiters.delete(check);
            resolve(m);
          } else if (done) {
            waiters.delete(check);
            reject(new Error(`process ended before ${re} appeared\nstdout: ${out}\nstderr: ${err}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** Direct children of a process (Linux /proc). */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Run to completion; throws with the output when the exit code is not 0. */
export function run(cmd: string, args: string[], options: Parameters<typeof spawnSync>[2] = {}): { stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  const stdout = String(r.stdout ?? '');
  const stderr = String(r.stderr ?? '');
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}\nstdout: ${stdout}\nstderr: ${stderr}`);
  return { stdout, stderr };
}

/** GET url and the JSON body, or undefined when nothing answers. */
export async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> } | undefined> {
  try {
    const r = await fetch(url);
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  } catch {
    return undefined;
  }
}
