/**
 * An empty sandbox tenant (one Global Administrator, one shared mailbox, no app) and the
 * mailbridge.yaml an admin has before setup (`clientId: new`, an IMAP and a Graph connector), for the
 * tests that take a gateway from nothing to green checks: the admin API's setup runs and the
 * console's wizard.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { openSecretBox } from '../../src/config/secrets.ts';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';

export const EMPTY_TENANT = { id: randomUUID(), admin: 'admin@contoso.test', scanner: 'scanner@contoso.test' };

/** Starts the sandbox in dir/sandbox with the empty tenant; new grants reach tokens at once. */
export async function startEmptyTenant(dir: string): Promise<Sandbox> {
  // Dovecot's users pass through the folder to the sandbox's mail.
  chmodSync(dir, 0o755);
  const tenantFile = join(dir, 'tenant.yaml');
  writeFileSync(
    tenantFile,
    stringify({
      tenants: [
        {
          id: EMPTY_TENANT.id,
          name: 'Contoso (empty)',
          domains: ['contoso.test'],
          cloud: 'global',
          exchangeOnline: true,
          apps: [],
          users: [{ objectId: randomUUID(), upn: EMPTY_TENANT.admin, displayName: 'Admin', password: 'sandbox', roles: ['Global Administrator'] }],
          exchange: { servicePrincipals: [], mailboxes: [{ address: EMPTY_TENANT.scanner, type: 'shared' }] },
        },
      ],
    }),
  );
  return startSandbox({ dir: join(dir, 'sandbox'), file: tenantFile, propagationMs: 0 });
}

/**
 * Writes dir/mailbridge.yaml as an admin has it before setup: the tenant, what mailbridge should do
 * (an IMAP connector and one through the sandbox's Graph, which setup then talks to as well), and
 * the given API keys, sealed with dir/mailbridge.key. Returns the file's path.
 */
export async function writeConfigBeforeSetup(dir: string, sandbox: Sandbox, keys: Record<string, { key: string; scopes: string[] }>): Promise<string> {
  const box = await openSecretBox({ keyFile: join(dir, 'mailbridge.key'), env: {} });
  const file = join(dir, 'mailbridge.yaml');
  writeFileSync(
    file,
    stringify({
      store: { driver: 'sqlite', path: join(dir, 'mailbridge.db') },
      server: { port: 0 },
      connections: {
        contoso: { tenantId: EMPTY_TENANT.id, clientId: 'new', tokenEndpoint: `https://127.0.0.1:${sandbox.ports.entra}/#TenantID#/oauth2/v2.0/token`, caFile: sandbox.caFile },
      },
      connectors: {
        scans: {
          connection: 'contoso',
          source: { kind: 'imap', host: '127.0.0.1', port: sandbox.imap.port, caFile: sandbox.caFile, servername: 'localhost' },
          mailboxes: [EMPTY_TENANT.scanner],
          destination: { kind: 'maildir', path: join(dir, 'maildir') },
        },
        invoices: {
          connection: 'contoso',
          source: { kind: 'graph', baseUrl: `https://127.0.0.1:${sandbox.ports.graph}/v1.0` },
          mailboxes: [EMPTY_TENANT.scanner],
          destination: { kind: 'maildir', path: join(dir, 'invoices') },
        },
      },
      api: { keys: Object.fromEntries(Object.entries(keys).map(([name, k]) => [name, { key: box.seal(k.key), scopes: k.scopes }])) },
    }),
    { mode: 0o600 },
  );
  return file;
}
