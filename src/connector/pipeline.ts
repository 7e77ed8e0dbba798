/**
 * The exactly-once pipeline for one mailbox folder: list what is new since the checkpoint, fetch it,
 * hand it to the destination, record the outcome durably, and only then mark, move or delete it.
 *
 * Order per message (each step durable before the next):
 *   1. in-flight entry written (store, fsynced)
 *   2. destination acknowledges (250 / 2xx / exit 0 / file renamed into new/ and the dir fsynced)
 *   3. outcome recorded + in-flight entry removed + position advanced, in one transaction (fsynced)
 *   4. after-delivery action for the batch, then the rows marked done
 * A crash between 3 and 4 only delays the action (done on the next run from the `delivered` rows).
 * A crash between 2 and 3 is the one window no protocol can close: the destination has the message
 * but the store does not know. The in-flight entry survives it, so the next run delivers exactly
 * those messages again as redeliveries with the same delivery ID: a maildir finds its file by that
 * ID and writes nothing, an HTTP receiver gets the same Idempotency-Key, a command the same
 * MAILBRIDGE_DELIVERY_ID, an LMTP/SMTP server the same X-Mailbridge-Delivery-Id (deliveryIdHeader;
 * Dovecot drops it with share/sieve/mailbridge-dedupe.sieve); a receiver that deduplicates by none
 * of these can show such a message twice, and the run reports it (MB_CONNECTOR_REDELIVERED). At most
 * `window` messages per folder are in that window at any moment (one per recipient set for LMTP/SMTP
 * with deliveryIdHeader). The outcome is recorded per message as soon as it is acknowledged.
 *
 * A UIDVALIDITY change starts a new epoch: messages numbered below the UIDNEXT seen at the change
 * are first looked up by key (Message-ID, or a content hash) among earlier deliveries and skipped
 * when found. A temporary destination failure keeps the message (nothing is recorded, nothing is
 * marked) and retries with backoff; a permanent one records the refusal and leaves the message in
 * the mailbox untouched.
 */
import type { Logger } from '../log/index.ts';
import { silentLogger } from '../log/index.ts';
import { MbError, toMbError } from '../errors/index.ts';
import type { CheckpointRepository, CheckpointScope, InFlightEntry, MessageState } from '../store/checkpoints.ts';
import { Backoff, Semaphore, sleep } from '../util/limits.ts';
import { deliveryIdOf, messageIdOf, messageKey, mimeProblem } from './message.ts';
import {
  ConnectorError,
  describeAction,
  type AfterAction,
  type ConnectorEvent,
  type Destination,
  type FetchedMessage,
  type ListedItem,
  type SourceSession,
} from './types.ts';

export interface PipelineOptions {
  connector: string;
  repo: CheckpointRepository;
  destination: Destination;
  after: AfterAction;
  /** Deliveries in flight at once per folder. */
  window: number;
  maxMessageBytes: number;
  /** Raw bytes fetched per source request (at least one message). */
  fetchBytes: number;
  retry: { initialMs: number; maxMs: number; /** Give up (throw) after this many temporary failures of one message; unset = never. */ attempts?: number };
  /** How long rows of moved/deleted messages are kept (they can no longer be seen again). */
  keepMs: number;
  emit(e: ConnectorEvent): void;
  log?: Logger;
  signal: AbortSignal;
  /** Deliver again what the destination refused for good before. */
  retryRejected?: boolean;
}

export interface SyncResult {
  delivered: number;
  bytes: number;
  rejected: number;
  duplicates: number;
  redelivered: number;
}

/** Highest position up to which every listed item is finished. */
class Watermark {
  private readonly order: number[];
  private readonly finished = new Set<number>();
  private i = 0;
  position: number | undefined;

  constructor(uids: number[]) {
    this.order = uids;
  }

  finish(uid: number | undefined): number | undefined {
    if (uid === undefined) return undefined;
    this.finished.add(uid);
    const before = this.i;
    while (this.i < this.order.length && this.finished.has(this.order[this.i]!)) this.i++;
    if (this.i === before) return undefined;
    this.position = this.order[this.i - 1]!;
    return this.position;
  }
}

