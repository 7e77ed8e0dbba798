/**
 * Every error the sandbox Graph answers with, in Microsoft Graph's envelope:
 * `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`
 * (microsoft-facts.md §4.8). Codes, messages and status codes are Graph's own where a source shows
 * them; the source is named next to each. Where no source shows the exact text, the entry says so
 * ("approximation"), and the code is one Graph uses for that class of failure.
 */

export class GraphError extends Error {
  readonly status: number;
  readonly code: string;
  /** Extra response headers (Retry-After, WWW-Authenticate). */
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'GraphError';
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/**
 * Graph's 401s carry this challenge (client_id = the Microsoft Graph resource app). Observed on
 * graph.microsoft.com responses; the authorization_uri names the login host of the global cloud.
 */
const WWW_AUTHENTICATE =
  'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"';

const unauthorized = (message: string) => new GraphError(401, 'InvalidAuthenticationToken', message, { 'WWW-Authenticate': WWW_AUTHENTICATE });

export const graphErrors = {
  // --- token (401) -------------------------------------------------------------------------------
  /** No Authorization header, or not a Bearer one. [OBS facts §4.8] */
  tokenEmpty: () => unauthorized('Access token is empty.'),
  /** exp in the past or nbf in the future. [OBS besscroft/diyfile#1] */
  tokenExpired: () => unauthorized('Access token has expired or is not yet valid.'),
  /** Not a JWT at all. [OBS microsoftgraph/msgraph-training-dotnet#31 and many more] */
  tokenMalformed: () => unauthorized('CompactToken parsing failed with error code: 80049217'),
  /** Signature does not verify, or no key with that kid. [OBS wazuh/wazuh-documentation#7620] */
  tokenSignature: () => unauthorized('Signature is invalid.'),
  /** aud is not Microsoft Graph of the tenant's cloud. [OBS microsoftgraph/microsoft-graph-docs#16208] */
  tokenAudience: () => unauthorized('Access token validation failure. Invalid audience.'),
  /** iss is not the tenant's v1 issuer, or the tenant is unknown. Approximation: modelled on the audience text. */
  tokenIssuer: () => unauthorized('Access token validation failure. Invalid issuer.'),

  // --- permission (403) ----------------------------------------------------------------------------
  /** The token lacks the role/scope, or a delegated user has no right on another mailbox. [DOC/OBS, the brief] */
  accessDenied: () => new GraphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.'),
  /** From is neither the mailbox nor one granting SendAs. [3P test fixture, facts §4.7] */
  sendAsDenied: () =>
    new GraphError(
      403,
      'ErrorSendAsDenied',
      'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.',
    ),

  // --- the user in the path -----------------------------------------------------------------------
  /** /me with an app-only token. [OBS microsoftgraph/msgraph-sdk-php#1163] */
  meAppOnly: () => new GraphError(400, 'BadRequest', '/me request is only valid with delegated authentication flow.'),
  /** No such user or mailbox in the token's tenant. [OBS microsoftgraph/aspnet-snippets-sample#25, InnoGE/laravel-msgraph-mail#16] */
  invalidUser: (id: string) => new GraphError(404, 'ErrorInvalidUser', `The requested user '${id}' is invalid.`),
  /** A directory user without an Exchange Online mailbox (or a tenant without Exchange Online). Commonly observed Graph text. */
  mailboxNotEnabled: () =>
    new GraphError(404, 'MailboxNotEnabledForRESTAPI', 'The mailbox is either inactive, soft-deleted, or is hosted on-premise.'),

  // --- items and folders ----------------------------------------------------------------------------
  /** An id (message or folder, or an unknown well-known name) that does not decode. [OBS swimlane/python-office365#3] */
  idMalformed: () => new GraphError(400, 'ErrorInvalidIdMalformed', 'Id is malformed.'),
  /** A well-formed id whose item is gone. [OBS microsoft/MHA#77, text without the ", The process failed…" tail] */
  itemNotFound: () => new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.'),
  /** An id of another mailbox. [OBS MicrosoftDocs/BusinessApplicationPlatform-Connectors-public#80]; status 400 is an approximation. */
  wrongMailbox: () => new GraphError(400, 'ErrorInvalidMailboxItemId', "Item Id doesn't belong to the current mailbox."),
  /** $select names a property messages do not have. Commonly observed OData text. */
  unknownProperty: (name: string, type: string) =>
    new GraphError(400, 'RequestBroker--ParseUri', `Could not find a property named '${name}' on type 'microsoft.graph.${type}'.`),
  /** A query option with a value the endpoint does not take (changeType=…, $orderby=…, $top=…). Approximation: Exchange's code, the sandbox's words. */
  badQuery: (message: string) => new GraphError(400, 'ErrorInvalidUrlQuery', message),
  /** $filter other than receivedDateTime ge|gt on delta (facts §4.6). Commonly observed Exchange text. */
  badFilter: () => new GraphError(400, 'ErrorInvalidUrlQueryFilter', 'The query filter contains one or more invalid nodes.'),

  // --- routing ------------------------------------------------------------------------------------
  /** A path segment Graph does not know. Commonly observed OData text. */
  segment: (segment: string) => new GraphError(400, 'BadRequest', `Resource not found for the segment '${segment}'.`),
  /** A version other than v1.0 (the sandbox has no beta). */
  version: (version: string) => new GraphError(400, 'BadRequest', `Invalid version: ${version}`),
  /** A known resource with a method it does not take. Directory-style Graph text. */
  method: () => new GraphError(405, 'Request_BadRequest', 'Specified HTTP method is not allowed for the request target.'),

  // --- request bodies ---------------------------------------------------------------------------
  /** Not JSON although JSON is expected. [OBS microsoftgraph/nodejs-connect-rest-sample#53] */
  badJson: () =>
    new GraphError(400, 'BadRequest', 'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.'),
  /** An empty body where JSON is expected. Commonly observed Graph text. */
  emptyPayload: () => new GraphError(400, 'BadRequest', 'Empty Payload. JSON content expected.'),
  /** sendMail MIME that is not base64. [DOC user-sendmail.md, facts §4.7] */
  mimeBase64: () => new GraphError(400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.'),
  /** No recipient at all. [OBS microsoftgraph/php-connect-sample#13, full text commonly observed] */
  noRecipients: () =>
    new GraphError(400, 'ErrorInvalidRecipients', "At least one recipient isn't valid., A message can't be sent because it contains no recipients."),
  /** A recipient that is not an address. Commonly observed Exchange text. */
  badRecipient: (address: string) =>
    new GraphError(
      400,
      'ErrorInvalidRecipients',
      `At least one recipient isn't valid., Recipient '${address}' is not resolved. All recipients must be resolved before a message can be submitted.`,
    ),
  /** internetMessageHeaders must be x- headers. Commonly observed Graph text. */
  headerName: (name: string) =>
    new GraphError(400, 'InvalidInternetMessageHeader', `The internet message header name '${name}' should start with 'x-' or 'X-'.`),
  /**
   * A request body over 4 MB. Status 413 "Request Entity Too Large": DOC user-post-messages.md
   * ("payload … limited to 4 MB … HTTP 413 Request Entity Too Large"), OBS O365/python-o365#308 and
   * msgraph-sdk-powershell#1554 (sendMail → 413). Body: OBS microsoft-graph-docs-contrib#682
   * (`"code":"BadRequest","message":"The maximum request length supported is 4MB."`).
   */
  tooLarge: () => new GraphError(413, 'BadRequest', 'The maximum request length supported is 4MB.'),
  /** What the sandbox cannot model (other attachment types, other PATCH properties): a clear 400, never a silent drop. */
  unsupported: (what: string) => new GraphError(400, 'ErrorInvalidRequest', `${what} is not supported by the mailbridge sandbox.`),

  // --- throttling (429) and availability ------------------------------------------------------------
  /** More than 4 concurrent requests of one app on one mailbox. [OBS terraform-provider-outlook#21, corso#3695] */
  concurrency: (retryAfterSeconds: number) =>
    new GraphError(429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { 'Retry-After': String(retryAfterSeconds) }),
  /** More than 10,000 requests in 10 minutes (facts §4.8). Approximation: the code is Outlook's, no capture shows this text. */
  requestRate: (retryAfterSeconds: number) =>
    new GraphError(429, 'ApplicationThrottled', 'Application is over its MailboxRequestRate limit.', { 'Retry-After': String(retryAfterSeconds) }),
  /** The mail store could not take the message; generic Graph 503 (errors.md). */
  unavailable: (retryAfterSeconds: number) =>
    new GraphError(
      503,
      'serviceNotAvailable',
      'The service is temporarily unavailable for maintenance or is overloaded. You may repeat the request after a delay, the length of which may be specified in a Retry-After header.',
      { 'Retry-After': String(retryAfterSeconds) },
    ),

  // --- delta (410) --------------------------------------------------------------------------------
  /**
   * A delta or skip token whose sync state is gone (expired from the cache, never issued, or the
   * folder was recreated). Outlook answers 410 Gone with `SyncStateNotFound` and this message
   * [OBS microsoftgraph/microsoft-graph-docs#2350 (calendarView), #2877 and #2162 (mail)]. facts §4.6
   * spells it `syncStateNotFound` (the generic list in errors.md); the captures from Outlook resources
   * use the capital S, so the sandbox does too. No `Location` header: the Outlook captures show none
   * (the empty-$deltatoken Location belongs to directory resources' resyncRequired).
   */
  syncStateNotFound: (generation: number, highest: number) =>
    new GraphError(
      410,
      'SyncStateNotFound',
      `The sync state generation is not found; generation=${generation};[highest=${highest}][${highest}][${Math.max(0, highest - 2)}][${Math.max(0, highest - 1)}].`,
    ),

  // --- change-notification subscriptions (facts §4.1–4.2) --------------------------------------------
  /** The endpoint did not answer the validation request with 200 and the token. [DOC + OBS text, facts §4.1] */
  validationFailed: () =>
    new GraphError(400, 'InvalidRequest', 'Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.'),
  /** notificationUrl (or lifecycleNotificationUrl) over http. [OBS microsoftgraph/microsoft-graph-docs#2751] */
  urlScheme: (scheme: string) => new GraphError(400, 'InvalidRequest', `NotificationUrl scheme='${scheme}' is not supported.`),
  /** A notification URL that does not parse. [OBS microsoftgraph/nodejs-webhooks-sample#9] */
  urlInvalid: (url: string) => new GraphError(400, 'InvalidRequest', `Invalid notification url='${url}'.`),
  /** expirationDateTime beyond the resource's maximum. [OBS microsoft-graph-docs#2988 for 4230; the 1440 (resource data) text is the same pattern, an approximation] */
  expirationTooFar: (minutes: number) => new GraphError(400, 'ExtensionError', `Subscription expiration can only be ${minutes} minutes in the future.`),
  /** 1,000 Outlook subscriptions on the mailbox (facts §4.1). Text observed for OneDrive's limit; for Outlook an approximation. */
  subscriptionLimit: () =>
    new GraphError(403, 'ExtensionError', 'Operation: Create; Exception: [Status Code: Forbidden; Reason: Maximum number of subscriptions has been reached]'),
  /** PATCH with neither property. [OBS microsoftgraph/msgraph-sdk-java#2323] */
  patchNothing: () =>
    new GraphError(400, 'InvalidRequest', "Subscription must contain either the 'expirationDateTime' or 'notificationUrl' property and its value."),
  /** Unknown or foreign subscription id, or one that expired. Approximation: no capture shows Graph's exact text. */
  subscriptionNotFound: () => new GraphError(404, 'ResourceNotFound', 'The object was not found.'),
  /**
   * Every other malformed subscription request (missing property, bad changeType, clientState over
   * 128 characters, unsupported resource, lifecycleNotificationUrl in PATCH, rich notifications
   * without a certificate). Approximation: Graph's code for this class, the sandbox's words.
   */
  subscriptionInvalid: (message: string) => new GraphError(400, 'InvalidRequest', message),

  internal: () => new GraphError(500, 'UnknownError', ''),
};

/** innerError.date as Graph writes it: UTC, seconds, no zone suffix ("2026-08-13T13:03:10"). */
export function graphDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19);
}

export function errorBody(err: GraphError, ids: { requestId: string; clientRequestId: string }, now: number): string {
  return JSON.stringify({
    error: {
      code: err.code,
      message: err.message,
      innerError: { date: graphDate(now), 'request-id': ids.requestId, 'client-request-id': ids.clientRequestId },
    },
  });
}
