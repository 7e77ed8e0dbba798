/**
 * Parsing and building of the EWS watcher's SOAP, against recorded shapes from
 * microsoft-facts.md §5 (streaming envelopes, both ErrorServerBusy shapes, push SendNotification,
 * SyncFolderItems) — the parts that must hold whatever the emulator does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MbError } from '../../../../src/errors/index.ts';
import { ewsWatchSchema, isExchangeOnline } from '../../../../src/notify/watchers/ews/index.ts';
import { explainEws } from '../../../../src/notify/watchers/ews/mailbox.ts';
import {
  distinguishedFolder,
  envelope,
  EwsError,
  getStreamingEvents,
  parseSendNotification,
  parseStreamEnvelope,
  parseSync,
  sendNotificationResult,
  single,
  soapBody,
  subscribeStreaming,
} from '../../../../src/m365/ews/soap.ts';
import { EnvelopeSplitter, parseXml, path } from '../../../../src/m365/ews/xml.ts';

const M = 'http://schemas.microsoft.com/exchange/services/2006/messages';
const T = 'http://schemas.microsoft.com/exchange/services/2006/types';
const S = 'http://schemas.xmlsoap.org/soap/envelope/';

const streamingNotification = `<Envelope xmlns="${S}"><soap11:Header xmlns:soap11="${S}"><ServerVersionInfo xmlns="${T}" MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11"/></soap11:Header><soap11:Body xmlns:soap11="${S}"><m:GetStreamingEventsResponse xmlns:m="${M}" xmlns:t="${T}"><m:ResponseMessages><m:GetStreamingEventsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Notifications><m:Notification><t:SubscriptionId>JgBzdWIx</t:SubscriptionId><t:CreatedEvent><t:TimeStamp>2026-03-02T08:00:01Z</t:TimeStamp><t:ItemId Id="AAMkItem1" ChangeKey="CQAAAA1"/><t:ParentFolderId Id="AAMkInbox" ChangeKey="AQAAAA"/></t:CreatedEvent><t:NewMailEvent><t:TimeStamp>2026-03-02T08:00:01Z</t:TimeStamp><t:ItemId Id="AAMkItem1" ChangeKey="CQAAAA1"/><t:ParentFolderId Id="AAMkInbox" ChangeKey="AQAAAA"/></t:NewMailEvent><t:ModifiedEvent><t:TimeStamp>2026-03-02T08:00:01Z</t:TimeStamp><t:FolderId Id="AAMkInbox" ChangeKey="AQAAAB"/><t:ParentFolderId Id="AAMkRoot" ChangeKey="AQAAAA"/><t:UnreadCount>3</t:UnreadCount></t:ModifiedEvent></m:Notification></m:Notifications></m:GetStreamingEventsResponseMessage></m:ResponseMessages></m:GetStreamingEventsResponse></soap11:Body></Envelope>`;

const heartbeat = `<Envelope xmlns="${S}"><soap11:Body xmlns:soap11="${S}"><m:GetStreamingEventsResponse xmlns:m="${M}"><m:ResponseMessages><m:GetStreamingEventsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:ConnectionStatus>OK</m:ConnectionStatus></m:GetStreamingEventsResponseMessage></m:ResponseMessages></m:GetStreamingEventsResponse></soap11:Body></Envelope>`;

const closed = heartbeat.replace('>OK<', '>Closed<');

const notFound = `<s:Envelope xmlns:s="${S}"><s:Body><m:GetStreamingEventsResponse xmlns:m="${M}" xmlns:t="${T}"><m:ResponseMessages><m:GetStreamingEventsResponseMessage ResponseClass="Error"><m:MessageText>The specified subscription was not found.</m:MessageText><m:ResponseCode>ErrorSubscriptionNotFound</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:ErrorSubscriptionIds><m:SubscriptionId>JgBzdWIx</m:SubscriptionId></m:ErrorSubscriptionIds><m:ConnectionStatus>Closed</m:ConnectionStatus></m:GetStreamingEventsResponseMessage></m:ResponseMessages></m:GetStreamingEventsResponse></s:Body></s:Envelope>`;

// facts §5.5: the HTTP 500 fault shape.
const busyFault = `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="${S}"><s:Body><s:Fault><faultcode xmlns:a="${T}">a:ErrorServerBusy</faultcode><faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The server cannot service this request right now. Try again later.</e:Message><t:MessageXml xmlns:t="${T}"><t:Value Name="BackOffMilliseconds">297749</t:Value></t:MessageXml></detail></s:Fault></s:Body></s:Envelope>`;

// The HTTP 200 shape: an error response message with MessageXml.
const busyMessage = `<s:Envelope xmlns:s="${S}"><s:Body><m:SubscribeResponse xmlns:m="${M}" xmlns:t="${T}"><m:ResponseMessages><m:SubscribeResponseMessage ResponseClass="Error"><m:MessageText>The server cannot service this request right now. Try again later.</m:MessageText><m:ResponseCode>ErrorServerBusy</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:MessageXml><t:Value Name="BackOffMilliseconds">1500</t:Value></m:MessageXml></m:SubscribeResponseMessage></m:ResponseMessages></m:SubscribeResponse></s:Body></s:Envelope>`;

test('a streaming envelope yields its notification with events in order, the folder unread count and item change keys', () => {
  const [msg] = parseStreamEnvelope(streamingNotification);
  assert.equal(msg?.kind, 'notifications');
  if (msg?.kind !== 'notifications') return;
  const n = msg.notifications[0]!;
  assert.equal(n.subscriptionId, 'JgBzdWIx');
  assert.deepEqual(n.events.map((e) => e.type), ['CreatedEvent', 'NewMailEvent', 'ModifiedEvent']);
  assert.equal(n.events[0]!.itemId, 'AAMkItem1');
  assert.equal(n.events[0]!.changeKey, 'CQAAAA1');
  assert.equal(n.events[0]!.parentFolderId, 'AAMkInbox');
  assert.equal(n.events[2]!.folderId, 'AAMkInbox');
  assert.equal(n.events[2]!.itemId, undefined);
  assert.equal(n.events[2]!.unreadCount, 3);
});

test('heartbeats, Closed, and an error naming the lost subscriptions are told apart', () => {
  assert.deepEqual(parseStreamEnvelope(heartbeat), [{ kind: 'status', status: 'OK' }]);
  assert.deepEqual(parseStreamEnvelope(closed), [{ kind: 'status', status: 'Closed' }]);
  const [err] = parseStreamEnvelope(notFound);
  assert.equal(err?.kind, 'error');
  if (err?.kind !== 'error') return;
  assert.equal(err.error.code, 'ErrorSubscriptionNotFound');
  assert.deepEqual(err.error.subscriptionIds, ['JgBzdWIx']);
  assert.equal(err.closed, true);
});

test('the splitter finds whole envelopes however the chunks fall, and keeps the remainder', () => {
  const stream = heartbeat + '\r\n' + streamingNotification + closed;
  for (const size of [1, 7, 64, 1000, stream.length]) {
    const sp = new EnvelopeSplitter();
    const docs: string[] = [];
    for (let i = 0; i < stream.length; i += size) docs.push(...sp.push(stream.slice(i, i + size)));
    assert.equal(docs.length, 3, `chunk size ${size}`);
    assert.deepEqual(docs.map((d) => parseStreamEnvelope(d)[0]!.kind), ['status', 'notifications', 'status']);
    assert.equal(sp.pending, 0);
  }
  const sp = new EnvelopeSplitter();
  assert.deepEqual(sp.push(heartbeat.slice(0, 100)), []);
  assert.ok(sp.pending > 0);
});

test('ErrorServerBusy is read with its BackOffMilliseconds in both shapes', () => {
  assert.throws(
    () => soapBody(busyFault, 500),
    (e: unknown) => e instanceof EwsError && e.code === 'ErrorServerBusy' && e.backOffMs === 297749 && e.status === 500,
  );
  assert.throws(
    () => single(soapBody(busyMessage)),
    (e: unknown) => e instanceof EwsError && e.code === 'ErrorServerBusy' && e.backOffMs === 1500,
  );
  // Not XML at all (a proxy's HTML page): an error with the status, not a crash.
  assert.throws(() => soapBody('<html><body>Bad gateway', 502), (e: unknown) => e instanceof EwsError && e.status === 502);
});

test('push SendNotification parses, and the listener answer has the documented shape', () => {
  const xml = `<soap:Envelope xmlns:soap="${S}"><soap:Header><t:RequestServerVersion xmlns:t="${T}" Version="Exchange2010_SP2"/></soap:Header><soap:Body><m:SendNotification xmlns:m="${M}" xmlns:t="${T}"><m:ResponseMessages><m:SendNotificationResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Notification><t:SubscriptionId>PUSH1</t:SubscriptionId><t:PreviousWatermark>WM0</t:PreviousWatermark><t:MoreEvents>false</t:MoreEvents><t:NewMailEvent><t:Watermark>WM1</t:Watermark><t:TimeStamp>2026-03-02T08:00:01Z</t:TimeStamp><t:ItemId Id="I1" ChangeKey="C1"/><t:ParentFolderId Id="F1" ChangeKey="P1"/></t:NewMailEvent></m:Notification></m:SendNotificationResponseMessage></m:ResponseMessages></m:SendNotification></soap:Body></soap:Envelope>`;
  const [n] = parseSendNotification(xml);
  assert.equal(n?.subscriptionId, 'PUSH1');
  assert.equal(n?.previousWatermark, 'WM0');
  assert.equal(n?.moreEvents, false);
  assert.equal(n?.events[0]?.watermark, 'WM1');
  const answer = parseXml(sendNotificationResult('Unsubscribe'));
  assert.equal(path(answer, 'Body', 'SendNotificationResult', 'SubscriptionStatus')?.text, 'Unsubscribe');
  assert.match(sendNotificationResult('OK'), /<SendNotificationResult xmlns="http:\/\/schemas\.microsoft\.com\/exchange\/services\/2006\/messages"><SubscriptionStatus>OK<\/SubscriptionStatus>/);
});

test('SyncFolderItems changes come out in order, with read-flag changes and the last-page marker', () => {
  const xml = `<s:Envelope xmlns:s="${S}"><s:Body><m:SyncFolderItemsResponse xmlns:m="${M}" xmlns:t="${T}"><m:ResponseMessages><m:SyncFolderItemsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:SyncState>H4sIAAA</m:SyncState><m:IncludesLastItemInRange>false</m:IncludesLastItemInRange><m:Changes><t:Create><t:Message><t:ItemId Id="I1" ChangeKey="C1"/><t:Subject>Rechnung &amp; Mahnung</t:Subject><t:DateTimeReceived>2026-03-02T07:59:58Z</t:DateTimeReceived><t:IsRead>false</t:IsRead><t:From><t:Mailbox><t:Name>Anna Schmidt</t:Name><t:EmailAddress>anna@fabrikam.com</t:EmailAddress></t:Mailbox></t:From></t:Message></t:Create><t:ReadFlagChange><t:ItemId Id="I0" ChangeKey="C9"/><t:IsRead>true</t:IsRead></t:ReadFlagChange><t:Delete><t:ItemId Id="I7" ChangeKey="C7"/></t:Delete></m:Changes></m:SyncFolderItemsResponseMessage></m:ResponseMessages></m:SyncFolderItemsResponse></s:Body></s:Envelope>`;
  const r = parseSync(soapBody(xml));
  assert.equal(r.syncState, 'H4sIAAA');
  assert.equal(r.last, false);
  assert.deepEqual(r.changes, [
    { kind: 'create', item: { id: 'I1', changeKey: 'C1', subject: 'Rechnung & Mahnung', from: { address: 'anna@fabrikam.com', name: 'Anna Schmidt' }, receivedAt: '2026-03-02T07:59:58Z', isRead: false } },
    { kind: 'read', id: 'I0', changeKey: 'C9', isRead: true },
    { kind: 'delete', id: 'I7' },
  ]);
});

test('requests carry the http:// namespaces, the impersonation header only when asked, and escape text', () => {
  const x = envelope({ version: 'Exchange2013', impersonate: 'alfred@contoso.com' }, subscribeStreaming(['inbox']));
  assert.match(x, /xmlns:soap="http:\/\/schemas\.xmlsoap\.org\/soap\/envelope\/"/);
  assert.match(x, /<t:RequestServerVersion Version="Exchange2013"\/>/);
  assert.match(x, /<t:ExchangeImpersonation><t:ConnectingSID><t:SmtpAddress>alfred@contoso\.com<\/t:SmtpAddress>/);
  assert.match(x, /<t:DistinguishedFolderId Id="inbox"\/>/);
  const root = parseXml(x);
  assert.equal(path(root, 'Body', 'Subscribe', 'StreamingSubscriptionRequest', 'EventTypes')?.children.length, 5);
  const plain = envelope({ version: 'Exchange2010_SP1' }, subscribeStreaming(['inbox'], 'o<b@contoso.com'));
  assert.doesNotMatch(plain, /ExchangeImpersonation/);
  assert.match(plain, /<t:EmailAddress>o&lt;b@contoso\.com<\/t:EmailAddress>/);
  const g = envelope({ version: 'Exchange2013' }, getStreamingEvents(['a', 'b'], 30));
  assert.equal(path(parseXml(g), 'Body', 'GetStreamingEvents', 'SubscriptionIds')?.children.length, 2);
  assert.match(g, /<m:ConnectionTimeout>30<\/m:ConnectionTimeout>/);
});

test('folder names map to distinguished ids; others are refused', () => {
  assert.equal(distinguishedFolder('INBOX'), 'inbox');
  assert.equal(distinguishedFolder('Inbox'), 'inbox');
  assert.equal(distinguishedFolder('Sent Items'), 'sentitems');
  assert.equal(distinguishedFolder('Junk'), 'junkemail');
  assert.equal(distinguishedFolder('Projects/2026'), undefined);
});

test('EWS failures become catalogue errors with the right code', () => {
  const o = { operation: 'Subscribe', mailbox: 'ben@contoso.com', url: 'https://mail.contoso.com/EWS/Exchange.asmx' };
  const code = (e: EwsError) => explainEws(e, o).code;
  assert.equal(code(new EwsError('ErrorServerBusy', 'x', { backOffMs: 1500 })), 'MB_EWS_SERVER_BUSY');
  assert.equal(code(new EwsError('ErrorExceededConnectionCount', 'x')), 'MB_EWS_CONNECTION_LIMIT');
  assert.equal(code(new EwsError('ErrorExceededSubscriptionCount', 'x')), 'MB_EWS_SUBSCRIPTION_LIMIT');
  assert.equal(code(new EwsError('ErrorImpersonateUserDenied', 'x')), 'MB_EWS_ACCESS_DENIED');
  assert.equal(code(new EwsError('ErrorNonExistentMailbox', 'x')), 'MB_EWS_MAILBOX_NOT_FOUND');
  assert.equal(code(new EwsError('Http401', 'x', { status: 401 })), 'MB_EWS_UNAUTHORIZED');
  assert.equal(code(new EwsError('Network', 'ECONNREFUSED')), 'MB_EWS_UNREACHABLE');
  assert.equal(code(new EwsError('ErrorInternalServerError', 'boom')), 'MB_EWS_REQUEST_FAILED');
  const busy = explainEws(new EwsError('ErrorServerBusy', 'x', { backOffMs: 297749 }), o);
  assert.ok(busy instanceof MbError);
  assert.match(busy.explain('de').cause, /298 s/);
  assert.match(new MbError('MB_EWS_EXCHANGE_ONLINE_RETIRING', { host: 'outlook.office365.com' }).explain('en').cause, /1 October 2026.*1 April 2027/);
});

test('Exchange Online hosts are recognised in every cloud; on-premises hosts are not', () => {
  for (const u of ['https://outlook.office365.com/EWS/Exchange.asmx', 'https://outlook.office365.us/EWS/Exchange.asmx', 'https://partner.outlook.cn/EWS/Exchange.asmx', 'https://webmail.apps.mil/EWS/Exchange.asmx']) {
    assert.ok(isExchangeOnline(u), u);
  }
  for (const u of ['https://mail.contoso.com/EWS/Exchange.asmx', 'https://notoutlook.office365.com.evil.test/EWS/Exchange.asmx', 'not a url']) assert.ok(!isExchangeOnline(u), u);
});

test('the options schema is strict and fills the documented defaults', () => {
  const o = ewsWatchSchema.parse({});
  assert.equal(o.mode, 'streaming');
  assert.equal(o.connectionTimeoutMinutes, 30);
  assert.equal(o.heartbeatSeconds, 45);
  assert.equal(o.impersonation, true);
  assert.equal(o.version, 'Exchange2013');
  assert.deepEqual(o.autodiscover, { prefer: 'external', cacheHours: 24 });
  assert.throws(() => ewsWatchSchema.parse({ connectionTimeoutMinutes: 31 }));
  assert.throws(() => ewsWatchSchema.parse({ connectionTimeoutMinutes: 0 }));
  assert.throws(() => ewsWatchSchema.parse({ bogus: true }));
  assert.throws(() => ewsWatchSchema.parse({ url: 'ftp://x' }));
});
