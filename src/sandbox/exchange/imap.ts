/**
 * The Exchange Online IMAP front: an implicit-TLS endpoint that behaves like
 * outlook.office365.com:993 before and during authentication, then hands the session to the
 * sandbox's real Dovecot.
 *
 * Strategy. No IMAP server library exists in our stack, so the front speaks the pre-auth part by
 * hand and keeps it small and strict: greeting, CAPABILITY, NOOP, ID, LOGOUT, LOGIN and
 * AUTHENTICATE (XOAUTH2 with SASL-IR or the continuation form; PLAIN and LOGIN always fail because
 * basic auth is off in Exchange Online). The XOAUTH2 token is checked by Exchange Online's rules
 * (authz.ts). When it is valid and the app may open the mailbox, the front logs in to Dovecot as that
 * mailbox with a backend credential (dovecot.mintToken, never the client's token), swallows Dovecot's
 * greeting and login, answers `OK AUTHENTICATE completed.` and from then on pipes bytes both ways.
 * On the way back it rewrites whole lines to Exchange's wording, using a literal-aware splitter
 * (imap-wire.ts) so literal data is never inspected or altered: the CAPABILITY and ID answers, the
 * IDLE continuation (`+ IDLE accepted, awaiting DONE command.`), LOGOUT's BYE, and every tagged OK
 * as `<tag> OK [code] <COMMAND> completed.` (Dovecot's response codes kept; UID commands named by
 * their inner command, as Exchange does: `OK FETCH completed.`). Dovecot's IDLE keepalive
 * (`* OK Still here`) is dropped. The client-to-Dovecot direction is only observed (tags, IDLE),
 * never changed.
 *
 * Failure modes, as Exchange Online shows them:
 *  - invalid token: `NO AUTHENTICATE failed.`
 *  - valid app token without mailbox permission (no New-ServicePrincipal, wrong object ID, no
 *    FullAccess): `OK AUTHENTICATE completed.`, then `BAD User is authenticated but not connected.`
 *    for every command but CAPABILITY/LOGOUT, and after the second such BAD `* BYE Connection closed. 14`.
 *  - throttling (more than `maxConnectionsPerMailbox` sessions on one mailbox, or more than
 *    `logins.max` logins per `logins.windowMs`): `BAD Request is throttled. Suggested Backoff Time:
 *    <n> milliseconds`, `* BYE Connection closed. 14`, disconnect.
 *  - mailbox commands before authentication: `BAD Command received in Invalid state.`
 *
 * Limits: one Dovecot per front; IMAP only on implicit TLS (no STARTTLS, as on port 993); NO/BAD
 * texts after login, the NAMESPACE separator and folder names are Dovecot's; no idle timeout before
 * login (Exchange's `* BYE Connection is closed. 13` is not emulated); texts marked "unverified" in
 * the code have no capture behind them.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../log/index.ts';
import { silentLogger } from '../../log/index.ts';
import type { KeyAndCert } from '../ca.ts';
import type { SandboxDirectory } from '../directory.ts';
import type { Dovecot } from '../dovecot.ts';
import { authorize, type AuthzResult, type JwksSource } from './authz.ts';
import { ImapSplitter, chomp, parseXoauth2, xoauth2, type SegmentInfo } from './imap-wire.ts';
import { listenOn, listenServer } from '../../errors/listen.ts';

/** What the front needs from the sandbox Dovecot: where its IMAP listens and a backend credential per mailbox. */
export type ImapBackend = Pick<Dovecot, 'host' | 'ports' | 'mintToken'>;

export interface ImapLimits {
  /** Sessions per mailbox at once (Exchange Online: commonly cited 20). The next login is throttled. */
  maxConnectionsPerMailbox?: number;
  /** Logins per mailbox within a sliding window; off unless set. */
  logins?: { max: number; windowMs: number };
  /** Backoff suggested when the connection limit is hit (ms; default 300000). */
  backoffMs?: number;
  /** Longest command line or literal accepted before authentication (bytes; default 65536). */
  maxPreAuthLine?: number;
}

export interface ImapFrontOptions {
  directory: SandboxDirectory;
  /** The key set tokens are verified against (the sandbox Entra's JWKS). */
  jwks: JwksSource;
  /** Server certificate from the sandbox CA. */
  tls: KeyAndCert;
  dovecot: ImapBackend;
  host?: string;
  port?: number;
  limits?: ImapLimits;
  /** The backend server name shown (UTF-16LE, base64) in the greeting. */
  backendHost?: string;
  log?: Logger;
}

