/**
 * A message in the sandbox's Dovecot as the emulated Graph and EWS ids carry it: mailbox, IMAP
 * folder, the folder's UIDVALIDITY and the message's UID. A moved message is another one (a new
 * UID), as the default ids of both services change when an item moves.
 */
export interface MessageRef {
  mailbox: string;
  folder: string;
  uidValidity: string;
  uid: number;
}

/** The four parts an id was unpacked into, checked: undefined unless they name a message. */
export function messageRefOf(parts: string[]): MessageRef | undefined {
  const [mailbox = '', folder = '', uidValidity = '', uid = ''] = parts;
  if (!mailbox || !folder || !/^\d+$/.test(uidValidity) || !/^[1-9]\d{0,9}$/.test(uid)) return undefined;
  return { mailbox, folder, uidValidity, uid: Number(uid) };
}
