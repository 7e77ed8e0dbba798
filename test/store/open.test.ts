import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { openStore } from '../../src/store/index.ts';
import { MbError } from '../../src/errors/index.ts';

test('kv values survive close and reopen, and the database runs in WAL with synchronous FULL', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-store-'));
  try {
    const path = join(dir, 'nested', 'mb.db');
    const a = await openStore({ driver: 'sqlite', path });
    await a.kv.set('tokens', 'contoso', 'v1');
    await a.kv.set('tokens', 'contoso', 'v2');
    await a.kv.set('tokens', 'fabrikam', 'x');
    await a.kv.set('other', 'contoso', 'y');
    assert.equal(await a.kv.delete('tokens', 'fabrikam'), true);
    assert.equal(await a.kv.delete('tokens', 'fabrikam'), false);
    await a.close();

    const b = await openStore({ driver: 'sqlite', path });
    assert.equal(await b.kv.get('tokens', 'contoso'), 'v2');
    assert.equal(await b.kv.get('tokens', 'fabrikam'), undefined);
    const rows = await b.kv.list('tokens');
    assert.deepEqual(rows.map((r) => [r.key, r.value]), [['contoso', 'v2']]);
    assert.match(rows[0]!.updatedAt, /^\d{4}-\d\d-\d\dT/);
    await b.ping();
    await b.close();

    const raw = new DatabaseSync(path);
    assert.equal((raw.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode, 'wal');
    const ids = (raw.prepare('SELECT id FROM migrations').all() as Array<{ id: string }>).map((r) => r.id);
    assert.ok(ids.includes('core-1'));
    raw.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unopenable path gives MB_STORE_OPEN_FAILED naming the path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-store-'));
  try {
    // A directory where the database file should be cannot be opened as a database.
    await assert.rejects(openStore({ driver: 'sqlite', path: dir }), (err: unknown) => {
      assert.ok(err instanceof MbError);
      assert.equal(err.code, 'MB_STORE_OPEN_FAILED');
      assert.ok(err.explain('de').cause.includes(dir));
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a PostgreSQL server that cannot be reached gives MB_STORE_POSTGRES_FAILED naming the server, never the password', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-store-'));
  try {
    // A socket directory with no server in it: the connection is refused at once.
    const url = `postgresql://mailbridge:s3cret-pass@localhost/mb?host=${encodeURIComponent(dir)}`;
    await assert.rejects(openStore({ driver: 'postgres', url }), (err: unknown) => {
      assert.ok(err instanceof MbError);
      assert.equal(err.code, 'MB_STORE_POSTGRES_FAILED');
      const text = JSON.stringify([err.message, err.explain('en'), err.explain('de')]);
      assert.ok(text.includes(dir), text);
      assert.ok(!text.includes('s3cret-pass'), text);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('several nodes opening one new PostgreSQL database at the same moment all start (the migrations table is created under the migration lock)', async () => {
  const { startPostgres } = await import('../support/postgres.ts');
  const server = await startPostgres();
  try {
    // Without the lock, CREATE TABLE IF NOT EXISTS raced itself: most rounds had a node fail with a duplicate key in pg_type.
    for (let round = 0; round < 5; round++) {
      const url = await server.database(`together${round}`);
      const opened = await Promise.allSettled(Array.from({ length: 4 }, () => openStore({ driver: 'postgres', url })));
      for (const o of opened) {
        assert.equal(o.status, 'fulfilled', o.status === 'rejected' ? String(o.reason) : '');
        if (o.status === 'fulfilled') await o.value.close();
      }
    }
  } finally {
    await server.stop();
  }
});
