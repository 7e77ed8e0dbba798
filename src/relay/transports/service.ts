/**
 * The relay as the gateway runs it: listeners and queue (../index.ts) with the routed transport,
 * tokens from identity, and the admin mails at start and stop. `serve` calls this when mailbridge.yaml
 * has a `relay:` section.
 */
import { hostname as osHostname } from 'node:os';
import type { RelayConfig } from '../config.ts';
import type { Logger } from '../../log/index.ts';
import type { Store } from '../../store/index.ts';
import type { Clock } from '../../util/clock.ts';
import { startRelay, type Relay, type RelayOptions } from '../index.ts';
import { queueAdminMail, waitSent } from './admin-mail.ts';
import type { AdminMailConfig } from '../config.ts';
import { RoutedTransport, type TransportSettings } from './index.ts';
import type { TokenSource, TransportRegistry } from './types.ts';

export const VERSION = '0.1.0';

export interface RelayServiceOptions {
  config: TransportSettings & { relay: RelayConfig };
  store: Store;
  log: Logger;
  tokens: TokenSource;
  /** The transports a route can name (src/app/plugins.ts). */
  transports: TransportRegistry;
  clock?: Clock;
  env?: NodeJS.ProcessEnv;
  /** Where bodies live and whether nodes share the store (src/app/relay.ts). */
  storage?: Pick<RelayOptions, 'spool' | 'cluster'>;
}

export interface RelayService {
  relay: Relay;
  transport: RoutedTransport;
  /**
   * Queues the stop mail (if configured), waits up to its grace for it, then closes the relay,
   * letting deliveries finish for up to `graceMs`. `graceMs: 0` closes at once, without a stop mail
   * (a start that failed half-way).
   */
  close(reason?: string, graceMs?: number): Promise<void>;
}

export async function startRelayService(o: RelayServiceOptions): Promise<RelayService> {
  const relayConfig = o.config.relay;
  const hostname = relayConfig.hostname ?? osHostname();
  const log = o.log.child({ component: 'relay' });
  const transport = new RoutedTransport({
    config: o.config,
    routes: relayConfig.routes,
    transports: o.transports,
    tokens: o.tokens,
    hostname,
    log,
    ...(o.env ? { env: o.env } : {}),
  });
  if (transport.router.size === 0) {
    log.warn({ mb: 'MB_RELAY_NO_ROUTE' }, 'relay: relay.routes is empty, so accepted messages wait in the queue until a route is configured');
  }
  let relay: Relay;
  try {
    relay = await startRelay({
      config: relayConfig,
      store: o.store,
      log: o.log,
      transport,
      mailboxFor: transport.mailboxFor,
      ...(o.clock ? { clock: o.clock } : {}),
      ...o.storage,
    });
  } catch (err) {
    await transport.close();
    throw err;
  }
  const started = Date.now();
  const admin: AdminMailConfig | undefined = relayConfig.adminMail;
  const facts = async (note?: string) => ({
    hostname,
    version: VERSION,
    listeners: relay.listeners.map((l) => `${l.host}:${l.port} (${l.tls})`),
    counts: Object.fromEntries(Object.entries(await relay.queue.counts()).filter(([, n]) => n > 0)),
    ...(note ? { note } : {}),
  });
  if (admin?.events.includes('start')) {
    const r = relay.recovery;
    const note = r.requeued || r.corrupt.length ? `recovered after an unclean stop: ${r.requeued} requeued, ${r.corrupt.length} held as corrupt` : undefined;
    await queueAdminMail(relay.queue, admin, 'start', await facts(note)).catch((err: Error) => log.error({ err: err.message }, 'relay: could not queue the start mail'));
  }
  let closed = false;
  return {
    relay,
    transport,
    async close(reason?: string, graceMs?: number) {
      if (closed) return;
      closed = true;
      if (admin?.events.includes('stop') && graceMs !== 0) {
        try {
          const f = { ...(await facts(reason)), uptimeSeconds: Math.round((Date.now() - started) / 1000) };
          const id = await queueAdminMail(relay.queue, admin, 'stop', f);
          if (!(await waitSent(relay.queue, id, admin.stopWaitSeconds * 1000))) {
            log.warn({ id }, 'relay: the stop mail was not sent in time; it stays queued and goes out at the next start');
          }
        } catch (err) {
          log.error({ err: (err as Error).message }, 'relay: could not queue the stop mail');
        }
      }
      await relay.close(graceMs);
    },
  };
}
