/**
 * Shared by the Graph watcher tests: a publish function through the real dispatcher (so the store
 * deduplicates by event id as in production) that records what was new, mail into a sandbox
 * mailbox, and waiting until everything in flight has landed. The temporary store and the retry
 * settings are the notify tests' own (../../helpers.ts).
 */
import assert from 'node:assert/strict';
import { createDispatcher } from '../../../../src/notify/dispatcher.ts';
import type { NotifyEvent } from '../../../../src/notify/events.ts';
import type { Publish } from '../../../../src/notify/watchers/types.ts';
import type { Store } from '../../../../src/store/index.ts';
import { rfc822, type Rig } from '../../../sandbox/graph/helpers.ts';
import { noJitter } from '../../helpers.ts';

export { noJitter, tempStore, type TempStore } from '../../helpers.ts';

/** A message from Anna Schmidt into a sandbox mailbox, over Dovecot's LMTP. */
export async function deliver(rig: Rig, address: string, subject: string): Promise<void> {
  const r = await rig.dovecot.deliver({ from: 'anna@fabrikam.test', to: [address] }, Buffer.from(rfc822({ from: '"Anna Schmidt" <anna@fabrikam.test>', to: address, subject })));
  assert.deepEqual(r.accepted, [address]);
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

