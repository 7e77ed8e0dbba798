/**
 * Command destination: runs a program per message with the raw message on stdin (argv given as a
 * list, no shell). Exit 0 acknowledges it; 75 (EX_TEMPFAIL, as procmail and maildrop use it), a
 * signal or the timeout mean "try again later"; any other exit code refuses the message for good
 * (it stays in the mailbox). The program learns about the message from the environment:
 * MAILBRIDGE_DELIVERY_ID (stable: deduplicate by it), MAILBRIDGE_SIZE (bytes on stdin),
 * MAILBRIDGE_CONNECTOR, MAILBRIDGE_MAILBOX, MAILBRIDGE_FOLDER, MAILBRIDGE_ITEM,
 * MAILBRIDGE_MESSAGE_ID and MAILBRIDGE_REDELIVERY (1 after an interrupted attempt).
 *
 * Whole messages only. stdin is not a pipe but a temporary file that holds the complete message
 * before the program starts (written, checked to be MAILBRIDGE_SIZE bytes, and unlinked at once, so
 * nothing is left behind even after kill -9). A pipe would end early if mailbridge died while
 * writing it, and a program that outlived it would read a truncated message as a whole one; from a
 * file it reads the whole message or nothing, whatever happens to mailbridge. A program that
 * outlives a killed mailbridge may still store the message; the next run then delivers it again
 * with MAILBRIDGE_REDELIVERY=1 and the same MAILBRIDGE_DELIVERY_ID (at least once).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DestinationConfig } from '../config.ts';
import { ConnectorError, type Delivery, type Destination, type DestinationPlugin } from '../types.ts';

export interface CommandDestinationOptions {
  connector: string;
  command: string[];
  timeoutMs: number;
  env?: Record<string, string>;
  /** Where the message file is written (default: the system's temp dir). */
  tmpDir?: string;
}

export const EX_TEMPFAIL = 75;

export function commandDestination(o: CommandDestinationOptions): Destination {
  const [file, ...args] = o.command;
  const description = `command ${o.command[0]}`;
  return {
    description,
    idempotent: false,
    dedupeBy: 'MAILBRIDGE_DELIVERY_ID',
    async deliver(d: Delivery) {
      const params = { destination: description, command: o.command.join(' '), connector: o.connector, item: d.item, mailbox: d.mailbox, folder: d.folder };
      const path = join(o.tmpDir ?? tmpdir(), `mailbridge-${process.pid}-${randomBytes(6).toString('hex')}.eml`);
      let fh;
      try {
        fh = await open(path, 'wx+', 0o600);
        await unlink(path);
        // Positional writes leave the file offset at 0, where the program starts reading.
        let written = 0;
        while (written < d.raw.length) written += (await fh.write(d.raw, written, d.raw.length - written, written)).bytesWritten;
        if (written !== d.raw.length) throw new Error(`wrote ${written} of ${d.raw.length} bytes`);
      } catch (err) {
        await fh?.close().catch(() => undefined);
        await unlink(path).catch(() => undefined);
        throw new ConnectorError('MB_CONNECTOR_DEST_UNREACHABLE', { ...params, detail: `the message file could not be written: ${(err as Error).message}` }, { cause: err });
      }
      const stdin = fh;
      return new Promise<void>((resolve, reject) => {
        const child = spawn(file!, args, {
          stdio: [stdin.fd, 'ignore', 'pipe'],
          env: {
            PATH: process.env.PATH ?? '/usr/bin:/bin',
            LANG: process.env.LANG ?? 'C.UTF-8',
            ...o.env,
            MAILBRIDGE_DELIVERY_ID: d.deliveryId,
            MAILBRIDGE_SIZE: String(d.raw.length),
            MAILBRIDGE_CONNECTOR: d.connector,
            MAILBRIDGE_MAILBOX: d.mailbox,
            MAILBRIDGE_FOLDER: d.folder,
            MAILBRIDGE_ITEM: d.item,
            MAILBRIDGE_MESSAGE_ID: d.messageId ?? '',
            MAILBRIDGE_REDELIVERY: d.redelivery ? '1' : '0',
          },
        });
        // The child has its own copy of the descriptor now (or failed to start).
        void stdin.close().catch(() => undefined);
        let stderr = '';
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, o.timeoutMs);
        child.stderr!.on('data', (c: Buffer) => {
          if (stderr.length < 2000) stderr += c.toString('utf8');
        });
        child.on('error', (err) => {
          clearTimeout(timer);
          reject(new ConnectorError('MB_CONNECTOR_DEST_UNREACHABLE', { ...params, detail: err.message }, { cause: err }));
        });
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          if (code === 0) return resolve();
          const tail = stderr.trim().split('\n').slice(-3).join(' / ');
          const status = timedOut ? `a timeout after ${Math.round(o.timeoutMs / 1000)} s` : signal ? `signal ${signal}` : `exit code ${code}`;
          const withErr = { ...params, status, stderr: tail ? `: ${tail}` : '.' };
          if (timedOut || signal || code === EX_TEMPFAIL) {
            // Killed mid-way, it may already have stored the message; exit 75 says it did not.
            return reject(new ConnectorError('MB_CONNECTOR_COMMAND_FAILED', withErr, { uncertain: timedOut || Boolean(signal) }));
          }
          reject(new ConnectorError('MB_CONNECTOR_COMMAND_FAILED', withErr, { permanent: true }));
        });
      });
    },
    async close() {},
  };
}

/** The `command` destination as configured. */
export const commandDestinationPlugin: DestinationPlugin<Extract<DestinationConfig, { kind: 'command' }>> = (c, ctx) =>
  commandDestination({ connector: ctx.connector, command: c.command, timeoutMs: c.timeoutSeconds * 1000, env: c.env });
