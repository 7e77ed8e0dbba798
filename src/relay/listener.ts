/**
 * SMTP listeners for applications (smtp-server): one per configured port, each plain with STARTTLS,
 * implicit TLS, or without TLS. What a client may do:
 *
 * - relay only when authorized — logged in as a relay user (AUTH PLAIN/LOGIN, only over TLS unless
 *   the listener allows plain AUTH) or connecting from an allowed network; otherwise MAIL and RCPT
 *   get 530 5.7.0. mailbridge is never an open relay.
 * - send only as its allowed senders (550 5.7.1 otherwise), never with the null sender.
 * - send messages up to maxMessageSize (SIZE advertised; bigger: 552 5.3.4, nothing queued).
 * - send only lines ending in <CR><LF> (SMTP smuggling: 554 5.5.2, nothing queued; see guard.ts),
 *   and no NUL bytes (554 5.6.0).
 * - use only the MAIL/RCPT parameters advertised (555 5.5.4), and non-ASCII addresses only with
 *   SMTPUTF8 (553 5.6.7).
 * - guess passwords only slowly (auth.ts: a rolling window per address, then 454 4.7.0 / 421 4.7.0).
 *
 * Each accepted message gets a Received header (and a Message-ID if it has none), and its
 * Bcc/Resent-Bcc fields are dropped (cleanup.ts). SMTPUTF8 is advertised because it can be
 * delivered: the SMTP transport passes it on to Exchange Online, which offers SMTPUTF8
 * (microsoft-facts.md §3.2).
 *
 * A message gets its 250 only after its body is fsynced in the spool and its row is committed
 * (Queue.accept). Replies carry enhanced status codes (RFC 2034); smtp-server picks one per reply
 * code, which is wrong for some refusals (it would say 5.1.1 "bad mailbox" for a refused sender),
 * so each connection's `send` is wrapped to keep the code our own reply text starts with. Every
 * refusal an admin may need to investigate is logged with its MB code, client address and user.
 */