export interface ImapFront {
  host: string;
  port: number;
  backendHost: string;
  /** Open client connections (all states). */
  connections(): number;
  close(): Promise<void>;
}

export const PRE_AUTH_CAPABILITIES = 'IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+';
export const POST_AUTH_CAPABILITIES =
  'IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CLIENTACCESSRULES CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE CHILDREN IDLE NAMESPACE LITERAL+';
const ID_RESPONSE = '* ID ("name" "Microsoft.Exchange.Imap4.Imap4Server" "version" "15.20")';
const BYE_LOGOUT = '* BYE Microsoft Exchange Server IMAP4 server signing off.';
const BYE_CLOSED = '* BYE Connection closed. 14';
const IDLE_CONTINUATION = '+ IDLE accepted, awaiting DONE command.';
const DEFAULT_BACKEND_HOST = 'SB1P281CA0001.DEUP281.PROD.OUTLOOK.COM';

/** Commands that exist but need an authenticated session (answered with the invalid-state BAD before login). */
const AUTHENTICATED_COMMANDS = new Set(
  'SELECT EXAMINE CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE LIST LSUB STATUS APPEND CHECK CLOSE EXPUNGE SEARCH FETCH STORE COPY MOVE UID IDLE NAMESPACE UNSELECT GETQUOTA GETQUOTAROOT SETQUOTA GETACL SETACL DELETEACL LISTRIGHTS MYRIGHTS ENABLE XLIST STARTTLS'.split(' '),
);

export function greeting(backendHost: string): string {
  return `* OK The Microsoft Exchange IMAP4 service is ready. [${Buffer.from(backendHost, 'utf16le').toString('base64')}]`;
}

