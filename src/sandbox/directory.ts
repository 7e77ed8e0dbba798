/**
 * The sandbox directory: the live, mutable state behind sandbox.yaml. Both emulators (Entra ID and
 * Exchange Online) hold the same instance, so run-time changes (grant a role, add a mailbox,
 * disable SMTP AUTH) take effect for the next request everywhere.
 *
 * Synthetic mailboxes (src/sandbox/feed/synthetic.ts, thousands for scale tests) are registered
 * with `addSynthetic` and answered from their number, never stored in `data`: sandbox.yaml stays
 * small and is not rewritten with them.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { firstPartyApp } from './entra/first-party.ts';
import { sandboxFileSchema, type SandboxApp, type SandboxFile, type SandboxMailbox, type SandboxTenant } from './model.ts';

/** A block of synthetic mailboxes in one tenant, answered by computation (src/sandbox/feed/synthetic.ts). */
export interface SyntheticDirectory {
  domain: string;
  has(address: string): boolean;
  /** Object id of the mailbox's user. */
  userId(address: string): string | undefined;
  addressOfUserId(id: string): string | undefined;
  displayName(address: string): string;
}

export class SandboxDirectory {
  readonly data: SandboxFile;
  private readonly synthetic: Array<{ tenantId: string; source: SyntheticDirectory }> = [];

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

  /** An app of the tenant, or one of Microsoft's first-party clients every tenant has (entra/first-party.ts). */
  app(tenant: SandboxTenant, appId: string): SandboxApp | undefined {
    return tenant.apps.find((a) => a.appId.toLowerCase() === appId.toLowerCase()) ?? firstPartyApp(tenant, appId);
  }

  /** The tenant that owns a mail address, by domain. */
  tenantForAddress(address: string): SandboxTenant | undefined {
    const domain = address.split('@')[1]?.toLowerCase();
    if (!domain) return undefined;
    const tenant = this.data.tenants.find((t) => t.domains.some((d) => d.toLowerCase() === domain));
    if (tenant) return tenant;
    const block = this.synthetic.find((s) => s.source.domain.toLowerCase() === domain);
    return block ? this.data.tenants.find((t) => t.id === block.tenantId) : undefined;
  }

  mailbox(address: string): { tenant: SandboxTenant; mailbox: SandboxMailbox } | undefined {
    const tenant = this.tenantForAddress(address);
    if (!tenant) return undefined;
    const mailbox = tenant.exchange.mailboxes.find((m) => m.address.toLowerCase() === address.toLowerCase()) ?? this.syntheticMailbox(tenant, address);
    return mailbox ? { tenant, mailbox } : undefined;
  }

  /** Adds a block of synthetic mailboxes to a tenant (not written to sandbox.yaml). */
  addSynthetic(tenantId: string, source: SyntheticDirectory): void {
    if (!this.data.tenants.some((t) => t.id === tenantId)) throw new Error(`no tenant ${tenantId} for the synthetic mailboxes`);
    this.synthetic.push({ tenantId, source });
  }

  /** A synthetic mailbox of this tenant as a directory entry (made on the fly), or undefined. */
  syntheticMailbox(tenant: SandboxTenant, address: string): SandboxMailbox | undefined {
    const block = this.synthetic.find((s) => s.tenantId === tenant.id && s.source.has(address));
    if (!block) return undefined;
    return {
      address: address.toLowerCase(),
      type: 'user',
      displayName: block.source.displayName(address),
      smtpClientAuthenticationDisabled: null,
      imapEnabled: true,
      fullAccess: [],
      sendAs: [],
    };
  }

  /** The address of a synthetic mailbox by its user's object id. */
  syntheticAddressOfUserId(tenant: SandboxTenant, id: string): string | undefined {
    for (const s of this.synthetic) {
      if (s.tenantId !== tenant.id) continue;
      const address = s.source.addressOfUserId(id);
      if (address) return address;
    }
    return undefined;
  }

  /**
   * The object id of the user behind a mailbox: the directory user with that UPN, a synthetic
   * mailbox's derived id, or for a mailbox without a user (shared) a stable id derived from the
   * address (Exchange gives shared mailboxes a disabled user object of their own).
   */
  userObjectId(tenant: SandboxTenant, address: string): string {
    const user = tenant.users.find((u) => u.upn.toLowerCase() === address.toLowerCase());
    if (user) return user.objectId;
    for (const s of this.synthetic) {
      const id = s.tenantId === tenant.id ? s.source.userId(address) : undefined;
      if (id) return id;
    }
    const h = createHash('sha1').update(`mailbox:${address.toLowerCase()}`).digest('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
  }
}
