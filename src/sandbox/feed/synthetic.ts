/**
 * Synthetic mailboxes: many in-memory mailboxes (user00001@synthetic.test …) for scale tests and
 * benchmarks of thousands of watched mailboxes, where a real Dovecot with 15,000 IDLE connections
 * would measure Dovecot rather than mailbridge.
 *
 * One object is both a MailFeed (src/sandbox/mailfeed.ts) and a GraphMailStore
 * (src/sandbox/graph/store.ts), so Graph change notifications, the Graph routes the watchers use
 * (message by id, folder counts, delta, PATCH isRead, DELETE) and the EWS sandbox all see the same
 * messages. `deliver` creates a message and reports it to the folder's watchers at once (no IDLE
 * latency); `markRead`, Graph PATCH, DELETE and move report `updated`/`deleted`/`created` the same way.
 *
 * Strategy for memory: a mailbox is its index; nothing is allocated for it until it holds a message
 * (then a small per-folder table of message records, no MIME: the RFC 5322 text is rendered from the
 * record when Graph asks for it). Addresses, the directory entry and the user object id are
 * computed from the index (`user` + zero-padded number @ domain; object id 5e000000-…-<index>), so
 * 15,000 empty mailboxes cost nothing but the numbers. MODSEQ is one counter per mailbox; expunged
 * UIDs are remembered with their MODSEQ so delta can report them.
 *
 * Limits: folders are Exchange's well-known ones only (Inbox, Sent Items, Deleted Items, …), fixed
 * UIDVALIDITY 1; messages are plain text; appended MIME (sendMail's Sent Items copy) is kept as is.
 */
import { randomUUID } from 'node:crypto';
import { WELL_KNOWN_FOLDERS } from '../graph/ids.ts';
import { FolderMissing, type FolderStatus, type GraphMailStore, type ListedMessage, type StoredMessage } from '../graph/store.ts';
import type { FolderChange, FolderCounts, MailFeed, MessageSummary } from '../mailfeed.ts';

export interface SyntheticOptions {
  /** How many mailboxes (user00001 … userNNNNN). */
  mailboxes: number;
  /** Their domain (default synthetic.test). */
  domain?: string;
  /** Local-part prefix (default "user"). */
  prefix?: string;
  /** Clock for arrival times and FolderChange.at (ms). */
  now?: () => number;
}

interface Msg {
  uid: number;
  seen: boolean;
  flagged: boolean;
  modseq: number;
  receivedAt: number;
  fromAddress: string;
  fromName?: string;
  subject: string;
  messageId: string;
  body?: string;
  /** MIME as appended (sendMail's Sent Items copy); otherwise rendered from the fields. */
  raw?: Buffer;
}

interface Folder {
  nextUid: number;
  unseen: number;
  messages: Map<number, Msg>;
  expunged: Array<{ uid: number; modseq: number }>;
}

interface Box {
  modseq: number;
  folders: Map<string, Folder>;
}

const UID_VALIDITY = '1';
const USER_ID_PREFIX = '5e000000-0000-4000-8000-';

export class SyntheticMailboxes implements MailFeed, GraphMailStore {
  readonly count: number;
  readonly domain: string;
  private readonly prefix: string;
  private readonly width: number;
  private readonly now: () => number;
  private readonly boxes = new Map<number, Box>();
  private readonly listeners = new Map<string, Set<{ fn: (change: FolderChange) => void }>>();
  private readonly pattern: RegExp;

  constructor(options: SyntheticOptions) {
    if (!Number.isInteger(options.mailboxes) || options.mailboxes < 1) throw new Error('synthetic.mailboxes must be a positive integer');
    this.count = options.mailboxes;
    this.domain = (options.domain ?? 'synthetic.test').toLowerCase();
    this.prefix = (options.prefix ?? 'user').toLowerCase();
    this.width = Math.max(5, String(options.mailboxes).length);
    this.now = options.now ?? Date.now;
    this.pattern = new RegExp(`^${escape(this.prefix)}(\\d{${this.width}})@${escape(this.domain)}$`);
  }

