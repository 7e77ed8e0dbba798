/**
 * Runs one connector: a worker per mailbox that connects, syncs its folders through the pipeline,
 * waits for new mail (IDLE or the poll interval), and reconnects with backoff when anything fails.
 *
 * Concurrency is bounded three ways, so that hundreds of mailboxes per instance stay within
 * Exchange Online's limits (facts 3.5) and this machine's: logins in progress per connection
 * (`concurrency.logins`), mailboxes being fetched per connection (`concurrency.mailboxes`; a mailbox
 * waiting in IDLE holds no slot), and IMAP sessions per mailbox across connectors
 * (`concurrency.sessionsPerMailbox`, below Exchange's ~20). Within a folder at most
 * `concurrency.window` messages are in flight to the destination. Processes that run several
 * connectors pass one `SharedLimits` to all of them.
 *
 * A lease in the store keeps a second process from running the same connector at the same time;
 * the lease of a process that died on this host is taken over at once, one of another host expires.
 *
 * Several nodes (`ownership`, on PostgreSQL): instead of one lease for the whole connector, each
 * mailbox is a unit of the pool `connector:<name>` (src/cluster/ownership.ts). A node runs the
 * workers of the mailboxes it holds, every checkpoint write of a worker carries its lease's fence
 * (a node that lost a mailbox cannot commit for it), and a mailbox whose lease moves is stopped
 * here before the next node starts it. Graph change notifications work on several nodes too: every
 * node listens on the connector's notification listener (behind the load balancer, one public URL),
 * and a node subscribes, renews and recovers the subscriptions of the mailboxes it holds only,
 * through the lease's fenced kv (a node that lost a mailbox cannot overwrite its successor's
 * subscription records). When a mailbox moves, the old node stops looking after its subscriptions
 * without deleting them; the new holder takes the stored ones over and reads the folders with
 * delta. A notification that reaches a node not holding its mailbox is handed to the holder through
 * the store's signals (src/connector/graph.ts); one lost on the way (no holder at that moment, or
 * the holder's listening connection to the database reconnecting) is covered by the holder reading
 * its folders, never left to the poll.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { MbError, toMbError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import { silentLogger } from '../log/index.ts';
import type { CheckpointRepository } from '../store/checkpoints.ts';
import type { Signals, StoreKeyValue } from '../store/index.ts';
import { mailboxesOf, type ConnectorConfig } from './config.ts';
import { createDestination } from './destinations/index.ts';
import { Backoff, KeyedLimits, sleep } from '../util/limits.ts';
import { syncFolder, type PipelineOptions } from './pipeline.ts';
import type { RetryRequests } from './retry-requests.ts';
import { ConnectorError, type ConnectorEvent, type ConnectorPlugins, type Destination, type SourceFactory, type SourcePlugin, type SourceSession, type TokenProvider } from './types.ts';
import type { ProxySettings } from '../net/proxy.ts';
import type { Ownership } from '../cluster/ownership.ts';

export interface SharedLimits {
  /** Per connection: logins in progress. */
  logins: KeyedLimits;
  /** Per connection: mailboxes being fetched. */
  busy: KeyedLimits;
  /** Per mailbox address: open sessions. */
  sessions: KeyedLimits;
}

export function createSharedLimits(c: { logins: number; mailboxes: number; sessionsPerMailbox: number }): SharedLimits {
  return { logins: new KeyedLimits(c.logins), busy: new KeyedLimits(c.mailboxes), sessions: new KeyedLimits(c.sessionsPerMailbox) };
}

export interface ConnectorDeps {
  name: string;
  config: ConnectorConfig;
  repo: CheckpointRepository;
  tokens: TokenProvider;
  /** The source and destination kinds, by the `kind` the configuration names (src/app/plugins.ts). */
  plugins: ConnectorPlugins;
  /** Default: built from config.source by its plug-in. */
  source?: SourceFactory;
  /** Default: built from config.destination by its plug-in. */
  destination?: Destination;
  /** Proxy for the source (the connection's, else server.proxy, else HTTPS_PROXY). */
  proxy?: ProxySettings;
  /** Reads config files named in the section (caFile); default: fs. */
  readFile?: (path: string) => string;
  /** Clear value of a stored secret (enc:v1:…); default: the value as is. */
  reveal?: (stored: string, field: string) => string;
  /**
   * Where a Graph source with change notifications keeps its subscriptions, and the SecretBox's
   * seal/open for their clientState. Without `kv` such a source polls.
   */
  kv?: StoreKeyValue;
  seal?: (plain: string) => string;
  open?: (sealed: string) => string;
  limits?: SharedLimits;
  log?: Logger;
  onEvent?: (e: ConnectorEvent) => void;
  /** The pause before a mailbox reconnects (default: a timer); tests pass a manual clock. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Retry requests from the admin API (retry-requests.ts): each folder retries its refused messages once per request. */
  retryRequests?: RetryRequests;
  /** Several nodes: the mailboxes are shared with the other nodes through per-mailbox leases (not with --once). */
  ownership?: Ownership;
  /** Several nodes: how a node hands what reached it for a mailbox another node holds (Graph notifications) to that node. */
  signals?: Signals;
}

