/**
 * The Exchange Online SMTP AUTH front: a submission endpoint (STARTTLS, like
 * smtp.office365.com:587) that authorizes XOAUTH2 logins by Exchange Online's rules (authz.ts),
 * enforces its sending limits, and delivers accepted mail for sandbox mailboxes into the sandbox's
 * real Dovecot over LMTP, byte for byte.
 *
 * Strategy. smtp-server speaks the protocol. Exchange's wording is applied in one place: every
 * reply of a connection passes through `shapeReply` (hooked in as each connection is added to the
 * server's connection set, before its greeting), which swaps the library's texts for Exchange's
 * (greeting with date and hex ID, the EHLO list, "Sender OK", "Recipient OK", the 354 text, the
 * STARTTLS and QUIT replies) and sends texts that already carry an enhanced status code unchanged.
 * AUTH is advertised only after STARTTLS, as `AUTH LOGIN XOAUTH2`; LOGIN (basic auth) always fails
 * with Exchange's "basic authentication is disabled".
 *
 * Replies (microsoft-facts.md §3.2, §3.3, §3.5):
 *  - token, role/scope or mailbox permission refused: `535 5.7.3 Authentication unsuccessful [host time id]`
 *  - SMTP AUTH disabled for the tenant / the mailbox: the two `535 5.7.139` texts
 *  - MAIL FROM before a successful AUTH: `530 5.7.57 Client not authenticated to send mail.`
 *  - From header or envelope sender neither the logged-in mailbox nor one granting SendAs: after
 *    DATA, `554 5.2.252 SendAsDenied; …`
 *  - more than 3 authenticated connections on one mailbox: the 4th and later get
 *    `432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded` for their messages until an
 *    earlier connection closes
 *  - 30 messages per minute per mailbox: the reply to the 31st is held until the minute has passed
 *    (delayed, not failed)
 *  - 10,000 recipients per rolling 24 h per mailbox: `554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; …`
 *  - SIZE 157286400 (552 5.3.4 above it), 500 recipients per message (452 4.5.3).
 *
 * The message is delivered to the envelope recipients as submitted: a Bcc (or Resent-Bcc) header
 * in the submitted MIME is neither used for addressing nor removed, so every recipient sees it —
 * what Exchange does with client-submitted MIME (docs/microsoft-facts-addendum.md, "Bcc header in
 * SMTP-submitted MIME"). A client must leave Bcc out itself; mailbridge's relay does.
 *
 * Limits: smtp-server fixes the order of the EHLO keywords and has no BDAT, so BINARYMIME and
 * CHUNKING are not advertised; the diagnostic tails of the 554 replies are shortened; mail to
 * addresses outside the sandbox is recorded in `outbound`, not sent anywhere.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import addressparser from 'nodemailer/lib/addressparser';
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { Logger } from '../../log/index.ts';
import { silentLogger } from '../../log/index.ts';
import type { SandboxDirectory } from '../directory.ts';
import type { DeliveryResult } from '../dovecot.ts';
import { authorize, maySendAs, type AuthzGranted, type AuthzResult, type JwksSource } from './authz.ts';
import { listenOn, listenServer } from '../../errors/listen.ts';

export interface SmtpLimits {
  /** Authenticated connections per mailbox before submissions fail with 432 4.3.2 (Exchange: 3). */
  concurrentConnections?: number;
  /** Messages per mailbox per minute; more are delayed (Exchange: 30). */
  messagesPerMinute?: number;
  /** Recipients per mailbox per rolling 24 h (Exchange: 10,000). */
  recipientsPerDay?: number;
  /** Recipients per message (Exchange: 500). */
  recipientsPerMessage?: number;
}

export interface SmtpFrontOptions {
  directory: SandboxDirectory;
  /** The key set tokens are verified against (the sandbox Entra's JWKS). */
  jwks: JwksSource;
  /** Server certificate and key (PEM) from the sandbox CA. */
  tls: { certPem: string; keyPem: string };
  /** Where accepted mail for sandbox mailboxes goes (src/sandbox/dovecot.ts satisfies it). */
  dovecot: { deliver(envelope: { from: string; to: string[] }, raw: Buffer): Promise<DeliveryResult> };
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** Listen port (default 0: any free port). */
  port?: number;
  /** Short server name shown as `<name>.outlook.office365.com` and in reply brackets (default SB1P281CA0001). */
  serverName?: string;
  /** Clock (ms since the epoch) for limits, token expiry and reply dates; tests pass a fake one. */
  now?: () => number;
  limits?: SmtpLimits;
  log?: Logger;
}

