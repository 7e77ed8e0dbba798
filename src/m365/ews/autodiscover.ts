/**
 * Autodiscover for the EWS watcher: each mailbox's EWS URL, its GroupingInformation (for affinity
 * groups, facts §5.5) and its mailbox server (for `servers`).
 *
 * Strategy (facts §5.6): per mail domain, the candidates are tried in order with the domain's first
 * mailbox, SOAP before POX on each host:
 *   https://{domain}/autodiscover/autodiscover.svc, …/autodiscover.xml,
 *   https://autodiscover.{domain}/autodiscover/autodiscover.svc, …/autodiscover.xml,
 *   an unauthenticated GET of http://autodiscover.{domain}/autodiscover/autodiscover.xml expecting a
 *   302 to an https endpoint (POX there), then DNS SRV _autodiscover._tcp.{domain} (POX).
 * The first candidate that answers serves the whole domain: SOAP GetUserSettings takes up to 100
 * users per request, so 15,000 mailboxes cost about 150 requests. RedirectAddress / RedirectUrl
 * (SOAP) and redirectAddr / redirectUrl (POX) are followed once. A fixed `autodiscover.url`, or the
 * `candidates` hook (tests point it at loopback), replaces the list; an URL containing
 * `autodiscover.json` is Autodiscover v2 (URL only, no grouping).
 *
 * Results are cached in kv (`ad:<mailbox>`) for `cacheHours`, so a restart does not ask again.
 *
 * Limits: POX and JSON carry no GroupingInformation; the POX EXCH `Server` stands in for it. No
 * NTLM/Kerberos (the authorization header is whatever the caller supplies).
 */
import { resolveSrv as dnsResolveSrv } from 'node:dns/promises';
import { request, type Dispatcher } from '../../net/undici.ts';
import { MbError } from '../../errors/index.ts';
import type { KeyValue } from '../../store/index.ts';
import { buildXml, child, el, find, kids, NS, parseXml, textAt, tx, type XNode } from './xml.ts';

export type CandidateKind = 'soap' | 'pox' | 'json' | 'redirect' | 'srv';
export interface Candidate {
  kind: CandidateKind;
  url: string;
}

export interface AutodiscoverResult {
  ewsUrl: string;
  /** GroupingInformation (SOAP), else the POX EXCH server. */
  grouping?: string;
  /** Mailbox server (SOAP InternalMailboxServer, POX EXCH Server). */
  server?: string;
  /** Where the answer came from (for `mailbridge watch` and tests). */
  source: string;
}

export interface AutodiscoverDeps {
  agent: Dispatcher;
  authorization: (mailbox: string) => Promise<string>;
  kv: KeyValue;
  namespace: string;
  now: () => number;
  version: string;
  /** A fixed endpoint instead of the candidate list. */
  url?: string;
  /** The candidate list for a domain (default: facts §5.6 order). */
  candidates?: (domain: string) => Array<Candidate | string>;
  resolveSrv?: (name: string) => Promise<Array<{ name: string; port: number; priority: number; weight: number }>>;
  prefer: 'external' | 'internal';
  cacheHours: number;
  timeoutMs: number;
  signal: AbortSignal;
}

const SETTINGS = ['ExternalEwsUrl', 'InternalEwsUrl', 'GroupingInformation', 'InternalMailboxServer'];
const SOAP_BATCH = 100;

export function defaultCandidates(domain: string): Candidate[] {
  return [
    { kind: 'soap', url: `https://${domain}/autodiscover/autodiscover.svc` },
    { kind: 'pox', url: `https://${domain}/autodiscover/autodiscover.xml` },
    { kind: 'soap', url: `https://autodiscover.${domain}/autodiscover/autodiscover.svc` },
    { kind: 'pox', url: `https://autodiscover.${domain}/autodiscover/autodiscover.xml` },
    { kind: 'redirect', url: `http://autodiscover.${domain}/autodiscover/autodiscover.xml` },
    { kind: 'srv', url: `_autodiscover._tcp.${domain}` },
  ];
}

