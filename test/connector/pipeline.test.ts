/**
 * The delivery window of src/connector/pipeline.ts with a scripted source and destination: it
 * bounds what the destination holds at once, not the connector's own bookkeeping.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { syncFolder, type PipelineOptions } from '../../src/connector/pipeline.ts';
import type { Delivery, Destination, SourceSession } from '../../src/connector/types.ts';
import type { CheckpointRepository } from '../../src/store/checkpoints.ts';
import { openStore } from '../../src/store/index.ts';
import { tempDir } from '../support/temp.ts';
import { waitFor } from '../support/wait.ts';

const message = (n: number) => Buffer.from(`Message-ID: <m${n}@contoso.test>\r\nSubject: ${n}\r\n\r\nbody ${n}\r\n`);

function source(count: number): SourceSession {
  const items = Array.from({ length: count }, (_, i) => ({ item: String(i + 1), uid: i + 1, size: 60 }));
  return {
    mailbox: 'window@contoso.test',
    closed: false,
    open: async () => ({ epoch: '1', next: count + 1 }),
    async *list() {
      yield { items, advance: { position: count } };
    },
    fetch: async (_folder, wanted) => wanted.map((w) => ({ item: w.item, uid: w.uid, raw: message(w.uid!) })),
    act: async () => undefined,
    wait: async () => 'closed',
    close: async () => undefined,
  };
}

test("with a window of 1, the next message goes to the destination while the last one's checkpoint is still being written, and never two at once", async (t) => {
  const dir = tempDir('mb-pipeline-', t);
  const store = await openStore({ driver: 'sqlite', path: `${dir.path}/mb.db` });
  t.after(() => store.close());
  // Checkpoint writes of delivered messages wait until the test lets them finish.
  const heldRecords: Array<() => void> = [];
  const repo = new Proxy(store.checkpoints, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (prop !== 'record' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
      return async (...args: Parameters<CheckpointRepository['record']>) => {
        await new Promise<void>((resolve) => heldRecords.push(resolve));
        return (value as CheckpointRepository['record']).apply(target, args);
      };
    },
  });
  let atDestination = 0;
  let most = 0;
  const delivered: string[] = [];
  const destination: Destination = {
    description: 'test',
    idempotent: false,
    async deliver(d: Delivery) {
      atDestination++;
      most = Math.max(most, atDestination);
      await Promise.resolve();
      delivered.push(d.item);
      atDestination--;
    },
    close: async () => undefined,
  };
  const o: PipelineOptions = {
    connector: 'window',
    repo,
    destination,
    after: { action: 'none' },
    window: 1,
    maxMessageBytes: 1 << 20,
    fetchBytes: 1 << 20,
    retry: { initialMs: 10, maxMs: 10, attempts: 1 },
    keepMs: 86_400_000,
    emit: () => undefined,
    signal: new AbortController().signal,
  };
  const run = syncFolder(o, source(3), 'INBOX');
  // Message 2 reaches the destination while message 1's checkpoint is held (before, it waited for it).
  await waitFor(() => delivered.length >= 2 || undefined, 10_000, () => `delivered ${delivered.join(',')} with ${heldRecords.length} checkpoint(s) held`);
  assert.ok(heldRecords.length >= 1);
  // Let every checkpoint through, as they come.
  const releasing = setInterval(() => heldRecords.splice(0).forEach((r) => r()), 1);
  t.after(() => clearInterval(releasing));
  const result = await run;
  assert.equal(result.delivered, 3);
  assert.deepEqual(delivered, ['1', '2', '3']);
  assert.equal(most, 1);
  const known = await store.checkpoints.lookup({ connector: 'window', mailbox: 'window@contoso.test', folder: 'INBOX' }, '1', ['1', '2', '3']);
  assert.deepEqual([...known.values()].map((k) => k.state), ['done', 'done', 'done']);
});
