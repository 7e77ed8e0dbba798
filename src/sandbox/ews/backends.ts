/**
 * Backend mailbox servers and request routing, as a Client Access front routes EWS (facts §5.5):
 * every mailbox lives on one backend (a stable hash of its address over the configured servers), a
 * subscription lives on the backend its Subscribe request was routed to, and a request is routed
 *   1. by `X-BackEndOverrideCookie` when `X-PreferServerAffinity: true` is sent with it,
 *   2. else by `X-AnchorMailbox` (the anchor's backend),
 *   3. else to any backend (round robin, as a load balancer without a routing hint would).
 * So a client that neither anchors nor sends the cookie sees its GetStreamingEvents land on another
 * backend every other time and gets ErrorSubscriptionNotFound, which is how Exchange fails.
 *
 * Also the server's identity (ServerVersionInfo, CasVersion) for the profiles the sandbox presents:
 * Exchange Server 2016 / 2019 on-premises, or Exchange Online. Build numbers are those of late
 * cumulative updates; the `Version` strings are recalled from real responses [APPROX].
 */
import { createHash, randomBytes } from 'node:crypto';

export type EwsProfileName = 'exchange2016' | 'exchange2019' | 'online';

export interface EwsProfile {
  name: EwsProfileName;
  online: boolean;
  major: number;
  minor: number;
  build: number;
  revision: number;
  /** ServerVersionInfo Version attribute. */
  version: string;
  /** Autodiscover CasVersion (e.g. 15.01.2507.006). */
  casVersion: string;
  /** EwsSupportedSchemas. */
  schemas: string;
  defaultBackends: string[];
}

const ONPREM_SCHEMAS = 'Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, Exchange2013, Exchange2013_SP1, Exchange2015, Exchange2016';

export const PROFILES: Record<EwsProfileName, EwsProfile> = {
  exchange2016: {
    name: 'exchange2016',
    online: false,
    major: 15,
    minor: 1,
    build: 2507,
    revision: 6,
    version: 'V2017_07_11',
    casVersion: '15.01.2507.006',
    schemas: ONPREM_SCHEMAS,
    defaultBackends: ['EXMBX01.contoso.local', 'EXMBX02.contoso.local'],
  },
  exchange2019: {
    name: 'exchange2019',
    online: false,
    major: 15,
    minor: 2,
    build: 1118,
    revision: 7,
    version: 'V2017_07_11',
    casVersion: '15.02.1118.007',
    schemas: ONPREM_SCHEMAS,
    defaultBackends: ['EXMBX01.contoso.local', 'EXMBX02.contoso.local'],
  },
  online: {
    name: 'online',
    online: true,
    major: 15,
    minor: 20,
    build: 8005,
    revision: 20,
    version: 'V2018_01_08',
    casVersion: '15.20.8005.020',
    schemas: ONPREM_SCHEMAS,
    defaultBackends: ['BN1PR03MB202.namprd03.prod.outlook.com', 'CO1PR06MB222.namprd06.prod.outlook.com'],
  },
};

export const OVERRIDE_COOKIE = 'X-BackEndOverrideCookie';

export class Backends {
  readonly servers: string[];
  #rr = 0;

  constructor(servers: string[]) {
    if (servers.length === 0) throw new Error('EWS sandbox: at least one backend server');
    this.servers = servers;
  }

  /** The mailbox server of an address (stable across restarts). */
  of(address: string): string {
    const h = createHash('sha256').update(address.toLowerCase()).digest().readUInt32LE(0);
    return this.servers[h % this.servers.length]!;
  }

  /** GroupingInformation for Autodiscover: one group per backend (its site). */
  group(server: string): string {
    return `SITE-${String.fromCharCode(65 + this.servers.indexOf(server))}`;
  }

  /** The value after `X-BackEndOverrideCookie=`: FQDN~number, as Exchange Online sets it. */
  cookieValue(server: string): string {
    return `${server}~${createHash('sha256').update(server.toLowerCase()).digest().readUInt32LE(0) >>> 1}`;
  }

  fromCookie(value: string | undefined): string | undefined {
    if (!value) return undefined;
    const server = this.servers.find((s) => this.cookieValue(s).toLowerCase() === value.toLowerCase());
    return server;
  }

  /**
   * Where a request goes. `anchorKnown` says whether the anchor mailbox exists (an unknown anchor
   * routes like none).
   */
  route(headers: { preferAffinity: boolean; cookie?: string; anchor?: string; anchorKnown: boolean }): { server: string; by: 'cookie' | 'anchor' | 'any' } {
    if (headers.preferAffinity) {
      const s = this.fromCookie(headers.cookie);
      if (s) return { server: s, by: 'cookie' };
    }
    if (headers.anchor && headers.anchorKnown) return { server: this.of(headers.anchor), by: 'anchor' };
    const server = this.servers[this.#rr++ % this.servers.length]!;
    return { server, by: 'any' };
  }

  /** The Set-Cookie headers of the first affinity Subscribe (facts §5.5 step 3). */
  affinityCookies(server: string, anchor: string): string[] {
    const backEnd = Buffer.from(`${server}~${anchor.toLowerCase()}`, 'utf8').toString('base64');
    return [
      `${OVERRIDE_COOKIE}=${this.cookieValue(server)}; path=/; secure; HttpOnly`,
      `exchangecookie=${randomBytes(16).toString('hex')}; path=/`,
      `X-BackEndCookie=${anchor}=${backEnd}; path=/EWS; secure; HttpOnly`,
    ];
  }
}

/** Reads one cookie from a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim().toLowerCase() === name.toLowerCase()) return part.slice(i + 1).trim();
  }
  return undefined;
}