  // --- addresses and directory --------------------------------------------------------------------

  /** Address of mailbox `i` (1-based). */
  address(i: number): string {
    return `${this.prefix}${String(i).padStart(this.width, '0')}@${this.domain}`;
  }

  /** Every address, in order (computed, not stored). */
  *addresses(): IterableIterator<string> {
    for (let i = 1; i <= this.count; i++) yield this.address(i);
  }

  private index(address: string): number | undefined {
    const m = this.pattern.exec(address.toLowerCase());
    if (!m) return undefined;
    const i = Number(m[1]);
    return i >= 1 && i <= this.count ? i : undefined;
  }

  has(address: string): boolean {
    return this.index(address) !== undefined;
  }

  /** The Entra object id of a synthetic mailbox's user (derived from its number). */
  userId(address: string): string | undefined {
    const i = this.index(address);
    return i === undefined ? undefined : USER_ID_PREFIX + i.toString(16).padStart(12, '0');
  }

  /** The address whose user has this object id. */
  addressOfUserId(id: string): string | undefined {
    const lower = id.toLowerCase();
    if (!lower.startsWith(USER_ID_PREFIX)) return undefined;
    const i = parseInt(lower.slice(USER_ID_PREFIX.length), 16);
    return Number.isInteger(i) && i >= 1 && i <= this.count ? this.address(i) : undefined;
  }

  displayName(address: string): string {
    const i = this.index(address);
    return i === undefined ? '' : `Synthetic User ${i}`;
  }

  /** Mailboxes holding state (tests: an empty mailbox allocates nothing). */
  get allocated(): number {
    return this.boxes.size;
  }

  // --- test and benchmark operations --------------------------------------------------------------

  /** Delivers a new unread message into the mailbox's Inbox and reports it at once. */
  deliver(mailbox: string, message: { from: string | { address: string; name?: string }; subject: string; body?: string; folder?: string }): FolderChange {
    const folder = message.folder ?? 'INBOX';
    const from = typeof message.from === 'string' ? { address: message.from } : message.from;
    return this.add(mailbox, folder, {
      seen: false,
      flagged: false,
      receivedAt: this.now(),
      fromAddress: from.address,
      ...(from.name ? { fromName: from.name } : {}),
      subject: message.subject,
      messageId: `<${randomUUID()}@${this.domain}>`,
      ...(message.body !== undefined ? { body: message.body } : {}),
    });
  }

  /** Marks a message read (or unread); reports `updated`. False if it is gone. */
  markRead(mailbox: string, uid: number, read = true, folder = 'INBOX'): boolean {
    return this.flag(mailbox, folder, uid, (m) => {
      m.seen = read;
    });
  }

  // --- MailFeed ------------------------------------------------------------------------------------

  async watch(mailbox: string, folder: string, fn: (change: FolderChange) => void): Promise<() => void> {
    const path = this.path(mailbox, folder);
    const key = `${mailbox.toLowerCase()}\u0000${path}`;
    let set = this.listeners.get(key);
    if (!set) {
      set = new Set();
      this.listeners.set(key, set);
    }
    const entry = { fn };
    set.add(entry);
    return () => {
      const s = this.listeners.get(key);
      if (!s) return;
      s.delete(entry);
      if (s.size === 0) this.listeners.delete(key);
    };
  }

  async message(mailbox: string, folder: string, uid: number): Promise<MessageSummary | undefined> {
    const m = this.folder(mailbox, this.path(mailbox, folder))?.messages.get(uid);
    if (!m) return undefined;
    return {
      uidValidity: UID_VALIDITY,
      uid: m.uid,
      modseq: String(m.modseq),
      seen: m.seen,
      from: { address: m.fromAddress, ...(m.fromName ? { name: m.fromName } : {}) },
      subject: m.subject,
      internetMessageId: m.messageId,
      receivedAt: new Date(m.receivedAt),
      size: this.render(mailbox, m).length,
    };
  }