export function candidateOf(c: Candidate | string): Candidate {
  if (typeof c !== 'string') return c;
  if (/autodiscover\.json/i.test(c)) return { kind: 'json', url: c };
  if (/\.xml$/i.test(c)) return { kind: 'pox', url: c };
  return { kind: 'soap', url: c };
}

/** Autodiscovers every mailbox; a mailbox that cannot be found maps to an MbError. */
export async function autodiscoverAll(mailboxes: string[], deps: AutodiscoverDeps): Promise<Map<string, AutodiscoverResult | MbError>> {
  const out = new Map<string, AutodiscoverResult | MbError>();
  const todo: string[] = [];
  for (const m of mailboxes) {
    const cached = await deps.kv.get(deps.namespace, `ad:${m}`);
    if (cached) {
      const c = JSON.parse(cached) as AutodiscoverResult & { at: number };
      if (deps.now() - c.at < deps.cacheHours * 3_600_000) {
        out.set(m, { ewsUrl: c.ewsUrl, grouping: c.grouping, server: c.server, source: c.source });
        continue;
      }
    }
    todo.push(m);
  }
  const byDomain = new Map<string, string[]>();
  for (const m of todo) {
    const d = m.slice(m.lastIndexOf('@') + 1);
    byDomain.set(d, [...(byDomain.get(d) ?? []), m]);
  }
  await Promise.all(
    [...byDomain].map(async ([domain, list]) => {
      const results = await discoverDomain(domain, list, deps);
      for (const [m, r] of results) {
        out.set(m, r);
        if (!(r instanceof MbError)) await deps.kv.set(deps.namespace, `ad:${m}`, JSON.stringify({ ...r, at: deps.now() }));
      }
    }),
  );
  return out;
}

async function discoverDomain(domain: string, mailboxes: string[], deps: AutodiscoverDeps): Promise<Map<string, AutodiscoverResult | MbError>> {
  const out = new Map<string, AutodiscoverResult | MbError>();
  const list = deps.url ? [candidateOf(deps.url)] : (deps.candidates?.(domain) ?? defaultCandidates(domain)).map(candidateOf);
  const first = mailboxes[0]!;
  const tried: string[] = [];
  let endpoint: Candidate | undefined;
  for (const c of list) {
    deps.signal.throwIfAborted();
    try {
      const resolved = await resolveCandidate(c, deps);
      if (!resolved) continue;
      const r = await lookup(resolved, [first], deps);
      const hit = r.get(first);
      if (hit && !(hit instanceof Error)) {
        endpoint = resolved;
        out.set(first, hit);
        break;
      }
      tried.push(`${c.url}: ${hit instanceof Error ? hit.message : 'no answer'}`);
    } catch (err) {
      tried.push(`${c.url}: ${(err as Error).message}`);
    }
  }
  if (!endpoint) {
    const err = new MbError('MB_EWS_AUTODISCOVER_FAILED', { mailbox: first, domain, detail: tried.join('; ') || 'no candidate' });
    for (const m of mailboxes) out.set(m, err);
    return out;
  }
  const rest = mailboxes.slice(1);
  const batch = endpoint.kind === 'soap' ? SOAP_BATCH : 1;
  const chunks: string[][] = [];
  for (let i = 0; i < rest.length; i += batch) chunks.push(rest.slice(i, i + batch));
  // A few requests at a time per domain: autodiscover sits on the same CAS as EWS.
  let next = 0;
  const worker = async () => {
    while (next < chunks.length) {
      const chunk = chunks[next++]!;
      let r: Map<string, AutodiscoverResult | Error>;
      try {
        r = await lookup(endpoint, chunk, deps);
      } catch (err) {
        r = new Map(chunk.map((m) => [m, err as Error]));
      }
      for (const m of chunk) {
        const hit = r.get(m);
        out.set(m, hit && !(hit instanceof Error) ? hit : new MbError('MB_EWS_AUTODISCOVER_FAILED', { mailbox: m, domain, detail: `${endpoint.url}: ${hit?.message ?? 'no answer'}` }));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, chunks.length) }, worker));
  return out;
}

