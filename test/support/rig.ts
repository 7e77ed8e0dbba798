/**
 * What a whole test file shares (a sandbox, Dovecot, a store, a gateway): started once in
 * before(), stopped in after() even when a test failed, and only if it had started.
 *
 *   let rig: Rig;
 *   forFile(async () => (rig = await startRig()));
 */
import { after, before } from 'node:test';

export interface Stoppable {
  close(): unknown;
}

export function forFile<T extends Stoppable>(start: () => Promise<T>): void {
  let started: T | undefined;
  before(async () => {
    started = await start();
  });
  after(async () => {
    await started?.close();
  });
}
