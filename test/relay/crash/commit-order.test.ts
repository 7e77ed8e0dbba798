/**
 * The order behind every 250 (listener.ts, queue/index.ts): body fsynced and renamed, spool
 * directory fsynced, row committed, and only then the reply. Each test stops the relay at one point
 * of that sequence with a crash point injected into the store (the accepting code never gets past
 * it, as under kill -9), checks what the client has been told, and restarts on the same store and
 * spool: a message with a 250 must survive the restart and be delivered; one without a 250 may be
 * delivered (at-least-once) but, if its row never committed, leaves nothing behind.
 *
 * This is the deterministic form of the kill -9 test (crash.test.ts): a 250 sent before the row is
 * committed shows up there as acknowledged messages that are gone after a kill — rows missing, bodies
 * removed as orphans by the recovery — and here as a reply the client has while the commit is held.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startRelay, type Relay } from '../../../src/relay/index.ts';
import { openStore, type Store } from '../../../src/store/index.ts';
import type { QueueRecord, QueueRepository } from '../../../src/store/queue.ts';
import { collectingLogger, RawSmtp, RecordingTransport, relayConfig, withoutReceived } from '../helpers/index.ts';
import { tempDir } from '../../support/temp.ts';

type CrashPoint = 'before-commit' | 'after-commit' | 'commit-fails';

const BODY = 'From: app@contoso.com\r\nSubject: commit order\r\nMessage-ID: <commit-order@contoso.com>\r\n\r\nhello\r\n';

/** The store with `queue.insert` stopped at `point`: the caller never gets past it (or gets an error). */
function storeWithCrashPoint(store: Store, point: CrashPoint): { store: Store; reached: Promise<QueueRecord[]> } {
  const reached = Promise.withResolvers<QueueRecord[]>();
  const queue: QueueRepository = {
    ...store.queue,
    async insert(records) {
      if (point === 'commit-fails') throw new Error('disk I/O error (injected)');
      if (point === 'after-commit') await store.queue.insert(records);
      reached.resolve(records);
      return new Promise<never>(() => undefined);
    },
  };
  return { store: { ...store, queue }, reached: reached.promise };
}

async function start(dir: string, store: Store, transport = new RecordingTransport()): Promise<{ relay: Relay; transport: RecordingTransport }> {
  const config = relayConfig(join(dir, 'relay'), { networks: { local: { cidrs: ['127.0.0.0/8'], allowedSenders: ['@contoso.com'] } } });
  const relay = await startRelay({ config, store, log: collectingLogger().log, transport });
  return { relay, transport };
}

/** One message up to and including the final dot; the reply to DATA is left unread. */
async function sendUntilDot(port: number): Promise<RawSmtp> {
  const c = await RawSmtp.open(port);
  assert.match((await c.cmd('EHLO app.contoso.com')) ?? '', /^250/);
  assert.match((await c.cmd('MAIL FROM:<app@contoso.com>')) ?? '', /^250/);
  assert.match((await c.cmd('RCPT TO:<alice@example.com>')) ?? '', /^250/);
  assert.match((await c.cmd('DATA')) ?? '', /^354/);
  c.write(BODY + '.\r\n');
  return c;
}

/**
 * A full round trip on a second session goes through the relay's event loop after the crash point
 * was reached, so a reply that did not wait for the commit has been written by then.
 */
async function roundTrip(port: number): Promise<void> {
  const other = await RawSmtp.open(port);
  assert.match((await other.cmd('NOOP')) ?? '', /^250/);
  other.close();
}

/** What a test opened, closed in reverse order whatever fails (a relay left listening keeps the file's process alive). */
class Cleanup {
  private readonly steps: Array<() => unknown> = [];
  add(step: () => unknown): void {
    this.steps.push(step);
  }
  async run(): Promise<void> {
    for (const step of this.steps.reverse()) await Promise.resolve(step()).catch(() => undefined);
  }
}

function spoolFiles(dir: string): string[] {
  return readdirSync(join(dir, 'relay', 'spool')).filter((f) => !f.startsWith('.'));
}

