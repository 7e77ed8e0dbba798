/**
 * Egress policy for addresses that callers choose: webhook URLs and Web Push endpoints come from
 * whoever holds an API key (or a browser's push subscription), so without a policy the gateway's
 * signed POSTs could be pointed at 169.254.169.254, a database on 10.0.0.5, localhost, or the
 * gateway's own API.
 *
 * Refused (unless allow-listed): loopback (127.0.0.0/8, ::1), private (RFC 1918, 100.64.0.0/10
 * shared address space, fc00::/7), link-local (169.254.0.0/16, fe80::/10), unspecified (0.0.0.0/8,
 * ::), multicast and broadcast (224.0.0.0/4, 240.0.0.0/4, ff00::/8), IPv4 inside IPv6 (mapped
 * ::ffff:0:0/96, compatible ::/96, NAT64 64:ff9b::/96 — each can carry any of the above), user
 * names or passwords in the URL, and the gateway's own listeners (host and port), even when the
 * allow list covers their address.
 *
 * Strategy: checked twice. When a subscription is made, on the URL and on every address its name
 * resolves to now (a name that does not resolve yet is accepted: the second check decides). And
 * at every connection, on the address actually connected to: the dispatcher's `connect.lookup`
 * resolves the name and refuses the connection if any address is internal, so a name that
 * resolved to a public address at subscription time and to 127.0.0.1 later (DNS rebinding) never
 * reaches 127.0.0.1. Callers do not follow redirects (a 3xx is an answer, not a new target).
 * Decimal (2130706433), hex (0x7f000001) and short forms are normalised by the WHATWG URL parser
 * before any check, so they are judged as the address they are.
 *
 * The allow list (`notify.egress.allow`) names receivers on an internal network: CIDRs
 * (10.20.0.0/16, fd00:1::/64) or exact host names (hooks.intern.contoso.com, whose addresses are
 * then not judged).
 *
 * Limits: behind an outbound proxy the proxy resolves the name; only the subscription-time check
 * and the literal-address check apply then. A listener on 0.0.0.0 is recognised by the host's
 * interface addresses, not by an address a NAT in front of it may have.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Agent, buildConnector, fetch as undiciFetch, type Connector, type ConnectorOptions, type Dispatcher, type RequestInit, type Response } from './undici.ts';
import { MbError } from '../errors/index.ts';
import { CIDR_RE } from './allow-entry.ts';

export type Lookup = (hostname: string) => Promise<LookupAddress[]>;

export interface EgressOptions {
  /** CIDRs or exact host names that may be reached although internal (notify.egress.allow). */
  allow?: readonly string[];
  /** The gateway's own listeners; 0.0.0.0 or :: stands for every local address. */
  own?: ReadonlyArray<{ host: string; port: number }>;
  /** Name resolution (tests inject one); default: the system resolver, every address. */
  lookup?: Lookup;
  /** The host's own addresses, for listeners on 0.0.0.0 (default: os.networkInterfaces()). */
  localAddresses?: () => string[];
}

/** Internal ranges: [network, prefix] per family, with the name shown to the admin. */
const V4: Array<[string, number]> = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
];
const V6: Array<[string, number]> = [
  ['::', 128],
  ['::1', 128],
  ['::', 96],
  ['::ffff:0:0', 96],
  ['64:ff9b::', 96],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
];

/** How long the subscription-time check waits for a name to resolve. */
const LOOKUP_TIMEOUT_MS = 5000;

function rangeOf(address: string, ranges: Array<[string, number]>, type: 'ipv4' | 'ipv6'): string | undefined {
  // Most specific first, so ::1 is named as itself rather than as part of ::/96.
  for (const [net, bits] of [...ranges].sort((a, b) => b[1] - a[1])) {
    const list = new BlockList();
    list.addSubnet(net, bits, type);
    if (list.check(address, type)) return `${net}/${bits}`;
  }
  return undefined;
}

/** The internal range an IP address lies in, or undefined for a public address. */
export function internalRange(address: string): string | undefined {
  const family = isIP(address);
  if (family === 4) return rangeOf(address, V4, 'ipv4');
  if (family === 6) return rangeOf(address.toLowerCase(), V6, 'ipv6');
  return undefined;
}

const systemLookup: Lookup = (hostname) =>
  new Promise((resolve, reject) => dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))));

