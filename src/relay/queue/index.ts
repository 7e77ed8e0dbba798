/**
 * The relay queue: the one module that moves messages between states. Postfix's model — a message
 * is in exactly one state at any moment, and every move is a compare-and-set in the store:
 *
 *   incoming ──claim──▶ active ──delivered──▶ sent
 *   deferred ──claim──▶ active ──temporary──▶ deferred (next attempt per retry schedule)
 *                              ──permanent / schedule used up──▶ bounced (+ a bounce report queued)
 *                              ──body missing──▶ held (corrupt)
 *   incoming/deferred ──hold──▶ held ──release──▶ deferred (due now)
 *   incoming/deferred ──retry──▶ deferred (due now)        any but active ──delete──▶ (gone)
 *   active ──recover (at start) / interrupted (at stop)──▶ deferred (due now)
 *
 * Durability (the promise behind every 250): the listener writes the body to `<id>.eml` and fsyncs
 * it; `accept` hands the row to the group committer, which fsyncs the spool directory and commits
 * the rows of the batch in one transaction. Only then does `accept` resolve and the client get its
 * 250. A bounce and its report are one transaction too. With the store spool (several nodes on
 * PostgreSQL) the bodies are committed in the rows' transaction instead (store-spool.ts).
 *
 * Claims with `cluster` (several nodes): a claim writes the node, a fresh token and a lease
 * (`cluster.leaseMs`); every move out of active names the token, so the result of a node whose claim
 * was taken over is refused. Leases are timed by the store's lease clock (on PostgreSQL the
 * database server's), not by this node's: a node whose clock runs ahead cannot take over a message
 * another node is still sending. The manager renews the leases of its deliveries and takes over
 * claims whose lease ran out (a node that died), and recovery at start does only that: the active
 * rows of other nodes are theirs. Without it (SQLite, one process holding the spool lock) a claim is the
 * plain compare-and-set, and every active row at start is a leftover that goes back to deferred.
 *
 * Recovery at start, for whatever a crash left behind:
 * - `active` rows go back to deferred, due now (the attempt may have reached Microsoft: at-least-once);
 * - `.tmp` files (left by older versions) are removed (never acknowledged);
 * - `.eml` files without a row are removed: the row is committed before the 250, so such a file
 *   belongs to a message the client was never told we have (possibly cut short) — it will send it
 *   again, and keeping the file would deliver it twice (and it has no envelope to deliver it with);
 * - bodies of sent/bounced rows are removed (a crash between the state change and the unlink);
 * - rows in incoming/deferred/held without a body go to held with MB_RELAY_BODY_MISSING, never
 *   silently dropped: an admin can restore the file and `queue release` it.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname as osHostname } from 'node:os';
import type { Logger } from '../../log/index.ts';
import { scrub } from '../../log/redact.ts';
import { MbError, type ErrorParams, type MbCode } from '../../errors/index.ts';
import type { ClaimResult, QueueError, QueueRecord, QueueRepository, QueueState, QueueUpdate, SharedLimits } from '../../store/queue.ts';
import { systemClock, type Clock } from '../../util/clock.ts';
import { isAscii, normalizeAddress } from '../policy.ts';
import { GroupCommitter } from './commit.ts';
import { buildDsn, type DsnFailure } from './dsn.ts';
import { newQueueId } from './ids.ts';
import type { Spool } from './spool.ts';
import type { QueueTrace, TraceStep } from './trace.ts';

export type { QueueRecord, QueueState } from '../../store/queue.ts';

/** Which states each move starts from and the state it leads to. */
export const MOVES = {
  claim: { from: ['incoming', 'deferred'], to: 'active' },
  delivered: { from: ['active'], to: 'sent' },
  defer: { from: ['active'], to: 'deferred' },
  bounce: { from: ['active'], to: 'bounced' },
  corrupt: { from: ['incoming', 'deferred', 'held', 'active'], to: 'held' },
  hold: { from: ['incoming', 'deferred'], to: 'held' },
  release: { from: ['held'], to: 'deferred' },
  retry: { from: ['incoming', 'deferred'], to: 'deferred' },
  recover: { from: ['active'], to: 'deferred' },
  delete: { from: ['incoming', 'deferred', 'held', 'sent', 'bounced'], to: undefined },
} as const satisfies Record<string, { from: readonly QueueState[]; to: QueueState | undefined }>;

