/**
 * Header edits the transports need, made so that every byte mailbridge does not mean to change stays
 * as the application sent it: the header block is split into fields (each with its folded
 * continuation lines and line end, kept verbatim), only the fields being changed are rewritten, and
 * the body is never touched.
 *
 * Text handling: fields are held as "binary strings" (latin1, one char per byte), so 8-bit header
 * bytes survive untouched; addresses are read from the UTF-8 decoding of a field (SMTPUTF8
 * addresses arrive as UTF-8) and written back as UTF-8 bytes.
 *
 * - rewriteSender: From addresses → a new address (display names kept byte for byte), the original
 *   From kept as Reply-To (unless one exists), Sender removed (Exchange would check it too).
 * - alignRecipients (Graph MIME): Graph takes the recipients from To, Cc and Bcc, not from an
 *   envelope. Envelope recipients not named in To/Cc go into one Bcc field (Exchange removes Bcc
 *   before delivery, so they stay hidden as with SMTP); Bcc fields the application wrote are
 *   replaced by that list (only envelope recipients receive the message); To/Cc addresses that are
 *   not envelope recipients are reported and, on request, removed.
 */
import addressparser, { type Address } from 'nodemailer/lib/addressparser';
import { normalizeAddress } from '../policy.ts';

export interface HeaderField {
  /** Field name as written (empty for a line that is not a header field). */
  name: string;
  /** The whole field: name, colon, value, continuation lines, line end (binary string). */
  raw: string;
}

export interface SplitMessage {
  fields: HeaderField[];
  /** Line end used by the message. */
  eol: string;
  /** Everything after the header block: the empty line and the body, untouched. */
  rest: Buffer;
}

export function splitMessage(raw: Buffer): SplitMessage {
  const text = raw.toString('latin1');
  let end = text.indexOf('\r\n\r\n');
  let eol = '\r\n';
  const lf = text.indexOf('\n\n');
  if (end < 0 || (lf >= 0 && lf < end)) {
    end = lf;
    eol = lf >= 0 ? '\n' : '\r\n';
  }
  const headEnd = end < 0 ? text.length : end + eol.length;
  const fields: HeaderField[] = [];
  for (const line of text.slice(0, headEnd).split(/(?<=\n)/)) {
    if (line === '') continue;
    const last = fields[fields.length - 1];
    if (/^[ \t]/.test(line) && last) {
      last.raw += line;
      continue;
    }
    const m = /^([!-9;-~]+)[ \t]*:/.exec(line);
    fields.push({ name: m ? m[1]! : '', raw: line });
  }
  return { fields, eol, rest: raw.subarray(headEnd) };
}

export function joinMessage(m: SplitMessage): Buffer {
  return Buffer.concat([Buffer.from(m.fields.map((f) => f.raw).join(''), 'latin1'), m.rest]);
}

/** The unfolded value of a field (binary string, without the name and line end). */
function valueOf(f: HeaderField): string {
  return f.raw
    .slice(f.raw.indexOf(':') + 1)
    .replace(/\r?\n(?=[ \t])/g, '')
    .replace(/\r?\n$/, '');
}

function fieldsNamed(m: SplitMessage, name: string): HeaderField[] {
  const lower = name.toLowerCase();
  return m.fields.filter((f) => f.name.toLowerCase() === lower);
}

function parse(f: HeaderField): Address[] {
  return addressparser(Buffer.from(valueOf(f), 'latin1').toString('utf8'));
}

function flatten(list: Address[]): string[] {
  return list.flatMap((a) => (a.group ? flatten(a.group) : a.address ? [a.address] : []));
}

/** Addresses in every field of that name (groups flattened), as written. */
export function addressesIn(m: SplitMessage, name: string): string[] {
  return fieldsNamed(m, name).flatMap((f) => flatten(parse(f)));
}

const bin = (s: string) => Buffer.from(s, 'utf8').toString('latin1');
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Replaces the From addresses in `replace` (normalized comparison) with `to`; adds Reply-To with the
 * original From value when the message has none; removes Sender. Returns the message unchanged when
 * nothing needs replacing.
 */