/** Redirect and SRV candidates become the POX endpoint they point at (or undefined). */
async function resolveCandidate(c: Candidate, deps: AutodiscoverDeps): Promise<Candidate | undefined> {
  if (c.kind === 'redirect') {
    const res = await request(c.url, { method: 'GET', dispatcher: deps.agent, signal: deps.signal, headersTimeout: deps.timeoutMs, bodyTimeout: deps.timeoutMs });
    // undici's request() does not follow redirects: the 302 itself is the answer.
    await res.body.dump();
    const loc = res.headers.location;
    const target = Array.isArray(loc) ? loc[0] : loc;
    // Only an https target is trusted with credentials (the GET itself went out without any).
    if (res.statusCode >= 300 && res.statusCode < 400 && target && /^https:/i.test(target)) return candidateOf(target);
    throw new Error(`HTTP ${res.statusCode}, no https redirect`);
  }
  if (c.kind === 'srv') {
    const records = await (deps.resolveSrv ?? dnsResolveSrv)(c.url);
    const best = [...records].sort((a, b) => a.priority - b.priority || b.weight - a.weight)[0];
    if (!best) return undefined;
    return { kind: 'pox', url: `https://${best.name}${best.port === 443 ? '' : `:${best.port}`}/autodiscover/autodiscover.xml` };
  }
  return c;
}

async function lookup(c: Candidate, mailboxes: string[], deps: AutodiscoverDeps, hops = 0): Promise<Map<string, AutodiscoverResult | Error>> {
  if (c.kind === 'soap') return soapLookup(c.url, mailboxes, deps, hops);
  const out = new Map<string, AutodiscoverResult | Error>();
  for (const m of mailboxes) out.set(m, await (c.kind === 'json' ? jsonLookup(c.url, m, deps) : poxLookup(c.url, m, deps, hops)).catch((e: Error) => e));
  return out;
}

async function post(url: string, mailbox: string, body: string, deps: AutodiscoverDeps): Promise<XNode> {
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'text/xml; charset=utf-8', authorization: await deps.authorization(mailbox), 'x-anchormailbox': mailbox },
    body,
    dispatcher: deps.agent,
    signal: deps.signal,
    headersTimeout: deps.timeoutMs,
    bodyTimeout: deps.timeoutMs,
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
  return parseXml(text);
}

async function soapLookup(url: string, mailboxes: string[], deps: AutodiscoverDeps, hops: number): Promise<Map<string, AutodiscoverResult | Error>> {
  const body = buildXml(
    el('soap:Envelope', { 'xmlns:soap': NS.soap, 'xmlns:a': NS.a, 'xmlns:wsa': NS.wsa, 'xmlns:xsi': NS.xsi }, [
      el('soap:Header', [
        tx('a:RequestedServerVersion', deps.version.startsWith('Exchange2010') ? 'Exchange2010' : 'Exchange2013'),
        tx('wsa:Action', 'http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings'),
        tx('wsa:To', url),
      ]),
      el('soap:Body', [
        el('a:GetUserSettingsRequestMessage', [
          el('a:Request', [
            el('a:Users', mailboxes.map((m) => el('a:User', [tx('a:Mailbox', m)]))),
            el('a:RequestedSettings', SETTINGS.map((s) => tx('a:Setting', s))),
          ]),
        ]),
      ]),
    ]),
  );
  const root = await post(url, mailboxes[0]!, body, deps);
  const response = find(root, 'Response');
  const top = textAt(response, 'ErrorCode');
  if (top && top !== 'NoError') throw new Error(`${top}: ${textAt(response, 'ErrorMessage') ?? ''}`.trim());
  const users = kids(child(response, 'UserResponses'), 'UserResponse');
  const out = new Map<string, AutodiscoverResult | Error>();
  for (const [i, u] of users.entries()) {
    const m = mailboxes[i];
    if (!m) break;
    const code = textAt(u, 'ErrorCode') ?? 'NoError';
    const target = textAt(u, 'RedirectTarget');
    if ((code === 'RedirectAddress' || code === 'RedirectUrl') && target && hops < 1) {
      const r = code === 'RedirectUrl' ? await soapLookup(target, [m], deps, hops + 1) : await soapLookup(url, [target], deps, hops + 1).then((x) => new Map([[m, x.get(target)!]]));
      out.set(m, r.get(m) ?? new Error('redirect without answer'));
      continue;
    }
    if (code !== 'NoError') {
      out.set(m, new Error(`${code}: ${textAt(u, 'ErrorMessage') ?? ''}`.trim()));
      continue;
    }
    const settings = new Map(kids(child(u, 'UserSettings'), 'UserSetting').map((s) => [textAt(s, 'Name') ?? '', textAt(s, 'Value') ?? '']));
    const ext = settings.get('ExternalEwsUrl');
    const int = settings.get('InternalEwsUrl');
    const ewsUrl = deps.prefer === 'internal' ? int || ext : ext || int;
    if (!ewsUrl) {
      out.set(m, new Error('no EWS URL in the user settings'));
      continue;
    }
    const r: AutodiscoverResult = { ewsUrl, source: url };
    if (settings.get('GroupingInformation')) r.grouping = settings.get('GroupingInformation');
    if (settings.get('InternalMailboxServer')) r.server = settings.get('InternalMailboxServer');
    out.set(m, r);
  }
  return out;
}

