/**
 * Who may relay, and as whom. A client is authorized either by logging in as a relay user (AUTH
 * PLAIN/LOGIN) or by connecting from an allowed network (CIDR, IPv4 and IPv6, via node:net
 * BlockList). Each user and each network lists the sender addresses (`name@domain`) or domains
 * (`@domain`) it may use in MAIL FROM. Anything else is refused: mailbridge is never an open relay.
 */
import { BlockList, isIP } from 'node:net';
import { domainToUnicode } from 'node:url';

/** `10.0.0.0/8`, `fd00::/8`, or a single address. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', prefixText, extra] = text.trim().split('/');
  if (extra !== undefined) return undefined;
  const v = isIP(address);
  if (v === 0) return undefined;
  const family = v === 4 ? 'ipv4' : 'ipv6';
  const max = v === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return undefined;
  return { address, prefix, family };
}

export class AddressList {
  private readonly list = new BlockList();
  readonly empty: boolean;

  constructor(cidrs: readonly string[]) {
    for (const c of cidrs) {
      const p = parseCidr(c);
      if (!p) throw new Error(`not a CIDR: ${c}`);
      this.list.addSubnet(p.address, p.prefix, p.family);
    }
    this.empty = cidrs.length === 0;
  }

  has(ip: string): boolean {
    const plain = ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
    const v = isIP(plain);
    if (v === 0) return false;
    return this.list.check(plain, v === 4 ? 'ipv4' : 'ipv6');
  }
}

/** A sender rule: an exact address, or a whole domain written `@domain`. */
export function isSenderPattern(text: string): boolean {
  return /^[^\s@]*@[^\s@]+\.[^\s@]+$/.test(text.trim()) || /^@[^\s@]+$/.test(text.trim());
}

/** Lower-case, with the domain in Unicode (smtp-server hands over IDN domains decoded). */
export function normalizeAddress(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return address.toLowerCase();
  const domain = address.slice(at + 1).toLowerCase();
  return `${address.slice(0, at).toLowerCase()}@${domainToUnicode(domain) || domain}`;
}

export class SenderRules {
  private readonly addresses = new Set<string>();
  private readonly domains = new Set<string>();
  readonly described: string;

  constructor(patterns: readonly string[]) {
    for (const raw of patterns) {
      const p = normalizeAddress(raw.trim());
      if (p.startsWith('@')) this.domains.add(p.slice(1));
      else this.addresses.add(p);
    }
    this.described = patterns.join(', ');
  }

  allows(sender: string): boolean {
    const s = normalizeAddress(sender);
    if (this.addresses.has(s)) return true;
    const at = s.lastIndexOf('@');
    return at > 0 && this.domains.has(s.slice(at + 1));
  }
}

/** Printable ASCII only (SMTPUTF8 is needed otherwise). */
export function isAscii(text: string): boolean {
  return /^[\x20-\x7e]*$/.test(text);
}
