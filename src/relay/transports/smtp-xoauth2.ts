/**
 * SMTP AUTH XOAUTH2 to Exchange Online (smtp.office365.com:587 with STARTTLS in the global cloud;
 * the host of the connection's cloud otherwise; host, port and TLS mode overridable per route).
 * The SASL user is the sending mailbox, the bearer token the connection's Exchange token
 * (app-only SMTP.SendAsApp, or delegated SMTP.Send). nodemailer's SMTPConnection speaks the
 * protocol; this module pools connections and explains every reply.
 *
 * Pool: per sending mailbox, at most `smtp.maxConnections` (never more than 3, Exchange's limit:
 * a 4th connection gets 432 4.3.2) live connections, each logged in once and reused for up to
 * `messagesPerConnection` messages, closed after `idleSeconds` unused. A connection that saw any
 * failure is closed rather than reused. A reused connection that turns out dead before the
 * message was offered is replaced once, transparently.
 *
 * Replies → results (microsoft-facts.md §3.3, §3.5):
 *  - 535 5.7.3 (token, permission, service principal, FullAccess): deferred, MB_RELAY_SMTP_AUTH_REFUSED
 *    with the New-ServicePrincipal and Add-MailboxPermission lines (IDs from the token's claims).
 *    A cached token is renewed and the login tried once more first: a permission granted after the
 *    token was issued is only in a new token's roles.
 *  - 535 5.7.139 for the tenant / the mailbox / a policy: deferred, with Set-TransportConfig /
 *    Set-CASMailbox / the Security Defaults hint; the mailbox is paused for a minute, so a queue of
 *    messages does not turn into a storm of failed logins.
 *  - 554 5.2.252 SendAsDenied (and 550 5.7.60): deferred, with the Add-RecipientPermission line.
 *  - 432 4.3.2: deferred, mailbox paused for a minute.
 *  - 554 5.2.0 SubmissionQuotaExceeded: deferred with a retry-after of an hour. Exchange blocks the
 *    mailbox until older recipients leave its rolling 24 h window, which frees capacity piece by
 *    piece; probing hourly costs one refused submission per hour and sends as soon as it can, and
 *    the default retry schedule outlasts a full day of blocking.
 *  - 530 5.7.57: deferred (no login happened: STARTTLS or AUTH XOAUTH2 missing on the way).
 *  - other 4xx: deferred; other 5xx: bounced (MB_RELAY_UPSTREAM_REJECTED with the reply).
 *  - connection refused, DNS, TLS, timeouts: deferred with the host, port and stage. A timeout
 *    after the message data was sent may mean Exchange has it: the retry can duplicate it
 *    (at-least-once, never lost).
 * Why configuration failures are deferred and not bounced: see src/errors/entries/relay.ts.
 *
 * Opening (TLS, XOAUTH2, the proxy's CONNECT tunnel) is the shared opener's (src/m365/smtp.ts).
 *
 * Limits: a message accepted for some
 * recipients and refused for others counts as sent (the refusals are logged with
 * MB_RELAY_RECIPIENTS_PARTLY_REFUSED; the Transport contract has no per-recipient results). Exchange
 * Online accepts every recipient at RCPT during submission, so this does not arise there.
 */
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import { smtpConnection, xoauth2 } from '../../m365/smtp.ts';
import type { ProxySettings } from '../../net/proxy.ts';
import type { MbCode } from '../../errors/index.ts';
import type { Logger } from '../../log/index.ts';
import { silentLogger } from '../../log/index.ts';
import type { OutboundMessage, SendResult } from '../transport.ts';
import { attemptToken, PLACEHOLDER, since, tokenFacts, type DeliverHooks, type DeliveryTarget, type RouteTransport, type TokenFacts, type TokenSource, type TransportContext } from './types.ts';

/** Exchange Online's per-mailbox connection limit. */
export const MAX_CONNECTIONS_PER_MAILBOX = 3;
const PAUSE_AUTH_SECONDS = 60;
const PAUSE_CONCURRENCY_SECONDS = 60;
const PAUSE_QUOTA_SECONDS = 3600;

