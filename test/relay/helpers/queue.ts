/** A Queue on a temporary SQLite store and spool, with a manual clock, for queue and manager tests. */
import { once } from 'node:events';
import { join } from 'node:path';
import type { Clock } from '../../../src/util/clock.ts';
import { Queue, type BounceOptions } from '../../../src/relay/queue/index.ts';
import { parseSchedule } from '../../../src/relay/queue/schedule.ts';
import { FileSpool } from '../../../src/relay/queue/spool.ts';
import { QueueTrace } from '../../../src/relay/queue/trace.ts';
import type { QueueRecord } from '../../../src/store/queue.ts';
import { openStore, type Store } from '../../../src/store/index.ts';
import { collectingLogger, ManualClock, type LogLine } from './index.ts';
import { tempDir } from '../../support/temp.ts';

export interface QueueFixture {
  queue: Queue;
  store: Store;
  spool: FileSpool;
  clock: ManualClock;
  lines: LogLine[];
  dir: string;
  enqueue(m?: { sender?: string; recipients?: string[]; body?: string | Buffer }): Promise<QueueRecord>;
  /** A second Queue on the same store and spool, as after a restart. */
  reopen(): Promise<Queue>;
  close(): Promise<void>;
}

export async function queueFixture(
  options: { schedule?: string; bounces?: BounceOptions; clock?: ManualClock; dir?: string; keepMs?: number } = {},
): Promise<QueueFixture> {
  const owned = options.dir ? undefined : tempDir('mb-queue-');
  const dir = options.dir ?? owned!.path;
  const clock = options.clock ?? new ManualClock();
  const store = await openStore({ driver: 'sqlite', path: join(dir, 'mb.db') });
  const { log, lines } = collectingLogger();
  const make = async () => {
    const spool = new FileSpool(join(dir, 'spool'));
    await spool.open({ lock: false });
    return new Queue({
      repo: store.queue,
      spool,
      log,
      clock: clock as Clock,
      retrySchedule: parseSchedule(options.schedule ?? '1m, 5m*2'),
      hostname: 'relay.test',
      bounces: options.bounces ?? { notify: 'sender' },
      trace: new QueueTrace(store.kv),
      ...(options.keepMs !== undefined ? { keepMs: options.keepMs } : {}),
    });
  };
  const queue = await make();
  return {
    queue,
    store,
    spool: queue.spool as FileSpool,
    clock,
    lines,
    dir,
    enqueue: (m = {}) => enqueue(queue, m),
    reopen: make,
    async close() {
      await store.close();
      owned?.remove();
    },
  };
}

let seq = 0;
export async function enqueue(queue: Queue, m: { sender?: string; recipients?: string[]; body?: string | Buffer } = {}): Promise<QueueRecord> {
  const id = queue.newId();
  const body = m.body ?? `Message-ID: <m${++seq}@contoso.com>\r\nFrom: ${m.sender ?? 'app@contoso.com'}\r\nSubject: test ${seq}\r\n\r\nbody ${seq}\r\n`;
  const w = queue.spool.createWriter(id);
  w.end(typeof body === 'string' ? Buffer.from(body) : body);
  await once(w, 'close');
  return queue.accept({
    id,
    sender: m.sender ?? 'app@contoso.com',
    recipients: m.recipients ?? ['alice@example.com'],
    clientIp: '192.0.2.10',
    size: Buffer.byteLength(body),
    bodyType: '7bit',
    smtpUtf8: false,
  });
}
