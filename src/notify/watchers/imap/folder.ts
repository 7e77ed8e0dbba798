/**
 * One watched folder: one IMAP connection (imapflow) that EXAMINEs the folder, IDLEs, and turns what
 * changed into notify events. The folder's state is a checkpoint in kv; events are derived from the
 * difference between the checkpoint and what the server says now, never from single untagged lines,
 * so a missed notification, a reconnect and a restart all end in the same catch-up.
 *
 * Checkpoint (kv namespace `watch-imap`, key `<mailbox>:<folder>`): UIDVALIDITY, the last UID
 * reported (`lastUid`), the UIDs at or below it that still exist and the unseen ones among them (as
 * IMAP sequence sets, src/notify/watchers/imap/uidset.ts), HIGHESTMODSEQ when the server has
 * CONDSTORE, and a generation counter. It is written only after every event it covers was published,
 * so a crash in between reports those changes again, with the same event ids.
 *
 * A sync (on connect, on EXISTS / FETCH / EXPUNGE / VANISHED during IDLE, and every resyncSeconds):
 * - deletions: with QRESYNC the VANISHED UIDs (live, and VANISHED (EARLIER) of the catch-up FETCH);
 *   without it the known UIDs missing from `UID SEARCH ALL` (run after an EXPUNGE, at connect and on
 *   resync, or when a message looks read but may be gone);
 * - read state: with CONDSTORE `UID FETCH 1:<lastUid> (FLAGS) (CHANGEDSINCE <modseq> [VANISHED])`,
 *   and changeKey = the message's MODSEQ; without CONDSTORE (Exchange Online advertises neither
 *   CONDSTORE nor QRESYNC) the unseen set is compared with `UID SEARCH UNSEEN`, and the changeKey is
 *   `g<generation>` of the checkpoint the change was found against (stable across a crash, distinct
 *   for read → unread → read again in separate syncs). Only \Seen changes are reported.
 * - new mail: `UID FETCH <lastUid+1>:* (UID FLAGS ENVELOPE INTERNALDATE)`, message.new per UID.
 * Events are published deletions first, then read-state, then new mail, each in UID order, with the
 * inbox's unread count after that change (computed from the unseen set when the folder is the inbox,
 * STATUS INBOX (UNSEEN) otherwise). The checkpoint's HIGHESTMODSEQ only advances to the highest MODSEQ
 * a CHANGEDSINCE answer returned, so a change that lands between two commands is never skipped.
 *
 * First start (no checkpoint) and a changed UIDVALIDITY take a baseline: the folder's current state,
 * no events (a UIDVALIDITY change also raises MB_WATCH_IMAP_UIDVALIDITY_CHANGED).
 *
 * Limits: the message id is `<folder>/<uidvalidity>/<uid>`, so a message moved to another folder is a
 * deletion here and new mail there; flags other than \Seen are not reported; a folder needs one IMAP
 * session (Exchange allows about 20 per mailbox, shared with every other client).
 */
import type { FetchMessageObject, ImapFlow } from 'imapflow';
import { MbError, toMbError } from '../../../errors/index.ts';
import type { Logger } from '../../../log/index.ts';
import { classifyImapError, ImapSessionError, type ImapErrorContext } from '../../../m365/imap-replies.ts';
import { connectWithin, imapClient } from '../../../m365/imap.ts';
import type { ProxySettings } from '../../../net/proxy.ts';
import { Backoff, sleep, type Semaphore } from '../../../util/limits.ts';
import { messageDeleted, newMessage, readStateChanged, type NotifyEvent } from '../../events.ts';
import type { WatchState, WatcherContext } from '../types.ts';
import type { ImapWatchOptions } from './config.ts';
import { UidSet } from './uidset.ts';

export const KV_NAMESPACE = 'watch-imap';

export function checkpointKey(mailbox: string, folder: string): string {
  return `${mailbox}:${folder}`;
}

/** As stored in kv. */
export interface StoredCheckpoint {
  v: 1;
  uidValidity: string;
  lastUid: number;
  /** HIGHESTMODSEQ (decimal) the read-state catch-up starts from; absent without CONDSTORE. */
  modseq?: string;
  uids: string;
  unseen: string;
  gen: number;
}