import { once } from 'node:events';
import { domainToASCII } from 'node:url';
import { SMTPServer, type SMTPServerAddress, type SMTPServerAuthentication, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import { MbError, type MbCode } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import { LoginGuard } from '../util/login-guard.ts';
import { RelayUsers, type RelayUser } from './auth.ts';
import { HeaderCleanup, receivedHeader } from './cleanup.ts';
import type { Clock } from '../util/clock.ts';
import type { ListenerConfig, RelayConfig } from './config.ts';
import { LineEndingCheck } from './guard.ts';
import { AddressList, isAscii, SenderRules } from './policy.ts';
import type { Queue } from './queue/index.ts';
import type { TlsMaterial } from './tls.ts';
import { listenOn } from '../errors/listen.ts';

export interface ListenerDeps {
  config: RelayConfig;
  hostname: string;
  queue: Queue;
  log: Logger;
  clock: Clock;
  tls: TlsMaterial;
}

export interface RunningListener {
  host: string;
  /** The port actually bound (config port 0 picks one). */
  port: number;
  tls: ListenerConfig['tls'];
  server: SMTPServer;
}

export interface Listeners {
  listeners: RunningListener[];
  close(): Promise<void>;
}

interface Principal {
  /** `user:<name>` or `network:<name>`, for replies and logs. */
  label: string;
  user?: string;
  senders: SenderRules;
}

type SmtpReplyError = Error & { responseCode: number; text: string };

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;
/**
 * MAIL FROM parameters of the extensions mailbridge advertises (SIZE, 8BITMIME, SMTPUTF8, and AUTH
 * per RFC 4954 section 5). DSN and REQUIRETLS are not offered, so RET, ENVID, REQUIRETLS, and RCPT
 * TO's NOTIFY and ORCPT are unknown here like any other.
 */
const MAIL_PARAMETERS = new Set(['SIZE', 'BODY', 'SMTPUTF8', 'AUTH']);
const NO_PARAMETERS = new Set<string>();
/** Policy refusals (530, 550) one connection may collect before it is closed: probing gets slow. */
const MAX_REFUSALS = 10;
const CLOSE_TIMEOUT_MS = 5_000;

export async function startListeners(deps: ListenerDeps): Promise<Listeners> {
  const { config, log } = deps;
  const users = new RelayUsers(config.users);
  const networks = Object.entries(config.networks).map(([name, n]) => ({
    name,
    list: new AddressList(n.cidrs),
    senders: new SenderRules(n.allowedSenders),
  }));
  const b = config.authBackoff;
  const guard = new LoginGuard(
    { maxFailures: b.maxFailures, windowMs: b.windowSeconds * 1000, lockMs: b.lockSeconds * 1000, baseDelayMs: b.baseDelayMs, maxDelayMs: b.maxDelayMs },
    deps.clock,
  );
  const shared = { ...deps, users, networks, guard };

  const running: RunningListener[] = [];
  try {
    for (const l of config.listeners) running.push(await listen(l, shared));
  } catch (err) {
    await Promise.all(running.map((r) => closeServer(r.server)));
    throw err;
  }
  for (const r of running) log.info({ host: r.host, port: r.port, tls: r.tls }, 'relay: listening');
  if (users.size === 0 && networks.length === 0) {
    log.warn({ mb: 'MB_RELAY_AUTH_REQUIRED' }, 'relay: no relay users and no allowed networks are configured, so every client is refused');
  }
  return {
    listeners: running,
    async close() {
      await Promise.all(running.map((r) => closeServer(r.server)));
    },
  };
}

interface Shared extends ListenerDeps {
  users: RelayUsers;
  networks: Array<{ name: string; list: AddressList; senders: SenderRules }>;
  guard: LoginGuard;
}

async function listen(l: ListenerConfig, s: Shared): Promise<RunningListener> {
  const { config, log } = s;
  const authPossible = s.users.size > 0 && (l.tls !== 'none' || l.allowPlainAuth);
  const disabled = [...(l.tls === 'none' ? ['STARTTLS'] : []), ...(authPossible ? [] : ['AUTH'])];

  const principalOf = (session: SMTPServerSession): Principal | undefined => {
    const user = session.user as RelayUser | undefined;
    if (user) return { label: `user:${user.name}`, user: user.name, senders: user.senders };
    const net = s.networks.find((n) => n.list.has(session.remoteAddress));
    return net && { label: `network:${net.name}`, senders: net.senders };
  };

  let where = `${l.host}:${l.port}`; // the bound port once listening
  const refuse = (code: MbCode, fields: Record<string, unknown>, message: string) =>
    log.warn({ mb: code, listener: where, ...fields }, `relay: ${message}`);

  // Addresses whose MAIL/RCPT command carried non-ASCII bytes (smtp-server turns an IDNA A-label
  // into Unicode, so the parsed address alone cannot tell a legal xn-- domain from raw UTF-8).
  const rawUtf8 = new WeakSet<SMTPServerAddress>();
  let parserHooked = true;

  /**
   * Protocol checks shared by MAIL and RCPT: unknown parameters (RFC 5321 section 4.1.1.11: 555) and
   * non-ASCII addresses outside an SMTPUTF8 transaction (RFC 5321's Mailbox is ASCII; RFC 6531
   * section 3.5 and its enhanced code X.6.7: 553 5.6.7). In an ASCII transaction an IDNA domain is
   * kept as the A-label the client sent, so nothing downstream sees UTF-8 it did not ask for.
   */
  const protocolError = (command: 'MAIL FROM' | 'RCPT TO', address: SMTPServerAddress, session: SMTPServerSession, allowed: ReadonlySet<string>) => {
    const ip = session.remoteAddress;
    const args = (address.args || {}) as Record<string, unknown>;
    const unknown = Object.keys(args).filter((k) => !allowed.has(k) || (k === 'AUTH' && !authPossible));
    if (unknown.length > 0) {
      refuse('MB_RELAY_PARAMETER_UNKNOWN', { ip, command, parameters: unknown.join(' ') }, 'command with an unknown parameter refused');
      return reply(555, '5.5.4', `${command} parameter ${unknown.join(' ')} not recognized`);
    }
    if (session.envelope.smtpUtf8) return undefined;
    if (rawUtf8.has(address) || !isAscii(address.address.split('@')[0] ?? '') || (!parserHooked && !isAscii(address.address))) {
      refuse('MB_RELAY_UTF8_WITHOUT_SMTPUTF8', { ip, command, address: address.address }, 'non-ASCII address without SMTPUTF8 refused');
      // The address is not echoed: a reply must not carry UTF-8 to a client that did not ask for it.
      return reply(553, '5.6.7', `${command === 'MAIL FROM' ? 'Sender' : 'Recipient'} address with non-ASCII characters needs SMTPUTF8 on MAIL FROM`);
    }
    const at = address.address.lastIndexOf('@');
    if (at > 0 && !isAscii(address.address.slice(at + 1))) address.address = `${address.address.slice(0, at)}@${domainToASCII(address.address.slice(at + 1))}`;
    return undefined;
  };

  // A refused MAIL/RCPT answers `err`; the MAX_REFUSALS-th one on a connection closes it instead.
  const refusals = new WeakMap<SMTPServerSession, number>();
  const policyRefusal = (session: SMTPServerSession, err: SmtpReplyError): SmtpReplyError => {
    const n = (refusals.get(session) ?? 0) + 1;
    refusals.set(session, n);
    return n >= MAX_REFUSALS ? reply(421, '4.7.0', `${err.text}; too many refused commands, closing connection`) : err;
  };

  const server: SMTPServer = new SMTPServer({
    name: s.hostname,
    banner: 'mailbridge',
    secure: l.tls === 'implicit',
    key: s.tls.key,
    cert: s.tls.cert,
    disabledCommands: disabled,
    allowInsecureAuth: l.allowPlainAuth,
    authMethods: ['PLAIN', 'LOGIN'],
    // Authorization is decided in onMailFrom/onRcptTo (user or allowed network), so the library
    // must not demand AUTH on its own.
    authOptional: true,
    size: config.maxMessageSize,
    rejectOversized: true,
    maxRecipients: config.maxRecipients,
    maxClients: config.maxClients,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: true,
    hideREQUIRETLS: true,
    disableReverseLookup: true,
    closeTimeout: CLOSE_TIMEOUT_MS,
    logger: false,

    onConnect(session, callback) {
      if (!hookConnection(server, session, rawUtf8, (code, text) => {
        const ip = session.remoteAddress;
        if (code === 538) refuse('MB_RELAY_TLS_REQUIRED', { ip }, 'login attempted without TLS');
        else if (code === 452 && /too many recipients/i.test(text)) refuse('MB_RELAY_TOO_MANY_RECIPIENTS', { ip, limit: config.maxRecipients }, 'recipient over the limit refused');
        else if (code === 421 && !/shutting down|timeout/i.test(text)) refuse('MB_RELAY_PROTOCOL_ABUSE', { ip, reply: `${code} ${text}` }, 'client disconnected');
      })) {
        parserHooked = false;
      }
      callback();
    },

    onAuth(auth: SMTPServerAuthentication, session, callback) {
      const ip = session.remoteAddress;
      const username = auth.username ?? '';
      if (!session.secure && !l.allowPlainAuth) return callback(reply(538, '5.7.11', 'Encryption required: issue STARTTLS first'));
      const refuseLocked = (lockedMs: number, busy: boolean) => {
        const seconds = Math.ceil(lockedMs / 1000);
        if (busy) {
          refuse('MB_RELAY_AUTH_LOCKED', { ip, user: username, seconds }, 'login refused, too many logins at once from this address');
          return callback(reply(454, '4.7.0', `Too many logins at once from ${ip}; try again later`));
        }
        refuse('MB_RELAY_AUTH_LOCKED', { ip, user: username, seconds }, 'login refused, too many failures from this address');
        return callback(reply(454, '4.7.0', `Too many failed logins from ${ip}; try again in ${seconds} s`));
      };
      // The slot is taken before the password is checked, so parallel guesses count at once.
      s.guard
        .acquire(ip)
        .then(async (slot) => {
          if (!('success' in slot)) return refuseLocked(slot.lockedMs, slot.busy === true);
          let result: Awaited<ReturnType<RelayUsers['verify']>>;
          try {
            result = await s.users.verify(username, auth.password ?? '', ip);
          } catch (err) {
            slot.abandon();
            throw err;
          }
          if ('user' in result) {
            slot.success();
            log.info({ ip, user: username, method: auth.method }, 'relay: client logged in');
            return callback(null, { user: result.user });
          }
          const f = slot.failure();
          refuse('MB_RELAY_AUTH_FAILED', { ip, user: username, reason: result.reason, failures: f.failures }, 'login failed');
          setTimeout(() => {
            if (!f.locked) return callback(reply(535, '5.7.8', 'Authentication credentials invalid'));
            const seconds = config.authBackoff.lockSeconds;
            refuse('MB_RELAY_AUTH_LOCKED', { ip, user: username, seconds, failures: f.failures }, 'too many failed logins; address paused');
            // 421 makes smtp-server close the connection after the reply.
            callback(reply(421, '4.7.0', `Too many failed logins; logins from ${ip} are refused for ${seconds} s`));
          }, f.delayMs).unref();
        })
        .catch((err: Error) => {
          log.error({ ip, err: err.message }, 'relay: login check failed');
          callback(reply(454, '4.7.0', 'Temporary authentication failure'));
        });
    },

    onMailFrom(address, session, callback) {
      const ip = session.remoteAddress;
      const bad = protocolError('MAIL FROM', address, session, MAIL_PARAMETERS);
      if (bad) return callback(bad);
      const who = principalOf(session);
      if (!who) {
        refuse('MB_RELAY_AUTH_REQUIRED', { ip, sender: address.address }, 'unauthenticated client outside the allowed networks');
        return callback(policyRefusal(session, reply(530, '5.7.0', 'Authentication required')));
      }
      if (address.address === '') {
        refuse('MB_RELAY_SENDER_DENIED', { ip, principal: who.label, sender: '<>' }, 'null sender refused');
        return callback(policyRefusal(session, reply(550, '5.7.1', 'The null sender <> is not accepted here')));
      }
      if (!who.senders.allows(address.address)) {
        refuse('MB_RELAY_SENDER_DENIED', { ip, principal: who.label, sender: address.address, allowed: who.senders.described }, 'sender not allowed');
        return callback(policyRefusal(session, reply(550, '5.7.1', `Sender address <${address.address}> not allowed for ${who.label}`)));
      }
      callback();
    },

    onRcptTo(address, session, callback) {
      const ip = session.remoteAddress;
      const bad = protocolError('RCPT TO', address, session, NO_PARAMETERS);
      if (bad) return callback(bad);
      if (!principalOf(session)) {
        refuse('MB_RELAY_AUTH_REQUIRED', { ip, recipient: address.address }, 'unauthenticated client outside the allowed networks');
        return callback(policyRefusal(session, reply(530, '5.7.0', 'Authentication required')));
      }
      if (!address.address.includes('@')) {
        refuse('MB_RELAY_RECIPIENT_INVALID', { ip, recipient: address.address }, 'recipient without domain');
        return callback(reply(550, '5.1.3', `Recipient <${address.address}> needs a domain`));
      }
      callback();
    },

    onData(stream, session, callback) {
      receive(stream, session, principalOf(session), s)
        .then((message) => callback(null, message))
        .catch((err: Error) => callback(err));
    },
  });

  server.on('error', (err) => log.debug({ err: err.message }, 'relay: client connection error'));

  await listenOn(`relay listener ${l.host}:${l.port}`, l.host, l.port, () => new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      server.server.off('listening', onListening);
      reject(new MbError('MB_RELAY_LISTEN_FAILED', { host: l.host, port: l.port, detail: err.message }, { cause: err }));
    };
    const onListening = () => {
      server.server.off('error', onError);
      resolve();
    };
    server.server.once('error', onError);
    server.server.once('listening', onListening);
    server.listen(l.port, l.host);
  }));
  const addr = server.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : l.port;
  where = `${l.host}:${port}`;
  return { host: l.host, port, tls: l.tls, server };
}

