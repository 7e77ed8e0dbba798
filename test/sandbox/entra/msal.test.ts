/**
 * End to end with @azure/msal-node against the sandbox, configured as the comment at the top of
 * src/sandbox/entra/index.ts says: authority on the sandbox URL, knownAuthorities with its host,
 * and a network client that trusts the sandbox CA.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import {
  ConfidentialClientApplication,
  PublicClientApplication,
  type INetworkModule,
  type NetworkRequestOptions,
  type NetworkResponse,
} from '@azure/msal-node';
import { Agent, fetch } from 'undici';
import { APP, EXO_DEFAULT, IMAP, REDIRECT, SECRET, SMTP, SP, startFixture, T, USER, verifyToken, type Fixture } from './helpers.ts';

let f: Fixture;
before(async () => {
  f = await startFixture({ realClock: true });
});
after(async () => {
  await f?.close();
});

/** INetworkModule over undici with the sandbox CA; records every URL MSAL asks for. */
function sandboxNetwork(ca: string, seen: string[]): INetworkModule & { close(): Promise<void> } {
  const dispatcher = new Agent({ connect: { ca } });
  const send = async <T>(url: string, method: 'GET' | 'POST', options?: NetworkRequestOptions): Promise<NetworkResponse<T>> => {
    seen.push(url);
    const res = await fetch(url, { method, headers: options?.headers, body: method === 'POST' ? (options?.body ?? '') : undefined, dispatcher });
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => {
      headers[k] = v;
    });
    return { status: res.status, headers, body: (await res.json()) as T };
  };
  return {
    sendGetRequestAsync: (url, options) => send(url, 'GET', options),
    sendPostRequestAsync: (url, options) => send(url, 'POST', options),
    close: () => dispatcher.close(),
  };
}

const networks: Array<{ close(): Promise<void> }> = [];
after(async () => {
  await Promise.all(networks.map((n) => n.close()));
});

function msalSystem(seen: string[]) {
  const networkClient = sandboxNetwork(f.ca.certPem, seen);
  networks.push(networkClient);
  return { networkClient };
}

function auth(clientId: string, tenant: string = T.contoso) {
  return { clientId, authority: `${f.url}/${tenant}`, knownAuthorities: [new URL(f.url).host] };
}