  async counts(mailbox: string, folder: string): Promise<FolderCounts> {
    const path = this.path(mailbox, folder);
    const f = this.folder(mailbox, path);
    return { uidValidity: UID_VALIDITY, unseen: f?.unseen ?? 0, total: f?.messages.size ?? 0, highestModseq: String(this.box(mailbox)?.modseq ?? 0) };
  }

  /** Watch listeners registered (tests). */
  get watching(): number {
    return this.listeners.size;
  }

  // --- GraphMailStore ------------------------------------------------------------------------------

  async listFolders(mailbox: string): Promise<Array<{ path: string; parentPath: string; name: string }>> {
    this.require(mailbox);
    return Object.values(WELL_KNOWN_FOLDERS).map((f) => ({ path: f.path, parentPath: '', name: f.path }));
  }

  async status(mailbox: string, path: string): Promise<FolderStatus | undefined> {
    this.require(mailbox);
    const canonical = canonicalPath(path);
    if (!canonical) return undefined;
    const f = this.folder(mailbox, canonical);
    let size = 0;
    for (const m of f?.messages.values() ?? []) size += this.render(mailbox, m).length;
    return {
      path: canonical,
      uidValidity: UID_VALIDITY,
      highestModseq: BigInt(this.box(mailbox)?.modseq ?? 0),
      messages: f?.messages.size ?? 0,
      unseen: f?.unseen ?? 0,
      size,
    };
  }

  async snapshot(mailbox: string, path: string): Promise<{ uidValidity: string; modseq: bigint; messages: ListedMessage[] }> {
    const canonical = this.existing(mailbox, path);
    const f = this.folder(mailbox, canonical);
    const messages = [...(f?.messages.values() ?? [])].map((m) => ({ uid: m.uid, internalDate: new Date(m.receivedAt) }));
    return { uidValidity: UID_VALIDITY, modseq: BigInt(this.box(mailbox)?.modseq ?? 0), messages };
  }

  async changesSince(mailbox: string, path: string, modseq: bigint): Promise<{ uidValidity: string; modseq: bigint; changed: ListedMessage[]; vanished: number[] }> {
    const canonical = this.existing(mailbox, path);
    const f = this.folder(mailbox, canonical);
    const since = Number(modseq);
    const changed = [...(f?.messages.values() ?? [])].filter((m) => m.modseq > since).map((m) => ({ uid: m.uid, internalDate: new Date(m.receivedAt) }));
    const vanished = (f?.expunged ?? []).filter((e) => e.modseq > since).map((e) => e.uid);
    return { uidValidity: UID_VALIDITY, modseq: BigInt(this.box(mailbox)?.modseq ?? 0), changed, vanished };
  }

  async fetch(mailbox: string, path: string, uidValidity: string, uids: number[]): Promise<StoredMessage[]> {
    const canonical = this.existing(mailbox, path);
    if (uidValidity !== UID_VALIDITY) return [];
    const f = this.folder(mailbox, canonical);
    const out: StoredMessage[] = [];
    for (const uid of uids) {
      const m = f?.messages.get(uid);
      if (!m) continue;
      const source = this.render(mailbox, m);
      const flags = new Set<string>();
      if (m.seen) flags.add('\\Seen');
      if (m.flagged) flags.add('\\Flagged');
      out.push({ uid, flags, internalDate: new Date(m.receivedAt), modseq: BigInt(m.modseq), size: source.length, source });
    }
    return out;
  }

  async setFlags(mailbox: string, path: string, uidValidity: string, uid: number, add: string[], remove: string[]): Promise<boolean> {
    const canonical = this.existing(mailbox, path);
    if (uidValidity !== UID_VALIDITY) return false;
    return this.flag(mailbox, canonical, uid, (m) => {
      for (const f of remove) apply(m, f, false);
      for (const f of add) apply(m, f, true);
    });
  }