/**
 * DATA: stream the message into its spool file (with the cleanup edits: Received on top, Bcc
 * dropped) while checking line endings, NUL bytes and size, then make it durable (Queue.accept).
 * The stream is always read to its end — smtp-server replies only then — but after a refusal
 * nothing more is written.
 */
async function receive(stream: SMTPServerDataStream, session: SMTPServerSession, who: Principal | undefined, s: Shared): Promise<string> {
  const { queue, log, config } = s;
  const ip = session.remoteAddress;
  const envelope = session.envelope;
  const sender = envelope.mailFrom ? envelope.mailFrom.address : '';
  const id = queue.newId();
  const check = new LineEndingCheck();
  const cleanup = new HeaderCleanup(
    receivedHeader({
      helo: session.hostNameAppearsAs,
      ip,
      hostname: s.hostname,
      esmtp: session.openingCommand === 'EHLO',
      tls: session.secure,
      authenticated: Boolean(session.user),
      smtpUtf8: Boolean(envelope.smtpUtf8),
      queueId: id,
      recipients: envelope.rcptTo.map((r) => r.address),
      date: new Date(s.clock.now()),
    }),
    `<${id}@${s.hostname}>`,
  );
  const writer = queue.spool.createWriter(id);
  let writeError: Error | undefined;
  writer.on('error', (err) => (writeError ??= err));
  let size = 0;
  // The cleaned header comes as several parts (Received, the kept fields, maybe a Message-ID, the
  // body's first bytes): one write of all of them, since each write is a trip to the thread pool.
  const store = async (parts: Buffer[]) => {
    if (writeError) return;
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    if (data.length === 0) return;
    size += data.length;
    if (!writer.write(data)) {
      try {
        await once(writer, 'drain');
      } catch (err) {
        writeError ??= err as Error;
      }
    }
  };

  // Throws the message away (refused, or not stored). A writer that has closed already (after a
  // write error, or at the normal end before `accept` failed) emits no second 'close', so waiting
  // for one would hang the session and the client would never get its reply.
  const discard = async () => {
    if (!writer.closed) {
      writer.destroy();
      await once(writer, 'close').catch(() => undefined);
    }
    await queue.spool.remove(id).catch(() => undefined);
  };

  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      check.feed(chunk);
      if (check.violation || stream.sizeExceeded || writeError) continue;
      await store(cleanup.push(chunk));
    }
    check.end();
    if (!check.violation && !stream.sizeExceeded) await store(cleanup.end());
  } catch (err) {
    // The client went away mid-message: nothing was acknowledged.
    await discard();
    throw err;
  }

  if (check.violation?.what === 'NUL') {
    await discard();
    const v = check.violation;
    log.warn({ mb: 'MB_RELAY_NUL_BYTE', ip, user: who?.user, sender, line: v.line }, 'relay: message refused, NUL byte');
    throw reply(554, '5.6.0', `Message refused: NUL byte in line ${v.line}; mail text must not contain NUL`);
  }
  if (check.violation) {
    await discard();
    const v = check.violation;
    log.warn(
      { mb: 'MB_RELAY_SMUGGLING', ip, user: who?.user, sender, what: v.what, line: v.line },
      `relay: message refused, bare <${v.what}> (SMTP smuggling protection)`,
    );
    throw reply(554, '5.5.2', `Message refused: bare <${v.what}> in line ${v.line}; every line must end with <CR><LF>`);
  }
  if (stream.sizeExceeded) {
    await discard();
    log.warn(
      { mb: 'MB_RELAY_MESSAGE_TOO_LARGE', ip, user: who?.user, sender, size: stream.byteLength, limit: config.maxMessageSize },
      'relay: message refused, too large',
    );
    throw reply(552, '5.3.4', `Message exceeds the fixed maximum size of ${config.maxMessageSize} bytes`);
  }
  try {
    if (writeError) throw writeError;
    writer.end();
    // With `flush: true` the stream fsyncs before it closes: 'close' means the bytes are on disk.
    await once(writer, 'close');
    if (writeError) throw writeError;
    const input = {
      id,
      sender,
      recipients: envelope.rcptTo.map((r) => r.address),
      clientIp: ip,
      size,
      bodyType: envelope.bodyType === '8bitmime' ? ('8bitmime' as const) : ('7bit' as const),
      smtpUtf8: Boolean(envelope.smtpUtf8),
      ...(who?.user !== undefined ? { relayUser: who.user } : {}),
    };
    await queue.accept(input);
  } catch (err) {
    await discard();
    const e = err instanceof MbError ? err : new MbError('MB_RELAY_SPOOL_WRITE_FAILED', { path: queue.spool.dir, detail: (err as Error).message });
    log.error({ mb: e.code, ip, sender, detail: (err as Error).message }, 'relay: message could not be stored; client told to retry');
    throw reply(451, '4.3.0', 'Message could not be stored; try again later');
  }
  log.info({ id, ip, user: who?.user, sender, recipients: envelope.rcptTo.length, size }, 'relay: message queued');
  return `Message queued as ${id}`;
}

