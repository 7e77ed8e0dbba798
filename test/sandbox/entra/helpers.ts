/**
 * Shared fixture for the sandbox Entra ID tests: a directory with tenants in three clouds, apps
 * with every kind of credential, users; an HTTPS client that trusts the sandbox CA (undici); a
 * settable clock; and a JWT check against the sandbox JWKS.
 */
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, randomUUID, X509Certificate } from 'node:crypto';
import { createLocalJWKSet, importPKCS8, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { Agent, fetch } from 'undici';
import { createSandboxCa, type KeyAndCert, type SandboxCa } from '../../../src/sandbox/ca.ts';
import { SandboxDirectory } from '../../../src/sandbox/directory.ts';
import { startEntraSandbox, type EntraSandbox } from '../../../src/sandbox/entra/index.ts';

export const T = {
  contoso: '11111111-1111-4111-8111-111111111111',
  fabrikam: '22222222-2222-4222-8222-222222222222',
  usgov: '33333333-3333-4333-8333-333333333333',
  china: '44444444-4444-4444-8444-444444444444',
};

export const APP = {
  cc: 'aaaaaaaa-0000-4000-8000-000000000001',
  noRoles: 'aaaaaaaa-0000-4000-8000-000000000002',
  public: 'aaaaaaaa-0000-4000-8000-000000000003',
  disabled: 'aaaaaaaa-0000-4000-8000-000000000004',
  noConsent: 'aaaaaaaa-0000-4000-8000-000000000005',
  fabrikam: 'aaaaaaaa-0000-4000-8000-000000000006',
  usgov: 'aaaaaaaa-0000-4000-8000-000000000007',
  china: 'aaaaaaaa-0000-4000-8000-000000000008',
};

export const SP = { cc: 'bbbbbbbb-0000-4000-8000-000000000001', noRoles: 'bbbbbbbb-0000-4000-8000-000000000002' };

export const SECRET = {
  valid: 'Xy38Q~valid-client-secret-value-0000000001',
  validKeyId: 'cccccccc-0000-4000-8000-000000000001',
  expired: 'Ab18Q~expired-client-secret-value-00000002',
  expiredKeyId: 'cccccccc-0000-4000-8000-000000000002',
};

export const USER = {
  alice: { upn: 'alice@contoso.example', oid: 'dddddddd-0000-4000-8000-000000000001', password: 'Alice-pw-1' },
  bob: { upn: 'bob@contoso.example', oid: 'dddddddd-0000-4000-8000-000000000002', password: 'Bob-pw-1' },
  frank: { upn: 'frank@fabrikam.example', oid: 'dddddddd-0000-4000-8000-000000000003', password: 'Frank-pw-1' },
};

export const REDIRECT = 'https://app.example/callback';
export const IMAP = 'https://outlook.office.com/IMAP.AccessAsUser.All';
export const SMTP = 'https://outlook.office.com/SMTP.Send';
export const EXO_DEFAULT = 'https://outlook.office365.com/.default';
export const GRAPH_DEFAULT = 'https://graph.microsoft.com/.default';

export interface Fixture {
  ca: SandboxCa;
  dir: SandboxDirectory;
  sandbox: EntraSandbox;
  certs: { valid: KeyAndCert; expired: KeyAndCert; unregistered: KeyAndCert };
  clock: { now: number };
  http: Agent;
  /** https://127.0.0.1:port of the global cloud. */
  url: string;
  close(): Promise<void>;
}

export async function startFixture(options: { realClock?: boolean } = {}): Promise<Fixture> {
  const ca = createSandboxCa();
  const day = 86_400_000;
  const certs = {
    valid: ca.issueSelfSigned('mailbridge-app'),
    expired: ca.issueSelfSigned('mailbridge-old', { notBefore: new Date(Date.now() - 400 * day), notAfter: new Date(Date.now() - day) }),
    unregistered: ca.issueSelfSigned('someone-else'),
  };
  const future = new Date(Date.now() + 365 * day).toISOString();
  const past = new Date(Date.now() - day).toISOString();
  const dir = new SandboxDirectory({
    tenants: [
      {
        id: T.contoso,
        name: 'Contoso',
        domains: ['contoso.onmicrosoft.com', 'contoso.example'],
        apps: [
          {
            appId: APP.cc,
            objectId: 'eeeeeeee-0000-4000-8000-000000000001',
            servicePrincipalId: SP.cc,
            displayName: 'mailbridge',
            redirectUris: [REDIRECT],
            secrets: [
              { keyId: SECRET.validKeyId, value: SECRET.valid, endDateTime: future },
              { keyId: SECRET.expiredKeyId, value: SECRET.expired, endDateTime: past },
            ],
            certificates: [{ pem: certs.valid.certPem }, { pem: certs.expired.certPem }],
            appRoles: { exchange: ['IMAP.AccessAsApp', 'SMTP.SendAsApp'], graph: ['Mail.Send'] },
            delegatedConsent: [IMAP, SMTP, 'offline_access', 'Mail.Read'],
          },
          {
            appId: APP.noRoles,
            objectId: 'eeeeeeee-0000-4000-8000-000000000002',
            servicePrincipalId: SP.noRoles,
            displayName: 'no roles',
            secrets: [{ keyId: 'cccccccc-0000-4000-8000-000000000003', value: SECRET.valid, endDateTime: future }],
          },
          {
            appId: APP.public,
            objectId: 'eeeeeeee-0000-4000-8000-000000000003',
            servicePrincipalId: 'bbbbbbbb-0000-4000-8000-000000000003',
            displayName: 'mailbridge desktop',
            publicClient: true,
            redirectUris: ['http://localhost'],
            delegatedConsent: [IMAP, SMTP, 'offline_access'],
          },
          {
            appId: APP.disabled,
            objectId: 'eeeeeeee-0000-4000-8000-000000000004',
            servicePrincipalId: 'bbbbbbbb-0000-4000-8000-000000000004',
            displayName: 'switched off',
            disabled: true,
            secrets: [{ keyId: 'cccccccc-0000-4000-8000-000000000004', value: SECRET.valid, endDateTime: future }],
          },
          {
            appId: APP.noConsent,
            objectId: 'eeeeeeee-0000-4000-8000-000000000005',
            servicePrincipalId: 'bbbbbbbb-0000-4000-8000-000000000005',
            displayName: 'unconsented',
            redirectUris: [REDIRECT],
            secrets: [{ keyId: 'cccccccc-0000-4000-8000-000000000005', value: SECRET.valid, endDateTime: future }],
          },
        ],
        users: [
          { objectId: USER.alice.oid, upn: USER.alice.upn, displayName: 'Alice Example', password: USER.alice.password },
          { objectId: USER.bob.oid, upn: USER.bob.upn, displayName: 'Bob Example', password: USER.bob.password, disabled: true },
        ],
      },
      {
        id: T.fabrikam,
        name: 'Fabrikam',
        domains: ['fabrikam.example'],
        exchangeOnline: false,
        apps: [
          {
            appId: APP.fabrikam,
            objectId: 'eeeeeeee-0000-4000-8000-000000000006',
            servicePrincipalId: 'bbbbbbbb-0000-4000-8000-000000000006',
            secrets: [{ keyId: 'cccccccc-0000-4000-8000-000000000006', value: SECRET.valid, endDateTime: future }],
          },
        ],
        users: [{ objectId: USER.frank.oid, upn: USER.frank.upn, password: USER.frank.password }],
      },
      {
        id: T.usgov,
        name: 'US Gov',
        domains: ['usgov.example'],
        cloud: 'gcc-high',
        apps: [
          {
            appId: APP.usgov,
            objectId: 'eeeeeeee-0000-4000-8000-000000000007',
            servicePrincipalId: 'bbbbbbbb-0000-4000-8000-000000000007',
            secrets: [{ keyId: 'cccccccc-0000-4000-8000-000000000007', value: SECRET.valid, endDateTime: future }],
            appRoles: { exchange: ['IMAP.AccessAsApp'], graph: [] },
          },
        ],
      },
      {
        id: T.china,
        name: 'China',
        domains: ['china.example'],
        cloud: 'china',
        apps: [
          {
            appId: APP.china,
            objectId: 'eeeeeeee-0000-4000-8000-000000000008',
            servicePrincipalId: 'bbbbbbbb-0000-4000-8000-000000000008',
            secrets: [{ keyId: 'cccccccc-0000-4000-8000-000000000008', value: SECRET.valid, endDateTime: future }],
            appRoles: { exchange: ['SMTP.SendAsApp'], graph: [] },
          },
        ],
      },
    ],
  });
  const clock = { now: Date.now() };
  const sandbox = await startEntraSandbox({ directory: dir, ca, now: options.realClock ? Date.now : () => clock.now });
  const http = new Agent({ connect: { ca: ca.certPem } });
  return {
    ca,
    dir,
    sandbox,
    certs,
    clock,
    http,
    url: sandbox.urls.global,
    async close() {
      await sandbox.close();
      await http.close();
    },
  };
}

export interface Reply {
  status: number;
  headers: Headers | { get(name: string): string | null };
  body: Record<string, unknown>;
  text: string;
}

export async function post(f: Fixture, url: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(url, {
    method: 'POST',
    dispatcher: f.http,
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
    redirect: 'manual',
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // HTML pages
  }
  return { status: res.status, headers: res.headers, body, text };
}

export async function get(f: Fixture, url: string, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(url, { dispatcher: f.http, headers, redirect: 'manual' });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // HTML pages
  }
  return { status: res.status, headers: res.headers, body, text };
}

export function tokenUrl(f: Fixture, tenant: string, cloud: keyof EntraSandbox['urls'] = 'global'): string {
  return `${f.sandbox.urls[cloud]}/${tenant}/oauth2/v2.0/token`;
}

/** Asserts the Entra error shape (facts §1.7) and returns the body. */
export function assertAadError(r: Reply, status: number, error: string, code: number, text?: RegExp): Record<string, unknown> {
  assert.equal(r.status, status, `HTTP status for AADSTS${code}: ${r.text}`);
  assert.equal(r.body.error, error);
  assert.deepEqual(r.body.error_codes, [code]);
  const desc = String(r.body.error_description);
  assert.match(desc, new RegExp(`^AADSTS${code}: `));
  if (text) assert.match(desc, text);
  const traceId = String(r.body.trace_id);
  const correlationId = String(r.body.correlation_id);
  assert.match(traceId, /^[0-9a-f-]{36}$/);
  assert.match(correlationId, /^[0-9a-f-]{36}$/);
  assert.match(String(r.body.timestamp), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
  assert.ok(desc.endsWith(` Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${String(r.body.timestamp)}`), desc);
  assert.equal(r.headers.get('x-ms-request-id'), traceId);
  assert.match(String(r.body.error_uri), new RegExp(`/error\\?code=${code}$`));
  assert.match(r.headers.get('content-type') ?? '', /^application\/json; charset=utf-8/);
  assert.equal(r.headers.get('cache-control'), 'no-store, no-cache');
  return r.body;
}

export async function verifyToken(f: Fixture, token: string, currentDate?: Date): Promise<{ payload: JWTPayload & Record<string, unknown>; header: Record<string, unknown> }> {
  const jwks = createLocalJWKSet(f.sandbox.jwks() as Parameters<typeof createLocalJWKSet>[0]);
  const { payload, protectedHeader } = await jwtVerify(token, jwks, { algorithms: ['RS256'], currentDate: currentDate ?? new Date(f.clock.now) });
  return { payload: payload as JWTPayload & Record<string, unknown>, header: protectedHeader as Record<string, unknown> };
}

export function ccForm(clientId: string, extra: Record<string, string> = {}): Record<string, string> {
  return { grant_type: 'client_credentials', client_id: clientId, scope: EXO_DEFAULT, ...extra };
}

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export interface AssertionOptions {
  alg?: 'RS256' | 'PS256';
  cert?: KeyAndCert;
  /** Sign with this key instead of the certificate's own (wrong signature). */
  signWith?: KeyAndCert;
  iss?: string;
  sub?: string;
  aud?: string | string[];
  nbf?: number;
  exp?: number;
  thumbprintHeader?: 'x5t' | 'x5t#S256' | 'none';
}

/** A client assertion as certificate-credentials.md describes it (PS256 + x5t#S256 by default). */
export async function makeAssertion(f: Fixture, o: AssertionOptions = {}): Promise<string> {
  const alg = o.alg ?? 'PS256';
  const cert = o.cert ?? f.certs.valid;
  const der = new X509Certificate(cert.certPem).raw;
  const header: Record<string, string> = { alg, typ: 'JWT' };
  const which = o.thumbprintHeader ?? (alg === 'PS256' ? 'x5t#S256' : 'x5t');
  if (which === 'x5t#S256') header['x5t#S256'] = createHash('sha256').update(der).digest('base64url');
  if (which === 'x5t') header.x5t = createHash('sha1').update(der).digest('base64url');
  const key = await importPKCS8(createPrivateKey((o.signWith ?? cert).keyPem).export({ type: 'pkcs8', format: 'pem' }).toString(), alg);
  const nowS = Math.floor(f.clock.now / 1000);
  return new SignJWT({ jti: randomUUID() })
    .setProtectedHeader(header as { alg: string })
    .setIssuer(o.iss ?? APP.cc)
    .setSubject(o.sub ?? o.iss ?? APP.cc)
    .setAudience(o.aud ?? tokenUrl(f, T.contoso))
    .setNotBefore(o.nbf ?? nowS)
    .setIssuedAt(nowS)
    .setExpirationTime(o.exp ?? nowS + 600)
    .sign(key);
}