interface FolderState {
  uidValidity: string;
  lastUid: number;
  modseq?: bigint;
  uids: UidSet;
  unseen: UidSet;
  gen: number;
}

export interface Credentials {
  user: string;
  accessToken?: string;
  pass?: string;
}

export interface FolderWatchDeps {
  listener: string;
  mailbox: string;
  folder: string;
  host: string;
  options: ImapWatchOptions;
  ca?: string;
  proxy?: ProxySettings;
  credentials: () => Promise<Credentials>;
  ctx: WatcherContext;
  logins: Semaphore;
  log: Logger;
}

/** What changes the server announced since the last sync. */
interface Pending {
  exists: boolean;
  flags: boolean;
  expunge: boolean;
  vanished: number[];
}

const fresh = (): Pending => ({ exists: false, flags: false, expunge: false, vanished: [] });

/** Codes that need an admin (permissions, settings); the watcher keeps retrying them, slowly. */
const NEEDS_ADMIN = new Set([
  'MB_CONNECTOR_NOT_CONNECTED',
  'MB_CONNECTOR_NOT_CONNECTED_DELEGATED',
  'MB_CONNECTOR_AUTH_FAILED',
  'MB_WATCH_IMAP_LOGIN_FAILED',
  'MB_WATCH_IMAP_FOLDER_MISSING',
  'MB_WATCH_IMAP_TLS',
]);

export class FolderWatch {
  readonly mailbox: string;
  readonly folder: string;
  state: WatchState = 'starting';
  since: number;
  error: MbError | undefined;
  /** Connections opened so far (tests and `status`). */
  connects = 0;
  /** How the last sync found changes: QRESYNC (VANISHED), CONDSTORE only, or set comparison. */
  mode: 'qresync' | 'condstore' | 'compare' | undefined;

  private readonly d: FolderWatchDeps;
  private readonly abort = new AbortController();
  private cp: FolderState | undefined;
  private loaded = false;
  private pending: Pending = fresh();
  private closed = false;
  private wake: (() => void) | undefined;
  private client: ImapFlow | undefined;
  private running: Promise<void> | undefined;
  private settle: (() => void) | undefined;
  private noIdleReported = false;
  /** Resolves once the folder is watched for the first time, or its first attempt failed. */
  readonly ready: Promise<void>;

  constructor(d: FolderWatchDeps) {
    this.d = d;
    this.mailbox = d.mailbox;
    this.folder = d.folder;
    this.since = d.ctx.now();
    this.ready = new Promise((r) => (this.settle = r));
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.wake?.();
    const c = this.client;
    if (c) await logoutQuietly(c);
    await this.running;
    this.setState('stopped');
    this.settle?.();
  }

  /** Test hook: drops the connection as a network failure would (the socket is destroyed, no LOGOUT). */
  dropConnection(): boolean {
    const c = this.client as unknown as { socket?: { destroy(): void } } | undefined;
    if (!c?.socket) return false;
    c.socket.destroy();
    return true;
  }

  private setState(state: WatchState, error?: MbError): void {
    if (state !== this.state) this.since = this.d.ctx.now();
    this.state = state;
    this.error = state === 'watching' || state === 'catching-up' ? undefined : (error ?? this.error);
  }

  private get stopping(): boolean {
    return this.abort.signal.aborted;
  }