  async move(mailbox: string, path: string, uidValidity: string, uid: number, destination: string): Promise<{ uid: number; uidValidity: string } | undefined> {
    const from = this.existing(mailbox, path);
    const to = this.existing(mailbox, destination);
    if (uidValidity !== UID_VALIDITY) return undefined;
    const m = this.take(mailbox, from, uid);
    if (!m) return undefined;
    const moved = this.add(mailbox, to, { ...m });
    return { uid: moved.uid, uidValidity: UID_VALIDITY };
  }

  async expunge(mailbox: string, path: string, uidValidity: string, uid: number): Promise<boolean> {
    const canonical = this.existing(mailbox, path);
    if (uidValidity !== UID_VALIDITY) return false;
    return this.take(mailbox, canonical, uid) !== undefined;
  }

  async append(mailbox: string, path: string, raw: Buffer, flags: string[], date: Date): Promise<void> {
    const canonical = this.existing(mailbox, path);
    const head = raw.subarray(0, Math.max(0, raw.indexOf('\r\n\r\n')) || raw.length).toString('latin1');
    const header = (name: string) => new RegExp(`^${name}:[ \\t]*(.*(?:\\r\\n[ \\t].*)*)`, 'im').exec(head)?.[1]?.replace(/\r\n[ \t]+/g, ' ').trim();
    this.add(mailbox, canonical, {
      seen: flags.includes('\\Seen'),
      flagged: flags.includes('\\Flagged'),
      receivedAt: date.getTime(),
      fromAddress: /<([^>]+)>/.exec(header('from') ?? '')?.[1] ?? header('from') ?? mailbox,
      subject: header('subject') ?? '',
      messageId: header('message-id') ?? `<${randomUUID()}@${this.domain}>`,
      raw,
    });
  }

  /** Delivers MIME (Graph sendMail to a synthetic recipient) into the recipient's Inbox. */
  deliverRaw(mailbox: string, raw: Buffer): FolderChange {
    const head = raw.subarray(0, Math.max(0, raw.indexOf('\r\n\r\n')) || raw.length).toString('latin1');
    const header = (name: string) => new RegExp(`^${name}:[ \\t]*(.*(?:\\r\\n[ \\t].*)*)`, 'im').exec(head)?.[1]?.replace(/\r\n[ \t]+/g, ' ').trim();
    return this.add(mailbox, 'INBOX', {
      seen: false,
      flagged: false,
      receivedAt: this.now(),
      fromAddress: /<([^>]+)>/.exec(header('from') ?? '')?.[1] ?? header('from') ?? '',
      subject: header('subject') ?? '',
      messageId: header('message-id') ?? `<${randomUUID()}@${this.domain}>`,
      raw,
    });
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }

  // --- internals -----------------------------------------------------------------------------------

  private require(mailbox: string): void {
    if (!this.has(mailbox)) throw new Error(`${mailbox} is not a synthetic mailbox`);
  }

  /** A folder name (IMAP path or well-known name) as the canonical path; throws FolderMissing. */
  private path(mailbox: string, folder: string): string {
    this.require(mailbox);
    const p = canonicalPath(folder);
    if (!p) throw new FolderMissing(folder);
    return p;
  }

  private existing(mailbox: string, folder: string): string {
    return this.path(mailbox, folder);
  }

  private box(mailbox: string): Box | undefined {
    const i = this.index(mailbox);
    return i === undefined ? undefined : this.boxes.get(i);
  }

  private folder(mailbox: string, path: string): Folder | undefined {
    return this.box(mailbox)?.folders.get(path);
  }

  private add(mailbox: string, path: string, fields: Omit<Msg, 'uid' | 'modseq'>): FolderChange {
    const i = this.index(mailbox);
    if (i === undefined) throw new Error(`${mailbox} is not a synthetic mailbox`);
    const canonical = canonicalPath(path);
    if (!canonical) throw new FolderMissing(path);
    let box = this.boxes.get(i);
    if (!box) {
      box = { modseq: 0, folders: new Map() };
      this.boxes.set(i, box);
    }
    let f = box.folders.get(canonical);
    if (!f) {
      f = { nextUid: 1, unseen: 0, messages: new Map(), expunged: [] };
      box.folders.set(canonical, f);
    }
    const m: Msg = { ...fields, uid: f.nextUid++, modseq: ++box.modseq };
    f.messages.set(m.uid, m);
    if (!m.seen) f.unseen++;
    return this.emit(mailbox, canonical, f, 'created', m.uid, m.modseq, m.seen);
  }

