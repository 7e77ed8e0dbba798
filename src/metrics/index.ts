/**
 * Operations metrics: every metric mailbridge exposes at GET /metrics (Prometheus text format,
 * prom-client), defined in this one file. Capabilities never import prom-client: they record through
 * the small `Recorder` interface below (or an event they already emit), and the gateway
 * (src/server/index.ts) wires them to it. Gauges that describe a state (queue depth, watcher
 * mailboxes, credential expiry, open SMTP sessions) are read from their owner when Prometheus
 * scrapes, through `sources`, so they cannot drift from what the CLI shows.
 *
 * Label cardinality is bounded: labels are route, connection, connector, group, sink, listener,
 * state, outcome, method and the HTTP route template (never a URL, address or message id). The only
 * per-mailbox labels are on the relay counters, as admins ask "which mailbox sends/bounces"; they
 * take at most MAX_MAILBOX_LABELS distinct values per process, later mailboxes count under
 * `mailbox="_other"`. Watcher mailboxes are counted per group and state, not per mailbox.
 *
 * Readiness also reads from here: the last token request of each connection (ok or the MbError),
 * which is the same observation the token counters make.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MbError } from '../errors/index.ts';

/** Distinct mailbox label values per process; more are counted as `_other`. */
export const MAX_MAILBOX_LABELS = 500;
export const OTHER_MAILBOX = '_other';

export type RelayOutcome = 'accepted' | 'delivered' | 'deferred' | 'bounced';
export type NotifyOutcome = 'delivered' | 'deferred' | 'gone' | 'expired';

export interface TokenResult {
  ok: boolean;
  at: number;
  error?: MbError;
}

/** What capabilities record; implemented by Metrics. */
export interface Recorder {
  relay(outcome: RelayOutcome, route: string, mailbox: string, latencySeconds?: number): void;
  token(connection: string, result: { ok: true } | { ok: false; error: MbError }): void;
  connector(connector: string, event: { type: string; redelivery?: boolean }): void;
  notifyPublished(type: string): void;
  notifyDelivery(sink: string, outcome: NotifyOutcome): void;
  smtpSession(listener: string): void;
  http(method: string, route: string, status: number): void;
}

/** Read at scrape time from the capabilities that own the state. */
export interface Sources {
  queueCounts?: () => Promise<Record<string, number>>;
  watchStates?: () => Array<{ group: string; kind: string; states: Record<string, number> }>;
  /** Secret expiry from the config (clientSecretExpires) or the certificate's notAfter. */
  credentials?: () => Promise<Array<{ connection: string; kind: string; expires: Date }>>;
  smtpOpen?: () => Promise<Array<{ listener: string; open: number }>>;
  /** This node (src/cluster/node.ts) and the leases it holds per pool. */
  node?: () => { id: string; name: string; version: string; role: string; owns: Record<string, number> };
  /** Nodes sharing the store, live and not (their heartbeat stopped); on PostgreSQL the relay messages each holds claimed. */
  clusterNodes?: () => Promise<{ live: number; dead: number; relayClaimed?: Array<{ id: string; name: string; claimed: number }> }>;
}

/** What a gauge shows: its label values and the number, one row a series. */
type Rows<L extends string> = ReadonlyArray<readonly [Partial<Record<L, string>>, number]>;

export class Metrics implements Recorder {
  readonly registry = new Registry();
  readonly sources: Sources = {};
  /** Last token request per connection: the readiness check reads it. */
  readonly lastToken = new Map<string, TokenResult>();
  private readonly mailboxes = new Set<string>();
  private readonly relayMessages: Counter<'outcome' | 'route' | 'mailbox'>;
  private readonly relayLatency: Histogram<'route'>;
  private readonly tokenRequests: Counter<'connection'>;
  private readonly tokenFailures: Counter<'connection' | 'code'>;
  private readonly connectorMessages: Counter<'connector' | 'outcome'>;
  private readonly notifyEvents: Counter<'type'>;
  private readonly notifyDeliveries: Counter<'sink' | 'outcome'>;
  private readonly smtpSessions: Counter<'listener'>;
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;