export interface OutboundMessage {
  from: string;
  to: string[];
  raw: Buffer;
  at: number;
}

export interface SmtpFront {
  host: string;
  port: number;
  /** FQDN in the greeting, e.g. SB1P281CA0001.outlook.office365.com. */
  fqdn: string;
  /** Messages for recipients outside the sandbox, newest last (at most 1000 kept). */
  outbound: OutboundMessage[];
  /** Replies currently held back by the per-minute message limit. */
  heldReplies(): number;
  /** Open client connections. */
  connections(): number;
  close(): Promise<void>;
}

/** What a successful AUTH leaves in session.user. */
interface SessionUser {
  address: string;
  granted: AuthzGranted;
}

interface ShapeContext {
  fqdn: string;
  backend: string;
  serverId: string;
  now: () => number;
}

const DEFAULT_SERVER = 'SB1P281CA0001';
const MAX_SIZE = 157_286_400;
const MINUTE = 60_000;
const DAY = 86_400_000;
const OUTBOUND_KEPT = 1000;
const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;

/** `220 <fqdn> Microsoft ESMTP MAIL Service ready at <RFC 2822 date> [<16 hex>]` */
export function greetingText(c: ShapeContext): string {
  return `${c.fqdn} Microsoft ESMTP MAIL Service ready at ${rfc2822(new Date(c.now()))} [${c.serverId}]`;
}

/** The bracket Exchange appends to failures: `[<backend FQDN> <ISO time> <16 hex>]`. */
export function bracket(c: ShapeContext): string {
  return `[${c.backend} ${new Date(c.now()).toISOString()} ${c.serverId}]`;
}

/** Exchange's reply texts, keyed by situation; `b` is the bracket. */
export const REPLIES = {
  authUnsuccessful: (b: string) => `5.7.3 Authentication unsuccessful ${b}`,
  tenantDisabled: (b: string) =>
    `5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. ${b}`,
  mailboxDisabled: (b: string) =>
    `5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. ${b}`,
  basicAuthDisabled: (b: string) => `5.7.139 Authentication unsuccessful, basic authentication is disabled. ${b}`,
  notAuthenticated: '5.7.57 Client not authenticated to send mail.',
  sendAsDenied: (authUser: string, from: string, backend: string) =>
    `5.2.252 SendAsDenied; ${authUser} not allowed to send as ${from}; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message.[EndDiagnosticData] [Hostname=${backend}]`,
  threadLimit: '4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded',
  quotaExceeded: (backend: string) =>
    `5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message.[EndDiagnosticData] [Hostname=${backend}]`,
  queued: (messageId: string, backend: string) => `2.0.0 OK ${messageId} [Hostname=${backend}]`,
} as const;

/**
 * Rewrites one reply of smtp-server into Exchange Online's form. `secure`: the connection runs
 * TLS; `authenticated`: AUTH succeeded; `remote`: the client's IP.
 */
export function shapeReply(
  c: ShapeContext,
  conn: { secure: boolean; authenticated: boolean; remote: string },
  code: number,
  data: string | string[] | null | undefined,
  context: string | false | undefined,
): [number, string | string[] | null | undefined, string | false | undefined] {
  if (Array.isArray(data) && code === 250) {
    // EHLO: Exchange's keywords; AUTH only after STARTTLS (and not once logged in).
    const offered = data.slice(1).join('\n');
    const features = [`${c.fqdn} Hello [${conn.remote}]`, `SIZE ${MAX_SIZE}`, 'PIPELINING', 'DSN', 'ENHANCEDSTATUSCODES'];
    if (!conn.secure) features.push('STARTTLS');
    if (conn.secure && !conn.authenticated && /^AUTH /m.test(offered)) features.push('AUTH LOGIN XOAUTH2');
    features.push('8BITMIME', 'SMTPUTF8');
    return [code, features, false];
  }
  const text = typeof data === 'string' ? data : '';
  if (code === 220) return [220, text === 'Ready to start TLS' ? '2.0.0 SMTP server ready' : greetingText(c), false];
  if (code === 250 && context === 'MAIL_FROM_OK') return [250, 'Sender OK', context];
  if (code === 250 && context === 'RCPT_TO_OK') return [250, 'Recipient OK', context];
  if (code === 250 && context === false && / Hello /.test(text)) return [250, `${c.fqdn} Hello [${conn.remote}]`, false];
  if (code === 250 && text === 'Flushed') return [250, 'Resetting', context];
  if (code === 354) return [354, 'Start mail input; end with <CRLF>.<CRLF>', false];
  if (code === 221) return [221, '2.0.0 Service closing transmission channel', false];
  if (code === 538) return [504, '5.7.4 Unrecognized authentication type', false];
  if (code === 552 && context === 'MESSAGE_TOO_BIG') return [552, '5.3.4 Message size exceeds fixed maximum message size', false];
  if (code === 452 && context === 'TOO_MANY_RECIPIENTS') return [452, '4.5.3 Too many recipients', false];
  if (ENHANCED.test(text)) return [code, text, false];
  return [code, data, context];
}