describe('msal-node against the sandbox', () => {
  test('ConfidentialClientApplication with a client secret: acquireTokenByClientCredential', async () => {
    const seen: string[] = [];
    const cca = new ConfidentialClientApplication({ auth: { ...auth(APP.cc), clientSecret: SECRET.valid }, system: msalSystem(seen) });
    const result = await cca.acquireTokenByClientCredential({ scopes: [EXO_DEFAULT] });
    assert.ok(result?.accessToken);
    assert.equal(result.tokenType, 'Bearer');
    const { payload } = await verifyToken(f, result.accessToken, new Date());
    assert.equal(payload.aud, 'https://outlook.office365.com');
    assert.equal(payload.oid, SP.cc);
    assert.deepEqual(payload.roles, ['IMAP.AccessAsApp', 'SMTP.SendAsApp']);
    assert.ok(seen.length >= 2);
    assert.ok(seen.every((u) => u.startsWith(f.url)), `MSAL left the sandbox: ${seen.join(', ')}`);
    assert.ok(seen.some((u) => u.includes('/v2.0/.well-known/openid-configuration')));
    // Second call is served from MSAL's cache: no new token request.
    const tokenCalls = f.sandbox.stats.calls.token;
    const again = await cca.acquireTokenByClientCredential({ scopes: [EXO_DEFAULT] });
    assert.equal(again?.accessToken, result.accessToken);
    assert.equal(f.sandbox.stats.calls.token, tokenCalls);
  });

  test('ConfidentialClientApplication with a certificate (PS256, x5t#S256, x5c)', async () => {
    const seen: string[] = [];
    const thumbprintSha256 = createHash('sha256').update(new X509Certificate(f.certs.valid.certPem).raw).digest('hex');
    const cca = new ConfidentialClientApplication({
      auth: { ...auth(APP.cc, 'contoso.example'), clientCertificate: { thumbprintSha256, privateKey: f.certs.valid.keyPem, x5c: f.certs.valid.certPem } },
      system: msalSystem(seen),
    });
    const result = await cca.acquireTokenByClientCredential({ scopes: [EXO_DEFAULT] });
    assert.ok(result?.accessToken);
    const { payload } = await verifyToken(f, result.accessToken, new Date());
    assert.equal(payload.appidacr, '2');
    assert.equal(payload.tid, T.contoso);
    const logged = f.sandbox.stats.tokenRequests.at(-1) as { assertion: { header: Record<string, unknown>; claims: Record<string, unknown> } };
    assert.equal(logged.assertion.header.alg, 'PS256');
    assert.ok(logged.assertion.header['x5t#S256']);
    assert.ok(Array.isArray(logged.assertion.header.x5c));
    assert.equal(logged.assertion.claims.sub, APP.cc);
  });

  test('cloudDiscoveryMetadata (the sandbox’s instance discovery answer) instead of knownAuthorities', async () => {
    const seen: string[] = [];
    const authority = `${f.url}/${T.contoso}`;
    const discovery = await fetch(`${f.url}/common/discovery/instance?api-version=1.1&authorization_endpoint=${encodeURIComponent(`${authority}/oauth2/v2.0/authorize`)}`, {
      dispatcher: f.http,
    });
    const cca = new ConfidentialClientApplication({
      auth: { clientId: APP.cc, authority, clientSecret: SECRET.valid, cloudDiscoveryMetadata: await discovery.text() },
      system: msalSystem(seen),
    });
    const result = await cca.acquireTokenByClientCredential({ scopes: [EXO_DEFAULT] });
    assert.ok(result?.accessToken);
    assert.ok(seen.every((u) => u.startsWith(f.url)), `MSAL left the sandbox: ${seen.join(', ')}`);
  });

  test('a wrong secret surfaces as MSAL ServerError invalid_client with AADSTS7000215', async () => {
    const cca = new ConfidentialClientApplication({ auth: { ...auth(APP.cc), clientSecret: 'wrong-secret-value' }, system: msalSystem([]) });
    await assert.rejects(cca.acquireTokenByClientCredential({ scopes: [EXO_DEFAULT] }), (err: Error & { errorCode?: string; errorMessage?: string }) => {
      assert.equal(err.errorCode, 'invalid_client');
      assert.match(err.errorMessage ?? '', /AADSTS7000215/);
      return true;
    });
  });

  test('auth code flow: getAuthCodeUrl → sign-in → acquireTokenByCode → acquireTokenSilent refreshes', async () => {
    const cca = new ConfidentialClientApplication({ auth: { ...auth(APP.cc), clientSecret: SECRET.valid }, system: msalSystem([]) });
    const scopes = [IMAP, SMTP];
    const url = await cca.getAuthCodeUrl({ scopes, redirectUri: REDIRECT, state: 'xyz', nonce: 'nonce-1' });
    const back = new URL(await f.sandbox.signIn(url, USER.alice.upn));
    assert.equal(back.searchParams.get('state'), 'xyz');
    const result = await cca.acquireTokenByCode({ code: back.searchParams.get('code') ?? '', scopes, redirectUri: REDIRECT, nonce: 'nonce-1' });
    assert.equal(result.account?.username, USER.alice.upn);
    assert.equal(result.account?.homeAccountId, `${USER.alice.oid}.${T.contoso}`);
    assert.equal(result.tenantId, T.contoso);
    const at = await verifyToken(f, result.accessToken, new Date());
    assert.equal(at.payload.scp, 'IMAP.AccessAsUser.All SMTP.Send');
    assert.equal(at.payload.aud, 'https://outlook.office.com');

    const before = f.sandbox.stats.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length;
    const silent = await cca.acquireTokenSilent({ account: result.account ?? (undefined as never), scopes, forceRefresh: true });
    assert.ok(silent.accessToken);
    assert.notEqual(silent.accessToken, result.accessToken);
    assert.equal(f.sandbox.stats.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length, before + 1);
  });

  test('missing consent reaches MSAL as an interaction-required error with AADSTS65001', async () => {
    const cca = new ConfidentialClientApplication({ auth: { ...auth(APP.noConsent), clientSecret: SECRET.valid }, system: msalSystem([]) });
    const url = await cca.getAuthCodeUrl({ scopes: [IMAP], redirectUri: REDIRECT });
    const back = new URL(await f.sandbox.signIn(url, USER.alice.upn));
    await assert.rejects(cca.acquireTokenByCode({ code: back.searchParams.get('code') ?? '', scopes: [IMAP], redirectUri: REDIRECT }), (err: Error & { errorCode?: string; subError?: string }) => {
      assert.equal(err.name, 'InteractionRequiredAuthError');
      assert.equal(err.subError, 'consent_required');
      assert.match(err.message, /AADSTS65001/);
      return true;
    });
  });

  test('PublicClientApplication device code: MSAL shows the sandbox message, the user approves, MSAL’s poll gets the token', async () => {
    const pca = new PublicClientApplication({ auth: auth(APP.public), system: msalSystem([]) });
    let shown = '';
    const result = await pca.acquireTokenByDeviceCode({
      scopes: [IMAP],
      deviceCodeCallback: (r) => {
        shown = r.message;
        f.sandbox.approveDeviceCode(r.userCode, USER.alice.upn);
      },
    });
    assert.match(shown, new RegExp(`open the page ${f.url}/devicelogin and enter the code`));
    assert.equal(result?.account?.username, USER.alice.upn);
    const { payload } = await verifyToken(f, result?.accessToken ?? '', new Date());
    assert.equal(payload.appid, APP.public);
    assert.equal(payload.appidacr, '0');
  });
});
