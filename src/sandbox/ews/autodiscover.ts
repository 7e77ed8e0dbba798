/**
 * Autodiscover for the sandbox EWS (facts §5.6), on the same HTTPS listener:
 *   POST /autodiscover/autodiscover.svc                 SOAP GetUserSettings (authenticated)
 *   POST /autodiscover/autodiscover.xml                 POX, Outlook response schema 2006a (authenticated)
 *   GET  /autodiscover/autodiscover.json/v1.0/{smtp}    v2 JSON, ?Protocol=EWS|ActiveSync (anonymous)
 *
 * GetUserSettings answers UserDisplayName, UserDN, UserDeploymentId, CasVersion,
 * EwsSupportedSchemas, ExternalEwsUrl, InternalEwsUrl, GroupingInformation (one group per backend
 * site), InternalMailboxServer (the backend FQDN, so a watcher can limit itself to listed mailbox
 * servers); other setting names come back in UserSettingErrors. Unknown users: UserResponse
 * ErrorCode InvalidUser, "Invalid user: '…'" [OBS]; POX: Error 500 "The email address can't be
 * found." [OBS], malformed request: 600 "Invalid Request" [DOC]; v2 JSON errors [APPROX].
 * The POX LegacyDN/Server values are built the way Exchange builds them, from sandbox data.
 */
import { createHash } from 'node:crypto';
import type { EwsMailboxInfo, EwsPrincipal, MailboxResolver } from './auth.ts';
import type { Backends, EwsProfile } from './backends.ts';
import { buildXml, child, el, kids, NS, parseXml, path, tx, XML_DECL, type XEl } from './xml.ts';

export interface AutodiscoverContext {
  profile: EwsProfile;
  backends: Backends;
  mailboxes: MailboxResolver;
  ewsUrl: string;
  /** Mailbox visible to this caller (same tenant), or undefined. */
  visible(principal: EwsPrincipal, address: string): EwsMailboxInfo | undefined;
}

export interface HttpAnswer {
  status: number;
  contentType: string;
  body: string;
}

const DEPLOYMENT_ID = '5d1f4ec2-0c8e-4a1f-9a54-5a6e2d3b0e11';