export interface SmtpTransportOptions {
  tokens: TokenSource;
  /** EHLO name. */
  hostname: string;
  /** PEM of the connection's caFile (added to Node's roots), or undefined. */
  caFor(connection: string): Promise<string | undefined>;
  /** Proxy settings for the connection (connection proxy, else server.proxy, else the environment). */
  proxyFor?(connection: string): ProxySettings;
  log?: Logger;
}

interface SmtpErrorLike {
  code?: string;
  originalCode?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  message?: string;
}

interface Pooled {
  conn: SMTPConnection;
  /** Who the token that logged this connection in is for (fix texts). */
  facts?: TokenFacts;
  signature: string;
  sent: number;
  busy: boolean;
  dead: boolean;
  idleTimer?: NodeJS.Timeout;
}

interface MailboxPool {
  key: string;
  live: Pooled[];
  /** Slots reserved by connections being opened. */
  opening: number;
  waiters: Array<() => void>;
}

class StageFailure extends Error {
  readonly smtp: SmtpErrorLike;
  readonly stage: 'connect' | 'auth' | 'token';
  readonly result?: SendResult;
  constructor(stage: 'connect' | 'auth' | 'token', smtp: SmtpErrorLike, result?: SendResult) {
    super(smtp.message ?? stage);
    this.stage = stage;
    this.smtp = smtp;
    if (result) this.result = result;
  }
}

/** The `smtp` transport of a route: SMTP AUTH XOAUTH2 with the connection's Exchange token, pooled per mailbox. */
export const smtpTransport = (ctx: TransportContext): RouteTransport => new SmtpXoauth2Transport(ctx);

export class SmtpXoauth2Transport {
  readonly name = 'smtp-xoauth2';
  private readonly o: SmtpTransportOptions;
  private readonly log: Logger;
  private readonly pools = new Map<string, MailboxPool>();
  private closed = false;

  constructor(options: SmtpTransportOptions) {
    this.o = options;
    this.log = options.log ?? silentLogger;
  }

  /** Live connections per mailbox (status output and tests). */
  connections(mailbox: string): number {
    const p = this.pools.get(mailbox.toLowerCase());
    return p ? p.live.length + p.opening : 0;
  }

