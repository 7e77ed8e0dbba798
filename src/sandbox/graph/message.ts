/**
 * Messages both ways: a stored RFC 5322 message as a Graph `message` resource (the properties and
 * order Graph returns by default, `$select` applied), and a sendMail JSON `message` as MIME.
 *
 * Parsing uses mailparser (cid: links kept as they are); composing uses nodemailer's MailComposer.
 * Values Dovecot does not keep are derived: changeKey and @odata.etag from the message's MODSEQ,
 * lastModifiedDateTime from when the sandbox first saw that MODSEQ, conversationId from the thread's
 * first Message-ID. Categories are the message's IMAP keywords.
 */
import { createHash, randomBytes } from 'node:crypto';
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import MailComposer from 'nodemailer/lib/mail-composer';
import type Mail from 'nodemailer/lib/mailer';
import { graphErrors } from './errors.ts';

/** Properties of microsoft.graph.message in Graph's default order; `$select` may name these. */
export const MESSAGE_PROPERTIES = [
  'createdDateTime',
  'lastModifiedDateTime',
  'changeKey',
  'categories',
  'receivedDateTime',
  'sentDateTime',
  'hasAttachments',
  'internetMessageId',
  'subject',
  'bodyPreview',
  'importance',
  'parentFolderId',
  'conversationId',
  'conversationIndex',
  'isDeliveryReceiptRequested',
  'isReadReceiptRequested',
  'isRead',
  'isDraft',
  'webLink',
  'inferenceClassification',
  'body',
  'sender',
  'from',
  'toRecipients',
  'ccRecipients',
  'bccRecipients',
  'replyTo',
  'flag',
] as const;
/** Selectable, but not returned unless selected (as in Graph). */
const SELECT_ONLY = ['uniqueBody', 'internetMessageHeaders'] as const;

/** Validates a $select list against the message type; returns canonical names (Graph matches them case-insensitively). */
export function parseSelect(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const all = [...MESSAGE_PROPERTIES, ...SELECT_ONLY, 'id'];
  const out: string[] = [];
  for (const name of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const canonical = all.find((p) => p.toLowerCase() === name.toLowerCase());
    if (!canonical) throw graphErrors.unknownProperty(name, 'message');
    out.push(canonical);
  }
  return out;
}

export interface MessageInput {
  id: string;
  parentFolderId: string;
  raw: Buffer;
  flags: Set<string>;
  internalDate: Date;
  modseq: bigint;
  /** When the sandbox first saw this MODSEQ for this message (ms). */
  lastModified: number;
}

export interface ResourceOptions {
  select?: string[];
  /** Prefer: outlook.body-content-type="text" | "html". */
  bodyType?: 'text' | 'html';
}

export async function messageResource(m: MessageInput, options: ResourceOptions = {}): Promise<Record<string, unknown>> {
  const parsed = await simpleParser(m.raw, { keepCidLinks: true });
  const changeKey = changeKeyOf(m.modseq);
  const from = addresses(parsed.from)[0];
  const sender = addresses(parsed.headers.get('sender') as AddressObject | undefined)[0] ?? from;
  const text = (parsed.text ?? '').trim();
  const html = typeof parsed.html === 'string' ? parsed.html : undefined;
  const wantText = options.bodyType === 'text' || (options.bodyType === undefined && html === undefined);
  const body = wantText ? { contentType: 'text', content: parsed.text ?? '' } : { contentType: 'html', content: html ?? parsed.textAsHtml ?? '' };
  const messageIdHeader = parsed.messageId;
  const references = ([] as string[]).concat(parsed.references ?? []);
  const threadRoot = references[0] ?? parsed.inReplyTo ?? messageIdHeader ?? m.id;
  const full: Record<string, unknown> = {
    createdDateTime: graphTime(m.internalDate.getTime()),
    lastModifiedDateTime: graphTime(Math.max(m.lastModified, m.internalDate.getTime())),
    changeKey,
    categories: [...m.flags].filter((f) => !f.startsWith('\\') && !f.startsWith('$')),
    receivedDateTime: graphTime(m.internalDate.getTime()),
    sentDateTime: graphTime((parsed.date ?? m.internalDate).getTime()),
    hasAttachments: parsed.attachments.some((a) => !a.related && a.contentDisposition !== 'inline'),
    internetMessageId: messageIdHeader ?? null,
    subject: parsed.subject ?? '',
    bodyPreview: text.replace(/\s+/g, ' ').slice(0, 255),
    importance: importance(parsed),
    parentFolderId: m.parentFolderId,
    conversationId: createHash('sha256').update(threadRoot).digest('base64url').slice(0, 40),
    conversationIndex: createHash('sha1').update(threadRoot).digest('base64'),
    isDeliveryReceiptRequested: parsed.headers.has('return-receipt-to'),
    isReadReceiptRequested: parsed.headers.has('disposition-notification-to'),
    isRead: m.flags.has('\\Seen'),
    isDraft: m.flags.has('\\Draft'),
    webLink: `https://outlook.office365.com/owa/?ItemID=${encodeURIComponent(m.id)}&exvsurl=1&viewmodel=ReadMessageItem`,
    inferenceClassification: 'focused',
    body,
    sender: sender ?? null,
    from: from ?? null,
    toRecipients: addresses(parsed.to),
    ccRecipients: addresses(parsed.cc),
    bccRecipients: addresses(parsed.bcc),
    replyTo: addresses(parsed.replyTo),
    flag: { flagStatus: m.flags.has('\\Flagged') ? 'flagged' : 'notFlagged' },
    uniqueBody: body,
    internetMessageHeaders: parsed.headerLines.map((l) => {
      const colon = l.line.indexOf(':');
      return { name: l.line.slice(0, colon).trim(), value: l.line.slice(colon + 1).replace(/\r?\n[ \t]+/g, ' ').trim() };
    }),
  };
  const names = options.select ?? [...MESSAGE_PROPERTIES];
  const out: Record<string, unknown> = { '@odata.etag': `W/"${changeKey}"`, id: m.id };
  for (const name of [...MESSAGE_PROPERTIES, ...SELECT_ONLY]) if (names.includes(name)) out[name] = full[name];
  return out;
}