export async function syncFolder(o: PipelineOptions, session: SourceSession, folder: string): Promise<SyncResult> {
  const log = (o.log ?? silentLogger).child({ mailbox: session.mailbox, folder });
  const scope: CheckpointScope = { connector: o.connector, mailbox: session.mailbox, folder };
  const result: SyncResult = { delivered: 0, bytes: 0, rejected: 0, duplicates: 0, redelivered: 0 };
  const state = await session.open(folder);
  const epoch = state.epoch;

  let cp = await o.repo.get(scope);
  if (!cp) {
    await o.repo.setEpoch(scope, epoch, 0);
  } else if (cp.epoch !== epoch) {
    const warning = new MbError('MB_CONNECTOR_UIDVALIDITY_CHANGED', { mailbox: session.mailbox, folder, old: cp.epoch, new: epoch });
    o.emit({ type: 'warning', scope, error: warning });
    log.warn({ code: warning.code, old: cp.epoch, new: epoch }, warning.message);
    // Everything that exists now may have been delivered under the old numbering.
    await o.repo.setEpoch(scope, epoch, state.next > 0 ? state.next : Number.MAX_SAFE_INTEGER);
  }
  cp = (await o.repo.get(scope))!;

  // Messages whose fate is unknown because an earlier run stopped while they were in flight.
  const crashed = new Map<string, InFlightEntry>();
  for (const e of await o.repo.inFlight(scope)) if (e.epoch === epoch) crashed.set(e.item, e);

  // After-delivery actions an earlier run could not finish.
  const pending = await o.repo.byState(scope, epoch, 'delivered');
  if (pending.length > 0) await runAction(o, session, scope, epoch, pending.map((r) => r.item), log);

  if (o.retryRejected) {
    const rejected = await o.repo.byState(scope, epoch, 'rejected');
    if (rejected.length > 0) {
      const items = rejected.map((r): ListedItem => (/^\d+$/.test(r.item) ? { item: r.item, uid: Number(r.item) } : { item: r.item }));
      await processItems(o, session, scope, epoch, cp.dedupeBelow, items, crashed, result, log, true);
    }
  }

  for await (const batch of session.list(folder, { position: cp.position, cursor: cp.cursor })) {
    o.signal.throwIfAborted();
    if (batch.warning) {
      o.emit({ type: 'warning', scope, error: batch.warning });
      log.warn({ code: batch.warning.code }, batch.warning.message);
    }
    await processItems(o, session, scope, epoch, cp.dedupeBelow, batch.items, crashed, result, log, false);
    await o.repo.advance(scope, batch.advance);
  }

  // In-flight entries whose message was not listed again no longer exist in the folder.
  for (const e of crashed.values()) await o.repo.abandon(scope, e.epoch, e.item);

  if (o.after.action === 'move' || o.after.action === 'delete') {
    await o.repo.prune(scope, new Date(Date.now() - o.keepMs), ['done']);
  }
  o.emit({ type: 'synced', scope, delivered: result.delivered });
  return result;
}

