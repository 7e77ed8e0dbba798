/**
 * The sandbox's view of changes in its mailboxes, shared by the emulators that tell clients about
 * new mail: Graph change notifications (src/sandbox/graph/subscriptions.ts) and EWS streaming and
 * push notifications (src/sandbox/ews/). Two implementations:
 * - Dovecot-backed (the sandbox's real mailboxes): IMAP IDLE + CONDSTORE per watched folder, so a
 *   message delivered over LMTP, SMTP or Graph sendMail, or marked read over IMAP or Graph, shows up
 *   here as it would in Exchange's event table;
 * - synthetic: many in-memory mailboxes for scale tests and benchmarks (no Dovecot), where
 *   `deliver` creates a message and reports it at once.
 *
 * Emulators use only this interface, so both modes serve the same protocol code.
 */

export type ChangeKind = 'created' | 'updated' | 'deleted';

/** One change of one message in one folder, with the folder's counts after it. */
export interface FolderChange {
  /** Lower-case primary address. */
  mailbox: string;
  /** IMAP path, e.g. 'INBOX' (the Graph well-known names map onto these: src/sandbox/graph/ids.ts). */
  folder: string;
  kind: ChangeKind;
  uidValidity: string;
  uid: number;
  /** Version of the message after the change (IMAP MODSEQ; synthetic: a counter). */
  modseq: string;
  /** \Seen after the change (created and updated). */
  seen?: boolean;
  /** Unread (unseen) and total messages in the folder after the change. */
  unseen: number;
  total: number;
  /** When the sandbox saw the change (ms since the epoch). */
  at: number;
}

export interface MessageSummary {
  uidValidity: string;
  uid: number;
  modseq: string;
  seen: boolean;
  from?: { address: string; name?: string };
  subject?: string;
  internetMessageId?: string;
  receivedAt: Date;
  size: number;
}

export interface FolderCounts {
  uidValidity: string;
  unseen: number;
  total: number;
  /** Highest MODSEQ (synthetic: the counter), for watermarks. */
  highestModseq: string;
}

export interface MailFeed {
  /**
   * Calls `fn` for every change in the folder from now on (in the order they happened), until the
   * returned function is called. Several watchers of one folder share one source.
   */
  watch(mailbox: string, folder: string, fn: (change: FolderChange) => void): Promise<() => void>;
  /** Header summary of one message, or undefined when it is gone. */
  message(mailbox: string, folder: string, uid: number): Promise<MessageSummary | undefined>;
  counts(mailbox: string, folder: string): Promise<FolderCounts>;
  close(): Promise<void>;
}
