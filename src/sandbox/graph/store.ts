/**
 * The sandbox Graph's view of a mailbox: the mailbox's folders in the sandbox's real Dovecot, read
 * and changed over IMAP (imapflow), logged in as the mailbox with a backend token
 * (dovecot.mintToken; clients' tokens never reach Dovecot). Mail sent or changed over Graph is
 * therefore what the IMAP front shows, and the other way round.
 *
 * Strategy: one IMAP connection per mailbox, opened on first use and kept; every operation runs
 * alone on it (a per-mailbox queue) and starts with a SELECT, so it sees the folder as it is now.
 * The connection enables CONDSTORE and QRESYNC (Dovecot 2.3 offers both): the delta engine reads
 * HIGHESTMODSEQ, asks `UID FETCH 1:* (…) (CHANGEDSINCE m VANISHED)` and gets changed messages plus
 * `VANISHED (EARLIER)` for expunged UIDs. A connection that dies is replaced once per operation.
 * Exchange's standard folders (Sent Items, Deleted Items, Drafts, Junk Email, Archive, Outbox) are
 * created on the first connection to a mailbox, as every Exchange mailbox has them.
 *
 * Limits: no IDLE (the store only answers requests; change feeds are src/sandbox/feed/); folder
 * hierarchy is Dovecot's ('.' separated).
 *
 * `GraphMailStore` is what the Graph routes need from a store: MailStore implements it over Dovecot,
 * the synthetic mailboxes (src/sandbox/feed/synthetic.ts) in memory, and `RoutedStore` picks one
 * per mailbox, so the same routes serve both.
 */
import { ImapFlow, type FetchMessageObject } from 'imapflow';
import type { Dovecot } from '../dovecot.ts';
import { WELL_KNOWN_FOLDERS } from './ids.ts';

/** What the Graph sandbox needs from the sandbox Dovecot. */
export type GraphBackend = Pick<Dovecot, 'host' | 'ports' | 'mintToken' | 'deliver'>;

export interface ListedMessage {
  uid: number;
  internalDate: Date;
}

export interface StoredMessage {
  uid: number;
  flags: Set<string>;
  internalDate: Date;
  modseq: bigint;
  size: number;
  source: Buffer;
}

export interface FolderStatus {
  path: string;
  uidValidity: string;
  highestModseq: bigint;
  messages: number;
  unseen: number;
  size: number;
}

interface Session {
  client: ImapFlow;
  /** Collects VANISHED (EARLIER) UIDs while a CHANGEDSINCE fetch runs. */
  vanished: number[] | null;
}

/** Thrown when a folder does not exist (and is not one the store creates). */
export class FolderMissing extends Error {}

/** Header summary of one message (the mail feeds' `message`). */
export interface StoredSummary {
  uid: number;
  flags: Set<string>;
  modseq: bigint;
  internalDate: Date;
  size: number;
  from?: { address: string; name?: string };
  subject?: string;
  messageId?: string;
}

/** What the Graph routes need from a mail store (Dovecot-backed or synthetic). */
export interface GraphMailStore {
  listFolders(mailbox: string): Promise<Array<{ path: string; parentPath: string; name: string }>>;
  status(mailbox: string, path: string): Promise<FolderStatus | undefined>;
  snapshot(mailbox: string, path: string): Promise<{ uidValidity: string; modseq: bigint; messages: ListedMessage[] }>;
  changesSince(mailbox: string, path: string, modseq: bigint): Promise<{ uidValidity: string; modseq: bigint; changed: ListedMessage[]; vanished: number[] }>;
  fetch(mailbox: string, path: string, uidValidity: string, uids: number[]): Promise<StoredMessage[]>;
  setFlags(mailbox: string, path: string, uidValidity: string, uid: number, add: string[], remove: string[]): Promise<boolean>;
  move(mailbox: string, path: string, uidValidity: string, uid: number, destination: string): Promise<{ uid: number; uidValidity: string } | undefined>;
  expunge(mailbox: string, path: string, uidValidity: string, uid: number): Promise<boolean>;
  append(mailbox: string, path: string, raw: Buffer, flags: string[], date: Date): Promise<void>;
  close(): Promise<void>;
}

