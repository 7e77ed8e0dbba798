/**
 * The syntax of an allow-list entry of notification targets (notify.subscriptions.allowTargets), on
 * its own so that the config schema checks it without loading the HTTP client of egress.ts.
 */
import { isIP } from 'node:net';

export const CIDR_RE = /^(.+)\/(\d{1,3})$/;
const HOST_RE = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** Whether an allow-list entry is usable: a CIDR or a host name (for the config schema). */
export function isAllowEntry(entry: string): boolean {
  const m = CIDR_RE.exec(entry);
  if (m) {
    const family = isIP(m[1]!);
    const bits = Number(m[2]);
    return family !== 0 && bits <= (family === 4 ? 32 : 128);
  }
  return isIP(entry) !== 0 || HOST_RE.test(entry);
}
