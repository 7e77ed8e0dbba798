/**
 * The watch service: turns `notify.watch` into running watchers. Per group it builds the listener
 * pool (pools.ts), creates one watcher per listener with that listener's credentials, and opens the
 * inbound listener that Graph change notifications and EWS push callbacks reach (only when a group
 * needs one). Events go to `publish` — the dispatcher, which stores them (deduplicated by id)
 * before any sink sees them.
 *
 * Status: every watcher's per-mailbox state and the last problems are kept in memory for the API
 * and written to the store every few seconds, so that `mailbridge watch` in another process can
 * show them.
 *
 * Several nodes (`cluster`, on PostgreSQL): each listener's mailboxes are cut into shards of
 * `shardSize` (by a hash of the address, so a shard keeps its mailboxes), each shard a lease of the
 * pool `watch:<group>` (src/cluster/ownership.ts). A node runs a watcher for each shard it holds,
 * built when the lease comes and closed when it goes, so N nodes watch N times the mailboxes.
 * A shard's watcher keeps the listener's id: Graph subscriptions, cursors and the notification URL
 * stay the same whichever node holds it, and a new holder renews the stored subscriptions and reads
 * each folder with delta. Graph's notifications reach any node behind the load balancer; the shared
 * routes (m365/subscriptions/hub.ts) hand each to the node holding its subscription through the
 * store's signals. EWS push works the same way with durable hand-overs: every node answers
 * Exchange's SendNotification for every mailbox of the group and stores it as a parcel for the
 * shard's holder (ews/handoff.ts), answering OK only once it is committed.
 */
import { readFileSync } from 'node:fs';
import { MbError, toMbError } from '../../errors/index.ts';
import { silentLogger, type Logger } from '../../log/index.ts';
import { registerSecret } from '../../log/redact.ts';
import { cloudFor, type CloudName } from '../../identity/clouds.ts';
import type { StoreKeyValue } from '../../store/index.ts';
import type { ProxySettings } from '../../net/proxy.ts';
import { createInbound, type Inbound } from '../../m365/subscriptions/inbound.ts';
import { createRouteHub, type Handoff, type RouteHub } from '../../m365/subscriptions/hub.ts';
import { createHash } from 'node:crypto';
import type { Ownership } from '../../cluster/ownership.ts';
import { MAX_SIGNAL_BYTES, type Signals } from '../../store/signals.ts';
import type { Fence } from '../../store/cluster.ts';
import type { WatchConfig, WatchGroupConfig, WatchListenerConfig } from './config.ts';
import { assignMailboxes, type PoolListener } from './pools.ts';
import type { Resource, WatcherBuild, WatcherRegistry } from './plugin.ts';
import { createEwsPushHub, type EwsPushHub } from './ews/handoff.ts';
import type { MailboxStatus, Publish, Watcher, WatcherContext, WatchedMailbox } from './types.ts';
import { STATUS_KEY, STATUS_NAMESPACE, type GroupStatus, type WatchProblem, type WatchStatus } from './status.ts';
import { Semaphore } from '../../util/limits.ts';

export type { Resource } from './plugin.ts';

export interface WatchServiceOptions {
  config: WatchConfig;
  /** The watcher kinds (src/app/plugins.ts). */
  watchers: WatcherRegistry;
  /** server.publicUrl, the default for notify.watch.publicUrl. */
  serverPublicUrl?: string;
  /** The connections (cloud, caFile): a group's Graph URL, IMAP host and extra CA default to its listener's connection. */
  connections?: Record<string, { cloud: CloudName; caFile?: string | undefined; proxy?: string | undefined }>;
  /** server.proxy, the default for connections without a proxy of their own. */
  serverProxy?: string | undefined;
  /** The environment (HTTPS_PROXY, NO_PROXY); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** The store's key-value table; with several nodes a shard's watchers write their cursors through `kv.fenced`. */
  kv: StoreKeyValue;
  /** `fence`: with several nodes, the lease of the shard the event comes from (refused once it moved on). */
  publish: (event: Parameters<Publish>[0], fence?: Fence) => ReturnType<Publish>;
  /** An access token of a connection for a resource (Identity.getToken). */
  token: (connection: string, resource: Resource) => Promise<string>;
  /** Clear value of a stored secret (enc:v1:…). */
  reveal: (stored: string, field: string) => string;
  /** Seal and open small secrets watchers keep in the store (Graph clientState). */
  seal?: (plain: string) => string;
  open?: (sealed: string) => string;
  log?: Logger;
  now?: () => number;
  readFile?: (path: string) => string;
  /** How often the status is written to the store for `mailbridge watch` (ms; default 5,000). */
  statusEveryMs?: number;
  /** Several nodes on one PostgreSQL database: the shards this node watches come and go with their leases. */
  cluster?: { ownership: Ownership; signals: Signals; shardSize?: number };
}

