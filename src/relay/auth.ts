/**
 * Relay logins: relay users from the config (scrypt hashes, optional per-user address restriction)
 * and the back-off against password guessing. Each failed login from an address delays its reply
 * (baseDelay, doubling, capped) and after `maxFailures` within `window` the address's logins are
 * refused for `lock` (454 4.7.0; the failing connection itself is closed with 421). The tracker
 * keeps at most MAX_TRACKED addresses, forgetting the oldest, so a scan from many addresses cannot
 * grow memory without bound.
 */
import { MbError } from '../errors/index.ts';
import type { Clock } from './clock.ts';
import type { RelayUserConfig } from './config.ts';
import { parsePasswordHash, verifyNothing, verifyPassword, type ParsedHash } from './password.ts';
import { AddressList, SenderRules } from './policy.ts';

const MAX_TRACKED = 10_000;

export interface BackoffOptions {
  maxFailures: number;
  windowMs: number;
  lockMs: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export class LoginGuard {
  private readonly entries = new Map<string, { failures: number[]; lockedUntil: number }>();
  private readonly o: BackoffOptions;
  private readonly clock: Clock;

  constructor(options: BackoffOptions, clock: Clock) {
    this.o = options;
    this.clock = clock;
  }

  /** Milliseconds this address's logins stay refused; 0 when it may try. */
  lockedFor(ip: string): number {
    const e = this.entries.get(ip);
    return e ? Math.max(0, e.lockedUntil - this.clock.now()) : 0;
  }

  /** Records a failure; returns how long to delay the reply and whether the address is now locked. */
  failure(ip: string): { delayMs: number; locked: boolean; failures: number } {
    const now = this.clock.now();
    const e = this.entries.get(ip) ?? { failures: [], lockedUntil: 0 };
    this.entries.delete(ip); // re-insert: Map order is age order for eviction
    e.failures = e.failures.filter((t) => t > now - this.o.windowMs);
    e.failures.push(now);
    const n = e.failures.length;
    const locked = n >= this.o.maxFailures;
    if (locked) {
      e.lockedUntil = now + this.o.lockMs;
      e.failures = [];
    }
    this.entries.set(ip, e);
    if (this.entries.size > MAX_TRACKED) this.entries.delete(this.entries.keys().next().value!);
    return { delayMs: Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** (n - 1)), locked, failures: n };
  }

  success(ip: string): void {
    const e = this.entries.get(ip);
    if (e && e.lockedUntil <= this.clock.now()) this.entries.delete(ip);
  }
}

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