async function processItems(
  o: PipelineOptions,
  session: SourceSession,
  scope: CheckpointScope,
  epoch: string,
  dedupeBelow: number,
  items: ListedItem[],
  crashed: Map<string, InFlightEntry>,
  result: SyncResult,
  log: Logger,
  retrying: boolean,
): Promise<void> {
  if (items.length === 0) return;
  const known = await o.repo.lookup(scope, epoch, items.map((i) => i.item));
  const mark = new Watermark(retrying ? [] : items.filter((i) => i.uid !== undefined).map((i) => i.uid!));
  const todo: ListedItem[] = [];
  for (const it of items) {
    const k = known.get(it.item);
    if (k && !(retrying && k.state === 'rejected')) {
      mark.finish(it.uid);
      crashed.delete(it.item);
      continue;
    }
    if (it.size !== undefined && it.size > o.maxMessageBytes) {
      const error = new ConnectorError(
        'MB_CONNECTOR_MESSAGE_TOO_LARGE',
        { item: it.item, mailbox: scope.mailbox, folder: scope.folder, size: it.size, limit: o.maxMessageBytes, connector: o.connector },
        { permanent: true },
      );
      await o.repo.record(scope, { epoch, item: it.item, key: `size:${it.size}:${it.item}`, state: 'rejected', code: error.code, size: it.size }, pos(mark.finish(it.uid)));
      crashed.delete(it.item);
      result.rejected++;
      o.emit({ type: 'rejected', scope, item: it.item, error });
      continue;
    }
    todo.push(it);
  }

  // Fetch in groups bounded by bytes; the next group is fetched while this one is delivered.
  const groups: ListedItem[][] = [];
  let cur: ListedItem[] = [];
  let bytes = 0;
  for (const it of todo) {
    if (cur.length > 0 && bytes + (it.size ?? 0) > o.fetchBytes) {
      groups.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(it);
    bytes += it.size ?? 0;
  }
  if (cur.length > 0) groups.push(cur);

  let next: Promise<FetchedMessage[]> | undefined = groups.length > 0 ? session.fetch(scope.folder, groups[0]!) : undefined;
  next?.catch(() => undefined);
  for (let g = 0; g < groups.length; g++) {
    const messages = await next!;
    next = g + 1 < groups.length ? session.fetch(scope.folder, groups[g + 1]!) : undefined;
    next?.catch(() => undefined);
    const got = new Set(messages.map((m) => m.item));
    // Listed but gone by the time it was fetched (moved or deleted by someone else): nothing to deliver.
    for (const it of groups[g]!) if (!got.has(it.item)) mark.finish(it.uid);
    const { acked, failure } = await deliverGroup(o, scope, epoch, dedupeBelow, messages, crashed, mark, result, log);
    // What was acknowledged is recorded; its action runs even when the rest of the group failed.
    if (acked.length > 0) await runAction(o, session, scope, epoch, acked, log);
    if (failure !== undefined) throw failure;
  }
}

function pos(position: number | undefined): { position: number } | undefined {
  return position === undefined ? undefined : { position };
}

/** Delivers a group with at most `window` in flight; returns the items the destination acknowledged and the first failure. */
async function deliverGroup(
  o: PipelineOptions,
  scope: CheckpointScope,
  epoch: string,
  dedupeBelow: number,
  messages: FetchedMessage[],
  crashed: Map<string, InFlightEntry>,
  mark: Watermark,
  result: SyncResult,
  log: Logger,
): Promise<{ acked: string[]; failure: unknown }> {
  const keyed = messages.map((m) => ({ m, key: messageKey(m.raw) }));
  // After a folder rebuild: skip what was delivered under the old numbering.
  const suspects = keyed.filter(({ m }) => m.uid !== undefined && m.uid < dedupeBelow).map(({ key }) => key);
  const seen = suspects.length > 0 ? await o.repo.deliveredKeys(scope, suspects, epoch) : new Set<string>();

  const acked: string[] = [];
  const window = new Semaphore(o.window);
  let failure: unknown;
  const runs = keyed.map(async ({ m, key }) => {
    await window.acquire();
    // The window bounds what the destination holds at once: a slot frees when the destination has
    // answered, so the next message goes out while this one's checkpoint is still being written.
    let held = true;
    const release = () => {
      if (held) window.release();
      held = false;
    };
    try {
      if (failure || o.signal.aborted) return;
      if (m.raw.length > o.maxMessageBytes) {
        // Sources that do not tell the size up front (Graph) are checked once the message is here.
        const error = new ConnectorError(
          'MB_CONNECTOR_MESSAGE_TOO_LARGE',
          { item: m.item, mailbox: scope.mailbox, folder: scope.folder, size: m.raw.length, limit: o.maxMessageBytes, connector: o.connector },
          { permanent: true },
        );
        await o.repo.record(scope, { epoch, item: m.item, key, state: 'rejected', code: error.code, size: m.raw.length }, pos(mark.finish(m.uid)));
        crashed.delete(m.item);
        result.rejected++;
        o.emit({ type: 'rejected', scope, item: m.item, error });
        return;
      }
      if (seen.has(key)) {
        await o.repo.record(scope, { epoch, item: m.item, key, state: stateAfter(o), size: m.raw.length }, pos(mark.finish(m.uid)));
        crashed.delete(m.item);
        result.duplicates++;
        o.emit({ type: 'duplicate', scope, item: m.item, key });
        if (o.after.action !== 'none') acked.push(m.item);
        return;
      }
      const outcome = await deliverOne(o, scope, epoch, m, key, crashed.get(m.item), mark, result, log, release);
      crashed.delete(m.item);
      if (outcome === 'delivered' && o.after.action !== 'none') acked.push(m.item);
    } catch (err) {
      failure ??= err;
    } finally {
      release();
    }
  });
  await Promise.all(runs);
  return { acked: acked.sort((a, b) => Number(a) - Number(b)), failure };
}

function stateAfter(o: PipelineOptions): MessageState {
  return o.after.action === 'none' ? 'done' : 'delivered';
}

async function deliverOne(
  o: PipelineOptions,
  scope: CheckpointScope,
  epoch: string,
  m: FetchedMessage,
  key: string,
  crashed: InFlightEntry | undefined,
  mark: Watermark,
  result: SyncResult,
  log: Logger,
  answered: () => void,
): Promise<'delivered' | 'rejected'> {
  const deliveryId = deliveryIdOf(scope, epoch, m.item);
  const redelivery = crashed !== undefined;
  const problem = mimeProblem(m.raw);
  if (problem) {
    const warning = new MbError('MB_CONNECTOR_MIME_MALFORMED', { item: m.item, mailbox: scope.mailbox, folder: scope.folder, detail: problem });
    o.emit({ type: 'warning', scope, item: m.item, error: warning });
    log.warn({ code: warning.code, item: m.item, problem }, warning.message);
  }
  await o.repo.begin(scope, { epoch, item: m.item, key, deliveryId });
  const backoff = new Backoff({ initialMs: o.retry.initialMs, maxMs: o.retry.maxMs });
  for (let attempt = 1; ; attempt++) {
    o.signal.throwIfAborted();
    try {
      await o.destination.deliver({
        raw: m.raw,
        deliveryId,
        connector: o.connector,
        mailbox: scope.mailbox,
        folder: scope.folder,
        item: m.item,
        messageId: messageIdOf(m.raw),
        internalDate: m.internalDate,
        redelivery,
      });
      answered();
      break;
    } catch (err) {
      const e = err instanceof ConnectorError ? err : new ConnectorError(toMbError(err).code, toMbError(err).params, { cause: err });
      if (e.permanent) {
        await o.repo.record(scope, { epoch, item: m.item, key, state: 'rejected', code: e.code, size: m.raw.length }, pos(mark.finish(m.uid)));
        result.rejected++;
        o.emit({ type: 'rejected', scope, item: m.item, error: e });
        log.warn({ code: e.code, item: m.item }, e.message);
        return 'rejected';
      }
      // The destination said no (or could not be reached): it does not have the message.
      if (!e.uncertain && !redelivery) await o.repo.abandon(scope, epoch, m.item);
      if (o.retry.attempts !== undefined && attempt >= o.retry.attempts) throw e;
      const delayMs = Math.max(e.retryAfterMs ?? 0, backoff.next());
      o.emit({ type: 'retry', scope, item: m.item, error: e, delayMs, attempt });
      log.info({ code: e.code, item: m.item, attempt, delayMs }, e.message);
      await sleep(delayMs, o.signal);
      if (!e.uncertain && !redelivery) await o.repo.begin(scope, { epoch, item: m.item, key, deliveryId });
    }
  }
  await o.repo.record(
    scope,
    { epoch, item: m.item, key, state: stateAfter(o), code: problem ? 'MB_CONNECTOR_MIME_MALFORMED' : undefined, size: m.raw.length },
    pos(mark.finish(m.uid)),
  );
  result.delivered++;
  result.bytes += m.raw.length;
  if (redelivery) {
    result.redelivered++;
    const warning = new MbError('MB_CONNECTOR_REDELIVERED', {
      item: m.item,
      mailbox: scope.mailbox,
      folder: scope.folder,
      destination: o.destination.description,
      deliveryId,
      dedupeBy: o.destination.dedupeBy ?? 'Message-ID',
    });
    o.emit({ type: 'warning', scope, item: m.item, error: warning });
  }
  log.debug({ item: m.item, deliveryId, bytes: m.raw.length, redelivery }, 'delivered');
  o.emit({ type: 'delivered', scope, item: m.item, bytes: m.raw.length, deliveryId, redelivery });
  return 'delivered';
}

async function runAction(o: PipelineOptions, session: SourceSession, scope: CheckpointScope, epoch: string, items: string[], log: Logger): Promise<void> {
  if (items.length === 0) return;
  if (o.after.action !== 'none') {
    try {
      await session.act(scope.folder, o.after, items);
    } catch (err) {
      const e =
        err instanceof MbError && (err.code === 'MB_CONNECTOR_AFTER_ACTION_FAILED' || err.code === 'MB_CONNECTOR_GRAPH_ACTION_FORBIDDEN')
          ? err
          : new ConnectorError(
              'MB_CONNECTOR_AFTER_ACTION_FAILED',
              { mailbox: scope.mailbox, folder: scope.folder, count: items.length, action: describeAction(o.after), detail: toMbError(err).message },
              { cause: err },
            );
      o.emit({ type: 'warning', scope, error: e });
      log.warn({ code: e.code, count: items.length }, e.message);
      // A dead session cannot go on; anything else leaves the rows `delivered` for the next run.
      if (session.closed) throw err;
      return;
    }
  }
  await o.repo.markDone(scope, epoch, items);
  o.emit({ type: 'acted', scope, action: o.after.action, count: items.length });
}
