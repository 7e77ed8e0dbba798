/**
 * The SMTP relay: legacy applications hand mail over plain SMTP (with a password or from an allowed
 * network), mailbridge stores it durably and delivers it to Microsoft 365 through a Transport.
 *
 *   listener.ts ──▶ queue/ (spool files + rows in the store) ──▶ queue/manager.ts ──▶ Transport
 *
 * Strategies: fsync + commit before 250 (group commit); Postfix-style queue states moved by one
 * module (queue/index.ts); per-mailbox concurrency and rate limits (Microsoft's: 3 at once, 30 per
 * minute); retries on a Haraka-style schedule, then an RFC 3464 bounce report with the MB code's
 * cause and fix. At-least-once: a crash during an attempt may deliver that message twice, never zero
 * times.
 *
 * Limits: one relay process per spool directory (a lock file enforces it); per-mailbox limits are
 * per process — unless the composition root (src/app/relay.ts) hands in the store spool and
 * `cluster`: then bodies, claims (with leases) and per-mailbox limits live in the shared
 * PostgreSQL database and any number of nodes relay together. Routing (which connection, mailbox and transport send a sender's mail) lives in
 * routing.ts and transports/ (RoutedTransport, with `mailboxFor` for the queue's pacing key);
 * transports/service.ts starts the relay with them, as `serve` does. Without `mailboxFor` the
 * sending mailbox is the envelope sender.
 */
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../log/index.ts';
import type { Store } from '../store/index.ts';
import { systemClock, type Clock } from '../util/clock.ts';
import { relaySchema, type RelayConfig } from './config.ts';
import { startListeners, type RunningListener } from './listener.ts';
import { Queue, type ClusterOptions, type RecoveryReport } from './queue/index.ts';
import { QueueManager } from './queue/manager.ts';
import { parseSchedule } from './queue/schedule.ts';
import { FileSpool, type Spool } from './queue/spool.ts';
import { QueueTrace } from './queue/trace.ts';
import { loadTls, type TlsMaterial } from './tls.ts';
import type { Transport } from './transport.ts';

export type { RelayConfig } from './config.ts';
export type { Transport, OutboundMessage, SendResult, SendFailure } from './transport.ts';
export type { Clock } from '../util/clock.ts';

export interface RelayOptions {
  /** The `relay:` section (parsed, defaults applied). */
  config: RelayConfig;
  store: Store;
  log: Logger;
  transport: Transport;
  /** Tests drive time with their own clock. */
  clock?: Clock;
  /** The sending mailbox of a message (routing); default: its envelope sender. */
  mailboxFor?: (envelope: { sender: string; relayUser?: string }) => string;
  /** Where bodies live (src/app/relay.ts chooses by the store driver); default: the spool folder in dataDir. */
  spool?: Spool;
  /** Several nodes share the store: claims with leases, limits kept in the store. */
  cluster?: ClusterOptions;
}

export interface Relay {
  listeners: Array<Pick<RunningListener, 'host' | 'port' | 'tls' | 'server'>>;
  queue: Queue;
  manager: QueueManager;
  tls: Pick<TlsMaterial, 'cert' | 'source' | 'certPath'>;
  recovery: RecoveryReport;
  /** Stops listening, lets deliveries finish (up to `graceMs`), releases the spool. */
  close(graceMs?: number): Promise<void>;
}

/** Opens the queue (spool + store) without listening or delivering: for `mailbridge queue`. */
export async function openQueue(options: {
  config?: RelayConfig;
  store: Store;
  log: Logger;
  clock?: Clock;
  /** Take the spool lock and recover (only the process that delivers does). */
  exclusive?: boolean;
  mailboxFor?: RelayOptions['mailboxFor'];
  spool?: Spool;
  cluster?: ClusterOptions;
}): Promise<Queue> {
  const config = options.config ?? relaySchema.parse({});
  const spool = options.spool ?? new FileSpool(join(config.dataDir, 'spool'));
  await spool.open({ lock: options.exclusive ?? false });
  const queue = new Queue({
    repo: options.store.queue,
    spool,
    log: options.log,
    ...(options.clock ? { clock: options.clock } : {}),
    retrySchedule: parseSchedule(config.queue.retrySchedule),
    hostname: config.hostname ?? osHostname(),
    bounces: config.bounces,
    keepMs: config.queue.keepDays * 86_400_000,
    ...(options.mailboxFor ? { mailboxFor: options.mailboxFor } : {}),
    trace: new QueueTrace(options.store.kv),
    ...(options.cluster ? { cluster: options.cluster } : {}),
  });
  return queue;
}

export async function startRelay(options: RelayOptions): Promise<Relay> {
  const { config, log: parentLog, transport } = options;
  const log = parentLog.child({ component: 'relay' });
  const clock = options.clock ?? systemClock;
  const hostname = config.hostname ?? osHostname();

  const queue = await openQueue({
    config,
    store: options.store,
    log,
    clock,
    exclusive: true,
    ...(options.mailboxFor ? { mailboxFor: options.mailboxFor } : {}),
    ...(options.spool ? { spool: options.spool } : {}),
    ...(options.cluster ? { cluster: options.cluster } : {}),
  });
  let listeners: Awaited<ReturnType<typeof startListeners>> | undefined;
  let manager: QueueManager | undefined;
  try {
    const recovery = await queue.recover();
    const tls = await loadTls({ ...config.tls, dataDir: config.dataDir, hostname, log });
    manager = new QueueManager({
      queue,
      transport,
      log,
      clock,
      concurrencyPerMailbox: config.queue.concurrencyPerMailbox,
      ratePerMinute: config.queue.ratePerMinute,
      recipientsPerDay: config.queue.recipientsPerDay,
      maxConcurrency: config.queue.maxConcurrency,
      receivingConcurrency: config.queue.concurrencyWhileReceiving,
      sendTimeoutMs: config.queue.sendTimeoutSeconds * 1000,
      pollMs: config.queue.pollSeconds * 1000,
      ...(options.cluster ? { cluster: options.cluster } : {}),
    });
    // Deliver what survived the last run before taking new mail.
    manager.start();
    listeners = await startListeners({ config, hostname, queue, log, clock, tls });
    const running = listeners;
    const started = manager;
    let closed = false;
    return {
      listeners: running.listeners.map(({ host, port, tls: mode, server }) => ({ host, port, tls: mode, server })),
      queue,
      manager: started,
      tls: { cert: tls.cert, source: tls.source, certPath: tls.certPath },
      recovery,
      async close(graceMs = 10_000) {
        if (closed) return;
        closed = true;
        await running.close();
        await started.stop(graceMs);
        await transport.close?.();
        await queue.spool.close();
      },
    };
  } catch (err) {
    await listeners?.close();
    await manager?.stop(0);
    await queue.spool.close();
    throw err;
  }
}