/** A message's changeKey (its @odata.etag is W/"<changeKey>"), derived from its MODSEQ. */
export function changeKeyOf(modseq: bigint | string): string {
  return Buffer.from(`mailbridge-sandbox:${modseq}`).toString('base64');
}

/** mailparser folds Importance, Priority and X-Priority into one `priority` header value. */
function importance(parsed: ParsedMail): 'low' | 'normal' | 'high' {
  const p = String(parsed.headers.get('priority') ?? '').toLowerCase();
  return p === 'high' || p === 'low' ? p : 'normal';
}

export interface Recipient {
  emailAddress: { name: string; address: string };
}

function addresses(value: AddressObject | AddressObject[] | undefined): Recipient[] {
  const out: Recipient[] = [];
  const walk = (list: Array<{ address?: string; name: string; group?: unknown[] }>) => {
    for (const a of list) {
      if (a.group) walk(a.group as typeof list);
      else if (a.address) out.push({ emailAddress: { name: a.name || a.address, address: a.address } });
    }
  };
  for (const obj of ([] as AddressObject[]).concat(value ?? [])) walk(obj.value);
  return out;
}

/** Graph's date-time form: UTC, seconds, "Z". */
export function graphTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// --- sendMail JSON → MIME -------------------------------------------------------------------------

export interface ComposedMessage {
  /** The message as saved in Sent Items (with Bcc). */
  sentCopy: Buffer;
  /** The message as recipients get it (no Bcc header). */
  delivered: Buffer;
  from: string;
  recipients: { to: string[]; cc: string[]; bcc: string[] };
}

/** Reads a property of a JSON object case-insensitively (Graph's JSON binding does). */
export function prop(obj: unknown, name: string): unknown {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return undefined;
  const key = Object.keys(obj).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : (obj as Record<string, unknown>)[key];
}

function recipientList(value: unknown): Array<{ name: string; address: string }> {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw graphErrors.badJson();
  return value.map((r) => {
    const email = prop(r, 'emailAddress');
    const address = String(prop(email, 'address') ?? '').trim();
    const name = String(prop(email, 'name') ?? '');
    if (!isAddress(address)) throw graphErrors.badRecipient(address);
    return { name, address };
  });
}

