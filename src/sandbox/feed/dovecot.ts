/**
 * The sandbox's mail change feed over its real Dovecot (MailFeed, src/sandbox/mailfeed.ts): what
 * Exchange's event table is to Graph notifications and EWS push, for mail that arrives over LMTP,
 * SMTP or Graph sendMail and changes over IMAP or Graph.
 *
 * Strategy. One IMAP connection per watched (mailbox, folder), logged in with the backend token
 * (dovecot.mintToken, as the Graph store does; clients' tokens never reach Dovecot), with CONDSTORE
 * and QRESYNC enabled, the folder SELECTed and IDLE running. Any EXISTS, FETCH or VANISHED that IDLE
 * reports only marks the folder dirty and breaks IDLE (NOOP); the one loop that owns the connection
 * then asks `STATUS (HIGHESTMODSEQ)` and `UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE m VANISHED)` and
 * turns the answer into FolderChange records against what it knows (UID → \Seen): a UID it does not
 * know is `created`, a known one with a newer MODSEQ `updated`, a known UID reported vanished
 * `deleted`. Records come out in MODSEQ order (deletions, which carry no MODSEQ, after them), each
 * with the folder's unseen/total counts after that change, kept from the same table. Dovecot's IDLE
 * notices changes within ~0.5 s (mailbox_idle_check_interval / inotify); that is the feed's latency.
 *
 * Several watchers of one folder share one connection; the last one to unsubscribe closes it. A
 * connection that drops is reopened with back-off (0.1 s … 5 s) and catches up from its last MODSEQ
 * with the same CHANGEDSINCE/VANISHED query, so nothing that happened while it was away is lost. A
 * folder whose UIDVALIDITY changed in between reports every known message deleted and every present
 * one created. `message` and `counts` are answered over a separate per-mailbox connection (the Graph
 * MailStore).
 *
 * Limits: the table of known UIDs is kept in memory per watched folder (fine for sandbox mailboxes);
 * a folder that does not exist fails `watch`; a message created and expunged between two rounds is
 * not reported at all (Exchange would report both).
 */
import { ImapFlow } from 'imapflow';
import type { Logger } from '../../log/index.ts';
import { silentLogger } from '../../log/index.ts';
import type { Dovecot } from '../dovecot.ts';
import { MailStore } from '../graph/store.ts';
import type { FolderChange, FolderCounts, MailFeed, MessageSummary } from '../mailfeed.ts';

export type FeedBackend = Pick<Dovecot, 'host' | 'ports' | 'mintToken'>;

export interface DovecotFeedOptions {
  /** Clock for FolderChange.at (ms since the epoch). */
  now?: () => number;
  /** Waits between reconnect attempts (ms); the last one repeats. */
  reconnectDelays?: number[];
  log?: Logger;
}

interface Listener {
  fn: (change: FolderChange) => void;
}

const DEFAULT_DELAYS = [100, 250, 500, 1000, 2000, 5000];

export class DovecotFeed implements MailFeed {
  private readonly backend: FeedBackend;
  private readonly options: Required<DovecotFeedOptions>;
  private readonly watches = new Map<string, FolderWatch>();
  private readonly queries: MailStore;
  private closed = false;

  constructor(backend: FeedBackend, options: DovecotFeedOptions = {}) {
    this.backend = backend;
    this.options = { now: options.now ?? Date.now, reconnectDelays: options.reconnectDelays ?? DEFAULT_DELAYS, log: options.log ?? silentLogger };
    // Only status and summary are used; deliver is never called through it.
    this.queries = new MailStore({ ...backend, deliver: () => Promise.reject(new Error('not used')) });
  }

  async watch(mailbox: string, folder: string, fn: (change: FolderChange) => void): Promise<() => void> {
    if (this.closed) throw new Error('the mail feed is closed');
    const key = watchKey(mailbox, folder);
    let w = this.watches.get(key);
    if (!w) {
      w = new FolderWatch(this.backend, mailbox.toLowerCase(), folder, this.options);
      this.watches.set(key, w);
    }
    const watch = w;
    const listener: Listener = { fn };
    watch.listeners.add(listener);
    const release = () => {
      if (!watch.listeners.delete(listener) || watch.listeners.size > 0) return;
      if (this.watches.get(key) === watch) this.watches.delete(key);
      void watch.close();
    };
    try {
      await watch.ready;
    } catch (err) {
      release();
      throw err;
    }
    return release;
  }

  async message(mailbox: string, folder: string, uid: number): Promise<MessageSummary | undefined> {
    const status = await this.queries.status(mailbox, folder);
    if (!status) return undefined;
    const m = await this.queries.summary(mailbox, folder, uid);
    if (!m) return undefined;
    return {
      uidValidity: status.uidValidity,
      uid: m.uid,
      modseq: m.modseq.toString(),
      seen: m.flags.has('\\Seen'),
      ...(m.from ? { from: m.from } : {}),
      ...(m.subject !== undefined ? { subject: m.subject } : {}),
      ...(m.messageId ? { internetMessageId: m.messageId } : {}),
      receivedAt: m.internalDate,
      size: m.size,
    };
  }