test('crash before the row commits: the client has no 250, and the restart removes the body as an orphan', async () => {
  const dir = tempDir('mb-order-');
  const cleanup = new Cleanup();
  cleanup.add(() => dir.remove());
  try {
    const base = await openStore({ driver: 'sqlite', path: join(dir.path, 'mb.db') });
    cleanup.add(() => base.close());
    const { store, reached } = storeWithCrashPoint(base, 'before-commit');
    const first = await start(dir.path, store);
    cleanup.add(() => first.relay.close(0));
    const port = first.relay.listeners[0]!.port;
    const client = await sendUntilDot(port);
    cleanup.add(() => client.close());
    const [rec] = await reached;
    // Everything before the commit is done: the complete body under its final name, no row yet.
    assert.ok(existsSync(join(dir.path, 'relay', 'spool', `${rec!.id}.eml`)), 'body renamed before the row commits');
    assert.equal(await base.queue.get(rec!.id), undefined);
    await roundTrip(port);
    assert.deepEqual(client.peek(), [], 'no reply to DATA while the row is not committed');

    // kill -9 here: the client was told nothing, so the restart keeps nothing.
    client.close();
    await first.relay.close(0);
    const second = await openStore({ driver: 'sqlite', path: join(dir.path, 'mb.db') });
    cleanup.add(() => second.close());
    const again = await start(dir.path, second);
    cleanup.add(() => again.relay.close(0));
    assert.deepEqual(again.relay.recovery, { requeued: 0, tempsRemoved: 0, orphansRemoved: 1, finishedBodiesRemoved: 0, corrupt: [] });
    await again.relay.manager.whenIdle();
    assert.equal(again.transport.attempts.length, 0);
    assert.deepEqual(spoolFiles(dir.path), []);
  } finally {
    await cleanup.run();
  }
});

test('crash after the row commits, before the 250: the restart keeps the message and delivers it (at-least-once)', async () => {
  const dir = tempDir('mb-order-');
  const cleanup = new Cleanup();
  cleanup.add(() => dir.remove());
  try {
    const base = await openStore({ driver: 'sqlite', path: join(dir.path, 'mb.db') });
    cleanup.add(() => base.close());
    const { store, reached } = storeWithCrashPoint(base, 'after-commit');
    const first = await start(dir.path, store);
    cleanup.add(() => first.relay.close(0));
    const port = first.relay.listeners[0]!.port;
    const client = await sendUntilDot(port);
    cleanup.add(() => client.close());
    const [rec] = await reached;
    assert.equal((await base.queue.get(rec!.id))?.state, 'incoming');
    await roundTrip(port);
    assert.deepEqual(client.peek(), [], 'the reply comes only after the commit has returned');

    client.close();
    await first.relay.close(0);
    const second = await openStore({ driver: 'sqlite', path: join(dir.path, 'mb.db') });
    cleanup.add(() => second.close());
    const again = await start(dir.path, second);
    cleanup.add(() => again.relay.close(0));
    assert.deepEqual(again.relay.recovery, { requeued: 0, tempsRemoved: 0, orphansRemoved: 0, finishedBodiesRemoved: 0, corrupt: [] });
    await again.transport.delivered(1);
    assert.equal(again.transport.deliveries[0]!.id, rec!.id);
    assert.equal(withoutReceived(again.transport.deliveries[0]!.body).rest.toString(), BODY);
  } finally {
    await cleanup.run();
  }
});

test('a commit that fails: the client gets 451 4.3.0 at once, nothing is kept, and the session goes on', async () => {
  const dir = tempDir('mb-order-');
  const cleanup = new Cleanup();
  cleanup.add(() => dir.remove());
  try {
    const base = await openStore({ driver: 'sqlite', path: join(dir.path, 'mb.db') });
    cleanup.add(() => base.close());
    const { store } = storeWithCrashPoint(base, 'commit-fails');
    const { relay, transport } = await start(dir.path, store);
    cleanup.add(() => relay.close(0));
    const client = await sendUntilDot(relay.listeners[0]!.port);
    cleanup.add(() => client.close());
    assert.match((await client.reply()) ?? '', /^451 4\.3\.0 /);
    assert.deepEqual(spoolFiles(dir.path), [], 'neither body nor temp file left');
    assert.deepEqual(await base.queue.list(), []);
    assert.match((await client.cmd('RSET')) ?? '', /^250/);
    assert.match((await client.cmd('QUIT')) ?? '', /^221/);
    await relay.manager.whenIdle();
    assert.equal(transport.attempts.length, 0);
  } finally {
    await cleanup.run();
  }
});
