/**
 * What the connector reads from a raw message without changing it: header values (for the
 * Message-ID, the envelope sender), the deduplication key, the delivery ID, and a well-formedness
 * check whose findings are reported but never stop a delivery (the bytes go on unchanged).
 */
import { createHash } from 'node:crypto';

/** The header section (without the blank line) as latin1 text; bytes map 1:1 to chars. */
export function headerText(raw: Buffer): string {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  let end = raw.length;
  if (crlf >= 0 && (lf < 0 || crlf <= lf)) end = crlf;
  else if (lf >= 0) end = lf;
  return raw.toString('latin1', 0, Math.min(end, 1 << 20));
}

/** Unfolded header lines of the header section. */
export function headerLines(raw: Buffer): string[] {
  const out: string[] = [];
  for (const line of headerText(raw).split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && out.length > 0) out[out.length - 1] += ' ' + line.trim();
    else out.push(line);
  }
  return out;
}

/** The first value of a header, unfolded and trimmed. */
export function headerValue(raw: Buffer, name: string): string | undefined {
  const prefix = name.toLowerCase() + ':';
  for (const line of headerLines(raw)) {
    if (line.toLowerCase().startsWith(prefix)) return line.slice(prefix.length).trim();
  }
  return undefined;
}

export function messageIdOf(raw: Buffer): string | undefined {
  const v = headerValue(raw, 'message-id');
  if (!v) return undefined;
  const m = /<[^<>\s]+>/.exec(v);
  return m ? m[0] : v.split(/\s+/)[0] || undefined;
}

/** The key a message is recognised by across a folder rebuild: its Message-ID, else a hash of its bytes. */
export function messageKey(raw: Buffer): string {
  return messageIdOf(raw) ?? `sha256:${createHash('sha256').update(raw).digest('hex')}`;
}

/** Stable per connector, mailbox, folder, epoch and item: what idempotent destinations dedupe by. */
export function deliveryIdOf(scope: { connector: string; mailbox: string; folder: string }, epoch: string, item: string): string {
  return createHash('sha256')
    .update([scope.connector, scope.mailbox.toLowerCase(), scope.folder, epoch, item].join('\0'))
    .digest('hex')
    .slice(0, 32);
}

/** The address inside the first <…> of a header, or the bare value. */
export function addressOf(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const angle = /<([^<>]*)>/.exec(value);
  if (angle) return angle[1]!.trim();
  const bare = /[^\s,;"<>()]+@[^\s,;"<>()]+/.exec(value);
  return bare ? bare[0] : undefined;
}

/**
 * Looks for what makes a message malformed MIME, without parsing it fully: header lines that are not
 * "Name: value", NUL bytes, a multipart type without a boundary, or a boundary that never appears or
 * is never closed. Returns a short description, or undefined when nothing was found.
 */
export function mimeProblem(raw: Buffer): string | undefined {
  if (raw.length === 0) return 'empty message';
  if (raw.includes(0)) return 'contains NUL bytes';
  const lines = headerLines(raw);
  const hasBody = raw.indexOf('\r\n\r\n') >= 0 || raw.indexOf('\n\n') >= 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '' && i === lines.length - 1) continue;
    if (!/^[\x21-\x39\x3b-\x7e]+:/.test(line)) return `header line ${i + 1} is not "Name: value"`;
  }
  if (!hasBody && lines.length <= 1) return 'no header section';
  const ct = headerValue(raw, 'content-type');
  if (ct && /^\s*multipart\//i.test(ct)) {
    const b = /boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(ct);
    const boundary = b?.[1] ?? b?.[2];
    if (!boundary) return 'multipart without boundary';
    const body = raw.toString('latin1', headerText(raw).length);
    if (!body.includes(`--${boundary}`)) return `multipart boundary "${boundary}" never appears`;
    if (!body.includes(`--${boundary}--`)) return `multipart boundary "${boundary}" is never closed`;
  }
  return undefined;
}