export type AdminAction = 'hold' | 'release' | 'retry' | 'delete';

export interface BounceOptions {
  notify: 'sender' | 'admin' | 'both' | 'none';
  adminAddress?: string;
  /** Sends the reports (From and sending mailbox); default: the failed message's mailbox. */
  from?: string;
}

export interface QueueOptions {
  repo: QueueRepository;
  spool: Spool;
  log: Logger;
  clock?: Clock;
  /** Delays in ms after the 1st, 2nd, … temporary failure (parseSchedule); then the message bounces. */
  retrySchedule: readonly number[];
  hostname: string;
  bounces: BounceOptions;
  /** The sending mailbox of a new message; default: its envelope sender. Routing will replace this. */
  mailboxFor?: (envelope: { sender: string; relayUser?: string }) => string;
  /** How long sent and bounced rows stay listed. */
  keepMs?: number;
  /** Keeps every attempt and admin action per message (trace.ts); without it only the last error is kept. */
  trace?: QueueTrace;
  /**
   * Several nodes on one database: this node's name in its claims and how long a claim holds
   * without renewal. Without it the queue is the only one on its store (SQLite).
   */
  cluster?: ClusterOptions;
}

export interface ClusterOptions {
  node: string;
  leaseMs: number;
}

export interface AcceptInput {
  id: string;
  sender: string;
  recipients: string[];
  relayUser?: string;
  clientIp?: string;
  size: number;
  bodyType: '7bit' | '8bitmime';
  smtpUtf8: boolean;
}

/** A failed attempt as the transport reported it (see transport.ts). */
export interface AttemptFailure {
  kind: 'temporary' | 'permanent';
  mbCode: MbCode;
  params?: ErrorParams;
  /** Upstream reply. */
  code?: string;
  detail: string;
  /** Seconds. */
  retryAfter?: number;
}

export interface RecoveryReport {
  requeued: number;
  tempsRemoved: number;
  orphansRemoved: number;
  finishedBodiesRemoved: number;
  corrupt: string[];
}

/** What became of a message, for metrics: `deferred` is one failed attempt that will be retried. */
export type QueueOutcome = 'accepted' | 'delivered' | 'deferred' | 'bounced';

/**
 * 'ready': something may have become due. With the record when it is a message this process just
 * accepted (the manager indexes it without reading the store); without one, the manager reads the
 * store (an admin action, a bounce report).
 */
export class Queue extends EventEmitter<{ ready: [accepted?: QueueRecord]; outcome: [outcome: QueueOutcome, record: QueueRecord, at: number] }> {
  readonly spool: Spool;
  private readonly repo: QueueRepository;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly schedule: readonly number[];
  private readonly hostname: string;
  private readonly bounces: BounceOptions;
  private readonly mailboxFor: (envelope: { sender: string; relayUser?: string }) => string;
  private readonly keepMs: number;
  private readonly committer: GroupCommitter<QueueRecord>;
  readonly trace: QueueTrace | undefined;
  readonly cluster: ClusterOptions | undefined;
  /** Who claims: the cluster node, or this host and process. */
  readonly node: string;

