/**
 * What the relay changes in a message as it arrives, before it is spooled (Postfix's cleanup
 * daemon does the same):
 *
 * - a Received header is put on top (RFC 5321 section 4.4: every SMTP server that accepts a
 *   message for relaying MUST add one): who handed it over (HELO name and address literal), this
 *   relay, the protocol (RFC 3848 / RFC 6531 section 3.7.3: ESMTP, ESMTPS, ESMTPA, ESMTPSA,
 *   UTF8SMTP…), the queue ID, the recipient only when there is exactly one (naming more would tell
 *   every recipient about the others, BCC ones included — Postfix does the same), and the time.
 * - Bcc and Resent-Bcc header fields are dropped, as Postfix's `message_drop_headers` default does.
 *   An application that writes its BCC recipients into a Bcc header (many ERP and scanner mailers
 *   do) would otherwise show them to every recipient: Exchange Online hands submitted MIME on as it
 *   is (docs/microsoft-facts-addendum.md). The envelope is not touched, so BCC recipients still
 *   get the message; Graph routes rebuild the one Bcc header Graph needs from the envelope.
 * - a message without a Message-ID gets `<queue ID@relay hostname>`, at the end of its header
 *   section. Every delivery attempt then carries the same ID, so a receiver can drop the duplicate a
 *   crash during delivery may cause (the relay delivers at least once); Exchange would otherwise
 *   stamp a new one on each attempt.
 *
 * Everything else stays byte for byte. The header section is held in memory until its end (the
 * first empty line), at most HEADER_LIMIT; the body streams through.
 */

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');
/** Header sections longer than this are not held whole (Postfix's header_size_limit is 100 KiB). */
const HEADER_LIMIT = 1024 * 1024;
/** Header fields mailbridge drops (lower case, Postfix's message_drop_headers minus content-length). */
const DROPPED = new Set(['bcc', 'resent-bcc']);

export class HeaderCleanup {
  private head: Buffer[] = [];
  private headLength = 0;
  /** The last bytes of the held header, so an empty line split across chunks is found. */
  private tail = Buffer.alloc(0);
  private inBody = false;
  private readonly received: Buffer;
  private readonly messageId: Buffer | undefined;

  /**
   * `received`: the whole Received field, CRLF-terminated (see receivedHeader); `messageId`: the
   * Message-ID to add (with angle brackets) if the message has none.
   */
  constructor(received: string, messageId?: string) {
    this.received = Buffer.from(received, 'utf8');
    if (messageId) this.messageId = Buffer.from(`Message-ID: ${messageId}\r\n`, 'latin1');
  }

  /** The next chunk of the message as received; returns what to store. */
  push(chunk: Buffer): Buffer[] {
    if (this.inBody) return [chunk];
    const before = this.headLength;
    const probe = Buffer.concat([this.tail, chunk]);
    this.head.push(chunk);
    this.headLength += chunk.length;
    // A message that starts with the empty line has no header section at all.
    let end = before < 2 && probe.subarray(0, 2).equals(CRLF) && this.tail.length === before ? -2 : -1;
    if (end === -1) {
      const at = probe.indexOf(HEADER_END);
      if (at !== -1) end = before - this.tail.length + at;
    }
    if (end === -1) {
      this.tail = probe.subarray(Math.max(0, probe.length - 3));
      // An endless header section is not held in memory: past HEADER_LIMIT, the complete fields so
      // far are cleaned and the rest passes as it is.
      return this.headLength > HEADER_LIMIT ? this.overflow() : [];
    }
    const all = Buffer.concat(this.head);
    this.release();
    const split = end === -2 ? 0 : end + 2;
    return [this.received, ...this.header(all.subarray(0, split)), all.subarray(split)];
  }

  /** The end of the message: a message without an empty line is all header. */
  end(): Buffer[] {
    if (this.inBody) return [];
    const all = Buffer.concat(this.head);
    this.release();
    return [this.received, ...this.header(all)];
  }

  private overflow(): Buffer[] {
    const all = Buffer.concat(this.head);
    // Cut where a field starts (CRLF, then neither space nor tab), so no field is split.
    let cut = -1;
    for (let from = all.length - 3; from >= 0; ) {
      const at = all.lastIndexOf(CRLF, from);
      if (at < 0) break;
      if (all[at + 2] !== 0x20 && all[at + 2] !== 0x09) {
        cut = at;
        break;
      }
      from = at - 1;
    }
    if (cut < 0) {
      this.release();
      return [this.received, all];
    }
    this.release();
    return [this.received, ...this.header(all.subarray(0, cut + 2)), all.subarray(cut + 2)];
  }

  private release(): void {
    this.inBody = true;
    this.head = [];
    this.tail = Buffer.alloc(0);
  }

  private header(head: Buffer): Buffer[] {
    const { kept, messageId } = dropFields(head);
    return messageId || !this.messageId ? [kept] : [kept, this.messageId];
  }
}

/** The header section without the dropped fields (each with its folded continuation lines); whether it has a Message-ID. */
function dropFields(head: Buffer): { kept: Buffer; messageId: boolean } {
  let messageId = false;
  let dropping = false;
  let inField = false;
  let changed = false;
  const kept: string[] = [];
  for (const line of head.toString('latin1').split(/(?<=\r\n)/)) {
    // A line starting with white space continues the field before it.
    if (inField && /^[ \t]/.test(line)) {
      if (!dropping) kept.push(line);
      continue;
    }
    inField = true;
    const name = /^([!-9;-~]+)[ \t]*:/.exec(line)?.[1]?.toLowerCase();
    dropping = name !== undefined && DROPPED.has(name);
    if (name === 'message-id') messageId = true;
    if (dropping) changed = true;
    else kept.push(line);
  }
  return { kept: changed ? Buffer.from(kept.join(''), 'latin1') : head, messageId };
}

export interface ReceivedInput {
  /** The name the client gave in HELO/EHLO (false/empty if none). */
  helo: string | false | undefined;
  /** The client's IP address. */
  ip: string;
  /** This relay's name (relay.hostname). */
  hostname: string;
  esmtp: boolean;
  tls: boolean;
  authenticated: boolean;
  smtpUtf8: boolean;
  queueId: string;
  recipients: readonly string[];
  date: Date;
}

/** `Received: from … by … with … id …[ for <…>]; date` with its CRLF, folded. */
export function receivedHeader(r: ReceivedInput): string {
  const literal = addressLiteral(r.ip);
  const helo = typeof r.helo === 'string' ? r.helo : '';
  // RFC 5321 Extended-Domain: the HELO name (if it is one) with the address literal as TCP-info.
  const from = DOMAIN.test(helo) || /^\[[0-9A-Fa-f.:Iv]+\]$/.test(helo) ? `${helo} (${literal})` : literal;
  const protocol = `${r.smtpUtf8 ? 'UTF8SMTP' : r.esmtp ? 'ESMTP' : 'SMTP'}${r.tls ? 'S' : ''}${r.authenticated ? 'A' : ''}`;
  const lines = [`Received: from ${from}`, `\tby ${r.hostname} (mailbridge) with ${protocol} id ${r.queueId}`];
  if (r.recipients.length === 1) lines.push(`\tfor <${r.recipients[0]}>;`);
  else lines[lines.length - 1] += ';';
  lines.push(`\t${rfc5322Date(r.date)}`);
  return lines.join('\r\n') + '\r\n';
}

const DOMAIN = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

function addressLiteral(ip: string): string {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
  if (v4) return `[${v4}]`;
  return ip.includes(':') ? `[IPv6:${ip}]` : `[${ip}]`;
}

export function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, '+0000');
}
