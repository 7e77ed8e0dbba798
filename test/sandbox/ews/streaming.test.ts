import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { child, firstMessage, nextEvents, NS, startRig, streamMessage, subscribeStreaming, text, type Rig } from './helpers.ts';

describe('sandbox EWS: GetStreamingEvents', () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig({ syntheticCount: 1000 });
  });
  after(async () => {
    await rig.close();
  });

  test('a new mail: CreatedEvent, NewMailEvent, folder ModifiedEvent with UnreadCount; read flag: item ModifiedEvent and the new UnreadCount', async () => {
    const mailbox = rig.synthetic.address(1);
    const { id } = await subscribeStreaming(rig, mailbox);
    const reader = await rig.stream([id], { impersonate: mailbox });
    assert.equal(reader.status, 200);
    assert.match(String(reader.headers['content-type']), /^text\/xml/);
    assert.equal(reader.headers['transfer-encoding'], 'chunked');
    const first = streamMessage(await reader.next());
    assert.equal(text(first, NS.m, 'ConnectionStatus'), 'OK');
    // Each chunk is a whole envelope: default-namespace Envelope, soap11-prefixed Header and Body.
    assert.match(reader.raw[0]!, /^<Envelope xmlns="http:\/\/schemas\.xmlsoap\.org\/soap\/envelope\/"><soap11:Header/);

    const change = rig.synthetic.deliver(mailbox, { from: 'x@example.org', subject: 'hello' });
    const events = await nextEvents(reader);
    assert.deepEqual(events.map((e) => e.type), ['CreatedEvent', 'NewMailEvent', 'ModifiedEvent']);
    assert.ok(events.every((e) => e.sub === id));
    const [created, newMail, folder] = events;
    const itemId = child(newMail!.node, NS.t, 'ItemId')!;
    assert.ok(itemId.attrs.Id && itemId.attrs.ChangeKey);
    assert.equal(child(created!.node, NS.t, 'ItemId')!.attrs.Id, itemId.attrs.Id);
    assert.ok(text(newMail!.node, NS.t, 'Watermark'));
    assert.equal(text(newMail!.node, NS.t, 'TimeStamp'), new Date(change.at).toISOString().replace(/\.\d{3}Z$/, 'Z'));
    const parent = child(newMail!.node, NS.t, 'ParentFolderId')!.attrs.Id;
    assert.equal(child(folder!.node, NS.t, 'FolderId')!.attrs.Id, parent, 'the folder event names the inbox');
    assert.equal(text(folder!.node, NS.t, 'UnreadCount'), '1');

    rig.synthetic.markRead(mailbox, change.uid);
    const read = await nextEvents(reader);
    assert.deepEqual(read.map((e) => e.type), ['ModifiedEvent', 'ModifiedEvent']);
    assert.equal(child(read[0]!.node, NS.t, 'ItemId')!.attrs.Id, itemId.attrs.Id);
    assert.notEqual(child(read[0]!.node, NS.t, 'ItemId')!.attrs.ChangeKey, itemId.attrs.ChangeKey, 'a changed item has a new ChangeKey');
    assert.equal(text(read[1]!.node, NS.t, 'UnreadCount'), '0');
    reader.close();
  });

  test('EventTypes filter: a NewMailEvent-only subscription gets only NewMailEvent', async () => {
    const mailbox = rig.synthetic.address(2);
    const { id } = await subscribeStreaming(rig, mailbox, { events: ['NewMailEvent'] });
    const reader = await rig.stream([id], { impersonate: mailbox });
    rig.synthetic.deliver(mailbox, { from: 'x@example.org', subject: 'only new mail' });
    assert.deepEqual((await nextEvents(reader)).map((e) => e.type), ['NewMailEvent']);
    reader.close();
  });

  test('heartbeats: ConnectionStatus OK after each idle interval; Closed at ConnectionTimeout, then the response ends', async () => {
    const mailbox = rig.synthetic.address(3);
    const { id } = await subscribeStreaming(rig, mailbox);
    const reader = await rig.stream([id], { impersonate: mailbox, timeout: 1 });
    assert.equal(text(streamMessage(await reader.next()), NS.m, 'ConnectionStatus'), 'OK');
    const beats = rig.ews.stats.streams.heartbeats;
    rig.sched.advance(5_000);
    assert.equal(text(streamMessage(await reader.next()), NS.m, 'ConnectionStatus'), 'OK');
    rig.sched.advance(5_000);
    assert.equal(text(streamMessage(await reader.next()), NS.m, 'ConnectionStatus'), 'OK');
    assert.equal(rig.ews.stats.streams.heartbeats, beats + 2);
    rig.sched.advance(50_000);
    // Heartbeats at 15…55 s, then the one-minute ConnectionTimeout.
    let last;
    for (;;) {
      last = streamMessage(await reader.next());
      if (text(last, NS.m, 'ConnectionStatus') !== 'OK') break;
    }
    assert.equal(last.attrs.ResponseClass, 'Success');
    assert.equal(text(last, NS.m, 'ConnectionStatus'), 'Closed');
    assert.equal(await reader.ended, true);
  });

  test('more than 200 SubscriptionIds, or a ConnectionTimeout outside 1–30: error with ConnectionStatus Closed', async () => {
    const mailbox = rig.synthetic.address(4);
    const { id } = await subscribeStreaming(rig, mailbox);
    const tooMany = await rig.stream(Array.from({ length: 201 }, () => id), { impersonate: mailbox });
    const msg = streamMessage(await tooMany.next());
    assert.equal(msg.attrs.ResponseClass, 'Error');
    assert.equal(text(msg, NS.m, 'ResponseCode'), 'ErrorInvalidRequest');
    assert.equal(text(msg, NS.m, 'ConnectionStatus'), 'Closed');
    assert.equal(await tooMany.ended, true);
    const ok = await rig.stream(Array.from({ length: 200 }, () => id), { impersonate: mailbox });
    assert.equal(text(streamMessage(await ok.next()), NS.m, 'ConnectionStatus'), 'OK', '200 is allowed');
    ok.close();
    for (const timeout of [0, 31]) {
      const bad = await rig.stream([id], { impersonate: mailbox, timeout });
      assert.equal(text(streamMessage(await bad.next()), NS.m, 'ResponseCode'), 'ErrorInvalidRequest', `timeout ${timeout}`);
    }
  });

  test('HangingConnectionLimit: the 11th open connection for one impersonated mailbox → ErrorExceededConnectionCount', async () => {
    const mailbox = rig.synthetic.address(5);
    // One subscription per connection: a subscription moves to the newest connection that names it.
    const ids = [];
    for (let i = 0; i < 11; i++) ids.push((await subscribeStreaming(rig, mailbox)).id);
    const readers = [];
    for (let i = 0; i < 10; i++) {
      const r = await rig.stream([ids[i]!], { impersonate: mailbox });
      assert.equal(text(streamMessage(await r.next()), NS.m, 'ConnectionStatus'), 'OK');
      readers.push(r);
    }
    const eleventh = await rig.stream([ids[10]!], { impersonate: mailbox });
    const msg = streamMessage(await eleventh.next());
    assert.equal(text(msg, NS.m, 'ResponseCode'), 'ErrorExceededConnectionCount');
    assert.match(text(msg, NS.m, 'MessageText')!, /exceeded the available concurrent connections/);
    for (const r of readers) r.close();
  });

  test('affinity: the first anchored Subscribe sets X-BackEndOverrideCookie; the group streams with it; without it → ErrorSubscriptionNotFound', async () => {
    const anchor = rig.synthetic.address(10);
    const anchorBackend = rig.ews.backends.of(anchor);
    let other = '';
    for (let i = 11; !other; i++) if (rig.ews.backends.of(rig.synthetic.address(i)) !== anchorBackend) other = rig.synthetic.address(i);
    const affinity = { 'x-anchormailbox': anchor, 'x-preferserveraffinity': 'true' };
    const first = await subscribeStreaming(rig, anchor, {}, affinity);
    const cookies = ([] as string[]).concat(first.res.headers['set-cookie'] ?? []);
    const override = cookies.find((c) => c.startsWith('X-BackEndOverrideCookie='));
    assert.ok(override, 'cookie set');
    assert.match(override!, new RegExp(`^X-BackEndOverrideCookie=${anchorBackend.replace(/\./g, '\\.')}~\\d+; path=/; secure; HttpOnly$`));
    assert.ok(cookies.some((c) => c.startsWith('exchangecookie=')));
    assert.ok(cookies.some((c) => c.startsWith(`X-BackEndCookie=${anchor}=`)));
    const cookie = override!.split(';')[0]!;
    const second = await subscribeStreaming(rig, other, {}, { ...affinity, cookie });
    assert.equal(second.res.headers['set-cookie'], undefined, 'only the first response carries the cookie');

    const grouped = await rig.stream([first.id, second.id], { impersonate: other, headers: { ...affinity, cookie } });
    assert.equal(text(streamMessage(await grouped.next()), NS.m, 'ConnectionStatus'), 'OK');
    rig.synthetic.deliver(other, { from: 'x@example.org', subject: 'grouped' });
    assert.ok((await nextEvents(grouped)).every((e) => e.sub === second.id));
    grouped.close();

    // Anchored to its own mailbox (another backend), no cookie: Exchange cannot find the subscription.
    const lost = await rig.stream([second.id], { impersonate: other, headers: { 'x-anchormailbox': other } });
    const msg = streamMessage(await lost.next());
    assert.equal(text(msg, NS.m, 'ResponseCode'), 'ErrorSubscriptionNotFound');
    assert.equal(text(msg, NS.m, 'MessageText'), 'The specified subscription was not found.');
    assert.equal(text(child(msg, NS.m, 'ErrorSubscriptionIds'), NS.m, 'SubscriptionId'), second.id);
    assert.equal(text(msg, NS.m, 'ConnectionStatus'), 'Closed');
  });

  test('a connection cut in the middle of an envelope loses nothing: the reconnect with the same SubscriptionId gets the events again', async () => {
    const mailbox = rig.synthetic.address(20);
    const { id } = await subscribeStreaming(rig, mailbox);
    const reader = await rig.stream([id], { impersonate: mailbox });
    await reader.next();
    const dropped = rig.ews.stats.streams.dropped;
    assert.equal(rig.ews.dropStreams({ midEnvelope: true }) >= 1, true);
    const change = rig.synthetic.deliver(mailbox, { from: 'x@example.org', subject: 'cut' });
    await reader.ended;
    assert.equal(rig.ews.stats.streams.dropped, dropped + 1, 'cut after half an envelope');
    assert.ok(!reader.raw.some((r) => r.includes('NewMailEvent')), 'no complete notification reached the client');
    // Another mail while disconnected.
    const second = rig.synthetic.deliver(mailbox, { from: 'x@example.org', subject: 'while away' });
    const again = await rig.stream([id], { impersonate: mailbox });
    const events: string[] = [];
    while (events.filter((e) => e === 'NewMailEvent').length < 2) {
      for (const e of await nextEvents(again)) {
        events.push(e.type);
        if (e.type === 'NewMailEvent') assert.ok(child(e.node, NS.t, 'ItemId')!.attrs.Id);
      }
    }
    assert.deepEqual(events, ['CreatedEvent', 'NewMailEvent', 'ModifiedEvent', 'CreatedEvent', 'NewMailEvent', 'ModifiedEvent']);
    assert.ok(change.uid < second.uid);
    again.close();
  });

  test('a subscription without a connection expires after its lifetime (30 minutes): then ErrorSubscriptionNotFound', async () => {
    const mailbox = rig.synthetic.address(21);
    const { id } = await subscribeStreaming(rig, mailbox);
    rig.sched.advance(29 * 60_000);
    const alive = await rig.stream([id], { impersonate: mailbox });
    assert.equal(text(streamMessage(await alive.next()), NS.m, 'ConnectionStatus'), 'OK');
    alive.close();
    await alive.ended;
    // The clock restarts at the disconnect (the close reaches the server asynchronously).
    for (let i = 0; i < 50 && rig.ews.stats.streams.open > 0; i++) await new Promise((r) => setTimeout(r, 10));
    rig.sched.advance(31 * 60_000);
    const gone = await rig.stream([id], { impersonate: mailbox });
    assert.equal(text(streamMessage(await gone.next()), NS.m, 'ResponseCode'), 'ErrorSubscriptionNotFound');
  });

  test('Unsubscribe ends a subscription; a second Unsubscribe gets ErrorSubscriptionNotFound', async () => {
    const mailbox = rig.synthetic.address(22);
    const { id } = await subscribeStreaming(rig, mailbox);
    const un = await rig.soap(`<m:Unsubscribe><m:SubscriptionId>${id}</m:SubscriptionId></m:Unsubscribe>`, { impersonate: mailbox });
    assert.equal(firstMessage(un.xml()).attrs.ResponseClass, 'Success');
    const again = await rig.soap(`<m:Unsubscribe><m:SubscriptionId>${id}</m:SubscriptionId></m:Unsubscribe>`, { impersonate: mailbox });
    assert.equal(text(firstMessage(again.xml()), NS.m, 'ResponseCode'), 'ErrorSubscriptionNotFound');
  });

  test('synthetic scale: 400 mailboxes subscribed with affinity, streamed over two connections of 200, one event each', async () => {
    const addresses = Array.from({ length: 400 }, (_, i) => rig.synthetic.address(500 + i));
    const groups = [addresses.slice(0, 200), addresses.slice(200)];
    const readers = [];
    const ids = new Set<string>();
    for (const group of groups) {
      const anchor = group[0]!;
      const affinity: Record<string, string> = { 'x-anchormailbox': anchor, 'x-preferserveraffinity': 'true' };
      const groupIds: string[] = [];
      for (const mailbox of group) {
        const { id, res } = await subscribeStreaming(rig, mailbox, { events: ['NewMailEvent'] }, affinity);
        const set = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('X-BackEndOverrideCookie='));
        if (set) affinity.cookie = set.split(';')[0]!;
        groupIds.push(id);
        ids.add(id);
      }
      const reader = await rig.stream(groupIds, { impersonate: anchor, headers: affinity });
      assert.equal(text(streamMessage(await reader.next()), NS.m, 'ConnectionStatus'), 'OK');
      readers.push(reader);
    }
    for (const mailbox of addresses) rig.synthetic.deliver(mailbox, { from: 'bench@example.org', subject: 'scale' });
    const seen = new Set<string>();
    for (const reader of readers) {
      while ([...seen].length < 400) {
        const events = await nextEvents(reader).catch(() => []);
        if (events.length === 0) break;
        for (const e of events) seen.add(e.sub);
        if (readers.indexOf(reader) === 0 && seen.size >= 200) break;
      }
    }
    assert.equal(seen.size, 400);
    assert.ok([...seen].every((s) => ids.has(s)));
    for (const r of readers) r.close();
  });
});