  constructor(options: QueueOptions) {
    super();
    this.repo = options.repo;
    this.spool = options.spool;
    this.log = options.log;
    this.clock = options.clock ?? systemClock;
    this.schedule = options.retrySchedule;
    this.hostname = options.hostname;
    this.bounces = options.bounces;
    this.mailboxFor = options.mailboxFor ?? ((e) => normalizeAddress(e.sender));
    this.keepMs = options.keepMs ?? 7 * 86_400_000;
    this.trace = options.trace;
    this.cluster = options.cluster;
    this.node = options.cluster?.node ?? `${osHostname()}:${process.pid}`;
    this.committer = new GroupCommitter(async (records) => {
      const bodies = await this.spool.seal(records.map((r) => r.id));
      await this.repo.insert(records, bodies);
    });
  }

  newId(): string {
    return newQueueId(this.clock.now());
  }

  // ── arrival ──────────────────────────────────────────────────────────────────────────────────

  /**
   * Makes a received message durable: its body file (already fsynced by the writer, see
   * Spool.createWriter) and its row, committed with the current batch. Resolves only when both are
   * on disk.
   */
  async accept(input: AcceptInput): Promise<QueueRecord> {
    const now = this.clock.now();
    const record: QueueRecord = {
      id: input.id,
      state: 'incoming',
      kind: 'message',
      sender: input.sender,
      recipients: input.recipients,
      mailbox: this.mailboxFor({ sender: input.sender, relayUser: input.relayUser }),
      size: input.size,
      bodyType: input.bodyType,
      smtpUtf8: input.smtpUtf8,
      receivedAt: now,
      attempts: 0,
      nextAttemptAt: now,
      updatedAt: now,
    };
    if (input.relayUser !== undefined) record.relayUser = input.relayUser;
    if (input.clientIp !== undefined) record.clientIp = input.clientIp;
    try {
      await this.committer.submit(record);
    } catch (err) {
      await this.spool.remove(input.id).catch(() => undefined);
      throw new MbError('MB_RELAY_SPOOL_WRITE_FAILED', { path: this.spool.dir, detail: (err as Error).message }, { cause: err });
    }
    this.emit('outcome', 'accepted', record, now);
    this.emit('ready', record);
    return record;
  }

  // ── delivery (queue manager) ─────────────────────────────────────────────────────────────────

  ready(limit: number, excludeMailboxes: readonly string[] = []): Promise<QueueRecord[]> {
    return this.repo.ready(this.clock.now(), limit, excludeMailboxes);
  }

  nextDue(excludeMailboxes: readonly string[] = []): Promise<number | undefined> {
    return this.repo.nextDue(excludeMailboxes);
  }

  /** Sent messages since `since` (mailbox, recipients, when), to seed the daily recipient budget. */
  sentSince(since: number): Promise<Array<{ mailbox: string; recipients: number; at: number }>> {
    return this.repo.sentSince(since);
  }

  /** Mailboxes with messages an admin asked to retry at or after `since` (see retry). */
  retriedSince(since: number): Promise<Array<{ mailbox: string; at: number }>> {
    return this.repo.retriedSince(since);
  }

  /** incoming/deferred → active under a new claim (this node, a token, a lease); undefined if someone else moved it first. */
  async claim(id: string): Promise<QueueRecord | undefined> {
    return (await this.claimWithin(id)).record;
  }

  /**
   * `claim`, checking and counting `limits` (shared by several nodes) in the store: no record if
   * someone else moved or is claiming it, `limited` if the mailbox may not start now.
   */
  async claimWithin(id: string, limits?: SharedLimits): Promise<ClaimResult> {
    const now = this.clock.now();
    // Alone on the store (SQLite, the spool lock), nobody takes a claim over: the plain
    // compare-and-set as before, without a holder, token or lease to write on every delivery.
    if (!this.cluster) {
      const record = await this.move(id, 'claim', {});
      return record ? { record } : {};
    }
    return this.repo.claim(id, { by: this.node, token: randomUUID(), now, leaseMs: this.cluster.leaseMs, ...(limits ? { limits } : {}) });
  }

  /** Extends the leases of this node's claims; the tokens it still holds (the others were taken over). */
  async renew(tokens: readonly string[]): Promise<Set<string>> {
    if (!this.cluster) return new Set(tokens);
    return new Set(await this.repo.renew(this.node, tokens, this.cluster.leaseMs));
  }

