/**
 * `mailbridge store migrate`: a single-node install (SQLite file and relay spool folder) moved into
 * a private PostgreSQL with everything it keeps, verified, idempotent when run again, refused while
 * a gateway holds the spool, and with the database password kept out of the output.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { createLogger } from '../../../src/log/index.ts';
import { openQueue } from '../../../src/relay/index.ts';
import { relaySchema } from '../../../src/relay/config.ts';
import { StoreSpool } from '../../../src/relay/queue/store-spool.ts';
import { openStore } from '../../../src/store/index.ts';
import { enqueue } from '../../relay/helpers/queue.ts';
import { startPostgres, type PostgresServer } from '../../support/postgres.ts';
import { tempDir } from '../../support/temp.ts';
import { runCli } from './harness.ts';

let server: PostgresServer;
before(async () => {
  server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

const TABLES = ['kv', 'relay_queue', 'connector_checkpoint', 'connector_message', 'notify_subscriptions', 'notify_subscription_mailboxes', 'notify_events', 'notify_deliveries'];

/** A stopped single-node install: queue rows in every state that matters, bodies in the spool, the other areas' rows. */
async function singleNode(dir: string): Promise<{ db: string; spool: string; bodies: Map<string, Buffer>; active: string; sent: string }> {
  const db = join(dir, 'mb.db');
  const store = await openStore({ driver: 'sqlite', path: db });
  const config = relaySchema.parse({ dataDir: join(dir, 'relay') });
  const queue = await openQueue({ config, store, log: createLogger({ level: 'silent' }) });
  const bodies = new Map<string, Buffer>();
  const ids: string[] = [];
  for (let i = 0; i < 7; i++) {
    const body = Buffer.from(`Message-ID: <m${i}@contoso.test>\r\nSubject: Grüße ${i}\r\n\r\n${'x'.repeat(i * 1000)}\r\n`);
    const rec = await enqueue(queue, { body, sender: `app${i % 2}@contoso.test` });
    bodies.set(rec.id, body);
    ids.push(rec.id);
  }
  // One left active by a gateway that died, one sent, one held.
  const active = (await queue.claim(ids[0]!))!.id;
  const sending = (await queue.claim(ids[1]!))!;
  await queue.delivered(sending);
  bodies.delete(sending.id);
  await queue.hold(ids[2]!);
  await store.kv.set('api.audit', '2026-12-07T08:00:00Z-1', '{"who":"admin"}');
  await store.kv.set('identity.tokens', 'conn', 'sealed:abc');
  const scope = { connector: 'scans', mailbox: 'alice@contoso.test', folder: 'INBOX' };
  await store.checkpoints.setEpoch(scope, '100', 0);
  await store.checkpoints.record(scope, { epoch: '100', item: '6', key: '<m6@x>', state: 'delivered', size: 10 }, { position: 6 });
  await store.notify.createSubscription({
    id: 'sub_1',
    kind: 'webhook',
    mailboxes: ['alice@contoso.test'],
    events: [],
    params: { url: 'https://hooks.example/x' },
    privacy: 'full',
    state: 'active',
    createdAt: 1,
    updatedAt: 1,
  });
  for (const id of ['ev1', 'ev2', 'ev3']) await store.notify.publish({ id, mailbox: 'alice@contoso.test', type: 'message.new', body: '{}' }, 100);
  await queue.spool.close();
  await store.close();
  return { db, spool: join(dir, 'relay', 'spool'), bodies, active, sent: sending.id };
}

