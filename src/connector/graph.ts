/**
 * Microsoft Graph source: messages delta on a folder, the raw MIME of each new message from
 * `/messages/{id}/$value`, and the after-delivery action as Graph calls (PATCH isRead, POST move,
 * POST permanentDelete). Facts 4.6 and 4.8.
 *
 * Strategies. A delta round is followed page by page (`@odata.nextLink` with $skiptoken, then
 * `@odata.deltaLink` with $deltatoken); the link to continue from is the checkpoint's cursor, saved
 * after every page, so a restart resumes mid-round. Items are Graph message ids; replays (Graph may
 * report a message again, e.g. after its isRead changed) are skipped by the checkpoint's record of
 * ids. `@removed` entries are ignored (nothing to deliver). A lost sync state (410, or
 * syncStateNotFound / resyncRequired) starts a new round without a token and reports
 * MB_CONNECTOR_GRAPH_RESYNC; nothing is delivered twice because delivered ids are known. 429 and
 * 503 are retried after their Retry-After (a few times per request, then the error goes up with the
 * wait), and at most 4 requests per mailbox run at once (Graph's MailboxConcurrency limit).
 *
 * Limits. No change notifications yet: new mail is found at the poll interval. Folders are
 * well-known names (inbox, archive, …; "INBOX" is taken as inbox) or folder ids. The epoch is always
 * "graph"; message ids change when a message moves to another folder, which is why a folder's
 * checkpoint only ever concerns messages in that folder.
 */
import { Agent, fetch, type Dispatcher } from 'undici';
import type { MbError } from '../errors/index.ts';
import { registerSecret } from '../log/redact.ts';
import { Semaphore, sleep } from '../util/limits.ts';
import { ConnectorError, describeAction, type AfterAction, type Batch, type FetchedMessage, type FolderState, type ListedItem, type SourceFactory, type SourceSession, type TokenProvider } from './types.ts';

export interface GraphSourceOptions {
  connector: string;
  /** e.g. https://graph.microsoft.com/v1.0 (no trailing slash needed). */
  baseUrl: string;
  tokens: TokenProvider;
  /** Extra CA certificates (PEM) to trust. */
  ca?: string;
  /** Messages per delta page (Prefer: odata.maxpagesize). */
  pageSize?: number;
  /** Requests per mailbox at once (Graph allows 4). */
  concurrency?: number;
  /** Throttling and resync notices, for the run's warnings. */
  notice?: (mailbox: string, error: MbError) => void;
  /** Retries of one request after 429/503 before the error goes up. */
  throttleRetries?: number;
}

export function graphSource(o: GraphSourceOptions): SourceFactory {
  const dispatcher = new Agent({ connect: o.ca ? { ca: o.ca } : {}, keepAliveTimeout: 30_000, connections: 64 });
  const base = o.baseUrl.replace(/\/+$/, '');
  return {
    kind: 'graph',
    description: `graph ${base}`,
    async open(mailbox, _signal, options) {
      return new GraphSession(mailbox, { ...o, baseUrl: base }, dispatcher, options?.freshToken);
    },
    close: () => dispatcher.close(),
  };
}

interface GraphErrorBody {
  error?: { code?: string; message?: string };
}

/** "INBOX" (IMAP's name) is Graph's well-known inbox. */
function folderSegment(folder: string): string {
  return encodeURIComponent(folder.toUpperCase() === 'INBOX' ? 'inbox' : folder);
}

export class GraphSession implements SourceSession {
  readonly mailbox: string;
  readonly closed = false;
  private readonly o: GraphSourceOptions;
  private readonly dispatcher: Dispatcher;
  private readonly slots: Semaphore;
  private readonly received = new Map<string, Date>();
  /** The first request asks for a new token (the previous session was refused for authorization). */
  private freshToken: boolean;

  constructor(mailbox: string, o: GraphSourceOptions, dispatcher: Dispatcher, freshToken = false) {
    this.mailbox = mailbox;
    this.o = o;
    this.dispatcher = dispatcher;
    this.freshToken = freshToken;
    this.slots = new Semaphore(Math.min(4, o.concurrency ?? 4));
  }

  private userUrl(path: string): string {
    return `${this.o.baseUrl}/users/${encodeURIComponent(this.mailbox)}${path}`;
  }

