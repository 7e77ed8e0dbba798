/**
 * Moves a single-node install's state from its SQLite file to PostgreSQL (`mailbridge store
 * migrate`): every table both databases have (the same named migrations made them), row for row,
 * in the order the tables were created (parents before the rows that reference them).
 *
 * Strategy:
 * - stop the writer: the copy runs inside one IMMEDIATE transaction on the SQLite file, which gives
 *   a consistent snapshot and keeps any other writer out while it runs; a writer that holds the
 *   file refuses it (MB_STORE_MIGRATE_BUSY). The relay's spool lock is the caller's to take;
 * - idempotent: rows go in with ON CONFLICT DO NOTHING, so a second run (after a failure half-way,
 *   or by mistake) adds what is missing and changes nothing else;
 * - verified: after each batch the number of its keys found in PostgreSQL must equal the batch
 *   size; the report gives per table the rows read, inserted and already there;
 * - the relay queue: a row the stopped gateway left `active` goes in as `deferred`, due now (what
 *   its recovery would have done), and each waiting message's body comes from `body(id)` (the spool
 *   folder) into relay_bodies with it; a body already there is kept;
 * - notify_events keeps its cursor (the SQLite rowid, which `watch` clients hold), and the sequence
 *   continues after the highest.
 *
 * Limits: relay_starts (per-mailbox limits across nodes) is not copied: SQLite installs keep them in
 * memory. Columns only PostgreSQL has are left to their defaults, except the cursor above.
 */
import { DatabaseSync, type SQLOutputValue } from 'node:sqlite';
import type pg from 'pg';
import { MbError } from '../errors/index.ts';

/**
 * Tables the copy leaves out: the migration ledger (each side keeps its own), SQLite-unused ones,
 * and the node registry and leases (src/store/cluster.ts), which describe processes running now:
 * the stopped single node would otherwise be listed as a dead node, and its leases mean nothing.
 */
const SKIP = new Set(['migrations', 'relay_starts', 'cluster_nodes', 'cluster_leases']);
const BATCH = 500;
const LIVE = new Set(['incoming', 'active', 'deferred', 'held']);

export interface MigrateReport {
  tables: Array<{ table: string; read: number; inserted: number; present: number }>;
  bodies: { copied: number; missing: string[] };
}

export interface MigrateOptions {
  sqlitePath: string;
  postgres: pg.Pool;
  /** The body of a waiting relay message (the file spool); undefined when it is missing. */
  body?: (id: string) => Promise<Buffer | undefined>;
  /** Epoch ms, for the due time of requeued active messages. */
  now: number;
  onTable?: (table: string) => void;
}

export async function migrateSqliteToPostgres(o: MigrateOptions): Promise<MigrateReport> {
  const db = new DatabaseSync(o.sqlitePath, { open: true });
  try {
    db.exec('PRAGMA busy_timeout = 2000');
    try {
      db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      throw new MbError('MB_STORE_MIGRATE_BUSY', { path: o.sqlitePath, detail: (err as Error).message }, { cause: err });
    }
    try {
      return await copy(db, o);
    } finally {
      // Nothing was written: the transaction only held the writers off.
      db.exec('ROLLBACK');
    }
  } finally {
    db.close();
  }
}

