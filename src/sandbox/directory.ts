/**
 * The sandbox directory: the live, mutable state behind sandbox.yaml. Both emulators (Entra ID and
 * Exchange Online) hold the same instance, so run-time changes (grant a role, add a mailbox,
 * disable SMTP AUTH) take effect for the next request everywhere.
 */
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { sandboxFileSchema, type SandboxApp, type SandboxFile, type SandboxMailbox, type SandboxTenant } from './model.ts';

export class SandboxDirectory {
  readonly data: SandboxFile;

  constructor(data: unknown) {
    this.data = sandboxFileSchema.parse(data);
  }

  static async fromFile(path: string): Promise<SandboxDirectory> {
    return new SandboxDirectory(parse(await readFile(path, 'utf8')));
  }

  /** Tenant by GUID or by one of its domains (Entra accepts both in the URL path). */
  tenant(idOrDomain: string): SandboxTenant | undefined {
    const key = idOrDomain.toLowerCase();
    return this.data.tenants.find((t) => t.id.toLowerCase() === key || t.domains.some((d) => d.toLowerCase() === key));
  }

  app(tenant: SandboxTenant, appId: string): SandboxApp | undefined {
    return tenant.apps.find((a) => a.appId.toLowerCase() === appId.toLowerCase());
  }

  /** The tenant that owns a mail address, by domain. */
  tenantForAddress(address: string): SandboxTenant | undefined {
    const domain = address.split('@')[1]?.toLowerCase();
    return domain ? this.data.tenants.find((t) => t.domains.some((d) => d.toLowerCase() === domain)) : undefined;
  }

  mailbox(address: string): { tenant: SandboxTenant; mailbox: SandboxMailbox } | undefined {
    const tenant = this.tenantForAddress(address);
    const mailbox = tenant?.exchange.mailboxes.find((m) => m.address.toLowerCase() === address.toLowerCase());
    return tenant && mailbox ? { tenant, mailbox } : undefined;
  }
}