export function isAddress(s: string): boolean {
  return /^[^\s@<>()[\]",;:]+@[^\s@<>()[\]",;:]+\.[^\s@<>()[\]",;:]+$/.test(s);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 (whitespace ignored), as Graph's MIME and Edm.Binary reading is. */
export function decodeBase64(text: string): Buffer | undefined {
  const compact = text.replace(/\s+/g, '');
  return compact && BASE64.test(compact) ? Buffer.from(compact, 'base64') : undefined;
}

/**
 * Builds the MIME of a sendMail JSON `message`. `defaultFrom` is the mailbox in the path (Exchange
 * sets From to it when the message names none); `now` dates the message.
 */
export async function composeMessage(message: unknown, defaultFrom: { name: string; address: string }, now: number): Promise<ComposedMessage> {
  if (message !== undefined && (typeof message !== 'object' || message === null || Array.isArray(message))) throw graphErrors.badJson();
  const fromProp = prop(prop(message, 'from'), 'emailAddress');
  const fromAddress = fromProp ? String(prop(fromProp, 'address') ?? '').trim() : '';
  if (fromProp && !isAddress(fromAddress)) throw graphErrors.badRecipient(fromAddress);
  const from = fromProp ? { name: String(prop(fromProp, 'name') ?? ''), address: fromAddress } : defaultFrom;
  const to = recipientList(prop(message, 'toRecipients'));
  const cc = recipientList(prop(message, 'ccRecipients'));
  const bcc = recipientList(prop(message, 'bccRecipients'));
  const replyTo = recipientList(prop(message, 'replyTo'));
  if (to.length + cc.length + bcc.length === 0) throw graphErrors.noRecipients();

  const body = prop(message, 'body');
  const contentType = String(prop(body, 'contentType') ?? 'text').toLowerCase();
  const content = String(prop(body, 'content') ?? '');
  if (contentType !== 'text' && contentType !== 'html') throw graphErrors.badJson();

  const headers: Record<string, string> = {};
  const custom = prop(message, 'internetMessageHeaders');
  if (custom !== undefined && custom !== null) {
    if (!Array.isArray(custom)) throw graphErrors.badJson();
    for (const h of custom) {
      const name = String(prop(h, 'name') ?? '');
      if (!/^x-/i.test(name) || !/^[!-9;-~]+$/.test(name)) throw graphErrors.headerName(name);
      headers[name] = String(prop(h, 'value') ?? '');
    }
  }
  if (prop(message, 'isReadReceiptRequested') === true) headers['Disposition-Notification-To'] = from.address;
  if (prop(message, 'isDeliveryReceiptRequested') === true) headers['Return-Receipt-To'] = from.address;

  const attachments: Mail.Attachment[] = [];
  const list = prop(message, 'attachments');
  if (list !== undefined && list !== null) {
    if (!Array.isArray(list)) throw graphErrors.badJson();
    for (const a of list) {
      const type = String(prop(a, '@odata.type') ?? '#microsoft.graph.fileAttachment');
      if (type.toLowerCase() !== '#microsoft.graph.fileattachment') throw graphErrors.unsupported(`Attachment type '${type}'`);
      const name = String(prop(a, 'name') ?? 'attachment');
      const bytes = decodeBase64(String(prop(a, 'contentBytes') ?? ''));
      if (!bytes) throw graphErrors.badJson();
      const inline = prop(a, 'isInline') === true;
      const cid = prop(a, 'contentId');
      attachments.push({
        filename: name,
        content: bytes,
        contentType: typeof prop(a, 'contentType') === 'string' ? String(prop(a, 'contentType')) : undefined,
        contentDisposition: inline ? 'inline' : 'attachment',
        cid: inline && typeof cid === 'string' ? cid : undefined,
      });
    }
  }

  const imp = String(prop(message, 'importance') ?? 'normal').toLowerCase();
  const domain = from.address.split('@')[1] ?? 'sandbox.invalid';
  const options: Mail.Options = {
    from,
    to,
    cc,
    bcc,
    replyTo: replyTo.length ? replyTo : undefined,
    subject: String(prop(message, 'subject') ?? ''),
    [contentType === 'html' ? 'html' : 'text']: content,
    attachments,
    headers,
    priority: imp === 'high' || imp === 'low' ? imp : undefined,
    messageId: `<${randomBytes(16).toString('hex').toUpperCase()}@${domain}>`,
    date: new Date(now),
  };
  const node = new MailComposer(options).compile();
  (node as unknown as { keepBcc: boolean }).keepBcc = true;
  const sentCopy = await node.build();
  (node as unknown as { keepBcc: boolean }).keepBcc = false;
  const delivered = await node.build();
  return {
    sentCopy,
    delivered,
    from: from.address,
    recipients: { to: to.map((r) => r.address), cc: cc.map((r) => r.address), bcc: bcc.map((r) => r.address) },
  };
}

// --- sendMail MIME ---------------------------------------------------------------------------------

export interface MimeSubmission {
  /** From header address, if any. */
  from?: string;
  recipients: { to: string[]; cc: string[]; bcc: string[] };
}

/** Sender and recipients of a submitted MIME message, from its headers. */
export async function readMimeEnvelope(raw: Buffer): Promise<MimeSubmission> {
  const parsed = await simpleParser(raw, { skipHtmlToText: true, keepCidLinks: true });
  const list = (v: AddressObject | AddressObject[] | undefined) => addresses(v).map((r) => r.emailAddress.address);
  return { from: addresses(parsed.from)[0]?.emailAddress.address, recipients: { to: list(parsed.to), cc: list(parsed.cc), bcc: list(parsed.bcc) } };
}

/** The message without its Bcc header field(s) (with folded continuation lines); everything else byte for byte. */
export function stripBcc(raw: Buffer): Buffer {
  const text = raw.toString('latin1');
  const end = headerEnd(text);
  const head = text.slice(0, end);
  const lines = head.split(/(?<=\n)/);
  const kept: string[] = [];
  let dropping = false;
  for (const line of lines) {
    if (/^[ \t]/.test(line) && dropping) continue;
    dropping = /^bcc[ \t]*:/i.test(line);
    if (!dropping) kept.push(line);
  }
  return Buffer.concat([Buffer.from(kept.join(''), 'latin1'), raw.subarray(end)]);
}

/** Offset just past the header block's last line (before the empty line). */
function headerEnd(text: string): number {
  const crlf = text.indexOf('\r\n\r\n');
  const lf = text.indexOf('\n\n');
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return crlf + 2;
  if (lf >= 0) return lf + 1;
  return text.length;
}