  private async loop(): Promise<void> {
    const o = this.d.options;
    const backoff = new Backoff({ initialMs: o.reconnect.initialSeconds * 1000, maxMs: Math.max(o.reconnect.initialSeconds, o.reconnect.maxSeconds) * 1000 });
    const signal = this.abort.signal;
    while (!this.stopping) {
      let client: ImapFlow | undefined;
      const errCtx: ImapErrorContext = { connector: `watch:${this.d.listener}`, mailbox: this.mailbox, host: this.d.host, port: o.port, folder: this.folder };
      try {
        // The slot covers login and the first catch-up, the expensive part of a (re)start.
        await this.d.logins.with(async () => {
          client = await this.connect(errCtx, signal);
          this.setState('catching-up');
          await this.load();
          await client.mailboxOpen(this.folder, { readOnly: true });
          await this.sync(client, true);
        }, signal);
        this.setState('watching');
        backoff.reset();
        this.settle?.();
        for (;;) {
          await this.waitForChange(client!);
          if (this.stopping) return;
          if (this.closed) throw new ImapSessionError('MB_CONNECTOR_SESSION_LOST', { mailbox: this.mailbox, detail: closeDetail(client!) });
          await this.sync(client!, false);
        }
      } catch (err) {
        if (this.stopping) return;
        if (client) errCtx.byeReason = client.byeReason;
        const e = this.classify(err, errCtx);
        const retryAfter = e instanceof ImapSessionError ? (e.retryAfterMs ?? 0) : 0;
        const delay = Math.max(retryAfter, backoff.next());
        this.setState(NEEDS_ADMIN.has(e.code) ? 'failed' : 'reconnecting', e);
        this.d.log.warn({ code: e.code, mailbox: this.mailbox, folder: this.folder, retryInMs: delay }, e.message);
        this.report(e);
        this.settle?.();
        await sleep(delay, signal).catch(() => undefined);
      } finally {
        this.client = undefined;
        if (client) await logoutQuietly(client);
      }
    }
  }

  private report(e: MbError): void {
    try {
      this.d.ctx.problem?.(this.mailbox, e);
    } catch (err) {
      this.d.log.error({ err: toMbError(err).message }, 'watch-imap: problem handler failed');
    }
  }

  private classify(err: unknown, ctx: ImapErrorContext): MbError {
    if (err instanceof MbError && !(err instanceof ImapSessionError) && !err.code.startsWith('MB_CONNECTOR_')) return err;
    const e = classifyImapError(err, ctx);
    const listener = this.d.listener;
    switch (e.code) {
      case 'MB_CONNECTOR_THROTTLED':
        return new ImapSessionError('MB_WATCH_IMAP_THROTTLED', { mailbox: this.mailbox, seconds: e.params.seconds, listener }, { cause: e, retryAfterMs: e.retryAfterMs });
      case 'MB_CONNECTOR_SOURCE_TLS':
        return new ImapSessionError('MB_WATCH_IMAP_TLS', { host: ctx.host, port: ctx.port, detail: e.params.detail, listener }, { cause: e });
      case 'MB_CONNECTOR_FOLDER_MISSING':
        return new ImapSessionError('MB_WATCH_IMAP_FOLDER_MISSING', { mailbox: this.mailbox, folder: this.folder, listener }, { cause: e, retryAfterMs: 300_000 });
      case 'MB_CONNECTOR_AUTH_FAILED':
        if (this.d.options.auth !== 'xoauth2') {
          return new ImapSessionError(
            'MB_WATCH_IMAP_LOGIN_FAILED',
            { mailbox: this.mailbox, user: this.d.options.auth.user.replaceAll('{mailbox}', this.mailbox), host: ctx.host, detail: e.params.detail, listener },
            { cause: e, retryAfterMs: e.retryAfterMs },
          );
        }
        return e;
      default:
        return e;
    }
  }

  private async connect(errCtx: ImapErrorContext, signal: AbortSignal): Promise<ImapFlow> {
    const o = this.d.options;
    const creds = await this.d.credentials();
    errCtx.token = creds.accessToken;
    const client = imapClient(
      {
        host: this.d.host,
        port: o.port,
        tls: o.tls,
        ca: this.d.ca,
        servername: o.servername,
        auth: creds.accessToken !== undefined ? { user: creds.user, accessToken: creds.accessToken } : { user: creds.user, pass: creds.pass ?? '' },
        proxy: this.d.proxy,
        log: this.d.log,
        // IDLE is started and broken here, not by imapflow's auto-IDLE; QRESYNC is enabled when offered.
        qresync: true,
        idleRestartMs: o.idleRestartSeconds * 1000,
        connectTimeoutMs: o.connectTimeoutSeconds * 1000,
      },
      errCtx,
    );
    this.closed = false;
    this.pending = fresh();
    client.on('error', () => undefined);
    client.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    client.on('exists', () => this.note((p) => (p.exists = true)));
    client.on('flags', () => this.note((p) => (p.flags = true)));
    client.on('expunge', (ev: { uid?: number; vanished?: boolean }) =>
      this.note((p) => {
        if (ev.vanished && typeof ev.uid === 'number') p.vanished.push(ev.uid);
        else p.expunge = true;
      }),
    );
    this.client = client;
    this.connects++;
    await connectWithin(client, signal, o.connectTimeoutSeconds * 2000);
    if (!client.capabilities.has('IDLE') && !this.noIdleReported) {
      this.noIdleReported = true;
      const e = new MbError('MB_WATCH_IMAP_NO_IDLE', { host: this.d.host, mailbox: this.mailbox, seconds: o.resyncSeconds, listener: this.d.listener });
      this.d.log.warn({ code: e.code, mailbox: this.mailbox }, e.message);
      this.report(e);
    }
    return client;
  }