/** Sends each mailbox to the synthetic store when it owns it, else to the Dovecot one. */
export class RoutedStore implements GraphMailStore {
  private readonly main: GraphMailStore;
  private readonly other: GraphMailStore & { has(mailbox: string): boolean };

  constructor(main: GraphMailStore, other: GraphMailStore & { has(mailbox: string): boolean }) {
    this.main = main;
    this.other = other;
  }

  private pick(mailbox: string): GraphMailStore {
    return this.other.has(mailbox) ? this.other : this.main;
  }

  listFolders(mailbox: string) {
    return this.pick(mailbox).listFolders(mailbox);
  }
  status(mailbox: string, path: string) {
    return this.pick(mailbox).status(mailbox, path);
  }
  snapshot(mailbox: string, path: string) {
    return this.pick(mailbox).snapshot(mailbox, path);
  }
  changesSince(mailbox: string, path: string, modseq: bigint) {
    return this.pick(mailbox).changesSince(mailbox, path, modseq);
  }
  fetch(mailbox: string, path: string, uidValidity: string, uids: number[]) {
    return this.pick(mailbox).fetch(mailbox, path, uidValidity, uids);
  }
  setFlags(mailbox: string, path: string, uidValidity: string, uid: number, add: string[], remove: string[]) {
    return this.pick(mailbox).setFlags(mailbox, path, uidValidity, uid, add, remove);
  }
  move(mailbox: string, path: string, uidValidity: string, uid: number, destination: string) {
    return this.pick(mailbox).move(mailbox, path, uidValidity, uid, destination);
  }
  expunge(mailbox: string, path: string, uidValidity: string, uid: number) {
    return this.pick(mailbox).expunge(mailbox, path, uidValidity, uid);
  }
  append(mailbox: string, path: string, raw: Buffer, flags: string[], date: Date) {
    return this.pick(mailbox).append(mailbox, path, raw, flags, date);
  }
  async close(): Promise<void> {
    await Promise.all([this.main.close(), this.other.close()]);
  }
}

export class MailStore implements GraphMailStore {
  private readonly backend: GraphBackend;
  private readonly sessions = new Map<string, Session>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(backend: GraphBackend) {
    this.backend = backend;
  }

  /** Runs `fn` alone on the mailbox's connection; reconnects once if the connection was lost. */
  private run<T>(mailbox: string, fn: (client: ImapFlow, session: Session) => Promise<T>): Promise<T> {
    const key = mailbox.toLowerCase();
    const previous = this.queues.get(key) ?? Promise.resolve();
    const next = previous.then(
      () => this.withSession(key, fn),
      () => this.withSession(key, fn),
    );
    this.queues.set(
      key,
      next.catch(() => undefined),
    );
    return next;
  }

