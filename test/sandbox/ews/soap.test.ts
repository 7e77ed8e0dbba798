import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSubscriptionId } from '../../../src/sandbox/ews/ids.ts';
import { ALICE, child, firstMessage, kids, NS, SVC, startRig, streamingSubscribe, text, U1, U2, U3, type Rig, type XNode } from './helpers.ts';

function fault(doc: XNode): { code: string; faultcodeNs: string; responseCode?: string; values: Record<string, string> } {
  const f = child(child(doc, NS.soap, 'Body'), NS.soap, 'Fault')!;
  const faultcode = child(f, '', 'faultcode')!;
  const detail = child(f, '', 'detail');
  const values: Record<string, string> = {};
  for (const v of kids(child(detail, NS.t, 'MessageXml'), NS.t, 'Value')) values[v.attrs.Name!] = v.text;
  return { code: faultcode.text, faultcodeNs: faultcode.text.startsWith('a:') ? 'a' : '', responseCode: text(detail, NS.e, 'ResponseCode'), values };
}

describe('sandbox EWS: SOAP shapes, auth, limits (on-premises Exchange 2019)', () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig();
  });
  after(async () => {
    await rig.close();
  });

  test('Subscribe (streaming) answers in Exchange shape with http:// namespaces and a SubscriptionId naming the backend', async () => {
    const res = await rig.soap(streamingSubscribe(), { impersonate: U1 });
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/xml; charset=utf-8/);
    assert.doesNotMatch(res.text, /https:\/\/schemas/);
    const doc = res.xml();
    assert.equal(doc.ns, NS.soap);
    assert.equal(doc.name, 'Envelope');
    const version = child(child(doc, NS.soap, 'Header'), NS.t, 'ServerVersionInfo')!;
    assert.equal(version.attrs.MajorVersion, '15');
    assert.equal(version.attrs.MinorVersion, '2');
    const response = child(doc, NS.soap, 'Body')!.children[0]!;
    assert.deepEqual([response.ns, response.name], [NS.m, 'SubscribeResponse']);
    const msg = firstMessage(doc);
    assert.deepEqual([msg.ns, msg.name, msg.attrs.ResponseClass], [NS.m, 'SubscribeResponseMessage', 'Success']);
    assert.equal(text(msg, NS.m, 'ResponseCode'), 'NoError');
    assert.equal(child(msg, NS.m, 'Watermark'), undefined, 'streaming subscriptions have no watermark');
    const id = text(msg, NS.m, 'SubscriptionId')!;
    assert.equal(parseSubscriptionId(id)?.backend, rig.ews.backends.of(U1).toLowerCase());
    assert.match(Buffer.from(id, 'base64').toString('latin1'), new RegExp(rig.ews.backends.of(U1).replace(/\./g, '\\.'), 'i'));
  });

  test('app-only without ExchangeImpersonation: HTTP 500 fault ErrorInvalidExchangeImpersonationHeader', async () => {
    const res = await rig.soap(streamingSubscribe());
    assert.equal(res.status, 500);
    const doc = res.xml();
    const f = fault(doc);
    assert.equal(f.code, 'a:ErrorInvalidExchangeImpersonationHeader');
    assert.equal(f.responseCode, 'ErrorInvalidExchangeImpersonationHeader');
    assert.match(res.text, /xmlns:a="http:\/\/schemas\.microsoft\.com\/exchange\/services\/2006\/types"/);
    assert.match(res.text, /ExchangeImpersonation SOAP header must be present for this type of OAuth token\./);
  });

  test('impersonating an unknown mailbox or one of another tenant: fault ErrorNonExistentMailbox', async () => {
    for (const target of ['nobody@contoso.test', 'frank@fabrikam.test']) {
      const res = await rig.soap(streamingSubscribe(), { impersonate: target });
      assert.equal(res.status, 500, target);
      assert.equal(fault(res.xml()).responseCode, 'ErrorNonExistentMailbox');
    }
  });

  test('tokens: none, without full_access_as_app, expired, wrong audience → 401 with an empty body', async () => {
    const none = await rig.soap(streamingSubscribe(), { auth: 'Negotiate abc' });
    assert.equal(none.status, 401);
    assert.equal(none.text, '');
    assert.match(String(none.headers['www-authenticate']), /Basic realm=/);
    const noRole = await rig.soap(streamingSubscribe(), { token: await rig.appToken({ roles: ['IMAP.AccessAsApp'] }), impersonate: U1 });
    assert.equal(noRole.status, 401);
    assert.match(String(noRole.headers['x-ms-diagnostics']), /full_access_as_app/);
    const expired = await rig.soap(streamingSubscribe(), { token: await rig.appToken({ exp: Math.floor(rig.sched.now() / 1000) - 3600 }), impersonate: U1 });
    assert.equal(expired.status, 401);
    assert.match(String(expired.headers['x-ms-diagnostics']), /expired/);
    const graphAud = await rig.soap(streamingSubscribe(), { token: await rig.appToken({ aud: 'https://graph.microsoft.com' }), impersonate: U1 });
    assert.equal(graphAud.status, 401);
  });

  test('Basic auth (on-premises): a service account impersonates where it has FullAccess, is denied elsewhere, acts as itself without the header', async () => {
    const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
    const ok = await rig.soap(streamingSubscribe(), { auth: basic(SVC, 'svc-pw'), impersonate: U2 });
    assert.equal(firstMessage(ok.xml()).attrs.ResponseClass, 'Success');
    const denied = await rig.soap(streamingSubscribe(), { auth: basic(SVC, 'svc-pw'), impersonate: U1 });
    assert.equal(denied.status, 500);
    assert.equal(fault(denied.xml()).responseCode, 'ErrorImpersonateUserDenied');
    const own = await rig.soap(streamingSubscribe(), { auth: basic(`CONTOSO\\${U3}`, 'u3-pw') });
    assert.equal(firstMessage(own.xml()).attrs.ResponseClass, 'Success');
    const wrong = await rig.soap(streamingSubscribe(), { auth: basic(U3, 'nope') });
    assert.equal(wrong.status, 401);
    const delegated = await rig.soap(streamingSubscribe(), { token: await rig.userToken(U3) });
    assert.equal(firstMessage(delegated.xml()).attrs.ResponseClass, 'Success');
  });

  test('one mailbox per Subscribe: FolderIds of two mailboxes → ErrorInvalidSubscriptionRequest', async () => {
    const body = `<m:Subscribe><m:StreamingSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="inbox"><t:Mailbox><t:EmailAddress>${U1}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId><t:DistinguishedFolderId Id="inbox"><t:Mailbox><t:EmailAddress>${U2}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId></t:FolderIds><t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes></m:StreamingSubscriptionRequest></m:Subscribe>`;
    const msg = firstMessage((await rig.soap(body, { impersonate: U1 })).xml());
    assert.equal(msg.attrs.ResponseClass, 'Error');
    assert.equal(text(msg, NS.m, 'ResponseCode'), 'ErrorInvalidSubscriptionRequest');
    assert.equal(text(msg, NS.m, 'DescriptiveLinkKey'), '0');
  });

  test('EWSMaxSubscriptions: the 21st subscription of a mailbox → ErrorExceededSubscriptionCount with PolicyLimit 20', async () => {
    const mailbox = rig.synthetic.address(50);
    const before = rig.ews.subscriptions();
    for (let i = 0; i < 20; i++) {
      const msg = firstMessage((await rig.soap(streamingSubscribe(), { impersonate: mailbox })).xml());
      assert.equal(msg.attrs.ResponseClass, 'Success', `subscription ${i + 1}`);
    }
    const msg = firstMessage((await rig.soap(streamingSubscribe(), { impersonate: mailbox })).xml());
    assert.equal(text(msg, NS.m, 'ResponseCode'), 'ErrorExceededSubscriptionCount');
    const value = kids(child(msg, NS.m, 'MessageXml'), NS.t, 'Value')[0]!;
    assert.deepEqual([value.attrs.Name, value.text], ['PolicyLimit', '20']);
    assert.equal(rig.ews.subscriptions(), before + 20);
  });

  test('ErrorServerBusy via the busy hook: HTTP 500 fault and HTTP 200 error message, both with BackOffMilliseconds', async () => {
    rig.ews.busy(1, 297749);
    const asFault = await rig.soap(streamingSubscribe(), { impersonate: U1 });
    assert.equal(asFault.status, 500);
    const f = fault(asFault.xml());
    assert.equal(f.code, 'a:ErrorServerBusy');
    assert.equal(f.values.BackOffMilliseconds, '297749');
    assert.match(asFault.text, /The server cannot service this request right now\. Try again later\./);

    rig.ews.busy(1, 5000, 'message');
    const asMessage = await rig.soap(streamingSubscribe(), { impersonate: U1 });
    assert.equal(asMessage.status, 200);
    const msg = firstMessage(asMessage.xml());
    assert.equal(msg.attrs.ResponseClass, 'Error');
    assert.equal(text(msg, NS.m, 'ResponseCode'), 'ErrorServerBusy');
    assert.equal(kids(child(msg, NS.m, 'MessageXml'), NS.t, 'Value')[0]?.text, '5000');

    const after = await rig.soap(streamingSubscribe(), { impersonate: U1 });
    assert.equal(firstMessage(after.xml()).attrs.ResponseClass, 'Success', 'only the given count is refused');
    assert.equal(rig.ews.stats.busy, 2);
  });

  test('GetItem and GetFolder fill in a new message: Subject, From, DateTimeReceived, IsRead; UnreadCount, TotalCount', async () => {
    const mailbox = rig.synthetic.address(60);
    const change = rig.synthetic.deliver(mailbox, { from: { address: 'sender@example.org', name: 'Sender' }, subject: 'Quarterly & <report>' });
    const folder = await rig.soap(
      `<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>`,
      { impersonate: mailbox },
    );
    const f = child(child(firstMessage(folder.xml()), NS.m, 'Folders'), NS.t, 'Folder')!;
    assert.equal(text(f, NS.t, 'DisplayName'), 'Inbox');
    assert.equal(text(f, NS.t, 'UnreadCount'), '1');
    assert.equal(text(f, NS.t, 'TotalCount'), '1');

    // The ItemId a notification would carry: from SyncFolderItems (IdOnly) here.
    const sync = await rig.soap(
      `<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="inbox"/></m:SyncFolderId><m:MaxChangesReturned>10</m:MaxChangesReturned></m:SyncFolderItems>`,
      { impersonate: mailbox },
    );
    const created = kids(child(firstMessage(sync.xml()), NS.m, 'Changes'), NS.t, 'Create');
    assert.equal(created.length, 1);
    const itemId = child(child(created[0], NS.t, 'Message'), NS.t, 'ItemId')!.attrs.Id!;
    const item = await rig.soap(
      `<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/><t:FieldURI FieldURI="message:From"/><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURI FieldURI="message:IsRead"/></t:AdditionalProperties></m:ItemShape><m:ItemIds><t:ItemId Id="${itemId}"/><t:ItemId Id="AAAA"/></m:ItemIds></m:GetItem>`,
      { impersonate: mailbox },
    );
    const [ok, bad] = kids(child(child(item.xml(), NS.soap, 'Body')!.children[0], NS.m, 'ResponseMessages'), NS.m, 'GetItemResponseMessage');
    const message = child(child(ok, NS.m, 'Items'), NS.t, 'Message')!;
    assert.deepEqual(
      message.children.map((c) => c.name),
      ['ItemId', 'Subject', 'DateTimeReceived', 'From', 'IsRead'],
    );
    assert.equal(text(message, NS.t, 'Subject'), 'Quarterly & <report>');
    assert.equal(text(child(child(message, NS.t, 'From'), NS.t, 'Mailbox'), NS.t, 'EmailAddress'), 'sender@example.org');
    assert.equal(text(message, NS.t, 'IsRead'), 'false');
    assert.equal(text(message, NS.t, 'DateTimeReceived'), new Date(change.at).toISOString().replace(/\.\d{3}Z$/, 'Z'));
    assert.equal(text(bad, NS.m, 'ResponseCode'), 'ErrorInvalidIdMalformed');
  });

  test('SyncFolderItems: rounds of MaxChangesReturned, then Create / ReadFlagChange / Delete; corrupt SyncState → ErrorInvalidSyncStateData', async () => {
    const mailbox = rig.synthetic.address(70);
    const uids = [1, 2, 3, 4, 5].map((i) => rig.synthetic.deliver(mailbox, { from: 'a@example.org', subject: `m${i}` }).uid);
    const round = async (state?: string, max = 2) => {
      const res = await rig.soap(
        `<m:SyncFolderItems><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="inbox"/></m:SyncFolderId>${state ? `<m:SyncState>${state}</m:SyncState>` : ''}<m:MaxChangesReturned>${max}</m:MaxChangesReturned></m:SyncFolderItems>`,
        { impersonate: mailbox },
      );
      const msg = firstMessage(res.xml());
      return {
        msg,
        state: text(msg, NS.m, 'SyncState')!,
        last: text(msg, NS.m, 'IncludesLastItemInRange'),
        changes: (child(msg, NS.m, 'Changes')?.children ?? []).map((c) => c.name),
        nodes: child(msg, NS.m, 'Changes')?.children ?? [],
      };
    };
    let r = await round();
    assert.deepEqual(r.changes, ['Create', 'Create']);
    assert.equal(r.last, 'false');
    assert.match(r.state, /^H4sI/, 'gzip, like Exchange sync states');
    r = await round(r.state);
    assert.deepEqual(r.changes, ['Create', 'Create']);
    r = await round(r.state);
    assert.deepEqual(r.changes, ['Create']);
    assert.equal(r.last, 'true');
    r = await round(r.state);
    assert.deepEqual(r.changes, []);
    assert.equal(r.last, 'true');

    rig.synthetic.markRead(mailbox, uids[1]!);
    await rig.synthetic.expunge(mailbox, 'INBOX', '1', uids[3]!);
    rig.synthetic.deliver(mailbox, { from: 'a@example.org', subject: 'm6' });
    r = await round(r.state, 512);
    assert.deepEqual(r.changes.sort(), ['Create', 'Delete', 'ReadFlagChange']);
    const flag = r.nodes.find((n) => n.name === 'ReadFlagChange')!;
    assert.equal(text(flag, NS.t, 'IsRead'), 'true');

    const corrupt = await round('bm90IGEgc3luYyBzdGF0ZQ==');
    assert.equal(corrupt.msg.attrs.ResponseClass, 'Error');
    assert.equal(text(corrupt.msg, NS.m, 'ResponseCode'), 'ErrorInvalidSyncStateData');
    assert.equal(text(corrupt.msg, NS.m, 'MessageText'), 'Synchronization state data is corrupt or otherwise invalid.');
  });

  test('pull: GetEvents hands out events after the watermark with PreviousWatermark and MoreEvents', async () => {
    const mailbox = rig.synthetic.address(80);
    const sub = await rig.soap(
      `<m:Subscribe><m:PullSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="inbox"/></t:FolderIds><t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes><t:Timeout>10</t:Timeout></m:PullSubscriptionRequest></m:Subscribe>`,
      { impersonate: mailbox },
    );
    const sm = firstMessage(sub.xml());
    const id = text(sm, NS.m, 'SubscriptionId')!;
    let wm = text(sm, NS.m, 'Watermark')!;
    assert.ok(wm);
    for (let i = 0; i < 60; i++) rig.synthetic.deliver(mailbox, { from: 'a@example.org', subject: `p${i}` });
    const get = async (w: string) => {
      const res = await rig.soap(`<m:GetEvents><m:SubscriptionId>${id}</m:SubscriptionId><m:Watermark>${w}</m:Watermark></m:GetEvents>`, { impersonate: mailbox });
      return child(firstMessage(res.xml()), NS.m, 'Notification')!;
    };
    let n = await get(wm);
    assert.equal(text(n, NS.t, 'PreviousWatermark'), wm);
    assert.equal(text(n, NS.t, 'MoreEvents'), 'true');
    let events = kids(n, NS.t, 'NewMailEvent');
    assert.equal(events.length, 50);
    wm = text(events.at(-1), NS.t, 'Watermark')!;
    n = await get(wm);
    events = kids(n, NS.t, 'NewMailEvent');
    assert.equal(events.length, 10);
    assert.equal(text(n, NS.t, 'MoreEvents'), 'false');
    wm = text(events.at(-1), NS.t, 'Watermark')!;
    n = await get(wm);
    assert.equal(kids(n, NS.t, 'StatusEvent').length, 1, 'nothing new: a StatusEvent');
    // Timeout (10 minutes) without GetEvents: the subscription is gone.
    rig.sched.advance(11 * 60_000);
    const gone = await rig.soap(`<m:GetEvents><m:SubscriptionId>${id}</m:SubscriptionId><m:Watermark>${wm}</m:Watermark></m:GetEvents>`, { impersonate: mailbox });
    assert.equal(text(firstMessage(gone.xml()), NS.m, 'ResponseCode'), 'ErrorSubscriptionNotFound');
  });

  test('malformed XML: fault ErrorSchemaValidation', async () => {
    const res = await rig.post('/EWS/Exchange.asmx', '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m:Subscribe></soap:Body>', {
      authorization: `Bearer ${await rig.appToken()}`,
    });
    assert.equal(res.status, 500);
    assert.equal(fault(res.xml()).responseCode, 'ErrorSchemaValidation');
    void ALICE;
  });
});

describe('sandbox EWS: presenting Exchange Online', () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig({ profile: 'online' });
  });
  after(async () => {
    await rig.close();
  });

  test('ServerVersionInfo 15.20, Basic refused, EWS shut down from April 1, 2027', async () => {
    const ok = await rig.soap(streamingSubscribe(), { impersonate: U1 });
    const version = child(child(ok.xml(), NS.soap, 'Header'), NS.t, 'ServerVersionInfo')!;
    assert.equal(version.attrs.MinorVersion, '20');
    const basic = await rig.soap(streamingSubscribe(), { auth: `Basic ${Buffer.from(`${U3}:u3-pw`).toString('base64')}` });
    assert.equal(basic.status, 401);
    assert.match(String(basic.headers['www-authenticate']), /^Bearer /);
    rig.sched.advance(Date.UTC(2027, 3, 1) - rig.sched.now());
    const late = await rig.soap(streamingSubscribe(), { impersonate: U1 });
    assert.equal(late.status, 403);
  });
});