  /**
   * Claims whose lease ran out (their node died or lost the database) → deferred, due at once. With
   * `sweep` (or when something was taken over), also the bodies a dead node left of messages it had
   * recorded as sent just before it died.
   */
  async takeOver(sweep = false): Promise<number> {
    const taken = await this.repo.takeOver();
    for (const t of taken) this.log.warn({ id: t.id, from: t.claimedBy, node: this.node }, 'relay: took over a delivery whose lease ran out');
    if (taken.length > 0 || sweep) await this.repo.dropFinishedBodies();
    return taken.length;
  }

  async delivered(rec: QueueRecord, reply?: string): Promise<void> {
    const now = this.clock.now();
    const moved = await this.move(rec.id, 'delivered', { attempts: rec.attempts + 1, lastAttemptAt: now, lastError: null }, rec.claimToken);
    if (!moved) return this.claimLost(rec, 'delivered');
    await this.traced(rec.id, { at: now, type: 'attempt', attempt: rec.attempts + 1, outcome: 'delivered', ...(reply ? { reply: scrub(reply) } : {}) });
    this.emit('outcome', 'delivered', rec, now);
    await this.spool.remove(rec.id).catch((err: Error) => this.log.warn({ id: rec.id, err: err.message }, 'could not remove the body of a sent message'));
    this.log.info({ id: rec.id, mailbox: rec.mailbox, recipients: rec.recipients.length, attempt: rec.attempts + 1, reply }, 'relay: message sent');
  }

  /** A failed attempt: deferred per schedule, or bounced (with a report) when permanent or out of retries. */
  async failed(rec: QueueRecord, f: AttemptFailure): Promise<QueueRecord | undefined> {
    const now = this.clock.now();
    const attempts = rec.attempts + 1;
    const lastError: QueueError = { code: f.mbCode, detail: scrub(f.detail) };
    if (f.params) lastError.params = scrubParams(f.params);
    if (f.code) lastError.reply = scrub(f.code);

    if (f.kind === 'temporary' && attempts <= this.schedule.length) {
      const delay = Math.max(this.schedule[attempts - 1]!, (f.retryAfter ?? 0) * 1000);
      const moved = await this.move(rec.id, 'defer', { attempts, lastAttemptAt: now, nextAttemptAt: now + delay, lastError }, rec.claimToken);
      if (!moved) this.claimLost(rec, 'deferred');
      if (moved) {
        await this.traced(rec.id, { at: now, type: 'attempt', attempt: attempts, outcome: 'deferred', ...errorFields(lastError), nextAttemptAt: now + delay });
        this.emit('outcome', 'deferred', rec, now);
      }
      this.log.warn(
        { id: rec.id, mb: f.mbCode, mailbox: rec.mailbox, attempt: attempts, retryInMs: delay, reply: lastError.reply, detail: lastError.detail },
        `relay: delivery deferred (${f.mbCode})`,
      );
      return moved;
    }
    if (f.kind === 'temporary') {
      const final: QueueError = {
        code: 'MB_RELAY_RETRIES_EXHAUSTED',
        params: { attempts, lastCode: f.mbCode, detail: lastError.detail ?? '' },
        detail: lastError.detail,
      };
      if (lastError.reply) final.reply = lastError.reply;
      return this.bounce(rec, attempts, final, true);
    }
    return this.bounce(rec, attempts, lastError, false);
  }

  /** The attempt was cut short by shutdown: back to deferred, due now, not counted. */
  interrupted(rec: QueueRecord): Promise<QueueRecord | undefined> {
    return this.move(rec.id, 'recover', { nextAttemptAt: this.clock.now() }, rec.claimToken);
  }

