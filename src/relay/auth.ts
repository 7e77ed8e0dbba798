/**
 * Relay logins: relay users from the config (scrypt hashes, optional per-user address restriction).
 * The back-off against password guessing, per client address in a rolling window (each failed
 * login delays its reply; after `maxFailures` failures the address is refused for a while: 454
 * 4.7.0, the failing connection itself closed with 421), is util/login-guard.ts, shared with the
 * admin console's sign-in.
 */
import { MbError } from '../errors/index.ts';
import type { RelayUserConfig } from './config.ts';
import { parsePasswordHash, verifyNothing, verifyPassword, type ParsedHash } from '../util/password.ts';
import { AddressList, SenderRules } from './policy.ts';

export interface RelayUser {
  name: string;
  senders: SenderRules;
}

export class RelayUsers {
  private readonly users = new Map<string, { hash: ParsedHash; senders: SenderRules; ips?: AddressList; disabled: boolean }>();

  constructor(config: Record<string, RelayUserConfig>) {
    for (const [name, u] of Object.entries(config)) {
      const hash = parsePasswordHash(u.passwordHash);
      if (!hash) throw new MbError('MB_RELAY_PASSWORD_HASH_INVALID', { user: name });
      const entry: { hash: ParsedHash; senders: SenderRules; ips?: AddressList; disabled: boolean } = {
        hash,
        senders: new SenderRules(u.allowedSenders),
        disabled: u.disabled,
      };
      if (u.allowedIps) entry.ips = new AddressList(u.allowedIps);
      this.users.set(name, entry);
    }
  }

  get size(): number {
    return this.users.size;
  }

  /** The user, or why not (for the log only; the client always hears the same 535). */
  async verify(name: string, password: string, ip: string): Promise<{ user: RelayUser } | { reason: string }> {
    const u = this.users.get(name);
    if (!u) {
      await verifyNothing(password);
      return { reason: 'unknown user' };
    }
    const ok = await verifyPassword(password, u.hash);
    if (!ok) return { reason: 'wrong password' };
    if (u.disabled) return { reason: 'user disabled' };
    if (u.ips && !u.ips.has(ip)) return { reason: 'login not allowed from this address (allowedIps)' };
    return { user: { name, senders: u.senders } };
  }
}