export async function startImapFront(options: ImapFrontOptions): Promise<ImapFront> {
  const log = options.log ?? silentLogger;
  const host = options.host ?? '127.0.0.1';
  const backendHost = options.backendHost ?? DEFAULT_BACKEND_HOST;
  const limits = {
    maxConnectionsPerMailbox: options.limits?.maxConnectionsPerMailbox ?? 20,
    logins: options.limits?.logins,
    backoffMs: options.limits?.backoffMs ?? 300_000,
    maxPreAuthLine: options.limits?.maxPreAuthLine ?? 65_536,
  };
  const sockets = new Set<Socket>();
  const clients = new Set<Socket>();
  const active = new Map<string, number>();
  const loginTimes = new Map<string, number[]>();

  const throttle = {
    /** Reserves a session slot for the mailbox, or returns the backoff to suggest. */
    acquire(mailbox: string): { ok: true } | { ok: false; backoffMs: number } {
      const now = Date.now();
      if (limits.logins) {
        const { max, windowMs } = limits.logins;
        const recent = (loginTimes.get(mailbox) ?? []).filter((t) => t > now - windowMs);
        loginTimes.set(mailbox, recent);
        if (recent.length >= max) return { ok: false, backoffMs: Math.max(1, recent[0]! + windowMs - now) };
      }
      if ((active.get(mailbox) ?? 0) >= limits.maxConnectionsPerMailbox) return { ok: false, backoffMs: limits.backoffMs };
      if (limits.logins) loginTimes.get(mailbox)!.push(now);
      active.set(mailbox, (active.get(mailbox) ?? 0) + 1);
      return { ok: true };
    },
    release(mailbox: string): void {
      const n = (active.get(mailbox) ?? 1) - 1;
      if (n <= 0) active.delete(mailbox);
      else active.set(mailbox, n);
    },
  };

  const ctx: SessionContext = { options, log, backendHost, limits, throttle, sockets };
  const server = createTlsServer({ key: options.tls.keyPem, cert: options.tls.certPem }, (socket) => {
    sockets.add(socket);
    clients.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      clients.delete(socket);
    });
    new Session(socket, ctx).start();
  });
  server.on('tlsClientError', (err) => log.debug({ err: err.message }, 'imap front: TLS handshake failed'));
  await listenOn('sandbox IMAP front', host, options.port ?? 0, () => listenServer(server, options.port ?? 0, host));
  const port = (server.address() as AddressInfo).port;
  log.info({ host, port }, 'imap front listening');

  return {
    host,
    port,
    backendHost,
    connections: () => clients.size,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

interface SessionContext {
  options: ImapFrontOptions;
  log: Logger;
  backendHost: string;
  limits: { maxConnectionsPerMailbox: number; logins?: { max: number; windowMs: number }; backoffMs: number; maxPreAuthLine: number };
  throttle: { acquire(mailbox: string): { ok: true } | { ok: false; backoffMs: number }; release(mailbox: string): void };
  /** Every socket the front holds (client and backend), destroyed on close(). */
  sockets: Set<Socket>;
}

interface Command {
  tag: string;
  name: string;
  /** The first segment after the command name (literal contents are not kept). */
  args: string;
}

/** One client connection: hand-spoken IMAP until login, then a pipe to Dovecot. */
class Session {
  private readonly socket: TLSSocket;
  private readonly ctx: SessionContext;
  private state: 'preauth' | 'unconnected' | 'piped' | 'closed' = 'preauth';
  private buf: Buffer = Buffer.alloc(0);
  /** A command being collected across literals. */
  private partial: { text: string; literalLeft: number } | undefined;
  /** AUTHENTICATE waiting for the client's continuation line. */
  private sasl: { tag: string; mechanism: string } | undefined;
  private busy = false;
  private unconnectedBads = 0;

  constructor(socket: TLSSocket, ctx: SessionContext) {
    this.socket = socket;
    this.ctx = ctx;
  }

  start(): void {
    this.socket.on('error', () => this.socket.destroy());
    this.socket.on('close', () => (this.state = 'closed'));
    this.socket.on('data', this.onData);
    this.send(greeting(this.ctx.backendHost));
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.buf.length > this.ctx.limits.maxPreAuthLine * 4) {
      // A client that floods before logging in is cut off, as Exchange does with oversized commands.
      this.send('* BAD Command Error. 10');
      this.bye();
      return;
    }
    this.process();
  };

  private isClosed(): boolean {
    return this.state === 'closed' || this.socket.destroyed;
  }

  private send(line: string): void {
    if (this.state !== 'closed' && !this.socket.destroyed) this.socket.write(line + '\r\n');
  }

  private bye(line?: string): void {
    if (line) this.send(line);
    this.state = 'closed';
    this.socket.off('data', this.onData);
    this.socket.end();
  }

  /** Works through buffered input, one command at a time; stops while an AUTHENTICATE is in flight. */
  private process(): void {
    while (!this.busy && (this.state === 'preauth' || this.state === 'unconnected')) {
      if (this.partial && this.partial.literalLeft > 0) {
        if (this.buf.length < this.partial.literalLeft) {
          this.partial.literalLeft -= this.buf.length;
          this.buf = Buffer.alloc(0);
          return;
        }
        this.buf = this.buf.subarray(this.partial.literalLeft);
        this.partial.literalLeft = 0;
      }
      const lf = this.buf.indexOf(0x0a);
      if (lf === -1) {
        if (this.buf.length > this.ctx.limits.maxPreAuthLine) {
          this.send('* BAD Command Error. 10');
          this.bye();
        }
        return;
      }
      const line = chomp(this.buf.toString('latin1', 0, lf + 1));
      this.buf = this.buf.subarray(lf + 1);

      if (this.sasl) {
        const sasl = this.sasl;
        this.sasl = undefined;
        this.saslResponse(sasl.tag, sasl.mechanism, line);
        continue;
      }
      const literal = /\{(\d{1,10})(\+?)\}$/.exec(line);
      if (literal) {
        const size = Number(literal[1]);
        if (size > this.ctx.limits.maxPreAuthLine) {
          this.send('* BAD Command Error. 10');
          this.bye();
          return;
        }
        this.partial = { text: (this.partial?.text ?? '') + line.slice(0, literal.index) + '""', literalLeft: size };
        if (literal[2] !== '+') this.send('+ Ready for additional command text.');
        continue;
      }
      const text = (this.partial?.text ?? '') + line;
      this.partial = undefined;
      const cmd = parseCommand(text);
      if (!cmd) {
        this.send('* BAD Command Error. 10');
        continue;
      }
      if (this.state === 'preauth') this.preauthCommand(cmd);
      else this.unconnectedCommand(cmd);
    }
  }

  private preauthCommand(cmd: Command): void {
    const { tag, name } = cmd;
    switch (name) {
      case 'CAPABILITY':
        this.send(`* CAPABILITY ${PRE_AUTH_CAPABILITIES}`);
        this.send(`${tag} OK CAPABILITY completed.`);
        return;
      case 'NOOP':
        this.send(`${tag} OK NOOP completed.`);
        return;
      case 'ID':
        this.send(ID_RESPONSE);
        this.send(`${tag} OK ID completed.`);
        return;
      case 'LOGOUT':
        this.send(BYE_LOGOUT);
        this.send(`${tag} OK LOGOUT completed.`);
        this.bye();
        return;
      case 'LOGIN':
        // Basic authentication is off in Exchange Online: every password login fails the same way.
        this.send(`${tag} NO LOGIN failed.`);
        return;
      case 'AUTHENTICATE': {
        const [mechanism = '', initial] = cmd.args.split(' ').filter(Boolean);
        const mech = mechanism.toUpperCase();
        if (mech !== 'XOAUTH2' && mech !== 'PLAIN') {
          // Unadvertised mechanisms (OAUTHBEARER, CRAM-MD5, …): unverified, answered like a failed login.
          this.send(`${tag} NO AUTHENTICATE failed.`);
          return;
        }
        if (initial === undefined) {
          this.sasl = { tag, mechanism: mech };
          this.send('+ ');
          return;
        }
        this.saslResponse(tag, mech, initial === '=' ? '' : initial);
        return;
      }
      default:
        // "Command Error. 12" for an unknown command: unverified (Exchange's numbered BADs are seen for
        // malformed input, "Command Error. 10" for oversized lines, in third-party logs).
        this.send(AUTHENTICATED_COMMANDS.has(name) ? `${tag} BAD Command received in Invalid state.` : `${tag} BAD Command Error. 12`);
    }
  }

  /** Authenticated without a mailbox connection: what Exchange shows when the app lacks permission. */
  private unconnectedCommand(cmd: Command): void {
    const { tag, name } = cmd;
    if (name === 'CAPABILITY') {
      this.send(`* CAPABILITY ${POST_AUTH_CAPABILITIES}`);
      this.send(`${tag} OK CAPABILITY completed.`);
      return;
    }
    if (name === 'LOGOUT') {
      this.send(BYE_LOGOUT);
      this.send(`${tag} OK LOGOUT completed.`);
      this.bye();
      return;
    }
    this.send(`${tag} BAD User is authenticated but not connected.`);
    // Captures (MailKit#1496, email-oauth2-proxy#74) show the BYE right after the second such BAD.
    if (++this.unconnectedBads >= 2) this.bye(BYE_CLOSED);
  }

  private saslResponse(tag: string, mechanism: string, response: string): void {
    if (response === '*') {
      // RFC 3501 requires BAD for a cancelled exchange; Exchange's text for it is unverified.
      this.send(`${tag} BAD AUTHENTICATE aborted.`);
      return;
    }
    const parsed = mechanism === 'XOAUTH2' ? parseXoauth2(response) : undefined;
    if (!parsed) {
      this.send(`${tag} NO AUTHENTICATE failed.`);
      return;
    }
    this.busy = true;
    this.socket.pause();
    this.login(tag, parsed.user, parsed.token)
      .catch((err: unknown) => {
        this.ctx.log.error({ err: (err as Error).message }, 'imap front: login failed unexpectedly');
        this.send(`${tag} NO AUTHENTICATE failed.`);
      })
      .finally(() => {
        this.busy = false;
        if (this.state === 'preauth' || this.state === 'unconnected') {
          this.socket.resume();
          this.process();
        }
      });
  }

  private async login(tag: string, user: string, token: string): Promise<void> {
    const { directory, jwks } = this.ctx.options;
    const result = await authorize(directory, jwks, { protocol: 'imap', user, token });
    if (this.isClosed()) return;
    const verdict = verdictOf(result);
    if (verdict === 'denied') {
      this.ctx.log.info({ user, reason: describe(result) }, 'imap front: AUTHENTICATE failed');
      this.send(`${tag} NO AUTHENTICATE failed.`);
      return;
    }
    if (verdict === 'unconnected') {
      this.ctx.log.info({ user, reason: describe(result) }, 'imap front: authenticated but not connected');
      this.state = 'unconnected';
      this.send(`${tag} OK AUTHENTICATE completed.`);
      return;
    }
    if (!result.ok) return;
    // Dovecot's user names are lower case (username_format %Lu).
    const mailbox = result.address.toLowerCase();
    const slot = this.ctx.throttle.acquire(mailbox);
    if (!slot.ok) {
      this.ctx.log.info({ mailbox, backoffMs: slot.backoffMs }, 'imap front: throttled');
      this.send(`${tag} BAD Request is throttled. Suggested Backoff Time: ${slot.backoffMs} milliseconds`);
      this.bye(BYE_CLOSED);
      return;
    }
    let released = false;
    const release = () => {
      if (!released) this.ctx.throttle.release(mailbox);
      released = true;
    };
    this.socket.once('close', release);
    let backend: { socket: Socket; leftover: Buffer };
    try {
      backend = await openBackend(this.ctx, mailbox);
    } catch (err) {
      release();
      this.ctx.log.error({ mailbox, err: (err as Error).message }, 'imap front: Dovecot login failed');
      this.send(`${tag} NO AUTHENTICATE failed.`);
      return;
    }
    if (this.isClosed()) {
      backend.socket.destroy();
      return;
    }
    this.send(`${tag} OK AUTHENTICATE completed.`);
    this.pipe(backend.socket, backend.leftover);
  }

  /** From here on bytes flow both ways; only whole lines the splitter offers are rewritten. */
  private pipe(backend: Socket, leftover: Buffer): void {
    this.state = 'piped';
    const client = this.socket;
    client.off('data', this.onData);
    let idle: { tag: string; continued: boolean } | undefined;
    let loggingOut = false;
    /** Commands in flight, by tag: their tagged OK gets Exchange's "<COMMAND> completed." text. */
    const inFlight = new Map<string, string>();

    const fromClient = new ImapSplitter({
      onSegment: (seg) => {
        if (!seg.first || seg.oversized) return undefined;
        const cmd = parseCommand(chomp(seg.text));
        if (!cmd) return undefined;
        // Exchange names UID FETCH/STORE/… by the inner command ("OK FETCH completed.").
        const name = cmd.name === 'UID' ? (cmd.args.split(' ')[0] ?? '').toUpperCase() || 'UID' : cmd.name;
        inFlight.set(cmd.tag, name);
        if (name === 'IDLE' && cmd.args === '') idle = { tag: cmd.tag, continued: false };
        if (name === 'LOGOUT') loggingOut = true;
        return undefined;
      },
    });
    const toClient = new ImapSplitter({
      onSegment: (seg: SegmentInfo) => {
        if (!seg.first || seg.oversized || seg.literal) return undefined;
        const line = chomp(seg.text);
        if (line.startsWith('+')) {
          if (idle && !idle.continued) {
            idle.continued = true;
            return IDLE_CONTINUATION + '\r\n';
          }
          return undefined;
        }
        if (line.startsWith('* ')) {
          if (/^\* CAPABILITY /i.test(line)) return `* CAPABILITY ${POST_AUTH_CAPABILITIES}\r\n`;
          if (/^\* ID /i.test(line)) return ID_RESPONSE + '\r\n';
          // Dovecot's IDLE keepalive; Exchange stays silent while idling.
          if (idle && /^\* OK Still here$/i.test(line)) return '';
          if (loggingOut && /^\* BYE /i.test(line)) return BYE_LOGOUT + '\r\n';
          return rewriteCapabilityCode(line);
        }
        const sp = line.indexOf(' ');
        const tag = sp > 0 ? line.slice(0, sp) : line;
        if (fromClient.awaitingSyncLiteral && fromClient.currentTag === tag) fromClient.cancelLiteral();
        if (idle && tag === idle.tag) idle = undefined;
        const name = inFlight.get(tag);
        inFlight.delete(tag);
        // Tagged OK: keep Dovecot's response code (READ-WRITE, APPENDUID, …), use Exchange's wording.
        const ok = /^\S+ OK (\[[^\]]*\] )?/i.exec(line);
        if (name && ok) return `${tag} OK ${withExchangeCapabilities(ok[1] ?? '')}${name} completed.\r\n`;
        return rewriteCapabilityCode(line);
      },
    });

    const toClientWrite = (chunk: Buffer) => {
      let ok = true;
      for (const piece of toClient.push(chunk)) ok = client.write(piece) && ok;
      if (!ok) {
        backend.pause();
        client.once('drain', () => backend.resume());
      }
    };
    const toBackendWrite = (chunk: Buffer) => {
      fromClient.push(chunk);
      if (!backend.write(chunk)) {
        client.pause();
        backend.once('drain', () => client.resume());
      }
    };

    backend.on('data', toClientWrite);
    backend.on('end', () => client.end());
    backend.on('close', () => client.end());
    backend.on('error', () => client.destroy());
    client.on('end', () => backend.end());
    client.on('close', () => backend.destroy());
    if (leftover.length > 0) toClientWrite(leftover);
    if (this.buf.length > 0) toBackendWrite(this.buf);
    this.buf = Buffer.alloc(0);
    client.on('data', toBackendWrite);
    // Both were paused explicitly; a new 'data' listener does not restart such a stream.
    client.resume();
    backend.resume();
  }
}

