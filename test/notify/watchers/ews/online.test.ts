/**
 * An EWS watcher pointed at Exchange Online under a host name of its own (here: the emulator's
 * Exchange Online profile on 127.0.0.1, as behind a proxy): the server's version (15.20) gives it
 * away, and the admin is warned once about the retirement, with the dates and the fix; watching
 * itself goes on.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createEwsWatcher, ewsWatchSchema } from '../../../../src/notify/watchers/ews/index.ts';
import { startRig, type Rig } from './rig.ts';
import { waitFor } from '../../../support/wait.ts';

let rig: Rig;
before(async () => {
  rig = await startRig({ profile: 'online' });
});
after(async () => {
  await rig?.close();
});

test('Exchange Online recognised by its server version: one retirement warning with dates and fix, and events still flow', async () => {
  const anna = 'anna@contoso.test';
  const w = createEwsWatcher({
    listener: 'ews-online',
    mailboxes: [{ address: anna, folders: ['inbox'] }],
    authorization: rig.authorization,
    options: ewsWatchSchema.parse({ url: rig.ews.url }),
    ctx: rig.ctx,
    ca: rig.ca.certPem,
  });
  try {
    await w.start();
    await rig.deliver(anna, 'Noch über EWS');
    await waitFor(() => rig.at(anna, 'message.new').length === 1, 15_000, 'delivered');
    const warnings = rig.problems.filter((p) => p.error.code === 'MB_EWS_EXCHANGE_ONLINE_RETIRING');
    assert.equal(warnings.length, 1, 'warned once, not per request');
    const en = warnings[0]!.error.explain('en');
    assert.match(en.cause, /127\.0\.0\.1/);
    assert.match(en.cause, /1 October 2026.*1 April 2027/);
    assert.match(en.fix, /kind to graph/);
    assert.match(en.fix, /Set-OrganizationConfig -EwsAllowedAppIDs/);
    assert.match(warnings[0]!.error.explain('de').fix, /Zulassungsliste/);
  } finally {
    await w.close();
  }
});
