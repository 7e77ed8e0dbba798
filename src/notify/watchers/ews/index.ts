/**
 * The EWS watcher: new mail, read-state changes and deletions of on-premises Exchange (2013–2019,
 * and Exchange Online until EWS is retired there) as notify events, over EWS streaming
 * notifications (default) or push notifications.
 *
 * What it does
 * - Finds each mailbox's EWS URL (given as `url`, else by autodiscover: autodiscover.ts), keeps
 *   only mailboxes on the listed `servers` when set, and warns once (MB_EWS_EXCHANGE_ONLINE_RETIRING)
 *   when the target is Exchange Online.
 * - Streaming: groups mailboxes by EWS URL + GroupingInformation, at most 200 per group (one
 *   GetStreamingEvents connection each, with affinity to one backend): streaming.ts.
 * - Push: one push subscription per mailbox, called back on the inbound listener: push.ts.
 * - Turns EWS notifications into events, and catches up with SyncFolderItems after every
 *   (re)connect so nothing is lost: mailbox.ts. SOAP in soap.ts, HTTP in client.ts.
 *
 * Scale: 15,000 mailboxes = 75 streaming connections. Per mailbox it keeps a few short strings
 * (address, subscription id, folder ids) and its status; cursors live in kv. One undici Agent serves
 * every request. Subscribe and catch-up at start run through one limiter (`subscribeConcurrency`),
 * so a large start does not flood Exchange; live notifications bypass it.
 *
 * App-only access: `impersonation` (default on) adds the ExchangeImpersonation SOAP header
 * (SmtpAddress) and X-AnchorMailbox per mailbox; turn it off for delegated tokens or an account
 * with FullAccess (the folders then name the mailbox).
 */
import { readFileSync } from 'node:fs';
import { MbError } from '../../../errors/index.ts';
import { registerSecret } from '../../../log/redact.ts';
import type { WatchGroupConfig } from '../config.ts';
import type { MailboxStatus, Watcher, WatcherContext, WatchedMailbox } from '../types.ts';
import type { WatcherPlugin } from '../plugin.ts';
import { autodiscoverAll, type Candidate } from '../../../m365/ews/autodiscover.ts';
import { EwsClient, ntlmCredentials, type NtlmCredentials } from '../../../m365/ews/client.ts';
import { KV_NAMESPACE, Member, safeHost, type Core } from './mailbox.ts';
import { PushWatch } from './push.ts';
import type { EwsWatchOptions } from './config.ts';
import { distinguishedFolder, isExchangeOnlineVersion } from '../../../m365/ews/soap.ts';
import { StreamGroup, type Limiter } from './streaming.ts';
import type { ProxySettings } from '../../../net/proxy.ts';

export { ewsWatchSchema, EWS_VERSIONS, type EwsWatchOptions } from './config.ts';

/** Test and tuning hooks (not configuration). */
export interface EwsWatchHooks {
  /** Autodiscover candidates for a domain (tests point them at loopback). */
  autodiscoverCandidates?: (domain: string) => Array<Candidate | string>;
  resolveSrv?: (name: string) => Promise<Array<{ name: string; port: number; priority: number; weight: number }>>;
  /** Overrides of the timings derived from the options. */
  timing?: { readTimeoutMs?: number; minRetryMs?: number; maxRetryMs?: number; subscribeRetryMs?: number; watchdogMs?: number; healthyMs?: number };
}

export interface EwsWatcherDeps {
  listener: string;
  mailboxes: WatchedMailbox[];
  /** Full Authorization header value: "Bearer …" or "Basic …". */
  authorization: (mailbox: string) => Promise<string>;
  /** Windows authentication (on-premises): used instead of `authorization`. */
  ntlm?: NtlmCredentials;
  options: EwsWatchOptions;
  ctx: WatcherContext;
  ca?: string;
  /** The listener's connection's proxy settings (EWS and autodiscover). */
  proxy?: ProxySettings;
  hooks?: EwsWatchHooks;
}

/** Hosts of Exchange Online (all clouds), where EWS is retired (facts §5.1). */
const EXCHANGE_ONLINE = ['outlook.office365.com', 'outlook.office.com', 'office365.us', 'webmail.apps.mil', 'partner.outlook.cn', 'outlook.office.de'];

export function isExchangeOnline(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase();
  } catch {
    return false;
  }
  return EXCHANGE_ONLINE.some((h) => host === h || host.endsWith(`.${h}`));
}

function limiter(n: number): Limiter {
  let active = 0;
  const waiting: Array<() => void> = [];
  return {
    async run(fn) {
      if (active >= n) await new Promise<void>((r) => waiting.push(r));
      else active++;
      try {
        return await fn();
      } finally {
        const next = waiting.shift();
        if (next) next();
        else active--;
      }
    },
  };
}

function serverMatches(server: string | undefined, wanted: string[]): boolean {
  if (!server) return false;
  const s = server.toLowerCase();
  const short = s.split('.')[0];
  return wanted.some((w) => {
    const x = w.toLowerCase();
    return x === s || x === short || x.split('.')[0] === short;
  });
}

