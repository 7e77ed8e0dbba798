/**
 * The sandbox EWS over the sandbox's real Dovecot: a message delivered over LMTP shows up as
 * streaming events, GetItem reads it from Dovecot, a read flag set over IMAP becomes a
 * ModifiedEvent, and SyncFolderItems catches up from Dovecot's folder listing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ImapFlow } from 'imapflow';
import { createSandboxCa } from '../../../src/sandbox/ca.ts';
import { startDovecot, type Dovecot } from '../../../src/sandbox/dovecot.ts';
import { DovecotFeed } from '../../../src/sandbox/feed/dovecot.ts';
import { MailStore } from '../../../src/sandbox/graph/store.ts';
import { ALICE, child, firstMessage, kids, nextEvents, NS, startRig, streamMessage, subscribeStreaming, text, type Rig } from './helpers.ts';

describe('sandbox EWS over the real Dovecot', () => {
  let dovecot: Dovecot;
  let feed: DovecotFeed;
  let store: MailStore;
  let rig: Rig;
  before(async () => {
    const ca = createSandboxCa();
    dovecot = await startDovecot({ tls: ca.issueServer() });
    feed = new DovecotFeed(dovecot);
    store = new MailStore(dovecot);
    rig = await startRig({ feed, lister: store });
  });
  after(async () => {
    await rig?.close();
    await feed?.close();
    await store?.close();
    await dovecot?.stop();
  });

  const raw = (subject: string) =>
    `From: Sender Person <sender@example.org>\r\nTo: ${ALICE}\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.org>\r\nDate: ${new Date().toUTCString()}\r\n\r\nHello.\r\n`;

  test('a mail delivered into Dovecot streams as CreatedEvent + NewMailEvent + ModifiedEvent; GetItem reads it; an IMAP \\Seen becomes a ModifiedEvent', async () => {
    // The first delivery creates the mailbox (INBOX) in Dovecot.
    await dovecot.deliver({ from: 'sender@example.org', to: [ALICE] }, raw('warm up'));
    const { id } = await subscribeStreaming(rig, ALICE);
    const reader = await rig.stream([id], { impersonate: ALICE });
    assert.equal(text(streamMessage(await reader.next()), NS.m, 'ConnectionStatus'), 'OK');

    const result = await dovecot.deliver({ from: 'sender@example.org', to: [ALICE] }, raw('Invoice 4711'));
    assert.deepEqual(result.accepted, [ALICE]);
    const events = await nextEvents(reader);
    assert.deepEqual(events.map((e) => e.type), ['CreatedEvent', 'NewMailEvent', 'ModifiedEvent']);
    assert.equal(text(events[2]!.node, NS.t, 'UnreadCount'), '2');
    const itemId = child(events[1]!.node, NS.t, 'ItemId')!.attrs.Id!;

    const item = await rig.soap(
      `<m:GetItem><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="${itemId}"/></m:ItemIds></m:GetItem>`,
      { impersonate: ALICE },
    );
    const message = child(child(firstMessage(item.xml()), NS.m, 'Items'), NS.t, 'Message')!;
    assert.equal(text(message, NS.t, 'Subject'), 'Invoice 4711');
    assert.equal(text(child(child(message, NS.t, 'From'), NS.t, 'Mailbox'), NS.t, 'Name'), 'Sender Person');
    assert.equal(text(message, NS.t, 'IsRead'), 'false');

    const imap = new ImapFlow({ host: dovecot.host, port: dovecot.ports.imap, secure: false, auth: { user: ALICE, accessToken: await dovecot.mintToken(ALICE) }, logger: false, tls: { rejectUnauthorized: false } });
    await imap.connect();
    try {
      await imap.mailboxOpen('INBOX');
      await imap.messageFlagsAdd({ subject: 'Invoice 4711' }, ['\\Seen']);
    } finally {
      await imap.logout();
    }
    const read = await nextEvents(reader);
    assert.equal(read[0]!.type, 'ModifiedEvent');
    assert.equal(child(read[0]!.node, NS.t, 'ItemId')!.attrs.Id, itemId);
    assert.equal(text(read.find((e) => child(e.node, NS.t, 'FolderId'))!.node, NS.t, 'UnreadCount'), '1');
    reader.close();
  });

  test('SyncFolderItems over Dovecot: the initial sync lists the inbox, the next round reports the read flag', async () => {
    const sync = async (state?: string) => {
      const res = await rig.soap(
        `<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="inbox"/></m:SyncFolderId>${state ? `<m:SyncState>${state}</m:SyncState>` : ''}<m:MaxChangesReturned>100</m:MaxChangesReturned></m:SyncFolderItems>`,
        { impersonate: ALICE },
      );
      const msg = firstMessage(res.xml());
      assert.equal(msg.attrs.ResponseClass, 'Success', res.text);
      return { state: text(msg, NS.m, 'SyncState')!, changes: child(msg, NS.m, 'Changes')?.children ?? [] };
    };
    const first = await sync();
    assert.equal(kids({ ns: '', name: '', attrs: {}, text: '', children: first.changes }, NS.t, 'Create').length, 2);
    const imap = new ImapFlow({ host: dovecot.host, port: dovecot.ports.imap, secure: false, auth: { user: ALICE, accessToken: await dovecot.mintToken(ALICE) }, logger: false, tls: { rejectUnauthorized: false } });
    await imap.connect();
    try {
      await imap.mailboxOpen('INBOX');
      await imap.messageFlagsAdd({ subject: 'warm up' }, ['\\Seen']);
    } finally {
      await imap.logout();
    }
    const second = await sync(first.state);
    assert.deepEqual(second.changes.map((c) => c.name), ['ReadFlagChange']);
    assert.equal(text(second.changes[0], NS.t, 'IsRead'), 'true');
  });
});
