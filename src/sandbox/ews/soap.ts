/**
 * The SOAP envelopes the sandbox EWS writes, in Exchange 2013+'s shapes:
 * - ordinary responses: `s:Envelope/s:Header/h:ServerVersionInfo` + `s:Body/m:<Op>Response/
 *   m:ResponseMessages/m:<Op>ResponseMessage ResponseClass=…`;
 * - streaming chunks: one complete envelope per chunk, default-namespace `Envelope` with
 *   `soap11:`-prefixed Header and Body, as real GetStreamingEvents responses are written (recalled
 *   from traces [APPROX]; namespaces per facts §5.2);
 * - push: `soap:Envelope` with `m:SendNotification` (facts §5.3).
 * Notification bodies (events with Watermark, TimeStamp, ItemId/FolderId, ParentFolderId,
 * UnreadCount) are shared by all three delivery kinds.
 */
import { messageXmlEl, type EwsResponseError } from './errors.ts';
import type { EwsProfile } from './backends.ts';
import type { EwsEvent } from './hub.ts';
import { buildXml, el, NS, tx, XML_DECL, type XEl } from './xml.ts';

export function serverVersionAttrs(p: EwsProfile): Record<string, string | number> {
  return { MajorVersion: p.major, MinorVersion: p.minor, MajorBuildNumber: p.build, MinorBuildNumber: p.revision, Version: p.version };
}

/** A complete ordinary response document around one `m:<Op>Response` element. */
export function responseEnvelope(profile: EwsProfile, response: XEl): string {
  const env = el('s:Envelope', { 'xmlns:s': NS.soap }, [
    el('s:Header', [
      el('h:ServerVersionInfo', {
        ...serverVersionAttrs(profile),
        'xmlns:h': NS.t,
        xmlns: NS.t,
        'xmlns:xsd': NS.xsd,
        'xmlns:xsi': NS.xsi,
      }),
    ]),
    el('s:Body', { 'xmlns:xsi': NS.xsi, 'xmlns:xsd': NS.xsd }, [response]),
  ]);
  return XML_DECL + buildXml(env);
}

/** `m:<Op>Response` with its ResponseMessages. */
export function opResponse(op: string, messages: XEl[]): XEl {
  return el(`m:${op}Response`, { 'xmlns:m': NS.m, 'xmlns:t': NS.t }, [el('m:ResponseMessages', messages)]);
}

export function successMessage(op: string, children: XEl['children'] = []): XEl {
  return el(`m:${op}ResponseMessage`, { ResponseClass: 'Success' }, [tx('m:ResponseCode', 'NoError'), ...children]);
}

export function errorMessage(op: string, err: Pick<EwsResponseError, 'code' | 'message' | 'messageXml'>, extra: XEl['children'] = []): XEl {
  return el(`m:${op}ResponseMessage`, { ResponseClass: 'Error' }, [
    tx('m:MessageText', err.message),
    tx('m:ResponseCode', err.code),
    tx('m:DescriptiveLinkKey', 0),
    messageXmlEl(err.messageXml),
    ...extra,
  ]);
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** One event element (`t:NewMailEvent`, …). */
export function eventEl(e: EwsEvent, withWatermark: boolean): XEl {
  return el(`t:${e.type}`, [
    withWatermark ? tx('t:Watermark', e.watermark) : undefined,
    tx('t:TimeStamp', isoSeconds(e.at)),
    e.item ? el('t:ItemId', { Id: e.item.id, ChangeKey: e.item.changeKey }) : undefined,
    e.folderRef ? el('t:FolderId', { Id: e.folderRef.id, ChangeKey: e.folderRef.changeKey }) : undefined,
    el('t:ParentFolderId', { Id: e.parent.id, ChangeKey: e.parent.changeKey }),
    e.unreadCount !== undefined ? tx('t:UnreadCount', e.unreadCount) : undefined,
  ]);
}

/** `StatusEvent` carrying the last watermark (statusevent.md). */
export function statusEventEl(wm: string): XEl {
  return el('t:StatusEvent', [tx('t:Watermark', wm)]);
}

/**
 * `m:Notification` for one subscription. Streaming: SubscriptionId + events (Exchange's example has
 * no watermarks there; the sandbox adds them, which the schema allows). Push/pull: with
 * PreviousWatermark and MoreEvents.
 */
export function notificationEl(subscriptionId: string, events: EwsEvent[], opts: { previousWatermark?: string; moreEvents?: boolean; status?: string }): XEl {
  return el('m:Notification', [
    tx('t:SubscriptionId', subscriptionId),
    opts.previousWatermark !== undefined ? tx('t:PreviousWatermark', opts.previousWatermark) : undefined,
    opts.moreEvents !== undefined ? tx('t:MoreEvents', opts.moreEvents) : undefined,
    ...(opts.status !== undefined && events.length === 0 ? [statusEventEl(opts.status)] : events.map((e) => eventEl(e, true))),
  ]);
}

/** One chunk of a GetStreamingEvents response: a whole envelope. */
export function streamingEnvelope(profile: EwsProfile, message: XEl): string {
  const env = el('Envelope', { xmlns: NS.soap }, [
    el('soap11:Header', { 'xmlns:soap11': NS.soap }, [el('ServerVersionInfo', { xmlns: NS.t, ...serverVersionAttrs(profile) })]),
    el('soap11:Body', { 'xmlns:soap11': NS.soap }, [
      el('m:GetStreamingEventsResponse', { 'xmlns:m': NS.m, 'xmlns:t': NS.t }, [el('m:ResponseMessages', [message])]),
    ]),
  ]);
  return buildXml(env);
}

/** The SendNotification request Exchange POSTs to a push callback (facts §5.3). */
export function sendNotificationEnvelope(notification: XEl): string {
  const env = el('soap:Envelope', { 'xmlns:soap': NS.soap }, [
    el('soap:Header', [el('t:RequestServerVersion', { 'xmlns:t': NS.t, Version: 'Exchange2010_SP2' })]),
    el('soap:Body', [
      el('m:SendNotification', { 'xmlns:m': NS.m, 'xmlns:t': NS.t }, [
        el('m:ResponseMessages', [el('m:SendNotificationResponseMessage', { ResponseClass: 'Success' }, [tx('m:ResponseCode', 'NoError'), notification])]),
      ]),
    ]),
  ]);
  return XML_DECL + buildXml(env);
}
