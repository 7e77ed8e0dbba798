/**
 * SMTP smuggling protection. smtp-server ends DATA only at <CR><LF>.<CR><LF>, so a `<LF>.<CR><LF>`
 * or `<CR><LF>.<LF>` inside a message does not split it here — but it would stay in the message,
 * and a server further on that accepts such an end-of-data mark would see a second, forged message.
 * So every line of a message must end in <CR><LF>: a bare <LF> or a bare <CR> anywhere refuses the
 * whole message (554 5.5.2), and nothing of it is queued. This is Postfix's
 * `smtpd_forbid_bare_newline = reject` behaviour.
 *
 * NUL bytes are refused the same way (554 5.6.0): mail text never contains them (RFC 5322 section
 * 3.5 leaves %d0 out of body text; RFC 2045 section 2.8 forbids NUL in 8bit data), only
 * BINARYMIME may, which mailbridge does not offer, and a NUL passed on cuts a message short in
 * C-string code further down the line or makes servers refuse it there, after our 250.
 */
const CR = 0x0d;
const LF = 0x0a;

export class LineEndingCheck {
  /** The first violation: the bare line-end character or the NUL, and in which line of the message. */
  violation: { what: 'LF' | 'CR' | 'NUL'; line: number } | undefined;
  private pendingCR = false;
  private line = 1;

  feed(chunk: Buffer): void {
    if (this.violation || chunk.length === 0) return;
    const nul = chunk.indexOf(0);
    if (nul === -1) return this.scan(chunk);
    // Line endings before the NUL first, so the line number is right and an earlier bare LF wins.
    this.scan(chunk.subarray(0, nul));
    if (!this.violation) this.fail('NUL');
  }

  private scan(chunk: Buffer): void {
    if (chunk.length === 0) return;
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

  private fail(what: 'LF' | 'CR' | 'NUL'): void {
    this.violation = { what, line: this.line };
  }
}
