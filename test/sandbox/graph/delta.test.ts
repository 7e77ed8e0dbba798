/**
 * Sandbox Graph reads on the real Dovecot state: delta rounds (paging, $select, incremental
 * created/updated/@removed from CONDSTORE/QRESYNC, changeType, expired tokens), a message as a
 * resource and as raw MIME ($value, byte for byte), PATCH isRead, DELETE, move, folder counts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { GraphError } from '../../../src/sandbox/graph/index.ts';
import { TokenCache } from '../../../src/sandbox/graph/delta.ts';
import { APP, graphError, rfc822, startRig, USER, type Response, type Rig } from './helpers.ts';

let rig: Rig;
before(async () => {
  rig = await startRig();
});
after(async () => {
  await rig?.close();
});

type Item = Record<string, unknown> & { id: string };
interface Page {
  '@odata.context': string;
  '@odata.nextLink'?: string;
  '@odata.deltaLink'?: string;
  value: Item[];
}

/** Path and query of a link the sandbox returned (it points at the sandbox itself). */
function local(link: string): string {
  const u = new URL(link);
  assert.equal(u.origin, rig.graph.url);
  return u.pathname + u.search;
}

async function deliver(address: string, subject: string, extra?: string): Promise<Buffer> {
  const raw = Buffer.from(rfc822({ from: 'sender@example.com', to: address, subject, extra }));
  const r = await rig.dovecot.deliver({ from: 'sender@example.com', to: [address] }, raw);
  assert.deepEqual(r.accepted, [address]);
  return raw;
}