  private flag(mailbox: string, path: string, uid: number, change: (m: Msg) => void): boolean {
    const canonical = canonicalPath(path);
    const box = this.box(mailbox);
    const f = canonical ? box?.folders.get(canonical) : undefined;
    const m = f?.messages.get(uid);
    if (!box || !f || !m || !canonical) return false;
    const before = `${m.seen}/${m.flagged}`;
    const wasSeen = m.seen;
    change(m);
    if (`${m.seen}/${m.flagged}` === before) return true; // IMAP STORE of an unchanged flag: no new MODSEQ
    if (wasSeen !== m.seen) f.unseen += m.seen ? -1 : 1;
    m.modseq = ++box.modseq;
    this.emit(mailbox, canonical, f, 'updated', uid, m.modseq, m.seen);
    return true;
  }

  private take(mailbox: string, path: string, uid: number): Msg | undefined {
    const box = this.box(mailbox);
    const f = box?.folders.get(path);
    const m = f?.messages.get(uid);
    if (!box || !f || !m) return undefined;
    f.messages.delete(uid);
    if (!m.seen) f.unseen--;
    const modseq = ++box.modseq;
    f.expunged.push({ uid, modseq });
    this.emit(mailbox, path, f, 'deleted', uid, modseq);
    return m;
  }

  private emit(mailbox: string, folder: string, f: Folder, kind: FolderChange['kind'], uid: number, modseq: number, seen?: boolean): FolderChange {
    const change: FolderChange = {
      mailbox: mailbox.toLowerCase(),
      folder,
      kind,
      uidValidity: UID_VALIDITY,
      uid,
      modseq: String(modseq),
      ...(seen !== undefined ? { seen } : {}),
      unseen: f.unseen,
      total: f.messages.size,
      at: this.now(),
    };
    for (const l of [...(this.listeners.get(`${change.mailbox}\u0000${folder}`) ?? [])]) {
      try {
        l.fn(change);
      } catch {
        // A watcher's bug must not stop the others or the delivery.
      }
    }
    return change;
  }

  /** The RFC 5322 text of a message record. */
  private render(mailbox: string, m: Msg): Buffer {
    if (m.raw) return m.raw;
    const from = m.fromName ? `${encodeWord(m.fromName)} <${m.fromAddress}>` : m.fromAddress;
    return Buffer.from(
      `From: ${from}\r\nTo: ${mailbox}\r\nSubject: ${encodeWord(m.subject)}\r\nDate: ${new Date(m.receivedAt).toUTCString().replace('GMT', '+0000')}\r\n` +
        `Message-ID: ${m.messageId}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n` +
        `${m.body ?? `Synthetic message: ${m.subject}`}\r\n`,
      'utf8',
    );
  }
}

function apply(m: Msg, flag: string, on: boolean): void {
  if (flag === '\\Seen') m.seen = on;
  else if (flag === '\\Flagged') m.flagged = on;
}

/** IMAP path or Graph well-known name → the synthetic folder's path; undefined for others. */
function canonicalPath(folder: string): string | undefined {
  const wk = WELL_KNOWN_FOLDERS[folder.toLowerCase()];
  if (wk) return wk.path;
  for (const f of Object.values(WELL_KNOWN_FOLDERS)) if (f.path.toLowerCase() === folder.toLowerCase()) return f.path;
  return undefined;
}

function encodeWord(s: string): string {
  return /^[\x20-\x7e]*$/.test(s) ? s : `=?UTF-8?B?${Buffer.from(s, 'utf8').toString('base64')}?=`;
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