  async counts(mailbox: string, folder: string): Promise<FolderCounts> {
    const status = await this.queries.status(mailbox, folder);
    if (!status) throw new Error(`folder ${folder} of ${mailbox} does not exist`);
    return { uidValidity: status.uidValidity, unseen: status.unseen, total: status.messages, highestModseq: status.highestModseq.toString() };
  }

  /** Folders with an open watch connection (tests: sharing and release). */
  get watching(): number {
    return this.watches.size;
  }

  /**
   * Test hook: drops the watch connection of a folder (as a Dovecot restart would) and keeps it down
   * until the returned function is called; then it reconnects and catches up.
   */
  disconnect(mailbox: string, folder: string): () => void {
    const w = this.watches.get(watchKey(mailbox, folder));
    if (!w) throw new Error(`${mailbox} ${folder} is not watched`);
    return w.interrupt();
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.watches.values()];
    this.watches.clear();
    await Promise.all(all.map((w) => w.close()));
    await this.queries.close();
  }
}

function watchKey(mailbox: string, folder: string): string {
  return `${mailbox.toLowerCase()}\u0000${folder}`;
}

/** One watched folder: its connection, its table of known messages, its listeners. */
class FolderWatch {
  readonly listeners = new Set<Listener>();
  readonly ready: Promise<void>;
  private readonly backend: FeedBackend;
  private readonly mailbox: string;
  private readonly folder: string;
  private readonly options: Required<DovecotFeedOptions>;
  private client: ImapFlow | undefined;
  private uidValidity = '';
  private modseq = 0n;
  /** UID → \Seen of every message the watch has reported (or found at the start). */
  private readonly known = new Map<number, boolean>();
  private unseen = 0;
  /** UIDs reported vanished (live VANISHED during IDLE, or VANISHED (EARLIER) of a CHANGEDSINCE fetch). */
  private readonly vanished = new Set<number>();
  private dirty = false;
  private closed = false;
  private held: Promise<void> | undefined;
  private attempts = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(backend: FeedBackend, mailbox: string, folder: string, options: Required<DovecotFeedOptions>) {
    this.backend = backend;
    this.mailbox = mailbox;
    this.folder = folder;
    this.options = options;
    this.ready = this.connect(true);
    // A failed first connect is reported to `watch`; nobody else awaits `ready`.
    this.ready.catch(() => undefined);
  }

  private async connect(initial: boolean): Promise<void> {
    const client = new ImapFlow({
      host: this.backend.host,
      port: this.backend.ports.imap,
      secure: false,
      // Loopback to our own Dovecot: no STARTTLS (Dovecot treats loopback as secured).
      doSTARTTLS: false,
      auth: { user: this.mailbox, accessToken: await this.backend.mintToken(this.mailbox) },
      logger: false,
      qresync: true,
      disableAutoIdle: true,
      // Dovecot ends IDLE after 30 min without traffic; restarting it earlier keeps the session alive.
      maxIdleTime: 5 * 60_000,
      expungeHandler: (event) => {
        if (event.vanished && event.uid) this.vanished.add(event.uid);
        this.kick();
      },
    });
    client.on('error', (err: Error) => this.options.log.debug({ err, mailbox: this.mailbox, folder: this.folder }, 'mail feed: connection error'));
    client.on('exists', () => this.kick());
    client.on('flags', () => this.kick());
    client.on('close', () => this.lost(client));
    try {
      await client.connect();
      if (!client.enabled.has('CONDSTORE') || !client.enabled.has('QRESYNC')) throw new Error('Dovecot did not enable CONDSTORE and QRESYNC; the mail feed needs them');
      const box = await client.mailboxOpen(this.folder);
      if (this.closed) throw new Error('closed');
      const uidValidity = box.uidValidity.toString();
      if (initial) {
        this.uidValidity = uidValidity;
        await this.fullListing(client, false);
      } else if (uidValidity !== this.uidValidity) {
        // The folder was recreated: everything known is gone, everything there is new.
        for (const uid of [...this.known.keys()].sort((a, b) => a - b)) this.remove(uid);
        this.uidValidity = uidValidity;
        this.modseq = 0n;
        await this.fullListing(client, true);
      } else {
        this.dirty = true;
      }
    } catch (err) {
      client.removeAllListeners('close');
      client.on('close', () => undefined);
      await client.logout().catch(() => client.close());
      throw err;
    }
    this.client = client;
    this.attempts = 0;
    void this.loop(client);
  }

  /** Reads every message of the folder; `report`: each is new to the watchers (created). */
  private async fullListing(client: ImapFlow, report: boolean): Promise<void> {
    const st = await client.status(this.folder, { highestModseq: true });
    if (!st) throw new Error(`STATUS ${this.folder} failed`);
    const rows = client.mailbox && client.mailbox.exists > 0 ? await client.fetchAll('1:*', { uid: true, flags: true }, { uid: true }) : [];
    this.vanished.clear();
    let top = st.highestModseq ?? 0n;
    for (const m of rows.sort((a, b) => cmp(a.modseq ?? 0n, b.modseq ?? 0n) || a.uid - b.uid)) {
      const seen = m.flags?.has('\\Seen') ?? false;
      if (report) this.upsert(m.uid, seen, m.modseq ?? 0n);
      else this.set(m.uid, seen);
      if ((m.modseq ?? 0n) > top) top = m.modseq ?? 0n;
    }
    this.modseq = top;
  }