function reply(code: number, enhanced: string, text: string): SmtpReplyError {
  const err = new Error(`${enhanced} ${text}`) as SmtpReplyError;
  err.responseCode = code;
  err.text = text;
  return err;
}

/** The parts of smtp-server's connection object the listener hooks into (not in its typings). */
interface HookableConnection {
  _parseAddressCommand?: (name: string, command: Buffer | string) => SMTPServerAddress | false;
}

/**
 * Per-connection hooks (not the prototype, so other smtp-server instances in the process — the
 * sandbox — are untouched):
 * - smtp-server adds an enhanced status code chosen by the reply code alone. When our reply text
 *   already starts with one, send it without the automatic one; refusals the library makes on its
 *   own are reported to `onLibraryRefusal`.
 * - MAIL/RCPT commands whose address has non-ASCII bytes are remembered in `rawUtf8` (see
 *   protocolError). If a later smtp-server lacks the method, every non-ASCII address counts as raw
 *   UTF-8: an A-label domain without SMTPUTF8 would then be refused, never UTF-8 let through.
 */
function hookConnection(
  server: SMTPServer,
  session: SMTPServerSession,
  rawUtf8: WeakSet<SMTPServerAddress>,
  onLibraryRefusal: (code: number, text: string) => void,
): boolean {
  for (const conn of server.connections) {
    if (conn.session !== session) continue;
    const send = conn.send.bind(conn);
    conn.send = (code, data, context) => {
      const ours = typeof data === 'string' && ENHANCED.test(data);
      // Refusals smtp-server makes on its own (ours start with an enhanced code and are logged where made).
      if (!ours && code >= 400) onLibraryRefusal(code, Array.isArray(data) ? data.join(' ') : (data ?? ''));
      send(code, data, ours ? false : context);
    };
    const hookable = conn as unknown as HookableConnection;
    const parse = hookable._parseAddressCommand?.bind(conn);
    if (parse) {
      hookable._parseAddressCommand = (name, command) => {
        const parsed = parse(name, command);
        const path = /<([^>]*)>/.exec(String(command))?.[1] ?? '';
        if (parsed && !isAscii(path)) rawUtf8.add(parsed);
        return parsed;
      };
    }
    return parse !== undefined;
  }
  return false;
}

function closeServer(server: SMTPServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
