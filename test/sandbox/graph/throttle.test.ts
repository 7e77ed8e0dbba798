/**
 * Sandbox Graph throttling (facts §4.8): the 5th concurrent request of an app on a mailbox gets
 * 429 ApplicationThrottled with Retry-After; the request-rate window; the test hook that forces
 * 429s. Concurrency is made exact with the hold hook (requests wait inside their slots), not timing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { APP, graphError, startRig, USER, type Response, type Rig } from './helpers.ts';
import { waitFor } from '../../support/wait.ts';

let rig: Rig;
before(async () => {
  // A small request window so the rate limit is reachable; concurrency stays Outlook's 4.
  rig = await startRig({ limits: { requestsPerWindow: 8, windowMs: 600_000 } });
});
after(async () => {
  await rig?.close();
});

function expectThrottled(res: Response, retryAfter: string, message = 'Application is over its MailboxConcurrency limit.'): void {
  assert.equal(res.status, 429, res.text);
  assert.equal(res.headers.get('retry-after'), retryAfter);
  const err = graphError(res);
  assert.equal(err.code, 'ApplicationThrottled');
  assert.equal(err.message, message);
  assert.ok(err.innerError['request-id']);
}

describe('MailboxConcurrency', () => {
  test('4 requests of one app on a mailbox run; the 5th gets 429 with Retry-After; another app is not affected; afterwards all is well', async () => {
    const box = USER.alice.upn;
    const path = `/v1.0/users/${box}/mailFolders/inbox`;
    const relay = await rig.appToken(APP.relay);
    const reader = await rig.appToken(APP.reader);
    const throttledBefore = rig.graph.stats.throttled;
    const release = rig.graph.hold(box);
    let released = false;
    try {
      const four = Array.from({ length: 4 }, () => rig.call('GET', path, { token: relay }));
      await waitFor(() => rig.graph.inFlight(box) === 4, 10_000, 'four requests in flight');
      expectThrottled(await rig.call('GET', path, { token: relay }), '1');
      // A sendMail counts the same: the 5th concurrent request of that app, whatever it is.
      const send = await rig.call('POST', `/v1.0/users/${box}/sendMail`, {
        token: relay,
        json: { message: { subject: `throttled ${randomUUID()}`, toRecipients: [{ emailAddress: { address: USER.bob.upn } }] } },
      });
      expectThrottled(send, '1');
      assert.equal(rig.graph.stats.throttled, throttledBefore + 2);
      // The limit is per app: the reader app still gets a slot (and waits in it like the others).
      const other = rig.call('GET', path, { token: reader });
      await waitFor(() => rig.graph.inFlight(box) === 5, 10_000, 'the other app admitted');
      release();
      released = true;
      for (const res of await Promise.all([...four, other])) assert.equal(res.status, 200, res.text);
    } finally {
      if (!released) release();
    }
    assert.equal(rig.graph.inFlight(box), 0);
    assert.equal((await rig.call('GET', path, { token: relay })).status, 200);
  });
});

describe('the throttle(mailbox, count, retryAfter) hook', () => {
  test('the next N requests on the mailbox get 429 with that Retry-After, whatever the app; then requests pass', async () => {
    const box = USER.dave.upn;
    const path = `/v1.0/users/${box}/mailFolders/inbox`;
    const sentBefore = rig.graph.stats.sent.length;
    rig.graph.throttle(box, 3, 17);
    expectThrottled(await rig.call('GET', path, { token: await rig.appToken(APP.relay) }), '17');
    expectThrottled(await rig.call('GET', path, { token: await rig.appToken(APP.reader) }), '17');
    const send = await rig.call('POST', `/v1.0/users/${box}/sendMail`, {
      token: await rig.appToken(APP.relay),
      json: { message: { subject: 'never sent', toRecipients: [{ emailAddress: { address: USER.bob.upn } }] } },
    });
    expectThrottled(send, '17');
    assert.equal(rig.graph.stats.sent.length, sentBefore, 'a throttled sendMail sends nothing');
    assert.equal((await rig.call('GET', path, { token: await rig.appToken(APP.relay) })).status, 200);
    // Other mailboxes were never affected.
    assert.equal((await rig.call('GET', `/v1.0/users/${USER.bob.upn}/mailFolders/inbox`, { token: await rig.appToken(APP.relay) })).status, 200);
  });
});

describe('requests per window', () => {
  test('over the window limit: 429 with the seconds until the oldest request leaves it; the next window admits again', async () => {
    const box = 'info@contoso.test';
    const path = `/v1.0/users/${box}/mailFolders/inbox`;
    const reader = await rig.appToken(APP.reader);
    for (let i = 0; i < 8; i++) assert.equal((await rig.call('GET', path, { token: reader })).status, 200, `request ${i + 1}`);
    const res = await rig.call('GET', path, { token: reader });
    assert.equal(res.status, 429, res.text);
    const retryAfter = Number(res.headers.get('retry-after'));
    assert.ok(retryAfter > 590 && retryAfter <= 600, `Retry-After ${retryAfter}`);
    assert.equal(graphError(res).code, 'ApplicationThrottled');
    assert.equal(graphError(res).message, 'Application is over its MailboxRequestRate limit.');
    // Per app and mailbox: the relay app on the same mailbox is still fine.
    assert.equal((await rig.call('GET', path, { token: await rig.appToken(APP.relay) })).status, 200);
    rig.clock.offsetMs = 601_000;
    try {
      assert.equal((await rig.call('GET', path, { token: await rig.appToken(APP.reader) })).status, 200);
    } finally {
      rig.clock.offsetMs = 0;
    }
  });
});
