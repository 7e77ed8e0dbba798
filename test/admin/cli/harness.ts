/**
 * Running the `mailbridge` CLI as a child process in tests, the way an admin runs it: real stdin,
 * stdout, stderr and exit code. Shared by the CLI tests (and the leak test other areas extend).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';

export const NODE = process.execPath;
export const MAIN = new URL('../../../src/admin/cli/main.ts', import.meta.url).pathname;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Extra environment; MAILBRIDGE* variables of the test runner are not passed on. */
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed (a pipe, as with `printf … | mailbridge …`). */
  input?: string;
  cwd?: string;
}

export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toUpperCase().startsWith('MAILBRIDGE')));
  const child = spawn(NODE, [MAIN, ...args], {
    env: { ...base, LANG: 'C', LC_ALL: '', LC_MESSAGES: '', ...options.env },
    cwd: options.cwd,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = once(child, 'exit');
  child.stdin.end(options.input ?? '');
  const [code] = await exited;
  return { code: code as number, stdout, stderr };
}

/** A value shaped like an Entra client secret (40 characters with ~ and .). */
export function entraLikeSecret(): string {
  return `Q${randomBytes(3).toString('hex').slice(0, 2)}8Q~${randomBytes(27).toString('base64url').replace(/[-_]/g, 'x').slice(0, 34)}.x`;
}
