/**
 * The sandbox Entra ID (src/sandbox/entra) with a directory made for the identity tests: one
 * Exchange Online tenant (global) with a confidential app (secrets valid and expired, a registered
 * certificate, app roles, delegated consent, the test gateway's redirect URI), an app without any
 * granted role, a public client app (device code), and a GCC High tenant for the wrong-cloud case.
 * Connections for Identity point at it with `tokenEndpoint` + `caFile`, as an admin would.
 */
import { createSandboxCa, type SandboxCa } from '../../src/sandbox/ca.ts';
import { SandboxDirectory } from '../../src/sandbox/directory.ts';
import { startEntraSandbox, type EntraSandbox } from '../../src/sandbox/entra/index.ts';
import { makeCert, makePfx, type TestCert } from './helpers.ts';
import { freePort } from '../support/ports.ts';
import { tempDir } from '../support/temp.ts';
import { configSchema, type Config } from '../../src/app/schema.ts';

export const T = {
  contoso: '71f2c0de-1111-4111-8111-0000000000c1',
  usgov: '71f2c0de-3333-4333-8333-0000000000a3',
};
export const APP = {
  cc: '5a1e0000-0000-4000-8000-000000000001',
  noRoles: '5a1e0000-0000-4000-8000-000000000002',
  desk: '5a1e0000-0000-4000-8000-000000000003',
  usgov: '5a1e0000-0000-4000-8000-000000000004',
};
export const SECRET = {
  valid: 'Mb38Q~identity-test-secret-valid-000000001',
  expired: 'Mb18Q~identity-test-secret-expired-0000002',
};
export const ALICE = { upn: 'alice@contoso.example', password: 'Alice-pw-1' };
export const IMAP = 'https://outlook.office.com/IMAP.AccessAsUser.All';
export const SMTP = 'https://outlook.office.com/SMTP.Send';
export const PFX_PASSWORD = 'Pfx#Passw0rd';

export interface Fixture {
  ca: SandboxCa;
  dir: SandboxDirectory;
  sandbox: EntraSandbox;
  /** The sandbox's clock (ms); tests move it to expire codes and tokens. */
  clock: { now: number };
  files: ReturnType<typeof tempDir>;
  caFile: string;
  certs: { registered: TestCert; unregistered: TestCert };
  paths: { pem: string; pfx: string; unregisteredPem: string };
  /** A free loopback port for the gateway that serves the redirect URI. */
  gatewayPort: number;
  redirectUri: string;
  /** The sandbox token endpoint template for a cloud (#TenantID# form). */
  endpoint(cloud?: keyof EntraSandbox['urls']): string;
  /** A validated mailbridge config with these connections (and the server on gatewayPort). */
  config(connections: Record<string, Record<string, unknown>>, extra?: Record<string, unknown>): Config;
  tokenCalls(): number;
  close(): Promise<void>;
}

export async function startFixture(): Promise<Fixture> {
  const ca = createSandboxCa();
  const files = tempDir('mb-identity-sandbox-');
  const registered = makeCert({ cn: 'mailbridge identity' });
  const unregistered = makeCert({ cn: 'someone else' });
  const gatewayPort = await freePort();
  const redirectUri = `http://127.0.0.1:${gatewayPort}/oauth/callback`;
  const day = 86_400_000;
  const future = new Date(Date.now() + 365 * day).toISOString();
  const past = new Date(Date.now() - day).toISOString();
  const consent = ['openid', 'profile', 'offline_access', IMAP, SMTP];
  const dir = new SandboxDirectory({
    tenants: [
      {
        id: T.contoso,
        name: 'Contoso',
        domains: ['contoso.example', 'contoso.onmicrosoft.com'],
        apps: [
          {
            appId: APP.cc,
            objectId: '0b1e0000-0000-4000-8000-000000000001',
            servicePrincipalId: '5b1e0000-0000-4000-8000-000000000001',
            displayName: 'mailbridge',
            redirectUris: [redirectUri],
            secrets: [
              { keyId: 'c1e00000-0000-4000-8000-000000000001', value: SECRET.valid, endDateTime: future },
              { keyId: 'c1e00000-0000-4000-8000-000000000002', value: SECRET.expired, endDateTime: past },
            ],
            certificates: [{ pem: registered.certPem }],
            appRoles: { exchange: ['IMAP.AccessAsApp', 'SMTP.SendAsApp'], graph: ['Mail.Send'] },
            delegatedConsent: consent,
          },
          {
            appId: APP.noRoles,
            objectId: '0b1e0000-0000-4000-8000-000000000002',
            servicePrincipalId: '5b1e0000-0000-4000-8000-000000000002',
            displayName: 'no consent yet',
            secrets: [{ keyId: 'c1e00000-0000-4000-8000-000000000003', value: SECRET.valid, endDateTime: future }],
          },
          {
            appId: APP.desk,
            objectId: '0b1e0000-0000-4000-8000-000000000003',
            servicePrincipalId: '5b1e0000-0000-4000-8000-000000000003',
            displayName: 'mailbridge headless',
            publicClient: true,
            redirectUris: ['http://localhost'],
            delegatedConsent: consent,
          },
        ],
        users: [{ objectId: 'd1e00000-0000-4000-8000-000000000001', upn: ALICE.upn, displayName: 'Alice', password: ALICE.password }],
      },
      {
        id: T.usgov,
        name: 'US Gov',
        domains: ['usgov.example'],
        cloud: 'gcc-high',
        apps: [
          {
            appId: APP.usgov,
            objectId: '0b1e0000-0000-4000-8000-000000000004',
            servicePrincipalId: '5b1e0000-0000-4000-8000-000000000004',
            secrets: [{ keyId: 'c1e00000-0000-4000-8000-000000000004', value: SECRET.valid, endDateTime: future }],
            appRoles: { exchange: ['IMAP.AccessAsApp'], graph: [] },
          },
        ],
      },
    ],
  });
  const clock = { now: Date.now() };
  const sandbox = await startEntraSandbox({ directory: dir, ca, now: () => clock.now });
  const caFile = files.file('sandbox-ca.pem', ca.certPem);
  const paths = {
    pem: files.file('app.pem', registered.certPem + registered.keyPem),
    pfx: files.file('app.pfx', makePfx(registered, PFX_PASSWORD)),
    unregisteredPem: files.file('other.pem', unregistered.certPem + unregistered.keyPem),
  };
  const endpoint = (cloud: keyof EntraSandbox['urls'] = 'global') => `${sandbox.urls[cloud]}/#TenantID#/oauth2/v2.0/token`;
  return {
    ca,
    dir,
    sandbox,
    clock,
    files,
    caFile,
    certs: { registered, unregistered },
    paths,
    gatewayPort,
    redirectUri,
    endpoint,
    config(connections, extra = {}) {
      const withDefaults = Object.fromEntries(
        Object.entries(connections).map(([k, c]) => [k, { tenantId: T.contoso, tokenEndpoint: endpoint(), caFile, ...c }]),
      );
      return configSchema.parse({
        server: { listen: '127.0.0.1', port: gatewayPort },
        store: { driver: 'sqlite', path: `${files.path}/mb.db` },
        connections: withDefaults,
        ...extra,
      });
    },
    tokenCalls: () => sandbox.stats.calls.token ?? 0,
    async close() {
      await sandbox.close();
      files.remove();
    },
  };
}

/** The token requests the sandbox recorded since index `from`. */
export function recorded(f: Fixture, from = 0): Array<Record<string, unknown>> {
  return f.sandbox.stats.tokenRequests.slice(from);
}
