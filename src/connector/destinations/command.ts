/**
 * Command destination: runs a program per message with the raw message on stdin (argv given as a
 * list, no shell). Exit 0 acknowledges it; 75 (EX_TEMPFAIL, as procmail and maildrop use it), a
 * signal or the timeout mean "try again later"; any other exit code refuses the message for good
 * (it stays in the mailbox). The program learns about the message from the environment:
 * MAILBRIDGE_DELIVERY_ID (stable: deduplicate by it), MAILBRIDGE_CONNECTOR, MAILBRIDGE_MAILBOX,
 * MAILBRIDGE_FOLDER, MAILBRIDGE_ITEM, MAILBRIDGE_MESSAGE_ID and MAILBRIDGE_REDELIVERY (1 after an
 * interrupted attempt).
 */
import { spawn } from 'node:child_process';
import { ConnectorError, type Delivery, type Destination } from '../types.ts';

export interface CommandDestinationOptions {
  connector: string;
  command: string[];
  timeoutMs: number;
  env?: Record<string, string>;
}

export const EX_TEMPFAIL = 75;

export function commandDestination(o: CommandDestinationOptions): Destination {
  const [file, ...args] = o.command;
  const description = `command ${o.command[0]}`;
  return {
    description,
    idempotent: false,
    deliver(d: Delivery) {
      const params = { destination: description, command: o.command.join(' '), connector: o.connector, item: d.item, mailbox: d.mailbox, folder: d.folder };
      return new Promise<void>((resolve, reject) => {
        const child = spawn(file!, args, {
          stdio: ['pipe', 'ignore', 'pipe'],
          env: {
            PATH: process.env.PATH ?? '/usr/bin:/bin',
            LANG: process.env.LANG ?? 'C.UTF-8',
            ...o.env,
            MAILBRIDGE_DELIVERY_ID: d.deliveryId,
            MAILBRIDGE_CONNECTOR: d.connector,
            MAILBRIDGE_MAILBOX: d.mailbox,
            MAILBRIDGE_FOLDER: d.folder,
            MAILBRIDGE_ITEM: d.item,
            MAILBRIDGE_MESSAGE_ID: d.messageId ?? '',
            MAILBRIDGE_REDELIVERY: d.redelivery ? '1' : '0',
          },
        });
        let stderr = '';
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, o.timeoutMs);
        child.stderr.on('data', (c: Buffer) => {
          if (stderr.length < 2000) stderr += c.toString('utf8');
        });
        // A program that exits without reading all of stdin is its own business; its exit code decides.
        child.stdin.on('error', () => undefined);
        child.stdin.end(d.raw);
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
