/**
 * IMAP wire helpers for the Exchange Online IMAP front (imap.ts): the literal-aware splitter that
 * lets the front look at (and rewrite) whole protocol lines of a piped session without ever touching
 * literal data, and the XOAUTH2 payload parser.
 *
 * Why a splitter and not a parser: after authentication the front only needs to recognise a few
 * lines (IDLE and its completion, CAPABILITY and ID answers). An IMAP stream is a sequence of
 * "segments": text up to CRLF; a segment that ends in `{n}` / `{n+}` / `~{n}` is followed by exactly
 * n raw bytes (a literal), after which the same command or response continues with another segment.
 * Knowing that rule is enough to find every line start safely: literal bytes are passed through
 * untouched and unbuffered (a 50 MB FETCH streams through), and only the first segment of each
 * command/response is offered for rewriting. Lines longer than `maxLine` are passed through in
 * pieces (bounded memory) and are never rewritten; only their tail is kept to spot a literal marker.
 */

const CR = 0x0d;
const LF = 0x0a;
/** Enough bytes of a line's end to hold `{4294967295+}\r\n` and then some. */
const TAIL = 32;
const LITERAL_AT_END = /\{(\d{1,10})(\+?)\}\r?\n$/;

export interface SegmentInfo {
  /** The segment's text including its CRLF, decoded as latin1 (bytes 1:1). Empty when `oversized`. */
  text: string;
  /** True when this segment starts a command/response (not the continuation after a literal). */
  first: boolean;
  /** The line was longer than maxLine and has already been passed on; it cannot be rewritten. */
  oversized: boolean;
  /** The literal announced at the end of this segment, if any. */
  literal?: { size: number; nonSync: boolean };
}

export interface SplitterOptions {
  /** Called for every complete segment. Return a replacement (latin1, with its own CRLF, or '' to drop it), or undefined to keep it. */
  onSegment?: (seg: SegmentInfo) => string | undefined;
  /** Longest segment kept whole for inspection (default 64 KiB). */
  maxLine?: number;
}

/**
 * Splits one direction of an IMAP stream into segments and literals. `push` returns the bytes to
 * forward (possibly rewritten); call it with every chunk in order.
 */
export class ImapSplitter {
  private readonly onSegment: SplitterOptions['onSegment'];
  private readonly maxLine: number;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private oversized = false;
  private tail: Buffer = Buffer.alloc(0);
  private literalLeft = 0;
  private literalSize = 0;
  private literalSync = false;
  private nextFirst = true;
  /** The tag of the command/response whose first segment was seen last. */
  currentTag = '';

  constructor(options: SplitterOptions = {}) {
    this.onSegment = options.onSegment;
    this.maxLine = options.maxLine ?? 65_536;
  }

  /** A synchronizing literal was announced and none of its bytes have arrived (the peer waits for `+`). */
  get awaitingSyncLiteral(): boolean {
    return this.literalLeft > 0 && this.literalSync && this.literalLeft === this.literalSize;
  }

  /** The peer refused a synchronizing literal with a tagged reply: its bytes will never come. */
  cancelLiteral(): void {
    if (!this.awaitingSyncLiteral) return;
    this.literalLeft = 0;
    this.nextFirst = true;
  }

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.literalLeft > 0) {
        const n = Math.min(this.literalLeft, chunk.length - pos);
        out.push(chunk.subarray(pos, pos + n));
        this.literalLeft -= n;
        pos += n;
        continue;
      }
      const lf = chunk.indexOf(LF, pos);
      const end = lf === -1 ? chunk.length : lf + 1;
      this.append(chunk.subarray(pos, end), out);
      pos = end;
      if (lf !== -1) this.finishSegment(out);
    }
    return out;
  }

  private append(part: Buffer, out: Buffer[]): void {
    if (this.oversized) {
      out.push(part);
      this.tail = keepTail(this.tail, part);
      return;
    }
    this.pending.push(part);
    this.pendingLen += part.length;
    if (this.pendingLen > this.maxLine) {
      // Too long to inspect: pass it on now, remember only the tail.
      const whole = Buffer.concat(this.pending);
      if (this.nextFirst) {
        const text = whole.toString('latin1', 0, Math.min(whole.length, 256));
        this.currentTag = text.slice(0, Math.max(0, text.indexOf(' ')));
      }
      out.push(whole);
      this.tail = keepTail(Buffer.alloc(0), whole);
      this.pending = [];
      this.pendingLen = 0;
      this.oversized = true;
    }
  }

  private finishSegment(out: Buffer[]): void {
    const first = this.nextFirst;
    let literal: SegmentInfo['literal'];
    if (this.oversized) {
      literal = literalOf(this.tail.toString('latin1'));
      this.onSegment?.({ text: '', first, oversized: true, literal });
    } else {
      const whole = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
      const text = whole.toString('latin1');
      literal = literalOf(text.slice(-TAIL));
      if (first) this.currentTag = text.slice(0, Math.max(0, text.indexOf(' ')));
      const replaced = this.onSegment?.({ text, first, oversized: false, literal });
      if (replaced === undefined) out.push(whole);
      else if (replaced !== '') out.push(Buffer.from(replaced, 'latin1'));
    }
    this.pending = [];
    this.pendingLen = 0;
    this.oversized = false;
    this.tail = Buffer.alloc(0);
    if (literal) {
      this.literalLeft = literal.size;
      this.literalSize = literal.size;
      this.literalSync = !literal.nonSync;
      this.nextFirst = false;
    } else {
      this.nextFirst = true;
    }
  }
}

function keepTail(prev: Buffer, part: Buffer): Buffer {
  const joined = prev.length === 0 ? part : Buffer.concat([prev, part]);
  return joined.length > TAIL ? Buffer.from(joined.subarray(joined.length - TAIL)) : Buffer.from(joined);
}

function literalOf(tail: string): SegmentInfo['literal'] {
  const m = LITERAL_AT_END.exec(tail);
  return m ? { size: Number(m[1]), nonSync: m[2] === '+' } : undefined;
}

/** Strips the line ending from a segment's text. */
export function chomp(text: string): string {
  let end = text.length;
  if (end > 0 && text.charCodeAt(end - 1) === LF) end--;
  if (end > 0 && text.charCodeAt(end - 1) === CR) end--;
  return text.slice(0, end);
}

/**
 * The XOAUTH2 client response: base64 of `user=U^Aauth=Bearer T^A^A`. Returns undefined for anything
 * else (bad base64, missing fields, another auth scheme).
 */
export function parseXoauth2(base64: string): { user: string; token: string } | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64) || base64.length === 0) return undefined;
  const decoded = Buffer.from(base64, 'base64').toString('utf8');
  let user: string | undefined;
  let token: string | undefined;
  for (const field of decoded.split('\x01')) {
    if (field.startsWith('user=')) user = field.slice(5);
    else if (/^auth=Bearer /i.test(field)) token = field.slice(12).trim();
  }
  return user && token ? { user, token } : undefined;
}

/** The SASL XOAUTH2 client response for a user and a bearer token (base64). */
export function xoauth2(user: string, token: string): string {
  return Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`, 'utf8').toString('base64');
}