export function rewriteSender(raw: Buffer, to: string, replace: readonly string[]): { raw: Buffer; replyToAdded: boolean } {
  const m = splitMessage(raw);
  const wanted = new Set(replace.map(normalizeAddress));
  const fromFields = fieldsNamed(m, 'from');
  let changed = false;
  let replyToAdded = false;
  const originals: string[] = [];
  for (const f of fromFields) {
    const before = f.raw;
    for (const address of flatten(parse(f))) {
      if (!wanted.has(normalizeAddress(address))) continue;
      const b = escapeRe(bin(address));
      // Inside angle brackets first (display name kept); else the bare address.
      const angled = new RegExp(`<\\s*${b}\\s*>`, 'i');
      f.raw = angled.test(f.raw) ? f.raw.replace(angled, `<${bin(to)}>`) : f.raw.replace(new RegExp(`(^|[\\s:,])${b}(?=$|[\\s,;])`, 'im'), `$1${bin(to)}`);
    }
    if (f.raw !== before) {
      changed = true;
      originals.push(before.slice(before.indexOf(':') + 1));
    }
  }
  // No From at all: Exchange stamps the sending mailbox, nothing to rewrite in the header.
  if (changed && fieldsNamed(m, 'reply-to').length === 0 && originals[0] !== undefined) {
    const at = m.fields.indexOf(fromFields[0]!) + 1;
    m.fields.splice(at, 0, { name: 'Reply-To', raw: `Reply-To:${originals[0]}` });
    replyToAdded = true;
  }
  const senders = fieldsNamed(m, 'sender');
  if (changed && senders.length) m.fields = m.fields.filter((f) => !senders.includes(f));
  return { raw: changed || senders.length ? joinMessage(m) : raw, replyToAdded };
}

export interface AlignedRecipients {
  raw: Buffer;
  /** Envelope recipients put into the Bcc field. */
  bcc: string[];
  /** To/Cc addresses that are not envelope recipients. */
  headerOnly: string[];
  /** True when headerOnly addresses were removed from To/Cc. */
  removed: boolean;
}

/**
 * Makes To/Cc/Bcc name exactly the envelope recipients, for Graph's MIME sendMail (see the file
 * comment). `removeHeaderOnly`: drop To/Cc addresses outside the envelope (else only report them).
 */
export function alignRecipients(raw: Buffer, envelope: readonly string[], removeHeaderOnly: boolean): AlignedRecipients {
  const m = splitMessage(raw);
  const inEnvelope = new Set(envelope.map(normalizeAddress));
  const visible = [...addressesIn(m, 'to'), ...addressesIn(m, 'cc')];
  const visibleSet = new Set(visible.map(normalizeAddress));
  const headerOnly = [...new Set(visible.filter((a) => !inEnvelope.has(normalizeAddress(a))))];
  const seen = new Set<string>();
  const bcc = envelope.filter((a) => {
    const n = normalizeAddress(a);
    if (visibleSet.has(n) || seen.has(n)) return false;
    seen.add(n);
    return true;
  });
  const oldBcc = fieldsNamed(m, 'bcc');
  const sameBcc = oldBcc.length === 1 && sameList(addressesIn(m, 'bcc'), bcc);
  let changed = false;
  if (!sameBcc && (oldBcc.length > 0 || bcc.length > 0)) {
    m.fields = m.fields.filter((f) => !oldBcc.includes(f));
    if (bcc.length > 0) m.fields.push({ name: 'Bcc', raw: foldList('Bcc', bcc, m.eol) });
    changed = true;
  }
  const removed = removeHeaderOnly && headerOnly.length > 0;
  if (removed) {
    const drop = new Set(headerOnly.map(normalizeAddress));
    for (const f of [...fieldsNamed(m, 'to'), ...fieldsNamed(m, 'cc')]) {
      const kept = prune(parse(f), drop);
      const i = m.fields.indexOf(f);
      if (kept.length === 0) m.fields.splice(i, 1);
      else m.fields[i] = { name: f.name, raw: foldList(f.name, kept.map(formatAddress), m.eol) };
    }
    changed = true;
  }
  return { raw: changed ? joinMessage(m) : raw, bcc, headerOnly, removed };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => normalizeAddress(x) === normalizeAddress(b[i]!));
}

/** The list without the dropped mailboxes; groups keep their name (an empty group stays, like "undisclosed-recipients:;"). */
function prune(list: Address[], drop: Set<string>): Address[] {
  const out: Address[] = [];
  for (const a of list) {
    if (a.group) out.push({ name: a.name, group: prune(a.group, drop) });
    else if (!a.address || !drop.has(normalizeAddress(a.address))) out.push(a);
  }
  return out;
}

function formatName(name: string): string {
  if (name === '' || /^(=\?[^?]+\?[bqBQ]\?[^?]*\?=\s*)+$/.test(name) || /^[^()<>[\]:;@\\,."]+$/.test(name)) return name;
  return `"${name.replace(/(["\\])/g, '\\$1')}"`;
}

function formatAddress(a: Address): string {
  if (a.group) return `${formatName(a.name)}:${a.group.map(formatAddress).join(', ')};`;
  return a.name ? `${formatName(a.name)} <${a.address}>` : a.address;
}

/** `Name: a, b, c` folded before 78 columns where possible, as a binary string with the line end. */
function foldList(name: string, items: readonly string[], eol: string): string {
  let out = `${name}:`;
  let col = out.length;
  items.forEach((item, i) => {
    const piece = bin(item) + (i < items.length - 1 ? ',' : '');
    if (col + 1 + piece.length > 78 && col > name.length + 1) {
      out += `${eol} ${piece}`;
      col = 1 + piece.length;
    } else {
      out += ` ${piece}`;
      col += 1 + piece.length;
    }
  });
  return out + eol;
}
