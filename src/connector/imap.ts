/**
 * IMAP source (imapflow): one authenticated session per mailbox, user or shared alike: the SASL user
 * is the mailbox address and the token comes from the TokenProvider (app-only with IMAP.AccessAsApp,
 * or delegated with FullAccess on the shared mailbox). imapflow picks OAUTHBEARER when a server
 * offers it and XOAUTH2 otherwise; Exchange Online offers only XOAUTH2.
 *
 * Strategies: UIDs only (never sequence numbers); new mail is listed with `UID FETCH n:* (UID
 * RFC822.SIZE)` and fetched with BODY.PEEK[] in batches bounded by bytes, so nothing is marked \Seen
 * before the destination acknowledged it. New-mail notification is IDLE (restarted every
 * `idleRestartMs`, below Exchange's 29-minute limit) with the poll interval as a fallback and as the
 * only mechanism when IDLE is off or not offered. COMPRESS is not used (Exchange does not offer it
 * and on a LAN it costs CPU). Exchange's replies (not connected, throttled) are classified in
 * m365/imap-replies.ts; the throttling hint is also taken from imapflow's log, because imapflow turns the
 * throttled reply into a connection error once the server hangs up.
 *
 * Limits: one selected folder at a time per session; IDLE watches only the folder it was started on.
 */
import type { ImapFlow } from 'imapflow';
import type { Logger } from '../log/index.ts';
import { silentLogger } from '../log/index.ts';
import { connectWithin, imapClient } from '../m365/imap.ts';
import type { ImapTls } from '../m365/imap-fields.ts';
import type { ProxySettings } from '../net/proxy.ts';
import { waitForWake } from '../util/wake.ts';
import { classifyImapError, type ImapErrorContext } from '../m365/imap-replies.ts';
import type { SourceConfig } from './types.ts';
import { ConnectorError, describeAction, type AfterAction, type Batch, type FetchedMessage, type FolderState, type ListedItem, type SourceFactory, type SourcePlugin, type SourceSession, type TokenProvider } from './types.ts';

export interface ImapSourceOptions {
  connector: string;
  host: string;
  port: number;
  tls: ImapTls;
  /** Extra CA certificates (PEM) to trust. */
  ca?: string;
  servername?: string;
  tokens: TokenProvider;
  idle: boolean;
  /** Break and restart IDLE this often (ms). */
  idleRestartMs?: number;
  /** Raw bytes fetched per FETCH command (at least one message). */
  fetchBytes?: number;
  /** Messages listed per batch. */
  batchSize?: number;
  connectTimeoutMs?: number;
  proxy?: ProxySettings | undefined;
  log?: Logger;
}

export function imapSource(options: ImapSourceOptions): SourceFactory {
  return {
    kind: 'imap',
    description: `imap ${options.host}:${options.port}`,
    open: (mailbox, signal, o) => openImapSession(options, mailbox, signal, o),
  };
}

/** The `imap` source as configured (Exchange Online's IMAP unless `host` names another server). */
export const imapSourcePlugin: SourcePlugin<Extract<SourceConfig, { kind: 'imap' }>> = (s, ctx) =>
  imapSource({
    connector: ctx.connector,
    host: s.host ?? 'outlook.office365.com',
    port: s.port,
    tls: s.tls,
    ca: s.caFile ? ctx.readFile(s.caFile) : undefined,
    servername: s.servername,
    tokens: ctx.tokens,
    idle: s.idle,
    idleRestartMs: s.idleRestartSeconds * 1000,
    proxy: ctx.proxy,
    log: ctx.log,
  });

/** Exchange's reply as the connector's error: the runner reads retryAfterMs off a ConnectorError. */
function classified(err: unknown, ctx: ImapErrorContext): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const e = classifyImapError(err, ctx);
  return new ConnectorError(e.code, e.params, { cause: err, retryAfterMs: e.retryAfterMs });
}

export async function openImapSession(o: ImapSourceOptions, mailbox: string, signal: AbortSignal, open: { freshToken?: boolean } = {}): Promise<ImapSession> {
  const ctx: ImapErrorContext = { connector: o.connector, mailbox, host: o.host, port: o.port };
  const token = await o.tokens(mailbox, { fresh: open.freshToken });
  ctx.token = token;
  const client = imapClient(
    {
      host: o.host,
      port: o.port,
      tls: o.tls,
      ca: o.ca,
      servername: o.servername,
      auth: { user: mailbox, accessToken: token },
      proxy: o.proxy,
      log: (o.log ?? silentLogger).child({ mailbox }),
      idleRestartMs: o.idleRestartMs ?? 600_000,
      connectTimeoutMs: o.connectTimeoutMs ?? 30_000,
    },
    ctx,
  );
  const session = new ImapSession(client, mailbox, o, ctx);
  try {
    await connectWithin(client, signal, (o.connectTimeoutMs ?? 30_000) * 2);
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    ctx.byeReason = client.byeReason;
    throw classified(err, ctx);
  }
  return session;
}

export class ImapSession implements SourceSession {
  readonly mailbox: string;
  private readonly client: ImapFlow;
  private readonly o: ImapSourceOptions;
  private readonly ctx: ImapErrorContext;
  private selected: string | undefined;
  private changed = false;
  private wake: (() => void) | undefined;
  closed = false;

  constructor(client: ImapFlow, mailbox: string, o: ImapSourceOptions, ctx: ImapErrorContext) {
    this.client = client;
    this.mailbox = mailbox;
    this.o = o;
    this.ctx = ctx;
    client.on('exists', () => {
      this.changed = true;
      this.wake?.();
    });
    client.on('close', () => {
      this.closed = true;
      this.ctx.byeReason = client.byeReason;
      this.wake?.();
    });
    // imapflow emits at most one error and closes; the next command reports it as NoConnection.
    client.on('error', () => undefined);
  }