/** The signal channel on which a node hands a Graph notification to the node holding its subscription. */
export const PUSH_CHANNEL = 'mailbridge_push';
/** Mailboxes per shard (a lease) when several nodes share a group. */
export const DEFAULT_SHARD_SIZE = 250;

/** Splits a listener's mailboxes into shards of about `size`, each mailbox always in the same one. */
export function shardsOf(mailboxes: readonly WatchedMailbox[], size: number): WatchedMailbox[][] {
  const n = Math.max(1, Math.ceil(mailboxes.length / size));
  const out: WatchedMailbox[][] = Array.from({ length: n }, () => []);
  for (const m of mailboxes) out[createHash('sha256').update(m.address).digest().readUInt32BE(0) % n]!.push(m);
  return out;
}

export interface WatchService {
  watchers: readonly Watcher[];
  /** The inbound listener's bound address, when one runs. */
  inboundUrl?: string;
  /** Whether the inbound listener still accepts connections (for /health/ready), when one runs. */
  inboundListening?: () => boolean;
  status(): WatchStatus;
  /** Every watched mailbox of a group (or of all groups) with its listener, state and last problem. */
  mailboxes(group?: string): Array<MailboxStatus & { group: string }>;
  close(): Promise<void>;
}

const MAX_PROBLEMS = 100;
const MAX_ATTENTION = 200;
/** Subscriptions set up (or renewed, caught up) at once in the whole process, over all listeners. */
const SETUP_IN_FLIGHT = 128;
/** Graph delta rounds at once in the whole process. */
const SYNC_IN_FLIGHT = 256;

interface Built {
  group: string;
  kind: WatchGroupConfig['kind'];
  watcher: Watcher;
  capacity: number;
}

function listenerName(l: WatchListenerConfig): string {
  return l.name ?? l.connection ?? l.username!;
}

function mailboxesOf(g: WatchGroupConfig): WatchedMailbox[] {
  return g.mailboxes.map((m) => (typeof m === 'string' ? { address: m, folders: [...g.folders] } : { address: m.address, folders: [...(m.folders ?? g.folders)] }));
}

function needsInbound(g: WatchGroupConfig): boolean {
  return g.kind === 'graph' || (g.kind === 'ews' && g.ews.mode === 'push');
}