export async function startSmtpFront(options: SmtpFrontOptions): Promise<SmtpFront> {
  const log = options.log ?? silentLogger;
  const now = options.now ?? Date.now;
  const listenHost = options.host ?? '127.0.0.1';
  const serverName = options.serverName ?? DEFAULT_SERVER;
  const limits = {
    concurrentConnections: options.limits?.concurrentConnections ?? 3,
    messagesPerMinute: options.limits?.messagesPerMinute ?? 30,
    recipientsPerDay: options.limits?.recipientsPerDay ?? 10_000,
    recipientsPerMessage: options.limits?.recipientsPerMessage ?? 500,
  };
  const shape: ShapeContext = {
    fqdn: `${serverName}.outlook.office365.com`,
    backend: `${serverName}.DEUP281.PROD.OUTLOOK.COM`,
    serverId: serverIdFor(now()),
    now,
  };
  /** Authenticated session IDs per mailbox, in the order they logged in. */
  const sessionsByMailbox = new Map<string, string[]>();
  /** Accepted message times per mailbox (last minute). */
  const sentTimes = new Map<string, number[]>();
  /** Accepted recipients per mailbox (last 24 h). */
  const recipientLog = new Map<string, { at: number; count: number }[]>();
  const outbound: OutboundMessage[] = [];
  const held = new Set<{ cancel(): void }>();

  const authFailure = (result: Exclude<AuthzResult, AuthzGranted>): Error => {
    const b = bracket(shape);
    const message =
      result.reason === 'smtp_auth_disabled_tenant'
        ? REPLIES.tenantDisabled(b)
        : result.reason === 'smtp_auth_disabled_mailbox'
          ? REPLIES.mailboxDisabled(b)
          : REPLIES.authUnsuccessful(b);
    return replyError(535, message);
  };

  const onAuth = (auth: SMTPServerAuthentication, session: SMTPServerSession, callback: (err: Error | null | undefined, response?: { user?: unknown }) => void) => {
    if (auth.method !== 'XOAUTH2') {
      log.info({ session: session.id, method: auth.method, user: auth.username }, 'smtp front: basic auth refused');
      return callback(replyError(535, REPLIES.basicAuthDisabled(bracket(shape))));
    }
    const user = auth.username ?? '';
    authorize(options.directory, options.jwks, { protocol: 'smtp', user, token: auth.accessToken ?? '', now: now() }).then(
      (result) => {
        if (!result.ok) {
          log.info({ session: session.id, user, stage: result.stage, reason: result.reason, detail: result.detail }, 'smtp front: AUTH refused');
          return callback(authFailure(result));
        }
        const key = result.address.toLowerCase();
        const list = sessionsByMailbox.get(key) ?? [];
        if (!list.includes(session.id)) list.push(session.id);
        sessionsByMailbox.set(key, list);
        const sessionUser: SessionUser = { address: result.address, granted: result };
        log.info({ session: session.id, user, principal: result.principal.kind, appId: result.principal.appId }, 'smtp front: AUTH ok');
        callback(null, { user: sessionUser });
      },
      (err: Error) => {
        log.error({ session: session.id, err: err.message }, 'smtp front: authorize failed');
        callback(replyError(454, '4.7.0 Temporary authentication failure'));
      },
    );
  };

  const release = (session: SMTPServerSession) => {
    for (const [key, list] of sessionsByMailbox) {
      const i = list.indexOf(session.id);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) sessionsByMailbox.delete(key);
    }
  };

  /** Resolves when the mailbox may submit one more message this minute (checked against the injectable clock). */
  const waitForRate = (key: string, socketGone: () => boolean): Promise<boolean> =>
    new Promise((resolve) => {
      const tryNow = (): boolean => {
        const times = (sentTimes.get(key) ?? []).filter((t) => t > now() - MINUTE);
        sentTimes.set(key, times);
        if (times.length < limits.messagesPerMinute) {
          times.push(now());
          return true;
        }
        return false;
      };
      if (tryNow()) return resolve(true);
      log.info({ mailbox: key }, 'smtp front: message rate limit reached, reply held');
      const entry = {
        cancel: () => {
          clearInterval(timer);
          held.delete(entry);
          resolve(false);
        },
      };
      const timer = setInterval(() => {
        if (socketGone()) return entry.cancel();
        if (tryNow()) {
          clearInterval(timer);
          held.delete(entry);
          resolve(true);
        }
      }, 20);
      held.add(entry);
    });

  const onData = (
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    callback: (err?: Error | null, message?: string) => void,
  ) => {
    const chunks: Buffer[] = [];
    // Past SIZE the message is refused anyway: stop keeping it.
    stream.on('data', (c: Buffer) => (stream.sizeExceeded ? undefined : chunks.push(c)));
    stream.on('end', () => {
      if (stream.sizeExceeded) return callback(); // smtp-server answers 552 itself (rejectOversized)
      const raw = Buffer.concat(chunks);
      submit(session, raw).then(
        (reply) => callback(null, reply),
        (err: Error) => callback(err),
      );
    });
  };

  const submit = async (session: SMTPServerSession, raw: Buffer): Promise<string> => {
    const user = session.user as SessionUser;
    const key = user.address.toLowerCase();
    // More than N authenticated connections on the mailbox: the later ones cannot submit.
    const position = (sessionsByMailbox.get(key) ?? []).indexOf(session.id);
    if (position >= limits.concurrentConnections) throw replyError(432, REPLIES.threadLimit);

    const envelopeFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    const senders = [...new Set([envelopeFrom, ...headerAddresses(raw, 'from')].filter(Boolean).map((a) => a.toLowerCase()))];
    for (const sender of senders) {
      if (!maySendAs(options.directory, user.granted, sender)) throw replyError(554, REPLIES.sendAsDenied(user.address, sender, shape.backend));
    }

    const recipients = session.envelope.rcptTo.map((r) => r.address);
    const day = (recipientLog.get(key) ?? []).filter((e) => e.at > now() - DAY);
    recipientLog.set(key, day);
    const used = day.reduce((n, e) => n + e.count, 0);
    if (used + recipients.length > limits.recipientsPerDay) {
      log.info({ mailbox: key, used, limit: limits.recipientsPerDay }, 'smtp front: daily recipient quota exceeded');
      throw replyError(554, REPLIES.quotaExceeded(shape.backend));
    }

    const socketGone = () => !openSessions.has(session.id);
    if (!(await waitForRate(key, socketGone))) throw replyError(451, '4.4.2 Connection dropped');
    day.push({ at: now(), count: recipients.length });

    const internal = recipients.filter((r) => options.directory.mailbox(r));
    const external = recipients.filter((r) => !options.directory.mailbox(r));
    if (internal.length > 0) {
      const result = await options.dovecot.deliver({ from: envelopeFrom, to: internal }, raw);
      if (result.accepted.length === 0) {
        log.error({ mailbox: key, rejected: result.rejected }, 'smtp front: LMTP refused every recipient');
        throw replyError(451, '4.3.0 Temporary server error. Please try again later');
      }
    }
    if (external.length > 0) {
      outbound.push({ from: envelopeFrom, to: external, raw, at: now() });
      if (outbound.length > OUTBOUND_KEPT) outbound.splice(0, outbound.length - OUTBOUND_KEPT);
    }
    const messageId = headerValue(raw, 'message-id') ?? `<${randomBytes(16).toString('hex').toUpperCase()}@${shape.backend}>`;
    log.info({ session: session.id, mailbox: key, recipients: recipients.length, bytes: raw.length }, 'smtp front: message accepted');
    return REPLIES.queued(messageId.trim(), shape.backend);
  };

  const openSessions = new Set<string>();
  const server = new SMTPServer({
    secure: false,
    key: options.tls.keyPem,
    cert: options.tls.certPem,
    name: shape.fqdn,
    heloResponse: '%s Hello %s',
    size: MAX_SIZE,
    rejectOversized: true,
    authMethods: ['LOGIN', 'XOAUTH2'],
    authRequiredMessage: REPLIES.notAuthenticated,
    // smtp-server leaves enhanced status codes off unless told; Exchange sends them.
    hideENHANCEDSTATUSCODES: false,
    hideREQUIRETLS: true,
    hideDSN: false,
    disableReverseLookup: true,
    maxRecipients: limits.recipientsPerMessage,
    maxAllowedUnauthenticatedCommands: false,
    closeTimeout: 1000,
    logger: false,
    onConnect(session, callback) {
      openSessions.add(session.id);
      callback();
    },
    onAuth,
    onMailFrom(_address, session, callback) {
      // AUTH is not possible before STARTTLS; a client that skips both still gets Exchange's 530.
      if (!session.user) return callback(replyError(530, REPLIES.notAuthenticated));
      callback();
    },
    onData,
    onClose(session) {
      openSessions.delete(session.id);
      release(session);
    },
  });
  server.on('error', (err) => log.warn({ err: err.message }, 'smtp front: connection error'));

  // Hook each connection as smtp-server adds it (before its greeting) so every reply is shaped.
  type Conn = (typeof server.connections extends Set<infer C> ? C : never) & { __shaped?: boolean };
  const connections = new (class extends Set<Conn> {
    override add(conn: Conn): this {
      if (!conn.__shaped) {
        conn.__shaped = true;
        const send = conn.send.bind(conn);
        conn.send = (code, data, context) => {
          const shaped = shapeReply(shape, { secure: conn.secure, authenticated: !!conn.session.user, remote: conn.remoteAddress }, code, data, context);
          send(...shaped);
        };
      }
      return super.add(conn);
    }
  })();
  server.connections = connections;

  await listenOn('sandbox SMTP front', listenHost, options.port ?? 0, () => listenServer(server.server, options.port ?? 0, listenHost));
  const port = (server.server.address() as AddressInfo).port;
  log.info({ host: listenHost, port, fqdn: shape.fqdn }, 'smtp front: listening');

  return {
    host: listenHost,
    port,
    fqdn: shape.fqdn,
    outbound,
    heldReplies: () => held.size,
    connections: () => server.connections.size,
    async close() {
      for (const h of [...held]) h.cancel();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Do not wait for idle clients: tell them and hang up, as a restarting Exchange front does.
      for (const conn of [...server.connections]) conn.send(421, '4.3.2 Service not available, closing transmission channel');
      await closed;
    },
  };
}

