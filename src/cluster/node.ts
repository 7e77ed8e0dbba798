/**
 * Who this process is among the nodes sharing one database: an id generated at every start (a
 * restarted node is a new node; its old leases expire or were released), the configured name
 * (node.name, else the host name), the mailbridge version and the start time. What a node runs is
 * its role (`serve`, `fetch erp`), so `mailbridge status` tells the processes on one host apart.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { PACKAGE_DIR } from '../util/paths.ts';

export interface NodeIdentity {
  /** `<name>-<8 hex>`: unique per process start. */
  readonly id: string;
  readonly name: string;
  readonly version: string;
  readonly role: string;
  /** Epoch milliseconds. */
  readonly started: number;
}

let version: string | undefined;

/** mailbridge's version from its package.json. */
export function mailbridgeVersion(): string {
  if (version === undefined) {
    try {
      version = String((JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')) as { version?: unknown }).version ?? 'unknown');
    } catch {
      version = 'unknown';
    }
  }
  return version;
}

export function nodeIdentity(o: { name?: string | undefined; role: string; now?: () => number }): NodeIdentity {
  const name = o.name ?? hostname();
  return { id: `${name}-${randomBytes(4).toString('hex')}`, name, version: mailbridgeVersion(), role: o.role, started: (o.now ?? Date.now)() };
}