/**
 * Failures that say the token was refused for what it may do. A token cached from before an admin
 * granted the permission (IMAP.AccessAsApp, Mail.ReadWrite, FullAccess) lacks it until it expires,
 * up to an hour later; so the next attempt asks Entra ID for a new token.
 */
const AUTHORIZATION_FAILURES = new Set(['MB_CONNECTOR_AUTH_FAILED', 'MB_CONNECTOR_NOT_CONNECTED', 'MB_CONNECTOR_NOT_CONNECTED_DELEGATED', 'MB_CONNECTOR_GRAPH_FORBIDDEN']);

/** At most one forced token request per connector in this time, however many mailboxes were refused. */
const FRESH_TOKEN_GAP_MS = 30_000;

export interface RunOptions {
  /** Sync every folder once and return (mailbridge fetch --once). */
  once?: boolean;
  signal?: AbortSignal;
  /** Deliver again the messages a destination refused for good before. */
  retryRejected?: boolean;
  /** In once mode: temporary delivery failures of one message before the run gives up on its folder (default 3). */
  onceAttempts?: number;
}

export interface RunSummary {
  mailboxes: number;
  delivered: number;
  bytes: number;
  rejected: number;
  duplicates: number;
  redelivered: number;
  errors: Array<{ mailbox: string; folder?: string; error: MbError }>;
  warnings: MbError[];
  seconds: number;
}

const LEASE_TTL_MS = 60_000;