  async deliver(message: OutboundMessage, target: DeliveryTarget, hooks: DeliverHooks = {}): Promise<SendResult> {
    const host = target.smtp.host ?? target.cloud.exchange.smtp.host;
    const port = target.smtp.port;
    const ctx = { host, port, target, message };
    // A reused connection may have been closed by the server while idle: one fresh try.
    for (let attempt = 0; attempt < 2; attempt++) {
      let lease: { pooled: Pooled; reused: boolean };
      try {
        lease = await this.acquire(target, host, port, message.signal, hooks);
      } catch (err) {
        if (err instanceof StageFailure) return err.result ?? this.classify(err.smtp, ctx, err.stage);
        if (message.signal.aborted) return this.aborted();
        throw err;
      }
      const { pooled, reused } = lease;
      const t0 = performance.now();
      hooks.onStep?.({ step: 'send', ok: true, detail: `MAIL FROM:<${message.sender}> ${message.recipients.length} RCPT, ${message.size} bytes` });
      const onAbort = () => pooled.conn.close();
      message.signal.addEventListener('abort', onAbort, { once: true });
      try {
        const info = await this.send(pooled, message);
        pooled.sent++;
        this.release(target.mailbox, pooled, pooled.sent < target.smtp.messagesPerConnection, target.smtp.idleSeconds);
        hooks.onStep?.({ step: 'accept', ok: true, detail: info.response, ms: since(t0) });
        if (info.rejected.length > 0) {
          this.log.warn(
            { id: message.id, mb: 'MB_RELAY_RECIPIENTS_PARTLY_REFUSED', mailbox: target.mailbox, refused: info.rejected, replies: info.rejectedReplies },
            'relay: upstream refused some recipients; the others got the message',
          );
        }
        return { ok: true, detail: info.response };
      } catch (err) {
        const e = err as SmtpErrorLike;
        this.release(target.mailbox, pooled, false, 0);
        if (message.signal.aborted) return this.aborted();
        const offered = e.command !== undefined && e.command !== 'CONN' && e.command !== 'API';
        if (reused && attempt === 0 && !offered && !e.responseCode) {
          this.log.debug({ id: message.id, mailbox: target.mailbox, err: e.message }, 'relay: pooled SMTP connection was gone; opening a new one');
          continue;
        }
        hooks.onStep?.({ step: 'accept', ok: false, detail: e.response ?? e.message, ms: since(t0) });
        return this.classify(e, { ...ctx, ...(pooled.facts ? { facts: pooled.facts } : {}) }, 'send');
      } finally {
        message.signal.removeEventListener('abort', onAbort);
      }
    }
    return this.classify({ message: 'connection lost twice' }, ctx, 'send');
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const pool of this.pools.values()) {
      for (const p of pool.live) {
        clearTimeout(p.idleTimer);
        if (!p.busy) quit(p.conn);
      }
      for (const w of pool.waiters.splice(0)) w();
    }
  }

  // ── pool ──────────────────────────────────────────────────────────────────────────────────────

  private async acquire(target: DeliveryTarget, host: string, port: number, signal: AbortSignal, hooks: DeliverHooks): Promise<{ pooled: Pooled; reused: boolean }> {
    const key = target.mailbox.toLowerCase();
    let pool = this.pools.get(key);
    if (!pool) {
      pool = { key, live: [], opening: 0, waiters: [] };
      this.pools.set(key, pool);
    }
    const signature = `${target.connection}|${host}|${port}|${target.smtp.tls}`;
    const max = Math.min(target.smtp.maxConnections, MAX_CONNECTIONS_PER_MAILBOX);
    for (;;) {
      if (this.closed || signal.aborted) throw new Error('transport closed');
      pool.live = pool.live.filter((p) => !p.dead);
      const idle = pool.live.find((p) => !p.busy && p.signature === signature);
      if (idle) {
        clearTimeout(idle.idleTimer);
        idle.busy = true;
        hooks.onStep?.({ step: 'connect', ok: true, detail: `${host}:${port} (open connection reused, ${idle.sent} sent on it)` });
        return { pooled: idle, reused: true };
      }
      if (pool.live.length + pool.opening < max) {
        pool.opening++;
        try {
          const pooled = await this.open(target, host, port, signature, hooks);
          pool.live.push(pooled);
          return { pooled, reused: false };
        } finally {
          pool.opening--;
          this.wake(pool);
        }
      }
      const other = pool.live.find((p) => !p.busy && p.signature !== signature);
      if (other) {
        this.discard(pool, other);
        continue;
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener('abort', done);
          resolve();
        };
        pool.waiters.push(done);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  private release(mailbox: string, pooled: Pooled, reusable: boolean, idleSeconds: number): void {
    const pool = this.pools.get(mailbox.toLowerCase());
    pooled.busy = false;
    if (!pool) return quit(pooled.conn);
    if (!reusable || pooled.dead || this.closed) {
      this.discard(pool, pooled);
      return;
    }
    pooled.idleTimer = setTimeout(() => this.discard(pool, pooled), idleSeconds * 1000);
    pooled.idleTimer.unref();
    this.wake(pool);
  }

  private discard(pool: MailboxPool, pooled: Pooled): void {
    clearTimeout(pooled.idleTimer);
    pooled.dead = true;
    pool.live = pool.live.filter((p) => p !== pooled);
    quit(pooled.conn);
    this.wake(pool);
    // Forget mailboxes with nothing open, so the map does not grow with every sender ever seen.
    if (pool.live.length === 0 && pool.opening === 0 && pool.waiters.length === 0 && this.pools.get(pool.key) === pool) this.pools.delete(pool.key);
  }

  private wake(pool: MailboxPool): void {
    pool.waiters.shift()?.();
  }

  /** Token, connect (greeting, EHLO, STARTTLS, EHLO), AUTH XOAUTH2; one login retry with a renewed token after 5.7.3. */
  private async open(target: DeliveryTarget, host: string, port: number, signature: string, hooks: DeliverHooks): Promise<Pooled> {
    let forceRefresh = false;
    for (let attempt = 0; ; attempt++) {
      const got = await attemptToken(this.o.tokens, target, 'exchange', forceRefresh, hooks);
      if ('failure' in got) throw new StageFailure('token', { message: String(got.error) }, got.failure);
      const { token, t0 } = got;
      const facts = tokenFacts(token.accessToken);
      hooks.onStep?.({
        step: 'token',
        ok: true,
        detail: `${target.connection}: ${facts?.appOnly === false ? `delegated (${facts.user ?? '?'})` : 'app-only'}${token.fromCache ? ', cached' : ''}, valid until ${token.expiresOn.toISOString()}`,
        ms: since(t0),
      });

      const t1 = performance.now();
      let conn: SMTPConnection;
      try {
        conn = await smtpConnection({
          host,
          port,
          tls: target.smtp.tls,
          name: this.o.hostname,
          ca: await this.o.caFor(target.connection),
          timeoutMs: target.smtp.timeoutSeconds * 1000,
          proxy: this.o.proxyFor?.(target.connection),
        });
      } catch (err) {
        hooks.onStep?.({ step: 'connect', ok: false, detail: (err as Error).message, ms: since(t1) });
        throw new StageFailure('connect', err as SmtpErrorLike);
      }
      const pooled: Pooled = { conn, signature, sent: 0, busy: true, dead: false, ...(facts ? { facts } : {}) };
      conn.on('error', () => (pooled.dead = true));
      conn.on('end', () => (pooled.dead = true));
      try {
        await whileAlive(conn, (cb) => conn.connect(cb));
      } catch (err) {
        quit(conn);
        hooks.onStep?.({ step: 'connect', ok: false, detail: (err as Error).message, ms: since(t1) });
        throw new StageFailure('connect', err as SmtpErrorLike);
      }
      hooks.onStep?.({ step: 'connect', ok: true, detail: `${host}:${port} ${conn.secure ? 'TLS' : 'plain'}`, ms: since(t1) });

      const t2 = performance.now();
      const oauth2 = xoauth2(target.mailbox, token, (renew) => this.o.tokens.getToken(target.connection, 'exchange', { forceRefresh: renew }));
      try {
        await whileAlive(conn, (cb) => conn.login({ user: target.mailbox, oauth2 }, cb));
        hooks.onStep?.({ step: 'auth', ok: true, detail: `AUTH XOAUTH2 as ${target.mailbox}`, ms: since(t2) });
        return pooled;
      } catch (err) {
        quit(conn);
        const e = err as SmtpErrorLike;
        hooks.onStep?.({ step: 'auth', ok: false, detail: e.response ?? e.message, ms: since(t2) });
        // 5.7.3 with a token from the cache: a permission granted since is only in a new token.
        if (attempt === 0 && token.fromCache && /\b5\.7\.3\b/.test(e.response ?? '')) {
          forceRefresh = true;
          continue;
        }
        throw new StageFailure('auth', e, this.authResult(e, target, token.accessToken, host));
      }
    }
  }

  private send(pooled: Pooled, m: OutboundMessage): Promise<{ response: string; rejected: string[]; rejectedReplies: string[] }> {
    return new Promise((resolve, reject) => {
      pooled.conn.send(
        { from: m.sender === '' ? false : m.sender, to: [...m.recipients], size: m.size, use8BitMime: m.bodyType === '8bitmime' },
        m.body(),
        (err, info) => {
          if (err) return reject(err);
          resolve({ response: info.response, rejected: info.rejected, rejectedReplies: (info.rejectedErrors ?? []).map((e) => (e as SmtpErrorLike).response ?? e.message) });
        },
      );
    });
  }

  // ── replies → results ─────────────────────────────────────────────────────────────────────────

  private aborted(): SendResult {
    return { temporary: true, mbCode: 'MB_RELAY_TRANSPORT_FAILED', params: { transport: this.name, detail: 'aborted' }, detail: 'aborted' };
  }

  private authResult(e: SmtpErrorLike, target: DeliveryTarget, token: string, host: string): SendResult {
    const reply = (e.response ?? e.message ?? '').trim();
    const mailbox = target.mailbox;
    const facts = tokenFacts(token);
    const temp = (mbCode: MbCode, params: Record<string, string>, fix: string, retryAfter?: number): SendResult => ({
      temporary: true,
      mbCode,
      params,
      code: reply,
      detail: `${reply} — ${fix}`,
      ...(retryAfter ? { retryAfter } : {}),
    });
    if (/\b5\.7\.139\b/.test(reply)) {
      if (/disabled for the Tenant/i.test(reply)) {
        return temp('MB_RELAY_SMTP_AUTH_DISABLED_TENANT', { mailbox, tenantId: facts?.tenantId ?? PLACEHOLDER.tenantId }, `Set-CASMailbox -Identity ${mailbox} -SmtpClientAuthenticationDisabled $false (or Set-TransportConfig -SmtpClientAuthenticationDisabled $false)`, PAUSE_AUTH_SECONDS);
      }
      if (/disabled for the Mailbox/i.test(reply)) {
        return temp('MB_RELAY_SMTP_AUTH_DISABLED_MAILBOX', { mailbox }, `Set-CASMailbox -Identity ${mailbox} -SmtpClientAuthenticationDisabled $false`, PAUSE_AUTH_SECONDS);
      }
      return temp('MB_RELAY_SMTP_AUTH_BLOCKED', { mailbox, reply }, 'Security Defaults or Conditional Access block SMTP AUTH for this mailbox', PAUSE_AUTH_SECONDS);
    }
    if (e.responseCode === 535 || /\b5\.7\.3\b/.test(reply)) {
      if (facts && !facts.appOnly) {
        const user = facts.user ?? mailbox;
        return temp('MB_RELAY_SMTP_AUTH_REFUSED_DELEGATED', { mailbox, user }, `SMTP.Send delegated permission; Add-MailboxPermission -Identity ${mailbox} -User ${user} -AccessRights FullAccess`, PAUSE_AUTH_SECONDS);
      }
      const appId = facts?.appId ?? target.conn.clientId ?? PLACEHOLDER.appId;
      const objectId = facts?.objectId ?? PLACEHOLDER.objectId;
      const tenantId = facts?.tenantId ?? PLACEHOLDER.tenantId;
      return temp(
        'MB_RELAY_SMTP_AUTH_REFUSED',
        { mailbox, appId, objectId, tenantId, host },
        `SMTP.SendAsApp with admin consent; New-ServicePrincipal -AppId ${appId} -ObjectId ${objectId}; Add-MailboxPermission -Identity ${mailbox} -User ${objectId} -AccessRights FullAccess`,
        PAUSE_AUTH_SECONDS,
      );
    }
    return this.classify(e, { host, port: target.smtp.port, target }, 'auth');
  }

  private classify(
    e: SmtpErrorLike,
    ctx: { host: string; port: number; target: DeliveryTarget; message?: OutboundMessage; facts?: TokenFacts },
    stage: 'connect' | 'auth' | 'token' | 'send',
  ): SendResult {
    const reply = (e.response ?? '').replace(/\r?\n/g, ' ').trim();
    const code = e.responseCode;
    const mailbox = ctx.target.mailbox;
    if (code !== undefined && reply) {
      if (/SendAsDenied|\b5\.7\.60\b/i.test(reply)) {
        const from = /not allowed to send as (\S+?);/i.exec(reply)?.[1] ?? ctx.message?.sender ?? '?';
        // SMTP checks SendAs against the logged-in principal: the app's service principal, or the user.
        const trustee =
          ctx.target.conn.flow === 'client-credentials'
            ? (ctx.facts?.objectId ?? PLACEHOLDER.objectId)
            : (ctx.facts?.user ?? ctx.target.conn.account ?? mailbox);
        return {
          temporary: true,
          mbCode: 'MB_RELAY_SEND_AS_DENIED',
          params: { mailbox, from, trustee },
          code: reply,
          detail: `${reply} — Add-RecipientPermission -Identity ${from} -Trustee ${trustee} -AccessRights SendAs`,
        };
      }
      if (code === 432 || /\b4\.3\.2\b/.test(reply)) {
        return { temporary: true, mbCode: 'MB_RELAY_SMTP_CONCURRENCY', params: { mailbox, seconds: PAUSE_CONCURRENCY_SECONDS }, code: reply, detail: reply, retryAfter: PAUSE_CONCURRENCY_SECONDS };
      }
      if (/SubmissionQuotaExceeded/i.test(reply)) {
        return { temporary: true, mbCode: 'MB_RELAY_DAILY_LIMIT', params: { mailbox, seconds: PAUSE_QUOTA_SECONDS }, code: reply, detail: reply, retryAfter: PAUSE_QUOTA_SECONDS };
      }
      if (code === 530 || /\b5\.7\.57\b/.test(reply)) {
        return { temporary: true, mbCode: 'MB_RELAY_SMTP_NOT_AUTHENTICATED', params: { host: ctx.host, reply }, code: reply, detail: reply, retryAfter: PAUSE_AUTH_SECONDS };
      }
      if (code === 535) return this.authResult(e, ctx.target, '', ctx.host);
      if (code >= 400 && code < 500) return { temporary: true, mbCode: 'MB_RELAY_UPSTREAM_TEMPORARY', params: { detail: reply }, code: reply, detail: reply };
      if (code >= 500) {
        // A 5xx before any message was offered (greeting, EHLO, STARTTLS) is a setup problem, not a verdict on the message.
        if (stage === 'connect') return { temporary: true, mbCode: 'MB_RELAY_UPSTREAM_TEMPORARY', params: { detail: reply }, code: reply, detail: reply };
        return { permanent: true, mbCode: 'MB_RELAY_UPSTREAM_REJECTED', params: { detail: reply }, code: reply, detail: reply };
      }
    }
    const detail = e.message ?? String(e);
    const sys = e.originalCode ?? e.code ?? '';
    if (e.code === 'ETLS' || /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|handshake/i.test(`${sys} ${detail}`)) {
      return { temporary: true, mbCode: 'MB_RELAY_UPSTREAM_TLS', params: { host: ctx.host, port: ctx.port, detail, connection: ctx.target.connection }, detail };
    }
    if (e.code === 'ETIMEDOUT' || /timeout/i.test(sys)) {
      const where = stage === 'send' ? (e.command ?? 'DATA') : stage;
      return {
        temporary: true,
        mbCode: 'MB_RELAY_UPSTREAM_TIMEOUT',
        params: { host: ctx.host, seconds: ctx.target.smtp.timeoutSeconds, stage: where },
        detail: `${detail} (${where})`,
      };
    }
    if (stage === 'connect' || e.command === 'CONN') {
      return { temporary: true, mbCode: 'MB_RELAY_UPSTREAM_UNREACHABLE', params: { host: ctx.host, port: ctx.port, detail }, detail };
    }
    return { temporary: true, mbCode: 'MB_RELAY_TRANSPORT_FAILED', params: { transport: this.name, detail }, detail };
  }
}

/** Runs one callback-style step, failing if the connection errors or ends before the callback. */
function whileAlive(conn: SMTPConnection, run: (cb: (err?: Error | null) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err?: Error | null) => {
      if (done) return;
      done = true;
      conn.off('error', onError);
      conn.off('end', onEnd);
      if (err) reject(err);
      else resolve();
    };
    const onError = (err: Error) => finish(err);
    const onEnd = () => finish(Object.assign(new Error('Connection closed by the server'), { code: 'ECONNECTION' }));
    conn.on('error', onError);
    conn.on('end', onEnd);
    run((err) => finish(err ?? undefined));
  });
}

function quit(conn: SMTPConnection): void {
  try {
    conn.quit();
  } catch {
    // already closed
  }
  conn.close();
}
