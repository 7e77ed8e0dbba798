/**
 * Where the relay keeps message bodies and whether it shares its queue, chosen by the store driver:
 * - sqlite: bodies up to 128 KB in the store with their rows, larger ones in the spool folder in
 *   relay.dataDir (inline-spool.ts; fsync before 250 either way, a lock file: one process), limits in
 *   memory;
 * - postgres: bodies in the database with their rows (StoreSpool), claims with leases and per-mailbox
 *   limits in the database, so several nodes on one database relay together and any of them
 *   delivers any message.
 * `serve` and `mailbridge queue` both take it from here, so an admin command sees the bodies where
 * the gateway keeps them.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { RelayOptions } from '../relay/index.ts';
import type { RelayConfig } from '../relay/config.ts';
import { join } from 'node:path';
import { InlineSpool } from '../relay/queue/inline-spool.ts';
import { StoreSpool } from '../relay/queue/store-spool.ts';
import type { Store } from '../store/index.ts';

export function relayStorage(store: Store, config: RelayConfig, options: { node?: string } = {}): Pick<RelayOptions, 'spool' | 'cluster'> {
  if (store.driver === 'sqlite') return { spool: new InlineSpool(store.queue, join(config.dataDir, 'spool')) };
  return {
    spool: new StoreSpool(store.queue, 'PostgreSQL (relay_bodies)'),
    cluster: {
      // Unique per process: a restarted node must not renew the claims its previous run left behind.
      node: options.node ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
      leaseMs: config.queue.leaseSeconds * 1000,
    },
  };
}
