/**
 * Graph ids for the sandbox's messages and folders. They are opaque to clients (base64url, like
 * Exchange's ids are base64) but carry what the sandbox needs to find the item in Dovecot again:
 * the mailbox, the IMAP folder, and for messages the folder's UIDVALIDITY and the message's UID.
 * A message id therefore never changes while the message stays in its folder, and a moved message
 * gets a new id, as Graph's default (non-immutable) ids do.
 */
import { messageRefOf, type MessageRef } from '../message-ref.ts';

export type { MessageRef } from '../message-ref.ts';

export interface FolderRef {
  mailbox: string;
  folder: string;
}

const MESSAGE = 'M1';
const FOLDER = 'F1';
const SEP = '\u0000';

export function messageId(ref: MessageRef): string {
  return Buffer.from([MESSAGE, ref.mailbox.toLowerCase(), ref.folder, ref.uidValidity, String(ref.uid)].join(SEP), 'utf8').toString('base64url');
}

export function folderId(ref: FolderRef): string {
  return Buffer.from([FOLDER, ref.mailbox.toLowerCase(), ref.folder].join(SEP), 'utf8').toString('base64url');
}

function parts(id: string, kind: string, count: number): string[] | undefined {
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(id)) return undefined;
  const text = Buffer.from(id.replace(/=+$/, ''), 'base64url').toString('utf8');
  const p = text.split(SEP);
  return p.length === count && p[0] === kind ? p.slice(1) : undefined;
}

export function parseMessageId(id: string): MessageRef | undefined {
  const p = parts(id, MESSAGE, 5);
  return p && messageRefOf(p);
}

export function parseFolderId(id: string): FolderRef | undefined {
  const p = parts(id, FOLDER, 3);
  if (!p) return undefined;
  const [mailbox = '', folder = ''] = p;
  return mailbox && folder ? { mailbox, folder } : undefined;
}

/**
 * Well-known folder names Graph accepts in place of an id (mailFolder resource), mapped to the IMAP
 * folders the Exchange Online IMAP front shows; names Graph knows but the sandbox has no folder for
 * (recoverableitems…, searchfolders, …) are treated as malformed ids.
 */
export const WELL_KNOWN_FOLDERS: Record<string, { path: string; displayName: string }> = {
  inbox: { path: 'INBOX', displayName: 'Inbox' },
  sentitems: { path: 'Sent Items', displayName: 'Sent Items' },
  deleteditems: { path: 'Deleted Items', displayName: 'Deleted Items' },
  drafts: { path: 'Drafts', displayName: 'Drafts' },
  junkemail: { path: 'Junk Email', displayName: 'Junk Email' },
  archive: { path: 'Archive', displayName: 'Archive' },
  outbox: { path: 'Outbox', displayName: 'Outbox' },
};

export function wellKnownByPath(path: string): { name: string; displayName: string } | undefined {
  for (const [name, f] of Object.entries(WELL_KNOWN_FOLDERS)) if (f.path.toLowerCase() === path.toLowerCase()) return { name, displayName: f.displayName };
  return undefined;
}
