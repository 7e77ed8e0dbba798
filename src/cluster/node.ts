/**
 * Who this process is among the nodes sharing one database: an id generated at every start (a
 * restarted node is a new node; its old leases expire or were released), the configured name
 * (node.name, else the host name), the mailbridge version and the start time. What a node runs is
 * its role (`serve`, `fetch erp`), so `mailbridge status` tells the processes on one host apart.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

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

/** mailbridge's version from its package.json (src/ in a checkout and dist/ in the packages sit one level below it). */
export function mailbridgeVersion(): string {
  if (version === undefined) {
    try {
      version = String((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown }).version ?? 'unknown');
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