/** One whole round from `path`: every page's items, the page sizes and the final deltaLink. */
async function round(path: string, token: string, maxPageSize?: number): Promise<{ items: Item[]; pages: number[]; deltaLink: string }> {
  const items: Item[] = [];
  const pages: number[] = [];
  let next: string | undefined = path;
  const headers: Record<string, string> = maxPageSize ? { prefer: `odata.maxpagesize=${maxPageSize}` } : {};
  for (let i = 0; i < 100 && next; i++) {
    const res = await rig.call('GET', next, { token, headers });
    assert.equal(res.status, 200, res.text);
    const page = res.json<Page>();
    assert.match(page['@odata.context'], /\/v1\.0\/\$metadata#Collection\(message\)$/);
    items.push(...page.value);
    pages.push(page.value.length);
    if (page['@odata.deltaLink']) {
      assert.equal(page['@odata.nextLink'], undefined);
      assert.match(page['@odata.deltaLink'], /\/messages\/delta\?\$deltatoken=[A-Za-z0-9_-]+$/);
      return { items, pages, deltaLink: local(page['@odata.deltaLink']) };
    }
    assert.ok(page['@odata.nextLink'], 'a page without deltaLink has a nextLink');
    assert.match(page['@odata.nextLink'], /\/messages\/delta\?\$skiptoken=[A-Za-z0-9_-]+$/);
    next = local(page['@odata.nextLink']);
  }
  throw new Error('round did not end');
}

function expectSyncStateNotFound(res: Response): void {
  assert.equal(res.status, 410, res.text);
  const err = graphError(res);
  assert.equal(err.code, 'SyncStateNotFound');
  assert.match(err.message, /^The sync state generation is not found; generation=\d+;\[highest=\d+\]\[\d+\]\[\d+\]\[\d+\]\.$/);
  assert.ok(err.innerError['request-id']);
}

const subjectOf = (i: Item) => String(i.subject);

describe('delta: rounds over the inbox', () => {
  const A = USER.alice.upn;
  const base = `/v1.0/users/${A}/mailFolders/inbox/messages/delta`;

  test('initial sync pages with Prefer: odata.maxpagesize and $select; later rounds return only created, updated and @removed', async () => {
    const token = await rig.appToken(APP.relay);
    const subjects = Array.from({ length: 5 }, (_, i) => `initial-${i} ${randomUUID()}`);
    for (const s of subjects) await deliver(A, s);

    const first = await round(`${base}?$select=subject,isRead,from`, token, 2);
    assert.deepEqual(first.pages, [2, 2, 1]);
    assert.deepEqual(first.items.map(subjectOf).sort(), [...subjects].sort());
    assert.equal(new Set(first.items.map((i) => i.id)).size, 5);
    for (const item of first.items) {
      assert.deepEqual(Object.keys(item).sort(), ['@odata.etag', '@odata.type', 'from', 'id', 'isRead', 'subject'].sort());
      assert.equal(item['@odata.type'], '#microsoft.graph.message');
      assert.equal(item.isRead, false);
      assert.deepEqual(item.from, { emailAddress: { name: 'sender@example.com', address: 'sender@example.com' } });
    }
    const idOf = (s: string) => first.items.find((i) => i.subject === s)?.id as string;

    // Nothing changed: an empty page and a new deltaLink.
    const quiet = await round(first.deltaLink, token);
    assert.deepEqual(quiet.items, []);
    assert.notEqual(quiet.deltaLink, first.deltaLink);

    // Changes from all sides: LMTP delivery and a Graph sendMail (new), \Seen over IMAP and over
    // Graph PATCH (updated), an IMAP expunge (removed).
    const fresh = `fresh ${randomUUID()}`;
    await deliver(A, fresh);
    const viaGraph = `via-graph ${randomUUID()}`;
    const sent = await rig.call('POST', `/v1.0/users/${USER.bob.upn}/sendMail`, { token, json: { message: { subject: viaGraph, toRecipients: [{ emailAddress: { address: A } }] } } });
    assert.equal(sent.status, 202, sent.text);
    const imap = await rig.imap(A);
    await imap.mailboxOpen('INBOX');
    const [seenUid] = (await imap.search({ header: { subject: subjects[0] as string } }, { uid: true })) || [];
    const [goneUid] = (await imap.search({ header: { subject: subjects[1] as string } }, { uid: true })) || [];
    assert.ok(seenUid && goneUid);
    await imap.messageFlagsAdd(String(seenUid), ['\\Seen'], { uid: true });
    await imap.messageDelete(String(goneUid), { uid: true });
    const patched = await rig.call('PATCH', `/v1.0/users/${A}/messages/${idOf(subjects[2] as string)}`, { token, json: { isRead: true } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.json().isRead, true);

    const second = await round(quiet.deltaLink, token, 2);
    const removed = second.items.filter((i) => i['@removed']);
    assert.deepEqual(removed, [{ '@odata.type': '#microsoft.graph.message', id: idOf(subjects[1] as string), '@removed': { reason: 'deleted' } }]);
    const changed = second.items.filter((i) => !i['@removed']);
    assert.deepEqual(changed.map(subjectOf).sort(), [fresh, viaGraph, subjects[0], subjects[2]].sort());
    for (const item of changed) {
      // $select of the first round is encoded in the tokens.
      assert.deepEqual(Object.keys(item).sort(), ['@odata.etag', '@odata.type', 'from', 'id', 'isRead', 'subject'].sort());
    }
    assert.equal(changed.find((i) => i.subject === subjects[0])?.id, idOf(subjects[0] as string), 'ids are stable');
    assert.equal(changed.find((i) => i.subject === subjects[0])?.isRead, true);
    assert.equal(changed.find((i) => i.subject === subjects[2])?.isRead, true);
    assert.equal(changed.find((i) => i.subject === fresh)?.isRead, false);
    assert.notEqual(
      changed.find((i) => i.subject === subjects[0])?.['@odata.etag'],
      first.items.find((i) => i.subject === subjects[0])?.['@odata.etag'],
      'the etag changes with the flags',
    );

    // A delta token can be used again (Graph replays are allowed): same changes.
    const replay = await round(quiet.deltaLink, token);
    assert.deepEqual(replay.items.map((i) => i.id).sort(), second.items.map((i) => i.id).sort());

    // DELETE through Graph: the message leaves the inbox (to Deleted Items) and the next round says so.
    const del = await rig.call('DELETE', `/v1.0/users/${A}/messages/${idOf(subjects[3] as string)}`, { token });
    assert.equal(del.status, 204, del.text);
    assert.equal(del.body.length, 0);
    const third = await round(second.deltaLink, token);
    assert.deepEqual(third.items, [{ '@odata.type': '#microsoft.graph.message', id: idOf(subjects[3] as string), '@removed': { reason: 'deleted' } }]);
    const trash = await rig.call('GET', `/v1.0/users/${A}/mailFolders/deleteditems`, { token });
    assert.equal(trash.json().totalItemCount, 1);

    const fourth = await round(third.deltaLink, token);
    assert.deepEqual(fourth.items, []);
  });

  test('changeType=created: the first round has everything, later rounds only new messages', async () => {
    const token = await rig.appToken(APP.relay);
    const folder = `/v1.0/users/${USER.dave.upn}/mailFolders/inbox/messages/delta`;
    const a = `ct-a ${randomUUID()}`;
    const b = `ct-b ${randomUUID()}`;
    await deliver(USER.dave.upn, a);
    await deliver(USER.dave.upn, b);
    const first = await round(`${folder}?changeType=created&$select=subject`, token);
    assert.deepEqual(first.items.map(subjectOf).sort(), [a, b].sort());
    const imap = await rig.imap(USER.dave.upn);
    await imap.mailboxOpen('INBOX');
    const uids = (await imap.search({ all: true }, { uid: true })) || [];
    await imap.messageFlagsAdd(String(uids[0]), ['\\Seen'], { uid: true });
    await imap.messageDelete(String(uids[1]), { uid: true });
    const c = `ct-c ${randomUUID()}`;
    await deliver(USER.dave.upn, c);
    const second = await round(first.deltaLink, token);
    assert.deepEqual(second.items.map(subjectOf), [c]);
    assert.deepEqual(Object.keys(second.items[0] ?? {}).sort(), ['@odata.etag', '@odata.type', 'id', 'subject']);
  });

  test('a message gone between listing and its page is not reported, and never comes back as @removed', async () => {
    const token = await rig.appToken(APP.relay);
    const box = USER.bob.upn;
    const folder = `/v1.0/users/${box}/mailFolders/inbox/messages/delta?$select=subject`;
    const imap = await rig.imap(box);
    await imap.mailboxOpen('INBOX');
    const existing = (await imap.search({ all: true }, { uid: true })) || [];
    if (existing.length) await imap.messageDelete(existing.join(','), { uid: true });
    const older = `older ${randomUUID()}`;
    const newer = `newer ${randomUUID()}`;
    await deliver(box, older);
    await deliver(box, newer);
    const headers = { prefer: 'odata.maxpagesize=1' };
    const page1 = (await rig.call('GET', folder, { token, headers })).json<Page>();
    assert.deepEqual(page1.value.map(subjectOf), [newer], 'newest first');
    await imap.noop(); // let this session see the new mail
    const [olderUid] = (await imap.search({ header: { subject: older } }, { uid: true })) || [];
    assert.ok(olderUid);
    await imap.messageDelete(String(olderUid), { uid: true });
    const page2 = (await rig.call('GET', local(page1['@odata.nextLink'] as string), { token, headers })).json<Page>();
    assert.deepEqual(page2.value, []);
    assert.ok(page2['@odata.deltaLink']);
    const next = await round(local(page2['@odata.deltaLink'] as string), token);
    assert.deepEqual(next.items, []);
  });

  test('$filter=receivedDateTime ge …; other filters and changeType values are refused', async () => {
    const token = await rig.appToken(APP.relay);
    const future = new Date(Date.now() + 86_400_000).toISOString();
    const none = await round(`${base}?$filter=receivedDateTime ge ${future}`, token);
    assert.deepEqual(none.items, []);
    const bad = await rig.call('GET', `${base}?$filter=subject eq 'x'`, { token });
    assert.equal(bad.status, 400);
    assert.equal(graphError(bad).code, 'ErrorInvalidUrlQueryFilter');
    const badType = await rig.call('GET', `${base}?changeType=moved`, { token });
    assert.equal(badType.status, 400);
    assert.equal(graphError(badType).code, 'ErrorInvalidUrlQuery');
    const badSelect = await rig.call('GET', `${base}?$select=subject,nonsense`, { token });
    assert.equal(badSelect.status, 400);
    assert.deepEqual({ code: graphError(badSelect).code, message: graphError(badSelect).message }, {
      code: 'RequestBroker--ParseUri',
      message: "Could not find a property named 'nonsense' on type 'microsoft.graph.message'.",
    });
  });
});

describe('delta: lost sync state (410 SyncStateNotFound)', () => {
  test('expireDeltaTokens(): delta and skip tokens of earlier rounds fail; a fresh round works', async () => {
    const token = await rig.appToken(APP.relay);
    const box = USER.alice.upn;
    const base = `/v1.0/users/${box}/mailFolders/inbox/messages/delta`;
    await deliver(box, `expire-1 ${randomUUID()}`);
    await deliver(box, `expire-2 ${randomUUID()}`);
    const page1 = (await rig.call('GET', base, { token, headers: { prefer: 'odata.maxpagesize=1' } })).json<Page>();
    const skip = local(page1['@odata.nextLink'] as string);
    const whole = await round(base, token);
    rig.graph.expireDeltaTokens();
    expectSyncStateNotFound(await rig.call('GET', whole.deltaLink, { token }));
    expectSyncStateNotFound(await rig.call('GET', skip, { token }));
    const again = await round(base, token);
    assert.ok(again.items.length >= 2);
  });

  test('a token never issued, or issued for another folder or mailbox', async () => {
    const token = await rig.appToken(APP.relay);
    const box = USER.alice.upn;
    expectSyncStateNotFound(await rig.call('GET', `/v1.0/users/${box}/mailFolders/inbox/messages/delta?$deltatoken=GwcBoTmPuoGNlgXgF1nyUNMXY`, { token }));
    const inbox = await round(`/v1.0/users/${box}/mailFolders/inbox/messages/delta`, token);
    const tokenPart = inbox.deltaLink.slice(inbox.deltaLink.indexOf('?'));
    expectSyncStateNotFound(await rig.call('GET', `/v1.0/users/${box}/mailFolders/archive/messages/delta${tokenPart}`, { token }));
    expectSyncStateNotFound(await rig.call('GET', `/v1.0/users/${USER.bob.upn}/mailFolders/inbox/messages/delta${tokenPart}`, { token }));
  });

  test('the token cache is bounded: the oldest state is evicted', () => {
    const cache = new TokenCache(2);
    const state = { kind: 'delta' as const, mailbox: 'a@b.c', folder: 'INBOX', query: {}, uidValidity: '1', modseq: '1', known: [] };
    const first = cache.issue(state);
    cache.issue(state);
    cache.issue(state);
    assert.equal(cache.size, 2);
    assert.throws(
      () => cache.get(first, { mailbox: 'a@b.c', folder: 'INBOX', kind: 'delta' }),
      (err: unknown) => err instanceof GraphError && err.status === 410 && /generation=1;\[highest=3\]/.test(err.message),
    );
  });
});

describe('a message', () => {
  const box = USER.alice.upn;

  async function idOf(subject: string, token: string): Promise<string> {
    const all = await round(`/v1.0/users/${box}/mailFolders/inbox/messages/delta?$select=subject`, token);
    const item = all.items.find((i) => i.subject === subject);
    assert.ok(item, `message ${subject} in the inbox`);
    return item.id;
  }

  test('GET: the resource with Graph properties; $select narrows it', async () => {
    const token = await rig.appToken(APP.reader);
    const subject = `get ${randomUUID()}`;
    const raw = await deliver(box, subject, 'Cc: Bob Baker <bob@contoso.test>\r\nImportance: high\r\n');
    const id = await idOf(subject, token);
    const res = await rig.call('GET', `/v1.0/users/${box}/messages/${id}`, { token });
    assert.equal(res.status, 200, res.text);
    const m = res.json();
    assert.match(String(m['@odata.context']), /\/v1\.0\/\$metadata#users\('alice%40contoso\.test'\)\/messages\/\$entity$/);
    assert.equal(m.id, id);
    assert.equal(m.subject, subject);
    assert.deepEqual(m.from, { emailAddress: { name: 'sender@example.com', address: 'sender@example.com' } });
    assert.deepEqual(m.toRecipients, [{ emailAddress: { name: box, address: box } }]);
    assert.deepEqual(m.ccRecipients, [{ emailAddress: { name: 'Bob Baker', address: 'bob@contoso.test' } }]);
    assert.deepEqual(m.bccRecipients, []);
    assert.equal(m.importance, 'high');
    assert.equal(m.isRead, false);
    assert.equal(m.isDraft, false);
    assert.equal(m.hasAttachments, false);
    assert.match(String(m.receivedDateTime), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(m.sentDateTime, '2026-11-23T10:00:00Z');
    assert.equal(m.internetMessageId, /Message-ID: (<[^>]+>)/.exec(raw.toString())?.[1]);
    assert.equal(m.bodyPreview, `Body of ${subject}.`);
    assert.deepEqual(m.body, { contentType: 'text', content: `Body of ${subject}.\n` });
    assert.deepEqual(m.flag, { flagStatus: 'notFlagged' });
    const inbox = (await rig.call('GET', `/v1.0/users/${box}/mailFolders/inbox`, { token })).json();
    assert.equal(m.parentFolderId, inbox.id);
    assert.match(String(m['@odata.etag']), /^W\/"[A-Za-z0-9+/=]+"$/);

    const narrow = await rig.call('GET', `/v1.0/users/${box}/messages/${id}?$select=subject,isRead`, { token });
    // Graph's property order, whatever the order in $select.
    assert.deepEqual(Object.keys(narrow.json()), ['@odata.context', '@odata.etag', 'id', 'subject', 'isRead']);
  });

  test('$value: the raw MIME exactly as Dovecot stores it', async () => {
    const token = await rig.appToken(APP.reader);
    const subject = `value ${randomUUID()}`;
    const raw = await deliver(box, subject, 'X-Spaces:  two  spaces  \r\nX-Folded: first\r\n\tsecond\r\n');
    const id = await idOf(subject, token);
    const res = await rig.call('GET', `/v1.0/users/${box}/messages/${id}/$value`, { token });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    assert.deepEqual(res.body, Buffer.concat([Buffer.from('Return-Path: <sender@example.com>\r\n'), raw]));
    const imap = await rig.imap(box);
    await imap.mailboxOpen('INBOX');
    const [uid] = (await imap.search({ header: { subject } }, { uid: true })) || [];
    const stored = await imap.fetchOne(String(uid), { source: true }, { uid: true });
    assert.ok(stored && stored.source);
    assert.deepEqual(res.body, stored.source);
  });

  test('PATCH isRead and flag; folder counts follow', async () => {
    const token = await rig.appToken(APP.relay);
    const subject = `patch ${randomUUID()}`;
    await deliver(box, subject);
    const id = await idOf(subject, token);
    const before = (await rig.call('GET', `/v1.0/users/${box}/mailFolders/inbox`, { token })).json();
    const res = await rig.call('PATCH', `/v1.0/users/${box}/messages/${id}`, { token, json: { isRead: true, flag: { flagStatus: 'flagged' } } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json().isRead, true);
    assert.deepEqual(res.json().flag, { flagStatus: 'flagged' });
    const after = (await rig.call('GET', `/v1.0/users/${box}/mailFolders/inbox`, { token })).json();
    assert.equal(after.totalItemCount, before.totalItemCount);
    assert.equal(after.unreadItemCount, Number(before.unreadItemCount) - 1);
    const imap = await rig.imap(box);
    await imap.mailboxOpen('INBOX');
    const [uid] = (await imap.search({ header: { subject } }, { uid: true })) || [];
    const row = await imap.fetchOne(String(uid), { flags: true }, { uid: true });
    const flags = row ? row.flags : undefined;
    assert.ok(flags?.has('\\Seen') && flags.has('\\Flagged'), 'the flags are set in Dovecot');
    const unsupported = await rig.call('PATCH', `/v1.0/users/${box}/messages/${id}`, { token, json: { subject: 'new' } });
    assert.equal(unsupported.status, 400);
    assert.equal(graphError(unsupported).code, 'ErrorInvalidRequest');
  });

  test('move to Archive: 201 with the new id; the old id is gone; DELETE from Deleted Items is final', async () => {
    const token = await rig.appToken(APP.relay);
    const subject = `move ${randomUUID()}`;
    await deliver(box, subject);
    const id = await idOf(subject, token);
    const moved = await rig.call('POST', `/v1.0/users/${box}/messages/${id}/move`, { token, json: { destinationId: 'archive' } });
    assert.equal(moved.status, 201, moved.text);
    const archive = (await rig.call('GET', `/v1.0/users/${box}/mailFolders/archive`, { token })).json();
    assert.equal(moved.json().parentFolderId, archive.id);
    assert.notEqual(moved.json().id, id);
    const old = await rig.call('GET', `/v1.0/users/${box}/messages/${id}`, { token });
    assert.equal(old.status, 404);
    assert.deepEqual({ code: graphError(old).code, message: graphError(old).message }, { code: 'ErrorItemNotFound', message: 'The specified object was not found in the store.' });

    const newId = moved.json().id as string;
    assert.equal((await rig.call('DELETE', `/v1.0/users/${box}/messages/${newId}`, { token })).status, 204);
    const trashDelta = await round(`/v1.0/users/${box}/mailFolders/deleteditems/messages/delta?$select=subject`, token);
    const inTrash = trashDelta.items.find((i) => i.subject === subject);
    assert.ok(inTrash, 'soft-deleted into Deleted Items');
    assert.equal((await rig.call('DELETE', `/v1.0/users/${box}/messages/${inTrash.id}`, { token })).status, 204);
    assert.equal((await rig.call('GET', `/v1.0/users/${box}/messages/${inTrash.id}`, { token })).status, 404);
  });
});
