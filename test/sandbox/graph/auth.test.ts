/**
 * Sandbox Graph: the token, the mailbox in the path, permissions, routing — each failure with
 * Graph's status, code, message, envelope and headers; and a token from the sandbox Entra ID.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { fetch } from 'undici';
import { startEntraSandbox } from '../../../src/sandbox/entra/index.ts';
import { startGraphSandbox } from '../../../src/sandbox/graph/index.ts';
import { APP, FRANK, graphError, INFO, startRig, T, USER, type Response, type Rig } from './helpers.ts';

let rig: Rig;
before(async () => {
  rig = await startRig();
});
after(async () => {
  await rig?.close();
});

const INBOX = `/v1.0/users/${USER.alice.upn}/mailFolders/inbox`;

function expectError(res: Response, status: number, code: string, message: string | RegExp): void {
  assert.equal(res.status, status, res.text);
  const err = graphError(res);
  assert.equal(err.code, code);
  if (typeof message === 'string') assert.equal(err.message, message);
  else assert.match(err.message, message);
}

describe('the error envelope and headers', () => {
  test('missing token: 401 InvalidAuthenticationToken "Access token is empty." with innerError and Graph headers', async () => {
    const res = await rig.call('GET', INBOX);
    expectError(res, 401, 'InvalidAuthenticationToken', 'Access token is empty.');
    const requestId = res.headers.get('request-id');
    assert.match(requestId ?? '', /^[0-9a-f-]{36}$/);
    // No client-request-id sent: Graph uses the request-id for both.
    assert.equal(res.headers.get('client-request-id'), requestId);
    assert.ok(res.headers.get('x-ms-ags-diagnostic'));
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm="", authorization_uri="https:\/\/login\.microsoftonline\.com\/common\/oauth2\/authorize", client_id="00000003-0000-0000-c000-000000000000"$/);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const body = res.json<{ error: Record<string, unknown> }>();
    assert.deepEqual(Object.keys(body), ['error']);
    assert.deepEqual(Object.keys(body.error), ['code', 'message', 'innerError']);
    const inner = body.error.innerError as Record<string, string>;
    assert.deepEqual(Object.keys(inner), ['date', 'request-id', 'client-request-id']);
    assert.match(inner.date ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
    assert.equal(inner['request-id'], requestId);
    assert.equal(inner['client-request-id'], requestId);
  });

  test('client-request-id is echoed in the header and the innerError', async () => {
    const cri = randomUUID();
    const res = await rig.call('GET', INBOX, { headers: { 'client-request-id': cri } });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('client-request-id'), cri);
    assert.notEqual(res.headers.get('request-id'), cri);
    assert.equal(graphError(res).innerError['client-request-id'], cri);
  });

  test('a success also carries request-id and the echoed client-request-id', async () => {
    const cri = randomUUID();
    const res = await rig.call('GET', INBOX, { token: await rig.appToken(APP.reader), headers: { 'client-request-id': cri } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers.get('client-request-id'), cri);
    assert.match(res.headers.get('request-id') ?? '', /^[0-9a-f-]{36}$/);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json;odata\.metadata=minimal/);
  });
});

describe('the token (401)', () => {
  test('a Basic header counts as no token', async () => {
    const res = await rig.call('GET', INBOX, { headers: { authorization: 'Basic YWxpY2U6cHc=' } });
    expectError(res, 401, 'InvalidAuthenticationToken', 'Access token is empty.');
  });

  test('not a JWT: CompactToken parsing failed', async () => {
    const res = await rig.call('GET', INBOX, { token: 'EwBwA8l6BAAU-not-a-jwt' });
    expectError(res, 401, 'InvalidAuthenticationToken', 'CompactToken parsing failed with error code: 80049217');
  });

  test('expired token (beyond the five minutes of skew): "Access token has expired or is not yet valid."', async () => {
    const res = await rig.call('GET', INBOX, { token: await rig.appToken(APP.reader, {}, { expiresIn: -360 }) });
    expectError(res, 401, 'InvalidAuthenticationToken', 'Access token has expired or is not yet valid.');
  });

  test('a token expires with the sandbox clock', async () => {
    const token = await rig.appToken(APP.reader, {}, { expiresIn: 600 });
    assert.equal((await rig.call('GET', INBOX, { token })).status, 200);
    rig.clock.offsetMs = 20 * 60_000;
    try {
      expectError(await rig.call('GET', INBOX, { token }), 401, 'InvalidAuthenticationToken', 'Access token has expired or is not yet valid.');
    } finally {
      rig.clock.offsetMs = 0;
    }
  });

  test('not yet valid (nbf an hour ahead): same message', async () => {
    const nbf = Math.floor(Date.now() / 1000) + 3600;
    const res = await rig.call('GET', INBOX, { token: await rig.appToken(APP.reader, { nbf }, { expiresIn: 7200 }) });
    expectError(res, 401, 'InvalidAuthenticationToken', 'Access token has expired or is not yet valid.');
  });

  test('signed by an unknown key: "Signature is invalid."', async () => {
    const res = await rig.call('GET', INBOX, { token: await rig.appToken(APP.reader, {}, { foreignKey: true }) });
    expectError(res, 401, 'InvalidAuthenticationToken', 'Signature is invalid.');
  });

  test('an Exchange Online token (aud outlook.office365.com): Invalid audience', async () => {
    const res = await rig.call('GET', INBOX, { token: await rig.appToken(APP.reader, { aud: 'https://outlook.office365.com' }) });
    expectError(res, 401, 'InvalidAuthenticationToken', 'Access token validation failure. Invalid audience.');
  });

  test('the Graph resource app ID is an accepted audience too', async () => {
    const res = await rig.call('GET', INBOX, { token: await rig.appToken(APP.reader, { aud: '00000003-0000-0000-c000-000000000000' }) });
    assert.equal(res.status, 200, res.text);
  });

  test('national cloud: a GCC High tenant needs aud https://graph.microsoft.us', async () => {
    const path = '/v1.0/users/gina@usgov.test/mailFolders/inbox';
    const wrong = await rig.call('GET', path, { token: await rig.appToken({ ...APP.usgov, roles: ['Mail.Read'] }) });
    expectError(wrong, 401, 'InvalidAuthenticationToken', 'Access token validation failure. Invalid audience.');
    const right = await rig.call('GET', path, { token: await rig.appToken({ ...APP.usgov, roles: ['Mail.Read'] }, { aud: 'https://graph.microsoft.us' }) });
    assert.equal(right.status, 200, right.text);
  });

  test('wrong issuer, and an unknown tenant: Invalid issuer', async () => {
    const badIss = await rig.call('GET', INBOX, { token: await rig.appToken(APP.reader, { iss: 'https://evil.example/' }) });
    expectError(badIss, 401, 'InvalidAuthenticationToken', 'Access token validation failure. Invalid issuer.');
    const other = randomUUID();
    const unknown = await rig.call('GET', INBOX, { token: await rig.appToken(APP.reader, {}, { tenant: other }) });
    expectError(unknown, 401, 'InvalidAuthenticationToken', 'Access token validation failure. Invalid issuer.');
  });
});

describe('the mailbox in the path', () => {
  test('an unknown UPN: 404 ErrorInvalidUser naming it', async () => {
    const res = await rig.call('GET', '/v1.0/users/nobody@contoso.test/mailFolders/inbox', { token: await rig.appToken(APP.reader) });
    expectError(res, 404, 'ErrorInvalidUser', "The requested user 'nobody@contoso.test' is invalid.");
  });

  test('an unknown object ID: 404 ErrorInvalidUser', async () => {
    const id = randomUUID();
    const res = await rig.call('GET', `/v1.0/users/${id}/mailFolders/inbox`, { token: await rig.appToken(APP.reader) });
    expectError(res, 404, 'ErrorInvalidUser', `The requested user '${id}' is invalid.`);
  });

  test("a mailbox of another tenant is not visible with this tenant's token", async () => {
    const res = await rig.call('GET', `/v1.0/users/${FRANK}/mailFolders/inbox`, { token: await rig.appToken(APP.reader) });
    expectError(res, 404, 'ErrorInvalidUser', `The requested user '${FRANK}' is invalid.`);
  });

  test('a user without a mailbox: 404 MailboxNotEnabledForRESTAPI', async () => {
    const res = await rig.call('GET', `/v1.0/users/${USER.carol.upn}/mailFolders/inbox`, { token: await rig.appToken(APP.reader) });
    expectError(res, 404, 'MailboxNotEnabledForRESTAPI', 'The mailbox is either inactive, soft-deleted, or is hosted on-premise.');
  });

  test('a user by object ID, and users(\'upn\') key syntax', async () => {
    const token = await rig.appToken(APP.reader);
    const byOid = await rig.call('GET', `/v1.0/users/${USER.alice.oid}/mailFolders/inbox`, { token });
    assert.equal(byOid.status, 200, byOid.text);
    const byKey = await rig.call('GET', `/v1.0/users('${USER.alice.upn}')/mailFolders('Inbox')`, { token });
    assert.equal(byKey.status, 200, byKey.text);
    assert.equal(byKey.json().id, byOid.json().id);
  });

  test('/me with an app-only token: 400 BadRequest', async () => {
    const res = await rig.call('GET', '/v1.0/me/mailFolders/inbox', { token: await rig.appToken(APP.reader) });
    expectError(res, 400, 'BadRequest', '/me request is only valid with delegated authentication flow.');
  });
});

describe('permissions (403)', () => {
  const denied = (res: Response) => expectError(res, 403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');

  test('app without any Graph role: reads and sends are denied', async () => {
    const token = await rig.appToken(APP.none);
    denied(await rig.call('GET', `${INBOX}/messages/delta`, { token }));
    denied(await rig.call('POST', `/v1.0/users/${USER.alice.upn}/sendMail`, { token, json: { message: { toRecipients: [{ emailAddress: { address: USER.bob.upn } }] } } }));
  });

  test('Mail.Read reads but may neither send nor change', async () => {
    const token = await rig.appToken(APP.reader);
    assert.equal((await rig.call('GET', `${INBOX}/messages/delta`, { token })).status, 200);
    denied(await rig.call('POST', `/v1.0/users/${USER.alice.upn}/sendMail`, { token, json: { message: { toRecipients: [{ emailAddress: { address: USER.bob.upn } }] } } }));
    denied(await rig.call('PATCH', `/v1.0/users/${USER.alice.upn}/messages/AAAA`, { token, json: { isRead: true } }));
    denied(await rig.call('DELETE', `/v1.0/users/${USER.alice.upn}/messages/AAAA`, { token }));
  });

  test('delegated: own mailbox with Mail.Read via /me; another mailbox needs Mail.Read.Shared and FullAccess', async () => {
    const alice = await rig.userToken(USER.alice, 'Mail.Read User.Read');
    assert.equal((await rig.call('GET', '/v1.0/me/mailFolders/inbox', { token: alice })).status, 200);
    denied(await rig.call('GET', `/v1.0/users/${USER.bob.upn}/mailFolders/inbox`, { token: alice }));
    const daveShared = await rig.userToken(USER.dave, 'Mail.Read Mail.Read.Shared');
    assert.equal((await rig.call('GET', `/v1.0/users/${INFO}/mailFolders/inbox`, { token: daveShared })).status, 200, 'FullAccess on info');
    denied(await rig.call('GET', `/v1.0/users/${USER.bob.upn}/mailFolders/inbox`, { token: daveShared }));
    const daveOwnOnly = await rig.userToken(USER.dave, 'Mail.Read');
    denied(await rig.call('GET', `/v1.0/users/${INFO}/mailFolders/inbox`, { token: daveOwnOnly }));
    denied(await rig.call('POST', '/v1.0/me/sendMail', { token: alice, json: { message: { toRecipients: [{ emailAddress: { address: USER.bob.upn } }] } } }));
  });
});

describe('routing and ids', () => {
  test('unknown segment: 400 "Resource not found for the segment"', async () => {
    const res = await rig.call('GET', `/v1.0/users/${USER.alice.upn}/calendars`, { token: await rig.appToken(APP.reader) });
    expectError(res, 400, 'BadRequest', "Resource not found for the segment 'calendars'.");
  });

  test('a version other than v1.0', async () => {
    const res = await rig.call('GET', `/v2.0/users/${USER.alice.upn}/mailFolders/inbox`, { token: await rig.appToken(APP.reader) });
    expectError(res, 400, 'BadRequest', 'Invalid version: v2.0');
  });

  test('a method the resource does not take: 405', async () => {
    const res = await rig.call('GET', `/v1.0/users/${USER.alice.upn}/sendMail`, { token: await rig.appToken(APP.relay) });
    expectError(res, 405, 'Request_BadRequest', 'Specified HTTP method is not allowed for the request target.');
  });

  test('an unknown folder name, a garbage id: 400 ErrorInvalidIdMalformed; an id of another mailbox: ErrorInvalidMailboxItemId', async () => {
    const token = await rig.appToken(APP.reader);
    expectError(await rig.call('GET', `/v1.0/users/${USER.alice.upn}/mailFolders/nosuchfolder`, { token }), 400, 'ErrorInvalidIdMalformed', 'Id is malformed.');
    expectError(await rig.call('GET', `/v1.0/users/${USER.alice.upn}/messages/AAMkAGI2THVSAAA=`, { token }), 400, 'ErrorInvalidIdMalformed', 'Id is malformed.');
    const bobInbox = (await rig.call('GET', `/v1.0/users/${USER.bob.upn}/mailFolders/inbox`, { token })).json().id as string;
    expectError(
      await rig.call('GET', `/v1.0/users/${USER.alice.upn}/mailFolders/${bobInbox}`, { token }),
      400,
      'ErrorInvalidMailboxItemId',
      "Item Id doesn't belong to the current mailbox.",
    );
  });

  test('mailFolders: the well-known folders exist, with counts', async () => {
    const token = await rig.appToken(APP.reader);
    const list = await rig.call('GET', `/v1.0/users/${USER.bob.upn}/mailFolders`, { token });
    assert.equal(list.status, 200, list.text);
    const names = list.json<{ value: Array<{ displayName: string }> }>().value.map((f) => f.displayName).sort();
    assert.deepEqual(names, ['Archive', 'Deleted Items', 'Drafts', 'Inbox', 'Junk Email', 'Outbox', 'Sent Items']);
    const sent = await rig.call('GET', `/v1.0/users/${USER.bob.upn}/mailFolders/SentItems`, { token });
    assert.equal(sent.status, 200);
    const f = sent.json();
    assert.equal(f.displayName, 'Sent Items');
    assert.equal(f.totalItemCount, 0);
    assert.equal(f.unreadItemCount, 0);
    assert.equal(f.childFolderCount, 0);
    assert.match(String(f['@odata.context']), /\/v1\.0\/\$metadata#users\('bob%40contoso\.test'\)\/mailFolders\/\$entity$/);
  });
});

describe('a token from the sandbox Entra ID', () => {
  test('client credentials for https://graph.microsoft.com/.default open the mailbox; the Exchange scope does not', async () => {
    const secret = 'Gr8~sandbox-graph-secret-value-0000000001';
    const relay = rig.directory.data.tenants[0]?.apps.find((a) => a.appId === APP.relay.appId);
    assert.ok(relay);
    relay.secrets.push({ keyId: randomUUID(), value: secret, endDateTime: new Date(Date.now() + 86_400_000).toISOString() });
    const entra = await startEntraSandbox({ directory: rig.directory, ca: rig.ca });
    const graph = await startGraphSandbox({ directory: rig.directory, jwks: entra.jwks, tls: rig.tls, dovecot: rig.dovecot });
    try {
      const token = async (scope: string) => {
        const res = await fetch(`${entra.urls.global}/${T.contoso}/oauth2/v2.0/token`, {
          method: 'POST',
          dispatcher: rig.agent,
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'client_credentials', client_id: APP.relay.appId, client_secret: secret, scope }).toString(),
        });
        const body = (await res.json()) as { access_token?: string };
        assert.equal(res.status, 200, JSON.stringify(body));
        return body.access_token as string;
      };
      const get = (t: string) =>
        fetch(`${graph.url}/v1.0/users/${USER.alice.upn}/mailFolders/inbox`, { dispatcher: rig.agent, headers: { authorization: `Bearer ${t}` } });
      const ok = await get(await token('https://graph.microsoft.com/.default'));
      assert.equal(ok.status, 200, await ok.text());
      const exo = await get(await token('https://outlook.office365.com/.default'));
      assert.equal(exo.status, 401);
      assert.equal(((await exo.json()) as { error: { message: string } }).error.message, 'Access token validation failure. Invalid audience.');
    } finally {
      await graph.close();
      await entra.close();
    }
  });
});