  /** The connection's only owner: sync while dirty, IDLE otherwise. */
  private async loop(client: ImapFlow): Promise<void> {
    while (!this.closed && this.client === client && client.usable) {
      try {
        if (this.dirty) {
          this.dirty = false;
          await this.sync(client);
          continue;
        }
        await client.idle();
      } catch (err) {
        this.options.log.debug({ err, mailbox: this.mailbox, folder: this.folder }, 'mail feed: round failed');
        // A failed command on a live connection: try again after the next notification, or now
        // if something is pending. A dead one ends the loop and `lost` reconnects.
        if (!client.usable) return;
        this.dirty = true;
        await sleep(100);
      }
    }
  }

  /** One round: what changed since `modseq`, reported in order. */
  private async sync(client: ImapFlow): Promise<void> {
    // HIGHESTMODSEQ first: a change after it shows up in the fetch below or in the next round.
    const st = await client.status(this.folder, { highestModseq: true, messages: true });
    if (!st) throw new Error(`STATUS ${this.folder} failed`);
    const target = st.highestModseq ?? this.modseq;
    let rows: Awaited<ReturnType<ImapFlow['fetchAll']>> = [];
    if ((st.messages ?? 0) > 0) {
      rows = await client.fetchAll('1:*', { uid: true, flags: true }, { uid: true, changedSince: this.modseq });
    } else {
      // An empty folder answers no UID FETCH at all: everything known is gone.
      for (const uid of this.known.keys()) this.vanished.add(uid);
    }
    let top = target > this.modseq ? target : this.modseq;
    for (const m of rows.sort((a, b) => cmp(a.modseq ?? 0n, b.modseq ?? 0n) || a.uid - b.uid)) {
      const modseq = m.modseq ?? 0n;
      if (modseq > top) top = modseq;
      this.vanished.delete(m.uid);
      this.upsert(m.uid, m.flags?.has('\\Seen') ?? false, modseq);
    }
    const gone = [...this.vanished].sort((a, b) => a - b);
    this.vanished.clear();
    for (const uid of gone) if (this.known.has(uid)) this.remove(uid, top);
    this.modseq = top;
  }

  private set(uid: number, seen: boolean): void {
    const before = this.known.get(uid);
    if (before === false) this.unseen--;
    this.known.set(uid, seen);
    if (!seen) this.unseen++;
  }

  private upsert(uid: number, seen: boolean, modseq: bigint): void {
    const kind = this.known.has(uid) ? 'updated' : 'created';
    this.set(uid, seen);
    this.emit({ kind, uid, seen, modseq: modseq.toString() });
  }

  private remove(uid: number, modseq: bigint = this.modseq): void {
    if (this.known.get(uid) === false) this.unseen--;
    this.known.delete(uid);
    this.emit({ kind: 'deleted', uid, modseq: modseq.toString() });
  }

  private emit(c: Pick<FolderChange, 'kind' | 'uid' | 'modseq' | 'seen'>): void {
    const change: FolderChange = {
      mailbox: this.mailbox,
      folder: this.folder,
      kind: c.kind,
      uidValidity: this.uidValidity,
      uid: c.uid,
      modseq: c.modseq,
      ...(c.seen !== undefined ? { seen: c.seen } : {}),
      unseen: this.unseen,
      total: this.known.size,
      at: this.options.now(),
    };
    for (const l of [...this.listeners]) {
      try {
        l.fn(change);
      } catch (err) {
        // A watcher's bug must not stop the others or the feed.
        this.options.log.error({ err }, 'mail feed: a watcher failed on a change');
      }
    }
  }

  /** Something happened: note it and break IDLE so the loop runs a round. */
  private kick(): void {
    this.dirty = true;
    const client = this.client;
    if (client?.idling) client.noop().catch(() => undefined);
  }

  private lost(client: ImapFlow): void {
    if (this.client !== client) return;
    this.client = undefined;
    if (!this.closed) this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const delays = this.options.reconnectDelays;
    const delay = delays[Math.min(this.attempts, delays.length - 1)] ?? 1000;
    this.attempts++;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void (async () => {
        if (this.held) await this.held;
        if (this.closed) return;
        try {
          await this.connect(false);
        } catch (err) {
          this.options.log.warn({ err, mailbox: this.mailbox, folder: this.folder }, 'mail feed: reconnect failed');
          if (!this.closed) this.scheduleReconnect();
        }
      })();
    }, delay);
  }

  interrupt(): () => void {
    let release!: () => void;
    this.held = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.client?.close();
    return () => {
      this.held = undefined;
      release();
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    if (client) await client.logout().catch(() => client.close());
  }
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
