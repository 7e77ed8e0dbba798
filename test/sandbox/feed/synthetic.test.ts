/**
 * Synthetic mailboxes: the feed (deliver/markRead reported at once with counts, watchers, nothing
 * allocated for an empty mailbox), the directory (addresses and user ids resolve in the tenant), and
 * the Graph sandbox serving them: message by id with $select, Inbox counts, delta, PATCH isRead, and a
 * change notification per delivery across 2,000 mailboxes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SyntheticMailboxes } from '../../../src/sandbox/feed/synthetic.ts';
import type { FolderChange } from '../../../src/sandbox/mailfeed.ts';
import { APP, startRig, T, type Rig } from '../graph/helpers.ts';
import { startReceiver, type Receiver } from '../graph/notify-helpers.ts';
import { waitFor } from '../../support/wait.ts';

describe('the synthetic feed', () => {
  test('addresses, user ids and no state for an empty mailbox', () => {
    const s = new SyntheticMailboxes({ mailboxes: 15_000 });
    assert.equal(s.address(1), 'user00001@synthetic.test');
    assert.equal(s.address(15_000), 'user15000@synthetic.test');
    assert.equal([...s.addresses()].length, 15_000);
    assert.ok(s.has('USER00042@synthetic.test'));
    assert.ok(!s.has('user15001@synthetic.test'));
    assert.ok(!s.has('user00000@synthetic.test'));
    assert.ok(!s.has('user42@synthetic.test'));
    const id = s.userId('user00042@synthetic.test');
    assert.match(id ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(s.addressOfUserId(id!), 'user00042@synthetic.test');
    assert.equal(s.allocated, 0, '15,000 empty mailboxes hold no state');
  });

  test('deliver and markRead are reported at once, in order, with counts', async () => {
    const s = new SyntheticMailboxes({ mailboxes: 10, domain: 'scale.test' });
    const box = s.address(3);
    const seen: FolderChange[] = [];
    const stop = await s.watch(box, 'inbox', (c) => seen.push(c));
    const other: FolderChange[] = [];
    const stopOther = await s.watch(s.address(4), 'INBOX', (c) => other.push(c));
    const first = s.deliver(box, { from: { address: 'a@example.com', name: 'A' }, subject: 'one' });
    assert.equal(seen.length, 1, 'reported synchronously');
    s.deliver(box, { from: 'b@example.com', subject: 'two' });
    assert.ok(s.markRead(box, first.uid));
    assert.ok(s.markRead(box, first.uid), 'marking read again is fine');
    assert.deepEqual(
      seen.map((c) => [c.kind, c.uid, c.seen, c.unseen, c.total]),
      [
        ['created', 1, false, 1, 1],
        ['created', 2, false, 2, 2],
        ['updated', 1, true, 1, 2],
      ],
      'the repeated markRead changed nothing and reported nothing',
    );
    assert.ok(BigInt(seen[2]!.modseq) > BigInt(seen[1]!.modseq));
    assert.equal(seen[0]?.mailbox, box);
    assert.equal(seen[0]?.folder, 'INBOX');
    assert.equal(other.length, 0);
    assert.equal(s.allocated, 1);

    const m = await s.message(box, 'INBOX', first.uid);
    assert.equal(m?.subject, 'one');
    assert.deepEqual(m?.from, { address: 'a@example.com', name: 'A' });
    assert.equal(m?.seen, true);
    const counts = await s.counts(box, 'INBOX');
    assert.deepEqual([counts.unseen, counts.total, counts.highestModseq], [1, 2, seen[2]!.modseq]);
    assert.deepEqual(await s.counts(s.address(5), 'INBOX'), { uidValidity: '1', unseen: 0, total: 0, highestModseq: '0' });

    stop();
    s.deliver(box, { from: 'c@example.com', subject: 'three' });
    assert.equal(seen.length, 3, 'no reports after unsubscribing');
    stopOther();
    assert.equal(s.watching, 0);
  });
});

describe('synthetic mailboxes in the Graph sandbox', () => {
  let rig: Rig;
  let rx: Receiver;
  const COUNT = 2000;
  before(async () => {
    // This file is about scale, not Graph's 10-s validation limit (tested in graph/subscriptions):
    // handshakes on a loaded CI machine may take longer than that.
    rig = await startRig({ synthetic: { mailboxes: COUNT, domain: 'synthetic.test' }, notificationTimeouts: { validationMs: 120_000 } });
    rx = await startReceiver(rig.ca.issueServer());
  });
  after(async () => {
    await rx?.close();
    await rig?.close();
  });

  test('message by id with $select, Inbox counts, delta and PATCH isRead work for a synthetic mailbox', async () => {
    const s = rig.synthetic!;
    const box = s.address(7);
    const token = await rig.appToken(APP.reader);
    const inbox0 = await rig.call('GET', `/v1.0/users/${box}/mailFolders/inbox`, { token });
    assert.equal(inbox0.status, 200, inbox0.text);
    assert.equal(inbox0.json().totalItemCount, 0);

    s.deliver(box, { from: { address: 'boss@example.com', name: 'The Boss' }, subject: 'Grüße' });
    s.deliver(box, { from: 'x@example.com', subject: 'second' });
    const inbox = await rig.call('GET', `/v1.0/users/${box}/mailFolders('Inbox')`, { token });
    assert.equal(inbox.json().totalItemCount, 2);
    assert.equal(inbox.json().unreadItemCount, 2);

    const first = await rig.call('GET', `/v1.0/users/${box}/mailFolders/inbox/messages/delta?$select=subject,from,isRead`, { token });
    assert.equal(first.status, 200, first.text);
    const page = first.json<{ value: Array<Record<string, unknown>>; '@odata.deltaLink': string }>();
    assert.deepEqual(page.value.map((v) => v.subject).sort(), ['Grüße', 'second']);
    const boss = page.value.find((v) => v.subject === 'Grüße')!;
    assert.deepEqual(boss.from, { emailAddress: { name: 'The Boss', address: 'boss@example.com' } });

    // By user object id too.
    const byId = await rig.call('GET', `/v1.0/users/${s.userId(box)}/messages/${boss.id}?$select=subject,isRead`, { token });
    assert.equal(byId.status, 200, byId.text);
    assert.equal(byId.json().subject, 'Grüße');
    assert.equal(byId.json().isRead, false);

    const write = await rig.appToken();
    const patched = await rig.call('PATCH', `/v1.0/users/${box}/messages/${boss.id}`, { token: write, json: { isRead: true } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.json().isRead, true);
    const next = await rig.call('GET', new URL(page['@odata.deltaLink']).pathname + new URL(page['@odata.deltaLink']).search, { token });
    const changed = next.json<{ value: Array<Record<string, unknown>> }>().value;
    assert.deepEqual(changed.map((v) => [v.id, v.isRead]), [[boss.id, true]]);
    assert.equal((await rig.call('GET', `/v1.0/users/${box}/mailFolders/inbox`, { token })).json().unreadItemCount, 1);

    // Graph DELETE moves it to Deleted Items, as in Exchange.
    assert.equal((await rig.call('DELETE', `/v1.0/users/${box}/messages/${boss.id}`, { token: write })).status, 204);
    assert.equal((await rig.call('GET', `/v1.0/users/${box}/mailFolders/deleteditems`, { token })).json().totalItemCount, 1);
    assert.equal((await rig.call('GET', `/v1.0/users/${box}/messages/${boss.id}`, { token })).status, 404);

    // Unknown synthetic numbers are unknown users; a token of another tenant does not see them.
    assert.equal((await rig.call('GET', `/v1.0/users/user09999@synthetic.test/mailFolders/inbox`, { token })).status, 404);
    assert.equal((await rig.call('GET', `/v1.0/users/${box}/mailFolders/inbox`, { token: await rig.appToken(APP.fabrikam) })).status, 404);
  });

  test(`a notification per delivery across ${COUNT} mailboxes`, async () => {
    const s = rig.synthetic!;
    const token = await rig.appToken();
    const expiry = new Date(Date.now() + 3 * 3600_000).toISOString();
    const ids = new Map<string, string>();
    const addresses = [...s.addresses()];
    // 25 subscriptions at a time: each is a TLS handshake with the receiver, and a burst of 100 of
    // them on a loaded machine failed a validation (the scale under test is the notifications).
    for (let i = 0; i < addresses.length; i += 25) {
      const chunk = addresses.slice(i, i + 25);
      const made = await Promise.all(
        chunk.map((a) =>
          rig.call('POST', '/v1.0/subscriptions', {
            token,
            json: { changeType: 'created,updated', resource: `/users/${a}/mailFolders('inbox')/messages`, notificationUrl: `${rx.url}/scale`, expirationDateTime: expiry, clientState: `cs-${a}` },
          }),
        ),
      );
      for (const [j, r] of made.entries()) {
        assert.equal(r.status, 201, r.text);
        ids.set(String(r.json().id), chunk[j]!);
      }
    }
    assert.equal(rig.graph.subscriptions().length, COUNT);
    for (const a of addresses) s.deliver(a, { from: 'load@example.com', subject: `for ${a}` });
    await waitFor(() => rx.items('/scale').length >= COUNT, 120_000, 'one notification per mailbox');
    await rig.graph.notificationsSettled();
    const got = rx.items('/scale');
    assert.equal(got.length, COUNT);
    const perMailbox = new Set<string>();
    for (const item of got) {
      const mailbox = ids.get(String(item.subscriptionId));
      assert.ok(mailbox, 'a known subscription');
      assert.equal(item.changeType, 'created');
      assert.equal(item.clientState, `cs-${mailbox}`);
      assert.equal(item.tenantId, T.contoso);
      assert.equal(item.resource, `Users/${s.userId(mailbox!)}/Messages/${(item.resourceData as { id: string }).id}`);
      perMailbox.add(mailbox!);
    }
    assert.equal(perMailbox.size, COUNT);
    assert.ok(rx.posts('/scale').length < COUNT, 'notifications were batched');
    // The ids in the notifications are the ones Graph serves.
    const sample = got[123]!;
    const res = await rig.call('GET', `/v1.0/users/${ids.get(String(sample.subscriptionId))}/messages/${(sample.resourceData as { id: string }).id}?$select=subject`, { token });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json().subject, `for ${ids.get(String(sample.subscriptionId))}`);
  });
});
