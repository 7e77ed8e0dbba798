/**
 * A tiny raw IMAP client for wire-level assertions (exact greeting, capability strings, Exchange's
 * failure texts). Real-client behaviour is tested with imapflow; this only reads and writes lines.
 */
import { connect, type TLSSocket } from 'node:tls';
import { once } from 'node:events';

export class RawImap {
  private readonly socket: TLSSocket;
  private buf = '';
  private readonly queue: string[] = [];
  private waiter: (() => void) | undefined;
  ended = false;

  private constructor(socket: TLSSocket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buf += d;
      for (let i = this.buf.indexOf('\r\n'); i !== -1; i = this.buf.indexOf('\r\n')) {
        this.queue.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 2);
      }
      this.waiter?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }

  static async open(port: number, ca: string): Promise<RawImap> {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
    await once(socket, 'secureConnect');
    return new RawImap(socket);
  }

  /** The next line, or an error after `ms` (or when the server closed the connection). */
  async line(ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    while (this.queue.length === 0) {
      if (this.ended) throw new Error('connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no line within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.queue.shift()!;
  }

  send(text: string): void {
    this.socket.write(text + '\r\n');
  }

  /** Sends `tag text` and returns every line up to and including the tagged one. */
  async command(tag: string, text: string, ms = 5000): Promise<string[]> {
    this.send(`${tag} ${text}`);
    return this.until(tag, ms);
  }

  async until(tag: string, ms = 5000): Promise<string[]> {
    const lines: string[] = [];
    for (;;) {
      const l = await this.line(ms);
      lines.push(l);
      if (l.startsWith(tag + ' ')) return lines;
    }
  }

  /** Resolves when the server has closed the connection (fails after `ms`). */
  async closed(ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error(`connection still open after ${ms} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
