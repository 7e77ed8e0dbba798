/**
 * Maildir destination: each message becomes one file, written as the Maildir convention demands and
 * made durable before it counts as delivered: write into tmp/, fsync the file, rename into new/,
 * fsync new/ (so the directory entry survives a power cut).
 *
 * File names are deterministic: `<internal date>.<delivery ID>.mailbridge`, where the delivery ID is
 * derived from connector, mailbox, folder, UIDVALIDITY and UID. A redelivery after a crash therefore
 * finds the file (in new/, or in cur/ with flags appended by a mail reader) and writes nothing: this
 * destination is idempotent. The bytes are written unchanged.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DestinationConfig } from '../config.ts';
import { ConnectorError, type Delivery, type Destination, type DestinationPlugin } from '../types.ts';

export interface MaildirDestinationOptions {
  connector: string;
  path: string;
  /** Create the maildir (tmp, new, cur) if missing. */
  create: boolean;
}

export function maildirFileName(d: Pick<Delivery, 'deliveryId' | 'internalDate'>): string {
  const t = d.internalDate ? Math.floor(d.internalDate.getTime() / 1000) : 0;
  return `${t}.${d.deliveryId}.mailbridge`;
}

export function maildirDestination(o: MaildirDestinationOptions): Destination {
  let ready: Promise<void> | undefined;
  const description = `maildir ${o.path}`;
  const fail = (err: unknown) =>
    new ConnectorError('MB_CONNECTOR_MAILDIR_FAILED', { path: o.path, detail: (err as Error).message ?? String(err) }, { cause: err });

  const prepare = async () => {
    for (const sub of ['tmp', 'new', 'cur']) {
      if (o.create) await mkdir(join(o.path, sub), { recursive: true });
      else await readdir(join(o.path, sub));
    }
  };

  /** True when a file for this delivery ID is already in new/ or cur/. */
  const present = async (deliveryId: string): Promise<boolean> => {
    const marker = `.${deliveryId}.`;
    for (const sub of ['new', 'cur']) {
      for (const name of await readdir(join(o.path, sub))) if (name.includes(marker)) return true;
    }
    return false;
  };

  return {
    description,
    idempotent: true,
    dedupeBy: 'Maildir <date>.<delivery ID>.mailbridge',
    async deliver(d: Delivery) {
      try {
        ready ??= prepare();
        await ready;
      } catch (err) {
        ready = undefined;
        throw fail(err);
      }
      const name = maildirFileName(d);
      const tmp = join(o.path, 'tmp', `${name}.${process.pid}.${randomBytes(4).toString('hex')}`);
      try {
        if (d.redelivery && (await present(d.deliveryId))) return;
        const fh = await open(tmp, 'wx', 0o600);
        try {
          await fh.writeFile(d.raw);
          await fh.sync();
        } finally {
          await fh.close();
        }
        // Same name, same bytes: a rename over an existing file (a redelivery) changes nothing.
        await rename(tmp, join(o.path, 'new', name));
        const dir = await open(join(o.path, 'new'), 'r');
        try {
          await dir.sync();
        } finally {
          await dir.close();
        }
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => undefined);
        throw fail(err);
      }
    },
    async close() {},
  };
}

/** The `maildir` destination as configured. */
export const maildirDestinationPlugin: DestinationPlugin<Extract<DestinationConfig, { kind: 'maildir' }>> = (c, ctx) =>
  maildirDestination({ connector: ctx.connector, path: c.path, create: c.create });