  private note(fn: (p: Pending) => void): void {
    fn(this.pending);
    this.wake?.();
  }

  private hasPending(): boolean {
    const p = this.pending;
    return p.exists || p.flags || p.expunge || p.vanished.length > 0;
  }

  /** IDLE (when offered) until the server reports a change, the resync interval passes, the connection ends or the watcher stops. */
  private async waitForChange(client: ImapFlow): Promise<void> {
    if (this.hasPending() || this.closed || this.stopping) return;
    // Runs until the next command breaks it (imapflow sends DONE first); imapflow restarts it every idleRestartSeconds.
    if (client.capabilities.has('IDLE')) client.idle().catch(() => undefined);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => done(true), this.d.options.resyncSeconds * 1000);
      const done = (resync = false) => {
        clearTimeout(timer);
        this.wake = undefined;
        if (resync) this.pending.expunge = this.pending.exists = true;
        resolve();
      };
      this.wake = () => done();
      if (this.hasPending() || this.closed || this.stopping) done();
    });
  }

  private async load(): Promise<void> {
    if (this.loaded) return;
    const raw = await this.d.ctx.kv.get(KV_NAMESPACE, checkpointKey(this.mailbox, this.folder));
    if (raw) {
      try {
        const s = JSON.parse(raw) as StoredCheckpoint;
        this.cp = {
          uidValidity: s.uidValidity,
          lastUid: s.lastUid,
          modseq: s.modseq !== undefined ? BigInt(s.modseq) : undefined,
          uids: UidSet.parse(s.uids),
          unseen: UidSet.parse(s.unseen),
          gen: s.gen,
        };
      } catch (err) {
        // An unreadable checkpoint is treated as none: a new baseline, nothing reported twice.
        this.d.log.warn({ mailbox: this.mailbox, folder: this.folder, err: (err as Error).message }, 'watch-imap: checkpoint unreadable, taking a new baseline');
      }
    }
    this.loaded = true;
  }

  private async save(s: FolderState): Promise<void> {
    const stored: StoredCheckpoint = { v: 1, uidValidity: s.uidValidity, lastUid: s.lastUid, uids: s.uids.toString(), unseen: s.unseen.toString(), gen: s.gen };
    if (s.modseq !== undefined) stored.modseq = s.modseq.toString();
    await this.d.ctx.kv.set(KV_NAMESPACE, checkpointKey(this.mailbox, this.folder), JSON.stringify(stored));
    this.cp = s;
  }

  private async baseline(client: ImapFlow, previous: FolderState | undefined): Promise<void> {
    const mb = client.mailbox;
    if (!mb) throw new Error('no folder selected');
    const uidValidity = mb.uidValidity.toString();
    const modseq = client.enabled.has('CONDSTORE') && !mb.noModseq && mb.highestModseq !== undefined ? mb.highestModseq : undefined;
    const all = await searchUids(client, { all: true });
    const unseen = await searchUids(client, { seen: false });
    const lastUid = Math.max(0, mb.uidNext - 1, ...all);
    if (previous) {
      const e = new MbError('MB_WATCH_IMAP_UIDVALIDITY_CHANGED', { mailbox: this.mailbox, folder: this.folder, old: previous.uidValidity, new: uidValidity });
      this.d.log.warn({ code: e.code, mailbox: this.mailbox, folder: this.folder }, e.message);
      this.report(e);
    }
    await this.save({ uidValidity, lastUid, modseq, uids: UidSet.of(all), unseen: UidSet.of(unseen.filter((u) => u <= lastUid)), gen: (previous?.gen ?? 0) + 1 });
  }

  private async sync(client: ImapFlow, full: boolean): Promise<void> {
    const p = this.pending;
    this.pending = fresh();
    const mb = client.mailbox;
    if (!mb) throw new Error('no folder selected');
    const cp = this.cp;
    if (!cp || cp.uidValidity !== mb.uidValidity.toString()) return this.baseline(client, cp);

    const condstore = client.enabled.has('CONDSTORE') && !mb.noModseq && cp.modseq !== undefined;
    const qresync = condstore && client.enabled.has('QRESYNC');
    this.mode = qresync ? 'qresync' : condstore ? 'condstore' : 'compare';
    const next: FolderState = { ...cp, uids: cp.uids.clone(), unseen: cp.unseen.clone() };
    const deleted: number[] = [];
    const reads: Array<{ uid: number; read: boolean; key: string }> = [];

    // Read state (and, with QRESYNC, deletions) since the checkpoint.
    let present: UidSet | undefined;
    const listAll = async () => (present ??= UidSet.of(await searchUids(client, { all: true })));
    const vanished = new Set(p.vanished);
    if (condstore) {
      if (cp.lastUid > 0) {
        const rows = await client.fetchAll(`1:${cp.lastUid}`, { uid: true, flags: true }, { uid: true, changedSince: cp.modseq });
        // VANISHED (EARLIER) lines of that answer arrived as expunge events meanwhile.
        for (const u of this.pending.vanished) vanished.add(u);
        this.pending.vanished = [];
        for (const row of rows.sort((a, b) => a.uid - b.uid)) {
          if (row.modseq !== undefined && (next.modseq === undefined || row.modseq > next.modseq)) next.modseq = row.modseq;
          if (!cp.uids.has(row.uid) || vanished.has(row.uid)) continue;
          const read = row.flags?.has('\\Seen') ?? false;
          if (read === cp.unseen.has(row.uid)) reads.push({ uid: row.uid, read, key: String(row.modseq ?? `g${cp.gen}`) });
        }
      }
      if (!qresync && (full || p.expunge)) await listAll();
    } else {
      if (full || p.expunge) await listAll();
      const unseenNow = UidSet.of(await searchUids(client, { seen: false }));
      const maybeRead: number[] = [];
      for (const u of cp.unseen) if (!unseenNow.has(u)) maybeRead.push(u);
      // A message that left the unseen set may have been deleted instead: look before calling it read.
      if (maybeRead.length > 0) await listAll();
      for (const u of maybeRead) if (present!.has(u)) reads.push({ uid: u, read: true, key: `g${cp.gen}` });
      for (const u of unseenNow) if (u <= cp.lastUid && cp.uids.has(u) && !cp.unseen.has(u)) reads.push({ uid: u, read: false, key: `g${cp.gen}` });
      reads.sort((a, b) => a.uid - b.uid);
      // Without CONDSTORE there is nothing to resume from; with it (a server that gained it), start now.
      if (full && client.enabled.has('CONDSTORE') && !mb.noModseq && mb.highestModseq !== undefined) next.modseq = mb.highestModseq;
    }
    if (qresync) {
      for (const u of [...vanished].sort((a, b) => a - b)) if (cp.uids.has(u)) deleted.push(u);
    } else if (present) {
      for (const u of cp.uids) if (!present.has(u)) deleted.push(u);
    }

    // New mail.
    let arrived: FetchMessageObject[] = [];
    if (full || p.exists) {
      const rows = await client.fetchAll(`${cp.lastUid + 1}:*`, { uid: true, flags: true, envelope: true, internalDate: true }, { uid: true });
      // `n:*` also returns the highest message when it is below n.
      arrived = rows.filter((m) => m.uid > cp.lastUid).sort((a, b) => a.uid - b.uid);
    }

    if (deleted.length === 0 && reads.length === 0 && arrived.length === 0) {
      if (next.modseq !== cp.modseq) await this.save(next);
      return;
    }

    const isInbox = this.folder.toUpperCase() === 'INBOX';
    let inboxUnread = 0;
    if (!isInbox) {
      const st = await client.status('INBOX', { unseen: true });
      if (!st || typeof st.unseen !== 'number') throw new Error('STATUS INBOX (UNSEEN) failed');
      inboxUnread = st.unseen;
    }
    const unread = () => (isInbox ? next.unseen.size : inboxUnread);
    const events: NotifyEvent[] = [];
    const now = new Date(this.d.ctx.now());
    const id = (uid: number) => `${this.folder}/${cp.uidValidity}/${uid}`;
    const base = { mailbox: this.mailbox, folder: this.folder };
    for (const uid of deleted) {
      next.uids.delete(uid);
      next.unseen.delete(uid);
      events.push(messageDeleted({ ...base, type: 'message.deleted', messageId: id(uid), unreadCount: unread() }, now));
    }
    for (const r of reads) {
      if (r.read) next.unseen.delete(r.uid);
      else next.unseen.add(r.uid);
      events.push(readStateChanged({ ...base, type: 'message.read-state', messageId: id(r.uid), read: r.read, changeKey: r.key, unreadCount: unread() }, now));
    }
    for (const m of arrived) {
      next.uids.add(m.uid);
      if (!m.flags?.has('\\Seen')) next.unseen.add(m.uid);
      next.lastUid = Math.max(next.lastUid, m.uid);
      events.push(newMessage({ ...base, type: 'message.new', messageId: id(m.uid), ...envelopeOf(m), unreadCount: unread() }, now));
    }
    // Publish before advancing the checkpoint: a crash in between reports the same ids again.
    for (const e of events) await this.d.ctx.publish(e);
    next.gen = cp.gen + 1;
    await this.save(next);
    this.d.log.debug({ mailbox: this.mailbox, folder: this.folder, deleted: deleted.length, reads: reads.length, new: arrived.length }, 'watch-imap: published');
  }
}

