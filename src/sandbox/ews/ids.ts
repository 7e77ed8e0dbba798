/**
 * The opaque strings of the sandbox EWS, shaped like Exchange's (standard base64 blobs) but carrying
 * what the sandbox needs to find things again:
 * - ItemId: mailbox, IMAP folder, UIDVALIDITY, UID (a moved message gets a new id, as EWS ids of
 *   moved items change); ChangeKey: the message's MODSEQ behind Exchange's `CQAAAB…` prefix, so a
 *   change of the message (read flag) changes its ChangeKey.
 * - FolderId: mailbox and IMAP folder; ChangeKey `AQAAAA…`.
 * - SubscriptionId: like Exchange Online's, a length-prefixed backend FQDN followed by a 16-byte
 *   GUID (facts §5.2: "base64 blobs embedding the backend FQDN").
 * - Watermark: a per-mailbox event sequence number plus a mailbox hash (Exchange: a bookmark in the
 *   mailbox's event table).
 * - SyncState: gzip'ed JSON of the items the client knows (uid, modseq, seen), base64; Exchange's
 *   sync states are gzip'ed too (they start with `H4sI`), and are kept by the client, not the server.
 */
import { createHash, randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { messageRefOf, type MessageRef } from '../message-ref.ts';

export type ItemRef = MessageRef;

const ITEM = 0x41;
const FOLDER = 0x42;

function pack(kind: number, parts: string[]): string {
  return Buffer.concat([Buffer.from([0, kind]), Buffer.from(parts.join('\u0000'), 'utf8')]).toString('base64');
}

function unpack(id: string, kind: number, count: number): string[] | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(id)) return undefined;
  const buf = Buffer.from(id, 'base64');
  if (buf.length < 3 || buf[0] !== 0 || buf[1] !== kind) return undefined;
  const parts = buf.subarray(2).toString('utf8').split('\u0000');
  return parts.length === count ? parts : undefined;
}

export function itemId(ref: ItemRef): string {
  return pack(ITEM, [ref.mailbox.toLowerCase(), ref.folder, ref.uidValidity, String(ref.uid)]);
}

export function parseItemId(id: string): ItemRef | undefined {
  const p = unpack(id, ITEM, 4);
  return p && messageRefOf(p);
}

export function folderId(mailbox: string, folder: string): string {
  return pack(FOLDER, [mailbox.toLowerCase(), folder]);
}

export function parseFolderId(id: string): { mailbox: string; folder: string } | undefined {
  const p = unpack(id, FOLDER, 2);
  if (!p || !p[0] || !p[1]) return undefined;
  return { mailbox: p[0], folder: p[1] };
}

/** The mailbox root (msgfolderroot): ParentFolderId of the folders in folder events. */
export const ROOT_FOLDER = '\u0001root';

export function itemChangeKey(modseq: string): string {
  return Buffer.concat([Buffer.from([0x09, 0, 0, 0]), Buffer.from(modseq, 'ascii')]).toString('base64');
}

export function folderChangeKey(version: string | number): string {
  return Buffer.concat([Buffer.from([0x01, 0, 0, 0]), Buffer.from(String(version), 'ascii')]).toString('base64');
}

// ---- subscriptions ----

export function newSubscriptionId(backend: string): { id: string; key: string } {
  const fqdn = Buffer.from(backend.toLowerCase(), 'ascii');
  const guid = randomBytes(16);
  const len = Buffer.alloc(2);
  len.writeUInt16LE(fqdn.length);
  const glen = Buffer.alloc(4);
  glen.writeUInt32LE(16);
  return { id: Buffer.concat([len, fqdn, glen, guid]).toString('base64'), key: guid.toString('hex') };
}

/** Backend FQDN and lookup key of a SubscriptionId, or undefined when it is not one of ours. */
export function parseSubscriptionId(id: string): { backend: string; key: string } | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(id)) return undefined;
  const buf = Buffer.from(id, 'base64');
  if (buf.length < 2) return undefined;
  const n = buf.readUInt16LE(0);
  if (buf.length !== 2 + n + 4 + 16 || buf.readUInt32LE(2 + n) !== 16) return undefined;
  return { backend: buf.subarray(2, 2 + n).toString('ascii'), key: buf.subarray(2 + n + 4).toString('hex') };
}

// ---- watermarks ----

function mailboxHash(mailbox: string): number {
  return createHash('sha256').update(mailbox.toLowerCase()).digest().readUInt32LE(0);
}

export function watermark(mailbox: string, seq: number): string {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(1, 0);
  b.writeBigUInt64LE(BigInt(seq), 4);
  b.writeUInt32LE(mailboxHash(mailbox), 12);
  return b.toString('base64');
}

/** The sequence number in a watermark of this mailbox, or undefined (malformed, other mailbox). */
export function parseWatermark(mailbox: string, wm: string): number | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(wm)) return undefined;
  const b = Buffer.from(wm, 'base64');
  if (b.length !== 16 || b.readUInt32LE(0) !== 1 || b.readUInt32LE(12) !== mailboxHash(mailbox)) return undefined;
  return Number(b.readBigUInt64LE(4));
}

// ---- SyncFolderItems state ----

export interface SyncState {
  folder: string;
  uidValidity: string;
  /** Known items: [uid, modseq, seen 0|1]. */
  items: Array<[number, string, 0 | 1]>;
}

export function encodeSyncState(s: SyncState): string {
  return gzipSync(Buffer.from(JSON.stringify({ f: s.folder, v: s.uidValidity, i: s.items }), 'utf8')).toString('base64');
}

export function decodeSyncState(text: string): SyncState | undefined {
  try {
    const o = JSON.parse(gunzipSync(Buffer.from(text, 'base64')).toString('utf8')) as { f?: unknown; v?: unknown; i?: unknown };
    if (typeof o.f !== 'string' || typeof o.v !== 'string' || !Array.isArray(o.i)) return undefined;
    const items = o.i.filter((x): x is [number, string, 0 | 1] => Array.isArray(x) && typeof x[0] === 'number' && typeof x[1] === 'string' && (x[2] === 0 || x[2] === 1));
    if (items.length !== o.i.length) return undefined;
    return { folder: o.f, uidValidity: o.v, items };
  } catch {
    return undefined;
  }
}
