/**
 * SMTP smuggling protection. smtp-server ends DATA only at <CR><LF>.<CR><LF>, so a `<LF>.<CR><LF>`
 * or `<CR><LF>.<LF>` inside a message does not split it here — but it would stay in the message,
 * and a server further on that accepts such an end-of-data mark would see a second, forged message.
 * So every line of a message must end in <CR><LF>: a bare <LF> or a bare <CR> anywhere refuses the
 * whole message (554 5.5.2), and nothing of it is queued. This is Postfix's
 * `smtpd_forbid_bare_newline = reject` behaviour.
 */
const CR = 0x0d;
const LF = 0x0a;

export class LineEndingCheck {
  /** The first violation: which character stood alone, and in which line of the message. */
  violation: { what: 'LF' | 'CR'; line: number } | undefined;
  private pendingCR = false;
  private line = 1;

  feed(chunk: Buffer): void {
    if (this.violation || chunk.length === 0) return;
    let pos = 0;
    if (this.pendingCR) {
      if (chunk[0] !== LF) return this.fail('CR');
      this.pendingCR = false;
      this.line++;
      pos = 1;
    }
    while (pos < chunk.length) {
      const cr = chunk.indexOf(CR, pos);
      const lf = chunk.indexOf(LF, pos);
      if (lf !== -1 && (cr === -1 || lf < cr)) return this.fail('LF');
      if (cr === -1) return;
      if (cr + 1 === chunk.length) {
        this.pendingCR = true;
        return;
      }
      if (chunk[cr + 1] !== LF) return this.fail('CR');
      this.line++;
      pos = cr + 2;
    }
  }

  end(): void {
    if (this.pendingCR && !this.violation) this.fail('CR');
  }

  private fail(what: 'LF' | 'CR'): void {
    this.violation = { what, line: this.line };
  }
}