  /** One request with the 4-per-mailbox limit, Retry-After honoured on 429/503. */
  private async request(method: string, url: string, options: { body?: unknown; headers?: Record<string, string> } = {}): Promise<{ status: number; body: Buffer; json?: unknown }> {
    const retries = this.o.throttleRetries ?? 4;
    for (let attempt = 0; ; attempt++) {
      const token = await this.o.tokens(this.mailbox, this.freshToken ? { fresh: true } : undefined);
      this.freshToken = false;
      registerSecret(token);
      let res: Awaited<ReturnType<typeof fetch>>;
      let body: Buffer;
      try {
        await this.slots.acquire();
        try {
          res = await fetch(url, {
            method,
            dispatcher: this.dispatcher,
            headers: {
              authorization: `Bearer ${token}`,
              accept: 'application/json',
              ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
              ...options.headers,
            },
            body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
          });
          body = Buffer.from(await res.arrayBuffer());
        } finally {
          this.slots.release();
        }
      } catch (err) {
        const e = err as Error & { cause?: { code?: string; message?: string } };
        const u = new URL(url);
        throw new ConnectorError(
          'MB_CONNECTOR_SOURCE_UNREACHABLE',
          { mailbox: this.mailbox, host: u.hostname, port: Number(u.port || 443), detail: `${e.cause?.code ?? e.name}: ${e.cause?.message ?? e.message}` },
          { cause: err },
        );
      }
      const json = /json/.test(res.headers.get('content-type') ?? '') ? safeJson(body) : undefined;
      // A permission granted meanwhile is only in a new token: the next request must not reuse this one.
      if (res.status === 401 || res.status === 403) this.freshToken = true;
      if (res.status === 429 || res.status === 503) {
        const seconds = Number(res.headers.get('retry-after') ?? '') || 2 ** attempt;
        const err = new ConnectorError(
          'MB_CONNECTOR_GRAPH_THROTTLED',
          { status: res.status, mailbox: this.mailbox, seconds, connector: this.o.connector },
          { retryAfterMs: seconds * 1000 },
        );
        this.o.notice?.(this.mailbox, err);
        if (attempt >= retries) throw err;
        await sleep(seconds * 1000);
        continue;
      }
      return { status: res.status, body, json };
    }
  }

  private fail(status: number, json: unknown, folder?: string): ConnectorError {
    const e = (json as GraphErrorBody | undefined)?.error ?? {};
    const params = { status, code: e.code ?? '', detail: e.message ?? '', mailbox: this.mailbox, connector: this.o.connector };
    if (status === 401 || status === 403) return new ConnectorError('MB_CONNECTOR_GRAPH_FORBIDDEN', params, { retryAfterMs: 60_000 });
    // No such user, or a user without an Exchange Online mailbox: usually a typo in the address.
    if (status === 404 && /^(ErrorInvalidUser|MailboxNotEnabledForRESTAPI)$/i.test(e.code ?? '')) {
      return new ConnectorError('MB_CONNECTOR_MAILBOX_NOT_FOUND', { mailbox: this.mailbox, status, code: e.code ?? '', connector: this.o.connector }, { retryAfterMs: 300_000 });
    }
    if (status === 404 && folder !== undefined && /folder|ErrorInvalidIdMalformed|ErrorItemNotFound|ResourceNotFound/i.test(`${e.code} ${e.message}`)) {
      return new ConnectorError('MB_CONNECTOR_FOLDER_MISSING', { mailbox: this.mailbox, folder, connector: this.o.connector }, { retryAfterMs: 300_000 });
    }
    return new ConnectorError('MB_CONNECTOR_GRAPH_FAILED', params);
  }

  async open(folder: string): Promise<FolderState> {
    const r = await this.request('GET', this.userUrl(`/mailFolders/${folderSegment(folder)}`));
    if (r.status !== 200) throw this.fail(r.status, r.json, folder);
    return { epoch: 'graph', next: 0 };
  }