export async function startWatchService(o: WatchServiceOptions): Promise<WatchService> {
  const log = (o.log ?? silentLogger).child({ component: 'watch' });
  const now = o.now ?? Date.now;
  const readFile = o.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const groups = Object.entries(o.config.groups);
  const problems: WatchProblem[] = [];

  // Pools first: a group that does not fit fails the start with its MB code, before anything connects.
  const plans = groups.map(([name, g]) => {
    const listeners = g.listeners.map((l) => ({ id: `${name}/${listenerName(l)}`, capacity: l.capacity, config: l }) satisfies PoolListener & { config: WatchListenerConfig });
    return { name, group: g, assignments: assignMailboxes(name, mailboxesOf(g), listeners) };
  });

  let inbound: Inbound | undefined;
  if (groups.some(([, g]) => needsInbound(g))) {
    inbound = createInbound({ listen: o.config.listen, publicUrl: o.config.publicUrl ?? o.serverPublicUrl, setting: 'notify.watch.listen', log, readFile });
  }

  // Process-wide limits over all listeners (WatcherContext.gates): at least the largest a listener
  // has of its own, so one big listener is not slowed down.
  const most = (pick: (g: WatchGroupConfig) => number | undefined, floor: number) => Math.max(floor, ...groups.map(([, g]) => pick(g) ?? 0));
  const gates = {
    setup: new Semaphore(most((g) => (g.kind === 'graph' ? g.graph.setupConcurrency : g.kind === 'ews' ? g.ews.subscribeConcurrency : undefined), SETUP_IN_FLIGHT)),
    sync: new Semaphore(most((g) => (g.kind === 'graph' ? g.graph.syncConcurrency : undefined), SYNC_IN_FLIGHT)),
  };
  let built: Built[] = [];
  let closed = false;
  let stopSignals: (() => void) | undefined;
  const close = async () => {
    // Several nodes: the shards' leases go back at once (config apply starts a new service that takes them again).
    if (o.cluster) for (const plan of plans) await o.cluster.ownership.leave(`watch:${plan.name}`);
    closed = true;
    stopSignals?.();
    ewsHub?.close();
    await Promise.allSettled(built.map((b) => b.watcher.close()));
    await inbound?.close();
  };
  const cluster = o.cluster;
  let hub: RouteHub | undefined;
  let ewsHub: EwsPushHub | undefined;
  type Plan = (typeof plans)[number];
  type Member = Plan['assignments'][number]['listener'];
  const build = async (plan: Plan, listener: Member, mailboxes: WatchedMailbox[], fence?: Fence): Promise<Built> => {
    const g = plan.group;
    const l = listener.config;
    const report = (mailbox: string | undefined, error: MbError) => {
      const p: WatchProblem = { at: new Date(now()).toISOString(), group: plan.name, listener: listener.id, code: error.code, message: error.message };
      if (mailbox) p.mailbox = mailbox;
      problems.push(p);
      if (problems.length > MAX_PROBLEMS) problems.shift();
      // Not logged here: every watcher logs its problem (with group and listener) before reporting it.
    };
    // With several nodes every event is published as the holder of the shard's lease (refused once it moved on).
    const publish: Publish = (e) => o.publish(g.privacy === 'minimal' && e.type === 'message.new' ? (({ sender: _s, subject: _j, ...rest }) => rest)(e) : e, fence);
    const ctx: WatcherContext = {
      publish,
      // Cursors too are written as the shard's lease holder: a node that lost the shard cannot move
      // its successor's delta link or watermark back (MB_CLUSTER_LEASE_LOST, nothing written).
      kv: fence ? o.kv.fenced(fence) : o.kv,
      log: log.child({ group: plan.name, listener: listener.id }),
      now,
      problem: report,
      gates,
      ...(inbound ? { inbound: { http: inbound.http, publicUrl: inbound.publicUrl } } : {}),
      ...(hub ? { hub } : {}),
      ...(ewsHub ? { ewsPush: ewsHub } : {}),
      ...(fence ? { epoch: fence.epoch } : {}),
      ...(o.seal ? { seal: o.seal } : {}),
      ...(o.open ? { reveal: o.open } : {}),
    };
    const password = l.password !== undefined ? o.reveal(l.password, `notify.watch.groups.${plan.name}.listeners.password`) : undefined;
    if (password) registerSecret(password);
    const tokens = (resource: Resource) => async () => {
      if (!l.connection) throw new MbError('MB_NOTIFY_WATCH_NO_CONNECTION', { group: plan.name, listener: listener.id });
      return o.token(l.connection, resource);
    };
    // Defaults from the listener's connection: its cloud's hosts and its extra CA (the sandbox's).
    const conn = l.connection ? o.connections?.[l.connection] : undefined;
    const cloud = conn ? cloudFor(conn.cloud) : undefined;
    // Proxy: the connection's, else server.proxy, else HTTPS_PROXY (src/net/proxy.ts).
    const proxy: ProxySettings = { proxy: conn?.proxy ?? o.serverProxy, source: conn?.proxy ? 'connection' : 'server', env: o.env };
    const caOf = (file: string | undefined) => {
      const path = file ?? conn?.caFile;
      return path ? readFile(path) : undefined;
    };
    const build: WatcherBuild = {
      group: plan.name,
      listener: listener.id,
      config: l,
      mailboxes,
      ctx,
      tokens,
      proxy,
      password,
      ca: caOf,
      cloud,
      reveal: o.reveal,
    };
    // The registry is keyed by kind, so the plug-in found takes exactly this kind's section.
    const watcher = await (o.watchers[g.kind] as (group: typeof g, build: WatcherBuild) => Promise<Watcher>)(g, build);
    return { group: plan.name, kind: g.kind, watcher, capacity: listener.capacity };
  };
  try {
    if (cluster && inbound && plans.some((p) => p.group.kind === 'ews' && p.group.ews.mode === 'push')) {
      const into = inbound;
      ewsHub = createEwsPushHub({ http: into.http, publicUrl: () => into.publicUrl, kv: o.kv, signals: cluster.signals, log, now, ...(o.seal ? { seal: o.seal } : {}), ...(o.open ? { reveal: o.open } : {}) });
      for (const plan of plans) {
        if (plan.group.kind !== 'ews' || plan.group.ews.mode !== 'push') continue;
        for (const a of plan.assignments) await ewsHub.prepare(a.listener.id, a.mailboxes.map((m) => m.address));
      }
      await ewsHub.start();
    }
    if (cluster && inbound) {
      const signals = cluster.signals;
      hub = createRouteHub(inbound.http, (h) => {
        let text = JSON.stringify(h);
        // Rich content that does not fit a signal is left out: the owner then reads the message with delta.
        if (Buffer.byteLength(text) > MAX_SIGNAL_BYTES) text = JSON.stringify({ ...h, item: { ...h.item, encryptedContent: undefined } });
        signals.publish(PUSH_CHANNEL, text).catch((err: unknown) => log.warn({ err: toMbError(err).message }, 'watch: handing a notification to its node failed; the node reads the folder at its next round'));
      });
      for (const plan of plans) {
        if (plan.group.kind !== 'graph') continue;
        for (const a of plan.assignments) hub.prepare(`${plan.group.graph.path}/${a.listener.id}`);
      }
      const h = hub;
      stopSignals = await signals.subscribe(
        PUSH_CHANNEL,
        (payload) => {
          try {
            h.receive(JSON.parse(payload) as Handoff);
          } catch {
            // Not ours to read: another version's or a foreign payload on the channel.
          }
        },
        // Listening resumed after the database restarted: notifications handed over meanwhile are
        // gone (a node that kept its shards would otherwise not read those folders until their next
        // mail), so every watcher here reads its folders with delta.
        () => {
          log.info({ watchers: built.length }, 'watch: hand-overs from other nodes may have been lost while the database was away; reading every folder');
          for (const b of built) b.watcher.resync?.();
        },
      );
    } else if (!cluster) {
      for (const plan of plans) for (const { listener, mailboxes } of plan.assignments) built.push(await build(plan, listener, mailboxes));
    }
    let inboundUrl: string | undefined;
    if (inbound) {
      inboundUrl = await inbound.listen();
      log.info({ url: inboundUrl, publicUrl: inbound.publicUrl }, 'watch: inbound listener for Graph notifications / EWS push is up');
    }
    const startOne = (b: Built) => b.watcher.start().catch((err: unknown) => log.error({ listener: b.watcher.listener, err: toMbError(err).message }, 'watch: a watcher failed to start'));
    for (const b of built) startOne(b);
    if (cluster) {
      const size = cluster.shardSize ?? DEFAULT_SHARD_SIZE;
      for (const plan of plans) {
        const units = new Map<string, { listener: Member; mailboxes: WatchedMailbox[] }>();
        for (const a of plan.assignments) shardsOf(a.mailboxes, size).forEach((mailboxes, k) => mailboxes.length > 0 && units.set(`${a.listener.id}#${k}`, { listener: a.listener, mailboxes }));
        const running = new Map<string, Built>();
        cluster.ownership.join(`watch:${plan.name}`, [...units.keys()], {
          async gained(unit, fence) {
            const u = units.get(unit);
            if (!u || closed) return;
            const b = await build(plan, u.listener, u.mailboxes, fence);
            if (closed) return void (await b.watcher.close());
            running.set(unit, b);
            built.push(b);
            log.info({ group: plan.name, shard: unit, mailboxes: u.mailboxes.length }, 'watch: this node watches the shard now');
            startOne(b);
          },
          async lost(unit) {
            const b = running.get(unit);
            // After close() every watcher is closed already.
            if (!b || closed) return;
            running.delete(unit);
            built = built.filter((x) => x !== b);
            await b.watcher.close();
          },
        });
      }
      void cluster.ownership.tick();
    }

    const status = (): WatchStatus => {
      const byGroup = new Map<string, GroupStatus>();
      const attention: WatchStatus['attention'] = [];
      for (const b of built) {
        const gs: GroupStatus = byGroup.get(b.group) ?? { group: b.group, kind: b.kind, listeners: 0, mailboxes: 0, states: {}, byListener: {} };
        gs.listeners++;
        const mine = (gs.byListener![b.watcher.listener] ??= { capacity: b.capacity, states: {} }).states;
        if (b.watcher.summary) {
          const counts: Record<string, number> = {};
          for (const s of b.watcher.summary(counts, MAX_ATTENTION - attention.length)) attention.push({ ...s, group: b.group });
          for (const [state, n] of Object.entries(counts)) {
            gs.mailboxes += n;
            gs.states[state] = (gs.states[state] ?? 0) + n;
            mine[state] = (mine[state] ?? 0) + n;
          }
        } else {
          for (const s of b.watcher.status()) {
            gs.mailboxes++;
            gs.states[s.state] = (gs.states[s.state] ?? 0) + 1;
            mine[s.state] = (mine[s.state] ?? 0) + 1;
            if (s.state !== 'watching' && attention.length < MAX_ATTENTION) attention.push({ ...s, group: b.group });
          }
        }
        byGroup.set(b.group, gs);
      }
      return {
        updatedAt: new Date(now()).toISOString(),
        ...(inbound ? { publicUrl: inbound.publicUrl } : {}),
        groups: [...byGroup.values()],
        attention,
        problems: [...problems],
        ...(hub ? { handoff: { ...hub.stats } } : {}),
        ...(ewsHub ? { ewsPush: { ...ewsHub.stats } } : {}),
      };
    };
    const writeStatus = () => o.kv.set(STATUS_NAMESPACE, STATUS_KEY, JSON.stringify(status())).catch((err: unknown) => log.debug({ err: (err as Error).message }, 'watch: status not written'));
    const timer = setInterval(writeStatus, o.statusEveryMs ?? 5_000);
    timer.unref();
    log.info({ groups: groups.length, watchers: built.length, mailboxes: plans.reduce((n, p) => n + p.assignments.reduce((k, a) => k + a.mailboxes.length, 0), 0) }, 'watch: started');
    return {
      // A getter: with several nodes the watchers come and go with their shards' leases.
      get watchers() {
        return built.map((b) => b.watcher);
      },
      ...(inboundUrl ? { inboundUrl } : {}),
      ...(inbound ? { inboundListening: inbound.listening } : {}),
      status,
      mailboxes: (group) => built.filter((b) => group === undefined || b.group === group).flatMap((b) => b.watcher.status().map((m) => ({ ...m, group: b.group }))),
      async close() {
        clearInterval(timer);
        await close();
        await o.kv.set(STATUS_NAMESPACE, STATUS_KEY, JSON.stringify({ ...status(), stopped: true })).catch(() => undefined);
      },
    };
  } catch (err) {
    await close();
    throw err;
  }
}