  /** The body is gone: hold the message as corrupt, loudly. */
  async markCorrupt(rec: QueueRecord): Promise<void> {
    const error: QueueError = { code: 'MB_RELAY_BODY_MISSING', params: { id: rec.id, path: this.spool.dir } };
    const moved = await this.move(rec.id, 'corrupt', { holdReason: 'corrupt', lastError: error }, rec.state === 'active' ? rec.claimToken : undefined);
    if (moved) await this.traced(rec.id, { at: this.clock.now(), type: 'corrupt', code: error.code });
    if (moved) this.log.error({ id: rec.id, mb: 'MB_RELAY_BODY_MISSING', path: this.spool.dir }, 'relay: queued message has no body; held as corrupt');
  }

  // ── administration (`mailbridge queue`) ─────────────────────────────────────────────────────

  async hold(id: string): Promise<QueueRecord> {
    return this.admin(id, 'hold', { holdReason: 'admin' });
  }

  async release(id: string): Promise<QueueRecord> {
    const rec = await this.get(id);
    if (rec?.state === 'held' && !(await this.spool.exists(id))) {
      throw new MbError('MB_RELAY_BODY_MISSING', { id, path: this.spool.dir });
    }
    const now = this.clock.now();
    const out = await this.admin(id, 'release', { holdReason: null, nextAttemptAt: now, retryRequestedAt: now });
    this.emit('ready');
    return out;
  }

  /**
   * Due now, and marked as asked for by an admin: the queue manager (here or in the `serve`
   * process) then also lifts the mailbox's pause after a failure (535, 5.7.139, 432, 429…), since
   * the admin retries because the cause is fixed. The per-minute rate, the concurrency limit and
   * the daily recipient budget still apply.
   */
  async retry(id: string): Promise<QueueRecord> {
    const now = this.clock.now();
    const out = await this.admin(id, 'retry', { nextAttemptAt: now, retryRequestedAt: now });
    this.emit('ready');
    return out;
  }

  /** Every incoming/deferred message due now; returns how many. */
  async retryAll(): Promise<number> {
    const now = this.clock.now();
    const n = await this.repo.transitionAll(MOVES.retry.from, { state: MOVES.retry.to, nextAttemptAt: now, retryRequestedAt: now, updatedAt: now });
    this.emit('ready');
    return n;
  }

  async delete(id: string): Promise<QueueRecord> {
    const rec = await this.get(id);
    if (!rec) throw new MbError('MB_RELAY_QUEUE_NOT_FOUND', { id });
    if (!(await this.repo.delete(id, MOVES.delete.from))) throw this.stateError(rec, 'delete');
    // Row first, then file: a crash in between leaves an orphan file, which recovery removes.
    await this.spool.remove(id);
    await this.trace?.remove(id).catch(() => undefined);
    this.log.info({ id, state: rec.state, sender: rec.sender }, 'relay: message deleted by admin');
    return rec;
  }

  get(id: string): Promise<QueueRecord | undefined> {
    return this.repo.get(id);
  }

  list(query?: Parameters<QueueRepository['list']>[0]): Promise<QueueRecord[]> {
    return this.repo.list(query);
  }

  counts(): Promise<Record<QueueState, number>> {
    return this.repo.counts();
  }

  /** Removes sent/bounced rows older than keepMs. */
  async purge(): Promise<number> {
    const ids = await this.repo.purge(['sent', 'bounced'], this.clock.now() - this.keepMs);
    for (const id of ids) {
      await this.spool.remove(id).catch(() => undefined);
      await this.trace?.remove(id).catch(() => undefined);
    }
    return ids.length;
  }

  // ── recovery ─────────────────────────────────────────────────────────────────────────────────