  private async withSession<T>(mailbox: string, fn: (client: ImapFlow, session: Session) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const session = await this.session(mailbox);
      try {
        return await fn(session.client, session);
      } catch (err) {
        session.vanished = null;
        if (session.client.usable || attempt > 0) throw err;
        // The connection died under us (Dovecot restarted, idle timeout): drop it and try once more.
        this.sessions.delete(mailbox);
      }
    }
  }

  private async session(mailbox: string): Promise<Session> {
    if (this.closed) throw new Error('the Graph sandbox mail store is closed');
    const existing = this.sessions.get(mailbox);
    if (existing && existing.client.usable) return existing;
    const session: Session = { client: undefined as unknown as ImapFlow, vanished: null };
    const client = new ImapFlow({
      host: this.backend.host,
      port: this.backend.ports.imap,
      secure: false,
      // Loopback to our own Dovecot: no STARTTLS (Dovecot treats loopback as secured).
      doSTARTTLS: false,
      auth: { user: mailbox, accessToken: await this.backend.mintToken(mailbox) },
      logger: false,
      qresync: true,
      disableAutoIdle: true,
      expungeHandler: (event) => {
        if (session.vanished && event.vanished && event.earlier && event.uid) session.vanished.push(event.uid);
      },
    });
    session.client = client;
    client.on('error', () => {
      // Surfaces as a failed command; the session is replaced on next use.
    });
    client.on('close', () => {
      if (this.sessions.get(mailbox) === session) this.sessions.delete(mailbox);
    });
    await client.connect();
    if (!client.enabled.has('CONDSTORE') || !client.enabled.has('QRESYNC')) {
      await client.logout().catch(() => undefined);
      throw new Error('Dovecot did not enable CONDSTORE and QRESYNC; the Graph sandbox needs them for delta queries');
    }
    const existingPaths = new Set((await client.list()).map((f) => f.path.toLowerCase()));
    for (const f of Object.values(WELL_KNOWN_FOLDERS)) {
      if (!existingPaths.has(f.path.toLowerCase())) await createFolder(client, f.path);
    }
    this.sessions.set(mailbox, session);
    return session;
  }

  private async open(client: ImapFlow, path: string): Promise<{ uidValidity: string; highestModseq: bigint; exists: number }> {
    try {
      const box = await client.mailboxOpen(path);
      return { uidValidity: box.uidValidity.toString(), highestModseq: box.highestModseq ?? 0n, exists: box.exists };
    } catch (err) {
      if ((err as { mailboxMissing?: boolean }).mailboxMissing) throw new FolderMissing(path);
      throw err;
    }
  }

  /** IMAP paths of all folders. */
  listFolders(mailbox: string): Promise<Array<{ path: string; parentPath: string; name: string }>> {
    return this.run(mailbox, async (client) => (await client.list()).map((f) => ({ path: f.path, parentPath: f.parentPath, name: f.name })));
  }

  /** Counts for a folder, or undefined if it does not exist. */
  status(mailbox: string, path: string): Promise<FolderStatus | undefined> {
    return this.run(mailbox, async (client) => {
      const st = await client.status(path, { messages: true, unseen: true, uidValidity: true, highestModseq: true, size: true }).catch(() => false as const);
      if (!st) return undefined;
      return {
        path: st.path,
        uidValidity: String(st.uidValidity ?? ''),
        highestModseq: st.highestModseq ?? 0n,
        messages: st.messages ?? 0,
        unseen: st.unseen ?? 0,
        size: Number((st as { size?: number }).size ?? 0),
      };
    });
  }

  /** Every message of a folder (UID, arrival time) and the folder's HIGHESTMODSEQ at that moment. */
  snapshot(mailbox: string, path: string): Promise<{ uidValidity: string; modseq: bigint; messages: ListedMessage[] }> {
    return this.run(mailbox, async (client) => {
      const box = await this.open(client, path);
      const messages = box.exists === 0 ? [] : (await client.fetchAll('1:*', { uid: true, internalDate: true }, { uid: true })).map(listed);
      return { uidValidity: box.uidValidity, modseq: box.highestModseq, messages };
    });
  }

  /** Messages changed (new or flags) since `modseq`, UIDs expunged since then, and the current HIGHESTMODSEQ. */
  changesSince(
    mailbox: string,
    path: string,
    modseq: bigint,
  ): Promise<{ uidValidity: string; modseq: bigint; changed: ListedMessage[]; vanished: number[] }> {
    return this.run(mailbox, async (client, session) => {
      const box = await this.open(client, path);
      if (box.highestModseq === modseq) return { uidValidity: box.uidValidity, modseq, changed: [], vanished: [] };
      session.vanished = [];
      try {
        const changed = (await client.fetchAll('1:*', { uid: true, internalDate: true }, { uid: true, changedSince: modseq })).map(listed);
        return { uidValidity: box.uidValidity, modseq: box.highestModseq, changed, vanished: [...session.vanished] };
      } finally {
        session.vanished = null;
      }
    });
  }

  /** Full messages by UID (those still there), with flags and MODSEQ. */
  fetch(mailbox: string, path: string, uidValidity: string, uids: number[]): Promise<StoredMessage[]> {
    return this.run(mailbox, async (client) => {
      const box = await this.open(client, path);
      if (box.uidValidity !== uidValidity || uids.length === 0 || box.exists === 0) return [];
      const rows = await client.fetchAll(uids.join(','), { uid: true, flags: true, internalDate: true, size: true, source: true }, { uid: true });
      return rows.map((m) => ({
        uid: m.uid,
        flags: m.flags ?? new Set<string>(),
        internalDate: toDate(m.internalDate),
        modseq: m.modseq ?? 0n,
        size: m.size ?? m.source?.length ?? 0,
        source: m.source ?? Buffer.alloc(0),
      }));
    });
  }

  /** Header summary of one message (envelope, flags, MODSEQ), or undefined when it is gone. */
  summary(mailbox: string, path: string, uid: number): Promise<StoredSummary | undefined> {
    return this.run(mailbox, async (client) => {
      const box = await this.open(client, path);
      if (box.exists === 0) return undefined;
      const [m] = await client.fetchAll(String(uid), { uid: true, flags: true, internalDate: true, size: true, envelope: true }, { uid: true });
      if (!m || m.uid !== uid) return undefined;
      const from = m.envelope?.from?.[0];
      return {
        uid: m.uid,
        flags: m.flags ?? new Set<string>(),
        modseq: m.modseq ?? 0n,
        internalDate: toDate(m.internalDate),
        size: m.size ?? 0,
        from: from?.address ? { address: from.address, ...(from.name ? { name: from.name } : {}) } : undefined,
        subject: m.envelope?.subject,
        messageId: m.envelope?.messageId,
      };
    });
  }

  /** Adds and removes flags; false if the message is gone. */
  setFlags(mailbox: string, path: string, uidValidity: string, uid: number, add: string[], remove: string[]): Promise<boolean> {
    return this.run(mailbox, async (client) => {
      if (!(await this.present(client, path, uidValidity, uid))) return false;
      if (add.length) await client.messageFlagsAdd(String(uid), add, { uid: true });
      if (remove.length) await client.messageFlagsRemove(String(uid), remove, { uid: true });
      return true;
    });
  }

  /** Moves a message; returns its UID and UIDVALIDITY in the destination, or undefined if it is gone. */
  move(mailbox: string, path: string, uidValidity: string, uid: number, destination: string): Promise<{ uid: number; uidValidity: string } | undefined> {
    return this.run(mailbox, async (client) => {
      if (!(await this.present(client, path, uidValidity, uid))) return undefined;
      const result = await client.messageMove(String(uid), destination, { uid: true });
      const newUid = result && result.uidMap?.get(uid);
      if (!result || !newUid) throw new Error(`MOVE of UID ${uid} from ${path} to ${destination} reported no COPYUID`);
      return { uid: newUid, uidValidity: String(result.uidValidity ?? '') };
    });
  }

  /** Deletes a message for good (\Deleted + UID EXPUNGE); false if it is gone. */
  expunge(mailbox: string, path: string, uidValidity: string, uid: number): Promise<boolean> {
    return this.run(mailbox, async (client) => {
      if (!(await this.present(client, path, uidValidity, uid))) return false;
      await client.messageDelete(String(uid), { uid: true });
      return true;
    });
  }

  /** APPENDs a message (creating the folder if needed). */
  append(mailbox: string, path: string, raw: Buffer, flags: string[], date: Date): Promise<void> {
    return this.run(mailbox, async (client) => {
      let result = await client.append(path, raw, flags, date).catch((err: unknown) => err as Error);
      if (result instanceof Error) {
        await createFolder(client, path);
        result = await client.append(path, raw, flags, date);
      }
      if (!result) throw new Error(`APPEND to ${path} failed`);
    });
  }

  private async present(client: ImapFlow, path: string, uidValidity: string, uid: number): Promise<boolean> {
    const box = await this.open(client, path);
    if (box.uidValidity !== uidValidity || box.exists === 0) return false;
    const found = await client.fetchAll(String(uid), { uid: true }, { uid: true });
    return found.some((m) => m.uid === uid);
  }

  async close(): Promise<void> {
    this.closed = true;
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(
      sessions.map(async (s) => {
        await s.client.logout().catch(() => s.client.close());
      }),
    );
  }
}

/** Creates a folder; one that exists already (ALREADYEXISTS) is fine, imapflow reports it as created: false. */
async function createFolder(client: ImapFlow, path: string): Promise<void> {
  await client.mailboxCreate(path);
  await client.mailboxSubscribe(path).catch(() => undefined);
}

function listed(m: FetchMessageObject): ListedMessage {
  return { uid: m.uid, internalDate: toDate(m.internalDate) };
}

function toDate(d: Date | string | undefined): Date {
  if (d instanceof Date) return d;
  return d ? new Date(d) : new Date(0);
}
