/**
 * What every SQLite repository needs the same way: IMMEDIATE transactions, commits without the
 * fsync for writes whose loss a crash can only turn into a repeat (`relaxed`), and a cache of
 * compiled statements for the shapes that run on every message.
 */
import type { DatabaseSync, SQLInputValue, StatementSync } from 'node:sqlite';

/** Runs `fn` in one IMMEDIATE transaction: all of it is committed, or none of it. */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const out = fn();
    db.exec('COMMIT');
    return out;
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw err;
  }
}

/**
 * Runs `fn` with synchronous = NORMAL: in WAL mode its commit survives kill -9 and is at risk only
 * from a power or OS failure; the next FULL commit (or a `syncWal`, see sqlite.ts) flushes it too.
 */
export function relaxed<T>(db: DatabaseSync, fn: () => T): T {
  db.exec('PRAGMA synchronous = NORMAL');
  try {
    return fn();
  } finally {
    db.exec('PRAGMA synchronous = FULL');
  }
}

/**
 * A write that must be on disk when it resolves: with `syncWal`, committed NORMAL and then flushed
 * from the thread pool (the event loop does not wait for the fsync); without it, a FULL commit.
 */
export async function durable<T>(db: DatabaseSync, syncWal: (() => Promise<void>) | undefined, fn: () => T): Promise<T> {
  if (!syncWal) return transaction(db, fn);
  const out = relaxed(db, () => transaction(db, fn));
  await syncWal();
  return out;
}

/** Statements by their text, compiled once. */
export function statementCache(db: DatabaseSync): (sql: string) => StatementSync {
  const cache = new Map<string, StatementSync>();
  return (sql) => {
    let st = cache.get(sql);
    if (!st) cache.set(sql, (st = db.prepare(sql)));
    return st;
  };
}

/** `?, ?, ?`: one placeholder per value of a list. */
export function placeholders(list: readonly unknown[]): string {
  return list.map(() => '?').join(', ');
}

export type Filter = readonly [sql: string, values: readonly SQLInputValue[]];

/** ` WHERE a AND b` from the filters that apply ('' when none does), with their values in order. */
export function where(filters: ReadonlyArray<Filter | false | undefined>): { sql: string; values: SQLInputValue[] } {
  const applied = filters.filter((f): f is Filter => Boolean(f));
  return { sql: applied.length ? ` WHERE ${applied.map(([sql]) => sql).join(' AND ')}` : '', values: applied.flatMap(([, v]) => v) };
}

/** `column IN (?, …)` for a list that is given and not empty. */
export function inList(column: string, list: readonly SQLInputValue[] | undefined): Filter | undefined {
  return list && list.length > 0 ? [`${column} IN (${placeholders(list)})`, list] : undefined;
}

/**
 * One flush at a time, shared by its callers: a caller that comes while a flush runs cannot count
 * on it (it may have begun before the caller's commit), so it waits for the next one, which starts
 * when the running one ends and serves every caller that came meanwhile. A failed flush fails only
 * its own callers.
 */
export function sharedFlush(flush: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let next: Promise<void> | undefined;
  const start = (): Promise<void> => {
    const p = flush();
    running = p;
    const done = () => {
      if (running === p) running = undefined;
    };
    p.then(done, done);
    return p;
  };
  return () => {
    if (!running) return start();
    next ??= running.then(
      () => ((next = undefined), start()),
      () => ((next = undefined), start()),
    );
    return next;
  };
}