  constructor(options: { processMetrics?: boolean } = {}) {
    const r = [this.registry];
    const sources = this.sources;
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'mailbridge_' });
    this.relayMessages = new Counter({
      name: 'mailbridge_relay_messages_total',
      help: 'Relay messages by outcome (accepted, delivered, deferred = one failed attempt to retry, bounced), route and sending mailbox',
      labelNames: ['outcome', 'route', 'mailbox'],
      registers: r,
    });
    this.relayLatency = new Histogram({
      name: 'mailbridge_relay_delivery_seconds',
      help: 'Time from acceptance to delivery of a relay message, by route',
      labelNames: ['route'],
      buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400],
      registers: r,
    });
    /**
     * A gauge read from its owner at scrape time: the rows `read` returns replace the last ones;
     * undefined (no owner in this process, or the owner could not answer) keeps what was shown.
     */
    const gauge = <L extends string>(name: string, help: string, labelNames: L[], read: () => Rows<L> | undefined | Promise<Rows<L> | undefined>) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers: r,
        async collect() {
          const rows = await read();
          if (!rows) return;
          this.reset();
          for (const [labels, n] of rows) this.set(labels, n);
        },
      });
    gauge('mailbridge_relay_queue_messages', 'Relay queue depth by state (incoming, active, deferred, held, sent, bounced, …)', ['state'], async () =>
      sources.queueCounts ? Object.entries(await sources.queueCounts()).map(([state, n]) => [{ state }, n]) : undefined,
    );
    this.tokenRequests = new Counter({ name: 'mailbridge_token_requests_total', help: 'Token requests to Entra ID (not served from the cache) by connection', labelNames: ['connection'], registers: r });
    this.tokenFailures = new Counter({ name: 'mailbridge_token_failures_total', help: 'Failed token requests by connection and MB code', labelNames: ['connection', 'code'], registers: r });
    gauge(
      'mailbridge_credential_expiry_timestamp_seconds',
      'When a connection\'s client secret (clientSecretExpires) or certificate (notAfter) expires, Unix time',
      ['connection', 'kind'],
      async () => sources.credentials && (await sources.credentials()).map((c) => [{ connection: c.connection, kind: c.kind }, Math.floor(c.expires.getTime() / 1000)]),
    );
    this.connectorMessages = new Counter({
      name: 'mailbridge_connector_messages_total',
      help: 'Fetched messages by connector and outcome (delivered, redelivered, rejected = quarantined, duplicate)',
      labelNames: ['connector', 'outcome'],
      registers: r,
    });
    gauge('mailbridge_watch_mailboxes', 'Watched mailboxes by group and state (watching, catching-up, reconnecting, failed, …)', ['group', 'kind', 'state'], () =>
      sources.watchStates?.().flatMap((g) => Object.entries(g.states).map(([state, n]) => [{ group: g.group, kind: g.kind, state }, n] as const)),
    );
    gauge('mailbridge_node_info', 'This node: always 1, its id (new at each start), name, version and role as labels', ['id', 'name', 'version', 'role'], () => {
      const n = sources.node?.();
      return n && [[{ id: n.id, name: n.name, version: n.version, role: n.role }, 1]];
    });
    gauge('mailbridge_node_owned', 'Leases this node holds by pool (connector:<name> per mailbox, watch:<group> per shard)', ['pool'], () => {
      const n = sources.node?.();
      return n && Object.entries(n.owns).map(([pool, count]) => [{ pool }, count]);
    });
    gauge(
      'mailbridge_cluster_nodes',
      'Nodes sharing the store by state (live: heartbeat within the lease time; dead: stopped within the last day)',
      ['state'],
      async () => {
        const c = await sources.clusterNodes?.().catch(() => undefined);
        return c && [[{ state: 'live' }, c.live], [{ state: 'dead' }, c.dead]];
      },
    );
    gauge(
      'mailbridge_cluster_relay_claimed',
      'Relay messages each node of the store holds claimed (being delivered), by node id and name; a stopped node\'s until a live node takes them over (PostgreSQL)',
      ['node', 'name'],
      async () => {
        if (!sources.clusterNodes) return undefined;
        const c = await sources.clusterNodes().catch(() => undefined);
        // Nodes come and go (a new id at every start): only those of now are shown, none when the store does not answer.
        return (c?.relayClaimed ?? []).map((n) => [{ node: n.id, name: n.name }, n.claimed]);
      },
    );
    this.notifyEvents = new Counter({ name: 'mailbridge_notify_events_published_total', help: 'Events published to the dispatcher (duplicates not counted), by type', labelNames: ['type'], registers: r });
    this.notifyDeliveries = new Counter({
      name: 'mailbridge_notify_deliveries_total',
      help: 'Event delivery attempts by sink (webhook, webpush, apns, fcm) and outcome (delivered, deferred = failed and retried, gone, expired = failed for good)',
      labelNames: ['sink', 'outcome'],
      registers: r,
    });
    this.smtpSessions = new Counter({ name: 'mailbridge_smtp_sessions_total', help: 'SMTP connections accepted by a relay listener (host:port)', labelNames: ['listener'], registers: r });
    gauge('mailbridge_smtp_sessions_open', 'SMTP connections open now per relay listener', ['listener'], async () =>
      sources.smtpOpen && (await sources.smtpOpen()).map((l) => [{ listener: l.listener }, l.open]),
    );
    this.httpRequests = new Counter({ name: 'mailbridge_http_requests_total', help: 'HTTP requests by method, route template and status', labelNames: ['method', 'route', 'status'], registers: r });
  }

  relay(outcome: RelayOutcome, route: string, mailbox: string, latencySeconds?: number): void {
    this.relayMessages.inc({ outcome, route, mailbox: this.mailboxLabel(mailbox) });
    if (latencySeconds !== undefined) this.relayLatency.observe({ route }, latencySeconds);
  }

  token(connection: string, result: { ok: true } | { ok: false; error: MbError }): void {
    this.tokenRequests.inc({ connection });
    if (!result.ok) this.tokenFailures.inc({ connection, code: result.error.code });
    this.lastToken.set(connection, { ok: result.ok, at: Date.now(), ...(result.ok ? {} : { error: result.error }) });
  }

  connector(connector: string, event: { type: string; redelivery?: boolean }): void {
    if (event.type === 'delivered') this.connectorMessages.inc({ connector, outcome: event.redelivery ? 'redelivered' : 'delivered' });
    else if (event.type === 'rejected' || event.type === 'duplicate') this.connectorMessages.inc({ connector, outcome: event.type });
  }

  notifyPublished(type: string): void {
    this.notifyEvents.inc({ type });
  }

  notifyDelivery(sink: string, outcome: NotifyOutcome): void {
    this.notifyDeliveries.inc({ sink, outcome });
  }

  smtpSession(listener: string): void {
    this.smtpSessions.inc({ listener });
  }

  http(method: string, route: string, status: number): void {
    this.httpRequests.inc({ method, route, status: String(status) });
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private mailboxLabel(mailbox: string): string {
    const m = mailbox.toLowerCase();
    if (this.mailboxes.has(m)) return m;
    if (this.mailboxes.size >= MAX_MAILBOX_LABELS) return OTHER_MAILBOX;
    this.mailboxes.add(m);
    return m;
  }
}

/** Names of every metric mailbridge defines (for the docs/monitoring check). */
export function metricNames(): string[] {
  const m = new Metrics();
  return m.registry.getMetricsAsArray().map((x) => x.name);
}