function bare(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

function defaultPort(u: URL): number {
  return u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
}

export class EgressPolicy {
  private readonly allowHosts: Set<string>;
  private readonly allowNets = new BlockList();
  private readonly own: ReadonlyArray<{ host: string; port: number }>;
  private readonly resolve: Lookup;
  private readonly local: () => string[];
  private agentInstance?: Agent;

  constructor(o: EgressOptions = {}) {
    this.allowHosts = new Set();
    for (const entry of o.allow ?? []) {
      const m = CIDR_RE.exec(entry);
      if (m && isIP(m[1]!)) this.allowNets.addSubnet(m[1]!, Number(m[2]), isIP(m[1]!) === 4 ? 'ipv4' : 'ipv6');
      else if (isIP(entry)) this.allowNets.addAddress(entry, isIP(entry) === 4 ? 'ipv4' : 'ipv6');
      else this.allowHosts.add(entry.toLowerCase());
    }
    this.own = o.own ?? [];
    this.resolve = o.lookup ?? systemLookup;
    this.local = o.localAddresses ?? (() => Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address)));
  }

  /** Throws when `address`:`port` is one of the gateway's own listeners (allow list or not). */
  checkOwn(address: string, target: string, port: number): void {
    const a = bare(address).toLowerCase();
    for (const l of this.own) {
      const h = bare(l.host).toLowerCase();
      const anyLocal = h === '0.0.0.0' || h === '::';
      if (l.port === port && (h === a || (anyLocal && (internalRange(a) !== undefined || this.local().includes(a))))) {
        throw new MbError('MB_NOTIFY_EGRESS_OWN_LISTENER', { target, listener: `${l.host}:${l.port}` });
      }
    }
  }

  /** Throws the MbError for an address this policy refuses for `target` on `port`. */
  checkAddress(address: string, target: string, port: number): void {
    this.checkOwn(address, target, port);
    const a = bare(address).toLowerCase();
    const range = internalRange(a);
    if (range === undefined) return;
    const type = isIP(a) === 4 ? 'ipv4' : 'ipv6';
    if (this.allowNets.check(a, type)) return;
    throw new MbError('MB_NOTIFY_EGRESS_REFUSED', { target, address: a, range });
  }

  /** The static part: scheme, credentials, own listener by name, a literal address. Returns the parsed URL. */
  checkUrlStatic(url: string): URL {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new MbError('MB_NOTIFY_SUBSCRIPTION_INVALID', { detail: 'sink: not a URL' });
    }
    const target = `${u.protocol}//${u.host}`;
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new MbError('MB_NOTIFY_SUBSCRIPTION_INVALID', { detail: `sink: ${u.protocol} URLs are not delivered to` });
    if (u.username || u.password) throw new MbError('MB_NOTIFY_EGRESS_CREDENTIALS', { target });
    const host = bare(u.hostname).toLowerCase();
    const port = defaultPort(u);
    for (const l of this.own) {
      if (l.port === port && bare(l.host).toLowerCase() === host) throw new MbError('MB_NOTIFY_EGRESS_OWN_LISTENER', { target, listener: `${l.host}:${l.port}` });
    }
    if (isIP(host)) this.checkAddress(host, target, port);
    return u;
  }

  /**
   * The check at subscription time: the URL, then every address its name resolves to now. A name
   * that does not resolve (yet) passes; the connection-time check decides.
   */
  async check(url: string): Promise<void> {
    const u = this.checkUrlStatic(url);
    const host = bare(u.hostname).toLowerCase();
    if (isIP(host)) return;
    let addresses: LookupAddress[];
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      // A resolver that hangs must not hang the API call; the connection-time check still applies.
      addresses = await Promise.race([this.resolve(host), new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('lookup timed out')), LOOKUP_TIMEOUT_MS)))]);
    } catch {
      return;
    } finally {
      clearTimeout(timer);
    }
    const target = `${u.protocol}//${u.host}`;
    for (const a of addresses) {
      if (this.allowHosts.has(host)) this.checkOwn(a.address, target, defaultPort(u));
      else this.checkAddress(a.address, target, defaultPort(u));
    }
  }

  /**
   * An undici dispatcher whose every connection is judged on the addresses the name resolves to
   * at that moment (a custom `lookup` for net/tls.connect, one connector per port so the
   * own-listener check knows the port), so a rebound name is refused at connect time.
   */
  agent(): Agent {
    const connectors = new Map<number, Connector>();
    this.agentInstance ??= new Agent({
      connect: (opts, callback) => {
        const port = Number(opts.port) || (opts.protocol === 'https:' ? 443 : 80);
        let connector = connectors.get(port);
        if (!connector) {
          connector = buildConnector({ lookup: this.lookupFor(port) } as ConnectorOptions);
          connectors.set(port, connector);
        }
        connector(opts, callback);
      },
    });
    return this.agentInstance;
  }

  /** A dns.lookup-shaped function for net.connect that refuses internal addresses. */
  private lookupFor(port: number) {
    return (hostname: string, options: { all?: boolean }, callback: (err: Error | null, address: string | LookupAddress[], family?: number) => void): void => {
      const host = bare(hostname).toLowerCase();
      this.resolve(host).then(
        (addresses) => {
          try {
            if (addresses.length === 0) throw new MbError('MB_NOTIFY_UNREACHABLE', { target: host, detail: 'the name has no address' });
            for (const a of addresses) {
              if (this.allowHosts.has(host)) this.checkOwn(a.address, host, port);
              else this.checkAddress(a.address, host, port);
            }
          } catch (err) {
            callback(err as Error, '');
            return;
          }
          if (options.all) callback(null, addresses);
          else callback(null, addresses[0]!.address, addresses[0]!.family);
        },
        (err: Error) => callback(err, ''),
      );
    };
  }

  /**
   * POSTs (or whatever `init` says) under the policy: the URL's static check, then a connection
   * through `agent()` (or `via`, an outbound proxy's dispatcher, which resolves the name itself),
   * redirects never followed. A refusal is thrown as its MbError, not as a network error.
   */
  async fetch(url: string, init: Omit<RequestInit, 'dispatcher' | 'redirect'>, via?: Dispatcher): Promise<Response> {
    this.checkUrlStatic(url);
    try {
      return await undiciFetch(url, { ...init, redirect: 'manual', dispatcher: via ?? this.agent() });
    } catch (err) {
      throw refusal(err) ?? err;
    }
  }

  async close(): Promise<void> {
    await this.agentInstance?.close().catch(() => undefined);
  }
}

/** The policy's MbError somewhere in an error's cause chain (undici wraps connect errors). */
function refusal(err: unknown): MbError | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof MbError && e.code.startsWith('MB_NOTIFY_EGRESS_')) return e;
  }
  return undefined;
}