  /** Runs an IMAP step and turns its failure into a classified ConnectorError. */
  private async step<T>(folder: string | undefined, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw classified(err, { ...this.ctx, folder, byeReason: this.client.byeReason ?? this.ctx.byeReason });
    }
  }

  private async select(folder: string): Promise<FolderState> {
    const mb = await this.step(folder, () => this.client.mailboxOpen(folder));
    this.selected = folder;
    return { epoch: mb.uidValidity.toString(), next: mb.uidNext };
  }

  async open(folder: string): Promise<FolderState> {
    this.changed = false;
    return this.select(folder);
  }

  private async ensure(folder: string): Promise<void> {
    if (this.selected !== folder || !this.client.mailbox) await this.select(folder);
  }

  async *list(folder: string, from: { position: number }): AsyncIterable<Batch> {
    await this.ensure(folder);
    const mb = this.client.mailbox;
    // Nothing new since the checkpoint: skip the round trip (UIDNEXT is at most one beyond the last UID).
    if (mb && mb.path === folder && mb.uidNext <= from.position + 1 && !this.changed) return;
    const listed = await this.step(folder, () => this.client.fetchAll(`${from.position + 1}:*`, { uid: true, size: true }, { uid: true }));
    // `n:*` also returns the highest message when it is below n.
    const items: ListedItem[] = listed
      .filter((m) => m.uid > from.position)
      .sort((a, b) => a.uid - b.uid)
      .map((m) => ({ item: String(m.uid), uid: m.uid, size: m.size }));
    const per = this.o.batchSize ?? 200;
    for (let i = 0; i < items.length; i += per) {
      const part = items.slice(i, i + per);
      yield { items: part, advance: { position: part[part.length - 1]!.uid! } };
    }
  }

  async fetch(folder: string, items: ListedItem[]): Promise<FetchedMessage[]> {
    if (items.length === 0) return [];
    await this.ensure(folder);
    const uids = items.map((i) => i.uid ?? Number(i.item));
    const got = await this.step(folder, () => this.client.fetchAll(uids.join(','), { uid: true, source: true, internalDate: true }, { uid: true }));
    const out: FetchedMessage[] = [];
    for (const m of got) {
      if (!m.source) continue;
      const internalDate = m.internalDate instanceof Date ? m.internalDate : m.internalDate ? new Date(m.internalDate) : undefined;
      out.push({ item: String(m.uid), uid: m.uid, raw: m.source, internalDate });
    }
    return out.sort((a, b) => a.uid! - b.uid!);
  }

  async act(folder: string, action: AfterAction, items: string[]): Promise<void> {
    if (items.length === 0 || action.action === 'none') return;
    await this.ensure(folder);
    const range = items.join(',');
    const fail = (detail: string) =>
      new ConnectorError('MB_CONNECTOR_AFTER_ACTION_FAILED', { mailbox: this.mailbox, folder, count: items.length, action: describeAction(action), detail });
    if (action.action === 'seen') {
      const ok = await this.step(folder, () => this.client.messageFlagsAdd(range, ['\\Seen'], { uid: true, silent: true }));
      if (!ok && this.closed) throw fail('connection closed');
      if (!ok) throw fail('the server refused STORE +FLAGS (\\Seen)');
      return;
    }
    if (action.action === 'delete') {
      const ok = await this.step(folder, () => this.client.messageDelete(range, { uid: true }));
      if (!ok) throw fail(this.closed ? 'connection closed' : 'the server refused STORE \\Deleted / EXPUNGE');
      return;
    }
    let moved = await this.step(folder, () => this.client.messageMove(range, action.folder, { uid: true }));
    if (!moved && !this.closed) {
      // The usual reason is a target folder that does not exist yet ([TRYCREATE]): create it once.
      await this.step(folder, async () => {
        try {
          await this.client.mailboxCreate(action.folder);
        } catch {
          // exists already, or may not be created: the second MOVE tells
        }
      });
      moved = await this.step(folder, () => this.client.messageMove(range, action.folder, { uid: true }));
    }
    if (!moved) throw fail(this.closed ? 'connection closed' : `MOVE to "${action.folder}" was refused`);
  }

  async wait(folder: string, ms: number, signal: AbortSignal): Promise<'changed' | 'timeout' | 'closed'> {
    if (this.closed) return 'closed';
    if (this.changed) return 'changed';
    await this.ensure(folder);
    if (this.o.idle && this.client.capabilities.has('IDLE')) {
      // Runs until the next command breaks it (imapflow sends DONE first); EXISTS arrives as an event.
      this.client.idle().catch(() => undefined);
    }
    return waitForWake<'changed' | 'closed'>(
      ms,
      signal,
      (wake) => {
        this.wake = () => wake(this.closed ? 'closed' : 'changed');
        if (this.closed) wake('closed');
        else if (this.changed) wake('changed');
      },
      () => (this.wake = undefined),
    );
  }

  private closing: Promise<void> | undefined;

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.wake?.();
    if (this.closed) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      // A server that no longer answers must not hold the shutdown: two seconds for LOGOUT.
      await Promise.race([this.client.logout(), new Promise((r) => (timer = setTimeout(r, 2000)))]);
    } catch {
      // logging out of a dead session fails; closing below is what matters
    } finally {
      clearTimeout(timer);
    }
    this.client.close();
    this.closed = true;
  }
}
