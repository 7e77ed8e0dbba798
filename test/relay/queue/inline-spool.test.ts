/**
 * The single-node spool: a body up to the limit is committed in the store with its row and leaves
 * no file; a larger one goes into a spool file (fsynced before the writer closes); after a restart
 * both are read, scanned and removed from where they are.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { openStore, type Store } from '../../../src/store/index.ts';
import type { QueueRecord } from '../../../src/store/queue.ts';
import { InlineSpool } from '../../../src/relay/queue/inline-spool.ts';
import { tempDir } from '../../support/temp.ts';

const LIMIT = 1024;

function rec(id: string): QueueRecord {
  const t = 1_700_000_000_000;
  return { id, state: 'incoming', kind: 'message', sender: 'app@contoso.test', recipients: ['a@example.com'], mailbox: 'app@contoso.test', size: 1, bodyType: '7bit', smtpUtf8: false, receivedAt: t, attempts: 0, nextAttemptAt: t, updatedAt: t };
}

/** Writes a body in chunks as the listener does, then commits its row as Queue.accept does. */
async function accept(spool: InlineSpool, store: Store, id: string, body: Buffer): Promise<void> {
  const writer = spool.createWriter(id);
  for (let i = 0; i < body.length; i += 300) writer.write(body.subarray(i, i + 300));
  writer.end();
  await once(writer, 'close');
  await store.queue.insert([rec(id)], await spool.seal([id]));
}

const body = (size: number, fill: string) => Buffer.from(`Subject: ${fill}\r\n\r\n${fill.repeat(size)}`);

test('bodies up to the limit live in the store, larger ones in files; both survive a restart and are removed from where they are', async () => {
  const dir = tempDir('mb-inline-spool-');
  const db = join(dir.path, 'mb.db');
  const folder = join(dir.path, 'spool');
  let store = await openStore({ driver: 'sqlite', path: db });
  let spool = new InlineSpool(store.queue, folder, { maxInlineBytes: LIMIT });
  await spool.open({ lock: true });
  const small = body(500, 's');
  const large = body(5000, 'L');
  try {
    await accept(spool, store, 'small1', small);
    await accept(spool, store, 'large1', large);
    assert.deepEqual(readdirSync(folder).filter((f) => f.endsWith('.eml')), ['large1.eml'], 'only the large body is a file');
    assert.ok(await store.queue.hasBody('small1'));
    assert.ok(!(await store.queue.hasBody('large1')));
    assert.deepEqual(await spool.readBody('small1'), small);
    assert.deepEqual(await spool.readBody('large1'), large);

    // A restart: a new spool knows nothing of where it put what.
    await spool.close();
    await store.close();
    store = await openStore({ driver: 'sqlite', path: db });
    spool = new InlineSpool(store.queue, folder, { maxInlineBytes: LIMIT });
    await spool.open({ lock: true });
    assert.deepEqual((await spool.scan()).bodies.sort(), ['large1', 'small1']);
    for (const [id, want] of [['small1', small], ['large1', large]] as const) {
      const opened = await spool.openStored(id);
      assert.ok(opened, id);
      assert.deepEqual(await opened.read(), want);
      await opened.close();
      assert.equal((await spool.readHeaders(id)).toString(), `Subject: ${id === 'small1' ? 's' : 'L'}\r\n`);
      assert.ok(await spool.exists(id));
    }
    await spool.remove('small1');
    await spool.remove('large1');
    assert.ok(!(await spool.exists('small1')) && !(await spool.exists('large1')));
    assert.ok(!existsSync(join(folder, 'large1.eml')));
    assert.deepEqual((await spool.scan()).bodies, []);
  } finally {
    await spool.close();
    await store.close();
    dir.remove();
  }
});

test('a body that fails its commit is thrown away by remove: no staged body, no file left behind', async () => {
  const dir = tempDir('mb-inline-spool-');
  const store = await openStore({ driver: 'sqlite', path: join(dir.path, 'mb.db') });
  const folder = join(dir.path, 'spool');
  const spool = new InlineSpool(store.queue, folder, { maxInlineBytes: LIMIT });
  await spool.open({ lock: true });
  try {
    await accept(spool, store, 'dup', body(10, 'a'));
    for (const [id, size] of [['dup', 10], ['big', 5000]] as const) {
      const writer = spool.createWriter(id === 'dup' ? 'dup' : 'big');
      writer.end(body(size, 'b'));
      await once(writer, 'close');
    }
    // The second 'dup' row collides: the batch fails as a whole, and Queue.accept removes both bodies.
    await assert.rejects(store.queue.insert([rec('big'), rec('dup')], await spool.seal(['big', 'dup'])));
    await spool.remove('big');
    await spool.remove('dup');
    assert.deepEqual(readdirSync(folder).filter((f) => f.endsWith('.eml')), []);
    await assert.rejects(spool.seal(['dup']), /no body received for dup/, 'nothing staged is left for a later batch');
  } finally {
    await spool.close();
    await store.close();
    dir.remove();
  }
});