function parseCommand(text: string): Command | undefined {
  const m = /^([^\s(){%*"\\\]+]+) ([A-Za-z]+)(?: (.*))?$/.exec(text);
  if (!m) return undefined;
  return { tag: m[1]!, name: m[2]!.toUpperCase(), args: m[3] ?? '' };
}

/** `[CAPABILITY …]` response codes from Dovecot would tell clients Dovecot's list; show Exchange's. */
function rewriteCapabilityCode(line: string): string | undefined {
  const out = withExchangeCapabilities(line);
  return out === line ? undefined : out + '\r\n';
}

function withExchangeCapabilities(text: string): string {
  return text.replace(/\[CAPABILITY [^\]]*\]/i, `[CAPABILITY ${POST_AUTH_CAPABILITIES}]`);
}

/**
 * Exchange shows a refused token (or a token without the IMAP permission) as a failed AUTHENTICATE,
 * but a good token without access to the mailbox as a login that succeeds and then cannot connect.
 */
function verdictOf(result: AuthzResult): 'ok' | 'denied' | 'unconnected' {
  if (result.ok) return 'ok';
  return result.stage === 'mailbox' ? 'unconnected' : 'denied';
}

function describe(result: AuthzResult): string {
  return result.ok ? 'ok' : `${result.reason}: ${result.detail}`;
}

/**
 * Logs in to Dovecot as the mailbox (XOAUTH2 with a backend token) and returns the socket once the
 * tagged OK has been read, with any bytes that came after it.
 */
async function openBackend(ctx: SessionContext, mailbox: string): Promise<{ socket: Socket; leftover: Buffer }> {
  const { dovecot } = ctx.options;
  const token = await dovecot.mintToken(mailbox);
  const socket = netConnect({ host: dovecot.host, port: dovecot.ports.imap });
  ctx.sockets.add(socket);
  socket.once('close', () => ctx.sockets.delete(socket));
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let greeted = false;
    const fail = (why: string) => {
      cleanup();
      socket.destroy();
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail('Dovecot did not answer the login within 10 s'), 10_000);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const onError = (err: Error) => fail(`Dovecot connection failed: ${err.message}`);
    const onClose = () => fail('Dovecot closed the connection during login');
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (let lf = buf.indexOf(0x0a); lf !== -1; lf = buf.indexOf(0x0a)) {
        const line = chomp(buf.toString('latin1', 0, lf + 1));
        buf = buf.subarray(lf + 1);
        if (!greeted) {
          if (!line.startsWith('* OK')) return fail(`unexpected Dovecot greeting: ${line.slice(0, 200)}`);
          greeted = true;
          socket.write(`mb1 AUTHENTICATE XOAUTH2 ${xoauth2(mailbox, token)}\r\n`);
        } else if (line.startsWith('+')) {
          // Dovecot's failure challenge (JSON); an empty reply makes it send the tagged NO.
          socket.write('\r\n');
        } else if (line.startsWith('mb1 ')) {
          if (!line.startsWith('mb1 OK')) return fail(`Dovecot refused the backend login: ${line.slice(4, 200)}`);
          cleanup();
          socket.pause();
          return resolve({ socket, leftover: buf });
        }
      }
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
}