export async function runConnector(deps: ConnectorDeps, opts: RunOptions = {}): Promise<RunSummary> {
  const c = deps.config;
  const log = (deps.log ?? silentLogger).child({ connector: deps.name });
  const controller = new AbortController();
  const outer = opts.signal;
  const onOuterAbort = () => controller.abort(outer?.reason);
  if (outer?.aborted) controller.abort(outer.reason);
  outer?.addEventListener('abort', onOuterAbort, { once: true });
  const signal = controller.signal;
  const started = Date.now();
  const summary: RunSummary = { mailboxes: 0, delivered: 0, bytes: 0, rejected: 0, duplicates: 0, redelivered: 0, errors: [], warnings: [], seconds: 0 };
  const emit = (e: ConnectorEvent) => {
    // Counted from events, so that what a folder delivered before a failure or a stop is counted too.
    if (e.type === 'warning') summary.warnings.push(e.error);
    else if (e.type === 'delivered') {
      summary.delivered++;
      summary.bytes += e.bytes;
      if (e.redelivery) summary.redelivered++;
    } else if (e.type === 'rejected') summary.rejected++;
    else if (e.type === 'duplicate') summary.duplicates++;
    try {
      deps.onEvent?.(e);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'connector event handler failed');
    }
  };

  // One run per connector at a time, across processes; with several nodes, one per mailbox (below).
  const ownership = opts.once ? undefined : deps.ownership;
  const leaseName = `connector:${deps.name}`;
  const owner = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  let renew: ReturnType<typeof setInterval> | undefined;
  if (!ownership) {
    const lease = await deps.repo.claim(leaseName, owner, LEASE_TTL_MS, deadOnThisHost);
    if (!lease.ok) throw new ConnectorError('MB_CONNECTOR_BUSY', { connector: deps.name, owner: lease.owner, seconds: Math.ceil((lease.expiresAt - Date.now()) / 1000) });
    renew = setInterval(() => {
      deps.repo.claim(leaseName, owner, LEASE_TTL_MS).catch((err: unknown) => log.error({ err: (err as Error).message }, 'lease renewal failed'));
    }, LEASE_TTL_MS / 3);
    renew.unref();
  }

  const ownDestination = !deps.destination;
  const destination = deps.destination ?? createDestination(c.destination, { connector: deps.name, window: c.concurrency.window, log, reveal: deps.reveal }, deps.plugins.destinations);
  const source = deps.source ?? sourceFromConfig(deps, log, emit, !opts.once);
  const limits = deps.limits ?? createSharedLimits(c.concurrency);
  const pipeline: Omit<PipelineOptions, 'signal'> = {
    connector: deps.name,
    repo: deps.repo,
    destination,
    after: c.after,
    window: c.concurrency.window,
    maxMessageBytes: c.maxMessageBytes,
    fetchBytes: 8 * 1024 * 1024,
    retry: { initialMs: c.retry.initialSeconds * 1000, maxMs: c.retry.maxSeconds * 1000, attempts: opts.once ? (opts.onceAttempts ?? 3) : undefined },
    keepMs: c.keepDays * 86_400_000,
    emit,
    log,
    retryRejected: opts.retryRejected,
  };
  const pollMs = c.pollSeconds * 1000;

  const pause = deps.sleep ?? sleep;

  /** Runs one mailbox until `signal` aborts, writing checkpoints through `repo` (fenced with several nodes). */
  const worker = async (mb: { address: string; folders: string[] }, signal: AbortSignal, repo: CheckpointRepository) => {
    const backoff = new Backoff({ initialMs: c.retry.initialSeconds * 1000, maxMs: c.retry.maxSeconds * 1000 });
    const sessionSlot = limits.sessions.get(mb.address.toLowerCase());
    let freshToken = false;
    while (!signal.aborted) {
      let session: SourceSession | undefined;
      let folder: string | undefined;
      let dropAbort = () => {};
      try {
        await sessionSlot.acquire(signal);
        try {
          await limits.logins.get(c.connection).with(async () => {
            session = await source.open(mb.address, signal, { freshToken });
          }, signal);
          // Stopping ends the session at once, also in the middle of a command the server does not answer.
          const s = session!;
          const onAbort = () => void s.close().catch(() => undefined);
          signal.addEventListener('abort', onAbort, { once: true });
          dropAbort = () => signal.removeEventListener('abort', onAbort);
          emit({ type: 'connected', connector: deps.name, mailbox: mb.address });
          let toSync = mb.folders;
          let lastFull = 0;
          for (;;) {
            await limits.busy.get(c.connection).with(async () => {
              for (const f of toSync) {
                folder = f;
                const scope = { connector: deps.name, mailbox: mb.address, folder: f };
                const asked = await deps.retryRequests?.pending(scope);
                await syncFolder({ ...pipeline, repo, signal, ...(asked ? { retryRejected: true } : {}) }, session!, f);
                if (asked) await deps.retryRequests!.honoured(scope, asked);
              }
              folder = undefined;
            }, signal);
            backoff.reset();
            if (toSync.length === mb.folders.length) lastFull = Date.now();
            if (opts.once) return;
            emit({ type: 'waiting', connector: deps.name, mailbox: mb.address, folder: mb.folders[0]! });
            log.debug({ mailbox: mb.address }, 'connector: waiting for new mail');
            const why = await session!.wait(mb.folders[0]!, Math.max(1000, lastFull + pollMs - Date.now()), signal);
            if (signal.aborted) return;
            if (why === 'closed') throw new ConnectorError('MB_CONNECTOR_SESSION_LOST', { mailbox: mb.address, detail: 'the server closed the connection' });
            // IDLE reports only the folder it watches; the others are looked at every poll interval.
            // Graph notifications name their folders.
            const marked = why === 'changed' ? session!.changedFolders?.() : undefined;
            toSync = why === 'changed' && Date.now() - lastFull < pollMs ? (marked ? mb.folders.filter((f) => marked.includes(f)) : [mb.folders[0]!]) : mb.folders;
          }
        } finally {
          dropAbort();
          await session?.close().catch(() => undefined);
          sessionSlot.release();
        }
      } catch (err) {
        if (signal.aborted) return;
        const e = err instanceof MbError ? err : toMbError(err);
        const retryAfter = err instanceof ConnectorError ? (err.retryAfterMs ?? 0) : 0;
        const delay = Math.max(retryAfter, backoff.next());
        freshToken = AUTHORIZATION_FAILURES.has(e.code);
        emit({ type: 'error', connector: deps.name, mailbox: mb.address, folder, error: e, retryInMs: opts.once ? undefined : delay });
        log.warn({ code: e.code, mailbox: mb.address, folder, retryInMs: opts.once ? undefined : delay }, e.message);
        if (opts.once) {
          summary.errors.push({ mailbox: mb.address, folder, error: e });
          return;
        }
        await pause(delay, signal).catch(() => undefined);
      }
    }
  };

  /** Several nodes: a worker for each mailbox this node holds, started and stopped as leases move. */
  const runOwned = async (o: Ownership, list: Array<{ address: string; folders: string[] }>) => {
    const byAddress = new Map(list.map((mb) => [mb.address.toLowerCase(), mb]));
    const running = new Map<string, { controller: AbortController; done: Promise<void> }>();
    o.join(leaseName, [...byAddress.keys()], {
      gained(unit, fence) {
        const mb = byAddress.get(unit);
        if (!mb || signal.aborted) return;
        const controller = new AbortController();
        const stop = () => controller.abort();
        signal.addEventListener('abort', stop, { once: true });
        log.info({ mailbox: mb.address, epoch: fence.epoch }, 'connector: this node runs the mailbox now');
        // Its subscriptions (Graph notifications) as the lease's holder: stored ones are taken over.
        if (deps.kv) source.hold?.(mb, deps.kv.fenced(fence));
        const done = worker(mb, controller.signal, deps.repo.fenced(fence)).finally(() => signal.removeEventListener('abort', stop));
        running.set(unit, { controller, done });
      },
      async lost(unit) {
        const r = running.get(unit);
        running.delete(unit);
        r?.controller.abort();
        await r?.done;
        await source.release?.(unit).catch((err: unknown) => log.warn({ mailbox: unit, err: toMbError(err).message }, 'connector: stopping the mailbox\'s subscriptions failed'));
      },
    });
    // The next round takes this pool's mailboxes; not waiting for the timer.
    void o.tick();
    await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
    await Promise.all([...running.values()].map((r) => r.done));
    // The mailboxes' leases go back now: the other nodes take them over without waiting for the lease time.
    await o.leave(leaseName);
  };

  const boxes = mailboxesOf(c);
  summary.mailboxes = boxes.length;
  try {
    if (ownership) {
      await source.startShared?.(deps.signals);
      await runOwned(ownership, boxes);
    } else {
      if (!opts.once) await source.start?.(boxes);
      await Promise.all(boxes.map((mb) => worker(mb, signal, deps.repo)));
    }
  } finally {
    if (renew) clearInterval(renew);
    outer?.removeEventListener('abort', onOuterAbort);
    if (ownDestination) await destination.close().catch(() => undefined);
    if (!deps.source) await source.close?.().catch(() => undefined);
    if (!ownership) await deps.repo.release(leaseName, owner).catch(() => undefined);
  }
  summary.seconds = (Date.now() - started) / 1000;
  return summary;
}

