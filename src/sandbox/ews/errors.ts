/**
 * EWS response codes and their message texts, as the sandbox EWS answers them. Two ways Exchange
 * fails: a per-message error (HTTP 200, `ResponseClass="Error"`, `m:MessageText`, `m:ResponseCode`,
 * `m:DescriptiveLinkKey 0`, optional `m:MessageXml`) and a SOAP fault (HTTP 500, `faultcode
 * a:<Code>`, `faultstring`, `detail/e:ResponseCode`, `e:Message`, optional `t:MessageXml`), used for
 * request-level failures (schema, impersonation header, throttling).
 *
 * Texts: marked [DOC] come from Microsoft's EWS docs or the facts file (§5), [OBS] from captures of
 * real servers quoted in public issues and client libraries; [APPROX] texts have no source the
 * sandbox could find and are the sandbox's wording in Exchange's style. Clients should key on the
 * ResponseCode, never on the text.
 */
import { buildXml, el, NS, tx, type XEl } from './xml.ts';

export const EWS_TEXTS = {
  // [DOC] facts §5.5 (ErrorServerBusy fault captured by exchangelib's test fixture).
  ErrorServerBusy: 'The server cannot service this request right now. Try again later.',
  // [DOC] unsubscribe-operation.md error example.
  ErrorSubscriptionNotFound: 'The specified subscription was not found.',
  // [OBS] EWS Managed API ServiceError docs and a captured EXO fault.
  ErrorExceededConnectionCount: 'You have exceeded the available concurrent connections for your account.  Try again once your other requests have completed.',
  // [APPROX] the code and its PolicyLimit MessageXml value are Exchange's; the text is the sandbox's.
  ErrorExceededSubscriptionCount: 'You have exceeded the maximum number of subscriptions allowed for your account. Try again once your other subscriptions have been removed.',
  // [DOC] syncfolderitems-operation.md error example.
  ErrorInvalidSyncStateData: 'Synchronization state data is corrupt or otherwise invalid.',
  // [OBS] widely quoted Exchange texts.
  ErrorItemNotFound: 'The specified object was not found in the store.',
  ErrorFolderNotFound: 'The specified folder could not be found in the store.',
  ErrorNonExistentMailbox: 'The SMTP address has no mailbox associated with it.',
  ErrorImpersonateUserDenied: 'The account does not have permission to impersonate the requested user.',
  ErrorAccessDenied: 'Access is denied. Check credentials and try again.',
  ErrorInvalidExchangeImpersonationHeader: 'ExchangeImpersonation SOAP header must be present for this type of OAuth token.',
  ErrorInvalidRequest: 'The request is invalid.',
  ErrorSchemaValidation: 'The request failed schema validation.',
  ErrorInvalidIdMalformed: 'Id is malformed.',
  // [APPROX] below: codes from the docs (handling-notification-related-errors…, responsecode.md), sandbox texts.
  ErrorInvalidSubscriptionRequest: 'A subscription can only be created for a single mailbox.',
  ErrorInvalidSubscription: 'The subscription is not valid for this operation.',
  ErrorInvalidWatermark: 'The watermark is not valid.',
  ErrorMissedNotificationEvents: 'Events were missed for this subscription. Create a new subscription and synchronize the folders.',
  ErrorInvalidPushSubscriptionUrl: 'The push subscription URL is not valid.',
  ErrorInvalidPullSubscriptionId: 'The subscription ID is not valid for this operation.',
  ErrorInvalidOperation: 'The operation is not valid.',
  ErrorInternalServerError: 'An internal server error occurred. The operation failed.',
} as const;

export type EwsCode = keyof typeof EWS_TEXTS;

/** A per-message failure (HTTP 200). */
export class EwsResponseError extends Error {
  readonly code: string;
  readonly messageXml?: Record<string, string>;
  constructor(code: EwsCode, text?: string, messageXml?: Record<string, string>) {
    super(text ?? EWS_TEXTS[code]);
    this.code = code;
    this.messageXml = messageXml;
  }
}

/** A request-level failure: HTTP 500 SOAP fault (or another status, e.g. 401 for auth). */
export class EwsFault extends Error {
  readonly code: string;
  readonly status: number;
  readonly messageXml?: Record<string, string>;
  readonly headers: Record<string, string>;
  constructor(code: EwsCode, options: { text?: string; status?: number; messageXml?: Record<string, string>; headers?: Record<string, string> } = {}) {
    super(options.text ?? EWS_TEXTS[code]);
    this.code = code;
    this.status = options.status ?? 500;
    this.messageXml = options.messageXml;
    this.headers = options.headers ?? {};
  }
}

/** `t:MessageXml` with `t:Value Name=…` entries (BackOffMilliseconds, PolicyLimit). */
export function messageXmlEl(values: Record<string, string> | undefined, tag = 'm:MessageXml'): XEl | undefined {
  if (!values) return undefined;
  return el(tag, Object.entries(values).map(([name, v]) => tx('t:Value', v, { Name: name })));
}

/** The fault envelope Exchange 2013+ writes (facts §5.5 shape). */
export function faultEnvelope(fault: EwsFault): string {
  const detail: XEl['children'] = [
    tx('e:ResponseCode', fault.code, { 'xmlns:e': NS.e }),
    tx('e:Message', fault.message, { 'xmlns:e': NS.e }),
  ];
  if (fault.messageXml) detail.push(el('t:MessageXml', { 'xmlns:t': NS.t }, Object.entries(fault.messageXml).map(([n, v]) => tx('t:Value', v, { Name: n }))));
  const body = el('s:Envelope', { 'xmlns:s': NS.soap }, [
    el('s:Body', [
      el('s:Fault', [
        tx('faultcode', `a:${fault.code}`, { 'xmlns:a': NS.t }),
        tx('faultstring', fault.message, { 'xml:lang': 'en-US' }),
        el('detail', detail),
      ]),
    ]),
  ]);
  return '<?xml version="1.0" encoding="utf-8"?>' + buildXml(body);
}
