/**
 * Delta query for messages in a folder (microsoft-facts.md §4.6), on the real IMAP state.
 *
 * A round starts with no token (initial sync: every message in the folder) or with a delta token
 * (changes since the round that issued it). The sandbox reads the folder's HIGHESTMODSEQ and, for a
 * delta token, `UID FETCH 1:* (CHANGEDSINCE <modseq of the token> VANISHED)`: the changed UIDs are
 * new messages (not known to the client: "created") or changed ones (flags, e.g. \Seen:
 * "updated"); the VANISHED (EARLIER) UIDs that the client knows become
 * `{"@odata.type":"#microsoft.graph.message","id":…,"@removed":{"reason":"deleted"}}`. What the
 * client knows is kept with the token (the UIDs of every message reported to it), so a UID Dovecot
 * reports as vanished but the client never saw is not sent. The round's entries (removals first,
 * then messages newest first) are served `odata.maxpagesize` at a time with `@odata.nextLink`
 * ($skiptoken) and, after the last page, `@odata.deltaLink` ($deltatoken). A change that happens
 * while a round is being paged shows up in that round or the next one (Graph allows replays), never
 * nowhere.
 *
 * Tokens are opaque handles to sync state kept here, like Exchange's delta token cache: a bounded
 * LRU (1,000 by default), `expire()` empties it, and a token whose state is gone, or whose folder
 * has a new UIDVALIDITY, fails with 410 SyncStateNotFound. Tokens stay usable until evicted, so a
 * client may repeat a page or a round. Query options ($select, changeType, $filter) are encoded in
 * the state, as Graph encodes them into its tokens.
 */
import { randomBytes } from 'node:crypto';
import { graphErrors } from './errors.ts';
import type { ListedMessage } from './store.ts';

export type ChangeType = 'created' | 'updated' | 'deleted';

export interface DeltaQuery {
  select?: string[];
  changeType?: ChangeType;
  /** $filter=receivedDateTime ge|gt <date> (the only $filter delta supports). */
  receivedAfter?: { inclusive: boolean; at: number };
}

export type Entry = { kind: 'upsert'; uid: number; change: 'created' | 'updated' } | { kind: 'removed'; uid: number };

/** A round being paged: its entries are fixed when the round starts. */
export interface Round {
  mailbox: string;
  folder: string;
  query: DeltaQuery;
  uidValidity: string;
  /** HIGHESTMODSEQ read at the start of the round; the next round asks for changes after it. */
  modseq: string;
  baseKnown: number[];
  /** Known UIDs that vanished this round, reported or not (changeType may leave removals out). */
  dropped: number[];
  entries: Entry[];
}

export type SyncState =
  | { kind: 'skip'; round: Round; offset: number; /** created entries before `offset` that were gone when fetched */ missing: number[] }
  | { kind: 'delta'; mailbox: string; folder: string; query: DeltaQuery; uidValidity: string; modseq: string; known: number[] };

export class TokenCache {
  private readonly states = new Map<string, SyncState>();
  private readonly capacity: number;
  private generation = 0;

  constructor(capacity = 1000) {
    this.capacity = capacity;
  }

  issue(state: SyncState): string {
    this.generation++;
    const head = Buffer.alloc(4);
    head.writeUInt32BE(this.generation);
    const token = Buffer.concat([head, randomBytes(18)]).toString('base64url');
    this.states.set(token, state);
    while (this.states.size > this.capacity) {
      const oldest = this.states.keys().next().value;
      if (oldest === undefined) break;
      this.states.delete(oldest);
    }
    return token;
  }

  /** The state of a token, or the 410 SyncStateNotFound Graph sends for a lost one. */
  get(token: string, expect: { mailbox: string; folder: string; kind: SyncState['kind'] }): SyncState {
    const state = this.states.get(token);
    const owner = state && (state.kind === 'skip' ? state.round : state);
    if (!state || !owner || state.kind !== expect.kind || owner.mailbox !== expect.mailbox.toLowerCase() || owner.folder !== expect.folder) {
      throw graphErrors.syncStateNotFound(this.generationOf(token), this.generation);
    }
    // Refresh its place in the LRU.
    this.states.delete(token);
    this.states.set(token, state);
    return state;
  }

  /** Forget every token (tests: what an evicted Exchange delta cache does to clients). */
  expire(): void {
    this.states.clear();
  }

  get size(): number {
    return this.states.size;
  }

  private generationOf(token: string): number {
    const bytes = /^[A-Za-z0-9_-]+$/.test(token) ? Buffer.from(token, 'base64url') : Buffer.alloc(0);
    return bytes.length === 22 ? bytes.readUInt32BE(0) : 0;
  }
}

function passesFilter(query: DeltaQuery, m: ListedMessage): boolean {
  const f = query.receivedAfter;
  if (!f) return true;
  const t = m.internalDate.getTime();
  return f.inclusive ? t >= f.at : t > f.at;
}

function newestFirst(a: ListedMessage, b: ListedMessage): number {
  return b.internalDate.getTime() - a.internalDate.getTime() || b.uid - a.uid;
}

/** Entries of an initial round: every message (changeType applies only to later rounds, as in Graph). */
export function initialEntries(query: DeltaQuery, messages: ListedMessage[]): Entry[] {
  return messages
    .filter((m) => passesFilter(query, m))
    .sort(newestFirst)
    .map((m) => ({ kind: 'upsert', uid: m.uid, change: 'created' }) as const);
}

/** Entries of a later round, from CHANGEDSINCE/VANISHED results and what the client knows. */
export function incrementalEntries(query: DeltaQuery, known: Set<number>, changed: ListedMessage[], vanished: number[]): Entry[] {
  const want = (c: ChangeType) => !query.changeType || query.changeType === c;
  const entries: Entry[] = [];
  if (want('deleted')) {
    for (const uid of [...new Set(vanished)].sort((a, b) => b - a)) if (known.has(uid)) entries.push({ kind: 'removed', uid });
  }
  for (const m of [...changed].sort(newestFirst)) {
    const change = known.has(m.uid) ? 'updated' : 'created';
    if (want(change) && passesFilter(query, m)) entries.push({ kind: 'upsert', uid: m.uid, change });
  }
  return entries;
}

/** What the client knows after a round: `baseKnown`, minus everything vanished, plus the messages it was sent. */
export function knownAfter(round: Round, missing: number[]): number[] {
  const known = new Set(round.baseKnown);
  for (const uid of round.dropped) known.delete(uid);
  for (const e of round.entries) {
    if (e.kind === 'removed') known.delete(e.uid);
    else if (e.change === 'created') known.add(e.uid);
  }
  for (const uid of missing) known.delete(uid);
  return [...known].sort((a, b) => a - b);
}
