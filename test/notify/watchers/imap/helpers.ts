/**
 * The IMAP watcher's end-to-end rig: the real notify store, the dispatcher and the webhook sink
 * posting to a local receiver, and a watcher built on them. The receiver keeps every request it
 * gets (webhook-id and body), so a test can count what an app would have seen.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MbError } from '../../../../src/errors/index.ts';
import { silentLogger, type Logger } from '../../../../src/log/index.ts';
import { createDispatcher, type Dispatcher } from '../../../../src/notify/dispatcher.ts';
import type { NotifyEvent } from '../../../../src/notify/events.ts';
import { createWebhookSink } from '../../../../src/notify/sinks/webhook.ts';
import { createImapWatcher, imapWatchSchema, type ImapWatcher } from '../../../../src/notify/watchers/imap/index.ts';
import type { TokenProvider, WatchedMailbox, WatcherContext } from '../../../../src/notify/watchers/types.ts';
import type { KeyValue } from '../../../../src/store/index.ts';
import { noJitter, subscription, tempStore, type TempStore } from '../../helpers.ts';
import { loopbackEgress } from '../../../support/egress.ts';

export interface Received {
  id: string;
  event: NotifyEvent;
}

export interface Receiver {
  url: string;
  got: Received[];
  of(mailbox: string, type?: NotifyEvent['type']): NotifyEvent[];
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const got: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: NotifyEvent };
      got.push({ id: String(req.headers['webhook-id']), event: body.data });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    got,
    of: (mailbox, type) => got.map((g) => g.event).filter((e) => e.mailbox === mailbox && (!type || e.type === type)),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface Pipeline {
  store: TempStore;
  dispatcher: Dispatcher;
  receiver: Receiver;
  problems: Array<{ mailbox: string | undefined; error: MbError }>;
  /** Every publish call's result, in order (duplicates included). */
  published: Array<{ event: NotifyEvent; duplicate: boolean }>;
  ctx(kv?: KeyValue): WatcherContext;
  close(): Promise<void>;
}

/** Store + dispatcher + webhook sink + receiver, with one webhook subscription for `mailboxes`. */
export async function startPipeline(mailboxes: string[]): Promise<Pipeline> {
  const store = await tempStore();
  const receiver = await startReceiver();
  await store.store.notify.createSubscription(
    subscription('webhook', mailboxes, { url: receiver.url, secret: `whsec_${randomBytes(32).toString('base64')}` }),
  );
  const dispatcher = createDispatcher({
    repo: store.store.notify,
    sinks: [createWebhookSink({ config: { timeoutSeconds: 10, requireHttps: false }, egress: loopbackEgress() })],
    retry: noJitter,
  });
  dispatcher.start();
  const problems: Pipeline['problems'] = [];
  const published: Pipeline['published'] = [];
  return {
    store,
    dispatcher,
    receiver,
    problems,
    published,
    ctx: (kv) => ({
      publish: async (event) => {
        const r = await dispatcher.publish(event);
        published.push({ event, duplicate: r.duplicate });
        return { duplicate: r.duplicate };
      },
      kv: kv ?? store.store.kv,
      log: silentLogger,
      now: Date.now,
      problem: (mailbox, error) => void problems.push({ mailbox, error }),
    }),
    async close() {
      await dispatcher.stop();
      await receiver.close();
      await store.cleanup();
    },
  };
}

export function watcherFor(
  p: Pipeline,
  server: { host?: string; port: number; tls?: 'implicit' | 'starttls' | 'none'; servername?: string },
  mailboxes: WatchedMailbox[],
  tokens: TokenProvider,
  extra: { ca?: string; kv?: KeyValue; options?: Record<string, unknown>; log?: Logger } = {},
): ImapWatcher {
  const options = imapWatchSchema.parse({
    host: server.host ?? '127.0.0.1',
    port: server.port,
    tls: server.tls ?? 'none',
    servername: server.servername,
    reconnect: { initialSeconds: 0.05, maxSeconds: 0.5 },
    ...extra.options,
  });
  const ctx = p.ctx(extra.kv);
  return createImapWatcher({ listener: 'test-listener', mailboxes, tokens, options, ctx: extra.log ? { ...ctx, log: extra.log } : ctx, ca: extra.ca });
}

/** A token provider that can be held shut: reconnects wait until it is opened again. */
export function gatedTokens(inner: TokenProvider): { tokens: TokenProvider; calls: () => number; hold(): void; release(): void } {
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  let calls = 0;
  return {
    tokens: async (mailbox) => {
      calls++;
      await gate;
      return inner(mailbox);
    },
    calls: () => calls,
    hold() {
      gate = new Promise((r) => (open = r));
    },
    release() {
      open?.();
      gate = undefined;
    },
  };
}