async function poxLookup(url: string, mailbox: string, deps: AutodiscoverDeps, hops: number): Promise<AutodiscoverResult> {
  const body = buildXml(
    el('Autodiscover', { xmlns: NS.poxRequest }, [
      el('Request', [tx('EMailAddress', mailbox), tx('AcceptableResponseSchema', NS.poxResponseSchema)]),
    ]),
  );
  const root = await post(url, mailbox, body, deps);
  const response = child(root, 'Response');
  const error = child(response, 'Error');
  if (error) throw new Error(`${textAt(error, 'ErrorCode') ?? 'Error'}: ${textAt(error, 'Message') ?? ''}`.trim());
  const account = child(response, 'Account');
  const action = textAt(account, 'Action');
  if (action === 'redirectAddr' && hops < 1) return poxLookup(url, textAt(account, 'RedirectAddr') ?? mailbox, deps, hops + 1);
  if (action === 'redirectUrl' && hops < 1) return poxLookup(textAt(account, 'RedirectUrl') ?? url, mailbox, deps, hops + 1);
  const protocols = kids(account, 'Protocol');
  const byType = (t: string) => protocols.find((p) => textAt(p, 'Type') === t);
  const exch = byType('EXCH');
  const expr = byType('EXPR');
  const urlOf = (p: XNode | undefined) => textAt(p, 'EwsUrl') || textAt(p, 'ASUrl');
  const ewsUrl = deps.prefer === 'internal' ? urlOf(exch) || urlOf(expr) : urlOf(expr) || urlOf(exch);
  if (!ewsUrl) throw new Error('no EWS URL (ASUrl/EwsUrl) in the POX answer');
  const r: AutodiscoverResult = { ewsUrl, source: url };
  const server = textAt(exch, 'Server');
  if (server) {
    r.server = server;
    r.grouping = server;
  }
  return r;
}

async function jsonLookup(base: string, mailbox: string, deps: AutodiscoverDeps): Promise<AutodiscoverResult> {
  const url = `${base.replace(/\/+$/, '')}/${encodeURIComponent(mailbox)}?Protocol=EWS`;
  const res = await request(url, { method: 'GET', dispatcher: deps.agent, signal: deps.signal, headersTimeout: deps.timeoutMs, bodyTimeout: deps.timeoutMs });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
  const j = JSON.parse(text) as { Protocol?: string; Url?: string };
  if (!j.Url) throw new Error('no Url in the autodiscover.json answer');
  return { ewsUrl: j.Url, source: base };
}