async function copy(db: DatabaseSync, o: MigrateOptions): Promise<MigrateReport> {
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid").all() as Array<{ name: string }>)
    .map((r) => r.name)
    .filter((t) => !SKIP.has(t));
  const report: MigrateReport = { tables: [], bodies: { copied: 0, missing: [] } };
  for (const table of tables) {
    const target = await columnsOf(o.postgres, table);
    if (target.size === 0) continue; // a table this PostgreSQL schema does not have (none today)
    o.onTable?.(table);
    const source = (db.prepare(`PRAGMA table_info("${table}")`).all() as Array<{ name: string; pk: number }>);
    const keys = source.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name);
    const columns = source.map((c) => c.name).filter((c) => target.has(c));
    const withCursor = table === 'notify_events' && target.has('cursor') && !columns.includes('cursor');
    const all = [...columns, ...(withCursor ? ['cursor'] : [])];
    const line = { table, read: 0, inserted: 0, present: 0 };
    let lastRowid = -Infinity;
    for (;;) {
      const rows = db.prepare(`SELECT rowid AS _rowid, * FROM "${table}" WHERE rowid > ? ORDER BY rowid LIMIT ${BATCH}`).all(lastRowid === -Infinity ? -1 : lastRowid) as Array<Record<string, SQLOutputValue>>;
      if (rows.length === 0) break;
      lastRowid = Number(rows[rows.length - 1]!._rowid);
      const values: unknown[] = [];
      const tuples: string[] = [];
      const bodies = new Map<string, Buffer>();
      for (const row of rows) {
        if (table === 'relay_queue' && row.state === 'active') {
          row.state = 'deferred';
          row.next_attempt_at = o.now;
        }
        if (table === 'relay_queue' && o.body && LIVE.has(String(row.state))) {
          const body = await o.body(String(row.id));
          if (body) bodies.set(String(row.id), body);
          else report.bodies.missing.push(String(row.id));
        }
        const tuple = all.map((c) => {
          values.push(convert(c === 'cursor' && withCursor ? row._rowid : row[c], target.get(c)!));
          return `$${values.length}`;
        });
        tuples.push(`(${tuple.join(', ')})`);
      }
      const client = await o.postgres.connect();
      try {
        await client.query('BEGIN');
        const inserted = await client.query(`INSERT INTO "${table}" (${all.map((c) => `"${c}"`).join(', ')}) VALUES ${tuples.join(', ')} ON CONFLICT DO NOTHING`, values);
        if (bodies.size) {
          const ids = [...bodies.keys()];
          const r = await client.query('INSERT INTO relay_bodies (id, body) SELECT * FROM unnest($1::text[], $2::bytea[]) ON CONFLICT DO NOTHING', [ids, ids.map((id) => bodies.get(id)!)]);
          report.bodies.copied += r.rowCount ?? 0;
        }
        // Verification: every key of the batch is in PostgreSQL now (inserted, or there before).
        const keyValues = keys.map((k) => rows.map((r) => keyText(r[k])));
        const found = await client.query<{ n: string }>(
          `SELECT COUNT(*) AS n FROM "${table}" WHERE (${keys.map((k) => `"${k}"::text`).join(', ')}) IN (SELECT * FROM unnest(${keys.map((_, i) => `$${i + 1}::text[]`).join(', ')}))`,
          keyValues,
        );
        if (Number(found.rows[0]!.n) !== rows.length) {
          throw new MbError('MB_STORE_MIGRATE_VERIFY', { table, expected: rows.length, found: Number(found.rows[0]!.n) });
        }
        await client.query('COMMIT');
        line.read += rows.length;
        line.inserted += inserted.rowCount ?? 0;
        line.present += rows.length - (inserted.rowCount ?? 0);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    }
    if (withCursor) await o.postgres.query(`SELECT setval(pg_get_serial_sequence('notify_events', 'cursor'), GREATEST((SELECT MAX(cursor) FROM notify_events), 1))`);
    report.tables.push(line);
  }
  return report;
}

async function columnsOf(pool: pg.Pool, table: string): Promise<Map<string, string>> {
  const { rows } = await pool.query<{ column_name: string; data_type: string }>(
    'SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1',
    [table],
  );
  return new Map(rows.map((r) => [r.column_name, r.data_type]));
}

/** A SQLite value as the PostgreSQL column takes it: 0/1 for BOOLEAN, bytes for BYTEA, text for JSONB. */
function convert(v: SQLOutputValue | undefined, type: string): unknown {
  if (v === null || v === undefined) return null;
  if (type === 'boolean') return v === 1 || v === 1n;
  if (type === 'bytea' && v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === 'bigint') return v.toString();
  return v;
}

function keyText(v: SQLOutputValue | undefined): string | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  return String(v);
}
