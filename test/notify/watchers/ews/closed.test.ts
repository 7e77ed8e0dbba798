/**
 * ConnectionTimeout on a hand-driven clock: the sandbox EWS runs on a ManualScheduler, so its
 * `ConnectionStatus Closed` at the end of ConnectionTimeout comes when the test advances time; the
 * watcher must reconnect at once (no silence to wait out, nothing reported as lost) and keep
 * delivering.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createEwsWatcher, ewsWatchSchema } from '../../../../src/notify/watchers/ews/index.ts';
import { ManualScheduler } from '../../../../src/sandbox/ews/index.ts';
import { startRig, type Rig } from './rig.ts';
import { waitFor } from '../../../support/wait.ts';

let rig: Rig;
const scheduler = new ManualScheduler(Date.now());

before(async () => {
  rig = await startRig({ scheduler });
});
after(async () => {
  await rig?.close();
});

test('ConnectionStatus Closed at ConnectionTimeout: reconnect at once with the same subscription, then keep delivering', async () => {
  const anna = 'anna@contoso.test';
  const w = createEwsWatcher({
    listener: 'ews-closed',
    mailboxes: [{ address: anna, folders: ['inbox'] }],
    authorization: rig.authorization,
    options: ewsWatchSchema.parse({ url: rig.ews.url, connectionTimeoutMinutes: 1 }),
    ctx: rig.ctx,
    ca: rig.ca.certPem,
  });
  try {
    await w.start();
    const g = w.groups[0]!;
    assert.equal(g.connections, 1);
    const subscribes = rig.ews.stats.operations.Subscribe ?? 0;
    scheduler.advance(60_000);
    await waitFor(() => g.connections === 2, 10_000, 'reconnected after Closed');
    scheduler.advance(60_000);
    await waitFor(() => g.connections === 3, 10_000, 'reconnected after the second Closed');
    assert.equal(rig.ews.stats.operations.Subscribe ?? 0, subscribes, 'the same subscription is used again');
    assert.deepEqual(rig.problems.map((p) => p.error.code), [], 'a Closed is no problem');
    await rig.deliver(anna, 'After two timeouts');
    await waitFor(() => rig.at(anna, 'message.new').length === 1, 10_000, 'delivered');
  } finally {
    await w.close();
  }
});