  async *list(folder: string, from: { position: number; cursor?: string }): AsyncIterable<Batch> {
    const first = `${this.userUrl(`/mailFolders/${folderSegment(folder)}/messages/delta`)}?$select=id,internetMessageId,receivedDateTime`;
    let url = from.cursor ?? first;
    let resynced = false;
    for (;;) {
      const r = await this.request('GET', url, { headers: { prefer: `odata.maxpagesize=${this.o.pageSize ?? 50}` } });
      const code = (r.json as GraphErrorBody | undefined)?.error?.code ?? '';
      if ((r.status === 410 || /syncStateNotFound|resyncRequired/i.test(code)) && !resynced) {
        // The delta state is gone: a new round from the start; delivered ids are skipped.
        resynced = true;
        const warning = new ConnectorError('MB_CONNECTOR_GRAPH_RESYNC', { mailbox: this.mailbox, folder, status: r.status, code });
        yield { items: [], advance: { cursor: null }, warning };
        url = first;
        continue;
      }
      if (r.status !== 200) throw this.fail(r.status, r.json, folder);
      const page = r.json as { value?: Array<Record<string, unknown>>; '@odata.nextLink'?: string; '@odata.deltaLink'?: string };
      const items: ListedItem[] = [];
      for (const v of page.value ?? []) {
        if (v['@removed'] || typeof v.id !== 'string') continue;
        if (typeof v.receivedDateTime === 'string') this.received.set(v.id, new Date(v.receivedDateTime));
        items.push({ item: v.id });
      }
      const next = page['@odata.nextLink'];
      const delta = page['@odata.deltaLink'];
      yield { items, advance: { cursor: next ?? delta ?? null } };
      if (!next) return;
      url = next;
    }
  }

  async fetch(_folder: string, items: ListedItem[]): Promise<FetchedMessage[]> {
    const got = await Promise.all(
      items.map(async (it): Promise<FetchedMessage | undefined> => {
        const r = await this.request('GET', this.userUrl(`/messages/${encodeURIComponent(it.item)}/$value`), { headers: { accept: 'message/rfc822, */*' } });
        if (r.status === 404) return undefined;
        if (r.status !== 200) throw this.fail(r.status, r.json);
        return { item: it.item, raw: r.body, internalDate: this.received.get(it.item) };
      }),
    );
    return got.filter((m): m is FetchedMessage => m !== undefined);
  }

  async act(folder: string, action: AfterAction, items: string[]): Promise<void> {
    if (action.action === 'none' || items.length === 0) return;
    const failures: string[] = [];
    let forbidden: { status: number; code: string } | undefined;
    await Promise.all(
      items.map(async (id) => {
        const path = `/messages/${encodeURIComponent(id)}`;
        const r =
          action.action === 'seen'
            ? await this.request('PATCH', this.userUrl(path), { body: { isRead: true } })
            : action.action === 'move'
              ? await this.request('POST', this.userUrl(`${path}/move`), { body: { destinationId: action.folder.toUpperCase() === 'INBOX' ? 'inbox' : action.folder } })
              : await this.request('POST', this.userUrl(`${path}/permanentDelete`));
        // Already gone (moved or deleted by someone): nothing left to do for it.
        const code = (r.json as GraphErrorBody | undefined)?.error?.code ?? '';
        if (r.status === 401 || r.status === 403) forbidden ??= { status: r.status, code };
        if (r.status >= 300 && r.status !== 404) failures.push(`${r.status} ${code}`.trim());
      }),
    );
    if (forbidden) {
      // Reading needs Mail.Read; marking, moving and deleting need Mail.ReadWrite.
      throw new ConnectorError('MB_CONNECTOR_GRAPH_ACTION_FORBIDDEN', {
        mailbox: this.mailbox,
        folder,
        count: failures.length,
        action: describeAction(action),
        status: forbidden.status,
        code: forbidden.code,
        connector: this.o.connector,
      });
    }
    if (failures.length > 0) {
      throw new ConnectorError('MB_CONNECTOR_AFTER_ACTION_FAILED', {
        mailbox: this.mailbox,
        folder,
        count: failures.length,
        action: describeAction(action),
        detail: [...new Set(failures)].join(', '),
      });
    }
  }

  async wait(_folder: string, ms: number, signal: AbortSignal): Promise<'changed' | 'timeout' | 'closed'> {
    await sleep(ms, signal).catch(() => undefined);
    return 'timeout';
  }

  async close(): Promise<void> {}
}

function safeJson(b: Buffer): unknown {
  try {
    return JSON.parse(b.toString('utf8'));
  } catch {
    return undefined;
  }
}