async function counts(url: string, source?: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  if (source) {
    const { DatabaseSync } = await import('node:sqlite');
    const db = new DatabaseSync(source, { readOnly: true });
    for (const t of TABLES) out[t] = Number((db.prepare(`SELECT COUNT(*) AS n FROM ${t}`).get() as { n: number }).n);
    db.close();
    return out;
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const t of TABLES) out[t] = Number((await client.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${t}`)).rows[0]!.n);
  } finally {
    await client.end();
  }
  return out;
}

async function tableExists(url: string, table: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [table])).rows[0]!.t !== null;
  } finally {
    await client.end();
  }
}

test('store migrate copies every table and the waiting bodies, verified; a second run changes nothing; the password never shows', { timeout: 120_000 }, async () => {
  const dir = tempDir('mb-migrate-');
  try {
    const install = await singleNode(dir.path);
    const base = await server.database('migrate');
    // Trust authentication ignores the password, which is what lets the test see that it stays hidden.
    const url = base.replace('postgresql://mailbridge@', 'postgresql://mailbridge:Geheim-Kennwort-42@');
    const args = ['store', 'migrate', '--from', `sqlite:${install.db}`, '--to', `postgres:${url}`, '--spool', install.spool];
    const first = await runCli(args);
    assert.equal(first.code, 0, first.stderr + first.stdout);
    assert.ok(!`${first.stdout}${first.stderr}`.includes('Geheim-Kennwort-42'), 'the password stays out of the output');
    assert.match(first.stdout, /relay_queue: 7 read, 7 copied, 0 already there — verified/);
    assert.match(first.stdout, /message bodies: 6 copied/, 'the bodies of the 6 waiting messages (not the sent one)');
    assert.deepEqual(await counts(base), await counts(base, install.db), 'every table: as many rows in PostgreSQL as in SQLite');

    // What a node on PostgreSQL sees: each waiting message's body byte for byte; the active one requeued.
    const store = await openStore({ driver: 'postgres', url: base });
    try {
      const spool = new StoreSpool(store.queue);
      for (const [id, body] of install.bodies) assert.deepEqual(await spool.readBody(id), body, `body of ${id}`);
      assert.equal(await spool.exists(install.sent), false);
      const requeued = await store.queue.get(install.active);
      assert.equal(requeued?.state, 'deferred', 'left active by the stopped gateway: deferred, as its recovery would have done');
      assert.equal((await store.queue.get(install.sent))?.state, 'sent');
      assert.equal(await store.kv.get('identity.tokens', 'conn'), 'sealed:abc');
      // watch clients hold event cursors: the events keep theirs, and new ones continue after them.
      const ev = await store.notify.publish({ id: 'ev4', mailbox: 'alice@contoso.test', type: 'message.new', body: '{}' }, 200);
      assert.equal(ev.event.seq, 4);
    } finally {
      await store.close();
    }

    const second = await runCli(args);
    assert.equal(second.code, 0, second.stderr + second.stdout);
    assert.match(second.stdout, /relay_queue: 7 read, 0 copied, 7 already there — verified/);
    assert.match(second.stdout, /message bodies: 0 copied/);
    const after2 = await counts(base);
    assert.equal(after2.relay_queue, 7);
    assert.equal(after2.notify_events, 4, 'the run again added nothing (the event published on PostgreSQL stays)');
  } finally {
    dir.remove();
  }
});

test('store migrate refuses while a gateway holds the relay spool, and explains in German too', { timeout: 60_000 }, async () => {
  const dir = tempDir('mb-migrate-');
  try {
    const install = await singleNode(dir.path);
    const url = await server.database('migrate');
    // A live process holds the lock: this test process.
    writeFileSync(join(install.spool, '.lock'), String(process.pid));
    const args = ['store', 'migrate', '--from', `sqlite:${install.db}`, '--to', `postgres:${url}`, '--spool', install.spool];
    const en = await runCli(args);
    assert.notEqual(en.code, 0);
    assert.match(en.stderr, /MB_STORE_MIGRATE_RUNNING/);
    assert.match(en.stderr, new RegExp(`process ${process.pid}`));
    const de = await runCli(['--lang', 'de', ...args]);
    assert.match(de.stderr, /Beenden Sie zuerst das Gateway/);
    assert.equal(await tableExists(url, 'relay_queue'), false, 'refused before anything was written to PostgreSQL');
  } finally {
    dir.remove();
  }
});

test('store migrate refuses while another process writes the SQLite file', { timeout: 60_000 }, async () => {
  const dir = tempDir('mb-migrate-');
  const { DatabaseSync } = await import('node:sqlite');
  try {
    const install = await singleNode(dir.path);
    const url = await server.database('migrate');
    // A writer in the middle of a transaction (a `mailbridge fetch` on the same file, say).
    const writer = new DatabaseSync(install.db);
    writer.exec('BEGIN IMMEDIATE');
    try {
      const r = await runCli(['store', 'migrate', '--from', `sqlite:${install.db}`, '--to', `postgres:${url}`, '--spool', install.spool]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /MB_STORE_MIGRATE_BUSY/);
    } finally {
      writer.exec('ROLLBACK');
      writer.close();
    }
  } finally {
    dir.remove();
  }
});
