/**
 * The audit log of the admin API: every change made through it (who = the key's name, what =
 * method and route, on what, when, and how it ended), kept in the store's key-value table so it
 * survives restarts and is shared by every node on one PostgreSQL database. Keys sort by time
 * (ISO timestamp + a random suffix), so listing is reading the namespace in key order.
 *
 * Limits: entries older than `keepDays` (default 400) are removed when the API starts; listing
 * reads the whole namespace, which is fine for the changes admins make by hand.
 */
import { randomBytes } from 'node:crypto';
import type { KeyValue } from '../store/index.ts';
import { publish } from './live.ts';

export const AUDIT_NAMESPACE = 'api.audit';

export interface AuditEntry {
  /** ISO 8601. */
  at: string;
  /** The API key's name. */
  who: string;
  /** e.g. `POST /api/v1/relay/queue/{id}/retry`. */
  action: string;
  /** What was changed: a message ID, a subscription ID, a connector name. */
  target?: string;
  /** The HTTP status answered. */
  status: number;
  /** The MB code when the change was refused or failed. */
  code?: string;
}

export class AuditLog {
  private readonly kv: KeyValue;
  private readonly now: () => number;

  constructor(kv: KeyValue, now: () => number = Date.now) {
    this.kv = kv;
    this.now = now;
  }

  async write(entry: Omit<AuditEntry, 'at'>): Promise<AuditEntry> {
    const at = new Date(this.now()).toISOString();
    const full: AuditEntry = { at, ...entry };
    await this.kv.set(AUDIT_NAMESPACE, `${at}-${randomBytes(4).toString('hex')}`, JSON.stringify(full));
    // The console's audit page and the pages whose objects the change touched read again.
    publish('audit', full);
    return full;
  }

  /** Newest first; `who` and `since` (ISO) filter. */
  async list(query: { limit?: number; who?: string; since?: string } = {}): Promise<AuditEntry[]> {
    const rows = await this.kv.list(AUDIT_NAMESPACE);
    const out: AuditEntry[] = [];
    for (let i = rows.length - 1; i >= 0 && out.length < (query.limit ?? 100); i--) {
      const e = JSON.parse(rows[i]!.value) as AuditEntry;
      if (query.since !== undefined && e.at < query.since) break;
      if (query.who !== undefined && e.who !== query.who) continue;
      out.push(e);
    }
    return out;
  }

  async prune(keepDays = 400): Promise<number> {
    const before = new Date(this.now() - keepDays * 86_400_000).toISOString();
    let n = 0;
    for (const r of await this.kv.list(AUDIT_NAMESPACE)) {
      if (r.key >= before) break;
      if (await this.kv.delete(AUDIT_NAMESPACE, r.key)) n++;
    }
    return n;
  }
}