function guidOf(text: string): string {
  const h = createHash('sha256').update(text.toLowerCase()).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function legacyDn(address: string): string {
  const local = address.split('@')[0] ?? address;
  return `/o=Sandbox/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=${createHash('sha256').update(address.toLowerCase()).digest('hex').slice(0, 32)}-${local}`;
}

// ---- SOAP GetUserSettings ----

const SETTINGS: Record<string, (ctx: AutodiscoverContext, box: EwsMailboxInfo) => string> = {
  UserDisplayName: (_c, b) => b.displayName,
  UserDN: (_c, b) => legacyDn(b.address),
  UserDeploymentId: () => DEPLOYMENT_ID,
  CasVersion: (c) => c.profile.casVersion,
  EwsSupportedSchemas: (c) => c.profile.schemas,
  ExternalEwsUrl: (c) => c.ewsUrl,
  InternalEwsUrl: (c) => c.ewsUrl,
  GroupingInformation: (c, b) => c.backends.group(c.backends.of(b.address)),
  InternalMailboxServer: (c, b) => c.backends.of(b.address),
  ExternalMailboxServer: (c) => new URL(c.ewsUrl).hostname,
};

function adServerVersion(profile: EwsProfile): XEl {
  return el('h:ServerVersionInfo', { 'xmlns:h': NS.a, 'xmlns:i': NS.xsi }, [
    tx('h:MajorVersion', profile.major),
    tx('h:MinorVersion', profile.minor),
    tx('h:MajorBuildNumber', profile.build),
    tx('h:MinorBuildNumber', profile.revision),
    // [APPROX] the Autodiscover ExchangeVersion enum has no value newer than Exchange2013_SP1.
    tx('h:Version', 'Exchange2013_SP1'),
  ]);
}

export function soapGetUserSettings(ctx: AutodiscoverContext, principal: EwsPrincipal, text: string): HttpAnswer {
  const xml = (body: XEl, action: string) => ({
    status: 200,
    contentType: 'text/xml; charset=utf-8',
    body:
      XML_DECL +
      buildXml(
        el('s:Envelope', { 'xmlns:s': NS.soap, 'xmlns:a': NS.wsa }, [
          el('s:Header', [tx('a:Action', `http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/${action}`, { 's:mustUnderstand': 1 }), adServerVersion(ctx.profile)]),
          el('s:Body', [body]),
        ]),
      ),
  });
  let request;
  try {
    const root = parseXml(text);
    request = path(root, [NS.soap, 'Body'], [NS.a, 'GetUserSettingsRequestMessage'], [NS.a, 'Request']);
  } catch {
    request = undefined;
  }
  if (!request) {
    return xml(
      el('GetUserSettingsResponseMessage', { xmlns: NS.a }, [
        el('Response', { 'xmlns:i': NS.xsi }, [tx('ErrorCode', 'InvalidRequest'), tx('ErrorMessage', 'The request is invalid.'), el('UserResponses', [])]),
      ]),
      'GetUserSettingsResponse',
    );
  }
  const users = kids(child(request, NS.a, 'Users'), NS.a, 'User').map((u) => child(u, NS.a, 'Mailbox')?.text ?? '');
  const wanted = kids(child(request, NS.a, 'RequestedSettings'), NS.a, 'Setting').map((s) => s.text);
  const responses = users.map((address) => {
    const box = ctx.visible(principal, address);
    if (!box) {
      return el('UserResponse', [tx('ErrorCode', 'InvalidUser'), tx('ErrorMessage', `Invalid user: '${address}'`), el('RedirectTarget', { 'i:nil': 'true' }), el('UserSettingErrors', []), el('UserSettings', [])]);
    }
    const errors: XEl[] = [];
    const settings: XEl[] = [];
    for (const name of wanted) {
      const f = SETTINGS[name];
      if (!f) {
        errors.push(el('UserSettingError', [tx('ErrorCode', 'InvalidSetting'), tx('ErrorMessage', `The requested setting '${name}' is invalid.`), tx('SettingName', name)]));
        continue;
      }
      settings.push(el('UserSetting', { 'i:type': 'StringSetting' }, [tx('Name', name), tx('Value', f(ctx, box))]));
    }
    return el('UserResponse', [tx('ErrorCode', 'NoError'), tx('ErrorMessage', 'No error.'), el('RedirectTarget', { 'i:nil': 'true' }), el('UserSettingErrors', errors), el('UserSettings', settings)]);
  });
  return xml(
    el('GetUserSettingsResponseMessage', { xmlns: NS.a }, [
      el('Response', { 'xmlns:i': NS.xsi }, [tx('ErrorCode', 'NoError'), el('ErrorMessage', []), el('UserResponses', responses)]),
    ]),
    'GetUserSettingsResponse',
  );
}

// ---- POX ----

function poxError(code: number, message: string, now: number): HttpAnswer {
  const time = new Date(now).toISOString().slice(11, 23).replace(/$/, '0000');
  const body = el('Autodiscover', { xmlns: NS.poxResponse }, [
    el('Response', [el('Error', { Time: time, Id: String(createHash('sha256').update(String(now)).digest().readUInt32LE(0)) }, [tx('ErrorCode', code), tx('Message', message), el('DebugData', [])])]),
  ]);
  return { status: 200, contentType: 'text/xml; charset=utf-8', body: XML_DECL + buildXml(body) };
}

export function pox(ctx: AutodiscoverContext, principal: EwsPrincipal, text: string, now: number): HttpAnswer {
  let address: string | undefined;
  let schema: string | undefined;
  try {
    const req = path(parseXml(text), [NS.poxRequest, 'Request']);
    address = child(req, NS.poxRequest, 'EMailAddress')?.text;
    schema = child(req, NS.poxRequest, 'AcceptableResponseSchema')?.text;
  } catch {
    address = undefined;
  }
  if (!address || !schema) return poxError(600, 'Invalid Request', now);
  if (schema !== NS.poxOutlook) return poxError(601, 'The requested schema version is not supported.', now);
  const box = ctx.visible(principal, address);
  if (!box) return poxError(500, "The email address can't be found.", now);
  const backend = ctx.backends.of(box.address);
  const host = new URL(ctx.ewsUrl).hostname;
  const domain = box.address.split('@')[1] ?? '';
  const ews = ctx.ewsUrl;
  const protocol = (type: 'EXCH' | 'EXPR') =>
    el('Protocol', [
      tx('Type', type),
      tx('Server', type === 'EXCH' ? `${guidOf(box.address)}@${domain}` : host),
      type === 'EXCH' ? tx('ServerDN', `/o=Sandbox/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/cn=Servers/cn=${guidOf(box.address)}@${domain}`) : undefined,
      type === 'EXCH' ? tx('ServerVersion', ctx.profile.online ? '73C18880' : ctx.profile.minor >= 2 ? '73C2845E' : '73C189CB') : undefined,
      type === 'EXCH' ? tx('AD', ctx.profile.online ? 'SANDBOX-DC01.prod.outlook.com' : 'DC01.contoso.local') : undefined,
      tx('ASUrl', ews),
      tx('EwsUrl', ews),
      tx('EmwsUrl', ews),
      tx('OOFUrl', ews),
      tx('OABUrl', new URL('/OAB/', ews).toString()),
      tx('EwsPartnerUrl', ews),
      type === 'EXPR' ? tx('CertPrincipalName', `msstd:${host}`) : undefined,
      type === 'EXCH' ? tx('InternalMailboxServer', backend) : undefined,
    ]);
  const body = el('Autodiscover', { xmlns: NS.poxResponse }, [
    el('Response', { xmlns: NS.poxOutlook }, [
      el('User', [tx('DisplayName', box.displayName), tx('LegacyDN', legacyDn(box.address)), tx('AutoDiscoverSMTPAddress', box.address), tx('DeploymentId', DEPLOYMENT_ID)]),
      el('Account', [tx('AccountType', 'email'), tx('Action', 'settings'), tx('MicrosoftOnline', ctx.profile.online ? 'True' : 'False'), protocol('EXCH'), protocol('EXPR')]),
    ]),
  ]);
  return { status: 200, contentType: 'text/xml; charset=utf-8', body: XML_DECL + buildXml(body) };
}

// ---- v2 JSON ----

const V2_PROTOCOLS: Record<string, (ews: string) => string> = {
  ews: (ews) => ews,
  activesync: (ews) => new URL('/Microsoft-Server-ActiveSync', ews).toString(),
  autodiscoverv1: (ews) => new URL('/autodiscover/autodiscover.xml', ews).toString(),
};
const V2_NAMES: Record<string, string> = { ews: 'EWS', activesync: 'ActiveSync', autodiscoverv1: 'AutodiscoverV1' };

export function v2Json(ctx: AutodiscoverContext, address: string, protocol: string | undefined): HttpAnswer {
  const json = (status: number, body: unknown) => ({ status, contentType: 'application/json; charset=utf-8', body: JSON.stringify(body) });
  const key = (protocol ?? '').toLowerCase();
  const url = V2_PROTOCOLS[key];
  if (!url) {
    return json(400, {
      ErrorCode: 'InvalidProtocol',
      ErrorMessage: `The given protocol value '${protocol ?? ''}' is invalid. Supported values are '${Object.values(V2_NAMES).join(', ')}'.`,
    });
  }
  if (!ctx.mailboxes(address)) return json(404, { ErrorCode: 'UserNotFound', ErrorMessage: `The given SMTP address '${address}' was not found.` });
  return json(200, { Protocol: V2_NAMES[key], Url: url(ctx.ewsUrl) });
}