  async recover(): Promise<RecoveryReport> {
    const now = this.clock.now();
    const requeued = this.cluster
      ? await this.takeOver()
      : await this.repo.transitionAll(MOVES.recover.from, { state: MOVES.recover.to, nextAttemptAt: now, updatedAt: now });
    const { bodies, temps } = await this.spool.scan();
    for (const id of temps) await this.spool.removeTemp(id);

    const live = new Set(await this.repo.ids(['incoming', 'active', 'deferred', 'held']));
    const finished = new Set(await this.repo.ids(['sent', 'bounced']));
    const onDisk = new Set(bodies);
    let orphansRemoved = 0;
    let finishedBodiesRemoved = 0;
    for (const id of bodies) {
      if (live.has(id)) continue;
      await this.spool.remove(id);
      if (finished.has(id)) finishedBodiesRemoved++;
      else {
        orphansRemoved++;
        this.log.info({ mb: 'MB_RELAY_SPOOL_ORPHAN', file: this.spool.path(id) }, 'relay: removed a spool file that was never acknowledged');
      }
    }
    const corrupt: string[] = [];
    for (const id of live) {
      // Not in the scan: missing, or (store spool, another node) accepted after it.
      if (onDisk.has(id) || (this.cluster && (await this.spool.exists(id)))) continue;
      const rec = await this.repo.get(id);
      if (!rec || rec.holdReason === 'corrupt') continue;
      await this.markCorrupt(rec);
      corrupt.push(id);
    }
    const report = { requeued, tempsRemoved: temps.length, orphansRemoved, finishedBodiesRemoved, corrupt };
    if (requeued || temps.length || orphansRemoved || corrupt.length) this.log.warn(report, 'relay: queue recovered after an unclean stop');
    return report;
  }

  // ── internals ────────────────────────────────────────────────────────────────────────────────

  private async move(
    id: string,
    action: keyof typeof MOVES,
    fields: Omit<QueueUpdate, 'state' | 'updatedAt'>,
    token?: string,
  ): Promise<QueueRecord | undefined> {
    const m = MOVES[action];
    if (!m.to) throw new Error(`${action} is not a move`);
    return this.repo.transition(id, m.from, { ...fields, state: m.to, updatedAt: this.clock.now() }, token);
  }

  /**
   * A result this node could not record: its claim was taken over (its lease ran out, e.g. while
   * the database was unreachable) and another node owns the message now. Refused, so the message's
   * fate is decided once; a delivery reported here may go out once more (at-least-once).
   */
  private claimLost(rec: QueueRecord, outcome: string): void {
    this.log.warn({ mb: 'MB_RELAY_CLAIM_LOST', id: rec.id, node: this.node, outcome }, 'relay: delivery result refused, the claim was taken over by another node');
  }

  private async admin(id: string, action: Exclude<AdminAction, 'delete'>, fields: Omit<QueueUpdate, 'state' | 'updatedAt'>): Promise<QueueRecord> {
    const moved = await this.move(id, action, fields);
    if (moved) {
      await this.traced(id, { at: this.clock.now(), type: 'admin', action });
      this.log.info({ id, action }, `relay: message ${action} by admin`);
      return moved;
    }
    const rec = await this.get(id);
    if (!rec) throw new MbError('MB_RELAY_QUEUE_NOT_FOUND', { id });
    throw this.stateError(rec, action);
  }

  private stateError(rec: QueueRecord, action: AdminAction): MbError {
    return new MbError('MB_RELAY_QUEUE_STATE', { id: rec.id, state: rec.state, action, allowed: MOVES[action].from.join(', ') });
  }