/**
 * UID SEARCH that fails loudly: imapflow answers `false` when the command failed (e.g. the connection
 * ended), and an empty list taken for the truth would report every known message as deleted.
 */
async function searchUids(client: ImapFlow, query: { all: true } | { seen: false }): Promise<number[]> {
  const r = await client.search(query, { uid: true });
  if (!Array.isArray(r)) throw new Error(`UID SEARCH ${'all' in query ? 'ALL' : 'UNSEEN'} failed`);
  return r;
}

function envelopeOf(m: FetchMessageObject): { sender?: { address: string; name?: string }; subject?: string; receivedAt: string } {
  const from = m.envelope?.from?.[0];
  const out: { sender?: { address: string; name?: string }; subject?: string; receivedAt: string } = {
    receivedAt: toIso(m.internalDate) ?? toIso(m.envelope?.date) ?? new Date(0).toISOString(),
  };
  if (from?.address) out.sender = from.name ? { address: from.address.toLowerCase(), name: from.name } : { address: from.address.toLowerCase() };
  if (m.envelope?.subject !== undefined) out.subject = m.envelope.subject;
  return out;
}

function toIso(d: Date | string | undefined): string | undefined {
  if (d === undefined) return undefined;
  const t = d instanceof Date ? d : new Date(d);
  return Number.isNaN(t.getTime()) ? undefined : t.toISOString();
}

function closeDetail(client: ImapFlow): string {
  return client.byeReason ? `the server closed the connection: BYE ${client.byeReason}` : 'the server closed the connection';
}

async function logoutQuietly(client: ImapFlow): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    // A server that no longer answers must not hold the stop: two seconds for LOGOUT.
    await Promise.race([client.logout(), new Promise((r) => (timer = setTimeout(r, 2000)))]);
  } catch {
    // logging out of a dead session fails; closing is what matters
  } finally {
    clearTimeout(timer);
  }
  client.close();
}
