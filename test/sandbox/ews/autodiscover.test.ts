import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { child, kids, NS, startRig, text, U1, U2, type Rig, type XNode } from './helpers.ts';

function getUserSettings(users: string[], settings: string[]): string {
  return `<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:a="${NS.a}" xmlns:wsa="${NS.wsa}" xmlns:xsi="${NS.xsi}" xmlns:soap="${NS.soap}"><soap:Header><a:RequestedServerVersion>Exchange2013</a:RequestedServerVersion><wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action><wsa:To>https://autodiscover.contoso.test/autodiscover/autodiscover.svc</wsa:To></soap:Header><soap:Body><a:GetUserSettingsRequestMessage><a:Request><a:Users>${users.map((u) => `<a:User><a:Mailbox>${u}</a:Mailbox></a:User>`).join('')}</a:Users><a:RequestedSettings>${settings.map((s) => `<a:Setting>${s}</a:Setting>`).join('')}</a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>`;
}

function settingsOf(userResponse: XNode): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of kids(child(userResponse, NS.a, 'UserSettings'), NS.a, 'UserSetting')) out[text(s, NS.a, 'Name')!] = text(s, NS.a, 'Value')!;
  return out;
}

describe('sandbox EWS: Autodiscover', () => {
  let rig: Rig;
  let auth: Record<string, string>;
  before(async () => {
    rig = await startRig();
    auth = { authorization: `Bearer ${await rig.appToken()}`, 'x-anchormailbox': U1 };
  });
  after(async () => {
    await rig.close();
  });

  test('SOAP GetUserSettings: EWS URLs, GroupingInformation, InternalMailboxServer, CasVersion; InvalidUser for unknown addresses', async () => {
    const settings = ['UserDisplayName', 'ExternalEwsUrl', 'InternalEwsUrl', 'GroupingInformation', 'CasVersion', 'EwsSupportedSchemas', 'InternalMailboxServer', 'NoSuchSetting'];
    const res = await rig.post(new URL(rig.ews.autodiscoverUrl).pathname, getUserSettings([U1, U2, 'ghost@contoso.test'], settings), auth);
    assert.equal(res.status, 200);
    const doc = res.xml();
    const header = child(doc, NS.soap, 'Header');
    assert.equal(text(header, NS.wsa, 'Action'), 'http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse');
    assert.equal(text(child(header, NS.a, 'ServerVersionInfo'), NS.a, 'MajorVersion'), '15');
    const response = child(child(child(doc, NS.soap, 'Body'), NS.a, 'GetUserSettingsResponseMessage'), NS.a, 'Response')!;
    assert.equal(text(response, NS.a, 'ErrorCode'), 'NoError');
    const [one, two, ghost] = kids(child(response, NS.a, 'UserResponses'), NS.a, 'UserResponse');
    const s1 = settingsOf(one!);
    assert.equal(s1.UserDisplayName, 'User One');
    assert.equal(s1.ExternalEwsUrl, rig.ews.url);
    assert.equal(s1.InternalEwsUrl, rig.ews.url);
    assert.equal(s1.CasVersion, '15.02.1118.007');
    assert.match(s1.EwsSupportedSchemas!, /Exchange2016/);
    assert.equal(s1.InternalMailboxServer, rig.ews.backends.of(U1));
    const s2 = settingsOf(two!);
    assert.equal(s2.GroupingInformation === s1.GroupingInformation, rig.ews.backends.of(U1) === rig.ews.backends.of(U2), 'one group per backend');
    const err = kids(child(one, NS.a, 'UserSettingErrors'), NS.a, 'UserSettingError')[0]!;
    assert.deepEqual([text(err, NS.a, 'ErrorCode'), text(err, NS.a, 'SettingName')], ['InvalidSetting', 'NoSuchSetting']);
    assert.equal(text(ghost, NS.a, 'ErrorCode'), 'InvalidUser');
    assert.equal(text(ghost, NS.a, 'ErrorMessage'), "Invalid user: 'ghost@contoso.test'");
    const noAuth = await rig.post(new URL(rig.ews.autodiscoverUrl).pathname, getUserSettings([U1], ['ExternalEwsUrl']));
    assert.equal(noAuth.status, 401);
  });

  test('POX: Protocol EXCH and EXPR with ASUrl; unknown address → Error 500; bad request → 600', async () => {
    const pox = (address: string, schema = 'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a') =>
      `<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>${address}</EMailAddress><AcceptableResponseSchema>${schema}</AcceptableResponseSchema></Request></Autodiscover>`;
    const res = await rig.post('/autodiscover/autodiscover.xml', pox(U1), auth);
    assert.equal(res.status, 200);
    const doc = res.xml();
    assert.deepEqual([doc.ns, doc.name], [NS.poxResponse, 'Autodiscover']);
    const response = child(doc, NS.poxOutlook, 'Response')!;
    assert.equal(text(child(response, NS.poxOutlook, 'User'), NS.poxOutlook, 'AutoDiscoverSMTPAddress'), U1);
    const account = child(response, NS.poxOutlook, 'Account')!;
    assert.equal(text(account, NS.poxOutlook, 'MicrosoftOnline'), 'False');
    const protocols = kids(account, NS.poxOutlook, 'Protocol');
    assert.deepEqual(protocols.map((p) => text(p, NS.poxOutlook, 'Type')), ['EXCH', 'EXPR']);
    for (const p of protocols) assert.equal(text(p, NS.poxOutlook, 'ASUrl'), rig.ews.url);

    const unknown = (await rig.post('/autodiscover/autodiscover.xml', pox('ghost@contoso.test'), auth)).xml();
    const error = child(child(unknown, NS.poxResponse, 'Response'), NS.poxResponse, 'Error')!;
    assert.equal(text(error, NS.poxResponse, 'ErrorCode'), '500');
    assert.equal(text(error, NS.poxResponse, 'Message'), "The email address can't be found.");
    const bad = (await rig.post('/autodiscover/autodiscover.xml', '<Autodiscover/>', auth)).xml();
    assert.equal(text(child(child(bad, NS.poxResponse, 'Response'), NS.poxResponse, 'Error'), NS.poxResponse, 'ErrorCode'), '600');
  });

  test('v2 JSON: Protocol=EWS gives the EWS URL (anonymous); unknown protocol 400; unknown user 404', async () => {
    const ok = await rig.get(`/autodiscover/autodiscover.json/v1.0/${U1}?Protocol=EWS`);
    assert.equal(ok.status, 200);
    assert.deepEqual(JSON.parse(ok.text), { Protocol: 'EWS', Url: rig.ews.url });
    const bad = await rig.get(`/autodiscover/autodiscover.json/v1.0/${U1}?Protocol=Gopher`);
    assert.equal(bad.status, 400);
    assert.equal(JSON.parse(bad.text).ErrorCode, 'InvalidProtocol');
    const ghost = await rig.get('/autodiscover/autodiscover.json/v1.0/ghost@contoso.test?Protocol=EWS');
    assert.equal(ghost.status, 404);
  });
});