function replyError(code: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode: code });
}

/** Exchange's IDs look like .NET ticks (100 ns since 0001-01-01) of a time some hours before; upper-case hex. */
function serverIdFor(nowMs: number): string {
  const earlier = BigInt(nowMs - 3_600_000 * (1 + Math.floor(Math.random() * 20)));
  const ticks = earlier * 10_000n + 621_355_968_000_000_000n + BigInt(Math.floor(Math.random() * 10_000));
  return ticks.toString(16).toUpperCase().padStart(16, '0');
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** `Sun, 23 Nov 2025 11:12:20 +0000` (Exchange's greeting uses UTC). */
export function rfc2822(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** The unfolded header section of a message (up to the first empty line). */
function headerLines(raw: Buffer): string[] {
  let end = raw.indexOf('\r\n\r\n');
  if (end < 0) end = raw.indexOf('\n\n');
  const head = raw.subarray(0, end < 0 ? raw.length : end).toString('utf8');
  return head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/);
}

function headerValue(raw: Buffer, name: string): string | undefined {
  const prefix = `${name.toLowerCase()}:`;
  const line = headerLines(raw).find((l) => l.toLowerCase().startsWith(prefix));
  return line?.slice(prefix.length).trim();
}

/** Addresses in every header of that name (From may list several). */
export function headerAddresses(raw: Buffer, name: string): string[] {
  const prefix = `${name.toLowerCase()}:`;
  return headerLines(raw)
    .filter((l) => l.toLowerCase().startsWith(prefix))
    .flatMap((l) => addressparser(l.slice(prefix.length), { flatten: true }))
    .map((a) => a.address ?? '')
    .filter(Boolean);
}