/** Passes `fresh` on at most once per `gapMs`; within it the token just fetched (now cached) serves the other mailboxes. */
export function freshTokenGate(tokens: TokenProvider, gapMs = FRESH_TOKEN_GAP_MS, now: () => number = Date.now): TokenProvider {
  let last = -Infinity;
  return (mailbox, options) => {
    if (options?.fresh && now() - last >= gapMs) {
      last = now();
      return tokens(mailbox, { fresh: true });
    }
    return tokens(mailbox);
  };
}

function sourceFromConfig(deps: ConnectorDeps, log: Logger, emit: (e: ConnectorEvent) => void, long: boolean): SourceFactory {
  const s = deps.config.source;
  // The registry is keyed by kind, so the plug-in found takes exactly this kind's section.
  const plugin = deps.plugins.sources[s.kind] as SourcePlugin;
  return plugin(s, {
    connector: deps.name,
    config: deps.config,
    tokens: freshTokenGate(deps.tokens),
    proxy: deps.proxy,
    readFile: deps.readFile ?? ((p: string) => readFileSync(p, 'utf8')),
    log,
    notice: (mailbox, error) => emit({ type: 'warning', scope: { connector: deps.name, mailbox, folder: '' }, error }),
    long,
    kv: deps.kv,
    seal: deps.seal,
    open: deps.open,
  });
}

/** A lease owner `host:pid:…` on this host whose process no longer exists. */
function deadOnThisHost(owner: string): boolean {
  const [host, pid] = owner.split(':');
  if (host !== hostname() || !pid || !/^\d+$/.test(pid)) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