  private async bounce(rec: QueueRecord, attempts: number, error: QueueError, expired: boolean): Promise<QueueRecord | undefined> {
    const now = this.clock.now();
    const update = { attempts, lastAttemptAt: now, lastError: error };
    const to = this.reportRecipients(rec);
    const logFields = { id: rec.id, mb: error.code, mailbox: rec.mailbox, sender: rec.sender, attempt: attempts, reply: error.reply, detail: error.detail };

    if (to.length === 0) {
      const moved = await this.move(rec.id, 'bounce', update, rec.claimToken);
      if (moved) {
        await this.traced(rec.id, { at: now, type: 'attempt', attempt: attempts, outcome: 'bounced', ...errorFields(error) });
        this.emit('outcome', 'bounced', rec, now);
        await this.spool.remove(rec.id).catch(() => undefined);
        if (rec.kind === 'dsn') {
          this.log.error({ ...logFields, mb: 'MB_RELAY_DSN_UNDELIVERABLE', cause: error.code }, 'relay: bounce report undeliverable; not bounced again');
        } else this.log.error(logFields, `relay: message bounced (${error.code}), no report sent (bounces.notify)`);
      }
      return moved;
    }

    const dsnId = this.newId();
    const headers = await this.spool.readHeaders(rec.id).catch(() => Buffer.alloc(0));
    const failure: DsnFailure = { code: error.code, expired };
    if (error.params) failure.params = error.params;
    if (error.reply) failure.reply = error.reply;
    const from = this.bounces.from ?? rec.mailbox;
    const body = await buildDsn({
      reportingMta: this.hostname,
      from,
      to,
      queueId: rec.id,
      originalSender: rec.sender,
      failedRecipients: rec.recipients,
      arrival: new Date(rec.receivedAt),
      lastAttempt: new Date(now),
      attempts,
      failure,
      originalHeaders: headers,
    });
    await this.spool.writeDurable(dsnId, body);
    const bodies = await this.spool.seal([dsnId]);
    const report: QueueRecord = {
      id: dsnId,
      state: 'incoming',
      kind: 'dsn',
      sender: '',
      recipients: to,
      mailbox: normalizeAddress(from),
      size: body.length,
      bodyType: body.some((b) => b >= 0x80) ? '8bitmime' : '7bit',
      smtpUtf8: to.some((a) => !isAscii(a)),
      receivedAt: now,
      attempts: 0,
      nextAttemptAt: now,
      originId: rec.id,
      updatedAt: now,
    };
    const moved = await this.repo.transitionAndInsert(rec.id, MOVES.bounce.from, { ...update, state: MOVES.bounce.to, updatedAt: now }, [report], {
      ...(bodies ? { bodies } : {}),
      ...(rec.claimToken !== undefined ? { token: rec.claimToken } : {}),
    });
    if (!moved) {
      await this.spool.remove(dsnId);
      return undefined;
    }
    await this.traced(rec.id, { at: now, type: 'attempt', attempt: attempts, outcome: 'bounced', ...errorFields(error), report: dsnId });
    this.emit('outcome', 'bounced', rec, now);
    await this.spool.remove(rec.id).catch(() => undefined);
    this.log.error({ ...logFields, report: dsnId, reportTo: to }, `relay: message bounced (${error.code}), report ${dsnId} queued`);
    this.emit('ready');
    return moved;
  }

  /** A trace line is an aid: failing to write it must not fail the delivery whose state is already stored. */
  private async traced(id: string, step: TraceStep): Promise<void> {
    await this.trace?.add(id, step).catch((err: Error) => this.log.warn({ id, err: err.message }, 'relay: could not write the message trace'));
  }

  /** Never a report about a report (null sender); otherwise as bounces.notify says. */
  private reportRecipients(rec: QueueRecord): string[] {
    if (rec.kind === 'dsn' || rec.sender === '') return [];
    const { notify, adminAddress } = this.bounces;
    const out: string[] = [];
    if (notify === 'sender' || notify === 'both') out.push(rec.sender);
    if ((notify === 'admin' || notify === 'both') && adminAddress) out.push(adminAddress);
    return [...new Set(out)];
  }
}

function errorFields(e: QueueError): { code: string; reply?: string; detail?: string } {
  return { code: e.code, ...(e.reply ? { reply: e.reply } : {}), ...(e.detail ? { detail: e.detail } : {}) };
}

function scrubParams(params: ErrorParams): ErrorParams {
  const out: ErrorParams = {};
  for (const [k, v] of Object.entries(params)) out[k] = typeof v === 'string' ? scrub(v) : typeof v === 'object' ? { en: scrub(v.en), de: scrub(v.de) } : v;
  return out;
}
