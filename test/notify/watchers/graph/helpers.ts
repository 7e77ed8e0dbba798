/**
 * Shared by the Graph watcher tests: a store in a temporary directory, a publish function through
 * the real dispatcher (so the store deduplicates by event id as in production) that records what
 * was new, and a Graph client for the sandbox rig. Kept apart from ../../helpers.ts so these tests
 * do not load the notify config (and with it every watcher's config module).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDispatcher } from '../../../../src/notify/dispatcher.ts';
import type { RetryConfig } from '../../../../src/notify/config.ts';
import type { NotifyEvent } from '../../../../src/notify/events.ts';
import type { Publish } from '../../../../src/notify/watchers/types.ts';
import { openStore, type Store } from '../../../../src/store/index.ts';

export const noJitter: RetryConfig = { initialSeconds: 5, factor: 2, maxSeconds: 3600, giveUpAfterHours: 24, jitter: 0 };

export interface TempStore {
  store: Store;
  dir: string;
  cleanup(): Promise<void>;
}

export async function tempStore(): Promise<TempStore> {
  const dir = mkdtempSync(join(tmpdir(), 'mb-watch-graph-'));
  const store = await openStore({ driver: 'sqlite', path: join(dir, 'mb.db') });
  return {
    store,
    dir,
    async cleanup() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Recorder {
  publish: Publish;
  /** Events the store took as new, in order. */
  events: NotifyEvent[];
  duplicates: number;
}

/** Publishes through the real store (deduplicating by id) and records what was new. */
export function recorder(store: Store): Recorder {
  const d = createDispatcher({ repo: store.notify, sinks: [], retry: noJitter });
  const out: Recorder = {
    events: [],
    duplicates: 0,
    publish: async (e) => {
      const r = await d.publish(e);
      if (r.duplicate) out.duplicates++;
      else out.events.push(e);
      return { duplicate: r.duplicate };
    },
  };
  return out;
}

export async function until(predicate: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`${what}: not after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