export interface EwsWatcher extends Watcher {
  /** Streaming groups (tests and `mailbridge watch`). */
  readonly groups: readonly StreamGroup[];
  readonly push?: PushWatch;
}

/**
 * An ews group's watcher for one listener: the listener's account signs in with NTLM (on-prem
 * `authentication: ntlm`) or Basic, else the connection's Exchange token is the Bearer.
 */
export const ewsWatcherPlugin: WatcherPlugin<Extract<WatchGroupConfig, { kind: 'ews' }>> = (g, b) => {
  const ca = b.ca(g.ews.caFile);
  const { username } = b.config;
  const password = b.password;
  const ntlm = username && password && g.ews.authentication === 'ntlm' ? ntlmCredentials(username, password) : undefined;
  const basic = username && password && !ntlm ? `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` : undefined;
  if (basic) registerSecret(basic.slice(6));
  const bearer = b.tokens('exchange');
  const authorization = basic ? async () => basic : async () => `Bearer ${await bearer()}`;
  return createEwsWatcher({ listener: b.listener, mailboxes: b.mailboxes, authorization, ...(ntlm ? { ntlm } : {}), options: g.ews, ctx: b.ctx, proxy: b.proxy, ...(ca ? { ca } : {}) });
};

export function createEwsWatcher(deps: EwsWatcherDeps): EwsWatcher {
  const { ctx, options, listener } = deps;
  const hooks = deps.hooks ?? {};
  const abort = new AbortController();
  const ca = deps.ca ?? (options.caFile ? readFileSync(options.caFile, 'utf8') : undefined);
  const members: Member[] = [];
  /** Mailboxes that never got as far as a member (autodiscover failed, no usable folder). */
  const unplaced = new Map<string, MailboxStatus>();
  const groups: StreamGroup[] = [];
  const own = limiter(options.subscribeConcurrency);
  const shared = ctx.gates?.setup;
  const limit: Limiter = shared ? { run: (fn) => own.run(() => shared.with(fn)) } : own;

  const client = new EwsClient({
    version: options.version,
    impersonation: options.impersonation,
    authorization: deps.authorization,
    ntlm: deps.ntlm,
    ca,
    proxy: deps.proxy,
    timeoutMs: options.requestTimeoutSeconds * 1000,
    maxBackOffMs: options.maxBackOffSeconds * 1000,
    busyRetries: 5,
    signal: abort.signal,
    secretSlot: `ews:${listener}`,
    onBusy: (t, ms, err) => core.report(undefined, new MbError('MB_EWS_SERVER_BUSY', { url: safeHost(t.url), seconds: Math.round(ms / 1000) }, { cause: err })),
    // Exchange Online behind a host name of its own (a proxy, a vanity name) shows in its version.
    onServerVersion: (t, v) => {
      const host = safeHost(t.url);
      if (!isExchangeOnlineVersion(v) || retiringWarned.has(host)) return;
      retiringWarned.add(host);
      core.report(undefined, new MbError('MB_EWS_EXCHANGE_ONLINE_RETIRING', { host }));
    },
  });
  const retiringWarned = new Set<string>();

  const core: Core = {
    listener,
    client,
    ctx,
    impersonation: options.impersonation,
    signal: abort.signal,
    report(member, err) {
      ctx.log.warn({ code: err.code, mailbox: member?.address, listener }, err.message);
      ctx.problem?.(member?.address, err);
    },
  };

  // Push routes must exist before the inbound listener starts listening, i.e. now.
  let push: PushWatch | undefined;
  let pushMembers: Member[] | undefined;
  if (options.mode === 'push') {
    if (!ctx.inbound) throw new MbError('MB_EWS_PUSH_NO_LISTENER', { listener });
    pushMembers = [];
    push = new PushWatch(
      core,
      pushMembers,
      {
        statusFrequencyMinutes: options.statusFrequencyMinutes,
        watchdogMs: hooks.timing?.watchdogMs ?? Math.max(1000, (options.statusFrequencyMinutes * 60_000) / 4),
        subscribeRetryMs: hooks.timing?.subscribeRetryMs ?? 300_000,
      },
      limit,
      ctx.inbound,
    );
  }

  function fail(address: string, err: MbError): void {
    unplaced.set(address, { mailbox: address, listener, state: 'failed', since: new Date(ctx.now()).toISOString(), error: { code: err.code, message: err.message } });
    core.report({ address }, err);
  }

  async function start(): Promise<void> {
    // Folders: well-known ones only (inbox, sentitems, …), inbox when none are named.
    const wanted: Array<{ address: string; names: string[]; folders: string[] }> = [];
    for (const mb of deps.mailboxes) {
      const address = mb.address.toLowerCase();
      const names: string[] = [];
      const folders: string[] = [];
      for (const f of mb.folders.length ? mb.folders : ['inbox']) {
        const id = distinguishedFolder(f);
        if (!id) core.report(undefined, new MbError('MB_EWS_FOLDER_UNSUPPORTED', { mailbox: address, folder: f }));
        else if (!folders.includes(id)) {
          names.push(f);
          folders.push(id);
        }
      }
      if (!folders.length) {
        fail(address, new MbError('MB_EWS_FOLDER_UNSUPPORTED', { mailbox: address, folder: mb.folders.join(', ') }));
        continue;
      }
      wanted.push({ address, names, folders });
    }

    // EWS URL and grouping per mailbox.
    const place = new Map<string, { url: string; grouping: string; server?: string }>();
    if (options.url && !options.servers?.length) {
      for (const w of wanted) place.set(w.address, { url: options.url, grouping: '' });
    } else {
      const found = await autodiscoverAll(
        wanted.map((w) => w.address),
        {
          agent: client.agent,
          authorization: deps.authorization,
          kv: ctx.kv,
          namespace: KV_NAMESPACE,
          now: ctx.now,
          version: options.version,
          url: options.autodiscover.url,
          candidates: hooks.autodiscoverCandidates,
          resolveSrv: hooks.resolveSrv,
          prefer: options.autodiscover.prefer,
          cacheHours: options.autodiscover.cacheHours,
          timeoutMs: options.requestTimeoutSeconds * 1000,
          signal: abort.signal,
        },
      );
      for (const w of wanted) {
        const r = found.get(w.address);
        if (!r || r instanceof MbError) {
          fail(w.address, r ?? new MbError('MB_EWS_AUTODISCOVER_FAILED', { mailbox: w.address, domain: w.address.split('@')[1] ?? '', detail: 'no answer' }));
          continue;
        }
        // A given url wins over the discovered one; discovery then only told the server.
        place.set(w.address, { url: options.url ?? r.ewsUrl, grouping: r.grouping ?? '', server: r.server });
      }
    }

    for (const w of wanted) {
      const p = place.get(w.address);
      if (!p) continue;
      if (options.servers?.length && !serverMatches(p.server, options.servers)) {
        // Listed in this group but left out by its scope: nobody watches it, and the admin must know.
        fail(w.address, new MbError('MB_EWS_MAILBOX_NOT_ON_SERVERS', { mailbox: w.address, server: p.server ?? '?', servers: options.servers.join(', '), listener }));
        continue;
      }
      members.push(new Member(w.address, w.names, w.folders, p.url, ctx.now()));
    }

    const eol = [...new Set(members.map((m) => m.url).filter(isExchangeOnline))];
    for (const url of eol) {
      const host = safeHost(url);
      if (retiringWarned.has(host)) continue;
      retiringWarned.add(host);
      core.report(undefined, new MbError('MB_EWS_EXCHANGE_ONLINE_RETIRING', { host }));
    }

    if (push && pushMembers) {
      pushMembers.push(...members);
      await push.start();
      return;
    }

    // Streaming groups: same URL and GroupingInformation, sorted, split at 200.
    const byKey = new Map<string, Member[]>();
    for (const m of members) {
      const p = place.get(m.address)!;
      const key = `${m.url}\n${p.grouping}`;
      byKey.set(key, [...(byKey.get(key) ?? []), m]);
    }
    const timing = {
      readTimeoutMs: hooks.timing?.readTimeoutMs ?? 2 * options.heartbeatSeconds * 1000,
      connectionTimeoutMinutes: options.connectionTimeoutMinutes,
      minRetryMs: hooks.timing?.minRetryMs ?? 1000,
      maxRetryMs: hooks.timing?.maxRetryMs ?? 60_000,
      subscribeRetryMs: hooks.timing?.subscribeRetryMs ?? 300_000,
      healthyMs: hooks.timing?.healthyMs ?? 10_000,
    };
    for (const list of byKey.values()) {
      list.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
      for (let i = 0; i < list.length; i += 200) groups.push(new StreamGroup(core, list.slice(i, i + 200), timing, limit));
    }
    for (const g of groups) g.start();
    await Promise.all(groups.map((g) => g.ready));
  }

  return {
    kind: 'ews',
    listener,
    groups,
    get push() {
      return push;
    },
    start,
    status() {
      return [...members.map((m) => m.status(listener)), ...unplaced.values()];
    },
    summary(counts, max) {
      const out: MailboxStatus[] = [];
      for (const m of members) {
        counts[m.state] = (counts[m.state] ?? 0) + 1;
        if (m.state !== 'watching' && out.length < max) out.push(m.status(listener));
      }
      for (const s of unplaced.values()) {
        counts[s.state] = (counts[s.state] ?? 0) + 1;
        if (out.length < max) out.push(s);
      }
      return out;
    },
    async close() {
      abort.abort(new Error('ews watcher closed'));
      await Promise.all(groups.map((g) => g.close()));
      await push?.close();
      await client.close();
    },
  };
}
